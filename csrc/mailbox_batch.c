/* mailbox_batch.c - a batch of messages in one call: ipcf_mbox_send_many posts n small
 * messages under one lock hold (all or nothing), ipcf_mbox_take_many takes what is ready
 * for us into one buffer of records (header, body) under one more.
 *
 * Only bodies up to IPCF_MB_SMALL travel in a batch: they are copied under the lock, so no
 * copy is ever in flight outside it, and the crash-safety argument is the one of the
 * single calls: a sender killed before it publishes leaves its slots WRITING with owner 0
 * (the repair frees them, as handed-back writes: the unpublished messages of its batch
 * never existed), one killed while publishing leaves READY slots the repair links (those
 * messages are delivered; a batch is atomic for the living, not across the sender's
 * death); a receiver killed before finish_take leaves READY slots off the list (delivered
 * again), none after.
 *
 * A slot of the batch is marked WRITING the moment it is taken, and stays so until it is
 * linked: a free list rewritten into a cycle then hands out a slot the batch already holds
 * as a non-FREE one (ipcf_mbox_slot_alloc: IPCF_ECORRUPT, mended by a repair) instead of
 * giving one slot two of the batch's messages, and a list link that names a slot of the
 * batch not yet linked fails the READY check of the insert instead of being followed.
 */
#define _GNU_SOURCE
#include <string.h>

#include "mailbox.h"

/* Lock held: put back the k slots of a batch that could not be completed (never
 * published: WRITING, off the free list, linked through `next` from `first`). */
static void give_back(struct ipcf_mbox *m, uint32_t first, uint32_t k, const uint64_t *lens)
{
    for (uint32_t j = 0, at = first; j < k; j++) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, at - 1);
        uint32_t next = s->next;
        ipcf_mbox_held_sub(m->ctl, lens[j]);
        ipcf_mbox_slot_free(m, at - 1);
        at = next;
    }
}

/* Lock held: n slots with room for their bodies, linked through `next` from *first
 * (WRITING with owner 0, off the free list). 0, -1 none (nothing kept), or IPCF_ECORRUPT.
 * Each is marked as it is taken: ipcf_mbox_slot_alloc hands out only FREE slots, so no
 * slot is taken twice however the free list was rewritten. A repair may only run
 * while the batch holds no slot (it would relink them as free): the first slot is taken
 * as a single post takes one, the rest with repairs off; when one of those fails, the
 * batch gives its slots back first, then repairs (once per call, as take_slot would) and
 * starts over. */
static int64_t take_slots(struct ipcf_mbox *m, const uint64_t *lens, uint32_t n,
                          uint32_t *first, int *repaired, int *budget)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    for (;;) {
        uint32_t k = 0, last = 0;
        int64_t i = 0;
        for (; k < n; k++) {
            int off = 1, none = 0;
            i = k ? ipcf_mbox_take_slot(m, lens[k], &off, &none)
                  : ipcf_mbox_take_slot(m, lens[0], repaired, budget);
            if (i < 0)
                break;
            struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, (uint32_t)i);
            /* owner 0: nobody's (a repair after our death frees it; relaxed, as post's),
             * with the length the repair checks. release: a sender awaiting a receipt
             * reads state without the lock */
            s->length = (uint32_t)lens[k];
            ipcf_store_relaxed(&s->owner, 0);
            ipcf_store_release(&s->state, IPCF_SLOT_WRITING);
            ipcf_add_relaxed(&c->bytes_held, lens[k]);
            if (k)
                ipcf_mbox_slot_at(m, last - 1)->next = (uint32_t)i + 1;
            else
                *first = (uint32_t)i + 1;
            last = (uint32_t)i + 1;
        }
        if (k == n)
            return 0;
        give_back(m, *first, k, lens);        /* all or nothing */
        if (k == 0)
            return i;                         /* (take_slot repaired as it saw fit) */
        if (i != -1) {                        /* an inconsistency: mend it, start over */
            int rc = ipcf_mbox_recover(m, budget);
            if (rc)
                return rc;
        } else if (!*repaired && (c->high_water >= m->nslots || c->inflight) &&
                   ipcf_mbox_repair_if_due(m)) {   /* dead writers may hold slots */
            *repaired = 1;
        } else {
            return -1;
        }
    }
}

/* Lock held: make slot s READY with the next seq. (seq and state: a sender awaiting this
 * slot's receipt reads them without the lock; release: the header is visible first.) */
static void make_ready(struct ipcf_mbox_ctl *c, struct ipcf_mbox_slot *s)
{
    ipcf_store_relaxed(&s->seq, c->next_seq++);
    ipcf_store_release(&s->state, IPCF_SLOT_READY);
}

/* Lock held: publish the n slots linked from `first`, in order, each made READY just before
 * it is linked (the rest stay WRITING: no list link may name them). An insert that finds
 * the list inconsistent changes nothing; the rest of the batch is then made READY too and
 * the repair links every READY slot, the whole batch included. */
static void publish_all(struct ipcf_mbox *m, uint32_t first, uint32_t n)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t k = 0, at = first;
    for (; k < n; k++) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, at - 1);
        uint32_t next = s->next;              /* (the insert relinks it) */
        make_ready(c, s);
        if (ipcf_mbox_ready_insert(m, at - 1) != 0)
            break;
        at = next;
    }
    if (k < n) {
        for (uint32_t j = k + 1, nx = ipcf_mbox_slot_at(m, at - 1)->next; j < n; j++) {
            struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, nx - 1);
            nx = s->next;
            make_ready(c, s);
        }
        ipcf_mbox_repair(m);
    }
    ipcf_mbox_bump(&c->published);
}

int ipcf_mbox_send_many(ipcf_mbox *m, const char *blob, const uint64_t *lens, uint32_t n,
                        int32_t type, int32_t priority, int64_t timeout_ns)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (ipcf_mbox_is_closing(m))
        return IPCF_ECLOSED;
    if (m->capacity == 0 || n == 0 || n > m->nslots)
        return IPCF_EBADARG;
    uint64_t total = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (lens[k] > IPCF_MB_SMALL || lens[k] > m->max_message)
            return IPCF_EBADARG;
        total += lens[k];
    }
    if (m->capacity != IPCF_MB_UNBOUNDED && total > m->capacity)
        return IPCF_EBADARG;                 /* could never fit: the caller checked */
    struct ipcf_timeout tmo = ipcf_timeout_of(timeout_ns);
    uint64_t sender = ipcf_mbox_self_id(m);
    uint32_t first = 0;
    for (int repaired = 0, budget = 1;;) {
        int rc = ipcf_mbox_lock(m, &tmo);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        int64_t got = take_slots(m, lens, n, &first, &repaired, &budget);
        if (got == 0)
            break;
        if (got != -1) {
            ipcf_mbox_unlock(m);
            return (int)got;
        }
        uint64_t seen = c->freed;
        ipcf_mbox_unlock(m);
        if ((rc = ipcf_mbox_wait_moved(m, &c->space, &c->freed, seen, 0, &tmo, IPCF_EFULL)) != 0)
            return rc;
    }
    uint64_t now = ipcf_now_ns(), off = 0;
    for (uint32_t k = 0, at = first; k < n; k++) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, at - 1);
        s->flags = 0;
        s->type = type;                      /* (length: set by take_slots) */
        s->priority = priority;
        s->sender = sender;
        s->to = 0;
        s->sent_at = now;
        s->waiter = 0;                       /* (owner: 0 since take_slots) */
        s->receiver = 0;
        s->receiver_pid = 0;
        memcpy(ipcf_mbox_body(s), blob + off, lens[k]);
        off += lens[k];
        at = s->next;
    }
    publish_all(m, first, n);
    ipcf_mbox_unlock(m);
    ipcf_event_wake(&c->data);
    return 0;
}

/* Messages one ipcf_mbox_take_many call takes at most: its lock hold grows with the batch,
 * and a hold much longer than a sender's wait spin stalls the senders into futex sleeps
 * (measured: 1 -> 1 small objects, recv_many of everything ready ran at ~0.6x the rate of
 * batches of 256). */
#define TAKE_MAX 256

static uint64_t record_size(uint64_t len)
{
    return IPCF_MSG_HEAD + ((len + 7) & ~(uint64_t)7);
}

int64_t ipcf_mbox_take_many(ipcf_mbox *m, char *buf, uint64_t cap, uint32_t max, int has_type,
                            int32_t type, int wait_right, int64_t timeout_ns)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (cap < IPCF_MSG_HEAD || ((uintptr_t)buf & 7u) || max == 0)
        return IPCF_EBADARG;
    uint64_t me = ipcf_mbox_self_id(m);
    /* the first through the single receive: waiting, the exclusive right, large bodies,
     * corruption all as there */
    int64_t n = ipcf_mbox_recv(m, buf + IPCF_MSG_HEAD, cap - IPCF_MSG_HEAD, me, has_type, type,
                               wait_right, timeout_ns, (struct ipcf_msg_info *)(void *)buf);
    if (n < 0)
        return n;
    uint64_t off = record_size((uint64_t)n);
    uint32_t k = 1;
    /* (count without the lock: relaxed, a hint only; the lock hold below decides) */
    if (max == 1 || ipcf_load_relaxed(&c->count) == 0 || off + IPCF_MSG_HEAD > cap)
        return k;
    /* the rest: what is ready for us now, under one lock hold (a try: never a wait) */
    struct ipcf_timeout now = ipcf_timeout_of(0);
    if (ipcf_mbox_lock(m, &now) < 0)
        return k;
    int receipts = 0;
    if (ipcf_mbox_take_right(m, me) == 0) {
        while (k < max && k < TAKE_MAX) {
            int64_t i = ipcf_mbox_find(m, me, has_type, type);
            if (i < 0)
                break;           /* none, or an inconsistency: left to the next call */
            struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, (uint32_t)i);
            uint64_t len = s->length;
            if (len > IPCF_MB_SMALL || len > m->max_message || off + record_size(len) > cap ||
                ipcf_mbox_ready_remove(m, (uint32_t)i) != 0)
                break;           /* a large body goes alone (the next call's first) */
            memcpy(buf + off + IPCF_MSG_HEAD, ipcf_mbox_body(s), len);
            receipts |= s->flags & IPCF_MSG_RECEIPT;
            ipcf_mbox_finish_take(m, (uint32_t)i, len, me,
                                  (struct ipcf_msg_info *)(void *)(buf + off));
            off += record_size(len);
            k++;
        }
    }
    ipcf_mbox_unlock(m);
    if (k > 1) {
        ipcf_event_wake(&c->space);
        if (receipts)
            ipcf_event_wake(&c->receipt);
    }
    return k;
}
