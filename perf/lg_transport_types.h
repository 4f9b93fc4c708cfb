/*
 * lg_transport_types.h - the interface of the byte stream under a
 * load-generator connection; lg_transport.h lists the instances.
 *
 * The worker owns the socket: it creates it, connects it (non-blocking, from
 * a chosen source address), polls it with level-triggered epoll and closes
 * it. A transport only turns that connected socket into an MQTT byte stream.
 * open() runs the handshake; recv()/send() decrypt/unframe and
 * frame/encrypt. Per-connection transport state lives behind lg_tconn.state.
 *
 * setup() and cleanup() run on the main thread, before any worker starts and
 * after every worker has been joined; what setup() builds (the TLS context)
 * is read-only while workers run. Every other function is called by the
 * worker thread that owns the connection.
 */
#ifndef RINGMQ_LG_TRANSPORT_TYPES_H
#define RINGMQ_LG_TRANSPORT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Transport options from the command line; borrowed by setup() for the whole run. */
struct lg_transport_cfg {
    const char *tls_ca;      /* PEM file of CA certificates to verify the broker; NULL: none */
    bool tls_insecure;       /* do not verify the broker's certificate */
    const char *tls_sni;     /* server name to send (SNI) and to check in the certificate */
    const char *tls_ciphers; /* wolfSSL cipher suite names, ':'-separated; NULL: default */
    bool tls_resume;         /* resume each worker's first session (ticket) in later handshakes */
    const char *ws_path;     /* request target of the WebSocket upgrade ("/mqtt") */
    const char *ws_host;     /* Host header value: "127.0.0.1:1883", "[::1]:1883" */
};

/* The transport's view of one connection. */
struct lg_tconn {
    int fd;        /* connected, non-blocking; owned by the worker */
    bool want_out; /* set by the transport: it waits for the socket to be writable */
    bool rx_more;  /* set by recv(): bytes are left inside the transport, call again */
    void *state;   /* transport-private; NULL for TCP */
};

struct lg_transport {
    const char *name; /* "tcp", "tls", "ws", "wss" */

    /*
     * Optional (NULL: nothing to do). Build what every connection shares
     * from @cfg. Returns 0, or -errno after printing why to stderr.
     */
    int (*setup)(const struct lg_transport_cfg *cfg);

    /* Optional. Free what setup() built; every connection is closed. */
    void (*cleanup)(void);

    /*
     * Optional. Called by each worker thread as it ends, after its
     * connections are closed: free what the library keeps per thread
     * (wolfSSL's fixed-point ECC cache).
     */
    void (*thread_done)(void);

    /*
     * Called once the TCP connect has completed, and again on every
     * readiness event while it returns 0. Returns >0 when the stream is ready
     * for MQTT bytes, 0 while a handshake still needs I/O (tc->want_out says
     * whether it waits to write or to read), -ECONNABORTED when the peer's
     * handshake was refused (bad certificate, not a WebSocket upgrade), or
     * another -errno.
     */
    int (*open)(struct lg_tconn *tc);

    /*
     * Read up to @len stream bytes into @buf (@len >= LG_TRANSPORT_RECV_MIN).
     * Returns the count (>0), 0 when the peer closed the stream, -EAGAIN when
     * nothing is ready, or -errno. Sets tc->rx_more when it holds bytes the
     * socket's readiness will not announce (decrypted or unframed but not
     * yet returned): the caller must call again before waiting.
     */
    ssize_t (*recv)(struct lg_tconn *tc, uint8_t *buf, size_t len);

    /*
     * Write up to @len stream bytes from @buf (borrowed until return).
     * Returns the count taken (may be short), -EAGAIN, or -errno. After a
     * short count or -EAGAIN the caller calls again with the bytes not taken
     * (the same bytes first, possibly followed by more): TLS and WebSocket
     * may already have encoded them.
     */
    ssize_t (*send)(struct lg_tconn *tc, const uint8_t *buf, size_t len);

    /*
     * Optional. Write output the transport made itself (a WebSocket pong or
     * close) while tc->want_out is set. Returns 1 when nothing is left, 0
     * when the socket is full, -errno.
     */
    int (*flush)(struct lg_tconn *tc);

    /*
     * Say goodbye where the protocol has a way (TLS close_notify, WebSocket
     * close), without blocking, and release transport state; the worker
     * closes the fd afterwards.
     */
    void (*close)(struct lg_tconn *tc);
};

/* The smallest @len a caller passes to recv(). */
#define LG_TRANSPORT_RECV_MIN 4096u

#endif
