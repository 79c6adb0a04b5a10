/* ring.c - ipcfast.Ring: one segment holding one byte ring, with blocking, batch and
 * zero-copy forms. Sides marked multi-producer / multi-consumer take their robust lock. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "peers.h"
#include "poll.h"
#include "ring_impl.h"

static void ring_init(struct ipcf_ring *r)
{
    r->ctl = r->seg.ctl;
    r->rb.ctl = r->ctl;
    r->rb.data = r->seg.data;
    r->rb.cap = r->seg.capacity;
    r->rb.head_cache = ipcf_load_acquire(&r->ctl->head);
    r->rb.tail_cache = ipcf_load_acquire(&r->ctl->tail);
    /* our copy: of the shared word only IPCF_F_AUTO_UNLINK ever changes (cleared, atomic),
     * and ipcf_seg_leave reads that from the shared word itself */
    r->flags = ipcf_load_relaxed(&r->seg.hdr->flags);
    r->max_msg = ipcf_rb_max_message(r->seg.capacity);
    ipcf_pipe_init(&r->pipe, is_pipe(r) ? (struct ipcf_pipe_ctl *)((uint8_t *)r->seg.base +
                                                                   IPCF_PIPE_OFFSET) : NULL);
}

struct ipcf_pipe *ipcf_ring_pipe(ipcf_ring *r)
{
    return is_pipe(r) ? &r->pipe : NULL;
}

void ipcf_ring_counters(const void *ctl, uint64_t out[IPCF_COUNTERS])
{
    const struct ipcf_ring_ctl *c = ctl;
    out[0] = ipcf_load_relaxed(&c->msgs_in);
    out[1] = ipcf_load_relaxed(&c->msgs_out);
    out[2] = ipcf_load_relaxed(&c->bytes_in);
    out[3] = ipcf_load_relaxed(&c->bytes_out);
    out[4] = ipcf_load_relaxed(&c->full_waits);
    out[5] = ipcf_load_relaxed(&c->empty_waits);
    out[6] = ipcf_load_relaxed(&c->data.waiters);
    out[7] = ipcf_load_relaxed(&c->space.waiters);
}

int ipcf_ring_create(const char *name, uint64_t capacity, uint32_t flags, ipcf_ring **out)
{
    if (flags & ~(uint32_t)(IPCF_F_MULTI_PRODUCER | IPCF_F_MULTI_CONSUMER | IPCF_F_AUTO_UNLINK |
                            IPCF_F_PIPE))
        return IPCF_EBADARG;
    if (capacity == 0)
        return IPCF_EBADARG;
    struct ipcf_ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int rc = ipcf_seg_create(&r->seg, name, IPCF_KIND_RING, capacity, flags, NULL, 0);
    if (!rc) {
        struct ipcf_ring_ctl *c = r->seg.ctl;   /* (the pipe block of a fresh file is zero) */
        rc = ipcf_lock_init(c->plock);
        if (!rc)
            rc = ipcf_lock_init(c->clock);
        if (!rc && (flags & IPCF_F_PIPE))
            ipcf_pipe_init_locks((struct ipcf_pipe_ctl *)((uint8_t *)r->seg.base + IPCF_PIPE_OFFSET));
        if (rc) {
            ipcf_seg_unmap(&r->seg);
            ipcf_seg_unlink(name);
        }
    }
    if (rc) {
        free(r);
        return rc;
    }
    ring_init(r);
    ipcf_seg_register(&r->seg);
    ipcf_seg_publish(&r->seg);
    *out = r;
    return 0;
}

int ipcf_ring_attach(const char *name, ipcf_ring **out)
{
    struct ipcf_ring *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    int rc = ipcf_seg_open(&r->seg, name, IPCF_KIND_RING);
    if (rc) {
        free(r);
        return rc;
    }
    ipcf_seg_register(&r->seg);
    ring_init(r);
    *out = r;
    return 0;
}

int ipcf_ring_close(ipcf_ring *r)
{
    if (ipcf_exchange(&r->closing, 1))
        return 0;
    /* an open claim or view stays with its thread, which ends it (commit/abort/release) */
    if (is_pipe(r))
        ipcf_pipe_drop(&r->pipe);
    /* wake everyone: other processes re-check and sleep again; our own threads see closing */
    ipcf_event_wake(&r->ctl->data);
    ipcf_event_wake(&r->ctl->space);
    int last = ipcf_seg_leave(&r->seg);
    /* an end in transit (pickled for a child not yet attached) keeps the ring: the process
     * that receives it is then the last one out */
    if (last && is_pipe(r) && ipcf_pipe_in_use(&r->pipe))
        last = 0;
    if (last)
        ipcf_seg_unlink_own(&r->seg, r->seg.name + 1);
    return last;
}

void ipcf_ring_free(ipcf_ring *r)
{
    ipcf_ring_close(r);
    if (ipcf_load_relaxed(&r->claimed))
        ipcf_ring_abort(r);
    if (ipcf_load_relaxed(&r->peeked))
        ipcf_ring_unpeek(r);          /* an open view is dropped unconsumed */
    if (is_pipe(r) && ipcf_pipe_keep_mapping(&r->pipe, r->seg.base, r->seg.map_len))
        r->seg.base = NULL;           /* a reader lock another thread holds: pipe.c */
    ipcf_seg_unmap(&r->seg);
    free(r);
}

void ipcf_ring_before_fork(ipcf_ring *r)
{
    ipcf_seg_before_fork(&r->seg);
    if (is_pipe(r))
        ipcf_pipe_before_fork(&r->pipe);
}

void ipcf_ring_after_fork(ipcf_ring *r)
{
    /* the child holds its pipe ends before it counts as attached to the segment: once it
     * is attached, its parent's fork transits stop counting for it (pipe.c), so the other
     * order left a window in which neither counted and a peer could see EOF */
    if (is_pipe(r))
        ipcf_pipe_after_fork(&r->pipe);
    ipcf_seg_after_fork(&r->seg);
}

int ipcf_ring_depart(ipcf_ring *r, int64_t ttl_ns) { return ipcf_seg_depart(&r->seg, ttl_ns); }
void ipcf_ring_arrive(ipcf_ring *r, uint64_t from) { ipcf_seg_arrive(&r->seg, from); }

uint64_t ipcf_ring_capacity(const ipcf_ring *r) { return r->seg.capacity; }
uint64_t ipcf_ring_max_message(const ipcf_ring *r) { return r->max_msg; }
uint32_t ipcf_ring_flags(const ipcf_ring *r) { return r->flags; }
uint32_t ipcf_ring_last_tag(const ipcf_ring *r) { return r->last_tag; }

uint64_t ipcf_ring_count(const ipcf_ring *r)
{
    uint64_t out = ipcf_load_acquire(&r->ctl->msgs_out);
    uint64_t in = ipcf_load_acquire(&r->ctl->msgs_in);
    uint64_t most = r->rb.cap / IPCF_REC_HDR;  /* statistics are untrusted: never past what fits */
    uint64_t n = in > out ? (in - out < most ? in - out : most) : 0;
    /* The counters move just after the positions: a side SIGKILLed in between leaves them
     * one off for good. The positions decide empty or not, so len() agrees with empty(). */
    uint64_t used = ipcf_ring_used(r);
    return used == 0 ? 0 : (n ? n : 1);
}

uint64_t ipcf_ring_used(const ipcf_ring *r)
{
    uint64_t head = ipcf_load_acquire(&r->ctl->head);
    uint64_t tail = ipcf_load_acquire(&r->ctl->tail);
    return tail - head <= r->seg.capacity ? tail - head : 0;
}

/* ---- waiting ---- */

struct room_arg { struct ipcf_ring *r; uint64_t need; };

static int room_ready(void *p)
{
    struct room_arg *a = p;
    if (is_closing(a->r))
        return IPCF_ECLOSED;
    return ipcf_rb_has_room(a->r->ctl, a->r->rb.cap, a->need) ||
           (is_pipe(a->r) && ipcf_pipe_readers_gone(&a->r->pipe, 0));
}

static int data_ready(void *p)
{
    struct ipcf_ring *r = p;
    if (is_closing(r))
        return IPCF_ECLOSED;
    return ipcf_rb_has_data(r->ctl) || (is_pipe(r) && ipcf_pipe_writers_gone(&r->pipe, 0));
}

/* Wait for room; IPCF_ECLOSED when this pipe direction has lost every reader. */
static int wait_room(struct ipcf_ring *r, uint64_t need, struct ipcf_timeout *to)
{
    struct room_arg a = {r, need};
    int rc = ipcf_wait(&r->ctl->space, room_ready, &a, ipcf_remaining(to), &r->ctl->full_waits);
    if (rc == IPCF_ECLOSED)
        return rc;
    if (is_pipe(r) && !ipcf_rb_has_room(r->ctl, r->rb.cap, need) &&
        ipcf_pipe_readers_gone(&r->pipe, rc == IPCF_ETIMEOUT))
        return IPCF_ECLOSED;
    return rc == IPCF_ETIMEOUT ? IPCF_EFULL : (rc < 0 ? rc : 0);
}

/* Wait for a record; IPCF_ECLOSED at the end of a pipe direction whose writers are gone
 * (their records were published before they left, so emptiness re-checked after is final). */
static int wait_data(struct ipcf_ring *r, struct ipcf_timeout *to)
{
    int rc = ipcf_wait(&r->ctl->data, data_ready, r, ipcf_remaining(to), &r->ctl->empty_waits);
    if (rc == IPCF_ECLOSED)
        return rc;
    if (is_pipe(r) && ipcf_pipe_writers_gone(&r->pipe, rc == IPCF_ETIMEOUT) &&
        !ipcf_rb_has_data(r->ctl))
        return IPCF_ECLOSED;
    return rc == IPCF_ETIMEOUT ? IPCF_EEMPTY : (rc < 0 ? rc : 0);
}

int ipcf_ring_poll(ipcf_ring *r, int64_t timeout_ns)
{
    if (is_closing(r))
        return IPCF_ECLOSED;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    int rc = ipcf_rb_has_data(r->ctl) ? 0 : wait_data(r, &to);
    return rc == 0 || rc == IPCF_ECLOSED ? 1 : (rc == IPCF_EEMPTY ? 0 : rc);
}

/* Map a lock timeout to the side's "nothing happened" code. */
static int lock_fail(int rc, int as)
{
    return rc == IPCF_ETIMEOUT ? as : rc;
}

/* ---- producer ---- */

static int acquire_room(struct ipcf_ring *r, uint64_t len, struct ipcf_timeout *to, uint64_t *tail)
{
    return len > r->max_msg ? IPCF_ETOOBIG : ipcf_ring_acquire_room(r, ipcf_rec_size(len), to, tail);
}

int ipcf_ring_acquire_room(struct ipcf_ring *r, uint64_t need, struct ipcf_timeout *to,
                           uint64_t *tail)
{
    if (is_closing(r))
        return IPCF_ECLOSED;
    if (need > r->rb.cap)
        return IPCF_ETOOBIG;
    /* a pipe with no reader left: broken pipe on the first send, as multiprocessing's */
    if (is_pipe(r) && ipcf_pipe_readers_lost(&r->pipe))
        return IPCF_ECLOSED;
    if (!(r->flags & IPCF_F_MULTI_PRODUCER) && ipcf_load_relaxed(&r->claimed))
        return IPCF_ESTATE;   /* a shared side's lock reports re-entry itself (EDEADLK) */
    for (;;) {
        int rc = LOCK_P(r, to);
        if (rc < 0)
            return lock_fail(rc, IPCF_EFULL);
        *tail = ipcf_rb_tail(&r->rb);
        if (ipcf_rb_room(&r->rb, *tail, need))
            return 0;
        UNLOCK_P(r);
        if ((rc = wait_room(r, need, to)) != 0)
            return rc;
    }
}

int ipcf_ring_send(ipcf_ring *r, const char *buf, uint64_t len, int64_t timeout_ns)
{
    return ipcf_ring_send_tagged(r, buf, len, 0, timeout_ns);
}

int ipcf_ring_send_tagged(ipcf_ring *r, const char *buf, uint64_t len, uint32_t tag,
                          int64_t timeout_ns)
{
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t tail;
    int rc = acquire_room(r, len, &to, &tail);
    if (rc)
        return rc;
    ipcf_rb_publish(&r->rb, ipcf_rb_write_tagged(&r->rb, tail, buf, len, tag), 1, len);
    UNLOCK_P(r);
    ipcf_event_wake(&r->ctl->data);
    return 0;
}

int ipcf_ring_send_many(ipcf_ring *r, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns, uint64_t *sent)
{
    *sent = 0;
    if (is_closing(r))
        return IPCF_ECLOSED;
    if (!(r->flags & IPCF_F_MULTI_PRODUCER) && ipcf_load_relaxed(&r->claimed))
        return IPCF_ESTATE;   /* a shared side's lock reports re-entry itself (EDEADLK) */
    for (uint64_t i = 0; i < n; i++)
        if (lens[i] > r->max_msg)
            return IPCF_ETOOBIG;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t i = 0;
    while (i < n) {
        int rc = LOCK_P(r, &to);
        if (rc < 0)
            return lock_fail(rc, IPCF_EFULL);
        uint64_t tail = ipcf_rb_tail(&r->rb), start = i, bytes = 0;
        while (i < n && ipcf_rb_room(&r->rb, tail, ipcf_rec_size(lens[i]))) {
            tail = ipcf_rb_write(&r->rb, tail, buf, lens[i]);
            buf += lens[i];
            bytes += lens[i];
            i++;
        }
        if (i > start)      /* one release store publishes the whole batch */
            ipcf_rb_publish(&r->rb, tail, i - start, bytes);
        UNLOCK_P(r);
        if (i > start)
            ipcf_event_wake(&r->ctl->data);
        *sent = i;
        if (i < n && (rc = wait_room(r, ipcf_rec_size(lens[i]), &to)) != 0)
            return rc;
    }
    return 0;
}

/* ---- consumer ---- */

int ipcf_ring_acquire_record(struct ipcf_ring *r, struct ipcf_timeout *to, uint64_t *head,
                             uint8_t **body, uint32_t *len)
{
    if (is_closing(r))
        return IPCF_ECLOSED;
    if (!(r->flags & IPCF_F_MULTI_CONSUMER) && ipcf_load_relaxed(&r->peeked))
        return IPCF_ESTATE;   /* a shared side's lock reports re-entry itself (EDEADLK) */
    for (;;) {
        int rc = LOCK_C(r, to);
        if (rc < 0)
            return lock_fail(rc, IPCF_EEMPTY);
        *head = ipcf_rb_head(&r->rb);
        if ((rc = ipcf_rb_next(&r->rb, *head, body, len)) > 0) {
            r->last_tag = ipcf_rb_tag(*body);
            return 0;
        }
        UNLOCK_C(r);
        if (rc < 0)
            return rc;                  /* corrupt: never a record of wrong bounds, never a spin */
        if ((rc = wait_data(r, to)) != 0)
            return rc;
    }
}

int64_t ipcf_ring_recv(ipcf_ring *r, char *buf, uint64_t cap, int64_t timeout_ns)
{
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t head;
    uint8_t *body;
    uint32_t len;
    int rc = ipcf_ring_acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    if (len > cap) {
        UNLOCK_C(r);
        return IPCF_EBUFSMALL;
    }
    ipcf_host_copy(buf, body, len);
    ipcf_rb_consume(&r->rb, head + ipcf_rec_size(len), 1, len);
    UNLOCK_C(r);
    ipcf_event_wake(&r->ctl->space);
    return (int64_t)len;
}

int64_t ipcf_ring_recv1(struct ipcf_recv_args *a)
{
    return ipcf_ring_recv(a->handle, a->buf, a->cap, a->timeout_ns);
}

int64_t ipcf_ring_recv_many(ipcf_ring *r, char *buf, uint64_t cap, uint64_t *lens,
                            uint64_t max, int64_t timeout_ns)
{
    if (max == 0)
        return 0;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t head, used = 0, n = 0;
    uint8_t *body;
    uint32_t len;
    int rc = ipcf_ring_acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    if (len > cap) {                     /* the first record alone is larger than buf */
        UNLOCK_C(r);
        return IPCF_EBUFSMALL;
    }
    do {
        ipcf_host_copy_more(buf + used, body, len, used);
        used += len;
        lens[n++] = len;
        head += ipcf_rec_size(len);
    } while (n < max && ipcf_rb_next(&r->rb, head, &body, &len) > 0 && used + len <= cap);
    ipcf_rb_consume(&r->rb, head, n, used);    /* one release frees the whole batch */
    UNLOCK_C(r);
    ipcf_event_wake(&r->ctl->space);
    return (int64_t)n;
}

/* The event a file-descriptor poller of this ring watches (poll.c). */
struct ipcf_event *ipcf_ring_event(ipcf_ring *r, int what)
{
    return what == IPCF_POLL_SPACE ? &r->ctl->space : &r->ctl->data;
}
