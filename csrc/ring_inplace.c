/* ring_inplace.c - a Ring's in-place forms: claim/commit/abort (write a message where it
 * will be read) and peek/release/unpeek (read one where it was written), one message or a
 * batch at a time. Between the two calls of a pair the side is held: nothing of a claim is
 * visible before its commit, and a viewed message stays until its release. */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>

#include "ring_impl.h"

int ipcf_ring_claim(ipcf_ring *r, uint64_t len, int64_t timeout_ns, char **out)
{
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t tail;
    int rc = len > r->max_msg ? IPCF_ETOOBIG : ipcf_ring_acquire_room(r, ipcf_rec_size(len), &to, &tail);
    if (rc)
        return rc;
    /* keep the producer side until commit/abort; nothing is visible until then */
    ipcf_store_relaxed(&r->claimed, 1);
    r->claim_len = len;
    *out = (char *)r->rb.data + (tail & (r->rb.cap - 1)) + IPCF_REC_HDR;
    return 0;
}

int ipcf_ring_commit(ipcf_ring *r, uint64_t len)
{
    if (!ipcf_load_relaxed(&r->claimed) || len > r->claim_len || r->claim_len == UINT64_MAX)
        return ipcf_load_relaxed(&r->claimed) ? IPCF_EBADARG : IPCF_ESTATE;
    uint64_t tail = ipcf_rb_tail(&r->rb);
    uint8_t *p = r->rb.data + (tail & (r->rb.cap - 1));
    uint32_t h[2] = {(uint32_t)len, 0};
    memcpy(p, h, sizeof h);
    ipcf_rb_publish(&r->rb, tail + ipcf_rec_size(len), 1, len);
    ipcf_store_relaxed(&r->claimed, 0);
    UNLOCK_P(r);
    ipcf_event_wake(&r->ctl->data);
    return 0;
}

int ipcf_ring_abort(ipcf_ring *r)
{
    if (!ipcf_load_relaxed(&r->claimed))
        return IPCF_ESTATE;
    ipcf_store_relaxed(&r->claimed, 0);         /* tail never moved: the claimed bytes were never visible */
    UNLOCK_P(r);
    return 0;
}

int ipcf_ring_claim_many(ipcf_ring *r, const uint64_t *lens, uint64_t n, int64_t timeout_ns,
                         char **out)
{
    if (n == 0)
        return IPCF_EBADARG;
    uint64_t need = 0, payload = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (lens[i] > r->max_msg)
            return IPCF_ETOOBIG;
        payload += lens[i];
        need += ipcf_rec_size(lens[i]);
        if (need > r->rb.cap)
            return IPCF_ETOOBIG;       /* can never fit at once */
    }
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t tail;
    int rc = ipcf_ring_acquire_room(r, need, &to, &tail);
    if (rc)
        return rc;
    /* the headers now, the bodies by the caller; nothing is visible before commit moves
     * tail (the double mapping keeps every record contiguous) */
    uint8_t *p = r->rb.data + (tail & (r->rb.cap - 1));
    for (uint64_t i = 0; i < n; i++) {
        uint32_t h[2] = {(uint32_t)lens[i], 0};
        memcpy(p, h, sizeof h);
        p += ipcf_rec_size(lens[i]);
    }
    ipcf_store_relaxed(&r->claimed, 1);
    r->claim_len = UINT64_MAX;        /* commit_many only */
    r->claim_n = n;
    r->claim_bytes = need;
    r->claim_payload = payload;
    *out = (char *)r->rb.data + (tail & (r->rb.cap - 1));
    return 0;
}

int ipcf_ring_commit_many(ipcf_ring *r)
{
    if (!ipcf_load_relaxed(&r->claimed) || r->claim_len != UINT64_MAX)
        return ipcf_load_relaxed(&r->claimed) ? IPCF_EBADARG : IPCF_ESTATE;
    uint64_t tail = ipcf_rb_tail(&r->rb);
    ipcf_rb_publish(&r->rb, tail + r->claim_bytes, r->claim_n, r->claim_payload);
    ipcf_store_relaxed(&r->claimed, 0);
    UNLOCK_P(r);
    ipcf_event_wake(&r->ctl->data);
    return 0;
}

int ipcf_ring_peek(ipcf_ring *r, int64_t timeout_ns, char **ptr, uint64_t *len_out)
{
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t head;
    uint8_t *body;
    uint32_t len;
    int rc = ipcf_ring_acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    /* keep the consumer side until release; the producer cannot reuse these bytes because
     * head has not moved */
    ipcf_store_relaxed(&r->peeked, 1);
    r->peek_next = head + ipcf_rec_size(len);
    r->peek_n = 1;
    r->peek_len = len;
    *ptr = (char *)body;
    *len_out = len;
    return 0;
}

int ipcf_ring_release(ipcf_ring *r)
{
    if (!ipcf_load_relaxed(&r->peeked))
        return IPCF_ESTATE;
    ipcf_rb_consume(&r->rb, r->peek_next, r->peek_n, r->peek_len);
    ipcf_store_relaxed(&r->peeked, 0);
    UNLOCK_C(r);
    ipcf_event_wake(&r->ctl->space);
    return 0;
}

int ipcf_ring_unpeek(ipcf_ring *r)
{
    if (!ipcf_load_relaxed(&r->peeked))
        return IPCF_ESTATE;
    ipcf_store_relaxed(&r->peeked, 0);          /* head never moved: the record stays for the next reader */
    UNLOCK_C(r);
    return 0;
}

int64_t ipcf_ring_peek_many(ipcf_ring *r, uint64_t max, int64_t timeout_ns, char **first,
                            uint64_t *lens)
{
    if (max == 0)
        return IPCF_EBADARG;
    struct ipcf_timeout to = ipcf_timeout_of(timeout_ns);
    uint64_t head;
    uint8_t *body;
    uint32_t len;
    int rc = ipcf_ring_acquire_record(r, &to, &head, &body, &len);
    if (rc)
        return rc;
    *first = (char *)body - IPCF_REC_HDR;
    uint64_t n = 0, pos = head, bytes = 0;
    do {     /* every record checked against what the producer published (ipcf_rb_next) */
        lens[n++] = len;
        bytes += len;
        pos += ipcf_rec_size(len);
    } while (n < max && ipcf_rb_next(&r->rb, pos, &body, &len) > 0);
    ipcf_store_relaxed(&r->peeked, 1);
    r->peek_next = pos;
    r->peek_n = n;
    r->peek_len = bytes;
    return (int64_t)n;
}
