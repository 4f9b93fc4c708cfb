/*
 * wal_dir.c - the write-ahead log's directory (see wal_dir.h): the main
 * thread's, at start-up and stop.
 */
#include "net/wal_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/rm_assert.h"
#include "net/log.h"

void wal_seg_name(char *out, uint32_t gen, uint32_t shard, uint32_t seq)
{
    /* Every uint32_t fits its field: a name never outgrows what seg_parse() reads. */
    snprintf(out, WAL_SEG_NAME_MAX, "%08" PRIx32 "-%03" PRIu32 "-%010" PRIu32 ".wal", gen, shard,
             seq);
}

/* Parse "GGGGGGGG-SSS-QQQQQQQQQQ.wal"; false for any other name. */
static bool seg_parse(const char *name, uint32_t *gen, uint32_t *shard, uint32_t *seq)
{
    char *end;
    if (strlen(name) != 27 || strcmp(name + 23, ".wal") != 0 || name[8] != '-' || name[12] != '-')
        return false;
    for (size_t i = 0; i < 23; i++) {
        if (i != 8 && i != 12 && !((name[i] >= '0' && name[i] <= '9') ||
                                   (i < 8 && name[i] >= 'a' && name[i] <= 'f')))
            return false;
    }
    *gen = (uint32_t)strtoul(name, &end, 16);
    *shard = (uint32_t)strtoul(name + 9, &end, 10);
    errno = 0;
    unsigned long q = strtoul(name + 13, &end, 10);
    if (errno != 0 || q > UINT32_MAX)
        return false;
    *seq = (uint32_t)q;
    return true;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct seg_file *x = a;
    const struct seg_file *y = b;
    if (x->gen != y->gen)
        return x->gen < y->gen ? -1 : 1;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return 0;
}

/*
 * The shared groups' key seed: read from "seed", or drawn and written there
 * (through a synced temporary file renamed into place) the first time.
 */
static int dir_seed(struct wal_dir *d)
{
    int fd = openat(d->dir_fd, "seed", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, &d->seed, sizeof(d->seed));
        int err = errno;
        close(fd);
        if (n == (ssize_t)sizeof(d->seed))
            return 0;
        LOG_ERROR("[persistence] dir %s: its seed file is unreadable or short: %s", d->path,
                  n < 0 ? strerror(err) : "fewer than 8 bytes");
        return n < 0 ? -err : -EIO;
    }
    if (errno != ENOENT) {
        int err = errno;
        LOG_ERROR("[persistence] dir %s: seed: %s", d->path, strerror(err));
        return -err;
    }
    if (getrandom(&d->seed, sizeof(d->seed), 0) != (ssize_t)sizeof(d->seed))
        return -errno;
    fd = openat(d->dir_fd, "seed.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    if (rc == 0 && write(fd, &d->seed, sizeof(d->seed)) != (ssize_t)sizeof(d->seed))
        rc = -EIO;
    if (rc == 0 && fdatasync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc == 0 && renameat(d->dir_fd, "seed.tmp", d->dir_fd, "seed") < 0)
        rc = -errno;
    if (rc == 0 && fsync(d->dir_fd) < 0)
        rc = -errno;
    if (rc < 0)
        LOG_ERROR("[persistence] dir %s: cannot write its seed file: %s", d->path, strerror(-rc));
    return rc;
}

uint64_t wal_dir_seed(const struct wal_dir *d)
{
    return d->seed;
}

/* Take the lock file, or say who holds it. */
static int dir_lock(struct wal_dir *d)
{
    char pid[32];
    d->lock_fd = openat(d->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (d->lock_fd < 0) {
        int err = errno;
        LOG_ERROR("[persistence] dir %s: cannot open its lock file: %s", d->path, strerror(err));
        return -err;
    }
    if (flock(d->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        int err = errno;
        ssize_t n = pread(d->lock_fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (err == EWOULDBLOCK)
            LOG_ERROR("[persistence] dir %s is in use by another ringmq (pid %s): one broker per "
                      "directory",
                      d->path, pid[0] ? pid : "unknown");
        else
            LOG_ERROR("[persistence] dir %s: cannot lock it: %s", d->path, strerror(err));
        return -(err == EWOULDBLOCK ? EBUSY : err);
    }
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(d->lock_fd, 0) < 0 || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
        LOG_WARN("[persistence] dir %s: cannot write our pid into its lock file", d->path);
    return 0;
}

/*
 * Where the data of @fd (@size bytes) ends: after its last data region.
 * What follows is a hole: a segment's preallocated, never written rest
 * (net/wal_io.h), which replay does not read, or the zeros a record ended
 * with, made a hole by a sparse copy of the directory or a compressing
 * file system (replay reads those as zeros, as it reads a hole between
 * data regions). @size where the file system cannot say.
 */
static size_t data_end(int fd, size_t size)
{
    off_t end = 0;
    off_t at = 0;
    /* Bounded: each pass moves past one data region of the file. */
    while ((uint64_t)at < size) {
        off_t data = lseek(fd, at, SEEK_DATA);
        if (data < 0)
            return errno == ENXIO ? (size_t)end : size;
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole <= data)
            return size;
        end = hole;
        at = hole;
    }
    return (uint64_t)end < size ? (size_t)end : size;
}

/* Map one segment file (empty ones stay unmapped). */
static int seg_map(struct wal_dir *d, struct seg_file *f)
{
    int fd = openat(d->dir_fd, f->name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        int err = errno;
        LOG_ERROR("[persistence] %s/%s: %s", d->path, f->name, strerror(err));
        if (fd >= 0)
            close(fd);
        return -err;
    }
    f->len = (size_t)st.st_size;
    f->data = data_end(fd, f->len);
    if (f->len > 0) {
        void *p = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int err = errno;
            LOG_ERROR("[persistence] %s/%s: cannot map it: %s", d->path, f->name, strerror(err));
            close(fd);
            return -err;
        }
        f->map = p;
    }
    close(fd);
    return 0;
}

/* List and map the segments, in log order. */
static int dir_scan(struct wal_dir *d)
{
    int fd = dup(d->dir_fd);
    DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dir) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        LOG_ERROR("[persistence] dir %s: cannot list it: %s", d->path, strerror(err));
        return -err;
    }
    size_t cap = 0;
    int rc = 0;
    struct dirent *e;
    uint32_t max_gen = 0;
    while ((e = readdir(dir)) != NULL && rc == 0) {
        struct seg_file f = {0};
        if (!seg_parse(e->d_name, &f.gen, &f.shard, &f.seq))
            continue;
        if (d->count == WAL_DIR_FILES_MAX) {
            LOG_ERROR("[persistence] dir %s: more than %u segments", d->path, WAL_DIR_FILES_MAX);
            rc = -E2BIG;
            break;
        }
        if (d->count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct seg_file *n = realloc(d->files, ncap * sizeof(*n));
            if (!n) {
                rc = -ENOMEM;
                break;
            }
            d->files = n;
            cap = ncap;
        }
        memcpy(f.name, e->d_name, strlen(e->d_name) + 1);
        d->files[d->count++] = f;
        if (f.gen > max_gen)
            max_gen = f.gen;
    }
    closedir(dir);
    if (rc < 0)
        return rc;
    if (d->count > 1) /* files is NULL in an empty directory: qsort(NULL, 0) is UB */
        qsort(d->files, d->count, sizeof(*d->files), seg_cmp);
    d->segs = calloc(d->count ? d->count : 1, sizeof(*d->segs));
    d->names = calloc(d->count ? d->count : 1, sizeof(*d->names));
    if (!d->segs || !d->names)
        return -ENOMEM;
    for (size_t i = 0; i < d->count; i++) {
        struct seg_file *f = &d->files[i];
        rc = seg_map(d, f);
        if (rc < 0)
            return rc;
        snprintf(d->names[i], sizeof(d->names[i]), "%s/%s", d->path, f->name);
        bool last = i + 1 == d->count || d->files[i + 1].gen != f->gen ||
                    d->files[i + 1].shard != f->shard;
        d->segs[i] = (struct wal_seg){f->map, f->len, d->names[i], last, f->data};
    }
    if (max_gen == UINT32_MAX) {
        LOG_ERROR("[persistence] dir %s: generations exhausted", d->path);
        return -EOVERFLOW;
    }
    d->generation = max_gen + 1;
    return 0;
}

int wal_dir_open(const struct config_wal *cfg, struct wal_dir **out)
{
    RM_ASSERT(cfg != NULL && cfg->enabled);
    struct wal_dir *d = calloc(1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->dir_fd = d->lock_fd = -1;
    memcpy(d->path, cfg->dir, sizeof(d->path));
    int rc = 0;
    if (mkdir(d->path, 0750) < 0 && errno != EEXIST) {
        rc = -errno;
        LOG_ERROR("[persistence] dir %s: cannot create it: %s", d->path, strerror(-rc));
        goto out_free;
    }
    d->dir_fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dir_fd < 0) {
        rc = -errno;
        LOG_ERROR("[persistence] dir %s: %s", d->path, strerror(-rc));
        goto out_free;
    }
    rc = dir_lock(d);
    if (rc == 0)
        rc = dir_seed(d);
    if (rc == 0)
        rc = dir_scan(d);
    if (rc < 0)
        goto out_free;
    LOG_INFO("persistence: %s, %zu segment%s, generation %" PRIu32 ", fsync %s", d->path,
             d->count, d->count == 1 ? "" : "s", d->generation,
             cfg->fsync == CONFIG_FSYNC_ALWAYS     ? "always"
             : cfg->fsync == CONFIG_FSYNC_INTERVAL ? "interval"
                                                   : "off");
    *out = d;
    return 0;

out_free:
    wal_dir_close(d);
    return rc;
}

static void dir_unmap(struct wal_dir *d)
{
    for (size_t i = 0; i < d->count; i++) {
        if (d->files[i].map)
            munmap(d->files[i].map, d->files[i].len);
    }
    free(d->files);
    free(d->segs);
    free(d->names);
    d->files = NULL;
    d->segs = NULL;
    d->names = NULL;
    d->count = 0;
}

void wal_dir_retire(struct wal_dir *d)
{
    RM_ASSERT(d != NULL);
    size_t gone = 0;
    for (size_t i = 0; i < d->count; i++) {
        if (d->files[i].gen >= d->generation)
            continue;
        if (unlinkat(d->dir_fd, d->files[i].name, 0) < 0)
            LOG_WARN("[persistence] cannot delete %s/%s: %s", d->path, d->files[i].name,
                     strerror(errno));
        else
            gone++;
    }
    if (gone && fsync(d->dir_fd) < 0)
        LOG_WARN("[persistence] dir %s: fsync: %s", d->path, strerror(errno));
    dir_unmap(d);
}

void wal_dir_close(struct wal_dir *d)
{
    if (!d)
        return;
    dir_unmap(d);
    if (d->lock_fd >= 0)
        close(d->lock_fd); /* releases the flock */
    if (d->dir_fd >= 0)
        close(d->dir_fd);
    free(d);
}

/* Write all of @buf at @off (blocking: start-up, rotation, the end). */
