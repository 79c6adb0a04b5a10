/* pipe.h - the ends of a pipe direction: an IPCF_F_PIPE ring whose pipe block (layout.h,
 * struct ipcf_pipe_ctl) records which processes hold its sending (writer) and receiving
 * (reader) ends, and which ends are in transit.
 *
 * An end is "there" while a live process holds it or while it is in transit; a reader that
 * finds the ring empty with no writer there gets IPCF_ECLOSED (EOF), a writer that finds it
 * full with no reader there likewise (broken pipe). The tables are the peer and transit
 * tables of peers.h, with the same rules: in particular, for EOF and broken pipe, our own
 * ends in transit count only while this process has a live descendant, so an end pickled
 * and then closed here, with no child to take it, does not hold the peer off for the whole
 * transit time. Whether the ring may be removed at its last close is ipcf_pipe_in_use: it
 * keeps our own unexpired transits until a peer was told EOF or broken pipe because of
 * them (this process may still unpickle what it pickled).
 *
 * A send raises broken pipe at once (as multiprocessing's) when no reader end is left,
 * with no syscall on the way (ipcf_pipe_readers_lost): a closed end has left the readers
 * table; a dead one is told by its lock. Each held reader end locks rlock[slot], a robust
 * process-shared mutex, from the thread that takes the end; when that thread dies (with its
 * process or alone) the kernel sets FUTEX_OWNER_DIED in the mutex's word, which a sender
 * reads with one atomic load. Only then does it ask /proc whether the holder's process
 * lives, and a living one (its thread exited) is believed for IPCF_PIPE_RECHECK_MS before
 * the next look. An end whose lock could not be taken (held elsewhere) gives no death
 * sign: a dead holder of it is found as before, when the ring is full. An end closed from
 * another thread than the one that locked it cannot unlock it: that thread keeps it (and
 * this process the segment's header page mapped, so the kernel's robust list stays valid)
 * until it unlocks it on its next pipe hold or close, or exits.
 */
#ifndef IPCF_PIPE_H
#define IPCF_PIPE_H

#include "layout.h"

/* One handle's part in a pipe direction (process-local). */
struct ipcf_pipe {
    struct ipcf_pipe_ctl *ctl;      /* the shared pipe block */
    int holds_writer, holds_reader; /* this handle holds that end */
    int writer_slot, reader_slot;   /* our entries in ctl->writers / readers, -1 none */
    uint64_t fork_from;             /* our process word before a fork, for the child's arrive */
    int reader_locked;              /* this handle's thread holds ctl->rlock[reader_slot] */
    int reader_stuck;               /* ... and another thread dropped the end (unlock: EPERM) */
};

void ipcf_pipe_init(struct ipcf_pipe *p, struct ipcf_pipe_ctl *ctl);
void ipcf_pipe_drop(struct ipcf_pipe *p);          /* close: let go of the ends we hold */
void ipcf_pipe_before_fork(struct ipcf_pipe *p);   /* parent: our ends go in transit */
void ipcf_pipe_after_fork(struct ipcf_pipe *p);    /* child: hold them, end the transit */
/* Is that end gone (nobody holds it, none in transit)? Cheap form (thorough = 0): any entry
 * at all counts, for wait predicates; thorough: only live holders and live, unexpired
 * transits (reads /proc: after a wait timed out). */
int ipcf_pipe_writers_gone(struct ipcf_pipe *p, int thorough);
int ipcf_pipe_readers_gone(struct ipcf_pipe *p, int thorough);
/* The sender's check before each send: 1 when no reader end is held by a live thread or in
 * transit (then broken pipe). No syscall unless a holder's lock says it died. */
int ipcf_pipe_readers_lost(struct ipcf_pipe *p);
/* ipcf_ring_free: takes over the mapping when a reader lock is stuck (see above): the
 * data area is unmapped, the header page stays until the lock is let go. 1 if it did. */
int ipcf_pipe_keep_mapping(struct ipcf_pipe *p, void *base, size_t len);
void ipcf_pipe_init_locks(struct ipcf_pipe_ctl *ctl);   /* the creator, before publishing */
/* At the ring's last close: does some end still keep the ring (held, or in transit)? */
int ipcf_pipe_in_use(struct ipcf_pipe *p);

/* ring.c: the pipe part of a ring handle, NULL unless the ring is IPCF_F_PIPE. */
struct ipcf_pipe *ipcf_ring_pipe(ipcf_ring *r);

#endif
