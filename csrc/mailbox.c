/* mailbox.c - ipcfast.Mailbox: indirect communication through a named port. This file:
 * create, attach, close, travel, the accessors, and waiting; see mailbox.h for the design
 * and the other mailbox files. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "poll.h"
#include "mailbox.h"
#include "peers.h"

uint64_t ipcf_mbox_stride(uint32_t max_message)
{
    uint64_t page = IPCF_MB_PAGE;
    return (sizeof(struct ipcf_mbox_slot) + (uint64_t)max_message + page - 1) & ~(page - 1);
}

int ipcf_mbox_create(const char *name, uint64_t capacity, uint32_t max_message,
                     uint32_t max_messages, uint32_t policy, ipcf_mbox **out)
{
    if (policy > IPCF_POLICY_EXCLUSIVE || max_messages == 0 || max_message == 0 ||
        max_message > (1u << 30) || (capacity != IPCF_MB_UNBOUNDED && capacity && capacity < max_message))
        return IPCF_EBADARG;
    uint64_t stride = ipcf_mbox_stride(max_message);
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
    /* a fresh file nobody may read before the magic: plain stores */
    struct ipcf_mbox_ctl *c = m->ctl = m->seg.ctl;
    c->capacity = capacity;
    c->nslots = max_messages;
    c->stride = (uint32_t)stride;
    c->max_message = max_message;
    c->policy = policy;
    c->next_seq = 1;
    m->capacity = capacity;
    m->nslots = max_messages;
    m->stride = (uint32_t)stride;
    m->max_message = max_message;
    m->policy = policy;
    if ((rc = ipcf_lock_init(c->lock)) != 0) {
        ipcf_seg_unmap(&m->seg);
        ipcf_seg_unlink(name);
        free(m);
        return rc;
    }
    ipcf_seg_register(&m->seg);
    ipcf_seg_publish(&m->seg);
    *out = m;
    return 0;
}

/* Attach: copy the fixed parameters into the handle, once, after checking that they are
 * what ipcf_mbox_create writes and that the slots fit the mapping; everything afterwards
 * reads the copies. IPCF_ECORRUPT for any disagreement. */
static int load_params(struct ipcf_mbox *m)
{
    const struct ipcf_mbox_ctl *c = m->ctl;
    uint64_t capacity = c->capacity;
    uint32_t nslots = c->nslots, stride = c->stride, max_message = c->max_message;
    uint32_t policy = c->policy;
    if (max_message == 0 || max_message > (1u << 30) || stride != ipcf_mbox_stride(max_message))
        return IPCF_ECORRUPT;                 /* (bounds first: the stride is computed) */
    /* (the file's size was checked against the header's capacity by ipcf_seg_open: slots
     * that disagree with that capacity are the control block's fault, not a short file) */
    if (nslots == 0 || (uint64_t)stride * nslots != m->seg.capacity)
        return IPCF_ECORRUPT;
    if (policy > IPCF_POLICY_EXCLUSIVE ||
        (capacity != IPCF_MB_UNBOUNDED && capacity && capacity < max_message) ||
        m->seg.hdr->param[0] != capacity || m->seg.hdr->param[1] != max_message)
        return IPCF_ECORRUPT;                 /* (the header keeps capacity and max_message too) */
    m->capacity = capacity;
    m->nslots = nslots;
    m->stride = stride;
    m->max_message = max_message;
    m->policy = policy;
    return 0;
}

/* How long attach waits for the lock to look at the derived state: hold times are
 * microseconds, so a lock held longer belongs to a stopped process; attach then skips the
 * look (every operation checks what it reads anyway) rather than wait without a bound. */
#define ATTACH_LOCK_NS 200000000

/* Attach, lock held: every list head, the tail cache and the counts lie where
 * ipcf_mbox_create and the operations can put them. (A lock whose owner died was repaired
 * by ipcf_mbox_lock first: what a dead process left half-done is mended, not reported.)
 * 0 or IPCF_ECORRUPT. */
static int check_state(struct ipcf_mbox *m)
{
    const struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t hw = ipcf_load_relaxed(&c->high_water), n = m->nslots;
    if (hw > n)
        return IPCF_ECORRUPT;
#define LINK_OK(l) ((l) <= hw)               /* index + 1 of a used slot, or 0 = none */
    if (!LINK_OK(c->free_head) || !LINK_OK(c->ready_head) || !LINK_OK(c->ready_tail) ||
        (c->ready_head == 0) != (c->ready_tail == 0))
        return IPCF_ECORRUPT;
    for (int k = 0; k < IPCF_MB_TAILS; k++)
        if (!LINK_OK(c->tail_slot[k]) || (c->tail_slot[k] && c->ready_head == 0))
            return IPCF_ECORRUPT;
#undef LINK_OK
    uint32_t count = ipcf_load_relaxed(&c->count), inflight = ipcf_load_relaxed(&c->inflight);
    if (count > hw || (count == 0) != (c->ready_head == 0) || inflight > hw ||
        count + inflight > hw || c->tails_partial > 1 || c->next_seq == 0)
        return IPCF_ECORRUPT;
    if (m->policy != IPCF_POLICY_EXCLUSIVE && ipcf_load_relaxed(&c->holder) != 0)
        return IPCF_ECORRUPT;                /* only an exclusive mailbox has a holder */
    return 0;
}

static int check_attached(struct ipcf_mbox *m)
{
    struct ipcf_timeout t = ipcf_timeout_of(ATTACH_LOCK_NS);
    int rc = ipcf_mbox_lock(m, &t);
    if (rc == IPCF_ETIMEOUT)
        return 0;                            /* held by a stopped process: see above */
    if (rc < 0)
        return rc;                           /* not a mutex any more: IPCF_ECORRUPT */
    rc = check_state(m);
    ipcf_mbox_unlock(m);
    return rc;
}

/* Inspection (no lock, not joined): the fixed parameters as attach checks them, and each
 * link and count on its own within nslots (true at every instant of a live mailbox). */
const char *ipcf_mbox_check_seg(const struct ipcf_seg *s)
{
    struct ipcf_mbox m;
    memset(&m, 0, sizeof m);
    m.seg = *s;                              /* a view: never closed or unmapped */
    m.ctl = s->ctl;
    if (load_params(&m) != 0)
        return "mailbox parameters disagree with each other or with the file";
    const struct ipcf_mbox_ctl *c = m.ctl;
    uint32_t n = m.nslots;
    if (!ipcf_lock_sane((const pthread_mutex_t *)c->lock))
        return "mailbox lock is not a mutex ipcfast made";
    if (ipcf_load_relaxed(&c->high_water) > n || ipcf_load_relaxed(&c->free_head) > n ||
        ipcf_load_relaxed(&c->ready_head) > n || ipcf_load_relaxed(&c->ready_tail) > n)
        return "mailbox list head past its slots";
    for (int k = 0; k < IPCF_MB_TAILS; k++)
        if (ipcf_load_relaxed(&c->tail_slot[k]) > n)
            return "mailbox priority tail cache past its slots";
    if (ipcf_load_relaxed(&c->count) > n || ipcf_load_relaxed(&c->inflight) > n)
        return "mailbox counts more messages than slots";
    return NULL;
}

int ipcf_mbox_attach(const char *name, ipcf_mbox **out)
{
    struct ipcf_mbox *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = ipcf_seg_open(&m->seg, name, IPCF_KIND_MAILBOX);
    if (rc) {
        free(m);
        return rc;
    }
    m->ctl = m->seg.ctl;
    if ((rc = load_params(m)) != 0 || (rc = check_attached(m)) != 0) {
        ipcf_seg_unmap(&m->seg);
        free(m);
        return rc;
    }
    ipcf_seg_register(&m->seg);
    *out = m;
    return 0;
}

int ipcf_mbox_close(ipcf_mbox *m)
{
    if (ipcf_exchange(&m->closing, 1))
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

void ipcf_mbox_before_fork(ipcf_mbox *m) { ipcf_seg_before_fork(&m->seg); }
void ipcf_mbox_after_fork(ipcf_mbox *m) { ipcf_seg_after_fork(&m->seg); }
int ipcf_mbox_depart(ipcf_mbox *m, int64_t ttl_ns) { return ipcf_seg_depart(&m->seg, ttl_ns); }
void ipcf_mbox_arrive(ipcf_mbox *m, uint64_t from) { ipcf_seg_arrive(&m->seg, from); }

/* ---- accessors: fixed fields from the handle's checked copies, counters relaxed ---- */

uint64_t ipcf_mbox_capacity(const ipcf_mbox *m) { return m->capacity; }
uint32_t ipcf_mbox_max_message(const ipcf_mbox *m) { return m->max_message; }
uint32_t ipcf_mbox_max_messages(const ipcf_mbox *m) { return m->nslots; }
uint32_t ipcf_mbox_policy(const ipcf_mbox *m) { return m->policy; }
uint32_t ipcf_mbox_count(const ipcf_mbox *m) { return ipcf_load_relaxed(&m->ctl->count); }
uint64_t ipcf_mbox_bytes_held(const ipcf_mbox *m) { return ipcf_load_relaxed(&m->ctl->bytes_held); }

static void stats_of(const struct ipcf_mbox_ctl *c, struct ipcf_mbox_stats *out)
{
    out->bytes_held = ipcf_load_relaxed(&c->bytes_held);
    out->published = ipcf_load_relaxed(&c->published);
    out->taken = ipcf_load_relaxed(&c->taken);
    out->freed = ipcf_load_relaxed(&c->freed);
    out->count = ipcf_load_relaxed(&c->count);
    out->high_water = ipcf_load_relaxed(&c->high_water);
    out->inflight = ipcf_load_relaxed(&c->inflight);
    out->repairs = ipcf_load_relaxed(&c->repairs);
    out->receivers_waiting = ipcf_load_relaxed(&c->receivers_waiting);
    out->holder_pid = (int32_t)(ipcf_load_relaxed(&c->holder) & 0xffffffffu);
}

void ipcf_mbox_stats(const ipcf_mbox *m, struct ipcf_mbox_stats *out)
{
    stats_of(m->ctl, out);
}

void ipcf_mbox_counters(const void *ctl, uint64_t out[IPCF_COUNTERS])
{
    struct ipcf_mbox_stats st;
    stats_of(ctl, &st);
    uint64_t v[IPCF_COUNTERS] = {st.count, st.bytes_held, st.published, st.taken, st.freed,
                                 st.repairs, st.receivers_waiting, (uint32_t)st.holder_pid};
    memcpy(out, v, sizeof v);
}

/* ---- waiting (no lock held) ---- */

/* Set by close on any thread, read by calls on others: relaxed, it only needs atomicity
 * (close also wakes every sleeper, and the wait predicates re-read it). */
int ipcf_mbox_is_closing(struct ipcf_mbox *m)
{
    return ipcf_load_relaxed(&m->closing);
}

struct moved_arg { uint64_t *counter; uint64_t seen; struct ipcf_mbox *m; int right; };

static int moved(void *p)
{
    struct moved_arg *a = p;
    if (ipcf_mbox_is_closing(a->m))
        return IPCF_ECLOSED;
    /* acquire: pairs with ipcf_mbox_bump's release (the waiter then re-takes the lock) */
    if (ipcf_load_acquire(a->counter) != a->seen)
        return 1;
    /* receivers waiting for the exclusive right also wake when it is let go */
    return a->right && ipcf_load_acquire(&a->m->ctl->holder) == 0;
}

int ipcf_mbox_wait_moved(struct ipcf_mbox *m, struct ipcf_event *ev, uint64_t *counter,
                         uint64_t seen, int right, struct ipcf_timeout *to, int nothing)
{
    struct moved_arg a = {counter, seen, m, right};
    int rc = ipcf_wait(ev, moved, &a, ipcf_remaining(to), NULL);
    return rc == IPCF_ETIMEOUT ? nothing : (rc < 0 ? rc : 0);
}

/* The event a file-descriptor poller of this mailbox watches (poll.c): receivers' only. */
struct ipcf_event *ipcf_mbox_event(ipcf_mbox *m, int what)
{
    return &m->ctl->data;
}
