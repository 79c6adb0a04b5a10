/* segment.h - POSIX shared-memory segments: create (O_EXCL, 0600), attach (validated),
 * detach, unlink, and the peer table that says which processes are attached.
 *
 * A segment is one file in /dev/shm: a 4 KiB header page (struct ipcf_seg_hdr, then a
 * kind-specific control block at IPCF_CTL_OFFSET) followed by `capacity` data bytes.
 * The data bytes are mapped twice, back to back, so a record that wraps around the end of
 * the ring is still contiguous in our address space: no padding records, no split copies.
 */
#ifndef IPCF_SEGMENT_H
#define IPCF_SEGMENT_H

#include <stddef.h>
#include "ipcfast.h"

struct ipcf_seg {
    void *base;                 /* start of our reservation: header page */
    size_t map_len;             /* bytes reserved: header + 2 * capacity */
    struct ipcf_seg_hdr *hdr;
    void *ctl;                  /* kind-specific control block */
    uint8_t *data;              /* double-mapped data, NULL when capacity == 0 */
    uint64_t capacity;
    int registered;             /* this handle counts in our process's peer entry */
    uint64_t dev, ino;          /* identity of our file: the name may be reused after unlink */
    uint64_t fork_from;         /* our process word before a fork (the child arrives with it) */
    char name[IPCF_NAME_MAX + 2];   /* "/" + name */
};

int ipcf_seg_create(struct ipcf_seg *s, const char *name, uint32_t kind, uint64_t capacity,
                    uint32_t flags, const uint64_t *params, int nparams);
/* The caller of create initialises its control block, then publishes (magic last). */
void ipcf_seg_publish(struct ipcf_seg *s);
/* kind 0 accepts any kind; join registers this process in the peer table. */
int ipcf_seg_open(struct ipcf_seg *s, const char *name, uint32_t kind, int join);
/* Leave the peer table. Returns 1 if no live process remains attached and the segment has
 * IPCF_F_AUTO_UNLINK (the caller then unlinks whatever belongs to it), else 0. The mapping
 * stays until ipcf_seg_unmap, so threads still inside a call are safe. */
int ipcf_seg_leave(struct ipcf_seg *s);
void ipcf_seg_unmap(struct ipcf_seg *s);
int ipcf_seg_close(struct ipcf_seg *s);       /* leave + unmap, for error paths */
/* Unlink `name` only if it still names this segment's file (not a newer one reusing it). */
int ipcf_seg_unlink_own(struct ipcf_seg *s, const char *name);
void ipcf_seg_register(struct ipcf_seg *s);   /* take a peer slot (also used after fork) */
uint64_t ipcf_now_ns(void);                   /* CLOCK_MONOTONIC */

/* Tables of attached processes, each entry (start_ticks_low32 << 32) | pid, 0 = free. */
uint64_t ipcf_self_word(void);
int ipcf_table_add(uint64_t *table, int n);        /* our slot, or -1 when full */
void ipcf_table_del(uint64_t *table, int slot);
int ipcf_table_live(uint64_t *table, int n, uint32_t *dead);
/* Transit tables: pairs (process word, expiry ns). */
int ipcf_transit_add(uint64_t *pairs, int n, int64_t ttl_ns);
void ipcf_transit_del(uint64_t *pairs, int n, uint64_t from);
int ipcf_transit_live(uint64_t *pairs, int n);     /* entries alive and unexpired */
/* A handle of this segment travels (pickle / fork) and later arrives in another process. */
int ipcf_seg_depart(struct ipcf_seg *s, int64_t ttl_ns);
void ipcf_seg_arrive(struct ipcf_seg *s, uint64_t from);
void ipcf_seg_before_fork(struct ipcf_seg *s);
void ipcf_seg_after_fork(struct ipcf_seg *s);
#define IPCF_TRANSIT_NS 60000000000LL   /* how long an unarrived handle keeps a segment */

static inline int ipcf_word_alive(uint64_t w)
{
    return w && ipcf_pid_alive((int32_t)(w & 0xffffffffu), w >> 32);
}

#endif
