/*
 * xport.c - TLS and WebSocket between a socket and the broker (see xport.h).
 *
 * Owned by the shard that holds the connection; that thread only.
 */
#include "net/xport.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"
#include "net/log.h"
#include "tls/tls_ctx.h"

/* Who a line is about: the connection (no client id before its CONNECT). */
#define XP_WHO(xp) ((struct log_who){.fd = (xp)->fd})

/*
 * Records decrypted per feed, at most: a bound on the loop over peer data.
 * A record takes at least 22 bytes on the wire and a feed is one receive
 * buffer, so a connection that reaches it is misbehaving and is closed.
 */
#define XPORT_RECORDS_PER_FEED_MAX 4096u
/* Bounds on peer-driven loops: events per feed (frames, pings). */
#define XPORT_WS_EVENTS_PER_FEED_MAX 65536u

struct xport *xport_new(const struct config_listener *lcfg, const struct tls_ctx *tls,
                        uint64_t frame_max, size_t out_max, int *err)
{
    struct xport *xp;
    bool ws;

    RM_ASSERT(lcfg != NULL && err != NULL);
    RM_ASSERT((tls != NULL) == config_listener_tls(lcfg));
    *err = 0;
    if (tls == NULL && lcfg->protocol == CONFIG_PROTO_MQTT) {
        return NULL;
    }
    ws = lcfg->protocol == CONFIG_PROTO_WEBSOCKETS;
    /* A TLS-only connection does without the frame decoder (~170 bytes, most of an idle one's). */
    xp = calloc(1, sizeof(*xp) + (ws ? sizeof(xp->rx[0]) : 0));
    if (xp == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    xp->lcfg = lcfg;
    xp->fd = -1; /* the caller sets it (conn_accept) */
    xp->ws = ws;
    xp->io.out = &xp->tx;
    xp->io.out_max = out_max + out_max / 256 + XPORT_TX_SLACK_BYTES;
    if (ws) {
        ws_rx_init(xp->rx, frame_max);
    }
    if (tls != NULL) {
        /* The context's, not the listener's: a reload may have changed it since. */
        xp->want_identity = tls_ctx_identity_as_username(tls);
        xp->ssl = tls_conn_new(tls, &xp->io);
        if (xp->ssl == NULL) {
            free(xp);
            *err = -ENOMEM;
            return NULL;
        }
        xp->state = XPORT_TLS_HANDSHAKE;
    } else {
        xp->state = XPORT_WS_UPGRADE;
    }
    return xp;
}

void xport_free(struct xport *xp)
{
    if (xp == NULL) {
        return;
    }
    xport_nap_leave(xp);
    tls_conn_free(xp->ssl, &xp->io);
    obuf_free(&xp->tx);
    obuf_free(&xp->held);
    free(xp->http);
    free(xp->identity);
    free(xp);
}

/*
 * Bytes the transport sends (below the WebSocket layer): encrypted when TLS
 * is on, in writes of at most TLS_CONN_WRITE_MAX; bounded by io.out_max.
 */
static int wire_write(struct xport *xp, const uint8_t *data, size_t len)
{
    uint8_t *dst;
    size_t n;
    int ret;

    if (xp->ssl != NULL) {
        for (; len > 0; data += n, len -= n) {
            n = len < TLS_CONN_WRITE_MAX ? len : TLS_CONN_WRITE_MAX;
            ret = tls_conn_write(xp->ssl, data, n);
            if (ret < 0) {
                return ret;
            }
        }
        return 0;
    }
    if (len == 0) {
        return 0;
    }
    dst = obuf_reserve(&xp->tx, len, xp->io.out_max);
    if (dst == NULL) {
        return -ENOMEM;
    }
    memcpy(dst, data, len);
    obuf_commit(&xp->tx, len);
    return 0;
}

/* A control frame (payload <= 125 bytes): one write, so TLS makes one record of it. */
static int ws_write_control(struct xport *xp, enum ws_opcode op, const uint8_t *data, size_t len)
{
    uint8_t frame[WS_FRAME_HDR_OUT_MAX + WS_CONTROL_BYTES_MAX];
    size_t hdr_len = ws_frame_header(frame, op, len);

    RM_ASSERT(len <= WS_CONTROL_BYTES_MAX);
    memcpy(frame + hdr_len, data, len);
    return wire_write(xp, frame, hdr_len + len);
}

/*
 * A binary frame of the broker's output. Without TLS the header and payload
 * are copied into xp->tx; with TLS the header and the start of the payload
 * are gathered in @scratch's second half, so the frame takes no extra record.
 */
static int ws_write_data(struct xport *xp, const uint8_t *data, size_t len, uint8_t *scratch)
{
    uint8_t hdr[WS_FRAME_HDR_OUT_MAX];
    size_t hdr_len = ws_frame_header(hdr, WS_OP_BINARY, len);
    uint8_t *dst;
    size_t first;
    int ret;

    if (xp->ssl == NULL) {
        dst = obuf_reserve(&xp->tx, hdr_len + len, xp->io.out_max);
        if (dst == NULL) {
            return -ENOMEM;
        }
        memcpy(dst, hdr, hdr_len);
        memcpy(dst + hdr_len, data, len);
        obuf_commit(&xp->tx, hdr_len + len);
        return 0;
    }
    RM_ASSERT(scratch != NULL);
    dst = scratch + XPORT_RECORD_BYTES;
    first = len < XPORT_RECORD_BYTES - hdr_len ? len : XPORT_RECORD_BYTES - hdr_len;
    memcpy(dst, hdr, hdr_len);
    memcpy(dst + hdr_len, data, first);
    ret = wire_write(xp, dst, hdr_len + first);
    return ret < 0 ? ret : wire_write(xp, data + first, len - first);
}

/* The TLS half of a goodbye: close_notify once the handshake completed. */
static void tls_goodbye(struct xport *xp)
{
    if (xp->ssl != NULL && xp->tls_up) {
        tls_conn_close_notify(xp->ssl);
    }
}

/*
 * Close the WebSocket with @status (a violation, the answer to the peer's
 * close, or our own goodbye), then TLS; nothing is sent after them.
 */
static int ws_close(struct xport *xp, uint16_t status)
{
    uint8_t payload[2] = {(uint8_t)(status >> 8), (uint8_t)status};
    int ret;

    if (xp->goodbye) {
        return 0;
    }
    xp->goodbye = true;
    xp->state = XPORT_CLOSED;
    ret =
        ws_write_control(xp, WS_OP_CLOSE, payload, status == WS_STATUS_NONE ? 0 : sizeof(payload));
    tls_goodbye(xp);
    return ret;
}

/* WebSocket frames in @data: payloads to the sink, control frames answered. */
static int ws_frames(struct xport *xp, uint8_t *data, size_t len, const struct xport_sink *sink,
                     struct xport_stats *st)
{
    struct ws_event ev;
    unsigned events = 0;
    long used;

    RM_ASSERT(xp->ws); /* only then is there an xp->rx */
    while (len > 0) {
        if (++events > XPORT_WS_EVENTS_PER_FEED_MAX) {
            /*
             * Each call consumes at least one byte of a read of at most a few
             * KiB, so this is never reached; if it were, close, never assert.
             */
            st->ws_protocol_errors++;
            (void)ws_close(xp, WS_STATUS_PROTOCOL);
            return -XPORT_E_WS_PROTOCOL;
        }
        used = ws_rx_next(xp->rx, data, len, &ev);
        if (used < 0) {
            st->ws_protocol_errors++;
            LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp), "websocket: protocol violation, closing with %ld",
                    -used);
            (void)ws_close(xp, (uint16_t)-used);
            return -XPORT_E_WS_PROTOCOL;
        }
        RM_ASSERT(used > 0 && (size_t)used <= len);
        data += used;
        len -= (size_t)used;
        switch (ev.kind) {
        case WS_EV_DATA:
            if (sink->fn(sink->arg, ev.data, ev.len) < 0) {
                return -XPORT_E_SINK;
            }
            break;
        case WS_EV_PING:
            if (ws_write_control(xp, WS_OP_PONG, ev.data, ev.len) < 0) {
                return -ENOMEM; /* also a peer that pings and never reads: io.out_max */
            }
            break;
        case WS_EV_CLOSE:
            /* Echo the status (RFC 6455 5.5.1), then close after sending. */
            (void)ws_close(xp, ev.status == WS_STATUS_NONE ? WS_STATUS_NONE : ev.status);
            return -XPORT_E_PEER_CLOSED;
        default:
            break; /* a pong, or part of a frame */
        }
    }
    return 0;
}

/*
 * Answer the upgrade request @req[0..@head) and go on with the frames that
 * followed it in @req[@head..@len).
 */
static int ws_answer(struct xport *xp, uint8_t *req, size_t head, size_t len,
                     const struct xport_sink *sink, struct xport_stats *st)
{
    char answer[WS_HTTP_RESPONSE_MAX];
    struct ws_upgrade up;
    size_t n;
    int ret;

    ws_upgrade_parse(req, head, xp->lcfg->ws_path, &up);
    n = ws_upgrade_response(&up, answer, sizeof(answer));
    if (n == 0) {
        return -ENOMEM;
    }
    ret = wire_write(xp, (const uint8_t *)answer, n);
    if (ret < 0) {
        return ret;
    }
    if (up.status != 101) {
        st->ws_refused++;
        LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp), "websocket: upgrade refused with %d: %s", up.status,
                up.why);
        xp->state = XPORT_CLOSED;
        return -XPORT_E_WS_REFUSED;
    }
    st->ws_upgrades++;
    xp->state = XPORT_OPEN;
    return ws_frames(xp, req + head, len - head, sink, st);
}

/* Bytes before the upgrade is answered: gather the request head, then answer it. */
static int ws_upgrade(struct xport *xp, uint8_t *data, size_t len, const struct xport_sink *sink,
                      struct xport_stats *st)
{
    size_t head;
    uint8_t *req;
    int ret;

    if (xp->http == NULL) {
        head = ws_http_head_len(data, len);
        if (head > 0) {
            return ws_answer(xp, data, head, len, sink, st); /* the common case: no copy */
        }
    }
    if (xp->http_len + len > WS_HTTP_BYTES_MAX) {
        struct ws_upgrade up = {.status = 431, .why = "request head too large"};
        char answer[WS_HTTP_RESPONSE_MAX];

        st->ws_refused++;
        LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp), "websocket: upgrade refused with 431: %s", up.why);
        xp->state = XPORT_CLOSED;
        (void)wire_write(xp, (const uint8_t *)answer,
                         ws_upgrade_response(&up, answer, sizeof(answer)));
        return -XPORT_E_WS_REFUSED;
    }
    req = realloc(xp->http, xp->http_len + len);
    if (req == NULL) {
        return -ENOMEM;
    }
    memcpy(req + xp->http_len, data, len);
    xp->http = req;
    xp->http_len += (uint32_t)len;
    head = ws_http_head_len(req, xp->http_len);
    if (head == 0) {
        return 0;
    }
    ret = ws_answer(xp, req, head, xp->http_len, sink, st);
    free(xp->http);
    xp->http = NULL;
    xp->http_len = 0;
    return ret;
}

/* Plaintext (after TLS, if any) to the layer above it. */
static int above_tls(struct xport *xp, uint8_t *data, size_t len, const struct xport_sink *sink,
                     struct xport_stats *st)
{
    if (!xp->ws) {
        return sink->fn(sink->arg, data, len) < 0 ? -XPORT_E_SINK : 0;
    }
    if (xp->state == XPORT_WS_UPGRADE) {
        return ws_upgrade(xp, data, len, sink, st);
    }
    return ws_frames(xp, data, len, sink, st);
}

/* The handshake just completed: count it, drop its memory, note the identity. */
static int tls_established(struct xport *xp, struct xport_stats *st)
{
    char cn[TLS_CONN_IDENTITY_MAX];

    if (tls_conn_resumed(xp->ssl)) {
        st->tls_resumed++;
    } else {
        st->tls_handshakes++;
    }
    if (xp->want_identity) {
        if (tls_conn_identity(xp->ssl, cn, sizeof(cn)) < 0) {
            st->tls_failed++;
            LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp),
                    "tls: client certificate without a subject CN on listener %s", xp->lcfg->name);
            return -XPORT_E_TLS;
        }
        LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp),
                "tls: client certificate identity '%s' is the username", cn);
        xp->identity = strdup(cn);
        if (xp->identity == NULL) {
            return -ENOMEM;
        }
    }
    LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp), "tls: %s handshake done (%s)", tls_conn_version(xp->ssl),
            tls_conn_resumed(xp->ssl) ? "resumed" : "full");
    tls_conn_handshake_over(xp->ssl);
    xp->tls_up = true;
    xp->state = xp->ws ? XPORT_WS_UPGRADE : XPORT_OPEN;
    return 0;
}

static int tls_recv(struct xport *xp, const uint8_t *data, size_t len,
                    const struct xport_sink *sink, struct xport_stats *st)
{
    unsigned records;
    long n;
    int ret = 0;

    xp->io.in = data;
    xp->io.in_len = len;
    if (xp->state == XPORT_TLS_HANDSHAKE) {
        ret = tls_conn_handshake(xp->ssl);
        if (ret <= 0) {
            if (ret < 0) {
                st->tls_failed++;
                xp->state = XPORT_CLOSED;
                ret = ret == -ENOMEM ? ret : -XPORT_E_TLS;
            }
            goto out;
        }
        ret = tls_established(xp, st);
        if (ret < 0) {
            xp->state = XPORT_CLOSED;
            xp->goodbye = true; /* refused: no close_notify, only the close */
            goto out;
        }
    }
    /* Decrypt until wolfSSL wants more input: then every byte of @data is taken. */
    for (records = 0; records < XPORT_RECORDS_PER_FEED_MAX; records++) {
        n = tls_conn_read(xp->ssl, sink->scratch, XPORT_RECORD_BYTES);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            if (n == -EPIPE) {
                ret = -XPORT_E_PEER_CLOSED; /* answered by our close_notify (goodbye) */
            } else {
                st->tls_failed++;
                xp->goodbye = true; /* wolfSSL queued its alert, if any */
                ret = n == -ENOMEM ? -ENOMEM : -XPORT_E_TLS;
            }
            xp->state = XPORT_CLOSED;
            goto out;
        }
        ret = above_tls(xp, sink->scratch, (size_t)n, sink, st);
        if (ret < 0) {
            goto out;
        }
    }
    if (records == XPORT_RECORDS_PER_FEED_MAX) {
        st->tls_failed++;
        xp->state = XPORT_CLOSED;
        ret = -XPORT_E_TLS;
    }
out:
    xp->io.in = NULL;
    xp->io.in_len = 0;
    return ret;
}

void xport_naps_init(struct xport_naps *naps)
{
    RM_ASSERT(naps != NULL);
    memset(naps, 0, sizeof(*naps));
    naps->head.prev = &naps->head;
    naps->head.next = &naps->head;
}

void xport_nap_leave(struct xport *xp)
{
    RM_ASSERT(xp != NULL);
    if (xp->nap.next != NULL) {
        xp->nap.prev->next = xp->nap.next;
        xp->nap.next->prev = xp->nap.prev;
        xp->nap.prev = NULL;
        xp->nap.next = NULL;
    }
}

void xport_used(struct xport_naps *naps, struct xport *xp, uint64_t now_ms)
{
    RM_ASSERT(naps != NULL && xp != NULL);
    if (xp->ssl == NULL || !xp->tls_up || xp->state != XPORT_OPEN || tls_mem_asleep(&xp->io.mem)) {
        return; /* asleep: not used after all (xport_send() had nothing to send) */
    }
    xport_nap_leave(xp);
    xp->nap.used_ms = now_ms;
    xp->nap.prev = naps->head.prev;
    xp->nap.next = &naps->head;
    naps->head.prev->next = &xp->nap;
    naps->head.prev = &xp->nap;
}

void xport_naps_sweep(struct xport_naps *naps, uint64_t now_ms, uint64_t handshakes)
{
    struct xport *xp;
    uint32_t n = 0;

    RM_ASSERT(naps != NULL);
    RM_ASSERT(handshakes >= naps->handshakes);
    if (handshakes != naps->handshakes) {
        naps->handshakes = handshakes;
        naps->handshake_ms = now_ms;
        naps->trim_due = true;
    } else if (naps->trim_due && naps->handshake_ms + XPORT_SLEEP_AFTER_MS <= now_ms &&
               (naps->trim_ms == 0 || naps->trim_ms + XPORT_TRIM_EVERY_MS <= now_ms)) {
        naps->trim_due = false;
        naps->trim_ms = now_ms;
        tls_idle_trim();
        LOG_DEBUG("tls: handshakes paused: fixed-point ECC tables and free heap pages given back");
    }
    while (xport_naps_awake(naps) && n++ < XPORT_SLEEPS_PER_SWEEP_MAX) {
        xp = (struct xport *)(void *)naps->head.next; /* the node is the first member */
        if (xp->nap.used_ms + XPORT_SLEEP_AFTER_MS > now_ms) {
            return;
        }
        xport_nap_leave(xp);
        if (xp->state == XPORT_OPEN && tls_conn_sleep(&xp->io) == 0) {
            naps->sleeps++;
            LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp), "tls: idle, its wolfSSL state asleep in %u bytes",
                    xp->io.mem.nap_len);
        }
    }
}

/* Before any TLS call on @xp: its wolfSSL object may sleep (xport_naps). */
static void wake(struct xport *xp)
{
    if (xp->ssl != NULL && tls_mem_asleep(&xp->io.mem)) {
        tls_conn_wake(&xp->io);
        LOG_WHO(CONFIG_LOG_DEBUG, XP_WHO(xp), "tls: awake");
    }
}

int xport_recv(struct xport *xp, uint8_t *data, size_t len, const struct xport_sink *sink,
               struct xport_stats *st)
{
    RM_ASSERT(xp != NULL && sink != NULL && st != NULL);
    RM_ASSERT(data != NULL || len == 0);
    if (xp->state == XPORT_CLOSED) {
        return -XPORT_E_SINK; /* refused or closed: input after that is dropped */
    }
    if (xp->ssl != NULL) {
        wake(xp);
        return tls_recv(xp, data, len, sink, st);
    }
    return above_tls(xp, data, len, sink, st);
}

int xport_hold(struct xport *xp, const uint8_t *data, size_t len)
{
    uint8_t *dst;

    RM_ASSERT(xp != NULL && (data != NULL || len == 0));
    dst = obuf_reserve(&xp->held, len, XPORT_HELD_BYTES_MAX);
    if (dst == NULL) {
        return -ENOMEM;
    }
    memcpy(dst, data, len);
    obuf_commit(&xp->held, len);
    return 0;
}

int xport_send(struct xport *xp, struct obuf *mqtt, uint8_t *scratch)
{
    int ret;

    RM_ASSERT(xp != NULL && mqtt != NULL);
    if (xp->state != XPORT_OPEN || xp->goodbye) {
        /* Nothing may follow a close frame or come before the transport is up. */
        obuf_free(mqtt);
        return 0;
    }
    if (mqtt->len == 0) {
        return 0;
    }
    wake(xp);
    if (xp->ws) {
        ret = ws_write_data(xp, mqtt->data, mqtt->len, scratch);
    } else {
        ret = wire_write(xp, mqtt->data, mqtt->len);
    }
    obuf_free(mqtt);
    return ret;
}

void xport_goodbye(struct xport *xp)
{
    RM_ASSERT(xp != NULL);
    if (xp->goodbye) {
        return;
    }
    wake(xp);
    if (xp->ws && xp->state == XPORT_OPEN) {
        (void)ws_close(xp, WS_STATUS_NORMAL);
        return;
    }
    xp->goodbye = true;
    tls_goodbye(xp);
}
