/*
 * sdnotify.c - systemd's sd_notify(3) protocol over $NOTIFY_SOCKET (see
 * sdnotify.h).
 *
 * Why not libsystemd's sd_notify(): the protocol is one datagram to a
 * socket named in the environment, documented as stable interface in
 * sd_notify(3); a few lines here cost less than one more run-time
 * library (and package dependency) in a binary that also runs outside
 * systemd, and they keep the socket in net/, which owns every fd.
 *
 * Start-up and shutdown: the start-up thread; sending: any thread (see
 * sdnotify.h THREADING).
 */
#include "net/sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/log.h"

/* Written by sdnotify_init() before the shard threads start; then only read. */
static int notify_fd = -1;
static struct sockaddr_un notify_addr;
static socklen_t notify_addr_len;

int sdnotify_init(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t len;
    int ret;

    if (path == NULL || path[0] == '\0') {
        return 0;
    }
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(notify_addr.sun_path)) {
        LOG_WARN("NOTIFY_SOCKET '%s': not an absolute path or @abstract name that fits a "
                 "socket address; not telling the service manager",
                 path);
        return -EINVAL;
    }
    memset(&notify_addr, 0, sizeof(notify_addr));
    notify_addr.sun_family = AF_UNIX;
    memcpy(notify_addr.sun_path, path, len);
    if (path[0] == '@') {
        notify_addr.sun_path[0] = '\0'; /* abstract namespace: no NUL at the end */
    }
    notify_addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                  (path[0] == '@' ? 0 : 1));
    notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (notify_fd < 0) {
        ret = -errno;
        LOG_WARN("NOTIFY_SOCKET: socket: %s; not telling the service manager", strerror(-ret));
        return ret;
    }
    return 1;
}

void sdnotify_send(const char *state)
{
    ssize_t n;

    if (notify_fd < 0) {
        return;
    }
    do {
        n = sendto(notify_fd, state, strlen(state), MSG_NOSIGNAL,
                   (const struct sockaddr *)&notify_addr, notify_addr_len);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        LOG_DEBUG("NOTIFY_SOCKET: sendto: %s", strerror(errno));
    }
}

void sdnotify_sendf(const char *fmt, ...)
{
    char state[SDNOTIFY_STATE_MAX];
    va_list ap;

    if (notify_fd < 0) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(state, sizeof(state), fmt, ap);
    va_end(ap);
    sdnotify_send(state);
}

void sdnotify_close(void)
{
    if (notify_fd >= 0) {
        close(notify_fd);
        notify_fd = -1;
    }
}
