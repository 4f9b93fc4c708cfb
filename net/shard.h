/*
 * shard.h - one shard: its io_uring loop and everything it owns.
 *
 * A shard owns its ring, its provided buffer ring, its listener sockets,
 * its connections, its timer wheel and its struct broker (sessions, trie,
 * retained store). For now there is one shard, run on the main thread; with
 * issue 3 each shard becomes a pinned thread and the fields below stay
 * private to it (nothing here is reachable from another shard).
 *
 * shard_run() loops: submit and wait (io_uring_submit_and_wait_timeout, with
 * a TIMER_TICK_MS timeout while any deadline is pending so ticks happen
 * without traffic), reap the CQE batch (io_uring_for_each_cqe, one dispatch
 * switch on the user_data op kind, io_uring_cq_advance), then the
 * end-of-iteration work: expire timers, drain the broker's dirty clients
 * (one send per connection per iteration), re-arm listeners, re-arm recvs
 * that ran out of buffers, free closed conns. The clock (CLOCK_MONOTONIC,
 * ms) is read once per iteration.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked (shard_signals_block(),
 * before any thread starts) and read from a signalfd polled through the
 * ring (multishot poll, then a non-blocking read(2): signalfd's read honours
 * only O_NONBLOCK, not the ring's non-blocking attempt, so a ring read would
 * be handed to an io-wq worker thread; polling keeps the work on the shard
 * thread). SIGINT/SIGTERM
 * start a graceful stop: stop accepting, close every connection flushing
 * its output (bounded by SHARD_STOP_LINGER_MS; a second signal aborts the
 * flushes at once), wait for every operation to complete, return 0.
 * SIGHUP logs "reload not implemented yet" for now. SIGPIPE is ignored.
 */
#ifndef RINGMQ_SHARD_H
#define RINGMQ_SHARD_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "net/bufring.h"
#include "net/listener.h"
#include "net/timer.h"

struct broker;
struct conn;

#define SHARD_STOP_LINGER_MS 2000u /* graceful stop: flushes may take this long */
#define SHARD_STOP_FORCE_MS 3000u  /* then operations get this long to finish */
#define SHARD_CQES_PER_ITER_MAX 4096u
#define SHARD_DIRTY_PER_ITER_MAX 65536u
#define SHARD_TIMERS_PER_ITER_MAX 65536u
#define SHARD_SIGNALS_PER_WAKE_MAX 16u
#define SHARD_LOG_INTERVAL_MS 1000u /* rate limit of per-event warnings */

struct shard_stats {
    uint64_t conns_accepted;
    uint64_t conns_refused; /* closed at accept: limit, stopping, out of memory */
    uint64_t conns_failed;  /* allocation or setup failure (also refused) */
    uint64_t conns_closed;
    uint64_t connect_timeouts;
    uint64_t keepalive_timeouts;
    uint64_t linger_timeouts; /* flush on close did not finish in time */
    uint64_t recv_nobufs;     /* multishot recv ended by an empty buffer ring */
};

struct shard {
    const struct config *cfg; /* borrowed, read-only snapshot */
    uint32_t id;
    uint32_t conn_max; /* effective connections_max */
    uint64_t now_ms;   /* CLOCK_MONOTONIC, read once per iteration */

    struct io_uring ring;
    bool ring_ready;
    struct bufring bufring;
    struct broker *broker;
    struct timer_wheel timers;

    struct listener listeners[CONFIG_LISTENERS_MAX];
    uint32_t listener_count;

    struct conn *conns; /* live conns (not yet finalised) */
    uint32_t conn_count;
    struct conn *work; /* end-of-iteration work list */

    int signal_fd;
    bool signal_armed;
    bool signal_cancel_sent;

    bool stopping;
    bool stop_aborted; /* flushes abandoned */
    bool more_work;    /* a per-iteration bound was hit: do not sleep */
    uint64_t stop_at_ms;

    uint64_t refuse_log_at_ms;
    uint32_t refused_quiet;
    struct shard_stats stats;
};

/*
 * Block SIGINT, SIGTERM and SIGHUP in the calling thread (threads created
 * later inherit the mask) and ignore SIGPIPE. Call once at start-up before
 * any thread exists. Returns 0 or a negative errno.
 */
int shard_signals_block(void);

/*
 * Build shard @id for @cfg (borrowed; must outlive the shard): ring, buffer
 * ring, broker, listeners (each logs its address), signalfd. At most
 * @conn_max connections are kept open at once. Returns NULL after logging
 * the cause at ERROR.
 */
struct shard *shard_new(const struct config *cfg, uint32_t id, uint32_t conn_max);

/*
 * Run the loop until a graceful stop completes. Returns 0, or a negative
 * errno if the ring failed (logged).
 */
int shard_run(struct shard *s);

/* Free everything the shard owns (after shard_run() or a failed start). */
void shard_free(struct shard *s);

/* Put @c on the end-of-iteration work list (idempotent). For net/conn. */
void shard__work_push(struct shard *s, struct conn *c);

#endif
