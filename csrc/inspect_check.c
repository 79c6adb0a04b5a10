/* inspect_check.c - is a segment's control block one its kind could have written?
 * (`ipcfast stat` / `ipcfast ls` report a segment that fails as corrupt.)
 *
 * A snapshot taken without any lock, by a process that has not joined the segment, while
 * its users may be running: only invariants that hold at every instant are checked, each
 * read so that a live change can never look like a violation (a ring's head is read around
 * its tail until it is stable; a queue's read_gen before its write_gen). The operations
 * themselves check everything they read (ring.c, queue.c, mailbox_*.c): this only names the
 * segment as corrupt before any of them trips over it.
 */
#define _GNU_SOURCE
#include <stdint.h>

#include "atomics.h"
#include "inspect.h"
#include "layout.h"
#include "lock.h"

static const char *ring_check(const struct ipcf_seg *s)
{
    const struct ipcf_ring_ctl *c = s->ctl;
    uint64_t cap = s->hdr->capacity;
    for (int tries = 0; tries < 100; tries++) {
        uint64_t head = ipcf_load_acquire(&c->head);
        uint64_t tail = ipcf_load_acquire(&c->tail);
        if (ipcf_load_acquire(&c->head) != head)
            continue;             /* a consumer moved meanwhile: look again */
        /* head was stable around our load of tail, and tail only grows: a live ring has
         * head <= tail <= head + cap here */
        if ((head | tail) & 7)
            return "ring position not on a record boundary (8 bytes)";
        if (tail - head > cap)
            return tail < head ? "ring head is past its tail" : "ring holds more than its capacity";
        return NULL;
    }
    return NULL;                  /* too busy to tell: not a finding */
}

static const char *queue_check(const struct ipcf_seg *s)
{
    const struct ipcf_queue_ctl *c = s->ctl;
    uint64_t rc = s->hdr->param[1];
    if (rc < IPCF_MIN_CAPACITY || rc > IPCF_MAX_CAPACITY || (rc & (rc - 1)))
        return "queue ring size is not one create writes";
    /* read_gen first: both only grow and read_gen <= write_gen at every instant */
    uint64_t rg = ipcf_load_acquire(&c->read_gen);
    uint64_t wg = ipcf_load_acquire(&c->write_gen);
    if (rg > wg)
        return "queue reads a ring generation not yet written";
    if (!ipcf_lock_sane((const pthread_mutex_t *)c->plock) ||
        !ipcf_lock_sane((const pthread_mutex_t *)c->clock))
        return "queue lock is not a mutex ipcfast made";
    return NULL;
}

static const char *seg_check(const struct ipcf_seg *s)
{
    switch (s->hdr->kind) {
    case IPCF_KIND_RING:
    case IPCF_KIND_QPART:
        return ring_check(s);
    case IPCF_KIND_QUEUE:
        return queue_check(s);
    case IPCF_KIND_MAILBOX:
        return ipcf_mbox_check_seg(s);
    default:
        return "unknown segment kind";
    }
}

const char *ipcf_seg_check(const struct ipcf_seg *s)
{
    return seg_check(s);
}
