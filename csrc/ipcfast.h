/* ipcfast.h - the C API that cffi sees (build_ffi.py feeds this file to ffi.cdef).
 *
 * Keep it cffi-parsable: fixed-width types, opaque handles, integer #defines only.
 * Every function returns 0 (or a non-negative count/length) on success, one of the small
 * IPCF_E* codes below for an expected outcome, or -errno for a system failure. Nothing
 * relies on errno across the cffi boundary.
 *
 * Timeouts are in nanoseconds on CLOCK_MONOTONIC: < 0 waits forever, 0 never waits.
 */
#ifndef IPCFAST_H
#define IPCFAST_H
#include <stdint.h>

/* ---- result codes (all below -1000 so they never collide with -errno) ---- */
#define IPCF_OK              0
#define IPCF_EEMPTY      -1001  /* nothing to receive (non-blocking or timed out) */
#define IPCF_EFULL       -1002  /* no room (non-blocking or timed out) */
#define IPCF_ETIMEOUT    -1003  /* a wait reached its deadline */
#define IPCF_EINTR       -1004  /* a wait was interrupted by a signal: let Python run handlers */
#define IPCF_ECLOSED     -1005  /* the segment was marked closed */
#define IPCF_ETOOBIG     -1006  /* message larger than this ring can ever hold */
#define IPCF_EBADMAGIC   -1007  /* not an ipcfast segment */
#define IPCF_EVERSION    -1008  /* ipcfast segment of another layout version */
#define IPCF_EKIND       -1009  /* ipcfast segment of another kind (ring vs queue ...) */
#define IPCF_ETRUNCATED  -1010  /* segment smaller than its header says */
#define IPCF_EBADNAME    -1011  /* name empty, too long, or with characters outside [A-Za-z0-9._-] */
#define IPCF_EBADARG     -1012  /* invalid argument (capacity, flags, ...) */
#define IPCF_EBUFSMALL   -1013  /* caller's buffer too small for the next record */
#define IPCF_ESTATE      -1014  /* call out of order (commit without claim, ...) */
#define IPCF_ENOTREADY   -1015  /* segment still being initialised by its creator */
#define IPCF_EJOIN       -1016  /* task_done() called more times than items were put */
#define IPCF_EBUSY       -1017  /* exclusive mailbox: another live receiver holds the right */
#define IPCF_EPEERDEAD   -1018  /* the receiver died holding the message we awaited a receipt for */

/* ---- layout constants ---- */
#define IPCF_MAGIC          0x0054534146435049   /* "IPCFAST\0" little-endian */
#define IPCF_LAYOUT_VERSION 1
#define IPCF_KIND_RING      1
#define IPCF_KIND_QUEUE     2
#define IPCF_KIND_QPART     3   /* one ring of a queue's chain */
#define IPCF_KIND_MAILBOX   4
#define IPCF_NAME_MAX       200
#define IPCF_MAX_PEERS      64
#define IPCF_TRANSIT_WORDS  48   /* 24 (sender, expiry) pairs */
#define IPCF_HDR_SIZE       4096 /* header page; data starts here */
#define IPCF_CTL_OFFSET     1024 /* kind-specific control block inside the header page */
#define IPCF_REC_HDR        8    /* per-record header in a ring: uint32 length + uint32 flags */
#define IPCF_MIN_CAPACITY   4096
#define IPCF_MAX_CAPACITY   0x10000000000 /* 1 TiB: anything larger is a caller bug */

/* segment flags */
#define IPCF_F_MULTI_PRODUCER 1  /* producers serialise on a robust process-shared mutex */
#define IPCF_F_MULTI_CONSUMER 2  /* consumers likewise */
#define IPCF_F_AUTO_UNLINK    4  /* the last live process to detach removes the name */
#define IPCF_F_PIPE           8  /* one direction of a Pipe: tracks writer and reader ends */
#define IPCF_PIPE_ENDS       16

/* ---- shared layout (fixed-width integers only; checked by _Static_assert and tests) ---- */
struct ipcf_event {           /* a futex word plus a count of sleepers on it */
    uint32_t seq;             /* bumped by a waker, only when waiters != 0 */
    uint32_t waiters;         /* processes/threads inside futex_wait on seq */
};

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
    uint32_t closed;          /* reserved for kinds with an end-of-stream notion */
    uint32_t reserved0;
    uint64_t param[7];        /* kind-specific parameters (queue: maxsize, ring capacity) */
    uint64_t peers[64];       /* (start_ticks_low32 << 32) | pid of each attached process, 0 = free */
    uint64_t transit[48];     /* up to 24 handles in transit (pickled, or inherited by a fork
                                 child, and not yet attached): pairs (process word of the
                                 sender, expiry in CLOCK_MONOTONIC ns); they keep the segment */
};

struct ipcf_ring_ctl {        /* at IPCF_CTL_OFFSET in a RING or QPART segment */
    uint64_t tail;            /* producer line: free-running byte position of the next write */
    uint64_t msgs_in;
    uint64_t bytes_in;
    uint64_t full_waits;
    uint8_t  pad0[96];
    uint64_t head;            /* consumer line: free-running byte position of the next read */
    uint64_t msgs_out;
    uint64_t bytes_out;
    uint64_t empty_waits;
    uint8_t  pad1[96];
    struct ipcf_event data;   /* consumers sleep here for records */
    uint8_t  pad2[120];
    struct ipcf_event space;  /* producers sleep here for room */
    uint8_t  pad3[120];
    uint8_t  plock[128];      /* producer mutex (pthread robust, process-shared) */
    uint8_t  clock[128];      /* consumer mutex */
    uint64_t writers[16];     /* IPCF_F_PIPE: processes holding the sending end open */
    uint64_t readers[16];     /* IPCF_F_PIPE: processes holding the receiving end open */
    uint64_t pend_writers[16];/* ends in transit (pickled or forked, not yet attached): */
    uint64_t pend_readers[16];/*   pairs (process word of the sender, expiry in CLOCK_MONOTONIC ns) */
};

struct ipcf_queue_ctl {       /* at IPCF_CTL_OFFSET in a QUEUE segment */
    uint64_t write_gen;       /* producer line: generation of the ring producers append to */
    uint64_t items_put;
    uint64_t bytes_put;
    uint64_t full_waits;
    uint8_t  pad0[96];
    uint64_t read_gen;        /* consumer line: generation of the ring consumers read from */
    uint64_t items_got;
    uint64_t bytes_got;
    uint64_t empty_waits;
    uint8_t  pad1[96];
    struct ipcf_event data;   /* consumers sleep here */
    uint8_t  pad2[120];
    struct ipcf_event space;  /* producers sleep here when maxsize items are queued */
    uint8_t  pad3[120];
    struct ipcf_event join;   /* JoinableQueue.join() sleeps here */
    uint64_t tasks_done;      /* task_done() calls; unfinished = items_put - tasks_done */
    uint8_t  pad4[112];
    uint8_t  plock[128];
    uint8_t  clock[128];
};

struct ipcf_mbox_ctl {        /* at IPCF_CTL_OFFSET in a MAILBOX segment */
    uint8_t  lock[128];       /* the mailbox mutex (pthread robust, process-shared) */
    struct ipcf_event data;   /* receivers sleep here for messages (and for the right) */
    uint8_t  pad0[120];
    struct ipcf_event space;  /* senders sleep here for room */
    uint8_t  pad1[120];
    struct ipcf_event receipt;/* senders sleep here for a receipt */
    uint8_t  pad2[120];
    /* everything below is read and written under `lock` (counters also read without it) */
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
    uint32_t reserved1;
    int32_t  tail_prio[32];   /* cache: the last READY slot (index + 1) of each priority */
    uint32_t tail_slot[32];   /*   present, for up to 32 priorities: O(32) inserts */
};

struct ipcf_mbox_slot {       /* 128 bytes at the start of each slot; the body follows */
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
    uint8_t  pad[32];
};

#define IPCF_POLICY_SHARED    0  /* any receiver may take any message (the system picks) */
#define IPCF_POLICY_EXCLUSIVE 1  /* one receiving process at a time holds the right */
#define IPCF_MB_UNBOUNDED     0xffffffffffffffff
#define IPCF_SLOT_FREE    0
#define IPCF_SLOT_WRITING 1
#define IPCF_SLOT_READY   2
#define IPCF_SLOT_READING 3
#define IPCF_SLOT_TAKEN   4      /* received; the receipt awaits its sender */
#define IPCF_SLOT_LOST    5      /* its receiver died while reading; the sender learns it */
#define IPCF_MSG_RECEIPT  1      /* the sender waits for a receipt */

/* What a receiver learns about a message, and a sender about its receipt. */
struct ipcf_msg_info {
    int32_t  type;
    int32_t  priority;
    uint64_t sender;
    uint64_t to;
    uint64_t seq;
    uint64_t length;
    uint64_t sent_at;
    uint64_t receiver;
    int32_t  receiver_pid;
    uint32_t slot;
    uint64_t received_at;
};

/* ---- version stamp: checked by ipcfast/_native.py on import ---- */
const char *ipcf_build_version(void);
uint32_t ipcf_layout_version(void);

/* ---- segments (any kind) ---- */
int ipcf_name_check(const char *name);
int ipcf_seg_unlink(const char *name);
/* Describe a segment without registering as a peer: kind, flags, capacity, param[0..1],
 * creator pid, created_ns, live and dead peer counts. Used by `ipcfast ls/gc/stat`. */
struct ipcf_seg_info {
    uint32_t kind;
    uint32_t flags;
    uint32_t version;
    int32_t  creator_pid;
    uint64_t capacity;
    uint64_t created_ns;
    uint64_t param0;
    uint64_t param1;
    uint32_t live_peers;
    uint32_t dead_peers;
    uint64_t counters[8];     /* kind-specific: ring: msgs_in, msgs_out, bytes_in, bytes_out,
                                 full_waits, empty_waits, data waiters, space waiters;
                                 queue: items_put, items_got, bytes_put, bytes_got, full_waits,
                                 empty_waits, write_gen, read_gen;
                                 mailbox: messages held, bytes held, published, taken, freed,
                                 repairs, waiting receivers, pid holding the exclusive right */
};
int ipcf_seg_inspect(const char *name, struct ipcf_seg_info *out);
int ipcf_pid_alive(int32_t pid, uint64_t start_ticks);
uint64_t ipcf_proc_start(int32_t pid);

/* ---- Ring: one segment, variable-length byte records ---- */
typedef struct ipcf_ring ipcf_ring;
int ipcf_ring_create(const char *name, uint64_t capacity, uint32_t flags, ipcf_ring **out);
int ipcf_ring_attach(const char *name, ipcf_ring **out);
/* close: detach (idempotent, safe while other threads are inside calls on the handle, which
 * return IPCF_ECLOSED); returns 1 when this was the last process and it unlinked.
 * free: unmap and free, once no thread can use the handle (Python: at garbage collection). */
int ipcf_ring_close(ipcf_ring *r);
void ipcf_ring_free(ipcf_ring *r);
void ipcf_ring_before_fork(ipcf_ring *r);   /* parent: the handle (and pipe ends) go in transit */
/* A handle about to be pickled: count it in transit (keeping the segment alive) for ttl_ns or
 * until the receiving process, after attaching, calls *_arrived with our process word. */
int ipcf_ring_travel(ipcf_ring *r, int64_t ttl_ns);
void ipcf_ring_arrived(ipcf_ring *r, uint64_t from);
void ipcf_ring_after_fork(ipcf_ring *r);    /* child: register as a peer of its own */
uint64_t ipcf_ring_capacity(const ipcf_ring *r);
uint64_t ipcf_ring_max_message(const ipcf_ring *r);
uint32_t ipcf_ring_flags(const ipcf_ring *r);
uint64_t ipcf_ring_count(const ipcf_ring *r);      /* records held now (approximate under load) */
uint64_t ipcf_ring_used(const ipcf_ring *r);       /* bytes held now, headers included */
int ipcf_ring_send(ipcf_ring *r, const char *buf, uint64_t len, int64_t timeout_ns);
int ipcf_ring_send_many(ipcf_ring *r, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns, uint64_t *sent);
int64_t ipcf_ring_recv(ipcf_ring *r, char *buf, uint64_t cap, int64_t timeout_ns);
int64_t ipcf_ring_recv_many(ipcf_ring *r, char *buf, uint64_t cap, uint64_t *lens,
                            uint64_t max, int64_t timeout_ns);
int ipcf_ring_claim(ipcf_ring *r, uint64_t len, int64_t timeout_ns, char **out);
int ipcf_ring_commit(ipcf_ring *r, uint64_t len);
int ipcf_ring_abort(ipcf_ring *r);
int ipcf_ring_peek(ipcf_ring *r, int64_t timeout_ns, char **ptr, uint64_t *len);
int ipcf_ring_release(ipcf_ring *r);
int ipcf_ring_unpeek(ipcf_ring *r);         /* end a view, leaving the record unread */
/* Pipes: hold this ring's sending and/or receiving end (kept across fork by after_fork).
 * On an IPCF_F_PIPE ring, recv on an empty ring with no live writer and send on a full ring
 * with no live reader return IPCF_ECLOSED. */
int ipcf_ring_hold(ipcf_ring *r, int writer, int reader);
int ipcf_ring_poll(ipcf_ring *r, int64_t timeout_ns);   /* 1 readable or at EOF, 0 not */
/* An end this process holds is about to travel (pickle, fork): count it open for ttl_ns or
 * until the receiving process calls ipcf_ring_arrive with our process word. */
int ipcf_ring_depart(ipcf_ring *r, int writer, int reader, int64_t ttl_ns);
int ipcf_ring_arrive(ipcf_ring *r, int writer, int reader, uint64_t from);
uint64_t ipcf_self_word(void);

/* ---- Queue: a control segment plus a chain of rings that grows when one fills ---- */
typedef struct ipcf_queue ipcf_queue;
int ipcf_queue_create(const char *name, uint64_t ring_capacity, uint64_t maxsize, ipcf_queue **out);
/* put/put_many never fail for lack of ring space: a full ring is chained to a new one (and a
 * message larger than the ring gets a ring of its own); only maxsize (items) makes them wait. */
int ipcf_queue_attach(const char *name, ipcf_queue **out);
int ipcf_queue_close(ipcf_queue *q);           /* as ipcf_ring_close / ipcf_ring_free */
void ipcf_queue_free(ipcf_queue *q);
void ipcf_queue_before_fork(ipcf_queue *q);
void ipcf_queue_after_fork(ipcf_queue *q);
int ipcf_queue_travel(ipcf_queue *q, int64_t ttl_ns);
void ipcf_queue_arrived(ipcf_queue *q, uint64_t from);
uint64_t ipcf_queue_maxsize(const ipcf_queue *q);
uint64_t ipcf_queue_ring_capacity(const ipcf_queue *q);
int64_t ipcf_queue_qsize(const ipcf_queue *q);
int ipcf_queue_put(ipcf_queue *q, const char *buf, uint64_t len, int64_t timeout_ns);
int ipcf_queue_put_many(ipcf_queue *q, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns);
/* get: returns the length copied into buf, or IPCF_EBUFSMALL with *need set (nothing taken) */
int64_t ipcf_queue_get(ipcf_queue *q, char *buf, uint64_t cap, int64_t timeout_ns, uint64_t *need);
int64_t ipcf_queue_get_many(ipcf_queue *q, char *buf, uint64_t cap, uint64_t *lens,
                            uint64_t max, int64_t timeout_ns, uint64_t *need);
int ipcf_queue_task_done(ipcf_queue *q);
int ipcf_queue_join(ipcf_queue *q, int64_t timeout_ns);
int64_t ipcf_queue_unfinished(const ipcf_queue *q);

/* ---- Mailbox: priorities, types, addressing, capacities, receipts, receive policies ---- */
typedef struct ipcf_mbox ipcf_mbox;
int ipcf_mbox_create(const char *name, uint64_t capacity, uint32_t max_message,
                     uint32_t max_messages, uint32_t policy, ipcf_mbox **out);
int ipcf_mbox_attach(const char *name, ipcf_mbox **out);
int ipcf_mbox_close(ipcf_mbox *m);             /* as ipcf_ring_close / ipcf_ring_free */
void ipcf_mbox_free(ipcf_mbox *m);
void ipcf_mbox_before_fork(ipcf_mbox *m);
void ipcf_mbox_after_fork(ipcf_mbox *m);
int ipcf_mbox_travel(ipcf_mbox *m, int64_t ttl_ns);
void ipcf_mbox_arrived(ipcf_mbox *m, uint64_t from);
const struct ipcf_mbox_ctl *ipcf_mbox_ctl(const ipcf_mbox *m);
/* Post a message. With `flags & IPCF_MSG_RECEIPT` the slot stays ours until the receipt is
 * collected with ipcf_mbox_await (or the post withdrawn): out->slot and out->seq name it.
 * Waits for room up to timeout (IPCF_EFULL). On a rendezvous mailbox a non-blocking post
 * fails with IPCF_EFULL unless a receiver is waiting. */
int ipcf_mbox_post(ipcf_mbox *m, const char *buf, uint64_t len, int32_t type, int32_t priority,
                   uint64_t sender, uint64_t to, uint32_t flags, int64_t timeout_ns,
                   struct ipcf_msg_info *out);
/* 0 with the receipt in *out; IPCF_ETIMEOUT; IPCF_EPEERDEAD (the receiver died reading it). */
int ipcf_mbox_await(ipcf_mbox *m, uint32_t slot, uint64_t seq, int64_t timeout_ns,
                    struct ipcf_msg_info *out);
/* Take a receipted post back: 0 withdrawn unread, 1 it was taken meanwhile (*out is the
 * receipt), IPCF_EPEERDEAD. */
int ipcf_mbox_withdraw(ipcf_mbox *m, uint32_t slot, uint64_t seq, struct ipcf_msg_info *out);
/* Receive the best message for receiver `me`: highest priority, oldest first, addressed to
 * `me` or to anyone (0), of type `type` when has_type. Returns its length (body in buf) or
 * IPCF_EEMPTY, IPCF_EBUSY (exclusive, held by another live process; wait_right waits for
 * it instead), IPCF_EBUFSMALL (out->length is the size needed; nothing taken). */
int64_t ipcf_mbox_recv(ipcf_mbox *m, char *buf, uint64_t cap, uint64_t me, int has_type,
                       int32_t type, int wait_right, int64_t timeout_ns, struct ipcf_msg_info *out);
int ipcf_mbox_release(ipcf_mbox *m);        /* give up the exclusive right if we hold it */

#endif
