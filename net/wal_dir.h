/*
 * wal_dir.h - the write-ahead log's directory: its lock, its seed, the
 * segment files found at start-up, and the older generations retired once
 * every shard has its snapshot.
 *
 * Layout of [persistence] dir:
 *
 *   lock                             flock()ed by the running broker
 *   seed                             8 random bytes drawn once: the shared
 *                                    groups' key seed, so that the keys the
 *                                    log holds mean the same after a restart
 *   GGGGGGGG-SSS-QQQQQQQQQQ.wal      a segment: generation (hex, one per
 *                                    start-up), shard, sequence
 *
 * Start-up (main thread): wal_dir_open() takes the lock, maps every
 * segment and picks the new generation. Each shard, while it is built
 * (wal_io_start()), replays every segment into its broker
 * (core/wal_replay.h), writes a snapshot of what it now holds as segment
 * 0 of the new generation, synced. Once every shard has done so,
 * wal_dir_retire() deletes the older generations: a crash at any point
 * leaves either the old segments or the new snapshot complete (replaying
 * both is harmless: a snapshot resets what it names).
 *
 * THREADING: a struct wal_dir is written by the main thread before the
 * shards run and read-only while they are built (net/wal_io.h reads it).
 */
#ifndef RINGMQ_WAL_DIR_H
#define RINGMQ_WAL_DIR_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/wal_replay.h"

/* A segment's file name "GGGGGGGG-SSS-QQQQQQQQQQ.wal" and its NUL. */
#define WAL_SEG_NAME_MAX 32u

/* Most segment files a directory may hold at start-up (a bound on the listing). */
#define WAL_DIR_FILES_MAX 65536u

struct seg_file {
    char name[WAL_SEG_NAME_MAX];
    uint32_t gen;
    uint32_t shard;
    uint32_t seq;
    uint8_t *map; /* NULL for an empty file */
    size_t len;
    size_t data; /* where its last data ends (struct wal_seg) */
};

struct wal_dir {
    char path[CONFIG_PATH_MAX];
    int dir_fd;
    int lock_fd;
    uint32_t generation; /* this start-up's */
    uint64_t seed;       /* the file "seed" */
    struct seg_file *files;
    size_t count;
    struct wal_seg *segs; /* the files in log order, for replay */
    char (*names)[CONFIG_PATH_MAX + WAL_SEG_NAME_MAX];
};

/* The name of segment @seq of shard @shard's stream in generation @gen, into @out. */
void wal_seg_name(char *out, uint32_t gen, uint32_t shard, uint32_t seq);

/*
 * Lock @cfg->dir (made if missing), map its segments and choose the new
 * generation. Returns 0 and *@out, or -errno with the reason logged (a
 * second ringmq on the same dir is refused, naming the holder's pid).
 */
int wal_dir_open(const struct config_wal *cfg, struct wal_dir **out);

/* The shared groups' key seed kept in @d (limits.share_key_seed). */
uint64_t wal_dir_seed(const struct wal_dir *d);

/*
 * Every shard has written its start-up snapshot: delete the older
 * generations' segments and unmap them. Main thread, once.
 */
void wal_dir_retire(struct wal_dir *d);

/* Unlock and free (after every shard stopped). NULL is a no-op. */
void wal_dir_close(struct wal_dir *d);

#endif
