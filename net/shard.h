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
 * (net/drain) stops listening, publishes the wills of the sessions that end
 * with the process, closes every connection flushing its output (bounded by
 * SHARD_STOP_LINGER_MS; a second signal sends XMSG_SHUTDOWN with arg 1, which
 * aborts the flushes at once), waits for every operation to complete, makes
 * sure everything it still had to send to a running shard left its
 * overflow, waits for its write-ahead log to be written and returns 0.
 * SIGHUP reloads the configuration (net/live.h):
 * shard 0 builds the new snapshot, applies it, hands it to every other
 * shard (XMSG_RELOAD), each applies it between two iterations and answers
 * (XMSG_RELOAD_DONE), and after the last answer shard 0 frees the old one.
 * Applying a snapshot swaps the broker's login snapshot and the listeners'
 * TLS contexts (connections keep the context they were made with) and
 * disconnects the clients it no longer lets in (login_still_allowed():
 * v5 DISCONNECT 0x87, 3.1.1 closed). SIGPIPE is ignored. A shard other
 * than 0 whose ring fails raises SIGTERM so that shard 0 stops the rest.
 *
 * Threads: shard_new() must run on the thread that will run shard_run()
 * (the ring is set up IORING_SETUP_SINGLE_ISSUER, and the kernel binds it
 * to the creating thread); shard_free() runs on any thread once every shard
 * has left its loop.
 */
#ifndef RINGMQ_SHARD_H
#define RINGMQ_SHARD_H

#include "net/shard_types.h"

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
 * the ports shard 0 bound (@ports[i] for cfg->listeners[i]). @owner->cur is
 * the live snapshot to start with (login snapshot, TLS context of listener
 * i in tls[i]); shard 0 keeps @owner and replaces its snapshots on reload,
 * the others only read cur here (before the start barrier). @owner must
 * outlive every shard; what it holds after they stop is main's to free
 * (live_free()). Every accepted socket is admitted
 * or refused by @admit (process-wide limits: connections, per address,
 * rate, memory; net/admit.h) before it reads anything. @admit and @xshard
 * are borrowed and must outlive the shard. Returns NULL after logging the
 * cause at ERROR.
 */
struct live_owner;
struct wal_dir;

/*
 * @wal: the write-ahead log's directory (net/wal_io.h) when persistence is
 * on, else NULL: the shard rebuilds its broker from it while built.
 */
struct shard *shard_new(const struct config *cfg, struct live_owner *owner, uint32_t id,
                        uint32_t shard_count, struct admit *admit, struct xshard *xshard,
                        const uint16_t *ports, const struct wal_dir *wal);

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

#endif
