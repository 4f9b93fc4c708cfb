/*
 * drain.c - a shard's graceful stop (see drain.h).
 *
 * Wills across shards: a will published here reaches the subscribers of
 * other shards through the cross-shard rings, which are FIFO per pair of
 * shards and carry shard 0's XMSG_SHUTDOWN after the messages queued before
 * it: so shard 0's wills reach every shard before that shard closes its
 * clients. A will published by another shard when its XMSG_SHUTDOWN
 * arrives reaches the subscribers of shard 0 (or of a third shard) only if
 * they have not been closed yet; persistent sessions queue it either way.
 *
 * Owned by one shard; that thread only.
 */
#include "net/drain.h"

#include "core/broker.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "net/conn.h"
#include "net/listener.h"
#include "net/log.h"
#include "net/obs.h"
#include "net/sdnotify.h"
#include "net/shard_types.h"
#include "net/uring.h"

void drain_start(struct shard *s, const char *why)
{
    struct conn *c;
    struct conn *next;
    uint32_t delayed;
    uint32_t wills = 0;
    uint32_t i;

    RM_ASSERT(s != NULL && why != NULL);
    RM_ASSERT(!s->stopping);
    if (s->id == 0) {
        sdnotify_sendf("STOPPING=1\nSTATUS=Stopping (%s): closing connections", why);
    }
    s->stopping = true;
    s->stop_at_ms = s->now_ms + SHARD_STOP_LINGER_MS;
    obs_stop(s); /* /metrics and the admin socket close too */
    for (i = 0; i < s->listener_count; i++) {
        struct listener *l = &s->listeners[i];

        listener_stop(l);
        if (l->armed && !l->cancel_sent) {
            l->cancel_sent = uring_cancel(&s->ring, uring_ud(l, URING_OP_ACCEPT)) == 0;
        }
    }
    /* Every will first, so that subscribers here get them before their DISCONNECT. */
    delayed = broker_delayed_wills_now(s->broker);
    for (c = s->conns; c != NULL; c = c->next) {
        wills += broker_client_will_now(s->broker, &c->client) ? 1u : 0u;
    }
    LOG_INFO("shard %u: %s: stopping: not listening; %u wills published (%u of offline "
             "sessions); closing %u connections",
             s->id, why, wills + delayed, delayed, s->conn_count);
    for (c = s->conns; c != NULL; c = next) {
        next = c->next; /* finalising unlinks c, never another conn */
        if (c->client.state == CLIENT_CONNECTED) {
            /* An MQTT 5.0 client is told why: DISCONNECT 0x8B, then the flush. */
            broker_client_kick(s->broker, &c->client, -MQTT_RC_SERVER_SHUTTING_DOWN);
        }
        conn_close(s, c, -MQTT_RC_SERVER_SHUTTING_DOWN, true);
    }
}
