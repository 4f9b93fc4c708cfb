/*
 * admin.c - the admin socket server on shard 0's ring (see admin.h).
 *
 * A connection reads (one recv in flight, linked to an ADMIN_IDLE_MS
 * timeout) until a line is whole, runs it - here, or on other shards as
 * jobs, waiting for their answers with nothing in flight - then sends the
 * answer (one send in flight, linked to a timeout too) and goes on with
 * the next line. Every command has a serial number; an answer from
 * another shard finds its connection by it, so a connection may go away
 * while its jobs travel (their answers are then freed on arrival). What a
 * line means and the answers' wording are net/admin_proto's.
 *
 * Shard 0's thread only.
 */
#include "net/admin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/broker.h"
#include "core/rm_assert.h"
#include "net/admin_exec.h"
#include "net/admin_proto.h"
#include "net/board.h"
#include "net/log.h"
#include "net/obs_io.h"
#include "net/reload.h"
#include "net/shard_types.h"
#include "net/text.h"
#include "net/uring.h"
#include "net/xshard.h"

struct admin_conn {
    struct obs_io io; /* OBS_IO_ADMIN_CONN; first */
    int fd;
    bool busy;    /* a recv or send is in flight */
    bool writing; /* sending out[out_off..) */
    bool closing; /* close when nothing is in flight */
    uint32_t serial;  /* the command being answered; 0: none */
    uint32_t waiting; /* answers still due from other shards */
    uint64_t wait_until_ms;
    struct text out;
    size_t out_off;
    size_t in_len;
    struct admin_conn *prev;
    struct admin_conn *next;
    char in[ADMIN_LINE_MAX + 1];
};

struct admin {
    struct obs_io io; /* OBS_IO_ADMIN_LISTEN; first */
    int fd;
    bool armed;
    bool stopping;
    uint32_t next_serial;
    uint32_t conn_count;
    uint32_t waiting_conns; /* conns with waiting > 0 */
    const struct board *board;
    struct admin_conn *conns;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* Whether something accepts on the socket file @path (a live broker). */
static bool in_use(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool used;

    if (fd < 0) {
        return true; /* cannot tell: do not remove it */
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    used = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 || errno != ECONNREFUSED;
    close(fd);
    return used;
}

struct admin *admin_open(const char *path, uint32_t mode, const struct board *board)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    struct admin *a;
    struct stat st;
    mode_t old;
    int ret;

    RM_ASSERT(path != NULL && board != NULL);
    RM_ASSERT(mode == 0600 || mode == 0660);
    if (len == 0 || len >= sizeof(sa.sun_path)) {
        LOG_ERROR("admin socket %s: path too long (at most %zu bytes)", path,
                  sizeof(sa.sun_path) - 1);
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL) {
        LOG_ERROR("admin socket: out of memory");
        return NULL;
    }
    a->io.kind = OBS_IO_ADMIN_LISTEN;
    a->board = board;
    a->fd = -1;
    a->next_serial = 1;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            LOG_ERROR("admin socket %s: exists and is not a socket", path);
            goto out_free;
        }
        if (in_use(path)) {
            LOG_ERROR("admin socket %s: in use (another ringmq?)", path);
            goto out_free;
        }
        unlink(path); /* stale: left by a broker that did not stop cleanly */
    }
    memcpy(sa.sun_path, path, len + 1);
    a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        LOG_ERROR("admin socket %s: %s", path, strerror(errno));
        goto out_free;
    }
    /* The file is made with @mode from the start: no window with wider permissions. */
    old = umask((mode_t)(0777 & ~mode));
    ret = bind(a->fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (ret < 0) {
        LOG_ERROR("admin socket %s: %s", path, strerror(errno));
        goto out_free;
    }
    memcpy(a->path, path, len + 1); /* ours now: removed by admin_free() */
    if (chmod(path, (mode_t)mode) < 0 || listen(a->fd, ADMIN_BACKLOG) < 0) {
        LOG_ERROR("admin socket %s: %s", path, strerror(errno));
        goto out_free;
    }
    LOG_INFO("admin socket listening on %s (mode %04o)", path, mode);
    return a;

out_free:
    admin_free(a);
    return NULL;
}

static int arm_accept(struct admin *a, struct io_uring *ring)
{
    struct io_uring_sqe *sqe = uring_get_sqe(ring);

    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_multishot_accept(sqe, a->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, uring_ud(a, URING_OP_OBS));
    a->armed = true;
    return 0;
}

int admin_start(struct admin *a, struct shard *s)
{
    RM_ASSERT(a != NULL && s != NULL && s->id == 0);
    RM_ASSERT(!a->armed && a->fd >= 0);
    return arm_accept(a, &s->ring);
}

static void conn_free(struct admin *a, struct admin_conn *c)
{
    RM_ASSERT(!c->busy);
    if (c->waiting > 0) {
        a->waiting_conns--; /* its answers are freed when they come */
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        a->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->fd >= 0) {
        close(c->fd);
    }
    text_free(&c->out);
    free(c);
    a->conn_count--;
}

/* Start @c's next operation: send the rest of its answer, or read more. */
static void conn_next(struct admin *a, struct io_uring *ring, struct admin_conn *c)
{
    static struct __kernel_timespec idle = {.tv_sec = ADMIN_IDLE_MS / 1000};
    struct io_uring_sqe *sqe;
    struct io_uring_sqe *t;

    RM_ASSERT(!c->busy && c->waiting == 0);
    if (c->closing || a->stopping) {
        conn_free(a, c);
        return;
    }
    if (io_uring_sq_space_left(ring) < 2) {
        io_uring_submit(ring); /* the pair below goes out in one submission */
    }
    sqe = uring_get_sqe(ring);
    if (sqe == NULL) {
        conn_free(a, c);
        return;
    }
    if (c->writing) {
        io_uring_prep_send(sqe, c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
                           MSG_NOSIGNAL);
    } else {
        RM_ASSERT(c->in_len < ADMIN_LINE_MAX);
        io_uring_prep_recv(sqe, c->fd, c->in + c->in_len, ADMIN_LINE_MAX - c->in_len, 0);
    }
    io_uring_sqe_set_data64(sqe, uring_ud(c, URING_OP_OBS));
    sqe->flags |= IOSQE_IO_LINK;
    c->busy = true;
    t = uring_get_sqe(ring);
    if (t == NULL) {
        c->closing = true; /* it goes without its timeout: close after it */
        return;
    }
    io_uring_prep_link_timeout(t, &idle, 0);
    io_uring_sqe_set_data64(t, URING_OP_IGNORE);
}

/* The answer is complete: send it. */
static void conn_answer(struct admin *a, struct io_uring *ring, struct admin_conn *c)
{
    RM_ASSERT(c->waiting == 0);
    c->serial = 0;
    if (c->out.err != 0) {
        c->closing = true; /* no memory for the answer: the client sees EOF */
    }
    c->writing = true;
    c->out_off = 0;
    conn_next(a, ring, c);
}

/* Send job @j to shard @to for @c, or run it here (@to 0). False: could not send. */
static bool job_send(struct admin *a, struct shard *s, struct admin_conn *c,
                     struct admin_job *j, uint32_t to)
{
    struct xmsg m = {.kind = XMSG_ADMIN};

    j->serial = c->serial;
    if (to == 0) {
        admin_exec_run(s, j);
        admin_proto_job_answer(&c->out, j);
        return true;
    }
    m.payload.ptr[0] = j;
    if (xshard_send(s->xshard, s->id, to, &m) < 0) {
        admin_job_free(j);
        return false;
    }
    if (c->waiting++ == 0) {
        a->waiting_conns++;
    }
    c->wait_until_ms = s->now_ms + ADMIN_REPLY_WAIT_MS;
    return true;
}

/* Run the command @line (NUL-terminated) for @c. */
static void command(struct admin *a, struct shard *s, struct admin_conn *c, char *line)
{
    const char *arg = NULL;
    uint32_t cmd = 0;

    c->serial = a->next_serial++;
    if (a->next_serial == 0) {
        a->next_serial = 1;
    }
    switch (admin_proto_parse(line, &cmd, &arg, &c->out)) {
    case ADMIN_PROTO_BAD:
        return;
    case ADMIN_PROTO_HELP:
        admin_proto_help(&c->out);
        return;
    case ADMIN_PROTO_STATS:
        admin_proto_stats(a->board, &c->out);
        return;
    case ADMIN_PROTO_RELOAD:
        LOG_INFO("admin socket: reload requested");
        reload_start(s);
        text_printf(&c->out, "OK reload started: the log says how it went\n");
        return;
    case ADMIN_PROTO_JOB:
        break;
    }
    for (uint32_t to = 0; to < (cmd == ADMIN_CLIENTS ? s->shard_count : 1); to++) {
        struct admin_job *j;
        int rc = admin_proto_job_new(cmd, arg, &j);

        if (rc < 0) {
            text_printf(&c->out, "ERR %s\n",
                        rc == -ENOMEM ? "out of memory" : "bad client id escape");
            return;
        }
        if (cmd != ADMIN_CLIENTS) {
            to = broker_home_shard(j->id, j->id_len, s->shard_count);
        }
        if (!job_send(a, s, c, j, to)) {
            text_printf(&c->out, "ERR shard %u is busy\n", to);
        }
        if (cmd != ADMIN_CLIENTS) {
            break;
        }
    }
    if (cmd == ADMIN_CLIENTS && c->waiting == 0) {
        text_printf(&c->out, "OK\n");
    }
}

/* Parse what @c has read: run a whole line, or read more. */
static void conn_input(struct admin *a, struct shard *s, struct admin_conn *c)
{
    size_t line_len;
    char *nl;
    size_t used;

    RM_ASSERT(!c->busy && !c->writing && c->waiting == 0);
    c->in[c->in_len] = '\0';
    nl = memchr(c->in, '\n', c->in_len);
    if (nl == NULL) {
        if (c->in_len >= ADMIN_LINE_MAX) {
            text_printf(&c->out, "ERR line too long (at most %u bytes)\n", ADMIN_LINE_MAX);
            c->closing = true;
            conn_answer(a, &s->ring, c);
            return;
        }
        conn_next(a, &s->ring, c);
        return;
    }
    used = (size_t)(nl + 1 - c->in);
    line_len = (size_t)(nl - c->in);
    if (line_len > 0 && c->in[line_len - 1] == '\r') {
        line_len--;
    }
    c->in[line_len] = '\0';
    if (strlen(c->in) != line_len) {
        text_printf(&c->out, "ERR NUL in the request\n");
    } else if (line_len > 0) {
        command(a, s, c, c->in);
    }
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->waiting == 0) {
        if (c->out.len == 0) {
            conn_input(a, s, c); /* an empty line: nothing to answer */
            return;
        }
        conn_answer(a, &s->ring, c);
    }
}

static void accept_done(struct admin *a, struct shard *s, const struct io_uring_cqe *cqe)
{
    struct admin_conn *c;

    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        a->armed = false;
    }
    if (cqe->res >= 0) {
        if (a->stopping || a->conn_count >= ADMIN_CONNS_MAX) {
            close(cqe->res);
        } else if ((c = calloc(1, sizeof(*c))) == NULL) {
            LOG_WARN("admin socket: out of memory for a connection");
            close(cqe->res);
        } else {
            c->io.kind = OBS_IO_ADMIN_CONN;
            c->fd = cqe->res;
            c->next = a->conns;
            if (a->conns != NULL) {
                a->conns->prev = c;
            }
            a->conns = c;
            a->conn_count++;
            conn_next(a, &s->ring, c);
        }
    } else if (cqe->res != -ECANCELED) {
        LOG_WARN("admin socket: accept: %s", strerror(-cqe->res));
    }
    if (!a->armed && !a->stopping && arm_accept(a, &s->ring) < 0) {
        LOG_ERROR("admin socket: cannot re-arm the accept");
    }
}

static void conn_done(struct admin *a, struct shard *s, struct admin_conn *c,
                      const struct io_uring_cqe *cqe)
{
    RM_ASSERT(c->busy);
    c->busy = false;
    if (cqe->res <= 0) {
        c->closing = true; /* EOF, error, or the idle timeout */
        conn_next(a, &s->ring, c);
        return;
    }
    if (c->writing) {
        c->out_off += (size_t)cqe->res;
        if (c->out_off < c->out.len) {
            conn_next(a, &s->ring, c);
            return;
        }
        c->writing = false;
        text_free(&c->out);
        if (c->closing) {
            conn_next(a, &s->ring, c);
            return;
        }
        conn_input(a, s, c); /* the next line may be here already */
        return;
    }
    c->in_len += (size_t)cqe->res;
    conn_input(a, s, c);
}

void admin_done(struct admin *a, struct shard *s, void *obj, const struct io_uring_cqe *cqe)
{
    const struct obs_io *io = obj;

    RM_ASSERT(a != NULL && obj != NULL);
    if (io->kind == OBS_IO_ADMIN_LISTEN) {
        RM_ASSERT(obj == a);
        accept_done(a, s, cqe);
    } else {
        RM_ASSERT(io->kind == OBS_IO_ADMIN_CONN);
        conn_done(a, s, obj, cqe);
    }
}

void admin_job_done(struct admin *a, struct shard *s, struct admin_job *j)
{
    bool clients = j->cmd == ADMIN_CLIENTS;
    struct admin_conn *c;

    RM_ASSERT(a != NULL && j != NULL);
    for (c = a->conns; c != NULL; c = c->next) {
        if (c->serial == j->serial && c->waiting > 0) {
            break;
        }
    }
    if (c == NULL) {
        admin_job_free(j); /* its connection went away, or gave up on it */
        return;
    }
    admin_proto_job_answer(&c->out, j);
    if (--c->waiting > 0) {
        return;
    }
    a->waiting_conns--;
    if (clients) {
        text_printf(&c->out, "OK\n"); /* every shard answered */
    }
    conn_answer(a, &s->ring, c);
}

void admin_tick(struct admin *a, struct shard *s)
{
    struct admin_conn *c;
    struct admin_conn *next;

    if (a->waiting_conns == 0) {
        return;
    }
    for (c = a->conns; c != NULL; c = next) {
        next = c->next;
        if (c->waiting > 0 && s->now_ms >= c->wait_until_ms) {
            text_printf(&c->out, "ERR %u shard(s) did not answer in time\n", c->waiting);
            c->waiting = 0;
            a->waiting_conns--;
            conn_answer(a, &s->ring, c);
        }
    }
}

bool admin_waiting(const struct admin *a)
{
    return a->waiting_conns > 0;
}

void admin_stop(struct admin *a, struct shard *s)
{
    struct admin_conn *c;
    struct admin_conn *next;

    RM_ASSERT(a != NULL);
    if (a->stopping) {
        return;
    }
    a->stopping = true;
    if (a->armed) {
        uring_cancel(&s->ring, uring_ud(a, URING_OP_OBS));
    }
    for (c = a->conns; c != NULL; c = next) {
        next = c->next;
        if (c->busy) {
            shutdown(c->fd, SHUT_RDWR); /* its operation ends; then it is freed */
        } else {
            conn_free(a, c);
        }
    }
}

void admin_free(struct admin *a)
{
    if (a == NULL) {
        return;
    }
    while (a->conns != NULL) {
        a->conns->busy = false; /* the ring is gone: nothing is in flight any more */
        conn_free(a, a->conns);
    }
    if (a->fd >= 0) {
        close(a->fd);
    }
    if (a->path[0] != '\0') {
        unlink(a->path);
    }
    free(a);
}
