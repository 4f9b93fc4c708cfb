/*
 * lg_run.c - build a load-generator run from the options, free it, and read
 * its progress; see lg_run.h.
 *
 * Main thread only.
 */
#include "perf/lg_run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/rm_assert.h"
#include "perf/lg_conn_types.h"
#include "perf/lg_sock.h"
#include "perf/lg_wire.h"
#include "perf/lg_worker_types.h"

#define UNACKED_MAX 65000u /* QoS 1/2 in flight per publisher: packet ids are unique */
#define RXBUF_MIN_BYTES (64u * 1024u)
#define PACKET_OVERHEAD 512u /* fixed header, topic length, packet id, slack */

static char *dup_printf_topic(const char *prefix, const char *scenario, long n)
{
    char buf[LG_OPTS_TOPIC_PREFIX_MAX + 64];
    int len;
    char *s;

    if (n >= 0) {
        len = snprintf(buf, sizeof(buf), "%s/%s/%ld", prefix, scenario, n);
    } else {
        len = snprintf(buf, sizeof(buf), "%s/%s", prefix, scenario);
    }
    RM_ASSERT(len > 0 && (size_t)len < sizeof(buf));
    s = malloc((size_t)len + 1);
    if (s != NULL) {
        memcpy(s, buf, (size_t)len + 1);
    }
    return s;
}

static int groups_setup(struct lg_run *run)
{
    const struct lg_opts *o = run->opts;
    uint32_t i;

    run->ngroups = o->scenario == LG_SCENARIO_CONN  ? 0
                   : o->scenario == LG_SCENARIO_P2P ? o->pairs
                                                    : 1;
    if (run->ngroups == 0) {
        return 0;
    }
    run->groups = calloc(run->ngroups, sizeof(*run->groups));
    if (run->groups == NULL) {
        return -ENOMEM;
    }
    for (i = 0; i < run->ngroups; i++) {
        struct lg_group *g = &run->groups[i];

        g->topic = dup_printf_topic(o->topic_prefix, o->scenario_name,
                                    o->scenario == LG_SCENARIO_P2P ? (long)i : -1);
        if (g->topic == NULL) {
            return -ENOMEM;
        }
        g->topic_len = (uint32_t)strlen(g->topic);
        g->filter = g->topic;
        g->filter_len = g->topic_len;
        if (o->scenario == LG_SCENARIO_P2P) {
            g->pub_first = i;
            g->pub_count = 1;
            g->sub_count = 1;
        } else {
            g->pub_first = 0;
            g->pub_count = o->pubs;
            g->sub_count = o->subs + o->shared;
        }
        g->shared = o->shared > 0;
        g->fan = g->shared ? 1 : g->sub_count;
        if (g->shared) {
            size_t n = strlen("$share/lg/") + g->topic_len;

            g->filter = malloc(n + 1);
            if (g->filter == NULL) {
                return -ENOMEM;
            }
            snprintf(g->filter, n + 1, "$share/lg/%s", g->topic);
            g->filter_len = (uint32_t)n;
        }
    }
    return 0;
}

/* Which worker runs client @idx; p2p keeps each pair on one worker. */
static uint32_t placement(const struct lg_run *run, uint32_t idx)
{
    if (run->opts->scenario == LG_SCENARIO_P2P) {
        return (idx / 2) % run->nworkers;
    }
    return idx % run->nworkers;
}

/*
 * Client order: p2p pairs as (sub i, pub i); fanout/fanin subscribers first,
 * then publishers; conn all idle. @role/@id say what client @idx is.
 */
static void client_kind(const struct lg_run *run, uint32_t idx, uint8_t *role, uint32_t *id)
{
    const struct lg_opts *o = run->opts;

    switch (o->scenario) {
    case LG_SCENARIO_CONN:
        *role = LG_CONN_ROLE_IDLE;
        *id = idx;
        break;
    case LG_SCENARIO_P2P:
        *role = (idx % 2 == 0) ? LG_CONN_ROLE_SUB : LG_CONN_ROLE_PUB;
        *id = idx / 2;
        break;
    default:
        if (idx < run->nsubs) {
            *role = LG_CONN_ROLE_SUB;
            *id = idx;
        } else {
            *role = LG_CONN_ROLE_PUB;
            *id = idx - run->nsubs;
        }
        break;
    }
}

static int pubs_subs_setup(struct lg_run *run)
{
    const struct lg_opts *o = run->opts;
    uint32_t i;

    run->npubs = o->scenario == LG_SCENARIO_P2P ? o->pairs : o->pubs;
    run->nsubs = o->scenario == LG_SCENARIO_P2P ? o->pairs : o->subs + o->shared;
    if (run->npubs > 0) {
        run->pubs = calloc(run->npubs, sizeof(*run->pubs));
        if (run->pubs == NULL) {
            return -ENOMEM;
        }
    }
    if (run->nsubs > 0) {
        run->subs = calloc(run->nsubs, sizeof(*run->subs));
        if (run->subs == NULL) {
            return -ENOMEM;
        }
    }
    for (i = 0; i < run->npubs; i++) {
        struct lg_pub *p = &run->pubs[i];

        p->id = i;
        p->group = o->scenario == LG_SCENARIO_P2P ? i : 0;
        p->unacked_max = UNACKED_MAX;
        if (o->window > 0) {
            p->sent_ns = calloc(o->window, sizeof(*p->sent_ns));
            p->slots = calloc(o->window, sizeof(*p->slots));
            if (p->sent_ns == NULL || p->slots == NULL) {
                return -ENOMEM;
            }
        }
    }
    for (i = 0; i < run->nsubs; i++) {
        struct lg_sub *s = &run->subs[i];

        s->id = i;
        s->group = o->scenario == LG_SCENARIO_P2P ? i : 0;
        s->tracks = calloc(run->groups[s->group].pub_count, sizeof(*s->tracks));
        if (s->tracks == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

static int worker_alloc(struct lg_run *run, struct lg_worker *w)
{
    const struct lg_opts *o = run->opts;
    struct lg_loop *lp;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    uint32_t packet;
    uint32_t i;

    lp = calloc(1, sizeof(*lp));
    if (lp == NULL) {
        return -ENOMEM;
    }
    w->_loop = lp;
    lg_hist_init(&w->lat);
    lg_hist_init(&w->conn_lat);
    w->conns = calloc(w->nconns > 0 ? w->nconns : 1, sizeof(*w->conns));
    /* At once: lg_run_free() after a failure below must not close fd 0. */
    for (i = 0; w->conns != NULL && i < w->nconns; i++) {
        w->conns[i].tc.fd = -1;
    }
    w->pubs = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*w->pubs));
    lp->ready = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*lp->ready));
    lp->heap = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*lp->heap));
    lp->blocked = calloc(w->npubs > 0 ? w->npubs : 1, sizeof(*lp->blocked));
    lp->dirty = calloc(w->nconns > 0 ? w->nconns : 1, sizeof(*lp->dirty));
    lp->rxmore = calloc(w->nconns > 0 ? w->nconns : 1, sizeof(*lp->rxmore));
    packet = o->payload_bytes + PACKET_OVERHEAD + LG_OPTS_TOPIC_PREFIX_MAX + 64;
    lp->rxbuf_bytes = 2 * packet > RXBUF_MIN_BYTES ? 2 * packet : RXBUF_MIN_BYTES;
    lp->packet_max = lp->rxbuf_bytes / 2;
    lp->rxbuf = malloc(lp->rxbuf_bytes);
    lp->payload = calloc(1, o->payload_bytes);
    if (w->conns == NULL || w->pubs == NULL || lp->ready == NULL || lp->heap == NULL ||
        lp->blocked == NULL || lp->dirty == NULL || lp->rxmore == NULL || lp->rxbuf == NULL ||
        lp->payload == NULL) {
        return -ENOMEM;
    }
    /* Filler after the stamp: a recognisable pattern, not zeros a broker might elide. */
    memset(lp->payload, 'm', o->payload_bytes);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->epfd < 0 || w->evfd < 0) {
        return -errno;
    }
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) < 0) {
        return -errno;
    }
    lp->pending_max = (o->connect_concurrency + run->nworkers - 1) / run->nworkers;
    if (o->connect_rate > 0) {
        lp->conn_period_ns = (uint64_t)(1e9 * run->nworkers / o->connect_rate);
    }
    if (o->rate > 0) {
        lp->pub_period_ns = (uint64_t)(1e9 / o->rate);
        if (lp->pub_period_ns == 0) {
            lp->pub_period_ns = 1;
        }
    }
    lp->connect_timeout_ns = (uint64_t)(o->connect_timeout_s * 1e9);
    lp->window_timeout_ns = (uint64_t)o->window_timeout_ms * 1000000ull;
    return 0;
}

int lg_run_setup(struct lg_run *run, const struct lg_opts *opts)
{
    uint32_t *fill = NULL;
    uint32_t *pfill = NULL;
    uint32_t i;
    int ret;

    RM_ASSERT(run != NULL && opts != NULL);
    RM_ASSERT(opts->threads >= 1 && opts->threads <= LG_OPTS_THREADS_MAX);
    memset(run, 0, sizeof(*run));
    run->opts = opts;
    run->nclients = lg_opts_clients(opts);
    run->nworkers = opts->threads;
    atomic_init(&run->phase, LG_PHASE_CONNECT);

    ret = groups_setup(run);
    if (ret < 0) {
        goto out;
    }
    ret = pubs_subs_setup(run);
    if (ret < 0) {
        goto out;
    }
    ret = -ENOMEM;
    run->workers = calloc(run->nworkers, sizeof(*run->workers));
    fill = calloc(run->nworkers, sizeof(*fill));
    pfill = calloc(run->nworkers, sizeof(*pfill));
    if (run->workers == NULL || fill == NULL || pfill == NULL) {
        goto out;
    }
    /* Count, allocate, then fill each worker's connections. */
    for (i = 0; i < run->nclients; i++) {
        struct lg_worker *w = &run->workers[placement(run, i)];
        uint8_t role;
        uint32_t id;

        client_kind(run, i, &role, &id);
        w->nconns++;
        if (role == LG_CONN_ROLE_PUB) {
            w->npubs++;
        }
    }
    for (i = 0; i < run->nworkers; i++) {
        run->workers[i].run = run;
        run->workers[i].idx = i;
        run->workers[i].epfd = -1;
        run->workers[i].evfd = -1;
    }
    for (i = 0; i < run->nworkers; i++) {
        ret = worker_alloc(run, &run->workers[i]);
        if (ret < 0) {
            goto out;
        }
    }
    for (i = 0; i < run->nclients; i++) {
        uint32_t t = placement(run, i);
        struct lg_worker *w = &run->workers[t];
        struct lg_conn *c = &w->conns[fill[t]++];
        uint8_t role;
        uint32_t id;

        client_kind(run, i, &role, &id);
        c->tc.fd = -1;
        c->client_idx = i;
        c->role = role;
        if (role == LG_CONN_ROLE_PUB) {
            c->pub = &run->pubs[id];
            c->pub->conn = c;
            c->pub->thread = t;
            w->pubs[pfill[t]++] = c->pub;
        } else if (role == LG_CONN_ROLE_SUB) {
            c->sub = &run->subs[id];
            c->sub->conn = c;
            c->sub->thread = t;
        }
    }
    ret = 0;
out:
    free(fill);
    free(pfill);
    if (ret < 0) {
        lg_run_free(run);
    }
    return ret;
}

void lg_run_live_sum(const struct lg_run *run, struct lg_live_sum *out)
{
    uint32_t i;

    RM_ASSERT(run != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    for (i = 0; i < run->nworkers; i++) {
        const struct lg_live *l = &run->workers[i].live;
        uint64_t last = atomic_load_explicit(&l->last_ok_ns, memory_order_relaxed);

        out->sent += atomic_load_explicit(&l->sent, memory_order_relaxed);
        out->sent_meas += atomic_load_explicit(&l->sent_meas, memory_order_relaxed);
        out->recv += atomic_load_explicit(&l->recv, memory_order_relaxed);
        out->recv_meas += atomic_load_explicit(&l->recv_meas, memory_order_relaxed);
        out->conns_ok += atomic_load_explicit(&l->conns_ok, memory_order_relaxed);
        out->conns_done += atomic_load_explicit(&l->conns_done, memory_order_relaxed);
        out->conns_failed += atomic_load_explicit(&l->conns_failed, memory_order_relaxed);
        out->conns_lost += atomic_load_explicit(&l->conns_lost, memory_order_relaxed);
        out->unacked += atomic_load_explicit(&l->unacked, memory_order_relaxed);
        out->q2_in += atomic_load_explicit(&l->q2_in, memory_order_relaxed);
        if (last > out->last_ok_ns) {
            out->last_ok_ns = last;
        }
    }
    RM_ASSERT(out->conns_done <= run->nclients);
}

uint64_t lg_run_expected(const struct lg_run *run)
{
    uint64_t n = 0;
    uint32_t i;

    RM_ASSERT(run != NULL);
    RM_ASSERT(run->npubs == 0 || run->groups != NULL);
    for (i = 0; i < run->npubs; i++) {
        const struct lg_pub *p = &run->pubs[i];

        n += (uint64_t)atomic_load_explicit(&p->sent_total, memory_order_relaxed) *
             run->groups[p->group].fan;
    }
    return n;
}

void lg_run_free(struct lg_run *run)
{
    uint32_t i;

    RM_ASSERT(run != NULL);
    for (i = 0; run->workers != NULL && i < run->nworkers; i++) {
        struct lg_worker *w = &run->workers[i];
        struct lg_loop *lp = w->_loop;
        uint32_t k;

        RM_ASSERT(!w->started);
        for (k = 0; w->conns != NULL && k < w->nconns; k++) {
            if (lg_conn_alive(&w->conns[k])) {
                lg_sock_close(&w->conns[k]);
            }
            lg_wire_free_bufs(&w->conns[k]);
        }
        if (lp != NULL) {
            free(lp->ready);
            free(lp->heap);
            free(lp->blocked);
            free(lp->dirty);
            free(lp->rxmore);
            free(lp->rxbuf);
            free(lp->payload);
            free(lp);
        }
        if (w->epfd >= 0) {
            close(w->epfd);
        }
        if (w->evfd >= 0) {
            close(w->evfd);
        }
        free(w->conns);
        free(w->pubs);
    }
    free(run->workers);
    for (i = 0; run->pubs != NULL && i < run->npubs; i++) {
        free(run->pubs[i].sent_ns);
        free((void *)run->pubs[i].slots);
    }
    for (i = 0; run->subs != NULL && i < run->nsubs; i++) {
        free(run->subs[i].tracks);
    }
    for (i = 0; run->groups != NULL && i < run->ngroups; i++) {
        if (run->groups[i].filter != run->groups[i].topic) {
            free(run->groups[i].filter);
        }
        free(run->groups[i].topic);
    }
    free(run->pubs);
    free(run->subs);
    free(run->groups);
    run->workers = NULL;
    run->pubs = NULL;
    run->subs = NULL;
    run->groups = NULL;
}
