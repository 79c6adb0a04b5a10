/* shm.c - see shm.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomics.h"
#include "host.h"
#include "peers.h"
#include "shm.h"

#define STR2(x) #x
#define STR(x) STR2(x)
#ifndef IPCF_PKG_VERSION
#define IPCF_PKG_VERSION unknown
#endif

/* The stamps ipcfast/_native.py checks on import. */
const char *ipcf_build_version(void) { return STR(IPCF_PKG_VERSION); }
uint32_t ipcf_layout_version(void) { return IPCF_LAYOUT_VERSION; }

/* ---- names ---- */

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

/* "/" + name, for shm_open; IPCF_EBADNAME for a name ipcf_name_check refuses. */
static int shm_path(char out[IPCF_NAME_MAX + 2], const char *name)
{
    int rc = ipcf_name_check(name);
    if (rc)
        return rc;
    out[0] = '/';
    strcpy(out + 1, name);
    return 0;
}

int ipcf_seg_unlink(const char *name)
{
    char path[IPCF_NAME_MAX + 2];
    int rc = shm_path(path, name);
    if (rc)
        return rc;
    return shm_unlink(path) == 0 ? 0 : -errno;
}

int ipcf_seg_unlink_own(struct ipcf_seg *s, const char *name)
{
    char path[IPCF_NAME_MAX + 2];
    struct stat st;
    if (shm_path(path, name))
        return IPCF_EBADNAME;
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int ours = fstat(fd, &st) == 0 && (uint64_t)st.st_dev == s->dev && (uint64_t)st.st_ino == s->ino;
    close(fd);
    if (!ours)
        return -ENOENT;                     /* our file is already gone; that one is not ours */
    return shm_unlink(path) == 0 ? 0 : -errno;
}

int ipcf_seg_unlink_unpublished(const char *name)
{
    char path[IPCF_NAME_MAX + 2];
    struct stat st;
    uint64_t magic = 1;
    if (shm_path(path, name))
        return IPCF_EBADNAME;
    int fd = shm_open(path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int half = fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
               (st.st_size == 0 ||
                ((uint64_t)st.st_size >= IPCF_HDR_SIZE && pread(fd, &magic, sizeof magic, 0) ==
                 (ssize_t)sizeof magic && magic == 0));
    close(fd);
    if (!half)
        return -EEXIST;
    return shm_unlink(path) == 0 ? 0 : -errno;
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

void ipcf_seg_unmap(struct ipcf_seg *s)
{
    if (s->base)
        munmap(s->base, s->map_len);
    s->base = NULL;
}

/* ---- create and publish ---- */

int ipcf_seg_create(struct ipcf_seg *s, const char *name, uint32_t kind, uint64_t capacity,
                    uint32_t flags, const uint64_t *params, int nparams)
{
    memset(s, 0, sizeof *s);
    int rc = shm_path(s->name, name);
    if (rc)
        return rc;
    if (capacity && (capacity < IPCF_MIN_CAPACITY || capacity > IPCF_MAX_CAPACITY ||
                     (is_ring(kind) && (capacity & (capacity - 1))) || capacity % IPCF_MIN_CAPACITY))
        return IPCF_EBADARG;
    ipcf_host_block();     /* reserving a ring's memory can take a while (host.h) */
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
    /* a fresh file, all zero, that nobody may read before the magic: plain stores */
    struct ipcf_seg_hdr *h = s->hdr;
    h->version = IPCF_LAYOUT_VERSION;
    h->kind = kind;
    h->total_size = total;
    h->data_offset = IPCF_HDR_SIZE;
    h->capacity = capacity;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->created_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    h->creator_pid = (int32_t)getpid();
    h->creator_start = ipcf_self_word() >> 32;
    h->flags = flags;
    for (int i = 0; i < nparams && i < IPCF_PARAMS; i++)
        h->param[i] = params[i];
    return 0;
}

/* The magic goes in last, with release order: an attacher that sees it (acquire) sees the
 * whole initialised header and control block. */
void ipcf_seg_publish(struct ipcf_seg *s)
{
    ipcf_store_release(&s->hdr->magic, (uint64_t)IPCF_MAGIC);
}

/* ---- open ---- */

/* Is the header a valid segment of `kind` (0: any) for a file of `size` bytes? */
static int check_header(const struct ipcf_seg_hdr *h, uint32_t kind, uint64_t size)
{
    if (h->magic != IPCF_MAGIC)
        return IPCF_EBADMAGIC;
    if (h->version != IPCF_LAYOUT_VERSION)
        return IPCF_EVERSION;
    if (kind && h->kind != kind)
        return IPCF_EKIND;
    if (h->data_offset != IPCF_HDR_SIZE || h->total_size != IPCF_HDR_SIZE + h->capacity ||
        (h->capacity && (h->capacity < IPCF_MIN_CAPACITY || h->capacity % IPCF_MIN_CAPACITY ||
                         (is_ring(h->kind) && (h->capacity & (h->capacity - 1))))) ||
        size != h->total_size)
        return IPCF_ETRUNCATED;
    if ((is_ring(h->kind) || h->kind == IPCF_KIND_MAILBOX) && h->capacity == 0)
        return IPCF_ETRUNCATED;             /* these kinds always have a data area */
    return 0;
}

int ipcf_seg_open(struct ipcf_seg *s, const char *name, uint32_t kind)
{
    memset(s, 0, sizeof *s);
    int rc = shm_path(s->name, name);
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
    /* (a copy read with pread: the kernel orders it; no atomics on our private copy) */
    for (int tries = 0; h.magic == 0 && tries < 200; tries++) {
        /* the creator stores the magic last: give it up to ~1 s to finish */
        ipcf_host_block();
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
        if (pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
            break;
    }
    rc = h.magic == 0 ? IPCF_ENOTREADY : check_header(&h, kind, (uint64_t)st.st_size);
    if (rc)
        goto out;
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    rc = map_segment(s, fd, h.capacity, h.kind);
out:
    close(fd);
    return rc;
}
