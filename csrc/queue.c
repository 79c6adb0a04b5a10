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
 * memory back as they catch up; `maxsize` (items) and `max_bytes` (bytes held, counted in
 * queue_bytes.c) are the only things that block a put.
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

/* ---- waiting predicates (no lock held) ---- */

struct space_arg { struct ipcf_queue *q; uint64_t n, bytes; };

static int space_ready(void *p)
{
    struct space_arg *a = p;
    if (is_closing(a->q))
        return IPCF_ECLOSED;
    return ipcf_qbytes_room(a->q, a->n, a->bytes);
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
    struct ipcf_queue_ctl *c = q->ctl;
    if (q->max_bytes)          /* the byte bound must not drift when we are killed below */
        ipcf_qjournal_begin(&c->put_j, q->w.gen, tail, &c->items_put, &c->bytes_put, n, bytes);
    ipcf_rb_publish(&q->w.rb, tail, n, bytes);
    if (grew)   /* release: ring gen+1 exists and ring gen gets nothing more; pairs with
                 * the consumer's acquire of write_gen in readable_ring */
        ipcf_store_release(&q->ctl->write_gen, q->w.gen);
    /* counted after publishing: a producer killed in between leaves qsize one short
     * (never a phantom item that could wedge a maxsize=1 queue) */
    /* release: pairs with the acquire of items_put in data_ready and qsize; we hold the
     * producer lock, so ours is the only write */
    ipcf_add_relaxed(&c->bytes_put, bytes);
    ipcf_store_release(&c->items_put, ipcf_load_relaxed(&c->items_put) + n);
    if (q->max_bytes)
        ipcf_qjournal_end(&c->put_j);
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
    uint64_t bytes = q->item_overhead * n;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t len = v ? v->len : lens[i];
        if (len > 0xfffffff0u)
            return IPCF_ETOOBIG;
        bytes += len;
    }
    if (q->max_bytes && bytes > q->max_bytes)     /* could never fit: no wait helps */
        return IPCF_ETOOBIG;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    for (;;) {
        int rc;
        if (q->bounded) {
            struct space_arg a = {q, n, bytes};
            rc = ipcf_wait(&q->ctl->space, space_ready, &a, ipcf_remaining(&to), &q->ctl->full_waits);
            if (rc < 0)
                return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        }
        if ((rc = ipcf_lock(q->ctl->plock, &to)) < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        if (rc == 1)               /* its last holder died: finish or undo its counting */
            ipcf_qjournal_repair_put(q);
        if (q->bounded && !ipcf_qbytes_room(q, n, bytes)) {   /* another producer got there first */
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
        if (rc == 1)               /* its last holder died: finish or undo its counting */
            ipcf_qjournal_repair_get(q);
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
    struct ipcf_queue_ctl *c = q->ctl;
    if (q->max_bytes)          /* max_bytes queues: exact counts across a kill (queue_bytes.c) */
        ipcf_qjournal_begin(&c->get_j, q->r.gen, head, &c->items_got, &c->bytes_got, n, bytes);
    /* release: pairs with the acquire of bytes_got in ipcf_qbytes_room (one writer) */
    ipcf_store_release(&c->bytes_got, ipcf_load_relaxed(&c->bytes_got) + bytes);
    /* release: pairs with the acquire of items_got in qsize (consumer lock held: one writer) */
    ipcf_store_release(&c->items_got, ipcf_load_relaxed(&c->items_got) + n);
    ipcf_rb_consume(&q->r.rb, head, n, bytes);
    if (q->max_bytes)
        ipcf_qjournal_end(&c->get_j);
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
                if (need)
                    *need = len;
                return IPCF_EBUFSMALL;
            }
            break;
        }
        ipcf_host_copy_more(buf + used, body, len, used);
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
    if (n > 0 && q->bounded)       /* producers may sleep for items or bytes */
        ipcf_event_wake(&q->ctl->space);
    return n;
}

int64_t ipcf_queue_get(ipcf_queue *q, char *buf, uint64_t cap, int64_t timeout_ns, uint64_t *need)
{
    uint64_t len;
    int64_t n = ipcf_queue_get_many(q, buf, cap, &len, 1, timeout_ns, need);
    return n == 1 ? (int64_t)len : n;
}

int64_t ipcf_queue_get1(struct ipcf_recv_args *a)
{
    return ipcf_queue_get(a->handle, a->buf, a->cap, a->timeout_ns, NULL);
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
    if (consume && q->bounded)
        ipcf_event_wake(&q->ctl->space);
}
