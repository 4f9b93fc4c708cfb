/*
 * 16-v5-will.c - e2e: MQTT 5.0 wills: will properties passed through, Will
 * Delay Interval (cancelled by a reconnection in time, published after the
 * delay, or at session end when that comes first), will message expiry,
 * DISCONNECT 0x04 publishes the will and 0x00 does not.
 *
 * Multi-shard-relevant cases run at shards = 1 and 4 (the reconnection may
 * land on another shard than the session's).
 */
#include <stdio.h>
#include <string.h>

#include "tests/e2e/harness.h"

#define ID_MAX 48

/* Start a v5 libmosquitto client with a will and @will_props (ownership passes). */
static struct e2e_client *start_with_will(struct e2e_broker *b, const char *id, bool clean,
                                          uint32_t session_expiry, const char *topic,
                                          const char *payload, mosquitto_property *will_props)
{
    struct e2e_will w = {
        .topic = topic, .payload = payload, .payload_len = strlen(payload), .qos = 1};
    mosquitto_property *props = NULL;
    struct e2e_client_opts o = {
        .version = E2E_V5, .id = id, .clean = clean, .will = &w, .will_props = will_props};
    struct e2e_client *c;

    if (session_expiry > 0) {
        e2e_prop_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, session_expiry);
    }
    o.props = props;
    c = e2e_client_start(b, &o);
    mosquitto_property_free_all(&props);
    e2e_client_wait_connack(c, 0);
    return c;
}

static mosquitto_property *delay_props(uint32_t delay_s)
{
    mosquitto_property *p = NULL;

    e2e_prop_u32(&p, MQTT_PROP_WILL_DELAY_INTERVAL, delay_s);
    return p;
}

/*
 * Will properties reach the subscriber: Payload Format Indicator, Content
 * Type, Response Topic, Correlation Data, and User Properties in order
 * [MQTT-3.1.3-10].
 */
E2E_TEST(v5_will, will_properties_are_passed_through)
{
    static const uint8_t corr[] = {1, 0, 2};
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_props wp = {.len = 0};
    struct e2e_connect_opts o = {
        .version = E2E_V5,
        .id = "wprops",
        .clean = true,
        .will_topic = "wp/t",
        .will_payload = "bye",
        .will_qos = 1,
    };
    static const char *const names[] = {"x", "y", "x"};
    static const char *const values[] = {"1", "2", "3"};
    struct e2e_v5pkt ack;
    struct e2e_v5pkt m;
    size_t k = 0;
    int wfd;
    int fd;

    wfd = e2e_raw_connect5_ok(b, "wpwatch", true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(wfd, 1, "wp/#", 1, NULL), 1);
    e2e_props_u8(&wp, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR, 1);
    e2e_props_str(&wp, MQTT_PROP_CONTENT_TYPE, "text/x-will");
    e2e_props_pair(&wp, names[0], values[0]);
    e2e_props_str(&wp, MQTT_PROP_RESPONSE_TOPIC, "wp/reply");
    e2e_props_pair(&wp, names[1], values[1]);
    e2e_props_bin(&wp, MQTT_PROP_CORRELATION_DATA, corr, sizeof(corr));
    e2e_props_pair(&wp, names[2], values[2]);
    o.will_props = &wp;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    e2e_v5pkt_free(&ack);
    e2e_raw_close(fd);

    e2e_raw_expect5(wfd, E2E_PUBLISH, &m);
    cr_assert_str_eq(m.topic, "wp/t");
    cr_assert(m.payload_len == 3 && memcmp(m.payload, "bye", 3) == 0);
    cr_assert(e2e_v5pkt_prop(&m, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR) != NULL &&
              e2e_v5pkt_prop(&m, MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)->value == 1);
    cr_assert(e2e_prop_streq(e2e_v5pkt_prop(&m, MQTT_PROP_CONTENT_TYPE), "text/x-will"));
    cr_assert(e2e_prop_streq(e2e_v5pkt_prop(&m, MQTT_PROP_RESPONSE_TOPIC), "wp/reply"));
    cr_assert(e2e_prop_eq(e2e_v5pkt_prop(&m, MQTT_PROP_CORRELATION_DATA), corr, sizeof(corr)));
    cr_assert_null(e2e_v5pkt_prop(&m, MQTT_PROP_WILL_DELAY_INTERVAL),
                   "Will Delay Interval is not a PUBLISH property");
    for (size_t i = 0; i < m.nprops; i++) {
        if (m.props[i].id != MQTT_PROP_USER_PROPERTY) {
            continue;
        }
        cr_assert_lt(k, 3);
        cr_assert(m.props[i].len == 1 && m.props[i].data[0] == names[k][0] &&
                      m.props[i].len2 == 1 && m.props[i].data2[0] == values[k][0],
                  "will user property %zu out of order [MQTT-3.1.3-10]", k);
        k++;
    }
    cr_assert_eq(k, 3, "%zu of 3 will user properties", k);
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(wfd);
    e2e_broker_stop(b);
}

/* The Will Delay Interval that a reconnection cancels. */
#define CANCEL_DELAY_S 2

/*
 * A reconnection within the Will Delay Interval cancels the will
 * [MQTT-3.1.3-9][MQTT-3.1.2-8], and ending the session later does not
 * bring it back. Whether it would have gone out is known without a time
 * margin: a control will with the same delay, homed on the same shard and
 * dropped after it, is published; the cancelled one would have been due no
 * later. The reconnection's own lateness is measured, and only one within
 * the delay must cancel the will: a starved test thread cannot make the
 * broker look wrong.
 */
static void delay_cancelled(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    mosquitto_property *zero = NULL;
    char id[ID_MAX];
    char xid[ID_MAX];
    char wid[ID_MAX];
    struct e2e_client *w;
    struct e2e_client *c;
    struct e2e_msg *m;
    int64_t t0;
    int64_t late_ms;
    bool in_time;
    int present = -1;

    e2e_id_on(n - 1, n, "wdc-", id, sizeof(id));
    e2e_id_on(n - 1, n, "wdcx-", xid, sizeof(xid));
    e2e_id_on(0, n, "wdcw-", wid, sizeof(wid));
    w = e2e_client_connect5(b, wid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(w, "wdc/#", 1, NULL), 1);
    c = start_with_will(b, id, true, 60, "wdc/will", "late", delay_props(CANCEL_DELAY_S));
    t0 = e2e_now_ms();
    e2e_client_drop(c); /* the broker has seen the loss: the reconnection cannot overtake it */
    c = e2e_client_connect5(b, id, false, 60, &present);
    late_ms = e2e_now_ms() - t0;
    in_time = late_ms < CANCEL_DELAY_S * 1000;
    cr_assert_eq(present, 1);
    e2e_client_drop(
        start_with_will(b, xid, true, 60, "wdc/control", "control", delay_props(CANCEL_DELAY_S)));
    m = e2e_client_wait_message(w, E2E_DEADLINE_WAIT_MS);
    cr_assert_not_null(m, "control will not published within %d ms", E2E_DEADLINE_WAIT_MS);
    cr_assert(!in_time || strcmp(m->topic, "wdc/control") == 0,
              "%s published although the session resumed %lld ms after the loss, within its "
              "%d s will delay [MQTT-3.1.3-9]",
              m->topic, (long long)late_ms, CANCEL_DELAY_S);
    e2e_msg_free(m);
    if (in_time) {
        /* The cancelled will, had it been due in the same timer walk. */
        e2e_client_expect_no_message(w, E2E_QUIET_MS);
    }
    /* End both sessions; the resumed one has no will left to publish. */
    e2e_prop_u32(&zero, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
    e2e_client_disconnect5(c, 0, zero);
    mosquitto_property_free_all(&zero);
    c = e2e_client_connect5(b, xid, true, 0, NULL);
    e2e_client_disconnect(c);
    if (in_time) {
        e2e_client_expect_no_message(w, E2E_QUIET_MS);
    }
    e2e_client_disconnect(w);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_will, will_delay_is_cancelled_by_a_reconnection_in_time, delay_cancelled)

/* Otherwise the will is published once the delay has elapsed [MQTT-3.1.2-8]. */
static void delay_elapses(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char id[ID_MAX];
    char wid[ID_MAX];
    struct e2e_client *w;
    struct e2e_client *c;
    struct e2e_msg *m;
    int64_t t0;
    int64_t dt;

    e2e_id_on(n - 1, n, "wde-", id, sizeof(id));
    e2e_id_on(0, n, "wdew-", wid, sizeof(wid));
    w = e2e_client_connect5(b, wid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(w, "wde/#", 1, NULL), 1);
    c = start_with_will(b, id, true, 60, "wde/will", "after", delay_props(1));
    e2e_client_abort(c);
    t0 = e2e_now_ms();
    m = e2e_client_wait_message(w, 1000 + 3000);
    dt = e2e_now_ms() - t0;
    cr_assert_not_null(m, "no will within 4 s of a 1 s Will Delay Interval");
    cr_assert_str_eq(m->topic, "wde/will");
    cr_assert_str_eq((const char *)m->payload, "after");
    e2e_msg_free(m);
    cr_assert_geq(dt, 900, "will published after %lld ms, before its 1 s delay", (long long)dt);
    /* Clean the 60 s session up. */
    c = e2e_client_connect5(b, id, true, 0, NULL);
    e2e_client_disconnect(c);
    e2e_client_disconnect(w);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_will, will_is_published_after_the_will_delay, delay_elapses)

/*
 * When the session ends before the Will Delay Interval, the will goes out
 * at session end [MQTT-3.1.2-8] [3.1.3.2.2]: delay 30 s with session expiry
 * 1 s -> about 1 s; with session expiry 0 -> at once.
 */
static void session_end_first(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char id1[ID_MAX];
    char id0[ID_MAX];
    char wid[ID_MAX];
    struct e2e_client *w;
    struct e2e_client *c;
    struct e2e_msg *m;
    int64_t t0;
    int64_t dt;

    e2e_id_on(n - 1, n, "wse1-", id1, sizeof(id1));
    e2e_id_on(1 % n, n, "wse0-", id0, sizeof(id0));
    e2e_id_on(0, n, "wsew-", wid, sizeof(wid));
    w = e2e_client_connect5(b, wid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(w, "wse/#", 1, NULL), 1);

    if (e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 waits the full will delay although the session ended. */
        goto expiry_one;
    }
    c = start_with_will(b, id0, true, 0, "wse/zero", "now", delay_props(30));
    e2e_client_abort(c);
    t0 = e2e_now_ms();
    m = e2e_client_wait_message(w, E2E_WAIT_MS);
    dt = e2e_now_ms() - t0;
    cr_assert_not_null(m, "session expiry 0: will not published at session end");
    cr_assert_str_eq(m->topic, "wse/zero");
    e2e_msg_free(m);
    cr_assert_lt(dt, 1000, "will took %lld ms although the session ended at once", (long long)dt);

expiry_one:
    c = start_with_will(b, id1, true, 1, "wse/one", "expired", delay_props(30));
    e2e_client_abort(c);
    t0 = e2e_now_ms();
    m = e2e_client_wait_message(w, 1000 + 3000);
    dt = e2e_now_ms() - t0;
    cr_assert_not_null(m, "no will within 4 s of a 1 s session expiry (delay 30 s)");
    cr_assert_str_eq(m->topic, "wse/one");
    e2e_msg_free(m);
    cr_assert_geq(dt, 900, "will after %lld ms, before the session ended", (long long)dt);
    e2e_client_disconnect(w);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_will, will_is_published_at_session_end_if_that_comes_first, session_end_first)

/* How old the 1 s will must be when the offline session comes back. */
#define WME_AGE_MS 2200

/*
 * Will Message Expiry: the will's Message Expiry Interval applies to the
 * published will [3.1.3.2.4][MQTT-3.3.2-5]: an offline session gets the
 * 60 s one (interval forwarded, <= 60 [MQTT-3.3.2-6]), not the 1 s one
 * once it is 2.2 s old. An online watcher sees when the wills were
 * published, so the age is counted from then, not from the drops.
 */
E2E_TEST(v5_will, will_message_expiry_applies)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    mosquitto_property *p1 = NULL;
    mosquitto_property *p60 = NULL;
    struct e2e_client *sub;
    struct e2e_client *watch;
    struct e2e_client *c;
    struct e2e_msg *m;
    int64_t t_pub = 0;
    uint32_t v = 0;
    int present = -1;
    int i;

    e2e_prop_u32(&p1, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 1);
    e2e_prop_u32(&p60, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 60);
    sub = e2e_client_connect5(b, "wmesub", true, 60, NULL);
    cr_assert_eq(e2e_client_subscribe5(sub, "wme/#", 1, NULL), 1);
    /*
     * Offline for certain before the wills: one the broker had already sent
     * to it would be in flight, and rightly exempt from expiry.
     */
    e2e_client_drop(sub);
    watch = e2e_client_connect5(b, "wmewatch", true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(watch, "wme/#", 1, NULL), 1);
    c = start_with_will(b, "wme1", true, 0, "wme/short", "s", p1);
    e2e_client_abort(c);
    c = start_with_will(b, "wme60", true, 0, "wme/long", "l", p60);
    e2e_client_abort(c);
    for (i = 0; i < 2; i++) {
        m = e2e_client_expect_message(watch);
        if (strcmp(m->topic, "wme/short") == 0) {
            t_pub = e2e_now_ms(); /* the broker published it before this */
        }
        e2e_msg_free(m);
    }
    cr_assert_gt(t_pub, 0, "the 1 s will did not reach the online watcher");
    /* The will aging in the broker is the behaviour under test: no event marks its expiry. */
    e2e_sleep_until_ms(t_pub + WME_AGE_MS);
    sub = e2e_client_connect5(b, "wmesub", false, 0, &present);
    cr_assert_eq(present, 1);
    m = e2e_client_expect_message(sub);
    cr_assert_str_eq(m->topic, "wme/long", "got %s: expired will delivered?", m->topic);
    cr_assert_not_null(
        mosquitto_property_read_int32(m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &v, false),
        "will published without its Message Expiry Interval");
    cr_assert(v > 0 && v <= 60, "will expiry %u forwarded for 60", v);
    e2e_msg_free(m);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(sub);
    e2e_client_disconnect(watch);
    e2e_broker_stop(b);
}

/*
 * DISCONNECT 0x04 (Disconnect with Will Message) publishes the will
 * [3.14.2.1]; DISCONNECT 0x00 discards it [MQTT-3.14.4-3].
 */
E2E_TEST(v5_will, disconnect_0x04_publishes_the_will_and_0x00_does_not)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *w = e2e_client_connect5(b, "d4watch", true, 0, NULL);
    struct e2e_client *c;

    cr_assert_eq(e2e_client_subscribe5(w, "d4/#", 1, NULL), 1);
    c = start_with_will(b, "d4normal", true, 0, "d4/normal", "no", NULL);
    e2e_client_disconnect5(c, 0x00, NULL);
    c = start_with_will(b, "d4will", true, 0, "d4/will", "yes", NULL);
    e2e_client_disconnect5(c, MQTT_RC_DISCONNECT_WITH_WILL_MSG, NULL);
    e2e_client_expect(w, "d4/will", "yes", 1, false);
    e2e_client_expect_no_message(w, E2E_QUIET_MS);
    e2e_client_disconnect(w);
    e2e_broker_stop(b);
}

/*
 * The will's Message Expiry Interval is the lifetime of the will message
 * once published [3.1.3.2.4: "sent as the Publication Expiry Interval when
 * the Server publishes the Will Message"; no normative id], so it does not
 * run while the connection lives: a will with expiry 2 s from a connection
 * that lived 3 s reaches an online subscriber, with an interval of at most
 * 2 s [MQTT-3.3.2-6]. (The old behaviour counted from CONNECT and dropped
 * it as expired: the expect below fails on no message.)
 */
E2E_TEST(v5_will, will_message_expiry_starts_when_the_will_is_published)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    mosquitto_property *p2 = NULL;
    struct e2e_client *sub;
    struct e2e_client *c;
    struct e2e_msg *m;
    uint32_t v = 0;

    e2e_prop_u32(&p2, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, 2);
    sub = e2e_client_connect5(b, "wmpsub", true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(sub, "wmp/#", 1, NULL), 1);
    c = start_with_will(b, "wmplong", true, 0, "wmp/will", "lived 3 s", p2);
    /* The connection outliving the will's expiry is the behaviour under test; longer is fine. */
    e2e_sleep_ms(3000);
    e2e_client_abort(c);
    m = e2e_client_wait_message(sub, E2E_WAIT_MS);
    cr_assert_not_null(m, "will with expiry 2 s lost after a 3 s connection: expiry counted "
                          "from CONNECT, not from publication");
    cr_assert_str_eq(m->topic, "wmp/will");
    cr_assert_str_eq((const char *)m->payload, "lived 3 s");
    cr_assert_not_null(
        mosquitto_property_read_int32(m->props, MQTT_PROP_MESSAGE_EXPIRY_INTERVAL, &v, false),
        "will published without its Message Expiry Interval");
    cr_assert(v > 0 && v <= 2, "will expiry %u forwarded for 2 [MQTT-3.3.2-6]", v);
    e2e_msg_free(m);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}

/* Raw v5 connection @id with a QoS 0 will on @topic, then DISCONNECT @reason and close. */
static void raw_will_disconnect(struct e2e_broker *b, const char *id, const char *topic,
                                uint8_t reason)
{
    struct e2e_connect_opts o = {
        .version = E2E_V5, .id = id, .clean = true, .will_topic = topic, .will_payload = id};
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    int fd;

    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    e2e_v5pkt_free(&ack);
    e2e_pkt_disconnect5(&p, reason, NULL);
    e2e_raw_send_pkt(fd, &p);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "no close after DISCONNECT");
    e2e_raw_close(fd);
}

/*
 * Only DISCONNECT 0x00 discards the will [MQTT-3.14.4-3]; a DISCONNECT
 * with an error reason (0x80 Unspecified error, 0x83 Implementation
 * specific error) is not a normal disconnection, so the will is published
 * [MQTT-3.1.2-8][3.1.2.5]. (The old behaviour discarded it for every code
 * but 0x04: the 0x80 expect fails.)
 */
E2E_TEST(v5_will, disconnect_with_an_error_reason_publishes_the_will)
{
    struct e2e_broker *b;
    struct e2e_client *w;

    e2e_ringmq_only("mosquitto 2.0.11 discards the will on every DISCONNECT but 0x04");
    b = e2e_broker_start(NULL);
    w = e2e_client_connect5(b, "derwatch", true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(w, "der/#", 0, NULL), 0);
    raw_will_disconnect(b, "der00", "der/00", 0x00);
    raw_will_disconnect(b, "der80", "der/80", MQTT_RC_UNSPECIFIED);
    e2e_client_expect(w, "der/80", "der80", 0, false);
    raw_will_disconnect(b, "der83", "der/83", MQTT_RC_IMPLEMENTATION_SPECIFIC);
    e2e_client_expect(w, "der/83", "der83", 0, false);
    e2e_client_expect_no_message(w, E2E_QUIET_MS);
    e2e_client_disconnect(w);
    e2e_broker_stop(b);
}
