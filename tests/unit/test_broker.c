/*
 * test_broker.c - the broker and session state machines, driven with encoded
 * packets and checked by decoding what they answer. No sockets: this is the
 * pure core/ that net/ feeds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/wait.h"
#include "core/xmsg.h"

#include "broker_helpers.h"

TestSuite(broker, .init = setup, .fini = teardown);

Test(broker, accepts_connect_and_answers_connack_without_session_present)
{
    struct client c;
    cr_assert_not(do_connect(&c, "a", true)); /* [MQTT-3.2.2-1] */
    cr_assert_eq(broker_stats(b)->clients, 1);
    broker_client_gone(b, &c, 0);
    cr_assert_eq(broker_stats(b)->clients, 0);
    cr_assert_eq(broker_stats(b)->sessions, 0);
}

Test(broker, refuses_empty_client_id_without_clean_session)
{
    struct client c;
    broker_client_init(b, &c);
    struct mqtt_pkt p = connect_pkt("", false, MQTT_V311);
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&c, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    cr_assert_eq(g.pkt.u.connack.rc, MQTT_CONNACK_IDENTIFIER_REJECTED); /* [MQTT-3.1.3-8] */
    cr_assert_eq(c.state, CLIENT_CLOSING);
    broker_client_gone(b, &c, 0);
}

Test(broker, assigns_an_id_to_an_empty_client_id_with_clean_session)
{
    struct client c1, c2;
    do_connect(&c1, "", true); /* [MQTT-3.1.3-6] */
    do_connect(&c2, "", true);
    cr_assert_eq(broker_stats(b)->sessions, 2, "each empty id gets its own session");
    cr_assert_eq(c1.state, CLIENT_CONNECTED, "second empty id must not take over the first");
    broker_client_gone(b, &c1, 0);
    broker_client_gone(b, &c2, 0);
}

Test(broker, refuses_mqtt31_empty_client_id)
{
    struct client c;
    broker_client_init(b, &c);
    struct mqtt_pkt p = connect_pkt("", true, MQTT_V31);
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V31), 0);
    struct got g;
    cr_assert(next_out(&c, &g));
    cr_assert_eq(g.pkt.u.connack.rc, MQTT_CONNACK_IDENTIFIER_REJECTED);
    broker_client_gone(b, &c, 0);
}

Test(broker, refuses_client_id_over_limit)
{
    struct client c;
    char id[80];
    memset(id, 'x', sizeof(id) - 1);
    id[sizeof(id) - 1] = 0;
    broker_client_init(b, &c);
    struct mqtt_pkt p = connect_pkt(id, true, MQTT_V311);
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&c, &g));
    cr_assert_eq(g.pkt.u.connack.rc, MQTT_CONNACK_IDENTIFIER_REJECTED);
    broker_client_gone(b, &c, 0);
}

Test(broker, answers_unsupported_protocol_level_with_connack_1)
{
    /* "MQTT" level 9: CONNACK 0x01 then close [MQTT-3.1.2-2]. */
    static const uint8_t bad[] = {0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 9, 0x02, 0, 60, 0, 1, 'x'};
    struct client c;
    broker_client_init(b, &c);
    cr_assert_lt(broker_client_feed(b, &c, bad, sizeof(bad)), 0);
    struct got g;
    cr_assert(next_out(&c, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    cr_assert_eq(g.pkt.u.connack.rc, MQTT_CONNACK_BAD_PROTOCOL_VERSION);
    expect_none(&c);
    broker_client_gone(b, &c, 0);
}

Test(broker, closes_when_first_packet_is_not_connect)
{
    struct client c;
    broker_client_init(b, &c);
    struct mqtt_pkt p = {.type = MQTT_PINGREQ};
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V311), 0); /* [MQTT-3.1.0-1] */
    cr_assert_eq(c.state, CLIENT_CLOSING);
    expect_none(&c);
    cr_assert_eq(broker_stats(b)->malformed, 1);
    cr_assert_eq(broker_next_dirty(b), &c);
    broker_client_gone(b, &c, 0);
}

Test(broker, closes_on_second_connect)
{
    struct client c;
    do_connect(&c, "a", true);
    struct mqtt_pkt p = connect_pkt("a", true, MQTT_V311);
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V311), 0); /* [MQTT-3.1.0-2] */
    cr_assert_eq(c.state, CLIENT_CLOSING);
    broker_client_gone(b, &c, 0);
}

Test(broker, answers_pingreq)
{
    struct client c;
    do_connect(&c, "a", true);
    struct mqtt_pkt p = {.type = MQTT_PINGREQ};
    cr_assert_eq(feed_pkt(&c, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&c, &g));
    cr_assert_eq(g.pkt.type, MQTT_PINGRESP); /* [MQTT-3.12.4-1] */
    broker_client_gone(b, &c, 0);
}

Test(broker, routes_each_qos_and_downgrades_to_the_subscription)
{
    for (uint8_t sq = 0; sq <= 2; sq++) {
        for (uint8_t pq = 0; pq <= 2; pq++) {
            struct client sub, pub;
            do_connect(&sub, "sub", true);
            do_connect(&pub, "pub", true);
            do_subscribe(&sub, "t/x", sq, sq);
            do_publish(&pub, "t/x", "hi", pq, false, 5);
            struct got g;
            uint8_t want = pq < sq ? pq : sq; /* [MQTT-3.8.4-6] */
            expect_publish(&sub, "t/x", "hi", want, false, &g);
            if (want > 0)
                cr_assert_neq(g.pkt.u.publish.pkt_id, 0);
            expect_none(&sub);
            broker_client_gone(b, &sub, 0);
            broker_client_gone(b, &pub, 0);
        }
    }
    cr_assert_eq(broker_stats(b)->sessions, 0);
}

Test(broker, sheds_qos0_publishes_under_memory_pressure_while_qos1_and_2_flow)
{
    struct client sub, pub, late;
    struct got g;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "m/#", 2, 2);

    broker_set_memory_pressure(b, true);
    do_publish(&pub, "m/0", "shed", 0, false, 0);
    do_publish(&pub, "m/r", "shed", 0, true, 0); /* nor kept as retained */
    expect_none(&pub);                           /* nothing is owed for QoS 0 */
    do_publish(&pub, "m/1", "kept", 1, false, 1);
    do_publish(&pub, "m/2", "kept", 2, false, 2);
    expect_publish(&sub, "m/1", "kept", 1, false, &g);
    expect_publish(&sub, "m/2", "kept", 2, false, &g);
    expect_none(&sub);
    cr_assert_eq(broker_stats(b)->msgs_shed_memory, 2);
    cr_assert_eq(pub.state, CLIENT_CONNECTED, "shedding is not an error for the client");

    broker_set_memory_pressure(b, false);
    do_publish(&pub, "m/0", "again", 0, false, 0);
    expect_publish(&sub, "m/0", "again", 0, false, &g);
    expect_none(&sub);
    cr_assert_eq(broker_stats(b)->msgs_shed_memory, 2);
    do_connect(&late, "late", true);
    do_subscribe(&late, "m/r", 0, 0);
    expect_none(&late);
    broker_client_gone(b, &late, 0);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, a_malformed_qos0_publish_still_closes_under_memory_pressure)
{
    struct client pub;
    do_connect(&pub, "pub", true);
    broker_set_memory_pressure(b, true);
    struct mqtt_pkt p = publish_pkt("m/+", "x", 0, false, 0);
    cr_assert_lt(feed_pkt(&pub, &p, MQTT_V311), 0, "the checks come before the shedding");
    cr_assert_eq(pub.state, CLIENT_CLOSING);
    cr_assert_eq(broker_stats(b)->msgs_shed_memory, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, delivers_once_through_overlapping_filters_at_the_highest_qos)
{
    struct client sub, pub;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "a/+", 0, 0);
    do_subscribe(&sub, "a/#", 1, 1);
    do_subscribe(&sub, "a/b", 0, 0);
    do_publish(&pub, "a/b", "m", 2, false, 9);
    struct got g;
    expect_publish(&sub, "a/b", "m", 1, false, &g); /* [MQTT-3.3.5-1] */
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, refuses_invalid_filter_with_suback_failure)
{
    struct client c;
    do_connect(&c, "a", true);
    struct mqtt_sub_entry e[3] = {
        {{(const uint8_t *)"ok/+", 4}, 1},
        {{(const uint8_t *)"a/#/b", 5}, 1},
        {{(const uint8_t *)"x+", 2}, 0},
    };
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 3, .count = 3, .entries = e};
    cr_assert_eq(feed_pkt(&c, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&c, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    cr_assert_eq(g.pkt.u.suback.count, 3); /* one code per filter [MQTT-3.8.4-5] */
    cr_assert_eq(g.pkt.u.suback.rcs[0], 1);
    cr_assert_eq(g.pkt.u.suback.rcs[1], MQTT_SUBACK_FAILURE);
    cr_assert_eq(g.pkt.u.suback.rcs[2], MQTT_SUBACK_FAILURE);
    broker_client_gone(b, &c, 0);
}

Test(broker, closes_on_publish_topic_over_level_limit)
{
    lim.topic_levels_max = 2;
    struct client c;
    do_connect(&c, "a", true);
    struct mqtt_pkt p = publish_pkt("a/b/c", "x", 0, false, 0);
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V311), 0);
    broker_client_gone(b, &c, 0);
}

Test(broker, unsubscribe_stops_delivery_and_always_gets_unsuback)
{
    struct client sub, pub;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "t", 0, 0);
    struct mqtt_sub_entry e[2] = {{{(const uint8_t *)"t", 1}, 0}, {{(const uint8_t *)"n", 1}, 0}};
    struct mqtt_pkt p = {.type = MQTT_UNSUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 4, .count = 2, .entries = e};
    cr_assert_eq(feed_pkt(&sub, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_UNSUBACK); /* [MQTT-3.10.4-4], [MQTT-3.10.4-5] */
    cr_assert_eq(g.pkt.u.suback.pkt_id, 4);
    do_publish(&pub, "t", "x", 0, false, 0);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, retained_message_is_sent_on_subscribe_with_retain_set)
{
    struct client sub, pub;
    do_connect(&pub, "pub", true);
    do_publish(&pub, "r/1", "one", 1, true, 1);
    do_publish(&pub, "r/2", "two", 0, true, 0);
    do_publish(&pub, "r/2", "TWO", 2, true, 2); /* replaces [MQTT-3.3.1-5] */
    do_connect(&sub, "sub", true);
    do_subscribe(&sub, "r/2", 1, 1);
    struct got g;
    expect_publish(&sub, "r/2", "TWO", 1, true, &g); /* [MQTT-3.3.1-8] */
    expect_none(&sub);
    /* An empty retained payload clears the topic [MQTT-3.3.1-10], and is still forwarded. */
    do_publish(&pub, "r/2", "", 0, true, 0);
    expect_publish(&sub, "r/2", "", 0, false, &g); /* [MQTT-3.3.1-9] */
    struct client late;
    do_connect(&late, "late", true);
    do_subscribe(&late, "r/#", 2, 2);
    expect_publish(&late, "r/1", "one", 1, true, &g);
    expect_none(&late);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
    broker_client_gone(b, &late, 0);
}

Test(broker, qos2_inbound_is_routed_once_for_duplicates)
{
    struct client sub, pub;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "q", 2, 2);
    do_publish(&pub, "q", "once", 2, false, 11);
    struct mqtt_pkt dup = publish_pkt("q", "once", 2, false, 11);
    dup.u.publish.dup = true;
    cr_assert_eq(feed_pkt(&pub, &dup, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(&pub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBREC); /* acknowledged again [MQTT-4.3.3-2] */
    ack(&pub, MQTT_PUBREL, 11);
    cr_assert(next_out(&pub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBCOMP);
    cr_assert_eq(g.pkt.u.ack.pkt_id, 11);
    expect_publish(&sub, "q", "once", 2, false, &g);
    expect_none(&sub); /* routed once only */
    /* After PUBREL the id is free: the same id is a new message. */
    do_publish(&pub, "q", "again", 2, false, 11);
    expect_publish(&sub, "q", "again", 2, false, &g);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, qos2_outbound_flow_releases_the_packet_id)
{
    struct client sub, pub;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "q", 2, 2);
    do_publish(&pub, "q", "m", 2, false, 1);
    struct got g;
    expect_publish(&sub, "q", "m", 2, false, &g);
    uint16_t id = g.pkt.u.publish.pkt_id;
    ack(&sub, MQTT_PUBREC, id);
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBREL);
    cr_assert_eq(g.pkt.u.ack.pkt_id, id);
    ack(&sub, MQTT_PUBCOMP, id);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, inflight_window_holds_back_and_then_sends_in_order)
{
    lim.inflight_max = 2;
    struct client sub, pub;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "w", 1, 1);
    char pl[4][2] = {"0", "1", "2", "3"};
    for (int i = 0; i < 4; i++)
        do_publish(&pub, "w", pl[i], 1, false, (uint16_t)(i + 1));
    struct got g;
    uint16_t ids[4];
    expect_publish(&sub, "w", "0", 1, false, &g);
    ids[0] = g.pkt.u.publish.pkt_id;
    expect_publish(&sub, "w", "1", 1, false, &g);
    ids[1] = g.pkt.u.publish.pkt_id;
    expect_none(&sub);
    ack(&sub, MQTT_PUBACK, ids[0]);
    expect_publish(&sub, "w", "2", 1, false, &g);
    ids[2] = g.pkt.u.publish.pkt_id;
    cr_assert_neq(ids[2], ids[1], "packet ids in use are not reused [MQTT-2.3.1-2]");
    ack(&sub, MQTT_PUBACK, ids[1]);
    expect_publish(&sub, "w", "3", 1, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, persistent_session_queues_while_offline_and_resumes)
{
    struct client sub, pub;
    cr_assert_not(do_connect(&sub, "p", false));
    do_subscribe(&sub, "s/#", 2, 2);
    broker_client_gone(b, &sub, 0);
    cr_assert_eq(broker_stats(b)->sessions, 1);

    do_connect(&pub, "pub", true);
    do_publish(&pub, "s/1", "q0", 0, false, 0); /* not kept for offline sessions */
    do_publish(&pub, "s/1", "q1", 1, false, 1);
    do_publish(&pub, "s/2", "q2", 2, false, 2);

    cr_assert(do_connect(&sub, "p", false), "session present [MQTT-3.2.2-2]");
    struct got g;
    expect_publish(&sub, "s/1", "q1", 1, false, &g);
    expect_publish(&sub, "s/2", "q2", 2, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, offline_queue_is_bounded)
{
    lim.queued_max = 3;
    struct client sub, pub;
    do_connect(&sub, "p", false);
    do_subscribe(&sub, "s", 1, 1);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", true);
    for (uint16_t i = 1; i <= 10; i++)
        do_publish(&pub, "s", "m", 1, false, i);
    cr_assert_eq(broker_stats(b)->queue_full, 7);
    do_connect(&sub, "p", false);
    struct got g;
    for (int i = 0; i < 3; i++)
        expect_publish(&sub, "s", "m", 1, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* queued_bytes_max bounds the queue's payload bytes as mosquitto's max_queued_bytes. */
Test(broker, offline_queue_is_bounded_in_payload_bytes_too)
{
    lim.queued_max = 100;
    lim.queued_bytes_max = 10;
    struct client sub, pub;
    struct got g;
    do_connect(&sub, "p", false);
    do_subscribe(&sub, "s", 1, 1);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "four", 1, false, 1);
    do_publish(&pub, "s", "four", 1, false, 2);
    do_publish(&pub, "s", "four", 1, false, 3); /* 12 > 10: dropped */
    do_publish(&pub, "s", "tw", 1, false, 4);   /* 10: fits exactly */
    do_publish(&pub, "s", "", 1, false, 5);     /* an empty payload always fits */
    cr_assert_eq(broker_stats(b)->queue_full, 1);
    do_connect(&sub, "p", false);
    expect_publish(&sub, "s", "four", 1, false, &g);
    expect_publish(&sub, "s", "four", 1, false, &g);
    expect_publish(&sub, "s", "tw", 1, false, &g);
    expect_publish(&sub, "s", "", 1, false, &g);
    expect_none(&sub);
    /* Sent from the queue, they no longer count: room again for 10 bytes. */
    broker_client_gone(b, &sub, 0);
    do_publish(&pub, "s", "0123456789", 1, false, 6);
    do_publish(&pub, "s", "x", 1, false, 7);
    cr_assert_eq(broker_stats(b)->queue_full, 2);
    broker_client_gone(b, &pub, 0);
}

Test(broker, clean_session_discards_the_previous_session)
{
    struct client c, pub;
    do_connect(&c, "p", false);
    do_subscribe(&c, "s", 1, 1);
    broker_client_gone(b, &c, 0);
    cr_assert_not(do_connect(&c, "p", true), "[MQTT-3.1.2-6]");
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "m", 1, false, 1);
    expect_none(&c); /* the old subscription is gone */
    broker_client_gone(b, &c, 0);
    broker_client_gone(b, &pub, 0);
    cr_assert_eq(broker_stats(b)->sessions, 0);
}

Test(broker, unacknowledged_messages_are_resent_with_dup_on_reconnect)
{
    struct client sub, pub;
    do_connect(&sub, "p", false);
    do_subscribe(&sub, "d", 2, 2);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "d", "one", 1, false, 1);
    do_publish(&pub, "d", "two", 2, false, 2);
    do_publish(&pub, "d", "three", 2, false, 3);
    struct got g1, g2, g3;
    expect_publish(&sub, "d", "one", 1, false, &g1);
    expect_publish(&sub, "d", "two", 2, false, &g2);
    expect_publish(&sub, "d", "three", 2, false, &g3);
    cr_assert_not(g1.pkt.u.publish.dup);
    ack(&sub, MQTT_PUBREC, g3.pkt.u.publish.pkt_id);
    struct got g;
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBREL);
    broker_client_gone(b, &sub, 0);

    cr_assert(do_connect(&sub, "p", false));
    /* [MQTT-4.4.0-1]: PUBLISH with DUP for unacked, PUBREL for PUBREC'd, in order. */
    expect_publish(&sub, "d", "one", 1, false, &g);
    cr_assert(g.pkt.u.publish.dup);
    cr_assert_eq(g.pkt.u.publish.pkt_id, g1.pkt.u.publish.pkt_id);
    expect_publish(&sub, "d", "two", 2, false, &g);
    cr_assert(g.pkt.u.publish.dup);
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBREL);
    cr_assert_eq(g.pkt.u.ack.pkt_id, g3.pkt.u.publish.pkt_id);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, takeover_closes_the_old_connection_and_keeps_the_session)
{
    struct client c1, c2, pub;
    do_connect(&c1, "same", false);
    do_subscribe(&c1, "t", 1, 1);
    drain_dirty();
    cr_assert(do_connect(&c2, "same", false));
    cr_assert_eq(c1.state, CLIENT_CLOSING); /* [MQTT-3.1.4-2] */
    cr_assert_eq(c1.close_rc, -MQTT_RC_SESSION_TAKEN_OVER);
    bool saw_c1 = false;
    for (struct client *d; (d = broker_next_dirty(b));)
        saw_c1 |= d == &c1;
    cr_assert(saw_c1, "the old client is put on the dirty list to be closed");
    broker_client_gone(b, &c1, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "t", "m", 1, false, 1);
    struct got g;
    expect_publish(&c2, "t", "m", 1, false, &g);
    cr_assert_eq(broker_stats(b)->clients, 2);
    broker_client_gone(b, &c2, 0);
    broker_client_gone(b, &pub, 0);
}

static void connect_with_will(struct client *c, const char *id)
{
    broker_client_init(b, c);
    struct mqtt_pkt p = connect_pkt(id, true, MQTT_V311);
    p.u.connect.will = true;
    p.u.connect.will_qos = 1;
    p.u.connect.will_retain = true;
    p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)"w/status", 8};
    p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"gone", 4};
    cr_assert_eq(feed_pkt(c, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(c, &g));
    cr_assert_eq(g.pkt.u.connack.rc, 0);
}

Test(broker, will_is_published_when_the_connection_ends_without_disconnect)
{
    struct client w, sub;
    connect_with_will(&w, "w");
    do_connect(&sub, "sub", true);
    do_subscribe(&sub, "w/#", 1, 1);
    broker_client_gone(b, &w, -104); /* [MQTT-3.1.2-8] */
    struct got g;
    expect_publish(&sub, "w/status", "gone", 1, false, &g);
    /* Will retain: a later subscriber gets it as retained [MQTT-3.1.2-17]. */
    struct client late;
    do_connect(&late, "late", true);
    do_subscribe(&late, "w/status", 1, 1);
    expect_publish(&late, "w/status", "gone", 1, true, &g);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &late, 0);
}

Test(broker, will_is_not_published_after_disconnect)
{
    struct client w, sub;
    connect_with_will(&w, "w");
    do_connect(&sub, "sub", true);
    do_subscribe(&sub, "w/#", 1, 1);
    struct mqtt_pkt p = {.type = MQTT_DISCONNECT};
    cr_assert_gt(feed_pkt(&w, &p, MQTT_V311), 0);
    cr_assert_eq(w.state, CLIENT_CLOSING);
    broker_client_gone(b, &w, 0);
    expect_none(&sub); /* [MQTT-3.1.2-10] */
    broker_client_gone(b, &sub, 0);
}

Test(broker, bytes_after_disconnect_are_ignored)
{
    struct client c;
    do_connect(&c, "a", true);
    uint8_t two[4] = {0xe0, 0x00, 0xc0, 0x00}; /* DISCONNECT, PINGREQ */
    cr_assert_gt(broker_client_feed(b, &c, two, sizeof(two)), 0);
    expect_none(&c);
    broker_client_gone(b, &c, 0);
}

/* Build one stream of packets and feed it split at every byte. */
Test(broker, handles_packets_split_at_every_byte)
{
    uint8_t stream[512];
    size_t n = 0;
    struct mqtt_pkt pk[4];
    pk[0] = connect_pkt("split", true, MQTT_V311);
    struct mqtt_sub_entry e = {{(const uint8_t *)"s/+", 3}, 1};
    pk[1] = (struct mqtt_pkt){.type = MQTT_SUBSCRIBE};
    pk[1].u.subscribe = (struct mqtt_subscribe){.pkt_id = 2, .count = 1, .entries = &e};
    pk[2] = publish_pkt("s/x", "payload-bytes", 1, false, 3);
    pk[3] = (struct mqtt_pkt){.type = MQTT_PINGREQ};
    for (int i = 0; i < 4; i++)
        n += mqtt_encode(&pk[i], MQTT_V311, stream + n, sizeof(stream) - n);

    for (size_t split = 0; split <= n; split++) {
        for (size_t split2 = split; split2 <= n; split2 += 7) {
            struct client c;
            broker_client_init(b, &c);
            cr_assert_eq(broker_client_feed(b, &c, stream, split), 0);
            cr_assert_eq(broker_client_feed(b, &c, stream + split, split2 - split), 0);
            cr_assert_eq(broker_client_feed(b, &c, stream + split2, n - split2), 0);
            uint8_t want[] = {MQTT_CONNACK, MQTT_SUBACK, MQTT_PUBLISH, MQTT_PUBACK,
                              MQTT_PINGRESP};
            for (size_t k = 0; k < sizeof(want); k++) {
                struct got g;
                cr_assert(next_out(&c, &g), "split %zu/%zu: missing packet %zu", split, split2,
                          k);
                cr_assert_eq(g.pkt.type, want[k], "split %zu/%zu: packet %zu is %s", split,
                             split2, k, mqtt_type_name(g.pkt.type));
            }
            expect_none(&c);
            broker_client_gone(b, &c, 0);
        }
    }
}

Test(broker, closes_on_packet_over_the_size_limit)
{
    lim.packet_bytes_max = 64;
    struct client c;
    do_connect(&c, "a", true);
    char big[100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    struct mqtt_pkt p = publish_pkt("t", big, 0, false, 0);
    cr_assert_lt(feed_pkt(&c, &p, MQTT_V311), 0);
    cr_assert_eq(c.state, CLIENT_CLOSING);
    broker_client_gone(b, &c, 0);
}

/* A v5 client @id whose session expires @expiry_s seconds after it goes. */
static void gone_with_expiry(struct client *cl, const char *id, uint32_t expiry_s)
{
    broker_client_init(b, cl);
    struct mqtt_pkt p = connect_pkt(id, false, MQTT_V5);
    p.u.connect.props.has = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
    p.u.connect.props.session_expiry = expiry_s;
    cr_assert_eq(feed_pkt(cl, &p, MQTT_V5), 0);
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    broker_client_gone(b, cl, 0);
}

/* [MQTT-3.1.2-23]: the session ends when its expiry interval has passed, not before. */
Test(broker, offline_sessions_expire_at_their_deadlines_however_far_apart)
{
    struct client near, far;
    broker_tick(b, 1000);
    gone_with_expiry(&near, "near", 2);   /* due at 3000 */
    gone_with_expiry(&far, "far", 3600); /* due at 3601000 */
    cr_assert(broker_has_deadlines(b));
    broker_tick(b, 2999);
    cr_assert_eq(broker_stats(b)->sessions_expired, 0);
    broker_tick(b, 3000);
    cr_assert_eq(broker_stats(b)->sessions_expired, 1);
    /* The next walk waits for the far deadline, and is not late for it. */
    broker_tick(b, 3600999);
    cr_assert_eq(broker_stats(b)->sessions_expired, 1);
    broker_tick(b, 3601000);
    cr_assert_eq(broker_stats(b)->sessions_expired, 2);
    cr_assert_not(broker_has_deadlines(b));
}

Test(broker, qos0_is_shed_when_the_output_buffer_is_full)
{
    lim.output_bytes_max = 200;
    struct client sub, pub;
    do_connect(&sub, "sub", true);
    do_connect(&pub, "pub", true);
    do_subscribe(&sub, "t", 0, 0);
    for (int i = 0; i < 50; i++)
        do_publish(&pub, "t", "0123456789", 0, false, 0);
    cr_assert_leq(sub.out.len, 200);
    cr_assert_gt(broker_stats(b)->msgs_dropped, 0);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/*
 * Several shards' brokers in one thread, with the cross-shard messages each
 * produces delivered by pump() (what net/ does over the SPSC rings). The
 * connection a test opens "lands" on a chosen shard; a HANDOFF moves it to
 * the home shard exactly as net/ does.
 */
#define NSHARDS 4
static struct broker *sh[NSHARDS];

static void shards_setup(void)
{
    limits_defaults();
    for (uint32_t i = 0; i < NSHARDS; i++) {
        sh[i] = broker_new(&lim, i, NSHARDS);
        cr_assert_not_null(sh[i]);
    }
    b = sh[0];
}

static void shards_teardown(void)
{
    for (uint32_t i = 0; i < NSHARDS; i++)
        broker_free(sh[i]);
}

/* Deliver every pending cross-shard message, in per-pair FIFO order. */
static unsigned pump(void)
{
    unsigned n = 0;
    for (bool more = true; more && n < 1000000;) {
        more = false;
        for (uint32_t from = 0; from < NSHARDS; from++) {
            uint32_t dest;
            struct xmsg x;
            while (broker_next_xmsg(sh[from], &dest, &x)) {
                cr_assert_neq(dest, from);
                broker_xmsg_receive(sh[dest], from, &x);
                more = true;
                n++;
            }
        }
    }
    return n;
}

struct sconn {
    struct client cl;
    uint32_t shard;
};

/* Feed @pkt to @c on its shard, following a HANDOFF to the home shard. */
static int sfeed(struct sconn *c, const struct mqtt_pkt *pkt)
{
    uint8_t buf[4096];
    size_t n = mqtt_encode(pkt, MQTT_V311, buf, sizeof(buf));
    b = sh[c->shard];
    int rc = broker_client_feed(b, &c->cl, buf, n);
    if (rc == CLIENT_FEED_HANDOFF) {
        uint8_t *kept;
        uint32_t kept_len;
        uint32_t home = c->cl.handoff_shard;
        cr_assert_neq(home, c->shard);
        cr_assert_eq(broker_client_handoff_take(b, &c->cl, &kept, &kept_len), 0);
        cr_assert_eq(kept_len, n, "every byte from the CONNECT on is handed over");
        c->shard = home;
        b = sh[home];
        rc = handoff_land(b, &c->cl, kept, kept_len);
    }
    pump();
    b = sh[c->shard];
    return rc;
}

static bool sconnect(struct sconn *c, uint32_t landed, const char *id, bool clean)
{
    c->shard = landed;
    broker_client_init(sh[landed], &c->cl);
    struct mqtt_pkt p = connect_pkt(id, clean, MQTT_V311);
    cr_assert_eq(sfeed(c, &p), 0);
    struct got g;
    cr_assert(next_out(&c->cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    cr_assert_eq(g.pkt.u.connack.rc, 0);
    cr_assert_eq(c->shard, broker_home_shard((const uint8_t *)id, strlen(id), NSHARDS) ,
                 "sessions run on their home shard");
    return g.pkt.u.connack.session_present;
}

static void ssub(struct sconn *c, const char *filter, uint8_t qos)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, qos};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 1, .count = 1, .entries = &e};
    cr_assert_eq(sfeed(c, &p), 0);
    struct got g;
    cr_assert(next_out(&c->cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
}

static void spub(struct sconn *c, const char *topic, const char *payload, uint8_t qos,
                 bool retain, uint16_t id)
{
    struct mqtt_pkt p = publish_pkt(topic, payload, qos, retain, id);
    cr_assert_eq(sfeed(c, &p), 0);
    if (qos > 0) {
        struct got g;
        cr_assert(next_out(&c->cl, &g));
        cr_assert_eq(g.pkt.type, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC);
    }
}

static void sgone(struct sconn *c)
{
    broker_client_gone(sh[c->shard], &c->cl, 0);
    pump();
}

/* A client id homed on shard @want. */
static void id_on(uint32_t want, const char *prefix, char *out, size_t cap)
{
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(out, cap, "%s%u", prefix, i);
        if (broker_home_shard((const uint8_t *)out, strlen(out), NSHARDS) == want)
            return;
    }
    cr_assert_fail("no id homed on shard %u", want);
}

TestSuite(broker_shards, .init = shards_setup, .fini = shards_teardown);

Test(broker_shards, hands_a_connect_to_the_home_shard_and_delivers_across_shards)
{
    char sid[32], pid[32];
    id_on(1, "sub", sid, sizeof(sid));
    id_on(2, "pub", pid, sizeof(pid));
    struct sconn sub, pub;
    sconnect(&sub, 0, sid, true); /* lands on 0, runs on 1 */
    sconnect(&pub, 3, pid, true); /* lands on 3, runs on 2 */
    cr_assert_eq(broker_stats(sh[0])->handoffs, 1);
    ssub(&sub, "x/+", 1);
    spub(&pub, "x/y", "hello", 1, false, 1);
    struct got g;
    expect_publish(&sub.cl, "x/y", "hello", 1, false, &g);
    expect_none(&sub.cl);
    /* Interest is per shard: the message crossed once, to shard 1 only. */
    cr_assert_eq(broker_stats(sh[2])->xmsg_publish_out, 1);
    sgone(&sub);
    sgone(&pub);
}

/* Feed @c a PUBLISH; expect no acknowledgement (it is held). */
static void spub_held(struct sconn *c, const char *topic, const char *payload, uint16_t id)
{
    struct mqtt_pkt p = publish_pkt(topic, payload, 1, false, id);
    cr_assert_eq(sfeed(c, &p), 0);
    expect_none(&c->cl);
    cr_assert(broker_client_backlogged(&c->cl) == false, "a few bytes are no backlog");
}

static void expect_ack(struct sconn *c, uint8_t type, uint16_t id)
{
    struct got g;
    cr_assert(next_out(&c->cl, &g), "no ack %u", id);
    cr_assert_eq(g.pkt.type, type);
    cr_assert_eq(g.pkt.u.ack.pkt_id, id);
}

Test(broker_shards, a_qos1_publisher_crossing_to_a_congested_shard_is_held_until_it_drains)
{
    char id[32];
    struct sconn sub, far, pub;
    struct got g;
    id_on(1, "sub", id, sizeof(id));
    sconnect(&sub, 1, id, true);
    ssub(&sub, "c/#", 1);
    id_on(2, "far", id, sizeof(id));
    sconnect(&far, 2, id, true);
    ssub(&far, "other", 1);
    id_on(0, "pub", id, sizeof(id));
    sconnect(&pub, 0, id, true);

    broker_set_congested(sh[0], 1, true);
    /* QoS 0 is never held (net/ sheds it on a congested link instead). */
    spub(&pub, "c/0", "zero", 0, false, 0);
    expect_publish(&sub.cl, "c/0", "zero", 0, false, &g);
    /* A publish that crosses only to a shard keeping up is acknowledged at once. */
    spub(&pub, "other", "o", 1, false, 1);
    expect_publish(&far.cl, "other", "o", 1, false, &g);
    cr_assert_eq(broker_stats(sh[0])->publishers_held, 0);

    /* It crosses (queued, never dropped), but the publisher hears nothing. */
    spub_held(&pub, "c/1", "one", 2);
    expect_publish(&sub.cl, "c/1", "one", 1, false, &g);
    cr_assert_eq(broker_stats(sh[0])->publishers_held, 1);
    /* What it sends meanwhile waits unread, in order. */
    spub_held(&pub, "c/2", "two", 3);
    expect_none(&sub.cl);

    broker_set_congested(sh[0], 1, false);
    expect_ack(&pub, MQTT_PUBACK, 2);
    expect_ack(&pub, MQTT_PUBACK, 3);
    expect_none(&pub.cl);
    pump();
    expect_publish(&sub.cl, "c/2", "two", 1, false, &g);
    cr_assert_eq(broker_stats(sh[0])->publishers_held, 1);
    sgone(&sub);
    sgone(&far);
    sgone(&pub);
}

Test(broker_shards, a_held_publisher_that_leaves_is_forgotten_and_the_drain_finds_nobody)
{
    char id[32];
    struct sconn sub, pub, pub2;
    struct got g;
    id_on(3, "sub", id, sizeof(id));
    sconnect(&sub, 3, id, true);
    ssub(&sub, "c/#", 2);
    id_on(0, "pub", id, sizeof(id));
    sconnect(&pub, 0, id, true);
    id_on(0, "pubb", id, sizeof(id));
    sconnect(&pub2, 0, id, true);

    broker_set_congested(sh[0], 3, true);
    spub_held(&pub, "c/1", "one", 1);
    struct mqtt_pkt p = publish_pkt("c/2", "two", 2, false, 9);
    cr_assert_eq(sfeed(&pub2, &p), 0);
    expect_none(&pub2.cl); /* QoS 2: its PUBREC is held the same way */
    sgone(&pub);
    broker_set_congested(sh[0], 3, false);
    expect_ack(&pub2, MQTT_PUBREC, 9);
    expect_publish(&sub.cl, "c/1", "one", 1, false, &g);
    expect_publish(&sub.cl, "c/2", "two", 2, false, &g);
    cr_assert_eq(broker_stats(sh[0])->wait_timeouts, 0);
    sgone(&sub);
    sgone(&pub2);
}

Test(broker_shards, crosses_once_per_shard_never_once_per_subscriber)
{
    char id[32];
    struct sconn subs[6], pub;
    for (int i = 0; i < 6; i++) {
        char pfx[8];
        snprintf(pfx, sizeof(pfx), "s%d-", i);
        id_on(1 + (uint32_t)(i % 2), pfx, id, sizeof(id)); /* three on 1, three on 2 */
        sconnect(&subs[i], 0, id, true);
        ssub(&subs[i], "f/#", 0);
        ssub(&subs[i], "f/+", 0); /* overlapping: still one copy each */
    }
    id_on(3, "p", id, sizeof(id));
    sconnect(&pub, 3, id, true);
    spub(&pub, "f/1", "m", 0, false, 0);
    cr_assert_eq(broker_stats(sh[3])->xmsg_publish_out, 2);
    for (int i = 0; i < 6; i++) {
        struct got g;
        expect_publish(&subs[i].cl, "f/1", "m", 0, false, &g);
        expect_none(&subs[i].cl);
        sgone(&subs[i]);
    }
    sgone(&pub);
}

Test(broker_shards, keeps_per_publisher_order_across_shards)
{
    char sid[32], pid[32];
    id_on(0, "o-sub", sid, sizeof(sid));
    id_on(3, "o-pub", pid, sizeof(pid));
    struct sconn sub, pub;
    sconnect(&sub, 2, sid, true);
    sconnect(&pub, 1, pid, true);
    ssub(&sub, "o", 0);
    /* Publish a burst without pumping in between, like one recv batch. */
    uint8_t buf[200 * 16];
    size_t n = 0;
    for (int i = 0; i < 200; i++) {
        char pl[8];
        snprintf(pl, sizeof(pl), "%03d", i);
        struct mqtt_pkt p = publish_pkt("o", pl, 0, false, 0);
        n += mqtt_encode(&p, MQTT_V311, buf + n, sizeof(buf) - n);
    }
    cr_assert_eq(broker_client_feed(sh[3], &pub.cl, buf, n), 0);
    pump();
    for (int i = 0; i < 200; i++) {
        char pl[8];
        snprintf(pl, sizeof(pl), "%03d", i);
        struct got g;
        expect_publish(&sub.cl, "o", pl, 0, false, &g); /* [MQTT-4.6.0-6] */
    }
    sgone(&sub);
    sgone(&pub);
}

Test(broker_shards, takeover_and_persistent_session_work_whichever_shard_the_connection_lands_on)
{
    char id[32], pid[32];
    id_on(2, "persist", id, sizeof(id));
    id_on(1, "pp", pid, sizeof(pid));
    struct sconn c1, c2, pub;
    sconnect(&c1, 0, id, false);
    ssub(&c1, "t", 1);
    cr_assert(sconnect(&c2, 3, id, false), "session present after landing elsewhere");
    cr_assert_eq(c1.cl.state, CLIENT_CLOSING, "[MQTT-3.1.4-2] old connection closed");
    sgone(&c1);
    sgone(&c2);
    sconnect(&pub, 0, pid, true);
    spub(&pub, "t", "queued", 1, false, 5);
    struct sconn c3;
    cr_assert(sconnect(&c3, 1, id, false));
    struct got g;
    expect_publish(&c3.cl, "t", "queued", 1, false, &g);
    sgone(&c3);
    sgone(&pub);
}

Test(broker_shards, retained_replicas_agree_and_serve_subscribes_locally)
{
    char p1[32], p2[32];
    id_on(1, "rp1-", p1, sizeof(p1));
    id_on(2, "rp2-", p2, sizeof(p2));
    struct sconn a, c, subs[NSHARDS];
    sconnect(&a, 1, p1, true);
    sconnect(&c, 2, p2, true);
    /* Two shards set the same topic before anything is pumped... */
    struct mqtt_pkt pa = publish_pkt("r/t", "A", 0, true, 0);
    struct mqtt_pkt pc = publish_pkt("r/t", "C", 0, true, 0);
    uint8_t buf[64];
    size_t n = mqtt_encode(&pa, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[1], &a.cl, buf, n), 0);
    n = mqtt_encode(&pc, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[2], &c.cl, buf, n), 0);
    pump();
    /* ...and every replica ends with the same one, served locally. */
    uint8_t seen = 0;
    for (uint32_t i = 0; i < NSHARDS; i++) {
        char id[32], pfx[8];
        snprintf(pfx, sizeof(pfx), "rs%u-", i);
        id_on(i, pfx, id, sizeof(id));
        sconnect(&subs[i], i, id, true);
        ssub(&subs[i], "r/#", 0);
        struct got g;
        cr_assert(next_out(&subs[i].cl, &g));
        cr_assert(g.pkt.u.publish.retain);
        cr_assert_eq(g.pkt.u.publish.payload.len, 1);
        if (i == 0)
            seen = g.pkt.u.publish.payload.ptr[0];
        cr_assert_eq(g.pkt.u.publish.payload.ptr[0], seen, "replica %u disagrees", i);
        expect_none(&subs[i].cl);
        sgone(&subs[i]);
    }
    /* A clear on any shard clears every replica. */
    spub(&a, "r/t", "", 0, true, 0);
    for (uint32_t i = 0; i < NSHARDS; i++) {
        char id[32], pfx[8];
        snprintf(pfx, sizeof(pfx), "rz%u-", i);
        id_on(i, pfx, id, sizeof(id));
        sconnect(&subs[i], i, id, true);
        ssub(&subs[i], "r/#", 0);
        expect_none(&subs[i].cl);
        sgone(&subs[i]);
    }
    sgone(&a);
    sgone(&c);
}

Test(broker_shards, unsubscribe_withdraws_interest_from_other_shards)
{
    char sid[32], pid[32];
    id_on(1, "u-sub", sid, sizeof(sid));
    id_on(2, "u-pub", pid, sizeof(pid));
    struct sconn sub, pub;
    sconnect(&sub, 1, sid, true);
    sconnect(&pub, 2, pid, true);
    ssub(&sub, "u/#", 0);
    struct mqtt_sub_entry e = {{(const uint8_t *)"u/#", 3}, 0};
    struct mqtt_pkt p = {.type = MQTT_UNSUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 2, .count = 1, .entries = &e};
    cr_assert_eq(sfeed(&sub, &p), 0);
    struct got g;
    cr_assert(next_out(&sub.cl, &g));
    spub(&pub, "u/1", "m", 0, false, 0);
    cr_assert_eq(broker_stats(sh[2])->xmsg_publish_out, 0, "no interest left on shard 1");
    expect_none(&sub.cl);
    sgone(&sub);
    sgone(&pub);
}

Test(broker_shards, wills_cross_shards)
{
    char wid[32], sid[32];
    id_on(3, "w-", wid, sizeof(wid));
    id_on(0, "ws-", sid, sizeof(sid));
    struct sconn w, sub;
    sconnect(&sub, 0, sid, true);
    ssub(&sub, "will/#", 1);
    w.shard = 1;
    broker_client_init(sh[1], &w.cl);
    struct mqtt_pkt p = connect_pkt(wid, true, MQTT_V311);
    p.u.connect.will = true;
    p.u.connect.will_qos = 1;
    p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)"will/x", 6};
    p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"bye", 3};
    cr_assert_eq(sfeed(&w, &p), 0);
    cr_assert_eq(w.shard, 3);
    sgone(&w);
    struct got g;
    expect_publish(&sub.cl, "will/x", "bye", 1, false, &g);
    sgone(&sub);
}

Test(broker_shards, empty_client_ids_are_homed_where_they_land)
{
    struct sconn c;
    c.shard = 2;
    broker_client_init(sh[2], &c.cl);
    struct mqtt_pkt p = connect_pkt("", true, MQTT_V311);
    cr_assert_eq(sfeed(&c, &p), 0);
    cr_assert_eq(c.shard, 2);
    cr_assert_eq(c.cl.state, CLIENT_CONNECTED);
    cr_assert_eq(broker_stats(sh[2])->handoffs, 0);
    sgone(&c);
}

Test(broker_shards, retained_qos1_is_acknowledged_only_once_every_replica_has_it)
{
    char pid[32], tid[32];
    id_on(1, "ra-", pid, sizeof(pid));
    /* A topic homed on another shard than the publisher's. */
    for (unsigned i = 0;; i++) {
        snprintf(tid, sizeof(tid), "t%u", i);
        if (broker_home_shard((const uint8_t *)tid, strlen(tid), NSHARDS) == 3)
            break;
    }
    struct sconn pub, keep[NSHARDS];
    sconnect(&pub, 1, pid, true);
    /*
     * A subscriber to the topic on every shard, so the later subscribes are
     * not a shard's first interest in it (which would wait for the others).
     */
    for (uint32_t i = 0; i < NSHARDS; i++) {
        char id[32], pfx[8];
        snprintf(pfx, sizeof(pfx), "rk%u-", i);
        id_on(i, pfx, id, sizeof(id));
        sconnect(&keep[i], i, id, true);
        ssub(&keep[i], tid, 0);
    }
    /* The retained PUBLISH and a PINGREQ behind it in one read. */
    uint8_t buf[128];
    struct mqtt_pkt p = publish_pkt(tid, "kept", 1, true, 9);
    size_t n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    struct mqtt_pkt ping = {.type = MQTT_PINGREQ};
    n += mqtt_encode(&ping, MQTT_V311, buf + n, sizeof(buf) - n);
    cr_assert_eq(broker_client_feed(sh[1], &pub.cl, buf, n), 0);
    expect_none(&pub.cl); /* held: no PUBACK, and the PINGREQ waits behind it */
    pump();
    struct got g;
    cr_assert(next_out(&pub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBACK);
    cr_assert_eq(g.pkt.u.ack.pkt_id, 9);
    cr_assert(next_out(&pub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PINGRESP, "bytes behind a held publish are handled after it");
    /* Every replica has it the moment the PUBACK is out [MQTT-3.3.1-6]. */
    for (uint32_t i = 0; i < NSHARDS; i++) {
        char id[32], pfx[8];
        struct sconn sub;
        snprintf(pfx, sizeof(pfx), "rb%u-", i);
        id_on(i, pfx, id, sizeof(id));
        sconnect(&sub, i, id, true);
        struct mqtt_sub_entry e = {{(const uint8_t *)tid, (uint32_t)strlen(tid)}, 1};
        struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
        sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 1, .count = 1, .entries = &e};
        n = mqtt_encode(&sp, MQTT_V311, buf, sizeof(buf));
        /* No pump: served from this shard's own replica. */
        cr_assert_eq(broker_client_feed(sh[i], &sub.cl, buf, n), 0);
        cr_assert(next_out(&sub.cl, &g));
        cr_assert_eq(g.pkt.type, MQTT_SUBACK);
        expect_publish(&sub.cl, tid, "kept", 1, true, &g);
        sgone(&sub);
    }
    for (uint32_t i = 0; i < NSHARDS; i++)
        sgone(&keep[i]);
    sgone(&pub);
}

Test(broker_shards, a_held_client_may_go_away_before_its_replicas_answer)
{
    char pid[32];
    id_on(2, "rg-", pid, sizeof(pid));
    struct sconn pub;
    for (int round = 0; round < 3; round++) {
        sconnect(&pub, 2, pid, true);
        uint8_t buf[64];
        struct mqtt_pkt p = publish_pkt("gone/t", "x", 2, true, 4);
        size_t n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
        cr_assert_eq(broker_client_feed(sh[2], &pub.cl, buf, n), 0);
        expect_none(&pub.cl);
        broker_client_gone(sh[2], &pub.cl, 0); /* before any reply */
        pump();                                /* the replies find nobody */
    }
}

Test(broker, a_client_that_never_reads_its_acks_is_closed_at_twice_output_bytes_max)
{
    lim.output_bytes_max = 1024;
    struct client c;
    do_connect(&c, "flood", true);
    /* QoS 1 publishes whose PUBACKs are never taken out of c.out. */
    uint8_t buf[64];
    struct mqtt_pkt p = publish_pkt("f", "x", 1, false, 1);
    size_t n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    int rc = 0;
    int i;
    for (i = 0; i < 10000 && rc == 0; i++)
        rc = broker_client_feed(b, &c, buf, n);
    cr_assert_lt(rc, 0, "still open after %d unread acks", i);
    cr_assert_eq(c.state, CLIENT_CLOSING);
    cr_assert_leq(c.out.len, 2 * 1024, "pending output stays bounded");
    broker_client_gone(b, &c, 0);
}

Test(broker_shards, a_qos0_retained_publish_is_seen_by_the_same_connections_next_subscribe)
{
    char pid[32], tid[32];
    id_on(0, "rq0-", pid, sizeof(pid));
    for (unsigned i = 0;; i++) { /* a topic homed elsewhere */
        snprintf(tid, sizeof(tid), "q0/%u", i);
        if (broker_home_shard((const uint8_t *)tid, strlen(tid), NSHARDS) == 2)
            break;
    }
    struct sconn c;
    sconnect(&c, 0, pid, true);
    uint8_t buf[128];
    struct mqtt_pkt p = publish_pkt(tid, "zero", 0, true, 0);
    size_t n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    struct mqtt_sub_entry e = {{(const uint8_t *)tid, (uint32_t)strlen(tid)}, 0};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 3, .count = 1, .entries = &e};
    n += mqtt_encode(&sp, MQTT_V311, buf + n, sizeof(buf) - n);
    /* PUBLISH (retain, QoS 0) and SUBSCRIBE in one read [MQTT-3.3.1-6]. */
    cr_assert_eq(broker_client_feed(sh[0], &c.cl, buf, n), 0);
    pump();
    struct got g;
    cr_assert(next_out(&c.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK, "nothing is acknowledged for QoS 0");
    expect_publish(&c.cl, tid, "zero", 0, true, &g);
    expect_none(&c.cl);
    sgone(&c);
}

/* Section 4.8.2: a shared message goes to a member that can take it now. */
Test(broker_shards, a_shared_message_chosen_for_an_offline_shard_reaches_an_online_member)
{
    char on_id[32], off_id[32], pid[32];
    id_on(0, "on-", on_id, sizeof(on_id));
    id_on(1, "off-", off_id, sizeof(off_id));
    id_on(2, "pub-", pid, sizeof(pid));
    struct sconn on, off, pub;
    sconnect(&off, 1, off_id, false);
    ssub(&off, "$share/g/job", 0);
    sgone(&off); /* persistent: stays a member, offline */
    sconnect(&on, 0, on_id, true);
    ssub(&on, "$share/g/job", 0);
    sconnect(&pub, 2, pid, true);
    for (int i = 0; i < 10; i++)
        spub(&pub, "job", "m", 0, false, 0);
    unsigned got = 0;
    struct got g;
    while (next_out(&on.cl, &g)) {
        cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
        got++;
    }
    cr_assert_eq(got, 10, "every message reaches the online member, not the offline one");
    sgone(&on);
    sgone(&pub);
}

Test(broker_shards, suback_waits_until_every_shard_forwards_the_new_filter)
{
    char sid[32], pid[32];
    id_on(1, "si-", sid, sizeof(sid));
    id_on(3, "pi-", pid, sizeof(pid));
    struct sconn sub, pub;
    sconnect(&sub, 1, sid, true);
    sconnect(&pub, 3, pid, true);
    uint8_t buf[128];
    struct mqtt_sub_entry e = {{(const uint8_t *)"new/+", 5}, 1};
    struct mqtt_pkt sp = {.type = MQTT_SUBSCRIBE};
    sp.u.subscribe = (struct mqtt_subscribe){.pkt_id = 6, .count = 1, .entries = &e};
    size_t n = mqtt_encode(&sp, MQTT_V311, buf, sizeof(buf));
    struct mqtt_pkt ping = {.type = MQTT_PINGREQ};
    n += mqtt_encode(&ping, MQTT_V311, buf + n, sizeof(buf) - n);
    cr_assert_eq(broker_client_feed(sh[1], &sub.cl, buf, n), 0);
    expect_none(&sub.cl); /* shard 3 does not forward new/+ yet: no SUBACK */
    pump();
    struct got g;
    cr_assert(next_out(&sub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    cr_assert_eq(g.pkt.u.suback.pkt_id, 6);
    cr_assert_eq(g.pkt.u.suback.rcs[0], 1);
    cr_assert(next_out(&sub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PINGRESP, "bytes behind the SUBSCRIBE are handled after it");
    expect_none(&sub.cl);
    /* Right after the SUBACK, a publish on the other shard is forwarded. */
    struct mqtt_pkt p = publish_pkt("new/x", "m", 1, false, 2);
    n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[3], &pub.cl, buf, n), 0);
    cr_assert_eq(broker_stats(sh[3])->xmsg_publish_out, 1);
    pump();
    expect_publish(&sub.cl, "new/x", "m", 1, false, &g);
    /* A second subscribe to a filter the shard already forwards is answered at once. */
    sp.u.subscribe.pkt_id = 7;
    n = mqtt_encode(&sp, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[1], &sub.cl, buf, n), 0);
    cr_assert(next_out(&sub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    sgone(&sub);
    sgone(&pub);
}

Test(broker_shards, a_lost_acknowledgement_holds_a_publisher_only_until_its_wait_times_out)
{
    char pid[32];
    id_on(2, "pub", pid, sizeof(pid));
    struct sconn pub;
    sconnect(&pub, 2, pid, true);
    /* A retained QoS 1 publish is acknowledged once every replica has it... */
    struct mqtt_pkt p = publish_pkt("r/t", "v", 1, true, 5);
    uint8_t buf[256];
    size_t n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[2], &pub.cl, buf, n), 0);
    /* ...but every message to the other shards is lost (out of memory there). */
    struct {
        uint32_t from, dest;
        struct xmsg x;
    } late[64];
    unsigned nlate = 0;
    for (bool more = true; more;) {
        more = false;
        for (uint32_t i = 0; i < NSHARDS; i++) {
            while (nlate < 64 && broker_next_xmsg(sh[i], &late[nlate].dest, &late[nlate].x)) {
                late[nlate++].from = i;
                more = true;
            }
        }
    }
    cr_assert_gt(nlate, 0);
    struct mqtt_pkt ping = {.type = MQTT_PINGREQ};
    n = mqtt_encode(&ping, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[2], &pub.cl, buf, n), 0);
    expect_none(&pub.cl); /* held: neither the PUBACK nor what came after */
    cr_assert(broker_has_deadlines(sh[2]), "the clock must tick while a client is held");
    broker_tick(sh[2], WAIT_TIMEOUT_MS - 1);
    expect_none(&pub.cl);
    broker_tick(sh[2], WAIT_TIMEOUT_MS + 1000);
    struct got g;
    cr_assert(next_out(&pub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBACK);
    cr_assert_eq(g.pkt.u.ack.pkt_id, 5);
    cr_assert(next_out(&pub.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PINGRESP, "then what it sent meanwhile, in order");
    cr_assert_eq(broker_stats(sh[2])->wait_timeouts, 1);
    /* The lost messages turn up after all: their acknowledgements are ignored. */
    for (unsigned i = 0; i < nlate; i++)
        broker_xmsg_receive(sh[late[i].dest], late[i].from, &late[i].x);
    pump();
    expect_none(&pub.cl);
    spub(&pub, "r/t", "w", 1, true, 6); /* and the next one is acknowledged normally */
    expect_none(&pub.cl);
    sgone(&pub);
}

Test(broker_shards, replicas_agree_when_the_retained_store_is_full)
{
    /*
     * New topics homed on different shards, set at once from two shards:
     * each replica sees the sets in a different order, so replicas that
     * each applied retained_max themselves kept different ones. The homes
     * decide, so every shard keeps the same (here both: each home had room;
     * the bound is then passed by at most one per shard, never diverged).
     */
    lim.retained_max = 1;
    char t1[32], t2[32], id[32];
    for (unsigned i = 0;; i++) {
        snprintf(t1, sizeof(t1), "r/a%u", i);
        if (broker_home_shard((const uint8_t *)t1, strlen(t1), NSHARDS) == 1)
            break;
    }
    for (unsigned i = 0;; i++) {
        snprintf(t2, sizeof(t2), "r/b%u", i);
        if (broker_home_shard((const uint8_t *)t2, strlen(t2), NSHARDS) == 2)
            break;
    }
    struct sconn p1, p2, subs[NSHARDS];
    id_on(1, "p1-", id, sizeof(id));
    sconnect(&p1, 1, id, true);
    id_on(2, "p2-", id, sizeof(id));
    sconnect(&p2, 2, id, true);
    /* QoS 0, both in before any cross-shard message moves. */
    struct mqtt_pkt a = publish_pkt(t1, "A", 0, true, 0), c = publish_pkt(t2, "B", 0, true, 0);
    uint8_t buf[256];
    size_t n = mqtt_encode(&a, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[1], &p1.cl, buf, n), 0);
    n = mqtt_encode(&c, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[2], &p2.cl, buf, n), 0);
    pump();
    unsigned want = 0;
    for (uint32_t i = 0; i < NSHARDS; i++) {
        char sid[32];
        id_on(i, "sub-", sid, sizeof(sid));
        sconnect(&subs[i], i, sid, true);
        ssub(&subs[i], "r/#", 0);
        unsigned seen = 0; /* bit 0: t1, bit 1: t2 */
        struct got g;
        while (next_out(&subs[i].cl, &g)) {
            cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
            bool is_t1 = g.pkt.u.publish.topic.len == strlen(t1) &&
                         memcmp(g.pkt.u.publish.topic.ptr, t1, strlen(t1)) == 0;
            seen |= is_t1 ? 1u : 2u;
        }
        if (i == 0)
            want = seen;
        cr_assert_neq(seen, 0, "shard %u kept nothing", i);
        cr_assert_eq(seen, want, "shard %u kept set %u, shard 0 set %u", i, seen, want);
        sgone(&subs[i]);
    }
    sgone(&p1);
    sgone(&p2);
}

Test(broker_shards, a_message_crosses_once_to_a_shard_for_plain_and_shared_subscribers)
{
    /* A plain subscriber and three shared groups, all on shard 1; the publisher on 2. */
    const char *filters[4] = {"c/t", "$share/g1/c/t", "$share/g2/c/t", "$share/g3/c/+"};
    struct sconn subs[4], pub;
    char id[32];
    for (int i = 0; i < 4; i++) {
        char pfx[8];
        snprintf(pfx, sizeof(pfx), "m%d-", i);
        id_on(1, pfx, id, sizeof(id));
        sconnect(&subs[i], 1, id, true);
        ssub(&subs[i], filters[i], 0);
    }
    id_on(2, "p", id, sizeof(id));
    sconnect(&pub, 2, id, true);
    struct mqtt_pkt p = publish_pkt("c/t", "m", 0, false, 0);
    uint8_t buf[64];
    size_t n = mqtt_encode(&p, MQTT_V311, buf, sizeof(buf));
    cr_assert_eq(broker_client_feed(sh[2], &pub.cl, buf, n), 0);
    unsigned crossings = 0;
    uint32_t dest;
    struct xmsg x;
    while (broker_next_xmsg(sh[2], &dest, &x)) {
        cr_assert_eq(dest, 1);
        crossings++;
        broker_xmsg_receive(sh[1], 2, &x);
    }
    cr_assert_eq(crossings, 1, "crossed to shard 1 %u times", crossings);
    pump();
    for (int i = 0; i < 4; i++) {
        struct got g;
        expect_publish(&subs[i].cl, "c/t", "m", 0, false, &g);
        expect_none(&subs[i].cl);
    }
    for (int i = 0; i < 4; i++)
        sgone(&subs[i]);
    sgone(&pub);
}

/*
 * A publisher held for back-pressure that also subscribes: the PUBACKs it
 * sends for what it is sent wait unread with the rest of its input, so its
 * window and queue fill and messages are dropped for it - by the broker's
 * choice, not its own slowness: it is not shed as a slow reader for that.
 */
Test(broker_shards, a_held_publisher_that_subscribes_is_not_shed_as_a_slow_reader)
{
    char id[32];
    struct sconn sub, self, other;
    struct got g;
    lim.inflight_max = 2;
    lim.queued_max = 2;
    lim.slow_reader_grace_s = 5;
    for (uint32_t i = 0; i < NSHARDS; i++)
        broker_tick(sh[i], 1000);
    id_on(1, "sub", id, sizeof(id));
    sconnect(&sub, 1, id, true);
    ssub(&sub, "c/#", 1);
    id_on(0, "self", id, sizeof(id));
    sconnect(&self, 0, id, true);
    ssub(&self, "s/#", 1);
    id_on(0, "oth", id, sizeof(id));
    sconnect(&other, 0, id, true);

    broker_set_congested(sh[0], 1, true);
    spub_held(&self, "c/1", "one", 1);
    expect_publish(&sub.cl, "c/1", "one", 1, false, &g);
    /* It reads and acknowledges everything it is sent, promptly. */
    for (uint16_t i = 1; i <= 6; i++) {
        spub(&other, "s/x", "m", 1, false, i);
        while (next_out(&self.cl, &g)) {
            if (g.pkt.type == MQTT_PUBLISH) {
                struct mqtt_pkt a = {.type = MQTT_PUBACK};
                a.u.ack.pkt_id = g.pkt.u.publish.pkt_id;
                cr_assert_eq(sfeed(&self, &a), 0);
            }
        }
    }
    cr_assert_gt(broker_stats(sh[0])->queue_full, 0, "its acks were held: its queue filled");
    broker_tick(sh[0], 4000);
    spub(&other, "s/x", "m", 1, false, 7);
    broker_tick(sh[0], 7500); /* past the grace, within the 10 s hold */
    spub(&other, "s/x", "m", 1, false, 8);
    cr_assert_eq(self.cl.state, CLIENT_CONNECTED, "shed for acks the broker held");
    cr_assert_eq(broker_stats(sh[0])->slow_readers_closed, 0);
    sgone(&sub);
    sgone(&self);
    sgone(&other);
}

/*
 * A window that does not fit the output at once is resent as it is
 * acknowledged, not refused: the session can always resume
 * [MQTT-4.4.0-1]. Four 700-byte messages in flight against 2 KiB.
 */
Test(broker, a_resent_window_larger_than_the_output_bound_resumes_as_acks_come)
{
    char big[701];
    memset(big, 'b', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    lim.output_bytes_max = 1024;
    lim.packet_bytes_max = 1024;
    lim.inflight_max = 4;
    struct client sub, pub;
    struct got g;
    do_connect(&sub, "resume", false);
    do_subscribe(&sub, "w", 1, 1);
    do_connect(&pub, "pub", true);
    for (uint16_t i = 1; i <= 4; i++) {
        do_publish(&pub, "w", big, 1, false, i);
        expect_publish(&sub, "w", big, 1, false, &g); /* read, never acknowledged */
    }
    broker_client_gone(b, &sub, 0);
    cr_assert(do_connect(&sub, "resume", false), "session present");
    cr_assert_eq(sub.state, CLIENT_CONNECTED, "not closed for a window that does not fit");
    uint16_t ids[4];
    int got = 0;
    while (next_out(&sub, &g)) {
        cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
        cr_assert(g.pkt.u.publish.dup, "resent with DUP [MQTT-3.3.1-1]");
        ids[got++] = g.pkt.u.publish.pkt_id;
    }
    cr_assert(got > 0 && got < 4, "%d of 4 resent at once", got);
    for (int i = 0; i < 4; i++) { /* each acknowledgement lets the next one out */
        if (i >= got) {
            cr_assert(next_out(&sub, &g), "message %d never resent", i + 1);
            cr_assert(g.pkt.u.publish.dup);
            ids[got++] = g.pkt.u.publish.pkt_id;
        }
        ack(&sub, MQTT_PUBACK, ids[i]);
    }
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* SUBSCRIBE @c to @filter (QoS 1) on its shard without delivering anything between shards. */
static void ssub_unpumped(struct sconn *c, const char *filter)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, 1};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    b = sh[c->shard];
    cr_assert_eq(feed_pkt(&c->cl, &p, MQTT_V311), 0);
}

/*
 * A SUBSCRIBE to a filter already on its shard, while that filter's first
 * announcement is still on its way to another shard, is not acknowledged
 * before it has arrived: a publish made there after the SUBACK must reach
 * it. (Found by test_shard_sim.)
 */
Test(broker_shards, a_second_subscriber_waits_for_the_first_announcement_still_on_its_way)
{
    char id[32];
    struct sconn first, second, pub;
    struct got g;
    id_on(1, "first", id, sizeof(id));
    sconnect(&first, 1, id, true);
    id_on(1, "second", id, sizeof(id));
    sconnect(&second, 1, id, true);
    id_on(2, "pub", id, sizeof(id));
    sconnect(&pub, 2, id, true);

    ssub_unpumped(&first, "pa/#");
    expect_none(&first.cl); /* held: its announcement is in shard 1's outbox */
    ssub_unpumped(&second, "pa/#");
    expect_none(&second.cl); /* the filter is on shard 1, but not yet known on shard 2 */
    pump();
    cr_assert(next_out(&second.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    cr_assert(next_out(&first.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    spub(&pub, "pa/x", "after", 1, false, 1);
    expect_publish(&second.cl, "pa/x", "after", 1, false, &g);
    expect_publish(&first.cl, "pa/x", "after", 1, false, &g);
    /* Once it has arrived everywhere, a third SUBSCRIBE is answered at once. */
    ssub_unpumped(&first, "pa/#");
    cr_assert(next_out(&first.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    sgone(&first);
    sgone(&second);
    sgone(&pub);
}

/*
 * The same for a shared subscription replaced by a later connection of its
 * session while the group's count announcement is still on its way: the
 * SUBACK waits for it. (Found by test_shard_sim.)
 */
Test(broker_shards, a_replaced_shared_subscription_waits_for_its_count_still_on_its_way)
{
    char id[32];
    struct sconn c1, c2;
    struct got g;
    id_on(1, "ps", id, sizeof(id));
    /* Both connections land on the session's home shard: nothing crosses to connect. */
    c1.shard = 1;
    broker_client_init(sh[1], &c1.cl);
    struct mqtt_pkt p = connect_pkt(id, false, MQTT_V311);
    b = sh[1];
    cr_assert_eq(feed_pkt(&c1.cl, &p, MQTT_V311), 0);
    cr_assert(next_out(&c1.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    ssub_unpumped(&c1, "$share/g/ps/#");
    expect_none(&c1.cl); /* held: the group's count is in shard 1's outbox */
    broker_client_gone(sh[1], &c1.cl, 0);

    c2.shard = 1;
    broker_client_init(sh[1], &c2.cl);
    b = sh[1];
    cr_assert_eq(feed_pkt(&c2.cl, &p, MQTT_V311), 0);
    cr_assert(next_out(&c2.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    cr_assert(g.pkt.u.connack.session_present);
    ssub_unpumped(&c2, "$share/g/ps/#"); /* a replace: the count has not changed */
    expect_none(&c2.cl);
    pump();
    cr_assert(next_out(&c2.cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    sgone(&c2);
}

Test(broker, stopping_publishes_a_connected_clients_will_once)
{
    /* The server closing the connection is not a DISCONNECT 0x00 [MQTT-3.1.2-8]. */
    struct client w, sub;
    connect_with_will(&w, "w");
    do_connect(&sub, "sub", true);
    do_subscribe(&sub, "w/#", 1, 1);
    cr_assert(broker_client_will_now(b, &w));
    struct got g;
    expect_publish(&sub, "w/status", "gone", 1, false, &g);
    cr_assert_not(broker_client_will_now(b, &w), "a will goes once");
    cr_assert_not(broker_client_will_now(b, &sub), "no will, nothing to send");
    broker_client_gone(b, &w, 0);
    expect_none(&sub); /* not again at the close */
    broker_client_gone(b, &sub, 0);
}

Test(broker, counts_messages_and_payload_bytes_by_qos_and_queued_as_a_gauge)
{
    struct client sub, pub;
    do_connect(&sub, "p", false);
    do_subscribe(&sub, "s", 2, 2);
    broker_client_gone(b, &sub, 0);
    do_connect(&pub, "pub", true);
    do_publish(&pub, "s", "abc", 1, false, 1);
    do_publish(&pub, "s", "de", 2, false, 2);
    do_publish(&pub, "s", "f", 0, false, 0);
    const struct broker_stats *st = broker_stats(b);
    cr_assert_eq(st->msgs_in_qos[0], 1);
    cr_assert_eq(st->msgs_in_qos[1], 1);
    cr_assert_eq(st->msgs_in_qos[2], 1);
    cr_assert_eq(st->bytes_in_qos[1], 3);
    cr_assert_eq(st->bytes_in_qos[2], 2);
    cr_assert_eq(st->queued, 2, "QoS 1 and 2 queued for the offline session");
    cr_assert_eq(st->connects_proto[1], 2, "3.1.1 CONNECTs");

    do_connect(&sub, "p", false);
    struct got g;
    expect_publish(&sub, "s", "abc", 1, false, &g);
    expect_publish(&sub, "s", "de", 2, false, &g);
    cr_assert_eq(st->queued, 0);
    cr_assert_eq(st->inflight, 2);
    cr_assert_eq(st->msgs_out_qos[1], 1);
    cr_assert_eq(st->bytes_out_qos[2], 2);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker, publishes_a_retained_sys_message_to_a_sys_subscriber)
{
    struct client sub;
    do_connect(&sub, "s", true);
    do_subscribe(&sub, "$SYS/#", 0, 0);
    cr_assert_eq(broker_sys_publish(b, "$SYS/broker/x", 13, (const uint8_t *)"42", 2), 0);
    drain_dirty();
    struct got g;
    expect_publish(&sub, "$SYS/broker/x", "42", 0, false, &g);
    cr_assert_eq(broker_retained_count(b), 1);
    cr_assert_eq(broker_stats(b)->msgs_in, 0, "the broker's own messages are not counted in");
    broker_client_gone(b, &sub, 0);
}
