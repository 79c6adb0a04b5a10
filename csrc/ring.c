/* ring.c - ipcfast.Ring: one segment holding one byte ring, with blocking, batch and
 * zero-copy forms. Sides marked multi-producer / multi-consumer take their robust lock. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "futex.h"
#include "lock.h"
#include "ring.h"
#include "segment.h"

struct ipcf_ring {
    struct ipcf_seg seg;
    struct ipcf_rb rb;
    struct ipcf_ring_ctl *ctl;
    uint32_t flags;
    uint64_t max_msg;
    int claimed;                 /* a claim is open: producer side held */
    uint64_t claim_len;
    int writer_slot, reader_slot; /* IPCF_F_PIPE: our entries in ctl->writers / readers */
    int holds_writer, holds_reader;
    uint64_t fork_from;          /* our process word before a fork, for the child's arrive */
    int peeked;                  /* a view is open: consumer side held */
    int closing;                 /* closed by some thread: calls return IPCF_ECLOSED */
    uint64_t peek_next;
    uint64_t peek_len;
};

static int end_gone(uint64_t *table, uint64_t *pend, int thorough);

static int ring_init(struct ipcf_ring *r)
{
    r->ctl = r->seg.ctl;
    r->rb.ctl = r->ctl;
    r->rb.data = r->seg.data;
    r->rb.cap = r->seg.capacity;
    r->rb.head_cache = ipcf_load_acquire(&r->ctl->head);
    r->rb.tail_cache = ipcf_load_acquire(&r->ctl->tail);
    r->flags = r->seg.hdr->flags;
    r->max_msg = ipcf_rb_max_message(r->seg.capacity);
    r->writer_slot = r->reader_slot = -1;
    return 0;
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
        struct ipcf_ring_ctl *c = r->seg.ctl;
        rc = ipcf_lock_init(c->plock);
        if (!rc)
            rc = ipcf_lock_init(c->clock);
        if (rc) {
            ipcf_seg_close(&r->seg);
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
    int rc = ipcf_seg_open(&r->seg, name, IPCF_KIND_RING, 1);
    if (rc) {
        free(r);
        return rc;
    }
    ring_init(r);
    *out = r;
    return 0;
}

int ipcf_ring_close(ipcf_ring *r)
{
    if (__atomic_exchange_n(&r->closing, 1, __ATOMIC_SEQ_CST))
        return 0;
    /* an open claim or view stays with its thread, which ends it (commit/abort/release) */
    if (r->holds_writer || r->holds_reader) {
        ipcf_table_del(r->ctl->writers, r->writer_slot);
        ipcf_table_del(r->ctl->readers, r->reader_slot);
    }
    /* wake everyone: other processes re-check and sleep again; our own threads see closing */
    ipcf_event_wake(&r->ctl->data);
    ipcf_event_wake(&r->ctl->space);
    int last = ipcf_seg_leave(&r->seg);
    /* an end in transit (pickled for a child not yet attached) keeps the ring: the process
     * that receives it is then the last one out */
    if (last && (r->flags & IPCF_F_PIPE) &&
        (!end_gone(r->ctl->writers, r->ctl->pend_writers, 1) ||
         !end_gone(r->ctl->readers, r->ctl->pend_readers, 1)))
        last = 0;
    if (last)
        ipcf_seg_unlink_own(&r->seg, r->seg.name + 1);
    return last;
}

void ipcf_ring_free(ipcf_ring *r)
{
    ipcf_ring_close(r);
    if (r->claimed)
        ipcf_ring_abort(r);
    if (r->peeked)
        ipcf_ring_unpeek(r);          /* an open view is dropped unconsumed */
    ipcf_seg_unmap(&r->seg);
    free(r);
}

/* A forked child holds what its parent held: the parent marks the ends in transit before
 * fork(), so that it may close its copies at once without the peer seeing EOF. */
void ipcf_ring_before_fork(ipcf_ring *r)
{
    ipcf_seg_before_fork(&r->seg);
    r->fork_from = 0;
    if ((r->holds_writer || r->holds_reader) &&
        ipcf_ring_depart(r, r->holds_writer, r->holds_reader, IPCF_TRANSIT_NS) == 0)
        r->fork_from = ipcf_self_word();
}

void ipcf_ring_after_fork(ipcf_ring *r)
{
    ipcf_seg_after_fork(&r->seg);
    int w = r->holds_writer, rd = r->holds_reader;
    r->holds_writer = r->holds_reader = 0;
    r->writer_slot = r->reader_slot = -1;
    if (w || rd)
        ipcf_ring_arrive(r, w, rd, r->fork_from);
}

int ipcf_ring_travel(ipcf_ring *r, int64_t ttl_ns) { return ipcf_seg_depart(&r->seg, ttl_ns); }
void ipcf_ring_arrived(ipcf_ring *r, uint64_t from) { ipcf_seg_arrive(&r->seg, from); }

int ipcf_ring_hold(ipcf_ring *r, int writer, int reader)
{
    if (!(r->flags & IPCF_F_PIPE))
        return IPCF_EBADARG;
    if (writer && !r->holds_writer) {
        r->holds_writer = 1;
        r->writer_slot = ipcf_table_add(r->ctl->writers, IPCF_PIPE_ENDS);
    }
    if (reader && !r->holds_reader) {
        r->holds_reader = 1;
        r->reader_slot = ipcf_table_add(r->ctl->readers, IPCF_PIPE_ENDS);
    }
    return 0;
}

int ipcf_ring_depart(ipcf_ring *r, int writer, int reader, int64_t ttl_ns)
{
    if (!(r->flags & IPCF_F_PIPE))
        return IPCF_EBADARG;
    int rc = 0;
    if (writer)
        rc = ipcf_transit_add(r->ctl->pend_writers, IPCF_PIPE_ENDS, ttl_ns);
    if (reader && !rc)
        rc = ipcf_transit_add(r->ctl->pend_readers, IPCF_PIPE_ENDS, ttl_ns);
    return rc;
}

int ipcf_ring_arrive(ipcf_ring *r, int writer, int reader, uint64_t from)
{
    int rc = ipcf_ring_hold(r, writer, reader);      /* hold first: never a gap */
    if (writer)
        ipcf_transit_del(r->ctl->pend_writers, IPCF_PIPE_ENDS, from);
    if (reader)
        ipcf_transit_del(r->ctl->pend_readers, IPCF_PIPE_ENDS, from);
    return rc;
}

/* Is the other end of a pipe direction gone (no holder, none in transit)? `thorough` also
 * discounts processes that died without closing and transits that expired (reads /proc:
 * only after a wait timed out). */
static int end_gone(uint64_t *table, uint64_t *pend, int thorough)
{
    if (thorough && ipcf_table_live(table, IPCF_PIPE_ENDS, NULL))
        return 0;
    uint64_t now = thorough ? ipcf_now_ns() : 0;
    for (int i = 0; i < IPCF_PIPE_ENDS; i++) {
        if (!thorough && ipcf_load_acquire(&table[i]))
            return 0;
        if (i % 2 == 0) {
            uint64_t w = ipcf_load_acquire(&pend[i]);
            if (w && (!thorough || (ipcf_load_relaxed(&pend[i + 1]) > now && ipcf_word_alive(w))))
                return 0;
        }
    }
    return 1;
}
uint64_t ipcf_ring_capacity(const ipcf_ring *r) { return r->seg.capacity; }
uint64_t ipcf_ring_max_message(const ipcf_ring *r) { return r->max_msg; }
uint32_t ipcf_ring_flags(const ipcf_ring *r) { return r->flags; }

uint64_t ipcf_ring_count(const ipcf_ring *r)
{
    uint64_t out = ipcf_load_acquire(&r->ctl->msgs_out);
    uint64_t in = ipcf_load_acquire(&r->ctl->msgs_in);
    return in > out ? in - out : 0;
}

uint64_t ipcf_ring_used(const ipcf_ring *r)
{
    uint64_t head = ipcf_load_acquire(&r->ctl->head);
    uint64_t tail = ipcf_load_acquire(&r->ctl->tail);
    return tail - head <= r->seg.capacity ? tail - head : 0;
}

/* ---- side locks ---- */

static int lock_side(struct ipcf_ring *r, uint32_t flag, void *slot, struct ipcf_timeout *to)
{
    return (r->flags & flag) ? ipcf_lock(slot, to) : 0;
}

static void unlock_side(struct ipcf_ring *r, uint32_t flag, void *slot)
{
    if (r->flags & flag)
        ipcf_unlock(slot);
}

#define LOCK_P(r, d)  lock_side((r), IPCF_F_MULTI_PRODUCER, (r)->ctl->plock, (d))
#define UNLOCK_P(r)   unlock_side((r), IPCF_F_MULTI_PRODUCER, (r)->ctl->plock)
#define LOCK_C(r, d)  lock_side((r), IPCF_F_MULTI_CONSUMER, (r)->ctl->clock, (d))
#define UNLOCK_C(r)   unlock_side((r), IPCF_F_MULTI_CONSUMER, (r)->ctl->clock)

/* ---- waiting ---- */

struct room_arg { struct ipcf_ring *r; uint64_t need; };

static int room_ready(void *p)
{
    struct room_arg *a = p;
    struct ipcf_ring_ctl *c = a->r->ctl;
    if (__atomic_load_n(&a->r->closing, __ATOMIC_RELAXED))
        return IPCF_ECLOSED;
    return ipcf_rb_has_room(c, a->r->rb.cap, a->need) ||
           ((a->r->flags & IPCF_F_PIPE) && end_gone(c->readers, c->pend_readers, 0));
}

static int data_ready(void *p)
{
    struct ipcf_ring *r = p;
    if (__atomic_load_n(&r->closing, __ATOMIC_RELAXED))
        return IPCF_ECLOSED;
    return ipcf_rb_has_data(r->ctl) || ((r->flags & IPCF_F_PIPE) && end_gone(r->ctl->writers, r->ctl->pend_writers, 0));
}

/* Wait for room; IPCF_ECLOSED when this pipe direction has lost every reader. */
static int wait_room(struct ipcf_ring *r, uint64_t need, struct ipcf_timeout *to)
{
    struct room_arg a = {r, need};
    int rc = ipcf_wait(&r->ctl->space, room_ready, &a, ipcf_remaining(to), &r->ctl->full_waits);
    if (rc == IPCF_ECLOSED)
        return rc;
    int pipe = r->flags & IPCF_F_PIPE;
    if (pipe && !ipcf_rb_has_room(r->ctl, r->rb.cap, need) && end_gone(r->ctl->readers, r->ctl->pend_readers, rc == IPCF_ETIMEOUT))
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
    if ((r->flags & IPCF_F_PIPE) && end_gone(r->ctl->writers, r->ctl->pend_writers, rc == IPCF_ETIMEOUT) &&
        !ipcf_rb_has_data(r->ctl))
        return IPCF_ECLOSED;
    return rc == IPCF_ETIMEOUT ? IPCF_EEMPTY : (rc < 0 ? rc : 0);
}

int ipcf_ring_poll(ipcf_ring *r, int64_t timeout_ns)
{
    if (r->closing)
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

/* Take the producer side (its lock, when shared) with room for a record of `len` bytes,
 * waiting for room up to the timeout. On 0 the side is held and *tail is where to write. */
static int acquire_room(struct ipcf_ring *r, uint64_t len, struct ipcf_timeout *to, uint64_t *tail)
{
    if (r->closing)
        return IPCF_ECLOSED;
    if (len > r->max_msg)
        return IPCF_ETOOBIG;
    if (r->claimed && !(r->flags & IPCF_F_MULTI_PRODUCER))
        return IPCF_ESTATE;   /* a shared side's lock reports re-entry itself (EDEADLK) */
    uint64_t need = ipcf_rec_size(len);
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
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t tail;
    int rc = acquire_room(r, len, &to, &tail);
    if (rc)
        return rc;
    ipcf_rb_publish(&r->rb, ipcf_rb_write(&r->rb, tail, buf, len), 1, len);
    UNLOCK_P(r);
    ipcf_event_wake(&r->ctl->data);
    return 0;
}

int ipcf_ring_send_many(ipcf_ring *r, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns, uint64_t *sent)
{
    *sent = 0;
    if (r->closing)
        return IPCF_ECLOSED;
    if (r->claimed && !(r->flags & IPCF_F_MULTI_PRODUCER))
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

int ipcf_ring_claim(ipcf_ring *r, uint64_t len, int64_t timeout_ns, char **out)
{
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t tail;
    int rc = acquire_room(r, len, &to, &tail);
    if (rc)
        return rc;
    /* keep the producer side until commit/abort; nothing is visible until then */
    r->claimed = 1;
    r->claim_len = len;
    *out = (char *)r->rb.data + (tail & (r->rb.cap - 1)) + IPCF_REC_HDR;
    return 0;
}

int ipcf_ring_commit(ipcf_ring *r, uint64_t len)
{
    if (!r->claimed || len > r->claim_len)
        return r->claimed ? IPCF_EBADARG : IPCF_ESTATE;
    uint64_t tail = ipcf_rb_tail(&r->rb);
    uint8_t *p = r->rb.data + (tail & (r->rb.cap - 1));
    uint32_t h[2] = {(uint32_t)len, 0};
    memcpy(p, h, sizeof h);
    ipcf_rb_publish(&r->rb, tail + ipcf_rec_size(len), 1, len);
    r->claimed = 0;
    UNLOCK_P(r);
    ipcf_event_wake(&r->ctl->data);
    return 0;
}

int ipcf_ring_abort(ipcf_ring *r)
{
    if (!r->claimed)
        return IPCF_ESTATE;
    r->claimed = 0;         /* tail never moved: the claimed bytes were never visible */
    UNLOCK_P(r);
    return 0;
}

/* ---- consumer ---- */

/* Take the consumer side (its lock, when shared) with a record at its head, waiting for one
 * up to the timeout. On 0 the side is held and *head, *body, *len describe the record. */
static int acquire_record(struct ipcf_ring *r, struct ipcf_timeout *to, uint64_t *head,
                          uint8_t **body, uint32_t *len)
{
    if (r->closing)
        return IPCF_ECLOSED;
    if (r->peeked && !(r->flags & IPCF_F_MULTI_CONSUMER))
        return IPCF_ESTATE;   /* a shared side's lock reports re-entry itself (EDEADLK) */
    for (;;) {
        int rc = LOCK_C(r, to);
        if (rc < 0)
            return lock_fail(rc, IPCF_EEMPTY);
        *head = ipcf_rb_head(&r->rb);
        if (ipcf_rb_next(&r->rb, *head, body, len))
            return 0;
        UNLOCK_C(r);
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
    int rc = acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    if (len > cap) {
        UNLOCK_C(r);
        return IPCF_EBUFSMALL;
    }
    memcpy(buf, body, len);
    ipcf_rb_consume(&r->rb, head + ipcf_rec_size(len), 1, len);
    UNLOCK_C(r);
    ipcf_event_wake(&r->ctl->space);
    return (int64_t)len;
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
    int rc = acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    if (len > cap) {                     /* the first record alone is larger than buf */
        UNLOCK_C(r);
        return IPCF_EBUFSMALL;
    }
    do {
        memcpy(buf + used, body, len);
        used += len;
        lens[n++] = len;
        head += ipcf_rec_size(len);
    } while (n < max && ipcf_rb_next(&r->rb, head, &body, &len) && used + len <= cap);
    ipcf_rb_consume(&r->rb, head, n, used);    /* one release frees the whole batch */
    UNLOCK_C(r);
    ipcf_event_wake(&r->ctl->space);
    return (int64_t)n;
}

int ipcf_ring_peek(ipcf_ring *r, int64_t timeout_ns, char **ptr, uint64_t *len_out)
{
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t head;
    uint8_t *body;
    uint32_t len;
    int rc = acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    /* keep the consumer side until release; the producer cannot reuse these bytes because
     * head has not moved */
    r->peeked = 1;
    r->peek_next = head + ipcf_rec_size(len);
    r->peek_len = len;
    *ptr = (char *)body;
    *len_out = len;
    return 0;
}

int ipcf_ring_release(ipcf_ring *r)
{
    if (!r->peeked)
        return IPCF_ESTATE;
    ipcf_rb_consume(&r->rb, r->peek_next, 1, r->peek_len);
    r->peeked = 0;
    UNLOCK_C(r);
    ipcf_event_wake(&r->ctl->space);
    return 0;
}

int ipcf_ring_unpeek(ipcf_ring *r)
{
    if (!r->peeked)
        return IPCF_ESTATE;
    r->peeked = 0;          /* head never moved: the record stays for the next reader */
    UNLOCK_C(r);
    return 0;
}
