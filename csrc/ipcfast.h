/* ipcfast.h - the public C API: what cffi sees (build_ffi.py feeds this file to ffi.cdef).
 *
 * Keep it cffi-parsable: fixed-width types, opaque handles, integer #defines only. The
 * shared-memory layout is not here: it is private to the C side (layout.h).
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
#define IPCF_ECORRUPT    -1019  /* the segment's shared state is inconsistent (written by a buggy or hostile process) */

/* ---- limits and constants callers use ---- */
/* (a #define line keeps its comment on that line: build_ffi.py drops what follows the value) */
#define IPCF_NAME_MAX       200
#define IPCF_REC_HDR        8    /* per-record overhead in a ring (length + flags words) */
#define IPCF_MIN_CAPACITY   4096
#define IPCF_MAX_CAPACITY   0x10000000000 /* 1 TiB: anything larger is a caller bug */
/* How long a handle or pipe end in transit (pickled or forked, not yet arrived) keeps its
 * segment: 60 s. */
#define IPCF_TRANSIT_NS     60000000000

/* segment flags (ipcf_ring_create; reported in ipcf_seg_info.flags) */
#define IPCF_F_MULTI_PRODUCER 1  /* producers serialise on a robust process-shared mutex */
#define IPCF_F_MULTI_CONSUMER 2  /* consumers likewise */
#define IPCF_F_AUTO_UNLINK    4  /* the last live process to detach removes the name */
#define IPCF_F_PIPE           8  /* one direction of a Pipe: tracks writer and reader ends */

/* segment kinds (ipcf_seg_info.kind) */
#define IPCF_KIND_RING      1
#define IPCF_KIND_QUEUE     2
#define IPCF_KIND_QPART     3   /* one ring of a queue's chain */
#define IPCF_KIND_MAILBOX   4

/* mailboxes */
#define IPCF_POLICY_SHARED    0  /* any receiver may take any message (the system picks) */
#define IPCF_POLICY_EXCLUSIVE 1  /* one receiving process at a time holds the right */
#define IPCF_MB_UNBOUNDED     0xffffffffffffffff   /* capacity: no bound on bytes held */
#define IPCF_MSG_RECEIPT      1  /* post flag: the sender waits for a receipt */

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
/* Handles travel (pickle, fork) with one pair of names for every kind and for pipe ends:
 *   *_depart(h, ttl_ns)   in the sending process, before the handle is pickled: it counts
 *                         as in transit (keeping its segment) for ttl_ns or until it arrives;
 *   *_arrive(h, from)     in the receiving process, after attaching: `from` is the sender's
 *                         process word (ipcf_self_word() there) and ends the transit.
 * A sender's own transits count only while it has a live descendant (the only way a handle
 * it pickled can still arrive once it has closed its own). */
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
    char     corrupt[96];     /* "" or why its state is impossible: the segment is corrupt */
};
int ipcf_seg_inspect(const char *name, struct ipcf_seg_info *out);
int ipcf_pid_alive(int32_t pid, uint64_t start_ticks);
uint64_t ipcf_proc_start(int32_t pid);
/* The calling thread's spin before a wait sleeps, in ns (adapted: futex.c, spin policy). */
uint64_t ipcf_spin_budget_ns(void);

/* A receive described once, in the caller's own memory (never shared): the fast receive
 * paths (Queue.get, Ring.recv_bytes, Mailbox.recv) pass one pointer to it. Under cffi a
 * function of one argument is a METH_O call; four or five arguments cost an argument
 * tuple, its unpacking and a conversion each: ~600 instructions more per call. */
struct ipcf_recv_args {
    void *handle;          /* the ipcf_queue *, ipcf_ring * or ipcf_mbox * */
    char *buf;
    uint64_t cap;
    int64_t timeout_ns;
};

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
void ipcf_ring_after_fork(ipcf_ring *r);    /* child: register as a peer of its own */
int ipcf_ring_depart(ipcf_ring *r, int64_t ttl_ns);
void ipcf_ring_arrive(ipcf_ring *r, uint64_t from);
uint64_t ipcf_ring_capacity(const ipcf_ring *r);
uint64_t ipcf_ring_max_message(const ipcf_ring *r);
uint32_t ipcf_ring_flags(const ipcf_ring *r);
uint64_t ipcf_ring_count(const ipcf_ring *r);      /* records held now (approximate under load) */
uint64_t ipcf_ring_used(const ipcf_ring *r);       /* bytes held now, headers included */
int ipcf_ring_send(ipcf_ring *r, const char *buf, uint64_t len, int64_t timeout_ns);
/* send_tagged: a record whose header carries `tag` (IPCF_TAG_MORE: more parts of this
 * message follow; IPCF_TAG_CONT: this continues the previous record's message), read back
 * after any receive with ipcf_ring_last_tag. Pipes send messages larger than a record so. */
int ipcf_ring_send_tagged(ipcf_ring *r, const char *buf, uint64_t len, uint32_t tag,
                          int64_t timeout_ns);
uint32_t ipcf_ring_last_tag(const ipcf_ring *r);
#define IPCF_TAG_MORE 1
#define IPCF_TAG_CONT 2
int ipcf_ring_send_many(ipcf_ring *r, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns, uint64_t *sent);
int64_t ipcf_ring_recv(ipcf_ring *r, char *buf, uint64_t cap, int64_t timeout_ns);
/* ipcf_ring_recv(a->handle, a->buf, a->cap, a->timeout_ns) (see struct ipcf_recv_args) */
int64_t ipcf_ring_recv1(struct ipcf_recv_args *a);
int64_t ipcf_ring_recv_many(ipcf_ring *r, char *buf, uint64_t cap, uint64_t *lens,
                            uint64_t max, int64_t timeout_ns);
int ipcf_ring_claim(ipcf_ring *r, uint64_t len, int64_t timeout_ns, char **out);
int ipcf_ring_commit(ipcf_ring *r, uint64_t len);
int ipcf_ring_abort(ipcf_ring *r);
int ipcf_ring_peek(ipcf_ring *r, int64_t timeout_ns, char **ptr, uint64_t *len);
int ipcf_ring_release(ipcf_ring *r);
int ipcf_ring_unpeek(ipcf_ring *r);
/* Batch forms: claim_many reserves n records of lens[i] bytes back to back (*out: the first
 * record's header; each body follows its 8-byte header, records padded to 8 bytes) and
 * commit_many publishes them all; peek_many holds up to max messages in place (*first: the
 * first record's header, lens filled) until one ipcf_ring_release (or unpeek) of them all. */
int ipcf_ring_claim_many(ipcf_ring *r, const uint64_t *lens, uint64_t n, int64_t timeout_ns,
                         char **out);
int ipcf_ring_commit_many(ipcf_ring *r);
int64_t ipcf_ring_peek_many(ipcf_ring *r, uint64_t max, int64_t timeout_ns, char **first,
                            uint64_t *lens);         /* end a view, leaving the record unread */
int ipcf_ring_poll(ipcf_ring *r, int64_t timeout_ns);   /* 1 readable or at EOF, 0 not */
/* (start_ticks_low32 << 32) | pid of this process: the `from` of *_arrive */
uint64_t ipcf_self_word(void);

/* ---- Pipe ends: each direction of a Pipe is an IPCF_F_PIPE ring ---- */
/* Hold this ring's sending (writer) and/or receiving (reader) end; kept across fork by
 * ipcf_ring_after_fork, dropped by ipcf_ring_close. On an IPCF_F_PIPE ring, recv on an empty
 * ring with no writer and any send with no reader (closed or dead: pipe.h) return
 * IPCF_ECLOSED. An end is
 * there while a live process holds it or while it is in transit. IPCF_EBADARG on a ring that
 * is not a pipe. */
int ipcf_pipe_hold(ipcf_ring *r, int writer, int reader);
/* The ends this process holds travel: the pipe-end form of *_depart / *_arrive above. */
int ipcf_pipe_depart(ipcf_ring *r, int writer, int reader, int64_t ttl_ns);
int ipcf_pipe_arrive(ipcf_ring *r, int writer, int reader, uint64_t from);

/* ---- Queue: a control segment plus a chain of rings that grows when one fills ---- */
typedef struct ipcf_queue ipcf_queue;
/* max_bytes: 0, or the bytes the queued items may hold at most, each item counting its
 * length + item_overhead (<= 4096); a put that could never fit gives IPCF_ETOOBIG. */
int ipcf_queue_create(const char *name, uint64_t ring_capacity, uint64_t maxsize,
                      uint64_t max_bytes, uint64_t item_overhead, ipcf_queue **out);
/* put/put_many never fail for lack of ring space: a full ring is chained to a new one (and a
 * message larger than the ring gets a ring of its own); only maxsize (items) and max_bytes
 * make them wait. */
int ipcf_queue_attach(const char *name, ipcf_queue **out);
int ipcf_queue_close(ipcf_queue *q);           /* as ipcf_ring_close / ipcf_ring_free */
void ipcf_queue_free(ipcf_queue *q);
void ipcf_queue_before_fork(ipcf_queue *q);
void ipcf_queue_after_fork(ipcf_queue *q);
int ipcf_queue_depart(ipcf_queue *q, int64_t ttl_ns);
void ipcf_queue_arrive(ipcf_queue *q, uint64_t from);
uint64_t ipcf_queue_maxsize(const ipcf_queue *q);
uint64_t ipcf_queue_ring_capacity(const ipcf_queue *q);
int64_t ipcf_queue_qsize(const ipcf_queue *q);
uint64_t ipcf_queue_max_bytes(const ipcf_queue *q);
int64_t ipcf_queue_data_size(const ipcf_queue *q);   /* bytes held (see max_bytes) */
/* a shared "closed" mark that nothing else reads (faster-fifo's close / is_closed) */
void ipcf_queue_mark_closed(ipcf_queue *q);
int ipcf_queue_marked_closed(const ipcf_queue *q);
int ipcf_queue_put(ipcf_queue *q, const char *buf, uint64_t len, int64_t timeout_ns);
int ipcf_queue_put_many(ipcf_queue *q, const char *buf, const uint64_t *lens, uint64_t n,
                        int64_t timeout_ns);
/* putv: one item whose bytes are the n pieces bufs[i][0:lens[i]] back to back (a pickle
 * stream's chunks, written into the ring without being joined first) */
int ipcf_queue_putv(ipcf_queue *q, const char *const *bufs, const uint64_t *lens, uint64_t n,
                    int64_t timeout_ns);
/* get: returns the length copied into buf, or IPCF_EBUFSMALL with *need set (nothing taken;
 * need may be NULL, as it is for get_many) */
int64_t ipcf_queue_get(ipcf_queue *q, char *buf, uint64_t cap, int64_t timeout_ns, uint64_t *need);

/* ipcf_queue_get(a->handle, a->buf, a->cap, a->timeout_ns, NULL) */
int64_t ipcf_queue_get1(struct ipcf_recv_args *a);
/* peek: up to max of the next items in place (of one ring) - returns how many, *first
 * pointing at the first record's header (8-byte headers, records padded to 8 bytes) and
 * lens filled, with the consumer side held; the caller reads them and then calls
 * ipcf_queue_release exactly once, from the same thread: consume=1 removes them, 0 leaves
 * them for the next reader (as does a consumer killed in between). */
int64_t ipcf_queue_peek(ipcf_queue *q, uint64_t max, int64_t timeout_ns, const char **first,
                        uint64_t *lens);
void ipcf_queue_release(ipcf_queue *q, int consume);
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
int ipcf_mbox_depart(ipcf_mbox *m, int64_t ttl_ns);
void ipcf_mbox_arrive(ipcf_mbox *m, uint64_t from);
/* Bytes per message slot (header + max_message, page aligned): how create sizes the file. */
uint64_t ipcf_mbox_stride(uint32_t max_message);
/* What the mailbox was made with (fixed at creation). */
uint64_t ipcf_mbox_capacity(const ipcf_mbox *m);      /* 0 rendezvous, IPCF_MB_UNBOUNDED */
uint32_t ipcf_mbox_max_message(const ipcf_mbox *m);
uint32_t ipcf_mbox_max_messages(const ipcf_mbox *m);
uint32_t ipcf_mbox_policy(const ipcf_mbox *m);        /* IPCF_POLICY_* */
/* What it holds now (read without the lock: a snapshot that may be stale at once). */
uint32_t ipcf_mbox_count(const ipcf_mbox *m);         /* messages waiting to be received */
uint64_t ipcf_mbox_bytes_held(const ipcf_mbox *m);    /* bodies posted and not yet freed */
struct ipcf_mbox_stats {      /* the counters, for tests and the operator commands */
    uint64_t bytes_held;
    uint64_t published;       /* messages ever made ready */
    uint64_t taken;           /* messages ever taken by a receiver */
    uint64_t freed;           /* slots ever freed */
    uint32_t count;           /* messages ready now */
    uint32_t high_water;      /* slots ever used */
    uint32_t inflight;        /* slots being copied outside the lock */
    uint32_t repairs;         /* times the state was rebuilt after a holder died */
    uint32_t receivers_waiting;
    int32_t  holder_pid;      /* exclusive policy: pid holding the right, 0 none */
};
void ipcf_mbox_stats(const ipcf_mbox *m, struct ipcf_mbox_stats *out);
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
/* The common case in fewer arguments (Mailbox.send/recv's fast path): the handle's own id
 * as sender and receiver (ipcf_mbox_set_id; 0, the default, is the process id), to anyone,
 * no receipt, no type filter, no waiting for the exclusive right. */
void ipcf_mbox_set_id(ipcf_mbox *m, uint64_t id);
/* ipcf_mbox_post(m, buf, len, type, priority, id, 0, 0, timeout_ns, ...). Not on a
 * rendezvous mailbox (every send there awaits its receipt): IPCF_EBADARG. */
int ipcf_mbox_send(ipcf_mbox *m, const char *buf, uint64_t len, int32_t type, int32_t priority,
                   int64_t timeout_ns);
/* Header and body in one buffer: ipcf_mbox_recv(m, buf + IPCF_MSG_HEAD, cap -
 * IPCF_MSG_HEAD, id, 0, 0, 0, timeout_ns, (struct ipcf_msg_info *)buf). buf is 8-byte
 * aligned and cap >= IPCF_MSG_HEAD (else IPCF_EBADARG). */
#define IPCF_MSG_HEAD 72
int64_t ipcf_mbox_take(ipcf_mbox *m, char *buf, uint64_t cap, int64_t timeout_ns);
/* ipcf_mbox_take(a->handle, a->buf, a->cap, a->timeout_ns) (see struct ipcf_recv_args) */
int64_t ipcf_mbox_take1(struct ipcf_recv_args *a);
/* Batches (bodies up to 4096 bytes each, else IPCF_EBADARG). send_many posts the n bodies
 * laid end to end in blob (lens[k] bytes each) as n messages of this type and priority
 * from the handle's id, to anyone, no receipt: all under one lock hold, in order, or none
 * (waiting for room for all up to timeout: IPCF_EFULL). n <= max_messages, the sum within
 * the capacity, not on a rendezvous mailbox: else IPCF_EBADARG. */
int ipcf_mbox_send_many(ipcf_mbox *m, const char *blob, const uint64_t *lens, uint32_t n,
                        int32_t type, int32_t priority, int64_t timeout_ns);
/* Receive as ipcf_mbox_recv (waiting up to timeout for the first), then up to max - 1 more
 * that are ready now (256 in all at most: one lock hold each), into buf as records: a struct ipcf_msg_info header, then the body
 * padded to 8 bytes (IPCF_MSG_HEAD + length rounded up). Returns how many (>= 1), or as
 * ipcf_mbox_recv (IPCF_EBUFSMALL: the first does not fit; its header says its length).
 * buf 8-byte aligned. */
int64_t ipcf_mbox_take_many(ipcf_mbox *m, char *buf, uint64_t cap, uint32_t max, int has_type,
                            int32_t type, int wait_right, int64_t timeout_ns);

/* ---- file descriptors: one per (process, handle, event) that asks (poll.c) ----
 * ipcf_*_poller binds an abstract AF_UNIX datagram socket of this process, takes one of
 * the event's IPCF_EVENT_POLLERS poller slots (-EBUSY when every one is held by a live
 * poller) and arms it. The descriptor polls readable while `what` would not block:
 *   IPCF_POLL_DATA   a receive (a record, an item, a message; a pipe ring also at EOF)
 *   IPCF_POLL_SPACE  a send of `need` bytes (ring) or of one item (queue)
 *   IPCF_POLL_JOIN   a queue's join()
 * It is level-triggered only through ipcf_poller_rearm, which the owner calls after each
 * receive attempt (and before each poll): it drains the socket and re-checks; it may be
 * readable when the receive would block after all (another consumer took the message). */
typedef struct ipcf_poller ipcf_poller;
#define IPCF_POLL_DATA  0
#define IPCF_POLL_SPACE 1
#define IPCF_POLL_JOIN  2
int ipcf_ring_poller(ipcf_ring *r, int what, ipcf_poller **out);
int ipcf_queue_poller(ipcf_queue *q, int what, ipcf_poller **out);
int ipcf_mbox_poller(ipcf_mbox *m, int what, ipcf_poller **out);
int ipcf_poller_fd(const ipcf_poller *p);
/* 1: ready (a byte waits in the socket), 0: not ready (armed: a waker will send one) */
int ipcf_poller_rearm(ipcf_poller *p, uint64_t need);
/* free the slot, close the socket, free p (before the handle is freed) */
void ipcf_poller_close(ipcf_poller *p);
/* in a fork child: close the inherited descriptor and free p; the slot stays the parent's */
void ipcf_poller_forget(ipcf_poller *p);
/* notification datagrams this process's wakers have sent (a statistic, for tests) */
uint64_t ipcf_poll_notifies(void);

#endif
