/*
 * mqtt_types.h - the MQTT types that many modules share: protocol levels,
 * packet types, reason codes, property ids, and the packet structures that
 * the decoder fills and the encoder reads.
 *
 * Types and macros only: no functions, no state, nothing owned. The functions
 * over them are the codec's (core/mqtt_codec.h). Any thread may use them.
 */
#ifndef RINGMQ_MQTT_TYPES_H
#define RINGMQ_MQTT_TYPES_H

#include <stdbool.h>
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

/* MQTT 5.0 property identifiers (section 2.2.2.2), with their data types. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT = 0x01,         /* byte, 0 or 1 */
    MQTT_PROP_MESSAGE_EXPIRY = 0x02,         /* four-byte integer */
    MQTT_PROP_CONTENT_TYPE = 0x03,           /* UTF-8 string */
    MQTT_PROP_RESPONSE_TOPIC = 0x08,         /* UTF-8 string, no wildcards */
    MQTT_PROP_CORRELATION_DATA = 0x09,       /* binary data */
    MQTT_PROP_SUBSCRIPTION_ID = 0x0B,        /* variable byte integer, 1..268435455 */
    MQTT_PROP_SESSION_EXPIRY = 0x11,         /* four-byte integer */
    MQTT_PROP_ASSIGNED_CLIENT_ID = 0x12,     /* UTF-8 string */
    MQTT_PROP_SERVER_KEEPALIVE = 0x13,       /* two-byte integer */
    MQTT_PROP_AUTH_METHOD = 0x15,            /* UTF-8 string */
    MQTT_PROP_AUTH_DATA = 0x16,              /* binary data */
    MQTT_PROP_REQUEST_PROBLEM_INFO = 0x17,   /* byte, 0 or 1 */
    MQTT_PROP_WILL_DELAY = 0x18,             /* four-byte integer */
    MQTT_PROP_REQUEST_RESPONSE_INFO = 0x19,  /* byte, 0 or 1 */
    MQTT_PROP_RESPONSE_INFO = 0x1A,          /* UTF-8 string */
    MQTT_PROP_SERVER_REFERENCE = 0x1C,       /* UTF-8 string */
    MQTT_PROP_REASON_STRING = 0x1F,          /* UTF-8 string */
    MQTT_PROP_RECEIVE_MAX = 0x21,            /* two-byte integer, not 0 */
    MQTT_PROP_TOPIC_ALIAS_MAX = 0x22,        /* two-byte integer */
    MQTT_PROP_TOPIC_ALIAS = 0x23,            /* two-byte integer, not 0 */
    MQTT_PROP_MAX_QOS = 0x24,                /* byte, 0 or 1 */
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,       /* byte, 0 or 1 */
    MQTT_PROP_USER = 0x26,                   /* UTF-8 string pair; may repeat */
    MQTT_PROP_MAX_PACKET_SIZE = 0x27,        /* four-byte integer, not 0 */
    MQTT_PROP_WILDCARD_SUB_AVAILABLE = 0x28, /* byte, 0 or 1 */
    MQTT_PROP_SUB_ID_AVAILABLE = 0x29,       /* byte, 0 or 1 */
    MQTT_PROP_SHARED_SUB_AVAILABLE = 0x2A,   /* byte, 0 or 1 */
};

/* The bit of property @id in struct mqtt_props.has. */
#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))

/* Largest value of a variable byte integer (subscription identifier). */
#define MQTT_VARINT_MAX 268435455u

/*
 * The properties of one MQTT 5.0 packet, or of a CONNECT's will. Ignored
 * (and left zero by decode) for versions before 5.
 *
 * Decode: bit MQTT_PROP_BIT(id) of @has is set for each property present and
 * its field below is filled (strings borrow the packet). @raw covers the
 * whole property block, so repeated properties (user properties, in order;
 * a server-bound PUBLISH's several subscription identifiers) are walked
 * with mqtt_prop_next(). @sub_id is the first subscription identifier and
 * @user_count the number of user properties.
 *
 * Encode: each field whose bit is set in @has is written, in id order (the
 * MQTT_PROP_USER and MQTT_PROP_SUBSCRIPTION_ID bits are ignored); then the
 * @raw bytes verbatim (properties already encoded: user properties, or the
 * application properties a message carries from its publisher); then one
 * MQTT_PROP_SUBSCRIPTION_ID per entry of @sub_ids. The encoder does not
 * check the bytes of @raw; it asserts that every @has field and any @sub_ids
 * may appear in the packet (or will) being encoded.
 *
 * A decoded struct has BOTH its fields and @raw set, so it must not be
 * handed to the encoder as is (every property would be written twice):
 * pass {.raw = decoded.raw} to re-send the block verbatim, or the fields
 * with @raw cut down by mqtt_props_copy() (e.g. to the user properties).
 */
struct mqtt_props {
    uint64_t has;
    struct mqtt_str raw;
    const uint32_t *sub_ids; /* encode only */
    uint32_t sub_id_count;   /* encode only */
    uint32_t sub_id;         /* decode only */
    uint32_t user_count;     /* decode only */
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t max_packet_size;
    uint16_t server_keepalive;
    uint16_t receive_max;
    uint16_t topic_alias_max;
    uint16_t topic_alias;
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t max_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    struct mqtt_str content_type;
    struct mqtt_str response_topic;
    struct mqtt_str correlation_data;
    struct mqtt_str assigned_client_id;
    struct mqtt_str auth_method;
    struct mqtt_str auth_data;
    struct mqtt_str response_info;
    struct mqtt_str server_reference;
    struct mqtt_str reason_string;
};

/* One property, as mqtt_prop_next() yields it. */
struct mqtt_prop {
    uint8_t id;            /* enum mqtt_prop_id */
    uint32_t num;          /* byte, two-byte, four-byte and varint values */
    struct mqtt_str str;   /* strings and binary data; a user property's name */
    struct mqtt_str val;   /* a user property's value */
    struct mqtt_str bytes; /* the whole encoded property, identifier included */
};

/* Iterator over a validated property block (struct mqtt_props.raw). */
struct mqtt_prop_iter {
    const uint8_t *_p;
    const uint8_t *_end;
};

/* The fixed header (section 2.2). */
struct mqtt_fixed {
    uint8_t type;        /* enum mqtt_type */
    uint8_t flags;       /* low nibble of byte 1 */
    uint8_t hdr_bytes;   /* 2..5 */
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
    struct mqtt_str password;     /* binary data */
    struct mqtt_props props;      /* v5 */
    struct mqtt_props will_props; /* v5, when @will */
};

struct mqtt_connack {
    bool session_present;
    uint8_t rc;              /* v5: reason code (enum mqtt_rc); else enum mqtt_connack_v3 */
    struct mqtt_props props; /* v5 */
};

struct mqtt_publish {
    uint8_t qos;
    bool dup;
    bool retain;
    struct mqtt_str topic;
    uint16_t pkt_id; /* 0 for QoS 0 */
    struct mqtt_str payload;
    struct mqtt_props props; /* v5; the topic may be empty with a topic alias */
};

/*
 * PUBACK, PUBREC, PUBREL, PUBCOMP (a packet id; v5 adds a reason code and
 * properties), and v5 DISCONNECT and AUTH (@pkt_id unused). In v5 a body
 * that ends early means reason code 0 and no properties, and the encoder
 * writes the shortest form [MQTT-3.4.2.1, 3.14.2.1, 3.15.2.1].
 */
struct mqtt_ack {
    uint16_t pkt_id;
    uint8_t rc; /* enum mqtt_rc; 0 before v5 */
    struct mqtt_props props;
};

/*
 * Subscription options (section 3.8.3.1): bits 0-1 maximum QoS; v5 only:
 * bit 2 no local, bit 3 retain as published, bits 4-5 retain handling.
 * Before v5 bits 2-7 are reserved and they or QoS 3 are malformed
 * [MQTT-3.8.3-4 of 3.1.1]. In v5 bits 6-7 set are malformed [MQTT-3.8.3-5];
 * QoS 3, retain handling 3 ("It is a Protocol Error ...", section 3.8.3.1)
 * and No Local on a "$share/" filter [MQTT-3.8.3-4] are protocol errors.
 */
#define MQTT_SUBOPT_QOS 0x03u
#define MQTT_SUBOPT_NO_LOCAL 0x04u
#define MQTT_SUBOPT_RAP 0x08u
#define MQTT_SUBOPT_RH_SHIFT 4

struct mqtt_sub_entry {
    struct mqtt_str filter;
    uint8_t options; /* MQTT_SUBOPT_*; unused for UNSUBSCRIBE */
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
    struct mqtt_props props; /* v5 */
};

/*
 * SUBACK: one return code per requested filter. UNSUBACK uses it too in
 * every version: v5 carries one reason code per filter; before v5 @count
 * is 0 and the packet is just the packet id (the encoder then ignores
 * @count and @rcs, so one struct can serve every version).
 */
struct mqtt_suback {
    uint16_t pkt_id;
    uint32_t count;
    const uint8_t *rcs;      /* borrowed: decode points into the packet */
    struct mqtt_props props; /* v5 */
};

struct mqtt_pkt {
    uint8_t type; /* enum mqtt_type */
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;             /* PUBACK PUBREC PUBREL PUBCOMP; v5 DISCONNECT, AUTH */
        struct mqtt_subscribe subscribe; /* SUBSCRIBE and UNSUBSCRIBE */
        struct mqtt_suback suback;       /* SUBACK and UNSUBACK */
    } u;
    /* PINGREQ and PINGRESP carry nothing; neither does DISCONNECT before v5. */
};

/* Iterator over a decoded SUBSCRIBE/UNSUBSCRIBE's entries. */
struct mqtt_sub_iter {
    const uint8_t *_p;
    const uint8_t *_end;
    bool _with_options; /* SUBSCRIBE has an options byte after each filter */
};

#endif
