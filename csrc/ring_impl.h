/* ring_impl.h - private to ring.c and ring_inplace.c: the Ring handle and the two
 * primitives every send and receive form is built from. */
#ifndef IPCF_RING_IMPL_H
#define IPCF_RING_IMPL_H

#include "futex.h"
#include "ipcfast.h"
#include "lock.h"
#include "pipe.h"
#include "ring.h"
#include "shm.h"

struct ipcf_ring {
    struct ipcf_seg seg;
    struct ipcf_rb rb;
    struct ipcf_ring_ctl *ctl;
    uint32_t flags;
    uint64_t max_msg;
    int claimed;                 /* a claim is open: producer side held (relaxed atomics: other
                                    threads of this process read it without the lock) */
    uint64_t claim_len;          /* an open claim: its size (UINT64_MAX: a batch claim of */
    uint64_t claim_n;            /* claim_n records, claim_bytes bytes of records in all,
                                    claim_payload of bodies) */
    uint64_t claim_bytes;
    uint64_t claim_payload;
    struct ipcf_pipe pipe;       /* IPCF_F_PIPE: the ends this handle holds (pipe.c) */
    int peeked;                  /* a view is open: consumer side held (relaxed atomics) */
    int closing;                 /* closed by some thread: calls return IPCF_ECLOSED (atomic) */
    uint64_t peek_next;          /* an open view: the head after it, its messages and bytes */
    uint64_t peek_n;
    uint64_t peek_len;
    uint32_t last_tag;           /* the tag of the record last received (consumer side) */
};

/* Set by close on any thread, read by calls on others: relaxed, it only needs atomicity
 * (close also wakes every sleeper, and the wait predicates re-read it). */
static inline int is_closing(struct ipcf_ring *r)
{
    return ipcf_load_relaxed(&r->closing);
}

static inline int is_pipe(const struct ipcf_ring *r)
{
    return r->flags & IPCF_F_PIPE;
}

/* ---- side locks ---- */

static inline int lock_side(struct ipcf_ring *r, uint32_t flag, void *slot, struct ipcf_timeout *to)
{
    return (r->flags & flag) ? ipcf_lock(slot, to) : 0;
}

static inline void unlock_side(struct ipcf_ring *r, uint32_t flag, void *slot)
{
    if (r->flags & flag)
        ipcf_unlock(slot);
}

#define LOCK_P(r, d)  lock_side((r), IPCF_F_MULTI_PRODUCER, (r)->ctl->plock, (d))
#define UNLOCK_P(r)   unlock_side((r), IPCF_F_MULTI_PRODUCER, (r)->ctl->plock)
#define LOCK_C(r, d)  lock_side((r), IPCF_F_MULTI_CONSUMER, (r)->ctl->clock, (d))
#define UNLOCK_C(r)   unlock_side((r), IPCF_F_MULTI_CONSUMER, (r)->ctl->clock)

/* Take the producer side (its lock, when shared) with room for `need` bytes of records,
 * waiting for room up to the timeout. On 0 the side is held and *tail is where to write. */
int ipcf_ring_acquire_room(struct ipcf_ring *r, uint64_t need, struct ipcf_timeout *to,
                           uint64_t *tail);

/* Take the consumer side (its lock, when shared) with a record at its head, waiting for one
 * up to the timeout. On 0 the side is held and *head, *body, *len describe the record. */
int ipcf_ring_acquire_record(struct ipcf_ring *r, struct ipcf_timeout *to, uint64_t *head,
                             uint8_t **body, uint32_t *len);

#endif
