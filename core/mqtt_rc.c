/*
 * mqtt_rc.c - MQTT reason codes: the table of codes each MQTT 5.0 packet may
 * carry (chapter 3), the map to 3.1.1 CONNACK return codes, and names.
 *
 * Owns nothing but constant tables; no allocation, no syscalls, no mutable
 * state; any thread may call it.
 */
#include "core/mqtt_rc.h"

#include <stddef.h>
#include <string.h>

#include "core/rm_assert.h"

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
