/*
 * shard_types.h - struct shard, the state one shard's thread owns, and
 * its bounds. net/shard.c runs the loop over it; net/conn.c, which the
 * loop calls, reads and writes the connection lists in it (see the
 * fields' comments). Nothing in it is reachable from another shard.
 *
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_SHARD_TYPES_H
#define RINGMQ_SHARD_TYPES_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/xmsg.h"
#include "net/bufring.h"
#include "net/listener.h"
#include "net/timer.h"
#include "net/xport.h"

struct admit;
struct board;
struct obs;
struct broker;
struct live;
struct live_owner;
struct conn;
struct tls_ctx;
struct xshard;

#define SHARD_STOP_LINGER_MS 2000u /* graceful stop: flushes may take this long */
#define SHARD_STOP_FORCE_MS 3000u  /* then operations get this long to finish */
#define SHARD_CQES_PER_ITER_MAX 4096u
#define SHARD_DIRTY_PER_ITER_MAX 65536u
#define SHARD_TIMERS_PER_ITER_MAX 65536u
#define SHARD_SIGNALS_PER_WAKE_MAX 16u
#define SHARD_LOG_INTERVAL_MS 1000u      /* rate limit of per-event warnings */
#define SHARD_OUTBOX_PER_ITER_MAX 65536u /* broker outbox messages moved per iteration */
#define SHARD_HANDSHAKES_PER_ITER_MAX 16u /* TLS handshake steps per iteration (net/conn) */

struct shard_stats {
    uint64_t conns_accepted;
    uint64_t conns_refused; /* closed at accept: any limit, stopping, out of memory */
    uint64_t refused_memory;  /* ... of which near memory_max */
    uint64_t refused_address; /* ... of which over connections_per_address_max */
    uint64_t refused_rate;    /* ... of which over accept_rate_max */
    uint64_t conns_failed;  /* allocation or setup failure (also refused) */
    uint64_t conns_closed;
    uint64_t connect_timeouts;
    uint64_t keepalive_timeouts;
    uint64_t linger_timeouts;  /* flush on close did not finish in time */
    uint64_t recv_nobufs;      /* multishot recv ended by an empty buffer ring */
    uint64_t recv_paused;      /* held clients no longer read (broker_client_backlogged()) */
    uint64_t handoffs_out;     /* connections handed to their home shard */
    uint64_t handoffs_in;      /* connections taken from another shard */
    uint64_t handoffs_refused; /* taken while stopping or over the limit: closed */
    uint64_t handoffs_failed;  /* could not be handed over (allocation): closed */
    uint64_t handshakes_deferred; /* TLS handshake input held past an iteration's budget */
    uint64_t bytes_in;            /* bytes read from client sockets (after TLS: on the wire) */
    uint64_t bytes_out;           /* bytes written to client sockets */
    uint64_t busy_ns;             /* loop time outside the ring wait */
    uint64_t wait_ns;             /* loop time inside it (asleep or not) */
    uint64_t iterations;          /* loop iterations */
    uint64_t accepted_by_listener[CONFIG_LISTENERS_MAX]; /* conns_accepted, by listener */
};

struct shard {
    const struct config *cfg; /* borrowed, read-only snapshot */
    uint32_t id;
    uint32_t shard_count;
    uint64_t now_ms;   /* CLOCK_MONOTONIC, read once per iteration */

    struct io_uring ring;
    bool ring_ready;
    struct bufring bufring;
    struct broker *broker;
    struct timer_wheel timers;
    struct xshard *xshard; /* borrowed: the shared matrix (THREADING in net/xshard.h) */
    struct admit *admit;   /* borrowed: process-wide admission (THREADING in net/admit.h) */
    bool memory_pressure;  /* what this shard's broker was last told */

    /* An outbox message the overflow could not take (ENOMEM): sent first next time. */
    struct xmsg outbox_held;
    uint32_t outbox_held_dest;
    bool outbox_held_valid;
    /* Links the broker was told are congested (broker_set_congested()), and how many. */
    uint64_t congested_bits[LIMITS_SHARDS_MAX / 64];
    uint32_t congested_told;

    /* Shard-wide stop being sent: XMSG_SHUTDOWN to shards [next, count), then aborts. */
    uint32_t shutdown_next;
    uint32_t abort_next;

    /*
     * Reload (net/live.h). Every shard: the snapshot it uses (its broker's
     * login snapshot and its listeners' TLS contexts come from it), and an
     * XMSG_RELOAD_DONE still to send to shard 0 (NULL: none). Shard 0: the
     * owner of the snapshots, XMSG_RELOAD still to send to shards
     * [reload_next, count), the answers still due, and a SIGHUP that came
     * while a reload was being handed out.
     */
    const struct live *live;
    const struct live *reload_ack;
    struct live_owner *owner; /* shard 0 only; NULL elsewhere */
    uint32_t reload_next;
    uint32_t reload_acks_due;
    bool reload_again;

    struct listener listeners[CONFIG_LISTENERS_MAX];
    uint32_t listener_count;

    /*
     * Written by net/conn.c (which net/shard.c calls, never the reverse):
     * live conns, dead ones to free at the end of the iteration, and TLS
     * handshakes - this iteration's budget, and conns whose input waits
     * for one. net/shard.c walks them, resets the budget each iteration,
     * drains the work list and frees the arrays.
     */
    struct conn *conns; /* live conns (not yet finalised) */
    uint32_t conn_count;
    struct conn *work; /* end-of-iteration work list */
    uint32_t handshakes_left;
    struct conn **deferred; /* FIFO; a conn is on it while CONN_F_DEFERRED */
    uint32_t deferred_count;
    uint32_t deferred_cap;

    int signal_fd;
    bool signal_armed;
    bool signal_cancel_sent;

    bool stopping;
    bool stop_aborted; /* flushes abandoned */
    bool more_work;    /* a per-iteration bound was hit: do not sleep */
    uint64_t stop_at_ms;

    uint64_t refuse_log_at_ms;
    uint32_t refused_quiet;
    struct wal_io *wal; /* the write-ahead log's writer; NULL without persistence */
    struct shard_stats stats;
    struct xport_stats xport_stats;
    struct xport_naps xport_naps; /* TLS connections awake, least recently used first */

    /*
     * Observability (net/obs.h): where this shard publishes its counters
     * (borrowed; THREADING in net/board.h) and when it last did, the clock
     * (ns) at the end of the last wait; on shard 0 only, the $SYS and
     * /metrics services (NULL elsewhere and when off).
     */
    struct board *board;
    uint64_t board_at_ms;
    uint64_t loop_at_ns;
    struct obs *obs;
    uint8_t *xport_scratch; /* XPORT_SCRATCH_BYTES of TLS plaintext; NULL without TLS */
};

#endif
