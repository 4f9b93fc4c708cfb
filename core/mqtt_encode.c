/*
 * mqtt_encode.c - MQTT 3.1 / 3.1.1 / 5.0 packet sizes and encoding.
 *
 * Owns nothing: every function reads its arguments and writes only the
 * caller's buffer. No allocation, no syscalls, no mutable state; any thread
 * may call it. Sizes saturate at BODY_UNENCODABLE (core/mqtt_wire.h), so one
 * field over its maximum makes the whole packet unencodable (size 0).
 * Encoding trusts its input (it was built by the broker) and asserts on it.
 */
#include "core/mqtt_encode.h"

#include "core/limits.h"
#include "core/mqtt_props.h"
#include "core/mqtt_rc.h"
#include "core/mqtt_wire.h"
#include "core/rm_assert.h"

/* Bytes of the remaining-length field for @rl (< 2^28). */
static uint32_t rl_bytes(uint32_t rl)
{
    return varint_bytes(rl);
}

static uint64_t connect_body_bytes(const struct mqtt_connect *c, uint8_t version)
{
    uint64_t n = version == MQTT_V31 ? 2 + 6 : 2 + 4; /* protocol name */

    RM_ASSERT(c->version == version);
    RM_ASSERT(c->will_qos <= 2 && (c->will || (c->will_qos == 0 && !c->will_retain)));
    RM_ASSERT(!c->has_password || c->has_username || version == MQTT_V5);

    n += 1 + 1 + 2; /* level, flags, keep alive */
    n = add_bytes(n, mqtt_props__bytes(&c->props, MQTT_PROPS_IN(MQTT_CONNECT), version));
    n = add_bytes(n, str_bytes(&c->client_id));
    if (c->will) {
        n = add_bytes(n, mqtt_props__bytes(&c->will_props, MQTT_PROPS_IN_WILL, version));
        n = add_bytes(n, str_bytes(&c->will_topic));
        n = add_bytes(n, str_bytes(&c->will_payload));
    }
    if (c->has_username) {
        n = add_bytes(n, str_bytes(&c->username));
    }
    if (c->has_password) {
        n = add_bytes(n, str_bytes(&c->password));
    }
    return n;
}

/* True if @opt is a subscription options byte this codec would decode. */
static bool options_ok(uint8_t opt, uint8_t version)
{
    if (version != MQTT_V5) {
        return opt <= 2;
    }
    return (opt & 0xc0) == 0 && (opt & MQTT_SUBOPT_QOS) != 3 && (opt >> MQTT_SUBOPT_RH_SHIFT) != 3;
}

static uint64_t subscribe_body_bytes(const struct mqtt_subscribe *s, uint8_t type, uint8_t version)
{
    const bool with_options = type == MQTT_SUBSCRIBE;
    uint64_t n = 2;
    uint32_t i;

    RM_ASSERT(s->pkt_id != 0 && s->count > 0);
    RM_ASSERT(s->entries != NULL);

    n = add_bytes(n, mqtt_props__bytes(&s->props, MQTT_PROPS_IN(type), version));
    for (i = 0; i < s->count; i++) {
        RM_ASSERT(!with_options || options_ok(s->entries[i].options, version));
        n = add_bytes(n, str_bytes(&s->entries[i].filter));
        n = add_bytes(n, with_options ? 1 : 0);
    }
    return n;
}

static uint64_t publish_body_bytes(const struct mqtt_publish *p, uint8_t version)
{
    uint64_t n;

    RM_ASSERT(p->qos <= 2 && (p->qos > 0 || !p->dup)); /* [MQTT-3.3.1-2] */
    RM_ASSERT(p->qos == 0 || p->pkt_id != 0);
    RM_ASSERT(p->payload.ptr != NULL || p->payload.len == 0);

    n = add_bytes(str_bytes(&p->topic), (p->qos > 0 ? 2 : 0) + (uint64_t)p->payload.len);
    if (version == MQTT_V5) {
        /* An empty topic needs an alias, as a field or among the raw bytes (3.3.2.1). */
        RM_ASSERT(p->topic.len > 0 || (p->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) != 0 ||
                  p->props.raw.len > 0);
        n = add_bytes(n, mqtt_props__bytes(&p->props, MQTT_PROPS_IN(MQTT_PUBLISH), version));
    }
    return n;
}

/* 5.0 PUBACK PUBREC PUBREL PUBCOMP, shortest form (section 3.4.2.1). */
static uint64_t ack_body_bytes(const struct mqtt_ack *a, uint8_t type, uint8_t version)
{
    RM_ASSERT(a->pkt_id != 0);
    RM_ASSERT(version != MQTT_V5 || mqtt_rc_allowed(type, a->rc));

    if (version != MQTT_V5) {
        return 2;
    }
    if (mqtt_props__empty(&a->props)) {
        return a->rc == 0 ? 2 : 3;
    }
    return add_bytes(3, mqtt_props__bytes(&a->props, MQTT_PROPS_IN(type), version));
}

/* 5.0 DISCONNECT and AUTH, shortest form (sections 3.14.2.1, 3.15.2.1). */
static uint64_t reason_body_bytes(const struct mqtt_ack *a, uint8_t type, uint8_t version)
{
    RM_ASSERT(mqtt_rc_allowed(type, a->rc));
    RM_ASSERT(version == MQTT_V5);

    if (mqtt_props__empty(&a->props)) {
        if (a->rc == 0) {
            return 0;
        }
        if (type == MQTT_DISCONNECT) {
            return 1;
        }
    }
    return add_bytes(1, mqtt_props__bytes(&a->props, MQTT_PROPS_IN(type), version));
}

static uint64_t suback_body_bytes(const struct mqtt_suback *sa, uint8_t type, uint8_t version)
{
    uint32_t i;

    RM_ASSERT(sa->pkt_id != 0);
    RM_ASSERT(type == MQTT_SUBACK || type == MQTT_UNSUBACK);

    if (type == MQTT_UNSUBACK && version != MQTT_V5) {
        return 2; /* codes are 5.0 only: @count and @rcs are ignored */
    }
    RM_ASSERT(sa->count > 0 && sa->rcs != NULL);
    if (2 + (uint64_t)sa->count > LIMITS_REMAINING_LENGTH_MAX) {
        return BODY_UNENCODABLE;
    }
    for (i = 0; i < sa->count; i++) {
        RM_ASSERT(version == MQTT_V5 ? mqtt_rc_allowed(type, sa->rcs[i])
                                     : (sa->rcs[i] <= 2 || sa->rcs[i] == MQTT_SUBACK_FAILURE));
    }
    return add_bytes(2 + (uint64_t)sa->count,
                     mqtt_props__bytes(&sa->props, MQTT_PROPS_IN(type), version));
}

static uint64_t body_bytes(const struct mqtt_pkt *pkt, uint8_t version)
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        return connect_body_bytes(&pkt->u.connect, version);
    case MQTT_CONNACK:
        RM_ASSERT(version == MQTT_V5 ? mqtt_rc_allowed(MQTT_CONNACK, pkt->u.connack.rc)
                                     : pkt->u.connack.rc <= MQTT_CONNACK_NOT_AUTHORIZED);
        RM_ASSERT(!pkt->u.connack.session_present || pkt->u.connack.rc == 0);
        return add_bytes(
            2, mqtt_props__bytes(&pkt->u.connack.props, MQTT_PROPS_IN(MQTT_CONNACK), version));
    case MQTT_PUBLISH:
        return publish_body_bytes(&pkt->u.publish, version);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return ack_body_bytes(&pkt->u.ack, pkt->type, version);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return subscribe_body_bytes(&pkt->u.subscribe, pkt->type, version);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return suback_body_bytes(&pkt->u.suback, pkt->type, version);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
        return 0;
    case MQTT_DISCONNECT:
        return version == MQTT_V5 ? reason_body_bytes(&pkt->u.ack, pkt->type, version) : 0;
    case MQTT_AUTH:
        RM_ASSERT(version == MQTT_V5); /* AUTH does not exist before 5.0 */
        return reason_body_bytes(&pkt->u.ack, pkt->type, version);
    default:
        RM_ASSERT(!"not a packet type");
        return BODY_UNENCODABLE;
    }
}

/* Whole encoded size and, through @body, the remaining length; 0 if unencodable. */
static size_t packet_bytes(const struct mqtt_pkt *pkt, uint8_t version, uint32_t *body)
{
    uint64_t n = body_bytes(pkt, version);

    if (n > LIMITS_REMAINING_LENGTH_MAX) {
        *body = 0;
        return 0;
    }
    *body = (uint32_t)n;
    return 1 + rl_bytes(*body) + (size_t)n;
}

size_t mqtt_encoded_size(const struct mqtt_pkt *pkt, uint8_t version)
{
    uint32_t body;

    RM_ASSERT(pkt != NULL);
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311 || version == MQTT_V5);
    return packet_bytes(pkt, version, &body);
}

/* The fixed header: type and flags, then the remaining length (< 2^28). */
static uint8_t *put_fixed(uint8_t *p, uint8_t type, uint8_t flags, uint32_t rl)
{
    *p++ = (uint8_t)(type << 4 | flags);
    return put_varint(p, rl);
}

/*
 * PUBLISH is encoded once per subscriber, so it skips the generic size pass:
 * one length computation, one header, two copies (plus the properties in 5.0).
 */
static size_t encode_publish(const struct mqtt_publish *pub, uint8_t version, uint8_t *buf,
                             size_t cap)
{
    uint64_t body = publish_body_bytes(pub, version);
    uint8_t *p;
    size_t size;

    RM_ASSERT(body <= LIMITS_REMAINING_LENGTH_MAX);
    size = 1 + rl_bytes((uint32_t)body) + (size_t)body;
    RM_ASSERT(cap >= size);

    p = put_fixed(buf, MQTT_PUBLISH,
                  (uint8_t)((pub->dup ? FLAGS_DUP : 0) | pub->qos << 1 | (pub->retain ? 1 : 0)),
                  (uint32_t)body);
    p = put_str(p, &pub->topic);
    if (pub->qos > 0) {
        p = put_u16(p, pub->pkt_id);
    }
    if (version == MQTT_V5) {
        p = mqtt_props__put(p, &pub->props, MQTT_PROPS_IN(MQTT_PUBLISH));
    }
    p = put_bytes(p, pub->payload.ptr, pub->payload.len);
    RM_ASSERT((size_t)(p - buf) == size);
    return size;
}

static uint8_t *put_connect(uint8_t *p, const struct mqtt_connect *c, uint8_t version)
{
    uint8_t flags = 0;

    if (version == MQTT_V31) {
        p = put_bytes(put_u16(p, 6), (const uint8_t *)"MQIsdp", 6);
    } else {
        p = put_bytes(put_u16(p, 4), (const uint8_t *)"MQTT", 4);
    }
    *p++ = version;
    flags |= c->clean_session ? CF_CLEAN : 0;
    flags |= c->will ? CF_WILL : 0;
    flags |= (uint8_t)(c->will_qos << CF_WILL_QOS_SHIFT);
    flags |= c->will_retain ? CF_WILL_RETAIN : 0;
    flags |= c->has_password ? CF_PASSWORD : 0;
    flags |= c->has_username ? CF_USERNAME : 0;
    *p++ = flags;
    p = put_u16(p, c->keepalive_s);
    if (version == MQTT_V5) {
        p = mqtt_props__put(p, &c->props, MQTT_PROPS_IN(MQTT_CONNECT));
    }
    p = put_str(p, &c->client_id);
    if (c->will) {
        if (version == MQTT_V5) {
            p = mqtt_props__put(p, &c->will_props, MQTT_PROPS_IN_WILL);
        }
        p = put_str(p, &c->will_topic);
        p = put_str(p, &c->will_payload);
    }
    if (c->has_username) {
        p = put_str(p, &c->username);
    }
    if (c->has_password) {
        p = put_str(p, &c->password);
    }
    return p;
}

static uint8_t *put_subscribe(uint8_t *p, const struct mqtt_subscribe *s, uint8_t type,
                              uint8_t version)
{
    uint32_t i;

    p = put_u16(p, s->pkt_id);
    if (version == MQTT_V5) {
        p = mqtt_props__put(p, &s->props, MQTT_PROPS_IN(type));
    }
    for (i = 0; i < s->count; i++) {
        p = put_str(p, &s->entries[i].filter);
        if (type == MQTT_SUBSCRIBE) {
            *p++ = s->entries[i].options;
        }
    }
    return p;
}

/* Acks, DISCONNECT and AUTH in 5.0: as much of rc + properties as @body holds. */
static uint8_t *put_reason(uint8_t *p, const struct mqtt_ack *a, uint8_t type, uint32_t body)
{
    uint32_t head = type == MQTT_DISCONNECT || type == MQTT_AUTH ? 0 : 2;
    RM_ASSERT(mqtt_rc_allowed(type, a->rc));
    RM_ASSERT(body >= head);

    if (head == 2) {
        p = put_u16(p, a->pkt_id);
    }
    if (body > head) {
        *p++ = a->rc;
    }
    if (body > head + 1) {
        p = mqtt_props__put(p, &a->props, MQTT_PROPS_IN(type));
    }
    return p;
}

size_t mqtt_encode(const struct mqtt_pkt *pkt, uint8_t version, uint8_t *buf, size_t cap)
{
    uint32_t body;
    size_t size;
    uint8_t flags;
    uint8_t *p;

    RM_ASSERT(pkt != NULL && buf != NULL);
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311 || version == MQTT_V5);

    if (pkt->type == MQTT_PUBLISH) {
        return encode_publish(&pkt->u.publish, version, buf, cap);
    }
    size = packet_bytes(pkt, version, &body);
    RM_ASSERT(size != 0); /* a field over its maximum: the caller must check first */
    RM_ASSERT(cap >= size);

    flags =
        (pkt->type == MQTT_PUBREL || pkt->type == MQTT_SUBSCRIBE || pkt->type == MQTT_UNSUBSCRIBE)
            ? FLAGS_QOS1
            : 0;
    p = put_fixed(buf, pkt->type, flags, body);
    switch (pkt->type) {
    case MQTT_CONNECT:
        p = put_connect(p, &pkt->u.connect, version);
        break;
    case MQTT_CONNACK:
        /* 3.1 has no session-present flag: its first byte is unused. */
        *p++ = (version != MQTT_V31 && pkt->u.connack.session_present) ? 1 : 0;
        *p++ = pkt->u.connack.rc;
        if (version == MQTT_V5) {
            p = mqtt_props__put(p, &pkt->u.connack.props, MQTT_PROPS_IN(MQTT_CONNACK));
        }
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (version == MQTT_V5) {
            p = put_reason(p, &pkt->u.ack, pkt->type, body);
        } else if (pkt->type != MQTT_DISCONNECT) {
            p = put_u16(p, pkt->u.ack.pkt_id);
        }
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        p = put_subscribe(p, &pkt->u.subscribe, pkt->type, version);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        p = put_u16(p, pkt->u.suback.pkt_id);
        if (version == MQTT_V5) {
            p = mqtt_props__put(p, &pkt->u.suback.props, MQTT_PROPS_IN(pkt->type));
        }
        if (version == MQTT_V5 || pkt->type == MQTT_SUBACK) {
            p = put_bytes(p, pkt->u.suback.rcs, pkt->u.suback.count);
        }
        break;
    default: /* PINGREQ PINGRESP: no body */
        break;
    }
    RM_ASSERT((size_t)(p - buf) == size);
    return size;
}
