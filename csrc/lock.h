/* lock.h - the side locks of multi-producer / multi-consumer rings and queues.
 *
 * A pthread mutex that is PTHREAD_PROCESS_SHARED and PTHREAD_MUTEX_ROBUST, living in the
 * shared control block. Robust means the kernel hands the lock to the next locker with
 * EOWNERDEAD when its owner dies holding it (the same idea as iceoryx2's file locks, with no
 * fd): a SIGKILLed peer can never wedge the others. What the lock protects is always
 * consistent at every instruction (positions only move by single release stores), so
 * recovery is just pthread_mutex_consistent(). Uncontended lock + unlock is two atomic RMWs
 * and no syscall.
 */
#ifndef IPCF_LOCK_H
#define IPCF_LOCK_H

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "layout.h"      /* (which checks that a pthread mutex fits its IPCF_CACHELINE slot) */

static inline int ipcf_lock_init(void *slot)
{
    pthread_mutexattr_t a;
    int rc = pthread_mutexattr_init(&a);
    if (!rc) rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!rc) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    /* error-checking: a thread re-locking a side it holds (recv inside its own view) gets
     * EDEADLK instead of deadlocking */
    if (!rc) rc = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (!rc) rc = pthread_mutex_init((pthread_mutex_t *)slot, &a);
    pthread_mutexattr_destroy(&a);
    return -rc;
}

#include "atomics.h"
#include "futex.h"
#include "host.h"

/* The mutex lives in shared memory another process may have scribbled on, and glibc aborts
 * (assert) on a robust mutex whose type word is garbage. Before each lock, its type word is
 * compared with the one pthread_mutex_init gives ours (taken once from a private mutex made
 * with the same attributes): a mismatch is corruption, reported as IPCF_ECORRUPT, not a
 * crash. glibc only (elsewhere the check is skipped). */
static inline int ipcf_lock_sane(const pthread_mutex_t *m)
{
#ifdef __GLIBC__
    static int kind = -1;
    int k = ipcf_load_relaxed(&kind);          /* (process-local, set once) */
    if (k < 0) {
        pthread_mutex_t probe;
        if (ipcf_lock_init(&probe) != 0)
            return 1;
        k = probe.__data.__kind;
        pthread_mutex_destroy(&probe);
        ipcf_store_relaxed(&kind, k);
    }
    return ipcf_load_relaxed(&m->__data.__kind) == k;   /* shared: relaxed, a snapshot */
#else
    (void)m;
    return 1;
#endif
}

/* Take the lock before the caller's deadline (a deadline already passed makes it a single
 * try). Returns 0, or 1 when the previous owner died holding it (the caller may repair
 * derived state), IPCF_ETIMEOUT or -errno. */
static inline int ipcf_lock(void *slot, struct ipcf_timeout *t)
{
    pthread_mutex_t *m = (pthread_mutex_t *)slot;
    if (!ipcf_lock_sane(m))
        return IPCF_ECORRUPT;
    int rc = pthread_mutex_trylock(m);
    /* Hold times are a few hundred ns: spin briefly (the holder is probably running on the
     * other core) before paying for a futex sleep and wake-up. */
    for (int i = 0; rc == EBUSY && i < 256; i++) {
        ipcf_cpu_relax();
        if ((i & 15) == 15)
            rc = pthread_mutex_trylock(m);
    }
    uint64_t deadline = rc == EBUSY && t ? ipcf_deadline(t) : 0;   /* t NULL: forever */
    if (rc == EBUSY && deadline && ipcf_now_ns() >= deadline) {
        rc = ETIMEDOUT;
    } else if (rc == EBUSY) {
        ipcf_host_block();            /* about to sleep on the mutex (host.h) */
        if (deadline) {
#ifndef IPCF_TSAN
            struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
            rc = pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
#else
            /* gcc's TSan does not intercept pthread_mutex_clocklock, so it would miss the
             * acquire and report every access under this lock as a race. The TSan build
             * polls trylock up to the same monotonic deadline instead (slower, same
             * meaning). */
            while ((rc = pthread_mutex_trylock(m)) == EBUSY && ipcf_now_ns() < deadline) {
                struct timespec nap = {0, 20000};
                nanosleep(&nap, NULL);
            }
            if (rc == EBUSY)
                rc = ETIMEDOUT;
#endif
        } else {
            rc = pthread_mutex_lock(m);
        }
    }
    if (rc == EOWNERDEAD)              /* previous owner died holding it */
        return pthread_mutex_consistent(m) == 0 ? 1 : -ENOTRECOVERABLE;
    if (rc == ETIMEDOUT)
        return IPCF_ETIMEOUT;
    if (rc == EDEADLK)
        return IPCF_ESTATE;
    if (rc == EINVAL || rc == ENOTRECOVERABLE)
        return IPCF_ECORRUPT;       /* not a mutex any more, or marked unusable by a crash */
    return -rc;
}

static inline void ipcf_unlock(void *slot)
{
    pthread_mutex_unlock((pthread_mutex_t *)slot);
}

#endif
