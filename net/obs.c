/*
 * obs.c - a shard's observability duties in its loop (see obs.h).
 *
 * Each shard's own thread.
 */
#include "net/obs.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "core/rm_assert.h"
#include "net/admin.h"
#include "net/board.h"
#include "net/log.h"
#include "net/metrics_http.h"
#include "net/obs_io.h"
#include "net/shard_types.h"
#include "net/sys_topics.h"

/* Shard 0's services. */
struct obs {
    struct board *board;
    uint32_t sys_interval_ms; /* 0: no $SYS */
    uint64_t sys_next_ms;
    struct sys_topics sys;
    struct metrics_http *http; /* NULL: no /metrics */
    struct admin *admin;       /* NULL: no admin socket */
};

struct obs *obs_new(const struct config *cfg, struct board *board, const char *version,
                    uint64_t now_ms)
{
    struct obs *o;

    RM_ASSERT(cfg != NULL && board != NULL && version != NULL);
    o = calloc(1, sizeof(*o));
    if (o == NULL) {
        LOG_ERROR("out of memory");
        return NULL;
    }
    o->board = board;
    o->sys_interval_ms = cfg->sys_interval_s * 1000u;
    o->sys_next_ms = now_ms + o->sys_interval_ms;
    sys_topics_init(&o->sys, now_ms, version);
    if (cfg->metrics_bind[0] != '\0') {
        o->http = metrics_http_open(cfg->metrics_bind, (uint16_t)cfg->metrics_port, board, cfg,
                                    version);
        if (o->http == NULL) {
            goto out_free;
        }
    }
    if (cfg->admin_socket[0] != '\0') {
        o->admin = admin_open(cfg->admin_socket, cfg->admin_mode == 1 ? 0660 : 0600, board);
        if (o->admin == NULL) {
            goto out_free;
        }
    }
    return o;

out_free:
    obs_free(o);
    return NULL;
}

void obs_free(struct obs *o)
{
    if (o == NULL) {
        return;
    }
    metrics_http_free(o->http);
    admin_free(o->admin);
    free(o);
}

uint64_t obs_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void obs_waited(struct shard *s, uint64_t began_ns)
{
    uint64_t now_ns = obs_clock_ns();

    RM_ASSERT(now_ns >= began_ns);
    if (s->loop_at_ns != 0 && began_ns >= s->loop_at_ns) {
        s->stats.busy_ns += began_ns - s->loop_at_ns;
    }
    s->stats.wait_ns += now_ns - began_ns;
    s->stats.iterations++;
    s->loop_at_ns = now_ns;
}

static void publish(struct shard *s)
{
    board_publish(s->board, s);
    s->board_at_ms = s->now_ms;
}

void obs_tick(struct shard *s)
{
    struct board_snap total;
    struct obs *o = s->obs;

    if (s->board == NULL) {
        return;
    }
    if (s->now_ms - s->board_at_ms >= OBS_PUBLISH_MS) {
        publish(s);
    }
    if (o != NULL && o->admin != NULL) {
        admin_tick(o->admin, s);
    }
    if (o == NULL || o->sys_interval_ms == 0 || s->now_ms < o->sys_next_ms || s->stopping) {
        return;
    }
    publish(s); /* shard 0's own counters as of now */
    board_sum(o->board, &total);
    if (sys_topics_publish(&o->sys, s->broker, &total, s->now_ms) > 0) {
        LOG_DEBUG("$SYS: some topics not published: out of memory");
    }
    o->sys_next_ms = s->now_ms + o->sys_interval_ms;
}

void obs_idle(struct shard *s)
{
    if (s->board != NULL && s->board_at_ms != s->now_ms) {
        publish(s);
    }
}

bool obs_wants_tick(const struct shard *s)
{
    return s->obs != NULL && (s->obs->sys_interval_ms > 0 ||
                              (s->obs->admin != NULL && admin_waiting(s->obs->admin)));
}

int obs_start(struct shard *s)
{
    if (s->obs != NULL && s->obs->http != NULL && metrics_http_start(s->obs->http, &s->ring) < 0) {
        return -EBUSY;
    }
    if (s->obs != NULL && s->obs->admin != NULL && admin_start(s->obs->admin, s) < 0) {
        return -EBUSY;
    }
    return 0;
}

void obs_stop(struct shard *s)
{
    if (s->obs != NULL && s->obs->http != NULL) {
        metrics_http_stop(s->obs->http, &s->ring);
    }
    if (s->obs != NULL && s->obs->admin != NULL) {
        admin_stop(s->obs->admin, s);
    }
}

void obs_admin_job_done(struct shard *s, struct admin_job *j)
{
    if (s->obs == NULL || s->obs->admin == NULL) {
        admin_job_free(j);
        return;
    }
    admin_job_done(s->obs->admin, s, j);
}

void obs_done(struct shard *s, void *obj, const struct io_uring_cqe *cqe)
{
    const struct obs_io *io = obj;

    RM_ASSERT(s->obs != NULL && obj != NULL);
    switch (io->kind) {
    case OBS_IO_HTTP_LISTEN:
    case OBS_IO_HTTP_CONN:
        RM_ASSERT(s->obs->http != NULL);
        metrics_http_done(s->obs->http, &s->ring, obj, cqe);
        break;
    case OBS_IO_ADMIN_LISTEN:
    case OBS_IO_ADMIN_CONN:
        RM_ASSERT(s->obs->admin != NULL);
        admin_done(s->obs->admin, s, obj, cqe);
        break;
    default:
        RM_ASSERT(!"unknown observability object");
    }
}
