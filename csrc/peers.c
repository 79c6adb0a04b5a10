/* peers.c - see peers.h: process identity, tables of processes, this process's
 * registrations (the transit tables are in transit.c). */
#define _GNU_SOURCE
#include <errno.h>
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

ssize_t ipcf_read_proc(long pid, const char *what, char *buf, size_t size)
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

int ipcf_proc_stat(int32_t pid, struct ipcf_proc_stat *out)
{
    char buf[1024];
    if (ipcf_read_proc(pid, "stat", buf, sizeof buf) <= 0)
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
    struct ipcf_proc_stat st;
    return ipcf_proc_stat(pid, &st) ? st.start : 0;
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
    struct ipcf_proc_stat st;
    if (!ipcf_proc_stat(pid, &st) || st.start == 0)
        return kill(pid, 0) == 0 || errno == EPERM;  /* no /proc: trust kill() */
    if (st.state == 'Z' || st.state == 'X')
        return 0;        /* exited, not yet reaped by its parent: it will never act again */
    return (st.start & 0xffffffffu) == (start_ticks & 0xffffffffu);
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
