/* mailbox_lists.c - a mailbox's slot lists, all under the mailbox lock: the free list and
 * the READY list in delivery order (priority desc, then seq asc), with a cache of each
 * priority's last slot so an insert is O(32) instead of a walk. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "mailbox.h"

void ipcf_mbox_slot_free(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    /* release: a sender awaiting a receipt reads state without the lock (receipt_ready) */
    ipcf_store_release(&s->state, IPCF_SLOT_FREE);
    s->next = c->free_head;
    c->free_head = i + 1;
}

/* Give a slot back; a large body's pages beyond the first go back to the system. The slot
 * is marked FREE before its pages are punched: a process killed in between (the lock is
 * robust) leaves a FREE slot that repair relinks, never a READING one that repair would
 * deliver again with its body zeroed. */
void ipcf_mbox_slot_release(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    uint64_t len = s->length;
    ipcf_mbox_slot_free(m, i);
    if (sizeof *s + len > IPCF_MB_PAGE)
        madvise((uint8_t *)s + IPCF_MB_PAGE, m->ctl->stride - IPCF_MB_PAGE, MADV_REMOVE);
    ipcf_mbox_bump(&m->ctl->freed);     /* senders waiting for room watch it */
}

int64_t ipcf_mbox_slot_alloc(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (c->free_head) {
        uint32_t i = c->free_head - 1;
        c->free_head = ipcf_mbox_slot_at(m, i)->next;
        return i;
    }
    uint32_t hw = c->high_water;
    if (hw < c->nslots) {              /* never-used slots: no page touched until now */
        ipcf_store_relaxed(&c->high_water, hw + 1);    /* (read by stats without the lock) */
        return hw;
    }
    return -1;
}


/* ---- the tail cache ----
 * For each priority present in the READY list (up to IPCF_MB_TAILS of them), its last slot.
 * While it is complete (tails_partial == 0) an insert finds its place among at most 32
 * entries; past 32 distinct priorities inserts walk the list until it next drains. Derived
 * state: a repair rebuilds it. */

void ipcf_mbox_tails_reset(struct ipcf_mbox_ctl *c)
{
    memset(c->tail_slot, 0, sizeof c->tail_slot);
    c->tails_partial = 0;
}

static int tail_find(struct ipcf_mbox_ctl *c, int32_t prio)
{
    for (int k = 0; k < IPCF_MB_TAILS; k++)
        if (c->tail_slot[k] && c->tail_prio[k] == prio)
            return k;
    return -1;
}

static void tail_set(struct ipcf_mbox_ctl *c, int32_t prio, uint32_t at)
{
    int k = tail_find(c, prio);
    for (int j = 0; k < 0 && j < IPCF_MB_TAILS; j++)
        if (!c->tail_slot[j])
            k = j;
    if (k < 0) {
        c->tails_partial = 1;
        return;
    }
    c->tail_prio[k] = prio;
    c->tail_slot[k] = at;
}

/* Where a message of priority p goes: after the last slot of priority >= p (FIFO within a
 * priority, higher priorities first); 0 means at the head. */
static uint32_t insert_after(struct ipcf_mbox *m, int32_t p)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (!c->tails_partial) {
        uint32_t best = 0;
        int64_t best_prio = (int64_t)INT32_MAX + 1;
        for (int k = 0; k < IPCF_MB_TAILS; k++)
            if (c->tail_slot[k] && c->tail_prio[k] >= p && c->tail_prio[k] < best_prio) {
                best_prio = c->tail_prio[k];
                best = c->tail_slot[k];
            }
        return best;
    }
    uint32_t after = c->ready_tail;
    while (after && ipcf_mbox_slot_at(m, after - 1)->priority < p)
        after = ipcf_mbox_slot_at(m, after - 1)->prev;
    return after;
}

/* ---- the READY list ---- */

void ipcf_mbox_ready_insert(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    uint32_t after = insert_after(m, s->priority);
    s->prev = after;
    s->next = after ? ipcf_mbox_slot_at(m, after - 1)->next : c->ready_head;
    if (s->next)
        ipcf_mbox_slot_at(m, s->next - 1)->prev = i + 1;
    else
        c->ready_tail = i + 1;
    if (after)
        ipcf_mbox_slot_at(m, after - 1)->next = i + 1;
    else
        c->ready_head = i + 1;
    if (!s->next || ipcf_mbox_slot_at(m, s->next - 1)->priority != s->priority)
        tail_set(c, s->priority, i + 1);          /* it is its priority's last */
    ipcf_add_relaxed(&c->count, 1);               /* (read by len() without the lock) */
}

void ipcf_mbox_ready_remove(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    int k = tail_find(c, s->priority);
    if (k >= 0 && c->tail_slot[k] == i + 1) {    /* it was its priority's last */
        uint32_t p = s->prev;
        c->tail_slot[k] = (p && ipcf_mbox_slot_at(m, p - 1)->priority == s->priority) ? p : 0;
    }
    if (s->prev)
        ipcf_mbox_slot_at(m, s->prev - 1)->next = s->next;
    else
        c->ready_head = s->next;
    if (s->next)
        ipcf_mbox_slot_at(m, s->next - 1)->prev = s->prev;
    else
        c->ready_tail = s->prev;
    ipcf_sub_relaxed(&c->count, 1);
    if (c->count == 0)                        /* empty: the cache is complete again */
        ipcf_mbox_tails_reset(c);
}
