/*
 * xport.h - the transport stack of one connection between its socket and
 * the broker: TLS (tls/tls_conn), WebSocket (net/ws), or both (wss).
 *
 * A plain MQTT-over-TCP connection has no xport at all (conn->xp == NULL)
 * and pays nothing for it. Otherwise net/conn hands every received byte to
 * xport_recv(), which runs the TLS handshake, decrypts, answers the
 * WebSocket upgrade, unframes, and passes the MQTT bytes to the sink it was
 * given; and before each send it calls xport_send(), which frames and
 * encrypts the broker's output into xp->tx, the bytes bound for the wire.
 * Bytes the transport makes itself (handshake records, the upgrade answer,
 * pongs, close frames, tickets) are appended to xp->tx as they arise, in
 * order with the rest.
 *
 * Received WebSocket payloads are unmasked in place in the buffer they came
 * in (the shard's receive buffer, or the TLS plaintext scratch) and passed
 * on without a copy. Only an upgrade request split across reads is gathered
 * (up to WS_HTTP_BYTES_MAX) in memory of the connection's own.
 *
 * Handoff: an xport is one heap object that moves between shards with its
 * connection (net/xshard carries the pointer). By then the TLS handshake
 * and the upgrade are complete, every received byte has been decrypted and
 * unframed (the MQTT bytes are the broker's to carry), and what is left is
 * state: the WOLFSSL object with any partial record, the frame decoder with
 * any partial header, and xp->tx. One shard uses it at a time.
 *
 * Owned by the shard that holds the connection; that thread only.
 */
#ifndef RINGMQ_XPORT_H
#define RINGMQ_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "core/obuf.h"
#include "net/ws.h"
#include "tls/tls_conn.h"

struct tls_ctx;

/* One TLS record's plaintext, at most. */
#define XPORT_RECORD_BYTES 16384u
/*
 * The shard's scratch for TLS connections: received plaintext is decrypted
 * into its first half; a WebSocket frame's header and the start of its
 * payload are gathered in its second half, so they leave as one record.
 */
#define XPORT_SCRATCH_BYTES (2 * XPORT_RECORD_BYTES)
/*
 * Handshake input held for a later iteration (xport_hold()), at most: two
 * full TLS records on the wire. A client's handshake flight (ClientHello;
 * certificate, CertificateVerify and Finished) fits; more is abuse.
 */
#define XPORT_HELD_BYTES_MAX (2 * (XPORT_RECORD_BYTES + 256 + 5))
/* xp->tx may exceed the broker's output bound by this much plus 1/256 (record overhead). */
#define XPORT_TX_SLACK_BYTES (64u << 10)

enum xport_state {
    XPORT_TLS_HANDSHAKE = 1, /* TLS handshake under way */
    XPORT_WS_UPGRADE,        /* waiting for (the rest of) the HTTP upgrade request */
    XPORT_OPEN,              /* MQTT bytes flow */
    XPORT_CLOSED,            /* refused or closed: nothing more is read */
};

/* Why xport_recv() stopped a connection (negative returns). */
enum xport_err {
    XPORT_E_TLS = 1000,  /* TLS failure (handshake, bad record, alert) */
    XPORT_E_WS_REFUSED,  /* the upgrade request was refused (answered with 4xx) */
    XPORT_E_WS_PROTOCOL, /* a WebSocket violation (answered with a close frame) */
    XPORT_E_PEER_CLOSED, /* the peer closed (WebSocket close or TLS close_notify) */
    XPORT_E_SINK,        /* the sink stopped the feed (the connection is closing) */
};

/* Counters a shard keeps for its transports (read for logs, $SYS later). */
struct xport_stats {
    uint64_t tls_handshakes;     /* completed, full */
    uint64_t tls_resumed;        /* completed by a session ticket */
    uint64_t tls_failed;         /* failed handshakes and TLS errors */
    uint64_t ws_upgrades;        /* accepted */
    uint64_t ws_refused;         /* answered 4xx */
    uint64_t ws_protocol_errors; /* closed with 1002/1003/1009/1007 */
};

/*
 * A shard's TLS connections that are awake and open, least recently used
 * first (intrusive, circular). A connection left alone for
 * XPORT_SLEEP_AFTER_MS puts its wolfSSL object to sleep (tls_conn_sleep())
 * and leaves the list; the next byte in or out wakes it.
 */
struct xport_nap {
    struct xport_nap *prev; /* unlinked: both NULL */
    struct xport_nap *next;
    uint64_t used_ms; /* last use */
};

/*
 * The shard's handshakes pause too: XPORT_SLEEP_AFTER_MS after the last
 * one (but XPORT_TRIM_EVERY_MS after the last trim at the soonest),
 * tls_idle_trim() gives back what handshakes alone use (the fixed-point
 * ECC tables, the heap's freed pages).
 */
struct xport_naps {
    struct xport_nap head;
    uint64_t sleeps;       /* connections put to sleep, ever */
    uint64_t handshakes;   /* the shard's handshakes the sweep last saw */
    uint64_t handshake_ms; /* when it saw them change */
    uint64_t trim_ms;      /* the last trim */
    bool trim_due;         /* handshakes since the last trim */
};

/*
 * Trims at most this often: malloc_trim() walks every arena under its lock
 * (~20 ms at 300 MB of heap, ~70 ms at 1.7 GB), stalling this shard and the
 * others' mallocs, and the next full handshake rebuilds the tables (~5 ms).
 */
#define XPORT_TRIM_EVERY_MS 60000u

/* How long a TLS connection goes unused before its wolfSSL object sleeps. */
#define XPORT_SLEEP_AFTER_MS 2000u
/*
 * Connections put to sleep per sweep, at most: a sleep copies the object's
 * nonzero words and returns its pages (madvise), tens of microseconds on a
 * VM, so a crowd that went quiet together sleeps over several iterations.
 */
#define XPORT_SLEEPS_PER_SWEEP_MAX 32u

struct xport {
    struct xport_nap nap;               /* first: the list's node (xport_naps) */
    const struct config_listener *lcfg; /* borrowed from the config snapshot */
    int fd;                             /* the connection's socket, for log lines only */
    struct WOLFSSL *ssl;                /* NULL: no TLS */
    struct tls_io io;                   /* ssl's I/O; io.out == &tx */
    struct obuf tx;                     /* bytes for the wire, in order */
    struct obuf held;                   /* handshake input waiting for the shard's budget */
    uint8_t *http;                      /* an upgrade request split across reads */
    uint32_t http_len;
    char *identity;     /* use_identity_as_username: the certificate's CN */
    uint8_t state;      /* enum xport_state */
    bool ws;            /* WebSocket framing */
    bool tls_up;        /* the TLS handshake completed */
    bool goodbye;       /* the closing frame/alert is queued: nothing follows */
    bool want_identity; /* the context's use_identity_as_username */
    struct ws_rx rx[];  /* ws only (allocated with it): the frame decoder */
};

/*
 * Where MQTT bytes go: @fn(@arg, bytes, len) returns 0 to go on, < 0 to
 * stop (the connection is closing). The bytes are borrowed until return.
 */
struct xport_sink {
    int (*fn)(void *arg, const uint8_t *data, size_t len);
    void *arg;
    uint8_t *scratch; /* the shard's XPORT_SCRATCH_BYTES (TLS only) */
};

/*
 * A transport for a connection accepted on listener @lcfg (borrowed from
 * the config snapshot), with TLS from @tls (NULL for none), accepting
 * WebSocket frames of at most @frame_max bytes and holding at most
 * @out_max (the broker's bound on a connection's output,
 * limits_output_hard_max()) plus 1/256 of it (TLS records, frame headers)
 * plus XPORT_TX_SLACK_BYTES for the wire: a peer that does not read is
 * closed past that, as over plain TCP. Returns NULL with *@err = 0 when the listener
 * needs none (plain MQTT over TCP), or NULL with *@err = -ENOMEM.
 */
struct xport *xport_new(const struct config_listener *lcfg, const struct tls_ctx *tls,
                        uint64_t frame_max, size_t out_max, int *err);

/* Free @xp (NULL is fine) and everything it holds; it leaves its shard's naps. */
void xport_free(struct xport *xp);

/* An empty list. */
void xport_naps_init(struct xport_naps *naps);

/*
 * @xp (a TLS connection past its handshake; others are ignored) was used at
 * @now_ms: to the end of @naps, its owning shard's list.
 */
void xport_used(struct xport_naps *naps, struct xport *xp, uint64_t now_ms);

/* @xp leaves its shard's list (it is handed to another shard). */
void xport_nap_leave(struct xport *xp);

/*
 * Put to sleep the connections of @naps unused for XPORT_SLEEP_AFTER_MS at
 * @now_ms, at most XPORT_SLEEPS_PER_SWEEP_MAX of them; @handshakes: the
 * shard's handshakes so far (completed or failed), to trim once they pause.
 */
void xport_naps_sweep(struct xport_naps *naps, uint64_t now_ms, uint64_t handshakes);

/* Whether any connection of @naps is awake (the shard keeps ticking to sweep it). */
static inline bool xport_naps_awake(const struct xport_naps *naps)
{
    return naps->head.next != &naps->head;
}

/* Whether the sweep has work to come: a connection awake, or a trim due. */
static inline bool xport_naps_pending(const struct xport_naps *naps)
{
    return xport_naps_awake(naps) || naps->trim_due;
}

/*
 * Feed @data[0..@len) (writable, borrowed until return) as received from
 * the socket. MQTT bytes go to @sink. Returns 0, or -XPORT_E_* / -ENOMEM
 * when the connection must close (after sending xp->tx, which may hold an
 * HTTP refusal, a close frame or a TLS alert). @st counts what happened.
 */
int xport_recv(struct xport *xp, uint8_t *data, size_t len, const struct xport_sink *sink,
               struct xport_stats *st);

/* Whether the TLS handshake is still under way (its steps cost the most CPU). */
static inline bool xport_handshaking(const struct xport *xp)
{
    return xp->state == XPORT_TLS_HANDSHAKE;
}

/*
 * Keep a copy of received @data[0..@len) for later (the shard's handshake
 * budget is spent). 0, or -ENOMEM (also past XPORT_HELD_BYTES_MAX: a
 * handshake never needs that much).
 */
int xport_hold(struct xport *xp, const uint8_t *data, size_t len);

/*
 * Frame and encrypt the MQTT bytes in @mqtt into xp->tx; @mqtt is emptied
 * (its buffer freed). @scratch is the shard's XPORT_SCRATCH_BYTES (TLS
 * only; its second half is used). Returns 0 or a negative errno.
 */
int xport_send(struct xport *xp, struct obuf *mqtt, uint8_t *scratch);

/*
 * The connection is closing gracefully: queue a WebSocket close (1000, if
 * the WebSocket is open) and a TLS close_notify (if the handshake
 * completed) into xp->tx, once. Nothing is sent after them.
 */
void xport_goodbye(struct xport *xp);

#endif
