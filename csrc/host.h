/* host.h - what the core tells the program that calls it: "this call is about to block".
 *
 * The Python binding (build_ffi.py) calls into the core holding the GIL, and keeps holding
 * it while the call does not wait: a put into a ring with room, a get of a queued item.
 * Releasing and retaking the GIL around every call cost ~400 instructions, as much as the
 * ring operation itself. So the core releases it lazily: before anything that can take
 * long (a spin or futex wait, a contended lock's sleep, a yield, a large copy) it calls
 * ipcf_host_block(), which hands the GIL back once, and the binding retakes it when the
 * call returns. What this relies on:
 *   - anything that can block for longer than a bounded spin calls it first, so no
 *     thread sleeps holding the GIL. Every shared lock a call can wait for is taken
 *     through ipcf_lock, which calls it before sleeping on the mutex (pipe.c's reader-end
 *     locks are only ever tried);
 *   - so a thread may hold a core lock while it waits for the GIL (the core releases the
 *     GIL with a lock held; claim and peek even return to Python holding a side lock): a
 *     thread that holds the GIL and wants that lock spins briefly, then hands the GIL back
 *     and sleeps, and the holder goes on. The core never retakes the GIL itself.
 *   - the process-local mutexes (peers.c, pipe.c) are held only for table updates and
 *     /proc reads, by threads that never need the GIL meanwhile: a thread holding the
 *     GIL waits on them briefly, never for good.
 * Outside the binding (no Python call in progress on this thread) it does nothing. The
 * TSan build keeps cffi's release around every call (build_ffi.py), so that threads run
 * the core at once and TSan sees their races.
 */
#ifndef IPCF_HOST_H
#define IPCF_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

void ipcf_host_block(void);

/* a copy of this many bytes or more lets other threads of the host run meanwhile */
#define IPCF_HOST_COPY_MIN (256u * 1024u)

static inline void ipcf_host_copy(void *dst, const void *src, size_t n)
{
    if (n >= IPCF_HOST_COPY_MIN)
        ipcf_host_block();
    memcpy(dst, src, n);
}

/* One piece of a larger copy (a batch of records, a pickle's pieces), `done` bytes of
 * which are copied already: the rule applies to the whole. */
static inline void ipcf_host_copy_more(void *dst, const void *src, size_t n, uint64_t done)
{
    if (done + n >= IPCF_HOST_COPY_MIN)
        ipcf_host_block();
    memcpy(dst, src, n);
}

#endif
