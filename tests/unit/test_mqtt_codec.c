/*
 * test_mqtt_codec.c - unit tests for core/mqtt_codec (MQTT 3.1 and 3.1.1).
 *
 * Every decode in this file runs from a buffer that ends exactly at a
 * PROT_NONE page, so any read past the packet crashes the test. Valid packets
 * are also fed at every split point. Normative ids are cited per test.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"

#include "tests/unit/codec_helpers.h"

/* @want was built for encoding, @got decoded from its bytes with @version. */
static void assert_pkt_eq(const struct mqtt_pkt *want, const struct mqtt_pkt *got, uint8_t version)
{
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;
    uint32_t i;

    cr_assert_eq(got->type, want->type);
    switch (want->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *a = &want->u.connect, *b = &got->u.connect;

        cr_assert_eq(b->version, a->version);
        cr_assert_eq(b->clean_session, a->clean_session);
        cr_assert_eq(b->keepalive_s, a->keepalive_s);
        assert_str_eq(&a->client_id, &b->client_id, "client id");
        cr_assert_eq(b->will, a->will);
        cr_assert_eq(b->will_qos, a->will_qos);
        cr_assert_eq(b->will_retain, a->will_retain);
        if (a->will) {
            assert_str_eq(&a->will_topic, &b->will_topic, "will topic");
            assert_str_eq(&a->will_payload, &b->will_payload, "will payload");
        }
        cr_assert_eq(b->has_username, a->has_username);
        cr_assert_eq(b->has_password, a->has_password);
        if (a->has_username) {
            assert_str_eq(&a->username, &b->username, "username");
        }
        if (a->has_password) {
            assert_str_eq(&a->password, &b->password, "password");
        }
        break;
    }
    case MQTT_CONNACK:
        cr_assert_eq(got->u.connack.rc, want->u.connack.rc);
        cr_assert_eq(got->u.connack.session_present,
                     version == MQTT_V311 && want->u.connack.session_present);
        break;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *a = &want->u.publish, *b = &got->u.publish;

        cr_assert_eq(b->qos, a->qos);
        cr_assert_eq(b->dup, a->dup);
        cr_assert_eq(b->retain, a->retain);
        cr_assert_eq(b->pkt_id, a->qos > 0 ? a->pkt_id : 0);
        assert_str_eq(&a->topic, &b->topic, "topic");
        assert_str_eq(&a->payload, &b->payload, "payload");
        break;
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        cr_assert_eq(got->u.ack.pkt_id, want->u.ack.pkt_id);
        break;
    case MQTT_UNSUBACK: /* no codes before 5.0 */
        cr_assert_eq(got->u.suback.pkt_id, want->u.suback.pkt_id);
        cr_assert_eq(got->u.suback.count, 0);
        cr_assert_null(got->u.suback.rcs);
        break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        cr_assert_eq(got->u.subscribe.pkt_id, want->u.subscribe.pkt_id);
        cr_assert_eq(got->u.subscribe.count, want->u.subscribe.count);
        cr_assert_null(got->u.subscribe.entries);
        mqtt_sub_iter_init(&it, got);
        for (i = 0; i < want->u.subscribe.count; i++) {
            cr_assert(mqtt_sub_next(&it, &e), "entry %u missing", i);
            assert_str_eq(&want->u.subscribe.entries[i].filter, &e.filter, "filter");
            cr_assert_eq(e.options,
                         want->type == MQTT_SUBSCRIBE ? want->u.subscribe.entries[i].options : 0);
        }
        cr_assert_not(mqtt_sub_next(&it, &e));
        break;
    case MQTT_SUBACK:
        cr_assert_eq(got->u.suback.pkt_id, want->u.suback.pkt_id);
        cr_assert_eq(got->u.suback.count, want->u.suback.count);
        cr_assert(memcmp(got->u.suback.rcs, want->u.suback.rcs, want->u.suback.count) == 0);
        break;
    default:
        break;
    }
}

static const struct mqtt_sub_entry sample_subs[] = {
    {.filter = S("a/b"), .options = 0},
    {.filter = S("sport/+/player1"), .options = 1},
    {.filter = S("#"), .options = 2},
    {.filter = S("caf\xc3\xa9/\xf0\x9f\x98\x80"), .options = 1},
};
static const uint8_t sample_rcs[] = {0, 1, 2, MQTT_SUBACK_FAILURE};
static const uint8_t binary_bytes[] = {0x00, 0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80};

/* One packet of every type, and variants, for @version. Returns the count. */
static size_t samples(struct mqtt_pkt *s, uint8_t version)
{
    size_t n = 0;
    const struct mqtt_str bin = {binary_bytes, sizeof(binary_bytes)};

    memset(s, 0, SAMPLES_MAX * sizeof(*s));
    s[n].type = MQTT_CONNECT; /* everything set */
    s[n].u.connect = (struct mqtt_connect){.version = version,
                                           .clean_session = true,
                                           .keepalive_s = 60,
                                           .client_id = S("client-1"),
                                           .will = true,
                                           .will_qos = 1,
                                           .will_retain = true,
                                           .will_topic = S("will/t\xc3\xa9"),
                                           .will_payload = bin,
                                           .has_username = true,
                                           .has_password = true,
                                           .username = S("user"),
                                           .password = bin};
    n++;
    s[n].type = MQTT_CONNECT; /* minimal, empty client id */
    s[n].u.connect = (struct mqtt_connect){.version = version, .keepalive_s = 0};
    n++;
    s[n].type = MQTT_CONNECT; /* username only, will QoS 2 without retain */
    s[n].u.connect = (struct mqtt_connect){.version = version,
                                           .keepalive_s = 65535,
                                           .client_id = S("c"),
                                           .will = true,
                                           .will_qos = 2,
                                           .will_topic = S("w"),
                                           .has_username = true,
                                           .username = S("")};
    n++;
    s[n].type = MQTT_CONNACK;
    s[n].u.connack = (struct mqtt_connack){.session_present = version == MQTT_V311, .rc = 0};
    n++;
    s[n].type = MQTT_CONNACK;
    s[n].u.connack = (struct mqtt_connack){.rc = MQTT_CONNACK_NOT_AUTHORIZED};
    n++;
    s[n].type = MQTT_PUBLISH; /* QoS 0, empty payload */
    s[n].u.publish = (struct mqtt_publish){.topic = S("a/b")};
    n++;
    s[n].type = MQTT_PUBLISH;
    s[n].u.publish = (struct mqtt_publish){.qos = 1,
                                           .dup = true,
                                           .retain = true,
                                           .topic = S("\xe6\x97\xa5/$x/ /"),
                                           .pkt_id = 1,
                                           .payload = bin};
    n++;
    s[n].type = MQTT_PUBLISH;
    s[n].u.publish =
        (struct mqtt_publish){.qos = 2, .topic = S("/"), .pkt_id = 65535, .payload = S("hello")};
    n++;
    s[n].type = MQTT_PUBACK;
    s[n].u.ack.pkt_id = 1;
    n++;
    s[n].type = MQTT_PUBREC;
    s[n].u.ack.pkt_id = 0x1234;
    n++;
    s[n].type = MQTT_PUBREL;
    s[n].u.ack.pkt_id = 0xffff;
    n++;
    s[n].type = MQTT_PUBCOMP;
    s[n].u.ack.pkt_id = 0x8000;
    n++;
    s[n].type = MQTT_SUBSCRIBE;
    s[n].u.subscribe = (struct mqtt_subscribe){
        .pkt_id = 7, .count = RM_ARRAY_LEN(sample_subs), .entries = sample_subs};
    n++;
    s[n].type = MQTT_SUBACK;
    s[n].u.suback =
        (struct mqtt_suback){.pkt_id = 7, .count = RM_ARRAY_LEN(sample_rcs), .rcs = sample_rcs};
    n++;
    s[n].type = MQTT_UNSUBSCRIBE;
    s[n].u.subscribe = (struct mqtt_subscribe){.pkt_id = 8, .count = 2, .entries = sample_subs};
    n++;
    s[n].type = MQTT_UNSUBACK;
    s[n].u.suback.pkt_id = 8;
    n++;
    s[n++].type = MQTT_PINGREQ;
    s[n++].type = MQTT_PINGRESP;
    s[n++].type = MQTT_DISCONNECT;
    cr_assert(n <= SAMPLES_MAX);
    return n;
}

/* The version a packet of @type is decoded with on a @version connection. */
static uint8_t dec_version(uint8_t type, uint8_t version)
{
    return type == MQTT_CONNECT ? 0 : version;
}

static bool server_bound(uint8_t type)
{
    return type != MQTT_CONNACK && type != MQTT_SUBACK && type != MQTT_UNSUBACK &&
           type != MQTT_PINGRESP;
}

/* ---- round trips -------------------------------------------------------- */

static void round_trip_all(uint8_t version)
{
    struct mqtt_pkt s[SAMPLES_MAX];
    size_t n = samples(s, version);
    bool seen[MQTT_AUTH + 1] = {false};
    size_t i;
    int t;

    for (i = 0; i < n; i++) {
        uint8_t buf[ENC_MAX];
        struct mqtt_pkt got;
        size_t size = mqtt_encoded_size(&s[i], version);
        size_t wrote;
        uint8_t dv = dec_version(s[i].type, version);

        cr_assert(size > 0 && size <= sizeof(buf));
        wrote = mqtt_encode(&s[i], version, buf, sizeof(buf));
        cr_assert_eq(wrote, size, "%s: encode wrote %zu, size said %zu", mqtt_type_name(s[i].type),
                     wrote, size);
        cr_assert_eq(dec_any(buf, wrote, dv, &got), 0, "%s v%u does not decode",
                     mqtt_type_name(s[i].type), version);
        assert_pkt_eq(&s[i], &got, version);
        if (server_bound(s[i].type)) {
            cr_assert_eq(dec(buf, wrote, dv, &got), 0);
            assert_pkt_eq(&s[i], &got, version);
        } else {
            cr_assert_eq(dec(buf, wrote, dv, &got), PROTO_ERR, "%s is not server bound",
                         mqtt_type_name(s[i].type));
        }
        seen[s[i].type] = true;
    }
    for (t = MQTT_CONNECT; t <= MQTT_DISCONNECT; t++) {
        cr_assert(seen[t], "no sample of %s", mqtt_type_name((uint8_t)t));
    }
}

Test(mqtt_codec, round_trips_every_packet_type_in_mqtt_311)
{
    round_trip_all(MQTT_V311);
}

Test(mqtt_codec, round_trips_every_packet_type_in_mqtt_31)
{
    round_trip_all(MQTT_V31);
}

Test(mqtt_codec, encodes_connect_311_with_protocol_name_mqtt_level_4)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    uint8_t buf[64];
    size_t n;

    p.u.connect = (struct mqtt_connect){
        .version = MQTT_V311, .clean_session = true, .keepalive_s = 60, .client_id = S("c1")};
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(n, 16);
    cr_assert(memcmp(buf, B(0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'c', '1')) ==
              0);
}

Test(mqtt_codec, encodes_connect_31_with_protocol_name_mqisdp_level_3)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    uint8_t buf[64];
    size_t n;

    p.u.connect = (struct mqtt_connect){
        .version = MQTT_V31, .clean_session = true, .keepalive_s = 60, .client_id = S("c1")};
    n = mqtt_encode(&p, MQTT_V31, buf, sizeof(buf));
    cr_assert_eq(n, 18);
    cr_assert(memcmp(buf, B(0x10, 16, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x02, 0, 60, 0, 2, 'c',
                            '1')) == 0);
}

Test(mqtt_codec, encodes_connect_flags_in_spec_bit_order)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    uint8_t buf[64];

    /* username 7, password 6, will retain 5, will QoS 4-3, will 2, clean 1. */
    p.u.connect = (struct mqtt_connect){.version = MQTT_V311,
                                        .will = true,
                                        .will_qos = 2,
                                        .will_retain = true,
                                        .will_topic = S("w"),
                                        .has_username = true,
                                        .has_password = true};
    mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(buf[9], 0xf4);
}

Test(mqtt_codec, encodes_publish_acks_and_subscribes_bytewise)
{
    struct mqtt_pkt p = {.type = MQTT_PUBLISH};
    const struct mqtt_sub_entry e = {.filter = S("a/#"), .options = 1};
    uint8_t buf[64];
    size_t n;

    p.u.publish =
        (struct mqtt_publish){.qos = 1, .topic = S("a/b"), .pkt_id = 10, .payload = S("hi")};
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(n, 11);
    cr_assert(memcmp(buf, B(0x32, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i')) == 0);

    p.u.publish =
        (struct mqtt_publish){.qos = 2, .dup = true, .retain = true, .topic = S("t"), .pkt_id = 1};
    n = mqtt_encode(&p, MQTT_V31, buf, sizeof(buf));
    cr_assert(n == 7 && memcmp(buf, B(0x3d, 5, 0, 1, 't', 0, 1)) == 0);

    p = (struct mqtt_pkt){.type = MQTT_PUBREL, .u.ack.pkt_id = 0x1234};
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert(n == 4 && memcmp(buf, B(0x62, 2, 0x12, 0x34)) == 0);

    p = (struct mqtt_pkt){.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 1, .count = 1, .entries = &e};
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert(n == 10 && memcmp(buf, B(0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1)) == 0);

    p.type = MQTT_UNSUBSCRIBE;
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert(n == 9 && memcmp(buf, B(0xa2, 7, 0, 1, 0, 3, 'a', '/', '#')) == 0);

    p = (struct mqtt_pkt){.type = MQTT_PINGRESP};
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert(n == 2 && memcmp(buf, B(0xd0, 0)) == 0);
}

Test(mqtt_codec, encodes_connack_session_present_only_in_311)
{
    struct mqtt_pkt p = {.type = MQTT_CONNACK, .u.connack = {.session_present = true}};
    uint8_t buf[8];

    cr_assert_eq(mqtt_encode(&p, MQTT_V311, buf, sizeof(buf)), 4);
    cr_assert(memcmp(buf, B(0x20, 2, 1, 0)) == 0);
    /* 3.1 has no session-present flag; its first variable byte is unused. */
    cr_assert_eq(mqtt_encode(&p, MQTT_V31, buf, sizeof(buf)), 4);
    cr_assert(memcmp(buf, B(0x20, 2, 0, 0)) == 0);
}

/* Remaining length boundaries of section 2.2.3: 1, 2, 3 and 4 length bytes. */
Test(mqtt_codec, encodes_and_decodes_remaining_length_at_every_size_boundary)
{
    static const struct {
        uint32_t body;
        uint8_t rl[4];
        uint8_t rl_bytes;
    } cases[] = {
        {127, {0x7f}, 1},
        {128, {0x80, 0x01}, 2},
        {16383, {0xff, 0x7f}, 2},
        {16384, {0x80, 0x80, 0x01}, 3},
        {2097151, {0xff, 0xff, 0x7f}, 3},
        {2097152, {0x80, 0x80, 0x80, 0x01}, 4},
    };
    uint8_t *payload = calloc(1, 2097152);
    uint8_t *buf = malloc(2097152 + 8);
    size_t i;

    cr_assert(payload != NULL && buf != NULL);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mqtt_pkt p = {.type = MQTT_PUBLISH}, got;
        struct mqtt_fixed fh;
        size_t n;

        p.u.publish.topic = S("t");
        p.u.publish.payload = (struct mqtt_str){payload, cases[i].body - 3};
        n = mqtt_encoded_size(&p, MQTT_V311);
        cr_assert_eq(n, 1 + cases[i].rl_bytes + (size_t)cases[i].body);
        cr_assert_eq(mqtt_encode(&p, MQTT_V311, buf, n), n);
        cr_assert(memcmp(buf + 1, cases[i].rl, cases[i].rl_bytes) == 0, "body %u", cases[i].body);
        cr_assert_eq(mqtt_fixed_parse(buf, n, BIG_MAX, &fh), 1 + cases[i].rl_bytes);
        cr_assert_eq(fh.body_bytes, cases[i].body);
        cr_assert_eq(mqtt_decode(&fh, buf + fh.hdr_bytes, MQTT_V311, &got), 0);
        cr_assert_eq(got.u.publish.payload.len, cases[i].body - 3);
    }
    free(payload);
    free(buf);
}

Test(mqtt_codec, encoded_size_is_zero_when_a_field_is_over_its_maximum)
{
    static const uint8_t byte = 'x';
    struct mqtt_pkt p = {.type = MQTT_PUBLISH};
    const struct mqtt_sub_entry e = {.filter = {&byte, LIMITS_STRING_BYTES_MAX + 1}};
    uint8_t rcs[1] = {0};

    /* A string's length prefix is 2 bytes [MQTT-1.5.3]. */
    p.u.publish.topic = (struct mqtt_str){&byte, LIMITS_STRING_BYTES_MAX + 1};
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V311), 0);
    p.u.publish.topic = (struct mqtt_str){&byte, LIMITS_STRING_BYTES_MAX};
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V311), 1 + 3 + 2 + (size_t)LIMITS_STRING_BYTES_MAX);

    /* The remaining length tops out at 268435455 [MQTT-2.2.3]. */
    p.u.publish.topic = S("t");
    p.u.publish.payload = (struct mqtt_str){&byte, LIMITS_REMAINING_LENGTH_MAX - 3};
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V311), 5 + (size_t)LIMITS_REMAINING_LENGTH_MAX);
    p.u.publish.payload.len++;
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V311), 0);

    p = (struct mqtt_pkt){.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 1, .count = 1, .entries = &e};
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V311), 0);

    p = (struct mqtt_pkt){.type = MQTT_SUBACK};
    p.u.suback =
        (struct mqtt_suback){.pkt_id = 1, .count = LIMITS_REMAINING_LENGTH_MAX, .rcs = rcs};
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V311), 0);

    p = (struct mqtt_pkt){.type = MQTT_CONNECT};
    p.u.connect = (struct mqtt_connect){.version = MQTT_V31,
                                        .has_username = true,
                                        .username = {&byte, LIMITS_STRING_BYTES_MAX + 1}};
    cr_assert_eq(mqtt_encoded_size(&p, MQTT_V31), 0);
}

Test(mqtt_codec, encode_asserts_when_cap_is_too_small, .signal = SIGABRT)
{
    struct mqtt_pkt p = {.type = MQTT_PUBACK, .u.ack.pkt_id = 1};
    uint8_t buf[4];

    mqtt_encode(&p, MQTT_V311, buf, 3);
}

Test(mqtt_codec, encode_asserts_when_publish_cap_is_too_small, .signal = SIGABRT)
{
    struct mqtt_pkt p = {.type = MQTT_PUBLISH, .u.publish = {.topic = S("a/b")}};
    uint8_t buf[8];

    mqtt_encode(&p, MQTT_V311, buf, 6);
}

Test(mqtt_codec, encode_asserts_on_an_unencodable_packet, .signal = SIGABRT)
{
    static const uint8_t byte = 'x';
    struct mqtt_pkt p = {.type = MQTT_UNSUBSCRIBE};
    const struct mqtt_sub_entry e = {.filter = {&byte, LIMITS_STRING_BYTES_MAX + 1}};
    uint8_t buf[8];

    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 1, .count = 1, .entries = &e};
    mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
}

/* ---- split points and guard pages --------------------------------------- */

struct wire {
    const uint8_t *bytes;
    size_t len;
    uint8_t version; /* decode with this */
};

static const uint8_t golden_connect_311[] = {0x10, 14,   0, 4,  'M', 'Q', 'T', 'T',
                                             4,    0x02, 0, 60, 0,   2,   'c', '1'};
static const uint8_t golden_connect_31[] = {0x10, 16, 0,    6, 'M', 'Q', 'I', 's', 'd',
                                            'p',  3,  0x02, 0, 60,  0,   2,   'c', '1'};
static const uint8_t golden_publish[] = {0x32, 9, 0, 3, 'a', '/', 'b', 0, 10, 'h', 'i'};
static const uint8_t golden_subscribe[] = {0x82, 8, 0, 1, 0, 3, 'a', '/', '#', 1};
/* A 3.1 SUBSCRIBE retry with DUP set (3.1 section 3.8). */
static const uint8_t golden_subscribe_31_dup[] = {0x8a, 8, 0, 1, 0, 3, 'a', '/', '#', 1};
/* A non-minimal remaining length (2 bytes for 2) is accepted in 3.1.1. */
static const uint8_t golden_puback_long_rl[] = {0x40, 0x82, 0x00, 0x00, 0x05};

/* Check feeding @w's prefixes: need-more until whole, then a clean decode. */
static void feed_every_split(const struct wire *w)
{
    size_t k;

    for (k = 0; k <= w->len; k++) {
        struct mqtt_pkt got;
        size_t used = 0;
        int rc = frame_decode(w->bytes, k, w->version, true, &got, &used);

        if (k < w->len) {
            cr_assert_eq(rc, NEED_MORE, "prefix %zu of %zu: got %d, want need-more", k, w->len, rc);
        } else {
            cr_assert_eq(rc, 0, "whole packet (%zu bytes) does not decode: %d", w->len, rc);
            cr_assert_eq(used, w->len);
        }
    }
}

Test(mqtt_codec, every_valid_packet_needs_more_at_every_split_point_then_decodes)
{
    static const struct wire golden[] = {
        {golden_connect_311, sizeof(golden_connect_311), 0},
        {golden_connect_31, sizeof(golden_connect_31), 0},
        {golden_publish, sizeof(golden_publish), MQTT_V311},
        {golden_subscribe, sizeof(golden_subscribe), MQTT_V311},
        {golden_subscribe_31_dup, sizeof(golden_subscribe_31_dup), MQTT_V31},
        {golden_puback_long_rl, sizeof(golden_puback_long_rl), MQTT_V311},
    };
    static const uint8_t versions[] = {MQTT_V31, MQTT_V311};
    size_t i, v;

    for (i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        feed_every_split(&golden[i]);
    }
    for (v = 0; v < sizeof(versions); v++) {
        struct mqtt_pkt s[SAMPLES_MAX];
        size_t n = samples(s, versions[v]);

        for (i = 0; i < n; i++) {
            uint8_t buf[ENC_MAX];
            struct wire w = {buf, 0, dec_version(s[i].type, versions[v])};

            w.len = mqtt_encode(&s[i], versions[v], buf, sizeof(buf));
            feed_every_split(&w);
        }
    }
}

Test(mqtt_codec, decodes_from_a_guard_page_buffer_without_reading_past_the_packet)
{
    struct mqtt_pkt s[SAMPLES_MAX];
    size_t n = samples(s, MQTT_V311);
    size_t i;

    for (i = 0; i < n; i++) {
        uint8_t buf[ENC_MAX];
        size_t len = mqtt_encode(&s[i], MQTT_V311, buf, sizeof(buf));
        struct guard g = guard_new(len);
        const uint8_t *at = guard_place(&g, buf, len);
        struct mqtt_fixed fh;
        struct mqtt_pkt got;
        struct mqtt_sub_iter it;
        struct mqtt_sub_entry e;

        cr_assert_eq(mqtt_fixed_parse(at, len, BIG_MAX, &fh), fh.hdr_bytes);
        cr_assert_eq((size_t)fh.hdr_bytes + fh.body_bytes, len);
        cr_assert_eq(
            mqtt_decode_any(&fh, at + fh.hdr_bytes, dec_version(s[i].type, MQTT_V311), &got), 0);
        assert_pkt_eq(&s[i], &got, MQTT_V311);
        if (got.type == MQTT_SUBSCRIBE || got.type == MQTT_UNSUBSCRIBE) {
            uint32_t count = 0;

            mqtt_sub_iter_init(&it, &got);
            while (mqtt_sub_next(&it, &e)) {
                cr_assert(e.filter.ptr + e.filter.len <= at + len);
                count++;
            }
            cr_assert_eq(count, got.u.subscribe.count);
        }
        guard_free(&g);
    }
}

/* ---- fixed header ------------------------------------------------------- */

Test(mqtt_codec, fixed_parse_needs_more_until_remaining_length_ends)
{
    struct mqtt_fixed fh;

    cr_assert_eq(mqtt_fixed_parse(NULL, 0, BIG_MAX, &fh), 0);
    cr_assert_eq(mqtt_fixed_parse(B(0x30), BIG_MAX, &fh), 0);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x80), BIG_MAX, &fh), 0);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x80, 0x80), BIG_MAX, &fh), 0);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x80, 0x80, 0x80), BIG_MAX, &fh), 0);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x00), BIG_MAX, &fh), 2);
    cr_assert_eq(fh.type, MQTT_PUBLISH);
    cr_assert_eq(fh.flags, 0);
    cr_assert_eq(fh.body_bytes, 0);
}

Test(mqtt_codec, fixed_parse_reads_type_flags_and_a_four_byte_maximum_length)
{
    struct mqtt_fixed fh;

    /* 268435455, the largest remaining length [MQTT-2.2.3]. */
    cr_assert_eq(mqtt_fixed_parse(B(0x3b, 0xff, 0xff, 0xff, 0x7f), BIG_MAX, &fh), 5);
    cr_assert_eq(fh.type, MQTT_PUBLISH);
    cr_assert_eq(fh.flags, 0xb);
    cr_assert_eq(fh.hdr_bytes, 5);
    cr_assert_eq(fh.body_bytes, LIMITS_REMAINING_LENGTH_MAX);
    cr_assert_eq(mqtt_fixed_parse(B(0xe0, 0xc1, 0x02, 0xff), BIG_MAX, &fh), 3);
    cr_assert_eq(fh.type, MQTT_DISCONNECT);
    cr_assert_eq(fh.body_bytes, 0x41 + (2u << 7));
}

Test(mqtt_codec, rejects_remaining_length_over_four_bytes)
{
    struct mqtt_fixed fh;

    /* Section 2.2.3: at most four bytes; the 4th must not continue. */
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0xff, 0xff, 0xff, 0xff, 0x7f), BIG_MAX, &fh), MALFORMED);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x80, 0x80, 0x80, 0x80), BIG_MAX, &fh), MALFORMED);
}

Test(mqtt_codec, rejects_packet_type_0_as_reserved)
{
    struct mqtt_fixed fh;

    /* Section 2.2.1: type 0 is reserved (forbidden). */
    cr_assert_eq(mqtt_fixed_parse(B(0x00), BIG_MAX, &fh), MALFORMED);
    cr_assert_eq(mqtt_fixed_parse(B(0x00, 0x00), BIG_MAX, &fh), MALFORMED);
    cr_assert_eq(mqtt_fixed_parse(B(0x0f, 0x02, 0, 1), BIG_MAX, &fh), MALFORMED);
}

Test(mqtt_codec, rejects_a_packet_over_the_size_limit_counting_the_header)
{
    struct mqtt_fixed fh;

    cr_assert_eq(mqtt_fixed_parse(B(0x30, 10), 12, &fh), 2);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 10), 11, &fh), -MQTT_RC_PACKET_TOO_LARGE);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x80, 0x01), 131, &fh), 3);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0x80, 0x01), 130, &fh), -MQTT_RC_PACKET_TOO_LARGE);
    cr_assert_eq(mqtt_fixed_parse(B(0x30, 0xff, 0xff, 0xff, 0x7f), 1u << 20, &fh),
                 -MQTT_RC_PACKET_TOO_LARGE);
}

/* ---- fixed-header flags [MQTT-2.2.2-1, -2] ------------------------------ */

/* A valid body for each non-PUBLISH type, and its canonical flag nibble. */
struct typed_body {
    uint8_t type;
    uint8_t flags;
    const uint8_t *body;
    uint8_t len;
    uint8_t version;
};

static const uint8_t body_connect[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 60, 0, 1, 'c'};
static const uint8_t body_id[] = {0, 1};
static const uint8_t body_connack[] = {0, 0};
static const uint8_t body_sub[] = {0, 1, 0, 1, 'a', 0};
static const uint8_t body_unsub[] = {0, 1, 0, 1, 'a'};
static const uint8_t body_suback[] = {0, 1, 0};

static const struct typed_body typed_bodies[] = {
    {MQTT_CONNECT, 0, body_connect, sizeof(body_connect), 0},
    {MQTT_CONNACK, 0, body_connack, 2, MQTT_V311},
    {MQTT_PUBACK, 0, body_id, 2, MQTT_V311},
    {MQTT_PUBREC, 0, body_id, 2, MQTT_V311},
    {MQTT_PUBREL, 2, body_id, 2, MQTT_V311},
    {MQTT_PUBCOMP, 0, body_id, 2, MQTT_V311},
    {MQTT_SUBSCRIBE, 2, body_sub, sizeof(body_sub), MQTT_V311},
    {MQTT_SUBACK, 0, body_suback, sizeof(body_suback), MQTT_V311},
    {MQTT_UNSUBSCRIBE, 2, body_unsub, sizeof(body_unsub), MQTT_V311},
    {MQTT_UNSUBACK, 0, body_id, 2, MQTT_V311},
    {MQTT_PINGREQ, 0, NULL, 0, MQTT_V311},
    {MQTT_PINGRESP, 0, NULL, 0, MQTT_V311},
    {MQTT_DISCONNECT, 0, NULL, 0, MQTT_V311},
};

static int dec_typed(const struct typed_body *tb, uint8_t flags, uint8_t version)
{
    uint8_t buf[32];
    struct mqtt_pkt got;

    buf[0] = (uint8_t)(tb->type << 4 | flags);
    buf[1] = tb->len;
    if (tb->len > 0) {
        memcpy(buf + 2, tb->body, tb->len);
    }
    return dec_any(buf, 2u + tb->len, version, &got);
}

Test(mqtt_codec, rejects_every_non_canonical_flag_nibble_of_every_type)
{
    size_t i;
    unsigned int f;

    /* [MQTT-2.2.2-1, -2]; PUBREL, SUBSCRIBE, UNSUBSCRIBE must be 0b0010
     * [MQTT-3.6.1-1, 3.8.1-1, 3.10.1-1], every other type 0b0000. */
    for (i = 0; i < sizeof(typed_bodies) / sizeof(typed_bodies[0]); i++) {
        const struct typed_body *tb = &typed_bodies[i];

        cr_assert_eq(dec_typed(tb, tb->flags, tb->version), 0, "%s canonical",
                     mqtt_type_name(tb->type));
        for (f = 0; f < 16; f++) {
            if (f != tb->flags) {
                cr_assert_eq(dec_typed(tb, (uint8_t)f, tb->version), MALFORMED, "%s flags %#x",
                             mqtt_type_name(tb->type), f);
            }
        }
    }
}

Test(mqtt_codec, rejects_pubrel_with_flags_0_per_mqtt_3_6_1_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x60, 2, 0, 1), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x62, 2, 0, 1), MQTT_V311, &got), 0);
}

Test(mqtt_codec, rejects_subscribe_with_flags_0_per_mqtt_3_8_1_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x80, 6, 0, 1, 0, 1, 'a', 0), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_unsubscribe_with_flags_0_per_mqtt_3_10_1_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xa0, 5, 0, 1, 0, 1, 'a'), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, accepts_dup_on_pubrel_subscribe_unsubscribe_retries_only_in_mqtt_31)
{
    size_t i;

    /* MQTT 3.1 section 2.1 defines DUP for PUBREL, SUBSCRIBE and UNSUBSCRIBE
     * retries; 3.1.1 fixes their nibble at 0b0010 [MQTT-2.2.2-2]. */
    for (i = 0; i < sizeof(typed_bodies) / sizeof(typed_bodies[0]); i++) {
        const struct typed_body *tb = &typed_bodies[i];
        uint8_t v31 = tb->version == 0 ? 0 : MQTT_V31;

        if (tb->flags == 2) {
            cr_assert_eq(dec_typed(tb, 0xa, MQTT_V31), 0);
            cr_assert_eq(dec_typed(tb, 0xa, MQTT_V311), MALFORMED);
            cr_assert_eq(dec_typed(tb, 0x0, MQTT_V31), MALFORMED);
            cr_assert_eq(dec_typed(tb, 0x3, MQTT_V31), MALFORMED);
            cr_assert_eq(dec_typed(tb, 0x4, MQTT_V31), MALFORMED);
        } else {
            cr_assert_eq(dec_typed(tb, 0x8, v31), MALFORMED, "%s", mqtt_type_name(tb->type));
        }
    }
}

/* ---- connection state [MQTT-3.1.0-1, -2] and direction ------------------ */

Test(mqtt_codec, rejects_anything_but_connect_first_per_mqtt_3_1_0_1)
{
    size_t i;

    for (i = 0; i < sizeof(typed_bodies) / sizeof(typed_bodies[0]); i++) {
        const struct typed_body *tb = &typed_bodies[i];

        if (tb->type != MQTT_CONNECT) {
            cr_assert_eq(dec_typed(tb, tb->flags, 0), PROTO_ERR, "%s", mqtt_type_name(tb->type));
        }
    }
    {
        struct mqtt_pkt got;

        cr_assert_eq(dec(B(0x30, 3, 0, 1, 't'), 0, &got), PROTO_ERR);
    }
}

Test(mqtt_codec, rejects_a_second_connect_per_mqtt_3_1_0_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(golden_connect_311, sizeof(golden_connect_311), MQTT_V311, &got), PROTO_ERR);
    cr_assert_eq(dec(golden_connect_31, sizeof(golden_connect_31), MQTT_V31, &got), PROTO_ERR);
    cr_assert_eq(dec_any(golden_connect_311, sizeof(golden_connect_311), MQTT_V31, &got),
                 PROTO_ERR);
}

Test(mqtt_codec, server_direction_refuses_connack_suback_unsuback_pingresp)
{
    size_t i;

    for (i = 0; i < sizeof(typed_bodies) / sizeof(typed_bodies[0]); i++) {
        const struct typed_body *tb = &typed_bodies[i];
        uint8_t buf[32];
        struct mqtt_pkt got;
        int want = server_bound(tb->type) ? 0 : PROTO_ERR;

        buf[0] = (uint8_t)(tb->type << 4 | tb->flags);
        buf[1] = tb->len;
        if (tb->len > 0) {
            memcpy(buf + 2, tb->body, tb->len);
        }
        cr_assert_eq(dec(buf, 2u + tb->len, tb->version, &got), want, "%s",
                     mqtt_type_name(tb->type));
        cr_assert_eq(dec_any(buf, 2u + tb->len, tb->version, &got), 0);
    }
}

Test(mqtt_codec, refuses_auth_before_mqtt_5)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xf0, 0), MQTT_V311, &got), PROTO_ERR);
    cr_assert_eq(dec_any(B(0xf0, 0), MQTT_V311, &got), PROTO_ERR);
    cr_assert_eq(dec_any(B(0xf0, 0), MQTT_V31, &got), PROTO_ERR);
}

/* ---- CONNECT ------------------------------------------------------------ */

/* CONNECT fixed header + "MQTT" 4, then @flags, keep alive 10, and the payload. */
#define CONNECT311(flags, ...)                                                                     \
    B(0x10, 10 + sizeof((const uint8_t[]){__VA_ARGS__}), 0, 4, 'M', 'Q', 'T', 'T', 4, (flags), 0,  \
      10, __VA_ARGS__)

Test(mqtt_codec, decodes_every_connect_field)
{
    struct mqtt_pkt got;
    const struct mqtt_connect *c = &got.u.connect;

    cr_assert_eq(
        dec(CONNECT311(0xee, 0, 2, 'i', 'd', 0, 1, 'w', 0, 3, 0, 0xff, 1, 0, 1, 'u', 0, 2, 0, 0x80),
            0, &got),
        0);
    cr_assert_eq(got.type, MQTT_CONNECT);
    cr_assert_eq(c->version, MQTT_V311);
    cr_assert(c->clean_session && c->will && c->will_retain && c->has_username && c->has_password);
    cr_assert_eq(c->will_qos, 1);
    cr_assert_eq(c->keepalive_s, 10);
    assert_str_is(&c->client_id, "id");
    assert_str_is(&c->will_topic, "w");
    cr_assert(c->will_payload.len == 3 && memcmp(c->will_payload.ptr, "\0\xff\x01", 3) == 0);
    assert_str_is(&c->username, "u");
    cr_assert(c->password.len == 2 && memcmp(c->password.ptr, "\0\x80", 2) == 0);
}

Test(mqtt_codec, rejects_an_unknown_protocol_name_per_mqtt_3_1_2_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x10, 12, 0, 4, 'M', 'Q', 'T', 't', 4, 2, 0, 10, 0, 0), 0, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0x10, 11, 0, 3, 'M', 'Q', 'T', 4, 2, 0, 10, 0, 0), 0, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0x10, 8, 0, 0, 4, 2, 0, 10, 0, 0), 0, &got), PROTO_ERR);
    cr_assert_eq(dec(B(0x10, 14, 0, 6, 'M', 'Q', 'I', 'S', 'D', 'P', 3, 2, 0, 10, 0, 0), 0, &got),
                 PROTO_ERR);
}

Test(mqtt_codec, reports_unsupported_level_with_the_level_per_mqtt_3_1_2_2)
{
    struct mqtt_pkt got;

    /* "MQTT" level 6: an unknown level; the caller answers CONNACK 0x01 (0x84 in 5.0). */
    cr_assert_eq(dec(B(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 10, 0, 0), 0, &got),
                 -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    cr_assert_eq(got.type, MQTT_CONNECT);
    cr_assert_eq(got.u.connect.version, 6);
    cr_assert_eq(dec(B(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 3, 2, 0, 10, 0, 0), 0, &got),
                 -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    cr_assert_eq(got.u.connect.version, 3);
    cr_assert_eq(dec(B(0x10, 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 10, 0, 0), 0, &got),
                 -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    cr_assert_eq(got.u.connect.version, 4);
    cr_assert_eq(dec(B(0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 0xff, 2, 0, 10, 0, 0), 0, &got),
                 -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION);
    cr_assert_eq(got.u.connect.version, 0xff);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION),
                 MQTT_CONNACK_BAD_PROTOCOL_VERSION);
}

Test(mqtt_codec, rejects_the_reserved_connect_flag_per_mqtt_3_1_2_3)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x03, 0, 1, 'c'), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x02, 0, 1, 'c'), 0, &got), 0);
    cr_assert_eq(
        dec(B(0x10, 15, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x01, 0, 10, 0, 1, 'c'), 0, &got),
        MALFORMED);
}

Test(mqtt_codec, rejects_will_qos_without_will_flag_per_mqtt_3_1_2_13)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x08, 0, 1, 'c'), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x10, 0, 1, 'c'), 0, &got), MALFORMED);
}

Test(mqtt_codec, rejects_will_retain_without_will_flag_per_mqtt_3_1_2_15)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x20, 0, 1, 'c'), 0, &got), MALFORMED);
}

Test(mqtt_codec, rejects_will_qos_3_per_mqtt_3_1_2_14)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x1c, 0, 1, 'c', 0, 1, 'w', 0, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x14, 0, 1, 'c', 0, 1, 'w', 0, 0), 0, &got), 0);
    cr_assert_eq(got.u.connect.will_qos, 2);
}

Test(mqtt_codec, rejects_password_without_username_per_mqtt_3_1_2_22)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x40, 0, 1, 'c', 0, 1, 'p'), 0, &got), MALFORMED);
    cr_assert_eq(
        dec(B(0x10, 18, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 0x40, 0, 10, 0, 1, 'c', 0, 1, 'p'),
            0, &got),
        MALFORMED);
}

Test(mqtt_codec, rejects_connect_fields_missing_per_mqtt_3_1_2_19_and_21)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x80, 0, 1, 'c'), 0, &got), MALFORMED);            /* username */
    cr_assert_eq(dec(CONNECT311(0xc0, 0, 1, 'c', 0, 1, 'u'), 0, &got), MALFORMED); /* password */
    cr_assert_eq(dec(CONNECT311(0x04, 0, 1, 'c', 0, 1, 'w'), 0, &got), MALFORMED); /* will msg */
    cr_assert_eq(dec(CONNECT311(0x04, 0, 1, 'c'), 0, &got), MALFORMED);            /* will topic */
    cr_assert_eq(dec(CONNECT311(0x02), 0, &got), MALFORMED);                       /* client id */
    cr_assert_eq(dec(CONNECT311(0x02, 0, 2, 'c'), 0, &got), MALFORMED); /* string too short */
}

Test(mqtt_codec, rejects_truncated_connect_headers)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x10, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(B(0x10, 1, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(B(0x10, 4, 0, 4, 'M', 'Q'), 0, &got), MALFORMED);
    cr_assert_eq(dec(B(0x10, 6, 0, 4, 'M', 'Q', 'T', 'T'), 0, &got), MALFORMED);
    cr_assert_eq(dec(B(0x10, 7, 0, 4, 'M', 'Q', 'T', 'T', 4), 0, &got), MALFORMED);
    cr_assert_eq(dec(B(0x10, 9, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0), 0, &got), MALFORMED);
}

Test(mqtt_codec, rejects_bytes_after_the_last_connect_field)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0x02, 0, 1, 'c', 0), 0, &got), MALFORMED);
    /* Username present but flag clear: the bytes are trailing garbage. */
    cr_assert_eq(dec(CONNECT311(0x02, 0, 1, 'c', 0, 1, 'u'), 0, &got), MALFORMED);
}

Test(mqtt_codec, rejects_connect_strings_that_are_not_utf8_per_mqtt_1_5_3_1)
{
    struct mqtt_pkt got;

    /* client id [MQTT-3.1.3-4], will topic [MQTT-3.1.3-10], username [MQTT-3.1.3-11] */
    cr_assert_eq(dec(CONNECT311(0x02, 0, 1, 0xff), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x02, 0, 1, 0x00), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x06, 0, 1, 'c', 0, 2, 0xc0, 0x80, 0, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x82, 0, 1, 'c', 0, 3, 0xed, 0xa0, 0x80), 0, &got), MALFORMED);
}

Test(mqtt_codec, accepts_binary_password_and_will_payload)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(CONNECT311(0xc6, 0, 1, 'c', 0, 1, 'w', 0, 2, 0x00, 0xff, 0, 1, 'u', 0, 3, 0xc0,
                                0x80, 0x00),
                     0, &got),
                 0);
    cr_assert_eq(got.u.connect.password.len, 3);
    cr_assert_eq(got.u.connect.will_payload.len, 2);
}

Test(mqtt_codec, rejects_a_will_topic_that_is_not_a_topic_name)
{
    struct mqtt_pkt got;

    /* The will topic is a topic name [MQTT-3.1.3-10]: non-empty [MQTT-4.7.3-1],
     * no wildcards [MQTT-4.7.1-1]. */
    cr_assert_eq(dec(CONNECT311(0x06, 0, 1, 'c', 0, 0, 0, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x06, 0, 1, 'c', 0, 1, '#', 0, 0), 0, &got), MALFORMED);
    cr_assert_eq(dec(CONNECT311(0x06, 0, 1, 'c', 0, 3, 'a', '/', '+', 0, 0), 0, &got), MALFORMED);
}

Test(mqtt_codec, leaves_client_id_length_and_emptiness_to_the_session)
{
    struct mqtt_pkt got;
    uint8_t buf[200];
    size_t i;

    /* Empty client id in 3.1.1 [MQTT-3.1.3-6]: the session decides. */
    cr_assert_eq(dec(CONNECT311(0x02, 0, 0), 0, &got), 0);
    cr_assert_eq(got.u.connect.client_id.len, 0);
    /* A 3.1 client id over 23 bytes: accepted here too. */
    memcpy(buf, B(0x10, 14 + 100, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 3, 2, 0, 10, 0, 100));
    for (i = 0; i < 100; i++) {
        buf[16 + i] = (uint8_t)('a' + i % 26);
    }
    cr_assert_eq(dec(buf, 116, 0, &got), 0);
    cr_assert_eq(got.u.connect.version, MQTT_V31);
    cr_assert_eq(got.u.connect.client_id.len, 100);
}

/* ---- CONNACK ------------------------------------------------------------ */

Test(mqtt_codec, decodes_connack_and_checks_its_reserved_bits)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec_any(B(0x20, 2, 1, 0), MQTT_V311, &got), 0);
    cr_assert(got.u.connack.session_present);
    cr_assert_eq(dec_any(B(0x20, 2, 0, 5), MQTT_V311, &got), 0);
    cr_assert_eq(got.u.connack.rc, 5);
    /* [MQTT-3.2.2-1] reserved acknowledge flags; codes 6-255 reserved. */
    cr_assert_eq(dec_any(B(0x20, 2, 2, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x20, 2, 0, 6), MQTT_V311, &got), MALFORMED);
    /* [MQTT-3.2.2-4] session present only with return code 0. */
    cr_assert_eq(dec_any(B(0x20, 2, 1, 1), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x20, 3, 0, 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x20, 1, 0), MQTT_V311, &got), MALFORMED);
    /* 3.1 does not use the first byte. */
    cr_assert_eq(dec_any(B(0x20, 2, 0xff, 2), MQTT_V31, &got), 0);
    cr_assert_not(got.u.connack.session_present);
    cr_assert_eq(got.u.connack.rc, 2);
}

/* ---- PUBLISH ------------------------------------------------------------ */

Test(mqtt_codec, decodes_publish_fields_and_payload)
{
    struct mqtt_pkt got;
    const struct mqtt_publish *p = &got.u.publish;

    cr_assert_eq(dec(B(0x3b, 8, 0, 1, 't', 0x12, 0x34, 0, 0xff, 'x'), MQTT_V311, &got), 0);
    cr_assert(p->dup && p->retain);
    cr_assert_eq(p->qos, 1);
    cr_assert_eq(p->pkt_id, 0x1234);
    assert_str_is(&p->topic, "t");
    cr_assert(p->payload.len == 3 && memcmp(p->payload.ptr, "\0\xffx", 3) == 0);
    cr_assert_eq(dec(B(0x30, 3, 0, 1, 't'), MQTT_V311, &got), 0);
    cr_assert_eq(p->payload.len, 0);
    cr_assert_eq(p->pkt_id, 0);
}

Test(mqtt_codec, rejects_publish_qos_3_per_mqtt_3_3_1_4)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x36, 5, 0, 1, 't', 0, 1), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x36, 5, 0, 1, 't', 0, 1), MQTT_V31, &got), MALFORMED);
}

Test(mqtt_codec, rejects_publish_dup_with_qos_0_per_mqtt_3_3_1_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x38, 3, 0, 1, 't'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x39, 3, 0, 1, 't'), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_publish_topic_with_wildcards_per_mqtt_3_3_2_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x30, 5, 0, 3, 'a', '/', '+'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 5, 0, 3, 'a', '/', '#'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 5, 0, 3, '#', '/', 'a'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 5, 0, 3, 'a', '+', 'b'), MQTT_V311, &got), MALFORMED);
}

/* Publish a QoS 0 message to @topic (@len bytes) and return the decode result. */
static int dec_publish_topic(const uint8_t *topic, size_t len)
{
    uint8_t buf[128];
    struct mqtt_pkt got;

    cr_assert(len + 4 <= sizeof(buf));
    buf[0] = 0x30;
    buf[1] = (uint8_t)(len + 2);
    buf[2] = 0;
    buf[3] = (uint8_t)len;
    memcpy(buf + 4, topic, len);
    return dec(buf, len + 4, MQTT_V311, &got);
}

Test(mqtt_codec, finds_wildcards_and_bad_bytes_at_every_topic_position)
{
    static const uint8_t bad[] = {'+', '#', 0x00, 0x80, 0xff};
    uint8_t topic[40];
    size_t len, pos, b;

    /* [MQTT-3.3.2-2], [MQTT-1.5.3-1, -2]: across whole words and tails. */
    for (len = 1; len <= sizeof(topic); len++) {
        memset(topic, 'a', len);
        cr_assert_eq(dec_publish_topic(topic, len), 0, "len %zu", len);
        for (pos = 0; pos < len; pos++) {
            for (b = 0; b < sizeof(bad); b++) {
                memset(topic, 'a', len);
                topic[pos] = bad[b];
                cr_assert_eq(dec_publish_topic(topic, len), MALFORMED, "len %zu pos %zu byte %#x",
                             len, pos, bad[b]);
            }
            if (pos + 4 <= len) {
                /* A 4-byte character anywhere, straddling words or not. */
                memset(topic, 'a', len);
                memcpy(topic + pos, "\xf0\x9f\x98\x80", 4);
                cr_assert_eq(dec_publish_topic(topic, len), 0, "len %zu pos %zu", len, pos);
                topic[pos + 1] = '+';
                cr_assert_eq(dec_publish_topic(topic, len), MALFORMED, "len %zu pos %zu", len, pos);
            }
        }
    }
}

Test(mqtt_codec, rejects_empty_publish_topic_per_mqtt_4_7_3_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x30, 2, 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 3, 0, 0, 'x'), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_publish_topic_that_is_not_utf8_per_mqtt_1_5_3_1_and_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x30, 3, 0, 1, 0x80), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 5, 0, 3, 'a', 0x00, 'b'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 5, 0, 3, 0xed, 0xb0, 0x80), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 4, 0, 2, 0xc1, 0x81), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_publish_packet_id_0_per_mqtt_2_3_1_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x32, 5, 0, 1, 't', 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x34, 5, 0, 1, 't', 0, 0), MQTT_V31, &got), MALFORMED);
}

Test(mqtt_codec, rejects_publish_with_missing_or_overlong_fields)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x30, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 1, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x30, 3, 0, 2, 't'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x32, 3, 0, 1, 't'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x32, 4, 0, 1, 't', 1), MQTT_V311, &got), MALFORMED);
}

/* ---- PUBACK PUBREC PUBREL PUBCOMP UNSUBACK ------------------------------ */

Test(mqtt_codec, rejects_ack_packet_id_0_per_mqtt_2_3_1_1)
{
    static const uint8_t first[] = {0x40, 0x50, 0x62, 0x70, 0xb0};
    struct mqtt_pkt got;
    size_t i;

    for (i = 0; i < sizeof(first); i++) {
        uint8_t pkt[4] = {first[i], 2, 0, 0};

        cr_assert_eq(dec_any(pkt, 4, MQTT_V311, &got), MALFORMED, "%#x", first[i]);
        pkt[3] = 9;
        cr_assert_eq(dec_any(pkt, 4, MQTT_V311, &got), 0);
        /* UNSUBACK decodes into u.suback in every version. */
        cr_assert_eq(got.type == MQTT_UNSUBACK ? got.u.suback.pkt_id : got.u.ack.pkt_id, 9);
        cr_assert_eq(got.type, first[i] >> 4);
    }
}

Test(mqtt_codec, rejects_acks_with_missing_or_trailing_bytes)
{
    static const uint8_t first[] = {0x40, 0x50, 0x62, 0x70, 0xb0};
    struct mqtt_pkt got;
    size_t i;

    for (i = 0; i < sizeof(first); i++) {
        uint8_t pkt[5] = {first[i], 3, 0, 1, 0};

        cr_assert_eq(dec_any(pkt, 5, MQTT_V311, &got), MALFORMED, "%#x long", first[i]);
        pkt[1] = 1;
        cr_assert_eq(dec_any(pkt, 3, MQTT_V311, &got), MALFORMED, "%#x short", first[i]);
        pkt[1] = 0;
        cr_assert_eq(dec_any(pkt, 2, MQTT_V311, &got), MALFORMED, "%#x empty", first[i]);
    }
}

/* ---- SUBSCRIBE, SUBACK, UNSUBSCRIBE ------------------------------------- */

Test(mqtt_codec, iterates_subscribe_and_unsubscribe_entries_in_order)
{
    struct mqtt_pkt got;
    struct mqtt_sub_iter it;
    struct mqtt_sub_entry e;

    cr_assert_eq(dec(B(0x82, 16, 0, 5, 0, 1, 'a', 2, 0, 0x3, 'b', '/', '#', 0, 0, 1, '+', 1),
                     MQTT_V311, &got),
                 0);
    cr_assert_eq(got.u.subscribe.pkt_id, 5);
    cr_assert_eq(got.u.subscribe.count, 3);
    mqtt_sub_iter_init(&it, &got);
    cr_assert(mqtt_sub_next(&it, &e));
    assert_str_is(&e.filter, "a");
    cr_assert_eq(e.options, 2);
    cr_assert(mqtt_sub_next(&it, &e));
    assert_str_is(&e.filter, "b/#");
    cr_assert_eq(e.options, 0);
    cr_assert(mqtt_sub_next(&it, &e));
    assert_str_is(&e.filter, "+");
    cr_assert_eq(e.options, 1);
    cr_assert_not(mqtt_sub_next(&it, &e));
    cr_assert_not(mqtt_sub_next(&it, &e));

    cr_assert_eq(dec(B(0xa2, 9, 0, 6, 0, 1, 'a', 0, 2, 'b', 'c'), MQTT_V311, &got), 0);
    cr_assert_eq(got.u.subscribe.count, 2);
    mqtt_sub_iter_init(&it, &got);
    cr_assert(mqtt_sub_next(&it, &e));
    assert_str_is(&e.filter, "a");
    cr_assert(mqtt_sub_next(&it, &e));
    assert_str_is(&e.filter, "bc");
    cr_assert_eq(e.options, 0);
    cr_assert_not(mqtt_sub_next(&it, &e));
}

Test(mqtt_codec, rejects_subscribe_without_entries_per_mqtt_3_8_3_3)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x82, 2, 0, 1), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_unsubscribe_without_entries_per_mqtt_3_10_3_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xa2, 2, 0, 1), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_requested_qos_reserved_bits_and_qos_3_per_mqtt_3_8_3_4)
{
    struct mqtt_pkt got;
    unsigned int opt;

    for (opt = 0; opt < 256; opt++) {
        uint8_t pkt[] = {0x82, 6, 0, 1, 0, 1, 'a', (uint8_t)opt};
        int want = opt <= 2 ? 0 : MALFORMED;

        cr_assert_eq(dec(pkt, sizeof(pkt), MQTT_V311, &got), want, "options %#x", opt);
    }
    /* The bad entry need not be the first. */
    cr_assert_eq(dec(B(0x82, 10, 0, 1, 0, 1, 'a', 1, 0, 1, 'b', 0x40), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_empty_topic_filters_per_mqtt_4_7_3_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x82, 5, 0, 1, 0, 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0xa2, 4, 0, 1, 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0xa2, 7, 0, 1, 0, 1, 'a', 0, 0), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_topic_filters_that_are_not_utf8_per_mqtt_1_5_3_1_and_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x82, 6, 0, 1, 0, 1, 0xfe, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x82, 7, 0, 1, 0, 2, 'a', 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0xa2, 6, 0, 1, 0, 2, 0xe0, 0x80), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, leaves_topic_filter_syntax_to_core_topic)
{
    struct mqtt_pkt got;

    /* "a/#/b", "+x" and "#a" are bad filters [MQTT-4.7.1-2, -3], answered per
     * filter in SUBACK, so the packet itself decodes. */
    cr_assert_eq(
        dec(B(0x82, 19, 0, 1, 0, 5, 'a', '/', '#', '/', 'b', 1, 0, 2, '+', 'x', 0, 0, 2, '#', 'a'),
            MQTT_V311, &got),
        MALFORMED); /* last entry lacks its options byte */
    cr_assert_eq(dec(B(0x82, 20, 0, 1, 0, 5, 'a', '/', '#', '/', 'b', 1, 0, 2, '+', 'x', 0, 0, 2,
                       '#', 'a', 2),
                     MQTT_V311, &got),
                 0);
    cr_assert_eq(got.u.subscribe.count, 3);
}

Test(mqtt_codec, rejects_subscribe_entries_that_overrun_the_packet)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x82, 5, 0, 1, 0, 1, 'a'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x82, 6, 0, 1, 0, 2, 'a', 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x82, 7, 0, 1, 0, 1, 'a', 0, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0xa2, 6, 0, 1, 0, 1, 'a', 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0x82, 1, 0), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, rejects_subscribe_and_unsubscribe_packet_id_0_per_mqtt_2_3_1_1)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0x82, 6, 0, 0, 0, 1, 'a', 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0xa2, 5, 0, 0, 0, 1, 'a'), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x90, 3, 0, 0, 0), MQTT_V311, &got), MALFORMED);
}

Test(mqtt_codec, decodes_suback_and_rejects_bad_return_codes_per_mqtt_3_9_3_2)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec_any(B(0x90, 6, 0, 3, 0, 1, 2, 0x80), MQTT_V311, &got), 0);
    cr_assert_eq(got.u.suback.pkt_id, 3);
    cr_assert_eq(got.u.suback.count, 4);
    cr_assert(memcmp(got.u.suback.rcs, "\x00\x01\x02\x80", 4) == 0);
    cr_assert_eq(dec_any(B(0x90, 3, 0, 3, 3), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x90, 3, 0, 3, 0x81), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0x90, 2, 0, 3), MQTT_V311, &got), MALFORMED);
}

/* ---- PINGREQ PINGRESP DISCONNECT ---------------------------------------- */

Test(mqtt_codec, rejects_pingreq_pingresp_disconnect_with_a_body)
{
    struct mqtt_pkt got;

    cr_assert_eq(dec(B(0xc0, 0), MQTT_V311, &got), 0);
    cr_assert_eq(got.type, MQTT_PINGREQ);
    cr_assert_eq(dec(B(0xc0, 1, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec_any(B(0xd0, 1, 0), MQTT_V311, &got), MALFORMED);
    cr_assert_eq(dec(B(0xe0, 0), MQTT_V31, &got), 0);
    cr_assert_eq(got.type, MQTT_DISCONNECT);
    cr_assert_eq(dec(B(0xe0, 2, 0, 0), MQTT_V311, &got), MALFORMED);
}

/* ---- UTF-8 [MQTT-1.5.3-1, -2] ------------------------------------------- */

#define U(lit) (const uint8_t *)(lit), sizeof(lit) - 1

Test(mqtt_codec, validates_utf8_per_mqtt_1_5_3_1_and_2)
{
    static const struct {
        const uint8_t *s;
        size_t len;
        bool ok;
        const char *what;
    } table[] = {
        {U(""), true, "empty"},
        {U("a"), true, "ascii"},
        {U("abcdefghijklmnopqrstuvwxyz/0123456789"), true, "long ascii"},
        {U("\x01\x1f\x7f"), true, "control characters are well-formed"},
        {U("\xc2\x80"), true, "U+0080"},
        {U("\xdf\xbf"), true, "U+07FF"},
        {U("\xe0\xa0\x80"), true, "U+0800"},
        {U("\xed\x9f\xbf"), true, "U+D7FF"},
        {U("\xee\x80\x80"), true, "U+E000"},
        {U("\xef\xbb\xbf"), true, "U+FEFF"},
        {U("\xef\xbf\xbf"), true, "U+FFFF"},
        {U("\xf0\x90\x80\x80"), true, "U+10000"},
        {U("\xf4\x8f\xbf\xbf"), true, "U+10FFFF"},
        {U("abcdefg\xc3\xa9hijklmno\xf0\x9f\x98\x80pqrstuvw"), true, "mixed across words"},
        {U("\x00"), false, "U+0000"},
        {U("abc\x00"), false, "U+0000 after ascii"},
        {U("abcdefg\x00ijklmnop"), false, "U+0000 inside a word"},
        {U("abcdefgh\x00"), false, "U+0000 after a word"},
        {U("\xc0\x80"), false, "overlong U+0000"},
        {U("\xc1\xbf"), false, "overlong 2-byte"},
        {U("\xe0\x80\x80"), false, "overlong 3-byte"},
        {U("\xe0\x9f\xbf"), false, "overlong U+07FF"},
        {U("\xf0\x80\x80\x80"), false, "overlong 4-byte"},
        {U("\xf0\x8f\xbf\xbf"), false, "overlong U+FFFF"},
        {U("\xed\xa0\x80"), false, "surrogate U+D800"},
        {U("\xed\xbf\xbf"), false, "surrogate U+DFFF"},
        {U("\xed\xa0\xbd\xed\xb8\x80"), false, "CESU-8 surrogate pair"},
        {U("\xf4\x90\x80\x80"), false, "U+110000"},
        {U("\xf5\x80\x80\x80"), false, "lead F5"},
        {U("\xf8\x88\x80\x80\x80"), false, "5-byte form"},
        {U("\xfe"), false, "FE"},
        {U("\xff"), false, "FF"},
        {U("\x80"), false, "lone continuation"},
        {U("a\xbf"), false, "continuation after ascii"},
        {U("\xc2"), false, "truncated 2-byte"},
        {U("\xe0\xa0"), false, "truncated 3-byte"},
        {U("\xf0\x90\x80"), false, "truncated 4-byte"},
        {U("abcdefgh\xe2\x82"), false, "truncated at the end"},
        {U("\xc2\x41"), false, "bad 2nd byte"},
        {U("\xe1\x80\x41"), false, "bad 3rd byte"},
        {U("\xf1\x80\x80\xc0"), false, "bad 4th byte"},
        {U("\xe1\xc0\x80"), false, "lead as continuation"},
    };
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        struct guard g = guard_new(table[i].len);
        const uint8_t *at = guard_place(&g, table[i].s, table[i].len);

        cr_assert_eq(mqtt_utf8_valid(at, table[i].len), table[i].ok, "%s", table[i].what);
        guard_free(&g);
    }
}

static size_t utf8_put(uint8_t *b, uint32_t cp, size_t width)
{
    switch (width) {
    case 1:
        b[0] = (uint8_t)cp;
        break;
    case 2:
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        break;
    case 3:
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        break;
    default:
        b[0] = (uint8_t)(0xf0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        break;
    }
    return width;
}

Test(mqtt_codec, accepts_every_scalar_value_but_u0000_and_rejects_every_overlong_form)
{
    uint8_t b[4];
    uint32_t cp;

    for (cp = 0; cp <= 0x13ffff; cp++) {
        size_t w = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        bool ok = cp != 0 && (cp < 0xd800 || cp > 0xdfff) && cp <= 0x10ffff;

        utf8_put(b, cp, w);
        cr_assert_eq(mqtt_utf8_valid(b, w), ok, "U+%04X", cp);
        /* The same code point in a longer form is overlong. */
        if (w < 4) {
            cr_assert_not(mqtt_utf8_valid(b, utf8_put(b, cp, w + 1)), "overlong U+%04X", cp);
        }
    }
}

/* ---- helpers ------------------------------------------------------------ */

Test(mqtt_codec, maps_reason_codes_to_connack_v3_return_codes)
{
    cr_assert_eq(mqtt_rc_to_connack_v3(0), MQTT_CONNACK_ACCEPTED);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION), 1);
    cr_assert_eq(mqtt_rc_to_connack_v3(MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION), 1);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_CLIENT_ID_NOT_VALID), 2);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_SERVER_UNAVAILABLE), 3);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_SERVER_BUSY), 3);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_BAD_USERNAME_OR_PASSWORD), 4);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_NOT_AUTHORIZED), 5);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_BANNED), 5);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_MALFORMED_PACKET), 3);
    cr_assert_eq(mqtt_rc_to_connack_v3(-MQTT_RC_QUOTA_EXCEEDED), 3);
    cr_assert_eq(mqtt_rc_to_connack_v3(-12), 3);
    cr_assert_eq(mqtt_rc_to_connack_v3(INT32_MIN), 3);
}

Test(mqtt_codec, names_every_packet_type)
{
    cr_assert_str_eq(mqtt_type_name(MQTT_CONNECT), "CONNECT");
    cr_assert_str_eq(mqtt_type_name(MQTT_PUBLISH), "PUBLISH");
    cr_assert_str_eq(mqtt_type_name(MQTT_UNSUBACK), "UNSUBACK");
    cr_assert_str_eq(mqtt_type_name(MQTT_DISCONNECT), "DISCONNECT");
    cr_assert_str_eq(mqtt_type_name(MQTT_AUTH), "AUTH");
    cr_assert_str_eq(mqtt_type_name(0), "?");
    cr_assert_str_eq(mqtt_type_name(16), "?");
    cr_assert_str_eq(mqtt_type_name(255), "?");
}
