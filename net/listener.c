/*
 * listener.c - listening sockets and multishot accept (see listener.h).
 *
 * Owned by one shard; that thread only.
 */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/rm_assert.h"
#include "net/log.h"
#include "net/port_owner.h"
#include "net/uring.h"

static int set_int_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

int listener_parse_addr(const char *bind_addr, uint16_t port, struct sockaddr_storage *ss,
                      socklen_t *len)
{
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, bind_addr, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, bind_addr, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

static void format_addr(struct listener *l, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN];

    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        l->port = ntohs(in6->sin6_port);
        snprintf(l->addr, sizeof(l->addr), "[%s]:%u", host, l->port);
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
        l->port = ntohs(in4->sin_port);
        snprintf(l->addr, sizeof(l->addr), "%s:%u", host, l->port);
    }
}

/*
 * bind(2) said EADDRINUSE: say which process holds the port (best effort,
 * net/port_owner) and how to choose another, rather than only the errno.
 */
static void log_port_in_use(const struct config_listener *cfg, uint16_t port)
{
    char name[64];
    char who[128];
    pid_t pid = port_owner_find(port, name, sizeof(name));

    if (pid > 0) {
        snprintf(who, sizeof(who), "in use by %s (pid %ld)", name[0] != '\0' ? name : "a process",
                 (long)pid);
    } else {
        snprintf(who, sizeof(who),
                 "in use by another process (one this user cannot see; `sudo ss -ltnp "
                 "'sport = :%u'` names it)",
                 port);
    }
    LOG_ERROR("listener %s: port %u on %s is %s; choose another port with `ringmq -p PORT` "
              "(the first listener) or `port =` in [listener.%s], or stop that process",
              cfg->name, port, cfg->bind, who, cfg->name);
}

int listener_open(struct listener *l, const struct config_listener *cfg,
                  const struct tls_ctx *tls, uint16_t port, bool announce)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int ret;

    RM_ASSERT(l != NULL && cfg != NULL);
    memset(l, 0, sizeof(*l));
    l->fd = -1;
    l->cfg = cfg;
    l->tls = tls;

    ret = listener_parse_addr(cfg->bind, port, &ss, &len);
    if (ret < 0) {
        LOG_ERROR("listener %s: bind address '%s' is not a numeric IPv4 or IPv6 address", cfg->name,
                  cfg->bind);
        goto out;
    }
    l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
    if (l->fd < 0) {
        ret = -errno;
        LOG_ERROR("listener %s: socket: %s", cfg->name, strerror(-ret));
        goto out;
    }
    ret = set_int_opt(l->fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (ret == 0) {
        ret = set_int_opt(l->fd, SOL_SOCKET, SO_REUSEPORT, 1);
    }
    if (ret == 0 && ss.ss_family == AF_INET6) {
        ret = set_int_opt(l->fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    }
    if (ret < 0) {
        LOG_ERROR("listener %s: setsockopt: %s", cfg->name, strerror(-ret));
        goto out_close;
    }
    /* Not fatal: conn_accept() then sets it on each accepted socket. */
    l->nodelay = set_int_opt(l->fd, IPPROTO_TCP, TCP_NODELAY, 1) == 0;
    if (bind(l->fd, (struct sockaddr *)&ss, len) < 0) {
        ret = -errno;
        if (ret == -EADDRINUSE) {
            log_port_in_use(cfg, port);
        } else {
            LOG_ERROR("listener %s: bind %s port %u: %s", cfg->name, cfg->bind, port,
                      strerror(-ret));
        }
        goto out_close;
    }
    if (listen(l->fd, (int)(cfg->backlog > 65535 ? 65535 : cfg->backlog)) < 0) {
        ret = -errno;
        LOG_ERROR("listener %s: listen: %s", cfg->name, strerror(-ret));
        goto out_close;
    }
    len = sizeof(ss);
    if (getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0) {
        ret = -errno;
        LOG_ERROR("listener %s: getsockname: %s", cfg->name, strerror(-ret));
        goto out_close;
    }
    format_addr(l, &ss);
    if (announce) {
        LOG_INFO("listener %s listening on %s%s", l->cfg->name, l->addr,
                 cfg->protocol == CONFIG_PROTO_WEBSOCKETS ? (tls ? " (wss)" : " (ws)")
                                                          : (tls ? " (tls)" : ""));
    } else {
        LOG_DEBUG("listener %s: another socket on %s", l->cfg->name, l->addr);
    }
    return 0;

out_close:
    close(l->fd);
    l->fd = -1;
out:
    return ret;
}

int listener_arm(struct listener *l, struct io_uring *ring)
{
    struct io_uring_sqe *sqe;

    RM_ASSERT(l != NULL && l->fd >= 0);
    RM_ASSERT(!l->armed);
    sqe = uring_get_sqe(ring);
    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, uring_ud(l, URING_OP_ACCEPT));
    l->armed = true;
    l->retry_at_ms = 0;
    return 0;
}

static bool is_resource_error(int err)
{
    return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

int listener_accept_done(struct listener *l, const struct io_uring_cqe *cqe, uint64_t now_ms)
{
    int res = cqe->res;

    RM_ASSERT(l != NULL && cqe != NULL);
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        l->armed = false;
        l->retry_at_ms = now_ms;
    }
    if (res >= 0 || res == -ECANCELED || l->stopped) {
        return res; /* a stopped socket's accept ends with an error: expected */
    }
    if (is_resource_error(res)) {
        l->retry_at_ms = now_ms + LISTENER_RETRY_MS;
    }
    if (now_ms - l->log_at_ms >= LISTENER_LOG_INTERVAL_MS) {
        if (l->errors_quiet > 0) {
            LOG_WARN("listener %s: accept: %s (and %u more errors)", l->cfg->name, strerror(-res),
                     l->errors_quiet);
        } else {
            LOG_WARN("listener %s: accept: %s", l->cfg->name, strerror(-res));
        }
        l->log_at_ms = now_ms;
        l->errors_quiet = 0;
    } else {
        l->errors_quiet++;
    }
    return res;
}

void listener_stop(struct listener *l)
{
    RM_ASSERT(l != NULL);
    if (l->fd < 0 || l->stopped) {
        return;
    }
    l->stopped = true;
    if (shutdown(l->fd, SHUT_RD) < 0) {
        /* Not fatal: the cancel and the close that follow stop it too, a moment later. */
        LOG_DEBUG("listener %s: shutdown: %s", l->cfg->name, strerror(errno));
    }
}

void listener_close(struct listener *l)
{
    RM_ASSERT(l != NULL);
    RM_ASSERT(!l->armed);
    if (l->fd < 0) {
        return;
    }
    close(l->fd);
    l->fd = -1;
}
