/* futex.c - see futex.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "host.h"

#include "atomics.h"
#include "futex.h"
#include "peers.h"
#include "poll.h"

/* How long a waiter spins before it sleeps: at most IPCF_SPIN_NS. A peer that answers within
 * the spin costs no syscall on either side; one that does not lets us sleep instead of
 * burning a core. The spin adapts (spin_budget below). */
#ifndef IPCF_SPIN_NS
#define IPCF_SPIN_NS 50000
#endif
#define IPCF_SPIN_MIN_NS 2000         /* the floor of an adapted spin */
#define IPCF_SPIN_PROBE_EVERY 16      /* every 16th wait spins the full IPCF_SPIN_NS */

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

/* ---- who sleeps on an event: named slots, reclaimable when their process dies ----
 *
 * The problem: a sleeper announces itself with an atomic increment before its last check of
 * ready() (Dekker, below). A process SIGKILLed asleep never takes the increment back, so the
 * count stays high forever: every later wake pays a FUTEX_WAKE syscall for nobody, and
 * statistics report a sleeper that does not exist. A bare count cannot tell whose it is.
 *
 * The scheme: `sleeping` holds one bit per named slot (owner[i] says whose), plus, in bits
 * 16..31, a count of sleepers that found every slot taken (unnamed: never reclaimed; only
 * more than IPCF_EVENT_SLOTS simultaneous sleepers on one event ever use it). The bits in
 * between are armed file-descriptor pollers (IPCF_POLL_BITS, poll.c): the waker's one load
 * of `sleeping` covers them too, and they never need a FUTEX_WAKE.
 *
 *   sleeper:  CAS owner[i] 0 -> self           (take slot i; nobody else can now set bit i)
 *             fetch_or(sleeping, bit i)        (THE announcement: one seq_cst RMW)
 *             ... loop { v = seq; fence; ready()?; FUTEX_WAIT(seq, v) } ...
 *             fetch_and(sleeping, ~bit i)      (withdrawn)
 *             store owner[i] = 0               (slot free again, release)
 *   waker:    publish; fence; if sleeping == 0: return   (hot path: one fence + one load)
 *             seq++; FUTEX_WAKE all; if it woke nobody: maybe reap (rate limited)
 *   reaper:   for each slot: w = owner[i]; if w is a dead process (pid + start time) or a dead
 *             reaper's mark: CAS owner[i] w -> self|REAPING; fetch_and(sleeping, ~bit i);
 *             store owner[i] = 0.   (If owner[i] == 0 but bit i is set - corruption - the
 *             reaper takes the free slot with the same CAS and clears the bit.)
 *
 * Why no live sleeper is ever missed (the lost-wakeup argument):
 *  1. Bit i is set only by the process holding owner[i] (it took the slot by CAS first, and
 *     clears the bit before it frees the slot). So while a live sleeper's bit is set,
 *     owner[i] is that live sleeper's word, never a dead word and never 0.
 *  2. A reaper clears bit i only while it holds owner[i] with its own REAPING mark, won by a
 *     CAS from a word it found dead (or from 0). Holding the slot, nobody else can set bit i
 *     meanwhile (1), so the bit it clears was set by the dead owner, or is stale: never a
 *     live sleeper's. A live sleeper between its fetch_or and FUTEX_WAIT is alive, so it is
 *     never reaped however long it takes to reach the futex. Two reapers cannot both win the
 *     CAS; a reaper killed half-way leaves its mark, which a later reaper finds dead and
 *     takes over (clearing the bit again is idempotent).
 *  3. So `sleeping` is nonzero whenever a live sleeper has announced itself and not yet
 *     withdrawn, exactly as the old count was: the waker's fence + load and the sleeper's
 *     RMW + fence pair up as before (either the waker sees the bit, or the sleeper's re-check
 *     of ready() sees what the waker published; a wake between reading seq and sleeping
 *     moves seq, so FUTEX_WAIT returns at once).
 *  4. A process word is (start_ticks_low32 << 32) | pid; pids are < 2^22 (pid_max), so bit
 *     31 is free for IPCF_WORD_REAPING. A recycled pid has another start time: still dead.
 *     Our own process's entries (other threads) are alive by definition and never reaped.
 * `waiters` is a statistic only, recomputed from `sleeping` after each change by a CAS loop
 * (the last successful CAS read `sleeping` after every earlier change, so it settles on the
 * truth once sleepers stop changing); nothing decides anything on it.
 */
#define IPCF_WORD_REAPING   0x80000000u
#define IPCF_SLEEP_SLOTS    ((1u << IPCF_EVENT_SLOTS) - 1u)
#define IPCF_SLEEP_UNNAMED  (1u << 16)
#define IPCF_REAP_EVERY_MS  5u

static void refresh_waiters(struct ipcf_event *ev)
{
    uint32_t old = ipcf_load_relaxed(&ev->waiters), now;
    do {
        uint32_t s = ipcf_load_relaxed(&ev->sleeping);
        now = (uint32_t)__builtin_popcount(s & IPCF_SLEEP_SLOTS) + (s >> 16);
    } while (old != now && !ipcf_cas(&ev->waiters, &old, now));
}

/* Reclaim slot i from w (a dead process's word, a dead reaper's mark, or 0 with a stale
 * bit): only the CAS winner clears the bit. */
static int reclaim_slot(struct ipcf_event *ev, int i, uint64_t w)
{
    uint64_t mark = ipcf_self_word() | IPCF_WORD_REAPING;
    if (!ipcf_cas(&ev->owner[i], &w, mark))
        return 0;                                   /* it changed: someone else's now */
    ipcf_fetch_and(&ev->sleeping, ~(1u << i));
    ipcf_store_release(&ev->owner[i], 0);
    return 1;
}

int ipcf_event_reap(struct ipcf_event *ev)
{
    uint64_t self = ipcf_self_word();
    int n = 0;
    for (int i = 0; i < IPCF_EVENT_SLOTS; i++) {
        uint64_t w = ipcf_load_acquire(&ev->owner[i]);
        if (!w) {
            if (ipcf_load_relaxed(&ev->sleeping) & (1u << i))
                n += reclaim_slot(ev, i, 0);        /* a bit nobody holds (corruption) */
            continue;
        }
        uint64_t who = w & ~(uint64_t)IPCF_WORD_REAPING;
        if (who == self || ipcf_word_alive(who))
            continue;                               /* a live sleeper, or a live reaper */
        n += reclaim_slot(ev, i, w);
    }
    if (n)
        refresh_waiters(ev);
    return n;
}

/* A wake woke nobody although `sleeping` named someone: maybe a sleeper died asleep (or a
 * live one is on its way in or out, which the reap leaves alone). Rate limited per event:
 * a reap reads /proc once per named slot. */
static void maybe_reap(struct ipcf_event *ev)
{
    uint32_t now = (uint32_t)(ipcf_now_ns() / 1000000u);
    uint32_t last = ipcf_load_relaxed(&ev->reap_ms);
    if (now - last < IPCF_REAP_EVERY_MS || !ipcf_cas(&ev->reap_ms, &last, now))
        return;
    ipcf_event_reap(ev);
}

void ipcf_event_wake(struct ipcf_event *ev)
{
    /* Pairs with the fence in ipcf_wait: our caller's release store (a new tail, head, ...)
     * is ordered before this load of sleeping. */
    ipcf_fence_seq_cst();
    uint32_t s = ipcf_load_relaxed(&ev->sleeping);
    if (s == 0)
        return;
    if (s & IPCF_POLL_BITS) {
        ipcf_poll_notify(ev, s);          /* armed file-descriptor pollers (poll.c) */
        if (!(s & ~IPCF_POLL_BITS))
            return;                       /* and no sleeper */
    }
    ipcf_fetch_add(&ev->seq, 1);
    long woke = syscall(SYS_futex, &ev->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    if (woke == 0 && (s & IPCF_SLEEP_SLOTS))
        maybe_reap(ev);
}

/* ---- the spin policy: spin when it pays, sleep at once when it does not ----
 *
 * A spin pays only while the peer is running and answers within the spin. It does not
 * when the peer is descheduled (the machine is busy: more runnable processes than CPUs)
 * or idle (nothing will come soon). There, spinning is worse than useless: it burns CPU
 * time that the scheduler charges to us, so when the peer's answer finally comes, our
 * wakeup no longer preempts the busy processes and we wait out their time slices (ms);
 * and yielding mid-spin hands the CPU to a busy process for a whole slice. Sleeping at
 * once, as the kernel's own blocking primitives do, lets the wakeup preempt them.
 *
 * So each thread keeps a spin budget (thread-local: a thread waits on one thing at a
 * time, and its peers' behaviour is what the budget learns):
 *   - a wait that ended during the spin doubles the budget (up to IPCF_SPIN_NS);
 *   - a wait that had to sleep halves it (down to IPCF_SPIN_MIN_NS);
 *   - every IPCF_SPIN_PROBE_EVERY-th wait spins the full IPCF_SPIN_NS anyway, so a
 *     budget shrunk while the machine was busy grows back once the peer answers fast
 *     again (a probe costs at most one full spin in 16 waits: an idle consumer that
 *     polls with short timeouts spends ~5 us of CPU per wait, not 50);
 *   - with one usable CPU, a spin can never see the peer's answer (the peer needs our
 *     CPU to make it): never spin, only check once.
 * Nothing here is shared: the policy changes only how long this thread spins, never what
 * the futex protocol below guarantees. */
static __thread uint32_t spin_budget = IPCF_SPIN_NS;
static __thread uint32_t spin_waits;
static int ncpus;                     /* CPUs this process may run on; 0 until first asked */

static int usable_cpus(void)
{
    int n = ipcf_load_relaxed(&ncpus);
    if (!n) {
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
        if (n < 1)
            n = 1;
        ipcf_store_relaxed(&ncpus, n);     /* the same value from every thread: no ordering */
    }
    return n;
}

static uint64_t spin_limit(void)
{
    if (usable_cpus() < 2)
        return 0;
    if (++spin_waits % IPCF_SPIN_PROBE_EVERY == 0)
        return IPCF_SPIN_NS;
    return spin_budget;
}

static void spin_outcome(int paid)
{
    uint32_t b = spin_budget;
    b = paid ? (b >= IPCF_SPIN_NS / 2 ? IPCF_SPIN_NS : 2 * b)
             : (b / 2 <= IPCF_SPIN_MIN_NS ? IPCF_SPIN_MIN_NS : b / 2);
    spin_budget = b;
}

uint64_t ipcf_spin_budget_ns(void)
{
    return spin_budget;
}

/* Take a free named slot (CAS 0 -> our word), or -1 when all are taken. */
static int take_slot(struct ipcf_event *ev)
{
    uint64_t self = ipcf_self_word();
    for (int i = 0; i < IPCF_EVENT_SLOTS; i++) {
        uint64_t zero = 0;
        if (ipcf_load_relaxed(&ev->owner[i]) == 0 && ipcf_cas(&ev->owner[i], &zero, self))
            return i;
    }
    return -1;
}

int ipcf_wait(struct ipcf_event *ev, ipcf_ready_fn ready, void *arg, int64_t timeout_ns,
              uint64_t *sleeps)
{
    int r = ready(arg);
    if (r || timeout_ns == 0)
        return r ? r : IPCF_ETIMEOUT;
    ipcf_host_block();                /* from here on this call may take long (host.h) */

    uint64_t start = ipcf_now_ns();
    uint64_t deadline = timeout_ns < 0 ? 0 : start + (uint64_t)timeout_ns;
    uint64_t spin_end = start + spin_limit();
    if (deadline && deadline < spin_end)
        spin_end = deadline;

    /* 1. bounded spin (spin_limit: the policy above): the peer is probably awake and about
     * to publish. The spin never yields the CPU: on a busy machine sched_yield hands it to
     * whatever else is runnable for a whole time slice (ms); a peer that needs our CPU
     * makes our spins fail instead, which shrinks them until we sleep at once. */
    for (unsigned i = 1; spin_end > start; i++) {
        ipcf_cpu_relax();
        if ((r = ready(arg)) != 0) {
            spin_outcome(1);
            return r;
        }
        if ((i & 63) == 0) {
            uint64_t now = ipcf_now_ns();
            if (now >= spin_end)
                break;
        }
    }
    if (deadline && ipcf_now_ns() >= deadline)
        return IPCF_ETIMEOUT;      /* the caller's timeout, not the peer: the budget stays */
    spin_outcome(0);

    /* 2. sleep on the futex word, announced in a named slot (see the protocol above) */
    if (sleeps)
        ipcf_fetch_add(sleeps, 1);    /* several sleepers may count at once */
    int slot = take_slot(ev);
    if (slot < 0 && ipcf_event_reap(ev))
        slot = take_slot(ev);         /* every slot taken: maybe by the dead */
    if (slot >= 0)
        ipcf_fetch_or(&ev->sleeping, 1u << slot);
    else
        ipcf_fetch_add(&ev->sleeping, IPCF_SLEEP_UNNAMED);
    refresh_waiters(ev);
    for (;;) {
        uint32_t seen = ipcf_load_acquire(&ev->seq);
        /* Pairs with the fence in ipcf_event_wake: our announcement (a seq_cst RMW of
         * sleeping) is visible to the waker before we re-check, or our re-check sees what
         * the waker published. */
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
    if (slot >= 0) {
        ipcf_fetch_and(&ev->sleeping, ~(1u << slot));   /* withdrawn before the slot is free */
        ipcf_store_release(&ev->owner[slot], 0);
    } else {
        ipcf_fetch_sub(&ev->sleeping, IPCF_SLEEP_UNNAMED);
    }
    refresh_waiters(ev);
    return r;
}
