/*
 * wal_replay.h - rebuilding a shard's broker from write-ahead log segments
 * at start-up.
 *
 * Every shard reads every segment (they are few and read-only by then) and
 * takes what is its own under today's shard count: the sessions whose
 * client id it homes, with their subscriptions, kept messages and inbound
 * QoS 2 ids. So a changed shard count re-homes everything without a
 * conversion step. From the same records every shard also learns, before
 * any listener serves, what it would otherwise hear from the others over
 * the cross-shard queues after the loops start: the other shards' sessions'
 * filters (their interest: xrecv_interest()) and every retained message
 * (its replica: replica_restore()). A publish in the first packets after a
 * restart so reaches every restored subscriber, and a SUBSCRIBE sees every
 * restored retained message.
 *
 * Segments are given in log order: by generation (one per start-up), then
 * shard, then sequence. A record that fails its checksum is a torn tail
 * at the end of its stream's last segment (replay of that segment stops
 * there), anywhere else corruption: reported, skipped to the next good
 * record, never trusted.
 *
 * Calls session, sess_table, deadline, give, replica, xrecv, share, outbox, msg. Owned by the
 * shard being rebuilt, before its loop runs; the segments are shared
 * read-only.
 */
#ifndef RINGMQ_WAL_REPLAY_H
#define RINGMQ_WAL_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;

/* One segment file's bytes (borrowed until wal_replay() returns). */
struct wal_seg {
    const uint8_t *buf;
    size_t len;
    const char *name; /* for reports */
    bool last;        /* the last segment of its shard's stream */
    /*
     * Where the file's last data ends (<= len; len when it has no hole at
     * its end): past it, a hole, so zeros (a preallocated segment's
     * unwritten rest), read only where a record runs into it (one whose
     * own zeros became the hole in a sparse copy).
     */
    size_t data;
};

/* What a replay found (this shard's share of it, and the problems it saw). */
struct wal_replay_report {
    uint64_t records;     /* good records read, all shards' */
    uint64_t bad;         /* corrupt records skipped (not at a torn tail) */
    uint64_t torn_bytes;  /* bytes after the last good record of torn segments */
    uint64_t skipped_bytes; /* bytes of corrupt records skipped */
    uint64_t sessions;    /* sessions rebuilt here */
    uint64_t messages;    /* kept messages rebuilt here */
    uint64_t retained;    /* retained messages restored from here */
    uint64_t dropped;     /* kept messages not restored: expired, queue full, no memory */
};

/* Told about each problem: segment @name, byte offset @off, what (a phrase). */
typedef void (*wal_replay_problem_fn)(void *ctx, const char *name, size_t off, const char *what);

/*
 * Rebuild @b (no sessions yet, its loop not running) from @segs[0..@n).
 * @wall_offset_ms: wall-clock ms minus b->now_ms (expiry is logged in wall
 * time). Problems go to @problem (may be NULL). Returns 0, -ENOMEM, or
 * -EPROTONOSUPPORT for a segment of a later log version (WAL_VERSION)
 * (what was rebuilt stays; the caller gives up starting).
 */
int wal_replay(struct broker *b, const struct wal_seg *segs, size_t n, int64_t wall_offset_ms,
               wal_replay_problem_fn problem, void *ctx, struct wal_replay_report *rep);

#endif
