/* mailbox_repair.c - rebuilding a mailbox's derived state from its slots, and the lock
 * that triggers it when its owner died.
 *
 * A dead writer's slot is freed (its message was never visible), a dead reader's message
 * is made READY again (or reported LOST to a sender awaiting its receipt), and receipts
 * whose sender died are dropped. A dead holder of the exclusive right loses it to the next
 * receiver that asks (mailbox_recv.c).
 *
 * The same rebuild mends derived state that a check found inconsistent (a corrupted link,
 * head, tail, tail cache or counter: ipcf_mbox_recover), since the slots' own states say
 * what every list must hold. A slot whose own header is impossible is dropped and counted;
 * the call that asked for the repair reports IPCF_ECORRUPT.
 */
#define _GNU_SOURCE

#include "mailbox.h"
#include "peers.h"

/* Whether a slot survives a repair: 1 keep it (in flight, READY, or waiting for its
 * sender), 0 free it, -1 free it as inconsistent: a state that does not exist, or a body
 * longer than any sender may write (a receiver would copy past the slot). Adds what it
 * holds to *held and *inflight. */
static int keep_slot(struct ipcf_mbox *m, struct ipcf_mbox_slot *s, uint64_t *held,
                     uint32_t *inflight)
{
    uint32_t state = s->state;
    if ((state == IPCF_SLOT_WRITING || state == IPCF_SLOT_READY || state == IPCF_SLOT_READING) &&
        s->length > m->max_message)
        return -1;
    switch (state) {
    case IPCF_SLOT_FREE:
        return 0;
    case IPCF_SLOT_WRITING:
        if (!ipcf_word_alive(ipcf_load_relaxed(&s->owner)))   /* (0: handed back) */
            return 0;                               /* never published: drop */
        *held += s->length;
        (*inflight)++;
        return 1;
    case IPCF_SLOT_READING:
        if (ipcf_word_alive(ipcf_load_relaxed(&s->owner))) {
            *held += s->length;
            (*inflight)++;
            return 1;
        }
        /* owner 0: handed back by a receiver that timed out after its copy (not dead): the
         * message is simply READY again */
        if ((s->flags & IPCF_MSG_RECEIPT) && ipcf_load_relaxed(&s->owner)) {   /* tell the sender */
            ipcf_store_release(&s->state, IPCF_SLOT_LOST);
            return 1;
        }
        ipcf_store_release(&s->state, IPCF_SLOT_READY);   /* deliver it again */
        /* fall through */
    case IPCF_SLOT_READY:
        if ((s->flags & IPCF_MSG_RECEIPT) && !ipcf_word_alive(s->waiter))
            s->flags &= ~(uint32_t)IPCF_MSG_RECEIPT;   /* nobody left to tell */
        *held += s->length;
        return 1;                                   /* linked by ipcf_mbox_ready_rebuild */
    case IPCF_SLOT_TAKEN:
    case IPCF_SLOT_LOST:
        return ipcf_word_alive(s->waiter);          /* its sender is gone: drop */
    default:
        return -1;
    }
}

/* How many slots may have been used: high_water (clamped to our nslots), raised to cover
 * every link that names a slot past it -- the heads, the tail cache, and the links of the
 * slots below it, followed as the bound grows -- and past slots in use right above it. A
 * high_water rewritten lower would otherwise hide the messages above it from the repair
 * (and hand their slots out again). In an intact mailbox every link is below high_water
 * and the slot above it is FREE, so this reads only headers the repair reads anyway, plus
 * the next fresh slot's; garbage links cost at most a scan of all nslots. */
static uint32_t slots_used(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t hw = ipcf_mbox_hw(m), n = m->nslots;
#define RAISE(link) do { uint32_t l_ = (link); if (l_ > hw && l_ <= n) hw = l_; } while (0)
    RAISE(c->free_head);
    RAISE(c->ready_head);
    RAISE(c->ready_tail);
    for (int k = 0; k < IPCF_MB_TAILS; k++)
        RAISE(c->tail_slot[k]);
    /* at most n steps: the bound only grows, up to n */
    for (uint32_t k = 0; k < n && (k < hw || ipcf_mbox_slot_at(m, k)->state != IPCF_SLOT_FREE); k++) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, k);
        RAISE(k + 1);
        RAISE(s->next);
        RAISE(s->prev);
    }
#undef RAISE
    return hw;
}

/* Bounded by the slots: two passes over at most nslots of them and an O(n log n) relink,
 * whatever the segment holds. */
int ipcf_mbox_repair(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t hw = slots_used(m);
    if (c->high_water != hw)                     /* past nslots, or below a used slot */
        ipcf_store_relaxed(&c->high_water, hw);
    c->free_head = c->ready_head = c->ready_tail = 0;
    ipcf_mbox_tails_reset(c);
    /* recount what the slots hold (in flight: from zero, so the senders' and receivers'
     * own decrements after their copy stay exact); stored atomically, as lock-free
     * readers (stats, recv's check of inflight) may look at any time */
    uint64_t held = 0;
    uint32_t inflight = 0, bad = 0;
    for (uint32_t k = hw; k-- > 0;) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, k);
        int keep = keep_slot(m, s, &held, &inflight);
        bad += keep < 0;
        if (keep <= 0)
            ipcf_mbox_slot_free(m, k);
    }
    ipcf_store_relaxed(&c->bytes_held, held);
    ipcf_store_relaxed(&c->inflight, inflight);
    ipcf_mbox_ready_rebuild(m);                  /* links and counts the READY slots */
    ipcf_add_relaxed(&c->repairs, 1);
    ipcf_mbox_bump(&c->freed);
    ipcf_mbox_bump(&c->published);
    ipcf_event_wake(&c->data);
    ipcf_event_wake(&c->space);
    ipcf_event_wake(&c->receipt);
    return bad ? IPCF_ECORRUPT : 0;
}

int ipcf_mbox_recover(struct ipcf_mbox *m, int *budget)
{
    /* a second inconsistency in the same call is not one a repair mends (or the segment is
     * being rewritten under us): report it rather than repair in a loop */
    if (*budget <= 0)
        return IPCF_ECORRUPT;
    (*budget)--;
    return ipcf_mbox_repair(m);
}

/* A repair that no dead lock owner forced -- a full mailbox, or an empty receive while
 * copies are in flight, either of which may hide a peer that died mid-copy -- scans every
 * slot and wakes every waiter. Such a death is rare and costs only capacity (or a delay)
 * until the scan, so these run at most once per IPCF_MB_SCAN_MS per mailbox instead of on
 * every full send and every empty receive. */
int ipcf_mbox_repair_if_due(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t now = (uint32_t)(ipcf_now_ns() / 1000000u);
    if (c->scan_ms && (uint32_t)(now - c->scan_ms) < IPCF_MB_SCAN_MS)
        return 0;                /* (compared by unsigned difference: wraps after 49 days) */
    c->scan_ms = now ? now : 1;
    ipcf_mbox_repair(m);        /* (a slot it drops as inconsistent is counted in repairs) */
    return 1;
}

int ipcf_mbox_lock(struct ipcf_mbox *m, struct ipcf_timeout *to)
{
    int rc = ipcf_lock(m->ctl->lock, to);
    if (rc == 1) {              /* a process died holding the lock: lists may be half-made */
        ipcf_mbox_repair(m);    /* (an inconsistent slot is dropped; the operation goes on) */
        rc = 0;
    }
    return rc;
}

void ipcf_mbox_unlock(struct ipcf_mbox *m)
{
    ipcf_unlock(m->ctl->lock);
}
