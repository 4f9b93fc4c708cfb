/*
 * lg_conn.c - the life of one load-generator client connection; see
 * lg_conn.h.
 *
 * NEW -> CONNECTING (TCP) -> OPENING (TLS, WebSocket) -> MQTT (CONNECT
 * sent) -> SUBSCRIBING (subscribers: SUBSCRIBE sent) -> READY. A failed
 * attempt goes to RETRY while connecting is still on and attempts are left,
 * else to FAILED; a refusal (CONNACK, SUBACK, certificate, upgrade) is an
 * answer and is not retried. A READY connection that fails is CLOSED.
 *
 * Runs on the worker thread that owns the connection.
 */
#include "perf/lg_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "perf/lg_sock.h"
#include "perf/lg_worker_types.h"

#define RETRY_GAP_NS 200000000ull /* pause before a connect retry */
#define CONNECTS_PER_LOOP 128u    /* connects started per iteration */
#define CLIENT_ID_MAX 32u
#define RECEIVE_MAX_V5 65535u /* our Receive Maximum: the broker's QoS 1/2 sends in flight */

/* Close @c's socket and move it to @state (RETRY, FAILED or CLOSED). */
static void conn_close(struct lg_worker *w, struct lg_conn *c, uint8_t state)
{
    struct lg_loop *lp = w->_loop;

    RM_ASSERT(state == LG_CONN_RETRY || state == LG_CONN_FAILED || state == LG_CONN_CLOSED);
    if (c->tc.fd >= 0) {
        w->run->opts->transport->close(&c->tc);
        lg_sock_close(c);
    }
    c->flags &= (uint8_t) ~(LG_CONN_F_OUT | LG_CONN_F_EPOLL | LG_CONN_F_PING);
    lg_wire_free_bufs(c);
    if (c->pub != NULL) {
        if (c->pub->state != LG_SCHED_IDLE) {
            lg_sched_detach(lp, c->pub);
        }
        lg_run_drop(&w->live.unacked, c->pub->unacked);
        c->pub->unacked = 0;
    }
    if (c->sub != NULL) {
        lg_run_drop(&w->live.q2_in, c->sub->q2_in);
        c->sub->q2_in = 0;
    }
    c->state = state;
}

/* The attempt in progress failed with @err: retry later or give up. */
static void attempt_failed(struct lg_worker *w, struct lg_conn *c, int err)
{
    struct lg_loop *lp = w->_loop;
    const struct lg_opts *o = w->run->opts;

    RM_ASSERT(err < 0);
    RM_ASSERT(lp->pending > 0);
    switch (-err) {
    case ECONNREFUSED:
        w->st.err_refused++;
        break;
    case ETIMEDOUT:
        w->st.err_timeout++;
        break;
    case ECONNRESET:
    case EPIPE:
        w->st.err_reset++;
        break;
    case EADDRNOTAVAIL:
    case EADDRINUSE:
        w->st.err_addr++;
        break;
    case EMFILE:
    case ENFILE:
        w->st.err_fd++;
        break;
    case ECONNABORTED:
        w->st.err_handshake++;
        break;
    default:
        w->st.err_other++;
        break;
    }
    lp->pending--;
    /* A refusal (CONNACK, SUBACK, certificate, upgrade) is an answer: no retry. */
    if (c->attempts < o->connect_attempts && lp->phase == LG_PHASE_CONNECT && err != -EPROTO &&
        err != -ECONNABORTED) {
        conn_close(w, c, LG_CONN_RETRY);
        c->t_attempt_ns = lp->now + RETRY_GAP_NS * c->attempts;
        return;
    }
    conn_close(w, c, LG_CONN_FAILED);
    lg_run_bump(&w->live.conns_failed, 1);
    lg_run_bump(&w->live.conns_done, 1);
}

void lg_conn_lost(struct lg_worker *w, struct lg_conn *c, int err)
{
    switch (c->state) {
    case LG_CONN_CONNECTING:
    case LG_CONN_OPENING:
    case LG_CONN_MQTT:
    case LG_CONN_SUBSCRIBING:
        attempt_failed(w, c, err == -EPIPE ? -ECONNRESET : err);
        break;
    case LG_CONN_READY:
        if (w->_loop->phase < LG_PHASE_STOP) {
            lg_run_bump(&w->live.conns_lost, 1);
        }
        conn_close(w, c, LG_CONN_CLOSED);
        break;
    default:
        break;
    }
}

/* Connection @c finished connecting (CONNACK, and SUBACK for subscribers). */
static void conn_done_ok(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;

    RM_ASSERT(lp->pending > 0);
    RM_ASSERT(c->state == LG_CONN_MQTT || c->state == LG_CONN_SUBSCRIBING);
    lp->pending--;
    c->state = LG_CONN_READY;
    lg_run_bump(&w->live.conns_ok, 1);
    lg_run_bump(&w->live.conns_done, 1);
    atomic_store_explicit(&w->live.last_ok_ns, lp->now, memory_order_relaxed);
    if (c->rx_len == 0 && c->role == LG_CONN_ROLE_IDLE) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

/* The stream is open: send CONNECT. */
static void send_connect(struct lg_worker *w, struct lg_conn *c)
{
    const struct lg_opts *o = w->run->opts;
    char id[CLIENT_ID_MAX];
    int n;
    struct mqtt_pkt pkt = {.type = MQTT_CONNECT};

    /* Unique per process and client; at most 23 bytes, as 3.1 requires. */
    n = snprintf(id, sizeof(id), "lg%d-%u", (int)getpid() % 100000000, c->client_idx);
    RM_ASSERT(n > 0 && n <= 23);
    pkt.u.connect.version = o->mqtt_version;
    pkt.u.connect.clean_session = !o->persistent;
    pkt.u.connect.keepalive_s = o->keepalive_s;
    pkt.u.connect.client_id.ptr = (const uint8_t *)id;
    pkt.u.connect.client_id.len = (uint32_t)n;
    if (o->mqtt_version == MQTT_V5) {
        /*
         * Session Expiry 0: the session ends with the connection, as clean
         * session does before 5.0 (--persistent: it outlives it). Receive
         * Maximum: let the broker have as many QoS 1/2 deliveries in flight
         * to us as it likes (the window bounds what the publishers send).
         */
        pkt.u.connect.props.has =
            MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) | MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX);
        pkt.u.connect.props.session_expiry = o->persistent ? LG_PERSISTENT_EXPIRY_S : 0u;
        pkt.u.connect.props.receive_max = RECEIVE_MAX_V5;
    }
    c->keepalive_s = o->keepalive_s;
    c->state = LG_CONN_MQTT;
    lg_sock_want_out(w->epfd, c, false);
    lg_conn_queue(w, c, &pkt);
}

void lg_conn_open(struct lg_worker *w, struct lg_conn *c)
{
    int r;

    c->state = LG_CONN_OPENING;
    r = w->run->opts->transport->open(&c->tc);
    if (r > 0) {
        send_connect(w, c);
    } else if (r < 0) {
        attempt_failed(w, c, r);
    } else {
        lg_sock_want_out(w->epfd, c, c->tc.want_out); /* wait for what the handshake needs */
    }
}

void lg_conn_connected(struct lg_worker *w, struct lg_conn *c, int err)
{
    RM_ASSERT(c->state == LG_CONN_CONNECTING);
    if (err < 0) {
        attempt_failed(w, c, err);
        return;
    }
    lg_conn_open(w, c);
}

/* Start one connect attempt for @c. */
static void attempt_start(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;
    int r;

    RM_ASSERT(c->state == LG_CONN_NEW || c->state == LG_CONN_RETRY);
    RM_ASSERT(c->tc.fd < 0);
    c->attempts++;
    c->t_attempt_ns = lp->now;
    c->state = LG_CONN_CONNECTING;
    lp->pending++;
    w->st.attempts++;
    r = lg_sock_connect(w->run->opts, w->epfd, c);
    if (r > 0) {
        lg_conn_open(w, c);
    } else if (r < 0) {
        attempt_failed(w, c, r);
    }
}

void lg_conn_start_due(struct lg_worker *w)
{
    struct lg_loop *lp = w->_loop;
    uint32_t budget = CONNECTS_PER_LOOP;

    while (budget-- > 0 && lp->conn_next < w->nconns && lp->pending < lp->pending_max) {
        if (lp->conn_period_ns > 0) {
            if (lp->conn_due_ns > lp->now) {
                break;
            }
            lp->conn_due_ns += lp->conn_period_ns;
        }
        attempt_start(w, &w->conns[lp->conn_next++]);
    }
}

void lg_conn_on_connack(struct lg_worker *w, struct lg_conn *c, const struct mqtt_connack *ca)
{
    const struct lg_run *run = w->run;
    struct mqtt_sub_entry entry;
    struct mqtt_pkt pkt = {.type = MQTT_SUBSCRIBE};
    const struct lg_group *g;

    if (c->state != LG_CONN_MQTT) {
        w->st.proto_errors++;
        lg_conn_lost(w, c, -EPROTO);
        return;
    }
    if (ca->rc != MQTT_CONNACK_ACCEPTED) {
        w->st.connack_refused++;
        attempt_failed(w, c, -EPROTO); /* a refusal is an answer: no retry */
        return;
    }
    lg_hist_record(&w->conn_lat, w->_loop->now - c->t_attempt_ns);
    /* MQTT 5: the broker's limits bind us [MQTT-3.2.2-21, 3.3.4-7]. */
    if ((ca->props.has & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE)) != 0) {
        c->keepalive_s = ca->props.server_keepalive;
    }
    if (c->pub != NULL && (ca->props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) != 0 &&
        ca->props.receive_max < c->pub->unacked_max) {
        c->pub->unacked_max = ca->props.receive_max;
    }
    if (c->role != LG_CONN_ROLE_SUB) {
        conn_done_ok(w, c);
        return;
    }
    g = &run->groups[c->sub->group];
    entry.filter.ptr = (const uint8_t *)g->filter;
    entry.filter.len = g->filter_len;
    entry.options = run->opts->qos;
    c->sub_pkt_id = (uint16_t)(c->sub_pkt_id % LG_WIRE_PKT_IDS + 1);
    pkt.u.subscribe.pkt_id = c->sub_pkt_id;
    pkt.u.subscribe.count = 1;
    pkt.u.subscribe.entries = &entry;
    c->state = LG_CONN_SUBSCRIBING;
    lg_conn_queue(w, c, &pkt);
}

void lg_conn_on_suback(struct lg_worker *w, struct lg_conn *c, const struct mqtt_suback *sa)
{
    if (c->state != LG_CONN_SUBSCRIBING || sa->pkt_id != c->sub_pkt_id || sa->count != 1) {
        w->st.proto_errors++;
        lg_conn_lost(w, c, -EPROTO);
        return;
    }
    if (sa->rcs[0] >= MQTT_SUBACK_FAILURE) { /* 0x80 before 5.0; any code >= 0x80 in 5.0 */
        w->st.suback_refused++;
        attempt_failed(w, c, -EPROTO);
        return;
    }
    conn_done_ok(w, c);
}

static void sweep_conn(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;
    uint64_t keepalive_ns;

    switch (c->state) {
    case LG_CONN_CONNECTING:
    case LG_CONN_OPENING:
    case LG_CONN_MQTT:
    case LG_CONN_SUBSCRIBING:
        if (lp->now - c->t_attempt_ns >= lp->connect_timeout_ns) {
            attempt_failed(w, c, -ETIMEDOUT);
        }
        break;
    case LG_CONN_RETRY:
        if (lp->phase != LG_PHASE_CONNECT) {
            conn_close(w, c, LG_CONN_FAILED); /* connecting is over: no more tries */
            lg_run_bump(&w->live.conns_failed, 1);
            lg_run_bump(&w->live.conns_done, 1);
        } else if (lp->now >= c->t_attempt_ns && lp->pending < lp->pending_max) {
            attempt_start(w, c);
        }
        break;
    case LG_CONN_READY:
        keepalive_ns = (uint64_t)c->keepalive_s * 1000000000ull;
        if (keepalive_ns == 0) {
            break;
        }
        if ((c->flags & LG_CONN_F_PING) != 0 && lp->now - c->t_ping_ns > keepalive_ns) {
            w->st.ping_timeouts++;
            c->flags &= (uint8_t)~LG_CONN_F_PING;
        }
        /* Ping at 3/4 of the keepalive so the broker never waits the full 1.5x. */
        if ((c->flags & LG_CONN_F_PING) == 0 && lp->now - c->t_last_tx_ns >= keepalive_ns / 4 * 3) {
            if (lg_conn_queue_empty(w, c, MQTT_PINGREQ) == 0) {
                c->flags |= LG_CONN_F_PING;
                c->t_ping_ns = lp->now;
                w->st.pings++;
            }
        }
        break;
    default:
        break;
    }
}

void lg_conn_sweep(struct lg_worker *w)
{
    uint32_t i;

    for (i = 0; i < w->nconns; i++) {
        sweep_conn(w, &w->conns[i]);
    }
}

void lg_conn_shutdown(struct lg_worker *w)
{
    uint32_t i;

    for (i = 0; i < w->nconns; i++) {
        struct lg_conn *c = &w->conns[i];

        if (c->state == LG_CONN_READY && lg_conn_alive(c)) {
            c->flags &= (uint8_t)~LG_CONN_F_OUT;
            if (lg_conn_queue_empty(w, c, MQTT_DISCONNECT) == 0 && lg_conn_alive(c)) {
                lg_conn_flush(w, c);
            }
        }
        if (lg_conn_alive(c)) {
            conn_close(w, c, c->state == LG_CONN_READY ? LG_CONN_CLOSED : LG_CONN_FAILED);
        }
        lg_wire_free_bufs(c);
    }
    w->_loop->ndirty = 0;
}
