/*
 * lg_wire.h - MQTT packets on one load-generator connection: encode them
 * into its output buffer and send that through the transport; read what the
 * transport has into the worker's receive buffer and cut it into packets.
 *
 * Owns each connection's output and partial-input buffers (struct lg_conn
 * tx..rx, t_last_tx_ns, LG_CONN_F_DIRTY) and the worker's dirty list and
 * receive buffer (struct lg_loop). It decides nothing about the connection:
 * every error is returned, and the caller (lg_conn.c and above) closes.
 * Called by the worker thread that owns the connection; lg_wire_free_bufs()
 * also by lg_run.c once the workers are gone.
 */
#ifndef RINGMQ_LG_WIRE_H
#define RINGMQ_LG_WIRE_H

#include <errno.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/mqtt_codec.h"
#include "perf/lg_conn_types.h"
#include "perf/lg_run_types.h"

/* Packet ids run 1..LG_WIRE_PKT_IDS; a publisher's message seq has id seq % this + 1. */
#define LG_WIRE_PKT_IDS 65535u

/*
 * Encode @pkt (borrowed until return) onto @c's output and put @c on the
 * dirty list, to be flushed at the end of the iteration. Returns 0, or
 * -ENOBUFS with nothing queued (allocation failed, or the output would
 * pass its bound): the caller closes @c.
 */
int lg_wire_queue(struct lg_worker *w, struct lg_conn *c, const struct mqtt_pkt *pkt);

/*
 * Send what @c has queued, then what the transport has of its own (a
 * WebSocket pong). Returns 1 when all is sent (EPOLLOUT disarmed, an idle
 * client's buffer freed), 0 when the socket is full (EPOLLOUT armed), or
 * -errno: the caller closes @c.
 */
int lg_wire_flush(struct lg_worker *w, struct lg_conn *c);

/*
 * Read what @c's transport has into the worker's receive buffer, after the
 * partial packet @c kept from last time. Returns the bytes now at the start
 * of the buffer (>0; @c keeps nothing until lg_wire_keep()), 0 when nothing
 * was ready, or -errno (-ECONNRESET: the peer closed the stream): the caller
 * closes @c.
 */
ssize_t lg_wire_recv(struct lg_worker *w, struct lg_conn *c);

/*
 * Keep @n bytes at @b (a partial packet; borrowed until return) in @c's own
 * memory for the next lg_wire_recv(). Returns 0 or -ENOMEM.
 */
int lg_wire_keep(struct lg_conn *c, const uint8_t *b, uint32_t n);

/* Free @c's buffers (after its socket is closed, or at the end). */
void lg_wire_free_bufs(struct lg_conn *c);

/* Output bytes @c has queued and not yet sent. */
static inline uint32_t lg_wire_queued(const struct lg_conn *c)
{
    return c->tx_len - c->tx_off;
}

/*
 * Decode the packet at the start of @buf (@len bytes) for @version into
 * @pkt, which borrows @buf. Returns the packet's size (>0, at least 2) when
 * it is whole, 0 when more bytes are needed, or -EPROTO when it is malformed
 * or larger than @packet_max. Inline: it runs once per received packet.
 */
static inline int lg_wire_packet(const uint8_t *buf, uint32_t len, uint32_t packet_max,
                                 uint8_t version, struct mqtt_pkt *pkt)
{
    struct mqtt_fixed fh;
    int r = mqtt_fixed_parse(buf, len, packet_max, &fh);

    if (r == 0 || (r > 0 && (uint64_t)fh.hdr_bytes + fh.body_bytes > len)) {
        return 0;
    }
    if (r < 0 || mqtt_decode_any(&fh, buf + fh.hdr_bytes, version, pkt) < 0) {
        return -EPROTO;
    }
    return (int)(fh.hdr_bytes + fh.body_bytes);
}

#endif
