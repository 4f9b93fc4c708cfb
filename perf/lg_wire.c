/*
 * lg_wire.c - MQTT packets on one load-generator connection; see lg_wire.h.
 *
 * Output is batched: every packet a connection must send in one loop
 * iteration (publishes, acks, pings) is encoded into its output buffer and
 * the connection goes on the worker's dirty list, which the loop flushes
 * with one send() per connection at the end of the iteration. Input is read
 * into one buffer per worker; only a partial packet is copied into the
 * connection. Runs on the worker thread that owns the connection.
 */
#include "perf/lg_wire.h"

#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"
#include "perf/lg_sock.h"
#include "perf/lg_worker_types.h"

#define TX_MAX_BYTES (64u * 1024u * 1024u)
#define TX_KEEP_BYTES 16384u /* larger output buffers are freed when drained */
#define TX_MIN_BYTES 256u

static void mark_dirty(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;

    if ((c->flags & LG_CONN_F_DIRTY) == 0) {
        RM_ASSERT(lp->ndirty < w->nconns);
        c->flags |= LG_CONN_F_DIRTY;
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

int lg_wire_queue(struct lg_worker *w, struct lg_conn *c, const struct mqtt_pkt *pkt)
{
    const uint8_t version = w->run->opts->mqtt_version;
    size_t size = mqtt_encoded_size(pkt, version);
    uint8_t *p;

    RM_ASSERT(size > 0); /* every field the generator sends is within bounds */
    p = tx_reserve(c, (uint32_t)size);
    if (p == NULL) {
        return -ENOBUFS;
    }
    c->tx_len += (uint32_t)mqtt_encode(pkt, version, p, size);
    c->t_last_tx_ns = w->_loop->now;
    mark_dirty(w, c);
    return 0;
}

int lg_wire_flush(struct lg_worker *w, struct lg_conn *c)
{
    const struct lg_transport *t = w->run->opts->transport;

    while (c->tx_off < c->tx_len) {
        ssize_t n = t->send(&c->tc, c->tx + c->tx_off, c->tx_len - c->tx_off);

        if (n == -EAGAIN || n == -EWOULDBLOCK) {
            lg_sock_want_out(w->epfd, c, true);
            return 0;
        }
        if (n <= 0) {
            return n == 0 ? -EPIPE : (int)n;
        }
        c->tx_off += (uint32_t)n;
        w->st.tx_bytes += (uint64_t)n;
    }
    c->tx_off = 0;
    c->tx_len = 0;
    if (c->tc.want_out && t->flush != NULL) {
        int r = t->flush(&c->tc); /* a WebSocket pong or close */

        if (r == 0) {
            lg_sock_want_out(w->epfd, c, true);
            return 0;
        }
        if (r < 0) {
            return r;
        }
    }
    lg_sock_want_out(w->epfd, c, false);
    if (c->role == LG_CONN_ROLE_IDLE || c->tx_cap > TX_KEEP_BYTES) {
        free(c->tx);
        c->tx = NULL;
        c->tx_cap = 0;
    }
    return 1;
}

ssize_t lg_wire_recv(struct lg_worker *w, struct lg_conn *c)
{
    struct lg_loop *lp = w->_loop;
    uint8_t *buf = lp->rxbuf;
    uint32_t have = c->rx_len;
    ssize_t n;

    RM_ASSERT(have <= lp->packet_max);
    RM_ASSERT(lp->rxbuf_bytes >= 2 * lp->packet_max);
    if (have > 0) {
        memcpy(buf, c->rx, have);
    }
    n = w->run->opts->transport->recv(&c->tc, buf + have, lp->rxbuf_bytes - have);
    if (c->tc.want_out) {
        mark_dirty(w, c); /* the transport has something to say (a pong) */
    }
    if (n == -EAGAIN || n == -EWOULDBLOCK || n == -EINTR) {
        return 0;
    }
    if (n <= 0) {
        return n == 0 ? -ECONNRESET : n;
    }
    w->st.rx_bytes += (uint64_t)n;
    c->rx_len = 0;
    return (ssize_t)have + n;
}

int lg_wire_keep(struct lg_conn *c, const uint8_t *b, uint32_t n)
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

void lg_wire_free_bufs(struct lg_conn *c)
{
    free(c->tx);
    free(c->rx);
    c->tx = NULL;
    c->rx = NULL;
    c->tx_off = c->tx_len = c->tx_cap = 0;
    c->rx_len = c->rx_cap = 0;
}
