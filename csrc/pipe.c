/* pipe.c - see pipe.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "atomics.h"
#include "futex.h"
#include "lock.h"
#include "peers.h"
#include "pipe.h"

#define IPCF_PIPE_RECHECK_MS 5       /* a holder found alive after its thread died: believed */
#define OWNER_DIED 0x40000000u       /* linux/futex.h FUTEX_OWNER_DIED, set by the kernel */

/* ---- reader-end locks: how a sender tells a dead reader without a syscall ---- */

static pthread_mutex_t *rlock(struct ipcf_pipe_ctl *c, int slot)
{
    return (pthread_mutex_t *)c->rlock[slot];
}

void ipcf_pipe_init_locks(struct ipcf_pipe_ctl *ctl)
{
    for (int i = 0; i < IPCF_PIPE_ENDS; i++)
        ipcf_lock_init(ctl->rlock[i]);      /* robust, process-shared (a failure: no sign) */
}

/* Has the thread that locked slot's mutex died (the kernel's mark)? glibc only: the word is
 * its futex (elsewhere: never, so only the table and the full-ring check tell). */
static int owner_died(struct ipcf_pipe_ctl *c, int slot)
{
#ifdef __GLIBC__
    /* relaxed: a snapshot of a word the kernel sets at the owner's death (before its parent
     * can reap it); a stale clear value only defers the sign to the next send */
    return (ipcf_load_relaxed((const unsigned int *)&rlock(c, slot)->__data.__lock) & OWNER_DIED) != 0;
#else
    (void)c; (void)slot;
    return 0;
#endif
}

/* Locks a dropped end's thread could not let go (closed from another thread): each keeps
 * its header page mapped, as the owner's robust list points into it. Process-local. */
struct stuck {
    pthread_mutex_t *m;
    void *page;
    struct stuck *next;
};
static struct stuck *stuck_list;                      /* under stuck_mutex */
static pthread_mutex_t stuck_mutex = PTHREAD_MUTEX_INITIALIZER;

static void stuck_forget(void)       /* a fork child: no lock of its parent is its own */
{
    stuck_list = NULL;               /* (the nodes and pages stay: a few bytes, once) */
    pthread_mutex_init(&stuck_mutex, NULL);
}

__attribute__((constructor)) static void register_stuck_fork_handler(void)
{
    pthread_atfork(NULL, NULL, stuck_forget);
}

/* Let go of the stuck locks this thread owns (or whose owner died), unmapping their page. */
static void reclaim_stuck(void)
{
    pthread_mutex_lock(&stuck_mutex);
    for (struct stuck **e = &stuck_list; *e;) {
        struct stuck *x = *e;
        int rc = pthread_mutex_unlock(x->m);          /* EPERM: another thread's */
        if (rc) {
            int got = pthread_mutex_trylock(x->m);    /* EBUSY: its owner lives */
            if (got == EOWNERDEAD)                    /* its owner exited: ours now */
                got = pthread_mutex_consistent(x->m);
            if (got == 0)
                rc = pthread_mutex_unlock(x->m);
        }
        if (rc) {
            e = &x->next;
            continue;
        }
        munmap(x->page, IPCF_HDR_SIZE);
        *e = x->next;
        free(x);
    }
    pthread_mutex_unlock(&stuck_mutex);
}

static void lock_reader(struct ipcf_pipe *p)
{
    p->reader_locked = p->reader_stuck = 0;
    if (p->reader_slot < 0 || !ipcf_lock_sane(rlock(p->ctl, p->reader_slot)))
        return;
    pthread_mutex_t *m = rlock(p->ctl, p->reader_slot);
    int rc = pthread_mutex_trylock(m);
    if (rc == EOWNERDEAD)          /* the slot's last holder died with it: nothing to repair */
        rc = pthread_mutex_consistent(m);
    /* EBUSY: a live thread elsewhere still holds it (it dropped this slot from another
     * thread): this end gives no death sign */
    p->reader_locked = rc == 0;
}

static void unlock_reader(struct ipcf_pipe *p)
{
    if (p->reader_locked && pthread_mutex_unlock(rlock(p->ctl, p->reader_slot)) != 0)
        p->reader_stuck = 1;       /* EPERM: dropped from another thread than the locker */
    p->reader_locked = 0;
}

int ipcf_pipe_keep_mapping(struct ipcf_pipe *p, void *base, size_t len)
{
    if (!p->ctl || !p->reader_stuck)
        return 0;
    struct stuck *x = malloc(sizeof *x);
    if (x) {
        x->m = rlock(p->ctl, p->reader_slot);
        x->page = base;
        pthread_mutex_lock(&stuck_mutex);
        x->next = stuck_list;
        stuck_list = x;
        pthread_mutex_unlock(&stuck_mutex);
    }
    if (len > IPCF_HDR_SIZE)
        munmap((uint8_t *)base + IPCF_HDR_SIZE, len - IPCF_HDR_SIZE);
    return 1;                      /* (no memory for the node: the page stays for good) */
}

/* Cold: some holders' locks say they died. Each is looked up in /proc (a holder found
 * alive is believed for IPCF_PIPE_RECHECK_MS); a dead one's entry is cleared. Lost when
 * none lives and the thorough check (transits through /proc too) agrees. */
static int readers_dead(struct ipcf_pipe *p, uint32_t suspects)
{
    struct ipcf_pipe_ctl *c = p->ctl;
    uint32_t now_ms = (uint32_t)(ipcf_now_ns() / 1000000u);
    now_ms += !now_ms;                                  /* 0 means never */
    for (int i = 0; i < IPCF_PIPE_ENDS; i++) {
        if (!(suspects & (1u << i)))
            continue;
        uint64_t w = ipcf_load_acquire(&c->readers[i]);   /* acquire: pairs with its CAS */
        if (!w)
            continue;                                   /* closed meanwhile */
        /* relaxed: a hint between senders; at worst one more /proc look, or a death seen
         * IPCF_PIPE_RECHECK_MS late */
        uint32_t seen = ipcf_load_relaxed(&c->rseen_ms[i]);
        if (seen && (uint32_t)(now_ms - seen) < IPCF_PIPE_RECHECK_MS)
            return 0;
        if (ipcf_word_alive(w)) {                      /* only its thread exited */
            ipcf_store_relaxed(&c->rseen_ms[i], now_ms);
            return 0;
        }
        ipcf_cas(&c->readers[i], &w, 0);   /* dead: its entry goes (later checks are cheap) */
    }
    return ipcf_pipe_readers_gone(p, 1);
}

int ipcf_pipe_readers_lost(struct ipcf_pipe *p)
{
    struct ipcf_pipe_ctl *c = p->ctl;
    uint32_t suspects = 0;
    for (int i = 0; i < IPCF_PIPE_ENDS; i++) {
        /* acquire: pairs with the CAS that entered the holder (seq_cst) */
        if (!ipcf_load_acquire(&c->readers[i]))
            continue;
        if (!owner_died(c, i))
            return 0;                  /* held by a live thread (or an end with no sign) */
        suspects |= 1u << i;
    }
    if (ipcf_transit_unexpired(c->pend_readers, IPCF_PIPE_ENDS))
        return 0;                      /* an end on its way to a process */
    return suspects ? readers_dead(p, suspects) : 1;
}

void ipcf_pipe_init(struct ipcf_pipe *p, struct ipcf_pipe_ctl *ctl)
{
    p->ctl = ctl;
    p->holds_writer = p->holds_reader = 0;
    p->writer_slot = p->reader_slot = -1;
    p->fork_from = 0;
    p->reader_locked = p->reader_stuck = 0;
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
        lock_reader(p);
    }
    reclaim_stuck();
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
    if (p->holds_reader) {
        unlock_reader(p);          /* first: a sender seeing the entry then sees no death */
        ipcf_table_del(p->ctl->readers, p->reader_slot);
    }
    reclaim_stuck();
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
    p->reader_locked = p->reader_stuck = 0;  /* nor its locks (glibc empties our robust list) */
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
