/* peers.h - who uses a segment: process identity, tables of processes, transit tables, and
 * this process's registrations.
 *
 * A process is named by its word: (start_ticks_low32 << 32) | pid, so a recycled pid is
 * never mistaken for a peer that died. Tables are arrays of words in shared memory (0 =
 * free), changed only by CAS; a transit table holds pairs (sender word, expiry in
 * CLOCK_MONOTONIC ns) for handles that travel (pickled or forked) and have not arrived yet.
 * The same table functions serve the segment header (peers, transit) and the pipe block
 * (writers, readers and their pending ends).
 */
#ifndef IPCF_PEERS_H
#define IPCF_PEERS_H

#include <sys/types.h>

#include "shm.h"

/* ---- process identity ---- */
uint64_t ipcf_self_word(void);           /* ours; cached, recomputed in a fork child */
int ipcf_pid_alive(int32_t pid, uint64_t start_ticks);
uint64_t ipcf_proc_start(int32_t pid);   /* clock ticks since boot; 0 when unknown */
/* Fields of /proc/<pid>/stat: state (field 3), parent (4), start time (22, clock ticks
 * since boot). ipcf_proc_stat returns 0 when the process cannot be read (gone, no /proc). */
struct ipcf_proc_stat {
    char state;
    int32_t ppid;
    uint64_t start;
};
int ipcf_proc_stat(int32_t pid, struct ipcf_proc_stat *out);
/* Read /proc/<pid>/<what> into buf (NUL-terminated); its length, or <= 0. */
ssize_t ipcf_read_proc(long pid, const char *what, char *buf, size_t size);

static inline int ipcf_word_alive(uint64_t w)
{
    return w && ipcf_pid_alive((int32_t)(w & 0xffffffffu), w >> 32);
}

/* ---- tables of processes ---- */
int ipcf_table_add(uint64_t *table, int n);        /* our slot, or -1 when full */
void ipcf_table_del(uint64_t *table, int slot);    /* our slot (-1: nothing) */
int ipcf_table_live(uint64_t *table, int n, uint32_t *dead);   /* reads /proc */
int ipcf_table_any(uint64_t *table, int n);        /* any entry at all: cheap, no /proc */

/* ---- transit tables (n words = n / 2 pairs): transit.c ---- */
int ipcf_transit_add(uint64_t *pairs, int n, int64_t ttl_ns);   /* 0 or IPCF_EFULL */
void ipcf_transit_del(uint64_t *pairs, int n, uint64_t from);   /* one entry of `from` */
/* Entries alive and unexpired. Our own entries count only while this process has a live
 * descendant: a handle we pickled or forked can only arrive through one. Reads /proc. */
int ipcf_transit_live(uint64_t *pairs, int n);
/* A fork transit (ipcf_transit_add_fork): the parent's entry for a handle a fork child
 * inherits. The child attaches (joins `peers`) before it ends the transit, so, as in
 * ipcf_transit_live_unattached, our own fork entries count only while we have a live
 * descendant that is not in `peers`: a fork child killed before it attached never holds the
 * end off for the whole transit time. */
int ipcf_transit_add_fork(uint64_t *pairs, int n, int64_t ttl_ns);
int ipcf_transit_live_unattached(uint64_t *pairs, int n, const uint64_t *peers, int npeers);
/* Others' fork transits likewise count only while their sender has a live descendant that
 * is not in `peers`. ipcf_transit_held_unattached: the same, but our own pickle transits
 * always count (this process may unpickle them): for the last close. */
int ipcf_transit_held_unattached(uint64_t *pairs, int n, const uint64_t *peers, int npeers);
/* Entries alive and unexpired, our own counted whether or not a child could take them. */
int ipcf_transit_held(uint64_t *pairs, int n);
int ipcf_transit_any(uint64_t *pairs, int n);      /* any entry at all: cheap, no /proc */
int ipcf_transit_unexpired(uint64_t *pairs, int n); /* any unexpired entry: no /proc */
void ipcf_transit_forget(uint64_t *pairs, int n);  /* drop all of our own entries */

/* ---- this process's membership of a segment ---- */
/* Take our process's peer entry (one per segment however many handles we open); a table
 * full of live processes clears IPCF_F_AUTO_UNLINK (nobody can then know who is last). */
void ipcf_seg_register(struct ipcf_seg *s);
/* Leave the peer table. Returns 1 if no live process remains attached or in transit and
 * the segment has IPCF_F_AUTO_UNLINK (the caller then unlinks whatever belongs to it), else
 * 0. The mapping stays until ipcf_seg_unmap, so threads still inside a call are safe. */
int ipcf_seg_leave(struct ipcf_seg *s);
int ipcf_seg_close(struct ipcf_seg *s);       /* leave + unmap, for error paths */
/* A handle of this segment travels (pickle / fork) and later arrives in another process. */
int ipcf_seg_depart(struct ipcf_seg *s, int64_t ttl_ns);
void ipcf_seg_arrive(struct ipcf_seg *s, uint64_t from);
void ipcf_seg_before_fork(struct ipcf_seg *s);
void ipcf_seg_after_fork(struct ipcf_seg *s);

#endif
