/*
 * lg_worker.c - load-generator clients and their worker threads; see
 * lg_worker.h.
 *
 * One worker = one thread = one level-triggered epoll loop. Per iteration it
 * (1) waits for readiness with a timeout taken from its earliest deadline,
 * (2) reads every readable connection into one shared receive buffer and
 * handles whole packets (a partial packet is the only thing copied into
 * connection memory), (3) starts due connects, (4) lets due publishers
 * publish, (5) flushes each connection that has output with one send(),
 * (6) wakes the other workers whose publishers it released, and every
 * SWEEP_NS checks deadlines (connect timeouts, retries, keepalive, window
 * timeouts).
 *
 * Connections speak through a transport (lg_transport.h: tcp, tls, ws,
 * wss). The loop is level-triggered on the socket, so a transport that has
 * already pulled bytes off the socket (decrypted TLS records) says so with
 * rx_more: the connection is read again at once, up to RX_MORE_READS times,
 * then from the rx-more list in the next iteration; and one that has output
 * of its own (a WebSocket pong) sets want_out and is flushed like the rest.
 *
 * Publishers are in exactly one place: the ready ring (may send now), the
 * timed heap (rate pacing: due later), the blocked array (window full, or
 * too many QoS 1/2 awaiting acks), tx-wait (its socket is backed up), or idle.
 *
 * The window: a publisher owns W slots; message seq takes slot seq % W and
 * may be sent only when that slot is free, i.e. the message W before it has
 * been received by all its subscribers (or given up on after
 * --window-timeout-ms). Subscribers, on any worker, count a slot down with a
 * CAS that also checks the slot still belongs to their seq; the one that
 * frees it wakes the publisher's worker (an eventfd write, batched per
 * iteration).
 *
 * Everything here runs on the owning worker thread, except lg_worker_setup /
 * start / set_phase / live_sum / expected / join / free (main thread).
 */
#include "perf/lg_worker.h"

#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"

#define EVENTS_MAX 256u
#define SWEEP_NS 100000000ull      /* deadline checks every 100 ms */
#define WAIT_MAX_NS SWEEP_NS       /* a worker notices phases within this even unwoken */
#define RETRY_GAP_NS 200000000ull  /* pause before a connect retry */
#define RATE_SLACK_NS 100000000ull /* a publisher this far behind its rate skips ahead */
#define CONNECTS_PER_LOOP 128u     /* connects started per iteration */
#define BURST_MAX 64u              /* messages one publisher sends per iteration */
#define UNACKED_MAX 65000u         /* QoS 1/2 in flight per publisher: packet ids are unique */
#define PKT_IDS 65535u
#define TX_HIGH_BYTES (256u * 1024u) /* a publisher waits while its socket backs up this much */
#define TX_MAX_BYTES (64u * 1024u * 1024u)
#define TX_KEEP_BYTES 16384u /* larger output buffers are freed when drained */
#define TX_MIN_BYTES 256u
#define RXBUF_MIN_BYTES (64u * 1024u)
#define PACKET_OVERHEAD 512u /* fixed header, topic length, packet id, slack */
#define CLIENT_ID_MAX 32u
/*
 * Reads in a row while the transport says it holds bytes epoll cannot see
 * (TLS records already decrypted, WebSocket frames already read); past this
 * the connection waits in the rx-more list for the next iteration.
 */
#define RX_MORE_READS 8u
#define RECEIVE_MAX_V5 65535u /* our Receive Maximum: the broker's QoS 1/2 sends in flight */

enum conn_state {
    CS_NEW = 0,     /* not tried yet */
    CS_CONNECTING,  /* TCP connect in progress */
    CS_OPENING,     /* transport handshake (TLS, WebSocket) in progress */
    CS_MQTT,        /* CONNECT sent, waiting for CONNACK */
    CS_SUBSCRIBING, /* SUBSCRIBE sent, waiting for SUBACK */
    CS_READY,       /* connected (and subscribed) */
    CS_RETRY,       /* an attempt failed; the next is due at t_attempt_ns */
    CS_FAILED,      /* every attempt failed */
    CS_CLOSED,      /* lost or closed after connecting */
};

enum conn_role {
    ROLE_IDLE = 0,
    ROLE_PUB,
    ROLE_SUB,
};

enum conn_flag {
    F_DIRTY = 1,   /* in the worker's dirty list */
    F_OUT = 2,     /* EPOLLOUT is armed */
    F_PING = 4,    /* PINGREQ sent, PINGRESP not yet seen */
    F_EPOLL = 8,   /* fd is registered with epoll */
    F_RXMORE = 16, /* in the worker's rx-more list */
};

enum pub_state {
    PS_IDLE = 0,
    PS_READY,
    PS_TIMED,
    PS_BLOCKED,
    PS_TXWAIT,
};

enum pub_block {
    BLK_WINDOW = 1,
    BLK_ACKS,
};

/*
 * One client connection, 112 bytes plus buffers that exist only while
 * needed: output until it is sent (kept for busy clients), input only for a
 * partial packet.
 */
struct lg_conn {
    struct lg_tconn tc;
    uint8_t state;
    uint8_t role;
    uint8_t flags;
    uint8_t attempts;
    uint32_t client_idx;
    uint16_t sub_pkt_id;
    uint16_t keepalive_s; /* ours, or the broker's Server Keep Alive (v5) */
    uint8_t *tx;
    uint32_t tx_off;
    uint32_t tx_len;
    uint32_t tx_cap;
    uint32_t rx_len;
    uint32_t rx_cap;
    uint8_t *rx;
    uint64_t t_attempt_ns; /* attempt start; in CS_RETRY, when to retry */
    uint64_t t_last_tx_ns;
    uint64_t t_ping_ns;
    struct lg_pub *pub;
    struct lg_sub *sub;
};

/* Loop state private to one worker. */
struct loop {
    uint64_t now;
    int phase;

    uint32_t conn_next; /* next never-tried connection */
    uint64_t conn_due_ns;
    uint64_t conn_period_ns;
    uint32_t pending; /* attempts between connect() and CONNACK/SUBACK */
    uint32_t pending_max;

    struct lg_pub **ready; /* ring of npubs */
    uint32_t ready_head;
    uint32_t ready_len;
    struct lg_pub **heap; /* min-heap on due_ns */
    uint32_t heap_len;
    struct lg_pub **blocked;
    uint32_t blocked_len;
    bool recheck;
    bool pubs_started;
    bool pubs_stopped;
    uint64_t pub_period_ns;

    struct lg_conn **dirty;
    uint32_t ndirty;
    struct lg_conn **rxmore; /* transports holding read bytes past RX_MORE_READS */
    uint32_t nrxmore;
    uint64_t wake_mask;

    uint8_t *rxbuf;
    uint32_t rxbuf_bytes;
    uint32_t packet_max;
    uint8_t *payload;

    uint64_t next_sweep_ns;
    uint64_t connect_timeout_ns;
    uint64_t window_timeout_ns;
};

uint64_t lg_worker_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Single-writer counter bump: a plain add that the main thread may read. */
static void bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void drop(_Atomic uint64_t *c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed);

    atomic_store_explicit(c, v >= n ? v - n : 0, memory_order_relaxed);
}

static struct loop *loop_of(struct lg_worker *w)
{
    return w->_priv;
}

static bool measuring(const struct lg_run *run, uint64_t t)
{
    return t >= run->t_meas_start_ns && t < run->t_meas_end_ns;
}

/* ---------------------------------------------------------------- publishers */

static void heap_swap(struct lg_pub **h, uint32_t a, uint32_t b)
{
    struct lg_pub *t = h[a];

    h[a] = h[b];
    h[b] = t;
    h[a]->pos = a;
    h[b]->pos = b;
}

static void heap_up(struct lg_pub **h, uint32_t i)
{
    while (i > 0 && h[(i - 1) / 2]->due_ns > h[i]->due_ns) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct lg_pub **h, uint32_t len, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1;
        uint32_t m = i;

        if (l < len && h[l]->due_ns < h[m]->due_ns) {
            m = l;
        }
        if (l + 1 < len && h[l + 1]->due_ns < h[m]->due_ns) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        heap_swap(h, i, m);
        i = m;
    }
}

/* Take @p out of whatever holds it; it becomes PS_IDLE. */
static void pub_detach(struct loop *lp, struct lg_pub *p)
{
    uint32_t i = p->pos;

    switch (p->state) {
    case PS_TIMED:
        RM_ASSERT(i < lp->heap_len && lp->heap[i] == p);
        lp->heap_len--;
        if (i != lp->heap_len) {
            lp->heap[i] = lp->heap[lp->heap_len];
            lp->heap[i]->pos = i;
            heap_down(lp->heap, lp->heap_len, i);
            heap_up(lp->heap, i);
        }
        break;
    case PS_BLOCKED:
        RM_ASSERT(i < lp->blocked_len && lp->blocked[i] == p);
        lp->blocked_len--;
        if (i != lp->blocked_len) {
            lp->blocked[i] = lp->blocked[lp->blocked_len];
            lp->blocked[i]->pos = i;
        }
        break;
    case PS_READY:
        /* The ring entry stays; it is skipped by state, or reused by pub_ready(). */
        break;
    default:
        break;
    }
    p->state = PS_IDLE;
}

static void pub_ready(struct lg_worker *w, struct lg_pub *p)
{
    struct loop *lp = loop_of(w);

    if (p->state == PS_READY) {
        return;
    }
    pub_detach(lp, p);
    p->state = PS_READY;
    if (p->in_ring) {
        return; /* its earlier entry is still queued */
    }
    RM_ASSERT(lp->ready_len < w->npubs);
    lp->ready[(lp->ready_head + lp->ready_len) % w->npubs] = p;
    lp->ready_len++;
    p->in_ring = true;
}

static void pub_timed(struct lg_worker *w, struct lg_pub *p)
{
    struct loop *lp = loop_of(w);

    pub_detach(lp, p);
    RM_ASSERT(lp->heap_len < w->npubs);
    p->pos = lp->heap_len;
    lp->heap[lp->heap_len++] = p;
    heap_up(lp->heap, p->pos);
    p->state = PS_TIMED;
}

static void pub_block(struct lg_worker *w, struct lg_pub *p, uint8_t why)
{
    struct loop *lp = loop_of(w);

    pub_detach(lp, p);
    RM_ASSERT(lp->blocked_len < w->npubs);
    p->pos = lp->blocked_len;
    lp->blocked[lp->blocked_len++] = p;
    p->state = PS_BLOCKED;
    p->block = why;
}

static uint32_t slot_left(uint64_t v)
{
    return (uint32_t)v;
}

static uint32_t slot_seq(uint64_t v)
{
    return (uint32_t)(v >> 32);
}

/* True when @p's next message has a free window slot and a free packet id. */
static bool pub_can_send(const struct lg_run *run, const struct lg_pub *p, uint8_t *why)
{
    const struct lg_opts *o = run->opts;

    if (o->window > 0 && slot_left(atomic_load_explicit(&p->slots[p->seq_next % o->window],
                                                        memory_order_acquire)) != 0) {
        *why = BLK_WINDOW;
        return false;
    }
    if (o->qos > 0 && p->unacked >= p->unacked_max) {
        *why = BLK_ACKS;
        return false;
    }
    return true;
}

/*
 * A subscriber on worker @w received message @seq of @p: count the slot down
 * if it still holds @seq, and when it reaches zero let the publisher go on.
 */
static void pub_release(struct lg_worker *w, struct lg_pub *p, uint32_t seq)
{
    const uint32_t window = w->run->opts->window;
    _Atomic uint64_t *slot;
    uint64_t v;
    uint64_t nv;

    RM_ASSERT(window > 0);
    slot = &p->slots[seq % window];
    v = atomic_load_explicit(slot, memory_order_relaxed);
    do {
        if (slot_seq(v) != seq || slot_left(v) == 0) {
            return; /* timed out, or the slot moved on */
        }
        nv = v - 1;
    } while (!atomic_compare_exchange_weak_explicit(slot, &v, nv, memory_order_acq_rel,
                                                    memory_order_relaxed));
    if (slot_left(nv) != 0) {
        return;
    }
    if (p->thread == w->idx) {
        if (p->state == PS_BLOCKED && p->block == BLK_WINDOW) {
            pub_ready(w, p);
        }
    } else {
        loop_of(w)->wake_mask |= 1ull << p->thread;
    }
}

/* ---------------------------------------------------------------- output */

static void conn_mark_dirty(struct lg_worker *w, struct lg_conn *c)
{
    struct loop *lp = loop_of(w);

    if ((c->flags & F_DIRTY) == 0) {
        RM_ASSERT(lp->ndirty < w->nconns);
        c->flags |= F_DIRTY;
        lp->dirty[lp->ndirty++] = c;
    }
}

/* Room for @n more output bytes, or NULL (allocation failed or TX_MAX_BYTES). */
static uint8_t *tx_reserve(struct lg_conn *c, uint32_t n)
{
    uint32_t used = c->tx_len - c->tx_off;
    uint32_t cap;
    uint8_t *nb;

    if (c->tx_off > 0 && c->tx_len + n > c->tx_cap) {
        memmove(c->tx, c->tx + c->tx_off, used);
        c->tx_off = 0;
        c->tx_len = used;
    }
    if (c->tx_len + n <= c->tx_cap) {
        return c->tx + c->tx_len;
    }
    if ((uint64_t)used + n > TX_MAX_BYTES) {
        return NULL;
    }
    cap = c->tx_cap > 0 ? c->tx_cap : TX_MIN_BYTES;
    while (cap < used + n) {
        cap *= 2;
    }
    nb = realloc(c->tx, cap);
    if (nb == NULL) {
        return NULL;
    }
    c->tx = nb;
    c->tx_cap = cap;
    return c->tx + c->tx_len;
}

static void conn_set_out(struct lg_worker *w, struct lg_conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

    if (((c->flags & F_OUT) != 0) == on || (c->flags & F_EPOLL) == 0) {
        return;
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_MOD, c->tc.fd, &ev) == 0) {
        c->flags = (uint8_t)(on ? c->flags | F_OUT : c->flags & ~F_OUT);
    }
}

static void conn_close(struct lg_worker *w, struct lg_conn *c, uint8_t state);
static void conn_lost(struct lg_worker *w, struct lg_conn *c, int err);

/* Encode @pkt onto @c's output. Returns 0, or -ENOBUFS after closing @c. */
static int conn_queue(struct lg_worker *w, struct lg_conn *c, const struct mqtt_pkt *pkt)
{
    const uint8_t version = w->run->opts->mqtt_version;
    size_t size = mqtt_encoded_size(pkt, version);
    uint8_t *p;

    RM_ASSERT(size > 0); /* every field the generator sends is within bounds */
    RM_ASSERT(c->state != CS_CLOSED && c->state != CS_FAILED);
    p = tx_reserve(c, (uint32_t)size);
    if (p == NULL) {
        conn_lost(w, c, -ENOBUFS);
        return -ENOBUFS;
    }
    c->tx_len += (uint32_t)mqtt_encode(pkt, version, p, size);
    c->t_last_tx_ns = loop_of(w)->now;
    conn_mark_dirty(w, c);
    return 0;
}

static int conn_queue_ack(struct lg_worker *w, struct lg_conn *c, uint8_t type, uint16_t id)
{
    struct mqtt_pkt pkt = {.type = type, .u.ack.pkt_id = id};

    return conn_queue(w, c, &pkt);
}

static int conn_queue_empty(struct lg_worker *w, struct lg_conn *c, uint8_t type)
{
    struct mqtt_pkt pkt = {.type = type};

    return conn_queue(w, c, &pkt);
}

/* Send what @c has queued; arm EPOLLOUT if the socket is full. */
static void conn_flush(struct lg_worker *w, struct lg_conn *c)
{
    const struct lg_transport *t = w->run->opts->transport;

    while (c->tx_off < c->tx_len) {
        ssize_t n = t->send(&c->tc, c->tx + c->tx_off, c->tx_len - c->tx_off);

        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            conn_set_out(w, c, true);
            return;
        }
        if (n <= 0) {
            conn_lost(w, c, n == 0 ? -EPIPE : (int)n);
            return;
        }
        c->tx_off += (uint32_t)n;
        w->st.tx_bytes += (uint64_t)n;
    }
    c->tx_off = 0;
    c->tx_len = 0;
    if (c->tc.want_out && t->flush != NULL) {
        int r = t->flush(&c->tc); /* a WebSocket pong or close */

        if (r == 0) {
            conn_set_out(w, c, true);
            return;
        }
        if (r < 0) {
            conn_lost(w, c, r);
            return;
        }
    }
    conn_set_out(w, c, false);
    if (c->role == ROLE_IDLE || c->tx_cap > TX_KEEP_BYTES) {
        free(c->tx);
        c->tx = NULL;
        c->tx_cap = 0;
    }
    if (c->pub != NULL && c->pub->state == PS_TXWAIT) {
        c->pub->state = PS_IDLE;
        pub_ready(w, c->pub);
    }
}

/* ---------------------------------------------------------------- connections */

static void conn_free_bufs(struct lg_conn *c)
{
    free(c->tx);
    free(c->rx);
    c->tx = NULL;
    c->rx = NULL;
    c->tx_off = c->tx_len = c->tx_cap = 0;
    c->rx_len = c->rx_cap = 0;
}

/* Close @c's socket and move it to @state (CS_RETRY, CS_FAILED or CS_CLOSED). */
static void conn_close(struct lg_worker *w, struct lg_conn *c, uint8_t state)
{
    struct loop *lp = loop_of(w);

    RM_ASSERT(state == CS_RETRY || state == CS_FAILED || state == CS_CLOSED);
    if (c->tc.fd >= 0) {
        w->run->opts->transport->close(&c->tc);
        close(c->tc.fd); /* also leaves the epoll set */
        c->tc.fd = -1;
    }
    c->flags &= (uint8_t) ~(F_OUT | F_EPOLL | F_PING);
    conn_free_bufs(c);
    if (c->pub != NULL) {
        if (c->pub->state != PS_IDLE) {
            pub_detach(lp, c->pub);
        }
        drop(&w->live.unacked, c->pub->unacked);
        c->pub->unacked = 0;
    }
    if (c->sub != NULL) {
        drop(&w->live.q2_in, c->sub->q2_in);
        c->sub->q2_in = 0;
    }
    c->state = state;
}

/* The attempt in progress failed with @err: retry later or give up. */
static void attempt_failed(struct lg_worker *w, struct lg_conn *c, int err)
{
    struct loop *lp = loop_of(w);
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
        conn_close(w, c, CS_RETRY);
        c->t_attempt_ns = lp->now + RETRY_GAP_NS * c->attempts;
        return;
    }
    conn_close(w, c, CS_FAILED);
    bump(&w->live.conns_failed, 1);
    bump(&w->live.conns_done, 1);
}

static void conn_lost(struct lg_worker *w, struct lg_conn *c, int err)
{
    switch (c->state) {
    case CS_CONNECTING:
    case CS_OPENING:
    case CS_MQTT:
    case CS_SUBSCRIBING:
        attempt_failed(w, c, err == -EPIPE ? -ECONNRESET : err);
        break;
    case CS_READY:
        if (loop_of(w)->phase < LG_PHASE_STOP) {
            bump(&w->live.conns_lost, 1);
        }
        conn_close(w, c, CS_CLOSED);
        break;
    default:
        break;
    }
}

/* Connection @c finished connecting (CONNACK, and SUBACK for subscribers). */
static void conn_done_ok(struct lg_worker *w, struct lg_conn *c)
{
    struct loop *lp = loop_of(w);

    RM_ASSERT(lp->pending > 0);
    RM_ASSERT(c->state == CS_MQTT || c->state == CS_SUBSCRIBING);
    lp->pending--;
    c->state = CS_READY;
    bump(&w->live.conns_ok, 1);
    bump(&w->live.conns_done, 1);
    atomic_store_explicit(&w->live.last_ok_ns, lp->now, memory_order_relaxed);
    if (c->rx_len == 0 && c->role == ROLE_IDLE) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
}

static void stream_ready(struct lg_worker *w, struct lg_conn *c)
{
    const struct lg_opts *o = w->run->opts;
    char id[CLIENT_ID_MAX];
    int n;
    struct mqtt_pkt pkt = {.type = MQTT_CONNECT};

    /* Unique per process and client; at most 23 bytes, as 3.1 requires. */
    n = snprintf(id, sizeof(id), "lg%d-%u", (int)getpid() % 100000000, c->client_idx);
    RM_ASSERT(n > 0 && n <= 23);
    pkt.u.connect.version = o->mqtt_version;
    pkt.u.connect.clean_session = true;
    pkt.u.connect.keepalive_s = o->keepalive_s;
    pkt.u.connect.client_id.ptr = (const uint8_t *)id;
    pkt.u.connect.client_id.len = (uint32_t)n;
    if (o->mqtt_version == MQTT_V5) {
        /*
         * Session Expiry 0: the session ends with the connection, as clean
         * session does before 5.0. Receive Maximum: let the broker have as
         * many QoS 1/2 deliveries in flight to us as it likes (the window
         * bounds what the publishers send).
         */
        pkt.u.connect.props.has =
            MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY) | MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX);
        pkt.u.connect.props.session_expiry = 0;
        pkt.u.connect.props.receive_max = RECEIVE_MAX_V5;
    }
    c->keepalive_s = o->keepalive_s;
    c->state = CS_MQTT;
    conn_set_out(w, c, false);
    conn_queue(w, c, &pkt);
}

static void stream_open(struct lg_worker *w, struct lg_conn *c)
{
    int r;

    c->state = CS_OPENING;
    r = w->run->opts->transport->open(&c->tc);
    if (r > 0) {
        stream_ready(w, c);
    } else if (r < 0) {
        attempt_failed(w, c, r);
    } else {
        conn_set_out(w, c, c->tc.want_out); /* wait for what the handshake needs */
    }
}

static void bind_source(const struct lg_opts *o, struct lg_conn *c, int *err)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    uint32_t span = o->src_last - o->src_first + 1;
    int one = 1;

    src.sin_addr.s_addr = htonl(o->src_first + c->client_idx % span);
    /* Let connect() pick the port per 4-tuple, so each source address has its own 64k. */
    if (setsockopt(c->tc.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
        bind(c->tc.fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        *err = -errno;
    }
}

/* Start one connect attempt for @c. */
static void attempt_start(struct lg_worker *w, struct lg_conn *c)
{
    const struct lg_opts *o = w->run->opts;
    struct loop *lp = loop_of(w);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;
    int err = 0;
    int r;

    RM_ASSERT(c->state == CS_NEW || c->state == CS_RETRY);
    RM_ASSERT(c->tc.fd < 0);
    c->attempts++;
    c->t_attempt_ns = lp->now;
    c->state = CS_CONNECTING;
    lp->pending++;
    w->st.attempts++;

    c->tc.fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->tc.fd < 0) {
        err = -errno;
        goto out;
    }
    /* MQTT packets are small and latency is measured: no Nagle. */
    setsockopt(c->tc.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->src_first != 0) {
        bind_source(o, c, &err);
        if (err < 0) {
            goto out;
        }
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, c->tc.fd, &ev) < 0) {
        err = -errno;
        goto out;
    }
    c->flags |= F_EPOLL | F_OUT;
    r = connect(c->tc.fd, (const struct sockaddr *)&o->addr, o->addr_len);
    if (r == 0) {
        stream_open(w, c);
    } else if (errno != EINPROGRESS) {
        err = -errno;
    }
out:
    if (err < 0) {
        attempt_failed(w, c, err);
    }
}

/* Start due connects, paced by --connect-rate and bounded by the concurrency. */
static void connects_start(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
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

/* ---------------------------------------------------------------- input */

static void on_connack(struct lg_worker *w, struct lg_conn *c, const struct mqtt_connack *ca)
{
    const struct lg_run *run = w->run;
    struct mqtt_sub_entry entry;
    struct mqtt_pkt pkt = {.type = MQTT_SUBSCRIBE};
    const struct lg_group *g;

    if (c->state != CS_MQTT) {
        w->st.proto_errors++;
        conn_lost(w, c, -EPROTO);
        return;
    }
    if (ca->rc != MQTT_CONNACK_ACCEPTED) {
        w->st.connack_refused++;
        attempt_failed(w, c, -EPROTO); /* a refusal is an answer: no retry */
        return;
    }
    lg_hist_record(&w->conn_lat, loop_of(w)->now - c->t_attempt_ns);
    /* MQTT 5: the broker's limits bind us [MQTT-3.2.2-21, 3.3.4-7]. */
    if ((ca->props.has & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE)) != 0) {
        c->keepalive_s = ca->props.server_keepalive;
    }
    if (c->pub != NULL && (ca->props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) != 0 &&
        ca->props.receive_max < c->pub->unacked_max) {
        c->pub->unacked_max = ca->props.receive_max;
    }
    if (c->role != ROLE_SUB) {
        conn_done_ok(w, c);
        return;
    }
    g = &run->groups[c->sub->group];
    entry.filter.ptr = (const uint8_t *)g->filter;
    entry.filter.len = g->filter_len;
    entry.options = run->opts->qos;
    c->sub_pkt_id = (uint16_t)(c->sub_pkt_id % PKT_IDS + 1);
    pkt.u.subscribe.pkt_id = c->sub_pkt_id;
    pkt.u.subscribe.count = 1;
    pkt.u.subscribe.entries = &entry;
    c->state = CS_SUBSCRIBING;
    conn_queue(w, c, &pkt);
}

static void on_suback(struct lg_worker *w, struct lg_conn *c, const struct mqtt_suback *sa)
{
    if (c->state != CS_SUBSCRIBING || sa->pkt_id != c->sub_pkt_id || sa->count != 1) {
        w->st.proto_errors++;
        conn_lost(w, c, -EPROTO);
        return;
    }
    if (sa->rcs[0] >= MQTT_SUBACK_FAILURE) { /* 0x80 before 5.0; any code >= 0x80 in 5.0 */
        w->st.suback_refused++;
        attempt_failed(w, c, -EPROTO);
        return;
    }
    conn_done_ok(w, c);
}

/* A subscriber received @pub's payload: account it. */
static void on_message(struct lg_worker *w, struct lg_conn *c, const struct mqtt_publish *pub)
{
    struct lg_run *run = w->run;
    struct loop *lp = loop_of(w);
    const struct lg_group *g;
    struct lg_msg_stamp s;
    struct lg_pub *p;
    enum lg_msg_verdict v;

    if (c->sub == NULL || !lg_msg_stamp_get(pub->payload.ptr, pub->payload.len, &s) ||
        s.pub_id >= run->npubs) {
        w->st.bogus++;
        return;
    }
    p = &run->pubs[s.pub_id];
    g = &run->groups[c->sub->group];
    if (p->group != c->sub->group ||
        s.seq >= atomic_load_explicit(&p->sent_total, memory_order_acquire)) {
        w->st.bogus++;
        return;
    }
    v = lg_msg_track_note(&c->sub->tracks[s.pub_id - g->pub_first], s.seq, pub->dup);
    if (v == LG_MSG_DUP) {
        return;
    }
    bump(&w->live.recv, 1);
    if (measuring(run, lp->now)) {
        bump(&w->live.recv_meas, 1);
    }
    if (measuring(run, s.sent_ns)) {
        lg_hist_record(&w->lat, lp->now > s.sent_ns ? lp->now - s.sent_ns : 0);
    }
    if (run->opts->window > 0) {
        pub_release(w, p, s.seq);
    }
}

static void on_publish(struct lg_worker *w, struct lg_conn *c, const struct mqtt_publish *pub)
{
    if (c->state != CS_READY || c->role != ROLE_SUB) {
        w->st.proto_errors++;
    } else {
        on_message(w, c, pub);
    }
    if (pub->qos == 1) {
        conn_queue_ack(w, c, MQTT_PUBACK, pub->pkt_id);
    } else if (pub->qos == 2) {
        if (c->sub != NULL) {
            c->sub->q2_in++;
            bump(&w->live.q2_in, 1);
        }
        conn_queue_ack(w, c, MQTT_PUBREC, pub->pkt_id);
    }
}

/* PUBACK (QoS 1) or PUBCOMP (QoS 2): the broker has the message for good. */
static void on_final_ack(struct lg_worker *w, struct lg_conn *c, uint16_t id)
{
    struct lg_pub *p = c->pub;

    if (p == NULL || p->unacked == 0) {
        w->st.proto_errors++;
        return;
    }
    /* Acks come in publish order [MQTT-4.6.0-2, -3]; ids are seq % 65535 + 1. */
    if (id != (uint16_t)(p->acks % PKT_IDS + 1)) {
        w->st.ack_order_errors++;
    }
    p->acks++;
    p->unacked--;
    drop(&w->live.unacked, 1);
    if (p->state == PS_BLOCKED && p->block == BLK_ACKS) {
        pub_ready(w, p);
    }
}

/* MQTT 5 DISCONNECT from the broker: it is closing the connection, and says why. */
static void on_disconnect(struct lg_worker *w, struct lg_conn *c, uint8_t rc)
{
    static atomic_bool told;

    w->st.server_disconnects++;
    if (!atomic_exchange(&told, true)) {
        fprintf(stderr, "ringmq-loadgen: the broker sent DISCONNECT with reason code 0x%02x%s\n",
                rc, c->state == CS_READY ? "" : " while connecting");
    }
    conn_lost(w, c, -ECONNRESET);
}

static void on_packet(struct lg_worker *w, struct lg_conn *c, const struct mqtt_pkt *pkt)
{
    const uint8_t qos = w->run->opts->qos;

    switch (pkt->type) {
    case MQTT_CONNACK:
        on_connack(w, c, &pkt->u.connack);
        break;
    case MQTT_SUBACK:
        on_suback(w, c, &pkt->u.suback);
        break;
    case MQTT_PUBLISH:
        on_publish(w, c, &pkt->u.publish);
        break;
    case MQTT_PUBACK:
        if (qos != 1) {
            w->st.proto_errors++;
            break;
        }
        if (pkt->u.ack.rc >= MQTT_RC_UNSPECIFIED) {
            w->st.pub_refused++; /* v5: the broker did not take the message */
        }
        on_final_ack(w, c, pkt->u.ack.pkt_id);
        break;
    case MQTT_PUBREC:
        if (pkt->u.ack.rc >= MQTT_RC_UNSPECIFIED) {
            /* v5: refused; the exchange ends here, no PUBREL [MQTT-4.3.3-4 ff.] */
            w->st.pub_refused++;
            if (qos != 2) {
                w->st.proto_errors++;
                break;
            }
            on_final_ack(w, c, pkt->u.ack.pkt_id);
            break;
        }
        conn_queue_ack(w, c, MQTT_PUBREL, pkt->u.ack.pkt_id);
        break;
    case MQTT_PUBCOMP:
        if (qos != 2) {
            w->st.proto_errors++;
            break;
        }
        on_final_ack(w, c, pkt->u.ack.pkt_id);
        break;
    case MQTT_PUBREL:
        if (c->sub != NULL && c->sub->q2_in > 0) {
            c->sub->q2_in--;
            drop(&w->live.q2_in, 1);
        } else {
            w->st.proto_errors++;
        }
        conn_queue_ack(w, c, MQTT_PUBCOMP, pkt->u.ack.pkt_id);
        break;
    case MQTT_PINGRESP:
        c->flags &= (uint8_t)~F_PING;
        w->st.pongs++;
        break;
    case MQTT_DISCONNECT:
        if (w->run->opts->mqtt_version == MQTT_V5) {
            on_disconnect(w, c, pkt->u.ack.rc);
            break;
        }
        w->st.proto_errors++; /* a 3.1.1 broker never sends one */
        conn_lost(w, c, -EPROTO);
        break;
    default:
        w->st.proto_errors++;
        conn_lost(w, c, -EPROTO);
        break;
    }
}

/* Keep @n bytes of a partial packet in @c's own memory. Returns 0 or -ENOMEM. */
static int keep_partial(struct lg_conn *c, const uint8_t *b, uint32_t n)
{
    if (n > c->rx_cap) {
        uint8_t *nb = realloc(c->rx, n);

        if (nb == NULL) {
            return -ENOMEM;
        }
        c->rx = nb;
        c->rx_cap = n;
    }
    memmove(c->rx, b, n);
    c->rx_len = n;
    return 0;
}

static bool conn_alive(const struct lg_conn *c)
{
    return c->tc.fd >= 0;
}

/* Read what @c has, handle every whole packet, keep the partial tail. */
static void conn_read(struct lg_worker *w, struct lg_conn *c)
{
    struct loop *lp = loop_of(w);
    const struct lg_opts *o = w->run->opts;
    uint8_t *buf = lp->rxbuf;
    uint32_t have = c->rx_len;
    uint32_t off = 0;
    ssize_t n;

    RM_ASSERT(have <= lp->packet_max);
    RM_ASSERT(lp->rxbuf_bytes >= 2 * lp->packet_max);
    if (have > 0) {
        memcpy(buf, c->rx, have);
    }
    n = o->transport->recv(&c->tc, buf + have, lp->rxbuf_bytes - have);
    if (c->tc.want_out) {
        conn_mark_dirty(w, c); /* the transport has something to say (a pong) */
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
        return;
    }
    if (n <= 0) {
        conn_lost(w, c, n == 0 ? -ECONNRESET : (int)n);
        return;
    }
    w->st.rx_bytes += (uint64_t)n;
    have += (uint32_t)n;
    c->rx_len = 0;
    /* Each round consumes a whole packet of at least two bytes. */
    while (off < have) {
        struct mqtt_fixed fh;
        struct mqtt_pkt pkt;
        int r = mqtt_fixed_parse(buf + off, have - off, lp->packet_max, &fh);

        if (r == 0 || (r > 0 && (uint64_t)fh.hdr_bytes + fh.body_bytes > have - off)) {
            break;
        }
        if (r < 0 || mqtt_decode_any(&fh, buf + off + fh.hdr_bytes, o->mqtt_version, &pkt) < 0) {
            w->st.proto_errors++;
            conn_lost(w, c, -EPROTO);
            return;
        }
        on_packet(w, c, &pkt);
        if (!conn_alive(c)) {
            return;
        }
        off += fh.hdr_bytes + fh.body_bytes;
    }
    if (off < have && keep_partial(c, buf + off, have - off) < 0) {
        conn_lost(w, c, -ENOMEM);
    }
}

/* Read @c, and again while its transport holds bytes; past RX_MORE_READS, next iteration. */
static void conn_read_all(struct lg_worker *w, struct lg_conn *c)
{
    struct loop *lp = loop_of(w);
    uint32_t reads = 0;

    do {
        conn_read(w, c);
        reads++;
    } while (conn_alive(c) && c->tc.rx_more && reads < RX_MORE_READS);
    if (conn_alive(c) && c->tc.rx_more && (c->flags & F_RXMORE) == 0) {
        RM_ASSERT(lp->nrxmore < w->nconns);
        c->flags |= F_RXMORE;
        lp->rxmore[lp->nrxmore++] = c;
    }
}

/* Read the connections whose transports still held bytes after their last turn. */
static void rx_more_run(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    uint32_t n = lp->nrxmore;
    uint32_t i;

    /* Each entry re-adds at most itself, at an index <= its own: compaction in place. */
    lp->nrxmore = 0;
    for (i = 0; i < n; i++) {
        struct lg_conn *c = lp->rxmore[i];

        c->flags &= (uint8_t)~F_RXMORE;
        if (conn_alive(c) && c->tc.rx_more) {
            lp->now = lg_worker_now_ns();
            conn_read_all(w, c);
        }
    }
}

static void conn_event(struct lg_worker *w, struct lg_conn *c, uint32_t events)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (!conn_alive(c)) {
        return; /* closed earlier in this batch */
    }
    if (c->state == CS_CONNECTING) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) {
            return;
        }
        if (getsockopt(c->tc.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) {
            err = errno;
        }
        if (err != 0) {
            attempt_failed(w, c, -err);
            return;
        }
        stream_open(w, c);
        return;
    }
    if (c->state == CS_OPENING) {
        stream_open(w, c);
        return;
    }
    if ((events & EPOLLIN) != 0) {
        /* Latency is stamped per read, not per batch of events (vDSO: ~20 ns). */
        loop_of(w)->now = lg_worker_now_ns();
        conn_read_all(w, c);
    } else if ((events & (EPOLLERR | EPOLLHUP)) != 0) {
        if (getsockopt(c->tc.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0) {
            err = ECONNRESET;
        }
        conn_lost(w, c, -err);
        return;
    }
    if ((events & EPOLLOUT) != 0 && conn_alive(c)) {
        conn_flush(w, c);
    }
}

/* ---------------------------------------------------------------- publishing */

static void publish_one(struct lg_worker *w, struct lg_pub *p)
{
    struct lg_run *run = w->run;
    const struct lg_opts *o = run->opts;
    struct loop *lp = loop_of(w);
    const struct lg_group *g = &run->groups[p->group];
    const uint32_t seq = p->seq_next;
    struct lg_msg_stamp s = {.seq = seq, .pub_id = p->id, .sent_ns = lp->now};
    struct mqtt_pkt pkt = {.type = MQTT_PUBLISH};

    lg_msg_stamp_put(lp->payload, &s);
    pkt.u.publish.qos = o->qos;
    pkt.u.publish.topic.ptr = (const uint8_t *)g->topic;
    pkt.u.publish.topic.len = g->topic_len;
    pkt.u.publish.pkt_id = o->qos > 0 ? (uint16_t)(seq % PKT_IDS + 1) : 0;
    pkt.u.publish.payload.ptr = lp->payload;
    pkt.u.publish.payload.len = o->payload_bytes;
    if (conn_queue(w, p->conn, &pkt) < 0) {
        return;
    }
    if (o->window > 0) {
        uint32_t i = seq % o->window;

        p->sent_ns[i] = lp->now;
        atomic_store_explicit(&p->slots[i], (uint64_t)seq << 32 | g->fan, memory_order_release);
    }
    if (o->qos > 0) {
        p->unacked++;
        bump(&w->live.unacked, 1);
    }
    p->seq_next = seq + 1;
    atomic_store_explicit(&p->sent_total, p->seq_next, memory_order_release);
    bump(&w->live.sent, 1);
    if (measuring(run, lp->now)) {
        bump(&w->live.sent_meas, 1);
    }
    if (lp->pub_period_ns > 0) {
        p->due_ns += lp->pub_period_ns;
        if (p->due_ns + RATE_SLACK_NS < lp->now) {
            p->due_ns = lp->now;
            w->st.rate_lag++;
        }
    }
}

/* Let @p send what its window, acks, rate and socket allow (at most BURST_MAX). */
static void pub_run(struct lg_worker *w, struct lg_pub *p)
{
    struct lg_run *run = w->run;
    struct loop *lp = loop_of(w);
    uint32_t i;
    uint8_t why;

    for (i = 0; i < BURST_MAX; i++) {
        if (lp->phase != LG_PHASE_RUN || lp->now >= run->t_meas_end_ns ||
            p->conn->state != CS_READY) {
            pub_detach(lp, p);
            return;
        }
        if (!pub_can_send(run, p, &why)) {
            pub_block(w, p, why);
            return;
        }
        if (lp->pub_period_ns > 0 && p->due_ns > lp->now) {
            pub_timed(w, p);
            return;
        }
        if (p->conn->tx_len - p->conn->tx_off >= TX_HIGH_BYTES) {
            pub_detach(lp, p);
            p->state = PS_TXWAIT;
            return;
        }
        publish_one(w, p);
        if (!conn_alive(p->conn)) {
            return;
        }
    }
    pub_ready(w, p); /* burst used up: again next iteration */
}

static void pubs_start(struct lg_worker *w)
{
    struct lg_run *run = w->run;
    struct loop *lp = loop_of(w);
    uint32_t i;

    lp->pubs_started = true;
    for (i = 0; i < w->npubs; i++) {
        struct lg_pub *p = w->pubs[i];

        if (p->conn->state != CS_READY) {
            continue;
        }
        /* Rate-paced publishers start spread over one period, not in lockstep. */
        p->due_ns = run->t_pub_start_ns + lp->pub_period_ns * p->id / run->npubs;
        if (lp->pub_period_ns > 0) {
            pub_timed(w, p);
        } else {
            pub_ready(w, p);
        }
    }
}

static void pubs_stop(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    uint32_t i;

    lp->pubs_stopped = true;
    for (i = 0; i < w->npubs; i++) {
        pub_detach(lp, w->pubs[i]);
        w->pubs[i]->in_ring = false;
    }
    lp->ready_len = 0;
}

/* One pass over the publishers that may send now. */
static void pubs_run(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    uint32_t n;

    while (lp->heap_len > 0 && lp->heap[0]->due_ns <= lp->now) {
        pub_ready(w, lp->heap[0]);
    }
    if (lp->recheck) {
        uint32_t i = 0;
        uint8_t why;

        lp->recheck = false;
        while (i < lp->blocked_len) {
            struct lg_pub *p = lp->blocked[i];

            if (pub_can_send(w->run, p, &why)) {
                pub_ready(w, p); /* swaps the last blocked one into i */
            } else {
                i++;
            }
        }
    }
    /* Only those ready at the start: a publisher re-queued by its burst waits a turn. */
    for (n = lp->ready_len; n > 0; n--) {
        struct lg_pub *p = lp->ready[lp->ready_head];

        lp->ready_head = (lp->ready_head + 1) % w->npubs;
        lp->ready_len--;
        p->in_ring = false;
        if (p->state != PS_READY) {
            continue; /* detached while queued */
        }
        p->state = PS_IDLE;
        pub_run(w, p);
    }
}

/* ---------------------------------------------------------------- deadlines */

static void sweep_conn(struct lg_worker *w, struct lg_conn *c)
{
    struct loop *lp = loop_of(w);
    uint64_t keepalive_ns;

    switch (c->state) {
    case CS_CONNECTING:
    case CS_OPENING:
    case CS_MQTT:
    case CS_SUBSCRIBING:
        if (lp->now - c->t_attempt_ns >= lp->connect_timeout_ns) {
            attempt_failed(w, c, -ETIMEDOUT);
        }
        break;
    case CS_RETRY:
        if (lp->phase != LG_PHASE_CONNECT) {
            conn_close(w, c, CS_FAILED); /* connecting is over: no more tries */
            bump(&w->live.conns_failed, 1);
            bump(&w->live.conns_done, 1);
        } else if (lp->now >= c->t_attempt_ns && lp->pending < lp->pending_max) {
            attempt_start(w, c);
        }
        break;
    case CS_READY:
        keepalive_ns = (uint64_t)c->keepalive_s * 1000000000ull;
        if (keepalive_ns == 0) {
            break;
        }
        if ((c->flags & F_PING) != 0 && lp->now - c->t_ping_ns > keepalive_ns) {
            w->st.ping_timeouts++;
            c->flags &= (uint8_t)~F_PING;
        }
        /* Ping at 3/4 of the keepalive so the broker never waits the full 1.5x. */
        if ((c->flags & F_PING) == 0 && lp->now - c->t_last_tx_ns >= keepalive_ns / 4 * 3) {
            if (conn_queue_empty(w, c, MQTT_PINGREQ) == 0) {
                c->flags |= F_PING;
                c->t_ping_ns = lp->now;
                w->st.pings++;
            }
        }
        break;
    default:
        break;
    }
}

/* Give up on messages outstanding past --window-timeout-ms. */
static void sweep_windows(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    const uint32_t window = w->run->opts->window;
    uint32_t i = 0;

    if (window == 0) {
        return;
    }
    while (i < lp->blocked_len) {
        struct lg_pub *p = lp->blocked[i];
        uint32_t k = p->seq_next % window;
        uint64_t v = atomic_load_explicit(&p->slots[k], memory_order_acquire);
        bool freed = false;

        while (p->block == BLK_WINDOW && slot_left(v) != 0 &&
               lp->now - p->sent_ns[k] >= lp->window_timeout_ns) {
            if (atomic_compare_exchange_weak_explicit(&p->slots[k], &v, v & 0xffffffff00000000ull,
                                                      memory_order_acq_rel, memory_order_acquire)) {
                w->st.window_timeouts++;
                freed = true;
                break;
            }
        }
        if (freed || slot_left(v) == 0) {
            lp->recheck = true;
        }
        i++;
    }
}

static void sweep(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    uint32_t i;

    for (i = 0; i < w->nconns; i++) {
        sweep_conn(w, &w->conns[i]);
    }
    sweep_windows(w);
    lp->recheck = true; /* belt and braces against a lost cross-worker wake-up */
    lp->next_sweep_ns = lp->now + SWEEP_NS;
}

/* ---------------------------------------------------------------- the loop */

static void flush_dirty(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    uint32_t i;

    for (i = 0; i < lp->ndirty; i++) {
        struct lg_conn *c = lp->dirty[i];

        c->flags &= (uint8_t)~F_DIRTY;
        if (conn_alive(c) && c->state != CS_CONNECTING && (c->flags & F_OUT) == 0) {
            conn_flush(w, c);
        }
    }
    lp->ndirty = 0;
}

static void wake_others(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    const uint64_t one = 1;

    while (lp->wake_mask != 0) {
        uint32_t t = (uint32_t)__builtin_ctzll(lp->wake_mask);

        lp->wake_mask &= lp->wake_mask - 1;
        RM_ASSERT(t < w->run->nworkers && t != w->idx);
        if (write(w->run->workers[t].evfd, &one, sizeof(one)) < 0) {
            /* EAGAIN: the counter is saturated, so it is awake anyway. */
        }
    }
}

/* Nanoseconds until the earliest thing this worker must do unprompted. */
static uint64_t wait_ns(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);
    uint64_t until = lp->next_sweep_ns;

    if (lp->ready_len > 0 || lp->recheck || lp->nrxmore > 0) {
        return 0;
    }
    if (lp->heap_len > 0 && lp->heap[0]->due_ns < until) {
        until = lp->heap[0]->due_ns;
    }
    if (lp->phase == LG_PHASE_CONNECT && lp->conn_next < w->nconns &&
        lp->pending < lp->pending_max && lp->conn_due_ns < until) {
        until = lp->conn_due_ns;
    }
    if (until <= lp->now) {
        return 0;
    }
    return until - lp->now > WAIT_MAX_NS ? WAIT_MAX_NS : until - lp->now;
}

static void phase_step(struct lg_worker *w)
{
    struct loop *lp = loop_of(w);

    lp->phase = atomic_load_explicit(&w->run->phase, memory_order_acquire);
    if (lp->phase == LG_PHASE_CONNECT) {
        connects_start(w);
    }
    if (lp->phase == LG_PHASE_RUN && !lp->pubs_started) {
        pubs_start(w);
    }
    if (lp->phase >= LG_PHASE_DRAIN && !lp->pubs_stopped) {
        pubs_stop(w);
    }
}

/* Say goodbye properly: DISCONNECT where connected, then close everything. */
static void shutdown_conns(struct lg_worker *w)
{
    uint32_t i;

    for (i = 0; i < w->nconns; i++) {
        struct lg_conn *c = &w->conns[i];

        if (c->state == CS_READY && conn_alive(c)) {
            c->flags &= (uint8_t)~F_OUT;
            if (conn_queue_empty(w, c, MQTT_DISCONNECT) == 0 && conn_alive(c)) {
                conn_flush(w, c);
            }
        }
        if (conn_alive(c)) {
            conn_close(w, c, c->state == CS_READY ? CS_CLOSED : CS_FAILED);
        }
        conn_free_bufs(c);
    }
    loop_of(w)->ndirty = 0;
}

static void *worker_main(void *arg)
{
    struct lg_worker *w = arg;
    struct loop *lp = loop_of(w);
    struct epoll_event evs[EVENTS_MAX];
    uint64_t timeout_ns = 0;

    for (;;) {
        struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000ull),
                              .tv_nsec = (long)(timeout_ns % 1000000000ull)};
        int n = epoll_pwait2(w->epfd, evs, EVENTS_MAX, &ts, NULL);
        int i;

        lp->now = lg_worker_now_ns();
        for (i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;

                if (read(w->evfd, &v, sizeof(v)) < 0) {
                    /* EAGAIN: already drained */
                }
                lp->recheck = true;
                continue;
            }
            conn_event(w, evs[i].data.ptr, evs[i].events);
        }
        if (lp->nrxmore > 0) {
            rx_more_run(w);
        }
        phase_step(w);
        if (lp->phase == LG_PHASE_STOP) {
            break;
        }
        lp->now = lg_worker_now_ns(); /* send stamps: after the reads above */
        pubs_run(w);
        flush_dirty(w);
        wake_others(w);
        if (lp->now >= lp->next_sweep_ns) {
            sweep(w);
            flush_dirty(w);
        }
        w->st.loops++;
        timeout_ns = wait_ns(w);
    }
    shutdown_conns(w);
    if (w->run->opts->transport->thread_done != NULL) {
        w->run->opts->transport->thread_done();
    }
    return NULL;
}

/* ---------------------------------------------------------------- setup (main thread) */

static char *dup_printf_topic(const char *prefix, const char *scenario, long n)
{
    char buf[LG_OPTS_TOPIC_PREFIX_MAX + 64];
    int len;
    char *s;

    if (n >= 0) {
        len = snprintf(buf, sizeof(buf), "%s/%s/%ld", prefix, scenario, n);
    } else {
        len = snprintf(buf, sizeof(buf), "%s/%s", prefix, scenario);
    }
    RM_ASSERT(len > 0 && (size_t)len < sizeof(buf));
    s = malloc((size_t)len + 1);
    if (s != NULL) {
        memcpy(s, buf, (size_t)len + 1);
    }
    return s;
}

static int groups_setup(struct lg_run *run)
{
    const struct lg_opts *o = run->opts;
    uint32_t i;

    run->ngroups = o->scenario == LG_SCENARIO_CONN  ? 0
                   : o->scenario == LG_SCENARIO_P2P ? o->pairs
                                                    : 1;
    if (run->ngroups == 0) {
        return 0;
    }
    run->groups = calloc(run->ngroups, sizeof(*run->groups));
    if (run->groups == NULL) {
        return -ENOMEM;
    }
    for (i = 0; i < run->ngroups; i++) {
        struct lg_group *g = &run->groups[i];

        g->topic = dup_printf_topic(o->topic_prefix, o->scenario_name,
                                    o->scenario == LG_SCENARIO_P2P ? (long)i : -1);
        if (g->topic == NULL) {
            return -ENOMEM;
        }
        g->topic_len = (uint32_t)strlen(g->topic);
        g->filter = g->topic;
        g->filter_len = g->topic_len;
        if (o->scenario == LG_SCENARIO_P2P) {
            g->pub_first = i;
            g->pub_count = 1;
            g->sub_count = 1;
        } else {
            g->pub_first = 0;
            g->pub_count = o->pubs;
            g->sub_count = o->subs + o->shared;
        }
        g->shared = o->shared > 0;
        g->fan = g->shared ? 1 : g->sub_count;
        if (g->shared) {
            size_t n = strlen("$share/lg/") + g->topic_len;

            g->filter = malloc(n + 1);
            if (g->filter == NULL) {
                return -ENOMEM;
            }
            snprintf(g->filter, n + 1, "$share/lg/%s", g->topic);
            g->filter_len = (uint32_t)n;
        }
    }
    return 0;
}

/* Which worker runs client @idx; p2p keeps each pair on one worker. */
static uint32_t placement(const struct lg_run *run, uint32_t idx)
{
    if (run->opts->scenario == LG_SCENARIO_P2P) {
        return (idx / 2) % run->nworkers;
    }
    return idx % run->nworkers;
}

/*
 * Client order: p2p pairs as (sub i, pub i); fanout/fanin subscribers first,
 * then publishers; conn all idle. @role/@id say what client @idx is.
 */
static void client_kind(const struct lg_run *run, uint32_t idx, uint8_t *role, uint32_t *id)
{
    const struct lg_opts *o = run->opts;

    switch (o->scenario) {
    case LG_SCENARIO_CONN:
        *role = ROLE_IDLE;
        *id = idx;
        break;
    case LG_SCENARIO_P2P:
        *role = (idx % 2 == 0) ? ROLE_SUB : ROLE_PUB;
        *id = idx / 2;
        break;
    default:
        if (idx < run->nsubs) {
            *role = ROLE_SUB;
            *id = idx;
        } else {
            *role = ROLE_PUB;
            *id = idx - run->nsubs;
        }
        break;
    }
}

static int pubs_subs_setup(struct lg_run *run)
{
    const struct lg_opts *o = run->opts;
    uint32_t i;

    run->npubs = o->scenario == LG_SCENARIO_P2P ? o->pairs : o->pubs;
    run->nsubs = o->scenario == LG_SCENARIO_P2P ? o->pairs : o->subs + o->shared;
    if (run->npubs > 0) {
        run->pubs = calloc(run->npubs, sizeof(*run->pubs));
        if (run->pubs == NULL) {
            return -ENOMEM;
        }
    }
    if (run->nsubs > 0) {
        run->subs = calloc(run->nsubs, sizeof(*run->subs));
        if (run->subs == NULL) {
            return -ENOMEM;
        }
    }
    for (i = 0; i < run->npubs; i++) {
        struct lg_pub *p = &run->pubs[i];

        p->id = i;
        p->group = o->scenario == LG_SCENARIO_P2P ? i : 0;
        p->unacked_max = UNACKED_MAX;
        if (o->window > 0) {
            p->sent_ns = calloc(o->window, sizeof(*p->sent_ns));
            p->slots = calloc(o->window, sizeof(*p->slots));
            if (p->sent_ns == NULL || p->slots == NULL) {
                return -ENOMEM;
            }
        }
    }
    for (i = 0; i < run->nsubs; i++) {
        struct lg_sub *s = &run->subs[i];

        s->id = i;
        s->group = o->scenario == LG_SCENARIO_P2P ? i : 0;
        s->tracks = calloc(run->groups[s->group].pub_count, sizeof(*s->tracks));
        if (s->tracks == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int worker_alloc(struct lg_run *run, struct lg_worker *w)
{
    const struct lg_opts *o = run->opts;
    struct loop *lp;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    uint32_t packet;
    uint32_t i;

    lp = calloc(1, sizeof(*lp));
    if (lp == NULL) {
        return -ENOMEM;
    }
    w->_priv = lp;
    lg_hist_init(&w->lat);
    lg_hist_init(&w->conn_lat);
    w->conns = calloc(w->nconns > 0 ? w->nconns : 1, sizeof(*w->conns));
    w->pubs = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*w->pubs));
    lp->ready = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*lp->ready));
    lp->heap = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*lp->heap));
    lp->blocked = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*lp->blocked));
    lp->dirty = calloc(w->nconns > 0 ? w->nconns : 1, sizeof(*lp->dirty));
    lp->rxmore = calloc(w->nconns > 0 ? w->nconns : 1, sizeof(*lp->rxmore));
    packet = o->payload_bytes + PACKET_OVERHEAD + LG_OPTS_TOPIC_PREFIX_MAX + 64;
    lp->rxbuf_bytes = 2 * packet > RXBUF_MIN_BYTES ? 2 * packet : RXBUF_MIN_BYTES;
    lp->packet_max = lp->rxbuf_bytes / 2;
    lp->rxbuf = malloc(lp->rxbuf_bytes);
    lp->payload = calloc(1, o->payload_bytes);
    if (w->conns == NULL || w->pubs == NULL || lp->ready == NULL || lp->heap == NULL ||
        lp->blocked == NULL || lp->dirty == NULL || lp->rxmore == NULL || lp->rxbuf == NULL ||
        lp->payload == NULL) {
        return -ENOMEM;
    }
    for (i = 0; i < w->nconns; i++) {
        w->conns[i].tc.fd = -1;
    }
    /* Filler after the stamp: a recognisable pattern, not zeros a broker might elide. */
    memset(lp->payload, 'm', o->payload_bytes);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->evfd < 0) {
        return -errno;
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0) {
        return -errno;
    }
    lp->pending_max = (o->connect_concurrency + run->nworkers - 1) / run->nworkers;
    if (o->connect_rate > 0) {
        lp->conn_period_ns = (uint64_t)(1e9 * run->nworkers / o->connect_rate);
    }
    if (o->rate > 0) {
        lp->pub_period_ns = (uint64_t)(1e9 / o->rate);
        if (lp->pub_period_ns == 0) {
            lp->pub_period_ns = 1;
        }
    }
    lp->connect_timeout_ns = (uint64_t)(o->connect_timeout_s * 1e9);
    lp->window_timeout_ns = (uint64_t)o->window_timeout_ms * 1000000ull;
    return 0;
}

int lg_worker_setup(struct lg_run *run, const struct lg_opts *opts)
{
    uint32_t *fill = NULL;
    uint32_t *pfill = NULL;
    uint32_t i;
    int ret;

    RM_ASSERT(run != NULL && opts != NULL);
    RM_ASSERT(opts->threads >= 1 && opts->threads <= LG_OPTS_THREADS_MAX);
    memset(run, 0, sizeof(*run));
    run->opts = opts;
    run->nclients = lg_opts_clients(opts);
    run->nworkers = opts->threads;
    atomic_init(&run->phase, LG_PHASE_CONNECT);

    ret = groups_setup(run);
    if (ret < 0) {
        goto out;
    }
    ret = pubs_subs_setup(run);
    if (ret < 0) {
        goto out;
    }
    ret = -ENOMEM;
    run->workers = calloc(run->nworkers, sizeof(*run->workers));
    fill = calloc(run->nworkers, sizeof(*fill));
    pfill = calloc(run->nworkers, sizeof(*pfill));
    if (run->workers == NULL || fill == NULL || pfill == NULL) {
        goto out;
    }
    /* Count, allocate, then fill each worker's connections. */
    for (i = 0; i < run->nclients; i++) {
        struct lg_worker *w = &run->workers[placement(run, i)];
        uint8_t role;
        uint32_t id;

        client_kind(run, i, &role, &id);
        w->nconns++;
        if (role == ROLE_PUB) {
            w->npubs++;
        }
    }
    for (i = 0; i < run->nworkers; i++) {
        run->workers[i].run = run;
        run->workers[i].idx = i;
        run->workers[i].epfd = -1;
        run->workers[i].evfd = -1;
    }
    for (i = 0; i < run->nworkers; i++) {
        ret = worker_alloc(run, &run->workers[i]);
        if (ret < 0) {
            goto out;
        }
    }
    for (i = 0; i < run->nclients; i++) {
        uint32_t t = placement(run, i);
        struct lg_worker *w = &run->workers[t];
        struct lg_conn *c = &w->conns[fill[t]++];
        uint8_t role;
        uint32_t id;

        client_kind(run, i, &role, &id);
        c->tc.fd = -1;
        c->client_idx = i;
        c->role = role;
        if (role == ROLE_PUB) {
            c->pub = &run->pubs[id];
            c->pub->conn = c;
            c->pub->thread = t;
            w->pubs[pfill[t]++] = c->pub;
        } else if (role == ROLE_SUB) {
            c->sub = &run->subs[id];
            c->sub->conn = c;
            c->sub->thread = t;
        }
    }
    ret = 0;
out:
    free(fill);
    free(pfill);
    if (ret < 0) {
        lg_worker_free(run);
    }
    return ret;
}

int lg_worker_start(struct lg_run *run)
{
    uint64_t now = lg_worker_now_ns();
    uint32_t i;
    int ret = 0;

    RM_ASSERT(run != NULL && run->workers != NULL);
    RM_ASSERT(atomic_load(&run->phase) == LG_PHASE_CONNECT);
    for (i = 0; i < run->nworkers; i++) {
        struct lg_worker *w = &run->workers[i];
        struct loop *lp = loop_of(w);

        lp->now = now;
        lp->conn_due_ns = now;
        lp->next_sweep_ns = now + SWEEP_NS;
        ret = -pthread_create(&w->tid, NULL, worker_main, w);
        if (ret < 0) {
            break;
        }
        w->started = true;
    }
    return ret;
}

void lg_worker_set_phase(struct lg_run *run, enum lg_phase phase)
{
    const uint64_t one = 1;
    uint32_t i;

    RM_ASSERT(run != NULL);
    RM_ASSERT((int)phase >= atomic_load(&run->phase));
    atomic_store_explicit(&run->phase, phase, memory_order_release);
    for (i = 0; i < run->nworkers; i++) {
        if (run->workers[i].evfd >= 0 && write(run->workers[i].evfd, &one, sizeof(one)) < 0) {
            /* saturated counter: awake anyway */
        }
    }
}

void lg_worker_live_sum(const struct lg_run *run, struct lg_live_sum *out)
{
    uint32_t i;

    RM_ASSERT(run != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    for (i = 0; i < run->nworkers; i++) {
        const struct lg_live *l = &run->workers[i].live;
        uint64_t last = atomic_load_explicit(&l->last_ok_ns, memory_order_relaxed);

        out->sent += atomic_load_explicit(&l->sent, memory_order_relaxed);
        out->sent_meas += atomic_load_explicit(&l->sent_meas, memory_order_relaxed);
        out->recv += atomic_load_explicit(&l->recv, memory_order_relaxed);
        out->recv_meas += atomic_load_explicit(&l->recv_meas, memory_order_relaxed);
        out->conns_ok += atomic_load_explicit(&l->conns_ok, memory_order_relaxed);
        out->conns_done += atomic_load_explicit(&l->conns_done, memory_order_relaxed);
        out->conns_failed += atomic_load_explicit(&l->conns_failed, memory_order_relaxed);
        out->conns_lost += atomic_load_explicit(&l->conns_lost, memory_order_relaxed);
        out->unacked += atomic_load_explicit(&l->unacked, memory_order_relaxed);
        out->q2_in += atomic_load_explicit(&l->q2_in, memory_order_relaxed);
        if (last > out->last_ok_ns) {
            out->last_ok_ns = last;
        }
    }
    RM_ASSERT(out->conns_done <= run->nclients);
}

uint64_t lg_worker_expected(const struct lg_run *run)
{
    uint64_t n = 0;
    uint32_t i;

    RM_ASSERT(run != NULL);
    RM_ASSERT(run->npubs == 0 || run->groups != NULL);
    for (i = 0; i < run->npubs; i++) {
        const struct lg_pub *p = &run->pubs[i];

        n += (uint64_t)atomic_load_explicit(&p->sent_total, memory_order_relaxed) *
             run->groups[p->group].fan;
    }
    return n;
}

void lg_worker_join(struct lg_run *run)
{
    uint32_t i;

    RM_ASSERT(run != NULL);
    RM_ASSERT(atomic_load(&run->phase) == LG_PHASE_STOP);
    for (i = 0; i < run->nworkers; i++) {
        if (run->workers[i].started) {
            pthread_join(run->workers[i].tid, NULL);
            run->workers[i].started = false;
        }
    }
}

void lg_worker_free(struct lg_run *run)
{
    uint32_t i;

    RM_ASSERT(run != NULL);
    for (i = 0; run->workers != NULL && i < run->nworkers; i++) {
        struct lg_worker *w = &run->workers[i];
        struct loop *lp = w->_priv;
        uint32_t k;

        RM_ASSERT(!w->started);
        for (k = 0; w->conns != NULL && k < w->nconns; k++) {
            if (w->conns[k].tc.fd >= 0) {
                close(w->conns[k].tc.fd);
            }
            conn_free_bufs(&w->conns[k]);
        }
        if (lp != NULL) {
            free(lp->ready);
            free(lp->heap);
            free(lp->blocked);
            free(lp->dirty);
            free(lp->rxmore);
            free(lp->rxbuf);
            free(lp->payload);
            free(lp);
        }
        if (w->epfd >= 0) {
            close(w->epfd);
        }
        if (w->evfd >= 0) {
            close(w->evfd);
        }
        free(w->conns);
        free(w->pubs);
    }
    free(run->workers);
    for (i = 0; run->pubs != NULL && i < run->npubs; i++) {
        free(run->pubs[i].sent_ns);
        free((void *)run->pubs[i].slots);
    }
    for (i = 0; run->subs != NULL && i < run->nsubs; i++) {
        free(run->subs[i].tracks);
    }
    for (i = 0; run->groups != NULL && i < run->ngroups; i++) {
        if (run->groups[i].filter != run->groups[i].topic) {
            free(run->groups[i].filter);
        }
        free(run->groups[i].topic);
    }
    free(run->pubs);
    free(run->subs);
    free(run->groups);
    run->workers = NULL;
    run->pubs = NULL;
    run->subs = NULL;
    run->groups = NULL;
}
