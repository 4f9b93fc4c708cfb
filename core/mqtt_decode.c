/*
 * mqtt_decode.c - MQTT 3.1 / 3.1.1 / 5.0 framing and decoding: the fixed
 * header, each packet's decoder, and the walk over a decoded SUBSCRIBE.
 *
 * Owns nothing: every function reads its arguments and writes only the caller's
 * output structure. Decoded strings borrow the packet bytes. No allocation, no
 * syscalls, no mutable state; any thread may call it.
 *
 * Decoding validates everything the specification makes normative for one
 * packet on its own (see mqtt_decode.h); anything that needs session state
 * (client-id rules, packet-id reuse, topic filter syntax, topic alias maps,
 * limits other than the packet size) is the caller's. Deliberate choices:
 *  - MQTT 3.1 ("MQIsdp") defines DUP for the retries of PUBREL, SUBSCRIBE and
 *    UNSUBSCRIBE, so with version 3 those accept flags 0b1010 as well as
 *    0b0010. Every other nibble is checked exactly as in 3.1.1.
 *  - A will topic is a topic name, so it gets PUBLISH's topic checks (non-empty,
 *    no wildcards) [MQTT-3.1.3-10, 4.7.3-1, 3.3.2-2]; so does the Response
 *    Topic property [MQTT-3.3.2-13, -14], in core/mqtt_props.c.
 *  - MQTT 5.0 property blocks are core/mqtt_props.c's (see there). Variable
 *    byte integers inside the body must be minimal [MQTT-1.5.5-1].
 */
#include "core/mqtt_decode.h"

#include <string.h>

#include "core/limits.h"
#include "core/mqtt_props.h"
#include "core/mqtt_rc.h"
#include "core/mqtt_utf8.h"
#include "core/mqtt_wire.h"
#include "core/rm_assert.h"

static bool str_is(const struct mqtt_str *s, const char *lit, uint32_t lit_len)
{
    return s->len == lit_len && memcmp(s->ptr, lit, lit_len) == 0;
}

int mqtt_fixed_parse(const uint8_t *buf, size_t len, uint32_t packet_bytes_max,
                     struct mqtt_fixed *fh)
{
    uint32_t rl = 0;
    uint32_t i;
    int ret = 0;

    RM_ASSERT(fh != NULL);
    RM_ASSERT(buf != NULL || len == 0);

    if (len < 1) {
        goto out;
    }
    if ((buf[0] >> 4) == 0) {
        ret = -MQTT_RC_MALFORMED_PACKET;
        goto out;
    }
    /* At most RL_BYTES_MAX length bytes; the last must end the number. */
    for (i = 0; i < RL_BYTES_MAX; i++) {
        uint8_t b;

        if (1 + (size_t)i >= len) {
            goto out; /* ret == 0: need more */
        }
        b = buf[1 + i];
        rl |= (uint32_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            break;
        }
    }
    if (i == RL_BYTES_MAX) {
        ret = -MQTT_RC_MALFORMED_PACKET;
        goto out;
    }
    if ((uint64_t)rl + 2 + i > packet_bytes_max) {
        ret = -MQTT_RC_PACKET_TOO_LARGE;
        goto out;
    }
    fh->type = buf[0] >> 4;
    fh->flags = buf[0] & 0x0f;
    fh->hdr_bytes = (uint8_t)(2 + i);
    fh->body_bytes = rl;
    ret = fh->hdr_bytes;
out:
    RM_ASSERT(ret <= 0 || (ret >= 2 && ret <= 5 && fh->body_bytes <= LIMITS_REMAINING_LENGTH_MAX));
    return ret;
}

/* [MQTT-2.2.2-1, -2], [MQTT-3.6.1-1, 3.8.1-1, 3.10.1-1]; PUBLISH is checked apart. */
static bool flags_ok(uint8_t type, uint8_t flags, uint8_t version)
{
    switch (type) {
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        if (version == MQTT_V31) {
            return (flags & ~FLAGS_DUP) == FLAGS_QOS1;
        }
        return flags == FLAGS_QOS1;
    default:
        return flags == 0;
    }
}

/* Protocol name and level; sets c->version. */
static int decode_connect_level(struct rd *r, struct mqtt_connect *c)
{
    struct mqtt_str name;
    uint8_t level;
    RM_ASSERT(r != NULL && c != NULL);
    RM_ASSERT(r->off == 0);

    if (!rd_str(r, &name)) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    if (!str_is(&name, "MQTT", 4) && !str_is(&name, "MQIsdp", 6)) {
        return -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.1.2-1] */
    }
    if (!rd_u8(r, &level)) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    c->version = level;
    if ((name.len == 4 && level != MQTT_V311 && level != MQTT_V5) ||
        (name.len == 6 && level != MQTT_V31)) {
        return -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION; /* [MQTT-3.1.2-2] */
    }
    return 0;
}

static int decode_connect(struct rd *r, struct mqtt_connect *c)
{
    uint8_t flags;
    bool v5;
    int ret = decode_connect_level(r, c);
    RM_ASSERT(c->props.has == 0 && c->will_props.has == 0);
    RM_ASSERT(r->off <= r->len);

    if (ret != 0) {
        goto out;
    }
    v5 = c->version == MQTT_V5;
    ret = -MQTT_RC_MALFORMED_PACKET;
    if (!rd_u8(r, &flags) || !rd_u16(r, &c->keepalive_s)) {
        goto out;
    }
    c->clean_session = (flags & CF_CLEAN) != 0;
    c->will = (flags & CF_WILL) != 0;
    c->will_qos = (uint8_t)((flags & CF_WILL_QOS_MASK) >> CF_WILL_QOS_SHIFT);
    c->will_retain = (flags & CF_WILL_RETAIN) != 0;
    c->has_username = (flags & CF_USERNAME) != 0;
    c->has_password = (flags & CF_PASSWORD) != 0;
    if ((flags & CF_RESERVED) != 0) {
        goto out; /* [MQTT-3.1.2-3] */
    }
    if (!c->will && (c->will_qos != 0 || c->will_retain)) {
        goto out; /* [MQTT-3.1.2-11, -13, -15] */
    }
    if (c->will_qos > 2) {
        goto out; /* [MQTT-3.1.2-14]; 5.0 [MQTT-3.1.2-12] */
    }
    /* 5.0 allows a password without a user name (section 3.1.2.9). */
    if (!v5 && c->has_password && !c->has_username) {
        goto out; /* [MQTT-3.1.2-22] */
    }
    if (v5) {
        ret = mqtt_props__decode(r, MQTT_PROPS_IN(MQTT_CONNECT), false, &c->props);
        if (ret != 0) {
            goto out;
        }
        ret = -MQTT_RC_MALFORMED_PACKET;
    }
    /* Emptiness and length of the client id are the session's to judge. */
    if (!rd_utf8(r, &c->client_id)) {
        goto out; /* [MQTT-3.1.3-4] */
    }
    if (c->will) {
        if (v5) {
            ret = mqtt_props__decode(r, MQTT_PROPS_IN_WILL, false, &c->will_props);
            if (ret != 0) {
                goto out;
            }
            ret = -MQTT_RC_MALFORMED_PACKET;
        }
        if (!rd_str(r, &c->will_topic) || !mqtt_utf8__topic_name_ok(&c->will_topic)) {
            goto out; /* [MQTT-3.1.3-10]; 5.0 [MQTT-3.1.3-11] */
        }
        if (!rd_str(r, &c->will_payload)) {
            goto out;
        }
    }
    if (c->has_username && !rd_utf8(r, &c->username)) {
        goto out; /* [MQTT-3.1.2-19], [MQTT-3.1.3-11]; 5.0 [MQTT-3.1.3-12] */
    }
    if (c->has_password && !rd_str(r, &c->password)) {
        goto out; /* [MQTT-3.1.2-21] */
    }
    if (rd_left(r) != 0) {
        goto out;
    }
    ret = 0;
    /* "It is a Protocol Error to include Authentication Data if there is no
     * Authentication Method" (section 3.1.2.11.10). */
    if ((c->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA)) != 0 &&
        (c->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)) == 0) {
        ret = -MQTT_RC_PROTOCOL_ERROR;
    }
out:
    return ret;
}

static int decode_connack(struct rd *r, uint8_t version, struct mqtt_connack *ca)
{
    uint8_t ack_flags;
    uint8_t rc;
    RM_ASSERT(r->off == 0 && ca->props.has == 0);
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311 || version == MQTT_V5);

    if ((version != MQTT_V5 && r->len != 2) || !rd_u8(r, &ack_flags) || !rd_u8(r, &rc)) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    /* 3.1 leaves the first byte unused; 3.1.1 reserves bits 7-1 [MQTT-3.2.2-1]. */
    if (version == MQTT_V31) {
        ack_flags = 0;
    }
    if ((ack_flags & 0xfe) != 0) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    if (version == MQTT_V5 ? !mqtt_rc_allowed(MQTT_CONNACK, rc)
                           : rc > MQTT_CONNACK_NOT_AUTHORIZED) {
        return -MQTT_RC_MALFORMED_PACKET; /* 5.0 [MQTT-3.2.2-8] */
    }
    if (ack_flags != 0 && rc != MQTT_CONNACK_ACCEPTED) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.2.2-4]; 5.0 [MQTT-3.2.2-6] */
    }
    ca->session_present = ack_flags != 0;
    ca->rc = rc;
    if (version == MQTT_V5) {
        int ret = mqtt_props__decode(r, MQTT_PROPS_IN(MQTT_CONNACK), false, &ca->props);

        if (ret != 0) {
            return ret;
        }
        if (rd_left(r) != 0) {
            return -MQTT_RC_MALFORMED_PACKET;
        }
    }
    return 0;
}

/*
 * @to_server: the packet comes from a client, so it must not carry a
 * subscription identifier [MQTT-3.3.4-6]; from a server it may carry several.
 */
static int decode_publish(struct rd *r, uint8_t flags, uint8_t version, bool to_server,
                          struct mqtt_publish *p)
{
    int ret;

    RM_ASSERT(r->off == 0 && flags <= 0x0f);
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311 || version == MQTT_V5);
    p->qos = (uint8_t)((flags >> 1) & 3);
    p->dup = (flags & FLAGS_DUP) != 0;
    p->retain = (flags & 1) != 0;
    memset(&p->props, 0, sizeof(p->props));
    if (p->qos == 3) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.1-4] */
    }
    if (p->dup && p->qos == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.1-2] */
    }
    if (!rd_str(r, &p->topic)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.2-1] */
    }
    /* 5.0: an empty topic is checked below, once the alias is known. */
    if ((version != MQTT_V5 || p->topic.len != 0) && !mqtt_utf8__topic_name_ok(&p->topic)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.2-1, -2], [MQTT-4.7.3-1] */
    }
    p->pkt_id = 0;
    if (p->qos > 0 && (!rd_u16(r, &p->pkt_id) || p->pkt_id == 0)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-2.3.1-1] */
    }
    if (version == MQTT_V5) {
        /*
         * Repeats allowed in both directions, so a client's PUBLISH gets the
         * same reason code as from mqtt_decode_any() for any other fault in
         * its properties; any subscription identifier is refused just below.
         */
        ret = mqtt_props__decode(r, MQTT_PROPS_IN(MQTT_PUBLISH), true, &p->props);
        if (ret != 0) {
            return ret;
        }
        if (to_server && (p->props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) != 0) {
            return -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.3.4-6] */
        }
        /* "It is a Protocol Error if the Topic Name is zero length and there
         * is no Topic Alias" (section 3.3.2.1). */
        if (p->topic.len == 0 && (p->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) == 0) {
            return -MQTT_RC_PROTOCOL_ERROR;
        }
    }
    p->payload.ptr = r->buf + r->off;
    p->payload.len = rd_left(r);
    return 0;
}

/*
 * PUBACK PUBREC PUBREL PUBCOMP: a non-zero packet id; in 5.0 then a reason
 * code and properties, either of which may be left off (sections 3.4.2.1,
 * 3.4.2.2.1): remaining length 2 means reason 0, 3 means no properties.
 */
static int decode_ack(struct rd *r, uint8_t type, uint8_t version, struct mqtt_ack *a)
{
    int ret = -MQTT_RC_MALFORMED_PACKET;
    RM_ASSERT(r->off == 0 && a->props.has == 0);
    RM_ASSERT(type >= MQTT_PUBACK && type <= MQTT_PUBCOMP);

    if ((version != MQTT_V5 && r->len != 2) || !rd_u16(r, &a->pkt_id) || a->pkt_id == 0) {
        goto out; /* [MQTT-2.3.1-1] */
    }
    if (rd_left(r) > 0) {
        if (!rd_u8(r, &a->rc) || !mqtt_rc_allowed(type, a->rc)) {
            goto out; /* [MQTT-3.4.2-1, 3.5.2-1, 3.6.2-1, 3.7.2-1] */
        }
    }
    if (rd_left(r) > 0) {
        ret = mqtt_props__decode(r, MQTT_PROPS_IN(type), false, &a->props);
        if (ret != 0 || rd_left(r) != 0) {
            ret = ret != 0 ? ret : -MQTT_RC_MALFORMED_PACKET;
            goto out;
        }
    }
    ret = 0;
out:
    return ret;
}

/*
 * 5.0 DISCONNECT and AUTH: a reason code and properties. DISCONNECT may stop
 * after either (section 3.14.2.1, 3.14.2.2.1); AUTH is empty (reason 0, no
 * properties) or whole (section 3.15.2.1).
 */
static int decode_reason(struct rd *r, uint8_t type, struct mqtt_ack *a)
{
    int ret = -MQTT_RC_MALFORMED_PACKET;
    RM_ASSERT(r->off == 0 && a->props.has == 0);
    RM_ASSERT(type == MQTT_DISCONNECT || type == MQTT_AUTH);

    if (r->len == 0) {
        ret = 0;
        goto out;
    }
    if (!rd_u8(r, &a->rc) || !mqtt_rc_allowed(type, a->rc)) {
        goto out; /* [MQTT-3.14.2-1]; AUTH section 3.15.2.1 */
    }
    if (rd_left(r) == 0 && type == MQTT_DISCONNECT) {
        ret = 0;
        goto out;
    }
    ret = mqtt_props__decode(r, MQTT_PROPS_IN(type), false, &a->props);
    if (ret == 0 && rd_left(r) != 0) {
        ret = -MQTT_RC_MALFORMED_PACKET;
    }
out:
    return ret;
}

/* "$share/": a shared subscription's filter (section 4.8.2). */
static bool is_shared(const struct mqtt_str *f)
{
    return f->len >= 7 && memcmp(f->ptr, "$share/", 7) == 0;
}

/* One subscription options byte (section 3.8.3.1). */
static int check_options(uint8_t opt, uint8_t version, const struct mqtt_str *filter)
{
    if (version != MQTT_V5) {
        return ((opt & 0xfc) != 0 || (opt & 3) == 3) ? -MQTT_RC_MALFORMED_PACKET : 0;
    }
    if ((opt & 0xc0) != 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.8.3-5] */
    }
    /* "It is a Protocol Error if the Maximum QoS field has the value 3", and
     * "to send a Retain Handling value of 3" (section 3.8.3.1). */
    if ((opt & MQTT_SUBOPT_QOS) == 3 || (opt >> MQTT_SUBOPT_RH_SHIFT) == 3) {
        return -MQTT_RC_PROTOCOL_ERROR;
    }
    if ((opt & MQTT_SUBOPT_NO_LOCAL) != 0 && is_shared(filter)) {
        return -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.8.3-4] */
    }
    return 0;
}

static int decode_subscribe(struct rd *r, uint8_t type, uint8_t version, struct mqtt_subscribe *s)
{
    /* Each entry takes at least 3 bytes, so the loop ends within body/3 rounds. */
    const uint32_t entries_max = r->len / 3;
    const bool with_options = type == MQTT_SUBSCRIBE;
    int ret = -MQTT_RC_MALFORMED_PACKET;
    int perr = 0;
    RM_ASSERT(r->off == 0 && s->props.has == 0);
    RM_ASSERT(type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE);

    if (!rd_u16(r, &s->pkt_id) || s->pkt_id == 0) {
        goto out; /* [MQTT-2.3.1-1] */
    }
    if (version == MQTT_V5) {
        ret = mqtt_props__decode(r, MQTT_PROPS_IN(type), false, &s->props);
        if (ret != 0) {
            goto out;
        }
        ret = -MQTT_RC_MALFORMED_PACKET;
    }
    s->_raw = r->buf + r->off;
    s->_raw_bytes = rd_left(r);
    s->count = 0;
    s->entries = NULL;
    while (rd_left(r) > 0 && s->count < entries_max) {
        struct mqtt_str filter;
        uint8_t opt;

        /* Only UTF-8 and length here; filter syntax is core/topic's. */
        if (!rd_utf8(r, &filter) || filter.len == 0) {
            goto out; /* [MQTT-1.5.3-1], [MQTT-4.7.3-1] */
        }
        if (with_options) {
            int rc;

            if (!rd_u8(r, &opt)) {
                goto out;
            }
            rc = check_options(opt, version, &filter);
            if (rc == -MQTT_RC_MALFORMED_PACKET) {
                goto out; /* [MQTT-3.8.3-4]; 5.0 [MQTT-3.8.3-5] */
            }
            perr = perr != 0 ? perr : rc;
        }
        s->count++;
    }
    if (rd_left(r) != 0 || s->count == 0) {
        goto out; /* [MQTT-3.8.3-3], [MQTT-3.10.3-2]; 5.0 [MQTT-3.8.3-2] */
    }
    ret = perr;
out:
    return ret;
}

/* SUBACK, and 5.0 UNSUBACK: packet id, 5.0 properties, one code per filter. */
static int decode_suback(struct rd *r, uint8_t type, uint8_t version, struct mqtt_suback *sa)
{
    uint32_t i;
    int ret;
    RM_ASSERT(r->off == 0 && sa->props.has == 0);
    RM_ASSERT(type == MQTT_SUBACK || type == MQTT_UNSUBACK);

    if (!rd_u16(r, &sa->pkt_id) || sa->pkt_id == 0) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    if (version == MQTT_V5) {
        ret = mqtt_props__decode(r, MQTT_PROPS_IN(type), false, &sa->props);
        if (ret != 0) {
            return ret;
        }
    }
    if (rd_left(r) == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* one code per filter, and there is one */
    }
    sa->count = rd_left(r);
    sa->rcs = r->buf + r->off;
    for (i = 0; i < sa->count; i++) {
        uint8_t rc = sa->rcs[i];

        if (version == MQTT_V5 ? !mqtt_rc_allowed(type, rc)
                               : (rc > 2 && rc != MQTT_SUBACK_FAILURE)) {
            return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.9.3-2]; 5.0 [MQTT-3.11.3-2] */
        }
    }
    return 0;
}

/* UNSUBACK before 5.0: exactly a non-zero packet id, no codes. */
static int decode_unsuback_v3(struct rd *r, struct mqtt_suback *sa)
{
    if (r->len != 2 || !rd_u16(r, &sa->pkt_id) || sa->pkt_id == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-2.3.1-1] */
    }
    sa->count = 0;
    sa->rcs = NULL;
    return 0;
}

/* True for the packets a server receives from a client (section 2.2.1). */
static bool client_to_server(uint8_t type)
{
    switch (type) {
    case MQTT_CONNECT:
    case MQTT_PUBLISH:
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
    case MQTT_PINGREQ:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return true;
    default:
        return false;
    }
}

static int decode(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                  struct mqtt_pkt *out, bool any)
{
    struct rd r = {.buf = body, .off = 0, .len = fh->body_bytes};
    int ret = -MQTT_RC_MALFORMED_PACKET;

    RM_ASSERT(fh->type <= MQTT_AUTH && fh->flags <= 0x0f);
    RM_ASSERT(body != NULL || fh->body_bytes == 0);
    RM_ASSERT(fh->body_bytes <= LIMITS_REMAINING_LENGTH_MAX);
    RM_ASSERT(version == 0 || version == MQTT_V31 || version == MQTT_V311 || version == MQTT_V5);

    /* PUBLISH, the hot path, sets every field it has; the rest start zeroed. */
    if (fh->type != MQTT_PUBLISH) {
        memset(out, 0, sizeof(*out));
    }
    out->type = fh->type;
    if (fh->type == 0) {
        goto out; /* reserved [MQTT-2.2.1]; mqtt_fixed_parse refuses it too */
    }
    if (version == 0 && fh->type != MQTT_CONNECT) {
        ret = -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.1.0-1] */
        goto out;
    }
    if (fh->type == MQTT_CONNECT && version != 0) {
        ret = -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.1.0-2] */
        goto out;
    }
    if ((fh->type == MQTT_AUTH && version != MQTT_V5) || (!any && !client_to_server(fh->type))) {
        ret = -MQTT_RC_PROTOCOL_ERROR; /* AUTH is reserved before 5.0 */
        goto out;
    }
    if (fh->type != MQTT_PUBLISH && !flags_ok(fh->type, fh->flags, version)) {
        goto out; /* [MQTT-2.2.2-2]; 5.0 [MQTT-2.1.3-1] */
    }

    switch (fh->type) {
    case MQTT_CONNECT:
        ret = decode_connect(&r, &out->u.connect);
        break;
    case MQTT_CONNACK:
        ret = decode_connack(&r, version, &out->u.connack);
        break;
    case MQTT_PUBLISH:
        ret = decode_publish(&r, fh->flags, version, !any, &out->u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        ret = decode_ack(&r, fh->type, version, &out->u.ack);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        ret = decode_subscribe(&r, fh->type, version, &out->u.subscribe);
        break;
    case MQTT_SUBACK:
        ret = decode_suback(&r, fh->type, version, &out->u.suback);
        break;
    case MQTT_UNSUBACK:
        ret = version == MQTT_V5 ? decode_suback(&r, fh->type, version, &out->u.suback)
                                 : decode_unsuback_v3(&r, &out->u.suback);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        if (version == MQTT_V5) {
            ret = decode_reason(&r, fh->type, &out->u.ack);
            break;
        }
        ret = fh->body_bytes == 0 ? 0 : -MQTT_RC_MALFORMED_PACKET;
        break;
    default: /* PINGREQ PINGRESP */
        ret = fh->body_bytes == 0 ? 0 : -MQTT_RC_MALFORMED_PACKET;
        break;
    }
out:
    RM_ASSERT(ret <= 0);
    return ret;
}
int mqtt_decode(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                struct mqtt_pkt *out)
{
    RM_ASSERT(fh != NULL);
    RM_ASSERT(out != NULL);
    return decode(fh, body, version, out, false);
}

int mqtt_decode_any(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                    struct mqtt_pkt *out)
{
    RM_ASSERT(fh != NULL);
    RM_ASSERT(out != NULL);
    return decode(fh, body, version, out, true);
}

void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_pkt *pkt)
{
    RM_ASSERT(it != NULL && pkt != NULL);
    RM_ASSERT(pkt->type == MQTT_SUBSCRIBE || pkt->type == MQTT_UNSUBSCRIBE);
    RM_ASSERT(pkt->u.subscribe._raw != NULL); /* only decoded packets carry raw bytes */

    it->_p = pkt->u.subscribe._raw;
    it->_end = it->_p + pkt->u.subscribe._raw_bytes;
    it->_with_options = pkt->type == MQTT_SUBSCRIBE;
}

bool mqtt_sub_next(struct mqtt_sub_iter *it, struct mqtt_sub_entry *e)
{
    size_t need;
    uint32_t n;

    RM_ASSERT(it != NULL && e != NULL);
    RM_ASSERT(it->_p <= it->_end);

    if (it->_p == it->_end) {
        return false;
    }
    /* The decoder validated these bytes; running short is a caller bug. */
    RM_ASSERT(it->_end - it->_p >= 2);
    n = (uint32_t)it->_p[0] << 8 | it->_p[1];
    need = 2 + (size_t)n + (it->_with_options ? 1 : 0);
    RM_ASSERT((size_t)(it->_end - it->_p) >= need);
    e->filter.ptr = it->_p + 2;
    e->filter.len = n;
    e->options = it->_with_options ? it->_p[2 + n] : 0;
    it->_p += need;
    return true;
}
