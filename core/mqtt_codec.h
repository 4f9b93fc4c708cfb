/*
 * mqtt_codec.h - MQTT 3.1 / 3.1.1 packet framing, decoding and encoding.
 *
 * Pure: no allocation, no syscalls, no globals. Decoding borrows the caller's
 * bytes (every mqtt_str points into the packet) and validates everything the
 * specification makes normative for the packet on its own: fixed-header flags
 * [MQTT-2.2.2-1], remaining length [MQTT-2.2.3], UTF-8 [MQTT-1.5.3-1..3],
 * packet identifiers [MQTT-2.3.1-1], CONNECT flags [MQTT-3.1.2-3 etc.],
 * PUBLISH QoS/DUP [MQTT-3.3.1-2, -4], topic names without wildcards
 * [MQTT-3.3.2-2], non-empty SUBSCRIBE/UNSUBSCRIBE [MQTT-3.8.3-3, 3.10.3-2],
 * reserved bits of requested QoS [MQTT-3.8.3-4]. Filter *syntax* ('+', '#'
 * placement) is not checked here: a bad filter is refused per filter in
 * SUBACK by the session, so it is core/topic's job.
 *
 * MQTT 5.0 (properties, AUTH, reason codes in acks) arrives with issue 5; the
 * version argument and enum mqtt_rc are already shaped for it.
 *
 * Any thread may call these functions; they touch only their arguments.
 */
#ifndef RINGMQ_MQTT_CODEC_H
#define RINGMQ_MQTT_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protocol level byte of CONNECT. */
enum mqtt_version {
    MQTT_V31 = 3,  /* "MQIsdp" */
    MQTT_V311 = 4, /* "MQTT" */
    MQTT_V5 = 5,   /* "MQTT" */
};

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/*
 * MQTT 5.0 reason codes (section 2.4). Used internally for every version:
 * functions return -MQTT_RC_* on protocol errors, and mqtt_rc_to_connack_v3()
 * maps to a 3.1.1 CONNACK return code where one is sent.
 */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00,
    MQTT_RC_GRANTED_QOS_1 = 0x01,
    MQTT_RC_GRANTED_QOS_2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTH = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED = 0x80,
    MQTT_RC_MALFORMED_PACKET = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPL_SPECIFIC = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQTT_RC_CLIENT_ID_NOT_VALID = 0x85,
    MQTT_RC_BAD_USERNAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTH_METHOD = 0x8C,
    MQTT_RC_KEEPALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_ID_IN_USE = 0x91,
    MQTT_RC_PACKET_ID_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAX_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMIN_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAX_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* 3.1 / 3.1.1 CONNACK return codes (section 3.2.2.3). */
enum mqtt_connack_v3 {
    MQTT_CONNACK_ACCEPTED = 0,
    MQTT_CONNACK_BAD_PROTOCOL_VERSION = 1,
    MQTT_CONNACK_IDENTIFIER_REJECTED = 2,
    MQTT_CONNACK_SERVER_UNAVAILABLE = 3,
    MQTT_CONNACK_BAD_USERNAME_OR_PASSWORD = 4,
    MQTT_CONNACK_NOT_AUTHORIZED = 5,
};

/* SUBACK return code for a refused filter in 3.1.1 [MQTT-3.9.3-2]. */
#define MQTT_SUBACK_FAILURE 0x80

/* A length-prefixed string or binary field; ptr borrows the packet bytes. */
struct mqtt_str {
    const uint8_t *ptr;
    uint32_t len;
};

/* The fixed header (section 2.2). */
struct mqtt_fixed {
    uint8_t type;       /* enum mqtt_type */
    uint8_t flags;      /* low nibble of byte 1 */
    uint8_t hdr_bytes;  /* 2..5 */
    uint32_t body_bytes; /* remaining length */
};

struct mqtt_connect {
    uint8_t version; /* enum mqtt_version */
    bool clean_session;
    uint16_t keepalive_s;
    struct mqtt_str client_id;
    bool will;
    uint8_t will_qos;
    bool will_retain;
    struct mqtt_str will_topic;
    struct mqtt_str will_payload;
    bool has_username;
    bool has_password;
    struct mqtt_str username;
    struct mqtt_str password; /* binary data */
};

struct mqtt_connack {
    bool session_present;
    uint8_t rc; /* 3.1.1 return code (enum mqtt_connack_v3) */
};

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_str topic;
    uint16_t pkt_id; /* 0 for QoS 0 */
    struct mqtt_str payload;
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK: just a packet id in 3.1.1. */
struct mqtt_ack {
    uint16_t pkt_id;
};

struct mqtt_sub_entry {
    struct mqtt_str filter;
    uint8_t options; /* 3.1.1: requested QoS in bits 0-1 */
};

/*
 * SUBSCRIBE / UNSUBSCRIBE. The decoder validates every entry, counts them and
 * leaves entries NULL; walk them with mqtt_sub_next() over the raw bytes. The
 * encoder reads @entries (options ignored for UNSUBSCRIBE).
 */
struct mqtt_subscribe {
    uint16_t pkt_id;
    uint32_t count;
    const struct mqtt_sub_entry *entries; /* encode only */
    const uint8_t *_raw;                  /* decode only: first entry */
    uint32_t _raw_bytes;
};

/* SUBACK: one return code per requested filter. */
struct mqtt_suback {
    uint16_t pkt_id;
    uint32_t count;
    const uint8_t *rcs; /* borrowed: decode points into the packet */
};

struct mqtt_pkt {
    uint8_t type; /* enum mqtt_type */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack; /* PUBACK PUBREC PUBREL PUBCOMP UNSUBACK */
        struct mqtt_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;
    } u;
    /* PINGREQ, PINGRESP, DISCONNECT carry nothing in 3.1.1. */
};

/* Iterator over a decoded SUBSCRIBE/UNSUBSCRIBE's entries. */
struct mqtt_sub_iter {
    const uint8_t *_p;
    const uint8_t *_end;
    bool _with_options; /* SUBSCRIBE has an options byte after each filter */
};

/*
 * Parse the fixed header at the start of @buf (@len bytes available).
 * Returns >0: the header is complete (its size, 2..5) and @fh is filled;
 * 0: more bytes are needed; -MQTT_RC_MALFORMED_PACKET: remaining length uses
 * more than 4 bytes or packet type 0; -MQTT_RC_PACKET_TOO_LARGE: header plus
 * body exceeds @packet_bytes_max. Checks nothing else: flags are mqtt_decode's.
 */
int mqtt_fixed_parse(const uint8_t *buf, size_t len, uint32_t packet_bytes_max,
                     struct mqtt_fixed *fh);

/*
 * Decode one whole packet whose fixed header is @fh and whose body is the
 * @fh->body_bytes bytes at @body. @version is the connection's negotiated
 * protocol level, or 0 before CONNECT (then only CONNECT decodes; anything
 * else is -MQTT_RC_PROTOCOL_ERROR [MQTT-3.1.0-1]).
 *
 * Returns 0 and fills @out (borrowing @body), or a negative mqtt_rc:
 *  -MQTT_RC_MALFORMED_PACKET  bad flags, lengths, UTF-8, QoS 3, id 0, ...
 *  -MQTT_RC_PROTOCOL_ERROR    a packet a server never receives (CONNACK,
 *                             SUBACK, ...), or a second CONNECT when
 *                             @version != 0 [MQTT-3.1.0-2]
 *  -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION  CONNECT with a protocol name/level
 *                             pair this codec does not speak; out->u.connect
 *                             .version holds the level so the caller can
 *                             answer CONNACK 0x01 [MQTT-3.1.2-2]
 * Server direction only decodes client->server packets; mqtt_decode_any()
 * decodes every type (tests, load generator, bridges).
 */
int mqtt_decode(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                struct mqtt_pkt *out);
int mqtt_decode_any(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                    struct mqtt_pkt *out);

/* Next entry of a decoded SUBSCRIBE/UNSUBSCRIBE; false after the last. */
void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_pkt *pkt);
bool mqtt_sub_next(struct mqtt_sub_iter *it, struct mqtt_sub_entry *e);

/*
 * Size in bytes of @pkt encoded for @version, fixed header included; 0 if the
 * packet cannot be encoded (a field over its maximum).
 */
size_t mqtt_encoded_size(const struct mqtt_pkt *pkt, uint8_t version);

/*
 * Encode @pkt for @version into @buf, which must hold mqtt_encoded_size()
 * bytes (@cap is asserted against it). Returns the bytes written.
 */
size_t mqtt_encode(const struct mqtt_pkt *pkt, uint8_t version, uint8_t *buf, size_t cap);

/* True if @s is well-formed UTF-8 without U+0000 and surrogates [MQTT-1.5.3-1, -2]. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);

/* Map an internal reason code to a 3.1.1 CONNACK return code. */
uint8_t mqtt_rc_to_connack_v3(int rc);

/* Human name of a packet type, for logs ("PUBLISH"); "?" if unknown. */
const char *mqtt_type_name(uint8_t type);

#endif
