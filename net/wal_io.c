/*
 * wal_io.c - a shard's write-ahead log: writes, syncs, rotation and
 * compaction through its ring (see wal_io.h). Each struct wal_io is its
 * shard's.
 */
#include "net/wal_io.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/broker.h"
#include "core/rm_assert.h"
#include "core/wal_format.h"
#include "net/log.h"
#include "net/uring.h"
#include "net/wal_dir.h"

/*
 * The operations a shard's log may have in flight, by tag: a batch's
 * writes (direct I/O: its first block, then the rest) and sync, an
 * interval sync, a new segment's open, preallocation, header write and
 * syncs (rotate()), and an old segment's deletion (retire_step()).
 */
enum {
    TAG_WRITE_HEAD,
    TAG_WRITE,
    TAG_SYNC,
    TAG_TICK_SYNC,
    TAG_ROT_OPEN,
    TAG_ROT_ALLOC,
    TAG_ROT_HDR,
    TAG_ROT,
    TAG_RETIRE,
    TAG_COUNT
};

/* Beginning the next segment through the ring (rotate()). */
enum { ROT_IDLE, ROT_OPENING, ROT_OPENED, ROT_WRITING, ROT_DONE };
/* Deleting old segments through the ring (retire_step()). */
enum { RETIRE_NONE, RETIRE_UNLINK, RETIRE_DIRSYNC };

struct wal_io {
    uint64_t tags[TAG_COUNT]; /* user_data objects (8-byte aligned) */
    const struct config_wal *cfg;
    int dir_fd;
    int fd;
    uint32_t generation;
    uint32_t shard;
    uint32_t shard_count;
    uint32_t seq;     /* the current segment */
    uint32_t min_seq; /* the oldest segment of this stream still on disk */
    uint64_t seg_off; /* bytes in the current segment */

    /*
     * Direct I/O (dio_align > 0: the block its writes are made of). Each
     * write is whole blocks from the start of the segment's last partial
     * block: the @tail bytes already on disk there, then a chunk of the
     * batch, then zeros, copied into @stage. 0: buffered writes.
     */
    uint32_t dio_align;
    uint8_t *stage;
    size_t stage_cap;
    size_t stage_len; /* the staged write's bytes (whole blocks) */
    size_t tail;      /* bytes of the last partial block, at stage[0] */
    size_t chunk;     /* the batch's bytes in the staged write */
    size_t head_len;  /* its first block's write, when that goes alone: its bytes */
    /* Where the batch began: a failed sync rewinds there (rewind_batch()). */
    uint64_t batch_off;
    size_t batch_tail;
    uint8_t *batch_block;
    uint8_t *rot_block; /* the next segment's first block (its header, then zeros) */
    uint64_t stream_bytes; /* in all of this stream's segments */
    uint64_t snap_bytes;   /* the stream's size when the last snapshot completed */

    /* The batch being written (the broker's, until broker_wal_durable()). */
    bool batch;
    const uint8_t *buf;
    size_t len;
    size_t done;   /* bytes of it written */
    uint32_t ops;  /* its operations still in flight */
    int write_res;
    int sync_res;
    uint64_t sync_start_ns;
    uint64_t tick_sync_start_ns; /* when the interval sync in flight was submitted */

    bool failed; /* the last attempt failed: retried at retry_at_ms */
    int fail_err;
    uint64_t retry_at_ms;
    uint64_t failed_since_ms;

    bool tick_syncing;      /* an interval sync is in flight */
    bool sync_ok;           /* the batch's sync succeeded */
    bool write_syncs;       /* the batch's direct write syncs too (RWF_SYNC) */
    uint64_t unsynced;      /* bytes written since the last sync (fsync = interval) */
    uint64_t sync_due_ms;
    uint64_t taken_ms;      /* when the last batch was taken (WAL_IO_COALESCE_MS) */

    bool compact_requested;
    bool compacting;          /* a snapshot is being written into segment compact_seq */
    bool compact_in_batch;    /* ... and its last records are in the open batch */
    bool compact_flushing;    /* ... in the batch being written */
    bool compact_failed;      /* its segment could not be begun: tried at compact_retry_ms */
    uint32_t compact_seq;
    uint64_t compact_retry_ms;

    /* The next segment being begun (rotate()): opened, then its header written and synced. */
    uint8_t rot;          /* ROT_* */
    int rot_fd;
    int rot_res;          /* its steps' first failure */
    uint32_t rot_ops;     /* its preallocation, write, fdatasync and directory fsync in flight */
    size_t rot_wlen;      /* the header write's bytes */
    char rot_name[WAL_SEG_NAME_MAX];
    struct wal_out rot_hdr;
    /* Segments a compaction left behind, deleted one at a time (retire_step()). */
    uint32_t retire_next;
    uint32_t retire_end;
    uint8_t retire_op;    /* RETIRE_*: what is in flight */
    bool retire_dirty;    /* names deleted since the directory's last fsync */
    char retire_name[WAL_SEG_NAME_MAX];
    struct broker_wal_cursor cursor;

    struct wal_io_stats stats;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int write_all(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    /* Bounded: each pass writes something or fails. */
    while (done < len) {
        ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* A segment's size: past it the next one begins. */
static uint64_t seg_bytes(const struct wal_io *w)
{
    return (uint64_t)w->cfg->segment_mb << 20;
}

/* A segment file's open flags. */
static int seg_flags(const struct wal_io *w)
{
    return O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (w->dio_align ? O_DIRECT : 0);
}

/*
 * With fsync = always, write the log with direct I/O when the file system
 * of @fd (the first segment) says how (STATX_DIOALIGN): each write then
 * goes from the ring to the disk without an io-wq hand-off, and carries
 * its sync (RWF_SYNC). Else buffered writes: tmpfs, and fsync = interval
 * or off, whose acknowledgements do not wait for the disk, so a write must
 * be safe from a kill -9 as soon as it can (the page cache), not after the
 * disk took it. 0 or -ENOMEM.
 */
static int dio_begin(struct wal_io *w, int fd)
{
    struct statx sx;
    if (w->cfg->fsync != CONFIG_FSYNC_ALWAYS ||
        statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) < 0 ||
        !(sx.stx_mask & STATX_DIOALIGN) || sx.stx_dio_offset_align == 0)
        return 0;
    /*
     * Whole file-system blocks, not just what direct I/O allows: ext4
     * hands a write that is not to io-wq (it takes the inode's lock).
     */
    uint32_t align = sx.stx_blksize;
    if (sx.stx_dio_offset_align > align)
        align = sx.stx_dio_offset_align;
    if (sx.stx_dio_mem_align > align)
        align = sx.stx_dio_mem_align;
    int fl = fcntl(fd, F_GETFL);
    if (align > WAL_IO_DIO_ALIGN_MAX || (align & (align - 1)) != 0 || fl < 0 ||
        fcntl(fd, F_SETFL, fl | O_DIRECT) < 0)
        return 0;
    void *stage = NULL;
    void *block = NULL;
    void *first = NULL;
    if (posix_memalign(&stage, align, align) != 0 || posix_memalign(&block, align, align) != 0 ||
        posix_memalign(&first, align, align) != 0) {
        free(stage);
        free(block);
        return -ENOMEM;
    }
    w->dio_align = align;
    w->stage = stage;
    w->stage_cap = align;
    w->rot_block = block;
    w->batch_block = first;
    return 0;
}

/*
 * Reserve a direct-I/O segment's space, so its writes fill preallocated
 * blocks rather than grow the file (which ext4 hands to io-wq). Best
 * effort: without it they allocate as they go, and a full disk shows there.
 */
static void preallocate(const struct wal_io *w, int fd)
{
    if (w->dio_align)
        (void)fallocate(fd, 0, 0, (off_t)seg_bytes(w));
}

/*
 * Direct I/O: copy @len bytes of @buf (at most WAL_IO_DIRECT_CHUNK, so the
 * buffer stays bounded) into w->stage after the segment's last partial
 * block, padded with zeros to whole blocks (w->stage_len). 0 or -ENOMEM.
 */
static int stage(struct wal_io *w, const uint8_t *buf, size_t len)
{
    size_t a = w->dio_align;
    RM_ASSERT(len > 0 && len <= WAL_IO_DIRECT_CHUNK);
    size_t need = (w->tail + len + a - 1) / a * a;
    if (need > w->stage_cap) {
        void *p;
        if (posix_memalign(&p, a, need) != 0)
            return -ENOMEM;
        memcpy(p, w->stage, w->tail);
        free(w->stage);
        w->stage = p;
        w->stage_cap = need;
    }
    memcpy(w->stage + w->tail, buf, len);
    memset(w->stage + w->tail + len, 0, need - w->tail - len);
    w->stage_len = need;
    return 0;
}

/*
 * @len bytes were written at the segment's end: its offset moves on and,
 * with direct I/O, the new last partial block (what the staged write
 * ended with) stays at stage[0] for the next write.
 */
static void advance(struct wal_io *w, size_t len)
{
    w->seg_off += len;
    w->stream_bytes += len;
    if (!w->dio_align)
        return;
    size_t end = w->tail + len;
    size_t keep = (size_t)(w->seg_off % w->dio_align);
    RM_ASSERT(end >= keep && end <= w->stage_cap);
    memmove(w->stage, w->stage + end - keep, keep);
    w->tail = keep;
}

/* Write @len bytes at the segment's end, blocking (start-up and stop). 0 or -errno. */
static int write_end(struct wal_io *w, const uint8_t *buf, size_t len)
{
    if (!w->dio_align) {
        int rc = len ? write_all(w->fd, buf, len, w->seg_off) : 0;
        if (rc == 0)
            advance(w, len);
        return rc;
    }
    /* Bounded: each pass writes a chunk or fails. */
    for (size_t done = 0, n; done < len; done += n) {
        n = len - done < WAL_IO_DIRECT_CHUNK ? len - done : WAL_IO_DIRECT_CHUNK;
        int rc = stage(w, buf + done, n);
        if (rc == 0)
            rc = write_all(w->fd, w->stage, w->stage_len, w->seg_off - w->tail);
        if (rc < 0)
            return rc;
        advance(w, n);
    }
    return 0;
}

/* The new segment's header: the WAL_SEGMENT record (into @o). */
static void seg_header(const struct wal_io *w, struct wal_out *o, uint32_t seq)
{
    size_t at = wal_begin(o, WAL_SEGMENT);
    wal_put_u64(o, WAL_MAGIC);
    wal_put_u32(o, WAL_VERSION);
    wal_put_u32(o, w->generation);
    wal_put_u32(o, w->shard);
    wal_put_u32(o, w->shard_count);
    wal_put_u32(o, seq);
    wal_end(o, at);
}

/*
 * Begin segment @seq of this stream at start-up (before the loop runs):
 * created, its header written and synced, the dir synced, blocking.
 * Returns 0 or -errno (the caller says so). Running, rotate() does the same
 * through the ring.
 */
static int seg_begin(struct wal_io *w, uint32_t seq)
{
    RM_ASSERT(w->fd < 0);
    char name[WAL_SEG_NAME_MAX];
    wal_seg_name(name, w->generation, w->shard, seq);
    int fd = openat(w->dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    w->fd = fd;
    w->seq = seq;
    int rc = dio_begin(w, fd);
    preallocate(w, fd);
    struct wal_out o = {0};
    seg_header(w, &o, seq);
    if (rc == 0)
        rc = o.nomem ? -ENOMEM : write_end(w, o.buf, o.len);
    if (rc == 0 && (fdatasync(fd) < 0 || fsync(w->dir_fd) < 0))
        rc = -errno;
    wal_out_free(&o);
    return rc; /* on failure the caller frees w, closing fd */
}

static void replay_problem(void *ctx, const char *name, size_t off, const char *what)
{
    const struct wal_io *w = ctx;
    /* Every shard reads every segment: one of them tells. */
    if (w->shard == 0)
        LOG_WARN("persistence: %s: offset %zu: %s", name, off, what);
}

int wal_io_start(struct wal_io **out, const struct wal_dir *d, const struct config_wal *cfg,
                 uint32_t shard, uint32_t shard_count, struct broker *b, uint64_t now_ms)
{
    RM_ASSERT(d != NULL && cfg != NULL && b != NULL);
    struct wal_io *w = calloc(1, sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cfg = cfg;
    w->fd = -1;
    w->rot_fd = -1;
    w->dir_fd = d->dir_fd;
    w->generation = d->generation;
    w->shard = shard;
    w->shard_count = shard_count;
    int64_t wall_offset_ms = (int64_t)wall_ms() - (int64_t)now_ms;
    struct wal_replay_report rep;
    uint64_t t0 = mono_ns();
    int rc = broker_wal_replay(b, d->segs, d->count, wall_offset_ms, replay_problem, w, &rep);
    if (rc == -EPROTONOSUPPORT) {
        LOG_ERROR("persistence: %s holds a log written by a later ringmq (log version above %u): "
                  "not starting, rather than misreading it",
                  d->path, WAL_VERSION);
        goto out_free;
    }
    if (rc < 0) {
        LOG_ERROR("persistence: shard %" PRIu32 ": out of memory replaying the log", shard);
        goto out_free;
    }
    rc = broker_wal_start(b, cfg->fsync == CONFIG_FSYNC_ALWAYS, wall_offset_ms);
    if (rc < 0)
        goto out_free;
    rc = seg_begin(w, 0);
    if (rc < 0) {
        LOG_ERROR("persistence: shard %" PRIu32 ": cannot begin its first segment: %s", shard,
                  strerror(-rc));
        goto out_free;
    }
    if (shard == 0 && w->dio_align)
        LOG_INFO("persistence: direct I/O in %" PRIu32 "-byte blocks, segments preallocated",
                 w->dio_align);
    else if (shard == 0)
        LOG_INFO("persistence: buffered writes (%s)",
                 cfg->fsync == CONFIG_FSYNC_ALWAYS
                     ? "the file system reports no direct I/O"
                     : "nothing waits for them without fsync = always");
    w->min_seq = 0;
    struct broker_wal_cursor cur = {0};
    (void)broker_wal_snapshot(b, &cur, UINT32_MAX);
    if (broker_wal_lost(b) > 0) {
        /* Not whole: the older generations must not go (main's wal_dir_retire()). */
        LOG_ERROR("persistence: shard %" PRIu32 ": out of memory writing its snapshot", shard);
        rc = -ENOMEM;
        goto out_free;
    }
    const uint8_t *buf;
    size_t len = 0;
    if (broker_wal_take(b, &buf, &len)) {
        rc = write_end(w, buf, len);
        if (rc == 0 && fdatasync(w->fd) < 0)
            rc = -errno;
        if (rc < 0) {
            LOG_ERROR("persistence: shard %" PRIu32 ": cannot write its snapshot: %s", shard,
                      strerror(-rc));
            goto out_free;
        }
        broker_wal_durable(b);
    }
    w->snap_bytes = w->stream_bytes;
    if (shard == 0 || rep.sessions || rep.retained || rep.dropped)
        LOG_INFO("persistence: shard %" PRIu32 ": replayed %" PRIu64 " records in %" PRIu64
                 " ms: %" PRIu64 " sessions, %" PRIu64 " kept messages, %" PRIu64
                 " retained here (%" PRIu64 " not restored: expired or over limits); snapshot %zu "
                 "bytes",
                 shard, rep.records, (mono_ns() - t0) / 1000000u, rep.sessions, rep.messages,
                 rep.retained, rep.dropped, len);
    if (shard == 0 && (rep.bad || rep.torn_bytes))
        LOG_WARN("persistence: %" PRIu64 " corrupt records skipped (%" PRIu64
                 " bytes), %" PRIu64 " bytes of torn tails ignored",
                 rep.bad, rep.skipped_bytes, rep.torn_bytes);
    *out = w;
    return 0;

out_free:
    if (w->fd >= 0)
        close(w->fd);
    free(w->stage);
    free(w->rot_block);
    free(w->batch_block);
    free(w);
    return rc < 0 ? rc : -EIO;
}

static void batch_failed(struct wal_io *w, const char *what, int err, uint64_t now_ms);

/*
 * Direct I/O: the batch's next chunk, from w->done, staged. A write from
 * a block already written (the last partial one) on into preallocated
 * space makes ext4 take the inode's lock, so io-wq; so that first block
 * goes alone, linked before the rest. The batch's last chunk carries the
 * sync, RWF_SYNC rather than RWF_DSYNC: a data sync of blocks already
 * written may be a FUA write of those blocks alone, and the earlier
 * chunks and first block would stay in the disk's cache; a full sync
 * always ends in a cache flush (or a journal commit after one), which
 * covers them, complete by then. At most 2 SQEs. 0 or -ENOMEM.
 */
static int submit_direct(struct wal_io *w, struct io_uring *ring, bool sync)
{
    size_t n = w->len - w->done < WAL_IO_DIRECT_CHUNK ? w->len - w->done : WAL_IO_DIRECT_CHUNK;
    if (w->done == 0) {
        w->batch_off = w->seg_off;
        w->batch_tail = w->tail;
        memcpy(w->batch_block, w->stage, w->tail);
    }
    if (stage(w, w->buf + w->done, n) < 0)
        return -ENOMEM;
    w->chunk = n;
    sync = sync && w->done + n == w->len;
    uint64_t at = w->seg_off - w->tail;
    size_t head = w->tail > 0 && w->stage_len > w->dio_align ? w->dio_align : 0;
    w->head_len = head;
    struct io_uring_sqe *sqe;
    if (head) {
        sqe = io_uring_get_sqe(ring);
        RM_ASSERT(sqe != NULL);
        io_uring_prep_write(sqe, w->fd, w->stage, (unsigned)head, at);
        sqe->flags |= IOSQE_IO_LINK;
        io_uring_sqe_set_data64(sqe, uring_ud(&w->tags[TAG_WRITE_HEAD], URING_OP_WAL));
        w->ops++;
    }
    sqe = io_uring_get_sqe(ring);
    RM_ASSERT(sqe != NULL);
    io_uring_prep_write(sqe, w->fd, w->stage + head, (unsigned)(w->stage_len - head), at + head);
    sqe->rw_flags = sync ? RWF_SYNC : 0;
    io_uring_sqe_set_data64(sqe, uring_ud(&w->tags[TAG_WRITE], URING_OP_WAL));
    w->ops++;
    w->write_syncs = sync;
    if (sync)
        w->sync_start_ns = mono_ns();
    return 0;
}

static void submit_batch(struct wal_io *w, struct io_uring *ring, uint64_t now_ms)
{
    RM_ASSERT(w->batch && w->done < w->len && w->ops == 0);
    /* A compaction's last batch is synced in any mode: the older segments go after it. */
    bool sync = w->cfg->fsync == CONFIG_FSYNC_ALWAYS || w->compact_flushing;
    /* Direct I/O syncs within the write; buffered, an fdatasync is linked after it. */
    bool linked = sync && !w->dio_align;
    if (io_uring_sq_space_left(ring) < 2)
        (void)io_uring_submit(ring);
    if (io_uring_sq_space_left(ring) < 2)
        return; /* the ring is full: the next flush tries again (ops is still 0) */
    w->ops = 0;
    w->write_res = w->sync_res = 0;
    w->sync_ok = false;
    w->write_syncs = false;
    if (w->dio_align) {
        if (submit_direct(w, ring, sync) < 0)
            batch_failed(w, "writing the log", -ENOMEM, now_ms);
    } else {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        RM_ASSERT(sqe != NULL);
        size_t n = w->len - w->done < WAL_IO_BUFFERED_MAX ? w->len - w->done : WAL_IO_BUFFERED_MAX;
        io_uring_prep_write(sqe, w->fd, w->buf + w->done, (unsigned)n, w->seg_off + w->done);
        io_uring_sqe_set_data64(sqe, uring_ud(&w->tags[TAG_WRITE], URING_OP_WAL));
        if (linked)
            sqe->flags |= IOSQE_IO_LINK;
        w->ops = 1;
    }
    if (linked) {
        struct io_uring_sqe *sync_sqe = io_uring_get_sqe(ring);
        RM_ASSERT(sync_sqe != NULL);
        io_uring_prep_fsync(sync_sqe, w->fd, IORING_FSYNC_DATASYNC);
        io_uring_sqe_set_data64(sync_sqe, uring_ud(&w->tags[TAG_SYNC], URING_OP_WAL));
        w->ops = 2;
        w->sync_start_ns = mono_ns();
    }
}

/* Delete this stream's segments older than the compacted one (retire_step()). */
static void compact_finish(struct wal_io *w, struct broker *b)
{
    bool repaired;

    if (!w->sync_ok) {
        LOG_WARN("persistence: shard %" PRIu32 ": the compaction's sync failed: %s", w->shard,
                 strerror(-w->sync_res));
        (void)broker_wal_compacted(b, false, &repaired);
        return; /* the old segments stay; the next compaction tries again */
    }
    if (!broker_wal_compacted(b, true, &repaired)) {
        LOG_WARN("persistence: shard %" PRIu32 ": the compaction's snapshot lost records to "
                 "allocation failure: the older segments stay, another compaction follows",
                 w->shard);
        return;
    }
    /* The older segments go one at a time through the ring (retire_step()). */
    if (w->retire_next == w->retire_end)
        w->retire_next = w->min_seq;
    w->retire_end = w->compact_seq;
    w->min_seq = w->compact_seq;
    w->stream_bytes = w->seg_off;
    w->snap_bytes = w->seg_off;
    w->stats.compactions++;
    LOG_INFO("persistence: shard %" PRIu32 ": compacted into segment %" PRIu32 " (%" PRIu64
             " bytes)",
             w->shard, w->compact_seq, w->seg_off);
    if (repaired)
        LOG_INFO("persistence: shard %" PRIu32 ": the log is whole again: acknowledgements "
                 "that promise durability go out again",
                 w->shard);
}

/* The batch is on disk (as far as this fsync mode promises): release what waited. */
static void batch_done(struct wal_io *w, struct broker *b, uint64_t now_ms)
{
    if (!w->dio_align)
        advance(w, w->len); /* direct I/O advanced chunk by chunk */
    w->stats.bytes += w->len;
    w->stats.writes++;
    if (w->cfg->fsync == CONFIG_FSYNC_INTERVAL) {
        if (w->unsynced == 0)
            w->sync_due_ms = now_ms + w->cfg->fsync_interval_ms;
        w->unsynced += w->len;
    }
    w->batch = false;
    w->buf = NULL;
    w->len = w->done = 0;
    if (w->failed) {
        LOG_INFO("persistence: shard %" PRIu32 ": log writes work again after %" PRIu64 " ms",
                 w->shard, now_ms - w->failed_since_ms);
        w->failed = false;
        w->fail_err = 0;
    }
    broker_wal_durable(b);
    if (w->compact_flushing) {
        w->compact_flushing = false;
        w->compacting = false;
        compact_finish(w, b);
    }
}

/*
 * @what (writing the log, beginning a segment) failed with @err: counted,
 * said once per condition, tried again in WAL_IO_RETRY_MS; until then
 * nothing more is taken, so nothing more is acknowledged.
 */
static void batch_failed(struct wal_io *w, const char *what, int err, uint64_t now_ms)
{
    w->stats.errors++;
    if (!w->failed || w->fail_err != err)
        LOG_ERROR("persistence: shard %" PRIu32 ": %s failed: %s; nothing more is "
                  "acknowledged until it works (retrying every %u ms)",
                  w->shard, what, strerror(-err), WAL_IO_RETRY_MS);
    if (!w->failed)
        w->failed_since_ms = now_ms;
    w->failed = true;
    w->fail_err = err;
    w->retry_at_ms = now_ms + WAL_IO_RETRY_MS;
}

static void rotate_done(struct wal_io *w, uint64_t *tag, int res);
static void retire_done(struct wal_io *w, int res);

/* Direct I/O: the batch goes again from its first chunk (its sync failed). */
static void rewind_batch(struct wal_io *w)
{
    w->stream_bytes -= w->seg_off - w->batch_off;
    w->seg_off = w->batch_off;
    w->tail = w->batch_tail;
    memcpy(w->stage, w->batch_block, w->batch_tail);
    w->done = 0;
}

/* The batch's sync (its linked fdatasync, or its direct write's) completed with @res. */
static void sync_done(struct wal_io *w, int res)
{
    w->sync_res = res;
    w->sync_ok = res == 0;
    if (res < 0)
        return;
    uint64_t ns = mono_ns() - w->sync_start_ns;
    uint64_t us = ns / 1000u;
    w->stats.syncs++;
    hist_record(&w->stats.sync_hist, ns);
    w->stats.sync_us_sum += us;
    if (us > w->stats.sync_us_max)
        w->stats.sync_us_max = us;
}

void wal_io_done(struct wal_io *w, struct broker *b, void *obj, int res, uint64_t now_ms)
{
    uint64_t *tag = obj;
    RM_ASSERT(tag >= w->tags && tag < w->tags + TAG_COUNT);
    if (tag >= &w->tags[TAG_ROT_OPEN] && tag <= &w->tags[TAG_ROT]) {
        rotate_done(w, tag, res);
        return;
    }
    if (tag == &w->tags[TAG_RETIRE]) {
        retire_done(w, res);
        return;
    }
    if (tag == &w->tags[TAG_TICK_SYNC]) {
        w->tick_syncing = false;
        if (res < 0) {
            batch_failed(w, "syncing the log", res, now_ms);
        } else {
            w->stats.syncs++;
            hist_record(&w->stats.sync_hist, mono_ns() - w->tick_sync_start_ns);
        }
        return;
    }
    RM_ASSERT(w->batch && w->ops > 0);
    if (tag == &w->tags[TAG_WRITE_HEAD] && res >= 0 && (size_t)res != w->head_len)
        res = -EIO; /* a short first block: never expected of a direct write */
    if (tag == &w->tags[TAG_WRITE] || tag == &w->tags[TAG_WRITE_HEAD]) {
        /* Bytes written, or the first failure (a failed head cancels the rest). */
        if (w->write_res >= 0)
            w->write_res = res < 0 ? res : w->write_res + res;
        if (tag == &w->tags[TAG_WRITE] && w->write_syncs)
            sync_done(w, res < 0 ? res : 0);
    } else {
        sync_done(w, res);
    }
    if (--w->ops > 0)
        return;
    if (w->dio_align && (w->write_res < 0 || (size_t)w->write_res != w->stage_len)) {
        /*
         * The chunk goes again, later (a short direct write is never
         * expected). A failed sync may have lost the batch's earlier chunks
         * from the disk's cache: then all of it goes again.
         */
        if (w->write_syncs)
            rewind_batch(w);
        batch_failed(w, "writing the log", w->write_res < 0 ? w->write_res : -EIO, now_ms);
        return;
    }
    if (w->write_res < 0) {
        batch_failed(w, "writing the log", w->write_res, now_ms);
        return;
    }
    if (w->dio_align) {
        advance(w, w->chunk);
        w->done += w->chunk;
        if (w->done < w->len)
            return; /* the next chunk at the next flush */
    } else {
        w->done += (size_t)w->write_res;
    }
    if (w->done < w->len) {
        /* Short (its linked sync was cancelled): the rest goes at the next flush. */
        if (w->write_res == 0)
            batch_failed(w, "writing the log", -EIO, now_ms);
        return;
    }
    if (w->cfg->fsync == CONFIG_FSYNC_ALWAYS && w->sync_res < 0) {
        /* After a failed fdatasync the page cache may have dropped it: write it all again. */
        RM_ASSERT(!w->dio_align); /* a direct write's sync fails as the write: rewind_batch() */
        w->done = 0;
        batch_failed(w, "syncing the log", w->sync_res, now_ms);
        return;
    }
    batch_done(w, b, now_ms);
}

/* An interval sync of the current segment through the ring (not blocking the shard). */
static void tick_sync(struct wal_io *w, struct io_uring *ring)
{
    struct io_uring_sqe *sqe = uring_get_sqe(ring);
    if (!sqe)
        return;
    io_uring_prep_fsync(sqe, w->fd, IORING_FSYNC_DATASYNC);
    io_uring_sqe_set_data64(sqe, uring_ud(&w->tags[TAG_TICK_SYNC], URING_OP_WAL));
    w->tick_syncing = true;
    w->tick_sync_start_ns = mono_ns();
    w->unsynced = 0;
}


/* Submit the rotation's next step; false when the ring has no room (tried again later). */
static bool rotate_submit(struct wal_io *w, struct io_uring *ring)
{
    if (w->rot == ROT_IDLE) {
        struct io_uring_sqe *sqe = uring_get_sqe(ring);
        if (!sqe)
            return false;
        wal_seg_name(w->rot_name, w->generation, w->shard, w->seq + 1);
        io_uring_prep_openat(sqe, w->dir_fd, w->rot_name, seg_flags(w), 0640);
        io_uring_sqe_set_data64(sqe, uring_ud(&w->tags[TAG_ROT_OPEN], URING_OP_WAL));
        w->rot = ROT_OPENING;
        return true;
    }
    RM_ASSERT(w->rot == ROT_OPENED);
    if (io_uring_sq_space_left(ring) < 4)
        (void)io_uring_submit(ring);
    if (io_uring_sq_space_left(ring) < 4)
        return false;
    w->rot_hdr.len = 0;
    seg_header(w, &w->rot_hdr, w->seq + 1);
    if (w->rot_hdr.nomem) {
        w->rot_res = -ENOMEM;
        w->rot = ROT_DONE;
        return true;
    }
    const uint8_t *hdr = w->rot_hdr.buf;
    w->rot_wlen = w->rot_hdr.len;
    w->rot_ops = 0;
    if (w->dio_align) {
        /* One whole block; the preallocation goes first, and the chain goes on if it fails. */
        RM_ASSERT(w->rot_hdr.len <= w->dio_align);
        memcpy(w->rot_block, hdr, w->rot_hdr.len);
        memset(w->rot_block + w->rot_hdr.len, 0, w->dio_align - w->rot_hdr.len);
        hdr = w->rot_block;
        w->rot_wlen = w->dio_align;
        struct io_uring_sqe *fa = io_uring_get_sqe(ring);
        RM_ASSERT(fa != NULL);
        io_uring_prep_fallocate(fa, w->rot_fd, 0, 0, (off_t)seg_bytes(w));
        fa->flags |= IOSQE_IO_HARDLINK;
        io_uring_sqe_set_data64(fa, uring_ud(&w->tags[TAG_ROT_ALLOC], URING_OP_WAL));
        w->rot_ops++;
    }
    /* Header, then its sync, then the directory's (the new name): one linked chain. */
    struct io_uring_sqe *wr = io_uring_get_sqe(ring);
    struct io_uring_sqe *fs = io_uring_get_sqe(ring);
    struct io_uring_sqe *ds = io_uring_get_sqe(ring);
    RM_ASSERT(wr != NULL && fs != NULL && ds != NULL);
    io_uring_prep_write(wr, w->rot_fd, hdr, (unsigned)w->rot_wlen, 0);
    io_uring_prep_fsync(fs, w->rot_fd, IORING_FSYNC_DATASYNC);
    io_uring_prep_fsync(ds, w->dir_fd, 0);
    wr->flags |= IOSQE_IO_LINK;
    fs->flags |= IOSQE_IO_LINK;
    uint64_t ud = uring_ud(&w->tags[TAG_ROT], URING_OP_WAL);
    io_uring_sqe_set_data64(wr, uring_ud(&w->tags[TAG_ROT_HDR], URING_OP_WAL));
    io_uring_sqe_set_data64(fs, ud);
    io_uring_sqe_set_data64(ds, ud);
    w->rot_ops += 3;
    w->rot = ROT_WRITING;
    return true;
}

/* A rotation step completed (TAG_ROT_OPEN to TAG_ROT). */
static void rotate_done(struct wal_io *w, uint64_t *tag, int res)
{
    if (tag == &w->tags[TAG_ROT_OPEN]) {
        RM_ASSERT(w->rot == ROT_OPENING);
        w->rot_fd = res;
        w->rot_res = res < 0 ? res : 0;
        w->rot = res < 0 ? ROT_DONE : ROT_OPENED;
        return;
    }
    RM_ASSERT(w->rot == ROT_WRITING && w->rot_ops > 0);
    if (tag == &w->tags[TAG_ROT_HDR] && res >= 0 && (size_t)res != w->rot_wlen)
        res = -EIO; /* a short header */
    /* A failed step cancels the rest of the chain; preallocation is best effort (preallocate()). */
    if (res < 0 && w->rot_res == 0 && tag != &w->tags[TAG_ROT_ALLOC])
        w->rot_res = res;
    if (--w->rot_ops == 0)
        w->rot = ROT_DONE;
}

/*
 * Close the current segment and begin the next, through the ring: the
 * shard never waits on the disk for it. With fsync = interval what the
 * old one holds is synced first. Returns 1 when the next segment is begun
 * (the batches go there from now on), 0 while that is under way (call
 * again later), or -errno (it failed; the next call starts over).
 */
static int rotate(struct wal_io *w, struct io_uring *ring)
{
    if (w->rot == ROT_IDLE && w->cfg->fsync == CONFIG_FSYNC_INTERVAL &&
        (w->unsynced > 0 || w->tick_syncing)) {
        if (!w->tick_syncing)
            tick_sync(w, ring);
        return 0;
    }
    if (w->rot == ROT_IDLE || w->rot == ROT_OPENED) {
        (void)rotate_submit(w, ring);
        return 0;
    }
    if (w->rot != ROT_DONE)
        return 0;
    w->rot = ROT_IDLE;
    if (w->rot_res < 0) {
        if (w->rot_fd >= 0)
            close(w->rot_fd);
        w->rot_fd = -1;
        return w->rot_res;
    }
    if (w->fd >= 0)
        close(w->fd);
    w->fd = w->rot_fd;
    w->rot_fd = -1;
    w->seq++;
    w->seg_off = 0;
    w->tail = 0;
    if (w->dio_align)
        memcpy(w->stage, w->rot_block, w->rot_hdr.len);
    advance(w, w->rot_hdr.len);
    return 1;
}

/*
 * Delete the segments a compaction left behind, one at a time through the
 * ring (an unlink of a large file may wait on the disk), then fsync the
 * directory so their names are gone for good. One operation in flight.
 */
static void retire_step(struct wal_io *w, struct io_uring *ring)
{
    if (w->retire_op != RETIRE_NONE)
        return;
    bool unlink = w->retire_next != w->retire_end;
    if (!unlink && !w->retire_dirty)
        return;
    struct io_uring_sqe *sqe = uring_get_sqe(ring);
    if (!sqe)
        return;
    if (unlink) {
        wal_seg_name(w->retire_name, w->generation, w->shard, w->retire_next);
        io_uring_prep_unlinkat(sqe, w->dir_fd, w->retire_name, 0);
        w->retire_op = RETIRE_UNLINK;
    } else {
        io_uring_prep_fsync(sqe, w->dir_fd, 0);
        w->retire_op = RETIRE_DIRSYNC;
        w->retire_dirty = false;
    }
    io_uring_sqe_set_data64(sqe, uring_ud(&w->tags[TAG_RETIRE], URING_OP_WAL));
}

static void retire_done(struct wal_io *w, int res)
{
    RM_ASSERT(w->retire_op != RETIRE_NONE);
    bool unlink = w->retire_op == RETIRE_UNLINK;
    w->retire_op = RETIRE_NONE;
    if (!unlink)
        return;
    if (res == 0)
        w->stats.segments_deleted++;
    else if (res != -ENOENT) /* it stays: replay reads it again, harmlessly */
        LOG_WARN("persistence: shard %" PRIu32 ": cannot delete segment %s: %s", w->shard,
                 w->retire_name, strerror(-res));
    w->retire_next++;
    w->retire_dirty = true;
}

/* Compaction, when due: a new segment, then the snapshot a few buckets per call. */
static void compact_step(struct wal_io *w, struct io_uring *ring, struct broker *b,
                         uint64_t now_ms)
{
    uint64_t ratio_bytes = w->snap_bytes * w->cfg->compact_ratio;
    /* The log lost what it promised: a snapshot begun after that repairs it (core/wal.h). */
    bool repair = broker_wal_repair_wanted(b);
    if (repair && !w->compacting)
        w->compact_requested = true; /* kept until one begins: the loop ticks meanwhile */
    bool grown = w->stream_bytes > ratio_bytes && w->stream_bytes > seg_bytes(w);
    if (!w->compacting && now_ms >= w->compact_retry_ms && (w->compact_requested || grown)) {
        int rc = rotate(w, ring);
        if (rc < 0) {
            /* The log goes on in the current segment; said once, tried again later. */
            w->stats.errors++;
            if (!w->compact_failed)
                LOG_WARN("persistence: shard %" PRIu32 ": cannot begin a segment to compact "
                         "into: %s (trying again every %u ms)",
                         w->shard, strerror(-rc), WAL_IO_RETRY_MS);
            w->compact_failed = true;
            w->compact_retry_ms = now_ms + WAL_IO_RETRY_MS;
            return;
        }
        if (rc == 0)
            return; /* tried again later */
        if (w->compact_failed)
            LOG_INFO("persistence: shard %" PRIu32 ": compacting again", w->shard);
        w->compact_failed = false;
        w->compact_requested = false;
        if (repair)
            LOG_WARN("persistence: shard %" PRIu32 ": the log lost what it promised to "
                     "allocation failure (%" PRIu64 " times so far): clients waiting on it are "
                     "closed, never acknowledged, until this compaction is durable",
                     w->shard, broker_wal_lost(b));
        w->compacting = true;
        w->compact_in_batch = false;
        w->compact_seq = w->seq;
        w->cursor = (struct broker_wal_cursor){0};
    }
    if (w->compacting && !w->compact_in_batch &&
        broker_wal_snapshot(b, &w->cursor, WAL_IO_SNAPSHOT_BUCKETS))
        w->compact_in_batch = true;
}

void wal_io_flush(struct wal_io *w, struct io_uring *ring, struct broker *b, uint64_t now_ms)
{
    if (w->failed && now_ms < w->retry_at_ms)
        return;
    if (w->batch) {
        if (w->ops == 0 && w->done < w->len)
            submit_batch(w, ring, now_ms); /* a retry, or the rest of a short write */
        return;
    }
    retire_step(w, ring);
    compact_step(w, ring, b, now_ms);
    if (w->seg_off >= seg_bytes(w) && !w->compacting) {
        int rc = rotate(w, ring);
        if (rc < 0)
            batch_failed(w, "beginning a new segment", rc, now_ms);
        if (rc <= 0)
            return;
    }
    const uint8_t *buf;
    size_t len;
    /* Nothing waits on a write without sync: fewer, larger ones cost less (io-wq). */
    bool gather = w->cfg->fsync != CONFIG_FSYNC_ALWAYS && !w->compacting &&
                  now_ms < w->taken_ms + WAL_IO_COALESCE_MS;
    if (!gather && broker_wal_take(b, &buf, &len)) {
        w->taken_ms = now_ms;
        w->batch = true;
        w->buf = buf;
        w->len = len;
        w->done = 0;
        if (w->compact_in_batch) {
            w->compact_in_batch = false;
            w->compact_flushing = true;
        }
        if (len == 0)
            batch_done(w, b, now_ms);
        else
            submit_batch(w, ring, now_ms);
        return;
    }
    if (w->cfg->fsync == CONFIG_FSYNC_INTERVAL && w->unsynced && now_ms >= w->sync_due_ms &&
        !w->tick_syncing)
        tick_sync(w, ring);
}

bool wal_io_busy(const struct wal_io *w, const struct broker *b)
{
    return w->batch || w->tick_syncing || w->rot == ROT_OPENING || w->rot == ROT_WRITING ||
           w->retire_op != RETIRE_NONE || broker_wal_pending(b);
}

bool wal_io_gathering(const struct wal_io *w, const struct broker *b)
{
    return w->cfg->fsync != CONFIG_FSYNC_ALWAYS && !w->batch && broker_wal_pending(b);
}

bool wal_io_needs_tick(const struct wal_io *w)
{
    return w->failed || w->unsynced > 0 || w->compacting || w->compact_requested ||
           w->rot != ROT_IDLE || w->retire_next != w->retire_end || w->retire_dirty;
}

void wal_io_compact(struct wal_io *w)
{
    if (!w->compacting)
        w->compact_requested = true;
}

const struct wal_io_stats *wal_io_stats(const struct wal_io *w)
{
    return &w->stats;
}

void wal_io_close(struct wal_io *w, struct broker *b)
{
    if (!w)
        return;
    const uint8_t *buf;
    size_t len;
    /* The loop has left: nothing is in flight any more (wal_io_busy() kept it running). */
    if (!w->batch && broker_wal_take(b, &buf, &len)) {
        int rc = write_end(w, buf, len);
        if (rc < 0)
            LOG_ERROR("persistence: shard %" PRIu32 ": last write: %s", w->shard, strerror(-rc));
        else
            broker_wal_durable(b);
    }
    if (w->fd >= 0 && fdatasync(w->fd) < 0)
        LOG_ERROR("persistence: shard %" PRIu32 ": last fdatasync: %s", w->shard,
                  strerror(errno));
    LOG_INFO("persistence: shard %" PRIu32 ": %" PRIu64 " bytes in %" PRIu64 " writes, %" PRIu64
             " syncs (mean %" PRIu64 " us, max %" PRIu64 " us), %" PRIu64 " errors, %" PRIu64
             " compactions, %" PRIu64 " promises lost to allocation failure",
             w->shard, w->stats.bytes, w->stats.writes, w->stats.syncs,
             w->stats.syncs ? w->stats.sync_us_sum / w->stats.syncs : 0, w->stats.sync_us_max,
             w->stats.errors, w->stats.compactions, broker_wal_lost(b));
    if (w->fd >= 0)
        close(w->fd);
    if (w->rot_fd >= 0)
        close(w->rot_fd); /* a segment begun but never used: replay reads its header only */
    wal_out_free(&w->rot_hdr);
    free(w->stage);
    free(w->rot_block);
    free(w->batch_block);
    free(w);
}
