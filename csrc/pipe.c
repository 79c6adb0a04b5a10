/* pipe.c - see pipe.h. */
#include "peers.h"
#include "pipe.h"

void ipcf_pipe_init(struct ipcf_pipe *p, struct ipcf_pipe_ctl *ctl)
{
    p->ctl = ctl;
    p->holds_writer = p->holds_reader = 0;
    p->writer_slot = p->reader_slot = -1;
    p->fork_from = 0;
}

static void hold(struct ipcf_pipe *p, int writer, int reader)
{
    if (writer && !p->holds_writer) {
        p->holds_writer = 1;
        p->writer_slot = ipcf_table_add(p->ctl->writers, IPCF_PIPE_ENDS);
    }
    if (reader && !p->holds_reader) {
        p->holds_reader = 1;
        p->reader_slot = ipcf_table_add(p->ctl->readers, IPCF_PIPE_ENDS);
    }
}

static int depart_as(struct ipcf_pipe *p, int writer, int reader, int64_t ttl_ns,
                     int (*add)(uint64_t *, int, int64_t))
{
    int rc = 0;
    if (writer)
        rc = add(p->ctl->pend_writers, IPCF_PIPE_ENDS, ttl_ns);
    if (reader && !rc)
        rc = add(p->ctl->pend_readers, IPCF_PIPE_ENDS, ttl_ns);
    return rc;
}

static int depart(struct ipcf_pipe *p, int writer, int reader, int64_t ttl_ns)
{
    return depart_as(p, writer, reader, ttl_ns, ipcf_transit_add);
}

/* The ring segment's peer table: the pipe block lives in the same header page. */
static const uint64_t *ring_peers(const struct ipcf_pipe *p)
{
    const struct ipcf_seg_hdr *h =
        (const struct ipcf_seg_hdr *)((const uint8_t *)p->ctl - IPCF_PIPE_OFFSET);
    return h->peers;
}

static void arrive(struct ipcf_pipe *p, int writer, int reader, uint64_t from)
{
    hold(p, writer, reader);                 /* hold first: the end is never missing */
    if (writer)
        ipcf_transit_del(p->ctl->pend_writers, IPCF_PIPE_ENDS, from);
    if (reader)
        ipcf_transit_del(p->ctl->pend_readers, IPCF_PIPE_ENDS, from);
}

void ipcf_pipe_drop(struct ipcf_pipe *p)
{
    if (p->holds_writer)
        ipcf_table_del(p->ctl->writers, p->writer_slot);
    if (p->holds_reader)
        ipcf_table_del(p->ctl->readers, p->reader_slot);
}

/* A forked child holds what its parent held: the parent marks the ends in transit before
 * fork(), so that it may close its copies at once without the peer seeing EOF. */
void ipcf_pipe_before_fork(struct ipcf_pipe *p)
{
    p->fork_from = 0;
    if ((p->holds_writer || p->holds_reader) &&
        depart_as(p, p->holds_writer, p->holds_reader, IPCF_TRANSIT_NS, ipcf_transit_add_fork) == 0)
        p->fork_from = ipcf_self_word();
}

void ipcf_pipe_after_fork(struct ipcf_pipe *p)
{
    int w = p->holds_writer, r = p->holds_reader;
    p->holds_writer = p->holds_reader = 0;   /* the parent's entries are not ours */
    p->writer_slot = p->reader_slot = -1;
    if (w || r)
        arrive(p, w, r, p->fork_from);
}

/* Is that end gone for good? Cheap form: no entry at all. Thorough form: no live holder
 * and no live transit (ipcf_transit_live: our own count only while we have a live
 * descendant to take them). Once it is gone, our own discounted transits are dropped: the
 * peer has been told EOF (or broken pipe) because of them, so they no longer keep the pipe
 * at close (ipcf_pipe_in_use). */
static int end_gone(const struct ipcf_pipe *p, uint64_t *holders, uint64_t *pending, int thorough)
{
    if (!thorough)
        return !ipcf_table_any(holders, IPCF_PIPE_ENDS) && !ipcf_transit_any(pending, IPCF_PIPE_ENDS);
    if (ipcf_table_live(holders, IPCF_PIPE_ENDS, NULL) ||
        ipcf_transit_live_unattached(pending, IPCF_PIPE_ENDS, ring_peers(p), IPCF_MAX_PEERS))
        return 0;
    ipcf_transit_forget(pending, IPCF_PIPE_ENDS);
    return 1;
}

int ipcf_pipe_writers_gone(struct ipcf_pipe *p, int thorough)
{
    return end_gone(p, p->ctl->writers, p->ctl->pend_writers, thorough);
}

int ipcf_pipe_readers_gone(struct ipcf_pipe *p, int thorough)
{
    return end_gone(p, p->ctl->readers, p->ctl->pend_readers, thorough);
}

/* At the ring's last close: an end held, or in transit and not given up (our own pickled
 * ones included, child or not: this very process may unpickle an end it pickled), keeps
 * it. A fork transit -- ours or another process's -- only while its sender has a live
 * descendant that has not attached: a fork child killed before it attached never takes
 * its end, and must not keep the ring after everyone else closed. */
int ipcf_pipe_in_use(struct ipcf_pipe *p)
{
    struct ipcf_pipe_ctl *c = p->ctl;
    return ipcf_table_live(c->writers, IPCF_PIPE_ENDS, NULL) ||
           ipcf_table_live(c->readers, IPCF_PIPE_ENDS, NULL) ||
           ipcf_transit_held_unattached(c->pend_writers, IPCF_PIPE_ENDS, ring_peers(p), IPCF_MAX_PEERS) ||
           ipcf_transit_held_unattached(c->pend_readers, IPCF_PIPE_ENDS, ring_peers(p), IPCF_MAX_PEERS);
}

/* ---- the public API: on the ipcf_ring of one pipe direction ---- */

int ipcf_pipe_hold(ipcf_ring *r, int writer, int reader)
{
    struct ipcf_pipe *p = ipcf_ring_pipe(r);
    if (!p)
        return IPCF_EBADARG;
    hold(p, writer, reader);
    return 0;
}

int ipcf_pipe_depart(ipcf_ring *r, int writer, int reader, int64_t ttl_ns)
{
    struct ipcf_pipe *p = ipcf_ring_pipe(r);
    return p ? depart(p, writer, reader, ttl_ns) : IPCF_EBADARG;
}

int ipcf_pipe_arrive(ipcf_ring *r, int writer, int reader, uint64_t from)
{
    struct ipcf_pipe *p = ipcf_ring_pipe(r);
    if (!p)
        return IPCF_EBADARG;
    arrive(p, writer, reader, from);
    return 0;
}
