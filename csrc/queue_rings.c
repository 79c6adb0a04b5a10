/* queue_rings.c - the ring segments of a queue: "<name>.<gen>", each a QPART segment that
 * carries its queue's identity, so that a file which merely has such a name is never used;
 * and the policy that decides when a producer makes a new one, and how large. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "futex.h"
#include "queue.h"

void ipcf_qpart_name(char *out, const char *base, uint64_t gen)
{
    snprintf(out, IPCF_NAME_MAX + 24, "%s.%llu", base, (unsigned long long)gen);
}

void ipcf_qring_drop(struct qring *x)
{
    if (x->mapped)
        ipcf_seg_unmap(&x->seg);      /* the queue's rings never join their peer tables */
    x->mapped = 0;
}

static void qring_bind(struct qring *x, uint64_t gen)
{
    x->gen = gen;
    x->mapped = 1;
    x->rb.ctl = x->seg.ctl;
    x->rb.data = x->seg.data;
    x->rb.cap = x->seg.capacity;
    x->rb.head_cache = ipcf_load_acquire(&x->rb.ctl->head);
    x->rb.tail_cache = ipcf_load_acquire(&x->rb.ctl->tail);
}

/* A queue's rings carry its identity (its creation time and creator) in their params, so a
 * file that merely has a ring's name -- made by another process, or left by an older queue
 * of the same name -- is never read, written or removed as one of ours. */

static void part_id(const struct ipcf_queue *q, uint64_t id[2])
{
    id[0] = q->seg.hdr->created_ns;
    id[1] = ((uint64_t)q->seg.hdr->creator_start << 32) | (uint32_t)q->seg.hdr->creator_pid;
}

static int part_ours(const struct ipcf_queue *q, const struct ipcf_seg *s)
{
    uint64_t id[2];
    part_id(q, id);
    return s->hdr->param[0] == id[0] && s->hdr->param[1] == id[1];
}

int ipcf_qring_map(struct ipcf_queue *q, struct qring *x, uint64_t gen)
{
    if (x->mapped && x->gen == gen)
        return 0;
    ipcf_qring_drop(x);
    char pn[IPCF_NAME_MAX + 24];
    ipcf_qpart_name(pn, q->name, gen);
    int rc = ipcf_seg_open(&x->seg, pn, IPCF_KIND_QPART);
    if (rc)
        return rc;
    if (!part_ours(q, &x->seg)) {
        ipcf_seg_unmap(&x->seg);
        return PART_FOREIGN;
    }
    qring_bind(x, gen);
    return 0;
}

/* Remove ring `gen` if it is ours (not a file that only has its name). */
void ipcf_qpart_unlink_if_ours(struct ipcf_queue *q, uint64_t gen)
{
    struct ipcf_seg s;
    char pn[IPCF_NAME_MAX + 24];
    ipcf_qpart_name(pn, q->name, gen);
    if (ipcf_seg_open(&s, pn, IPCF_KIND_QPART) != 0) {
        ipcf_seg_unlink_unpublished(pn);     /* a ring a killed producer never finished */
        return;
    }
    if (part_ours(q, &s))
        ipcf_seg_unlink_own(&s, pn);
    ipcf_seg_unmap(&s);
}

/* Make ring `gen`, or the first of gen+1.. whose name is free of foreign files (x->gen
 * says which). A ring of ours already there was left by a producer that died before
 * publishing it: nobody can reference it, so it is replaced. */
int ipcf_qring_new(struct ipcf_queue *q, struct qring *x, uint64_t gen, uint64_t cap)
{
    uint64_t id[2];
    part_id(q, id);
    ipcf_qring_drop(x);
    for (int skip = 0;; skip++, gen++) {
        char pn[IPCF_NAME_MAX + 24];
        ipcf_qpart_name(pn, q->name, gen);
        int rc = ipcf_seg_create(&x->seg, pn, IPCF_KIND_QPART, cap, 0, id, 2);
        if (rc == -EEXIST) {
            struct ipcf_seg old;
            int mine = ipcf_seg_open(&old, pn, IPCF_KIND_QPART) == 0 && part_ours(q, &old);
            if (mine) {
                ipcf_seg_unlink_own(&old, pn);
                ipcf_seg_unmap(&old);
                rc = ipcf_seg_create(&x->seg, pn, IPCF_KIND_QPART, cap, 0, id, 2);
            } else {
                if (old.base)
                    ipcf_seg_unmap(&old);
                else if (ipcf_seg_unlink_unpublished(pn) == 0)     /* a killed producer's */
                    rc = ipcf_seg_create(&x->seg, pn, IPCF_KIND_QPART, cap, 0, id, 2);
            }
            if (rc == -EEXIST && skip < PART_SKIPS)
                continue;                   /* a foreign file has this name: step over it */
        }
        if (rc)
            return rc;
        ipcf_seg_publish(&x->seg);
        qring_bind(x, gen);
        return 0;
    }
}


/* ---- growth policy (producer lock held) ---- */

/* The capacity a new ring gets for records of `need` bytes: the queue's base capacity, or
 * the power of two that holds three such records, so that a producer can write the next
 * item while consumers still read the previous ones and the ring is reused (its pages stay
 * mapped and warm) instead of replaced for every item. */
static uint64_t ring_size_for(const struct ipcf_queue *q, uint64_t need)
{
    uint64_t cap = q->ring_cap;
    while (cap < IPCF_MAX_CAPACITY && (cap < need || cap / 3 < need))
        cap <<= 1;
    return cap;
}

/* The ring is full. An unbounded queue never blocks a put for long, but a new ring costs
 * far more than a short wait for room: shm_open, fallocate (the kernel zeroes each page),
 * two mmaps, then first-touch faults in every producer and consumer - per byte about twice
 * the price of the copy itself. So while a consumer is draining this very ring (its head
 * keeps moving) the producer waits for room: spinning briefly, then yielding the CPU. A
 * consumer that is behind in an older ring, stalled or absent costs one wait of at most
 * GRACE_STALL_NS (+1 ns per byte of the record: the time one such item takes to consume
 * at 1 GB/s) per new ring, and no wait ever exceeds GRACE_MAX_NS. */
#define GRACE_STALL_NS 50000
#define GRACE_MAX_NS 100000000

static int room_soon(struct ipcf_queue *q, struct ipcf_rb *b, uint64_t tail, uint64_t need)
{
    /* acquire: pairs with the consumer's release of read_gen (plain progress hint) */
    if (ipcf_load_acquire(&q->ctl->read_gen) != q->w.gen)
        return 0;
    uint64_t start = ipcf_now_ns(), moved = start, stall = GRACE_STALL_NS + need;
    /* acquire: pairs with the consumer's release of head (ipcf_rb_consume) */
    uint64_t head = ipcf_load_acquire(&b->ctl->head);
    for (unsigned i = 1;; i++) {
        if (ipcf_rb_room(b, tail, need))
            return 1;
        if (is_closing(q))
            return 0;
        if (i < 256) {
            ipcf_cpu_relax();
            continue;
        }
        if (i == 256)
            ipcf_host_block();        /* yielding from here on (host.h) */
        sched_yield();
        uint64_t now = ipcf_now_ns();
        uint64_t h = ipcf_load_acquire(&b->ctl->head);
        if (h != head) {
            head = h;
            moved = now;
        }
        if (now - moved > stall || now - start > GRACE_MAX_NS)
            return 0;
    }
}

int ipcf_qring_writable(struct ipcf_queue *q, uint64_t need, int *grew)
{
    uint64_t gen = ipcf_load_relaxed(&q->ctl->write_gen);
    int rc = ipcf_qring_map(q, &q->w, gen);
    if (rc)     /* the ring we write to was made by one of us: anything else is corruption */
        return rc == PART_FOREIGN || rc == -ENOENT ? IPCF_ECORRUPT : rc;
    struct ipcf_rb *b = &q->w.rb;
    uint64_t tail = ipcf_rb_tail(b), want = ring_size_for(q, need);
    /* A ring grown for large items is given back once a whole ring's worth of bytes has
     * gone by in items the base ring suits, at a moment the ring is drained (head == tail:
     * the consumers then leave it for the new ring at once). */
    if (want < b->cap) {
        q->small_bytes += need;
        /* acquire: pairs with the consumer's release of head */
        if (q->small_bytes >= b->cap && ipcf_load_acquire(&b->ctl->head) == tail)
            goto grow;
    } else {
        q->small_bytes = 0;
    }
    if (want <= b->cap && (ipcf_rb_room(b, tail, need) || room_soon(q, b, tail, need)))
        return 0;
grow:
    q->small_bytes = 0;
    rc = ipcf_qring_new(q, &q->w, gen + 1, want);
    if (rc == -ENOSPC || rc == -ENOMEM) {          /* no room for three: try for one */
        uint64_t one = q->ring_cap;
        while (one < need && one < IPCF_MAX_CAPACITY)
            one <<= 1;
        if (one < want)
            rc = ipcf_qring_new(q, &q->w, gen + 1, one);
    }
    if (rc)
        return rc;
    *grew = 1;
    return 0;
}
