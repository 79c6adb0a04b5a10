/* mailbox.h - private to the mailbox files: the handle, slot access, and the pieces the
 * send, receive, list and repair files share.
 *
 * One MAILBOX segment: the control block (one robust mutex, three futex events, counters,
 * list heads; layout.h) and `nslots` slots, each a 128-byte header followed by room for a
 * body of max_message bytes, page aligned so a small message touches one page of a sparse
 * file.
 *
 * Unlike the rings, receivers pick messages out of order (priority, type, addressee), so
 * the state is a slot table with two linked lists (free; ready sorted by priority desc, seq
 * asc: mailbox_lists.c) under one mutex. Hold times are short: bodies up to SMALL bytes are
 * copied under the lock, larger ones outside it with the slot marked WRITING/READING by its
 * owner.
 *
 * Crash safety: every slot carries its state and the process word (pid + start time) of
 * whoever holds it, so the lists are derived data. When the lock comes back EOWNERDEAD, or
 * senders find no free slot, the state is rebuilt from the slots (mailbox_repair.c).
 *
 * Untrusted segment: any process with write access may have written anything anywhere in
 * it. The fixed parameters are read once, checked against the mapping and kept in the
 * handle; every link (index + 1) read from shared memory is checked to lie in
 * 1..high_water (high_water itself clamped to nslots) before a slot is touched, every
 * walk of a list is bounded by nslots steps, links are checked against their back links
 * and the slot states the list implies, and a body length against max_message. An
 * inconsistency in the derived state (lists, heads, tails, tail cache, counters) makes the
 * operation that found it rebuild that state from the slots, once per call, and retry
 * (ipcf_mbox_recover); a slot that is itself inconsistent (no such state, a length no
 * sender wrote) is dropped and the call reports IPCF_ECORRUPT.
 *
 * Files: mailbox.c (lifetime, accessors, waiting), mailbox_send.c (post, receipts,
 * withdraw), mailbox_recv.c (receive, the exclusive right), mailbox_batch.c (send_many,
 * take_many), mailbox_lists.c, mailbox_repair.c.
 */
#ifndef IPCF_MAILBOX_H
#define IPCF_MAILBOX_H

#include "atomics.h"
#include "futex.h"
#include "lock.h"
#include "peers.h"
#include "shm.h"

#define IPCF_MB_SMALL 4096     /* bodies up to this size are copied under the lock */
#define IPCF_MB_PAGE  4096

struct ipcf_mbox {
    struct ipcf_seg seg;
    struct ipcf_mbox_ctl *ctl;
    int closing;               /* closed by some thread: calls return IPCF_ECLOSED (atomic) */
    /* The fixed parameters, copied from the control block once (create, or attach after
     * checking them against the mapping's size) and only read from here afterwards: a
     * process that rewrites them later cannot move a slot access out of the mapping. */
    uint64_t capacity;
    uint32_t nslots, stride, max_message, policy;
    uint64_t id;               /* id as sender and receiver for ipcf_mbox_send/take; 0: the
                                  process id (relaxed atomic: set by ipcf_mbox_set_id) */
    int tail_hint;             /* process-local guess of the tail cache entry the last insert
                                  or remove used (mailbox_lists.c: always checked, never
                                  trusted; racing threads at worst guess wrong) */
};

/* The id ipcf_mbox_send/take act under: the one set, else the process id (cached in the
 * process word: no syscall; refreshed in a fork child). */
static inline uint64_t ipcf_mbox_self_id(struct ipcf_mbox *m)
{
    uint64_t id = ipcf_load_relaxed(&m->id);
    return id ? id : (uint32_t)(ipcf_self_word() & 0xffffffffu);
}

static inline struct ipcf_mbox_slot *ipcf_mbox_slot_at(struct ipcf_mbox *m, uint32_t i)
{
    return (struct ipcf_mbox_slot *)(m->seg.data + (uint64_t)i * m->stride);
}

/* Lock held: slots [0, hw) have ever been used. high_water is clamped to our own nslots,
 * so every index checked against it is inside the mapping whatever the segment says. */
static inline uint32_t ipcf_mbox_hw(const struct ipcf_mbox *m)
{
    uint32_t hw = m->ctl->high_water;
    return hw < m->nslots ? hw : m->nslots;
}

/* Lock held: whether a nonzero link (index + 1) read from shared memory names a used
 * slot. (Unsigned: 0 wraps to UINT32_MAX and fails too.) */
static inline int ipcf_mbox_link_ok(const struct ipcf_mbox *m, uint32_t link)
{
    return link - 1u < ipcf_mbox_hw(m);
}

/* Lock held: take len bytes off bytes_held. Less than len held means a slot's length or
 * the counter was rewritten (corruption): clamp at 0 rather than wrap, which would make a
 * bounded mailbox full forever; the next repair recounts it exactly. (One writer, the lock
 * holder: a relaxed load and store; lock-free readers only read it.) */
static inline void ipcf_mbox_held_sub(struct ipcf_mbox_ctl *c, uint64_t len)
{
    uint64_t held = ipcf_load_relaxed(&c->bytes_held);
    ipcf_store_relaxed(&c->bytes_held, held >= len ? held - len : 0);
}

/* Lock held: one copy outside the lock ended. Clamped at 0 like bytes_held (a repair
 * recounts it). */
static inline void ipcf_mbox_inflight_done(struct ipcf_mbox_ctl *c)
{
    uint32_t n = ipcf_load_relaxed(&c->inflight);
    ipcf_store_relaxed(&c->inflight, n ? n - 1 : 0);
}

static inline uint8_t *ipcf_mbox_body(struct ipcf_mbox_slot *s)
{
    return (uint8_t *)s + sizeof *s;
}

/* Lock held: what a sender learns from the receipt of slot s. */
static inline void ipcf_mbox_fill_receipt(struct ipcf_mbox_slot *s, struct ipcf_msg_info *out)
{
    out->receiver = s->receiver;
    out->receiver_pid = s->receiver_pid;
    out->received_at = s->received_at;
    out->seq = s->seq;
}

/* Under the lock: a counter that lock-free waiters watch moves on (one writer: the lock
 * holder). Release: a waiter that sees it move re-takes the lock and finds the change. */
static inline void ipcf_mbox_bump(uint64_t *counter)
{
    ipcf_store_release(counter, ipcf_load_relaxed(counter) + 1);
}

/* How long a call re-takes the lock after a copy outside it at least, even past its own
 * deadline: hold times are microseconds, so only a stopped (or wedged) holder keeps it this
 * long, and a copy handed back is re-delivered later, perhaps after newer messages. Also
 * keeps Python's 100 ms slices of a long wait from handing copies back under contention. */
#define IPCF_MB_RELOCK_NS 200000000

/* The timeout for re-taking the lock after a copy: the caller's deadline, but at least
 * IPCF_MB_RELOCK_NS from now; forever stays forever. */
static inline struct ipcf_timeout ipcf_mbox_relock_timeout(struct ipcf_timeout *t)
{
    uint64_t deadline = ipcf_deadline(t), now = ipcf_now_ns();
    struct ipcf_timeout r = ipcf_timeout_of(-1);
    if (deadline) {
        r.ns = 1;
        r.deadline = deadline > now + IPCF_MB_RELOCK_NS ? deadline : now + IPCF_MB_RELOCK_NS;
    }
    return r;
}

/* ---- locking and repair (mailbox_repair.c): a lock whose owner died is repaired first ---- */
int ipcf_mbox_lock(struct ipcf_mbox *m, struct ipcf_timeout *to);  /* 0, or < 0 as ipcf_lock */
void ipcf_mbox_unlock(struct ipcf_mbox *m);
/* Lock held: rebuild lists and counters from the slots. 0, or IPCF_ECORRUPT when some slot
 * was itself inconsistent (no such state, a length over max_message) and was dropped. */
int ipcf_mbox_repair(struct ipcf_mbox *m);
int ipcf_mbox_repair_if_due(struct ipcf_mbox *m);   /* lock held: 1 if it repaired */
/* Lock held: an operation found the derived state inconsistent. Repairs, at most *budget
 * times (one per call): 0 = retry the operation, IPCF_ECORRUPT = report it. */
int ipcf_mbox_recover(struct ipcf_mbox *m, int *budget);

/* ---- slots and lists (mailbox_lists.c), lock held. IPCF_ECORRUPT: a link, back link or
 * slot state that the lists contradict was found; nothing was changed. ---- */
int64_t ipcf_mbox_slot_alloc(struct ipcf_mbox *m);   /* a free slot, -1 none, IPCF_ECORRUPT */
void ipcf_mbox_slot_free(struct ipcf_mbox *m, uint32_t i);    /* onto the free list */
void ipcf_mbox_slot_release(struct ipcf_mbox *m, uint32_t i); /* free it, count it, trim it */
int ipcf_mbox_ready_insert(struct ipcf_mbox *m, uint32_t i);  /* by (priority desc, seq asc) */
int ipcf_mbox_ready_remove(struct ipcf_mbox *m, uint32_t i);  /* i READY (the caller checked) */
void ipcf_mbox_ready_rebuild(struct ipcf_mbox *m);  /* lists emptied: link every READY slot */
void ipcf_mbox_tails_reset(struct ipcf_mbox_ctl *c);          /* empty the tail cache */

/* ---- the steps of a send and a receive, shared with the batch calls (mailbox_batch.c) ----
 * Lock held. */
void ipcf_mbox_publish(struct ipcf_mbox *m, uint32_t i);        /* make slot i READY */
/* a free slot with room for len more bytes; -1 none, IPCF_ECORRUPT */
int64_t ipcf_mbox_take_slot(struct ipcf_mbox *m, uint64_t len, int *repaired, int *budget);
int ipcf_mbox_take_right(struct ipcf_mbox *m, uint64_t me_id);  /* 0 ours, IPCF_EBUSY */
/* the first READY slot for `me` (of `type` when has_type); -1 none, IPCF_ECORRUPT */
int64_t ipcf_mbox_find(struct ipcf_mbox *m, uint64_t me, int has_type, int32_t type);
/* slot i (len bytes, copied out): its header into *out, the slot to its sender or freed */
void ipcf_mbox_finish_take(struct ipcf_mbox *m, uint32_t i, uint64_t len, uint64_t me,
                           struct ipcf_msg_info *out);
/* slot i, READY and unlinked: copy it into buf and take it; releases the lock */
int64_t ipcf_mbox_take_one(struct ipcf_mbox *m, uint32_t i, uint64_t len, char *buf, uint64_t me,
                           struct ipcf_msg_info *out, struct ipcf_timeout *tmo);

/* ---- waiting (mailbox.c), no lock held ---- */
int ipcf_mbox_is_closing(struct ipcf_mbox *m);
/* Wait on `ev` until *counter moves from `seen` (or, with right, the exclusive right is let
 * go). 0 when it moved, `nothing` on timeout, IPCF_ECLOSED, IPCF_EINTR. */
int ipcf_mbox_wait_moved(struct ipcf_mbox *m, struct ipcf_event *ev, uint64_t *counter,
                         uint64_t seen, int right, struct ipcf_timeout *to, int nothing);

#endif
