/* mailbox_recv.c - receiving from a mailbox, and the exclusive receive right. */
#define _GNU_SOURCE
#include <string.h>

#include "host.h"
#include "mailbox.h"
#include "peers.h"

/* Lock held. Claim or check the exclusive right: 0 ours, IPCF_EBUSY someone else's. */
int ipcf_mbox_take_right(struct ipcf_mbox *m, uint64_t me_id)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (m->policy != IPCF_POLICY_EXCLUSIVE)
        return 0;
    uint64_t me = ipcf_self_word();
    if (c->holder == me)
        return 0;
    if (c->holder && ipcf_word_alive(c->holder))
        return IPCF_EBUSY;
    c->holder_id = me_id;
    /* release: receivers waiting for the right read holder without the lock */
    ipcf_store_release(&c->holder, me);       /* a dead holder's right passes on here */
    return 0;
}

/* Lock held: the first READY slot (in delivery order) addressed to `me` or to anyone, of
 * type `type` when has_type; -1 when none; IPCF_ECORRUPT when the list contradicts itself.
 * Each step is checked before its slot is read: a used slot, READY, linking back to the
 * one before; at most nslots steps (more is a cycle). A walk to the end must end at the
 * tail and have counted `count` slots. */
int64_t ipcf_mbox_find(struct ipcf_mbox *m, uint64_t me, int has_type, int32_t type)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    uint32_t at = c->ready_head, prev = 0, steps = 0;
    for (; at; steps++) {
        if (steps >= m->nslots || !ipcf_mbox_link_ok(m, at))
            return IPCF_ECORRUPT;
        struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, at - 1);
        if (s->state != IPCF_SLOT_READY || s->prev != prev)
            return IPCF_ECORRUPT;
        if ((s->to == 0 || s->to == me) && (!has_type || s->type == type))
            return at - 1;
        prev = at;
        at = s->next;
    }
    return c->ready_tail == prev && ipcf_load_relaxed(&c->count) == steps ? -1 : IPCF_ECORRUPT;
}

/* Lock held: the slot, of len bytes, has been read; hand it to its sender or free it. */
void ipcf_mbox_finish_take(struct ipcf_mbox *m, uint32_t i, uint64_t len, uint64_t me,
                        struct ipcf_msg_info *out)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    s->receiver = me;
    s->receiver_pid = (int32_t)(ipcf_self_word() & 0xffffffffu);   /* cached: no syscall */
    s->received_at = ipcf_now_ns();
    out->type = s->type;
    out->priority = s->priority;
    out->sender = s->sender;
    out->to = s->to;
    out->seq = s->seq;
    out->length = len;      /* what was copied (the slot's own may have changed) */
    out->sent_at = s->sent_at;
    ipcf_mbox_fill_receipt(s, out);
    ipcf_mbox_held_sub(c, len);
    ipcf_add_relaxed(&c->taken, 1);
    if (s->flags & IPCF_MSG_RECEIPT)
        /* release: the receipt fields above are visible to a sender that sees TAKEN */
        ipcf_store_release(&s->state, IPCF_SLOT_TAKEN);   /* its sender frees it */
    else
        ipcf_mbox_slot_release(m, i);
}

/* Lock held (and released): copy the body of slot i, READY and already unlinked, of len
 * bytes (<= max_message and the caller's buffer: checked), into buf and take it. */
int64_t ipcf_mbox_take_one(struct ipcf_mbox *m, uint32_t i, uint64_t len, char *buf, uint64_t me,
                    struct ipcf_msg_info *out, struct ipcf_timeout *tmo)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, i);
    if (len <= IPCF_MB_SMALL) {
        memcpy(buf, ipcf_mbox_body(s), len);
    } else {
        ipcf_store_relaxed(&s->owner, ipcf_self_word());
        ipcf_store_release(&s->state, IPCF_SLOT_READING);
        ipcf_add_relaxed(&c->inflight, 1);
        ipcf_mbox_unlock(m);
        ipcf_host_copy(buf, ipcf_mbox_body(s), len);  /* outside the lock; the slot is ours */
        /* bounded (the caller's timeout, at least IPCF_MB_RELOCK_NS): a lock held past it
         * (a stopped process) makes the receive time out; the message is handed back
         * (owner 0: the next repair makes it READY again, receipt or not), not taken */
        struct ipcf_timeout relock = ipcf_mbox_relock_timeout(tmo);
        int rc = ipcf_mbox_lock(m, &relock);
        if (rc == IPCF_ETIMEOUT) {
            ipcf_store_release(&s->owner, 0);
            return IPCF_EEMPTY;
        }
        if (rc < 0)         /* unrecoverable lock: the slot stays READING under our name */
            return rc;
        /* a repair keeps a live reader's slot READING: anything else means the slot was
         * rewritten while we copied it (the copy may be torn, and freeing it again would
         * link it twice) */
        if (s->state != IPCF_SLOT_READING || ipcf_load_relaxed(&s->owner) != ipcf_self_word()) {
            ipcf_mbox_unlock(m);
            return IPCF_ECORRUPT;
        }
        ipcf_mbox_inflight_done(c);           /* (a repair counted ours: we are alive) */
    }
    int receipt = s->flags & IPCF_MSG_RECEIPT;
    ipcf_mbox_finish_take(m, i, len, me, out);
    ipcf_mbox_unlock(m);
    ipcf_event_wake(receipt ? &c->receipt : &c->space);
    return (int64_t)len;
}

int64_t ipcf_mbox_recv(ipcf_mbox *m, char *buf, uint64_t cap, uint64_t me, int has_type,
                       int32_t type, int wait_right, int64_t timeout_ns, struct ipcf_msg_info *out)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (ipcf_mbox_is_closing(m))
        return IPCF_ECLOSED;
    struct ipcf_timeout tmo = ipcf_timeout_of(timeout_ns);
    for (int budget = 1;;) {
        int rc = ipcf_mbox_lock(m, &tmo);
        if (rc < 0)
            return rc == IPCF_ETIMEOUT ? IPCF_EEMPTY : rc;
        rc = ipcf_mbox_take_right(m, me);
        while (!rc) {              /* at most twice: one recovery per call (budget) */
            int64_t i = ipcf_mbox_find(m, me, has_type, type);
            if (i == -1)
                break;             /* nothing for us */
            if (i >= 0) {
                struct ipcf_mbox_slot *s = ipcf_mbox_slot_at(m, (uint32_t)i);
                uint64_t len = s->length;
                if (len > m->max_message) {
                    /* longer than any sender writes (the copy would run past the slot):
                     * the message is dropped (repair frees such slots) and reported */
                    ipcf_mbox_repair(m);
                    ipcf_mbox_unlock(m);
                    return IPCF_ECORRUPT;
                }
                if (len > cap) {
                    out->length = len;
                    ipcf_mbox_unlock(m);
                    return IPCF_EBUFSMALL;
                }
                if (ipcf_mbox_ready_remove(m, (uint32_t)i) == 0)
                    return ipcf_mbox_take_one(m, (uint32_t)i, len, buf, me, out, &tmo);
            }
            /* the READY list contradicts itself: rebuilt from the slots, then looked at
             * again (a second time in this call is reported) */
            int bad = ipcf_mbox_recover(m, &budget);
            if (bad) {
                ipcf_mbox_unlock(m);
                return bad;
            }
        }
        if (rc == IPCF_EBUSY && !wait_right) {
            ipcf_mbox_unlock(m);
            return IPCF_EBUSY;
        }
        uint64_t seen = c->published;
        ipcf_mbox_unlock(m);
        ipcf_fetch_add(&c->receivers_waiting, 1);    /* a rendezvous sender looks at it */
        rc = ipcf_mbox_wait_moved(m, &c->data, &c->published, seen, rc == IPCF_EBUSY, &tmo,
                                  IPCF_EEMPTY);
        ipcf_fetch_sub(&c->receivers_waiting, 1);
        if (rc == IPCF_EEMPTY && ipcf_load_relaxed(&c->inflight) && ipcf_mbox_lock(m, &tmo) >= 0) {
            /* nothing came: a reader that died mid-copy may be sitting on a message (the
             * deadline has passed: one try, as the lock's brief spin allows, never a wait) */
            if (c->inflight)
                ipcf_mbox_repair_if_due(m);
            ipcf_mbox_unlock(m);
        }
        if (rc)
            return rc;
    }
}

int ipcf_mbox_release(ipcf_mbox *m)
{
    struct ipcf_mbox_ctl *c = m->ctl;
    if (m->policy != IPCF_POLICY_EXCLUSIVE)
        return 0;
    if (ipcf_mbox_lock(m, NULL) < 0)
        return IPCF_ESTATE;
    int had = c->holder == ipcf_self_word();
    if (had) {
        c->holder_id = 0;
        ipcf_store_release(&c->holder, 0);
    }
    ipcf_mbox_unlock(m);
    if (had)
        ipcf_event_wake(&c->data);
    return had;
}

_Static_assert(sizeof(struct ipcf_msg_info) == IPCF_MSG_HEAD, "IPCF_MSG_HEAD: the header's size");
_Static_assert(IPCF_MSG_HEAD % 8 == 0, "the body after the header stays 8-byte aligned");

int64_t ipcf_mbox_take(ipcf_mbox *m, char *buf, uint64_t cap, int64_t timeout_ns)
{
    if (cap < IPCF_MSG_HEAD || ((uintptr_t)buf & 7u))
        return IPCF_EBADARG;
    return ipcf_mbox_recv(m, buf + IPCF_MSG_HEAD, cap - IPCF_MSG_HEAD, ipcf_mbox_self_id(m), 0, 0,
                          0, timeout_ns, (struct ipcf_msg_info *)(void *)buf);
}

int64_t ipcf_mbox_take1(struct ipcf_recv_args *a)
{
    return ipcf_mbox_take(a->handle, a->buf, a->cap, a->timeout_ns);
}
