/*
 * mqtt_codec.c - MQTT 3.1 / 3.1.1 framing, decoding and encoding.
 *
 * Owns nothing: every function reads its arguments and writes only the caller's
 * output structure or buffer. Decoded strings borrow the packet bytes. No
 * allocation, no syscalls, no mutable state; any thread may call it.
 *
 * Decoding validates everything the specification makes normative for one
 * packet on its own (see mqtt_codec.h); anything that needs session state
 * (client-id rules, packet-id reuse, topic filter syntax, limits other than the
 * packet size) is the caller's. Two deliberate choices:
 *  - MQTT 3.1 ("MQIsdp") defines DUP for the retries of PUBREL, SUBSCRIBE and
 *    UNSUBSCRIBE, so with version 3 those accept flags 0b1010 as well as
 *    0b0010. Every other nibble is checked exactly as in 3.1.1.
 *  - A will topic is a topic name, so it gets PUBLISH's topic checks (non-empty,
 *    no wildcards) [MQTT-3.1.3-10, 4.7.3-1, 3.3.2-2].
 * Encoding trusts its input (it was built by the broker) and asserts on it.
 */
#include "core/mqtt_codec.h"

#include <string.h>

#include "core/limits.h"
#include "core/rm_assert.h"

/* Fixed-header flag nibble for types whose nibble is fixed [MQTT-2.2.2-1]. */
#define FLAGS_QOS1 0x2u
#define FLAGS_DUP 0x8u

/* Largest remaining length per encoded byte count (section 2.2.3). */
#define RL_MAX_1 127u
#define RL_MAX_2 16383u
#define RL_MAX_3 2097151u
#define RL_BYTES_MAX 4u

/* CONNECT flag bits (section 3.1.2.3). */
#define CF_RESERVED 0x01u
#define CF_CLEAN 0x02u
#define CF_WILL 0x04u
#define CF_WILL_QOS_SHIFT 3
#define CF_WILL_QOS_MASK 0x18u
#define CF_WILL_RETAIN 0x20u
#define CF_PASSWORD 0x40u
#define CF_USERNAME 0x80u

/* A body size no packet can have: marks a field over its maximum. */
#define BODY_UNENCODABLE UINT64_MAX

/* Byte reader over a packet body; offsets avoid arithmetic on a NULL body. */
struct rd {
    const uint8_t *buf;
    uint32_t off;
    uint32_t len;
};

static uint32_t rd_left(const struct rd *r)
{
    return r->len - r->off;
}

static bool rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1) {
        return false;
    }
    *v = r->buf[r->off];
    r->off += 1;
    return true;
}

static bool rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2) {
        return false;
    }
    *v = (uint16_t)((uint16_t)r->buf[r->off] << 8 | r->buf[r->off + 1]);
    r->off += 2;
    return true;
}

/* A 2-byte length prefix and that many bytes, which must all be present. */
static bool rd_str(struct rd *r, struct mqtt_str *s)
{
    uint16_t n;

    if (!rd_u16(r, &n) || rd_left(r) < n) {
        return false;
    }
    s->ptr = r->buf + r->off;
    s->len = n;
    r->off += n;
    return true;
}

static bool rd_utf8(struct rd *r, struct mqtt_str *s)
{
    return rd_str(r, s) && mqtt_utf8_valid(s->ptr, s->len);
}

/* Word-at-a-time byte tests (8 bytes per step); memcpy keeps loads unaligned-safe. */
#define WORD_ONES 0x0101010101010101ull
#define WORD_HIGHS 0x8080808080808080ull

/* Nonzero if some byte of @w is zero (exact as a boolean). */
static uint64_t word_has_zero(uint64_t w)
{
    return (w - WORD_ONES) & ~w & WORD_HIGHS;
}

/* True if all 8 bytes of @w are ASCII other than NUL, '+' and '#'. */
static bool plain_word(uint64_t w)
{
    const uint64_t plus = WORD_ONES * '+';
    const uint64_t hash = WORD_ONES * '#';

    return ((w | word_has_zero(w) | word_has_zero(w ^ plus) | word_has_zero(w ^ hash)) &
            WORD_HIGHS) == 0;
}

/*
 * A topic name: at least one byte, no wildcards, UTF-8 [MQTT-4.7.3-1,
 * 3.3.2-2, 1.5.3-1]. Checked on every PUBLISH, so plain ASCII words are
 * skipped in one pass; from the first other word on it goes the slow way.
 */
static bool topic_name_ok(const struct mqtt_str *s)
{
    size_t i = 0;
    uint64_t w;

    if (s->len == 0) {
        return false;
    }
    while (s->len - i >= 8) {
        memcpy(&w, s->ptr + i, 8);
        if (!plain_word(w)) {
            break;
        }
        i += 8;
    }
    if (s->len - i < 8) {
        /* The tail, padded with a harmless byte, is one more word. */
        w = WORD_ONES * 'a';
        memcpy(&w, s->ptr + i, s->len - i);
        if (plain_word(w)) {
            return true;
        }
    }
    /* Everything before @i is ASCII, so a UTF-8 sequence cannot straddle it. */
    return memchr(s->ptr + i, '+', s->len - i) == NULL &&
           memchr(s->ptr + i, '#', s->len - i) == NULL && mqtt_utf8_valid(s->ptr + i, s->len - i);
}

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

static int decode_connect(struct rd *r, struct mqtt_connect *c)
{
    struct mqtt_str name;
    uint8_t level;
    uint8_t flags;
    int ret = -MQTT_RC_MALFORMED_PACKET;

    if (!rd_str(r, &name)) {
        goto out;
    }
    if (!str_is(&name, "MQTT", 4) && !str_is(&name, "MQIsdp", 6)) {
        ret = -MQTT_RC_PROTOCOL_ERROR; /* [MQTT-3.1.2-1] */
        goto out;
    }
    if (!rd_u8(r, &level)) {
        goto out;
    }
    c->version = level;
    if ((name.len == 4 && level != MQTT_V311) || (name.len == 6 && level != MQTT_V31)) {
        ret = -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION; /* [MQTT-3.1.2-2] */
        goto out;
    }
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
        goto out; /* [MQTT-3.1.2-14] */
    }
    if (c->has_password && !c->has_username) {
        goto out; /* [MQTT-3.1.2-22] */
    }
    /* Emptiness and length of the client id are the session's to judge. */
    if (!rd_utf8(r, &c->client_id)) {
        goto out; /* [MQTT-3.1.3-4] */
    }
    if (c->will) {
        if (!rd_str(r, &c->will_topic) || !topic_name_ok(&c->will_topic)) {
            goto out; /* [MQTT-3.1.3-10] */
        }
        if (!rd_str(r, &c->will_payload)) {
            goto out;
        }
    }
    if (c->has_username && !rd_utf8(r, &c->username)) {
        goto out; /* [MQTT-3.1.2-19], [MQTT-3.1.3-11] */
    }
    if (c->has_password && !rd_str(r, &c->password)) {
        goto out; /* [MQTT-3.1.2-21] */
    }
    if (rd_left(r) != 0) {
        goto out;
    }
    ret = 0;
out:
    return ret;
}

static int decode_connack(struct rd *r, uint8_t version, struct mqtt_connack *ca)
{
    uint8_t ack_flags;
    uint8_t rc;

    if (r->len != 2 || !rd_u8(r, &ack_flags) || !rd_u8(r, &rc)) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    /* 3.1 leaves the first byte unused; 3.1.1 reserves bits 7-1 [MQTT-3.2.2-1]. */
    if (version == MQTT_V31) {
        ack_flags = 0;
    }
    if ((ack_flags & 0xfe) != 0 || rc > MQTT_CONNACK_NOT_AUTHORIZED) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    if (ack_flags != 0 && rc != MQTT_CONNACK_ACCEPTED) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.2.2-4] */
    }
    ca->session_present = ack_flags != 0;
    ca->rc = rc;
    return 0;
}

static int decode_publish(struct rd *r, uint8_t flags, struct mqtt_publish *p)
{
    p->qos = (uint8_t)((flags >> 1) & 3);
    p->dup = (flags & FLAGS_DUP) != 0;
    p->retain = (flags & 1) != 0;
    if (p->qos == 3) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.1-4] */
    }
    if (p->dup && p->qos == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.1-2] */
    }
    if (!rd_str(r, &p->topic) || !topic_name_ok(&p->topic)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.2-1, -2], [MQTT-4.7.3-1] */
    }
    p->pkt_id = 0;
    if (p->qos > 0 && (!rd_u16(r, &p->pkt_id) || p->pkt_id == 0)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-2.3.1-1] */
    }
    p->payload.ptr = r->buf + r->off;
    p->payload.len = rd_left(r);
    return 0;
}

/* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK: exactly a non-zero packet id. */
static int decode_ack(struct rd *r, struct mqtt_ack *a)
{
    if (r->len != 2 || !rd_u16(r, &a->pkt_id) || a->pkt_id == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-2.3.1-1] */
    }
    return 0;
}

static int decode_subscribe(struct rd *r, bool with_options, struct mqtt_subscribe *s)
{
    /* Each entry takes at least 3 bytes, so the loop ends within body/3 rounds. */
    const uint32_t entries_max = r->len / 3;

    if (!rd_u16(r, &s->pkt_id) || s->pkt_id == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-2.3.1-1] */
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
            return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-1.5.3-1], [MQTT-4.7.3-1] */
        }
        if (with_options && (!rd_u8(r, &opt) || (opt & 0xfc) != 0 || (opt & 3) == 3)) {
            return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.8.3-4] */
        }
        s->count++;
    }
    if (rd_left(r) != 0 || s->count == 0) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
    }
    return 0;
}

static int decode_suback(struct rd *r, struct mqtt_suback *sa)
{
    uint32_t i;

    if (!rd_u16(r, &sa->pkt_id) || sa->pkt_id == 0 || rd_left(r) == 0) {
        return -MQTT_RC_MALFORMED_PACKET;
    }
    sa->count = rd_left(r);
    sa->rcs = r->buf + r->off;
    for (i = 0; i < sa->count; i++) {
        uint8_t rc = sa->rcs[i];

        if (rc > 2 && rc != MQTT_SUBACK_FAILURE) {
            return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.9.3-2] */
        }
    }
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
    RM_ASSERT(version == 0 || version == MQTT_V31 || version == MQTT_V311);

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
    if (fh->type == MQTT_AUTH || (!any && !client_to_server(fh->type))) {
        ret = -MQTT_RC_PROTOCOL_ERROR; /* AUTH is reserved before 5.0 */
        goto out;
    }
    if (fh->type != MQTT_PUBLISH && !flags_ok(fh->type, fh->flags, version)) {
        goto out; /* [MQTT-2.2.2-2] */
    }

    switch (fh->type) {
    case MQTT_CONNECT:
        ret = decode_connect(&r, &out->u.connect);
        break;
    case MQTT_CONNACK:
        ret = decode_connack(&r, version, &out->u.connack);
        break;
    case MQTT_PUBLISH:
        ret = decode_publish(&r, fh->flags, &out->u.publish);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        ret = decode_ack(&r, &out->u.ack);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        ret = decode_subscribe(&r, fh->type == MQTT_SUBSCRIBE, &out->u.subscribe);
        break;
    case MQTT_SUBACK:
        ret = decode_suback(&r, &out->u.suback);
        break;
    default: /* PINGREQ PINGRESP DISCONNECT */
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

/* Bytes of the remaining-length field for @rl (< 2^28). */
static uint32_t rl_bytes(uint32_t rl)
{
    if (rl <= RL_MAX_1) {
        return 1;
    }
    if (rl <= RL_MAX_2) {
        return 2;
    }
    return rl <= RL_MAX_3 ? 3 : 4;
}

static uint64_t str_bytes(const struct mqtt_str *s)
{
    RM_ASSERT(s->ptr != NULL || s->len == 0);
    return s->len > LIMITS_STRING_BYTES_MAX ? BODY_UNENCODABLE : 2 + (uint64_t)s->len;
}

/* Sum that saturates at BODY_UNENCODABLE so one bad field poisons the total. */
static uint64_t add_bytes(uint64_t a, uint64_t b)
{
    return (a == BODY_UNENCODABLE || b == BODY_UNENCODABLE) ? BODY_UNENCODABLE : a + b;
}

static uint64_t connect_body_bytes(const struct mqtt_connect *c, uint8_t version)
{
    uint64_t n = version == MQTT_V31 ? 2 + 6 : 2 + 4; /* protocol name */

    RM_ASSERT(c->version == version);
    RM_ASSERT(c->will_qos <= 2 && (c->will || (c->will_qos == 0 && !c->will_retain)));
    RM_ASSERT(!c->has_password || c->has_username);

    n += 1 + 1 + 2; /* level, flags, keep alive */
    n = add_bytes(n, str_bytes(&c->client_id));
    if (c->will) {
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

static uint64_t subscribe_body_bytes(const struct mqtt_subscribe *s, bool with_options)
{
    uint64_t n = 2;
    uint32_t i;

    RM_ASSERT(s->pkt_id != 0 && s->count > 0);
    RM_ASSERT(s->entries != NULL);

    for (i = 0; i < s->count; i++) {
        RM_ASSERT(!with_options || s->entries[i].options <= 2);
        n = add_bytes(n, str_bytes(&s->entries[i].filter));
        n = add_bytes(n, with_options ? 1 : 0);
    }
    return n;
}

static uint64_t publish_body_bytes(const struct mqtt_publish *p)
{
    RM_ASSERT(p->qos <= 2 && (p->qos > 0 || !p->dup)); /* [MQTT-3.3.1-2] */
    RM_ASSERT(p->qos == 0 || p->pkt_id != 0);
    RM_ASSERT(p->payload.ptr != NULL || p->payload.len == 0);

    return add_bytes(str_bytes(&p->topic), (p->qos > 0 ? 2 : 0) + (uint64_t)p->payload.len);
}

static uint64_t body_bytes(const struct mqtt_pkt *pkt, uint8_t version)
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        return connect_body_bytes(&pkt->u.connect, version);
    case MQTT_CONNACK:
        RM_ASSERT(pkt->u.connack.rc <= MQTT_CONNACK_NOT_AUTHORIZED);
        RM_ASSERT(!pkt->u.connack.session_present || pkt->u.connack.rc == 0);
        return 2;
    case MQTT_PUBLISH:
        return publish_body_bytes(&pkt->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        RM_ASSERT(pkt->u.ack.pkt_id != 0);
        return 2;
    case MQTT_SUBSCRIBE:
        return subscribe_body_bytes(&pkt->u.subscribe, true);
    case MQTT_UNSUBSCRIBE:
        return subscribe_body_bytes(&pkt->u.subscribe, false);
    case MQTT_SUBACK:
        RM_ASSERT(pkt->u.suback.pkt_id != 0 && pkt->u.suback.count > 0);
        RM_ASSERT(pkt->u.suback.rcs != NULL);
        return 2 + (uint64_t)pkt->u.suback.count;
    case MQTT_PINGREQ:
    case MQTT_PINGRESP:
    case MQTT_DISCONNECT:
        return 0;
    default:
        RM_ASSERT(!"packet type not encodable in MQTT 3.1/3.1.1");
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
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311);
    return packet_bytes(pkt, version, &body);
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put_bytes(uint8_t *p, const uint8_t *src, size_t n)
{
    if (n > 0) { /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(p, src, n);
    }
    return p + n;
}

static uint8_t *put_str(uint8_t *p, const struct mqtt_str *s)
{
    return put_bytes(put_u16(p, (uint16_t)s->len), s->ptr, s->len);
}

/* The fixed header: type and flags, then the remaining length (< 2^28). */
static uint8_t *put_fixed(uint8_t *p, uint8_t type, uint8_t flags, uint32_t rl)
{
    *p++ = (uint8_t)(type << 4 | flags);
    while (rl > RL_MAX_1) {
        *p++ = (uint8_t)(0x80 | (rl & 0x7f));
        rl >>= 7;
    }
    *p++ = (uint8_t)rl;
    return p;
}

/*
 * PUBLISH is encoded once per subscriber, so it skips the generic size pass:
 * one length computation, one header, two copies.
 */
static size_t encode_publish(const struct mqtt_publish *pub, uint8_t *buf, size_t cap)
{
    uint64_t body = publish_body_bytes(pub);
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
    p = put_str(p, &c->client_id);
    if (c->will) {
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

static uint8_t *put_subscribe(uint8_t *p, const struct mqtt_subscribe *s, bool with_options)
{
    uint32_t i;

    p = put_u16(p, s->pkt_id);
    for (i = 0; i < s->count; i++) {
        p = put_str(p, &s->entries[i].filter);
        if (with_options) {
            *p++ = s->entries[i].options;
        }
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
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311);

    if (pkt->type == MQTT_PUBLISH) {
        return encode_publish(&pkt->u.publish, buf, cap);
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
        *p++ = (version == MQTT_V311 && pkt->u.connack.session_present) ? 1 : 0;
        *p++ = pkt->u.connack.rc;
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        p = put_u16(p, pkt->u.ack.pkt_id);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        p = put_subscribe(p, &pkt->u.subscribe, pkt->type == MQTT_SUBSCRIBE);
        break;
    case MQTT_SUBACK:
        p = put_u16(p, pkt->u.suback.pkt_id);
        p = put_bytes(p, pkt->u.suback.rcs, pkt->u.suback.count);
        break;
    default: /* PINGREQ PINGRESP DISCONNECT: no body */
        break;
    }
    RM_ASSERT((size_t)(p - buf) == size);
    return size;
}

/*
 * Well-formed UTF-8 (RFC 3629): shortest form, no surrogates, at most
 * U+10FFFF; and no U+0000 [MQTT-1.5.3-1, -2]. ASCII runs, the common case for
 * topics and client ids, are skipped eight bytes at a time.
 */
bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    RM_ASSERT(s != NULL || len == 0);

    while (i < len) {
        uint8_t c;
        uint8_t lo = 0x80;
        uint8_t hi = 0xbf;
        size_t more;
        size_t k;

        /* Any byte with the high bit set, or zero, ends the fast run. */
        while (len - i >= 8) {
            uint64_t w;

            memcpy(&w, s + i, 8);
            if (((w | word_has_zero(w)) & WORD_HIGHS) != 0) {
                break;
            }
            i += 8;
        }
        if (i == len) {
            break;
        }
        c = s[i];
        if (c < 0x80) {
            if (c == 0) {
                return false;
            }
            i++;
            continue;
        }
        if (c < 0xc2 || c > 0xf4) {
            return false; /* continuation byte, overlong 2-byte lead, or past U+10FFFF */
        }
        if (c < 0xe0) {
            more = 1;
        } else if (c < 0xf0) {
            more = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
            hi = c == 0xed ? 0x9f : 0xbf; /* surrogates U+D800..U+DFFF */
        } else {
            more = 3;
            lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
            hi = c == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
        }
        if (len - i - 1 < more) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (k = 2; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += 1 + more;
    }
    RM_ASSERT(i == len);
    return true;
}

uint8_t mqtt_rc_to_connack_v3(int rc)
{
    /* Accept the code either negated (as returned) or plain. */
    unsigned int code = rc < 0 ? 0u - (unsigned int)rc : (unsigned int)rc;
    uint8_t ret;

    switch (code) {
    case MQTT_RC_SUCCESS:
        ret = MQTT_CONNACK_ACCEPTED;
        break;
    case MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION:
        ret = MQTT_CONNACK_BAD_PROTOCOL_VERSION;
        break;
    case MQTT_RC_CLIENT_ID_NOT_VALID:
        ret = MQTT_CONNACK_IDENTIFIER_REJECTED;
        break;
    case MQTT_RC_BAD_USERNAME_OR_PASSWORD:
    case MQTT_RC_BAD_AUTH_METHOD:
        ret = MQTT_CONNACK_BAD_USERNAME_OR_PASSWORD;
        break;
    case MQTT_RC_NOT_AUTHORIZED:
    case MQTT_RC_BANNED:
        ret = MQTT_CONNACK_NOT_AUTHORIZED;
        break;
    default: /* SERVER_UNAVAILABLE, SERVER_BUSY and everything else */
        ret = MQTT_CONNACK_SERVER_UNAVAILABLE;
        break;
    }
    RM_ASSERT(ret <= MQTT_CONNACK_NOT_AUTHORIZED);
    return ret;
}

const char *mqtt_type_name(uint8_t type)
{
    static const char *const names[] = {
        "?",       "CONNECT",  "CONNACK",    "PUBLISH", "PUBACK",      "PUBREC",
        "PUBREL",  "PUBCOMP",  "SUBSCRIBE",  "SUBACK",  "UNSUBSCRIBE", "UNSUBACK",
        "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
    };
    const char *name = type < RM_ARRAY_LEN(names) ? names[type] : "?";

    _Static_assert(RM_ARRAY_LEN(names) == MQTT_AUTH + 1, "one name per packet type");
    RM_ASSERT(name != NULL);
    return name;
}
