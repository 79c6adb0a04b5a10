/* futex.c - see futex.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "futex.h"

/* How long a waiter spins before it sleeps. A peer that answers within this window costs
 * no syscall on either side; one that does not lets us sleep instead of burning a core. */
#ifndef IPCF_SPIN_NS
#define IPCF_SPIN_NS 50000
#endif
#define IPCF_SPIN_YIELD_AFTER_NS 5000

uint64_t ipcf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t ipcf_deadline(struct ipcf_timeout *t)
{
    if (t->ns < 0)
        return 0;
    if (!t->deadline)
        t->deadline = ipcf_now_ns() + (uint64_t)t->ns;
    return t->deadline;
}

int64_t ipcf_remaining(struct ipcf_timeout *t)
{
    uint64_t deadline = ipcf_deadline(t);
    if (!deadline)
        return -1;
    uint64_t now = ipcf_now_ns();
    return now >= deadline ? 0 : (int64_t)(deadline - now);
}

static int futex_wait_abs(uint32_t *word, uint32_t expected, uint64_t deadline)
{
    struct timespec ts, *tp = NULL;
    if (deadline) {
        ts.tv_sec = (time_t)(deadline / 1000000000u);
        ts.tv_nsec = (long)(deadline % 1000000000u);
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, so a spurious or
     * early return never stretches the total wait. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, expected, tp, NULL, FUTEX_BITSET_MATCH_ANY);
    return r == 0 ? 0 : errno;
}

void ipcf_event_wake(struct ipcf_event *ev)
{
    /* Pairs with the fence in ipcf_wait: our caller's release store (a new tail, head, ...)
     * is ordered before this load of waiters. */
    ipcf_fence_seq_cst();
    if (ipcf_load_relaxed(&ev->waiters) == 0)
        return;
    ipcf_fetch_add(&ev->seq, 1);
    syscall(SYS_futex, &ev->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

int ipcf_wait(struct ipcf_event *ev, ipcf_ready_fn ready, void *arg, int64_t timeout_ns,
              uint64_t *sleeps)
{
    int r = ready(arg);
    if (r || timeout_ns == 0)
        return r ? r : IPCF_ETIMEOUT;

    uint64_t start = ipcf_now_ns();
    uint64_t deadline = timeout_ns < 0 ? 0 : start + (uint64_t)timeout_ns;
    uint64_t spin_end = start + IPCF_SPIN_NS;
    if (deadline && deadline < spin_end)
        spin_end = deadline;

    /* 1. bounded spin: the peer is probably awake and about to publish. After the first few
     * microseconds each round also yields the CPU, so a peer that shares our CPU (2 cores,
     * more runnable processes) gets to run instead of waiting out our whole spin. */
    for (unsigned i = 1;; i++) {
        ipcf_cpu_relax();
        if ((r = ready(arg)) != 0)
            return r;
        if ((i & 63) == 0) {
            uint64_t now = ipcf_now_ns();
            if (now >= spin_end)
                break;
            if (now - start > IPCF_SPIN_YIELD_AFTER_NS)
                sched_yield();
        }
    }
    if (deadline && ipcf_now_ns() >= deadline)
        return IPCF_ETIMEOUT;

    /* 2. sleep on the futex word */
    if (sleeps)
        ipcf_fetch_add(sleeps, 1);    /* several sleepers may count at once */
    ipcf_fetch_add(&ev->waiters, 1);
    for (;;) {
        uint32_t seen = ipcf_load_acquire(&ev->seq);
        /* Pairs with the fence in ipcf_event_wake: waiters++ is visible to the waker before
         * we re-check, or our re-check sees what the waker published. */
        ipcf_fence_seq_cst();
        if ((r = ready(arg)) != 0)
            break;
        int e = futex_wait_abs(&ev->seq, seen, deadline);
        if (e == ETIMEDOUT) {
            r = ready(arg);
            if (!r)
                r = IPCF_ETIMEOUT;
            break;
        }
        if (e == EINTR) {
            r = IPCF_EINTR;
            break;
        }
        /* 0 (woken, maybe spuriously) or EAGAIN (seq moved): re-check */
    }
    ipcf_fetch_sub(&ev->waiters, 1);
    return r;
}
