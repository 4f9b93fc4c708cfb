/*
 * test_mqtt_codec5.c - unit tests for core/mqtt_codec in MQTT 5.0.
 *
 * Every decode runs from a buffer that ends exactly at a PROT_NONE page
 * (tests/unit/codec_helpers.h), and every sample packet is also fed at every
 * split point. Each malformed / protocol-error rule has its own test, named
 * after its normative id ([MQTT-x.y.z-n]) or, where the spec states the rule
 * without an id, after its section.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"

#include "tests/unit/codec_helpers.h"

#define V5 MQTT_V5
#define BIT(id) MQTT_PROP_BIT(id)

/* User properties, encoded (what a decoded packet's raw block holds). */
static const uint8_t users2[] = {0x26, 0, 1, 'k', 0, 2, 'v', '1',
                                 0x26, 0, 1, 'k', 0, 2, 'v', '2'}; /* same name twice */
static const uint8_t users1[] = {0x26, 0, 3, 'c', 'a', 'f', 0, 0}; /* empty value */
static const uint32_t two_sub_ids[] = {1, MQTT_VARINT_MAX};
static const uint8_t bin[] = {0x00, 0xff, 0xc0, 0x80};

#define RAW(arr) ((struct mqtt_str){(arr), sizeof(arr)})
#define BINSTR ((struct mqtt_str){bin, sizeof(bin)})

/* ---- comparing ---------------------------------------------------------- */

/* Collect the subscription ids and user properties of decoded @pr. */
static void walk(const struct mqtt_props *pr, uint32_t *ids, uint32_t *id_count,
                 struct mqtt_prop *users, uint32_t *user_count)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop p;

    *id_count = 0;
    *user_count = 0;
    mqtt_prop_iter_init(&it, pr);
    while (mqtt_prop_next(&it, &p)) {
        if (p.id == MQTT_PROP_SUBSCRIPTION_ID) {
            cr_assert(*id_count < 8);
            ids[(*id_count)++] = p.num;
        } else if (p.id == MQTT_PROP_USER) {
            cr_assert(*user_count < 8);
            users[(*user_count)++] = p;
        }
    }
}

/* @want was built for encoding; @got is what its bytes decoded to. */
static void assert_props_eq(const struct mqtt_props *want, const struct mqtt_props *got)
{
    uint64_t fields = want->has & ~(BIT(MQTT_PROP_USER) | BIT(MQTT_PROP_SUBSCRIPTION_ID));
    struct mqtt_props raw_only = {.raw = want->raw};
    struct mqtt_prop wu[8], gu[8];
    uint32_t wi[8], gi[8];
    uint32_t wic, wuc, gic, guc, i;
    uint64_t want_has = fields;

    walk(&raw_only, wi, &wic, wu, &wuc);
    walk(got, gi, &gic, gu, &guc);
    want_has |= wuc > 0 ? BIT(MQTT_PROP_USER) : 0;
    want_has |= (wic + want->sub_id_count) > 0 ? BIT(MQTT_PROP_SUBSCRIPTION_ID) : 0;
    cr_assert_eq(got->has, want_has, "has %#llx, want %#llx", (unsigned long long)got->has,
                 (unsigned long long)want_has);
    cr_assert_eq(got->user_count, wuc);
    cr_assert_eq(guc, wuc);
    for (i = 0; i < wuc; i++) {
        assert_str_eq(&wu[i].str, &gu[i].str, "user property name");
        assert_str_eq(&wu[i].val, &gu[i].val, "user property value");
    }
    for (i = 0; i < want->sub_id_count; i++) {
        wi[wic++] = want->sub_ids[i];
    }
    cr_assert_eq(gic, wic);
    for (i = 0; i < wic; i++) {
        cr_assert_eq(gi[i], wi[i]);
    }
    if (wic > 0) {
        cr_assert_eq(got->sub_id, wi[0]);
    }
#define NUM(f) cr_assert_eq(got->f, want->f, #f)
#define STR(f) assert_str_eq(&want->f, &got->f, #f)
    if (fields & BIT(MQTT_PROP_PAYLOAD_FORMAT))
        NUM(payload_format);
    if (fields & BIT(MQTT_PROP_MESSAGE_EXPIRY))
        NUM(message_expiry);
    if (fields & BIT(MQTT_PROP_CONTENT_TYPE))
        STR(content_type);
    if (fields & BIT(MQTT_PROP_RESPONSE_TOPIC))
        STR(response_topic);
    if (fields & BIT(MQTT_PROP_CORRELATION_DATA))
        STR(correlation_data);
    if (fields & BIT(MQTT_PROP_SESSION_EXPIRY))
        NUM(session_expiry);
    if (fields & BIT(MQTT_PROP_ASSIGNED_CLIENT_ID))
        STR(assigned_client_id);
    if (fields & BIT(MQTT_PROP_SERVER_KEEPALIVE))
        NUM(server_keepalive);
    if (fields & BIT(MQTT_PROP_AUTH_METHOD))
        STR(auth_method);
    if (fields & BIT(MQTT_PROP_AUTH_DATA))
        STR(auth_data);
    if (fields & BIT(MQTT_PROP_REQUEST_PROBLEM_INFO))
        NUM(request_problem_info);
    if (fields & BIT(MQTT_PROP_WILL_DELAY))
        NUM(will_delay);
    if (fields & BIT(MQTT_PROP_REQUEST_RESPONSE_INFO))
        NUM(request_response_info);
    if (fields & BIT(MQTT_PROP_RESPONSE_INFO))
        STR(response_info);
    if (fields & BIT(MQTT_PROP_SERVER_REFERENCE))
        STR(server_reference);
    if (fields & BIT(MQTT_PROP_REASON_STRING))
        STR(reason_string);
    if (fields & BIT(MQTT_PROP_RECEIVE_MAX))
        NUM(receive_max);
    if (fields & BIT(MQTT_PROP_TOPIC_ALIAS_MAX))
        NUM(topic_alias_max);
    if (fields & BIT(MQTT_PROP_TOPIC_ALIAS))
        NUM(topic_alias);
    if (fields & BIT(MQTT_PROP_MAX_QOS))
        NUM(max_qos);
    if (fields & BIT(MQTT_PROP_RETAIN_AVAILABLE))
        NUM(retain_available);
    if (fields & BIT(MQTT_PROP_MAX_PACKET_SIZE))
        NUM(max_packet_size);
    if (fields & BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE))
        NUM(wildcard_sub_available);
    if (fields & BIT(MQTT_PROP_SUB_ID_AVAILABLE))
        NUM(sub_id_available);
    if (fields & BIT(MQTT_PROP_SHARED_SUB_AVAILABLE))
        NUM(shared_sub_available);
#undef NUM
#undef STR
}

static void assert_pkt5_eq(const struct mqtt_pkt *want, const struct mqtt_pkt *got)
{
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i;

    cr_assert_eq(got->type, want->type);
    switch (want->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *a = &want->u.connect, *b = &got->u.connect;

        cr_assert_eq(b->version, V5);
        cr_assert_eq(b->clean_session, a->clean_session);
        cr_assert_eq(b->keepalive_s, a->keepalive_s);
        assert_str_eq(&a->client_id, &b->client_id, "client id");
        cr_assert_eq(b->will, a->will);
        cr_assert_eq(b->will_qos, a->will_qos);
        cr_assert_eq(b->will_retain, a->will_retain);
        cr_assert_eq(b->has_username, a->has_username);
        cr_assert_eq(b->has_password, a->has_password);
        if (a->will) {
            assert_str_eq(&a->will_topic, &b->will_topic, "will topic");
            assert_str_eq(&a->will_payload, &b->will_payload, "will payload");
            assert_props_eq(&a->will_props, &b->will_props);
        } else {
            cr_assert_eq(b->will_props.has, 0);
        }
        if (a->has_username) {
            assert_str_eq(&a->username, &b->username, "username");
        }
        if (a->has_password) {
            assert_str_eq(&a->password, &b->password, "password");
        }
        assert_props_eq(&a->props, &b->props);
        break;
    }
    case MQTT_CONNACK:
        cr_assert_eq(got->u.connack.rc, want->u.connack.rc);
        cr_assert_eq(got->u.connack.session_present, want->u.connack.session_present);
        assert_props_eq(&want->u.connack.props, &got->u.connack.props);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *a = &want->u.publish, *b = &got->u.publish;

        cr_assert_eq(b->qos, a->qos);
        cr_assert_eq(b->dup, a->dup);
        cr_assert_eq(b->retain, a->retain);
        cr_assert_eq(b->pkt_id, a->qos > 0 ? a->pkt_id : 0);
        assert_str_eq(&a->topic, &b->topic, "topic");
        assert_str_eq(&a->payload, &b->payload, "payload");
        assert_props_eq(&a->props, &b->props);
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        cr_assert_eq(got->u.ack.pkt_id, want->u.ack.pkt_id);
        cr_assert_eq(got->u.ack.rc, want->u.ack.rc);
        assert_props_eq(&want->u.ack.props, &got->u.ack.props);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        cr_assert_eq(got->u.subscribe.pkt_id, want->u.subscribe.pkt_id);
        cr_assert_eq(got->u.subscribe.count, want->u.subscribe.count);
        mqtt_sub_iter_init(&it, got);
        for (i = 0; i < want->u.subscribe.count; i++) {
            cr_assert(mqtt_sub_next(&it, &e), "entry %u missing", i);
            assert_str_eq(&want->u.subscribe.entries[i].filter, &e.filter, "filter");
            cr_assert_eq(e.options,
                         want->type == MQTT_SUBSCRIBE ? want->u.subscribe.entries[i].options : 0);
        }
        cr_assert_not(mqtt_sub_next(&it, &e));
        assert_props_eq(&want->u.subscribe.props, &got->u.subscribe.props);
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        cr_assert_eq(got->u.suback.pkt_id, want->u.suback.pkt_id);
        cr_assert_eq(got->u.suback.count, want->u.suback.count);
        cr_assert(memcmp(got->u.suback.rcs, want->u.suback.rcs, want->u.suback.count) == 0);
        assert_props_eq(&want->u.suback.props, &got->u.suback.props);
        break;
    default:
        break;
    }
}

/* ---- samples: every v5 packet with every property it may carry ----------- */

#define SAMPLES5_MAX 40
#define ENC5_MAX 1024

static const struct mqtt_sub_entry subs5[] = {
    {.filter = S("a/b"), .options = 0},
    {.filter = S("sport/+/p1"), .options = 1 | MQTT_SUBOPT_NO_LOCAL},
    {.filter = S("#"), .options = 2 | MQTT_SUBOPT_RAP | (2 << MQTT_SUBOPT_RH_SHIFT)},
    {.filter = S("$share/g/x"), .options = 1 | (1 << MQTT_SUBOPT_RH_SHIFT)},
};
static const uint8_t suback5_rcs[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                      0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t unsuback5_rcs[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};

#define ALL_CONNECT_PROPS                                                                          \
    (BIT(MQTT_PROP_SESSION_EXPIRY) | BIT(MQTT_PROP_RECEIVE_MAX) | BIT(MQTT_PROP_MAX_PACKET_SIZE) | \
     BIT(MQTT_PROP_TOPIC_ALIAS_MAX) | BIT(MQTT_PROP_REQUEST_RESPONSE_INFO) |                       \
     BIT(MQTT_PROP_REQUEST_PROBLEM_INFO) | BIT(MQTT_PROP_AUTH_METHOD) | BIT(MQTT_PROP_AUTH_DATA))
#define ALL_WILL_PROPS                                                                             \
    (BIT(MQTT_PROP_PAYLOAD_FORMAT) | BIT(MQTT_PROP_MESSAGE_EXPIRY) | BIT(MQTT_PROP_CONTENT_TYPE) | \
     BIT(MQTT_PROP_RESPONSE_TOPIC) | BIT(MQTT_PROP_CORRELATION_DATA) | BIT(MQTT_PROP_WILL_DELAY))
#define ALL_CONNACK_PROPS                                                                          \
    (BIT(MQTT_PROP_SESSION_EXPIRY) | BIT(MQTT_PROP_RECEIVE_MAX) | BIT(MQTT_PROP_MAX_QOS) |         \
     BIT(MQTT_PROP_RETAIN_AVAILABLE) | BIT(MQTT_PROP_MAX_PACKET_SIZE) |                            \
     BIT(MQTT_PROP_ASSIGNED_CLIENT_ID) | BIT(MQTT_PROP_TOPIC_ALIAS_MAX) |                          \
     BIT(MQTT_PROP_REASON_STRING) | BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE) |                        \
     BIT(MQTT_PROP_SUB_ID_AVAILABLE) | BIT(MQTT_PROP_SHARED_SUB_AVAILABLE) |                       \
     BIT(MQTT_PROP_SERVER_KEEPALIVE) | BIT(MQTT_PROP_RESPONSE_INFO) |                              \
     BIT(MQTT_PROP_SERVER_REFERENCE) | BIT(MQTT_PROP_AUTH_METHOD) | BIT(MQTT_PROP_AUTH_DATA))
#define ALL_PUBLISH_PROPS                                                                          \
    (BIT(MQTT_PROP_PAYLOAD_FORMAT) | BIT(MQTT_PROP_MESSAGE_EXPIRY) | BIT(MQTT_PROP_TOPIC_ALIAS) |  \
     BIT(MQTT_PROP_RESPONSE_TOPIC) | BIT(MQTT_PROP_CORRELATION_DATA) |                             \
     BIT(MQTT_PROP_CONTENT_TYPE))

static struct mqtt_props all_props(uint64_t has)
{
    return (struct mqtt_props){
        .has = has,
        .raw = RAW(users2),
        .message_expiry = 0xfffffffe,
        .session_expiry = 0xffffffff,
        .will_delay = 30,
        .max_packet_size = 0x10000,
        .server_keepalive = 120,
        .receive_max = 65535,
        .topic_alias_max = 10,
        .topic_alias = 7,
        .payload_format = 1,
        .request_problem_info = 0,
        .request_response_info = 1,
        .max_qos = 1,
        .retain_available = 0,
        .wildcard_sub_available = 1,
        .sub_id_available = 0,
        .shared_sub_available = 1,
        .content_type = S("text/plain; charset=\xc3\xa9"),
        .response_topic = S("reply/to/\xe6\x97\xa5"),
        .correlation_data = BINSTR,
        .assigned_client_id = S("auto-1"),
        .auth_method = S("SCRAM-SHA-1"),
        .auth_data = BINSTR,
        .response_info = S("resp"),
        .server_reference = S("other:1883"),
        .reason_string = S("because"),
    };
}

/* Packets of every v5 type and form. @server_bound[i] says mqtt_decode takes it. */
static size_t samples5(struct mqtt_pkt *s, bool *server_bound)
{
    static const uint8_t ack_types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    size_t n = 0;
    size_t i;

    memset(s, 0, SAMPLES5_MAX * sizeof(*s));
#define ADD(bound) (server_bound[n] = (bound), n++)
    s[n].type = MQTT_CONNECT;
    s[n].u.connect = (struct mqtt_connect){.version = V5,
                                           .clean_session = true,
                                           .keepalive_s = 60,
                                           .client_id = S("client-5"),
                                           .will = true,
                                           .will_qos = 2,
                                           .will_retain = true,
                                           .will_topic = S("will/t"),
                                           .will_payload = BINSTR,
                                           .has_username = true,
                                           .has_password = true,
                                           .username = S("user"),
                                           .password = BINSTR,
                                           .props = all_props(ALL_CONNECT_PROPS),
                                           .will_props = all_props(ALL_WILL_PROPS)};
    ADD(true);
    s[n].type = MQTT_CONNECT; /* no properties; a password without a user name (3.1.2.9) */
    s[n].u.connect = (struct mqtt_connect){.version = V5, .has_password = true, .password = S("p")};
    ADD(true);
    s[n].type = MQTT_CONNECT; /* will with no properties */
    s[n].u.connect = (struct mqtt_connect){
        .version = V5, .client_id = S("c"), .will = true, .will_topic = S("w")};
    ADD(true);
    s[n].type = MQTT_CONNACK;
    s[n].u.connack =
        (struct mqtt_connack){.session_present = true, .props = all_props(ALL_CONNACK_PROPS)};
    ADD(false);
    s[n].type = MQTT_CONNACK;
    s[n].u.connack = (struct mqtt_connack){.rc = MQTT_RC_BANNED};
    ADD(false);
    s[n].type = MQTT_PUBLISH; /* client to server: no subscription ids */
    s[n].u.publish = (struct mqtt_publish){.qos = 1,
                                           .dup = true,
                                           .retain = true,
                                           .topic = S("a/b"),
                                           .pkt_id = 9,
                                           .payload = S("hello"),
                                           .props = all_props(ALL_PUBLISH_PROPS)};
    ADD(true);
    s[n].type = MQTT_PUBLISH; /* server to client: several subscription ids */
    s[n].u.publish = (struct mqtt_publish){.qos = 2,
                                           .topic = S("x"),
                                           .pkt_id = 65535,
                                           .payload = BINSTR,
                                           .props = all_props(BIT(MQTT_PROP_PAYLOAD_FORMAT))};
    s[n].u.publish.props.sub_ids = two_sub_ids;
    s[n].u.publish.props.sub_id_count = RM_ARRAY_LEN(two_sub_ids);
    ADD(false);
    s[n].type = MQTT_PUBLISH; /* an empty topic with a topic alias */
    s[n].u.publish =
        (struct mqtt_publish){.props = {.has = BIT(MQTT_PROP_TOPIC_ALIAS), .topic_alias = 65535}};
    ADD(true);
    s[n].type = MQTT_PUBLISH; /* no properties at all */
    s[n].u.publish = (struct mqtt_publish){.topic = S("t")};
    ADD(true);
    for (i = 0; i < sizeof(ack_types); i++) {
        bool rel = ack_types[i] == MQTT_PUBREL || ack_types[i] == MQTT_PUBCOMP;

        s[n].type = ack_types[i]; /* full form */
        s[n].u.ack = (struct mqtt_ack){.pkt_id = (uint16_t)(i + 1),
                                       .rc = rel ? MQTT_RC_PACKET_ID_NOT_FOUND
                                                 : MQTT_RC_NO_MATCHING_SUBSCRIBERS,
                                       .props = all_props(BIT(MQTT_PROP_REASON_STRING))};
        ADD(true);
        s[n].type = ack_types[i]; /* rc only */
        s[n].u.ack = (struct mqtt_ack){
            .pkt_id = 0x1234, .rc = rel ? MQTT_RC_PACKET_ID_NOT_FOUND : MQTT_RC_QUOTA_EXCEEDED};
        ADD(true);
        s[n].type = ack_types[i]; /* shortest */
        s[n].u.ack = (struct mqtt_ack){.pkt_id = 0xffff};
        ADD(true);
    }
    s[n].type = MQTT_SUBSCRIBE;
    s[n].u.subscribe = (struct mqtt_subscribe){
        .pkt_id = 7,
        .count = RM_ARRAY_LEN(subs5),
        .entries = subs5,
        .props = {.has = 0, .raw = RAW(users1), .sub_ids = &two_sub_ids[1], .sub_id_count = 1}};
    ADD(true);
    s[n].type = MQTT_SUBACK;
    s[n].u.suback = (struct mqtt_suback){.pkt_id = 7,
                                         .count = RM_ARRAY_LEN(suback5_rcs),
                                         .rcs = suback5_rcs,
                                         .props = all_props(BIT(MQTT_PROP_REASON_STRING))};
    ADD(false);
    s[n].type = MQTT_UNSUBSCRIBE;
    s[n].u.subscribe = (struct mqtt_subscribe){
        .pkt_id = 8, .count = 2, .entries = subs5, .props = {.raw = RAW(users2)}};
    ADD(true);
    s[n].type = MQTT_UNSUBACK;
    s[n].u.suback = (struct mqtt_suback){.pkt_id = 8,
                                         .count = RM_ARRAY_LEN(unsuback5_rcs),
                                         .rcs = unsuback5_rcs,
                                         .props = all_props(BIT(MQTT_PROP_REASON_STRING))};
    ADD(false);
    s[n].type = MQTT_UNSUBACK; /* no properties */
    s[n].u.suback = (struct mqtt_suback){.pkt_id = 9, .count = 1, .rcs = unsuback5_rcs};
    ADD(false);
    s[n].type = MQTT_PINGREQ;
    ADD(true);
    s[n].type = MQTT_PINGRESP;
    ADD(false);
    s[n].type = MQTT_DISCONNECT; /* every property */
    s[n].u.ack = (struct mqtt_ack){.rc = MQTT_RC_DISCONNECT_WITH_WILL,
                                   .props = all_props(BIT(MQTT_PROP_SESSION_EXPIRY) |
                                                      BIT(MQTT_PROP_REASON_STRING) |
                                                      BIT(MQTT_PROP_SERVER_REFERENCE))};
    ADD(true);
    s[n].type = MQTT_DISCONNECT; /* reason code only */
    s[n].u.ack = (struct mqtt_ack){.rc = MQTT_RC_SERVER_SHUTTING_DOWN};
    ADD(true);
    s[n].type = MQTT_DISCONNECT; /* empty */
    ADD(true);
    s[n].type = MQTT_AUTH; /* every property */
    s[n].u.ack =
        (struct mqtt_ack){.rc = MQTT_RC_CONTINUE_AUTH,
                          .props = all_props(BIT(MQTT_PROP_AUTH_METHOD) | BIT(MQTT_PROP_AUTH_DATA) |
                                             BIT(MQTT_PROP_REASON_STRING))};
    ADD(true);
    s[n].type = MQTT_AUTH; /* reason code, no properties */
    s[n].u.ack = (struct mqtt_ack){.rc = MQTT_RC_REAUTHENTICATE};
    ADD(true);
    s[n].type = MQTT_AUTH; /* empty */
    ADD(true);
#undef ADD
    cr_assert(n <= SAMPLES5_MAX);
    return n;
}

static uint8_t dv5(uint8_t type)
{
    return type == MQTT_CONNECT ? 0 : V5;
}

/* ---- round trips, split points, guard pages ----------------------------- */

Test(mqtt_codec5, round_trips_every_packet_with_every_property_it_may_carry)
{
    struct mqtt_pkt s[SAMPLES5_MAX];
    bool bound[SAMPLES5_MAX];
    size_t n = samples5(s, bound);
    bool seen[MQTT_AUTH + 1] = {false};
    size_t i;
    int t;

    for (i = 0; i < n; i++) {
        uint8_t buf[ENC5_MAX];
        struct mqtt_pkt got;
        size_t size = mqtt_encoded_size(&s[i], V5);
        size_t wrote;

        cr_assert(size > 0 && size <= sizeof(buf), "sample %zu: size %zu", i, size);
        wrote = mqtt_encode(&s[i], V5, buf, sizeof(buf));
        cr_assert_eq(wrote, size, "sample %zu (%s)", i, mqtt_type_name(s[i].type));
        cr_assert_eq(dec_any(buf, wrote, dv5(s[i].type), &got), 0, "sample %zu (%s)", i,
                     mqtt_type_name(s[i].type));
        assert_pkt5_eq(&s[i], &got);
        if (bound[i]) {
            cr_assert_eq(dec(buf, wrote, dv5(s[i].type), &got), 0, "sample %zu", i);
            assert_pkt5_eq(&s[i], &got);
        } else {
            cr_assert_eq(dec(buf, wrote, dv5(s[i].type), &got), PROTO_ERR, "sample %zu", i);
        }
        seen[s[i].type] = true;
    }
    for (t = MQTT_CONNECT; t <= MQTT_AUTH; t++) {
        cr_assert(seen[t], "no sample of %s", mqtt_type_name((uint8_t)t));
    }
}

Test(mqtt_codec5, re_encoding_a_decoded_block_from_raw_gives_the_same_bytes)
{
    struct mqtt_pkt s[SAMPLES5_MAX];
    bool bound[SAMPLES5_MAX];
    size_t n = samples5(s, bound);
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t buf[ENC5_MAX], again[ENC5_MAX];
        struct mqtt_pkt got;
        size_t len = mqtt_encode(&s[i], V5, buf, sizeof(buf));

        if (s[i].type != MQTT_PUBLISH) {
            continue;
        }
        cr_assert_eq(dec_any(buf, len, V5, &got), 0);
        /* A broker forwards a PUBLISH's block as raw bytes, not as fields. */
        got.u.publish.props = (struct mqtt_props){.raw = got.u.publish.props.raw};
        cr_assert_eq(mqtt_encode(&got, V5, again, sizeof(again)), len);
        cr_assert(memcmp(buf, again, len) == 0);
    }
}

static void feed_every_split5(const uint8_t *bytes, size_t len, uint8_t version)
{
    size_t k;

    for (k = 0; k <= len; k++) {
        struct mqtt_pkt got;
        size_t used = 0;
        int rc = frame_decode(bytes, k, version, true, &got, &used);

        if (k < len) {
            cr_assert_eq(rc, NEED_MORE, "prefix %zu of %zu: got %d", k, len, rc);
        } else {
            cr_assert_eq(rc, 0, "whole packet (%zu bytes): %d", len, rc);
            cr_assert_eq(used, len);
        }
    }
}

Test(mqtt_codec5, every_packet_needs_more_at_every_split_point_then_decodes)
{
    struct mqtt_pkt s[SAMPLES5_MAX];
    bool bound[SAMPLES5_MAX];
    size_t n = samples5(s, bound);
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t buf[ENC5_MAX];
        size_t len = mqtt_encode(&s[i], V5, buf, sizeof(buf));

        feed_every_split5(buf, len, dv5(s[i].type));
    }
}

Test(mqtt_codec5, decodes_from_a_guard_page_and_walks_properties_inside_the_packet)
{
    struct mqtt_pkt s[SAMPLES5_MAX];
    bool bound[SAMPLES5_MAX];
    size_t n = samples5(s, bound);
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t buf[ENC5_MAX];
        size_t len = mqtt_encode(&s[i], V5, buf, sizeof(buf));
        struct guard g = guard_new(len);
        const uint8_t *at = guard_place(&g, buf, len);
        struct mqtt_fixed fh;
        struct mqtt_pkt got;
        struct mqtt_prop_iter it;
        struct mqtt_prop p;
        const struct mqtt_props *pr = NULL;

        int hdr = mqtt_fixed_parse(at, len, BIG_MAX, &fh);

        cr_assert(hdr > 0 && hdr == fh.hdr_bytes, "fixed header: %d", hdr);
        cr_assert_eq(mqtt_decode_any(&fh, at + fh.hdr_bytes, dv5(s[i].type), &got), 0);
        assert_pkt5_eq(&s[i], &got);
        switch (got.type) {
        case MQTT_CONNECT:
            pr = &got.u.connect.props;
            break;
        case MQTT_CONNACK:
            pr = &got.u.connack.props;
            break;
        case MQTT_PUBLISH:
            pr = &got.u.publish.props;
            break;
        case MQTT_SUBSCRIBE:
        case MQTT_UNSUBSCRIBE:
            pr = &got.u.subscribe.props;
            break;
        case MQTT_SUBACK:
        case MQTT_UNSUBACK:
            pr = &got.u.suback.props;
            break;
        case MQTT_PINGREQ:
        case MQTT_PINGRESP:
            break;
        default:
            pr = &got.u.ack.props;
            break;
        }
        if (pr != NULL) {
            size_t total = 0;

            mqtt_prop_iter_init(&it, pr);
            while (mqtt_prop_next(&it, &p)) {
                cr_assert(p.bytes.ptr >= at && p.bytes.ptr + p.bytes.len <= at + len);
                total += p.bytes.len;
            }
            cr_assert_eq(total, pr->raw.len);
        }
        guard_free(&g);
    }
}

/* ---- golden wire bytes -------------------------------------------------- */

Test(mqtt_codec5, encodes_connect_5_with_properties_after_keep_alive_and_will_properties_first)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    /* Order per [MQTT-3.1.3-1]: client id, will properties, will topic, will payload. */
    static const uint8_t want[] = {0x10, 30, 0,    4, 'M', 'Q', 'T', 'T', 5, 0x06, 0,
                                   10,   5,  0x11, 0, 0,   0,   30,  0,   1, 'c',  5,
                                   0x18, 0,  0,    0, 0,   0,   1,   'w', 0, 0};
    uint8_t buf[64];

    p.u.connect =
        (struct mqtt_connect){.version = V5,
                              .clean_session = true,
                              .keepalive_s = 10,
                              .client_id = S("c"),
                              .will = true,
                              .will_topic = S("w"),
                              .props = {.has = BIT(MQTT_PROP_SESSION_EXPIRY), .session_expiry = 30},
                              .will_props = {.has = BIT(MQTT_PROP_WILL_DELAY)}};
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), sizeof(want));
    cr_assert(memcmp(buf, want, sizeof(want)) == 0);
}

Test(mqtt_codec5, encodes_fields_in_id_order_then_raw_then_subscription_ids)
{
    static const uint32_t ids[] = {2, 200};
    struct mqtt_pkt p = {.type = MQTT_PUBLISH};
    static const uint8_t want[] = {0x30, 22, 0,   1, 't', 17,  0x01, 1, 0x23, 0,    5, 0x26,
                                   0,    1,  'k', 0, 1,   'v', 0x0B, 2, 0x0B, 0xc8, 1, 'x'};
    uint8_t buf[64];

    p.u.publish = (struct mqtt_publish){
        .topic = S("t"),
        .payload = S("x"),
        .props = {.has = BIT(MQTT_PROP_TOPIC_ALIAS) | BIT(MQTT_PROP_PAYLOAD_FORMAT) |
                         BIT(MQTT_PROP_USER) | BIT(MQTT_PROP_SUBSCRIPTION_ID),
                  .topic_alias = 5,
                  .payload_format = 1,
                  .raw = {(const uint8_t *)"\x26\0\1k\0\1v", 7},
                  .sub_ids = ids,
                  .sub_id_count = 2}};
    cr_assert_eq(mqtt_encoded_size(&p, V5), sizeof(want));
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), sizeof(want));
    cr_assert(memcmp(buf, want, sizeof(want)) == 0);
}

Test(mqtt_codec5, encodes_the_shortest_form_of_acks_disconnect_and_auth)
{
    struct mqtt_pkt p = {.type = MQTT_PUBACK, .u.ack = {.pkt_id = 0x0102}};
    uint8_t buf[32];

    /* Sections 3.4.2.1, 3.4.2.2.1: reason 0 and no properties may be left off. */
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 4);
    cr_assert(memcmp(buf, "\x40\x02\x01\x02", 4) == 0);
    p.u.ack.rc = MQTT_RC_NO_MATCHING_SUBSCRIBERS;
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 5);
    cr_assert(memcmp(buf, "\x40\x03\x01\x02\x10", 5) == 0);
    p.u.ack.props.has = BIT(MQTT_PROP_REASON_STRING);
    p.u.ack.props.reason_string = S("r");
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 10);
    cr_assert(memcmp(buf, "\x40\x08\x01\x02\x10\x04\x1f\x00\x01r", 10) == 0);
    p = (struct mqtt_pkt){.type = MQTT_PUBREL, .u.ack = {.pkt_id = 1}};
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 4);
    cr_assert(memcmp(buf, "\x62\x02\x00\x01", 4) == 0);

    /* DISCONNECT (3.14.2.1): empty, reason only, reason + properties. */
    p = (struct mqtt_pkt){.type = MQTT_DISCONNECT};
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 2);
    cr_assert(memcmp(buf, "\xe0\x00", 2) == 0);
    p.u.ack.rc = MQTT_RC_DISCONNECT_WITH_WILL;
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 3);
    cr_assert(memcmp(buf, "\xe0\x01\x04", 3) == 0);
    p.u.ack.props.has = BIT(MQTT_PROP_SESSION_EXPIRY);
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 9);
    cr_assert(memcmp(buf, "\xe0\x07\x04\x05\x11\x00\x00\x00\x00", 9) == 0);

    /* AUTH (3.15.2.1): empty only for reason 0 without properties. */
    p = (struct mqtt_pkt){.type = MQTT_AUTH};
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 2);
    cr_assert(memcmp(buf, "\xf0\x00", 2) == 0);
    p.u.ack.rc = MQTT_RC_CONTINUE_AUTH;
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 4);
    cr_assert(memcmp(buf, "\xf0\x02\x18\x00", 4) == 0);
}

Test(mqtt_codec5, encodes_connack_suback_and_unsuback_with_property_length)
{
    struct mqtt_pkt p = {.type = MQTT_CONNACK, .u.connack = {.session_present = true}};
    static const uint8_t rcs[] = {0x11, 0x00};
    uint8_t buf[32];

    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 5);
    cr_assert(memcmp(buf, "\x20\x03\x01\x00\x00", 5) == 0);
    p = (struct mqtt_pkt){.type = MQTT_SUBACK, .u.suback = {.pkt_id = 3, .count = 2, .rcs = rcs}};
    p.u.suback.rcs = (const uint8_t *)"\x02\xa2";
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 7);
    cr_assert(memcmp(buf, "\x90\x05\x00\x03\x00\x02\xa2", 7) == 0);
    p = (struct mqtt_pkt){.type = MQTT_UNSUBACK, .u.suback = {.pkt_id = 3, .count = 2, .rcs = rcs}};
    cr_assert_eq(mqtt_encode(&p, V5, buf, sizeof(buf)), 7);
    cr_assert(memcmp(buf, "\xb0\x05\x00\x03\x00\x11\x00", 7) == 0);
    /* Before 5.0 UNSUBACK is the packet id alone; count and rcs are ignored. */
    cr_assert_eq(mqtt_encode(&p, MQTT_V311, buf, sizeof(buf)), 4);
    cr_assert(memcmp(buf, "\xb0\x02\x00\x03", 4) == 0);
}

Test(mqtt_codec5, encoded_size_is_zero_when_a_property_is_over_its_maximum)
{
    static const uint8_t byte = 'x';
    struct mqtt_pkt p = {.type = MQTT_PUBACK, .u.ack = {.pkt_id = 1}};

    /* A string property's length prefix is 2 bytes (section 1.5.4). */
    p.u.ack.props.has = BIT(MQTT_PROP_REASON_STRING);
    p.u.ack.props.reason_string = (struct mqtt_str){&byte, LIMITS_STRING_BYTES_MAX + 1};
    cr_assert_eq(mqtt_encoded_size(&p, V5), 0);
    p.u.ack.props.reason_string.len = LIMITS_STRING_BYTES_MAX;
    cr_assert_eq(mqtt_encoded_size(&p, V5), 1 + 3 + 2 + 1 + 3 + 1 + 2 + LIMITS_STRING_BYTES_MAX);

    /* A property block is at most a variable byte integer long (2.2.2.1). */
    p.u.ack.props = (struct mqtt_props){.raw = {&byte, MQTT_VARINT_MAX + 1}};
    cr_assert_eq(mqtt_encoded_size(&p, V5), 0);

    /* The remaining length tops out at 268435455 (section 2.1.4). */
    p = (struct mqtt_pkt){.type = MQTT_PUBLISH};
    p.u.publish.topic = S("t");
    p.u.publish.payload = (struct mqtt_str){&byte, LIMITS_REMAINING_LENGTH_MAX - 4};
    cr_assert_eq(mqtt_encoded_size(&p, V5), 5 + (size_t)LIMITS_REMAINING_LENGTH_MAX);
    p.u.publish.payload.len++;
    cr_assert_eq(mqtt_encoded_size(&p, V5), 0);
    p.u.publish.payload.len = 1;
    p.u.publish.props.raw = (struct mqtt_str){&byte, MQTT_VARINT_MAX - 7};
    cr_assert_eq(mqtt_encoded_size(&p, V5), 0);
}

Test(mqtt_codec5, encode_asserts_on_a_property_the_packet_cannot_carry, .signal = SIGABRT)
{
    struct mqtt_pkt p = {.type = MQTT_PUBACK, .u.ack = {.pkt_id = 1}};
    uint8_t buf[32];

    p.u.ack.props.has = BIT(MQTT_PROP_TOPIC_ALIAS);
    p.u.ack.props.topic_alias = 1;
    mqtt_encode(&p, V5, buf, sizeof(buf));
}

Test(mqtt_codec5, encode_asserts_on_a_reason_code_the_packet_cannot_carry, .signal = SIGABRT)
{
    struct mqtt_pkt p = {.type = MQTT_PUBREL, .u.ack = {.pkt_id = 1, .rc = 0x80}};

    mqtt_encoded_size(&p, V5);
}

/* ---- property tests: a packet of @type around property block @props ------ */

/*
 * Build and decode (decode_any, or server direction if @server) a minimal v5
 * packet of @type that carries @props (@n bytes, length prefix added here).
 * For MQTT_CONNECT with @will the block goes into the will properties.
 */
static int dec_props(uint8_t type, bool will, bool server, const uint8_t *props, size_t n)
{
    uint8_t pkt[600];
    size_t b = 0, len;
    struct mqtt_pkt got;
    uint8_t first = (uint8_t)(type << 4);

    cr_assert(n < 128 && n + 32 < sizeof(pkt));
#define PUT(...)                                                                                   \
    do {                                                                                           \
        const uint8_t x_[] = {__VA_ARGS__};                                                        \
        memcpy(pkt + 2 + b, x_, sizeof(x_));                                                       \
        b += sizeof(x_);                                                                           \
    } while (0)
#define PROPS()                                                                                    \
    do {                                                                                           \
        pkt[2 + b++] = (uint8_t)n;                                                                 \
        if (n > 0) {                                                                               \
            memcpy(pkt + 2 + b, props, n);                                                         \
        }                                                                                          \
        b += n;                                                                                    \
    } while (0)
    switch (type) {
    case MQTT_CONNECT:
        PUT(0, 4, 'M', 'Q', 'T', 'T', 5, will ? 0x06 : 0x02, 0, 10);
        if (will) {
            PUT(0, 0, 1, 'c');
            PROPS();
            PUT(0, 1, 't', 0, 0);
        } else {
            PROPS();
            PUT(0, 1, 'c');
        }
        break;
    case MQTT_CONNACK:
        PUT(0, 0);
        PROPS();
        break;
    case MQTT_PUBLISH:
        PUT(0, 1, 't');
        PROPS();
        PUT('p');
        break;
    case MQTT_PUBREL:
        first |= 2;
        /* fall through */
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBCOMP:
        PUT(0, 1, 0);
        PROPS();
        break;
    case MQTT_SUBSCRIBE:
        first |= 2;
        PUT(0, 1);
        PROPS();
        PUT(0, 1, 'a', 0);
        break;
    case MQTT_UNSUBSCRIBE:
        first |= 2;
        PUT(0, 1);
        PROPS();
        PUT(0, 1, 'a');
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        PUT(0, 1);
        PROPS();
        PUT(0);
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        PUT(0);
        PROPS();
        break;
    default:
        cr_assert_fail("no properties in %s", mqtt_type_name(type));
    }
#undef PUT
#undef PROPS
    cr_assert(b < 128);
    pkt[0] = first;
    pkt[1] = (uint8_t)b;
    len = 2 + b;
    return server ? dec(pkt, len, dv5(type), &got) : dec_any(pkt, len, dv5(type), &got);
}

#define P(type, ...) dec_props((type), false, false, B(__VA_ARGS__))
#define PW(...) dec_props(MQTT_CONNECT, true, false, B(__VA_ARGS__))
#define PS(type, ...) dec_props((type), false, true, B(__VA_ARGS__))

/* One encoded example of each property (its id, then a valid value). */
struct prop_example {
    uint8_t id;
    uint8_t len;
    uint8_t bytes[8];
};

static const struct prop_example examples[] = {
    {0x01, 2, {0x01, 1}},
    {0x02, 5, {0x02, 0, 0, 0, 9}},
    {0x03, 4, {0x03, 0, 1, 'x'}},
    {0x08, 4, {0x08, 0, 1, 'r'}},
    {0x09, 4, {0x09, 0, 1, 0xff}},
    {0x0B, 2, {0x0B, 5}},
    {0x11, 5, {0x11, 0, 0, 0, 9}},
    {0x12, 4, {0x12, 0, 1, 'a'}},
    {0x13, 3, {0x13, 0, 9}},
    {0x15, 4, {0x15, 0, 1, 'm'}},
    {0x16, 4, {0x16, 0, 1, 0}},
    {0x17, 2, {0x17, 1}},
    {0x18, 5, {0x18, 0, 0, 0, 9}},
    {0x19, 2, {0x19, 1}},
    {0x1A, 4, {0x1A, 0, 1, 'i'}},
    {0x1C, 4, {0x1C, 0, 1, 's'}},
    {0x1F, 4, {0x1F, 0, 1, 'w'}},
    {0x21, 3, {0x21, 0, 9}},
    {0x22, 3, {0x22, 0, 9}},
    {0x23, 3, {0x23, 0, 9}},
    {0x24, 2, {0x24, 1}},
    {0x25, 2, {0x25, 1}},
    {0x26, 7, {0x26, 0, 1, 'k', 0, 1, 'v'}},
    {0x27, 5, {0x27, 0, 0, 1, 0}},
    {0x28, 2, {0x28, 1}},
    {0x29, 2, {0x29, 1}},
    {0x2A, 2, {0x2A, 1}},
};

/* Where each property may appear (sections 3.1.2.11, 3.1.3.2, 3.2.2.3, ...); 0 = will. */
static bool may_carry(uint8_t type, bool will, uint8_t id)
{
    static const uint8_t connect[] = {0x11, 0x21, 0x27, 0x22, 0x19, 0x17, 0x26, 0x15, 0x16};
    static const uint8_t willp[] = {0x18, 0x01, 0x02, 0x03, 0x08, 0x09, 0x26};
    static const uint8_t connack[] = {0x11, 0x21, 0x24, 0x25, 0x27, 0x12, 0x22, 0x1F, 0x26,
                                      0x28, 0x29, 0x2A, 0x13, 0x1A, 0x1C, 0x15, 0x16};
    static const uint8_t publish[] = {0x01, 0x02, 0x23, 0x08, 0x09, 0x26, 0x0B, 0x03};
    static const uint8_t ack[] = {0x1F, 0x26};
    static const uint8_t subscribe[] = {0x0B, 0x26};
    static const uint8_t unsubscribe[] = {0x26};
    static const uint8_t disconnect[] = {0x11, 0x1F, 0x26, 0x1C};
    static const uint8_t auth[] = {0x15, 0x16, 0x1F, 0x26};
    const uint8_t *set;
    size_t n;

    switch (type) {
    case MQTT_CONNECT:
        set = will ? willp : connect;
        n = will ? sizeof(willp) : sizeof(connect);
        break;
    case MQTT_CONNACK:
        set = connack;
        n = sizeof(connack);
        break;
    case MQTT_PUBLISH:
        set = publish;
        n = sizeof(publish);
        break;
    case MQTT_SUBSCRIBE:
        set = subscribe;
        n = sizeof(subscribe);
        break;
    case MQTT_UNSUBSCRIBE:
        set = unsubscribe;
        n = sizeof(unsubscribe);
        break;
    case MQTT_DISCONNECT:
        set = disconnect;
        n = sizeof(disconnect);
        break;
    case MQTT_AUTH:
        set = auth;
        n = sizeof(auth);
        break;
    default:
        set = ack;
        n = sizeof(ack);
        break; /* PUBACK..PUBCOMP, SUBACK, UNSUBACK */
    }
    return memchr(set, id, n) != NULL;
}

static const uint8_t prop_packets[] = {
    MQTT_CONNECT,  MQTT_CONNACK,    MQTT_PUBLISH,   MQTT_PUBACK, MQTT_PUBREC,
    MQTT_PUBREL,   MQTT_PUBCOMP,    MQTT_SUBSCRIBE, MQTT_SUBACK, MQTT_UNSUBSCRIBE,
    MQTT_UNSUBACK, MQTT_DISCONNECT, MQTT_AUTH};

Test(mqtt_codec5, rejects_a_property_not_valid_for_its_packet_as_malformed_per_section_2_2_2_2)
{
    size_t i, k;
    int w;

    for (i = 0; i < sizeof(prop_packets); i++) {
        for (w = 0; w < (prop_packets[i] == MQTT_CONNECT ? 2 : 1); w++) {
            for (k = 0; k < RM_ARRAY_LEN(examples); k++) {
                const struct prop_example *e = &examples[k];
                bool ok = may_carry(prop_packets[i], w, e->id);
                int rc = dec_props(prop_packets[i], w, false, e->bytes, e->len);
                int want = ok ? 0 : MALFORMED;

                if (ok && !w && prop_packets[i] == MQTT_CONNECT && e->id == MQTT_PROP_AUTH_DATA) {
                    want = PROTO_ERR; /* valid, but needs a method (3.1.2.11.10) */
                }
                cr_assert_eq(rc, want, "%s%s property %#x: %d", mqtt_type_name(prop_packets[i]),
                             w ? " will" : "", e->id, rc);
            }
        }
    }
}

Test(mqtt_codec5, rejects_unknown_property_identifiers_as_malformed_per_section_2_2_2_2)
{
    static const uint8_t unknown[] = {0x00, 0x04, 0x05, 0x06, 0x07, 0x0A, 0x0C, 0x10,
                                      0x14, 0x1B, 0x1D, 0x1E, 0x20, 0x2B, 0x7F};
    size_t i;

    for (i = 0; i < sizeof(unknown); i++) {
        uint8_t blk[] = {unknown[i], 0, 0, 0, 0};

        cr_assert_eq(dec_props(MQTT_PUBLISH, false, false, blk, sizeof(blk)), MALFORMED, "%#x",
                     unknown[i]);
    }
    /* Identifiers are variable byte integers; none is two bytes long in 5.0. */
    cr_assert_eq(P(MQTT_PUBLISH, 0x81, 0x00, 1), MALFORMED);
    cr_assert_eq(P(MQTT_PUBLISH, 0x80, 0x01, 0), MALFORMED);
}

Test(mqtt_codec5, rejects_a_repeated_property_as_a_protocol_error_per_section_2_2_2_2)
{
    size_t i, k;
    int w;

    for (i = 0; i < sizeof(prop_packets); i++) {
        for (w = 0; w < (prop_packets[i] == MQTT_CONNECT ? 2 : 1); w++) {
            for (k = 0; k < RM_ARRAY_LEN(examples); k++) {
                const struct prop_example *e = &examples[k];
                uint8_t blk[16];
                int want;

                if (!may_carry(prop_packets[i], w, e->id)) {
                    continue;
                }
                memcpy(blk, e->bytes, e->len);
                memcpy(blk + e->len, e->bytes, e->len);
                /* User properties repeat; subscription ids only server to client. */
                want = e->id == MQTT_PROP_USER ? 0 : PROTO_ERR;
                if (e->id == MQTT_PROP_SUBSCRIPTION_ID && prop_packets[i] == MQTT_PUBLISH) {
                    want = 0;
                }
                cr_assert_eq(dec_props(prop_packets[i], w, false, blk, 2u * e->len), want,
                             "%s%s property %#x twice", mqtt_type_name(prop_packets[i]),
                             w ? " will" : "", e->id);
            }
        }
    }
}

/*
 * A client's PUBLISH with a subscription identifier twice and a Topic Alias
 * of 0: the server decoder gives the same reason code as mqtt_decode_any()
 * (0x94, the alias), not an earlier one for the repeat; with the alias
 * fixed, the identifier alone is a Protocol Error [MQTT-3.3.4-6]. (Found by
 * fuzz_mqtt_decode.)
 */
Test(mqtt_codec5, a_client_publish_with_repeated_subscription_ids_fails_as_decode_any_does)
{
    const uint8_t bad_alias[] = {0x0b, 0x01, 0x0b, 0x02, 0x23, 0x00, 0x00};
    const uint8_t good_alias[] = {0x0b, 0x01, 0x0b, 0x02, 0x23, 0x00, 0x01};

    cr_assert_eq(dec_props(MQTT_PUBLISH, false, false, bad_alias, sizeof(bad_alias)),
                 -MQTT_RC_TOPIC_ALIAS_INVALID);
    cr_assert_eq(dec_props(MQTT_PUBLISH, false, true, bad_alias, sizeof(bad_alias)),
                 -MQTT_RC_TOPIC_ALIAS_INVALID);
    cr_assert_eq(dec_props(MQTT_PUBLISH, false, false, good_alias, sizeof(good_alias)), 0);
    cr_assert_eq(dec_props(MQTT_PUBLISH, false, true, good_alias, sizeof(good_alias)),
                 -MQTT_RC_PROTOCOL_ERROR); /* [MQTT-3.3.4-6] */
}

Test(mqtt_codec5, keeps_user_properties_in_order_per_mqtt_3_3_2_18)
{
    /* user b=1, payload format 0, user a=22, user ""="" */
    static const uint8_t pkt[] = {0x30, 26,   0, 1, 't', 22, 0x26, 0,   1,   'b',  0, 1, '1', 0x01,
                                  0,    0x26, 0, 1, 'a', 0,  2,    '2', '2', 0x26, 0, 0, 0,   0};
    struct mqtt_pkt got;
    struct mqtt_prop_iter it;
    struct mqtt_prop p;

    cr_assert_eq(dec(pkt, sizeof(pkt), V5, &got), 0);
    cr_assert_eq(got.u.publish.props.user_count, 3);
    cr_assert_eq(got.u.publish.props.has, BIT(MQTT_PROP_USER) | BIT(MQTT_PROP_PAYLOAD_FORMAT));
    mqtt_prop_iter_init(&it, &got.u.publish.props);
    cr_assert(mqtt_prop_next(&it, &p) && p.id == MQTT_PROP_USER);
    assert_str_is(&p.str, "b");
    assert_str_is(&p.val, "1");
    cr_assert(mqtt_prop_next(&it, &p) && p.id == MQTT_PROP_PAYLOAD_FORMAT && p.num == 0);
    cr_assert(mqtt_prop_next(&it, &p) && p.id == MQTT_PROP_USER);
    assert_str_is(&p.str, "a");
    assert_str_is(&p.val, "22");
    cr_assert(mqtt_prop_next(&it, &p) && p.id == MQTT_PROP_USER);
    cr_assert(p.str.len == 0 && p.val.len == 0 && p.bytes.len == 5);
    cr_assert_not(mqtt_prop_next(&it, &p));
}

Test(mqtt_codec5, props_copy_keeps_only_the_requested_ids_in_order)
{
    /* user a, content type, user b, alias, correlation data, user c */
    static const uint8_t blk[] = {0x26, 0, 1, 'a',  0, 0, 0x03, 0,    1, 'x', 0x26, 0, 1, 'b', 0, 0,
                                  0x23, 0, 4, 0x09, 0, 1, 0xff, 0x26, 0, 1,   'c',  0, 0};
    static const uint8_t users[] = {0x26, 0, 1, 'a',  0, 0, 0x26, 0, 1,
                                    'b',  0, 0, 0x26, 0, 1, 'c',  0, 0};
    static const uint8_t app[] = {0x26, 0, 1, 'a',  0, 0, 0x03, 0,    1, 'x', 0x26, 0, 1,
                                  'b',  0, 0, 0x09, 0, 1, 0xff, 0x26, 0, 1,   'c',  0, 0};
    struct mqtt_props pr = {.raw = RAW(blk)};
    uint8_t out[64];

    cr_assert_eq(P(MQTT_PUBLISH, 0x26, 0, 1, 'a', 0, 0, 0x03, 0, 1, 'x', 0x26, 0, 1, 'b', 0, 0,
                   0x23, 0, 4, 0x09, 0, 1, 0xff, 0x26, 0, 1, 'c', 0, 0),
                 0);
    cr_assert_eq(mqtt_props_copy(&pr, BIT(MQTT_PROP_USER), NULL), sizeof(users));
    cr_assert_eq(mqtt_props_copy(&pr, BIT(MQTT_PROP_USER), out), sizeof(users));
    cr_assert(memcmp(out, users, sizeof(users)) == 0);
    /* Everything a forwarded PUBLISH keeps: all but the alias [MQTT-3.3.2-7 etc.]. */
    cr_assert_eq(mqtt_props_copy(&pr, ~BIT(MQTT_PROP_TOPIC_ALIAS), out), sizeof(app));
    cr_assert(memcmp(out, app, sizeof(app)) == 0);
    cr_assert_eq(mqtt_props_copy(&pr, 0, out), 0);
    cr_assert_eq(mqtt_props_copy(&pr, ~UINT64_C(0), out), sizeof(blk));
    cr_assert(memcmp(out, blk, sizeof(blk)) == 0);
}

Test(mqtt_codec5, allows_repeated_subscription_ids_only_in_a_server_to_client_publish)
{
    /* [MQTT-3.3.4-4]: a server's PUBLISH carries one id per matching subscription. */
    cr_assert_eq(P(MQTT_PUBLISH, 0x0B, 1, 0x0B, 0xff, 0xff, 0xff, 0x7f), 0);
    cr_assert_eq(P(MQTT_SUBSCRIBE, 0x0B, 1, 0x0B, 2), PROTO_ERR);
}

Test(mqtt_codec5, rejects_a_subscription_id_in_a_client_publish_per_mqtt_3_3_4_6)
{
    cr_assert_eq(PS(MQTT_PUBLISH, 0x0B, 1), PROTO_ERR);
    cr_assert_eq(PS(MQTT_PUBLISH, 0x0B, 1, 0x0B, 2), PROTO_ERR);
    cr_assert_eq(P(MQTT_PUBLISH, 0x0B, 1), 0);
    cr_assert_eq(PS(MQTT_SUBSCRIBE, 0x0B, 1), 0);
}

Test(mqtt_codec5, rejects_subscription_id_0_per_section_3_3_2_3_8)
{
    /* "It is a Protocol Error if the Subscription Identifier has a value of 0." */
    cr_assert_eq(P(MQTT_PUBLISH, 0x0B, 0), PROTO_ERR);
    cr_assert_eq(P(MQTT_SUBSCRIBE, 0x0B, 0), PROTO_ERR);
    cr_assert_eq(P(MQTT_SUBSCRIBE, 0x0B, 0xff, 0xff, 0xff, 0x7f), 0); /* 268435455 */
    cr_assert_eq(P(MQTT_SUBSCRIBE, 0x0B, 0xff, 0xff, 0xff, 0xff, 0x01), MALFORMED);
}

Test(mqtt_codec5, rejects_topic_alias_0_per_mqtt_3_3_2_8)
{
    /* Answered with DISCONNECT 0x94 Topic Alias invalid. */
    cr_assert_eq(P(MQTT_PUBLISH, 0x23, 0, 0), -MQTT_RC_TOPIC_ALIAS_INVALID);
    cr_assert_eq(PS(MQTT_PUBLISH, 0x23, 0, 0), -MQTT_RC_TOPIC_ALIAS_INVALID);
    cr_assert_eq(P(MQTT_PUBLISH, 0x23, 0, 1), 0);
    cr_assert_eq(P(MQTT_PUBLISH, 0x23, 0xff, 0xff), 0);
}

Test(mqtt_codec5, rejects_receive_maximum_0_per_section_3_1_2_11_3)
{
    cr_assert_eq(P(MQTT_CONNECT, 0x21, 0, 0), PROTO_ERR);
    cr_assert_eq(P(MQTT_CONNACK, 0x21, 0, 0), PROTO_ERR);
    cr_assert_eq(P(MQTT_CONNECT, 0x21, 0, 1), 0);
}

Test(mqtt_codec5, rejects_maximum_packet_size_0_per_section_3_1_2_11_4)
{
    cr_assert_eq(P(MQTT_CONNECT, 0x27, 0, 0, 0, 0), PROTO_ERR);
    cr_assert_eq(P(MQTT_CONNACK, 0x27, 0, 0, 0, 0), PROTO_ERR);
    cr_assert_eq(P(MQTT_CONNECT, 0x27, 0, 0, 0, 1), 0);
}

Test(mqtt_codec5, rejects_zero_one_properties_with_any_other_value)
{
    /* Payload Format (3.3.2.3.2), Request Problem / Response Information
     * (3.1.2.11.7, .6), Maximum QoS, Retain / Wildcard / Subscription
     * Identifier / Shared Subscription Available (3.2.2.3.4, .5, .11-.13). */
    static const uint8_t ids[] = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A};
    static const uint8_t in[] = {MQTT_PUBLISH, MQTT_CONNECT, MQTT_CONNECT, MQTT_CONNACK,
                                 MQTT_CONNACK, MQTT_CONNACK, MQTT_CONNACK, MQTT_CONNACK};
    size_t i;
    unsigned int v;

    for (i = 0; i < sizeof(ids); i++) {
        for (v = 0; v < 256; v++) {
            uint8_t blk[2] = {ids[i], (uint8_t)v};

            cr_assert_eq(dec_props(in[i], false, false, blk, 2), v <= 1 ? 0 : PROTO_ERR,
                         "property %#x value %u", ids[i], v);
        }
    }
    cr_assert_eq(PW(0x01, 2), PROTO_ERR); /* the will's payload format too */
}

Test(mqtt_codec5, rejects_string_properties_that_are_not_utf8_per_mqtt_1_5_4_1_and_2)
{
    static const uint8_t str_ids[] = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F};
    static const uint8_t in[] = {MQTT_PUBLISH, MQTT_PUBLISH, MQTT_CONNACK, MQTT_CONNACK,
                                 MQTT_CONNACK, MQTT_CONNACK, MQTT_CONNACK};
    static const uint8_t bad[][2] = {{0xc0, 0x80}, {0xed, 0xa0}, {0x00, 'a'}, {0xff, 'a'}};
    size_t i, k;

    for (i = 0; i < sizeof(str_ids); i++) {
        for (k = 0; k < RM_ARRAY_LEN(bad); k++) {
            uint8_t blk[5] = {str_ids[i], 0, 2, bad[k][0], bad[k][1]};

            cr_assert_eq(dec_props(in[i], false, false, blk, 5), MALFORMED, "%#x bad %zu",
                         str_ids[i], k);
        }
    }
    /* Both strings of a user property [MQTT-1.5.7-1]. */
    cr_assert_eq(P(MQTT_PUBACK, 0x26, 0, 1, 0xc3, 0, 1, 'v'), MALFORMED);
    cr_assert_eq(P(MQTT_PUBACK, 0x26, 0, 1, 'k', 0, 1, 0x00), MALFORMED);
    /* Binary properties take any bytes. */
    cr_assert_eq(P(MQTT_PUBLISH, 0x09, 0, 2, 0xc0, 0x00), 0);
    cr_assert_eq(P(MQTT_AUTH, 0x15, 0, 1, 'm', 0x16, 0, 2, 0xed, 0xa0), 0);
}

Test(mqtt_codec5, rejects_a_response_topic_with_wildcards_per_mqtt_3_3_2_14)
{
    cr_assert_eq(P(MQTT_PUBLISH, 0x08, 0, 3, 'a', '/', '+'), PROTO_ERR);
    cr_assert_eq(P(MQTT_PUBLISH, 0x08, 0, 1, '#'), PROTO_ERR);
    cr_assert_eq(PW(0x08, 0, 3, 'a', '/', '#'), PROTO_ERR);
    cr_assert_eq(P(MQTT_PUBLISH, 0x08, 0, 3, 'a', '/', 'b'), 0);
}

Test(mqtt_codec5, rejects_a_property_block_that_overruns_the_packet_as_malformed)
{
    struct mqtt_pkt got;

    /* Property length 5 in a PUBACK with 1 byte after it (section 2.2.2.1). */
    cr_assert_eq(dec_any(B(0x40, 5, 0, 1, 0, 5, 0x1f), V5, &got), MALFORMED);
    /* A value cut short by the end of the block. */
    cr_assert_eq(P(MQTT_PUBACK, 0x1f, 0, 2, 'a'), MALFORMED);
    cr_assert_eq(P(MQTT_CONNECT, 0x11, 0, 0, 0), MALFORMED);
    cr_assert_eq(P(MQTT_CONNECT, 0x21, 0), MALFORMED);
    cr_assert_eq(P(MQTT_PUBACK, 0x26, 0, 1, 'k'), MALFORMED);
    cr_assert_eq(P(MQTT_PUBLISH, 0x0B), MALFORMED);
    cr_assert_eq(P(MQTT_PUBLISH, 0x0B, 0x80), MALFORMED);
    /* A property length of more than 4 bytes, or not in the fewest [MQTT-1.5.5-1]. */
    cr_assert_eq(dec_any(B(0x40, 8, 0, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x00), V5, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x40, 5, 0, 1, 0, 0x80, 0x00), V5, &got), MALFORMED);
    cr_assert_eq(P(MQTT_SUBSCRIBE, 0x0B, 0x81, 0x00), MALFORMED);
    /* A subscription id is at most 4 bytes. */
    cr_assert_eq(P(MQTT_SUBSCRIBE, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01), MALFORMED);
}

Test(mqtt_codec5, reports_malformed_over_protocol_error_in_one_block)
{
    /* A repeated property first, then an invalid identifier: malformed wins. */
    cr_assert_eq(P(MQTT_PUBACK, 0x1f, 0, 0, 0x1f, 0, 0, 0x23, 0, 1), MALFORMED);
    cr_assert_eq(P(MQTT_PUBACK, 0x1f, 0, 0, 0x1f, 0, 0), PROTO_ERR);
}

/* ---- reason codes ------------------------------------------------------- */

struct rc_case {
    uint8_t type;
    const uint8_t *codes;
    size_t n;
};

/* Reason code tables of sections 3.2.2.2, 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1,
 * 3.9.3, 3.11.3, 3.14.2.1 and 3.15.2.1, written out independently here. */
static const uint8_t t_connack[] = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
                                    0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
                                    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F};
static const uint8_t t_puback[] = {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99};
static const uint8_t t_pubrel[] = {0x00, 0x92};
static const uint8_t t_suback[] = {0x00, 0x01, 0x02, 0x80, 0x83, 0x87,
                                   0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2};
static const uint8_t t_unsuback[] = {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91};
static const uint8_t t_disconnect[] = {0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D,
                                       0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
                                       0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2};
static const uint8_t t_auth[] = {0x00, 0x18, 0x19};

static int dec_rc(uint8_t type, uint8_t rc)
{
    uint8_t pkt[8];
    size_t len = 0;
    struct mqtt_pkt got;

    switch (type) {
    case MQTT_CONNACK:
        memcpy(pkt, (uint8_t[]){0x20, 3, 0, rc, 0}, 5);
        len = 5;
        break;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        memcpy(pkt, (uint8_t[]){(uint8_t)(type << 4), 4, 0, 1, 0, rc}, 6);
        len = 6;
        break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        memcpy(pkt, (uint8_t[]){(uint8_t)(type << 4), 2, rc, 0}, 4);
        len = 4;
        break;
    default:
        memcpy(pkt, (uint8_t[]){(uint8_t)(type << 4 | (type == MQTT_PUBREL ? 2 : 0)), 3, 0, 1, rc},
               5);
        len = 5;
        break;
    }
    return dec_any(pkt, len, V5, &got);
}

Test(mqtt_codec5, rejects_reason_codes_not_allowed_for_the_packet_per_mqtt_3_4_2_1_etc)
{
    /* [MQTT-3.2.2-8, 3.4.2-1, 3.5.2-1, 3.6.2-1, 3.7.2-1, 3.9.3-2, 3.11.3-2, 3.14.2-1]. */
    static const struct rc_case cases[] = {
        {MQTT_CONNACK, t_connack, sizeof(t_connack)},
        {MQTT_PUBACK, t_puback, sizeof(t_puback)},
        {MQTT_PUBREC, t_puback, sizeof(t_puback)},
        {MQTT_PUBREL, t_pubrel, sizeof(t_pubrel)},
        {MQTT_PUBCOMP, t_pubrel, sizeof(t_pubrel)},
        {MQTT_SUBACK, t_suback, sizeof(t_suback)},
        {MQTT_UNSUBACK, t_unsuback, sizeof(t_unsuback)},
        {MQTT_DISCONNECT, t_disconnect, sizeof(t_disconnect)},
        {MQTT_AUTH, t_auth, sizeof(t_auth)},
    };
    size_t i;
    unsigned int rc;

    for (i = 0; i < RM_ARRAY_LEN(cases); i++) {
        for (rc = 0; rc < 256; rc++) {
            bool ok = memchr(cases[i].codes, (int)rc, cases[i].n) != NULL;

            cr_assert_eq(dec_rc(cases[i].type, (uint8_t)rc), ok ? 0 : MALFORMED, "%s rc %#x",
                         mqtt_type_name(cases[i].type), rc);
        }
    }
}

/* ---- short forms -------------------------------------------------------- */

Test(mqtt_codec5, decodes_ack_short_forms_per_section_3_4_2_1)
{
    static const uint8_t first[] = {0x40, 0x50, 0x62, 0x70};
    struct mqtt_pkt got;
    size_t i;

    for (i = 0; i < sizeof(first); i++) {
        uint8_t rc = first[i] >= 0x60 ? 0x92 : 0x10;
        uint8_t pkt[8] = {first[i], 2, 0, 7, rc, 0, 0, 0};

        /* Remaining length 2: reason 0, no properties. */
        cr_assert_eq(dec_any(pkt, 4, V5, &got), 0);
        cr_assert(got.u.ack.pkt_id == 7 && got.u.ack.rc == 0 && got.u.ack.props.has == 0);
        /* 3: a reason code, no properties (3.4.2.2.1). */
        pkt[1] = 3;
        cr_assert_eq(dec_any(pkt, 5, V5, &got), 0);
        cr_assert(got.u.ack.rc == rc && got.u.ack.props.raw.len == 0);
        /* 4: a reason code and an empty property block. */
        pkt[1] = 4;
        cr_assert_eq(dec_any(pkt, 6, V5, &got), 0);
        cr_assert_eq(got.u.ack.rc, rc);
        /* Anything after the block is malformed; so is a shorter body. */
        pkt[1] = 5;
        cr_assert_eq(dec_any(pkt, 7, V5, &got), MALFORMED);
        pkt[1] = 1;
        cr_assert_eq(dec_any(pkt, 3, V5, &got), MALFORMED);
        pkt[1] = 2;
        pkt[3] = 0;
        cr_assert_eq(dec_any(pkt, 4, V5, &got), MALFORMED); /* [MQTT-2.2.1-3 etc.] id 0 */
    }
}

Test(mqtt_codec5, decodes_disconnect_short_forms_per_section_3_14_2_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xe0, 0), V5, &got), 0);
    cr_assert(got.type == MQTT_DISCONNECT && got.u.ack.rc == 0 && got.u.ack.props.has == 0);
    cr_assert_eq(dec(B(0xe0, 1, 0x04), V5, &got), 0);
    cr_assert_eq(got.u.ack.rc, MQTT_RC_DISCONNECT_WITH_WILL);
    cr_assert_eq(dec(B(0xe0, 2, 0x04, 0), V5, &got), 0);
    cr_assert_eq(dec(B(0xe0, 7, 0x00, 5, 0x11, 0, 0, 0, 5), V5, &got), 0);
    cr_assert(got.u.ack.props.has == BIT(MQTT_PROP_SESSION_EXPIRY) &&
              got.u.ack.props.session_expiry == 5);
    cr_assert_eq(dec(B(0xe0, 3, 0x00, 0, 0), V5, &got), MALFORMED);
    /* [MQTT-3.14.1-1]: reserved flag bits. */
    cr_assert_eq(dec(B(0xe1, 0), V5, &got), MALFORMED);
    /* Before 5.0 DISCONNECT has no body. */
    cr_assert_eq(dec(B(0xe0, 1, 0x00), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec5, decodes_auth_empty_or_whole_per_section_3_15_2_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xf0, 0), V5, &got), 0);
    cr_assert(got.type == MQTT_AUTH && got.u.ack.rc == 0);
    cr_assert_eq(dec(B(0xf0, 2, 0x18, 0), V5, &got), 0);
    cr_assert_eq(got.u.ack.rc, MQTT_RC_CONTINUE_AUTH);
    cr_assert_eq(dec(B(0xf0, 9, 0x19, 7, 0x15, 0, 1, 'm', 0x16, 0, 0), V5, &got), 0);
    assert_str_is(&got.u.ack.props.auth_method, "m");
    /* A reason code without the property length is not a form AUTH has. */
    cr_assert_eq(dec(B(0xf0, 1, 0x18), V5, &got), MALFORMED);
    /* [MQTT-3.15.1-1]: flags 0. */
    cr_assert_eq(dec(B(0xf2, 0), V5, &got), MALFORMED);
    /* AUTH does not exist before 5.0. */
    cr_assert_eq(dec(B(0xf0, 0), MQTT_V311, &got), PROTO_ERR);
}

/* ---- PUBLISH ------------------------------------------------------------ */

Test(mqtt_codec5, accepts_an_empty_topic_only_with_a_topic_alias_per_section_3_3_2_1)
{
    struct mqtt_pkt got;

    /* "It is a Protocol Error if the Topic Name is zero length and there is no
     * Topic Alias." The broker resolves the alias. */
    cr_assert_eq(dec(B(0x30, 3, 0, 0, 0), V5, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0x30, 6, 0, 0, 3, 0x23, 0, 1), V5, &got), 0);
    cr_assert_eq(got.u.publish.topic.len, 0);
    cr_assert_eq(got.u.publish.props.topic_alias, 1);
    cr_assert_eq(dec(B(0x30, 6, 0, 0, 3, 0x23, 0, 0), V5, &got), -MQTT_RC_TOPIC_ALIAS_INVALID);
    /* Still a malformed packet before 5.0 [MQTT-4.7.3-1]. */
    cr_assert_eq(dec(B(0x30, 2, 0, 0), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec5, decodes_publish_props_between_packet_id_and_payload)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x32, 10, 0, 1, 't', 0, 5, 2, 0x01, 1, 'h', 'i'), V5, &got), 0);
    cr_assert_eq(got.u.publish.pkt_id, 5);
    cr_assert_eq(got.u.publish.props.payload_format, 1);
    cr_assert(got.u.publish.payload.len == 2 && memcmp(got.u.publish.payload.ptr, "hi", 2) == 0);
    /* The property length is required in 5.0 [MQTT-2.2.2-1]. */
    cr_assert_eq(dec(B(0x30, 3, 0, 1, 't'), V5, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 4, 0, 1, 't', 0), V5, &got), 0);
    cr_assert_eq(got.u.publish.payload.len, 0);
    /* Wildcards in the topic stay malformed [MQTT-3.3.2-2]. */
    cr_assert_eq(dec(B(0x30, 4, 0, 1, '#', 0), V5, &got), MALFORMED);
}

/* ---- CONNECT and CONNACK ------------------------------------------------ */

#define CONNECT5(flags, ...)                                                                       \
    B(0x10, 10 + sizeof((const uint8_t[]){__VA_ARGS__}), 0, 4, 'M', 'Q', 'T', 'T', 5, (flags), 0,  \
      10, __VA_ARGS__)

Test(mqtt_codec5, decodes_connect_level_5_with_properties_and_will_properties)
{
    struct mqtt_pkt got;
    const struct mqtt_connect *c = &got.u.connect;

    cr_assert_eq(dec(CONNECT5(0x2e, 5, 0x11, 0, 0, 0, 9, 0, 2, 'i', 'd', 5, 0x18, 0, 0, 0, 3, 0, 1,
                              'w', 0, 1, 'p'),
                     0, &got),
                 0);
    cr_assert_eq(c->version, V5);
    cr_assert(c->will && c->will_retain && c->will_qos == 1 && c->clean_session);
    cr_assert_eq(c->props.session_expiry, 9);
    cr_assert_eq(c->will_props.will_delay, 3);
    cr_assert_eq(c->will_props.has, BIT(MQTT_PROP_WILL_DELAY));
    assert_str_is(&c->client_id, "id");
    assert_str_is(&c->will_topic, "w");
    /* Without the will, the will properties are not there. */
    cr_assert_eq(dec(CONNECT5(0x02, 0, 0, 1, 'c', 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT5(0x02, 0, 0, 1, 'c'), 0, &got), 0);
    cr_assert_eq(got.u.connect.will_props.has, 0);
}

Test(mqtt_codec5, accepts_a_password_without_a_user_name_per_section_3_1_2_9)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT5(0x42, 0, 0, 1, 'c', 0, 1, 'p'), 0, &got), 0);
    cr_assert(got.u.connect.has_password && !got.u.connect.has_username);
    /* 3.1.1 still refuses it [MQTT-3.1.2-22]. */
    cr_assert_eq(
        dec(B(0x10, 16, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x42, 0, 10, 0, 1, 'c', 0, 1, 'p'), 0, &got),
        MALFORMED);
}

Test(mqtt_codec5, keeps_connect_flag_rules_per_mqtt_3_1_2_3_and_3_1_2_11_to_13)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT5(0x03, 0, 0, 1, 'c'), 0, &got), MALFORMED); /* reserved */
    cr_assert_eq(dec(CONNECT5(0x0a, 0, 0, 1, 'c'), 0, &got), MALFORMED); /* QoS, no will */
    cr_assert_eq(dec(CONNECT5(0x22, 0, 0, 1, 'c'), 0, &got), MALFORMED); /* retain, no will */
    cr_assert_eq(dec(CONNECT5(0x1e, 0, 0, 1, 'c', 0, 0, 1, 'w', 0, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT5(0x02, 0, 0, 1, 0xc0), 0, &got), MALFORMED); /* [MQTT-3.1.3-4] */
    cr_assert_eq(dec(CONNECT5(0x82, 0, 0, 1, 'c', 0, 1, 0xff), 0, &got), MALFORMED);
}

Test(mqtt_codec5, rejects_authentication_data_without_a_method_per_section_3_1_2_11_10)
{
    cr_assert_eq(P(MQTT_CONNECT, 0x16, 0, 1, 'd'), PROTO_ERR);
    cr_assert_eq(P(MQTT_CONNECT, 0x16, 0, 1, 'd', 0x15, 0, 1, 'm'), 0);
}

Test(mqtt_codec5, decodes_connack_5_and_checks_flags_per_mqtt_3_2_2_1_and_3_2_2_6)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec_any(B(0x20, 3, 1, 0, 0), V5, &got), 0);
    cr_assert(got.u.connack.session_present && got.u.connack.rc == 0);
    cr_assert_eq(dec_any(B(0x20, 3, 2, 0, 0), V5, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x20, 3, 1, 0x87, 0), V5, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x20, 2, 0, 0), V5, &got), MALFORMED); /* no property length */
    cr_assert_eq(dec_any(B(0x20, 4, 0, 0, 0, 0), V5, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x20, 6, 0, 0x87, 3, 0x24, 0, 0x2a), V5, &got), MALFORMED);
}

/* ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK --------------------------- */

static int dec_subopt(uint8_t opt, const char *filter)
{
    uint8_t pkt[64];
    size_t fl = strlen(filter);
    struct mqtt_pkt got;

    pkt[0] = 0x82;
    pkt[1] = (uint8_t)(2 + 1 + 2 + fl + 1);
    pkt[2] = 0;
    pkt[3] = 1;
    pkt[4] = 0;
    pkt[5] = 0;
    pkt[6] = (uint8_t)fl;
    memcpy(pkt + 7, filter, fl);
    pkt[7 + fl] = opt;
    return dec(pkt, 8 + fl, V5, &got);
}

Test(mqtt_codec5, rejects_subscription_options_reserved_bits_per_mqtt_3_8_3_5)
{
    unsigned int opt;

    for (opt = 0; opt < 256; opt++) {
        int want = 0;

        if (opt & 0xc0) {
            want = MALFORMED;
        } else if ((opt & 3) == 3 || (opt >> 4) == 3) {
            want = PROTO_ERR; /* "It is a Protocol Error ..." (section 3.8.3.1) */
        }
        cr_assert_eq(dec_subopt((uint8_t)opt, "a/b"), want, "options %#x", opt);
    }
}

Test(mqtt_codec5, decodes_every_subscription_option)
{
    struct mqtt_pkt got;
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;

    cr_assert_eq(dec(B(0x82, 7, 0, 1, 0, 0, 1, 'a', 0x2e), V5, &got), 0);
    mqtt_sub_iter_init(&it, &got);
    cr_assert(mqtt_sub_next(&it, &e));
    cr_assert_eq(e.options & MQTT_SUBOPT_QOS, 2);
    cr_assert(e.options & MQTT_SUBOPT_NO_LOCAL);
    cr_assert(e.options & MQTT_SUBOPT_RAP);
    cr_assert_eq(e.options >> MQTT_SUBOPT_RH_SHIFT, 2);
    cr_assert_not(mqtt_sub_next(&it, &e));
    /* Before 5.0 bits 2-7 are reserved [MQTT-3.8.3-4 of 3.1.1]. */
    cr_assert_eq(dec(B(0x82, 6, 0, 1, 0, 1, 'a', 0x04), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec5, rejects_no_local_on_a_shared_subscription_per_mqtt_3_8_3_4)
{
    cr_assert_eq(dec_subopt(MQTT_SUBOPT_NO_LOCAL, "$share/g/a"), PROTO_ERR);
    cr_assert_eq(dec_subopt(1, "$share/g/a"), 0);
    cr_assert_eq(dec_subopt(MQTT_SUBOPT_NO_LOCAL, "$shared/a"), 0);
}

Test(mqtt_codec5, decodes_subscribe_and_unsubscribe_properties_before_the_entries)
{
    struct mqtt_pkt got;
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;

    cr_assert_eq(dec(B(0x82, 9, 0, 1, 2, 0x0B, 9, 0, 1, 'a', 1), V5, &got), 0);
    cr_assert_eq(got.u.subscribe.props.sub_id, 9);
    cr_assert_eq(got.u.subscribe.count, 1);
    mqtt_sub_iter_init(&it, &got);
    cr_assert(mqtt_sub_next(&it, &e));
    assert_str_is(&e.filter, "a");
    cr_assert_eq(dec(B(0xa2, 11, 0, 1, 5, 0x26, 0, 0, 0, 0, 0, 1, 'a'), V5, &got), 0);
    cr_assert_eq(got.u.subscribe.props.user_count, 1);
    cr_assert_eq(got.u.subscribe.count, 1);
    /* [MQTT-3.8.3-2], [MQTT-3.10.3-2]: at least one entry after the block. */
    cr_assert_eq(dec(B(0x82, 3, 0, 1, 0), V5, &got), MALFORMED);
    cr_assert_eq(dec(B(0xa2, 3, 0, 1, 0), V5, &got), MALFORMED);
}

Test(mqtt_codec5, decodes_unsuback_5_codes_and_unsuback_before_5_without_per_mqtt_3_11_3_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec_any(B(0xb0, 5, 0, 4, 0, 0x11, 0x00), V5, &got), 0);
    cr_assert_eq(got.u.suback.pkt_id, 4);
    cr_assert_eq(got.u.suback.count, 2);
    cr_assert(memcmp(got.u.suback.rcs, "\x11\x00", 2) == 0);
    cr_assert_eq(dec_any(B(0xb0, 3, 0, 4, 0), V5, &got), MALFORMED); /* no codes */
    cr_assert_eq(dec_any(B(0xb0, 2, 0, 4), MQTT_V311, &got), 0);
    cr_assert(got.u.suback.pkt_id == 4 && got.u.suback.count == 0 && got.u.suback.rcs == NULL);
    cr_assert_eq(dec_any(B(0xb0, 3, 0, 4, 0), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec5, decodes_suback_5_after_its_properties)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec_any(B(0x90, 8, 0, 4, 4, 0x1f, 0, 1, 'r', 0x9e), V5, &got), 0);
    cr_assert_eq(got.u.suback.count, 1);
    cr_assert_eq(got.u.suback.rcs[0], MQTT_RC_SHARED_SUBS_NOT_SUPPORTED);
    assert_str_is(&got.u.suback.props.reason_string, "r");
    cr_assert_eq(dec_any(B(0x90, 3, 0, 4, 0), V5, &got), MALFORMED);
    /* 3.1.1 codes stay 3.1.1's [MQTT-3.9.3-2]. */
    cr_assert_eq(dec_any(B(0x90, 3, 0, 4, 0x9e), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec5, server_direction_takes_auth_and_refuses_server_only_packets)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xf0, 0), V5, &got), 0);
    cr_assert_eq(dec(B(0x20, 3, 0, 0, 0), V5, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0x90, 4, 0, 1, 0, 0), V5, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0xb0, 4, 0, 1, 0, 0), V5, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0xd0, 0), V5, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0xf0, 0), 0, &got), PROTO_ERR); /* [MQTT-3.1.0-1] */
}
