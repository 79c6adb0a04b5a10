/* segment.c - see segment.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "segment.h"

_Static_assert(sizeof(struct ipcf_event) == 8, "event layout");
_Static_assert(sizeof(struct ipcf_seg_hdr) == 1024, "segment header layout");
_Static_assert(sizeof(struct ipcf_seg_hdr) <= IPCF_CTL_OFFSET, "header overlaps control block");
_Static_assert(sizeof(struct ipcf_ring_ctl) == 1280, "ring control layout");
_Static_assert(sizeof(struct ipcf_queue_ctl) == 896, "queue control layout");
_Static_assert(IPCF_CTL_OFFSET + sizeof(struct ipcf_queue_ctl) <= IPCF_HDR_SIZE, "control too big");
_Static_assert(IPCF_CTL_OFFSET + sizeof(struct ipcf_ring_ctl) <= IPCF_HDR_SIZE, "control too big");
_Static_assert(__builtin_offsetof(struct ipcf_ring_ctl, head) == 128, "head on its own line");
_Static_assert(__builtin_offsetof(struct ipcf_ring_ctl, data) == 256, "data event line");
_Static_assert(__builtin_offsetof(struct ipcf_ring_ctl, plock) == 512, "producer lock line");
_Static_assert(__builtin_offsetof(struct ipcf_ring_ctl, writers) == 768, "pipe end tables");
_Static_assert(__builtin_offsetof(struct ipcf_queue_ctl, read_gen) == 128, "read_gen line");
_Static_assert(__builtin_offsetof(struct ipcf_queue_ctl, plock) == 640, "queue lock line");

#define STR2(x) #x
#define STR(x) STR2(x)
#ifndef IPCF_PKG_VERSION
#define IPCF_PKG_VERSION unknown
#endif

const char *ipcf_build_version(void) { return STR(IPCF_PKG_VERSION); }
uint32_t ipcf_layout_version(void) { return IPCF_LAYOUT_VERSION; }

uint64_t ipcf_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int ipcf_name_check(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > IPCF_NAME_MAX || name[0] == '.')
        return IPCF_EBADNAME;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return IPCF_EBADNAME;
    }
    return 0;
}

static int set_name(struct ipcf_seg *s, const char *name)
{
    int rc = ipcf_name_check(name);
    if (rc)
        return rc;
    s->name[0] = '/';
    strcpy(s->name + 1, name);
    return 0;
}

int ipcf_seg_unlink(const char *name)
{
    char path[IPCF_NAME_MAX + 2];
    int rc = ipcf_name_check(name);
    if (rc)
        return rc;
    path[0] = '/';
    strcpy(path + 1, name);
    return shm_unlink(path) == 0 ? 0 : -errno;
}

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

/* Start time (clock ticks since boot, field 22 of /proc/pid/stat) and state (field 3) of
 * a process; 0 when it cannot be read. */
static uint64_t proc_stat(int32_t pid, char *state)
{
    char buf[1024];
    if (read_proc(pid, "stat", buf, sizeof buf) <= 0)
        return 0;
    char *p = strrchr(buf, ')');      /* comm may contain spaces and parentheses */
    if (!p || p[1] != ' ')
        return 0;
    if (state)
        *state = p[2];
    int field = 2;                    /* after ")" come fields 3.. */
    unsigned long long start = 0;
    for (p++; *p; p++) {
        if (*p == ' ' && ++field == 22) {
            sscanf(p + 1, "%llu", &start);
            break;
        }
    }
    return start;
}

uint64_t ipcf_proc_start(int32_t pid)
{
    return proc_stat(pid, NULL);
}

/* Our process word, computed once per process: getpid() is a syscall and this is on hot
 * paths. A forked child recomputes it (the atfork handler clears the cache). */
static uint64_t cached_word;

static void forget_word(void) { cached_word = 0; }
static void local_forget(void);

static void after_fork_child(void)
{
    forget_word();
    local_forget();
}

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, after_fork_child);
}

static uint64_t self_word(void)
{
    uint64_t w = __atomic_load_n(&cached_word, __ATOMIC_RELAXED);
    if (!w) {
        int32_t pid = (int32_t)getpid();
        w = ((ipcf_proc_start(pid) & 0xffffffffu) << 32) | (uint32_t)pid;
        __atomic_store_n(&cached_word, w, __ATOMIC_RELAXED);
    }
    return w;
}

int ipcf_pid_alive(int32_t pid, uint64_t start_ticks)
{
    if (pid <= 0)
        return 0;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    char state = 0;
    uint64_t start = proc_stat(pid, &state);
    if (start == 0)
        return kill(pid, 0) == 0 || errno == EPERM;  /* no /proc: trust kill() */
    if (state == 'Z' || state == 'X')
        return 0;        /* exited, not yet reaped by its parent: it will never act again */
    return (start & 0xffffffffu) == (start_ticks & 0xffffffffu);
}

static int peer_alive(uint64_t word)
{
    return ipcf_pid_alive((int32_t)(word & 0xffffffffu), word >> 32);
}

uint64_t ipcf_self_word(void) { return self_word(); }

int ipcf_table_add(uint64_t *table, int n)
{
    uint64_t me = self_word();
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            uint64_t cur = ipcf_load_relaxed(&table[i]);
            /* pass 0 takes free slots; pass 1 reclaims the slots of dead processes */
            if ((pass == 0 && cur != 0) || (pass == 1 && (cur == 0 || peer_alive(cur))))
                continue;
            if (ipcf_cas(&table[i], &cur, me))
                return i;
        }
    }
    return -1;   /* full of live processes: the caller works on, uncounted */
}

void ipcf_table_del(uint64_t *table, int slot)
{
    uint64_t me = self_word();
    if (slot >= 0)
        ipcf_cas(&table[slot], &me, 0);
}

int ipcf_table_live(uint64_t *table, int n, uint32_t *dead)
{
    int live = 0;
    if (dead)
        *dead = 0;
    for (int i = 0; i < n; i++) {
        uint64_t w = ipcf_load_acquire(&table[i]);
        if (!w)
            continue;
        if (peer_alive(w))
            live++;
        else if (dead)
            (*dead)++;
    }
    return live;
}

/* A process takes ONE peer entry per segment, however many handles it opens (attach,
 * unpickle, ...): this process-local list counts our handles per segment file. */
struct local_reg {
    uint64_t dev, ino;
    int slot;                   /* our entry in hdr->peers, -1 when the table was full */
    int count;                  /* our open handles on this segment */
    struct local_reg *next;
};
static struct local_reg *local_regs;
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
            __atomic_fetch_and(&s->hdr->flags, ~(uint32_t)IPCF_F_AUTO_UNLINK, __ATOMIC_SEQ_CST);
    }
    s->registered = *p != NULL;
    pthread_mutex_unlock(&local_lock);
}

int ipcf_transit_add(uint64_t *pairs, int n, int64_t ttl_ns)
{
    uint64_t me = self_word(), now = ipcf_now_ns();
    for (int i = 0; i < n; i += 2) {
        uint64_t cur = ipcf_load_acquire(&pairs[i]);
        int stale = cur && (ipcf_load_relaxed(&pairs[i + 1]) < now || !peer_alive(cur));
        if ((cur == 0 || stale) && ipcf_cas(&pairs[i], &cur, me)) {
            ipcf_store_release(&pairs[i + 1], now + (uint64_t)ttl_ns);
            return 0;
        }
    }
    return IPCF_EFULL;
}

void ipcf_transit_del(uint64_t *pairs, int n, uint64_t from)
{
    for (int i = 0; i < n; i += 2) {
        uint64_t cur = from;
        if (from && ipcf_cas(&pairs[i], &cur, 0))
            return;
    }
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

/* Does this process have a live (not zombie) descendant? Reads /proc; only called when the
 * last user of a segment leaves while its own handles are still in transit. */
static int live_descendant(void)
{
    enum { MAXP = 32768 };
    static int32_t pid[MAXP], ppid[MAXP];
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return 1;                           /* cannot tell: assume one may still arrive */
    struct dirent *e;
    while ((e = readdir(d)) && n < MAXP) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        if (*end || p <= 0)
            continue;
        char buf[512];
        if (read_proc(p, "stat", buf, sizeof buf) <= 0)
            continue;
        char *q = strrchr(buf, ')'), state;
        int pp;
        if (!q || sscanf(q + 1, " %c %d", &state, &pp) != 2 || state == 'Z' || state == 'X')
            continue;
        pid[n] = (int32_t)p;
        ppid[n++] = pp;
    }
    closedir(d);
    int32_t me = (int32_t)getpid();
    /* walk each process up its parents (bounded) looking for us */
    for (int i = 0; i < n; i++) {
        int32_t up = ppid[i];
        for (int depth = 0; up > 1 && depth < 64; depth++) {
            if (up == me && !mp_helper(pid[i]))
                return 1;
            int j;
            for (j = 0; j < n && pid[j] != up; j++)
                ;
            if (j == n)
                break;
            up = ppid[j];
        }
    }
    return 0;
}

/* Entries alive and unexpired. Our own entries count only while we have a live descendant:
 * a handle we pickled for a child (spawn) or forked into one can only arrive through it, so
 * once all our children are gone (say, killed before attaching) it never will. */
int ipcf_transit_live(uint64_t *pairs, int n)
{
    uint64_t now = ipcf_now_ns(), me = self_word();
    int live = 0, mine = 0;
    for (int i = 0; i < n; i += 2) {
        uint64_t w = ipcf_load_acquire(&pairs[i]);
        if (w && ipcf_load_relaxed(&pairs[i + 1]) > now && peer_alive(w)) {
            if (w == me)
                mine++;
            else
                live++;
        }
    }
    if (mine && live_descendant())
        live += mine;
    return live;
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
    s->fork_from = ipcf_seg_depart(s, IPCF_TRANSIT_NS) == 0 ? self_word() : 0;
}

void ipcf_seg_after_fork(struct ipcf_seg *s)
{
    s->registered = 0;          /* the parent's registration is not ours */
    ipcf_seg_register(s);
    ipcf_seg_arrive(s, s->fork_from);
}

/* ---- mapping ---- */

static int is_ring(uint32_t kind)
{
    return kind == IPCF_KIND_RING || kind == IPCF_KIND_QPART;
}

/* Rings map their data twice back to back (records never split); other kinds once. */
static int map_segment(struct ipcf_seg *s, int fd, uint64_t capacity, uint32_t kind)
{
    int copies = is_ring(kind) ? 2 : 1;
    size_t len = IPCF_HDR_SIZE + copies * (size_t)capacity;
    uint8_t *base = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED)
        return -errno;
    int rc = 0;
    if (mmap(base, IPCF_HDR_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
        rc = -errno;
    for (int i = 0; rc == 0 && capacity && i < copies; i++) {
        void *at = base + IPCF_HDR_SIZE + (size_t)i * capacity;
        if (mmap(at, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, IPCF_HDR_SIZE) == MAP_FAILED)
            rc = -errno;
    }
    if (rc) {
        munmap(base, len);
        return rc;
    }
    s->base = base;
    s->map_len = len;
    s->hdr = (struct ipcf_seg_hdr *)base;
    s->ctl = base + IPCF_CTL_OFFSET;
    s->data = capacity ? base + IPCF_HDR_SIZE : NULL;
    s->capacity = capacity;
    return 0;
}

int ipcf_seg_create(struct ipcf_seg *s, const char *name, uint32_t kind, uint64_t capacity,
                    uint32_t flags, const uint64_t *params, int nparams)
{
    memset(s, 0, sizeof *s);
    int rc = set_name(s, name);
    if (rc)
        return rc;
    if (capacity && (capacity < IPCF_MIN_CAPACITY || capacity > IPCF_MAX_CAPACITY ||
                     (is_ring(kind) && (capacity & (capacity - 1))) || capacity % IPCF_MIN_CAPACITY))
        return IPCF_EBADARG;
    int fd = shm_open(s->name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    uint64_t total = IPCF_HDR_SIZE + capacity;
    /* rings are written everywhere soon: reserve their memory now, so a too-small /dev/shm
     * gives ENOSPC here rather than SIGBUS on a later write (other kinds stay sparse) */
    if (ftruncate(fd, (off_t)total) != 0 ||
        (is_ring(kind) && (rc = -posix_fallocate(fd, 0, (off_t)total)) != 0) ||
        (rc = map_segment(s, fd, capacity, kind)) != 0) {
        if (!rc)
            rc = -errno;
        close(fd);
        shm_unlink(s->name);
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    close(fd);
    struct ipcf_seg_hdr *h = s->hdr;         /* fresh file: all zero */
    h->version = IPCF_LAYOUT_VERSION;
    h->kind = kind;
    h->total_size = total;
    h->data_offset = IPCF_HDR_SIZE;
    h->capacity = capacity;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    h->creator_pid = (int32_t)getpid();
    h->creator_start = self_word() >> 32;
    h->flags = flags;
    for (int i = 0; i < nparams && i < 7; i++)
        h->param[i] = params[i];
    return 0;   /* the caller initialises its control block, then calls ipcf_seg_publish */
}

/* The magic goes in last, with release order: an attacher that sees it (acquire) sees the
 * whole initialised header and control block. */
void ipcf_seg_publish(struct ipcf_seg *s)
{
    ipcf_store_release(&s->hdr->magic, (uint64_t)IPCF_MAGIC);
}

int ipcf_seg_open(struct ipcf_seg *s, const char *name, uint32_t kind, int join)
{
    memset(s, 0, sizeof *s);
    int rc = set_name(s, name);
    if (rc)
        return rc;
    int fd = shm_open(s->name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct stat st;
    struct ipcf_seg_hdr h;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if ((uint64_t)st.st_size < IPCF_HDR_SIZE) {
        rc = st.st_size == 0 ? IPCF_ENOTREADY : IPCF_ETRUNCATED;
        goto out;
    }
    if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h) {
        rc = IPCF_ETRUNCATED;
        goto out;
    }
    uint64_t magic = ipcf_load_acquire(&h.magic);
    for (int tries = 0; magic == 0 && tries < 200; tries++) {
        /* the creator stores the magic last: give it up to ~1 s to finish */
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
            break;
        magic = ipcf_load_acquire(&h.magic);
    }
    if (magic == 0) {
        rc = IPCF_ENOTREADY;
        goto out;
    }
    if (magic != IPCF_MAGIC) {
        rc = IPCF_EBADMAGIC;
        goto out;
    }
    if (h.version != IPCF_LAYOUT_VERSION) {
        rc = IPCF_EVERSION;
        goto out;
    }
    if (kind && h.kind != kind) {
        rc = IPCF_EKIND;
        goto out;
    }
    if (h.data_offset != IPCF_HDR_SIZE || h.total_size != IPCF_HDR_SIZE + h.capacity ||
        (h.capacity && (h.capacity < IPCF_MIN_CAPACITY || h.capacity % IPCF_MIN_CAPACITY ||
                        (is_ring(h.kind) && (h.capacity & (h.capacity - 1))))) ||
        (uint64_t)st.st_size != h.total_size) {
        rc = IPCF_ETRUNCATED;
        goto out;
    }
    if ((h.kind == IPCF_KIND_RING || h.kind == IPCF_KIND_QPART || h.kind == IPCF_KIND_MAILBOX) &&
        h.capacity == 0) {
        rc = IPCF_ETRUNCATED;               /* these kinds always have a data area */
        goto out;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    rc = map_segment(s, fd, h.capacity, h.kind);
    if (rc == 0 && join)
        ipcf_seg_register(s);
out:
    close(fd);
    return rc;
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
        if ((ipcf_load_acquire(&s->hdr->flags) & IPCF_F_AUTO_UNLINK) &&
            ipcf_table_live(s->hdr->peers, IPCF_MAX_PEERS, NULL) == 0 &&
            ipcf_transit_live(s->hdr->transit, IPCF_TRANSIT_WORDS) == 0)
            last = 1;
    }
    pthread_mutex_unlock(&local_lock);
    return last;
}

void ipcf_seg_unmap(struct ipcf_seg *s)
{
    if (s->base)
        munmap(s->base, s->map_len);
    s->base = NULL;
}

int ipcf_seg_close(struct ipcf_seg *s)
{
    int last = ipcf_seg_leave(s);
    ipcf_seg_unmap(s);
    return last;
}

int ipcf_seg_unlink_own(struct ipcf_seg *s, const char *name)
{
    char path[IPCF_NAME_MAX + 2];
    struct stat st;
    if (ipcf_name_check(name))
        return IPCF_EBADNAME;
    path[0] = '/';
    strcpy(path + 1, name);
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ours = fstat(fd, &st) == 0 && (uint64_t)st.st_dev == s->dev && (uint64_t)st.st_ino == s->ino;
    close(fd);
    if (!ours)
        return -ENOENT;                     /* our file is already gone; that one is not ours */
    return shm_unlink(path) == 0 ? 0 : -errno;
}

/* ---- inspection for the operator commands ---- */

int ipcf_seg_inspect(const char *name, struct ipcf_seg_info *out)
{
    struct ipcf_seg s;
    memset(out, 0, sizeof *out);
    int rc = ipcf_seg_open(&s, name, 0, 0);   /* look, do not join */
    if (rc)
        return rc;
    struct ipcf_seg_hdr *h = s.hdr;
    out->kind = h->kind;
    out->flags = h->flags;
    out->version = h->version;
    out->creator_pid = h->creator_pid;
    out->capacity = h->capacity;
    out->created_ns = h->created_ns;
    out->param0 = h->param[0];
    out->param1 = h->param[1];
    out->live_peers = (uint32_t)ipcf_table_live(h->peers, IPCF_MAX_PEERS, &out->dead_peers) +
                      (uint32_t)ipcf_transit_live(h->transit, IPCF_TRANSIT_WORDS);   /* in transit: alive */
    if (h->kind == IPCF_KIND_RING || h->kind == IPCF_KIND_QPART) {
        struct ipcf_ring_ctl *c = s.ctl;
        uint64_t v[8] = {c->msgs_in, c->msgs_out, c->bytes_in, c->bytes_out, c->full_waits,
                         c->empty_waits, c->data.waiters, c->space.waiters};
        memcpy(out->counters, v, sizeof v);
    } else if (h->kind == IPCF_KIND_MAILBOX) {
        struct ipcf_mbox_ctl *c = s.ctl;
        uint64_t v[8] = {c->count, c->bytes_held, c->published, c->taken, c->freed, c->repairs,
                         c->receivers_waiting, c->holder & 0xffffffffu};
        memcpy(out->counters, v, sizeof v);
    } else if (h->kind == IPCF_KIND_QUEUE) {
        struct ipcf_queue_ctl *c = s.ctl;
        uint64_t v[8] = {c->items_put, c->items_got, c->bytes_put, c->bytes_got, c->full_waits,
                         c->empty_waits, c->write_gen, c->read_gen};
        memcpy(out->counters, v, sizeof v);
    }
    munmap(s.base, s.map_len);
    return 0;
}
