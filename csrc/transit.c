/* transit.c - transit tables (peers.h): handles on their way to another process, and
 * whether one may still arrive (a live descendant of its sender that has not attached). */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomics.h"
#include "futex.h"
#include "peers.h"

/* ---- descendants: who may still take a handle in transit ---- */

/* multiprocessing's resource tracker never unpickles a user's handle. (The forkserver does
 * not either, but it counts: the child it is about to fork for us may not exist yet.) */
static int mp_helper(int32_t pid)
{
    char buf[1024];
    ssize_t k = ipcf_read_proc(pid, "cmdline", buf, sizeof buf);
    if (k <= 0)
        return 0;
    for (ssize_t i = 0; i < k; i++)       /* arguments are NUL-separated */
        if (!buf[i])
            buf[i] = ' ';
    return strstr(buf, "multiprocessing.resource_tracker") != NULL;
}

/* Does this process have a live (not zombie) descendant other than multiprocessing's
 * resource tracker? For each process in /proc, walk up its parents (reading each one's
 * stat) until we meet ourselves or the top: no table of processes, so reentrant and with
 * no limit on how many there are. Only called when a transit table holds our own entries. */
static int in_table(const uint64_t *table, int n, uint64_t w)
{
    for (int i = 0; table && i < n; i++)
        if (ipcf_load_acquire(&table[i]) == w)
            return 1;
    return 0;
}

/* ... and, with `attached`, one whose process word is not in that peer table (a child that
 * has not attached yet: a fork child does so first thing, before it ends its transit).
 * `me` may be any process: the sender of a fork transit is asked about by its peers too.
 * The asking process itself never counts: it holds its handles already (and at its last
 * close it has just left the peer table, but is not on its way to attach). */
static int live_descendant_of_not_in(int32_t me, const uint64_t *attached, int nattached)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 1;                           /* cannot tell: assume one may still arrive */
    int32_t self = (int32_t)getpid();
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        struct ipcf_proc_stat st;
        if (*end || p <= 1 || p == me || p == self || !ipcf_proc_stat((int32_t)p, &st) ||
            st.state == 'Z' || st.state == 'X')
            continue;
        int32_t up = st.ppid;
        for (int depth = 0; up > 1 && depth < 64; depth++) {   /* bounded: pids may recycle */
            if (up == me) {
                uint64_t w = ((st.start & 0xffffffffu) << 32) | (uint32_t)p;
                found = !mp_helper((int32_t)p) && !in_table(attached, nattached, w);
                break;
            }
            struct ipcf_proc_stat parent;
            if (!ipcf_proc_stat(up, &parent))
                break;
            up = parent.ppid;
        }
    }
    closedir(d);
    return found;
}

static int live_descendant_not_in(const uint64_t *attached, int nattached)
{
    return live_descendant_of_not_in((int32_t)getpid(), attached, nattached);
}

static int live_descendant(void)
{
    return live_descendant_not_in(NULL, 0);
}

/* ---- transit tables ---- */

/* The top bit of an expiry marks a fork transit (a handle inherited by a fork child): the
 * child attaches before it ends the transit, so only an unattached descendant can take it. */
#define FORK_BIT (1ULL << 63)

static uint64_t expiry(const uint64_t *at)
{
    return ipcf_load_relaxed(at) & ~FORK_BIT;
}

static int transit_add(uint64_t *pairs, int n, int64_t ttl_ns, uint64_t flag)
{
    uint64_t me = ipcf_self_word(), now = ipcf_now_ns();
    for (int i = 0; i + 1 < n; i += 2) {
        uint64_t cur = ipcf_load_acquire(&pairs[i]);
        int stale = cur && (expiry(&pairs[i + 1]) < now || !ipcf_word_alive(cur));
        if ((cur == 0 || stale) && ipcf_cas(&pairs[i], &cur, me)) {
            /* the word is ours; readers load it (acquire) before the expiry. One that comes
             * between the CAS and this store sees the previous (expired) expiry and skips
             * the entry for that instant: a depart must not race the sender's own last
             * close, and callers depart before they close */
            ipcf_store_release(&pairs[i + 1], (now + (uint64_t)ttl_ns) | flag);
            return 0;
        }
    }
    return IPCF_EFULL;
}

int ipcf_transit_add(uint64_t *pairs, int n, int64_t ttl_ns)
{
    return transit_add(pairs, n, ttl_ns, 0);
}

int ipcf_transit_add_fork(uint64_t *pairs, int n, int64_t ttl_ns)
{
    return transit_add(pairs, n, ttl_ns, FORK_BIT);
}

void ipcf_transit_del(uint64_t *pairs, int n, uint64_t from)
{
    for (int i = 0; from && i + 1 < n; i += 2) {
        uint64_t cur = from;
        if (ipcf_cas(&pairs[i], &cur, 0))
            return;
    }
}

/* Count the entries alive and unexpired: ours in *mine (of which fork transits in *forks),
 * the others' returned. */
static int transit_count2(uint64_t *pairs, int n, int *mine, int *forks)
{
    uint64_t now = ipcf_now_ns(), me = ipcf_self_word();
    int live = 0;
    *mine = *forks = 0;
    for (int i = 0; i + 1 < n; i += 2) {
        uint64_t w = ipcf_load_acquire(&pairs[i]);
        if (w && expiry(&pairs[i + 1]) > now && ipcf_word_alive(w)) {
            if (w == me) {
                (*mine)++;
                *forks += (ipcf_load_relaxed(&pairs[i + 1]) & FORK_BIT) != 0;
            } else {
                live++;
            }
        }
    }
    return live;
}

static int transit_count(uint64_t *pairs, int n, int *mine)
{
    int forks;
    return transit_count2(pairs, n, mine, &forks);
}

/* A fork transit of another process `w`: the handle was inherited by a fork child of w, so
 * only a live descendant of w that has not attached yet can still take it (a fork child
 * attaches first thing). Without this, a fork child SIGKILLed before its after-fork hook
 * left its parent's entry behind, and while that parent lived every peer counted it as an
 * end on its way: a reader never saw EOF (or a writer broken pipe) for the whole transit
 * time, and the last close kept the ring. Reads /proc. */
static int fork_transit_may_arrive(uint64_t w, const uint64_t *peers, int npeers)
{
    return live_descendant_of_not_in((int32_t)(w & 0xffffffffu), peers, npeers);
}

/* Entries alive and unexpired, each fork transit only while it may still arrive (ours and
 * others' alike); our own pickle transits count if `own_pickles` says so (-1: only while we
 * have a live descendant; 1: always, as this process may unpickle them itself). */
static int transit_count_forks(uint64_t *pairs, int n, const uint64_t *peers, int npeers,
                               int own_pickles)
{
    uint64_t now = ipcf_now_ns(), me = ipcf_self_word();
    int live = 0, mine = 0, forks = 0;
    for (int i = 0; i + 1 < n; i += 2) {
        uint64_t w = ipcf_load_acquire(&pairs[i]);
        if (!w || expiry(&pairs[i + 1]) <= now || !ipcf_word_alive(w))
            continue;
        int fork = (ipcf_load_relaxed(&pairs[i + 1]) & FORK_BIT) != 0;
        if (w == me) {
            mine++;
            forks += fork;
        } else if (!fork || fork_transit_may_arrive(w, peers, npeers)) {
            live++;
        }
    }
    if (mine - forks > 0 && (own_pickles > 0 || live_descendant()))
        live += mine - forks;
    if (forks && live_descendant_not_in(peers, npeers))
        live += forks;
    return live;
}

int ipcf_transit_live_unattached(uint64_t *pairs, int n, const uint64_t *peers, int npeers)
{
    return transit_count_forks(pairs, n, peers, npeers, -1);
}

int ipcf_transit_held_unattached(uint64_t *pairs, int n, const uint64_t *peers, int npeers)
{
    return transit_count_forks(pairs, n, peers, npeers, 1);
}

int ipcf_transit_live(uint64_t *pairs, int n)
{
    int mine, live = transit_count(pairs, n, &mine);
    /* a handle we pickled for a child (spawn) or forked into one can only arrive through it:
     * once all our children are gone (say, killed before attaching) it never will */
    if (mine && live_descendant())
        live += mine;
    return live;
}

int ipcf_transit_held(uint64_t *pairs, int n)
{
    int mine, live = transit_count(pairs, n, &mine);
    return live + mine;
}

void ipcf_transit_forget(uint64_t *pairs, int n)
{
    uint64_t me = ipcf_self_word();
    for (int i = 0; i + 1 < n; i += 2) {
        uint64_t cur = me;
        ipcf_cas(&pairs[i], &cur, 0);
    }
}

int ipcf_transit_any(uint64_t *pairs, int n)
{
    for (int i = 0; i + 1 < n; i += 2)
        if (ipcf_load_acquire(&pairs[i]))
            return 1;
    return 0;
}

int ipcf_transit_unexpired(uint64_t *pairs, int n)
{
    uint64_t now = 0;
    for (int i = 0; i + 1 < n; i += 2) {
        if (!ipcf_load_acquire(&pairs[i]))    /* acquire: the word, then its expiry */
            continue;
        if (!now)
            now = ipcf_now_ns();              /* (vDSO: no syscall) */
        if (expiry(&pairs[i + 1]) > now)
            return 1;
    }
    return 0;
}
