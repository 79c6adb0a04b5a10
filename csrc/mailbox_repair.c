/* mailbox_repair.c - rebuilding a mailbox's derived state from its slots, and the lock
 * that triggers it when its owner died.
 *
 * A dead writer's slot is freed (its message was never visible), a dead reader's message
 * is made READY again (or reported LOST to a sender awaiting its receipt), and receipts
 * whose sender died are dropped. A dead holder of the exclusive right loses it to the next
 * receiver that asks (mailbox_recv.c).
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "mailbox.h"
#include "peers.h"

/* Whether a slot survives a repair: 1 keep it (in flight, READY, or waiting for its
 * sender), 0 free it. Adds what it holds to *held and *inflight. */
static int keep_slot(struct ipcf_mbox_slot *s, uint64_t *held, uint32_t *inflight)
{
    switch (s->state) {
    case IPCF_SLOT_WRITING:
        if (!ipcf_word_alive(s->owner))
            return 0;                               /* never published: drop */
        *held += s->length;
        (*inflight)++;
        return 1;
    case IPCF_SLOT_READING:
        if (ipcf_word_alive(s->owner)) {
            *held += s->length;
            (*inflight)++;
            return 1;
        }
        if (s->flags & IPCF_MSG_RECEIPT) {          /* tell the waiting sender */
            ipcf_store_release(&s->state, IPCF_SLOT_LOST);
            return 1;
        }
        ipcf_store_release(&s->state, IPCF_SLOT_READY);   /* deliver it again */
        /* fall through */
    case IPCF_SLOT_READY:
        if ((s->flags & IPCF_MSG_RECEIPT) && !ipcf_word_alive(s->waiter))
            s->flags &= ~(uint32_t)IPCF_MSG_RECEIPT;   /* nobody left to tell */
        *held += s->length;
        return 1;                                   /* linked by relink_ready */
    case IPCF_SLOT_TAKEN:
    case IPCF_SLOT_LOST:
        return ipcf_word_alive(s->waiter);          /* its sender is gone: drop */
    default:
        return 0;
    }
}

/* Link the READY slots; inserting in ascending seq order keeps FIFO within a priority. */
static void relink_ready(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t n = 0, *idx = malloc(sizeof *idx * (c->high_water ? c->high_water : 1));
    if (!idx)
        return;
    for (uint32_t k = 0; k < c->high_water; k++)
        if (ipcf_mbox_slot_at(m, k)->state == IPCF_SLOT_READY)
            idx[n++] = k;
    for (uint32_t a = 1; a < n; a++) {          /* insertion sort by seq: usually sorted */
        uint32_t v = idx[a], b = a;
        while (b > 0 && ipcf_mbox_slot_at(m, idx[b - 1])->seq > ipcf_mbox_slot_at(m, v)->seq) {
            idx[b] = idx[b - 1];
            b--;
        }
        idx[b] = v;
    }
    for (uint32_t a = 0; a < n; a++)
        ipcf_mbox_ready_insert(m, idx[a]);
    free(idx);
}

void ipcf_mbox_repair(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    c->free_head = c->ready_head = c->ready_tail = 0;
    ipcf_mbox_tails_reset(c);
    /* recount what the slots hold (in flight: from zero, so the senders' and receivers'
     * own decrements after their copy stay exact); stored atomically, as lock-free
     * readers (stats, recv's check of inflight) may look at any time */
    uint64_t held = 0;
    uint32_t inflight = 0;
    for (uint32_t k = c->high_water; k-- > 0;)
        if (!keep_slot(ipcf_mbox_slot_at(m, k), &held, &inflight))
            ipcf_mbox_slot_free(m, k);
    ipcf_store_relaxed(&c->bytes_held, held);
    ipcf_store_relaxed(&c->inflight, inflight);
    ipcf_store_relaxed(&c->count, 0);
    relink_ready(m);                             /* counts them again */
    ipcf_add_relaxed(&c->repairs, 1);
    ipcf_mbox_bump(&c->freed);
    ipcf_mbox_bump(&c->published);
    ipcf_event_wake(&c->data);
    ipcf_event_wake(&c->space);
    ipcf_event_wake(&c->receipt);
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
    ipcf_mbox_repair(m);
    return 1;
}

int ipcf_mbox_lock(struct ipcf_mbox *m, struct ipcf_timeout *to)
{
    int rc = ipcf_lock(m->ctl->lock, to);
    if (rc == 1) {              /* a process died holding the lock: lists may be half-made */
        ipcf_mbox_repair(m);
        rc = 0;
    }
    return rc;
}

void ipcf_mbox_unlock(struct ipcf_mbox *m)
{
    ipcf_unlock(m->ctl->lock);
}
