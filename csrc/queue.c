/* queue.c - the many-producer many-consumer queue behind ipcfast.Queue.
 *
 * A QUEUE segment holds the control block (side locks, counters, futex events) and names a
 * chain of QPART ring segments "<name>.<gen>". Producers (holding the producer lock) append
 * to ring `write_gen`; consumers (holding the consumer lock) read ring `read_gen`. When a
 * record does not fit (after a short wait for a consumer that is draining the ring), the
 * producer creates ring write_gen+1 - the base capacity, or a power of two that holds three
 * records of a large item's size (queue_rings.c has the policy) - writes there and
 * store-releases write_gen. A consumer
 * that finds ring R empty and sees (acquire) write_gen > R knows R will never get another
 * record - every record of R was published before write_gen moved - so it unlinks R and
 * moves read_gen on. So the queue grows without bound while consumers lag and gives the
 * memory back as they catch up; `maxsize` (items) is the only thing that blocks a put.
 *
 * Crash safety: every step is a single release store under a robust lock, so a peer
 * killed anywhere leaves a consistent queue. A producer killed while creating ring gen+1
 * leaves a file nobody references; the next producer replaces it. A consumer killed between
 * unlinking ring R and moving read_gen leaves a read_gen whose file is gone; the next
 * consumer sees ENOENT with write_gen > R and moves on.
 *
 * Large items move with one copy each way: put takes the pickle stream as pieces
 * (ipcf_queue_putv) and get can unpickle in place (ipcf_queue_peek/release).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "futex.h"
#include "inspect.h"
#include "lock.h"
#include "peers.h"
#include "queue.h"

void ipcf_queue_counters(const void *ctl, uint64_t out[IPCF_COUNTERS])
{
    const struct ipcf_queue_ctl *c = ctl;
    out[0] = ipcf_load_relaxed(&c->items_put);
    out[1] = ipcf_load_relaxed(&c->items_got);
    out[2] = ipcf_load_relaxed(&c->bytes_put);
    out[3] = ipcf_load_relaxed(&c->bytes_got);
    out[4] = ipcf_load_relaxed(&c->full_waits);
    out[5] = ipcf_load_relaxed(&c->empty_waits);
    out[6] = ipcf_load_relaxed(&c->write_gen);
    out[7] = ipcf_load_relaxed(&c->read_gen);
}

static int queue_init(struct ipcf_queue *q, const char *name)
{
    q->ctl = q->seg.ctl;
    q->maxsize = q->seg.hdr->param[0];
    q->ring_cap = q->seg.hdr->param[1];
    strcpy(q->name, name);
    /* untrusted like everything shared: a ring size that create could never have written
     * would make growth loop (doubling 0) or map absurd sizes */
    uint64_t c = q->ring_cap;
    if (c < IPCF_MIN_CAPACITY || c > IPCF_MAX_CAPACITY || (c & (c - 1)))
        return IPCF_ECORRUPT;
    return 0;
}

int ipcf_queue_create(const char *name, uint64_t ring_capacity, uint64_t maxsize, ipcf_queue **out)
{
    int rc = ipcf_name_check(name);
    if (rc)
        return rc;
    if (strlen(name) > QNAME_MAX)
        return IPCF_EBADNAME;
    if (ring_capacity < IPCF_MIN_CAPACITY || ring_capacity > IPCF_MAX_CAPACITY ||
        (ring_capacity & (ring_capacity - 1)))
        return IPCF_EBADARG;
    struct ipcf_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    uint64_t params[2] = {maxsize, ring_capacity};
    rc = ipcf_seg_create(&q->seg, name, IPCF_KIND_QUEUE, 0,
                         IPCF_F_MULTI_PRODUCER | IPCF_F_MULTI_CONSUMER | IPCF_F_AUTO_UNLINK,
                         params, 2);
    if (rc) {
        free(q);
        return rc;
    }
    queue_init(q, name);
    rc = ipcf_lock_init(q->ctl->plock);
    if (!rc)
        rc = ipcf_lock_init(q->ctl->clock);
    if (!rc)
        rc = ipcf_qring_new(q, &q->w, 0, ring_capacity);
    if (!rc)                          /* ring 0's name may have been taken: start where it is */
        q->ctl->write_gen = q->ctl->read_gen = q->w.gen;
    if (rc) {
        ipcf_seg_unmap(&q->seg);
        ipcf_seg_unlink(name);
        free(q);
        return rc;
    }
    ipcf_seg_register(&q->seg);
    ipcf_seg_publish(&q->seg);
    *out = q;
    return 0;
}

int ipcf_queue_attach(const char *name, ipcf_queue **out)
{
    struct ipcf_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    int rc = strlen(name) > QNAME_MAX ? IPCF_EBADNAME : ipcf_seg_open(&q->seg, name, IPCF_KIND_QUEUE);
    if (rc) {
        free(q);
        return rc;
    }
    if ((rc = queue_init(q, name)) != 0) {
        ipcf_seg_unmap(&q->seg);
        free(q);
        return rc;
    }
    ipcf_seg_register(&q->seg);
    *out = q;
    return 0;
}

int ipcf_queue_close(ipcf_queue *q)
{
    if (ipcf_exchange(&q->closing, 1))
        return 0;
    ipcf_event_wake(&q->ctl->data);
    ipcf_event_wake(&q->ctl->space);
    ipcf_event_wake(&q->ctl->join);
    uint64_t first = ipcf_load_acquire(&q->ctl->read_gen);
    uint64_t last_gen = ipcf_load_acquire(&q->ctl->write_gen);
    int last = ipcf_seg_leave(&q->seg);
    /* the rings' names derive from ours: if our name now belongs to a newer queue, so do they */
    if (last && ipcf_seg_unlink_own(&q->seg, q->name) == 0) {
        /* +1: a half-made next ring; PART_SKIPS: rings made past squatted names. A corrupt
         * control block (first > last_gen, or a huge span) is bounded, not looped over. */
        uint64_t end = last_gen + 1 + PART_SKIPS;
        if (end < first || end - first > (1u << 16))
            end = first + PART_SKIPS;
        for (uint64_t g = first; g <= end; g++)
            ipcf_qpart_unlink_if_ours(q, g);
    }
    return last;
}

void ipcf_queue_free(ipcf_queue *q)
{
    ipcf_queue_close(q);
    ipcf_qring_drop(&q->w);
    ipcf_qring_drop(&q->r);
    ipcf_seg_unmap(&q->seg);
    free(q);
}

void ipcf_queue_before_fork(ipcf_queue *q) { ipcf_seg_before_fork(&q->seg); }
void ipcf_queue_after_fork(ipcf_queue *q) { ipcf_seg_after_fork(&q->seg); }
int ipcf_queue_depart(ipcf_queue *q, int64_t ttl_ns) { return ipcf_seg_depart(&q->seg, ttl_ns); }
void ipcf_queue_arrive(ipcf_queue *q, uint64_t from) { ipcf_seg_arrive(&q->seg, from); }
uint64_t ipcf_queue_maxsize(const ipcf_queue *q) { return q->maxsize; }
uint64_t ipcf_queue_ring_capacity(const ipcf_queue *q) { return q->ring_cap; }

int64_t ipcf_queue_qsize(const ipcf_queue *q)
{
    /* items_got first: every item counted there was counted in items_put before it */
    uint64_t got = ipcf_load_acquire(&q->ctl->items_got);
    uint64_t put = ipcf_load_acquire(&q->ctl->items_put);
    int64_t n = (int64_t)(put - got);
    return n < 0 ? 0 : n;
}

int64_t ipcf_queue_unfinished(const ipcf_queue *q)
{
    uint64_t done = ipcf_load_acquire(&q->ctl->tasks_done);
    uint64_t put = ipcf_load_acquire(&q->ctl->items_put);
    int64_t n = (int64_t)(put - done);
    return n < 0 ? 0 : n;
}

/* ---- waiting predicates (no lock held) ---- */

static int space_ready_n(struct ipcf_queue *q, uint64_t n)
{
    return ipcf_queue_qsize(q) + (int64_t)n <= (int64_t)q->maxsize;
}

struct space_arg { struct ipcf_queue *q; uint64_t n; };

static int space_ready(void *p)
{
    struct space_arg *a = p;
    if (is_closing(a->q))
        return IPCF_ECLOSED;
    return space_ready_n(a->q, a->n);
}

/* Counts, not ring positions: this runs without the consumer lock, while another thread of
 * this process may be remapping q->r. items_put moves after the records it counts are
 * published, so once it moves past what the locked path saw, there is something to read.
 * (Comparing with a snapshot, not with items_got, keeps a count left short by a killed
 * peer from turning the wait into a spin.) */
struct data_arg { struct ipcf_queue *q; uint64_t seen; };

static int data_ready(void *p)
{
    struct data_arg *a = p;
    if (is_closing(a->q))
        return IPCF_ECLOSED;
    return ipcf_load_acquire(&a->q->ctl->items_put) != a->seen;
}

/* ---- producer ---- */

/* After writing records [.., tail) into q->w: publish them, the new ring if one was made,
 * and the counts. Producer lock held. */
static void publish_locked(struct ipcf_queue *q, uint64_t tail, int grew, uint64_t n, uint64_t bytes)
{
    ipcf_rb_publish(&q->w.rb, tail, n, bytes);
    if (grew)   /* release: ring gen+1 exists and ring gen gets nothing more; pairs with
                 * the consumer's acquire of write_gen in readable_ring */
        ipcf_store_release(&q->ctl->write_gen, q->w.gen);
    /* counted after publishing: a producer killed in between leaves qsize one short
     * (never a phantom item that could wedge a maxsize=1 queue) */
    /* release: pairs with the acquire of items_put in data_ready and qsize; we hold the
     * producer lock, so ours is the only write */
    ipcf_store_release(&q->ctl->items_put, ipcf_load_relaxed(&q->ctl->items_put) + n);
    ipcf_add_relaxed(&q->ctl->bytes_put, bytes);
}

static int put_locked(struct ipcf_queue *q, const char *buf, const uint64_t *lens, uint64_t n)
{
    uint64_t i = 0;
    while (i < n) {
        int grew = 0;
        int rc = ipcf_qring_writable(q, ipcf_rec_size(lens[i]), &grew);
        if (rc)
            return rc;
        struct ipcf_rb *b = &q->w.rb;
        uint64_t tail = ipcf_rb_tail(b), start = i, bytes = 0;
        while (i < n && ipcf_rb_room(b, tail, ipcf_rec_size(lens[i]))) {
            tail = ipcf_rb_write(b, tail, buf, lens[i]);
            buf += lens[i];
            bytes += lens[i];
            i++;
        }
        publish_locked(q, tail, grew, i - start, bytes);
    }
    return 0;
}

/* One item made of `n` pieces (a pickle stream's chunks). */
struct pieces { const char *const *bufs; const uint64_t *lens; uint64_t n, len; };

static int putv_locked(struct ipcf_queue *q, const struct pieces *v)
{
    int grew = 0;
    int rc = ipcf_qring_writable(q, ipcf_rec_size(v->len), &grew);
    if (rc)
        return rc;
    struct ipcf_rb *b = &q->w.rb;
    uint64_t tail = ipcf_rb_writev(b, ipcf_rb_tail(b), v->bufs, v->lens, v->n, v->len);
    publish_locked(q, tail, grew, 1, v->len);
    return 0;
}

/* Put `n` items: contiguous in `buf` with lengths `lens`, or (v != NULL, n == 1) one item
 * in pieces. Waits for maxsize room, then writes all of them under the producer lock. */
static int put_items(ipcf_queue *q, const char *buf, const uint64_t *lens, uint64_t n,
                     const struct pieces *v, int64_t timeout_ns)
{
    if (is_closing(q))
        return IPCF_ECLOSED;
    if (n == 0)
        return 0;
    if (q->maxsize && n > q->maxsize)
        return IPCF_ETOOBIG;
    for (uint64_t i = 0; i < n; i++)
        if ((v ? v->len : lens[i]) > 0xfffffff0u)
            return IPCF_ETOOBIG;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    for (;;) {
        int rc;
        if (q->maxsize) {
            struct space_arg a = {q, n};
            rc = ipcf_wait(&q->ctl->space, space_ready, &a, ipcf_remaining(&to), &q->ctl->full_waits);
            if (rc < 0)
                return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        }
        if ((rc = ipcf_lock(q->ctl->plock, &to)) < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        if (q->maxsize && !space_ready_n(q, n)) {   /* another producer got there first */
            ipcf_unlock(q->ctl->plock);
            continue;
        }
        rc = v ? putv_locked(q, v) : put_locked(q, buf, lens, n);
        ipcf_unlock(q->ctl->plock);
        ipcf_event_wake(&q->ctl->data);
        return rc;
    }
}

int ipcf_queue_put_many(ipcf_queue *q, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns)
{
    return put_items(q, buf, lens, n, NULL, timeout_ns);
}

int ipcf_queue_put(ipcf_queue *q, const char *buf, uint64_t len, int64_t timeout_ns)
{
    return put_items(q, buf, &len, 1, NULL, timeout_ns);
}

int ipcf_queue_putv(ipcf_queue *q, const char *const *bufs, const uint64_t *lens, uint64_t n,
                    int64_t timeout_ns)
{
    struct pieces v = {bufs, lens, n, 0};
    for (uint64_t i = 0; i < n; i++) {
        if (lens[i] > 0xfffffff0u - v.len)
            return IPCF_ETOOBIG;
        v.len += lens[i];
    }
    return put_items(q, NULL, NULL, 1, &v, timeout_ns);
}

/* ---- consumer ---- */

/* Called with the consumer lock held: point q->r at a ring that has a record, moving past
 * drained rings. Returns 1 with a record ready, 0 when the queue is empty. */
static int readable_ring(struct ipcf_queue *q)
{
    for (int gap = 0;;) {
        uint64_t gen = ipcf_load_relaxed(&q->ctl->read_gen);
        int rc = ipcf_qring_map(q, &q->r, gen);
        if (rc == 0) {
            uint8_t *body;
            uint32_t len;
            int got = ipcf_rb_next(&q->r.rb, ipcf_rb_head(&q->r.rb), &body, &len);
            if (got != 0)
                return got;                /* 1, or IPCF_ECORRUPT */
        }
        /* acquire: pairs with the producer's release of write_gen; if it moved past us,
         * every record of ring `gen` is visible to the re-check below */
        uint64_t wgen = ipcf_load_acquire(&q->ctl->write_gen);
        if (wgen == gen)
            return rc == 0 || rc == -ENOENT || rc == PART_FOREIGN ? 0 : rc;
        if (gen > wgen)
            return IPCF_ECORRUPT;          /* the reader is ahead of every writer */
        if (rc == 0) {
            uint8_t *body;
            uint32_t len;
            int got = ipcf_rb_next(&q->r.rb, ipcf_rb_head(&q->r.rb), &body, &len);
            if (got != 0)
                return got;
            char pn[IPCF_NAME_MAX + 24];
            ipcf_qpart_name(pn, q->name, gen);
            ipcf_seg_unlink_own(&q->r.seg, pn);   /* drained for good: give the memory back */
            gap = 0;
        } else if (++gap > PART_GAP) {
            /* rings are missing only where a producer stepped over a squatted name (at most
             * PART_SKIPS in a row): a longer gap is a write_gen nobody wrote */
            return IPCF_ECORRUPT;
        }
        /* (any ring before write_gen that we cannot open -- gone, foreign, unreadable -- is
         * stepped over: it holds nothing of ours) */
        ipcf_qring_drop(&q->r);
        ipcf_store_release(&q->ctl->read_gen, gen + 1);
    }
}

/* Take the consumer lock with a record ready in q->r (returns 1, lock held), waiting while
 * the queue is empty up to the deadline (IPCF_EEMPTY). */
static int lock_readable(struct ipcf_queue *q, struct ipcf_timeout *to)
{
    for (;;) {
        int rc = ipcf_lock(q->ctl->clock, to);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EEMPTY : rc;
        struct data_arg seen = {q, ipcf_load_acquire(&q->ctl->items_put)};
        rc = readable_ring(q);
        if (rc > 0)
            return 1;
        ipcf_unlock(q->ctl->clock);
        if (rc < 0)
            return rc;
        if (ipcf_remaining(to) == 0)
            return IPCF_EEMPTY;
        rc = ipcf_wait(&q->ctl->data, data_ready, &seen, ipcf_remaining(to), &q->ctl->empty_waits);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EEMPTY : rc;
    }
}

/* Move the consumed records' counts and the head (consumer lock held). Counted before the
 * head moves: a consumer killed in between leaves the item to be read again and qsize one
 * short (never a phantom item that keeps a queue "full"). */
static void consume_locked(struct ipcf_queue *q, uint64_t head, uint64_t n, uint64_t bytes)
{
    /* release: pairs with the acquire of items_got in qsize (consumer lock held: one writer) */
    ipcf_store_release(&q->ctl->items_got, ipcf_load_relaxed(&q->ctl->items_got) + n);
    ipcf_add_relaxed(&q->ctl->bytes_got, bytes);
    ipcf_rb_consume(&q->r.rb, head, n, bytes);
}

/* Copy up to `max` records (at least the first) into buf; the consumer lock is held and
 * readable_ring has found a record. */
static int64_t get_locked(struct ipcf_queue *q, char *buf, uint64_t cap, uint64_t *lens,
                          uint64_t max, uint64_t *need)
{
    struct ipcf_rb *b = &q->r.rb;
    uint64_t head = ipcf_rb_head(b), used = 0, n = 0;
    uint8_t *body;
    uint32_t len;
    while (n < max && ipcf_rb_next(b, head, &body, &len) > 0) {
        if (used + len > cap) {
            if (n == 0) {
                *need = len;
                return IPCF_EBUFSMALL;
            }
            break;
        }
        memcpy(buf + used, body, len);
        used += len;
        lens[n++] = len;
        head += ipcf_rec_size(len);
    }
    consume_locked(q, head, n, used);
    return (int64_t)n;
}

int64_t ipcf_queue_get_many(ipcf_queue *q, char *buf, uint64_t cap, uint64_t *lens,
                            uint64_t max, int64_t timeout_ns, uint64_t *need)
{
    if (is_closing(q))
        return IPCF_ECLOSED;
    if (max == 0)
        return IPCF_EBADARG;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    int64_t n = lock_readable(q, &to);
    if (n < 0)
        return n;
    n = get_locked(q, buf, cap, lens, max, need);
    ipcf_unlock(q->ctl->clock);
    if (n > 0 && q->maxsize)
        ipcf_event_wake(&q->ctl->space);
    return n;
}

int64_t ipcf_queue_get(ipcf_queue *q, char *buf, uint64_t cap, int64_t timeout_ns, uint64_t *need)
{
    uint64_t len;
    int64_t n = ipcf_queue_get_many(q, buf, cap, &len, 1, timeout_ns, need);
    return n == 1 ? (int64_t)len : n;
}

int64_t ipcf_queue_peek(ipcf_queue *q, uint64_t max, int64_t timeout_ns, const char **first,
                        uint64_t *lens)
{
    if (is_closing(q))
        return IPCF_ECLOSED;
    if (max == 0)
        return IPCF_EBADARG;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    int rc = lock_readable(q, &to);
    if (rc < 0)
        return rc;
    struct ipcf_rb *b = &q->r.rb;
    uint64_t head = ipcf_rb_head(b), n = 0, bytes = 0;
    uint8_t *body;
    uint32_t len;
    /* the records of the current ring only (readable_ring found the first): each checked
     * against what the producers published */
    while (n < max && ipcf_rb_next(b, head, &body, &len) > 0) {
        if (n == 0)
            *first = (const char *)body - IPCF_REC_HDR;
        lens[n++] = len;
        bytes += len;
        head += ipcf_rec_size(len);
    }
    q->peek_next = head;
    q->peek_n = n;
    q->peek_len = bytes;
    return (int64_t)n;
}

void ipcf_queue_release(ipcf_queue *q, int consume)
{
    if (consume)
        consume_locked(q, q->peek_next, q->peek_n, q->peek_len);
    ipcf_unlock(q->ctl->clock);
    if (consume && q->maxsize)
        ipcf_event_wake(&q->ctl->space);
}
