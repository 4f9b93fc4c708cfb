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
#include "core/wait.h"

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
    if (pub->qos == 2) {
        rc = session_qos2_in_add(b, s, pub->pkt_id);
        if (rc < 0)
            return output_close(b, cl, rc == -ENOMEM ? -MQTT_RC_SERVER_UNAVAILABLE : rc);
        /* A duplicate is acknowledged again but not routed again [MQTT-4.3.3-2]. */
        route = rc == 1;
    }
    uint8_t ack = pub->qos == 2 ? MQTT_PUBREC : pub->qos == 1 ? MQTT_PUBACK : 0;
    uint64_t token = 0;
    /*
     * A duplicate whose first copy's PUBREC still waits for other shards
     * (a retained one, its connection gone since): answered when that wait
     * completes, not before - the replicas may not have it yet.
     */
    if (!route && b->shard_count > 1 && wait_adopt(b, cl, pub->pkt_id))
        return BROKER__HOLD;
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
    if (route && route_publish(b, s, pub, token) < 0) {
        if (token)
            wait_cancel(b, cl);
        goto out_fail;
    }
    if (route && b->hold_count > 0) {
        /* It crossed to a shard that is behind: no more from this client until it catches up. */
        token = wait_link_hold(b, cl, ack, pub->pkt_id, token, b->hold, b->hold_count);
        b->hold_count = 0;
    }
    if (token)
        return BROKER__HOLD;
    rc = ack ? output_ack(b, cl, ack, pub->pkt_id) : 0;
    return rc < 0 ? output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE) : 0;

out_fail:
    /* Not routed: a resend of this QoS 2 id must not count as a duplicate. */
    if (route && pub->qos == 2)
        session_on_pubrel(s, pub->pkt_id);
    return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
}
