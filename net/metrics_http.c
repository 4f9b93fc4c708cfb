/*
 * metrics_http.c - the /metrics HTTP/1.1 server on shard 0's ring (see
 * metrics_http.h).
 *
 * A connection is always in one of two phases: reading (one recv in
 * flight, into the request buffer) or writing (one send in flight, of the
 * response). A request is parsed once its headers are whole ("\r\n\r\n");
 * what follows it stays in the buffer for the next one. Each recv and send
 * is linked to a timeout (user_data URING_OP_IGNORE: its own completion
 * needs no work; the linked operation then completes with -ECANCELED).
 * A connection is freed only when no operation of it is in flight. One
 * closed by the server after its answer sends FIN first and reads until
 * the client's EOF, so the answer is not lost to a reset.
 *
 * Shard 0's thread only.
 */
#include "net/metrics_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/rm_assert.h"
#include "net/listener.h"
#include "net/log.h"
#include "net/obs_io.h"
#include "net/prom.h"
#include "net/uring.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define HEAD_MAX 256u /* a response's status line and headers */

struct http_conn {
    struct obs_io io; /* OBS_IO_HTTP_CONN; first */
    int fd;
    bool busy;      /* a recv or send is in flight */
    bool writing;   /* the phase: sending out[out_off..out_len) */
    bool close_after; /* close once the response is sent */
    bool closing;   /* close when nothing is in flight */
    bool draining;  /* answered and shut down for writing: read and drop until EOF */
    char *out;      /* the response (malloc'd) */
    size_t out_len;
    size_t out_off;
    size_t in_len;
    struct http_conn *prev;
    struct http_conn *next;
    char in[METRICS_HTTP_REQUEST_MAX];
};

struct metrics_http {
    struct obs_io io; /* OBS_IO_HTTP_LISTEN; first */
    int fd;
    bool armed;
    bool stopping;
    char addr[INET6_ADDRSTRLEN + 8];
    const struct board *board;
    const struct config *cfg;
    const char *version;
    struct http_conn *conns;
    uint32_t conn_count;
};

struct metrics_http *metrics_http_open(const char *bind_addr, uint16_t port,
                                       const struct board *board, const struct config *cfg,
                                       const char *version)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct metrics_http *h;
    char host[INET6_ADDRSTRLEN];
    const int one = 1;

    RM_ASSERT(bind_addr != NULL && board != NULL && cfg != NULL && version != NULL);
    h = calloc(1, sizeof(*h));
    if (h == NULL) {
        LOG_ERROR("metrics: out of memory");
        return NULL;
    }
    h->io.kind = OBS_IO_HTTP_LISTEN;
    h->board = board;
    h->cfg = cfg;
    h->version = version;
    h->fd = -1;
    if (listener_parse_addr(bind_addr, port, &ss, &len) < 0) {
        LOG_ERROR("metrics: bind: not a numeric IPv4 or IPv6 address: %s", bind_addr);
        goto out_free;
    }
    h->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->fd < 0 || setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(h->fd, (struct sockaddr *)&ss, len) < 0 || listen(h->fd, METRICS_HTTP_BACKLOG) < 0) {
        LOG_ERROR("metrics: cannot listen on %s port %u: %s", bind_addr, port, strerror(errno));
        goto out_free;
    }
    len = sizeof(ss);
    if (getsockname(h->fd, (struct sockaddr *)&ss, &len) < 0) {
        LOG_ERROR("metrics: getsockname: %s", strerror(errno));
        goto out_free;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        snprintf(h->addr, sizeof(h->addr), "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &in4->sin_addr, host, sizeof(host));
        snprintf(h->addr, sizeof(h->addr), "%s:%u", host, ntohs(in4->sin_port));
    }
    LOG_INFO("metrics listening on http://%s/metrics", h->addr);
    return h;

out_free:
    metrics_http_free(h);
    return NULL;
}

static int arm_accept(struct metrics_http *h, struct io_uring *ring)
{
    struct io_uring_sqe *sqe = uring_get_sqe(ring);

    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_multishot_accept(sqe, h->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, uring_ud(h, URING_OP_OBS));
    h->armed = true;
    return 0;
}

int metrics_http_start(struct metrics_http *h, struct io_uring *ring)
{
    RM_ASSERT(h != NULL && ring != NULL);
    RM_ASSERT(!h->armed && h->fd >= 0);
    return arm_accept(h, ring);
}

/* Link a timeout of METRICS_HTTP_IDLE_MS to the SQE just queued (@sqe). */
static int link_timeout(struct io_uring *ring, struct io_uring_sqe *sqe)
{
    static struct __kernel_timespec ts = {
        .tv_sec = METRICS_HTTP_IDLE_MS / 1000,
        .tv_nsec = (long long)(METRICS_HTTP_IDLE_MS % 1000) * 1000000,
    };
    struct io_uring_sqe *t;

    sqe->flags |= IOSQE_IO_LINK;
    t = uring_get_sqe(ring);
    if (t == NULL) {
        return -EBUSY;
    }
    /* The kernel copies ts when the SQE is prepared for submission: static is enough. */
    io_uring_prep_link_timeout(t, &ts, 0);
    io_uring_sqe_set_data64(t, URING_OP_IGNORE);
    return 0;
}

static void conn_free(struct metrics_http *h, struct http_conn *c)
{
    RM_ASSERT(!c->busy);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    free(c->out);
    free(c);
    h->conn_count--;
}

/*
 * Start @c's next operation: a send of the rest of its response, or a recv
 * into the rest of its buffer. On failure to get an SQE the connection is
 * closed (nothing is in flight then).
 */
static void conn_next(struct metrics_http *h, struct io_uring *ring, struct http_conn *c)
{
    struct io_uring_sqe *sqe;

    RM_ASSERT(!c->busy);
    if (c->closing || h->stopping) {
        conn_free(h, c);
        return;
    }
    /* A link may be split across two submissions if the SQ fills: make room first. */
    if (io_uring_sq_space_left(ring) < 2) {
        io_uring_submit(ring);
    }
    sqe = uring_get_sqe(ring);
    if (sqe == NULL) {
        conn_free(h, c);
        return;
    }
    if (c->writing) {
        io_uring_prep_send(sqe, c->fd, c->out + c->out_off, c->out_len - c->out_off,
                           MSG_NOSIGNAL);
    } else {
        /* One byte stays free for the NUL that conn_input() puts after the input. */
        RM_ASSERT(c->in_len < sizeof(c->in) - 1);
        io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, 0);
    }
    io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_OBS));
    c->busy = true;
    if (link_timeout(ring, sqe) < 0) {
        /* The operation goes without its timeout: rare (no SQE); close after it. */
        c->closing = true;
    }
}

/* Queue a response: @status (e.g. "404 Not Found"), @extra headers, @body (NULL: none). */
static int respond(struct http_conn *c, const char *status, const char *extra, const char *body,
                   size_t body_len, bool head_only)
{
    char head[HEAD_MAX];
    int n;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: %s"
                 "\r\n\r\n",
                 status, body != NULL && status[0] == '2' ? CONTENT_TYPE : "text/plain",
                 body_len, extra, c->close_after ? "close" : "keep-alive");
    RM_ASSERT(n > 0 && (size_t)n < sizeof(head));
    free(c->out);
    c->out_len = (size_t)n + (head_only ? 0 : body_len);
    c->out = malloc(c->out_len);
    if (c->out == NULL) {
        c->out_len = 0;
        return -ENOMEM;
    }
    memcpy(c->out, head, (size_t)n);
    if (!head_only && body_len > 0) {
        memcpy(c->out + n, body, body_len);
    }
    c->out_off = 0;
    c->writing = true;
    return 0;
}

static int respond_text(struct http_conn *c, const char *status, const char *extra,
                        const char *text, bool head_only)
{
    return respond(c, status, extra, text, strlen(text), head_only);
}

/* Whether header @name (with its ':') has a value containing @token, case-insensitively. */
static bool header_has(const char *headers, const char *name, const char *token)
{
    size_t name_len = strlen(name);
    const char *p = headers;

    while ((p = strstr(p, "\r\n")) != NULL) {
        p += 2;
        if (strncasecmp(p, name, name_len) == 0) {
            const char *end = strstr(p, "\r\n");
            size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
            char value[256];

            len = len < sizeof(value) - 1 ? len : sizeof(value) - 1;
            memcpy(value, p, len);
            value[len] = '\0';
            return strcasestr(value + name_len, token) != NULL;
        }
    }
    return false;
}

/*
 * Answer the request whose headers end at @c->in[@end) (NUL-terminated
 * there): sets the response and whether to close after it. Returns 0 or
 * -ENOMEM.
 */
static int answer(struct metrics_http *h, struct http_conn *c, size_t end)
{
    char *req = c->in;
    char *sp1 = memchr(req, ' ', end);
    char *sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', end - (size_t)(sp1 + 1 - req)) : NULL;
    char *eol = strstr(req, "\r\n");
    bool http10;
    bool head;
    size_t path_len;
    int ret;

    if (sp1 == NULL || sp2 == NULL || eol == NULL || sp2 > eol ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        c->close_after = true;
        return respond_text(c, "400 Bad Request", "", "bad request\n", false);
    }
    http10 = strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    c->close_after = http10 ? !header_has(eol, "Connection:", "keep-alive")
                            : header_has(eol, "Connection:", "close");
    head = (size_t)(sp1 - req) == 4 && memcmp(req, "HEAD", 4) == 0;
    if (!head && !((size_t)(sp1 - req) == 3 && memcmp(req, "GET", 3) == 0)) {
        /* A body we do not read may follow: never keep such a connection. */
        c->close_after = true;
        return respond_text(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n",
                            "method not allowed\n", false);
    }
    path_len = (size_t)(sp2 - (sp1 + 1));
    for (size_t i = 0; i < path_len; i++) {
        if (sp1[1 + i] == '?') {
            path_len = i; /* a query string changes nothing */
            break;
        }
    }
    if (path_len != 8 || memcmp(sp1 + 1, "/metrics", 8) != 0) {
        return respond_text(c, "404 Not Found", "", "not found: try /metrics\n", head);
    }
    struct text t;

    memset(&t, 0, sizeof(t));
    ret = prom_render(h->board, h->cfg, h->version, &t);
    if (ret == 0) {
        ret = respond(c, "200 OK", "", t.p, t.len, head);
    }
    text_free(&t);
    return ret;
}

/* Parse what @c has read: answer a whole request, or read more. */
static void conn_input(struct metrics_http *h, struct io_uring *ring, struct http_conn *c)
{
    char *end;
    size_t req_len;

    RM_ASSERT(!c->writing && !c->busy);
    c->in[c->in_len] = '\0';
    end = strstr(c->in, "\r\n\r\n");
    if (end == NULL && memchr(c->in, '\0', c->in_len) != NULL) {
        c->close_after = true; /* NUL in a request: not HTTP */
        if (respond_text(c, "400 Bad Request", "", "bad request\n", false) < 0) {
            c->closing = true;
        }
    } else if (end == NULL && c->in_len >= sizeof(c->in) - 1) {
        c->close_after = true;
        if (respond_text(c, "431 Request Header Fields Too Large", "", "request too large\n",
                         false) < 0) {
            c->closing = true;
        }
    } else if (end != NULL) {
        req_len = (size_t)(end + 4 - c->in);
        end[2] = '\0'; /* keep the last header's CRLF for header_has() */
        if (answer(h, c, req_len) < 0) {
            c->closing = true;
        }
        /* Keep what follows (a pipelined request) for after the response. */
        memmove(c->in, c->in + req_len, c->in_len - req_len);
        c->in_len -= req_len;
    }
    conn_next(h, ring, c);
}

static void accept_done(struct metrics_http *h, struct io_uring *ring,
                        const struct io_uring_cqe *cqe)
{
    struct http_conn *c;

    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        h->armed = false;
    }
    if (cqe->res >= 0) {
        if (h->stopping || h->conn_count >= METRICS_HTTP_CONNS_MAX) {
            LOG_DEBUG("metrics: refusing a connection (%u open)", h->conn_count);
            close(cqe->res);
        } else if ((c = calloc(1, sizeof(*c))) == NULL) {
            LOG_WARN("metrics: out of memory for a connection");
            close(cqe->res);
        } else {
            c->io.kind = OBS_IO_HTTP_CONN;
            c->fd = cqe->res;
            c->next = h->conns;
            if (h->conns != NULL) {
                h->conns->prev = c;
            }
            h->conns = c;
            h->conn_count++;
            conn_next(h, ring, c);
        }
    } else if (cqe->res != -ECANCELED) {
        LOG_WARN("metrics: accept: %s", strerror(-cqe->res));
    }
    if (!h->armed && !h->stopping && arm_accept(h, ring) < 0) {
        LOG_ERROR("metrics: cannot re-arm the accept");
    }
}

static void conn_done(struct metrics_http *h, struct io_uring *ring, struct http_conn *c,
                      const struct io_uring_cqe *cqe)
{
    RM_ASSERT(c->busy);
    c->busy = false;
    if (cqe->res <= 0) {
        /* EOF, error, or the linked timeout cancelled it (-ECANCELED): done. */
        c->closing = true;
        conn_next(h, ring, c);
        return;
    }
    if (c->writing) {
        c->out_off += (size_t)cqe->res;
        if (c->out_off < c->out_len) {
            conn_next(h, ring, c);
            return;
        }
        c->writing = false;
        free(c->out);
        c->out = NULL;
        if (c->close_after) {
            /*
             * Closing over unread input would reset the connection, and the
             * client could lose the answer (a 431 has input left by
             * definition): send FIN, then drop what comes until its EOF
             * (or the idle timeout).
             */
            shutdown(c->fd, SHUT_WR);
            c->draining = true;
            c->in_len = 0;
            conn_next(h, ring, c);
            return;
        }
        conn_input(h, ring, c); /* a pipelined request may be whole already */
        return;
    }
    if (c->draining) {
        conn_next(h, ring, c); /* dropped: in_len stays 0 */
        return;
    }
    c->in_len += (size_t)cqe->res;
    conn_input(h, ring, c);
}

void metrics_http_done(struct metrics_http *h, struct io_uring *ring, void *obj,
                       const struct io_uring_cqe *cqe)
{
    const struct obs_io *io = obj;

    RM_ASSERT(h != NULL && obj != NULL);
    if (io->kind == OBS_IO_HTTP_LISTEN) {
        RM_ASSERT(obj == h);
        accept_done(h, ring, cqe);
    } else {
        RM_ASSERT(io->kind == OBS_IO_HTTP_CONN);
        conn_done(h, ring, obj, cqe);
    }
}

void metrics_http_stop(struct metrics_http *h, struct io_uring *ring)
{
    struct http_conn *c;
    struct http_conn *next;

    RM_ASSERT(h != NULL);
    if (h->stopping) {
        return;
    }
    h->stopping = true;
    if (h->armed) {
        uring_cancel(ring, uring_ud(h, URING_OP_OBS));
    }
    for (c = h->conns; c != NULL; c = next) {
        next = c->next;
        if (c->busy) {
            shutdown(c->fd, SHUT_RDWR); /* its operation ends; then it is freed */
        } else {
            conn_free(h, c);
        }
    }
}

void metrics_http_free(struct metrics_http *h)
{
    if (h == NULL) {
        return;
    }
    while (h->conns != NULL) {
        h->conns->busy = false; /* the ring is gone: nothing is in flight any more */
        conn_free(h, h->conns);
    }
    if (h->fd >= 0) {
        close(h->fd);
    }
    free(h);
}
