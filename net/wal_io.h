/*
 * wal_io.h - each shard's write-ahead log: its writes and syncs through its
 * own ring, segment rotation, compaction, start-up replay and snapshot.
 *
 * The directory itself (its lock, seed and segment files, start-up and
 * retirement of old generations) is net/wal_dir.h's.
 *
 * Running (shard loop): once per iteration wal_io_flush() takes the
 * broker's open batch and writes it at the end of the current segment,
 * linked with fdatasync when fsync = always; broker_wal_durable() runs
 * when that completes, releasing the acknowledgements that waited. One
 * batch in flight per shard; records of later iterations group into the
 * next (group commit). A segment past segment_mb is closed and a new one
 * begun between batches, through the ring (opened, its header written and
 * synced, the directory synced: the shard never waits on the disk). When
 * the shard's segments outgrow compact_ratio times the last snapshot (or
 * on SIGUSR1: wal_io_compact()), a new
 * segment starts with a snapshot written a bounded number of session
 * buckets per iteration; once it is durable the older segments are
 * unlinked, one at a time through the ring.
 *
 * With fsync = always, where the file system takes direct I/O (it
 * reports STATX_DIOALIGN: ext4, xfs; not tmpfs), segments are opened
 * O_DIRECT and preallocated to segment_mb (fallocate), and each batch is
 * written as whole blocks from the start of the segment's last partial
 * block (its bytes kept in memory and written again, identical, with the
 * batch after them, zeros after that), in chunks of at most
 * WAL_IO_DIRECT_CHUNK: the ring takes such a write to the disk itself,
 * with no io-wq thread between, and the batch's last write carries its
 * sync (RWF_SYNC) instead of a linked fdatasync. The never-written rest of
 * a segment reads as zeros, the segment's end (core/wal_format.h), and is
 * a hole that replay does not read (net/wal_dir.c, struct wal_seg's data). Elsewhere, and with
 * fsync = interval or off (nothing waits for their writes, which the page
 * cache makes safe from a kill -9 at once), writes are buffered.
 *
 * A write or sync error stops the acknowledgements (the batch is retried
 * every WAL_IO_RETRY_MS, the clients wait), is logged once per condition
 * and counted; the broker never pretends. At stop, wal_io_close() writes
 * and syncs what is left.
 *
 * THREADING: a struct wal_io belongs to its shard.
 */
#ifndef RINGMQ_WAL_IO_H
#define RINGMQ_WAL_IO_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/hist.h"

struct broker;
struct wal_dir;
struct wal_io;

/* A failed batch is written again this often. */
#define WAL_IO_RETRY_MS 1000u
/*
 * Without fsync = always nothing waits on a write, so a batch is taken at
 * most this often: fewer, larger writes (each is an io-wq hand-off in the
 * kernel). What a kill -9 can lose grows by as much.
 */
#define WAL_IO_COALESCE_MS 1u
/* Direct I/O blocks larger than this are not used (the log writes buffered). */
#define WAL_IO_DIO_ALIGN_MAX 65536u
/* A batch's bytes in one buffered write, at most (a write's length is 32 bits). */
#define WAL_IO_BUFFERED_MAX ((size_t)1 << 30)
/* A batch's bytes in one direct write, at most: bounds the staging buffer. */
#define WAL_IO_DIRECT_CHUNK ((size_t)1 << 20)
/* Session buckets a compaction snapshots per loop iteration. */
#define WAL_IO_SNAPSHOT_BUCKETS 64u

/* What one shard's log did (logged at exit; metrics read it). */
struct wal_io_stats {
    uint64_t bytes;        /* written */
    uint64_t writes;       /* batches written */
    uint64_t syncs;        /* fdatasyncs completed */
    uint64_t sync_us_sum;  /* their total latency, microseconds */
    uint64_t sync_us_max;
    uint64_t errors;       /* failed writes or syncs */
    uint64_t compactions;
    uint64_t segments_deleted;
    struct hist sync_hist; /* every completed fdatasync's latency (/metrics) */
};

/*
 * Shard @shard of @shard_count, while it is built: replay @d into @b (its
 * clock set to @now_ms, the loop's monotonic clock), start @b's log, write
 * and sync its snapshot as the new generation's first segment. Returns 0
 * and *@out, or -errno (logged).
 * Blocking: start-up only.
 */
int wal_io_start(struct wal_io **out, const struct wal_dir *d, const struct config_wal *cfg,
                 uint32_t shard, uint32_t shard_count, struct broker *b, uint64_t now_ms);

/*
 * Once per loop iteration (end): submit the open batch if none is in
 * flight, a due interval sync, the next compaction step. @now_ms: the
 * loop's clock.
 */
void wal_io_flush(struct wal_io *w, struct io_uring *ring, struct broker *b, uint64_t now_ms);

/* A completion whose user_data op is URING_OP_WAL (@obj: its object). */
void wal_io_done(struct wal_io *w, struct broker *b, void *obj, int res, uint64_t now_ms);

/* True while a write or sync is in flight, or records wait to be written. */
bool wal_io_busy(const struct wal_io *w, const struct broker *b);

/* Start a compaction now (SIGUSR1), unless one is under way. */
void wal_io_compact(struct wal_io *w);

/* True when the loop should not sleep long: a retry or an interval sync is due. */
bool wal_io_needs_tick(const struct wal_io *w);

/* True when records wait to be written (WAL_IO_COALESCE_MS): wake within that. */
bool wal_io_gathering(const struct wal_io *w, const struct broker *b);

const struct wal_io_stats *wal_io_stats(const struct wal_io *w);

/*
 * After the loop: write and sync what is left (blocking), close the
 * segment, free. NULL is a no-op.
 */
void wal_io_close(struct wal_io *w, struct broker *b);

#endif
