/*
 * output.c - packets to one client (see output.h).
 *
 * Packets are encoded straight into the client's output buffer; the dirty
 * list records which clients net/ must flush, in the order they got output.
 * Owned by one shard; single-threaded.
 */
#include "core/output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"

void output_mark_dirty(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl != NULL);
    if (cl->_dirty)
        return;
    cl->_dirty = true;
    cl->_dirty_next = NULL;
    cl->_dirty_prev = b->dirty_tail;
    if (b->dirty_tail)
        b->dirty_tail->_dirty_next = cl;
    else
        b->dirty_head = cl;
    b->dirty_tail = cl;
}

void output_unlink(struct broker *b, struct client *cl)
{
    if (!cl->_dirty)
        return;
    if (cl->_dirty_prev)
        cl->_dirty_prev->_dirty_next = cl->_dirty_next;
    else
        b->dirty_head = cl->_dirty_next;
    if (cl->_dirty_next)
        cl->_dirty_next->_dirty_prev = cl->_dirty_prev;
    else
        b->dirty_tail = cl->_dirty_prev;
    cl->_dirty = false;
    cl->_dirty_next = cl->_dirty_prev = NULL;
}

struct client *output_next_dirty(struct broker *b)
{
    RM_ASSERT(b != NULL);
    struct client *cl = b->dirty_head;
    if (cl) {
        RM_ASSERT(cl->_dirty);
        output_unlink(b, cl);
    }
    return cl;
}

int output_send(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt, size_t bytes_max)
{
    RM_ASSERT(cl != NULL);
    RM_ASSERT(pkt != NULL);
    if (cl->state == CLIENT_CLOSING)
        return 0; /* Nobody will read it; not an error for the sender. */
    uint8_t version = cl->version ? cl->version : MQTT_V311;
    size_t n = mqtt_encoded_size(pkt, version);
    if (n == 0)
        return -EINVAL;
    if (cl->_v5 && n > cl->_v5->max_packet)
        return -EMSGSIZE;
    uint8_t *p = obuf_reserve(&cl->out, n, bytes_max);
    if (!p)
        return cl->out.len + n > bytes_max ? -ENOBUFS : -ENOMEM;
    mqtt_encode(pkt, version, p, n);
    obuf_commit(&cl->out, n);
    b->stats.pkts_out++;
    output_mark_dirty(b, cl);
    return 0;
}

/*
 * Give @pub an outbound topic alias: the topic's alias if it has one (the
 * topic is then left out), else a new alias, reusing the least recently
 * used one once BROKER_ALIAS_OUT_MAX or the client's maximum are taken
 * [MQTT-3.3.2-9, -10]. Without memory, no alias.
 */
static void alias_out(struct client_v5 *v5, struct mqtt_publish *pub)
{
    RM_ASSERT(v5->alias_max > 0);
    RM_ASSERT(pub->topic.len > 0);
    uint32_t cap = v5->alias_max < BROKER_ALIAS_OUT_MAX ? v5->alias_max : BROKER_ALIAS_OUT_MAX;
    if (!v5->alias_out) {
        v5->alias_out = calloc(cap, sizeof(*v5->alias_out));
        if (!v5->alias_out)
            return;
    }
    struct alias_out *lru = NULL;
    for (uint32_t i = 0; i < v5->alias_out_count; i++) {
        struct alias_out *a = &v5->alias_out[i];
        if (a->topic_len == pub->topic.len && memcmp(a->topic, pub->topic.ptr, a->topic_len) == 0) {
            a->used = ++v5->alias_clock;
            pub->props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
            pub->props.topic_alias = a->alias;
            pub->topic.len = 0; /* the alias alone names the topic */
            return;
        }
        if (!lru || a->used < lru->used)
            lru = a;
    }
    uint8_t *copy = malloc(pub->topic.len);
    if (!copy)
        return;
    memcpy(copy, pub->topic.ptr, pub->topic.len);
    if (v5->alias_out_count < cap) {
        lru = &v5->alias_out[v5->alias_out_count++];
        lru->alias = (uint16_t)v5->alias_out_count;
    }
    free(lru->topic);
    lru->topic = copy;
    lru->topic_len = (uint16_t)pub->topic.len;
    lru->used = ++v5->alias_clock;
    pub->props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    pub->props.topic_alias = lru->alias;
}

int output_publish(struct broker *b, struct client *cl, struct mqtt_pkt *pkt, size_t bytes_max)
{
    RM_ASSERT(pkt->type == MQTT_PUBLISH);
    RM_ASSERT(cl != NULL);
    struct client_v5 *v5 = cl->_v5;
    struct mqtt_publish *pub = &pkt->u.publish;
    if (v5 && v5->alias_max > 0 && cl->state != CLIENT_CLOSING)
        alias_out(v5, pub);
    int rc = output_send(b, cl, pkt, bytes_max);
    if (rc < 0 && (pub->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        /* Not sent: the client does not know this mapping; forget it. */
        struct alias_out *a = &v5->alias_out[pub->props.topic_alias - 1];
        free(a->topic);
        a->topic = NULL;
        a->topic_len = 0;
        if (rc == -EMSGSIZE && pub->topic.len > 0) {
            /* A new alias adds 3 bytes: without it, the packet may fit. */
            pub->props.has &= ~MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
            rc = output_send(b, cl, pkt, bytes_max);
        }
    }
    return rc;
}

int output_ack(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id)
{
    return output_ack_rc(b, cl, type, pkt_id, 0);
}

int output_ack_rc(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id, uint8_t rc)
{
    struct mqtt_pkt pkt = {.type = type};
    RM_ASSERT(type >= MQTT_PUBACK && type <= MQTT_PUBCOMP);
    RM_ASSERT(rc == 0 || mqtt_rc_allowed(type, rc));
    pkt.u.ack.pkt_id = pkt_id;
    pkt.u.ack.rc = cl->version == MQTT_V5 ? rc : 0; /* 0 before v5 (struct mqtt_ack) */
    return output_send(b, cl, &pkt, output_hard_max(b));
}

/*
 * The DISCONNECT reason code for error @rc: itself where a DISCONNECT may
 * carry it (MQTT 5.0 section 3.14.2.1; 0x04 is the client's), else 0x80.
 */
static uint8_t disconnect_rc(int rc)
{
    RM_ASSERT(rc < 0 && rc >= -255);
    uint8_t code = (uint8_t)-rc;
    return code != MQTT_RC_DISCONNECT_WITH_WILL && mqtt_rc_allowed(MQTT_DISCONNECT, code)
               ? code
               : MQTT_RC_UNSPECIFIED;
}

int output_with_reason(struct broker *b, struct client *cl, struct mqtt_pkt *pkt,
                       struct mqtt_props *props, uint8_t rc, const char *why)
{
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(pkt->type == MQTT_CONNACK || pkt->type == MQTT_DISCONNECT);
    if (!why)
        why = mqtt_rc_name(rc);
    props->has |= MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
    props->reason_string = (struct mqtt_str){(const uint8_t *)why, (uint32_t)strlen(why)};
    int ret = output_send(b, cl, pkt, output_hard_max(b));
    if (ret == -EMSGSIZE) {
        props->has &= ~MQTT_PROP_BIT(MQTT_PROP_REASON_STRING);
        ret = output_send(b, cl, pkt, output_hard_max(b));
    }
    return ret;
}

void output_overloaded(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl->state == CLIENT_CONNECTED || cl->state == CLIENT_CLOSING);
    uint32_t grace = b->lim->slow_reader_grace_s;
    RM_ASSERT(grace <= UINT16_MAX);
    /* A held client's acknowledgements wait unread by our choice: not its fault. */
    if (cl->state != CLIENT_CONNECTED || grace == 0 || cl->_wait)
        return;
    /*
     * Seconds mod 65536 (never 0): differences are right below the grace's
     * maximum. An episode is ended lazily, by the next drop more than a
     * grace after the last; one that comes 65536 s after (18 h, +- the
     * grace) reads as the same episode: accepted, it costs nothing per
     * message.
     */
    uint16_t now = (uint16_t)(b->now_ms / 1000);
    now = now ? now : 1;
    if (!cl->_over_since_s || (uint16_t)(now - cl->_over_last_s) > grace) {
        cl->_over_since_s = now; /* the first drop, or the first after a quiet grace */
        cl->_over_last_s = now;
        return;
    }
    cl->_over_last_s = now;
    /* Whole seconds: the close comes between grace and grace + 1 s after the first drop. */
    if ((uint16_t)(now - cl->_over_since_s) <= grace)
        return;
    b->stats.slow_readers_closed++;
    output_close(b, cl, -MQTT_RC_QUOTA_EXCEEDED);
}

int output_close(struct broker *b, struct client *cl, int rc)
{
    RM_ASSERT(rc != 0);
    RM_ASSERT(cl != NULL);
    if (cl->state != CLIENT_CLOSING) {
        if (rc < 0 && cl->version == MQTT_V5 && cl->state == CLIENT_CONNECTED) {
            /* Say why before closing [MQTT-4.13.2-1]. */
            struct mqtt_pkt pkt = {.type = MQTT_DISCONNECT};
            pkt.u.ack.rc = disconnect_rc(rc);
            (void)output_with_reason(b, cl, &pkt, &pkt.u.ack.props, pkt.u.ack.rc, NULL);
        }
        cl->state = CLIENT_CLOSING;
        cl->close_rc = rc < 0 ? rc : 0;
        if (rc < 0 && rc != -MQTT_RC_SESSION_TAKEN_OVER && rc != -MQTT_RC_KEEPALIVE_TIMEOUT &&
            rc != -MQTT_RC_SERVER_SHUTTING_DOWN && rc != -MQTT_RC_QUOTA_EXCEEDED)
            b->stats.malformed++;
    }
    output_mark_dirty(b, cl);
    return rc;
}

struct client_v5 *output_v5_state(struct client *cl)
{
    RM_ASSERT(cl != NULL);
    RM_ASSERT(cl->version == MQTT_V5);
    if (cl->_v5)
        return cl->_v5;
    struct client_v5 *v5 = calloc(1, sizeof(*v5));
    if (!v5)
        return NULL;
    v5->max_packet = UINT32_MAX; /* the defaults of absent CONNECT properties */
    v5->recv_max = 65535;
    cl->_v5 = v5;
    return v5;
}
