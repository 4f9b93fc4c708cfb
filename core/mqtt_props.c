/*
 * mqtt_props.c - MQTT 5.0 properties: decoding and validating a property
 * block, walking and copying a decoded one, sizing and encoding one.
 *
 * Owns nothing but a constant table of every property's type and the
 * packets that may carry it; every function reads its arguments and writes
 * only the caller's output. No allocation, no syscalls, no mutable state;
 * any thread may call it. Deliberate choices:
 *  - MQTT 5.0 property blocks: an identifier unknown or not valid for its
 *    packet, a value cut short, or a block that overruns the packet is
 *    malformed (section 2.2.2.2); a repeated property or a value the spec
 *    forbids (0 where it must not be, a 0/1 byte with another value) is a
 *    protocol error. Malformed wins when one block has both. Variable byte
 *    integers inside the body must be minimal [MQTT-1.5.5-1].
 *  - A Response Topic is a topic name, so it gets PUBLISH's topic checks
 *    (non-empty, no wildcards) [MQTT-3.3.2-13, -14].
 * Encoding trusts its input (it was built by the broker) and asserts on it.
 */
#include "core/mqtt_props.h"

#include <string.h>

#include "core/mqtt_utf8.h"
#include "core/mqtt_wire.h"
#include "core/rm_assert.h"

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

/*
 * Where a property may appear: one bit per packet type; bit 0 is the will.
 * Short names for the table below; mqtt_props.h has the definitions.
 */
#define IN(type) MQTT_PROPS_IN(type)
#define IN_WILL MQTT_PROPS_IN_WILL
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

static uint8_t prop_type(uint32_t id)
{
    return id <= PROP_ID_MAX ? prop_table[id].type : PT_NONE;
}

static bool prop_allowed(uint32_t id, uint16_t where)
{
    return prop_type(id) != PT_NONE && (prop_table[id].where & where) != 0;
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
    if (p->id == MQTT_PROP_RESPONSE_TOPIC && !mqtt_utf8__topic_name_ok(&p->str)) {
        return -MQTT_RC_PROTOCOL_ERROR;
    }
    return 0;
}

int mqtt_props__decode(struct rd *r, uint16_t where, bool sub_ids_repeat, struct mqtt_props *pr)
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

/* Bytes of @pr's property block without its length; BODY_UNENCODABLE if too big. */
static uint64_t props_block_bytes(const struct mqtt_props *pr, uint16_t where)
{
    uint64_t fields = pr->has & MQTT_PROPS_FIELDS;
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

uint64_t mqtt_props__bytes(const struct mqtt_props *pr, uint16_t where, uint8_t version)
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

uint8_t *mqtt_props__put(uint8_t *p, const struct mqtt_props *pr, uint16_t where)
{
    uint64_t fields = pr->has & MQTT_PROPS_FIELDS;
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
