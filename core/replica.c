/*
 * replica.c - every shard's retained replica, in one order (see replica.h).
 * Owned by one shard; single-threaded.
 */
#include "core/replica.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/home.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/wait.h"
#include "core/wal.h"

/* Collects the expired messages of a replica (replica_sweep()). */
struct sweep {
    uint64_t now_ms;
    struct msg **expired;
    uint32_t count;
    uint32_t cap;
    uint64_t next_ms; /* the earliest expiry left; UINT64_MAX: none */
};

static void sweep_cb(void *ctx, struct msg *m)
{
    struct sweep *sw = ctx;
    if (!m->expiry_ms)
        return;
    if (m->expiry_ms > sw->now_ms) {
        if (m->expiry_ms < sw->next_ms)
            sw->next_ms = m->expiry_ms;
        return;
    }
    if (sw->count == sw->cap) {
        uint32_t ncap = sw->cap ? sw->cap * 2 : 64;
        struct msg **n = realloc(sw->expired, ncap * sizeof(*n));
        if (!n) {
            sw->next_ms = sw->now_ms; /* swept next time */
            return;
        }
        sw->expired = n;
        sw->cap = ncap;
    }
    sw->expired[sw->count++] = m;
}

/*
 * Remove every expired message from this shard's replica [MQTT-3.3.2-5]:
 * nobody can get them any more, and they count against retained_max. Each
 * replica sweeps on its own; the content they show stays the same.
 */
static void replica_sweep(struct broker *b)
{
    struct sweep sw = {.now_ms = b->now_ms, .next_ms = UINT64_MAX};
    retained_each(b->retained, sweep_cb, &sw);
    for (uint32_t i = 0; i < sw.count; i++)
        outbox_msg_put(b, retained_take(b->retained, sw.expired[i]));
    free(sw.expired);
    b->stats.retained_expired += sw.count;
    b->retained_expire_ms = sw.next_ms;
    b->retained_sweep_ms = b->now_ms + REPLICA_SWEEP_MS;
}

/*
 * Apply a retained set/clear to this shard's replica, within @count_max
 * retained messages. Returns what retained_swap() returns.
 */
static int retained_apply(struct broker *b, struct msg *m, size_t count_max)
{
    struct msg *old = NULL;
    int rc = retained_swap(b->retained, m, count_max, &old);
    outbox_msg_put(b, old);
    if (rc == 1 && m->expiry_ms && m->expiry_ms < b->retained_expire_ms)
        b->retained_expire_ms = m->expiry_ms;
    return rc;
}

/*
 * This shard's replica applied the retained publish of @token from @origin:
 * acknowledge it. Returns the client released by that, as wait_done().
 */
static struct client *retain_applied(struct broker *b, uint64_t token, uint32_t origin)
{
    if (token == 0)
        return NULL;
    if (origin == b->shard_id)
        return wait_done(b, token);
    outbox_ack(b, origin, token);
    return NULL;
}

static void send_retain(struct broker *b, uint32_t dest, uint32_t kind, struct msg *m,
                        uint64_t token, uint32_t arg)
{
    struct xmsg x = {.kind = kind, .arg = arg};
    x.payload.retain.msg = msg_ref(m);
    x.payload.retain.token = token;
    outbox_push(b, dest, &x);
}

/*
 * The broker's own $SYS messages (broker_sys_publish()) are not logged, as
 * mosquitto does not persist them: they are rebuilt every sys_interval, a
 * log would gain dozens of records per interval, and a restart would replay
 * stale figures.
 */
static bool logged(const struct msg *m)
{
    return !(m->topic_len >= 5 && memcmp(msg_topic(m), "$SYS/", 5) == 0);
}

void replica_home_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t origin)
{
    RM_ASSERT(home_shard(msg_topic(m), m->topic_len, b->shard_count) == b->shard_id);
    RM_ASSERT(origin < b->shard_count);
    /*
     * The home alone decides whether a new topic fits retained_max: the
     * other replicas apply what it accepted, whatever their own count (sets
     * of topics with different homes reach them in different orders, so
     * each deciding for itself made replicas disagree).
     */
    int rc = retained_apply(b, m, b->lim->retained_max);
    if (rc == -ENOSPC && b->now_ms >= b->retained_expire_ms) {
        replica_sweep(b); /* expired ones first make room (only if one has expired) */
        rc = retained_apply(b, m, b->lim->retained_max);
    }
    uint32_t arg = origin;
    if (rc < 0) {
        b->stats.retained_refused++; /* still forwarded to subscribers, not kept */
        arg |= REPLICA_REFUSED;
    } else if (b->wal && logged(m)) {
        wal_retain(b, m); /* this shard orders the topic: its log keeps it */
    }
    uint64_t own = token;
    if (token && rc >= 0 && wal_sync(b)) {
        /* Acknowledged once logged; the other replicas still owe theirs. */
        if (origin != b->shard_id)
            wal_ack_later(b, origin, token);
        else
            (void)wait_on_log(b, token); /* or it failed: nothing more to count either way */
        own = 0;
    }
    /* Never the last acknowledgement: every other replica still owes one. */
    struct client *released = retain_applied(b, own, origin);
    RM_ASSERT(released == NULL);
    for (uint32_t i = 0; i < b->shard_count; i++) {
        if (i != b->shard_id)
            send_retain(b, i, XMSG_RETAIN_APPLY, m, token, arg);
    }
}

void replica_publish(struct broker *b, struct msg *m, uint64_t token)
{
    RM_ASSERT(m->retain);
    uint32_t home = home_shard(msg_topic(m), m->topic_len, b->shard_count);
    if (home != b->shard_id)
        send_retain(b, home, XMSG_RETAIN_SET, m, token, b->shard_id);
    else
        replica_home_apply(b, m, token, b->shard_id);
}

struct client *replica_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t arg)
{
    uint32_t origin = arg & ~REPLICA_REFUSED;
    RM_ASSERT(home_shard(msg_topic(m), m->topic_len, b->shard_count) != b->shard_id);
    RM_ASSERT(origin < b->shard_count);
    /* What the home accepted, without a limit of our own; out of memory is counted. */
    if (!(arg & REPLICA_REFUSED) && retained_apply(b, m, SIZE_MAX) == -ENOMEM)
        b->stats.retained_refused++;
    return retain_applied(b, token, origin);
}

int replica_restore(struct broker *b, struct msg *m)
{
    RM_ASSERT(m->retain && b->wal == NULL);
    int rc = retained_apply(b, m, b->lim->retained_max);
    if (rc < 0)
        b->stats.retained_refused++;
    return rc < 0 ? rc : 0;
}

void replica_tick(struct broker *b)
{
    if (b->now_ms >= b->retained_expire_ms && b->now_ms >= b->retained_sweep_ms)
        replica_sweep(b);
}
