/*
 * shard.h - one shard: its io_uring loop and everything it owns.
 *
 * ringmq runs N shards (config [broker] shards; net/main.c starts them),
 * each a thread pinned to one CPU. A shard owns its ring, its provided
 * buffer ring, its SO_REUSEPORT socket of every listener, its connections,
 * its timer wheel and its struct broker (the sessions homed on it, its trie
 * and interest map, its retained replica). Nothing in struct shard is
 * reachable from another shard: shards talk only through net/xshard (SPSC
 * rings plus an IORING_OP_MSG_RING doorbell).
 *
 * shard_run() loops: announce the sleep to net/xshard and re-check the
 * inbound rings (xshard_sleep_prepare), submit and wait
 * (io_uring_submit_and_wait_timeout, with a TIMER_TICK_MS timeout while any
 * deadline is pending so ticks happen without traffic, XSHARD_RETRY_NS while
 * an overflow waits, 0 when a bound left work over or a message already
 * waits), drain the inbound rings (xshard_receive: routing kinds go to
 * broker_xmsg_receive(), connection handoffs to conn_adopt(), XMSG_SHUTDOWN
 * stops the shard), reap the CQE batch (io_uring_for_each_cqe, one dispatch
 * switch on the user_data op kind, io_uring_cq_advance), then the
 * end-of-iteration work: expire timers, drain the broker's dirty clients
 * (one send per connection per iteration), re-arm listeners, free closed
 * conns, and last move the broker's
 * cross-shard outbox into the rings and publish them, ringing the doorbells
 * due (xshard_flush). The clock (CLOCK_MONOTONIC, ms) is read once per
 * iteration.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are blocked (shard_signals_block(),
 * before any thread starts). Shard 0 alone reads them from a signalfd polled
 * through its ring (multishot poll, then a non-blocking read(2): signalfd's
 * read honours only O_NONBLOCK, not the ring's non-blocking attempt, so a
 * ring read would be handed to an io-wq worker thread; polling keeps the
 * work on the shard thread). SIGINT/SIGTERM start a graceful stop of every
 * shard: shard 0 stops and sends XMSG_SHUTDOWN to each other shard; each then
 * stops accepting, closes every connection flushing its output (bounded by
 * SHARD_STOP_LINGER_MS; a second signal sends XMSG_SHUTDOWN with arg 1, which
 * aborts the flushes at once), waits for every operation to complete, makes
 * sure everything it still had to send to a running shard left its
 * overflow, and returns 0. SIGHUP logs "reload not implemented yet" for now.
 * SIGPIPE is ignored. A shard other than 0 whose ring fails raises SIGTERM
 * so that shard 0 stops the rest.
 *
 * Threads: shard_new() must run on the thread that will run shard_run()
 * (the ring is set up IORING_SETUP_SINGLE_ISSUER, and the kernel binds it
 * to the creating thread); shard_free() runs on any thread once every shard
 * has left its loop.
 */
#ifndef RINGMQ_SHARD_H
#define RINGMQ_SHARD_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "core/xmsg.h"
#include "net/bufring.h"
#include "net/listener.h"
#include "net/timer.h"
#include "net/xport.h"

struct broker;
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
    uint64_t conns_refused; /* closed at accept: limit, stopping, out of memory */
    uint64_t conns_failed;  /* allocation or setup failure (also refused) */
    uint64_t conns_closed;
    uint64_t connect_timeouts;
    uint64_t keepalive_timeouts;
    uint64_t linger_timeouts;  /* flush on close did not finish in time */
    uint64_t recv_nobufs;      /* multishot recv ended by an empty buffer ring */
    uint64_t handoffs_out;     /* connections handed to their home shard */
    uint64_t handoffs_in;      /* connections taken from another shard */
    uint64_t handoffs_refused; /* taken while stopping or over the limit: closed */
    uint64_t handoffs_failed;  /* could not be handed over (allocation): closed */
    uint64_t handshakes_deferred; /* TLS handshake input held past an iteration's budget */
};

struct shard {
    const struct config *cfg; /* borrowed, read-only snapshot */
    uint32_t id;
    uint32_t shard_count;
    uint32_t conn_max; /* connections_max, counted process-wide in xshard */
    uint64_t now_ms;   /* CLOCK_MONOTONIC, read once per iteration */

    struct io_uring ring;
    bool ring_ready;
    struct bufring bufring;
    struct broker *broker;
    struct timer_wheel timers;
    struct xshard *xshard; /* borrowed: the shared matrix (THREADING in net/xshard.h) */

    /* An outbox message the overflow could not take (ENOMEM): sent first next time. */
    struct xmsg outbox_held;
    uint32_t outbox_held_dest;
    bool outbox_held_valid;

    /* Shard-wide stop being sent: XMSG_SHUTDOWN to shards [next, count), then aborts. */
    uint32_t shutdown_next;
    uint32_t abort_next;

    struct listener listeners[CONFIG_LISTENERS_MAX];
    uint32_t listener_count;

    struct conn *conns; /* live conns (not yet finalised) */
    uint32_t conn_count;
    struct conn *work; /* end-of-iteration work list */
    /* TLS handshakes: this iteration's budget, and conns whose input waits for one. */
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
    struct shard_stats stats;
    struct xport_stats xport_stats;
    uint8_t *xport_scratch; /* XPORT_SCRATCH_BYTES of TLS plaintext; NULL without TLS */
};

/*
 * Block SIGINT, SIGTERM and SIGHUP in the calling thread (threads created
 * later inherit the mask) and ignore SIGPIPE. Call once at start-up before
 * any thread exists. Returns 0 or a negative errno.
 */
int shard_signals_block(void);

/*
 * Build shard @id of @shard_count for @cfg (borrowed; must outlive the
 * shard), on the thread that will run it: ring (its fd registered with @xshard
 * as the doorbell target), buffer ring, broker, one socket per listener,
 * and for shard 0 the signalfd. @ports is NULL for shard 0, which binds the
 * configured ports and logs each listener's address; the other shards get
 * the ports shard 0 bound (@ports[i] for cfg->listeners[i]). @tls[i] is
 * listener i's TLS context (NULL without TLS; borrowed, process-wide,
 * read-only, must outlive the shard). At most
 * @conn_max connections are kept open at once in the whole process (counted
 * in @xshard; admitted by the accepting shard). @xshard is
 * borrowed and must outlive the shard. Returns NULL after logging the cause
 * at ERROR.
 */
struct shard *shard_new(const struct config *cfg, struct tls_ctx *const *tls, uint32_t id,
                        uint32_t shard_count, uint32_t conn_max, struct xshard *xshard,
                        const uint16_t *ports);

/*
 * Run the loop until a graceful stop completes. Returns 0, or a negative
 * errno if the ring failed or the stop timed out (logged). On its way out
 * it tells net/xshard that this shard's loop has ended.
 */
int shard_run(struct shard *s);

/*
 * Free everything the shard owns (after shard_run() or a failed start), on
 * any thread, once no shard runs any more (other shards may still name this
 * shard's ring as a doorbell target until they have stopped).
 */
void shard_free(struct shard *s);

/* Put dead @c on the end-of-iteration work list, to be freed (idempotent). For net/conn. */
void shard__work_push(struct shard *s, struct conn *c);

/* Append @c to the deferred handshakes (net/conn sets CONN_F_DEFERRED). 0 or -ENOMEM. */
int shard__defer_push(struct shard *s, struct conn *c);

/* Take @c off the deferred handshakes (it closed). */
void shard__defer_remove(struct shard *s, struct conn *c);

#endif
