/*
 * lg_tcp.c - the plain TCP transport: MQTT bytes straight on the socket.
 *
 * Owns nothing beyond the calls; the fd belongs to the worker that owns the
 * connection, which is also the only thread calling in here.
 */
#include "perf/lg_tcp.h"

#include <errno.h>
#include <sys/socket.h>

#include "core/rm_assert.h"

static int tcp_open(struct lg_tconn *tc)
{
    RM_ASSERT(tc != NULL);
    RM_ASSERT(tc->fd >= 0);
    return 1; /* no handshake */
}

static ssize_t tcp_recv(struct lg_tconn *tc, uint8_t *buf, size_t len)
{
    ssize_t n;

    RM_ASSERT(tc != NULL && tc->fd >= 0);
    RM_ASSERT(buf != NULL && len > 0);
    tc->rx_more = false;
    n = recv(tc->fd, buf, len, 0);
    return n < 0 ? -errno : n;
}

static ssize_t tcp_send(struct lg_tconn *tc, const uint8_t *buf, size_t len)
{
    ssize_t n;

    RM_ASSERT(tc != NULL && tc->fd >= 0);
    RM_ASSERT(buf != NULL && len > 0);
    n = send(tc->fd, buf, len, MSG_NOSIGNAL);
    return n < 0 ? -errno : n;
}

static void tcp_close(struct lg_tconn *tc)
{
    RM_ASSERT(tc != NULL);
    RM_ASSERT(tc->state == NULL);
}

const struct lg_transport lg_tcp_transport = {
    .name = "tcp",
    .setup = NULL,
    .cleanup = NULL,
    .thread_done = NULL,
    .open = tcp_open,
    .recv = tcp_recv,
    .send = tcp_send,
    .flush = NULL,
    .close = tcp_close,
};
