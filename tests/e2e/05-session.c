/*
 * 05-session.c - e2e: persistent sessions (clean session 0): offline
 * queueing of QoS 1/2, subscriptions surviving reconnects, redelivery of
 * unacknowledged messages, clean session 1 discarding state, queue bound.
 */
#include <stdio.h>
#include <string.h>

#include "tests/e2e/harness.h"

static struct e2e_client *persistent(struct e2e_broker *b, int version, const char *id,
                                     int want_present)
{
    struct e2e_client_opts o = {.version = version, .id = id, .clean = false};
    struct e2e_client *c = e2e_client_start(b, &o);

    cr_assert_eq(e2e_client_wait_connack(c, 0), want_present,
                 "session present for %s [MQTT-3.2.2-2] [MQTT-3.2.2-3]", id);
    return c;
}

/*
 * QoS 1 and 2 messages published while a clean-session-0 client is offline
 * are delivered, in order, on reconnect [MQTT-3.1.2-5]; QoS 0 may or may
 * not be. The subscription survives [MQTT-3.1.2-4].
 */
static void offline_queue(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *c = persistent(b, version, "pers", 0);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_msg *m;

    cr_assert_eq(e2e_client_subscribe(c, "sess/t", 1), 1);
    e2e_client_disconnect(c);

    e2e_client_publish(pub, "sess/t", "m1", 2, 1, false);
    e2e_client_publish(pub, "sess/t", "m0", 2, 0, false);
    e2e_client_publish(pub, "sess/t", "m2", 2, 2, false);

    c = persistent(b, version, "pers", version == E2E_V311 ? 1 : 0);
    m = e2e_client_expect_message(c);
    cr_assert_str_eq((const char *)m->payload, "m1", "first queued message");
    cr_assert_eq(m->qos, 1);
    cr_assert(!m->retain);
    e2e_msg_free(m);
    m = e2e_client_expect_message(c);
    if (strcmp((const char *)m->payload, "m0") == 0) {
        cr_assert_eq(m->qos, 0);
        e2e_msg_free(m);
        m = e2e_client_expect_message(c);
    }
    cr_assert_str_eq((const char *)m->payload, "m2", "QoS 2 queued message (sub QoS 1)");
    cr_assert_eq(m->qos, 1);
    e2e_msg_free(m);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);

    /* The subscription survived: live delivery without re-subscribing. */
    e2e_client_publish(pub, "sess/t", "m3", 2, 1, false);
    e2e_client_expect(c, "sess/t", "m3", 1, false);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, offline_qos1_and_qos2_messages_are_delivered_on_reconnect, offline_queue)

/*
 * A QoS 2 subscription's offline messages keep their QoS. (The order between
 * a QoS 2 and a QoS 1 message is not checked: libmosquitto hands a QoS 2
 * message to the application only at PUBREL.)
 */
static void offline_qos2(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *c = persistent(b, version, "pers2", 0);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    bool seen_q1 = false;
    bool seen_q2 = false;
    int i;

    cr_assert_eq(e2e_client_subscribe(c, "sess2/#", 2), 2);
    e2e_client_abort(c); /* abrupt: the session survives that too */
    e2e_client_publish(pub, "sess2/a", "q2", 2, 2, false);
    e2e_client_publish(pub, "sess2/a", "q1", 2, 1, false);
    c = persistent(b, version, "pers2", version == E2E_V311 ? 1 : 0);
    for (i = 0; i < 2; i++) {
        struct e2e_msg *m = e2e_client_expect_message(c);
        bool q2 = strcmp((const char *)m->payload, "q2") == 0;

        cr_assert_str_eq(m->topic, "sess2/a");
        cr_assert(q2 || strcmp((const char *)m->payload, "q1") == 0);
        cr_assert(!(q2 ? seen_q2 : seen_q1), "%s delivered twice", (const char *)m->payload);
        cr_assert_eq(m->qos, q2 ? 2 : 1, "%s delivered at QoS %d", (const char *)m->payload,
                     m->qos);
        cr_assert(!m->retain);
        *(q2 ? &seen_q2 : &seen_q1) = true;
        e2e_msg_free(m);
    }
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, offline_messages_keep_their_qos_after_abrupt_close, offline_qos2)

/*
 * Clean session 1 discards the previous session [MQTT-3.1.2-6]: no session
 * present, no subscription, no queued messages, and nothing is kept after it.
 */
static void clean_discards(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *c = persistent(b, version, "pers", 0);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);

    cr_assert_eq(e2e_client_subscribe(c, "gone/t", 1), 1);
    e2e_client_disconnect(c);
    e2e_client_publish(pub, "gone/t", "queued", 6, 1, false);

    c = e2e_client_connect(b, version, "pers", true); /* asserts session present 0 */
    e2e_client_publish(pub, "gone/t", "live", 4, 1, false);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);

    /* A clean session leaves nothing behind: the next clean-0 connect is new. */
    c = persistent(b, version, "pers", 0);
    e2e_client_publish(pub, "gone/t", "later", 5, 1, false);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, clean_session_1_discards_the_previous_session, clean_discards)

/*
 * An unacknowledged QoS 1 PUBLISH is re-sent on reconnect with DUP 1 and
 * the same packet id [MQTT-4.4.0-1] [MQTT-3.3.1-1].
 */
static void redeliver_unacked(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    const char *filters[] = {"redo/t"};
    const uint8_t qos[] = {1};
    struct e2e_pkt p;
    uint8_t pkt[64];
    uint8_t ack[4];
    struct e2e_connect_opts o = {.version = version, .id = "rawp", .clean = false};
    int fd = e2e_raw_connect(b, &o, ack);
    size_t n;
    uint16_t id;

    cr_assert(memcmp(ack, "\x20\x02\x00\x00", 4) == 0);
    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x03\x00\x01\x01", 5, E2E_WAIT_MS);
    e2e_client_publish(pub, "redo/t", "again", 5, 1, false);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 17, "first PUBLISH size %zu", n);
    cr_assert_eq(pkt[0], 0x32, "first PUBLISH byte %02x", pkt[0]);
    id = (uint16_t)(pkt[10] << 8 | pkt[11]);
    e2e_raw_close(fd); /* no PUBACK */

    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[3] == 0x00);
    cr_assert_eq(ack[2], version == E2E_V311 ? 1 : 0, "session present byte %d", ack[2]);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 17, "re-sent PUBLISH size %zu", n);
    cr_assert_eq(pkt[0], 0x3a, "re-sent PUBLISH first byte %02x, expected 3a (DUP, QoS 1)", pkt[0]);
    cr_assert_eq((uint16_t)(pkt[10] << 8 | pkt[11]), id, "re-sent with another packet id");
    cr_assert(memcmp(pkt + 4, "redo/t", 6) == 0 && memcmp(pkt + 12, "again", 5) == 0);
    e2e_pkt_ack(&p, 0x40, id);
    e2e_raw_send_pkt(fd, &p);
    /*
     * Acknowledged now: not sent a third time. The PINGRESP shows the broker
     * read the PUBACK; without it a reconnect could take the session over
     * before the PUBACK is read, and a resend would be legitimate.
     */
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, unacknowledged_qos1_is_resent_with_dup_on_reconnect, redeliver_unacked)

/*
 * QoS 2 to a subscriber that sent PUBREC but never got to PUBCOMP: on
 * reconnect the broker re-sends PUBREL [MQTT-4.4.0-1], not the PUBLISH.
 */
static void redeliver_pubrel(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    const char *filters[] = {"rel/t"};
    const uint8_t qos[] = {2};
    struct e2e_pkt p;
    uint8_t pkt[64];
    uint8_t ack[4];
    uint8_t rel[4];
    struct e2e_connect_opts o = {.version = version, .id = "rawq2", .clean = false};
    int fd = e2e_raw_connect(b, &o, ack);
    size_t n;
    uint16_t id;

    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x03\x00\x01\x02", 5, E2E_WAIT_MS);
    e2e_client_publish(pub, "rel/t", "q2", 2, 2, false);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 13, "PUBLISH size %zu", n);
    cr_assert_eq(pkt[0], 0x34);
    id = (uint16_t)(pkt[9] << 8 | pkt[10]);
    rel[0] = 0x62;
    rel[1] = 0x02;
    rel[2] = (uint8_t)(id >> 8);
    rel[3] = (uint8_t)id;
    e2e_pkt_ack(&p, 0x50, id);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, rel, 4, E2E_WAIT_MS);
    e2e_raw_close(fd); /* no PUBCOMP */

    fd = e2e_raw_connect(b, &o, ack);
    e2e_raw_expect(fd, rel, 4, E2E_WAIT_MS);
    e2e_pkt_ack(&p, 0x70, id);
    e2e_raw_send_pkt(fd, &p);
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, pubrel_is_resent_on_reconnect_until_pubcomp, redeliver_pubrel)

/* With queued_max = 5 (ringmq's key) at most 5 messages are queued offline. */
E2E_TEST(session, offline_queue_is_bounded_by_queued_max_v311)
{
    struct e2e_broker *b;
    struct e2e_client *c;
    struct e2e_client *pub;
    struct e2e_msg *m;
    char payload[16];
    int got = 0;
    int last = -1;
    int i;

    e2e_ringmq_only("queued_max is a ringmq limit key");
    /*
     * One shard: with several, a PUBACK does not mean the message reached
     * the offline session's shard yet, and one still in flight at the
     * reconnect is delivered live, outside the queue bound.
     */
    b = e2e_broker_start("[broker]\nshards = 1\n\n[limits]\nqueued_max = 5\n");
    c = persistent(b, E2E_V311, "bounded", 0);
    pub = e2e_client_connect(b, E2E_V311, "pub", true);
    cr_assert_eq(e2e_client_subscribe(c, "bound/t", 1), 1);
    e2e_client_disconnect(c);
    for (i = 0; i < 20; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        e2e_client_publish(pub, "bound/t", payload, strlen(payload), 1, false);
    }
    c = persistent(b, E2E_V311, "bounded", 1);
    while ((m = e2e_client_wait_message(c, 500)) != NULL) {
        int v = -1;

        sscanf((const char *)m->payload, "%d", &v);
        cr_assert(v > last, "queued messages out of order: %d after %d", v, last);
        last = v;
        got++;
        e2e_msg_free(m);
        cr_assert(got <= 5, "more than queued_max = 5 messages were queued");
    }
    cr_assert(got >= 1, "nothing was queued");
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}

/*
 * More messages queued offline than inflight_max (20 by default): all 60
 * arrive on reconnect, in order, none twice.
 */
static void long_offline_queue(int version)
{
    enum { COUNT = 60 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *c = persistent(b, version, "longq", 0);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    char payload[16];
    int i;

    cr_assert_eq(e2e_client_subscribe(c, "longq/t", 2), 2);
    e2e_client_disconnect(c);
    for (i = 0; i < COUNT; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        e2e_client_publish(pub, "longq/t", payload, strlen(payload), 1, false);
    }
    c = persistent(b, version, "longq", version == E2E_V311 ? 1 : 0);
    for (i = 0; i < COUNT; i++) {
        struct e2e_msg *m = e2e_client_expect_message(c);
        int v = -1;

        sscanf((const char *)m->payload, "%d", &v);
        cr_assert_eq(v, i, "queued message %d arrived as #%d [MQTT-4.6.0-6]", v, i);
        cr_assert_eq(m->qos, 1);
        e2e_msg_free(m);
    }
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, offline_queue_longer_than_inflight_window_is_delivered_in_order,
              long_offline_queue)

/*
 * Inbound QoS 2 state belongs to the session [MQTT-4.1.0-1]: a PUBLISH
 * re-sent (DUP) after a reconnect, before PUBREL, is not delivered again
 * [MQTT-4.3.3-2]; the PUBREL then completes it.
 */
static void inbound_qos2_across_reconnect(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_connect_opts o = {.version = version, .id = "q2pub", .clean = false};
    struct e2e_pkt p;
    uint8_t ack[4];
    int fd;

    cr_assert_eq(e2e_client_subscribe(sub, "in2/t", 2), 2);
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, "\x20\x02\x00\x00", 4) == 0);
    e2e_pkt_publish(&p, "in2/t", 2, false, false, 5, "exactly", 7);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x50\x02\x00\x05", 4, E2E_WAIT_MS);
    e2e_raw_close(fd); /* lost before PUBREL */

    fd = e2e_raw_connect(b, &o, ack);
    cr_assert_eq(ack[3], 0);
    e2e_pkt_publish(&p, "in2/t", 2, false, true, 5, "exactly", 7);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x50\x02\x00\x05", 4, E2E_WAIT_MS);
    e2e_pkt_ack(&p, 0x62, 5);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x70\x02\x00\x05", 4, E2E_WAIT_MS);
    e2e_client_expect(sub, "in2/t", "exactly", 2, false);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(session, inbound_qos2_resent_after_reconnect_is_delivered_once,
              inbound_qos2_across_reconnect)

/*
 * A takeover of a persistent session with an unacknowledged QoS 1 delivery:
 * the new connection gets it again with DUP 1 and the same packet id
 * [MQTT-4.4.0-1].
 */
E2E_TEST(session, takeover_redelivers_unacknowledged_qos1_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "pub", true);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "taken", .clean = false};
    const char *filters[] = {"tk/t"};
    const uint8_t qos[] = {1};
    struct e2e_pkt p;
    uint8_t pkt[64];
    uint8_t ack[4];
    int old_fd = e2e_raw_connect(b, &o, ack);
    int new_fd;
    uint16_t id;
    size_t n;

    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(old_fd, &p);
    e2e_raw_expect(old_fd, "\x90\x03\x00\x01\x01", 5, E2E_WAIT_MS);
    e2e_client_publish(pub, "tk/t", "inflight", 8, 1, false);
    n = e2e_raw_read_packet(old_fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 18);
    cr_assert_eq(pkt[0], 0x32);
    id = (uint16_t)(pkt[8] << 8 | pkt[9]);

    new_fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, "\x20\x02\x01\x00", 4) == 0, "CONNACK %02x %02x %02x %02x", ack[0],
              ack[1], ack[2], ack[3]);
    cr_assert(e2e_raw_wait_closed(old_fd, E2E_WAIT_MS, NULL), "old connection not closed");
    n = e2e_raw_read_packet(new_fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 18, "no redelivery after takeover");
    cr_assert_eq(pkt[0], 0x3a, "redelivery first byte %02x, expected 3a (DUP, QoS 1)", pkt[0]);
    cr_assert_eq((uint16_t)(pkt[8] << 8 | pkt[9]), id);
    e2e_raw_close(old_fd);
    e2e_raw_close(new_fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
