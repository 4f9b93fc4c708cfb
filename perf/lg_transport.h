/*
 * lg_transport.h - the byte stream under a load-generator connection.
 *
 * The worker owns the socket: it creates it, connects it (non-blocking, from
 * a chosen source address), polls it with epoll and closes it. A transport
 * only turns that connected socket into an MQTT byte stream: plain TCP today;
 * TLS (wolfSSL with the socket as its I/O) and WebSocket (HTTP upgrade, then
 * framing) slot in as further struct lg_transport instances whose open()
 * runs the handshake and whose recv()/send() decrypt/unframe and
 * frame/encrypt. Per-connection transport state lives behind lg_tconn.state.
 *
 * Every function is called by the worker thread that owns the connection.
 */
#ifndef RINGMQ_LG_TRANSPORT_H
#define RINGMQ_LG_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The transport's view of one connection. */
struct lg_tconn {
    int fd;      /* connected, non-blocking; owned by the worker */
    void *state; /* transport-private; NULL for TCP */
};

struct lg_transport {
    const char *name; /* "tcp", later "tls", "ws", "wss" */

    /*
     * Called once the TCP connect has completed, and again on every
     * readiness event while it returns 0. Returns >0 when the stream is ready
     * for MQTT bytes, 0 while a handshake still needs I/O, -errno on failure.
     */
    int (*open)(struct lg_tconn *tc);

    /*
     * Read up to @len stream bytes into @buf. Returns the count (>0), 0 when
     * the peer closed the stream, -EAGAIN when nothing is ready, or -errno.
     */
    ssize_t (*recv)(struct lg_tconn *tc, uint8_t *buf, size_t len);

    /*
     * Write up to @len stream bytes from @buf (borrowed until return).
     * Returns the count taken (may be short), -EAGAIN, or -errno.
     */
    ssize_t (*send)(struct lg_tconn *tc, const uint8_t *buf, size_t len);

    /* Release transport state; the worker closes the fd afterwards. */
    void (*close)(struct lg_tconn *tc);
};

/* Plain TCP. */
extern const struct lg_transport lg_tcp_transport;

/* The transport named @name ("tcp"), or NULL if this build has none by that name. */
const struct lg_transport *lg_transport_find(const char *name);

#endif
