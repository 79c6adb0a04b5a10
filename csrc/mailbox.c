/* mailbox.c - ipcfast.Mailbox: indirect communication through a named port.
 *
 * One MAILBOX segment: the control block (one robust mutex, three futex events, counters,
 * list heads) and `nslots` slots, each a 128-byte header followed by room for a body of
 * max_message bytes, page aligned so a small message touches one page of a sparse file.
 *
 * Unlike the rings, receivers pick messages out of order (priority, type, addressee), so
 * the state is a slot table with two linked lists (free; ready sorted by priority desc, seq
 * asc) under one mutex. Hold times are short: bodies up to SMALL bytes are copied under the
 * lock, larger ones outside it with the slot marked WRITING/READING by its owner.
 *
 * Crash safety: every slot carries its state and the process word (pid + start time) of
 * whoever holds it, so the lists are derived data. When the lock comes back EOWNERDEAD, or
 * senders find no free slot, mbox_repair() rebuilds the lists from the slots: a dead
 * writer's slot is freed (its message was never visible), a dead reader's message is made
 * READY again (or reported LOST to a sender awaiting its receipt), and receipts whose
 * sender died are dropped. A dead holder of the exclusive right loses it to the next
 * receiver that asks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "atomics.h"
#include "futex.h"
#include "lock.h"
#include "segment.h"

_Static_assert(sizeof(struct ipcf_mbox_ctl) == 888, "mailbox control layout");
_Static_assert(sizeof(struct ipcf_mbox_slot) == 128, "mailbox slot layout");
_Static_assert(IPCF_CTL_OFFSET + sizeof(struct ipcf_mbox_ctl) <= IPCF_HDR_SIZE, "control too big");

#define SMALL 4096          /* bodies up to this size are copied under the lock */
#define PAGE 4096

struct ipcf_mbox {
    struct ipcf_seg seg;
    struct ipcf_mbox_ctl *ctl;
    int closing;               /* closed by some thread: calls return IPCF_ECLOSED */
};

static struct ipcf_mbox_slot *slot_at(struct ipcf_mbox *m, uint32_t i)
{
    return (struct ipcf_mbox_slot *)(m->seg.data + (uint64_t)i * m->ctl->stride);
}

static uint8_t *body_of(struct ipcf_mbox_slot *s)
{
    return (uint8_t *)s + sizeof *s;
}

const struct ipcf_mbox_ctl *ipcf_mbox_ctl(const ipcf_mbox *m) { return m->ctl; }

int ipcf_mbox_create(const char *name, uint64_t capacity, uint32_t max_message,
                     uint32_t max_messages, uint32_t policy, ipcf_mbox **out)
{
    if (policy > IPCF_POLICY_EXCLUSIVE || max_messages == 0 || max_message == 0 ||
        max_message > (1u << 30) || (capacity != IPCF_MB_UNBOUNDED && capacity && capacity < max_message))
        return IPCF_EBADARG;
    uint64_t stride = (sizeof(struct ipcf_mbox_slot) + (uint64_t)max_message + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    uint64_t size = stride * max_messages;
    if (size > IPCF_MAX_CAPACITY)
        return IPCF_EBADARG;
    struct ipcf_mbox *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    uint64_t params[2] = {capacity, max_message};
    int rc = ipcf_seg_create(&m->seg, name, IPCF_KIND_MAILBOX, size, IPCF_F_AUTO_UNLINK, params, 2);
    if (rc) {
        free(m);
        return rc;
    }
    struct ipcf_mbox_ctl *c = m->ctl = m->seg.ctl;
    c->capacity = capacity;
    c->nslots = max_messages;
    c->stride = (uint32_t)stride;
    c->max_message = max_message;
    c->policy = policy;
    c->next_seq = 1;
    if ((rc = ipcf_lock_init(c->lock)) != 0) {
        ipcf_seg_close(&m->seg);
        ipcf_seg_unlink(name);
        free(m);
        return rc;
    }
    ipcf_seg_register(&m->seg);
    ipcf_seg_publish(&m->seg);
    *out = m;
    return 0;
}

int ipcf_mbox_attach(const char *name, ipcf_mbox **out)
{
    struct ipcf_mbox *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = ipcf_seg_open(&m->seg, name, IPCF_KIND_MAILBOX, 1);
    if (rc) {
        free(m);
        return rc;
    }
    m->ctl = m->seg.ctl;
    if (m->ctl->stride < sizeof(struct ipcf_mbox_slot) + m->ctl->max_message ||
        (uint64_t)m->ctl->stride * m->ctl->nslots > m->seg.capacity) {
        ipcf_seg_close(&m->seg);
        free(m);
        return IPCF_ETRUNCATED;
    }
    *out = m;
    return 0;
}

void ipcf_mbox_before_fork(ipcf_mbox *m) { ipcf_seg_before_fork(&m->seg); }
void ipcf_mbox_after_fork(ipcf_mbox *m) { ipcf_seg_after_fork(&m->seg); }
int ipcf_mbox_travel(ipcf_mbox *m, int64_t ttl_ns) { return ipcf_seg_depart(&m->seg, ttl_ns); }
void ipcf_mbox_arrived(ipcf_mbox *m, uint64_t from) { ipcf_seg_arrive(&m->seg, from); }

/* ---- lists (lock held) ---- */

static void free_push(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = slot_at(m, i);
    ipcf_store_release(&s->state, IPCF_SLOT_FREE);
    s->next = c->free_head;
    c->free_head = i + 1;
}

static int64_t free_pop(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (c->free_head) {
        uint32_t i = c->free_head - 1;
        c->free_head = slot_at(m, i)->next;
        return i;
    }
    if (c->high_water < c->nslots)     /* never-used slots: no page touched until now */
        return c->high_water++;
    return -1;
}

/* The tail cache: for each priority present in the READY list (up to 32 of them), its last
 * slot. While it is complete (tails_partial == 0) an insert finds its place among at most 32
 * entries; past 32 distinct priorities inserts walk the list until it next drains. Derived
 * state: mbox_repair rebuilds it. */
static int tail_find(struct ipcf_mbox_ctl *c, int32_t prio)
{
    for (int k = 0; k < 32; k++)
        if (c->tail_slot[k] && c->tail_prio[k] == prio)
            return k;
    return -1;
}

static void tail_set(struct ipcf_mbox_ctl *c, int32_t prio, uint32_t at)
{
    int k = tail_find(c, prio);
    for (int j = 0; k < 0 && j < 32; j++)
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
        for (int k = 0; k < 32; k++)
            if (c->tail_slot[k] && c->tail_prio[k] >= p && c->tail_prio[k] < best_prio) {
                best_prio = c->tail_prio[k];
                best = c->tail_slot[k];
            }
        return best;
    }
    uint32_t after = c->ready_tail;
    while (after && slot_at(m, after - 1)->priority < p)
        after = slot_at(m, after - 1)->prev;
    return after;
}

static void ready_insert(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = slot_at(m, i);
    uint32_t after = insert_after(m, s->priority);
    s->prev = after;
    s->next = after ? slot_at(m, after - 1)->next : c->ready_head;
    if (s->next)
        slot_at(m, s->next - 1)->prev = i + 1;
    else
        c->ready_tail = i + 1;
    if (after)
        slot_at(m, after - 1)->next = i + 1;
    else
        c->ready_head = i + 1;
    if (!s->next || slot_at(m, s->next - 1)->priority != s->priority)
        tail_set(c, s->priority, i + 1);          /* it is its priority's last */
    c->count++;
}

static void ready_remove(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = slot_at(m, i);
    int k = tail_find(c, s->priority);
    if (k >= 0 && c->tail_slot[k] == i + 1) {    /* it was its priority's last */
        uint32_t p = s->prev;
        c->tail_slot[k] = (p && slot_at(m, p - 1)->priority == s->priority) ? p : 0;
    }
    if (s->prev)
        slot_at(m, s->prev - 1)->next = s->next;
    else
        c->ready_head = s->next;
    if (s->next)
        slot_at(m, s->next - 1)->prev = s->prev;
    else
        c->ready_tail = s->prev;
    if (--c->count == 0) {                    /* empty: the cache is complete again */
        memset(c->tail_slot, 0, sizeof c->tail_slot);
        c->tails_partial = 0;
    }
}

/* Give a slot back; a large body's pages beyond the first go back to the system. */
static void release_slot(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_slot *s = slot_at(m, i);
    if (sizeof *s + (uint64_t)s->length > PAGE)
        madvise((uint8_t *)s + PAGE, m->ctl->stride - PAGE, MADV_REMOVE);
    free_push(m, i);
    m->ctl->freed++;
}

/* ---- repair (lock held): rebuild derived state from the slots ---- */

static void mbox_repair(struct ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    c->free_head = c->ready_head = c->ready_tail = 0;
    c->count = 0;
    memset(c->tail_slot, 0, sizeof c->tail_slot);
    c->bytes_held = 0;
    for (uint32_t k = c->high_water; k-- > 0;) {
        struct ipcf_mbox_slot *s = slot_at(m, k);
        switch (s->state) {
        case IPCF_SLOT_WRITING:
            if (ipcf_word_alive(s->owner)) {
                c->bytes_held += s->length;
                c->inflight++;
                continue;
            }
            break;                                  /* never published: drop */
        case IPCF_SLOT_READING:
            if (ipcf_word_alive(s->owner)) {
                c->bytes_held += s->length;
                c->inflight++;
                continue;
            }
            if (s->flags & IPCF_MSG_RECEIPT) {      /* tell the waiting sender */
                ipcf_store_release(&s->state, IPCF_SLOT_LOST);
                continue;
            }
            s->state = IPCF_SLOT_READY;             /* deliver it again */
            /* fall through */
        case IPCF_SLOT_READY:
            if ((s->flags & IPCF_MSG_RECEIPT) && !ipcf_word_alive(s->waiter))
                s->flags &= ~(uint32_t)IPCF_MSG_RECEIPT;   /* nobody left to tell */
            c->bytes_held += s->length;
            continue;                               /* linked below, in seq order */
        case IPCF_SLOT_TAKEN:
        case IPCF_SLOT_LOST:
            if (ipcf_word_alive(s->waiter))
                continue;
            break;                                  /* its sender is gone: drop */
        default:
            break;
        }
        free_push(m, k);
    }
    /* link READY slots; inserting in ascending seq order keeps FIFO within a priority */
    uint32_t n = 0, *idx = malloc(sizeof *idx * (c->high_water ? c->high_water : 1));
    if (idx) {
        for (uint32_t k = 0; k < c->high_water; k++)
            if (slot_at(m, k)->state == IPCF_SLOT_READY)
                idx[n++] = k;
        for (uint32_t a = 1; a < n; a++) {          /* insertion sort by seq: usually sorted */
            uint32_t v = idx[a], b = a;
            while (b > 0 && slot_at(m, idx[b - 1])->seq > slot_at(m, v)->seq) {
                idx[b] = idx[b - 1];
                b--;
            }
            idx[b] = v;
        }
        for (uint32_t a = 0; a < n; a++)
            ready_insert(m, idx[a]);
        free(idx);
    }
    c->repairs++;
    c->freed++;
    c->published++;
    ipcf_event_wake(&c->data);
    ipcf_event_wake(&c->space);
    ipcf_event_wake(&c->receipt);
}

static int mbox_lock(struct ipcf_mbox *m, struct ipcf_timeout *to)
{
    int rc = ipcf_lock(m->ctl->lock, to);
    if (rc == 1) {              /* a process died holding the lock: lists may be half-made */
        mbox_repair(m);
        rc = 0;
    }
    return rc;
}

#define UNLOCK(m) ipcf_unlock((m)->ctl->lock)

/* ---- waiting predicates (no lock) ---- */

struct moved_arg { uint64_t *counter; uint64_t seen; struct ipcf_mbox *m; int *closing; };

static int moved(void *p)
{
    struct moved_arg *a = p;
    if (__atomic_load_n(a->closing, __ATOMIC_RELAXED))
        return IPCF_ECLOSED;
    if (ipcf_load_acquire(a->counter) != a->seen)
        return 1;
    /* receivers waiting for the exclusive right also wake when it is let go */
    return a->m && ipcf_load_acquire(&a->m->ctl->holder) == 0;
}

static int wait_moved(struct ipcf_mbox *m, struct ipcf_event *ev, uint64_t *counter, uint64_t seen,
                      int right, struct ipcf_timeout *to, int nothing)
{
    struct moved_arg a = {counter, seen, right ? m : NULL, &m->closing};
    int rc = ipcf_wait(ev, moved, &a, ipcf_remaining(to), NULL);
    return rc == IPCF_ETIMEOUT ? nothing : (rc < 0 ? rc : 0);
}

/* ---- send ---- */

static int has_room(struct ipcf_mbox_ctl *c, uint64_t len)
{
    if (c->capacity == IPCF_MB_UNBOUNDED || c->capacity == 0)
        return 1;
    return c->bytes_held + len <= c->capacity;
}

static void publish(struct ipcf_mbox *m, uint32_t i)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = slot_at(m, i);
    s->seq = c->next_seq++;
    s->state = IPCF_SLOT_READY;
    ready_insert(m, i);
    ipcf_store_release(&c->published, c->published + 1);
}

int ipcf_mbox_post(ipcf_mbox *m, const char *buf, uint64_t len, int32_t type, int32_t priority,
                   uint64_t sender, uint64_t to, uint32_t flags, int64_t timeout_ns,
                   struct ipcf_msg_info *out)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (m->closing)
        return IPCF_ECLOSED;
    if (len > c->max_message || (c->capacity && c->capacity != IPCF_MB_UNBOUNDED && len > c->capacity))
        return IPCF_ETOOBIG;
    if (c->capacity == 0) {
        flags |= IPCF_MSG_RECEIPT;        /* rendezvous: the sender always waits for pickup */
        if (timeout_ns == 0 && ipcf_load_acquire(&c->receivers_waiting) == 0)
            return IPCF_EFULL;
    }
    struct ipcf_timeout tmo = ipcf_timeout_of(timeout_ns);
    int64_t i;
    for (int repaired = 0;;) {
        int rc = mbox_lock(m, &tmo);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EFULL : rc;
        i = has_room(c, len) ? free_pop(m) : -1;
        /* dead writers or readers may hold slots or room: rebuild once before waiting */
        if (i < 0 && !repaired && (c->high_water == c->nslots || c->inflight)) {
            mbox_repair(m);
            repaired = 1;
            i = has_room(c, len) ? free_pop(m) : -1;
        }
        if (i >= 0)
            break;
        uint64_t seen = c->freed;
        UNLOCK(m);
        if ((rc = wait_moved(m, &c->space, &c->freed, seen, 0, &tmo, IPCF_EFULL)) != 0)
            return rc;
    }
    struct ipcf_mbox_slot *s = slot_at(m, (uint32_t)i);
    uint64_t me = ipcf_self_word();
    s->flags = flags;
    s->length = (uint32_t)len;
    s->type = type;
    s->priority = priority;
    s->sender = sender;
    s->to = to;
    s->sent_at = ipcf_now_ns();
    s->owner = me;
    s->waiter = (flags & IPCF_MSG_RECEIPT) ? me : 0;
    s->receiver = 0;
    s->receiver_pid = 0;
    c->bytes_held += len;
    if (len <= SMALL) {
        memcpy(body_of(s), buf, len);
    } else {
        ipcf_store_release(&s->state, IPCF_SLOT_WRITING);
        c->inflight++;
        UNLOCK(m);
        memcpy(body_of(s), buf, len);     /* outside the lock; the slot is ours */
        mbox_lock(m, NULL);
        if (s->state == IPCF_SLOT_WRITING && s->owner == me)   /* (a repair recounts) */
            c->inflight--;
    }
    publish(m, (uint32_t)i);
    out->slot = (uint32_t)i;
    out->seq = s->seq;
    UNLOCK(m);
    ipcf_event_wake(&c->data);
    return 0;
}

static void fill_receipt(struct ipcf_mbox_slot *s, struct ipcf_msg_info *out)
{
    out->receiver = s->receiver;
    out->receiver_pid = s->receiver_pid;
    out->received_at = s->received_at;
    out->seq = s->seq;
}

/* Lock held: collect the receipt of our slot if it is there. 1 collected, 0 not yet,
 * IPCF_EPEERDEAD if its receiver died reading it. Frees the slot in both final cases. */
static int collect(struct ipcf_mbox *m, uint32_t i, uint64_t seq, struct ipcf_msg_info *out)
{
    struct ipcf_mbox_slot *s = slot_at(m, i);
    if (s->seq != seq)
        return IPCF_ESTATE;
    if (s->state == IPCF_SLOT_READING && !ipcf_word_alive(s->owner)) {
        m->ctl->bytes_held -= s->length;
        s->state = IPCF_SLOT_LOST;
    }
    if (s->state == IPCF_SLOT_TAKEN) {
        fill_receipt(s, out);
        release_slot(m, i);
        return 1;
    }
    if (s->state == IPCF_SLOT_LOST) {
        release_slot(m, i);
        return IPCF_EPEERDEAD;
    }
    return 0;
}

struct receipt_arg { struct ipcf_mbox_slot *s; uint64_t seq; };

static int receipt_ready(void *p)
{
    struct receipt_arg *a = p;
    uint32_t st = ipcf_load_acquire(&a->s->state);
    return a->s->seq != a->seq || st == IPCF_SLOT_TAKEN || st == IPCF_SLOT_LOST;
}

int ipcf_mbox_await(ipcf_mbox *m, uint32_t slot, uint64_t seq, int64_t timeout_ns,
                    struct ipcf_msg_info *out)
{
    if (slot >= m->ctl->nslots)
        return IPCF_EBADARG;
    struct receipt_arg a = {slot_at(m, slot), seq};
    int rc = ipcf_wait(&m->ctl->receipt, receipt_ready, &a, timeout_ns, NULL);
    if (rc < 0 && rc != IPCF_ETIMEOUT)
        return rc;
    if (mbox_lock(m, NULL) < 0)
        return IPCF_ESTATE;
    /* after a timed-out slice, also notice a reader that died holding our message */
    rc = collect(m, slot, seq, out);
    UNLOCK(m);
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
    if (slot >= m->ctl->nslots)
        return IPCF_EBADARG;
    struct ipcf_mbox_slot *s = slot_at(m, slot);
    for (;;) {
        if (mbox_lock(m, NULL) < 0)
            return IPCF_ESTATE;
        int rc = collect(m, slot, seq, out);
        if (rc == 0 && s->state == IPCF_SLOT_READY) {
            ready_remove(m, slot);            /* nobody took it: it never happened */
            m->ctl->bytes_held -= s->length;
            release_slot(m, slot);
        } else if (rc == 0) {                 /* being read right now: wait for the outcome */
            UNLOCK(m);
            struct receipt_arg a = {s, seq};
            ipcf_wait(&m->ctl->receipt, receipt_ready, &a, 10000000, NULL);
            continue;
        }
        UNLOCK(m);
        ipcf_event_wake(&m->ctl->space);
        return rc;
    }
}

/* ---- receive ---- */

/* Lock held. Claim or check the exclusive right: 0 ours, IPCF_EBUSY someone else's. */
static int take_right(struct ipcf_mbox *m, uint64_t me_id)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (c->policy != IPCF_POLICY_EXCLUSIVE)
        return 0;
    uint64_t me = ipcf_self_word();
    if (c->holder == me)
        return 0;
    if (c->holder && ipcf_word_alive(c->holder))
        return IPCF_EBUSY;
    c->holder_id = me_id;
    ipcf_store_release(&c->holder, me);       /* a dead holder's right passes on here */
    return 0;
}

static int64_t find(struct ipcf_mbox *m, uint64_t me, int has_type, int32_t type)
{
    for (uint32_t at = m->ctl->ready_head; at; at = slot_at(m, at - 1)->next) {
        struct ipcf_mbox_slot *s = slot_at(m, at - 1);
        if ((s->to == 0 || s->to == me) && (!has_type || s->type == type))
            return at - 1;
    }
    return -1;
}

/* Lock held: the slot has been read; hand it to its sender or free it. */
static void finish_take(struct ipcf_mbox *m, uint32_t i, uint64_t me, struct ipcf_msg_info *out)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = slot_at(m, i);
    s->receiver = me;
    s->receiver_pid = (int32_t)(ipcf_self_word() & 0xffffffffu);   /* cached: no syscall */
    s->received_at = ipcf_now_ns();
    out->type = s->type;
    out->priority = s->priority;
    out->sender = s->sender;
    out->to = s->to;
    out->seq = s->seq;
    out->length = s->length;
    out->sent_at = s->sent_at;
    fill_receipt(s, out);
    c->bytes_held -= s->length;
    c->taken++;
    if (s->flags & IPCF_MSG_RECEIPT)
        ipcf_store_release(&s->state, IPCF_SLOT_TAKEN);   /* its sender frees it */
    else
        release_slot(m, i);
}

int64_t ipcf_mbox_recv(ipcf_mbox *m, char *buf, uint64_t cap, uint64_t me, int has_type,
                       int32_t type, int wait_right, int64_t timeout_ns, struct ipcf_msg_info *out)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (m->closing)
        return IPCF_ECLOSED;
    struct ipcf_timeout tmo = ipcf_timeout_of(timeout_ns);
    for (;;) {
        int rc = mbox_lock(m, &tmo);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EEMPTY : rc;
        rc = take_right(m, me);
        int64_t i = rc ? -1 : find(m, me, has_type, type);
        if (i >= 0) {
            struct ipcf_mbox_slot *s = slot_at(m, (uint32_t)i);
            if (s->length > cap) {
                out->length = s->length;
                UNLOCK(m);
                return IPCF_EBUFSMALL;
            }
            ready_remove(m, (uint32_t)i);
            uint64_t len = s->length;
            if (len <= SMALL) {
                memcpy(buf, body_of(s), len);
            } else {
                s->owner = ipcf_self_word();
                ipcf_store_release(&s->state, IPCF_SLOT_READING);
                c->inflight++;
                UNLOCK(m);
                memcpy(buf, body_of(s), len);  /* outside the lock; the slot is ours */
                mbox_lock(m, NULL);
                c->inflight--;
            }
            int receipt = s->flags & IPCF_MSG_RECEIPT;
            finish_take(m, (uint32_t)i, me, out);
            UNLOCK(m);
            ipcf_event_wake(receipt ? &c->receipt : &c->space);
            return (int64_t)len;
        }
        if (rc == IPCF_EBUSY && !wait_right) {
            UNLOCK(m);
            return IPCF_EBUSY;
        }
        uint64_t seen = c->published;
        UNLOCK(m);
        __atomic_fetch_add(&c->receivers_waiting, 1, __ATOMIC_SEQ_CST);
        rc = wait_moved(m, &c->data, &c->published, seen, rc == IPCF_EBUSY, &tmo, IPCF_EEMPTY);
        __atomic_fetch_sub(&c->receivers_waiting, 1, __ATOMIC_SEQ_CST);
        if (rc == IPCF_EEMPTY && ipcf_load_relaxed(&c->inflight) && mbox_lock(m, NULL) >= 0) {
            /* nothing came: a reader that died mid-copy may be sitting on a message */
            if (c->inflight)
                mbox_repair(m);
            UNLOCK(m);
        }
        if (rc)
            return rc;
    }
}

int ipcf_mbox_release(ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (c->policy != IPCF_POLICY_EXCLUSIVE)
        return 0;
    if (mbox_lock(m, NULL) < 0)
        return IPCF_ESTATE;
    int had = c->holder == ipcf_self_word();
    if (had) {
        c->holder_id = 0;
        ipcf_store_release(&c->holder, 0);
    }
    UNLOCK(m);
    if (had)
        ipcf_event_wake(&c->data);
    return had;
}

int ipcf_mbox_close(ipcf_mbox *m)
{
    if (__atomic_exchange_n(&m->closing, 1, __ATOMIC_SEQ_CST))
        return 0;
    ipcf_mbox_release(m);
    ipcf_event_wake(&m->ctl->data);
    ipcf_event_wake(&m->ctl->space);
    ipcf_event_wake(&m->ctl->receipt);
    int last = ipcf_seg_leave(&m->seg);
    if (last)
        ipcf_seg_unlink_own(&m->seg, m->seg.name + 1);
    return last;
}

void ipcf_mbox_free(ipcf_mbox *m)
{
    ipcf_mbox_close(m);
    ipcf_seg_unmap(&m->seg);
    free(m);
}
