/* queue.h - private to the queue's files: the handle, and the chain of ring segments
 * "<name>.<gen>" (queue_rings.c) that queue.c reads and writes. */
#ifndef IPCF_QUEUE_H
#define IPCF_QUEUE_H

#include "ipcfast.h"
#include "ring.h"
#include "shm.h"

#define QNAME_MAX (IPCF_NAME_MAX - 21)   /* room for ".<gen>" */

struct qring {
    struct ipcf_seg seg;
    struct ipcf_rb rb;
    uint64_t gen;
    int mapped;
};

struct ipcf_queue {
    struct ipcf_seg seg;
    struct ipcf_queue_ctl *ctl;
    struct qring w;            /* the producer side's current ring */
    struct qring r;            /* the consumer side's current ring */
    struct qring p;            /* the data poller's view (poll.c: under the poller's lock) */
    uint64_t maxsize;
    uint64_t ring_cap;
    uint64_t max_bytes;        /* bytes held at most (0 = no byte bound: queue_bytes.c) */
    uint64_t item_overhead;    /* bytes each item counts for on top of its own */
    int bounded;               /* maxsize or max_bytes: producers may sleep on `space` */
    uint64_t small_bytes;      /* producer side: bytes put since the last item that needed a
                                * grown ring (ipcf_qring_writable gives a grown ring back) */
    uint64_t peek_next;        /* consumer side: what ipcf_queue_peek handed out - the head */
    uint64_t peek_n;           /* after it, its records and their bytes */
    uint64_t peek_len;
    int closing;               /* closed by some thread: calls return IPCF_ECLOSED (atomic) */
    char name[IPCF_NAME_MAX + 1];
};

/* Set by close on any thread, read by calls on others: relaxed, it only needs atomicity
 * (close also wakes every sleeper, and the wait predicates re-read it). */
static inline int is_closing(struct ipcf_queue *q)
{
    return ipcf_load_relaxed(&q->closing);
}

#define PART_FOREIGN (-2000)   /* internal: "<name>.<gen>" is not a ring of this queue */
#define PART_SKIPS 16          /* squatted names a producer steps over before giving up */
#define PART_GAP 64            /* missing rings a consumer steps over before calling it corrupt */

void ipcf_qpart_name(char *out, const char *base, uint64_t gen);       /* "<base>.<gen>" */
void ipcf_qring_drop(struct qring *x);                                 /* unmap, if mapped */
/* Map ring `gen` of q into x: 0, PART_FOREIGN (the file is not a ring of q) or < 0. */
int ipcf_qring_map(struct ipcf_queue *q, struct qring *x, uint64_t gen);
/* Create ring `gen` (or the first free name after it, up to PART_SKIPS on) into x. */
int ipcf_qring_new(struct ipcf_queue *q, struct qring *x, uint64_t gen, uint64_t cap);
void ipcf_qpart_unlink_if_ours(struct ipcf_queue *q, uint64_t gen);
/* Producer lock held: make q->w a ring with room for a record of `need` bytes now - the
 * current one, or a new one of the size such records want (*grew = 1: the caller writes
 * there, then publishes write_gen). */
int ipcf_qring_writable(struct ipcf_queue *q, uint64_t need, int *grew);

/* ---- the byte bound and the side journals (queue_bytes.c) ---- */
/* Room for n more items of `bytes` bytes (item_overhead included) under maxsize and
 * max_bytes, by the counts (exact under the producer lock). */
int ipcf_qbytes_room(struct ipcf_queue *q, uint64_t n, uint64_t bytes);
/* max_bytes queues, lock held: record the step about to move the ring to `pos` with n
 * items of `len` bytes, before any of its stores; end it after the last one. */
void ipcf_qjournal_begin(struct ipcf_qjournal *j, uint64_t gen, uint64_t pos,
                         const uint64_t *items, const uint64_t *bytes, uint64_t n, uint64_t len);
void ipcf_qjournal_end(struct ipcf_qjournal *j);
/* After taking the producer / consumer lock from a holder that died (ipcf_lock gave 1). */
void ipcf_qjournal_repair_put(struct ipcf_queue *q);
void ipcf_qjournal_repair_get(struct ipcf_queue *q);

#endif
