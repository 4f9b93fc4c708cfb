/*
 * xrecv.c - messages from other shards (see xrecv.h).
 * Owned by one shard; single-threaded.
 */
#include "core/xrecv.h"

#include <errno.h>
#include <stdlib.h>

#include "core/broker_types.h"
#include "core/msg.h"
#include "core/outbox.h"
#include "core/replica.h"
#include "core/rm_assert.h"
#include "core/route.h"
#include "core/rpair.h"
#include "core/share.h"
#include "core/trie.h"
#include "core/wait.h"
#include "core/wal.h"
#include "core/xmsg.h"

int xrecv_interest(struct broker *b, uint32_t from, const uint8_t *filter, size_t len,
                   uint32_t members, bool add)
{
    RM_ASSERT(from < b->shard_count && from != b->shard_id);
    RM_ASSERT(add == (members > 0));
    struct share_name sn;
    if (share_parse(filter, len, &sn) == 1)
        return share_remote(b->share, filter, len, from, members);
    if (add)
        return trie_insert(b->interest, filter, len, &b->shard_marker[from], 0, 0, NULL) < 0
                   ? -ENOMEM
                   : 0;
    return trie_remove(b->interest, filter, len, &b->shard_marker[from], NULL) ? 0 : -ENOENT;
}

/*
 * A filter @from's sessions gained (@add) or lost, or a shared group's new
 * member count there (x->arg); an added one is acknowledged.
 */
static void interest(struct broker *b, uint32_t from, const struct xmsg *x, bool add)
{
    int rc = xrecv_interest(b, from, x->payload.buf.ptr, x->payload.buf.len, x->arg, add);
    /*
     * 0<->1 transitions arrive in order, so a duplicate only follows a DEL
     * lost to allocation failure: already interested, nothing to do.
     */
    if (rc < 0 && add)
        b->stats.xmsg_lost++;
    free(x->payload.buf.ptr);
    if (x->payload.buf.token) {
        RM_ASSERT(add);
        /* Matching publishes here are now forwarded: the SUBACK may go. */
        outbox_ack(b, from, x->payload.buf.token);
    }
}

/*
 * A crossing from @from that carried its wait @token (0: none) is routed:
 * acknowledged once what it logged here since @mark is durable; when it
 * passed a shared group's message on (b->relay_wait), that relay stands
 * for it, and this shard's own part of it completes the same way.
 */
static void crossing_done(struct broker *b, size_t mark, uint32_t from, uint64_t token)
{
    uint64_t relay = b->relay_wait;
    b->relay_wait = 0;
    if (b->relay_failed) {
        RM_ASSERT(relay == 0);
        b->relay_failed = false; /* @token's wait was told it failed (share_token() in route.c) */
        return;
    }
    if (!relay) {
        if (token)
            wal_ack_after(b, mark, from, token); /* once what it left here is durable */
        return;
    }
    if (!wal_since(b, mark))
        (void)wait_done(b, relay); /* nothing of ours to wait for */
    else
        (void)wait_on_log(b, relay); /* or it failed: the shard it stands for hears so */
}

struct client *xrecv_receive(struct broker *b, uint32_t from, const struct xmsg *x)
{
    RM_ASSERT(b != NULL && x != NULL);
    RM_ASSERT(from < b->shard_count && from != b->shard_id);
    struct msg *m = x->payload.msg;
    struct client *released = NULL;
    switch (x->kind) {
    case XMSG_PUBLISH: {
        size_t mark = wal_mark(b);
        uint64_t token = route_remote(b, from, x);
        outbox_msg_put(b, m);
        crossing_done(b, mark, from, token);
        break;
    }
    case XMSG_MSG_FREE:
        RM_ASSERT(m->home_shard == b->shard_id);
        msg_free(m);
        break;
    case XMSG_RETAIN_SET:
        /* Its publisher's earlier messages here came before: its subscribers here now. */
        replica_home_apply(b, m, x->payload.retain.token, x->arg);
        route_retained(b, m, NULL);
        outbox_msg_put(b, m);
        break;
    case XMSG_RETAIN_APPLY: {
        /*
         * Published here: our subscribers now, skipping the publisher's No
         * Local ones (its wait, ended by this apply, names it). Published
         * on the home shard (@from): now, after the publisher's earlier
         * messages on the same ring. Elsewhere: once the publisher's notice
         * has come too (core/rpair.h).
         */
        uint32_t origin = x->arg & ~REPLICA_REFUSED;
        bool ours = origin == b->shard_id;
        uint64_t token = x->payload.retain.token;
        const struct session *publisher = ours ? wait_publisher(b, token) : NULL;
        size_t mark = wal_mark(b);
        if (ours || origin == from || rpair_arrive(b, m, true))
            route_retained(b, m, publisher);
        if (token && wal_sync(b) && wal_since(b, mark)) {
            /* Its deliveries here are logged: acknowledged once they are durable. */
            released = replica_apply(b, m, 0, x->arg);
            if (!ours)
                wal_ack_later(b, origin, token);
            else
                (void)wait_on_log(b, token); /* or it failed: its client is closing */
        } else {
            released = replica_apply(b, m, token, x->arg);
        }
        outbox_msg_put(b, m);
        break;
    }
    case XMSG_ACK:
        released = wait_done(b, x->payload.retain.token);
        break;
    case XMSG_NACK:
        wait_fail(b, x->payload.retain.token);
        break;
    case XMSG_SHARE_PUBLISH: {
        size_t mark = wal_mark(b);
        uint64_t token = x->payload.share.token;
        route_share_received(b, from, m, x->payload.share.key, x->arg, token);
        outbox_msg_put(b, m);
        crossing_done(b, mark, from, token);
        break;
    }
    case XMSG_INTEREST_ADD:
    case XMSG_INTEREST_DEL:
        interest(b, from, x, x->kind == XMSG_INTEREST_ADD);
        break;
    default:
        RM_ASSERT(!"not a routing message");
    }
    return released;
}

void xrecv_tick(struct broker *b)
{
    RM_ASSERT(b != NULL);
    /* Bounded: each call takes one entry out. */
    struct msg *m;
    for (uint32_t i = 0, n = b->rpair_cap; i < n && (m = rpair_expire(b, b->now_ms)) != NULL; i++) {
        route_retained(b, m, NULL); /* its notice was lost: delivered late, not never */
        outbox_msg_put(b, m);
    }
}
