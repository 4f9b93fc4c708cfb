/*
 * listener.h - one listening TCP socket and its multishot accept.
 *
 * listener_open() creates one shard's socket for a [listener.NAME] section:
 * SO_REUSEADDR, SO_REUSEPORT (each shard owns one socket per listener, all
 * bound to the same address and port, and the kernel spreads incoming
 * connections among them by a hash of the 4-tuple), IPV6_V6ONLY for IPv6
 * addresses (so "::" and "0.0.0.0" can be separate listeners), TCP_NODELAY
 * (accepted sockets inherit it, which saves a setsockopt per connection;
 * l->nodelay records whether it took), bind, listen.
 * Port 0 binds an ephemeral port, read back with getsockname(): shard 0
 * opens its sockets first and the other shards bind the port it got. The
 * announcing socket (shard 0's) then logs
 *   "listener NAME listening on ADDR:PORT"   (IPv6: "[ADDR]:PORT")
 * followed by " (tls)", " (ws)" or " (wss)" for those transports, at INFO,
 * once per listener; the end-to-end harness and tests/transport parse
 * "listening on ...:PORT" from it. The other shards' sockets log at DEBUG.
 *
 * Accepted sockets are plain fds, not io_uring direct descriptors: issue 3
 * hands a connection to its session's home shard by fd number over an SPSC
 * queue, and liburing 2.3 cannot pass a direct descriptor between rings
 * (io_uring_prep_msg_ring_fd is 2.4). Plain fds also let the close path use
 * close(2)/shutdown(2) directly.
 *
 * After an accept error the kernel ends the multishot accept; the listener
 * then re-arms from the shard loop: at once for per-connection errors
 * (ECONNABORTED...), after LISTENER_RETRY_MS for resource exhaustion
 * (EMFILE, ENFILE, ENOBUFS, ENOMEM) so the loop does not spin. Errors are
 * logged at most once per LISTENER_LOG_INTERVAL_MS, with a count of the
 * ones left out.
 *
 * Owned by one shard; that thread only.
 */
#ifndef RINGMQ_LISTENER_H
#define RINGMQ_LISTENER_H

#include <liburing.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

#define LISTENER_RETRY_MS 100u
#define LISTENER_LOG_INTERVAL_MS 1000u
#define LISTENER_ADDR_MAX (INET6_ADDRSTRLEN + 8) /* "[addr]:65535" */

struct tls_ctx;

struct listener {
    const struct config_listener *cfg; /* borrowed from the config snapshot (name, keys) */
    const struct tls_ctx *tls;         /* borrowed (process-wide, read-only); NULL: no TLS */
    int fd;                /* -1 when closed */
    uint16_t port;         /* bound port (ephemeral resolved) */
    bool armed;            /* a multishot accept is in flight */
    bool cancel_sent;      /* stopping: its cancel is queued */
    bool stopped;          /* listener_stop(): no longer listening, fd still open */
    bool nodelay;          /* TCP_NODELAY set: accepted sockets inherit it */
    uint64_t retry_at_ms;  /* when not armed: re-arm at or after this */
    uint64_t log_at_ms;    /* last error record */
    uint32_t errors_quiet; /* errors since then, not logged */
    char addr[LISTENER_ADDR_MAX];
};

/* Fill @ss (*@len bytes) from numeric address @bind_addr and @port; 0 or -EINVAL. */
int listener_parse_addr(const char *bind_addr, uint16_t port, struct sockaddr_storage *ss,
                        socklen_t *len);

/*
 * Open, bind and listen per @cfg (borrowed for the listener's life: the name
 * is kept), with TLS context @tls (borrowed; NULL when @cfg has no
 * certfile) for the connections it accepts, on @port instead of cfg->port
 * (the port shard 0 resolved, for the other shards; cfg->port for shard 0).
 * Logs the "listening on" line at INFO if @announce, else at DEBUG. Returns
 * 0, or a negative errno after logging the failure at ERROR. @l->fd is -1 on
 * failure.
 */
int listener_open(struct listener *l, const struct config_listener *cfg,
                  const struct tls_ctx *tls, uint16_t port, bool announce);

/* Queue a multishot accept on @ring. Returns 0 or -EBUSY (no SQE). */
int listener_arm(struct listener *l, struct io_uring *ring);

/*
 * Account for an accept completion: clears armed when the multishot ended
 * (no IORING_CQE_F_MORE) and, for an error, logs it (rate-limited) and sets
 * retry_at_ms. Returns the accepted fd (>= 0, now owned by the caller) or the
 * negative error.
 */
int listener_accept_done(struct listener *l, const struct io_uring_cqe *cqe, uint64_t now_ms);

/*
 * Stop listening now (the shard is stopping): shutdown(2) with SHUT_RD on
 * a listening socket takes it out of the listening state, so new
 * connections are refused and those still in its accept queue are reset,
 * and the accept in flight ends; its error is not logged. The fd stays
 * open until listener_close(). Idempotent.
 */
void listener_stop(struct listener *l);

/* Close the socket (no accept may be in flight). No-op when closed. */
void listener_close(struct listener *l);

#endif
