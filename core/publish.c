/*
 * publish.c - a PUBLISH from a client (see publish.h).
 * Owned by one shard; single-threaded.
 */
#include "core/publish.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/mqtt_codec.h"
#include "core/output.h"
#include "core/rm_assert.h"
#include "core/route.h"
#include "core/session.h"
#include "core/topic.h"
#include "core/vhost.h"
#include "core/wait.h"
#include "core/wal.h"

/*
 * Resolve an inbound Topic Alias (MQTT 5.0 section 3.3.2.3.4): a topic with
 * an alias sets it, an empty topic uses it. Returns 0 or a negative mqtt_rc.
 */
static int alias_in(struct broker *b, struct client *cl, struct mqtt_publish *pub)
{
    uint16_t alias = pub->props.topic_alias;
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(pub->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
    if (alias == 0 || alias > b->lim->topic_alias_max)
        return -MQTT_RC_TOPIC_ALIAS_INVALID; /* [MQTT-3.3.2-8, -9] */
    struct client_v5 *v5 = output_v5_state(cl);
    if (!v5)
        return -MQTT_RC_SERVER_BUSY;
    if (!v5->alias_in) {
        v5->alias_in = calloc(b->lim->topic_alias_max, sizeof(*v5->alias_in));
        if (!v5->alias_in)
            return -MQTT_RC_SERVER_BUSY;
        v5->alias_in_cap = b->lim->topic_alias_max;
    }
    if (alias > v5->alias_in_cap)
        return -MQTT_RC_TOPIC_ALIAS_INVALID; /* the maximum this connection was told */
    struct mqtt_str *slot = &v5->alias_in[alias - 1];
    if (pub->topic.len == 0) {
        if (!slot->ptr)
            return -MQTT_RC_PROTOCOL_ERROR; /* an alias never set */
        pub->topic = *slot;
        return 0;
    }
    uint8_t *copy = malloc(pub->topic.len);
    if (!copy)
        return -MQTT_RC_SERVER_BUSY;
    memcpy(copy, pub->topic.ptr, pub->topic.len);
    free((void *)slot->ptr);
    *slot = (struct mqtt_str){copy, pub->topic.len};
    return 0;
}

/* MQTT 5.0 rules a PUBLISH from a client must keep; 0 or a negative mqtt_rc. */
static int publish_v5_check(struct broker *b, struct client *cl, struct mqtt_publish *pub)
{
    const struct mqtt_props *pr = &pub->props;
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(pub->qos <= 2);
    if (pr->has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID))
        return -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.3.4-6] */
    if ((pr->has & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC)) &&
        topic_name_check(pr->response_topic.ptr, pr->response_topic.len, b->lim) < 0)
        return -MQTT_RC_PROTOCOL_ERROR; /* no wildcards [MQTT-3.3.2-14] */
    if (pr->has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))
        return alias_in(b, cl, pub);
    return pub->topic.len == 0 ? -MQTT_RC_PROTOCOL_ERROR : 0;
}

/*
 * A PUBLISH to a topic beginning with '$', which belongs to the broker
 * (MQTT 5.0 section 4.7.2; $SYS), or one the ACL denies: never routed,
 * counted. A v5 QoS 1/2 one
 * gets PUBACK/PUBREC 0x87 Not authorized, which ends a QoS 2 exchange (no
 * PUBREL follows, the id is free again [MQTT-4.3.3-4]); QoS 0 is dropped
 * silently. Before v5 an ack cannot refuse: it is acknowledged as usual
 * and dropped, as 3.1.1 allows [MQTT-3.3.5-2 of 3.1.1] (QoS 2: the id is
 * recorded, so its PUBREL gets PUBCOMP and a resend is a duplicate).
 */
static int publish_refuse(struct broker *b, struct client *cl, const struct mqtt_publish *pub)
{
    RM_ASSERT(pub->topic.len > 0);
    RM_ASSERT(cl->_sess != NULL);
    b->stats.msgs_refused++;
    if (pub->qos == 0)
        return 0;
    uint8_t ack = pub->qos == 2 ? MQTT_PUBREC : MQTT_PUBACK;
    uint8_t rc = 0;
    if (cl->version == MQTT_V5) {
        rc = MQTT_RC_NOT_AUTHORIZED;
        /*
         * The exchange ends and the id is free again, whatever it held (a
         * resend of one committed, or restored uncommitted: its origin goes
         * too). Its release is logged and, under fsync = always, the 0x87
         * waits for it as a PUBCOMP would: else a crash brings the id back
         * and the client's next message with it is taken for the old one.
         */
        size_t mark = wal_mark(b);
        if (pub->qos == 2)
            session_on_pubrel(b, cl->_sess, pub->pkt_id);
        if (wal_sync(b) && wal_since(b, mark)) {
            int held = wait_for_log(b, cl, ack, pub->pkt_id, rc);
            return held > 0 ? BROKER__HOLD : held;
        }
    } else if (pub->qos == 2) {
        int r = session_qos2_in_add(b, cl->_sess, pub->pkt_id);
        if (r < 0)
            return output_close(b, cl, r == -ENOMEM ? -MQTT_RC_SERVER_UNAVAILABLE : r);
        session_qos2_in_log(b, cl->_sess, pub->pkt_id);
    }
    if (output_ack_rc(b, cl, ack, pub->pkt_id, rc) < 0)
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}

/*
 * fsync = always, after routing: the acknowledgement waits for this
 * shard's log when the publish logged something here (@logged), on wait
 * *@token (made now if 0). A @guard acknowledgement (see above) is dropped;
 * a wait left with nothing due is cancelled. *@token: the wait the client
 * is held on, or 0 when the acknowledgement may go now. Returns 0, or -1
 * when @cl is closed instead, never acknowledged: no wait could be made,
 * or the log could not take it (wait_on_log()).
 */
static int durable_after(struct broker *b, struct client *cl, uint8_t ack, uint16_t pkt_id,
                         uint64_t *token, bool guard, bool logged)
{
    RM_ASSERT(ack != 0);
    RM_ASSERT(!guard || *token != 0);
    if (logged) {
        if (!*token) {
            *token = wait_new(b, cl, ack, pkt_id, 1);
            if (!*token) {
                (void)output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
                return -1;
            }
        } else if (!guard) {
            wait_add(b, *token, 1);
        }
        if (!wait_on_log(b, *token)) {
            *token = 0;
            return -1;
        }
        guard = false;
    }
    if (guard && wait_remaining(b, *token) > 1) {
        wait_drop(b, *token);
    } else if (guard) {
        wait_cancel(b, cl); /* it crossed nowhere: nothing to wait for */
        *token = 0;
    }
    return 0;
}

/*
 * @cl is closed instead of acknowledged (its wait failed): the publish
 * leaves nothing behind. A QoS 2 id is released, so that the client's
 * resend is routed again: delivered twice, perhaps, never lost.
 */
static int unacknowledged(struct broker *b, struct client *cl, struct session *s,
                          const struct mqtt_publish *pub, bool route)
{
    RM_ASSERT(cl->state == CLIENT_CLOSING);
    b->hold_count = 0;
    if (route && pub->qos == 2)
        session_on_pubrel(b, s, pub->pkt_id);
    return cl->close_rc < 0 ? cl->close_rc : -MQTT_RC_SERVER_UNAVAILABLE;
}

int publish_on_publish(struct broker *b, struct client *cl, struct mqtt_publish *pub)
{
    struct session *s = cl->_sess;
    RM_ASSERT(s != NULL);
    RM_ASSERT(pub->qos <= 2);
    int rc = 0;
    if (pub->qos > b->lim->max_qos)
        return output_close(b, cl, -MQTT_RC_QOS_NOT_SUPPORTED); /* [MQTT-3.2.2-11] */
    if (pub->retain && !b->lim->retain_available)
        return output_close(b, cl, -MQTT_RC_RETAIN_NOT_SUPPORTED); /* [MQTT-3.2.2-14] */
    if (cl->version == MQTT_V5)
        rc = publish_v5_check(b, cl, pub);
    if (rc == 0)
        rc = topic_name_check(pub->topic.ptr, pub->topic.len, b->lim);
    if (rc < 0)
        return output_close(b, cl, rc);
    if (pub->topic.ptr[0] == '$')
        return publish_refuse(b, cl, pub);
    if (b->acl_on && !session_acl_publish(b, s, pub->topic.ptr, pub->topic.len)) {
        b->stats.acl_publish_denied++;
        return publish_refuse(b, cl, pub);
    }
    if (pub->qos == 0 && b->memory_pressure) {
        /*
         * Near the memory budget: QoS 0 goes first, before anything that
         * was acknowledged. Only here, after the alias above is recorded,
         * so later PUBLISHes that use it still resolve.
         */
        b->stats.msgs_shed_memory++;
        return 0;
    }
    bool route = true;
    size_t mark = wal_mark(b);
    uint64_t origin = 0;
    if (pub->qos == 2) {
        rc = session_qos2_in_add(b, s, pub->pkt_id);
        if (rc < 0)
            return output_close(b, cl, rc == -ENOMEM ? -MQTT_RC_SERVER_UNAVAILABLE : rc);
        /* A duplicate is acknowledged again but not routed again [MQTT-4.3.3-2]. */
        route = rc == 1;
        if (route && wal_sync(b) && s->expiry_s != 0) {
            /* Tagged, so that a crash before its PUBREC cannot deliver it twice (core/wal.h). */
            origin = wal_origin_new(b);
            session_qos2_in_pend(b, s, pub->pkt_id, origin);
        } else if (!route) {
            /* Uncommitted at a crash: routed again, past whoever had it then. */
            origin = session_qos2_in_resume(s, pub->pkt_id);
            route = origin != 0;
        }
    }
    uint8_t ack = pub->qos == 2 ? MQTT_PUBREC : pub->qos == 1 ? MQTT_PUBACK : 0;
    uint64_t token = 0;
    /*
     * A duplicate whose first copy's PUBREC still waits for other shards
     * (a retained one, its connection gone since) or for the log: answered
     * when that wait completes, not before - the replicas or the disk may
     * not have it yet.
     */
    if (!route && (b->shard_count > 1 || wal_sync(b)) && wait_adopt(b, cl, pub->pkt_id))
        return BROKER__HOLD;
    /* A virtual host's client publishes in its host's topic space (core/vhost.h). */
    struct mqtt_publish hosted;
    uint8_t host = vhost_of_name(s->client_id, s->client_id_len);
    if (route && host) {
        size_t len;
        hosted = *pub;
        hosted.topic.ptr =
            vhost_name(&b->vhost_buf[1], host, true, pub->topic.ptr, pub->topic.len, &len);
        if (!hosted.topic.ptr && len == VHOST_TOO_LONG) {
            /* Past 65535 bytes with its host's prefix: as a topic over topic_bytes_max. */
            if (pub->qos == 2)
                session_on_pubrel(b, s, pub->pkt_id);
            return output_close(b, cl, -MQTT_RC_TOPIC_NAME_INVALID);
        }
        if (!hosted.topic.ptr)
            goto out_fail;
        hosted.topic.len = (uint32_t)len;
        pub = &hosted;
    }
    if (route && pub->retain && b->shard_count > 1) {
        /*
         * Acknowledge (if QoS > 0) and read on only once every shard's
         * replica has it (see broker.waits): even at QoS 0 this
         * connection's next SUBSCRIBE must see it.
         */
        token = wait_new(b, cl, ack, pub->pkt_id, b->shard_count);
        if (!token)
            goto out_fail;
    }
    /*
     * fsync = always: a crossing to another shard owes an acknowledgement
     * once that shard has logged what it keeps; a guard acknowledgement
     * keeps the wait open until routing is done (durable_after()).
     */
    bool guard = false;
    if (route && ack && wal_sync(b) && b->shard_count > 1 && !token) {
        token = wait_new(b, cl, ack, pub->pkt_id, 1);
        if (!token)
            goto out_fail;
        guard = true;
    }
    b->wal_token = ack && wal_sync(b) ? token : 0;
    int matched = route ? route_publish(b, s, pub, token, origin) : 1;
    b->wal_token = 0;
    if (token && !wait_live(b, token))
        return unacknowledged(b, cl, s, pub, route); /* its wait failed while routing */
    if (matched < 0) {
        if (token)
            wait_cancel(b, cl);
        goto out_fail;
    }
    if (ack && wal_sync(b) &&
        durable_after(b, cl, ack, pub->pkt_id, &token, guard, wal_since(b, mark)) < 0)
        return unacknowledged(b, cl, s, pub, route);
    if (route && b->hold_count > 0) {
        /* It crossed to a shard that is behind: no more from this client until it catches up. */
        token = wait_link_hold(b, cl, ack, pub->pkt_id, token, b->hold, b->hold_count);
        b->hold_count = 0;
    }
    /*
     * v5: 0x10 when it matched nobody anywhere, retained or not (a
     * retained one is still stored; mosquitto answers the same). A QoS 2
     * duplicate (not routed again) gets 0x00.
     */
    uint8_t ack_rc = matched == 0 && ack ? MQTT_RC_NO_MATCHING_SUBSCRIBERS : 0;
    if (token) {
        if (ack_rc)
            wait_set_ack_rc(b, token, ack_rc);
        if (origin)
            wait_set_origin(b, token, origin);
        return BROKER__HOLD;
    }
    if (ack == MQTT_PUBREC)
        session_qos2_in_log(b, s, pub->pkt_id);
    rc = ack ? output_ack_rc(b, cl, ack, pub->pkt_id, ack_rc) : 0;
    return rc < 0 ? output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE) : 0;

out_fail:
    /* Not routed: a resend of this QoS 2 id must not count as a duplicate. */
    if (route && pub->qos == 2)
        session_on_pubrel(b, s, pub->pkt_id);
    return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
}
