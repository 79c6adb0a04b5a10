/* futex.h - process-shared wait/wake on a struct ipcf_event, with a deadline.
 *
 * Protocol (the waker's side costs one fence and one load when nobody sleeps):
 *   waker:  publish state (release store);  ipcf_event_wake(ev)
 *             -> seq_cst fence; if sleeping: seq++, FUTEX_WAKE all
 *   waiter: ipcf_wait(ev, ready, ...)
 *             -> spin on ready() for a bounded time (no syscall while the peer is awake)
 *             -> take a named slot, set its bit in sleeping;
 *                loop { v = seq; seq_cst fence; if ready() break; FUTEX_WAIT(seq, v) }
 * The fences pair up Dekker-style: either the waker sees sleeping != 0, or the waiter's
 * re-check of ready() sees the published state. A wake between reading v and sleeping
 * changes seq, so FUTEX_WAIT returns at once. Never FUTEX_PRIVATE_FLAG: the word is shared
 * between processes. A sleeper SIGKILLed asleep leaves its slot's bit set; a wake that
 * wakes nobody (or ipcf_event_reap) clears the bits of dead processes, so no phantom
 * sleeper makes every later wake a syscall. The full argument is in futex.c.
 */
#ifndef IPCF_FUTEX_H
#define IPCF_FUTEX_H

#include "layout.h"

uint64_t ipcf_now_ns(void);   /* CLOCK_MONOTONIC, ns: every deadline and expiry uses it */

/* > 0: ready; 0: keep waiting; < 0: stop and return this code. */
typedef int (*ipcf_ready_fn)(void *arg);

/* Wait until ready(arg) != 0 or timeout_ns passes (< 0: forever, 0: check once).
 * Returns ready()'s positive value or its negative code, IPCF_ETIMEOUT, or IPCF_EINTR.
 * *sleeps (may be NULL) is incremented each time the caller actually goes to sleep. */
int ipcf_wait(struct ipcf_event *ev, ipcf_ready_fn ready, void *arg, int64_t timeout_ns,
              uint64_t *sleeps);
void ipcf_event_wake(struct ipcf_event *ev);
/* Reclaim the slots of sleepers whose process is dead (reads /proc once per named slot);
 * returns how many. Safe at any time, from any process: a live sleeper is never touched. */
int ipcf_event_reap(struct ipcf_event *ev);

/* A caller's timeout, turned into an absolute deadline only when something has to wait:
 * the fast path never reads the clock. */
struct ipcf_timeout {
    int64_t ns;          /* < 0 forever, 0 no wait, else the caller's timeout */
    uint64_t deadline;   /* CLOCK_MONOTONIC ns, 0 until first needed */
};

static inline struct ipcf_timeout ipcf_timeout_of(int64_t ns)
{
    struct ipcf_timeout t = {ns, 0};
    return t;
}

uint64_t ipcf_deadline(struct ipcf_timeout *t);   /* 0 means forever */
int64_t ipcf_remaining(struct ipcf_timeout *t);   /* -1 forever, else >= 0 ns left */

#endif
