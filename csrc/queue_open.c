/* queue_open.c - a queue's lifetime: create (the control segment and its first ring),
 * attach, close (the last process out removes the chain of rings) and free, the fork and
 * transit hooks, and the parameters fixed at creation. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "futex.h"
#include "lock.h"
#include "peers.h"
#include "queue.h"

static int queue_init(struct ipcf_queue *q, const char *name)
{
    q->ctl = q->seg.ctl;
    q->maxsize = q->seg.hdr->param[0];
    q->ring_cap = q->seg.hdr->param[1];
    q->max_bytes = q->seg.hdr->param[2];
    q->item_overhead = q->seg.hdr->param[3];
    q->bounded = q->maxsize || q->max_bytes;
    strcpy(q->name, name);
    /* untrusted like everything shared: a ring size that create could never have written
     * would make growth loop (doubling 0) or map absurd sizes */
    uint64_t c = q->ring_cap;
    if (c < IPCF_MIN_CAPACITY || c > IPCF_MAX_CAPACITY || (c & (c - 1)))
        return IPCF_ECORRUPT;
    return 0;
}

int ipcf_queue_create(const char *name, uint64_t ring_capacity, uint64_t maxsize,
                      uint64_t max_bytes, uint64_t item_overhead, ipcf_queue **out)
{
    int rc = ipcf_name_check(name);
    if (rc)
        return rc;
    if (strlen(name) > QNAME_MAX)
        return IPCF_EBADNAME;
    if (ring_capacity < IPCF_MIN_CAPACITY || ring_capacity > IPCF_MAX_CAPACITY ||
        (ring_capacity & (ring_capacity - 1)) || max_bytes >> 62 || item_overhead > 4096)
        return IPCF_EBADARG;
    struct ipcf_queue *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    uint64_t params[4] = {maxsize, ring_capacity, max_bytes, item_overhead};
    rc = ipcf_seg_create(&q->seg, name, IPCF_KIND_QUEUE, 0,
                         IPCF_F_MULTI_PRODUCER | IPCF_F_MULTI_CONSUMER | IPCF_F_AUTO_UNLINK,
                         params, 4);
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
    ipcf_qring_drop(&q->p);
    ipcf_seg_unmap(&q->seg);
    free(q);
}

void ipcf_queue_before_fork(ipcf_queue *q) { ipcf_seg_before_fork(&q->seg); }
void ipcf_queue_after_fork(ipcf_queue *q) { ipcf_seg_after_fork(&q->seg); }
int ipcf_queue_depart(ipcf_queue *q, int64_t ttl_ns) { return ipcf_seg_depart(&q->seg, ttl_ns); }
void ipcf_queue_arrive(ipcf_queue *q, uint64_t from) { ipcf_seg_arrive(&q->seg, from); }
uint64_t ipcf_queue_maxsize(const ipcf_queue *q) { return q->maxsize; }
uint64_t ipcf_queue_ring_capacity(const ipcf_queue *q) { return q->ring_cap; }
uint64_t ipcf_queue_max_bytes(const ipcf_queue *q) { return q->max_bytes; }

/* The "closed" mark of faster-fifo's Queue.close(): a flag in the header that any process
 * may set and read and that changes nothing else (puts and gets go on working). Atomic:
 * release / acquire, so what the marker put before marking is visible to whoever sees it. */
void ipcf_queue_mark_closed(ipcf_queue *q) { ipcf_store_release(&q->seg.hdr->closed, 1); }
int ipcf_queue_marked_closed(const ipcf_queue *q) { return (int)ipcf_load_acquire(&q->seg.hdr->closed); }
