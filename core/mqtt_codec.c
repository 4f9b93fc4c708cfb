/*
 * mqtt_codec.c - MQTT 3.1 / 3.1.1 / 5.0 framing, decoding and encoding.
 *
 * Owns nothing: every function reads its arguments and writes only the caller's
 * output structure or buffer. Decoded strings borrow the packet bytes. No
 * allocation, no syscalls, no mutable state; any thread may call it.
 *
 * Decoding validates everything the specification makes normative for one
 * packet on its own (see mqtt_codec.h); anything that needs session state
 * (client-id rules, packet-id reuse, topic filter syntax, topic alias maps,
 * limits other than the packet size) is the caller's. Deliberate choices:
 *  - MQTT 3.1 ("MQIsdp") defines DUP for the retries of PUBREL, SUBSCRIBE and
 *    UNSUBSCRIBE, so with version 3 those accept flags 0b1010 as well as
 *    0b0010. Every other nibble is checked exactly as in 3.1.1.
 *  - A will topic is a topic name, so it gets PUBLISH's topic checks (non-empty,
 *    no wildcards) [MQTT-3.1.3-10, 4.7.3-1, 3.3.2-2]; so does the Response
 *    Topic property [MQTT-3.3.2-13, -14].
 *  - MQTT 5.0 property blocks: an identifier unknown or not valid for its
 *    packet, a value cut short, or a block that overruns the packet is
 *    malformed (section 2.2.2.2); a repeated property or a value the spec
 *    forbids (0 where it must not be, a 0/1 byte with another value) is a
 *    protocol error. Malformed wins when one block has both. Variable byte
 *    integers inside the body must be minimal [MQTT-1.5.5-1].
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

/* ---- MQTT 5.0 properties ------------------------------------------------ */

/* Data types of properties (section 2.2.2.2). */
enum prop_type {
    PT_NONE = 0, /* no such property */
    PT_BYTE,
    PT_U16,
    PT_U32,
    PT_VARINT,
    PT_UTF8,
    PT_BIN,
    PT_PAIR,
};

/* Where a property may appear: one bit per packet type; bit 0 is the will. */
#define IN(type) (1u << (type))
#define IN_WILL 1u
#define IN_ACKS (IN(MQTT_PUBACK) | IN(MQTT_PUBREC) | IN(MQTT_PUBREL) | IN(MQTT_PUBCOMP))
#define IN_ALL                                                                                     \
    (IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_PUBLISH) | IN_ACKS | IN(MQTT_SUBSCRIBE) |       \
     IN(MQTT_SUBACK) | IN(MQTT_UNSUBSCRIBE) | IN(MQTT_UNSUBACK) | IN(MQTT_DISCONNECT) |            \
     IN(MQTT_AUTH) | IN_WILL)
#define IN_MESSAGE (IN(MQTT_PUBLISH) | IN_WILL)

#define PROP_ID_MAX MQTT_PROP_SHARED_SUB_AVAILABLE

struct prop_info {
    uint8_t type;   /* enum prop_type */
    uint16_t where; /* IN() bits */
};

/* Table 2-4 of section 2.2.2.2, and each packet's property list in chapter 3. */
static const struct prop_info prop_table[PROP_ID_MAX + 1] = {
    [MQTT_PROP_PAYLOAD_FORMAT] = {PT_BYTE, IN_MESSAGE},
    [MQTT_PROP_MESSAGE_EXPIRY] = {PT_U32, IN_MESSAGE},
    [MQTT_PROP_CONTENT_TYPE] = {PT_UTF8, IN_MESSAGE},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_UTF8, IN_MESSAGE},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, IN_MESSAGE},
    [MQTT_PROP_SUBSCRIPTION_ID] = {PT_VARINT, IN(MQTT_PUBLISH) | IN(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY] = {PT_U32,
                                  IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_ID] = {PT_UTF8, IN(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEPALIVE] = {PT_U16, IN(MQTT_CONNACK)},
    [MQTT_PROP_AUTH_METHOD] = {PT_UTF8, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH)},
    [MQTT_PROP_AUTH_DATA] = {PT_BIN, IN(MQTT_CONNECT) | IN(MQTT_CONNACK) | IN(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFO] = {PT_BYTE, IN(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY] = {PT_U32, IN_WILL},
    [MQTT_PROP_REQUEST_RESPONSE_INFO] = {PT_BYTE, IN(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFO] = {PT_UTF8, IN(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_UTF8, IN(MQTT_CONNACK) | IN(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {PT_UTF8, IN(MQTT_CONNACK) | IN_ACKS | IN(MQTT_SUBACK) |
                                              IN(MQTT_UNSUBACK) | IN(MQTT_DISCONNECT) |
                                              IN(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAX] = {PT_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAX] = {PT_U16, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, IN(MQTT_PUBLISH)},
    [MQTT_PROP_MAX_QOS] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_USER] = {PT_PAIR, IN_ALL},
    [MQTT_PROP_MAX_PACKET_SIZE] = {PT_U32, IN(MQTT_CONNECT) | IN(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUB_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_SUB_ID_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUB_AVAILABLE] = {PT_BYTE, IN(MQTT_CONNACK)},
};

/* The ids that carry a 0/1 byte whose other values are a protocol error. */
#define PROPS_BOOL                                                                                 \
    (MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT) | MQTT_PROP_BIT(MQTT_PROP_REQUEST_PROBLEM_INFO) |     \
     MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFO) | MQTT_PROP_BIT(MQTT_PROP_MAX_QOS) |           \
     MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) | \
     MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE) | MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE))
/* The ids whose value 0 is a protocol error. */
#define PROPS_NONZERO                                                                              \
    (MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID) | MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX) |             \
     MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE))
/* Properties the encoder writes from their field (the others come from raw/sub_ids). */
#define PROPS_FIELDS (~(MQTT_PROP_BIT(MQTT_PROP_USER) | MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)))

static uint8_t prop_type(uint32_t id)
{
    return id <= PROP_ID_MAX ? prop_table[id].type : PT_NONE;
}

static bool prop_allowed(uint32_t id, uint16_t where)
{
    return prop_type(id) != PT_NONE && (prop_table[id].where & where) != 0;
}

/*
 * A variable byte integer (section 1.5.5): at most 4 bytes, and in the fewest
 * bytes that hold it [MQTT-1.5.5-1]. False if short, too long or not minimal.
 */
static bool rd_varint(struct rd *r, uint32_t *v)
{
    uint32_t n = 0;
    uint32_t i;

    for (i = 0; i < RL_BYTES_MAX; i++) {
        uint8_t b;

        if (!rd_u8(r, &b)) {
            return false;
        }
        n |= (uint32_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = n;
            /* A last byte of 0 after the first adds nothing: not minimal. */
            return i == 0 || b != 0;
        }
    }
    return false;
}

static bool rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4) {
        return false;
    }
    *v = (uint32_t)r->buf[r->off] << 24 | (uint32_t)r->buf[r->off + 1] << 16 |
         (uint32_t)r->buf[r->off + 2] << 8 | r->buf[r->off + 3];
    r->off += 4;
    return true;
}

/* Read one property value of @type into @p (ints in num, strings in str/val). */
static bool rd_prop_value(struct rd *r, uint8_t type, struct mqtt_prop *p)
{
    uint8_t b;
    uint16_t w;

    switch (type) {
    case PT_BYTE:
        if (!rd_u8(r, &b)) {
            return false;
        }
        p->num = b;
        return true;
    case PT_U16:
        if (!rd_u16(r, &w)) {
            return false;
        }
        p->num = w;
        return true;
    case PT_U32:
        return rd_u32(r, &p->num);
    case PT_VARINT:
        return rd_varint(r, &p->num);
    case PT_UTF8:
        return rd_utf8(r, &p->str); /* [MQTT-1.5.4-1, -2] */
    case PT_BIN:
        return rd_str(r, &p->str);
    case PT_PAIR:
        return rd_utf8(r, &p->str) && rd_utf8(r, &p->val); /* [MQTT-1.5.7-1] */
    default:
        return false;
    }
}

/* Store a decoded property's value in its field of @pr. */
static void props_set(struct mqtt_props *pr, const struct mqtt_prop *p)
{
    switch (p->id) {
    case MQTT_PROP_PAYLOAD_FORMAT:
        pr->payload_format = (uint8_t)p->num;
        break;
    case MQTT_PROP_MESSAGE_EXPIRY:
        pr->message_expiry = p->num;
        break;
    case MQTT_PROP_CONTENT_TYPE:
        pr->content_type = p->str;
        break;
    case MQTT_PROP_RESPONSE_TOPIC:
        pr->response_topic = p->str;
        break;
    case MQTT_PROP_CORRELATION_DATA:
        pr->correlation_data = p->str;
        break;
    case MQTT_PROP_SUBSCRIPTION_ID:
        pr->sub_id = p->num;
        break;
    case MQTT_PROP_SESSION_EXPIRY:
        pr->session_expiry = p->num;
        break;
    case MQTT_PROP_ASSIGNED_CLIENT_ID:
        pr->assigned_client_id = p->str;
        break;
    case MQTT_PROP_SERVER_KEEPALIVE:
        pr->server_keepalive = (uint16_t)p->num;
        break;
    case MQTT_PROP_AUTH_METHOD:
        pr->auth_method = p->str;
        break;
    case MQTT_PROP_AUTH_DATA:
        pr->auth_data = p->str;
        break;
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
        pr->request_problem_info = (uint8_t)p->num;
        break;
    case MQTT_PROP_WILL_DELAY:
        pr->will_delay = p->num;
        break;
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
        pr->request_response_info = (uint8_t)p->num;
        break;
    case MQTT_PROP_RESPONSE_INFO:
        pr->response_info = p->str;
        break;
    case MQTT_PROP_SERVER_REFERENCE:
        pr->server_reference = p->str;
        break;
    case MQTT_PROP_REASON_STRING:
        pr->reason_string = p->str;
        break;
    case MQTT_PROP_RECEIVE_MAX:
        pr->receive_max = (uint16_t)p->num;
        break;
    case MQTT_PROP_TOPIC_ALIAS_MAX:
        pr->topic_alias_max = (uint16_t)p->num;
        break;
    case MQTT_PROP_TOPIC_ALIAS:
        pr->topic_alias = (uint16_t)p->num;
        break;
    case MQTT_PROP_MAX_QOS:
        pr->max_qos = (uint8_t)p->num;
        break;
    case MQTT_PROP_RETAIN_AVAILABLE:
        pr->retain_available = (uint8_t)p->num;
        break;
    case MQTT_PROP_USER:
        pr->user_count++;
        break;
    case MQTT_PROP_MAX_PACKET_SIZE:
        pr->max_packet_size = p->num;
        break;
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        pr->wildcard_sub_available = (uint8_t)p->num;
        break;
    case MQTT_PROP_SUB_ID_AVAILABLE:
        pr->sub_id_available = (uint8_t)p->num;
        break;
    case MQTT_PROP_SHARED_SUB_AVAILABLE:
        pr->shared_sub_available = (uint8_t)p->num;
        break;
    default:
        RM_ASSERT(!"property id not in the table");
        break;
    }
}

static bool topic_name_ok(const struct mqtt_str *s);

/*
 * The value rules the spec states per property: 0 if @p keeps them, else
 * -MQTT_RC_PROTOCOL_ERROR, or -MQTT_RC_TOPIC_ALIAS_INVALID for a topic alias
 * of 0 [MQTT-3.3.2-8] (DISCONNECT 0x94, as mosquitto answers it).
 */
static int prop_value_check(const struct mqtt_prop *p)
{
    uint64_t bit = MQTT_PROP_BIT(p->id);

    RM_ASSERT(prop_type(p->id) != PT_NONE);
    RM_ASSERT(p->str.ptr != NULL || p->str.len == 0);

    if ((bit & PROPS_BOOL) != 0 && p->num > 1) {
        return -MQTT_RC_PROTOCOL_ERROR;
    }
    if ((bit & PROPS_NONZERO) != 0 && p->num == 0) {
        /* Sections 3.1.2.11.3, 3.1.2.11.4, 3.8.2.1.2; [MQTT-3.3.2-8]. */
        return p->id == MQTT_PROP_TOPIC_ALIAS ? -MQTT_RC_TOPIC_ALIAS_INVALID
                                              : -MQTT_RC_PROTOCOL_ERROR;
    }
    /* A Response Topic is a topic name: not empty, no wildcards [MQTT-3.3.2-14]. */
    if (p->id == MQTT_PROP_RESPONSE_TOPIC && !topic_name_ok(&p->str)) {
        return -MQTT_RC_PROTOCOL_ERROR;
    }
    return 0;
}

/*
 * The property block at @r: its length, then properties valid in @where.
 * @sub_ids_repeat lets the subscription identifier repeat (a PUBLISH a server
 * sends). Fills @pr (zeroed by the caller) and leaves @r after the block.
 * Returns 0, -MQTT_RC_MALFORMED_PACKET, -MQTT_RC_PROTOCOL_ERROR or
 * -MQTT_RC_TOPIC_ALIAS_INVALID.
 */
static int decode_props(struct rd *r, uint16_t where, bool sub_ids_repeat, struct mqtt_props *pr)
{
    uint32_t len;
    struct rd blk;
    int perr = 0;
    int ret = -MQTT_RC_MALFORMED_PACKET;

    RM_ASSERT(where != 0 && pr->has == 0);
    RM_ASSERT(r->off <= r->len);

    if (!rd_varint(r, &len) || len > rd_left(r)) {
        goto out; /* the block overruns the packet */
    }
    blk = (struct rd){.buf = r->buf + r->off, .off = 0, .len = len};
    pr->raw.ptr = blk.buf;
    pr->raw.len = len;
    r->off += len;
    /* Each property takes at least 2 bytes, so the loop ends within len/2 rounds. */
    while (rd_left(&blk) > 0) {
        struct mqtt_prop p = {0};
        uint32_t id;
        uint64_t bit;
        int rc;

        if (!rd_varint(&blk, &id) || !prop_allowed(id, where)) {
            goto out; /* unknown, or not valid for this packet (section 2.2.2.2) */
        }
        p.id = (uint8_t)id;
        if (!rd_prop_value(&blk, prop_table[id].type, &p)) {
            goto out; /* cut short, or a string that is not UTF-8 */
        }
        bit = MQTT_PROP_BIT(id);
        if ((pr->has & bit) != 0 && id != MQTT_PROP_USER &&
            !(id == MQTT_PROP_SUBSCRIPTION_ID && sub_ids_repeat)) {
            perr = perr != 0 ? perr : -MQTT_RC_PROTOCOL_ERROR; /* repeated */
            continue;
        }
        rc = prop_value_check(&p);
        if (rc != 0) {
            perr = perr != 0 ? perr : rc;
            continue;
        }
        if ((pr->has & bit) == 0 || id == MQTT_PROP_USER) {
            props_set(pr, &p); /* a repeated subscription id keeps the first */
        }
        pr->has |= bit;
    }
    ret = perr;
out:
    RM_ASSERT(ret <= 0);
    return ret;
}

void mqtt_prop_iter_init(struct mqtt_prop_iter *it, const struct mqtt_props *pr)
{
    RM_ASSERT(it != NULL && pr != NULL);
    RM_ASSERT(pr->raw.ptr != NULL || pr->raw.len == 0);

    it->_p = pr->raw.ptr;
    it->_end = pr->raw.ptr == NULL ? NULL : pr->raw.ptr + pr->raw.len;
}

bool mqtt_prop_next(struct mqtt_prop_iter *it, struct mqtt_prop *p)
{
    struct rd r;
    uint32_t id;
    bool ok;

    RM_ASSERT(it != NULL && p != NULL);
    RM_ASSERT(it->_p <= it->_end);

    if (it->_p == it->_end) {
        return false;
    }
    memset(p, 0, sizeof(*p));
    r = (struct rd){.buf = it->_p, .off = 0, .len = (uint32_t)(it->_end - it->_p)};
    /* The decoder validated these bytes; anything else is a caller bug. */
    ok = rd_varint(&r, &id) && prop_type(id) != PT_NONE;
    RM_ASSERT(ok);
    p->id = (uint8_t)id;
    ok = rd_prop_value(&r, prop_table[id].type, p);
    RM_ASSERT(ok);
    p->bytes.ptr = it->_p;
    p->bytes.len = r.off;
    it->_p += r.off;
    return true;
}

size_t mqtt_props_copy(const struct mqtt_props *pr, uint64_t keep, uint8_t *out)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop p;
    size_t n = 0;

    RM_ASSERT(pr != NULL);
    RM_ASSERT(pr->raw.len <= MQTT_VARINT_MAX);

    mqtt_prop_iter_init(&it, pr);
    while (mqtt_prop_next(&it, &p)) {
        if ((keep & MQTT_PROP_BIT(p.id)) == 0) {
            continue;
        }
        if (out != NULL) {
            memcpy(out + n, p.bytes.ptr, p.bytes.len);
        }
        n += p.bytes.len;
    }
    RM_ASSERT(n <= pr->raw.len);
    return n;
}

/* Bytes of a variable byte integer holding @v (<= MQTT_VARINT_MAX). */
static uint32_t varint_bytes(uint32_t v)
{
    if (v <= RL_MAX_1) {
        return 1;
    }
    if (v <= RL_MAX_2) {
        return 2;
    }
    return v <= RL_MAX_3 ? 3 : 4;
}

static uint32_t prop_num(const struct mqtt_props *pr, uint32_t id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT:
        return pr->payload_format;
    case MQTT_PROP_MESSAGE_EXPIRY:
        return pr->message_expiry;
    case MQTT_PROP_SESSION_EXPIRY:
        return pr->session_expiry;
    case MQTT_PROP_SERVER_KEEPALIVE:
        return pr->server_keepalive;
    case MQTT_PROP_REQUEST_PROBLEM_INFO:
        return pr->request_problem_info;
    case MQTT_PROP_WILL_DELAY:
        return pr->will_delay;
    case MQTT_PROP_REQUEST_RESPONSE_INFO:
        return pr->request_response_info;
    case MQTT_PROP_RECEIVE_MAX:
        return pr->receive_max;
    case MQTT_PROP_TOPIC_ALIAS_MAX:
        return pr->topic_alias_max;
    case MQTT_PROP_TOPIC_ALIAS:
        return pr->topic_alias;
    case MQTT_PROP_MAX_QOS:
        return pr->max_qos;
    case MQTT_PROP_RETAIN_AVAILABLE:
        return pr->retain_available;
    case MQTT_PROP_MAX_PACKET_SIZE:
        return pr->max_packet_size;
    case MQTT_PROP_WILDCARD_SUB_AVAILABLE:
        return pr->wildcard_sub_available;
    case MQTT_PROP_SUB_ID_AVAILABLE:
        return pr->sub_id_available;
    case MQTT_PROP_SHARED_SUB_AVAILABLE:
        return pr->shared_sub_available;
    default:
        RM_ASSERT(!"not a numeric property");
        return 0;
    }
}

static const struct mqtt_str *prop_str(const struct mqtt_props *pr, uint32_t id)
{
    switch (id) {
    case MQTT_PROP_CONTENT_TYPE:
        return &pr->content_type;
    case MQTT_PROP_RESPONSE_TOPIC:
        return &pr->response_topic;
    case MQTT_PROP_CORRELATION_DATA:
        return &pr->correlation_data;
    case MQTT_PROP_ASSIGNED_CLIENT_ID:
        return &pr->assigned_client_id;
    case MQTT_PROP_AUTH_METHOD:
        return &pr->auth_method;
    case MQTT_PROP_AUTH_DATA:
        return &pr->auth_data;
    case MQTT_PROP_RESPONSE_INFO:
        return &pr->response_info;
    case MQTT_PROP_SERVER_REFERENCE:
        return &pr->server_reference;
    case MQTT_PROP_REASON_STRING:
        return &pr->reason_string;
    default:
        RM_ASSERT(!"not a string property");
        return NULL;
    }
}

/* Bytes of the fixed-size value of a numeric @type. */
static uint32_t num_bytes(uint8_t type)
{
    return type == PT_BYTE ? 1 : type == PT_U16 ? 2 : 4;
}

static uint64_t str_bytes(const struct mqtt_str *s);
static uint64_t add_bytes(uint64_t a, uint64_t b);

/* True if encoding @pr writes no property at all. */
static bool props_empty(const struct mqtt_props *pr)
{
    return (pr->has & PROPS_FIELDS) == 0 && pr->raw.len == 0 && pr->sub_id_count == 0;
}

/* Bytes of @pr's property block without its length; BODY_UNENCODABLE if too big. */
static uint64_t props_block_bytes(const struct mqtt_props *pr, uint16_t where)
{
    uint64_t fields = pr->has & PROPS_FIELDS;
    uint64_t n = pr->raw.len;
    uint32_t i;

    RM_ASSERT(pr->raw.ptr != NULL || pr->raw.len == 0);
    RM_ASSERT(pr->sub_ids != NULL || pr->sub_id_count == 0);

    while (fields != 0) {
        uint32_t id = (uint32_t)__builtin_ctzll(fields);
        uint8_t type = prop_type(id);

        fields &= fields - 1;
        RM_ASSERT(prop_allowed(id, where)); /* a property this packet cannot carry */
        if (type == PT_UTF8 || type == PT_BIN) {
            n = add_bytes(n, add_bytes(1, str_bytes(prop_str(pr, id))));
        } else {
            n = add_bytes(n, 1 + (uint64_t)num_bytes(type));
        }
    }
    RM_ASSERT(pr->sub_id_count == 0 || prop_allowed(MQTT_PROP_SUBSCRIPTION_ID, where));
    for (i = 0; i < pr->sub_id_count; i++) {
        RM_ASSERT(pr->sub_ids[i] != 0 && pr->sub_ids[i] <= MQTT_VARINT_MAX);
        n = add_bytes(n, 1 + (uint64_t)varint_bytes(pr->sub_ids[i]));
    }
    return n > MQTT_VARINT_MAX ? BODY_UNENCODABLE : n;
}

/* Bytes of @pr's property block with its length (v5); 0 before v5. */
static uint64_t props_bytes(const struct mqtt_props *pr, uint16_t where, uint8_t version)
{
    uint64_t n;
    RM_ASSERT(pr != NULL && where != 0);
    RM_ASSERT(version == MQTT_V31 || version == MQTT_V311 || version == MQTT_V5);

    if (version != MQTT_V5) {
        return 0;
    }
    n = props_block_bytes(pr, where);
    return n == BODY_UNENCODABLE ? n : varint_bytes((uint32_t)n) + n;
}

static uint8_t *put_varint(uint8_t *p, uint32_t v)
{
    while (v > RL_MAX_1) {
        *p++ = (uint8_t)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v);
static uint8_t *put_bytes(uint8_t *p, const uint8_t *src, size_t n);
static uint8_t *put_str(uint8_t *p, const struct mqtt_str *s);

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* The property block of @pr (v5 only): length, fields in id order, raw, sub_ids. */
static uint8_t *put_props(uint8_t *p, const struct mqtt_props *pr, uint16_t where)
{
    uint64_t fields = pr->has & PROPS_FIELDS;
    uint64_t n = props_block_bytes(pr, where);
    const uint8_t *start;
    uint32_t i;
    RM_ASSERT(p != NULL && where != 0);
    RM_ASSERT(n <= MQTT_VARINT_MAX);
    p = put_varint(p, (uint32_t)n);
    start = p;
    while (fields != 0) {
        uint32_t id = (uint32_t)__builtin_ctzll(fields);
        uint8_t type = prop_type(id);

        fields &= fields - 1;
        *p++ = (uint8_t)id;
        if (type == PT_UTF8 || type == PT_BIN) {
            p = put_str(p, prop_str(pr, id));
        } else if (type == PT_BYTE) {
            *p++ = (uint8_t)prop_num(pr, id);
        } else if (type == PT_U16) {
            p = put_u16(p, (uint16_t)prop_num(pr, id));
        } else {
            p = put_u32(p, prop_num(pr, id));
        }
    }
    p = put_bytes(p, pr->raw.ptr, pr->raw.len);
    for (i = 0; i < pr->sub_id_count; i++) {
        *p++ = MQTT_PROP_SUBSCRIPTION_ID;
        p = put_varint(p, pr->sub_ids[i]);
    }
    RM_ASSERT((uint64_t)(p - start) == n);
    return p;
}

/* ---- reason codes ------------------------------------------------------- */

/* Reason codes each packet may carry (chapter 3, one table per packet). */
static const uint8_t rcs_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                      0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                      0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t rcs_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t rcs_pubrel[] = {0x00, 0x92};
static const uint8_t rcs_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                     0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t rcs_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t rcs_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                         0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                         0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t rcs_auth[] = {0x00, 0x18, 0x19};

bool mqtt_rc_allowed(uint8_t type, uint8_t rc)
{
    const uint8_t *set;
    size_t n;
    RM_ASSERT(type <= MQTT_AUTH);
    _Static_assert(sizeof(rcs_disconnect) == 29 && sizeof(rcs_connack) == 22, "rc tables");

    switch (type) {
    case MQTT_CONNACK:
        set = rcs_connack;
        n = sizeof(rcs_connack);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
        set = rcs_puback;
        n = sizeof(rcs_puback);
        break;
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        set = rcs_pubrel;
        n = sizeof(rcs_pubrel);
        break;
    case MQTT_SUBACK:
        set = rcs_suback;
        n = sizeof(rcs_suback);
        break;
    case MQTT_UNSUBACK:
        set = rcs_unsuback;
        n = sizeof(rcs_unsuback);
        break;
    case MQTT_DISCONNECT:
        set = rcs_disconnect;
        n = sizeof(rcs_disconnect);
        break;
    case MQTT_AUTH:
        set = rcs_auth;
        n = sizeof(rcs_auth);
        break;
    default:
        return false;
    }
    return memchr(set, rc, n) != NULL;
}
/* ---- decoding ----------------------------------------------------------- */

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
        ret = decode_props(r, IN(MQTT_CONNECT), false, &c->props);
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
            ret = decode_props(r, IN_WILL, false, &c->will_props);
            if (ret != 0) {
                goto out;
            }
            ret = -MQTT_RC_MALFORMED_PACKET;
        }
        if (!rd_str(r, &c->will_topic) || !topic_name_ok(&c->will_topic)) {
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
        int ret = decode_props(r, IN(MQTT_CONNACK), false, &ca->props);

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
    if ((version != MQTT_V5 || p->topic.len != 0) && !topic_name_ok(&p->topic)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-3.3.2-1, -2], [MQTT-4.7.3-1] */
    }
    p->pkt_id = 0;
    if (p->qos > 0 && (!rd_u16(r, &p->pkt_id) || p->pkt_id == 0)) {
        return -MQTT_RC_MALFORMED_PACKET; /* [MQTT-2.3.1-1] */
    }
    if (version == MQTT_V5) {
        ret = decode_props(r, IN(MQTT_PUBLISH), !to_server, &p->props);
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
        ret = decode_props(r, IN(type), false, &a->props);
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
    ret = decode_props(r, IN(type), false, &a->props);
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
        ret = decode_props(r, IN(type), false, &s->props);
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
        ret = decode_props(r, IN(type), false, &sa->props);
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

/* ---- encoding ----------------------------------------------------------- */

/* Bytes of the remaining-length field for @rl (< 2^28). */
static uint32_t rl_bytes(uint32_t rl)
{
    return varint_bytes(rl);
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
    RM_ASSERT(!c->has_password || c->has_username || version == MQTT_V5);

    n += 1 + 1 + 2; /* level, flags, keep alive */
    n = add_bytes(n, props_bytes(&c->props, IN(MQTT_CONNECT), version));
    n = add_bytes(n, str_bytes(&c->client_id));
    if (c->will) {
        n = add_bytes(n, props_bytes(&c->will_props, IN_WILL, version));
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

    n = add_bytes(n, props_bytes(&s->props, IN(type), version));
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
        n = add_bytes(n, props_bytes(&p->props, IN(MQTT_PUBLISH), version));
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
    if (props_empty(&a->props)) {
        return a->rc == 0 ? 2 : 3;
    }
    return add_bytes(3, props_bytes(&a->props, IN(type), version));
}

/* 5.0 DISCONNECT and AUTH, shortest form (sections 3.14.2.1, 3.15.2.1). */
static uint64_t reason_body_bytes(const struct mqtt_ack *a, uint8_t type, uint8_t version)
{
    RM_ASSERT(mqtt_rc_allowed(type, a->rc));
    RM_ASSERT(version == MQTT_V5);

    if (props_empty(&a->props)) {
        if (a->rc == 0) {
            return 0;
        }
        if (type == MQTT_DISCONNECT) {
            return 1;
        }
    }
    return add_bytes(1, props_bytes(&a->props, IN(type), version));
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
    return add_bytes(2 + (uint64_t)sa->count, props_bytes(&sa->props, IN(type), version));
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
        return add_bytes(2, props_bytes(&pkt->u.connack.props, IN(MQTT_CONNACK), version));
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
        p = put_props(p, &pub->props, IN(MQTT_PUBLISH));
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
        p = put_props(p, &c->props, IN(MQTT_CONNECT));
    }
    p = put_str(p, &c->client_id);
    if (c->will) {
        if (version == MQTT_V5) {
            p = put_props(p, &c->will_props, IN_WILL);
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
        p = put_props(p, &s->props, IN(type));
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
        p = put_props(p, &a->props, IN(type));
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
            p = put_props(p, &pkt->u.connack.props, IN(MQTT_CONNACK));
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
            p = put_props(p, &pkt->u.suback.props, IN(pkt->type));
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

const char *mqtt_rc_name(uint8_t rc)
{
    /* The names of MQTT 5.0 section 2.4, in lower case for sentences and logs. */
    static const struct {
        uint8_t rc;
        const char *name;
    } names[] = {
        {MQTT_RC_SUCCESS, "success"},
        {MQTT_RC_GRANTED_QOS_1, "granted QoS 1"},
        {MQTT_RC_GRANTED_QOS_2, "granted QoS 2"},
        {MQTT_RC_DISCONNECT_WITH_WILL, "disconnect with will message"},
        {MQTT_RC_NO_MATCHING_SUBSCRIBERS, "no matching subscribers"},
        {MQTT_RC_NO_SUBSCRIPTION_EXISTED, "no subscription existed"},
        {MQTT_RC_CONTINUE_AUTH, "continue authentication"},
        {MQTT_RC_REAUTHENTICATE, "re-authenticate"},
        {MQTT_RC_UNSPECIFIED, "unspecified error"},
        {MQTT_RC_MALFORMED_PACKET, "malformed packet"},
        {MQTT_RC_PROTOCOL_ERROR, "protocol error"},
        {MQTT_RC_IMPL_SPECIFIC, "implementation specific error"},
        {MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION, "unsupported protocol version"},
        {MQTT_RC_CLIENT_ID_NOT_VALID, "client identifier not valid"},
        {MQTT_RC_BAD_USERNAME_OR_PASSWORD, "bad user name or password"},
        {MQTT_RC_NOT_AUTHORIZED, "not authorized"},
        {MQTT_RC_SERVER_UNAVAILABLE, "server unavailable"},
        {MQTT_RC_SERVER_BUSY, "server busy"},
        {MQTT_RC_BANNED, "banned"},
        {MQTT_RC_SERVER_SHUTTING_DOWN, "server shutting down"},
        {MQTT_RC_BAD_AUTH_METHOD, "bad authentication method"},
        {MQTT_RC_KEEPALIVE_TIMEOUT, "keep alive timeout"},
        {MQTT_RC_SESSION_TAKEN_OVER, "session taken over"},
        {MQTT_RC_TOPIC_FILTER_INVALID, "topic filter invalid"},
        {MQTT_RC_TOPIC_NAME_INVALID, "topic name invalid"},
        {MQTT_RC_PACKET_ID_IN_USE, "packet identifier in use"},
        {MQTT_RC_PACKET_ID_NOT_FOUND, "packet identifier not found"},
        {MQTT_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded"},
        {MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias invalid"},
        {MQTT_RC_PACKET_TOO_LARGE, "packet too large"},
        {MQTT_RC_MESSAGE_RATE_TOO_HIGH, "message rate too high"},
        {MQTT_RC_QUOTA_EXCEEDED, "quota exceeded"},
        {MQTT_RC_ADMIN_ACTION, "administrative action"},
        {MQTT_RC_PAYLOAD_FORMAT_INVALID, "payload format invalid"},
        {MQTT_RC_RETAIN_NOT_SUPPORTED, "retain not supported"},
        {MQTT_RC_QOS_NOT_SUPPORTED, "QoS not supported"},
        {MQTT_RC_USE_ANOTHER_SERVER, "use another server"},
        {MQTT_RC_SERVER_MOVED, "server moved"},
        {MQTT_RC_SHARED_SUBS_NOT_SUPPORTED, "shared subscriptions not supported"},
        {MQTT_RC_CONNECTION_RATE_EXCEEDED, "connection rate exceeded"},
        {MQTT_RC_MAX_CONNECT_TIME, "maximum connect time"},
        {MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED, "subscription identifiers not supported"},
        {MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED, "wildcard subscriptions not supported"},
    };
    const char *name = "unknown reason code";

    for (size_t i = 0; i < RM_ARRAY_LEN(names); i++) {
        if (names[i].rc == rc) {
            name = names[i].name;
            break;
        }
    }
    RM_ASSERT(name != NULL);
    return name;
}
