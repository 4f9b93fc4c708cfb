/*
 * conn.h - one client connection: socket, multishot recv, one send in
 * flight, deadlines, and the close path.
 *
 * A struct conn embeds the broker's struct client (core/broker.h) and owns
 * the socket fd. Receiving: one multishot recv on the shard's provided
 * buffer ring; each completion's bytes go straight to broker_client_feed()
 * and the buffer goes back to the ring at once. Sending: client.out is
 * moved into the `sending` slot (its buffer, no copy) and sent with one
 * IORING_OP_SEND (MSG_NOSIGNAL); a partial send resends the rest from where
 * it stopped (no memmove), and when the slot is empty whatever accumulated
 * in client.out meanwhile goes next.
 * An idle connection holds no buffer at all.
 *
 * Deadlines (one timer node, net/timer): from accept, the connect timeout
 * (limits.connect_timeout_ms) until the client is CONNECTED; then, if the
 * client's keepalive is not 0, 1.5 x keepalive from the last received bytes
 * [MQTT-3.1.2-24]; while closing with a flush, CONN_LINGER_MS.
 *
 * Closing (conn_close): mark closing, and either flush the output first
 * (broker-initiated closes, shutdown) or cancel the recv (ASYNC_CANCEL by
 * its user_data) and an in-flight send (peer gone, I/O error, timeouts).
 * A flushing close keeps reading, dropping the input, and once all is sent
 * shuts down writes (FIN) and drains until the peer closes or
 * CONN_DRAIN_MS pass: closing over unread input would reset the connection
 * and the peer could lose the CONNACK or DISCONNECT that says why.
 * A flush is bounded by CONN_LINGER_MS: past it the send is cancelled, the
 * socket shut down and closed abortively (SO_LINGER 0: RST, the kernel's send
 * queue discarded) so an orphaned socket does not keep megabytes queued to a
 * peer that does not read. Once no operation is in flight the fd is closed,
 * broker_client_gone() is called (exactly once) and the conn goes on the
 * shard's work list, to be freed at the end of the loop iteration - never
 * inside a completion that may still reference it. After the last recv and
 * send completions no CQE can name the conn, and cancel requests carry
 * user_data 0, so a later conn at the same address is never confused with
 * it (its cancel is submitted before any new conn's operations).
 *
 * Handoff (issue 3): when broker_client_feed() says CLIENT_FEED_HANDOFF (the
 * CONNECT's client id is homed on another shard), the conn is marked
 * CONN_F_HANDOFF and its recv cancelled; completions that still bring bytes
 * feed them to the broker, which keeps them. On the recv's final completion
 * broker_client_handoff_take() yields every byte from the CONNECT on (and
 * forgets the client, as broker_client_gone() would), an XMSG_CONN_HANDOFF
 * {fd, bytes, len} goes to the home shard (net/xshard), and the conn is
 * retired without closing the fd. EOF during the wait does not stop the
 * handoff (the home shard sees the EOF itself); an I/O error, a timeout or
 * a stop closes the connection instead, never flushing the kept bytes.
 * The home shard builds a conn for the fd with conn_adopt(): still counted
 * as the accepting shard admitted it (net/admit: the counts are
 * process-wide and the home shard gives them back at the final close),
 * fresh connect timeout, the bytes fed as if just received,
 * then its own multishot recv. No byte is ever read by two rings: the first
 * ring's recv has completed for good before the fd leaves its shard.
 *
 * Transports (issue 11): a connection accepted on a TLS or WebSocket
 * listener has a struct xport (net/xport.h) in conn->xp; plain TCP has none.
 * Received bytes then go through xport_recv(), which passes the MQTT bytes
 * on to the broker; before a send, the broker's output goes through
 * xport_send() into xp->tx, and xp->tx (which also holds the handshake
 * records, the upgrade answer, pongs and close frames the transport made)
 * becomes the send. A graceful close queues the WebSocket close frame and
 * TLS close_notify after the last output. A handoff carries the xport to the
 * home shard with the fd (XMSG_CONN_HANDOFF's payload.conn.xport); the bytes
 * the broker kept are plaintext MQTT and are fed to the broker directly.
 *
 * Handshake budget: a TLS handshake step costs about a millisecond of CPU
 * (key exchange and signature), so a shard runs at most
 * SHARD_HANDSHAKES_PER_ITER_MAX of them per loop iteration. Input for a
 * handshake past the budget is copied into the xport (xport_hold()), the
 * conn goes on the shard's deferred list, and conn_run_deferred() feeds it
 * in a later iteration, in arrival order. Established connections are served
 * in every iteration in between, so a flood of handshakes cannot starve them.
 *
 * Owned by one shard; that thread only. Functions may close (but never free)
 * the conn synchronously.
 */
#ifndef RINGMQ_CONN_H
#define RINGMQ_CONN_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/broker.h"
#include "core/obuf.h"
#include "net/log.h"
#include "net/timer.h"

struct listener;
struct shard;
struct xport;

/* A flush on close may take this long before the socket is shut down. */
#define CONN_LINGER_MS 2000u
/* After the flush and our FIN, the peer's input is read and dropped this long at most. */
#define CONN_DRAIN_MS 500u

enum conn_flag {
    CONN_F_RECV = 1u << 0,        /* multishot recv in flight */
    CONN_F_SEND = 1u << 1,        /* send in flight */
    CONN_F_CLOSING = 1u << 2,     /* no more reads; close when idle */
    CONN_F_FLUSH = 1u << 3,       /* closing: send client.out first */
    CONN_F_RECV_CANCEL = 1u << 4, /* cancel of the recv queued */
    CONN_F_SEND_CANCEL = 1u << 5, /* cancel of the send queued */
    CONN_F_WORK = 1u << 7,        /* on the shard's work list (dead, to be freed) */
    CONN_F_DEAD = 1u << 8,        /* fd closed, broker told: free at iteration end */
    CONN_F_RESET = 1u << 9,       /* abortive close (RST): the peer does not read */
    CONN_F_HANDOFF = 1u << 10,    /* handing over to client.handoff_shard: recv ending */
    CONN_F_DEFERRED = 1u << 11,   /* TLS handshake input held for a later iteration */
    CONN_F_EOF_HELD = 1u << 12,   /* the peer closed while DEFERRED: close after the feed */
    CONN_F_DRAIN = 1u << 13,      /* closing, all sent and FIN out: reading until the peer's */
    CONN_F_PAUSED = 1u << 14,     /* held and backlogged: not read until released */
};

/*
 * The send in flight: the bytes taken from an obuf (its buffer, not a copy)
 * and how many the kernel took so far. A partial send resumes at @off: no
 * byte is moved, whatever the backlog.
 */
struct conn_send {
    uint8_t *data; /* malloc'd; NULL when nothing is pending */
    uint32_t len;
    uint32_t off;
};

/* Free @t's bytes; nothing is pending after. */
static inline void conn_send_free(struct conn_send *t)
{
    free(t->data);
    *t = (struct conn_send){0};
}

/*
 * Size matters (one per connection, issue 4's bytes per idle connection):
 * malloc rounds a request up to 8 bytes less than a multiple of 16, so with
 * a 112-byte struct client this is 184 bytes in a 192-byte chunk. A dead
 * conn is off the live list, so `next` links it on the shard's work list.
 */
struct conn {
    struct client client;    /* the broker's state; first member */
    struct conn_send sending; /* bytes of the send in flight (or its unsent rest) */
    struct timer_node timer; /* the one deadline (connect, keepalive or linger) */
    struct conn *prev;       /* shard's list of live conns */
    struct conn *next;       /* ... or, once dead, the shard's work list */
    struct xport *xp;        /* TLS / WebSocket; NULL for plain TCP */
    int fd;                  /* -1 once closed */
    int16_t close_reason;    /* when closing: 0 or -errno / -MQTT_RC_* */
    uint16_t flags;          /* enum conn_flag */
};

/*
 * Who @c is, for a LOG_WHO() line about it: its client id (once a CONNECT
 * made one) and its socket (the address is asked of it only when logged).
 */
static inline struct log_who conn_who(const struct conn *c)
{
    struct log_who w = {.fd = c->fd};

    w.id = broker_client_id(&c->client, &w.id_len);
    return w;
}

/*
 * Take @fd (just accepted on @l and admitted by net/admit; owned from
 * here): set TCP_NODELAY unless the listening socket's was inherited,
 * allocate and initialise a conn (with the listener's transport, if any),
 * start its recv and connect deadline. Returns 0, or a negative errno when
 * the conn could not be created (@fd is closed and its admission given
 * back then). Every close of the fd from here on goes through admit_close().
 */
int conn_accept(struct shard *s, int fd, const struct listener *l);

/*
 * Take a connection handed over by another shard: @fd and @xp (NULL for
 * plain TCP; both owned from here), accepted on listener number @listener,
 * and @bytes[0..@len) (malloc'd, owned
 * from here: freed before return), the MQTT bytes the other shard read from
 * the CONNECT on. Builds the conn as conn_accept() does, feeds it the bytes,
 * then starts its recv unless the feed closed it. Returns 0, or a negative
 * errno (@fd closed, its admission given back, and @xp freed then). The
 * accepting shard admitted it.
 */
int conn_adopt(struct shard *s, int fd, struct xport *xp, uint32_t listener, uint8_t *bytes,
               uint32_t len);

/* Completion of @c's multishot recv. */
void conn_recv_done(struct shard *s, struct conn *c, const struct io_uring_cqe *cqe);

/* Completion of @c's send. */
void conn_send_done(struct shard *s, struct conn *c, const struct io_uring_cqe *cqe);

/*
 * @c's client came off the broker's dirty list: start a send if none is in
 * flight; if the broker marked it CLIENT_CLOSING, close it after the flush.
 */
void conn_dirty(struct shard *s, struct conn *c);

/* @c's deadline passed (popped from the shard's timer wheel). */
void conn_timer_expired(struct shard *s, struct conn *c);

/*
 * Give up on flushing @c (the peer does not read): cancel its operations,
 * shut the socket down and close it abortively (RST) once idle. For the
 * linger deadline and a stop that ran out of time.
 */
void conn_abort(struct shard *s, struct conn *c);

/*
 * Close @c for @reason (0: closed by the peer; -errno; -MQTT_RC_*), after
 * flushing its output when @flush (bounded by CONN_LINGER_MS). A later call
 * without @flush turns a flushing close into an abort; otherwise repeated
 * calls are no-ops. May finalise @c synchronously (fd closed,
 * broker_client_gone() called) but never frees it.
 */
void conn_close(struct shard *s, struct conn *c, int reason, bool flush);

/*
 * Feed deferred TLS handshake input while this iteration's handshake budget
 * lasts (net/shard, once per iteration). Sets s->more_work when some is left.
 */
void conn_run_deferred(struct shard *s);

/* End-of-iteration work for @c (popped from the work list): free it. */
void conn_work(struct shard *s, struct conn *c);

static inline struct conn *conn_from_client(struct client *cl)
{
    return (struct conn *)((char *)cl - offsetof(struct conn, client));
}

static inline struct conn *conn_from_timer(struct timer_node *t)
{
    return (struct conn *)((char *)t - offsetof(struct conn, timer));
}

#endif
