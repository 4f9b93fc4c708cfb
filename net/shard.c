/*
 * shard.c - the shard's io_uring loop (see shard.h).
 *
 * Decisions:
 * - The wait uses io_uring_submit_and_wait_timeout() (EXT_ARG, no timeout
 *   SQE): no timeout while nothing is scheduled, TIMER_TICK_MS while any
 *   deadline, listener retry or stop is pending, and 0 when a per-iteration
 *   bound left work over. Waking every tick while connections exist is 10
 *   wake-ups a second; finding the next non-empty slot could trim that later.
 * - End-of-iteration order: timers first (their closes publish wills and so
 *   dirty other clients), then the dirty drain, then listener re-arms, stop
 *   progress, the work list, which frees finalised conns after everything
 *   else that could name them has run, a second dirty drain for wills
 *   published by closes after the first (stop progress), the cross-shard
 *   flush, so everything the iteration produced leaves in one batch per
 *   destination, and last the sweep that puts idle TLS connections to sleep
 *   (a bounded number; the shard ticks while any is awake).
 * - Inbound cross-shard messages are drained right after the wait, before
 *   the CQEs, so a publish from another shard and a local one reach the
 *   dirty drain of the same iteration.
 * - A full destination ring never blocks: the overflow is retried every
 *   iteration, and while one waits the wait is bounded by XSHARD_RETRY_NS
 *   instead of spinning (the consumer makes room at its own pace).
 * - Every accepted socket is admitted or refused by net/admit before it
 *   reads a byte (memory, per address, connections_max, rate: all
 *   process-wide); a refused one is reset at once and counted. A connection
 *   handed over by another shard was admitted there; while stopping it is
 *   closed.
 * - The memory sample (net/admit) is taken right after the wait, before
 *   the completions, so an accept or a publish in the same iteration sees
 *   the flag it set.
 *
 * Owned by one shard; that thread only (shard_free: any thread once every
 * shard has stopped).
 */
#include "net/shard.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/random.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/broker.h"
#include "core/login.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "net/admin_exec.h"
#include "net/admit.h"
#include "net/conn.h"
#include "net/drain.h"
#include "net/live.h"
#include "net/reload.h"
#include "net/log.h"
#include "net/obs.h"
#include "net/uring.h"
#include "net/wal_io.h"
#include "net/xport.h"
#include "net/xshard.h"
#include "tls/tls_ctx.h"

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    sigaddset(set, SIGUSR1);
}

int shard_signals_block(void)
{
    struct sigaction sa;
    sigset_t set;
    int ret;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) < 0) {
        return -errno;
    }
    signal_set(&set);
    ret = pthread_sigmask(SIG_BLOCK, &set, NULL);
    return -ret;
}

static uint64_t clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* core/login asks: the verified certificate CN of @cl's connection (login_peer_ops). */
static const char *peer_identity(void *ctx, const struct client *cl)
{
    const struct conn *c = conn_from_client((struct client *)cl);

    (void)ctx;
    return c->xp != NULL ? c->xp->identity : NULL;
}

/*
 * core/login asks: a key for @cl's source address, to pace its failed
 * logins (login_peer_ops). One getpeername(2), only after a failure; an
 * IPv4 client over IPv6 (::ffff:a.b.c.d) counts as a.b.c.d.
 */
static uint64_t peer_address(void *ctx, const struct client *cl)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const struct conn *c = conn_from_client((struct client *)cl);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const void *a;
    size_t n;

    (void)ctx;
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        a = &((const struct sockaddr_in *)&ss)->sin_addr;
        n = 4;
    } else if (ss.ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;

        a = memcmp(b, v4mapped, sizeof(v4mapped)) == 0 ? b + 12 : b;
        n = a == b ? 16 : 4;
    } else {
        return 0;
    }
    return XXH3_64bits(a, n) | 1; /* never 0, "unknown" */
}

/*
 * core/auth asks: unpredictable bytes for a SCRAM server nonce
 * (login_peer_ops). The kernel's CSPRNG, once per exchange.
 */
static int peer_random(void *ctx, uint8_t *buf, size_t len)
{
    size_t got = 0;

    (void)ctx;
    /* Short reads happen only on a signal; a few tries at most. */
    for (int tries = 0; got < len && tries < 4; tries++) {
        ssize_t n = getrandom(buf + got, len - got, 0);

        if (n > 0) {
            got += (size_t)n;
        } else if (n < 0 && errno != EINTR) {
            return -errno;
        }
    }
    return got == len ? 0 : -EIO;
}

struct shard *shard_new(const struct config *cfg, struct live_owner *owner, uint32_t id,
                        uint32_t shard_count, struct admit *admit, struct xshard *xshard,
                        const uint16_t *ports, const struct wal_dir *wal)
{
    const struct login_peer_ops peer = {
        .identity = peer_identity, .address = peer_address, .random = peer_random, .ctx = NULL};
    const struct live *lv;
    struct shard *s;
    sigset_t set;
    uint32_t i;
    int ret;

    RM_ASSERT(cfg != NULL && xshard != NULL && admit != NULL);
    RM_ASSERT(owner != NULL && owner->cur != NULL);
    lv = owner->cur;
    RM_ASSERT(lv->cfg.listener_count == cfg->listener_count);
    RM_ASSERT(cfg->listener_count <= CONFIG_LISTENERS_MAX);
    RM_ASSERT(id < shard_count && (id == 0) == (ports == NULL));
    log_set_shard((int)id); /* this thread runs shard @id from here on */
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        LOG_ERROR("shard %u: out of memory", id);
        return NULL;
    }
    s->cfg = cfg;
    s->id = id;
    s->shard_count = shard_count;
    s->admit = admit;
    s->xshard = xshard;
    s->shutdown_next = shard_count;
    s->abort_next = shard_count;
    s->reload_next = shard_count;
    s->live = lv;
    s->owner = id == 0 ? owner : NULL;
    s->signal_fd = -1;
    for (i = 0; i < CONFIG_LISTENERS_MAX; i++) {
        s->listeners[i].fd = -1;
    }
    s->now_ms = clock_ms();
    timer_wheel_init(&s->timers, s->now_ms);
    xport_naps_init(&s->xport_naps);

    if (uring_init(&s->ring) < 0) {
        goto out_free;
    }
    s->ring_ready = true;
    xshard_set_ring_fd(xshard, id, s->ring.ring_fd);
    ret = bufring_init_incremental(&s->bufring, &s->ring, BUFRING_GROUP_ID, BUFRING_INC_ENTRIES,
                                   BUFRING_INC_BUF_BYTES, BUFRING_ENTRIES, BUFRING_BUF_BYTES);
    if (ret < 0) {
        goto out_free;
    }
    s->broker = broker_new(&cfg->limits, id, shard_count);
    if (s->broker == NULL) {
        LOG_ERROR("shard %u: cannot create the broker: out of memory", id);
        goto out_free;
    }
    broker_set_login(s->broker, lv->login, &peer);
    broker_set_vhosts(s->broker, &cfg->hosts);
    /* Each listener's ACL, in the snapshot (reload_apply() swaps them on reload). */
    broker_set_acls(s->broker, lv->listener_acl, cfg->listener_count);
    if (wal != NULL) {
        /* Sessions and retained messages come back before any listener is armed. */
        broker_tick(s->broker, s->now_ms);
        if (wal_io_start(&s->wal, wal, &cfg->wal, id, shard_count, s->broker, s->now_ms) < 0) {
            goto out_free;
        }
    }
    for (i = 0; i < cfg->listener_count; i++) {
        uint16_t port = ports != NULL ? ports[i] : cfg->listeners[i].port;

        RM_ASSERT((lv->tls[i] != NULL) == config_listener_tls(&cfg->listeners[i]));
        if (config_listener_tls(&cfg->listeners[i]) && s->xport_scratch == NULL) {
            s->xport_scratch = malloc(XPORT_SCRATCH_BYTES);
            if (s->xport_scratch == NULL) {
                LOG_ERROR("shard %u: out of memory", id);
                goto out_free;
            }
        }
        if (listener_open(&s->listeners[i], &cfg->listeners[i], lv->tls[i], port, id == 0) < 0) {
            goto out_free;
        }
        s->listener_count++;
    }
    if (id == 0) {
        signal_set(&set);
        s->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->signal_fd < 0) {
            LOG_ERROR("shard %u: signalfd: %s", id, strerror(errno));
            goto out_free;
        }
    }
    return s;

out_free:
    shard_free(s);
    return NULL;
}

static int arm_signal(struct shard *s)
{
    struct io_uring_sqe *sqe = uring_get_sqe(&s->ring);

    if (sqe == NULL) {
        return -EBUSY;
    }
    io_uring_prep_poll_multishot(sqe, s->signal_fd, POLLIN);
    io_uring_sqe_set_data64(sqe, uring_ud(s, URING_OP_SIGNAL));
    s->signal_armed = true;
    return 0;
}

/* SIGUSR1: every shard compacts its write-ahead log now (best effort across shards). */
static void compact_all(struct shard *s)
{
    struct xmsg m = {.kind = XMSG_WAL_COMPACT};
    uint32_t i;

    if (s->wal == NULL) {
        LOG_INFO("SIGUSR1: persistence is off, nothing to compact");
        return;
    }
    LOG_INFO("SIGUSR1: compacting the write-ahead log");
    wal_io_compact(s->wal);
    for (i = 1; i < s->shard_count; i++) {
        if (xshard_send(s->xshard, s->id, i, &m) < 0) {
            LOG_WARN("SIGUSR1: shard %u not told (out of memory)", i);
        }
    }
}

static void signal_done(struct shard *s, const struct io_uring_cqe *cqe)
{
    struct signalfd_siginfo si;
    uint32_t i;
    ssize_t n;

    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        s->signal_armed = false;
    }
    if (cqe->res < 0 && cqe->res != -ECANCELED) {
        LOG_WARN("signalfd poll: %s", strerror(-cqe->res));
    }
    for (i = 0; i < SHARD_SIGNALS_PER_WAKE_MAX; i++) {
        n = read(s->signal_fd, &si, sizeof(si));
        if (n != (ssize_t)sizeof(si)) {
            break;
        }
        if (si.ssi_signo == SIGHUP) {
            reload_start(s);
        } else if (si.ssi_signo == SIGUSR1) {
            compact_all(s);
        } else if (!s->stopping) {
            drain_start(s, si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            s->shutdown_next = 0; /* and every other shard */
        } else {
            LOG_INFO("second stop signal: abandoning output flushes");
            s->stop_at_ms = s->now_ms;
            s->abort_next = 0;
        }
    }
    if (!s->signal_armed && !s->signal_cancel_sent && arm_signal(s) < 0) {
        LOG_ERROR("cannot re-arm the signalfd poll");
    }
}

/*
 * A connection was refused for @why: count it and log, at most once a
 * second, with its source address (@peer, or asked of @fd when NULL and
 * @fd >= 0: one syscall per record, not per refusal).
 */
static void log_refusal(struct shard *s, const char *why, int fd,
                        const struct sockaddr_storage *peer)
{
    char host[INET6_ADDRSTRLEN] = "";
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    const void *addr = NULL;

    s->stats.conns_refused++;
    if (s->now_ms - s->refuse_log_at_ms >= SHARD_LOG_INTERVAL_MS) {
        if (peer == NULL && fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
            peer = &ss;
        }
        if (peer != NULL && peer->ss_family == AF_INET) {
            addr = &((const struct sockaddr_in *)peer)->sin_addr;
        } else if (peer != NULL && peer->ss_family == AF_INET6) {
            addr = &((const struct sockaddr_in6 *)peer)->sin6_addr;
        }
        if (addr == NULL || inet_ntop(peer->ss_family, addr, host, sizeof(host)) == NULL) {
            host[0] = '\0';
        }
        LOG_WARN("refusing a connection%s%s: %s (%u more refused since the last record)",
                 host[0] != '\0' ? " from " : "", host, why, s->refused_quiet);
        s->refuse_log_at_ms = s->now_ms;
        s->refused_quiet = 0;
    } else {
        s->refused_quiet++;
    }
}

/*
 * Close @fd, refused at accept before it read anything, with a reset
 * (SO_LINGER 0): nothing is owed to a connection that sent nothing we read,
 * and a flood of refusals leaves no TIME_WAIT sockets behind.
 */
static void refuse(int fd)
{
    const struct linger lg = {.l_onoff = 1, .l_linger = 0};

    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

static void accept_done(struct shard *s, struct listener *l, const struct io_uring_cqe *cqe)
{
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    const struct sockaddr_storage *from = NULL;
    enum admit_verdict v;
    int fd = listener_accept_done(l, cqe, s->now_ms);

    if (fd < 0) {
        return;
    }
    if (s->stopping) {
        close(fd);
        s->stats.conns_refused++;
        return;
    }
    /* Memory first, as admit_check() does: a flood under pressure costs no getpeername(). */
    v = admit_pressure(s->admit) ? ADMIT_MEMORY : ADMIT_OK;
    if (v == ADMIT_OK && admit_wants_peer(s->admit)) {
        if (getpeername(fd, (struct sockaddr *)&peer, &peer_len) < 0) {
            /* Reset before we got to it (ENOTCONN): nothing left to admit. */
            LOG_DEBUG("conn fd %d: getpeername: %s", fd, strerror(errno));
            close(fd);
            s->stats.conns_refused++;
            return;
        }
        from = &peer;
    }
    if (v == ADMIT_OK) {
        v = admit_check(s->admit, fd, from, s->now_ms);
    }
    if (v != ADMIT_OK) {
        s->stats.refused_memory += v == ADMIT_MEMORY;
        s->stats.refused_address += v == ADMIT_ADDRESS;
        s->stats.refused_rate += v == ADMIT_RATE;
        log_refusal(s, admit_verdict_str(v), fd, from);
        refuse(fd);
        return;
    }
    s->stats.accepted_by_listener[l - s->listeners]++;
    if (conn_accept(s, fd, l) == -ENOMEM) {
        log_refusal(s, "out of memory", -1, NULL);
    }
}

/* A connection handed over by shard @from (XMSG_CONN_HANDOFF). */
static void adopt(struct shard *s, uint32_t from, const struct xmsg *m)
{
    int fd = m->payload.conn.fd;

    RM_ASSERT(fd >= 0);
    /* Admitted already, by the shard that accepted it. */
    if (s->stopping) {
        admit_close(s->admit, fd);
        free(m->payload.conn.bytes);
        xport_free(m->payload.conn.xport);
        s->stats.handoffs_refused++;
        log_refusal(s, "stopping", -1, NULL);
        return;
    }
    if (conn_adopt(s, fd, m->payload.conn.xport, m->arg, m->payload.conn.bytes,
                   m->payload.conn.len) == -ENOMEM) {
        log_refusal(s, "out of memory", -1, NULL);
    }
    (void)from;
}

/* One message from shard @from (xshard_receive callback). */
static void xmsg_received(void *ctx, uint32_t from, const struct xmsg *m)
{
    struct shard *s = ctx;

    switch (m->kind) {
    case XMSG_PUBLISH:
    case XMSG_MSG_FREE:
    case XMSG_INTEREST_ADD:
    case XMSG_INTEREST_DEL:
    case XMSG_RETAIN_SET:
    case XMSG_RETAIN_APPLY:
    case XMSG_ACK:
    case XMSG_NACK:
    case XMSG_SHARE_PUBLISH:
        broker_xmsg_receive(s->broker, from, m);
        break;
    case XMSG_CONN_HANDOFF:
        adopt(s, from, m);
        break;
    case XMSG_RELOAD:
    case XMSG_RELOAD_DONE:
        reload_received(s, from, m);
        break;
    case XMSG_WAL_COMPACT:
        if (s->wal != NULL) {
            wal_io_compact(s->wal);
        }
        break;
    case XMSG_ADMIN:
        admin_exec_received(s, m);
        break;
    case XMSG_ADMIN_DONE:
        obs_admin_job_done(s, m->payload.ptr[0]);
        break;
    case XMSG_SHUTDOWN:
        if (!s->stopping) {
            drain_start(s, "shutdown");
        }
        if (m->arg != 0 && s->stop_at_ms > s->now_ms) {
            LOG_INFO("shard %u: abandoning output flushes", s->id);
            s->stop_at_ms = s->now_ms;
        }
        break;
    default:
        RM_ASSERT(!"unknown cross-shard message kind");
    }
}

static void dispatch(struct shard *s, const struct io_uring_cqe *cqe)
{
    void *obj = uring_ud_obj(cqe->user_data);

    switch (uring_ud_op(cqe->user_data)) {
    case URING_OP_IGNORE:
        break;
    case URING_OP_ACCEPT:
        accept_done(s, obj, cqe);
        break;
    case URING_OP_RECV:
        conn_recv_done(s, obj, cqe);
        break;
    case URING_OP_SEND:
        conn_send_done(s, obj, cqe);
        break;
    case URING_OP_SIGNAL:
        RM_ASSERT(obj == s);
        signal_done(s, cqe);
        break;
    case URING_OP_DOORBELL:
        xshard_doorbell_done(s->xshard, s->id, cqe);
        break;
    case URING_OP_WAL:
        wal_io_done(s->wal, s->broker, obj, cqe->res, s->now_ms);
        break;
    case URING_OP_OBS:
        obs_done(s, obj, cqe);
        break;
    default:
        RM_ASSERT(!"unknown user_data op kind");
    }
}

/*
 * Send XMSG_SHUTDOWN (@arg: 0 stop, 1 also abort the flushes) to shards
 * [*@next, count), skipping this one; stops at an allocation failure and
 * goes on from there next iteration.
 */
static void broadcast_shutdown(struct shard *s, uint32_t *next, uint32_t arg)
{
    struct xmsg m = {.kind = XMSG_SHUTDOWN, .arg = arg};

    for (; *next < s->shard_count; (*next)++) {
        if (*next != s->id && xshard_send(s->xshard, s->id, *next, &m) < 0) {
            s->more_work = true;
            return;
        }
    }
}

/*
 * Tell the broker which links went over their budget or drained since the
 * last iteration (it holds or releases publishers). O(shards) while any link
 * is or was congested, nothing otherwise.
 */
static void congestion_report(struct shard *s)
{
    uint32_t to;

    if (xshard_congested_links(s->xshard, s->id) == 0 && s->congested_told == 0) {
        return;
    }
    for (to = 0; to < s->shard_count; to++) {
        bool now = xshard_congested(s->xshard, s->id, to);
        uint64_t bit = 1ull << (to % 64);
        bool told = (s->congested_bits[to / 64] & bit) != 0;

        if (now == told) {
            continue;
        }
        s->congested_bits[to / 64] ^= bit;
        LOG_DEBUG("shard %u: link to shard %u %s", s->id, to,
                  now ? "over its budget: holding QoS 1/2 publishers" : "drained");
        if (now) {
            s->congested_told++;
        } else {
            s->congested_told--;
            s->more_work = true; /* released publishers have acks and input to handle */
        }
        broker_set_congested(s->broker, to, now);
    }
}

/* Move the broker's outbox into the rings, then publish and ring (end of iteration). */
static void outbox_flush(struct shard *s)
{
    uint32_t dest;
    struct xmsg m;
    uint32_t i;

    if (s->shard_count == 1) {
        broadcast_shutdown(s, &s->shutdown_next, 0);
        broadcast_shutdown(s, &s->abort_next, 1);
        return;
    }
    reload_send(s);
    if (s->outbox_held_valid &&
        xshard_send(s->xshard, s->id, s->outbox_held_dest, &s->outbox_held) == 0) {
        s->outbox_held_valid = false;
    }
    for (i = 0; i < SHARD_OUTBOX_PER_ITER_MAX && !s->outbox_held_valid; i++) {
        if (!broker_next_xmsg(s->broker, &dest, &m)) {
            break;
        }
        if (xshard_send(s->xshard, s->id, dest, &m) < 0) {
            /* Keep it (and everything behind it, still in the outbox) for later: in order. */
            s->outbox_held = m;
            s->outbox_held_dest = dest;
            s->outbox_held_valid = true;
        }
    }
    if (i == SHARD_OUTBOX_PER_ITER_MAX) {
        s->more_work = true;
    }
    /* After the outbox: the wills a stop published reach each shard before its stop (FIFO). */
    broadcast_shutdown(s, &s->shutdown_next, 0);
    broadcast_shutdown(s, &s->abort_next, 1);
    xshard_flush(s->xshard, s->id, &s->ring);
    congestion_report(s);
}

static void stop_progress(struct shard *s)
{
    struct conn *c;
    struct conn *next;
    bool listening = false;
    uint32_t i;

    for (i = 0; i < s->listener_count; i++) {
        if (s->listeners[i].armed) {
            listening = true;
        } else {
            listener_close(&s->listeners[i]);
        }
    }
    if (!s->stop_aborted && s->now_ms >= s->stop_at_ms && s->conns != NULL) {
        LOG_WARN("stop: %u connections did not flush in time, closing them", s->conn_count);
        s->stop_aborted = true;
        for (c = s->conns; c != NULL; c = next) {
            next = c->next;
            conn_abort(s, c);
        }
    }
    if (s->conns == NULL && !listening && s->signal_armed && !s->signal_cancel_sent) {
        s->signal_cancel_sent = uring_cancel(&s->ring, uring_ud(s, URING_OP_SIGNAL)) == 0;
    }
}

static void end_of_iteration(struct shard *s)
{
    struct timer_node *t;
    struct client *cl;
    struct conn *c;
    uint32_t i;

    conn_run_deferred(s);
    for (i = 0; i < SHARD_TIMERS_PER_ITER_MAX; i++) {
        t = timer_expire(&s->timers, s->now_ms);
        if (t == NULL) {
            break;
        }
        conn_timer_expired(s, conn_from_timer(t));
    }
    if (i == SHARD_TIMERS_PER_ITER_MAX) {
        s->more_work = true;
    }

    for (i = 0; i < SHARD_DIRTY_PER_ITER_MAX; i++) {
        cl = broker_next_dirty(s->broker);
        if (cl == NULL) {
            break;
        }
        conn_dirty(s, conn_from_client(cl));
    }
    if (i == SHARD_DIRTY_PER_ITER_MAX) {
        s->more_work = true;
    }

    for (i = 0; i < s->listener_count && !s->stopping; i++) {
        struct listener *l = &s->listeners[i];

        if (!l->armed && l->fd >= 0 && s->now_ms >= l->retry_at_ms &&
            listener_arm(l, &s->ring) < 0) {
            l->retry_at_ms = s->now_ms + LISTENER_RETRY_MS;
        }
    }
    if (s->stopping) {
        stop_progress(s);
    }

    /* Bounded by the number of conns: each is on the list at most once at a time. */
    while (s->work != NULL) {
        c = s->work;
        s->work = c->next;
        c->next = NULL;
        c->flags &= (uint16_t)~CONN_F_WORK;
        conn_work(s, c);
    }

    /* This iteration's log records: one write (and sync) for all of them. */
    if (s->wal != NULL) {
        wal_io_flush(s->wal, &s->ring, s->broker, s->now_ms);
    }

    /* Closes since the first drain (stop progress) may have published wills. */
    for (i = 0; i < SHARD_DIRTY_PER_ITER_MAX; i++) {
        cl = broker_next_dirty(s->broker);
        if (cl == NULL) {
            break;
        }
        conn_dirty(s, conn_from_client(cl));
    }
    if (i == SHARD_DIRTY_PER_ITER_MAX || s->work != NULL) {
        s->more_work = true;
    }

    outbox_flush(s);
    /* Last: a connection this iteration gave output to is not put to sleep first. */
    xport_naps_sweep(&s->xport_naps, s->now_ms,
                     s->xport_stats.tls_handshakes + s->xport_stats.tls_resumed +
                         s->xport_stats.tls_failed);
}

static bool finished(const struct shard *s)
{
    uint32_t i;

    if (!s->stopping || s->conns != NULL || s->signal_armed || s->work != NULL || s->more_work) {
        return false;
    }
    if (s->wal != NULL && wal_io_busy(s->wal, s->broker)) {
        return false; /* SIGTERM flushes the log */
    }
    if (s->outbox_held_valid || s->shutdown_next < s->shard_count ||
        s->abort_next < s->shard_count || xshard_pending(s->xshard, s->id)) {
        return false; /* something must still reach a running shard */
    }
    for (i = 0; i < s->listener_count; i++) {
        if (s->listeners[i].armed || s->listeners[i].fd >= 0) {
            return false;
        }
    }
    return true;
}

static bool needs_tick(const struct shard *s)
{
    uint32_t i;

    if (s->timers.count > 0 || s->stopping || obs_wants_tick(s) ||
        xport_naps_pending(&s->xport_naps) ||
        (s->wal != NULL && wal_io_needs_tick(s->wal))) {
        return true;
    }
    for (i = 0; i < s->listener_count; i++) {
        if (!s->listeners[i].armed) {
            return true;
        }
    }
    return false;
}

/*
 * Once per iteration, before any completion is handled: take the memory
 * sample if this shard's turn came (net/admit), and tell the broker when
 * the pressure flag changed, so this iteration's publishes see it.
 */
static void memory_progress(struct shard *s)
{
    bool on;

    admit_memory_poll(s->admit, s->now_ms);
    on = admit_pressure(s->admit);
    if (on != s->memory_pressure) {
        s->memory_pressure = on;
        broker_set_memory_pressure(s->broker, on);
    }
}

/* The ring failed: make sure the other shards stop too (best effort). */
static void fail_all(struct shard *s)
{
    if (s->id != 0) {
        /* Shard 0 reads the signalfd and stops everyone. */
        kill(getpid(), SIGTERM);
        return;
    }
    s->shutdown_next = 0;
    broadcast_shutdown(s, &s->shutdown_next, 0);
    xshard_flush(s->xshard, s->id, &s->ring);
}

int shard_run(struct shard *s)
{
    struct __kernel_timespec ts;
    struct io_uring_cqe *cqe;
    unsigned head;
    unsigned n;
    uint32_t i;
    int ret = 0;

    RM_ASSERT(s != NULL && s->broker != NULL);
    RM_ASSERT(s->ring_ready);
    for (i = 0; i < s->listener_count; i++) {
        if (listener_arm(&s->listeners[i], &s->ring) < 0) {
            ret = -EBUSY;
            goto out;
        }
    }
    if (s->signal_fd >= 0 && arm_signal(s) < 0) {
        ret = -EBUSY;
        goto out;
    }
    if (obs_start(s) < 0) {
        ret = -EBUSY;
        goto out;
    }

    while (!finished(s)) {
        struct __kernel_timespec *tsp = NULL;
        bool sleeping = false;
        uint64_t wait_ns;

        if (broker_busy(s->broker)) {
            s->more_work = true; /* logins held for this iteration's budget */
        }
        if (s->more_work || needs_tick(s) || broker_has_deadlines(s->broker)) {
            ts.tv_sec = 0;
            ts.tv_nsec = s->more_work ? 0 : (long long)TIMER_TICK_MS * 1000000;
            tsp = &ts;
        }
        if (s->wal != NULL && wal_io_gathering(s->wal, s->broker) &&
            (tsp == NULL || ts.tv_nsec > (long long)WAL_IO_COALESCE_MS * 1000000)) {
            ts.tv_sec = 0;
            ts.tv_nsec = (long long)WAL_IO_COALESCE_MS * 1000000;
            tsp = &ts;
        }
        if (s->outbox_held_valid || xshard_pending(s->xshard, s->id)) {
            if (tsp == NULL || ts.tv_nsec > XSHARD_RETRY_NS) {
                ts.tv_sec = 0;
                ts.tv_nsec = XSHARD_RETRY_NS;
                tsp = &ts;
            }
        }
        if (s->shard_count > 1 && (tsp == NULL || ts.tv_nsec > 0)) {
            sleeping = xshard_sleep_prepare(s->xshard, s->id);
            if (!sleeping) {
                ts.tv_sec = 0;
                ts.tv_nsec = 0;
                tsp = &ts;
            }
        }
        if (tsp == NULL) {
            obs_idle(s);
        }
        s->more_work = false;
        s->handshakes_left = SHARD_HANDSHAKES_PER_ITER_MAX;
        wait_ns = obs_clock_ns();
        ret = io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, tsp, NULL);
        obs_waited(s, wait_ns);
        if (sleeping) {
            xshard_woke(s->xshard, s->id);
        }
        if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
            LOG_ERROR("shard %u: io_uring wait: %s", s->id, strerror(-ret));
            fail_all(s);
            goto out;
        }
        ret = 0;
        s->now_ms = clock_ms();
        broker_tick(s->broker, s->now_ms);
        memory_progress(s);

        if (s->shard_count > 1) {
            xshard_receive(s->xshard, s->id, &s->more_work, s, xmsg_received);
        }
        n = 0;
        io_uring_for_each_cqe(&s->ring, head, cqe)
        {
            dispatch(s, cqe);
            if (++n == SHARD_CQES_PER_ITER_MAX) {
                s->more_work = true;
                break;
            }
        }
        io_uring_cq_advance(&s->ring, n);
        obs_tick(s);
        end_of_iteration(s);

        if (s->stopping && s->now_ms >= s->stop_at_ms + SHARD_STOP_FORCE_MS) {
            LOG_ERROR("shard %u: stop: %u connections still busy after %u ms, exiting anyway",
                      s->id, s->conn_count, SHARD_STOP_LINGER_MS + SHARD_STOP_FORCE_MS);
            ret = -ETIMEDOUT;
            goto out;
        }
    }
    LOG_INFO("shard %u: stopped", s->id);
out:
    xshard_done(s->xshard, s->id);
    /* The last doorbells were only queued: submit them (no completion is awaited). */
    io_uring_submit(&s->ring);
    tls_thread_done();
    return ret;
}

void shard_free(struct shard *s)
{
    const struct broker_stats *bs;
    const struct xshard_stats *xstats;
    struct conn *c;
    uint32_t i;

    if (s == NULL) {
        return;
    }
    if (s->broker != NULL) {
        bs = broker_stats(s->broker);
        LOG_INFO("shard %u: %llu connections accepted, %llu refused (%llu near memory_max, "
                 "%llu over connections_per_address_max, %llu over accept_rate_max), %llu closed "
                 "(%llu connect, %llu keepalive, %llu linger timeouts; %llu recv re-arms "
                 "for lack of buffers, %llu pauses); %llu publishes in, %llu out, %llu dropped, "
                 "%llu slow readers closed, %llu QoS 0 shed near memory_max, %llu to '$' "
                 "topics refused",
                 s->id, (unsigned long long)s->stats.conns_accepted,
                 (unsigned long long)s->stats.conns_refused,
                 (unsigned long long)s->stats.refused_memory,
                 (unsigned long long)s->stats.refused_address,
                 (unsigned long long)s->stats.refused_rate,
                 (unsigned long long)s->stats.conns_closed,
                 (unsigned long long)s->stats.connect_timeouts,
                 (unsigned long long)s->stats.keepalive_timeouts,
                 (unsigned long long)s->stats.linger_timeouts,
                 (unsigned long long)s->stats.recv_nobufs,
                 (unsigned long long)s->stats.recv_paused, (unsigned long long)bs->msgs_in,
                 (unsigned long long)bs->msgs_out, (unsigned long long)bs->msgs_dropped,
                 (unsigned long long)bs->slow_readers_closed,
                 (unsigned long long)bs->msgs_shed_memory,
                 (unsigned long long)bs->msgs_refused);
    }
    if (s->broker != NULL) {
        bs = broker_stats(s->broker);
        if (bs->logins_ok + bs->logins_failed + bs->logins_refused + bs->takeovers_refused > 0) {
            LOG_INFO("shard %u: logins %llu ok, %llu failed (unknown user or wrong password), "
                     "%llu refused (anonymous or no certificate identity), %llu refusals "
                     "delayed, %llu checks deferred; %llu client id takeovers by another user "
                     "refused",
                     s->id, (unsigned long long)bs->logins_ok,
                     (unsigned long long)bs->logins_failed,
                     (unsigned long long)bs->logins_refused,
                     (unsigned long long)bs->logins_delayed,
                     (unsigned long long)bs->logins_deferred,
                     (unsigned long long)bs->takeovers_refused);
        }
        if (bs->acl_publish_denied + bs->acl_subscribe_denied + bs->acl_read_denied > 0) {
            LOG_INFO("shard %u: ACL denied %llu publishes (and wills), %llu subscriptions, "
                     "%llu deliveries",
                     s->id, (unsigned long long)bs->acl_publish_denied,
                     (unsigned long long)bs->acl_subscribe_denied,
                     (unsigned long long)bs->acl_read_denied);
        }
    }
    if (s->broker != NULL && s->shard_count > 1) {
        bs = broker_stats(s->broker);
        xstats = xshard_stats(s->xshard, s->id);
        LOG_INFO(
            "shard %u: handoffs %llu out, %llu in, %llu refused, %llu failed; cross-shard "
            "%llu sent, %llu received, %llu overflowed (deepest %llu, %llu refused, "
            "%llu QoS 0 shed, %llu congestions; %llu publishers held, %llu not for memory), "
            "%llu doorbells (%llu failed); %llu acknowledgements failed (the log out of memory)",
            s->id, (unsigned long long)s->stats.handoffs_out,
            (unsigned long long)s->stats.handoffs_in, (unsigned long long)s->stats.handoffs_refused,
            (unsigned long long)s->stats.handoffs_failed, (unsigned long long)xstats->sent,
            (unsigned long long)xstats->received, (unsigned long long)xstats->overflow_events,
            (unsigned long long)xstats->overflow_max, (unsigned long long)xstats->overflow_nomem,
            (unsigned long long)xstats->qos0_shed, (unsigned long long)xstats->congestions,
            (unsigned long long)bs->publishers_held, (unsigned long long)bs->hold_nomem,
            (unsigned long long)xstats->doorbells, (unsigned long long)xstats->doorbell_errors,
            (unsigned long long)bs->wait_failed);
    }
    if (s->xport_stats.tls_handshakes + s->xport_stats.tls_resumed + s->xport_stats.tls_failed +
            s->xport_stats.ws_upgrades + s->xport_stats.ws_refused >
        0) {
        LOG_INFO("shard %u: TLS handshakes %llu full, %llu resumed, %llu failed, %llu deferred; "
                 "%llu idle sleeps; WebSocket upgrades %llu, %llu refused, %llu protocol errors",
                 s->id, (unsigned long long)s->xport_stats.tls_handshakes,
                 (unsigned long long)s->xport_stats.tls_resumed,
                 (unsigned long long)s->xport_stats.tls_failed,
                 (unsigned long long)s->stats.handshakes_deferred,
                 (unsigned long long)s->xport_naps.sleeps,
                 (unsigned long long)s->xport_stats.ws_upgrades,
                 (unsigned long long)s->xport_stats.ws_refused,
                 (unsigned long long)s->xport_stats.ws_protocol_errors);
    }
    /*
     * Tear the ring down first: after a forced exit it cancels what is still
     * in flight, so only then are the conns' buffers and the buffer ring
     * released. (This may run on another thread than the shard's; the ring
     * is only closed and unmapped here, never submitted to or registered.)
     */
    if (s->ring_ready) {
        uring_exit(&s->ring);
        s->ring_ready = false;
    }
    while (s->conns != NULL) {
        c = s->conns;
        s->conns = c->next;
        admit_close(s->admit, c->fd);
        conn_send_free(&c->sending);
        xport_free(c->xp);
        c->xp = NULL;
        broker_client_gone(s->broker, &c->client, -MQTT_RC_SERVER_SHUTTING_DOWN);
        if (!(c->flags & CONN_F_WORK)) {
            free(c);
        }
    }
    while (s->work != NULL) {
        c = s->work;
        s->work = c->next;
        c->flags &= (uint16_t)~CONN_F_WORK;
        conn_work(s, c);
    }
    for (i = 0; i < CONFIG_LISTENERS_MAX; i++) {
        s->listeners[i].armed = false;
        listener_close(&s->listeners[i]);
    }
    if (s->signal_fd >= 0) {
        close(s->signal_fd);
    }
    if (s->outbox_held_valid) {
        xshard_release(&s->outbox_held);
    }
    if (s->broker != NULL) {
        wal_io_close(s->wal, s->broker); /* what the last goodbyes logged */
        broker_free(s->broker);
    }
    bufring_free(&s->bufring, NULL);
    free(s->xport_scratch);
    free(s->deferred);
    free(s);
}
