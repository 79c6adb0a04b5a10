/* poll.c - file descriptors for handles (see poll.h and ipcfast.h).
 *
 * Why a socket: a descriptor another process can make readable, without a leak when the
 * polling process dies and without privileges. An eventfd is private to its process (and
 * pidfd_getfd needs ptrace rights that Yama often denies); a FIFO is a file that a SIGKILL
 * leaves behind. An abstract-namespace AF_UNIX datagram socket has a name any process of the
 * same network namespace can sendto(), no file, and it disappears with its last descriptor,
 * so a poller that died is found out by the next notification (ECONNREFUSED).
 *
 * A poller is (process, handle, event): its socket is named "ipcfast.poll.<ident>" with
 * ident = pid | token << 22 (pids are < 2^22, as futex.c assumes; the token tells apart the
 * pollers of one process), and it holds slot k of the event: poller[k] = ident.
 *
 *   poller open:  bind the socket; CAS poller[k] 0 -> ident     (the slot is ours until close)
 *   rearm:        if ready(): become readable; return 1
 *                 drain the socket; fetch_or(sleeping, bit k)     (armed: a seq_cst RMW)
 *                 seq_cst fence; if ready(): become readable; return 1
 *                 return 0
 *     readable:   if armed: fetch_and(sleeping, ~bit k) (disarm: if a waker cleared it
 *                 first, its byte may be on its way, or never come if it was killed); then
 *                 unless our own byte is known to wait in the socket, send ourselves one.
 *                 So while the handle stays ready (a backlog), a rearm makes no syscall.
 *   waker:        publish; fence; s = sleeping; if s == 0: return    (futex.c, unchanged)
 *                 for each armed bit k in s: if fetch_and(sleeping, ~bit k) had it set:
 *                     sendto(poller[k], 1 byte, MSG_DONTWAIT); ECONNREFUSED: the poller is
 *                     gone, CAS poller[k] ident -> 0
 *   close:        fetch_and(sleeping, ~bit k); store poller[k] = 0; close the socket
 *
 * No lost wakeup: the poller's arm (RMW + fence) and re-check pair with the waker's publish +
 * fence + load of `sleeping` exactly as a sleeper's do (futex.c, point 3): either the waker
 * sees the bit and one waker sends, or the re-check sees what it published and the poller
 * sends itself the byte. Only the caller whose fetch_and cleared the bit sends, so a burst of
 * wakes costs one sendto per rearm, not one per wake. A poller that is already readable is
 * not armed, so it costs wakers nothing either.
 *
 * Readability may be spurious (level-triggered only through rearm): another consumer may
 * take the message first, and any process in the network namespace may send to the name.
 *
 * Pipe EOF: a writer that closes wakes the data event, but one killed by SIGKILL wakes
 * nobody. So the descriptor of a pipe ring's data poller is an epoll instance holding the
 * socket and a pidfd of each other process in the ring's writer table (pidfd_open needs no
 * privilege; the writer's start time is checked after opening it, so a recycled pid is
 * not watched): a writer's death makes it readable, and the rearm that follows finds EOF
 * (or, if other writers remain, closes that pidfd and is not readable any more). The set
 * is brought up to date at each rearm that arms. Without pidfds (kernel < 5.3) a killed
 * writer is noticed at the next rearm instead.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include "atomics.h"
#include "futex.h"
#include "peers.h"
#include "pipe.h"
#include "poll.h"
#include "queue.h"
#include "ring.h"

typedef int (*poll_ready_fn)(void *h, uint64_t need);

struct ipcf_poller {
    struct ipcf_event *ev;
    poll_ready_fn ready;
    void *h;
    int fd;
    int slot;
    uint32_t ident;
    int armed;      /* we set our bit and have not cleared it since   } touched only by */
    int pending;    /* our own byte waits in the socket (not drained) } the owner's lock */
    int epfd;                          /* pipe-ring data pollers: epoll of fd + pidfds, else -1 */
    struct ipcf_pipe *pipe;
    uint64_t writer[IPCF_PIPE_ENDS];   /* the writer word pidfd[i] was opened for */
    int pidfd[IPCF_PIPE_ENDS];         /* -1: none */
};

static uint64_t notifies;   /* process-local statistic (atomic: any thread may wake) */
static int send_fd = -1;    /* process-local unbound socket wakers send from (atomic) */
static uint32_t next_token; /* process-local (atomic) */

static socklen_t poll_addr(uint32_t ident, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    /* sun_path[0] = 0: the abstract namespace (no file; gone with the last descriptor) */
    int n = snprintf(a->sun_path + 1, sizeof a->sun_path - 1, "ipcfast.poll.%08x", ident);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int sender(void)
{
    /* acquire/CAS: the first thread to make the socket publishes it; a loser closes its own */
    int fd = ipcf_load_acquire(&send_fd);
    if (fd >= 0)
        return fd;
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    int expect = -1;
    if (!ipcf_cas(&send_fd, &expect, s)) {
        close(s);
        return expect;
    }
    return s;
}

static int send_one(int from, const struct sockaddr_un *a, socklen_t len)
{
    char b = 1;
    if (from < 0)
        return EBADF;
    return sendto(from, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)a, len) == 1
           ? 0 : errno;
}

/* One byte to poller `ident`: 0 sent (or its socket already holds bytes), else errno.
 * EAGAIN from the shared sender is ambiguous: the poller's queue is full (it holds bytes:
 * fine), or our own send buffer is, as every byte not yet drained by its poller is charged
 * to it (many armed pollers at once). So that, and any other failure, is retried once from
 * a fresh socket, whose buffer is empty: EAGAIN there means the poller's queue is full. */
static int send_byte(int from, uint32_t ident)
{
    struct sockaddr_un a;
    socklen_t len = poll_addr(ident, &a);
    int e = send_one(from, &a, len);
    if (e == 0 || e == ECONNREFUSED || e == ENOENT)
        return e;
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    e = send_one(s, &a, len);
    if (s >= 0)
        close(s);
    return e == EAGAIN ? 0 : e;
}

void ipcf_poll_notify(struct ipcf_event *ev, uint32_t s)
{
    uint32_t armed = s & IPCF_POLL_BITS;
    while (armed) {
        int b = __builtin_ctz(armed);
        armed &= armed - 1;
        uint32_t bit = 1u << b;
        /* seq_cst RMW: of all wakers (and the poller's own close), exactly one clears a set
         * bit; only it sends */
        if (!(ipcf_fetch_and(&ev->sleeping, ~bit) & bit))
            continue;
        int k = b - IPCF_EVENT_SLOTS;
        /* acquire: the poller stored poller[k] before its fetch_or set the bit we cleared */
        uint32_t who = ipcf_load_acquire(&ev->poller[k]);
        if (!who)
            continue;                     /* a bit nobody holds (corruption): now cleared */
        ipcf_fetch_add(&notifies, 1);
        int e = send_byte(sender(), who);
        if (e == ECONNREFUSED || e == ENOENT)
            ipcf_cas(&ev->poller[k], &who, 0);    /* its socket is gone: free the slot */
        else if (e)
            /* not told (no memory, no descriptor left): armed again, so that the next
             * wake tries again instead of the poller never hearing of this one */
            ipcf_fetch_or(&ev->sleeping, bit);
    }
}

uint64_t ipcf_poll_notifies(void) { return ipcf_load_relaxed(&notifies); }

/* Is the socket of `ident` gone (no process has it bound any more)? */
static int poller_gone(uint32_t ident)
{
    struct sockaddr_un a;
    socklen_t len = poll_addr(ident, &a);
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 0;
    int gone = connect(s, (struct sockaddr *)&a, len) < 0 && errno == ECONNREFUSED;
    close(s);
    return gone;
}

static int take_slot(struct ipcf_event *ev, uint32_t ident)
{
    for (int k = 0; k < IPCF_EVENT_POLLERS; k++) {
        uint32_t zero = 0;
        /* relaxed peek, then the seq_cst CAS that takes the slot */
        if (ipcf_load_relaxed(&ev->poller[k]) == 0 && ipcf_cas(&ev->poller[k], &zero, ident))
            return k;
    }
    /* every slot held: free those whose socket is gone (a poller killed before its close;
     * the CAS leaves a slot someone re-took meanwhile alone), then try again */
    int freed = 0;
    for (int k = 0; k < IPCF_EVENT_POLLERS; k++) {
        uint32_t who = ipcf_load_acquire(&ev->poller[k]);
        if (who && poller_gone(who) && ipcf_cas(&ev->poller[k], &who, 0))
            freed = 1;
    }
    /* (a bit the dead poller left armed stays: clearing it now could disarm the slot's next
     * holder; the next waker clears it and at worst sends that holder one spurious byte) */
    return freed ? take_slot(ev, ident) : -1;
}

static int poller_open(struct ipcf_event *ev, poll_ready_fn ready, void *h, ipcf_poller **out)
{
    struct ipcf_poller *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->ev = ev;
    p->ready = ready;
    p->h = h;
    p->epfd = -1;
    for (int i = 0; i < IPCF_PIPE_ENDS; i++)
        p->pidfd[i] = -1;
    p->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        int e = errno;
        free(p);
        return -e;
    }
    uint32_t pid = (uint32_t)getpid() & 0x3fffffu;
    int rc = -EADDRINUSE;
    for (int tries = 0; tries < 1024 && rc == -EADDRINUSE; tries++) {
        uint32_t token = ipcf_fetch_add(&next_token, 1) & 0x3ffu;
        p->ident = pid | token << 22;
        struct sockaddr_un a;
        socklen_t len = poll_addr(p->ident, &a);
        rc = bind(p->fd, (struct sockaddr *)&a, len) == 0 ? 0 : -errno;
    }
    if (rc == 0 && (p->slot = take_slot(ev, p->ident)) < 0)
        rc = -EBUSY;
    if (rc) {
        close(p->fd);
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int ipcf_poller_fd(const ipcf_poller *p) { return p->epfd >= 0 ? p->epfd : p->fd; }

/* ---- pipe rings: pidfds of the writers (see the top) ---- */

static int watch_pipe(struct ipcf_poller *p, struct ipcf_pipe *pipe)
{
    p->pipe = pipe;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0)
        return -errno;
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = 0};
    return epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->fd, &e) == 0 ? 0 : -errno;
}

static void close_pidfds(struct ipcf_poller *p)
{
    for (int i = 0; i < IPCF_PIPE_ENDS; i++)
        if (p->pidfd[i] >= 0) {
            close(p->pidfd[i]);
            p->pidfd[i] = -1;
        }
    if (p->epfd >= 0)
        close(p->epfd);
}

static void watch_writers(struct ipcf_poller *p)
{
    struct epoll_event evs[IPCF_PIPE_ENDS + 1];
    /* a pidfd turns readable when its process exits: close it (not re-opened for that
     * word), so that the descriptor is not readable for a writer that is gone */
    int n = epoll_wait(p->epfd, evs, IPCF_PIPE_ENDS + 1, 0);
    for (int j = 0; j < n; j++) {
        uint32_t i = evs[j].data.u32;
        if (i > 0 && i <= IPCF_PIPE_ENDS && p->pidfd[i - 1] >= 0) {
            close(p->pidfd[i - 1]);
            p->pidfd[i - 1] = -1;
        }
    }
    uint64_t self = ipcf_self_word();
    for (int i = 0; i < IPCF_PIPE_ENDS; i++) {
        /* acquire: a snapshot of the writer table (pipe.c updates it with CAS/release) */
        uint64_t w = ipcf_load_acquire(&p->pipe->ctl->writers[i]);
        if (w == p->writer[i])
            continue;
        if (p->pidfd[i] >= 0) {
            close(p->pidfd[i]);
            p->pidfd[i] = -1;
        }
        p->writer[i] = w;
        if (!w || w == self)
            continue;
        int fd = (int)syscall(SYS_pidfd_open, (pid_t)(w & 0xffffffffu), 0);
        if (fd < 0)
            continue;                 /* gone already, or no pidfds: the next rearm sees */
        struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i + 1};
        if (!ipcf_word_alive(w) || epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);                /* (a recycled pid: not that writer) */
            continue;
        }
        p->pidfd[i] = fd;
    }
}

static void self_send(struct ipcf_poller *p)
{
    send_byte(p->fd, p->ident);
}

/* Empty the socket: one recvmmsg takes up to 16 one-byte datagrams per call. */
static void drain(int fd)
{
    char bufs[16];
    struct iovec iov[16];
    struct mmsghdr msgs[16];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < 16; i++) {
        iov[i].iov_base = &bufs[i];
        iov[i].iov_len = 1;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    while (recvmmsg(fd, msgs, 16, MSG_DONTWAIT, NULL) == 16)
        ;
}

static int readable(struct ipcf_poller *p, uint32_t bit)
{
    if (p->armed) {
        p->armed = 0;
        ipcf_fetch_and(&p->ev->sleeping, ~bit);     /* disarm (seq_cst RMW) */
    }
    if (!p->pending) {
        self_send(p);
        p->pending = 1;
    }
    return 1;
}

int ipcf_poller_rearm(ipcf_poller *p, uint64_t need)
{
    /* acquire: our slot is still ours (a corrupt segment may have zeroed it) */
    if (ipcf_load_acquire(&p->ev->poller[p->slot]) != p->ident) {
        int k = take_slot(p->ev, p->ident);
        if (k < 0)
            return -EBUSY;
        p->slot = k;
        p->armed = 0;
    }
    uint32_t bit = 1u << (IPCF_EVENT_SLOTS + p->slot);
    if (p->ready(p->h, need))
        return readable(p, bit);
    drain(p->fd);                                   /* ours, and any waker's */
    p->pending = 0;
    if (p->epfd >= 0)
        watch_writers(p);
    ipcf_fetch_or(&p->ev->sleeping, bit);           /* arm (seq_cst RMW) */
    p->armed = 1;
    /* pairs with the fence in ipcf_event_wake: the waker sees our bit, or our re-check sees
     * what it published (futex.c, point 3) */
    ipcf_fence_seq_cst();
    if (p->ready(p->h, need))
        return readable(p, bit);
    return 0;
}

void ipcf_poller_close(ipcf_poller *p)
{
    int k = p->slot;
    uint32_t me = p->ident;
    ipcf_fetch_and(&p->ev->sleeping, ~(1u << (IPCF_EVENT_SLOTS + k)));   /* disarmed ... */
    ipcf_cas(&p->ev->poller[k], &me, 0);                    /* ... before the slot is free */
    close_pidfds(p);
    close(p->fd);
    free(p);
}

void ipcf_poller_forget(ipcf_poller *p)
{
    close_pidfds(p);        /* our copies only: the parent's epoll set is untouched */
    close(p->fd);
    free(p);
}

/* ---- what each kind's pollers watch (a ready() that never blocks) ---- */

static int ring_data(void *h, uint64_t need)
{
    return ipcf_ring_poll(h, 0) != 0;       /* a record, a pipe at EOF, or closed */
}

static int ring_space(void *h, uint64_t need)
{
    ipcf_ring *r = h;
    uint64_t cap = ipcf_ring_capacity(r), used = ipcf_ring_used(r);
    return cap - used >= ipcf_rec_size(need);
}

int ipcf_ring_poller(ipcf_ring *r, int what, ipcf_poller **out)
{
    if (what != IPCF_POLL_DATA && what != IPCF_POLL_SPACE)
        return IPCF_EBADARG;
    int rc = poller_open(ipcf_ring_event(r, what), what ? ring_space : ring_data, r, out);
    struct ipcf_pipe *pipe = ipcf_ring_pipe(r);
    if (rc == 0 && what == IPCF_POLL_DATA && pipe && (rc = watch_pipe(*out, pipe)) != 0) {
        ipcf_poller_close(*out);
        *out = NULL;
    }
    return rc;
}

/* An item to get: by the counts, or else by the rings themselves. The counts alone can be
 * one short for good after a SIGKILL (a producer killed between publishing and counting,
 * with no producer since to repair it; a consumer killed between counting and moving the
 * head): blocking gets, which read the rings, would still find that item, so the poller
 * must too. Rings from read_gen to write_gen (nearly always one) are looked at through the
 * poller's own mapping, q->p (only this poller's rearm, under its lock, touches it). */
static int queue_data(void *h, uint64_t need)
{
    struct ipcf_queue *q = h;
    if (ipcf_queue_qsize(q) > 0)
        return 1;
    /* acquire: pair with the releases of read_gen / write_gen (queue.c) */
    uint64_t gen = ipcf_load_acquire(&q->ctl->read_gen);
    uint64_t last = ipcf_load_acquire(&q->ctl->write_gen);
    for (int k = 0; gen <= last && k < 8; gen++, k++) {      /* bounded: a corrupt gen */
        if (ipcf_qring_map(q, &q->p, gen) != 0)
            continue;                      /* drained and removed meanwhile */
        /* acquire: pairs with the producer's release of tail (ipcf_rb_publish) */
        if (ipcf_load_acquire(&q->p.rb.ctl->tail) != ipcf_load_acquire(&q->p.rb.ctl->head))
            return 1;
    }
    return 0;
}
static int queue_join(void *h, uint64_t need) { return ipcf_queue_unfinished(h) == 0; }

/* Room for one more item of `need` pickled bytes (0: unknown, counted as 1) under maxsize
 * and max_bytes. An unknown size can make the readiness spurious (the caller's
 * non-blocking put then fails and it waits again); aio passes the size for max_bytes. */
static int queue_space(void *h, uint64_t need)
{
    struct ipcf_queue *q = h;
    return ipcf_qbytes_room(q, 1, (need ? need : 1) + q->item_overhead);
}

int ipcf_queue_poller(ipcf_queue *q, int what, ipcf_poller **out)
{
    static const poll_ready_fn fns[] = {queue_data, queue_space, queue_join};
    if (what < IPCF_POLL_DATA || what > IPCF_POLL_JOIN)
        return IPCF_EBADARG;
    return poller_open(ipcf_queue_event(q, what), fns[what], q, out);
}

static int mbox_data(void *h, uint64_t need) { return ipcf_mbox_count(h) > 0; }

int ipcf_mbox_poller(ipcf_mbox *m, int what, ipcf_poller **out)
{
    if (what != IPCF_POLL_DATA)
        return IPCF_EBADARG;
    return poller_open(ipcf_mbox_event(m, what), mbox_data, m, out);
}
