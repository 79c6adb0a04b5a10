/* inspect.c - ipcf_seg_inspect: describe a segment without joining it. */
#include <stdint.h>
#include <string.h>

#include "atomics.h"
#include "futex.h"
#include "inspect.h"
#include "peers.h"
#include "shm.h"

_Static_assert(sizeof(((struct ipcf_seg_info *)0)->counters) == IPCF_COUNTERS * sizeof(uint64_t),
               "ipcf_seg_info.counters holds IPCF_COUNTERS");

static const struct {
    uint32_t kind;
    ipcf_counters_fn counters;
} kinds[] = {
    {IPCF_KIND_RING, ipcf_ring_counters},
    {IPCF_KIND_QPART, ipcf_ring_counters},
    {IPCF_KIND_QUEUE, ipcf_queue_counters},
    {IPCF_KIND_MAILBOX, ipcf_mbox_counters},
};

/* Sleepers killed asleep leave their event's slot taken until a wake that wakes nobody
 * reclaims it: look (and reclaim) first, so what we report is who really sleeps. */
static void reap_events(uint32_t kind, void *ctl)
{
    if (kind == IPCF_KIND_RING || kind == IPCF_KIND_QPART) {
        struct ipcf_ring_ctl *c = ctl;
        ipcf_event_reap(&c->data);
        ipcf_event_reap(&c->space);
    } else if (kind == IPCF_KIND_QUEUE) {
        struct ipcf_queue_ctl *c = ctl;
        ipcf_event_reap(&c->data);
        ipcf_event_reap(&c->space);
        ipcf_event_reap(&c->join);
    } else if (kind == IPCF_KIND_MAILBOX) {
        struct ipcf_mbox_ctl *c = ctl;
        ipcf_event_reap(&c->data);
        ipcf_event_reap(&c->space);
        ipcf_event_reap(&c->receipt);
    }
}

int ipcf_seg_inspect(const char *name, struct ipcf_seg_info *out)
{
    struct ipcf_seg s;
    memset(out, 0, sizeof *out);
    int rc = ipcf_seg_open(&s, name, 0);   /* look, do not join */
    if (rc)
        return rc;
    struct ipcf_seg_hdr *h = s.hdr;       /* fixed since the magic, but flags (atomic) */
    out->kind = h->kind;
    out->flags = ipcf_load_relaxed(&h->flags);
    out->version = h->version;
    out->creator_pid = h->creator_pid;
    out->capacity = h->capacity;
    out->created_ns = h->created_ns;
    out->param0 = h->param[0];
    out->param1 = h->param[1];
    out->live_peers = (uint32_t)ipcf_table_live(h->peers, IPCF_MAX_PEERS, &out->dead_peers) +
                      (uint32_t)ipcf_transit_live_unattached(h->transit, IPCF_TRANSIT_WORDS, h->peers,
                                                           IPCF_MAX_PEERS);   /* in transit: alive */
    if ((h->kind == IPCF_KIND_RING) && (out->flags & IPCF_F_PIPE)) {
        /* a pipe end in transit (pickled for a child, not yet unpickled) keeps the ring too */
        struct ipcf_pipe_ctl *pc = (struct ipcf_pipe_ctl *)((uint8_t *)s.base + IPCF_PIPE_OFFSET);
        out->live_peers += (uint32_t)ipcf_transit_live_unattached(pc->pend_writers, IPCF_PIPE_ENDS,
                                                                  h->peers, IPCF_MAX_PEERS) +
                           (uint32_t)ipcf_transit_live_unattached(pc->pend_readers, IPCF_PIPE_ENDS,
                                                                  h->peers, IPCF_MAX_PEERS);
    }
    const char *why = ipcf_seg_check(&s);
    if (why) {
        strncpy(out->corrupt, why, sizeof out->corrupt - 1);
    } else {
        reap_events(h->kind, s.ctl);   /* (not in a segment we cannot trust to hold events) */
    }
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == h->kind)
            kinds[i].counters(s.ctl, out->counters);
    ipcf_seg_unmap(&s);
    return 0;
}
