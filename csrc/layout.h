/* layout.h - the shared-memory layout: every struct that lives in a segment, the constants
 * that place them, and the _Static_asserts that pin every size and offset.
 *
 * A segment is one file in /dev/shm: a 4 KiB header page (struct ipcf_seg_hdr at 0, the
 * kind's control block at IPCF_CTL_OFFSET, and for a pipe ring the pipe block at
 * IPCF_PIPE_OFFSET) followed by the data area (`capacity` bytes). Two processes built from
 * different versions of this file must never attach to each other's segments: any change
 * here bumps IPCF_LAYOUT_VERSION.
 *
 * Only fixed-width integers. Hot fields of different writers sit on different
 * IPCF_CACHELINE-byte lines; padding is computed from IPCF_CACHELINE, never counted by hand.
 * This file is also read by cffi (build_ffi.py, for tests/test_ring_layout.py): keep each
 * #define an integer literal, array sizes simple constant expressions, no sizeof in them.
 * No Python module other than the tests reads these structs: the API is in ipcfast.h.
 */
#ifndef IPCF_LAYOUT_H
#define IPCF_LAYOUT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "ipcfast.h"

#define IPCF_MAGIC          0x0054534146435049   /* "IPCFAST\0" little-endian */
#define IPCF_LAYOUT_VERSION 4
#define IPCF_CACHELINE      128  /* two 64-byte lines: defeats the adjacent-line prefetcher */
#define IPCF_HDR_SIZE       4096 /* header page; the data area starts here */
#define IPCF_CTL_OFFSET     1024 /* kind-specific control block inside the header page */
#define IPCF_PIPE_OFFSET    1792 /* IPCF_F_PIPE rings: the pipe block, after the ring control */
#define IPCF_PARAMS         7    /* kind-specific creation parameters in the header */
#define IPCF_MAX_PEERS      64
#define IPCF_TRANSIT_WORDS  48   /* 24 (sender, expiry) pairs */
#define IPCF_EVENT_SIZE     112  /* sizeof(struct ipcf_event), for padding expressions */
#define IPCF_EVENT_SLOTS    8    /* sleepers an event names (more sleep unnamed: futex.c) */
#define IPCF_EVENT_POLLERS  8    /* file-descriptor pollers an event names (poll.c) */
#define IPCF_PIPE_ENDS      16   /* words per pipe-end table (transit tables: 8 pairs) */
#define IPCF_PIPE_LOCK      64   /* bytes per reader-end lock (a pthread mutex) in the pipe block */
#define IPCF_MB_TAILS       32   /* priorities the mailbox's tail cache holds */
#define IPCF_MB_SCAN_MS     50   /* speculative repairs (full, or empty with copies in flight) */
#define IPCF_QJOURNAL_SIZE  48   /* sizeof(struct ipcf_qjournal), for padding expressions */

/* mailbox slot states (struct ipcf_mbox_slot.state) */
#define IPCF_SLOT_FREE    0
#define IPCF_SLOT_WRITING 1
#define IPCF_SLOT_READY   2
#define IPCF_SLOT_READING 3
#define IPCF_SLOT_TAKEN   4      /* received; the receipt awaits its sender */
#define IPCF_SLOT_LOST    5      /* its receiver died while reading; the sender learns it */

struct ipcf_event {           /* a futex word plus who sleeps on it (protocol: futex.c) */
    uint32_t seq;             /* bumped by a waker, only when sleeping != 0 */
    uint32_t waiters;         /* sleepers right now, for statistics only (never trusted):
                                 popcount of sleeping's slot bits + its unnamed count */
    uint32_t sleeping;        /* bit i (i < IPCF_EVENT_SLOTS): owner[i] is asleep here;
                                 bit IPCF_EVENT_SLOTS + k: poller[k] is armed (poll.c);
                                 bits 16..31: sleepers that found no free slot */
    uint32_t reap_ms;         /* CLOCK_MONOTONIC ms (mod 2^32) of the last scan for dead
                                 sleepers: at most one per event every few ms */
    uint64_t owner[IPCF_EVENT_SLOTS];   /* process word of slot i's sleeper, 0 = free;
                                 with IPCF_WORD_REAPING: being reclaimed by that process */
    uint32_t poller[IPCF_EVENT_POLLERS];  /* identity of poller k (pid | token << 22: names
                                 its abstract AF_UNIX socket, poll.c), 0 = free */
};

/* At offset 0 of every segment. Written by its creator before it stores the magic
 * (release), read-only afterwards except: flags (atomic, see ipcf_seg_register), peers and
 * transit (atomic, peers.c), closed (atomic). */
struct ipcf_seg_hdr {
    uint64_t magic;           /* IPCF_MAGIC, stored last (release) by the creator */
    uint32_t version;         /* IPCF_LAYOUT_VERSION */
    uint32_t kind;            /* IPCF_KIND_* */
    uint64_t total_size;      /* file size: IPCF_HDR_SIZE + capacity */
    uint64_t data_offset;     /* IPCF_HDR_SIZE */
    uint64_t capacity;        /* data bytes (power of two, >= 4096) or 0 */
    uint64_t created_ns;      /* CLOCK_REALTIME at creation */
    int32_t  creator_pid;
    uint32_t flags;           /* IPCF_F_* */
    uint64_t creator_start;   /* creator's start time (clock ticks since boot) */
    uint32_t closed;          /* atomic; queue: faster-fifo's "closed" mark (queue_open.c) */
    uint32_t reserved0;
    uint64_t param[IPCF_PARAMS];   /* kind-specific parameters (queue: maxsize, ring capacity,
                                     max_bytes, item_overhead) */
    uint64_t peers[IPCF_MAX_PEERS];   /* (start_ticks_low32 << 32) | pid of each attached
                                         process, 0 = free */
    uint64_t transit[IPCF_TRANSIT_WORDS];   /* up to 24 handles in transit (pickled, or
                                 inherited by a fork child, and not yet attached): pairs
                                 (process word of the sender, expiry in CLOCK_MONOTONIC ns);
                                 they keep the segment */
};

/* At IPCF_CTL_OFFSET in a RING or QPART segment. Positions and counters are atomic (ring.h);
 * the counters have one writer at a time (the side's owner or lock holder). */
struct ipcf_ring_ctl {
    uint64_t tail;            /* producer line: free-running byte position of the next write */
    uint64_t msgs_in;
    uint64_t bytes_in;
    uint64_t full_waits;
    uint8_t  pad0[IPCF_CACHELINE - 4 * 8];
    uint64_t head;            /* consumer line: free-running byte position of the next read */
    uint64_t msgs_out;
    uint64_t bytes_out;
    uint64_t empty_waits;
    uint8_t  pad1[IPCF_CACHELINE - 4 * 8];
    struct ipcf_event data;   /* consumers sleep here for records */
    uint8_t  pad2[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    struct ipcf_event space;  /* producers sleep here for room */
    uint8_t  pad3[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    uint8_t  plock[IPCF_CACHELINE];   /* producer mutex (pthread robust, process-shared) */
    uint8_t  clock[IPCF_CACHELINE];   /* consumer mutex */
};

/* At IPCF_PIPE_OFFSET in a RING segment made with IPCF_F_PIPE (one direction of a Pipe):
 * which processes hold its ends, and which ends are in transit. All atomic (peers.c,
 * transit.c); the locks through pthread, their futex word read atomically (pipe.c). */
struct ipcf_pipe_ctl {
    uint64_t writers[IPCF_PIPE_ENDS];      /* process words holding the sending end open */
    uint64_t readers[IPCF_PIPE_ENDS];      /* ... the receiving end */
    uint64_t pend_writers[IPCF_PIPE_ENDS]; /* ends in transit (pickled or forked, not yet */
    uint64_t pend_readers[IPCF_PIPE_ENDS]; /*   attached): pairs (sender word, expiry ns) */
    uint8_t  rlock[IPCF_PIPE_ENDS][IPCF_PIPE_LOCK]; /* robust mutex of readers[i], held by the
                                 thread that took that end: the kernel marks it owner-died when
                                 that thread (or its process) dies, for senders to see */
    uint32_t rseen_ms[IPCF_PIPE_ENDS];     /* CLOCK_MONOTONIC ms (mod 2^32, 0 never) when
                                 readers[i]'s process was last found alive with rlock[i]
                                 owner-died (its thread exited, the process lives) */
};

/* A queue side's step in progress, written by its lock holder (atomic: queue_bytes.c) so
 * that the next holder, after a holder died, sets the side's counts to exactly what the
 * ring shows was done. gen = ring generation + 1 (0 = no step in progress). */
struct ipcf_qjournal {
    uint64_t gen;
    uint64_t pos;             /* the ring's tail (put) or head (get) once the step is done */
    uint64_t items;           /* the side's items_put / items_got before the step */
    uint64_t bytes;           /* ... and bytes_put / bytes_got */
    uint64_t n;               /* items the step moves */
    uint64_t len;             /* their bytes */
};

/* At IPCF_CTL_OFFSET in a QUEUE segment. Everything but the locks is atomic (queue.c). */
struct ipcf_queue_ctl {
    uint64_t write_gen;       /* producer line: generation of the ring producers append to */
    uint64_t items_put;
    uint64_t bytes_put;
    uint64_t full_waits;
    struct ipcf_qjournal put_j;   /* a publish in progress (max_bytes queues: queue_bytes.c) */
    uint8_t  pad0[IPCF_CACHELINE - 4 * 8 - IPCF_QJOURNAL_SIZE];
    uint64_t read_gen;        /* consumer line: generation of the ring consumers read from */
    uint64_t items_got;
    uint64_t bytes_got;
    uint64_t empty_waits;
    struct ipcf_qjournal get_j;   /* a consume in progress */
    uint8_t  pad1[IPCF_CACHELINE - 4 * 8 - IPCF_QJOURNAL_SIZE];
    struct ipcf_event data;   /* consumers sleep here */
    uint8_t  pad2[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    struct ipcf_event space;  /* producers sleep here when maxsize items are queued */
    uint8_t  pad3[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    struct ipcf_event join;   /* JoinableQueue.join() sleeps here */
    uint64_t tasks_done;      /* task_done() calls; unfinished = items_put - tasks_done */
    uint8_t  pad4[IPCF_CACHELINE - IPCF_EVENT_SIZE - 8];
    uint8_t  plock[IPCF_CACHELINE];
    uint8_t  clock[IPCF_CACHELINE];
};

/* At IPCF_CTL_OFFSET in a MAILBOX segment. */
struct ipcf_mbox_ctl {
    uint8_t  lock[IPCF_CACHELINE];    /* the mailbox mutex (pthread robust, process-shared) */
    struct ipcf_event data;   /* receivers sleep here for messages (and for the right) */
    uint8_t  pad0[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    struct ipcf_event space;  /* senders sleep here for room */
    uint8_t  pad1[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    struct ipcf_event receipt;/* senders sleep here for a receipt */
    uint8_t  pad2[IPCF_CACHELINE - IPCF_EVENT_SIZE];
    /* Written only under `lock`. Fixed at creation (before the magic): capacity, nslots,
     * stride, max_message, policy. Also read without the lock, so written and read through
     * atomics.h: bytes_held, published, freed, taken, holder, count, high_water, inflight,
     * repairs, receivers_waiting (the one field changed outside the lock: atomic add).
     * Everything else is touched only under the lock and stays plain. */
    uint64_t capacity;        /* bytes held at most; 0 = rendezvous; ~0 = unbounded */
    uint64_t next_seq;
    uint64_t bytes_held;      /* bodies of WRITING, READY and READING slots */
    uint64_t published;       /* messages ever made READY: receivers wait for it to move */
    uint64_t freed;           /* slots ever freed: senders wait for it to move */
    uint64_t taken;           /* messages ever taken by a receiver */
    uint64_t holder;          /* exclusive policy: process word of the right's holder, 0 = free */
    uint64_t holder_id;       /* its receiver id */
    uint32_t nslots;
    uint32_t stride;          /* bytes per slot: header + max_message, page aligned */
    uint32_t max_message;
    uint32_t policy;          /* IPCF_POLICY_* */
    uint32_t count;           /* READY messages */
    uint32_t free_head;       /* free slots (index + 1, 0 = none), linked by `next` */
    uint32_t high_water;      /* slots [0, high_water) have ever been used */
    uint32_t ready_head;      /* READY slots by (priority desc, seq asc), index + 1 */
    uint32_t ready_tail;
    uint32_t receivers_waiting;
    uint32_t repairs;         /* times the state was rebuilt after a holder died */
    uint32_t inflight;        /* slots being copied outside the lock (WRITING/READING) */
    uint32_t tails_partial;   /* the tail cache lacks some priority present in the list */
    uint32_t scan_ms;         /* CLOCK_MONOTONIC ms (mod 2^32) of the last repair not forced
                                 by a dead lock owner: they run at most every IPCF_MB_SCAN_MS */
    int32_t  tail_prio[IPCF_MB_TAILS];   /* cache: the last READY slot (index + 1) of each */
    uint32_t tail_slot[IPCF_MB_TAILS];   /*   priority present: O(32) inserts */
};

/* At the start of each mailbox slot (the data area is nslots slots of `stride` bytes); the
 * body follows. Under the mailbox lock, except `state` and `seq`, which a sender awaiting
 * its receipt reads without it (atomic). */
struct ipcf_mbox_slot {
    uint32_t state;           /* IPCF_SLOT_* */
    uint32_t flags;           /* IPCF_MSG_* */
    uint32_t length;
    int32_t  type;
    int32_t  priority;
    uint32_t next;            /* list links, index + 1 */
    uint32_t prev;
    int32_t  receiver_pid;
    uint64_t sender;
    uint64_t to;
    uint64_t seq;
    uint64_t sent_at;         /* CLOCK_MONOTONIC ns */
    uint64_t owner;           /* process word of the writer (WRITING) or reader (READING) */
    uint64_t waiter;          /* process word of a sender awaiting the receipt */
    uint64_t receiver;        /* id of the receiver that took it */
    uint64_t received_at;
    uint8_t  pad[IPCF_CACHELINE - 8 * 4 - 8 * 8];
};

/* ---- every size and offset the layout promises (tests/test_ring_layout.py checks the
 * == ones against the cffi view too) ---- */
_Static_assert(sizeof(struct ipcf_event) == 112, "event: futex word, counts, 8 sleeper and 8 poller slots");
_Static_assert(IPCF_EVENT_SLOTS + IPCF_EVENT_POLLERS <= 16, "slot and poller bits below the unnamed count in sleeping");
_Static_assert(IPCF_EVENT_SIZE + 8 <= IPCF_CACHELINE, "queue join line: event + tasks_done");
_Static_assert(sizeof(struct ipcf_event) == IPCF_EVENT_SIZE, "IPCF_EVENT_SIZE");
_Static_assert(IPCF_HDR_SIZE % 4096 == 0, "data area must be page aligned for the double map");
_Static_assert(sizeof(pthread_mutex_t) <= IPCF_CACHELINE, "a lock slot holds a pthread mutex");

_Static_assert(sizeof(struct ipcf_seg_hdr) == 1024, "segment header layout");
_Static_assert(offsetof(struct ipcf_seg_hdr, peers) == 128, "peer table after the fixed fields");
_Static_assert(offsetof(struct ipcf_seg_hdr, transit) == 640, "transit table after the peers");
_Static_assert(sizeof(struct ipcf_seg_hdr) <= IPCF_CTL_OFFSET, "header overlaps control block");

_Static_assert(sizeof(struct ipcf_ring_ctl) == 768, "ring control: 6 lines");
_Static_assert(offsetof(struct ipcf_ring_ctl, head) == 128, "head on its own line");
_Static_assert(offsetof(struct ipcf_ring_ctl, data) == 256, "data event line");
_Static_assert(offsetof(struct ipcf_ring_ctl, space) == 384, "space event line");
_Static_assert(offsetof(struct ipcf_ring_ctl, plock) == 512, "producer lock line");
_Static_assert(offsetof(struct ipcf_ring_ctl, clock) == 640, "consumer lock line");
_Static_assert(IPCF_CTL_OFFSET + sizeof(struct ipcf_ring_ctl) <= IPCF_HDR_SIZE, "control too big");

_Static_assert(sizeof(struct ipcf_pipe_ctl) == 1600, "pipe block: 4 tables, 16 locks, 16 times");
_Static_assert(offsetof(struct ipcf_pipe_ctl, rlock) == 512, "reader locks after the tables");
_Static_assert(sizeof(pthread_mutex_t) <= IPCF_PIPE_LOCK, "a reader-end lock holds a pthread mutex");
_Static_assert(IPCF_PIPE_OFFSET == IPCF_CTL_OFFSET + sizeof(struct ipcf_ring_ctl),
               "pipe block right after the ring control block");
_Static_assert(IPCF_PIPE_OFFSET % IPCF_CACHELINE == 0, "pipe block on its own lines");
_Static_assert(IPCF_PIPE_OFFSET + sizeof(struct ipcf_pipe_ctl) <= IPCF_HDR_SIZE, "pipe too big");
_Static_assert(IPCF_PIPE_ENDS % 2 == 0, "pipe transit tables hold pairs");

_Static_assert(sizeof(struct ipcf_qjournal) == IPCF_QJOURNAL_SIZE, "IPCF_QJOURNAL_SIZE");
_Static_assert(sizeof(struct ipcf_queue_ctl) == 896, "queue control layout");
_Static_assert(offsetof(struct ipcf_queue_ctl, put_j) == 32, "put journal on the producer line");
_Static_assert(offsetof(struct ipcf_queue_ctl, get_j) == 160, "get journal on the consumer line");
_Static_assert(offsetof(struct ipcf_queue_ctl, read_gen) == 128, "read_gen line");
_Static_assert(offsetof(struct ipcf_queue_ctl, join) == 512, "join event line");
_Static_assert(offsetof(struct ipcf_queue_ctl, plock) == 640, "queue producer lock line");
_Static_assert(offsetof(struct ipcf_queue_ctl, clock) == 768, "queue consumer lock line");
_Static_assert(IPCF_CTL_OFFSET + sizeof(struct ipcf_queue_ctl) <= IPCF_HDR_SIZE, "control too big");

_Static_assert(sizeof(struct ipcf_mbox_ctl) == 888, "mailbox control layout");
_Static_assert(offsetof(struct ipcf_mbox_ctl, data) == 128, "receivers' event line");
_Static_assert(offsetof(struct ipcf_mbox_ctl, space) == 256, "senders' event line");
_Static_assert(offsetof(struct ipcf_mbox_ctl, receipt) == 384, "receipt event line");
_Static_assert(offsetof(struct ipcf_mbox_ctl, capacity) == 512, "locked state line");
_Static_assert(IPCF_CTL_OFFSET + sizeof(struct ipcf_mbox_ctl) <= IPCF_HDR_SIZE, "control too big");
_Static_assert(sizeof(struct ipcf_mbox_slot) == 128, "mailbox slot header layout");

#endif
