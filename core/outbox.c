/*
 * outbox.c - messages to other shards and releasing messages (see outbox.h).
 *
 * Owned by one shard; single-threaded, but outbox_release() may run on any
 * thread once every shard has stopped.
 */
#include "core/outbox.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/msg.h"
#include "core/grow.h"
#include "core/limits.h"
#include "core/rm_assert.h"
#include "core/xmsg.h"

#define OUTBOX_MIN 64u

void outbox_release(struct xmsg *m)
{
    RM_ASSERT(m != NULL);
    switch (m->kind) {
    case XMSG_MSG_FREE:
        msg_free(m->payload.msg);
        break;
    case XMSG_PUBLISH:
        free(m->payload.publish.more);
        msg_unref(m->payload.msg);
        break;
    case XMSG_RETAIN_SET:
    case XMSG_RETAIN_APPLY:
    case XMSG_SHARE_PUBLISH:
        msg_unref(m->payload.msg);
        break;
    case XMSG_INTEREST_ADD:
    case XMSG_INTEREST_DEL:
        free(m->payload.buf.ptr);
        break;
    case XMSG_ACK:
    case XMSG_NACK:
        break;
    default:
        RM_ASSERT(!"not a routing message");
    }
    m->kind = XMSG_NONE;
}

static void enqueue(struct broker *b, uint32_t dest, const struct xmsg *m);

/*
 * @m carries a message whose origin (core/wal.h) this shard gave it and
 * whose WAL_QOS2_PEND is not durable yet, or follows a held message to
 * @dest (messages to a shard keep their order: a retained set after a
 * held one, say).
 */
static bool must_hold(const struct broker *b, uint32_t dest, const struct xmsg *m)
{
    if (m->kind != XMSG_PUBLISH && m->kind != XMSG_SHARE_PUBLISH && m->kind != XMSG_RETAIN_SET &&
        m->kind != XMSG_RETAIN_APPLY)
        return false;
    if (b->held_to[dest] > 0)
        return true;
    uint64_t origin = m->payload.msg->origin;
    return origin > b->origin_durable && origin % LIMITS_SHARDS_MAX == b->shard_id;
}

/* Keep @m for @dest until the log's open batch is durable (outbox_hold_*()). */
static int hold(struct broker *b, uint32_t dest, const struct xmsg *m)
{
    struct broker_outbox_hold *h = &b->hold_open;
    if (grow_array((void **)&h->e, &h->cap, h->count, sizeof(*h->e)) < 0) {
        b->stats.route_nomem++; /* sent now: a crash before its origin is durable may repeat it */
        return -ENOMEM;
    }
    h->e[h->count++] = (struct broker_outbox_entry){dest, *m};
    b->held_to[dest]++;
    return 0;
}

bool outbox_holding(const struct broker *b)
{
    return b->hold_open.count > 0;
}

void outbox_hold_take(struct broker *b)
{
    RM_ASSERT(b->hold_flight.count == 0);
    struct broker_outbox_hold t = b->hold_flight;
    b->hold_flight = b->hold_open;
    b->hold_open = t;
}

void outbox_hold_release(struct broker *b)
{
    struct broker_outbox_hold *h = &b->hold_flight;
    for (uint32_t i = 0; i < h->count; i++) {
        RM_ASSERT(b->held_to[h->e[i].dest] > 0);
        b->held_to[h->e[i].dest]--;
        enqueue(b, h->e[i].dest, &h->e[i].m); /* ahead of what is still held for it */
    }
    h->count = 0;
}

static void hold_fini(struct broker_outbox_hold *h)
{
    for (uint32_t i = 0; i < h->count; i++)
        outbox_release(&h->e[i].m);
    free(h->e);
    *h = (struct broker_outbox_hold){0};
}

void outbox_push(struct broker *b, uint32_t dest, const struct xmsg *m)
{
    RM_ASSERT(dest < b->shard_count && dest != b->shard_id);
    RM_ASSERT(m->kind != XMSG_NONE);
    if (!must_hold(b, dest, m) || hold(b, dest, m) < 0)
        enqueue(b, dest, m);
}

/* Queue @m for @dest now. */
static void enqueue(struct broker *b, uint32_t dest, const struct xmsg *m)
{
    if (b->outbox_count == b->outbox_cap) {
        uint32_t ncap = b->outbox_cap ? b->outbox_cap * 2 : OUTBOX_MIN;
        struct broker_outbox_entry *n = malloc((size_t)ncap * sizeof(*n));
        if (!n) {
            b->stats.xmsg_lost++;
            struct xmsg lost = *m;
            if (lost.kind == XMSG_MSG_FREE)
                return; /* Leak rather than free on a foreign shard. */
            outbox_release(&lost);
            return;
        }
        for (uint32_t i = 0; i < b->outbox_count; i++)
            n[i] = b->outbox[(b->outbox_head + i) % b->outbox_cap];
        free(b->outbox);
        b->outbox = n;
        b->outbox_cap = ncap;
        b->outbox_head = 0;
    }
    b->outbox[(b->outbox_head + b->outbox_count++) % b->outbox_cap] =
        (struct broker_outbox_entry){dest, *m};
}

bool outbox_next(struct broker *b, uint32_t *dest, struct xmsg *m)
{
    RM_ASSERT(b != NULL && dest != NULL && m != NULL);
    if (b->outbox_count == 0)
        return false;
    struct broker_outbox_entry *e = &b->outbox[b->outbox_head];
    *dest = e->dest;
    *m = e->m;
    b->outbox_head = (b->outbox_head + 1) % b->outbox_cap;
    b->outbox_count--;
    RM_ASSERT(*dest < b->shard_count);
    return true;
}

void outbox_msg_put(struct broker *b, struct msg *m)
{
    if (!msg_put(m))
        return;
    if (m->home_shard == b->shard_id) {
        msg_free(m);
        return;
    }
    struct xmsg x = {.kind = XMSG_MSG_FREE};
    x.payload.msg = m;
    outbox_push(b, m->home_shard, &x);
}

static void ack_to(struct broker *b, uint32_t dest, uint64_t token, enum xmsg_kind kind)
{
    RM_ASSERT(token != 0 && dest < b->shard_count && dest != b->shard_id);
    struct xmsg x = {.kind = kind, .arg = b->shard_id};
    x.payload.retain.token = token;
    outbox_push(b, dest, &x);
}

void outbox_ack(struct broker *b, uint32_t dest, uint64_t token)
{
    ack_to(b, dest, token, XMSG_ACK);
}

void outbox_nack(struct broker *b, uint32_t dest, uint64_t token)
{
    ack_to(b, dest, token, XMSG_NACK);
}

uint32_t outbox_interest(struct broker *b, const uint8_t *filter, size_t len, uint32_t members,
                         uint64_t token)
{
    RM_ASSERT(len > 0 && len <= LIMITS_STRING_BYTES_MAX);
    RM_ASSERT(b->shard_count >= 1 && (members > 0 || token == 0));
    uint32_t told = 0;
    for (uint32_t i = 0; i < b->shard_count; i++) {
        if (i == b->shard_id)
            continue;
        struct xmsg x = {.kind = members > 0 ? XMSG_INTEREST_ADD : XMSG_INTEREST_DEL,
                         .arg = members};
        x.payload.buf.ptr = malloc(len);
        if (!x.payload.buf.ptr) {
            b->stats.xmsg_lost++;
            continue;
        }
        memcpy(x.payload.buf.ptr, filter, len);
        x.payload.buf.len = (uint32_t)len;
        x.payload.buf.token = token;
        outbox_push(b, i, &x);
        told++;
    }
    return told;
}

void outbox_fini(struct broker *b)
{
    /* Every shard has stopped: what is still in the outbox is ours to drop. */
    for (uint32_t i = 0; i < b->outbox_count; i++)
        outbox_release(&b->outbox[(b->outbox_head + i) % b->outbox_cap].m);
    free(b->outbox);
    b->outbox = NULL;
    b->outbox_count = b->outbox_cap = b->outbox_head = 0;
    hold_fini(&b->hold_open);
    hold_fini(&b->hold_flight);
}
