/*
 * board.h - the counter board: every shard's latest counters, where any
 * thread may read them, without locks.
 *
 * Each shard owns one slot (cache-line aligned, so no two shards write one
 * line) and is its only writer: now and then (net/obs.h decides when) it
 * copies its counters - its broker's, its own, its transports', its
 * cross-shard links', its loop times, its WAL's fsync histogram - into a
 * struct board_snap and stores it into the slot word by word with relaxed
 * atomic stores. A reader (shard 0's $SYS and /metrics, any thread) loads
 * each word with relaxed loads and sums the shards. The hot path does not
 * change: counters stay plain increments in state the shard owns, and the
 * board costs one copy of about 1.5 KiB per shard per publication.
 *
 * A snapshot read while its writer stores may mix two publications field
 * by field (never within a word). Counters only grow, so a reader never
 * sees one fall between two reads of the same shard; a sum across fields
 * (say in and out) may be one publication apart.
 *
 * THREADING: slot i is written by shard i only and read by any thread;
 * board_new()/board_free() run while no shard runs.
 */
#ifndef RINGMQ_BOARD_H
#define RINGMQ_BOARD_H

#include <stdint.h>

#include "core/broker_stats.h"
#include "core/hist.h"
#include "net/shard_types.h"
#include "net/xport.h"
#include "net/xshard.h"

/* One shard's counters at one moment: only uint64_t-sized words (asserted). */
struct board_snap {
    uint64_t at_ms;         /* the shard's clock (CLOCK_MONOTONIC ms) when taken */
    uint64_t subscriptions; /* broker_subscription_count() */
    uint64_t retained;      /* broker_retained_count() */
    uint64_t xshard_waiting; /* xshard_waiting(): sent, not yet taken by the other shard */
    uint64_t conns_open;    /* live connections (any state) */
    struct broker_stats broker;
    struct shard_stats shard;
    struct xport_stats xport;
    struct xshard_stats xshard;
    struct hist wal_fsync;
};

_Static_assert(sizeof(struct board_snap) % sizeof(uint64_t) == 0,
               "a snapshot is copied in 64-bit words");

struct board;

/* A board of @shard_count slots, all zero. NULL on ENOMEM. Start-up. */
struct board *board_new(uint32_t shard_count);

/* Free @b (NULL: nothing) once no shard runs. */
void board_free(struct board *b);

/* Shard @s->id only: take @s's counters and store them into its slot. */
void board_publish(struct board *b, const struct shard *s);

/* Shard @id only: store @snap (borrowed) into its slot (board_publish() does it; tests too). */
void board_store(struct board *b, uint32_t id, const struct board_snap *snap);

/* Any thread: load shard @id's last snapshot into @out (zero before its first). */
void board_read(const struct board *b, uint32_t id, struct board_snap *out);

/*
 * Any thread: every shard's last snapshot summed into @out, field by field
 * (every field is a counter or a gauge that adds up; the two 32-bit gauges
 * that share a word, sessions and clients, add without carrying since
 * neither passes 2^32 in all); at_ms is the latest shard's and retained
 * the largest replica's (each shard holds a replica of the same set).
 */
void board_sum(const struct board *b, struct board_snap *out);

/* Any thread: the number of slots. */
uint32_t board_shard_count(const struct board *b);

#endif
