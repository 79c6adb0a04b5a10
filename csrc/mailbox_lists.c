/* mailbox_lists.c - a mailbox's slot lists, all under the mailbox lock: the free list and
 * the READY list in delivery order (priority desc, then seq asc), with a cache of each
 * priority's last slot so an insert is O(32) instead of a walk.
 *
 * Every link read here comes from shared memory and is checked before the slot it names is
 * touched (ipcf_mbox_link_ok), against its back link and against the state the list
 * implies (FREE on the free list, READY on the READY list); walks take at most nslots
 * steps, so a cycle is found, not followed. A failed check returns IPCF_ECORRUPT before
 * anything is changed, and the caller rebuilds the lists from the slots
 * (ipcf_mbox_recover). On the hot path these are a few compares on header lines the
 * operation reads or writes anyway. */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "mailbox.h"

#define CORRUPT IPCF_ECORRUPT

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
 * deliver again with its body zeroed. (A rewritten length only decides whether to punch:
 * the range is our own stride, inside the slot.) */
void ipcf_mbox_slot_release(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    uint64_t len = s->length;
    ipcf_mbox_slot_free(m, i);
    if (sizeof *s + len > IPCF_MB_PAGE && m->stride > IPCF_MB_PAGE)
        madvise((uint8_t *)s + IPCF_MB_PAGE, m->stride - IPCF_MB_PAGE, MADV_REMOVE);
    ipcf_mbox_bump(&m->ctl->freed);     /* senders waiting for room watch it */
}

int64_t ipcf_mbox_slot_alloc(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t f = c->free_head;
    if (f) {
        /* the head must name a used slot that is FREE: else a wild index, or a slot still in
         * use (a free list looping back into itself would hand one slot out twice) */
        if (!ipcf_mbox_link_ok(m, f))
            return CORRUPT;
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, f - 1);
        if (s->state != IPCF_SLOT_FREE || s->next == f)
            return CORRUPT;
        c->free_head = s->next;         /* (checked in its turn, by the next alloc) */
        return f - 1;
    }
    uint32_t hw = c->high_water;
    if (hw < m->nslots) {              /* never-used slots: no page touched until now */
        /* never used means FREE: else high_water was rewritten below a slot in use (the
         * sender writes this header next: reading it touches no extra page) */
        if (ipcf_mbox_slot_at(m, hw)->state != IPCF_SLOT_FREE)
            return CORRUPT;
        ipcf_store_relaxed(&c->high_water, hw + 1);    /* (read by stats without the lock) */
        return hw;
    }
    return hw == m->nslots ? -1 : CORRUPT;     /* more slots used than there are */
}


/* ---- the tail cache ----
 * For each priority present in the READY list (up to IPCF_MB_TAILS of them), its last slot.
 * While it is complete (tails_partial == 0) an insert finds its place among at most 32
 * entries; past 32 distinct priorities inserts walk the list until it next drains. Derived
 * state: a repair rebuilds it. An entry is checked when an insert uses it. */

void ipcf_mbox_tails_reset(struct ipcf_mbox_ctl *c)
{
    memset(c->tail_slot, 0, sizeof c->tail_slot);
    c->tails_partial = 0;
}

/* The entry of priority prio, -1 none. The handle's hint (the entry this process used
 * last) is tried first: with one priority in use, or a few taken in turn, that is O(1). */
static int tail_find(struct ipcf_mbox *m, int32_t prio)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    int h = m->tail_hint;
    if (h >= 0 && h < IPCF_MB_TAILS && c->tail_slot[h] && c->tail_prio[h] == prio)
        return h;
    for (int k = 0; k < IPCF_MB_TAILS; k++)
        if (c->tail_slot[k] && c->tail_prio[k] == prio)
            return m->tail_hint = k;
    return -1;
}

static void tail_set(struct ipcf_mbox *m, int32_t prio, uint32_t at)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    int k = tail_find(m, prio);
    for (int j = 0; k < 0 && j < IPCF_MB_TAILS; j++)
        if (!c->tail_slot[j])
            k = j;
    if (k < 0) {
        c->tails_partial = 1;
        return;
    }
    c->tail_prio[k] = prio;
    c->tail_slot[k] = at;
    m->tail_hint = k;
}

/* Where a message of priority p (slot self - 1, not yet linked) goes: after the last slot
 * of priority >= p (FIFO within a priority, higher priorities first); 0 means at the head.
 * The slot found is checked to be another READY slot of priority >= p. */
static int insert_after(struct ipcf_mbox *m, int32_t p, uint32_t self, uint32_t *after)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    /* the common case first: the list's last slot has priority >= p (one priority in use,
     * or p the lowest present), so the message goes at the end. (A wrong tail whose slot
     * passes these checks is caught by ipcf_mbox_ready_insert: its next must be 0.) */
    uint32_t last = c->ready_tail;
    if (!last && !c->ready_head) {          /* an empty list: at the head (checked by the caller) */
        *after = 0;
        return 0;
    }
    if (last && ipcf_mbox_link_ok(m, last) && last != self) {
        struct ipcf_mbox_slot *t = ipcf_mbox_slot_at(m, last - 1);
        if (t->state == IPCF_SLOT_READY && t->priority >= p) {
            *after = last;
            return 0;
        }
    }
    if (!c->tails_partial) {
        uint32_t best = 0;
        int64_t best_prio = (int64_t)INT32_MAX + 1;
        for (int k = 0; k < IPCF_MB_TAILS; k++)
            if (c->tail_slot[k] && c->tail_prio[k] >= p && c->tail_prio[k] < best_prio) {
                best_prio = c->tail_prio[k];
                best = c->tail_slot[k];
            }
        if (best) {
            if (!ipcf_mbox_link_ok(m, best) || best == self)
                return CORRUPT;
            struct ipcf_mbox_slot *t = ipcf_mbox_slot_at(m, best - 1);
            if (t->state != IPCF_SLOT_READY || t->priority != best_prio)
                return CORRUPT;
        }
        *after = best;
        return 0;
    }
    /* walk back from the tail, at most nslots steps, each slot READY and linked both ways */
    uint32_t at = c->ready_tail, from = 0;
    for (uint32_t steps = 0; at; steps++) {
        if (steps >= m->nslots || !ipcf_mbox_link_ok(m, at) || at == self)
            return CORRUPT;
        struct ipcf_mbox_slot *t = ipcf_mbox_slot_at(m, at - 1);
        if (t->state != IPCF_SLOT_READY || t->next != from)
            return CORRUPT;
        if (t->priority >= p)
            break;
        from = at;
        at = t->prev;
    }
    *after = at;
    return 0;
}

/* ---- the READY list ---- */

int ipcf_mbox_ready_insert(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    uint32_t self = i + 1, after;
    if (insert_after(m, s->priority, self, &after))
        return CORRUPT;
    struct ipcf_mbox_slot *a = after ? ipcf_mbox_slot_at(m, after - 1) : NULL;
    uint32_t next = a ? a->next : c->ready_head;
    /* the slot we go before: READY, linked back to `after`, of a lower priority; none means
     * `after` is the tail */
    struct ipcf_mbox_slot *n = NULL;
    if (next) {
        if (!ipcf_mbox_link_ok(m, next) || next == self)
            return CORRUPT;
        n = ipcf_mbox_slot_at(m, next - 1);
        if (n->state != IPCF_SLOT_READY || n->prev != after || n->priority >= s->priority)
            return CORRUPT;
    } else if (c->ready_tail != after) {
        return CORRUPT;
    }
    s->prev = after;
    s->next = next;
    if (n)
        n->prev = self;
    else
        c->ready_tail = self;
    if (a)
        a->next = self;
    else
        c->ready_head = self;
    if (!after && !next) {
        /* the list was empty (the ready_tail check above), and so its cache (emptied by
         * the remove that emptied the list, or a repair): entry 0, no search */
        c->tail_prio[0] = s->priority;
        c->tail_slot[0] = self;
        m->tail_hint = 0;
    } else {
        tail_set(m, s->priority, self);   /* its priority's last: `next` has a lower one (checked) */
    }
    ipcf_add_relaxed(&c->count, 1);               /* (read by len() without the lock) */
    return 0;
}

int ipcf_mbox_ready_remove(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    uint32_t self = i + 1, p = s->prev, nx = s->next;
    /* both neighbours must name used slots that link back to us (or the head / tail must
     * be us), and the list must count us: else unlinking would write through wild links
     * or leave the list cut */
    struct ipcf_mbox_slot *ps = NULL, *ns = NULL;
    if (ipcf_load_relaxed(&c->count) == 0)
        return CORRUPT;
    if (p) {
        if (!ipcf_mbox_link_ok(m, p) || p == self || (ps = ipcf_mbox_slot_at(m, p - 1))->next != self)
            return CORRUPT;
    } else if (c->ready_head != self) {
        return CORRUPT;
    }
    if (nx) {
        if (!ipcf_mbox_link_ok(m, nx) || nx == self || (ns = ipcf_mbox_slot_at(m, nx - 1))->prev != self)
            return CORRUPT;
    } else if (c->ready_tail != self) {
        return CORRUPT;
    }
    int k = tail_find(m, s->priority);
    if (k >= 0 && c->tail_slot[k] == self)       /* it was its priority's last */
        c->tail_slot[k] = (ps && ps->priority == s->priority) ? p : 0;
    if (ps)
        ps->next = nx;
    else
        c->ready_head = nx;
    if (ns)
        ns->prev = p;
    else
        c->ready_tail = p;
    ipcf_sub_relaxed(&c->count, 1);           /* (not 0: checked above) */
    if (c->count == 0)                        /* empty: the cache is complete again */
        ipcf_mbox_tails_reset(c);
    return 0;
}

/* ---- rebuilding the READY list (repair) ----
 * A bottom-up merge sort of the READY slots, linked through their own `next` fields: no
 * allocation, O(n log n) however the slots' seqs and priorities were left. The key is
 * (priority desc, seq asc, index asc): unique, so the order is total. */

static int before(struct ipcf_mbox *m, uint32_t a, uint32_t b)
{
    struct ipcf_mbox_slot *x = ipcf_mbox_slot_at(m, a - 1), *y = ipcf_mbox_slot_at(m, b - 1);
    if (x->priority != y->priority)
        return x->priority > y->priority;
    if (x->seq != y->seq)
        return x->seq < y->seq;
    return a < b;
}

static uint32_t merge(struct ipcf_mbox *m, uint32_t a, uint32_t b)
{
    uint32_t head = 0, *tail = &head;
    while (a && b) {
        uint32_t *from = before(m, b, a) ? &b : &a;
        *tail = *from;
        tail = &ipcf_mbox_slot_at(m, *from - 1)->next;
        *from = *tail;
    }
    *tail = a ? a : b;
    return head;
}

void ipcf_mbox_ready_rebuild(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t hw = ipcf_mbox_hw(m), bins[32] = {0};   /* bins[k]: a sorted run of 2^k slots */
    for (uint32_t k = 0; k < hw; k++) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, k);
        if (s->state != IPCF_SLOT_READY)
            continue;
        s->next = 0;
        uint32_t run = k + 1;
        int b = 0;
        for (; b < 31 && bins[b]; b++) {
            run = merge(m, bins[b], run);
            bins[b] = 0;
        }
        bins[b] = merge(m, bins[b], run);            /* (b == 31 only past 2^31 slots) */
    }
    uint32_t head = 0;
    for (int b = 0; b < 32; b++)
        head = merge(m, bins[b], head);
    /* back links, tail, count and the tail cache, in one pass of at most hw steps */
    uint32_t prev = 0, n = 0;
    for (uint32_t at = head; at && n < hw; n++) {
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, at - 1);
        s->prev = prev;
        if (!s->next || ipcf_mbox_slot_at(m, s->next - 1)->priority != s->priority)
            tail_set(m, s->priority, at);
        prev = at;
        at = s->next;
    }
    c->ready_head = head;
    c->ready_tail = prev;
    ipcf_store_relaxed(&c->count, n);
}
