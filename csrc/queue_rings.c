/* queue_rings.c - the ring segments of a queue: "<name>.<gen>", each a QPART segment that
 * carries its queue's identity, so that a file which merely has such a name is never used. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>

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

