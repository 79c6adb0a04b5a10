/* shm.h - POSIX shared-memory segments: names, create (O_EXCL, 0600), open (validated),
 * map, publish, unmap, unlink. Nothing here knows who is attached (peers.h) or what a
 * kind keeps in its control block.
 *
 * A segment is one file in /dev/shm laid out as layout.h says: the header page, then
 * `capacity` data bytes. A ring's data bytes are mapped twice, back to back, so a record
 * that wraps around the end of the ring is still contiguous in our address space: no
 * padding records, no split copies.
 */
#ifndef IPCF_SHM_H
#define IPCF_SHM_H

#include <stddef.h>
#include "layout.h"

/* One process's handle on one segment. */
struct ipcf_seg {
    /* mapping (shm.c) */
    void *base;                 /* start of our reservation: header page */
    size_t map_len;             /* bytes reserved: header + capacity (rings: 2 * capacity) */
    struct ipcf_seg_hdr *hdr;
    void *ctl;                  /* kind-specific control block (IPCF_CTL_OFFSET) */
    uint8_t *data;              /* the data area (rings: double-mapped), NULL when capacity == 0 */
    uint64_t capacity;
    uint64_t dev, ino;          /* identity of our file: the name may be reused after unlink */
    char name[IPCF_NAME_MAX + 2];   /* "/" + name */
    /* membership (peers.c) */
    int registered;             /* this handle counts in our process's peer entry */
    uint64_t fork_from;         /* our process word before a fork (the child arrives with it) */
};

/* Create the file (O_EXCL, 0600), size it and map it, with the header filled in but no magic
 * yet: the caller initialises its control block, then calls ipcf_seg_publish. */
int ipcf_seg_create(struct ipcf_seg *s, const char *name, uint32_t kind, uint64_t capacity,
                    uint32_t flags, const uint64_t *params, int nparams);
void ipcf_seg_publish(struct ipcf_seg *s);   /* store the magic, last (release) */
/* Open and map an existing segment after validating its header; kind 0 accepts any kind.
 * Does not join its peers (ipcf_seg_register does). */
int ipcf_seg_open(struct ipcf_seg *s, const char *name, uint32_t kind);
void ipcf_seg_unmap(struct ipcf_seg *s);     /* idempotent */
/* Unlink `name` only if it still names this segment's file (not a newer one reusing it). */
int ipcf_seg_unlink_own(struct ipcf_seg *s, const char *name);
/* Unlink `name` only if it is a segment file of ours that was never published: owned by
 * this user, and empty or with no magic yet (its creator died before finishing it).
 * -EEXIST when it is anything else. */
int ipcf_seg_unlink_unpublished(const char *name);

#endif
