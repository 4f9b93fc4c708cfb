/*
 * conn.c - client connections on the shard's ring (see conn.h).
 *
 * Flag rules: CONN_F_RECV and CONN_F_SEND are set when the operation is
 * queued and cleared by its final completion; a conn is finalised only
 * when both are clear, so no CQE can reach a finalised conn. Reads stop as
 * soon as a conn is CLOSING: bytes that still arrive are dropped.
 *
 * Owned by one shard; that thread only.
 */
#include "net/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "net/admit.h"
#include "net/listener.h"
#include "net/log.h"
#include "net/shard_types.h"
#include "net/uring.h"
#include "net/xport.h"
#include "net/xshard.h"

/* Keepalive grace: the spec's one and a half times [MQTT-3.1.2-24]. */
#define CONN_KEEPALIVE_GRACE_PERMILLE 1500u

static void reason_str(int reason, char *buf, size_t len)
{
    static const char *const xport_why[] = {
        [XPORT_E_TLS - XPORT_E_TLS] = "TLS failure",
        [XPORT_E_WS_REFUSED - XPORT_E_TLS] = "WebSocket upgrade refused",
        [XPORT_E_WS_PROTOCOL - XPORT_E_TLS] = "WebSocket protocol violation",
        [XPORT_E_PEER_CLOSED - XPORT_E_TLS] = "closed by the peer (WebSocket close or TLS alert)",
        [XPORT_E_SINK - XPORT_E_TLS] = "closed",
    };

    if (reason == 0) {
        snprintf(buf, len, "closed");
    } else if (-reason >= XPORT_E_TLS && -reason <= XPORT_E_SINK) {
        snprintf(buf, len, "%s", xport_why[-reason - XPORT_E_TLS]);
    } else if (-reason >= MQTT_RC_UNSPECIFIED && -reason <= 0xff) {
        snprintf(buf, len, "mqtt reason 0x%02x", -reason);
    } else {
        snprintf(buf, len, "%s", strerror(-reason));
    }
}

static int arm_recv(struct shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe;

    RM_ASSERT(!(c->flags & (CONN_F_RECV | CONN_F_DEAD)));
    RM_ASSERT(!(c->flags & CONN_F_CLOSING) || (c->flags & (CONN_F_FLUSH | CONN_F_DRAIN)));
    sqe = uring_get_sqe(&s->ring);
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = s->bufring.group_id;
    io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_RECV));
    c->flags |= CONN_F_RECV;
    return 0;
}

/*
 * With a transport: frame and encrypt the broker's output into xp->tx (and,
 * when closing gracefully, the goodbye after it), then make xp->tx the send.
 */
/* Make @from's bytes the next send (nothing is pending); @from becomes empty. */
static void send_take(struct conn_send *t, struct obuf *from)
{
    RM_ASSERT(t->data == NULL && t->len == 0);
    RM_ASSERT(from->len > 0);
    *t = (struct conn_send){from->data, from->len, 0};
    *from = (struct obuf){0};
}

static int xport_out(struct shard *s, struct conn *c)
{
    int ret;

    ret = xport_send(c->xp, &c->client.out, s->xport_scratch);
    if (ret < 0) {
        return ret;
    }
    xport_used(&s->xport_naps, c->xp, s->now_ms);
    if ((c->flags & CONN_F_CLOSING) && (c->flags & CONN_F_FLUSH)) {
        xport_goodbye(c->xp);
    }
    if (c->xp->tx.len > 0) {
        send_take(&c->sending, &c->xp->tx);
    }
    return 0;
}

/* Start a send of pending output if none is in flight. 0 or a negative errno. */
static int start_send(struct shard *s, struct conn *c)
{
    struct io_uring_sqe *sqe;
    int ret;

    if (c->flags & CONN_F_SEND) {
        return 0;
    }
    if ((c->flags & CONN_F_CLOSING) && !(c->flags & CONN_F_FLUSH)) {
        return 0;
    }
    if (c->sending.len == 0 && (c->flags & CONN_F_HANDOFF)) {
        /*
         * client.out holds the kept input, not output; but what the transport
         * made (a pong, a ticket) is flushed before the connection moves, so
         * no record is left half sent.
         */
        if (c->xp == NULL || c->xp->tx.len == 0) {
            return 0;
        }
        send_take(&c->sending, &c->xp->tx);
    } else if (c->sending.len == 0) {
        if (c->xp != NULL) {
            ret = xport_out(s, c);
            if (ret < 0 || c->sending.len == 0) {
                return ret;
            }
        } else {
            if (c->client.out.len == 0) {
                return 0;
            }
            send_take(&c->sending, &c->client.out);
        }
    }
    sqe = uring_get_sqe(&s->ring);
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_send(sqe, c->fd, c->sending.data + c->sending.off,
                       c->sending.len - c->sending.off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_SEND));
    c->flags |= CONN_F_SEND;
    return 0;
}

/*
 * Queue a cancel of @c's operation of kind @op. 0, or -EBUSY when no SQE is
 * to be had: the caller decides what then (a socket being handed over must
 * not be shut down).
 */
static int cancel_op(struct shard *s, struct conn *c, enum uring_op op)
{
    return uring_cancel(&s->ring, uring_ud(c, op));
}

/*
 * Take @c off the shard's live list for good: no operation is in flight and
 * its fd is closed or handed over. It is freed from the work list.
 */
/* Put dead @c on the shard's end-of-iteration work list, to be freed (idempotent). */
static void work_push(struct shard *s, struct conn *c)
{
    RM_ASSERT(c->flags & CONN_F_DEAD); /* off the live list: `next` is free */
    if (c->flags & CONN_F_WORK) {
        return;
    }
    c->flags |= CONN_F_WORK;
    c->next = s->work;
    s->work = c;
}

/* Append @c to the shard's deferred handshakes (the caller sets CONN_F_DEFERRED). */
static int defer_push(struct shard *s, struct conn *c)
{
    struct conn **grown;
    uint32_t cap;

    RM_ASSERT(s->deferred_count <= s->deferred_cap);
    if (s->deferred_count == s->deferred_cap) {
        cap = s->deferred_cap == 0 ? 64 : s->deferred_cap * 2;
        grown = realloc(s->deferred, cap * sizeof(*grown));
        if (grown == NULL) {
            return -ENOMEM;
        }
        s->deferred = grown;
        s->deferred_cap = cap;
    }
    s->deferred[s->deferred_count++] = c;
    return 0;
}

/* Take @c off the deferred handshakes (it closed). */
static void defer_remove(struct shard *s, struct conn *c)
{
    uint32_t i;

    /* Bounded by the list: only conns still in a TLS handshake are on it. */
    for (i = 0; i < s->deferred_count && s->deferred[i] != c; i++) {
    }
    RM_ASSERT(i < s->deferred_count);
    memmove(s->deferred + i, s->deferred + i + 1, (s->deferred_count - i - 1) * sizeof(c));
    s->deferred_count--;
}

static void retire(struct shard *s, struct conn *c)
{
    RM_ASSERT(!(c->flags & (CONN_F_RECV | CONN_F_SEND | CONN_F_DEAD)));
    RM_ASSERT(s->conn_count > 0);
    if (c->flags & CONN_F_DEFERRED) {
        defer_remove(s, c);
        c->flags &= (uint16_t)~CONN_F_DEFERRED;
    }
    c->flags = (uint16_t)((c->flags & ~(CONN_F_FLUSH | CONN_F_DRAIN)) | CONN_F_DEAD);
    c->fd = -1;
    timer_del(&s->timers, &c->timer);
    conn_send_free(&c->sending);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = NULL;
    c->next = NULL;
    s->conn_count--;
    work_push(s, c);
}

static void finalise(struct shard *s, struct conn *c)
{
    char why[64];

    RM_ASSERT(!(c->flags & (CONN_F_RECV | CONN_F_SEND | CONN_F_DEAD)));
    RM_ASSERT(!(c->flags & CONN_F_HANDOFF));
    if (log_enabled(CONFIG_LOG_DEBUG)) {
        reason_str(c->close_reason, why, sizeof(why));
        LOG_WHO(CONFIG_LOG_DEBUG, conn_who(c), "conn fd %d closed: %s", c->fd, why);
    }
    if (c->flags & CONN_F_RESET) {
        const struct linger lg = {.l_onoff = 1, .l_linger = 0};

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    admit_close(s->admit, c->fd);
    timer_del(&s->timers, &c->timer);
    broker_client_gone(s->broker, &c->client, c->close_reason);
    s->stats.conns_closed++;
    retire(s, c);
}

/*
 * The handoff's recv has ended for good: take the kept bytes, send the fd
 * and them to the home shard, retire @c without closing the fd.
 */
static void handoff_finish(struct shard *s, struct conn *c)
{
    struct xmsg m = {.kind = XMSG_CONN_HANDOFF, .arg = c->client.listener};
    uint32_t home = c->client.handoff_shard;
    uint8_t *bytes = NULL;
    uint32_t len = 0;
    int ret;

    RM_ASSERT(c->flags & CONN_F_HANDOFF);
    RM_ASSERT(home < s->shard_count && home != s->id);
    c->flags &= (uint16_t)~CONN_F_HANDOFF;
    /* Forgets the client as broker_client_gone() would: not called again. */
    ret = broker_client_handoff_take(s->broker, &c->client, &bytes, &len);
    if (ret == 0) {
        m.payload.conn.bytes = bytes;
        m.payload.conn.len = len;
        m.payload.conn.fd = c->fd;
        if (c->xp != NULL) {
            xport_nap_leave(c->xp); /* the home shard's list takes it at its first use */
        }
        m.payload.conn.xport = c->xp;
        ret = xshard_send(s->xshard, s->id, home, &m);
    }
    if (ret == 0) {
        c->xp = NULL; /* the home shard's now */
    }
    if (ret < 0) {
        /* Allocation failure fails this one connection. */
        LOG_WHO(CONFIG_LOG_WARN, conn_who(c), "conn fd %d: handoff to shard %u failed: %s", c->fd,
                home, strerror(-ret));
        free(bytes);
        admit_close(s->admit, c->fd);
        s->stats.handoffs_failed++;
        s->stats.conns_closed++;
    } else {
        LOG_WHO(CONFIG_LOG_DEBUG, conn_who(c), "conn fd %d handed to shard %u (%u bytes)", c->fd,
                home, len);
        s->stats.handoffs_out++;
    }
    retire(s, c);
}

/* Hand @c over once its recv has completed for good and its transport's output is sent. */
static void handoff_progress(struct shard *s, struct conn *c)
{
    int ret;

    if (!(c->flags & CONN_F_HANDOFF) || (c->flags & (CONN_F_RECV | CONN_F_SEND))) {
        return;
    }
    if (c->sending.len > 0 || (c->xp != NULL && c->xp->tx.len > 0)) {
        /* Never half a record to the home shard: send the rest first, then come back. */
        ret = start_send(s, c);
        if (ret < 0) {
            conn_close(s, c, ret, false);
        }
        return;
    }
    handoff_finish(s, c);
}

/* The broker said HANDOFF: stop reading; completions still on their way feed it. */
static void handoff_begin(struct shard *s, struct conn *c)
{
    c->flags |= CONN_F_HANDOFF;
    if ((c->flags & CONN_F_RECV) && !(c->flags & CONN_F_RECV_CANCEL)) {
        if (cancel_op(s, c, URING_OP_RECV) == 0) {
            c->flags |= CONN_F_RECV_CANCEL;
            /* The connect deadline again (the retry below replaced it). */
            timer_set(&s->timers, &c->timer, s->now_ms + s->cfg->limits.connect_timeout_ms);
        } else {
            /* The socket is the home shard's to read: never shut it down; retry. */
            timer_set(&s->timers, &c->timer, s->now_ms + TIMER_TICK_MS);
        }
    }
}

/* Stop reading: cancel the recv (no completion may feed a closing client). */
static void stop_reading(struct shard *s, struct conn *c)
{
    if (!(c->flags & CONN_F_RECV) || (c->flags & CONN_F_RECV_CANCEL)) {
        return;
    }
    c->flags |= CONN_F_RECV_CANCEL;
    if (cancel_op(s, c, URING_OP_RECV) < 0) {
        /* No SQE: end the recv from the socket's side (nothing is flushing by now). */
        RM_ASSERT(!(c->flags & CONN_F_FLUSH));
        shutdown(c->fd, SHUT_RDWR);
    }
}

static void rearm_recv(struct shard *s, struct conn *c);

/*
 * @c is held and has sent BROKER_HELD_READ_MAX meanwhile: stop reading it
 * until the broker releases it (conn_dirty() resumes). Without an SQE for
 * the cancel the recv goes on, and the next feed tries again.
 */
static void pause_reading(struct shard *s, struct conn *c)
{
    if (!(c->flags & CONN_F_PAUSED)) {
        c->flags |= CONN_F_PAUSED;
        s->stats.recv_paused++;
    }
    if ((c->flags & CONN_F_RECV) && !(c->flags & CONN_F_RECV_CANCEL) &&
        cancel_op(s, c, URING_OP_RECV) == 0) {
        c->flags |= CONN_F_RECV_CANCEL;
    }
}

/*
 * A closing conn: send what is left if flushing; once all is sent, send FIN
 * and drain (below); finalise once idle. Draining: closing a socket with
 * unread input makes the kernel reset the connection, and a peer that still
 * writes (a client flooding past its quota) then loses what we sent last -
 * the CONNACK or DISCONNECT saying why. So the recv goes on, dropping what
 * it reads, until the peer closes too or CONN_DRAIN_MS pass.
 */
static void close_progress(struct shard *s, struct conn *c)
{
    if (!(c->flags & CONN_F_CLOSING) || (c->flags & CONN_F_DEAD)) {
        return;
    }
    if ((c->flags & CONN_F_FLUSH) && start_send(s, c) < 0) {
        c->flags &= (uint16_t)~CONN_F_FLUSH;
        stop_reading(s, c);
    }
    if ((c->flags & CONN_F_FLUSH) && !(c->flags & CONN_F_SEND)) {
        c->flags = (uint16_t)((c->flags & ~CONN_F_FLUSH) | CONN_F_DRAIN);
        shutdown(c->fd, SHUT_WR);
        timer_set(&s->timers, &c->timer, s->now_ms + CONN_DRAIN_MS);
    }
    if (c->flags & (CONN_F_RECV | CONN_F_SEND)) {
        return;
    }
    finalise(s, c);
}

void conn_close(struct shard *s, struct conn *c, int reason, bool flush)
{
    RM_ASSERT(s != NULL && c != NULL);
    if (c->flags & CONN_F_DEAD) {
        return;
    }
    if (c->flags & CONN_F_HANDOFF) {
        /* Abandon the handoff; client.out holds the kept input: never send it. */
        c->flags &= (uint16_t)~CONN_F_HANDOFF;
        flush = false;
    }
    if (!(c->flags & CONN_F_CLOSING)) {
        /* -errno and -MQTT_RC_* both fit: errno < 4096, reason codes < 256. */
        RM_ASSERT(reason <= 0 && reason > INT16_MIN);
        c->flags |= CONN_F_CLOSING;
        c->close_reason = (int16_t)reason;
        if (log_enabled(CONFIG_LOG_DEBUG)) {
            char why[64];

            /* Here, not at the close: a socket both ends have shut has no peer address. */
            reason_str(reason, why, sizeof(why));
            LOG_WHO(CONFIG_LOG_DEBUG, conn_who(c), "conn fd %d closing: %s", c->fd, why);
        }
        if (flush) {
            c->flags |= CONN_F_FLUSH;
            timer_set(&s->timers, &c->timer, s->now_ms + CONN_LINGER_MS);
        } else {
            timer_del(&s->timers, &c->timer);
        }
    } else if (!flush && (c->flags & (CONN_F_FLUSH | CONN_F_DRAIN))) {
        c->flags &= (uint16_t) ~(CONN_F_FLUSH | CONN_F_DRAIN);
        timer_del(&s->timers, &c->timer);
    }

    if ((c->flags & CONN_F_PAUSED) && (c->flags & (CONN_F_FLUSH | CONN_F_DRAIN))) {
        /* Paused input is unread input: drain it, or close() resets and the goodbye is lost. */
        c->flags &= (uint16_t)~CONN_F_PAUSED;
        rearm_recv(s, c); /* or, with the pause's cancel in flight, once it completes */
        if (c->flags & CONN_F_DEAD) {
            return;
        }
    }
    /* A flushing close reads on, dropping the input, until it drains (close_progress). */
    if (!(c->flags & (CONN_F_FLUSH | CONN_F_DRAIN))) {
        stop_reading(s, c);
    }
    if (!(c->flags & CONN_F_FLUSH) && (c->flags & CONN_F_SEND) &&
        !(c->flags & CONN_F_SEND_CANCEL)) {
        c->flags |= CONN_F_SEND_CANCEL;
        if (cancel_op(s, c, URING_OP_SEND) < 0) {
            shutdown(c->fd, SHUT_RDWR);
        }
    }
    close_progress(s, c);
}

/*
 * A new live conn for @fd and transport @xp (owned from here) with its
 * connect deadline; NULL on ENOMEM (@fd closed, @xp freed).
 */
static struct conn *conn_new(struct shard *s, int fd, struct xport *xp)
{
    struct conn *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        s->stats.conns_failed++;
        admit_close(s->admit, fd);
        xport_free(xp);
        return NULL;
    }
    c->fd = fd;
    c->xp = xp;
    timer_node_init(&c->timer);
    broker_client_init(s->broker, &c->client);

    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->conn_count++;
    if (s->cfg->limits.connect_timeout_ms > 0) {
        timer_set(&s->timers, &c->timer, s->now_ms + s->cfg->limits.connect_timeout_ms);
    }
    return c;
}

int conn_accept(struct shard *s, int fd, const struct listener *l)
{
    const int one = 1;
    struct xport *xp;
    struct conn *c;
    int ret;

    RM_ASSERT(s != NULL && fd >= 0 && l != NULL);
    if (!l->nodelay && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
        LOG_WHO(CONFIG_LOG_DEBUG, ((struct log_who){.fd = fd}), "conn fd %d: TCP_NODELAY: %s", fd,
                strerror(errno));
    }
    xp = xport_new(l->cfg, l->tls, s->cfg->limits.packet_bytes_max,
                   limits_output_hard_max(&s->cfg->limits), &ret);
    if (xp != NULL) {
        xp->fd = fd; /* never read from or written to through it */
    }
    if (ret < 0) {
        s->stats.conns_failed++;
        admit_close(s->admit, fd);
        return ret;
    }
    c = conn_new(s, fd, xp);
    if (c == NULL) {
        return -ENOMEM;
    }
    RM_ASSERT(l >= s->listeners && l < s->listeners + s->listener_count);
    c->client.listener = (uint8_t)(l - s->listeners);
    s->stats.conns_accepted++;
    ret = arm_recv(s, c);
    if (ret < 0) {
        s->stats.conns_failed++;
        conn_close(s, c, ret, false);
        return ret;
    }
    LOG_WHO(CONFIG_LOG_DEBUG, ((struct log_who){.fd = fd}), "conn fd %d accepted", fd);
    return 0;
}

/* After bytes were fed: follow the client's state with the deadline. */
static void update_deadline(struct shard *s, struct conn *c)
{
    uint64_t grace_ms;

    if (c->client.state != CLIENT_CONNECTED) {
        return; /* the connect timeout still runs */
    }
    if (c->client.keepalive_s == 0) {
        timer_del(&s->timers, &c->timer);
        return;
    }
    grace_ms = (uint64_t)c->client.keepalive_s * CONN_KEEPALIVE_GRACE_PERMILLE;
    timer_set(&s->timers, &c->timer, s->now_ms + grace_ms);
}

/* MQTT bytes to the broker. */
static void feed_mqtt(struct shard *s, struct conn *c, const uint8_t *data, size_t len)
{
    int rc;

    rc = broker_client_feed(s->broker, &c->client, data, len);
    if (rc == CLIENT_FEED_HANDOFF) {
        if (!(c->flags & CONN_F_HANDOFF)) {
            handoff_begin(s, c);
        }
        return;
    }
    if (rc < 0 || c->client.state == CLIENT_CLOSING) {
        conn_close(s, c, rc < 0 ? rc : c->client.close_rc, true);
        return;
    }
    update_deadline(s, c);
    if (broker_client_backlogged(&c->client)) {
        pause_reading(s, c);
    }
}

struct feed_arg {
    struct shard *s;
    struct conn *c;
};

/* The transport's sink: MQTT bytes to the broker; stop once the conn closes. */
static int feed_sink(void *arg, const uint8_t *data, size_t len)
{
    struct feed_arg *fa = arg;

    feed_mqtt(fa->s, fa->c, data, len);
    return (fa->c->flags & CONN_F_CLOSING) ? -1 : 0;
}

/* Received bytes through the transport (@data writable: it may unmask them in place). */
static void feed_xport(struct shard *s, struct conn *c, uint8_t *data, size_t len)
{
    struct feed_arg fa = {.s = s, .c = c};
    struct xport_sink sink = {.fn = feed_sink, .arg = &fa, .scratch = s->xport_scratch};
    int ret;

    ret = xport_recv(c->xp, data, len, &sink, &s->xport_stats);
    xport_used(&s->xport_naps, c->xp, s->now_ms);
    if (ret < 0 && ret != -XPORT_E_SINK) {
        /* Flush what the transport answered: an HTTP refusal, a close frame, an alert. */
        conn_close(s, c, ret, true);
        return;
    }
    /* The xport lives until conn_work(), also when the feed closed the conn. */
    if (c->xp->tx.len > 0 && !(c->flags & CONN_F_CLOSING)) {
        ret = start_send(s, c);
        if (ret < 0) {
            conn_close(s, c, ret, false);
        }
    }
}

/* Keep handshake input for a later iteration, behind the conns already waiting. */
static void defer(struct shard *s, struct conn *c, const uint8_t *data, size_t len)
{
    int ret = xport_hold(c->xp, data, len);

    if (ret == 0 && !(c->flags & CONN_F_DEFERRED)) {
        ret = defer_push(s, c);
        if (ret == 0) {
            c->flags |= CONN_F_DEFERRED;
            s->stats.handshakes_deferred++;
        }
    }
    if (ret < 0) {
        conn_close(s, c, ret, false);
    }
}

/* Received bytes (@data writable: a transport may unmask them in place). */
static void feed(struct shard *s, struct conn *c, uint8_t *data, size_t len)
{
    if (c->xp == NULL) {
        feed_mqtt(s, c, data, len);
        return;
    }
    if (xport_handshaking(c->xp)) {
        /* First come, first served: behind any conn already waiting for the budget. */
        if ((c->flags & CONN_F_DEFERRED) || s->deferred_count > 0 || s->handshakes_left == 0) {
            defer(s, c, data, len);
            return;
        }
        s->handshakes_left--;
    }
    feed_xport(s, c, data, len);
}

void conn_run_deferred(struct shard *s)
{
    struct obuf held;
    struct conn *c;
    uint32_t n;

    if (s->deferred_count == 0) {
        return; /* the common case: one test per iteration */
    }
    for (n = 0; n < s->deferred_count && s->handshakes_left > 0; n++) {
        c = s->deferred[n];
        s->deferred[n] = NULL; /* off the list: a close inside the feed finds nothing */
        RM_ASSERT(c->flags & CONN_F_DEFERRED);
        c->flags &= (uint16_t)~CONN_F_DEFERRED;
        if (c->flags & CONN_F_CLOSING) {
            continue; /* its input is dropped with it */
        }
        s->handshakes_left--;
        held = c->xp->held;
        memset(&c->xp->held, 0, sizeof(c->xp->held));
        feed_xport(s, c, held.data, held.len);
        obuf_free(&held);
        if (c->flags & CONN_F_EOF_HELD) {
            /* What came before the peer's FIN has been handled; now its close. */
            conn_close(s, c, 0, false);
        }
    }
    memmove(s->deferred, s->deferred + n, (s->deferred_count - n) * sizeof(*s->deferred));
    s->deferred_count -= n;
    if (s->deferred_count > 0) {
        s->more_work = true;
    }
}

int conn_adopt(struct shard *s, int fd, struct xport *xp, uint32_t listener, uint8_t *bytes,
               uint32_t len)
{
    struct conn *c;
    int ret = 0;

    RM_ASSERT(s != NULL && fd >= 0);
    RM_ASSERT(bytes != NULL || len == 0);
    RM_ASSERT(listener < s->listener_count);
    c = conn_new(s, fd, xp);
    if (c == NULL) {
        ret = -ENOMEM;
        goto out_free;
    }
    c->client.listener = (uint8_t)listener;
    s->stats.handoffs_in++;
    LOG_WHO(CONFIG_LOG_DEBUG, ((struct log_who){.fd = fd}), "conn fd %d adopted (%u bytes)", fd,
            len);
    /* Plaintext MQTT: the transport already took these bytes on the other shard. */
    feed_mqtt(s, c, bytes, len);
    if (c->flags & CONN_F_HANDOFF) {
        /* Homed elsewhere again (cannot happen while all shards agree): pass it on. */
        handoff_progress(s, c);
        goto out_free;
    }
    if ((c->flags & CONN_F_DEAD) ||
        ((c->flags & CONN_F_CLOSING) && !(c->flags & (CONN_F_FLUSH | CONN_F_DRAIN)))) {
        goto out_free;
    }
    /* A refused CONNECT still reads, and drops, what follows: its CONNACK must arrive. */
    ret = arm_recv(s, c);
    if (ret < 0) {
        s->stats.conns_failed++;
        conn_close(s, c, ret, false);
    }
out_free:
    free(bytes);
    return ret;
}

/*
 * @c's recv ended but @c still reads (open, or flushing or draining a
 * close): arm a new one. Its SQE is submitted with the next wait, after the
 * whole CQE batch was handled, so buffers the batch gives back are in the
 * ring by then (after -ENOBUFS). Without an SQE the connection closes (a
 * drain ends).
 */
static void rearm_recv(struct shard *s, struct conn *c)
{
    int ret;

    if (c->flags & (CONN_F_RECV | CONN_F_RECV_CANCEL | CONN_F_HANDOFF)) {
        return;
    }
    if ((c->flags & CONN_F_CLOSING) && !(c->flags & (CONN_F_FLUSH | CONN_F_DRAIN))) {
        return;
    }
    if ((c->flags & CONN_F_PAUSED) && !(c->flags & CONN_F_CLOSING)) {
        return; /* conn_dirty() re-arms it */
    }
    ret = arm_recv(s, c);
    if (ret < 0) {
        conn_close(s, c, ret, false);
    }
}

void conn_recv_done(struct shard *s, struct conn *c, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;

    RM_ASSERT(c->flags & CONN_F_RECV);
    RM_ASSERT(!(c->flags & CONN_F_DEAD));
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->flags &= (uint16_t)~CONN_F_RECV;
        /*
         * A cancel outstanding while open, flushing or draining was a
         * pause's (stop_reading() runs only otherwise): reading may resume.
         */
        if (!(c->flags & CONN_F_HANDOFF) &&
            (!(c->flags & CONN_F_CLOSING) || (c->flags & (CONN_F_FLUSH | CONN_F_DRAIN)))) {
            c->flags &= (uint16_t)~CONN_F_RECV_CANCEL;
        }
    }
    if (res > 0) {
        s->stats.bytes_in += (uint64_t)res;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        if (res > 0 && !(c->flags & CONN_F_CLOSING)) {
            feed(s, c, bufring_cqe_data(&s->bufring, cqe), (size_t)res);
        }
        bufring_cqe_done(&s->bufring, cqe);
    }
    if (c->flags & CONN_F_DEAD) {
        return; /* the feed closed it, and this was its recv's last completion */
    }

    if (c->flags & CONN_F_HANDOFF) {
        /* EOF, ENOBUFS or the cancel: the home shard reads on (and sees an EOF itself). */
        if (res < 0 && res != -ECANCELED && res != -ENOBUFS) {
            conn_close(s, c, res, false);
        } else {
            handoff_progress(s, c);
        }
        return;
    }
    if (res == 0 && (c->flags & CONN_F_DEFERRED)) {
        c->flags |= CONN_F_EOF_HELD; /* its held input first: conn_run_deferred() */
    } else if (res == 0 && !(c->flags & CONN_F_CLOSING)) {
        conn_close(s, c, 0, false); /* (while closing, the peer's EOF ends the drain) */
    } else if (res == -ENOBUFS) {
        s->stats.recv_nobufs++;
        rearm_recv(s, c);
    } else if (res == -ECANCELED) {
        rearm_recv(s, c); /* a pause's cancel: reads again if released meanwhile */
    } else if (res < 0) {
        conn_close(s, c, res, false);
    } else if (res > 0) {
        /* The kernel may end a multishot recv without an error: re-arm. */
        rearm_recv(s, c);
    }
    close_progress(s, c);
}

void conn_send_done(struct shard *s, struct conn *c, const struct io_uring_cqe *cqe)
{
    int res = cqe->res;
    int ret;

    RM_ASSERT(c->flags & CONN_F_SEND);
    RM_ASSERT(!(c->flags & CONN_F_DEAD));
    c->flags &= (uint16_t) ~(CONN_F_SEND | CONN_F_SEND_CANCEL);
    if (res <= 0) {
        conn_send_free(&c->sending);
        conn_close(s, c, res == 0 ? -EPIPE : res, false);
        return;
    }
    RM_ASSERT((uint32_t)res <= c->sending.len - c->sending.off);
    s->stats.bytes_out += (uint64_t)res;
    c->sending.off += (uint32_t)res;
    if (c->sending.off == c->sending.len) {
        conn_send_free(&c->sending);
    }
    if (c->flags & CONN_F_CLOSING) {
        close_progress(s, c);
        return;
    }
    ret = start_send(s, c);
    if (ret < 0) {
        conn_close(s, c, ret, false);
    } else {
        handoff_progress(s, c);
    }
}

void conn_dirty(struct shard *s, struct conn *c)
{
    int ret;

    RM_ASSERT(s != NULL && c != NULL);
    RM_ASSERT(!(c->flags & CONN_F_DEAD));
    if (c->flags & CONN_F_HANDOFF) {
        return; /* client.out holds the kept input, not output */
    }
    if (c->client.state == CLIENT_CLOSING && !(c->flags & CONN_F_CLOSING)) {
        conn_close(s, c, c->client.close_rc, true);
        return;
    }
    if ((c->flags & CONN_F_PAUSED) && !broker_client_backlogged(&c->client)) {
        c->flags &= (uint16_t)~CONN_F_PAUSED;
        rearm_recv(s, c);
        if (c->flags & CONN_F_DEAD) {
            return;
        }
    }
    ret = start_send(s, c);
    if (ret < 0) {
        conn_close(s, c, ret, false);
    }
}

void conn_timer_expired(struct shard *s, struct conn *c)
{
    RM_ASSERT(s != NULL && c != NULL);
    RM_ASSERT(!(c->flags & CONN_F_DEAD));
    if ((c->flags & CONN_F_HANDOFF) && (c->flags & CONN_F_RECV) &&
        !(c->flags & CONN_F_RECV_CANCEL)) {
        handoff_begin(s, c); /* its recv cancel found no SQE: again */
    } else if (c->flags & CONN_F_DRAIN) {
        /* The peer did not close within CONN_DRAIN_MS: stop waiting for it. */
        c->flags &= (uint16_t)~CONN_F_DRAIN;
        stop_reading(s, c);
        close_progress(s, c);
    } else if (c->flags & CONN_F_CLOSING) {
        s->stats.linger_timeouts++;
        LOG_WHO(CONFIG_LOG_DEBUG, conn_who(c), "conn fd %d: output not flushed in %u ms, aborting",
                c->fd, CONN_LINGER_MS);
        conn_abort(s, c);
    } else if (c->client.state == CLIENT_CONNECTED && (c->flags & CONN_F_PAUSED)) {
        update_deadline(s, c); /* not read because we hold it: its pings wait unread */
    } else if (c->client.state == CLIENT_CONNECTED) {
        s->stats.keepalive_timeouts++;
        /* An MQTT 5.0 client is sent DISCONNECT 0x8D first: flush it. */
        broker_client_kick(s->broker, &c->client, -MQTT_RC_KEEPALIVE_TIMEOUT);
        conn_close(s, c, -MQTT_RC_KEEPALIVE_TIMEOUT, true);
    } else {
        s->stats.connect_timeouts++;
        conn_close(s, c, -ETIMEDOUT, false);
    }
}

void conn_abort(struct shard *s, struct conn *c)
{
    RM_ASSERT(s != NULL && c != NULL);
    if (c->flags & CONN_F_DEAD) {
        return;
    }
    c->flags |= CONN_F_RESET;
    conn_close(s, c, (c->flags & CONN_F_CLOSING) ? c->close_reason : -ETIMEDOUT, false);
    if (!(c->flags & CONN_F_DEAD)) {
        /* Backstop to the cancels: completes whatever is still in flight. */
        shutdown(c->fd, SHUT_RDWR);
    }
}

void conn_work(struct shard *s, struct conn *c)
{
    RM_ASSERT(s != NULL && c != NULL);
    RM_ASSERT(c->flags & CONN_F_DEAD);
    RM_ASSERT(!(c->flags & CONN_F_WORK));
    /* Here, not in retire(): a close may happen inside xport_recv(), which still uses it. */
    xport_free(c->xp); /* NULL once handed over */
    free(c);
}
