/* peers.c - see peers.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "atomics.h"
#include "futex.h"
#include "peers.h"

/* ---- process identity: pid plus start time, so a recycled pid is not mistaken for a peer ---- */

/* Read /proc/<pid>/<what> into buf (NUL-terminated); its length, or <= 0. */
static ssize_t read_proc(long pid, const char *what, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/%s", pid, what);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

/* Fields of /proc/<pid>/stat: state (field 3), parent (4), start time (22, clock ticks
 * since boot). Returns 0 when the process cannot be read (gone, or no /proc). */
struct proc_stat {
    char state;
    int32_t ppid;
    uint64_t start;
};

static int proc_stat(int32_t pid, struct proc_stat *out)
{
    char buf[1024];
    if (read_proc(pid, "stat", buf, sizeof buf) <= 0)
        return 0;
    char *p = strrchr(buf, ')');      /* comm may contain spaces and parentheses */
    int ppid;
    if (!p || sscanf(p + 1, " %c %d", &out->state, &ppid) != 2)
        return 0;
    out->ppid = ppid;
    out->start = 0;
    int field = 2;                    /* after ")" come fields 3.. */
    for (p++; *p; p++) {
        if (*p == ' ' && ++field == 22) {
            unsigned long long start = 0;
            sscanf(p + 1, "%llu", &start);
            out->start = start;
            break;
        }
    }
    return 1;
}

uint64_t ipcf_proc_start(int32_t pid)
{
    struct proc_stat st;
    return proc_stat(pid, &st) ? st.start : 0;
}

/* Our process word, computed once per process: getpid() is a syscall and this is on hot
 * paths. A forked child recomputes it (the atfork handler clears the cache). */
static uint64_t cached_word;

static void local_forget(void);

static void after_fork_child(void)
{
    ipcf_store_relaxed(&cached_word, 0);   /* (only this thread exists in the child) */
    local_forget();
}

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, after_fork_child);
}

uint64_t ipcf_self_word(void)
{
    /* relaxed: racing threads compute the same value; only atomicity matters */
    uint64_t w = ipcf_load_relaxed(&cached_word);
    if (!w) {
        int32_t pid = (int32_t)getpid();
        w = ((ipcf_proc_start(pid) & 0xffffffffu) << 32) | (uint32_t)pid;
        ipcf_store_relaxed(&cached_word, w);
    }
    return w;
}

int ipcf_pid_alive(int32_t pid, uint64_t start_ticks)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    struct proc_stat st;
    if (!proc_stat(pid, &st) || st.start == 0)
        return kill(pid, 0) == 0 || errno == EPERM;  /* no /proc: trust kill() */
    if (st.state == 'Z' || st.state == 'X')
        return 0;        /* exited, not yet reaped by its parent: it will never act again */
    return (st.start & 0xffffffffu) == (start_ticks & 0xffffffffu);
}

/* multiprocessing's resource tracker never unpickles a user's handle. (The forkserver does
 * not either, but it counts: the child it is about to fork for us may not exist yet.) */
static int mp_helper(int32_t pid)
{
    char buf[1024];
    ssize_t k = read_proc(pid, "cmdline", buf, sizeof buf);
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
        struct proc_stat st;
        if (*end || p <= 1 || p == me || p == self || !proc_stat((int32_t)p, &st) ||
            st.state == 'Z' || st.state == 'X')
            continue;
        int32_t up = st.ppid;
        for (int depth = 0; up > 1 && depth < 64; depth++) {   /* bounded: pids may recycle */
            if (up == me) {
                uint64_t w = ((st.start & 0xffffffffu) << 32) | (uint32_t)p;
                found = !mp_helper((int32_t)p) && !in_table(attached, nattached, w);
                break;
            }
            struct proc_stat parent;
            if (!proc_stat(up, &parent))
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

/* ---- tables of processes ---- */

int ipcf_table_add(uint64_t *table, int n)
{
    uint64_t me = ipcf_self_word();
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            uint64_t cur = ipcf_load_relaxed(&table[i]);
            /* pass 0 takes free slots; pass 1 reclaims the slots of dead processes */
            if ((pass == 0 && cur != 0) || (pass == 1 && (cur == 0 || ipcf_word_alive(cur))))
                continue;
            if (ipcf_cas(&table[i], &cur, me))
                return i;
        }
    }
    return -1;   /* full of live processes: the caller works on, uncounted */
}

void ipcf_table_del(uint64_t *table, int slot)
{
    uint64_t me = ipcf_self_word();
    if (slot >= 0)
        ipcf_cas(&table[slot], &me, 0);
}

int ipcf_table_live(uint64_t *table, int n, uint32_t *dead)
{
    int live = 0;
    if (dead)
        *dead = 0;
    for (int i = 0; i < n; i++) {
        /* acquire: pairs with the CAS that entered the word (seq_cst) */
        uint64_t w = ipcf_load_acquire(&table[i]);
        if (!w)
            continue;
        if (ipcf_word_alive(w))
            live++;
        else if (dead)
            (*dead)++;
    }
    return live;
}

int ipcf_table_any(uint64_t *table, int n)
{
    for (int i = 0; i < n; i++)
        if (ipcf_load_acquire(&table[i]))
            return 1;
    return 0;
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

/* ---- this process's registrations ---- */

/* A process takes ONE peer entry per segment, however many handles it opens (attach,
 * unpickle, ...): this process-local list counts our handles per segment file. */
struct local_reg {
    uint64_t dev, ino;
    int slot;                   /* our entry in hdr->peers, -1 when the table was full */
    int count;                  /* our open handles on this segment */
    struct local_reg *next;
};
static struct local_reg *local_regs;                  /* under local_lock */
static pthread_mutex_t local_lock = PTHREAD_MUTEX_INITIALIZER;

static struct local_reg **local_find(uint64_t dev, uint64_t ino)
{
    struct local_reg **p = &local_regs;
    while (*p && !((*p)->dev == dev && (*p)->ino == ino))
        p = &(*p)->next;
    return p;
}

/* In a forked child nothing is registered yet (its handles re-register after fork). */
static void local_forget(void)
{
    struct local_reg *r = local_regs;
    while (r) {
        struct local_reg *next = r->next;
        free(r);
        r = next;
    }
    local_regs = NULL;
    pthread_mutex_init(&local_lock, NULL);
}

void ipcf_seg_register(struct ipcf_seg *s)
{
    if (s->registered)
        return;
    pthread_mutex_lock(&local_lock);
    struct local_reg **p = local_find(s->dev, s->ino);
    if (*p) {
        (*p)->count++;
    } else {
        struct local_reg *r = calloc(1, sizeof *r);
        if (r) {
            r->dev = s->dev;
            r->ino = s->ino;
            r->count = 1;
            r->slot = ipcf_table_add(s->hdr->peers, IPCF_MAX_PEERS);
            *p = r;
        }
        if (!r || r->slot < 0)   /* cannot be counted: so nobody may auto-remove the segment */
            ipcf_fetch_and(&s->hdr->flags, ~(uint32_t)IPCF_F_AUTO_UNLINK);
    }
    s->registered = *p != NULL;
    pthread_mutex_unlock(&local_lock);
}

int ipcf_seg_leave(struct ipcf_seg *s)
{
    int last = 0;
    if (!s->base || !s->registered)
        return 0;
    s->registered = 0;
    pthread_mutex_lock(&local_lock);
    struct local_reg **p = local_find(s->dev, s->ino);
    struct local_reg *r = *p;
    if (r && --r->count == 0) {          /* our process's last handle: leave the table */
        *p = r->next;
        if (r->slot >= 0)
            ipcf_table_del(s->hdr->peers, r->slot);
        free(r);
        /* acquire: pairs with the seq_cst fetch_and of a process that could not register */
        if ((ipcf_load_acquire(&s->hdr->flags) & IPCF_F_AUTO_UNLINK) &&
            ipcf_table_live(s->hdr->peers, IPCF_MAX_PEERS, NULL) == 0 &&
            ipcf_transit_live_unattached(s->hdr->transit, IPCF_TRANSIT_WORDS, s->hdr->peers,
                                         IPCF_MAX_PEERS) == 0)
            last = 1;   /* (a fork transit whose child died before attaching: not live) */
    }
    pthread_mutex_unlock(&local_lock);
    return last;
}

int ipcf_seg_close(struct ipcf_seg *s)
{
    int last = ipcf_seg_leave(s);
    ipcf_seg_unmap(s);
    return last;
}

int ipcf_seg_depart(struct ipcf_seg *s, int64_t ttl_ns)
{
    return ipcf_transit_add(s->hdr->transit, IPCF_TRANSIT_WORDS, ttl_ns);
}

void ipcf_seg_arrive(struct ipcf_seg *s, uint64_t from)
{
    ipcf_transit_del(s->hdr->transit, IPCF_TRANSIT_WORDS, from);
}

/* A fork child holds what its parent held: the parent marks the handle in transit first, so
 * that it may close its own at once without the segment going away under the child. */
void ipcf_seg_before_fork(struct ipcf_seg *s)
{
    /* a fork transit: only a not yet attached descendant of ours can end it */
    s->fork_from = ipcf_transit_add_fork(s->hdr->transit, IPCF_TRANSIT_WORDS, IPCF_TRANSIT_NS) == 0
                   ? ipcf_self_word() : 0;
}

void ipcf_seg_after_fork(struct ipcf_seg *s)
{
    s->registered = 0;          /* the parent's registration is not ours */
    ipcf_seg_register(s);
    ipcf_seg_arrive(s, s->fork_from);
}
