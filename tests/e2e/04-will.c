/*
 * 04-will.c - e2e: will messages: published when the connection ends
 * without DISCONNECT (abrupt close, keepalive timeout, protocol error), not
 * after DISCONNECT; will QoS and retain honoured.
 */
#include <string.h>

#include "tests/e2e/harness.h"

/* Abrupt close (no DISCONNECT) publishes the will [MQTT-3.1.2-8]. */
static void will_on_abrupt_close(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *watcher = e2e_client_connect(b, version, "watch", true);
    struct e2e_will w = {.topic = "will/t", .payload = "gone", .payload_len = 4, .qos = 1};
    struct e2e_client_opts o = {.version = version, .id = "dying", .clean = true, .will = &w};
    struct e2e_client *dying;

    cr_assert_eq(e2e_client_subscribe(watcher, "will/#", 2), 2);
    dying = e2e_client_start(b, &o);
    e2e_client_wait_connack(dying, 0);
    e2e_client_expect_no_message(watcher, 100);
    e2e_client_abort(dying);
    /* Will QoS 1 to a QoS 2 subscription: delivered at 1; retain 0 [MQTT-3.1.2-16]. */
    e2e_client_expect(watcher, "will/t", "gone", 1, false);
    e2e_client_expect_no_message(watcher, E2E_QUIET_MS);
    e2e_client_disconnect(watcher);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(will, abrupt_close_publishes_the_will, will_on_abrupt_close)

/*
 * Keepalive expiry (1.5 x keepalive without a packet [MQTT-3.1.2-24])
 * publishes the will [MQTT-3.1.2-8], not before the keepalive has elapsed.
 */
static void will_on_keepalive(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *watcher = e2e_client_connect(b, version, "watch", true);
    struct e2e_connect_opts o = {
        .version = version,
        .id = "silent",
        .clean = true,
        .keepalive_s = 1,
        .will_topic = "will/ka",
        .will_payload = "timeout",
        .will_qos = 2,
    };
    uint8_t ack[4];
    int64_t t0;
    int64_t dt;
    struct e2e_msg *m;
    int fd;

    cr_assert_eq(e2e_client_subscribe(watcher, "will/ka", 2), 2);
    fd = e2e_raw_connect(b, &o, ack);
    t0 = e2e_now_ms();
    cr_assert(memcmp(ack, "\x20\x02\x00\x00", 4) == 0);
    m = e2e_client_wait_message(watcher, (int)e2e_keepalive_1s_max_ms());
    dt = e2e_now_ms() - t0;
    cr_assert_not_null(m, "no will within %lld ms of a 1 s keepalive expiring",
                       (long long)e2e_keepalive_1s_max_ms());
    cr_assert_str_eq(m->topic, "will/ka");
    cr_assert_str_eq((const char *)m->payload, "timeout");
    cr_assert_eq(m->qos, 2);
    cr_assert(!m->retain);
    e2e_msg_free(m);
    cr_assert(dt >= 1000, "will published after %lld ms, before the 1 s keepalive elapsed",
              (long long)dt);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "connection not closed");
    e2e_raw_close(fd);
    e2e_client_disconnect(watcher);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(will, keepalive_timeout_publishes_the_will, will_on_keepalive)

/*
 * After DISCONNECT the will is discarded and not published [MQTT-3.1.2-10].
 * The broker has processed the DISCONNECT once it closed the connection; a
 * marker published afterwards must be the next thing the watcher sees.
 */
static void no_will_after_disconnect(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *watcher = e2e_client_connect(b, version, "watch", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_connect_opts o = {
        .version = version,
        .id = "polite",
        .clean = true,
        .will_topic = "will/d",
        .will_payload = "must not",
        .will_qos = 1,
    };
    struct e2e_will w = {.topic = "will/d", .payload = "lib", .payload_len = 3, .qos = 0};
    struct e2e_client_opts co = {.version = version, .id = "polite2", .clean = true, .will = &w};
    struct e2e_client *c;
    uint8_t ack[4];
    int fd;

    cr_assert_eq(e2e_client_subscribe(watcher, "will/d", 1), 1);
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, "\x20\x02\x00\x00", 4) == 0);
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2));
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL),
              "broker did not close after DISCONNECT [MQTT-3.14.4-1]");
    e2e_raw_close(fd);

    /* The same through libmosquitto. */
    c = e2e_client_start(b, &co);
    e2e_client_wait_connack(c, 0);
    e2e_client_disconnect(c);

    e2e_client_publish(pub, "will/d", "marker", 6, 1, false);
    e2e_client_expect(watcher, "will/d", "marker", 1, false);
    e2e_client_expect_no_message(watcher, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(watcher);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(will, disconnect_discards_the_will, no_will_after_disconnect)

/* Will retain 1: published as a retained message [MQTT-3.1.2-17]. */
static void will_retained(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_will w = {
        .topic = "will/r",
        .payload = "ret",
        .payload_len = 3,
        .qos = 1,
        .retain = true,
    };
    struct e2e_will w0 = {.topic = "will/n", .payload = "nret", .payload_len = 4, .qos = 1};
    struct e2e_client_opts o = {.version = version, .id = "dying", .clean = true, .will = &w};
    struct e2e_client_opts o0 = {.version = version, .id = "dying0", .clean = true, .will = &w0};
    struct e2e_client *watcher = e2e_client_connect(b, version, "watch", true);
    struct e2e_client *dying;
    struct e2e_client *late;

    cr_assert_eq(e2e_client_subscribe(watcher, "will/+", 1), 1);
    dying = e2e_client_start(b, &o);
    e2e_client_wait_connack(dying, 0);
    e2e_client_abort(dying);
    dying = e2e_client_start(b, &o0);
    e2e_client_wait_connack(dying, 0);
    e2e_client_abort(dying);
    /*
     * Both published (live delivery: retain 0); wait so both are processed.
     * Two publishers: their wills may arrive in either order (with several
     * shards one may cross shards and the other not).
     */
    for (int i = 0; i < 2; i++) {
        struct e2e_msg *m = e2e_client_expect_message(watcher);
        bool r = strcmp(m->topic, "will/r") == 0;

        cr_assert(r || strcmp(m->topic, "will/n") == 0, "unexpected topic %s", m->topic);
        cr_assert_str_eq((const char *)m->payload, r ? "ret" : "nret");
        cr_assert_eq(m->qos, 1);
        cr_assert_not(m->retain, "forwarded wills carry RETAIN 0 [MQTT-3.3.1-9]");
        e2e_msg_free(m);
    }

    late = e2e_client_connect(b, version, "late", true);
    cr_assert_eq(e2e_client_subscribe(late, "will/+", 1), 1);
    /* Only the retained will is kept [MQTT-3.1.2-16] [MQTT-3.1.2-17]. */
    e2e_client_expect(late, "will/r", "ret", 1, true);
    e2e_client_expect_no_message(late, E2E_QUIET_MS);
    e2e_client_disconnect(late);
    e2e_client_disconnect(watcher);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(will, will_retain_flag_stores_the_will_as_retained, will_retained)

/* A connection closed for a protocol violation publishes its will [MQTT-3.1.2-8]. */
static void will_on_protocol_error(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *watcher = e2e_client_connect(b, version, "watch", true);
    struct e2e_connect_opts o = {
        .version = version,
        .id = "rude",
        .clean = true,
        .will_topic = "will/e",
        .will_payload = "violated",
        .will_qos = 0,
    };
    uint8_t ack[4];
    int fd;

    cr_assert_eq(e2e_client_subscribe(watcher, "will/e", 0), 0);
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, "\x20\x02\x00\x00", 4) == 0);
    /* PUBLISH with QoS 3 is malformed [MQTT-3.3.1-4]. */
    e2e_raw_send(fd,
                 "\x36\x07\x00\x03"
                 "a/b"
                 "\x00\x01",
                 9);
    e2e_raw_expect_closed_silently(fd);
    e2e_client_expect(watcher, "will/e", "violated", 0, false);
    e2e_client_disconnect(watcher);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(will, protocol_error_close_publishes_the_will, will_on_protocol_error)
