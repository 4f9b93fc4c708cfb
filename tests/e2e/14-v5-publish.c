/*
 * 14-v5-publish.c - e2e: MQTT 5.0 PUBLISH features: message expiry (not
 * delivered once expired, remaining interval forwarded), payload format
 * indicator / content type / response topic / correlation data passed
 * through (live and retained), user properties in order, subscription
 * identifiers delivered (several for overlapping filters), and a 3.1.1
 * client next to v5 clients getting exact 3.1.1 packets.
 *
 * Multi-shard-relevant cases run at shards = 1 and 4.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

#define ID_MAX 48

/* The Message Expiry Interval of a libmosquitto message, or -1 if absent. */
static int64_t msg_expiry(const struct e2e_msg *m)
{
    uint32_t v = 0;

    if (mosquitto_property_read_int32(m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &v, false) ==
        NULL) {
        return -1;
    }
    return v;
}

static struct e2e_msg *expect_msg(struct e2e_client *c, const char *topic, const char *payload)
{
    struct e2e_msg *m = e2e_client_expect_message(c);

    cr_assert_str_eq(m->topic, topic);
    cr_assert_str_eq((const char *)m->payload, payload, "payload \"%s\" on %s, expected \"%s\"",
                     (const char *)m->payload, topic, payload);
    return m;
}

/* How old the queued messages must be when the offline session comes back. */
#define ME_AGE_MS 2200

/*
 * An expired message is not delivered to a session that was offline
 * [MQTT-3.3.2-5]; one still valid is, with the remaining interval
 * [MQTT-3.3.2-6]; one without expiry keeps none; online delivery carries an
 * interval no larger than the original. The age is counted from the 60 s
 * message's PUBACK (the broker had received it, and the 1 s one, by then).
 */
static void message_expiry(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    mosquitto_property *one = NULL;
    mosquitto_property *sixty = NULL;
    mosquitto_property *thirty = NULL;
    char sid[ID_MAX];
    char pid[ID_MAX];
    char lid[ID_MAX];
    struct e2e_client *sub;
    struct e2e_client *live;
    struct e2e_client *pub;
    struct e2e_msg *m;
    int present = -1;
    int64_t t_queued;
    int64_t v;

    e2e_id_on(n - 1, n, "mes-", sid, sizeof(sid));
    e2e_id_on(0, n, "mep-", pid, sizeof(pid));
    e2e_id_on(1 % n, n, "mel-", lid, sizeof(lid));
    e2e_prop_u32(&one, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 1);
    e2e_prop_u32(&sixty, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 60);
    e2e_prop_u32(&thirty, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 30);
    sub = e2e_client_connect5(b, sid, true, 60, NULL);
    cr_assert_eq(e2e_client_subscribe5(sub, "me/t", 1, NULL), 1);
    /*
     * Offline for certain before the publishes: one the broker had already
     * sent to it would be in flight, and rightly exempt from expiry.
     */
    e2e_client_drop(sub);
    live = e2e_client_connect5(b, lid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(live, "me/live", 1, NULL), 1);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "me/t", "short", 5, 1, false, one);
    e2e_client_publish5(pub, "me/t", "long", 4, 1, false, sixty);
    t_queued = e2e_now_ms();
    e2e_client_publish5(pub, "me/t", "none", 4, 1, false, NULL);
    e2e_client_publish5(pub, "me/live", "live", 4, 1, false, thirty);
    m = expect_msg(live, "me/live", "live");
    v = msg_expiry(m);
    cr_assert(v > 0 && v <= 30, "live message expiry %lld, sent 30 [MQTT-3.3.2-6]", (long long)v);
    e2e_msg_free(m);
    /* The messages aging in the broker is the behaviour under test: no event marks an expiry. */
    e2e_sleep_until_ms(t_queued + ME_AGE_MS);
    sub = e2e_client_connect5(b, sid, false, 0, &present);
    cr_assert_eq(present, 1);
    m = expect_msg(sub, "me/t", "long");
    v = msg_expiry(m);
    cr_assert(v > 0 && v <= 58,
              "message queued 2.2 s forwarded with expiry %lld of 60 [MQTT-3.3.2-6]", (long long)v);
    e2e_msg_free(m);
    m = expect_msg(sub, "me/t", "none");
    cr_assert_eq(msg_expiry(m), -1, "expiry added to a message without one");
    e2e_msg_free(m);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(sub);
    e2e_client_disconnect(live);
    e2e_client_disconnect(pub);
    mosquitto_property_free_all(&one);
    mosquitto_property_free_all(&sixty);
    mosquitto_property_free_all(&thirty);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_publish, expired_messages_are_not_delivered_and_the_rest_is_forwarded,
                message_expiry)

static const uint8_t corr[] = {0x00, 0x01, 0xff, 0x00, 'c'};

/* Assert the four request/response and format properties on a raw PUBLISH. */
static void check_raw_props(const struct e2e_v5pkt *m)
{
    const struct e2e_prop *pr;

    pr = e2e_v5pkt_prop(m, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
    cr_assert(pr != NULL && pr->value == 1, "Payload Format Indicator lost [MQTT-3.3.2-4]");
    cr_assert(e2e_prop_streq(e2e_v5pkt_prop(m, MQTT_PROP_CONTENT_TYPE), "text/plain; v=1"),
              "Content Type altered [MQTT-3.3.2-20]");
    cr_assert(e2e_prop_streq(e2e_v5pkt_prop(m, MQTT_PROP_RESPONSE_TOPIC), "pt/reply/42"),
              "Response Topic altered [MQTT-3.3.2-15]");
    cr_assert(e2e_prop_eq(e2e_v5pkt_prop(m, MQTT_PROP_CORRELATION_DATA), corr, sizeof(corr)),
              "Correlation Data altered [MQTT-3.3.2-16]");
    cr_assert_eq(e2e_v5pkt_prop_count(m, MQTT_PROP_CONTENT_TYPE), 1);
    cr_assert_eq(e2e_v5pkt_prop_count(m, MQTT_PROP_RESPONSE_TOPIC), 1);
    cr_assert_eq(e2e_v5pkt_prop_count(m, MQTT_PROP_CORRELATION_DATA), 1);
}

/*
 * Payload Format Indicator [MQTT-3.3.2-4], Content Type [MQTT-3.3.2-20],
 * Response Topic [MQTT-3.3.2-15] and Correlation Data [MQTT-3.3.2-16] reach
 * every subscriber unaltered, live and from the retained store.
 */
static void props_pass_through(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    mosquitto_property *props = NULL;
    char rid[ID_MAX];
    char lid[ID_MAX];
    char pid[ID_MAX];
    char late[ID_MAX];
    struct e2e_client *lib;
    struct e2e_client *pub;
    struct e2e_msg *m;
    struct e2e_v5pkt pk;
    uint8_t u8 = 0;
    char *s = NULL;
    void *bin = NULL;
    uint16_t blen = 0;
    int pass;
    int fd;

    e2e_id_on(n - 1, n, "ptr-", rid, sizeof(rid));
    e2e_id_on(1 % n, n, "ptl-", lid, sizeof(lid));
    e2e_id_on(0, n, "ptp-", pid, sizeof(pid));
    e2e_id_on(2 % n, n, "ptlate-", late, sizeof(late));
    e2e_prop_u8(&props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
    e2e_prop_str(&props, MQTT_PROP_CONTENT_TYPE, "text/plain; v=1");
    e2e_prop_str(&props, MQTT_PROP_RESPONSE_TOPIC, "pt/reply/42");
    e2e_prop_bin(&props, MQTT_PROP_CORRELATION_DATA, corr, sizeof(corr));
    fd = e2e_raw_connect5_ok(b, rid, true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "pt/#", 0, NULL), 0);
    lib = e2e_client_connect5(b, lid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(lib, "pt/+", 1, NULL), 1);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "pt/req", "hello", 5, 1, true, props);

    e2e_raw_expect5(fd, E2E_PUBLISH, &pk);
    cr_assert_str_eq(pk.topic, "pt/req");
    check_raw_props(&pk);
    e2e_v5pkt_free(&pk);
    m = expect_msg(lib, "pt/req", "hello");
    cr_assert_not_null(
        mosquitto_property_read_byte(m->props, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, &u8, false));
    cr_assert_eq(u8, 1);
    cr_assert_not_null(mosquitto_property_read_string(m->props, MQTT_PROP_CONTENT_TYPE, &s, false));
    cr_assert_str_eq(s, "text/plain; v=1");
    free(s);
    s = NULL;
    cr_assert_not_null(
        mosquitto_property_read_string(m->props, MQTT_PROP_RESPONSE_TOPIC, &s, false));
    cr_assert_str_eq(s, "pt/reply/42");
    free(s);
    cr_assert_not_null(
        mosquitto_property_read_binary(m->props, MQTT_PROP_CORRELATION_DATA, &bin, &blen, false));
    cr_assert(blen == sizeof(corr) && memcmp(bin, corr, blen) == 0);
    free(bin);
    e2e_msg_free(m);

    /* The retained copy keeps them too (a subscriber homed elsewhere). */
    for (pass = 0; pass < 1; pass++) {
        int fd2 = e2e_raw_connect5_ok(b, late, true, 0, NULL);

        cr_assert_eq(e2e_raw_subscribe5(fd2, 1, "pt/req", 0, NULL), 0);
        e2e_raw_expect5(fd2, E2E_PUBLISH, &pk);
        cr_assert(pk.retain, "retained message without RETAIN on a new subscription");
        check_raw_props(&pk);
        e2e_v5pkt_free(&pk);
        e2e_raw_disconnect5(fd2);
    }
    /* Clear the retained message. */
    e2e_client_publish5(pub, "pt/req", "", 0, 1, true, NULL);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(lib);
    e2e_client_disconnect(pub);
    mosquitto_property_free_all(&props);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_publish, format_content_type_response_topic_and_correlation_pass_through,
                props_pass_through)

static const char *const up_names[] = {"a", "b", "a", "", "k\xc3\xbc"};
static const char *const up_values[] = {"1", "2", "3", "empty", "v\xc3\x9f"};
#define UP_N 5

/*
 * User Properties reach subscribers unaltered [MQTT-3.3.2-17] and in their
 * order, duplicates included [MQTT-3.3.2-18].
 */
static void user_props_in_order(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    mosquitto_property *props = NULL;
    const mosquitto_property *it;
    char rid[ID_MAX];
    char lid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *lib;
    struct e2e_client *pub;
    struct e2e_msg *m;
    struct e2e_v5pkt pk;
    size_t k = 0;
    int i;
    int fd;

    e2e_id_on(n - 1, n, "upr-", rid, sizeof(rid));
    e2e_id_on(1 % n, n, "upl-", lid, sizeof(lid));
    e2e_id_on(0, n, "upp-", pid, sizeof(pid));
    for (i = 0; i < UP_N; i++) {
        e2e_prop_pair(&props, up_names[i], up_values[i]);
    }
    fd = e2e_raw_connect5_ok(b, rid, true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "up/t", 1, NULL), 1);
    lib = e2e_client_connect5(b, lid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(lib, "up/t", 1, NULL), 1);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "up/t", "p", 1, 1, false, props);

    e2e_raw_expect5(fd, E2E_PUBLISH, &pk);
    for (i = 0; i < (int)pk.nprops; i++) {
        const struct e2e_prop *pr = &pk.props[i];

        if (pr->id != MQTT_PROP_USER_PROPERTY) {
            continue;
        }
        cr_assert_lt(k, UP_N, "more user properties than sent");
        cr_assert(pr->len == strlen(up_names[k]) && memcmp(pr->data, up_names[k], pr->len) == 0,
                  "user property %zu name %.*s, expected %s [MQTT-3.3.2-18]", k, (int)pr->len,
                  (const char *)pr->data, up_names[k]);
        cr_assert(pr->len2 == strlen(up_values[k]) &&
                      memcmp(pr->data2, up_values[k], pr->len2) == 0,
                  "user property %zu value altered [MQTT-3.3.2-17]", k);
        k++;
    }
    cr_assert_eq(k, UP_N, "%zu of %d user properties forwarded [MQTT-3.3.2-17]", k, UP_N);
    {
        struct e2e_pkt ack;

        e2e_pkt_ack(&ack, 0x40, pk.pkt_id);
        e2e_raw_send_pkt(fd, &ack);
    }
    e2e_v5pkt_free(&pk);

    m = expect_msg(lib, "up/t", "p");
    k = 0;
    for (it = m->props; it != NULL; it = mosquitto_property_next(it)) {
        char *name = NULL;
        char *value = NULL;

        if (mosquitto_property_identifier(it) != MQTT_PROP_USER_PROPERTY) {
            continue;
        }
        cr_assert_not_null(
            mosquitto_property_read_string_pair(it, MQTT_PROP_USER_PROPERTY, &name, &value, false));
        cr_assert_lt(k, UP_N);
        /* libmosquitto gives NULL for an empty string. */
        cr_assert_str_eq(name != NULL ? name : "", up_names[k]);
        cr_assert_str_eq(value != NULL ? value : "", up_values[k]);
        free(name);
        free(value);
        k++;
    }
    cr_assert_eq(k, UP_N);
    e2e_msg_free(m);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(lib);
    e2e_client_disconnect(pub);
    mosquitto_property_free_all(&props);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_publish, user_properties_are_forwarded_in_order, user_props_in_order)

/* ---------------------------------------------------------------- subscription ids */

/*
 * Collect the copies of one message on @fd (until quiet) and OR the
 * subscription identifiers found into @ids (bit per id index in @known).
 * Returns the number of copies.
 */
static int collect_sub_ids(int fd, const char *topic, const uint32_t *known, size_t nknown,
                           unsigned *ids, int *copies_without)
{
    struct e2e_v5pkt m;
    int copies = 0;

    *ids = 0;
    *copies_without = 0;
    while (e2e_raw_read5(fd, &m, copies == 0 ? E2E_WAIT_MS : E2E_QUIET_MS)) {
        size_t cnt = 0;

        cr_assert_eq(m.type, E2E_PUBLISH);
        cr_assert_str_eq(m.topic, topic);
        for (size_t i = 0; i < m.nprops; i++) {
            size_t k;

            if (m.props[i].id != MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
                continue;
            }
            cnt++;
            for (k = 0; k < nknown && known[k] != m.props[i].value; k++) {
            }
            cr_assert_lt(k, nknown, "unknown subscription identifier %u", m.props[i].value);
            cr_assert_eq(*ids & (1u << k), 0, "subscription identifier %u twice", m.props[i].value);
            *ids |= 1u << k;
        }
        *copies_without += cnt == 0;
        copies++;
        e2e_v5pkt_free(&m);
    }
    cr_assert_gt(copies, 0, "no message on %s", topic);
    return copies;
}

/*
 * Subscription identifiers are delivered [MQTT-3.3.4-3]; one copy for
 * overlapping subscriptions carries all of them [MQTT-3.3.4-4] (mosquitto
 * sends a copy per subscription, each with its own [MQTT-3.3.4-5]); a
 * replaced subscription without an id delivers none [MQTT-3.8.4-3].
 */
static void sub_ids(unsigned n)
{
    static const uint32_t known[] = {7, 300, 268435455};
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_props p7 = {.len = 0};
    struct e2e_props p300 = {.len = 0};
    struct e2e_props pmax = {.len = 0};
    char sid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    unsigned ids;
    int without;
    int copies;
    int fd;

    e2e_id_on(n - 1, n, "sis-", sid, sizeof(sid));
    e2e_id_on(0, n, "sip-", pid, sizeof(pid));
    e2e_props_varint(&p7, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, 7);
    e2e_props_varint(&p300, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, 300);
    e2e_props_varint(&pmax, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, 268435455);
    fd = e2e_raw_connect5_ok(b, sid, true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "si/+", 0, &p7), 0);
    cr_assert_eq(e2e_raw_subscribe5(fd, 2, "si/#", 0, &p300), 0);
    cr_assert_eq(e2e_raw_subscribe5(fd, 3, "si/x", 0, NULL), 0);
    cr_assert_eq(e2e_raw_subscribe5(fd, 4, "si/max/#", 0, &pmax), 0);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);

    e2e_client_publish5(pub, "si/x", "x", 1, 0, false, NULL);
    copies = collect_sub_ids(fd, "si/x", known, 3, &ids, &without);
    cr_assert_eq(ids, 3u, "identifiers 7 and 300 not both delivered [MQTT-3.3.4-3]");
    if (e2e_mosquitto_mode()) {
        cr_assert_eq(copies, 3);
        cr_assert_eq(without, 1, "[MQTT-3.3.4-5]");
    } else {
        cr_assert_eq(copies, 1, "%d copies for overlapping subscriptions", copies);
    }

    e2e_client_publish5(pub, "si/y/z", "y", 1, 0, false, NULL);
    copies = collect_sub_ids(fd, "si/y/z", known, 3, &ids, &without);
    cr_assert_eq(copies, 1);
    cr_assert_eq(ids, 2u, "only si/# (300) matches si/y/z");

    e2e_client_publish5(pub, "si/max/a", "m", 1, 0, false, NULL);
    copies = collect_sub_ids(fd, "si/max/a", known, 3, &ids, &without);
    cr_assert_eq(ids & 4u, 4u, "identifier 268435455 (4-byte varint) lost");

    /* Replace si/# without an identifier. */
    cr_assert_eq(e2e_raw_subscribe5(fd, 5, "si/#", 0, NULL), 0);
    e2e_client_publish5(pub, "si/y/z", "y", 1, 0, false, NULL);
    copies = collect_sub_ids(fd, "si/y/z", known, 3, &ids, &without);
    cr_assert_eq(ids, 0u, "identifier kept after the subscription was replaced without one");
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_publish, subscription_identifiers_are_delivered, sub_ids)

/*
 * [MQTT-3.3.4-4]: with 24 overlapping subscriptions (each level of
 * "a/b/c/d" literal or '+', and eight '#' filters), every identifier is
 * delivered (ringmq: in one copy; mosquitto: one copy per subscription).
 */
static void many_sub_ids(unsigned n)
{
    enum { FILTERS = 24 };
    static const char *const hash_filters[] = {"#",       "a/#",     "a/b/#",   "a/b/c/#",
                                               "a/b/c/d/#", "+/#",   "+/+/#",   "a/+/c/#"};
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    uint32_t known[FILTERS];
    char filters[FILTERS][16];
    char sid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    unsigned ids;
    int without;
    int copies;
    int fd;

    for (unsigned i = 0; i < 16; i++) {
        snprintf(filters[i], sizeof(filters[i]), "%s/%s/%s/%s", i & 1 ? "+" : "a",
                 i & 2 ? "+" : "b", i & 4 ? "+" : "c", i & 8 ? "+" : "d");
    }
    for (unsigned i = 16; i < FILTERS; i++)
        snprintf(filters[i], sizeof(filters[i]), "%s", hash_filters[i - 16]);
    e2e_id_on(n - 1, n, "msis-", sid, sizeof(sid));
    e2e_id_on(0, n, "msip-", pid, sizeof(pid));
    fd = e2e_raw_connect5_ok(b, sid, true, 0, NULL);
    for (unsigned i = 0; i < FILTERS; i++) {
        struct e2e_props pr = {.len = 0};

        known[i] = 100 + i;
        e2e_props_varint(&pr, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, known[i]);
        cr_assert_eq(e2e_raw_subscribe5(fd, (uint16_t)(i + 1), filters[i], 0, &pr), 0, "%s",
                     filters[i]);
    }
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "a/b/c/d", "x", 1, 0, false, NULL);
    copies = collect_sub_ids(fd, "a/b/c/d", known, FILTERS, &ids, &without);
    cr_assert_eq(ids, (1u << FILTERS) - 1, "identifiers delivered: %#x of %#x", ids,
                 (1u << FILTERS) - 1);
    cr_assert_eq(without, 0);
    if (!e2e_mosquitto_mode())
        cr_assert_eq(copies, 1, "%d copies for overlapping subscriptions", copies);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_publish, every_identifier_of_many_overlapping_subscriptions, many_sub_ids)

/* ---------------------------------------------------------------- 3.1.1 next to v5 */

/*
 * Read a 3.1.1 QoS 1 PUBLISH and assert its bytes: 0x32, remaining length,
 * topic, a non-zero packet id, the payload, nothing else. Returns the id.
 */
static uint16_t expect_v311_publish(int fd, const char *topic, const char *payload)
{
    uint8_t buf[256];
    size_t hdr = 0;
    size_t tl = strlen(topic);
    size_t pl = strlen(payload);
    size_t n = e2e_raw_read_packet(fd, buf, sizeof(buf), E2E_WAIT_MS, &hdr);
    uint16_t id;

    cr_assert_gt(n, 0, "no PUBLISH on %s", topic);
    cr_assert_eq(buf[0], 0x32, "first byte 0x%02x", buf[0]);
    cr_assert_eq(n - hdr, 2 + tl + 2 + pl,
                 "3.1.1 PUBLISH body %zu bytes, expected %zu (properties leaked?)", n - hdr,
                 2 + tl + 2 + pl);
    cr_assert(buf[hdr] == 0 && buf[hdr + 1] == tl && memcmp(buf + hdr + 2, topic, tl) == 0);
    id = (uint16_t)(buf[hdr + 2 + tl] << 8 | buf[hdr + 3 + tl]);
    cr_assert_neq(id, 0);
    cr_assert(memcmp(buf + hdr + 4 + tl, payload, pl) == 0);
    return id;
}

/*
 * A 3.1.1 client gets exact 3.1.1 packets even from a v5 publisher with
 * properties (no property length, no reason codes): SUBACK "90 03 ..",
 * PUBLISH bytes, UNSUBACK "b0 02 ..". 3.1.1 and v5 libmosquitto clients
 * exchange messages both ways.
 */
static void v311_with_v5(unsigned n)
{
    static const char *const filters[] = {"mix/#"};
    static const uint8_t qos[] = {1};
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    mosquitto_property *props = NULL;
    char rid[ID_MAX];
    char v3id[ID_MAX];
    char v5id[ID_MAX];
    struct e2e_client *v3;
    struct e2e_client *v5;
    struct e2e_pkt p;
    int fd;

    e2e_id_on(n - 1, n, "mixr-", rid, sizeof(rid));
    e2e_id_on(1 % n, n, "mix3-", v3id, sizeof(v3id));
    e2e_id_on(0, n, "mix5-", v5id, sizeof(v5id));
    fd = e2e_raw_connect_ok(b, E2E_V311, rid, true, 0);
    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x03\x00\x01\x01", 5, E2E_WAIT_MS);
    v3 = e2e_client_connect(b, E2E_V311, v3id, true);
    cr_assert_eq(e2e_client_subscribe(v3, "mix/v5t", 1), 1);
    v5 = e2e_client_connect5(b, v5id, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(v5, "mix/v3t", 1, NULL), 1);

    e2e_prop_pair(&props, "k", "v");
    e2e_prop_u32(&props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 100);
    e2e_prop_str(&props, MQTT_PROP_CONTENT_TYPE, "text/plain");
    e2e_client_publish5(v5, "mix/v5t", "hi", 2, 1, false, props);
    e2e_client_expect(v3, "mix/v5t", "hi", 1, false);
    e2e_pkt_ack(&p, 0x40, expect_v311_publish(fd, "mix/v5t", "hi"));
    e2e_raw_send_pkt(fd, &p);

    e2e_client_publish(v3, "mix/v3t", "yo", 2, 1, false);
    e2e_client_expect(v5, "mix/v3t", "yo", 1, false);
    e2e_pkt_ack(&p, 0x40, expect_v311_publish(fd, "mix/v3t", "yo"));
    e2e_raw_send_pkt(fd, &p);

    e2e_pkt_unsubscribe(&p, 3, 1, filters);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\xb0\x02\x00\x03", 4, E2E_WAIT_MS);
    /* Unsubscribing a filter that was never there: still the bare 3.1.1 UNSUBACK. */
    e2e_pkt_unsubscribe(&p, 4, 1, filters);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\xb0\x02\x00\x04", 4, E2E_WAIT_MS);
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2));
    e2e_raw_close(fd);
    e2e_client_disconnect(v3);
    e2e_client_disconnect(v5);
    mosquitto_property_free_all(&props);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_publish, v311_client_gets_exact_v311_packets_next_to_v5_clients, v311_with_v5)
