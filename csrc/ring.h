/* ring.h - the lock-free single-producer / single-consumer byte ring underneath both Ring
 * and Queue.
 *
 * Shared state is two free-running 64-bit byte positions on their own cache lines
 * (struct ipcf_ring_ctl): `tail`, written only by the producer, and `head`, written only by
 * the consumer. They are compared only by unsigned difference, so they never wrap in
 * practice (2^64 bytes). A record is an 8-byte header (uint32 length, uint32 tag: 0, or
 * IPCF_TAG_* on the parts of a pipe message larger than one record)
 * followed by the body, padded to 8 bytes. Because the data area is mapped twice back to
 * back (shm.h), a record is always contiguous, even across the end of the ring.
 *
 * Publication: the producer copies the whole record, then store-releases the new tail; the
 * consumer load-acquires tail before reading a header or body. A record is therefore never
 * seen torn, and a producer that dies mid-copy leaves nothing visible. Symmetrically the
 * consumer store-releases head after it has finished reading, and the producer load-acquires
 * head before overwriting. Each side keeps a process-local cached copy of the other's
 * position (rigtorp's trick) and only touches the other's cache line when the cache says
 * full/empty. A stale cache is always conservative: positions only grow.
 *
 * Several producers (or consumers) share a side by taking that side's robust lock
 * (lock.h); between the two sides nothing is locked.
 */
#ifndef IPCF_RING_H
#define IPCF_RING_H

#include <string.h>
#include "atomics.h"
#include "host.h"
#include "layout.h"

struct ipcf_rb {
    struct ipcf_ring_ctl *ctl;
    uint8_t *data;                 /* double-mapped: data[i] == data[i + cap] */
    uint64_t cap;
    uint64_t head_cache;           /* producer's last view of head */
    uint64_t tail_cache;           /* consumer's last view of tail */
};

static inline uint64_t ipcf_rec_size(uint64_t len)
{
    return (IPCF_REC_HDR + len + 7) & ~(uint64_t)7;
}

static inline uint64_t ipcf_rb_max_message(uint64_t cap)
{
    uint64_t m = cap - IPCF_REC_HDR;
    return m > 0xfffffff0u ? 0xfffffff0u : m;   /* the length field is 32 bits */
}

/* Producer: is there room for `need` bytes at the current tail? */
static inline int ipcf_rb_room(struct ipcf_rb *b, uint64_t tail, uint64_t need)
{
    if (need > b->cap)
        return 0;
    if (tail - b->head_cache > b->cap - need) {
        /* acquire: pairs with the consumer's release of head; the bytes before it are no
         * longer being read, so we may overwrite them */
        b->head_cache = ipcf_load_acquire(&b->ctl->head);
        if (tail - b->head_cache > b->cap - need)
            return 0;
    }
    return 1;
}

static inline uint64_t ipcf_rb_tail(struct ipcf_rb *b)
{
    return ipcf_load_relaxed(&b->ctl->tail);   /* only the (locked) producer writes it */
}

/* Write a record whose header's second word is `tag` (IPCF_TAG_*: the parts of a pipe
 * message too large for one record; 0 for every other record). */
static inline uint64_t ipcf_rb_write_tagged(struct ipcf_rb *b, uint64_t pos, const void *src,
                                            uint64_t len, uint32_t tag)
{
    uint8_t *p = b->data + (pos & (b->cap - 1));
    uint32_t h[2] = {(uint32_t)len, tag};
    memcpy(p, h, sizeof h);
    ipcf_host_copy(p + IPCF_REC_HDR, src, len);
    return pos + ipcf_rec_size(len);
}

static inline uint64_t ipcf_rb_write(struct ipcf_rb *b, uint64_t pos, const void *src, uint64_t len)
{
    return ipcf_rb_write_tagged(b, pos, src, len, 0);
}

/* The scatter form of ipcf_rb_write: one record whose body is `n` pieces back to back
 * (`len` bytes in all), so a pickle stream's chunks go into the ring without being joined
 * into one buffer first. */
static inline uint64_t ipcf_rb_writev(struct ipcf_rb *b, uint64_t pos, const char *const *bufs,
                                      const uint64_t *lens, uint64_t n, uint64_t len)
{
    uint8_t *p = b->data + (pos & (b->cap - 1));
    uint32_t h[2] = {(uint32_t)len, 0};
    memcpy(p, h, sizeof h);
    p += IPCF_REC_HDR;
    for (uint64_t i = 0, done = 0; i < n; done += lens[i], i++) {
        ipcf_host_copy_more(p, bufs[i], lens[i], done);
        p += lens[i];
    }
    return pos + ipcf_rec_size(len);
}

static inline void ipcf_rb_publish(struct ipcf_rb *b, uint64_t new_tail, uint64_t msgs, uint64_t bytes)
{
    struct ipcf_ring_ctl *c = b->ctl;
    ipcf_add_relaxed(&c->msgs_in, msgs);       /* statistics: the producer is their writer */
    ipcf_add_relaxed(&c->bytes_in, bytes);
    /* release: publishes the record bytes written before; pairs with the consumer's
     * acquire of tail in ipcf_rb_next */
    ipcf_store_release(&c->tail, new_tail);
}

/* Consumer: 1 with the record at `head`, 0 when empty, IPCF_ECORRUPT when the positions or
 * the record's length cannot be (the segment is shared memory: a buggy or hostile process
 * may have written anything). The checks compare values already in registers: positions
 * are 8-aligned, tail - head is within the capacity, and a record (header + padded body)
 * fits in what the producer published. */
static inline int ipcf_rb_next(struct ipcf_rb *b, uint64_t head, uint8_t **body, uint32_t *len)
{
    uint64_t avail = b->tail_cache - head;
    if ((int64_t)avail <= 0) {
        /* acquire: pairs with the producer's release of tail; the record is fully written */
        b->tail_cache = ipcf_load_acquire(&b->ctl->tail);
        avail = b->tail_cache - head;
        if (avail == 0)
            return 0;
    }
    if (avail > b->cap || ((head | avail) & 7))
        return IPCF_ECORRUPT;       /* head past tail, more than a ring's worth, misaligned */
    uint8_t *p = b->data + (head & (b->cap - 1));
    memcpy(len, p, sizeof *len);
    if (ipcf_rec_size(*len) > avail)
        return IPCF_ECORRUPT;       /* a length reaching past the published bytes */
    *body = p + IPCF_REC_HDR;
    return 1;
}

/* The tag word of the record whose body ipcf_rb_next returned. */
static inline uint32_t ipcf_rb_tag(const uint8_t *body)
{
    uint32_t tag;
    memcpy(&tag, body - IPCF_REC_HDR + 4, sizeof tag);
    return tag;
}

static inline uint64_t ipcf_rb_head(struct ipcf_rb *b)
{
    return ipcf_load_relaxed(&b->ctl->head);   /* only the (locked) consumer writes it */
}

static inline void ipcf_rb_consume(struct ipcf_rb *b, uint64_t new_head, uint64_t msgs, uint64_t bytes)
{
    struct ipcf_ring_ctl *c = b->ctl;
    ipcf_add_relaxed(&c->msgs_out, msgs);      /* statistics: the consumer is their writer */
    ipcf_add_relaxed(&c->bytes_out, bytes);
    /* release: our reads of the consumed bytes happen before the producer may reuse them;
     * pairs with the producer's acquire of head in ipcf_rb_room */
    ipcf_store_release(&c->head, new_head);
}

/* Lock-free predicates for waiting (no side lock held). */
static inline int ipcf_rb_has_data(struct ipcf_ring_ctl *c)
{
    return ipcf_load_acquire(&c->tail) != ipcf_load_acquire(&c->head);
}

static inline int ipcf_rb_has_room(struct ipcf_ring_ctl *c, uint64_t cap, uint64_t need)
{
    return ipcf_load_relaxed(&c->tail) - ipcf_load_acquire(&c->head) <= cap - need;
}

#endif
