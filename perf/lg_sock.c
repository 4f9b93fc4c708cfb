/*
 * lg_sock.c - the socket under one load-generator connection; see
 * lg_sock.h.
 *
 * Called by the worker thread that owns the connection (and by lg_run.c
 * once the workers are gone).
 */
#include "perf/lg_sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/rm_assert.h"

static int bind_source(const struct lg_opts *o, struct lg_conn *c)
{
    struct sockaddr_in src = {.sin_family = AF_INET};
    uint32_t span = o->src_last - o->src_first + 1;
    int one = 1;

    src.sin_addr.s_addr = htonl(o->src_first + c->client_idx % span);
    /* Let connect() pick the port per 4-tuple, so each source address has its own 64k. */
    if (setsockopt(c->tc.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
        bind(c->tc.fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        return -errno;
    }
    return 0;
}

int lg_sock_connect(const struct lg_opts *o, int epfd, struct lg_conn *c)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    int one = 1;
    int ret;

    RM_ASSERT(o != NULL && c != NULL);
    RM_ASSERT(c->tc.fd < 0);
    c->tc.fd = socket(o->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->tc.fd < 0) {
        ret = -errno;
        goto out;
    }
    /* MQTT packets are small and latency is measured: no Nagle. */
    setsockopt(c->tc.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->src_first != 0) {
        ret = bind_source(o, c);
        if (ret < 0) {
            goto out;
        }
    }
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->tc.fd, &ev) < 0) {
        ret = -errno;
        goto out;
    }
    c->flags |= LG_CONN_F_EPOLL | LG_CONN_F_OUT;
    ret = 1;
    if (connect(c->tc.fd, (const struct sockaddr *)&o->addr, o->addr_len) != 0) {
        ret = errno == EINPROGRESS ? 0 : -errno;
    }
out:
    return ret;
}

void lg_sock_want_out(int epfd, struct lg_conn *c, bool on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

    if (((c->flags & LG_CONN_F_OUT) != 0) == on || (c->flags & LG_CONN_F_EPOLL) == 0) {
        return;
    }
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->tc.fd, &ev) == 0) {
        c->flags = (uint8_t)(on ? c->flags | LG_CONN_F_OUT : c->flags & ~LG_CONN_F_OUT);
    }
}

int lg_sock_error(const struct lg_conn *c, int *err)
{
    socklen_t len = sizeof(*err);

    RM_ASSERT(c != NULL && c->tc.fd >= 0);
    if (getsockopt(c->tc.fd, SOL_SOCKET, SO_ERROR, err, &len) < 0) {
        return -errno;
    }
    return 0;
}

void lg_sock_close(struct lg_conn *c)
{
    RM_ASSERT(c != NULL && c->tc.fd >= 0);
    close(c->tc.fd); /* also leaves the epoll set */
    c->tc.fd = -1;
}
