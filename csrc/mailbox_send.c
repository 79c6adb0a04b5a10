/* mailbox_send.c - posting to a mailbox, collecting receipts, withdrawing a post. */
#define _GNU_SOURCE
#include <string.h>

#include "host.h"
#include "mailbox.h"
#include "peers.h"

/* Lock held. (len <= capacity: checked by the caller. A count past the capacity is no
 * room, never an overflowed sum.) */
static int has_room(struct ipcf_mbox *m, uint64_t len)
{
    uint64_t cap = m->capacity, held = m->ctl->bytes_held;
    if (cap == IPCF_MB_UNBOUNDED || cap == 0)
        return 1;
    return held <= cap && len <= cap - held;
}

/* Lock held: make slot i READY, in delivery order. */
void ipcf_mbox_publish(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    /* seq and state: a sender awaiting this slot's receipt reads them without the lock */
    ipcf_store_relaxed(&s->seq, c->next_seq++);
    ipcf_store_release(&s->state, IPCF_SLOT_READY);
    if (ipcf_mbox_ready_insert(m, i) != 0)
        /* the READY list contradicts itself: rebuilt from the slots, this one (READY now)
         * included, so the message is published all the same. (A slot the repair drops as
         * inconsistent is not this one: the sender reports nothing.) */
        ipcf_mbox_repair(m);
    ipcf_mbox_bump(&c->published);          /* receivers waiting for a message watch it */
}

/* Lock held: a free slot with room for len more bytes, repairing once if dead processes
 * may be holding slots or room; -1 when there is none, IPCF_ECORRUPT. At most three
 * rounds: one recovery (budget) and one speculative repair. */
int64_t ipcf_mbox_take_slot(struct ipcf_mbox *m, uint64_t len, int *repaired, int *budget)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    for (;;) {
        int64_t i = has_room(m, len) ? ipcf_mbox_slot_alloc(m) : -1;
        if (i >= 0)
            return i;
        /* a free list that contradicts the slots, or more bytes held than the used slots
         * can hold (a rewritten counter would keep the mailbox full forever) */
        if (i != -1 || c->bytes_held > (uint64_t)ipcf_mbox_hw(m) * m->max_message) {
            int rc = ipcf_mbox_recover(m, budget);
            if (rc)
                return rc;
            continue;
        }
        /* A dead writer may hold slots; or bytes are held by no slot we know of (nothing
         * READY, no copy in flight: a rewritten bytes_held below the bound above), which
         * would keep a send without a timeout waiting forever. Either way a recount
         * (rate-limited: a sender that finds it not yet due waits one slice and retries).
         * Not for the later slots of a batch (*repaired set): their batch holds bytes of
         * its own that are not READY yet. */
        if (!*repaired && (c->high_water >= m->nslots || c->inflight ||
                           (c->bytes_held && ipcf_load_relaxed(&c->count) == 0)) &&
            ipcf_mbox_repair_if_due(m)) {
            *repaired = 1;
            continue;
        }
        return -1;
    }
}

int ipcf_mbox_post(ipcf_mbox *m, const char *buf, uint64_t len, int32_t type, int32_t priority,
                   uint64_t sender, uint64_t to, uint32_t flags, int64_t timeout_ns,
                   struct ipcf_msg_info *out)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (ipcf_mbox_is_closing(m))
        return IPCF_ECLOSED;
    if (len > m->max_message || (m->capacity && m->capacity != IPCF_MB_UNBOUNDED && len > m->capacity))
        return IPCF_ETOOBIG;
    if (m->capacity == 0) {
        flags |= IPCF_MSG_RECEIPT;        /* rendezvous: the sender always waits for pickup */
        if (timeout_ns == 0 && ipcf_load_acquire(&c->receivers_waiting) == 0)
            return IPCF_EFULL;
    }
    struct ipcf_timeout tmo = ipcf_timeout_of(timeout_ns);
    int64_t i;
    for (int repaired = 0, budget = 1;;) {
        int rc = ipcf_mbox_lock(m, &tmo);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        if ((i = ipcf_mbox_take_slot(m, len, &repaired, &budget)) >= 0)
            break;
        if (i != -1) {
            ipcf_mbox_unlock(m);
            return (int)i;
        }
        uint64_t seen = c->freed;
        ipcf_mbox_unlock(m);
        if ((rc = ipcf_mbox_wait_moved(m, &c->space, &c->freed, seen, 0, &tmo, IPCF_EFULL)) != 0)
            return rc;
    }
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, (uint32_t)i);
    uint64_t me = ipcf_self_word();
    s->flags = flags;
    s->length = (uint32_t)len;
    s->type = type;
    s->priority = priority;
    s->sender = sender;
    s->to = to;
    s->sent_at = ipcf_now_ns();
    ipcf_store_relaxed(&s->owner, me);   /* (atomic: a copier hands its slot back by it) */
    s->waiter = (flags & IPCF_MSG_RECEIPT) ? me : 0;
    s->receiver = 0;
    s->receiver_pid = 0;
    ipcf_add_relaxed(&c->bytes_held, len);
    if (len <= IPCF_MB_SMALL) {
        memcpy(ipcf_mbox_body(s), buf, len);
    } else {
        ipcf_store_release(&s->state, IPCF_SLOT_WRITING);
        ipcf_add_relaxed(&c->inflight, 1);
        ipcf_mbox_unlock(m);
        ipcf_host_copy(ipcf_mbox_body(s), buf, len);   /* outside the lock; the slot is ours */
        /* bounded (the caller's timeout, at least IPCF_MB_RELOCK_NS): a lock held past it
         * (a stopped process) makes the send time out unsent; the slot is handed back
         * (owner 0: the next repair frees it, as a dead writer's) */
        struct ipcf_timeout relock = ipcf_mbox_relock_timeout(&tmo);
        int rc = ipcf_mbox_lock(m, &relock);
        if (rc == IPCF_ETIMEOUT) {
            ipcf_store_release(&s->owner, 0);
            return IPCF_EFULL;
        }
        if (rc < 0)         /* unrecoverable lock: the slot stays WRITING, never visible */
            return rc;
        /* a repair keeps a live writer's slot WRITING: anything else means the slot was
         * rewritten under us, and may be in a list already; publishing it would link it
         * twice */
        if (s->state != IPCF_SLOT_WRITING || ipcf_load_relaxed(&s->owner) != me) {
            ipcf_mbox_unlock(m);
            return IPCF_ECORRUPT;
        }
        ipcf_mbox_inflight_done(c);
    }
    ipcf_mbox_publish(m, (uint32_t)i);
    out->slot = (uint32_t)i;
    out->seq = s->seq;
    ipcf_mbox_unlock(m);
    ipcf_event_wake(&c->data);
    return 0;
}

/* Lock held: collect the receipt of our slot if it is there. 1 collected, 0 not yet,
 * IPCF_EPEERDEAD if its receiver died reading it. Frees the slot in both final cases. */
static int collect(struct ipcf_mbox *m, uint32_t i, uint64_t seq, struct ipcf_msg_info *out)
{
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    if (s->seq != seq)
        return IPCF_ESTATE;
    uint64_t owner = ipcf_load_relaxed(&s->owner);
    /* (owner 0: a receiver that timed out handed it back; the next repair re-delivers it) */
    if (s->state == IPCF_SLOT_READING && owner && !ipcf_word_alive(owner)) {
        ipcf_mbox_held_sub(m->ctl, s->length);
        ipcf_store_release(&s->state, IPCF_SLOT_LOST);
    }
    if (s->state == IPCF_SLOT_TAKEN) {
        ipcf_mbox_fill_receipt(s, out);
        ipcf_mbox_slot_release(m, i);
        return 1;
    }
    if (s->state == IPCF_SLOT_LOST) {
        ipcf_mbox_slot_release(m, i);
        return IPCF_EPEERDEAD;
    }
    return 0;
}

struct receipt_arg { struct ipcf_mbox_slot *s; uint64_t seq; };

static int receipt_ready(void *p)
{
    struct receipt_arg *a = p;
    /* acquire: pairs with the release of TAKEN/LOST (finish_take, collect, repair) */
    uint32_t st = ipcf_load_acquire(&a->s->state);
    return ipcf_load_relaxed(&a->s->seq) != a->seq || st == IPCF_SLOT_TAKEN || st == IPCF_SLOT_LOST;
}

int ipcf_mbox_await(ipcf_mbox *m, uint32_t slot, uint64_t seq, int64_t timeout_ns,
                    struct ipcf_msg_info *out)
{
    if (slot >= m->nslots)
        return IPCF_EBADARG;
    struct receipt_arg a = {ipcf_mbox_slot_at(m, slot), seq};
    struct ipcf_timeout tmo = ipcf_timeout_of(timeout_ns);
    ipcf_deadline(&tmo);                  /* fixed now: the lock below shares the deadline */
    int rc = ipcf_wait(&m->ctl->receipt, receipt_ready, &a, timeout_ns, NULL);
    if (rc < 0 && rc != IPCF_ETIMEOUT)
        return rc;
    struct ipcf_timeout relock = ipcf_mbox_relock_timeout(&tmo);
    if ((rc = ipcf_mbox_lock(m, &relock)) < 0)   /* bounded, never forever unless asked */
        return rc == IPCF_ETIMEOUT ? IPCF_ETIMEOUT : IPCF_ESTATE;
    /* after a timed-out slice, also notice a reader that died holding our message */
    rc = collect(m, slot, seq, out);
    ipcf_mbox_unlock(m);
    if (rc == 1) {
        ipcf_event_wake(&m->ctl->space);
        return 0;
    }
    if (rc == IPCF_EPEERDEAD)
        ipcf_event_wake(&m->ctl->space);
    return rc == 0 ? IPCF_ETIMEOUT : rc;
}

int ipcf_mbox_withdraw(ipcf_mbox *m, uint32_t slot, uint64_t seq, struct ipcf_msg_info *out)
{
    if (slot >= m->nslots)
        return IPCF_EBADARG;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, slot);
    for (int budget = 1;;) {
        if (ipcf_mbox_lock(m, NULL) < 0)
            return IPCF_ESTATE;
        int rc = collect(m, slot, seq, out);
        if (rc == 0 && s->state == IPCF_SLOT_READY) {
            if (ipcf_mbox_ready_remove(m, slot) == 0) {   /* nobody took it: it never happened */
                ipcf_mbox_held_sub(m->ctl, s->length);
                ipcf_mbox_slot_release(m, slot);
            } else if ((rc = ipcf_mbox_recover(m, &budget)) == 0) {
                ipcf_mbox_unlock(m);                      /* lists rebuilt: look again */
                continue;
            }
        } else if (rc == 0 && s->state == IPCF_SLOT_READING && ipcf_load_relaxed(&s->owner) == 0) {
            /* handed back by a receiver that timed out after its copy: nobody has it */
            ipcf_mbox_held_sub(m->ctl, s->length);
            ipcf_mbox_inflight_done(m->ctl);
            ipcf_mbox_slot_release(m, slot);
        } else if (rc == 0 && s->state == IPCF_SLOT_READING) {
            ipcf_mbox_unlock(m);      /* being read right now: wait for the outcome */
            struct receipt_arg a = {s, seq};
            ipcf_wait(&m->ctl->receipt, receipt_ready, &a, 10000000, NULL);
            continue;
        } else if (rc == 0) {
            /* FREE, WRITING or no state at all, with our seq: nobody but a writer to the
             * segment puts our published message there (waiting for it would never end) */
            rc = IPCF_ECORRUPT;
        }
        ipcf_mbox_unlock(m);
        ipcf_event_wake(&m->ctl->space);
        return rc;
    }
}

void ipcf_mbox_set_id(ipcf_mbox *m, uint64_t id)
{
    ipcf_store_relaxed(&m->id, id);      /* (read by ipcf_mbox_self_id: only atomicity) */
}

int ipcf_mbox_send(ipcf_mbox *m, const char *buf, uint64_t len, int32_t type, int32_t priority,
                   int64_t timeout_ns)
{
    struct ipcf_msg_info unused;          /* (slot and seq: only a receipt needs them) */
    if (m->capacity == 0)
        return IPCF_EBADARG;
    return ipcf_mbox_post(m, buf, len, type, priority, ipcf_mbox_self_id(m), 0, 0, timeout_ns,
                          &unused);
}
