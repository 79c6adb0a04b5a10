/* atomics.h - the only ordering primitives ipcfast uses.
 *
 * acquire: a load that later loads/stores cannot be reordered before. Used to read the
 *          OTHER side's position: everything the other side wrote before its matching
 *          release store is visible after the acquire load returns.
 * release: a store that earlier loads/stores cannot be reordered after. Used to publish
 *          our own position once the bytes it covers are written (producer) or no longer
 *          read (consumer).
 * relaxed: only atomicity. Used for our own position (only we write it) and statistics.
 * full fence: the store->load ordering needed by the "publish, then check for sleepers"
 *          / "announce sleeping, then re-check" handshake (Dekker): see futex.c.
 *
 * Rule: a shared field that is ever read or written while another thread or process may
 * touch it (that is, not only under one lock common to every access) goes through these.
 */
#ifndef IPCF_ATOMICS_H
#define IPCF_ATOMICS_H

#include <stdint.h>

#define ipcf_load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define ipcf_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define ipcf_store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define ipcf_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define ipcf_fetch_add(p, v)      __atomic_fetch_add((p), (v), __ATOMIC_SEQ_CST)
#define ipcf_fetch_sub(p, v)      __atomic_fetch_sub((p), (v), __ATOMIC_SEQ_CST)
#define ipcf_cas(p, expp, v)      __atomic_compare_exchange_n((p), (expp), (v), 0, \
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)
/* seq_cst read-modify-writes: the old value is returned */
#define ipcf_exchange(p, v)       __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)
#define ipcf_fetch_and(p, v)      __atomic_fetch_and((p), (v), __ATOMIC_SEQ_CST)
#define ipcf_fetch_or(p, v)       __atomic_fetch_or((p), (v), __ATOMIC_SEQ_CST)
/* A counter with ONE writer at a time (the holder of a lock, or the side that owns it) and
 * lock-free readers (statistics, inspection): the writer's own read may be relaxed, the
 * store is atomic so a reader never sees a torn value. Not an atomic increment: two
 * unserialised writers would lose counts (use ipcf_fetch_add for those). */
#define ipcf_add_relaxed(p, v)    ipcf_store_relaxed((p), ipcf_load_relaxed(p) + (v))
#define ipcf_sub_relaxed(p, v)    ipcf_store_relaxed((p), ipcf_load_relaxed(p) - (v))
#define ipcf_fence_seq_cst()      __atomic_thread_fence(__ATOMIC_SEQ_CST)

static inline void ipcf_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

#endif
