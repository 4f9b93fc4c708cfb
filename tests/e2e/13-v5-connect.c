/*
 * 13-v5-connect.c - e2e: MQTT 5.0 CONNECT/CONNACK features: session expiry
 * (0, >0 with resume and expiry, 0xFFFFFFFF, changed by DISCONNECT), clean
 * start, receive maximum both ways, topic aliases both ways, request problem
 * information, assigned client identifier, server keep alive, the CONNACK's
 * feature availability properties (and the reason codes when a feature is
 * switched off), maximum packet size both ways.
 *
 * Multi-shard-relevant cases run at shards = 1 and 4 (E2E_TEST_SHARDS);
 * client ids are picked with e2e_id_on() so the parties live on different
 * shards.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

#define ID_MAX 48

/* ---------------------------------------------------------------- session expiry */

/*
 * Session Expiry Interval 0 (absent): the session ends with the connection
 * [MQTT-3.1.2-23 reversed], so a reconnection with Clean Start 0 finds none:
 * session present 0 [MQTT-3.1.2-6][MQTT-3.2.2-3] and no subscription left.
 */
static void expiry_zero_ends_session(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char id[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *c;
    struct e2e_client *pub;
    int present = -1;

    e2e_id_on(n - 1, n, "sx0-", id, sizeof(id));
    e2e_id_on(0, n, "sx0p-", pid, sizeof(pid));
    c = e2e_client_connect5(b, id, false, 0, &present);
    cr_assert_eq(present, 0, "session present for a new session [MQTT-3.2.2-3]");
    cr_assert_eq(e2e_client_subscribe5(c, "sx0/t", 1, NULL), 1);
    e2e_client_abort(c); /* no DISCONNECT: only the expiry interval decides */
    c = e2e_client_connect5(b, id, false, 0, &present);
    cr_assert_eq(present, 0, "session with Session Expiry Interval 0 outlived its connection");
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "sx0/t", "x", 1, 1, false, NULL);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, session_expiry_zero_ends_the_session_with_the_connection,
                expiry_zero_ends_session)

/*
 * Connect @id with Clean Start @clean_start, Session Expiry Interval 1 s
 * and a will that waits an hour (Will Delay Interval 3600 s), returning
 * the session-present flag in *@present. The will is published when the
 * session ends [MQTT-3.1.3-9], so a client subscribed to @topic sees the
 * session's expiry happen: an event to wait on instead of a time margin.
 * With several shards, a probe homed with another session shows that the
 * broker's timer walk there has passed the other session's deadline too.
 */
static struct e2e_client *start_expiry_probe(struct e2e_broker *b, const char *id, bool clean_start,
                                             const char *topic, int *present)
{
    struct e2e_will w = {.topic = topic, .payload = id, .payload_len = strlen(id), .qos = 1};
    mosquitto_property *props = NULL;
    mosquitto_property *will_props = NULL;
    struct e2e_client_opts o = {.version = E2E_V5, .id = id, .clean = clean_start, .will = &w};
    struct e2e_client *c;

    e2e_prop_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 1);
    e2e_prop_u32(&will_props, MQTT_PROP_WILL_DELAY_INTERVAL, 3600);
    o.props = props;
    o.will_props = will_props;
    c = e2e_client_start(b, &o);
    mosquitto_property_free_all(&props);
    *present = e2e_client_wait_connack(c, 0);
    return c;
}

/*
 * Wait for the will of probe @id on @watch (subscribed to @topic): its 1 s
 * session has expired. @t_end_ms is when the probe's connection was
 * dropped: the expiry must not come before the interval has passed
 * [MQTT-3.1.2-23] (900 ms: the clocks are read in whole milliseconds).
 */
static void expect_probe_expired(struct e2e_client *watch, const char *topic, const char *id,
                                 int64_t t_end_ms)
{
    int64_t dt;

    e2e_client_expect_within(watch, E2E_DEADLINE_WAIT_MS, topic, id, 1, false);
    dt = e2e_now_ms() - t_end_ms;
    cr_assert_geq(dt, 900, "session with a 1 s expiry ended %lld ms after its connection",
                  (long long)dt);
}

/*
 * Session Expiry Interval 1 s: the session outlives the connection
 * [MQTT-3.1.2-23], is resumed within the interval with its subscription and
 * queued message [MQTT-3.1.2-5][MQTT-3.2.2-3], and is gone once the interval
 * has passed [MQTT-4.1.0-2]. The test waits for the expiry itself (the
 * session's delayed will, published when it ends), not for a time margin.
 */
static void expiry_keeps_then_expires(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char id[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *c;
    struct e2e_client *pub;
    int64_t t_end;
    int present = -1;

    e2e_id_on(n - 1, n, "sx1-", id, sizeof(id));
    e2e_id_on(0, n, "sx1p-", pid, sizeof(pid));
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    c = e2e_client_connect5(b, id, true, 1, &present);
    cr_assert_eq(e2e_client_subscribe5(c, "sx1/t", 1, NULL), 1);
    e2e_client_abort(c);
    e2e_client_publish5(pub, "sx1/t", "queued", 6, 1, false, NULL);
    cr_assert_eq(e2e_client_subscribe5(pub, "sx1/ended", 1, NULL), 1);
    c = start_expiry_probe(b, id, false, "sx1/ended", &present);
    cr_assert_eq(present, 1, "session not resumed within its expiry interval [MQTT-3.2.2-3]");
    e2e_client_expect(c, "sx1/t", "queued", 1, false);
    t_end = e2e_now_ms();
    e2e_client_abort(c);
    /* The session ends 1 s (plus the broker's tick) later; its will says so. */
    expect_probe_expired(pub, "sx1/ended", id, t_end);
    e2e_client_publish5(pub, "sx1/t", "late", 4, 1, false, NULL);
    c = e2e_client_connect5(b, id, false, 0, &present);
    cr_assert_eq(present, 0, "session still present after its 1 s expiry [MQTT-4.1.0-2]");
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, session_expiry_keeps_the_session_then_it_expires,
                expiry_keeps_then_expires)

/*
 * 0xFFFFFFFF: the session does not expire [3.1.2.11.2], checked once a
 * probe session with a 1 s expiry, dropped after it, has expired (so a
 * broker that took 0xFFFFFFFF for 0, a negative or a wrapped deadline would
 * have ended it too); a CONNACK that overrides the interval would have to
 * say so [3.2.2.3.2].
 */
E2E_TEST(v5_connect, session_expiry_0xffffffff_keeps_the_session)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *c;
    struct e2e_client *watch;
    const mosquitto_property *pr;
    uint32_t v = 0;
    int64_t t_end;
    int present = -1;

    watch = e2e_client_connect5(b, "sxmaxw", true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(watch, "sxmax/probe", 1, NULL), 1);
    c = e2e_client_connect5(b, "sxmax", true, 0xFFFFFFFFu, &present);
    pr = e2e_client_connack_props(c);
    if (mosquitto_property_read_int32(pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL, &v, false) != NULL) {
        cr_assert_eq(v, 0xFFFFFFFFu, "broker lowered a never-expiring session to %u s", v);
    }
    cr_assert_eq(e2e_client_subscribe5(c, "sxmax/t", 1, NULL), 1);
    e2e_client_drop(c); /* its session is offline before the probe's */
    c = start_expiry_probe(b, "sxmaxp", true, "sxmax/probe", &present);
    t_end = e2e_now_ms();
    e2e_client_abort(c);
    expect_probe_expired(watch, "sxmax/probe", "sxmaxp", t_end);
    c = e2e_client_connect5(b, "sxmax", false, 0xFFFFFFFFu, &present);
    cr_assert_eq(present, 1, "never-expiring session lost");
    e2e_client_publish5(c, "sxmax/t", "kept", 4, 1, false, NULL);
    e2e_client_expect(c, "sxmax/t", "kept", 1, false);
    /* Clean up: end the session. */
    {
        mosquitto_property *d = NULL;

        e2e_prop_u32(&d, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
        e2e_client_disconnect5(c, 0, d);
        mosquitto_property_free_all(&d);
    }
    e2e_client_disconnect(watch);
    e2e_broker_stop(b);
}

/*
 * Clean Start 1 discards an existing session [MQTT-3.1.2-4] and CONNACK says
 * session present 0 [MQTT-3.2.2-2]; its subscriptions are gone.
 */
static void clean_start_discards(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char id[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *c;
    struct e2e_client *pub;
    int present = -1;

    e2e_id_on(n - 1, n, "cs-", id, sizeof(id));
    e2e_id_on(0, n, "csp-", pid, sizeof(pid));
    c = e2e_client_connect5(b, id, true, 60, &present);
    cr_assert_eq(e2e_client_subscribe5(c, "cs/t", 1, NULL), 1);
    e2e_client_disconnect(c);
    c = e2e_client_connect5(b, id, true, 60, &present);
    cr_assert_eq(present, 0, "Clean Start 1 with session present 1 [MQTT-3.2.2-2]");
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "cs/t", "x", 1, 1, false, NULL);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);
    /* End the 60 s session: reconnect with expiry 0 and clean start. */
    c = e2e_client_connect5(b, id, true, 0, NULL);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, clean_start_discards_the_existing_session, clean_start_discards)

/*
 * DISCONNECT can change the Session Expiry Interval [3.14.2.2.2]: 60 -> 0
 * ends the session at once; 1 -> 30 keeps it past the original 1 s, which
 * the test knows has passed when a probe session with a 1 s expiry, homed
 * on the same shard and dropped after it, has expired.
 */
static void disconnect_changes_expiry(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char ida[ID_MAX];
    char idb[ID_MAX];
    char idp[ID_MAX];
    char idw[ID_MAX];
    struct e2e_client *a;
    struct e2e_client *c;
    struct e2e_client *watch;
    mosquitto_property *zero = NULL;
    mosquitto_property *thirty = NULL;
    int64_t t_end;
    int present = -1;

    e2e_id_on(0, n, "dxa-", ida, sizeof(ida));
    e2e_id_on(n - 1, n, "dxb-", idb, sizeof(idb));
    e2e_id_on(n - 1, n, "dxp-", idp, sizeof(idp));
    e2e_id_on(0, n, "dxw-", idw, sizeof(idw));
    e2e_prop_u32(&zero, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 0);
    e2e_prop_u32(&thirty, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 30);
    watch = e2e_client_connect5(b, idw, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(watch, "dx/probe", 1, NULL), 1);
    a = e2e_client_connect5(b, ida, true, 60, NULL);
    e2e_client_disconnect5(a, 0, zero);
    c = e2e_client_connect5(b, idb, true, 1, NULL);
    e2e_client_disconnect5(c, 0, thirty);
    c = start_expiry_probe(b, idp, true, "dx/probe", &present);
    t_end = e2e_now_ms();
    e2e_client_abort(c);
    expect_probe_expired(watch, "dx/probe", idp, t_end);
    a = e2e_client_connect5(b, ida, false, 0, &present);
    cr_assert_eq(present, 0, "DISCONNECT with Session Expiry 0 did not end the session");
    c = e2e_client_connect5(b, idb, false, 0, &present);
    cr_assert_eq(present, 1, "DISCONNECT raising the expiry to 30 s was ignored");
    e2e_client_disconnect(a);
    e2e_client_disconnect(c);
    e2e_client_disconnect(watch);
    mosquitto_property_free_all(&zero);
    mosquitto_property_free_all(&thirty);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, disconnect_changes_the_session_expiry_interval,
                disconnect_changes_expiry)

/*
 * A CONNECT with Session Expiry 0 followed by a DISCONNECT with a non-zero
 * one is a Protocol Error [3.14.2.2.2]: the broker answers DISCONNECT 0x82
 * and closes, and keeps no session.
 */
E2E_TEST(v5_connect, disconnect_raising_expiry_from_zero_is_a_protocol_error)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_props dp = {.len = 0};
    struct e2e_pkt p;
    struct e2e_client *c;
    int present = -1;
    int fd;

    fd = e2e_raw_connect5_ok(b, "dx0", false, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "dx0/t", 1, NULL), 1);
    e2e_props_u32(&dp, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 30);
    e2e_pkt_disconnect5(&p, 0, &dp);
    e2e_raw_send_pkt(fd, &p);
    /* mosquitto 2.0.11 closes without a DISCONNECT of its own. */
    e2e_raw_expect_disconnect5_or_mosquitto_close(fd, MQTT_RC_PROTOCOL_ERROR);
    c = e2e_client_connect5(b, "dx0", false, 0, &present);
    cr_assert_eq(present, 0, "session kept after an invalid Session Expiry change");
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}

/* ---------------------------------------------------------------- receive maximum */

/* Read one PUBLISH and check its payload is @want (QoS 1). Returns its id. */
static uint16_t raw_expect_pub(int fd, const char *want)
{
    struct e2e_v5pkt m;
    uint16_t id;

    e2e_raw_expect5(fd, E2E_PUBLISH, &m);
    cr_assert_eq(m.qos, 1);
    cr_assert(m.payload_len == strlen(want) && memcmp(m.payload, want, m.payload_len) == 0,
              "payload %.*s, expected %s", (int)m.payload_len, (const char *)m.payload, want);
    id = m.pkt_id;
    e2e_v5pkt_free(&m);
    return id;
}

static void raw_expect_nothing(int fd, int ms)
{
    struct e2e_v5pkt m;

    if (e2e_raw_read5(fd, &m, ms)) {
        cr_assert_fail("unexpected packet type %u (topic %s)", m.type,
                       m.topic != NULL ? m.topic : "-");
    }
}

static void raw_puback(int fd, uint16_t id)
{
    struct e2e_pkt p;

    e2e_pkt_ack(&p, 0x40, id);
    e2e_raw_send_pkt(fd, &p);
}

/*
 * The broker never has more unacknowledged QoS 1 PUBLISHes to a client than
 * the client's Receive Maximum (2) [MQTT-3.3.4-9][MQTT-4.9.0-2]; each PUBACK
 * lets exactly one more through, in order.
 */
static void receive_max_to_client(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_props pr = {.len = 0};
    char sid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    uint16_t id[5];
    char payload[2] = "0";
    int fd;
    int i;

    e2e_id_on(n - 1, n, "rms-", sid, sizeof(sid));
    e2e_id_on(0, n, "rmp-", pid, sizeof(pid));
    e2e_props_u16(&pr, MQTT_PROP_RECEIVE_MAXIMUM, 2);
    fd = e2e_raw_connect5_ok(b, sid, true, 0, &pr);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "rm/t", 1, NULL), 1);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    for (i = 0; i < 5; i++) {
        payload[0] = (char)('0' + i);
        e2e_client_publish5(pub, "rm/t", payload, 1, 1, false, NULL);
    }
    id[0] = raw_expect_pub(fd, "0");
    id[1] = raw_expect_pub(fd, "1");
    cr_assert_neq(id[0], id[1]);
    raw_expect_nothing(fd, E2E_QUIET_MS);
    raw_puback(fd, id[0]);
    if (e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 sends two more after one PUBACK: only count them. */
        raw_puback(fd, id[1]);
        for (i = 2; i < 5; i++) {
            payload[0] = (char)('0' + i);
            raw_puback(fd, raw_expect_pub(fd, payload));
        }
        goto out;
    }
    id[2] = raw_expect_pub(fd, "2");
    raw_expect_nothing(fd, E2E_QUIET_MS);
    raw_puback(fd, id[1]);
    raw_puback(fd, id[2]);
    id[3] = raw_expect_pub(fd, "3");
    id[4] = raw_expect_pub(fd, "4");
    raw_puback(fd, id[3]);
    raw_puback(fd, id[4]);
out:
    e2e_raw_ping5(fd);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, receive_maximum_bounds_unacked_publishes_to_the_client,
                receive_max_to_client)

/*
 * The broker's own Receive Maximum is in CONNACK; a client that has more
 * unacknowledged QoS 2 PUBLISHes than that gets DISCONNECT 0x93 [4.9].
 */
E2E_TEST(v5_connect, client_exceeding_the_broker_receive_maximum_gets_0x93)
{
    struct e2e_broker *b;
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "rmx", .clean = true};
    const struct e2e_prop *rm;
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    uint32_t max;
    uint16_t i;
    int fd;

    e2e_ringmq_only("ringmq's Receive Maximum is [limits] inflight_in_max; mosquitto 2.0.11 "
                    "advertises none");
    b = e2e_broker_start("[limits]\ninflight_in_max = 2\n");
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    rm = e2e_v5pkt_prop(&ack, MQTT_PROP_RECEIVE_MAXIMUM);
    cr_assert_not_null(rm, "CONNACK without Receive Maximum");
    max = rm->value;
    cr_assert_eq(max, 2, "CONNACK Receive Maximum %u, configured 2", max);
    e2e_v5pkt_free(&ack);
    for (i = 1; i <= max; i++) {
        e2e_pkt_publish5(&p, "rmx/t", 2, false, false, i, NULL, "x", 1);
        e2e_raw_send_pkt(fd, &p);
        e2e_raw_expect5(fd, E2E_PUBREC, &ack);
        cr_assert_eq(ack.pkt_id, i);
        e2e_v5pkt_free(&ack);
    }
    e2e_pkt_publish5(&p, "rmx/t", 2, false, false, (uint16_t)(max + 1), NULL, "x", 1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_disconnect5(fd, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* ---------------------------------------------------------------- topic aliases */

/* CONNACK's Topic Alias Maximum (0 when absent). */
static uint16_t connack_topic_alias_max(const struct e2e_v5pkt *ack)
{
    const struct e2e_prop *pr = e2e_v5pkt_prop(ack, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);

    return pr != NULL ? (uint16_t)pr->value : 0;
}

static void raw_pub_alias(int fd, const char *topic, uint16_t alias, const char *payload,
                          uint16_t pkt_id)
{
    struct e2e_props pr = {.len = 0};

    e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS, alias);
    cr_assert_eq(e2e_raw_publish5(fd, topic, 1, false, pkt_id, &pr, payload, strlen(payload)) &
                     0x80,
                 0, "PUBLISH with topic alias %u refused", alias);
}

/*
 * Inbound aliases: the broker accepts every alias 1..its Topic Alias Maximum
 * [MQTT-3.3.2-12]: set, reused with an empty topic, remapped; subscribers
 * get the full topic.
 */
static void alias_inbound(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_connect_opts o = {.version = E2E_V5, .clean = true};
    char sid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *sub;
    struct e2e_v5pkt ack;
    uint16_t max;
    int fd;

    e2e_id_on(n - 1, n, "tas-", sid, sizeof(sid));
    e2e_id_on(0, n, "tap-", pid, sizeof(pid));
    sub = e2e_client_connect5(b, sid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(sub, "ta/#", 1, NULL), 1);
    o.id = pid;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    max = connack_topic_alias_max(&ack);
    e2e_v5pkt_free(&ack);
    cr_assert_geq(max, 2, "broker accepts %u topic aliases (ringmq default 10)", max);
    raw_pub_alias(fd, "ta/one", 1, "a", 1);
    raw_pub_alias(fd, "", 1, "b", 2);
    raw_pub_alias(fd, "ta/two", 1, "c", 3);
    raw_pub_alias(fd, "", 1, "d", 4);
    raw_pub_alias(fd, "ta/max", max, "e", 5);
    raw_pub_alias(fd, "", max, "f", 6);
    raw_pub_alias(fd, "", 1, "g", 7);
    e2e_client_expect(sub, "ta/one", "a", 1, false);
    e2e_client_expect(sub, "ta/one", "b", 1, false);
    e2e_client_expect(sub, "ta/two", "c", 1, false);
    e2e_client_expect(sub, "ta/two", "d", 1, false);
    e2e_client_expect(sub, "ta/max", "e", 1, false);
    e2e_client_expect(sub, "ta/max", "f", 1, false);
    e2e_client_expect(sub, "ta/two", "g", 1, false);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, inbound_topic_aliases_are_set_reused_and_remapped, alias_inbound)

enum alias_case { ALIAS_ZERO, ALIAS_OVER_MAX, ALIAS_UNSET };

/*
 * Invalid inbound aliases: 0 [MQTT-3.3.2-8] and above the broker's maximum
 * [MQTT-3.3.2-9] get DISCONNECT 0x94; an empty topic with an alias never set
 * is a Protocol Error (0x82) [3.3.2.3.4].
 */
static void alias_invalid(enum alias_case which)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "tabad", .clean = true};
    struct e2e_props pr = {.len = 0};
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    uint16_t max;
    int fd;

    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    max = connack_topic_alias_max(&ack);
    e2e_v5pkt_free(&ack);
    switch (which) {
    case ALIAS_ZERO:
        e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS, 0);
        e2e_pkt_publish5(&p, "tabad/t", 1, false, false, 1, &pr, "x", 1);
        break;
    case ALIAS_OVER_MAX:
        e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS, (uint16_t)(max + 1));
        e2e_pkt_publish5(&p, "tabad/t", 1, false, false, 1, &pr, "x", 1);
        break;
    case ALIAS_UNSET:
        cr_assert_geq(max, 1);
        e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS, 1);
        e2e_pkt_publish5(&p, "", 1, false, false, 1, &pr, "x", 1);
        break;
    }
    e2e_raw_send_pkt(fd, &p);
    if (which == ALIAS_ZERO && e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 calls alias 0 a Malformed Packet (0x81). */
        e2e_raw_expect_disconnect5(fd, MQTT_RC_MALFORMED_PACKET);
    } else {
        e2e_raw_expect_disconnect5(fd, which == ALIAS_UNSET ? MQTT_RC_PROTOCOL_ERROR
                                                            : MQTT_RC_TOPIC_ALIAS_INVALID);
    }
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

E2E_TEST(v5_connect, topic_alias_0_gets_disconnect_0x94)
{
    alias_invalid(ALIAS_ZERO);
}

E2E_TEST(v5_connect, topic_alias_above_the_maximum_gets_disconnect_0x94)
{
    alias_invalid(ALIAS_OVER_MAX);
}

E2E_TEST(v5_connect, unset_topic_alias_with_empty_topic_is_a_protocol_error)
{
    if (e2e_mosquitto_mode()) {
        cr_skip_test("mosquitto 2.0.11 answers an unknown alias with 0x94, not 0x82");
    }
    alias_invalid(ALIAS_UNSET);
}

#define TAO_MSGS 16

/* Topic index per message: repeats and evictions for a 2-entry alias table. */
static const int tao_seq[TAO_MSGS] = {0, 1, 0, 2, 3, 0, 1, 1, 2, 3, 3, 0, 2, 1, 0, 3};

/*
 * Outbound aliases: whatever the broker does, a subscriber with Topic Alias
 * Maximum 2 never sees an alias outside 1..2 [MQTT-3.1.2-26][MQTT-3.3.2-11]
 * and every PUBLISH resolves to the right topic; one without the property
 * never gets an alias [MQTT-3.1.2-27]; a libmosquitto subscriber with
 * maximum 10 gets every topic right.
 */
static void alias_outbound(unsigned n)
{
    static const char *const topics[] = {"tao/a", "tao/b", "tao/c", "tao/d"};
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_props pr = {.len = 0};
    char id2[ID_MAX];
    char id0[ID_MAX];
    char pid[ID_MAX];
    char map[3][32] = {"", "", ""};
    struct e2e_client *pub;
    int fd2;
    int fd0;
    int aliases_used = 0;
    int i;

    e2e_id_on(1 % n, n, "tao2-", id2, sizeof(id2));
    e2e_id_on(2 % n, n, "tao0-", id0, sizeof(id0));
    e2e_id_on(0, n, "taop-", pid, sizeof(pid));
    e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 2);
    fd2 = e2e_raw_connect5_ok(b, id2, true, 0, &pr);
    cr_assert_eq(e2e_raw_subscribe5(fd2, 1, "tao/#", 0, NULL), 0);
    fd0 = e2e_raw_connect5_ok(b, id0, true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd0, 1, "tao/#", 0, NULL), 0);
    /*
     * No libmosquitto subscriber here: libmosquitto 2.0.11 refuses an
     * alias-only PUBLISH (empty topic) even when its application sets Topic
     * Alias Maximum; MQTT.js and paho resolve them (tests/interop).
     */
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    for (i = 0; i < TAO_MSGS; i++) {
        char payload[16];

        snprintf(payload, sizeof(payload), "%d", i);
        e2e_client_publish5(pub, topics[tao_seq[i]], payload, strlen(payload), 1, false, NULL);
    }
    for (i = 0; i < TAO_MSGS; i++) {
        const char *want = topics[tao_seq[i]];
        const struct e2e_prop *a;
        struct e2e_v5pkt m;
        char payload[16];
        const char *resolved;

        snprintf(payload, sizeof(payload), "%d", i);
        /* Topic Alias Maximum 2 */
        e2e_raw_expect5(fd2, E2E_PUBLISH, &m);
        a = e2e_v5pkt_prop(&m, MQTT_PROP_TOPIC_ALIAS);
        resolved = m.topic;
        if (a != NULL) {
            cr_assert(a->value >= 1 && a->value <= 2,
                      "alias %u beyond the client's maximum 2 [MQTT-3.3.2-11]", a->value);
            aliases_used++;
            if (m.topic[0] != '\0') {
                snprintf(map[a->value], sizeof(map[a->value]), "%s", m.topic);
            } else {
                cr_assert(map[a->value][0] != '\0', "alias %u used before being set", a->value);
                resolved = map[a->value];
            }
        }
        cr_assert(resolved[0] != '\0', "empty topic without an alias");
        cr_assert_str_eq(resolved, want, "message %d resolved to %s", i, resolved);
        cr_assert(m.payload_len == strlen(payload) &&
                  memcmp(m.payload, payload, m.payload_len) == 0);
        e2e_v5pkt_free(&m);
        /* No Topic Alias Maximum */
        e2e_raw_expect5(fd0, E2E_PUBLISH, &m);
        cr_assert_null(e2e_v5pkt_prop(&m, MQTT_PROP_TOPIC_ALIAS),
                       "alias sent to a client without Topic Alias Maximum [MQTT-3.1.2-27]");
        cr_assert_str_eq(m.topic, want);
        e2e_v5pkt_free(&m);
    }
    cr_log_info("broker used topic aliases on %d of %d messages", aliases_used, TAO_MSGS);
    if (!e2e_mosquitto_mode())
        cr_assert(aliases_used > 0, "ringmq never used an outbound alias");
    e2e_raw_disconnect5(fd2);
    e2e_raw_disconnect5(fd0);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, outbound_topic_aliases_stay_within_the_client_maximum, alias_outbound)

/* ---------------------------------------------------------------- problem information */

static void assert_no_problem_info(const struct e2e_v5pkt *m, const char *what)
{
    cr_assert_null(e2e_v5pkt_prop(m, MQTT_PROP_REASON_STRING),
                   "%s carries a Reason String with Request Problem Information 0 "
                   "[MQTT-3.1.2-29]",
                   what);
    cr_assert_null(e2e_v5pkt_prop(m, MQTT_PROP_USER_PROPERTY),
                   "%s carries User Properties with Request Problem Information 0 "
                   "[MQTT-3.1.2-29]",
                   what);
}

/*
 * Request Problem Information 0: no Reason String or User Property on
 * anything but PUBLISH, CONNACK and DISCONNECT [MQTT-3.1.2-29], even on
 * non-success acks (PUBACK 0x10, SUBACK 0x8F or similar, UNSUBACK 0x11).
 */
E2E_TEST(v5_connect, request_problem_information_0_strips_reason_strings)
{
    static const char *const filters[] = {"rp/a", "rp/#/bad"};
    static const char *const unsubs[] = {"rp/none"};
    static const uint8_t opts[] = {1, 1};
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_props pr = {.len = 0};
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd;

    e2e_props_u8(&pr, MQTT_PROP_REQUEST_PROBLEM_INFORMATION, 0);
    fd = e2e_raw_connect5_ok(b, "rpi", true, 0, &pr);
    /* QoS 1 to a topic nobody subscribes to: PUBACK 0x10 or 0x00. */
    e2e_pkt_publish5(&p, "rp/nobody", 1, false, false, 1, NULL, "x", 1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_PUBACK, &m);
    assert_no_problem_info(&m, "PUBACK");
    e2e_v5pkt_free(&m);
    /* QoS 2: PUBREC and PUBCOMP */
    e2e_pkt_publish5(&p, "rp/nobody", 2, false, false, 2, NULL, "x", 1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_PUBREC, &m);
    assert_no_problem_info(&m, "PUBREC");
    e2e_v5pkt_free(&m);
    e2e_pkt_ack(&p, 0x62, 2);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_PUBCOMP, &m);
    assert_no_problem_info(&m, "PUBCOMP");
    e2e_v5pkt_free(&m);
    /* PUBREL for an unknown id: PUBCOMP 0x92 */
    e2e_pkt_ack(&p, 0x62, 77);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_PUBCOMP, &m);
    assert_no_problem_info(&m, "PUBCOMP");
    e2e_v5pkt_free(&m);
    if (!e2e_mosquitto_mode()) {
        /* mosquitto closes on an invalid filter instead of SUBACK 0x8F. */
        e2e_pkt_subscribe5(&p, 3, NULL, 2, filters, opts);
        e2e_raw_send_pkt(fd, &p);
        e2e_raw_expect5(fd, E2E_SUBACK, &m);
        assert_no_problem_info(&m, "SUBACK");
        e2e_v5pkt_free(&m);
    }
    e2e_pkt_unsubscribe5(&p, 4, NULL, 1, unsubs);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_UNSUBACK, &m);
    assert_no_problem_info(&m, "UNSUBACK");
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* ---------------------------------------------------------------- assigned client id */

/*
 * An empty client id gets an Assigned Client Identifier in CONNACK, unique
 * per connection [MQTT-3.1.3-6][MQTT-3.1.3-7][MQTT-3.2.2-16]; the session is
 * then that id's: reconnecting with it resumes the session.
 */
static void assigned_id(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_props pr = {.len = 0};
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "", .clean = true};
    char ids[4][128];
    struct e2e_v5pkt ack;
    struct e2e_client *c;
    int fds[4];
    int present = -1;
    int i;
    int j;

    e2e_props_u32(&pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 60);
    o.props = &pr;
    for (i = 0; i < 4; i++) {
        const struct e2e_prop *a;

        fds[i] = e2e_raw_connect5(b, &o, &ack);
        cr_assert_eq(ack.reason, 0, "empty client id refused: 0x%02x", ack.reason);
        a = e2e_v5pkt_prop(&ack, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
        cr_assert_not_null(a, "no Assigned Client Identifier [MQTT-3.2.2-16]");
        cr_assert(a->len > 0 && a->len < sizeof(ids[i]));
        memcpy(ids[i], a->data, a->len);
        ids[i][a->len] = '\0';
        for (j = 0; j < i; j++) {
            cr_assert_str_neq(ids[i], ids[j], "assigned id %s given twice [MQTT-3.1.3-6]", ids[i]);
        }
        e2e_v5pkt_free(&ack);
    }
    cr_assert_eq(e2e_raw_subscribe5(fds[0], 1, "aid/t", 1, NULL), 1);
    for (i = 0; i < 4; i++) {
        e2e_raw_disconnect5(fds[i]);
    }
    c = e2e_client_connect5(b, ids[0], false, 0, &present);
    cr_assert_eq(present, 1, "session of assigned id %s not found", ids[0]);
    e2e_client_publish5(c, "aid/t", "mine", 4, 1, false, NULL);
    e2e_client_expect(c, "aid/t", "mine", 1, false);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, empty_client_id_gets_an_assigned_client_identifier, assigned_id)

/* ---------------------------------------------------------------- server keep alive */

static int32_t connack_server_keep_alive(const struct e2e_v5pkt *ack)
{
    const struct e2e_prop *pr = e2e_v5pkt_prop(ack, MQTT_PROP_SERVER_KEEP_ALIVE);

    return pr != NULL ? (int32_t)pr->value : -1;
}

/*
 * keepalive_max = 2: a client asking for more, or for 0, gets Server Keep
 * Alive 2 [3.2.2.3.14]; one asking for 1 keeps its own (no property, or 1).
 * (mosquitto: max_keepalive 10, CONNACK checks only.)
 * The broker then enforces the server value [MQTT-3.2.2-21][MQTT-3.1.2-22]:
 * a silent client that asked for 60 s is dropped within 1.5 x 2 s.
 */
E2E_TEST(v5_connect, server_keep_alive_caps_the_client_keep_alive)
{
    /* mosquitto 2.0.11 refuses max_keepalive below 10: check CONNACK only there. */
    int32_t kmax = e2e_mosquitto_mode() ? 10 : 2;
    struct e2e_broker *b = e2e_broker_start(e2e_mosquitto_mode() ? "[mqtt]\nkeepalive_max = 10\n"
                                                                 : "[mqtt]\nkeepalive_max = 2\n");
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "ska", .clean = true};
    struct e2e_v5pkt ack;
    int64_t t0;
    int32_t ska;
    int fd;

    o.keepalive_s = 0;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    ska = connack_server_keep_alive(&ack);
    e2e_v5pkt_free(&ack);
    if (!e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 lets keepalive 0 through unchanged. */
        cr_assert_eq(ska, kmax, "keepalive 0 with keepalive_max %d: Server Keep Alive %d", kmax,
                     ska);
    }
    e2e_raw_disconnect5(fd);

    o.keepalive_s = 1;
    fd = e2e_raw_connect5(b, &o, &ack);
    ska = connack_server_keep_alive(&ack);
    cr_assert(ska == -1 || ska == 1, "keepalive 1 under max 2 changed to %d", ska);
    e2e_v5pkt_free(&ack);
    e2e_raw_disconnect5(fd);

    o.keepalive_s = 60;
    fd = e2e_raw_connect5(b, &o, &ack);
    t0 = e2e_now_ms();
    ska = connack_server_keep_alive(&ack);
    e2e_v5pkt_free(&ack);
    cr_assert_eq(ska, kmax, "keepalive 60 with keepalive_max %d: Server Keep Alive %d", kmax, ska);
    if (e2e_mosquitto_mode()) {
        e2e_raw_disconnect5(fd);
        e2e_broker_stop(b);
        return;
    }
    cr_assert(e2e_raw_wait_closed(fd, 5000, NULL),
              "silent client kept beyond 1.5 x the Server Keep Alive");
    cr_assert_geq(e2e_now_ms() - t0, 2000, "dropped before the Server Keep Alive elapsed");
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/* ---------------------------------------------------------------- availability */

/*
 * Default configuration: CONNACK advertises nothing unavailable (absent
 * means available/QoS 2 [3.2.2.3]), a Topic Alias Maximum, a Maximum Packet
 * Size, and no Authentication Method without one in CONNECT [MQTT-4.12.0-6].
 */
E2E_TEST(v5_connect, connack_advertises_the_default_features)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "feat", .clean = true};
    const struct e2e_prop *pr;
    struct e2e_v5pkt ack;
    int fd;

    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_MAXIMUM_QOS);
    cr_assert_null(pr, "Maximum QoS %u sent although QoS 2 is supported [3.2.2.3.4]",
                   pr != NULL ? pr->value : 0);
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_RETAIN_AVAILABLE);
    cr_assert(pr == NULL || pr->value == 1, "Retain Available 0 by default");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    cr_assert(pr == NULL || pr->value == 1, "Wildcard Subscription Available 0 by default");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE);
    cr_assert(pr == NULL || pr->value == 1, "Subscription Identifier Available 0 by default");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_SHARED_SUB_AVAILABLE);
    cr_assert(pr == NULL || pr->value == 1, "Shared Subscription Available 0 by default");
    cr_assert_null(e2e_v5pkt_prop(&ack, MQTT_PROP_AUTHENTICATION_METHOD), "[MQTT-4.12.0-6]");
    cr_assert_null(e2e_v5pkt_prop(&ack, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER),
                   "Assigned Client Identifier for a client that has an id");
    for (size_t i = 0; i < ack.nprops; i++) {
        uint8_t id = ack.props[i].id;

        cr_assert(id == MQTT_PROP_USER_PROPERTY || e2e_v5pkt_prop_count(&ack, id) == 1,
                  "property 0x%02x more than once in CONNACK", id);
    }
    if (!e2e_mosquitto_mode()) {
        pr = e2e_v5pkt_prop(&ack, MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
        cr_assert(pr != NULL && pr->value == 10, "Topic Alias Maximum (default 10)");
        pr = e2e_v5pkt_prop(&ack, MQTT_PROP_MAXIMUM_PACKET_SIZE);
        cr_assert_not_null(pr, "no Maximum Packet Size although packet_bytes_max limits it");
        pr = e2e_v5pkt_prop(&ack, MQTT_PROP_RECEIVE_MAXIMUM);
        cr_assert_not_null(pr, "no Receive Maximum although inflight_in_max limits it");
    }
    e2e_v5pkt_free(&ack);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

#define FEATURES_OFF                                                                               \
    "[mqtt]\nmax_qos = 1\nretain_available = false\nwildcard_subscriptions = false\n"              \
    "subscription_identifiers = false\nshared_subscriptions = false\n"

/* With every optional feature off, CONNACK says so truthfully [3.2.2.3]. */
E2E_TEST(v5_connect, connack_advertises_disabled_features)
{
    struct e2e_broker *b;
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "nofeat", .clean = true};
    const struct e2e_prop *pr;
    struct e2e_v5pkt ack;
    int fd;

    e2e_ringmq_only("wildcard/subscription id/shared availability are ringmq [mqtt] keys");
    b = e2e_broker_start(FEATURES_OFF);
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_MAXIMUM_QOS);
    cr_assert(pr != NULL && pr->value == 1, "Maximum QoS 1 not advertised [MQTT-3.2.2-9]");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_RETAIN_AVAILABLE);
    cr_assert(pr != NULL && pr->value == 0, "Retain Available 0 not advertised");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    cr_assert(pr != NULL && pr->value == 0, "Wildcard Subscription Available 0 not advertised");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_SUBSCRIPTION_ID_AVAILABLE);
    cr_assert(pr != NULL && pr->value == 0, "Subscription Identifiers Available 0 not advertised");
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_SHARED_SUB_AVAILABLE);
    cr_assert(pr != NULL && pr->value == 0, "Shared Subscription Available 0 not advertised");
    e2e_v5pkt_free(&ack);
    /* Still accepts SUBSCRIBE at QoS 2 and grants at most 1 [MQTT-3.2.2-10]. */
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "nf/t", 2, NULL), 1);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* A PUBLISH above Maximum QoS gets DISCONNECT 0x9B [3.2.2.3.4]. */
E2E_TEST(v5_connect, publish_above_maximum_qos_gets_disconnect_0x9b)
{
    struct e2e_broker *b = e2e_broker_start("[mqtt]\nmax_qos = 1\n");
    struct e2e_pkt p;
    int fd = e2e_raw_connect5_ok(b, "q2", true, 0, NULL);

    cr_assert_eq(e2e_raw_publish5(fd, "mq/t", 1, false, 1, NULL, "ok", 2) & 0x80, 0);
    e2e_pkt_publish5(&p, "mq/t", 2, false, false, 2, NULL, "x", 1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_disconnect5(fd, MQTT_RC_QOS_NOT_SUPPORTED);
    e2e_broker_stop(b);
}

/* A retained PUBLISH when Retain Available is 0 gets DISCONNECT 0x9A [3.2.2.3.5]. */
E2E_TEST(v5_connect, retain_when_unavailable_gets_disconnect_0x9a)
{
    struct e2e_broker *b = e2e_broker_start("[mqtt]\nretain_available = false\n");
    struct e2e_pkt p;
    int fd = e2e_raw_connect5_ok(b, "ret", true, 0, NULL);

    e2e_pkt_publish5(&p, "ra/t", 0, true, false, 0, NULL, "x", 1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_disconnect5(fd, MQTT_RC_RETAIN_NOT_SUPPORTED);
    e2e_broker_stop(b);
}

/*
 * A will the broker cannot honour refuses the connection: will QoS above
 * Maximum QoS -> CONNACK 0x9B [MQTT-3.2.2-12]; will retain with Retain
 * Available 0 -> CONNACK 0x9A [MQTT-3.2.2-13]; then close.
 */
static void will_refused(const char *ini, uint8_t qos, bool retain, uint8_t reason)
{
    struct e2e_broker *b = e2e_broker_start(ini);
    struct e2e_connect_opts o = {
        .version = E2E_V5,
        .id = "willno",
        .clean = true,
        .will_topic = "wn/t",
        .will_payload = "x",
        .will_qos = qos,
        .will_retain = retain,
    };
    struct e2e_v5pkt ack;
    int fd = e2e_raw_connect5(b, &o, &ack);

    cr_assert_eq(ack.reason, reason, "CONNACK 0x%02x, expected 0x%02x", ack.reason, reason);
    cr_assert(!ack.session_present, "[MQTT-3.2.2-6]");
    e2e_v5pkt_free(&ack);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "not closed [MQTT-3.2.2-7]");
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

E2E_TEST(v5_connect, will_qos_above_maximum_qos_gets_connack_0x9b)
{
    will_refused("[mqtt]\nmax_qos = 1\n", 2, false, MQTT_RC_QOS_NOT_SUPPORTED);
}

E2E_TEST(v5_connect, will_retain_when_unavailable_gets_connack_0x9a)
{
    will_refused("[mqtt]\nretain_available = false\n", 0, true, MQTT_RC_RETAIN_NOT_SUPPORTED);
}

/* Wildcard filters with wildcards off: SUBACK 0xA2 per filter [3.2.2.3.11]. */
E2E_TEST(v5_connect, wildcard_filter_when_unavailable_gets_suback_0xa2)
{
    static const char *const filters[] = {"wc/+", "wc/t", "wc/#"};
    static const uint8_t opts[] = {1, 1, 1};
    struct e2e_broker *b;
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("wildcard_subscriptions is a ringmq [mqtt] key");
    b = e2e_broker_start("[mqtt]\nwildcard_subscriptions = false\n");
    fd = e2e_raw_connect5_ok(b, "wc", true, 0, NULL);
    e2e_pkt_subscribe5(&p, 1, NULL, 3, filters, opts);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_SUBACK, &m);
    cr_assert_eq(m.nreasons, 3);
    cr_assert_eq(m.reasons[0], MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED);
    cr_assert_eq(m.reasons[1], 1);
    cr_assert_eq(m.reasons[2], MQTT_RC_WILDCARD_SUBS_NOT_SUPPORTED);
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* Shared filters with shared subscriptions off: SUBACK 0x9E [3.2.2.3.13]. */
E2E_TEST(v5_connect, shared_filter_when_unavailable_gets_suback_0x9e)
{
    struct e2e_broker *b;
    int fd;

    e2e_ringmq_only("shared_subscriptions is a ringmq [mqtt] key");
    b = e2e_broker_start("[mqtt]\nshared_subscriptions = false\n");
    fd = e2e_raw_connect5_ok(b, "sh", true, 0, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "$share/g/t", 1, NULL),
                 MQTT_RC_SHARED_SUBS_NOT_SUPPORTED);
    cr_assert_eq(e2e_raw_subscribe5(fd, 2, "plain/t", 1, NULL), 1);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* A Subscription Identifier with them off: DISCONNECT 0xA1 [3.2.2.3.12]. */
E2E_TEST(v5_connect, subscription_identifier_when_unavailable_gets_disconnect_0xa1)
{
    static const char *const filters[] = {"si/t"};
    static const uint8_t opts[] = {1};
    struct e2e_broker *b;
    struct e2e_props pr = {.len = 0};
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("subscription_identifiers is a ringmq [mqtt] key");
    b = e2e_broker_start("[mqtt]\nsubscription_identifiers = false\n");
    fd = e2e_raw_connect5_ok(b, "si", true, 0, NULL);
    e2e_props_varint(&pr, MQTT_PROP_SUBSCRIPTION_IDENTIFIER, 5);
    e2e_pkt_subscribe5(&p, 1, &pr, 1, filters, opts);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_disconnect5(fd, MQTT_RC_SUBSCRIPTION_IDS_NOT_SUPPORTED);
    e2e_broker_stop(b);
}

/* ---------------------------------------------------------------- maximum packet size */

/*
 * The broker advertises its limit as Maximum Packet Size; a client packet
 * over it gets DISCONNECT 0x95 [MQTT-3.2.2-15][4.13].
 */
E2E_TEST(v5_connect, packet_over_the_broker_maximum_gets_disconnect_0x95)
{
    struct e2e_broker *b = e2e_broker_start("[limits]\npacket_bytes_max = 1024\n");
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "big", .clean = true};
    const struct e2e_prop *pr;
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    static uint8_t payload[2000];
    int fd;

    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    pr = e2e_v5pkt_prop(&ack, MQTT_PROP_MAXIMUM_PACKET_SIZE);
    cr_assert(pr != NULL && pr->value == 1024, "Maximum Packet Size %u, configured 1024",
              pr != NULL ? pr->value : 0);
    e2e_v5pkt_free(&ack);
    cr_assert_eq(e2e_raw_publish5(fd, "mps/t", 1, false, 1, NULL, payload, 900) & 0x80, 0);
    e2e_pkt_publish5(&p, "mps/t", 1, false, false, 2, NULL, payload, sizeof(payload));
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_disconnect5(fd, MQTT_RC_PACKET_TOO_LARGE);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * A message larger than a client's Maximum Packet Size is not sent to it
 * [MQTT-3.1.2-24] but discarded as if sent [MQTT-3.1.2-25] (the next one
 * still arrives, QoS 1 flow not stuck), while other subscribers get it.
 */
static void client_max_packet(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_props pr = {.len = 0};
    char sid[ID_MAX];
    char oid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *other;
    struct e2e_client *pub;
    struct e2e_msg *m;
    struct e2e_v5pkt pk;
    static char big[600];
    int fd;

    memset(big, 'B', sizeof(big) - 1);
    e2e_id_on(n - 1, n, "mpss-", sid, sizeof(sid));
    e2e_id_on(1 % n, n, "mpso-", oid, sizeof(oid));
    e2e_id_on(0, n, "mpsp-", pid, sizeof(pid));
    e2e_props_u32(&pr, MQTT_PROP_MAXIMUM_PACKET_SIZE, 200);
    if (!e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 keeps a dropped message in flight, against [MQTT-3.1.2-25]. */
        e2e_props_u16(&pr, MQTT_PROP_RECEIVE_MAXIMUM, 1);
    }
    fd = e2e_raw_connect5_ok(b, sid, true, 0, &pr);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "mps/#", 1, NULL), 1);
    other = e2e_client_connect5(b, oid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(other, "mps/#", 1, NULL), 1);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "mps/big", big, strlen(big), 1, false, NULL);
    e2e_client_publish5(pub, "mps/small", "s", 1, 1, false, NULL);
    m = e2e_client_expect_message(other);
    cr_assert_str_eq(m->topic, "mps/big");
    cr_assert_eq(m->payload_len, strlen(big), "other subscriber lost the big message");
    e2e_msg_free(m);
    e2e_client_expect(other, "mps/small", "s", 1, false);
    /* Receive Maximum 1: the small one only comes if the big one was not in flight. */
    e2e_raw_expect5(fd, E2E_PUBLISH, &pk);
    cr_assert_str_eq(pk.topic, "mps/small", "got %s (%zu bytes) past Maximum Packet Size 200",
                     pk.topic, pk.len);
    cr_assert_leq(pk.len, 200);
    raw_puback(fd, pk.pkt_id);
    e2e_v5pkt_free(&pk);
    raw_expect_nothing(fd, E2E_QUIET_MS);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(other);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, message_over_the_client_maximum_packet_size_is_not_sent,
                client_max_packet)

/*
 * A new outbound topic alias adds 3 bytes to a PUBLISH; when that would
 * take it over the client's Maximum Packet Size the broker leaves the alias
 * out and sends the message with its topic [MQTT-3.1.2-24] (using an alias
 * is the sender's choice [3.3.2.3.4]): Maximum Packet Size 16 and Topic Alias
 * Maximum 10, topic "a" with a 10-byte payload is exactly 16 bytes without an alias
 * and 19 with one. One byte more (17) is not sent at all; the next 16-byte
 * one still comes with its topic (no alias was set). (The old behaviour
 * sized the packet with the alias and dropped the message: the first
 * expect fails.)
 */
static void alias_size(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    static const char *const payloads[] = {"0123456789", "0123456789x", "9876543210"};
    struct e2e_props pr = {.len = 0};
    char sid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    struct e2e_v5pkt m;
    int fd;
    int i;

    e2e_id_on(n - 1, n, "tass-", sid, sizeof(sid));
    e2e_id_on(0, n, "tasp-", pid, sizeof(pid));
    e2e_props_u32(&pr, MQTT_PROP_MAXIMUM_PACKET_SIZE, 16);
    e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 10);
    fd = e2e_raw_connect5_ok(b, sid, true, 0, &pr);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "a", 0, NULL), 0);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    for (i = 0; i < 3; i++) {
        if (i == 1 && e2e_mosquitto_mode()) {
            /* mosquitto 2.0.11 sends the 17-byte PUBLISH to a 16-byte maximum. */
            continue;
        }
        e2e_client_publish5(pub, "a", payloads[i], strlen(payloads[i]), 0, false, NULL);
    }
    for (i = 0; i < 3; i += 2) {
        cr_assert(e2e_raw_read5(fd, &m, E2E_WAIT_MS),
                  "16-byte PUBLISH %d not sent to a client with Maximum Packet Size 16", i);
        cr_assert_eq(m.type, E2E_PUBLISH);
        cr_assert_leq(m.len, 16, "%zu-byte packet past Maximum Packet Size 16 [MQTT-3.1.2-24]",
                      m.len);
        cr_assert_null(e2e_v5pkt_prop(&m, MQTT_PROP_TOPIC_ALIAS));
        cr_assert_str_eq(m.topic, "a");
        cr_assert(m.payload_len == 10 && memcmp(m.payload, payloads[i], 10) == 0,
                  "payload %.*s, expected %s (the 17-byte one must not come)",
                  (int)m.payload_len, (const char *)m.payload, payloads[i]);
        e2e_v5pkt_free(&m);
    }
    raw_expect_nothing(fd, E2E_QUIET_MS);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, topic_alias_that_would_exceed_the_maximum_packet_size_is_left_out,
                alias_size)

#define RML_MSGS 10

/*
 * Receive Maximum is per connection: 10 unacknowledged QoS 1 PUBLISHes
 * sent on a connection with Receive Maximum 10 are resent on a reconnection
 * with Receive Maximum 2 at most 2 at a time [MQTT-3.3.4-9] (DUP, same
 * packet ids [MQTT-4.4.0-1]), each PUBACK letting exactly one more through,
 * in order [4.6]. (The old behaviour resent all 10 at once: the
 * raw_expect_nothing after the first two catches it.)
 */
static void receive_max_lowered(unsigned n)
{
    struct e2e_props pr = {.len = 0};
    struct e2e_connect_opts o = {.version = E2E_V5, .clean = false, .props = &pr};
    struct e2e_broker *b;
    char sid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    struct e2e_v5pkt ack;
    struct e2e_v5pkt m;
    uint16_t ids[RML_MSGS];
    int next = 0;
    int i;
    int fd;

    e2e_ringmq_only("mosquitto 2.0.11 resends the whole inflight window on a reconnection, "
                    "ignoring its lower Receive Maximum");
    b = e2e_broker_start_shards(n, NULL);
    e2e_id_on(n - 1, n, "rmls-", sid, sizeof(sid));
    e2e_id_on(0, n, "rmlp-", pid, sizeof(pid));
    e2e_props_u32(&pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 300);
    e2e_props_u16(&pr, MQTT_PROP_RECEIVE_MAXIMUM, RML_MSGS);
    fd = e2e_raw_connect5_ok(b, sid, true, 0, &pr);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "rml/t", 1, NULL), 1);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    for (i = 0; i < RML_MSGS; i++) {
        char payload[2] = {(char)('0' + i), '\0'};

        e2e_client_publish5(pub, "rml/t", payload, 1, 1, false, NULL);
        ids[i] = raw_expect_pub(fd, payload);
    }
    e2e_raw_close(fd);

    pr.len = 0;
    e2e_props_u32(&pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 300);
    e2e_props_u16(&pr, MQTT_PROP_RECEIVE_MAXIMUM, 2);
    o.id = sid;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    cr_assert(ack.session_present, "session with expiry 300 s lost");
    e2e_v5pkt_free(&ack);
    /* The window: messages next..next+1 are out, unacknowledged. */
    for (i = 0; i < RML_MSGS; i++) {
        e2e_raw_expect5(fd, E2E_PUBLISH, &m);
        cr_assert(m.payload_len == 1 && m.payload[0] == '0' + i, "resent %.*s, expected %d",
                  (int)m.payload_len, (const char *)m.payload, i);
        cr_assert(m.dup, "message %d resent without DUP [MQTT-3.3.1-1]", i);
        cr_assert_eq(m.pkt_id, ids[i], "message %d resent as id %u, sent as %u [MQTT-4.4.0-1]",
                     i, m.pkt_id, ids[i]);
        e2e_v5pkt_free(&m);
        if (i - next == 1) {
            raw_expect_nothing(fd, i == 1 ? E2E_QUIET_MS : 100);
            raw_puback(fd, ids[next++]);
        }
    }
    while (next < RML_MSGS) {
        raw_puback(fd, ids[next++]);
    }
    raw_expect_nothing(fd, E2E_QUIET_MS);
    e2e_raw_close(fd);
    /* End the session. */
    fd = e2e_raw_connect5_ok(b, sid, true, 0, NULL);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_connect, receive_maximum_lowered_on_reconnect_bounds_the_resent_publishes,
                receive_max_lowered)
