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
 * Files: mailbox.c (lifetime, accessors, waiting), mailbox_send.c (post, receipts,
 * withdraw), mailbox_recv.c (receive, the exclusive right), mailbox_lists.c, mailbox_repair.c.
 */
#ifndef IPCF_MAILBOX_H
#define IPCF_MAILBOX_H

#include "atomics.h"
#include "futex.h"
#include "lock.h"
#include "shm.h"

#define IPCF_MB_SMALL 4096     /* bodies up to this size are copied under the lock */
#define IPCF_MB_PAGE  4096

struct ipcf_mbox {
    struct ipcf_seg seg;
    struct ipcf_mbox_ctl *ctl;
    int closing;               /* closed by some thread: calls return IPCF_ECLOSED (atomic) */
};

static inline struct ipcf_mbox_slot *ipcf_mbox_slot_at(struct ipcf_mbox *m, uint32_t i)
{
    return (struct ipcf_mbox_slot *)(m->seg.data + (uint64_t)i * m->ctl->stride);
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

/* ---- locking (mailbox_repair.c): a lock whose owner died is repaired before use ---- */
int ipcf_mbox_lock(struct ipcf_mbox *m, struct ipcf_timeout *to);  /* 0, or < 0 as ipcf_lock */
void ipcf_mbox_unlock(struct ipcf_mbox *m);
void ipcf_mbox_repair(struct ipcf_mbox *m);                       /* lock held */
int ipcf_mbox_repair_if_due(struct ipcf_mbox *m);   /* lock held: 1 if it repaired */

/* ---- slots and lists (mailbox_lists.c), lock held ---- */
int64_t ipcf_mbox_slot_alloc(struct ipcf_mbox *m);            /* a free slot, or -1 */
void ipcf_mbox_slot_free(struct ipcf_mbox *m, uint32_t i);    /* onto the free list */
void ipcf_mbox_slot_release(struct ipcf_mbox *m, uint32_t i); /* free it, count it, trim it */
void ipcf_mbox_ready_insert(struct ipcf_mbox *m, uint32_t i); /* by (priority desc, seq asc) */
void ipcf_mbox_ready_remove(struct ipcf_mbox *m, uint32_t i);
void ipcf_mbox_tails_reset(struct ipcf_mbox_ctl *c);          /* empty the tail cache */

/* ---- waiting (mailbox.c), no lock held ---- */
int ipcf_mbox_is_closing(struct ipcf_mbox *m);
/* Wait on `ev` until *counter moves from `seen` (or, with right, the exclusive right is let
 * go). 0 when it moved, `nothing` on timeout, IPCF_ECLOSED, IPCF_EINTR. */
int ipcf_mbox_wait_moved(struct ipcf_mbox *m, struct ipcf_event *ev, uint64_t *counter,
                         uint64_t seen, int right, struct ipcf_timeout *to, int nothing);

#endif
