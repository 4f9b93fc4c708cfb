/*
 * 02-pubsub.c - e2e: publish/subscribe at QoS 0, 1, 2; delivered QoS;
 * retain flag on live delivery; payload sizes; ordering; the exact QoS 1/2
 * packet flows on the wire, for MQTT 3.1.1 and 3.1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/*
 * Every combination of publish QoS and subscription QoS: the subscription is
 * granted what it asked for, and the message is delivered once at
 * min(publish QoS, granted QoS) [MQTT-3.8.4-6] with retain 0.
 */
static void qos_matrix(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    char topic[32];
    char payload[32];
    int p;
    int s;

    for (s = 0; s <= 2; s++) {
        snprintf(topic, sizeof(topic), "qos/sub%d", s);
        cr_assert_eq(e2e_client_subscribe(sub, topic, s), s, "granted QoS for %s", topic);
    }
    for (p = 0; p <= 2; p++) {
        for (s = 0; s <= 2; s++) {
            snprintf(topic, sizeof(topic), "qos/sub%d", s);
            snprintf(payload, sizeof(payload), "pub%d-sub%d", p, s);
            e2e_client_publish(pub, topic, payload, strlen(payload), p, false);
            /* [MQTT-3.8.4-6] [MQTT-3.3.1-9] */
            e2e_client_expect(sub, topic, payload, min_int(p, s), false);
        }
    }
    /* Exactly once each: nothing else arrives. */
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, delivers_each_message_once_at_min_of_publish_and_subscription_qos, qos_matrix)

/* A retained publish to an established subscription arrives with retain 0 [MQTT-3.3.1-9]. */
static void live_retain_flag(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    int q;

    cr_assert_eq(e2e_client_subscribe(sub, "live/#", 2), 2);
    for (q = 0; q <= 2; q++) {
        char topic[16];

        snprintf(topic, sizeof(topic), "live/%d", q);
        e2e_client_publish(pub, topic, "r", 1, q, true);
        e2e_client_expect(sub, topic, "r", q, false);
    }
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, retained_publish_to_established_subscription_has_retain_0, live_retain_flag)

/* Zero-byte and 100 KB payloads arrive intact at every QoS. */
static void payload_sizes(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    size_t big_len = 100 * 1024;
    uint8_t *big = malloc(big_len);
    struct e2e_msg *m;
    size_t i;
    int q;

    cr_assert_not_null(big);
    for (i = 0; i < big_len; i++) {
        big[i] = (uint8_t)((i * 131u + (i >> 9)) & 0xff);
    }
    cr_assert_eq(e2e_client_subscribe(sub, "size/+", 2), 2);
    for (q = 0; q <= 2; q++) {
        e2e_client_publish(pub, "size/empty", "", 0, q, false);
        m = e2e_client_expect_message(sub);
        cr_assert_str_eq(m->topic, "size/empty");
        cr_assert_eq(m->payload_len, 0, "QoS %d empty payload arrived with %zu bytes", q,
                     m->payload_len);
        cr_assert_eq(m->qos, q);
        e2e_msg_free(m);

        e2e_client_publish(pub, "size/big", big, big_len, q, false);
        m = e2e_client_expect_message(sub);
        cr_assert_str_eq(m->topic, "size/big");
        cr_assert_eq(m->payload_len, big_len, "QoS %d 100 KB payload arrived with %zu bytes", q,
                     m->payload_len);
        cr_assert(memcmp(m->payload, big, big_len) == 0, "QoS %d 100 KB payload corrupted", q);
        cr_assert_eq(m->qos, q);
        e2e_msg_free(m);
    }
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    free(big);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, delivers_empty_and_100kb_payloads_intact, payload_sizes)

/* 1000 QoS 1 messages on one topic arrive complete and in order [MQTT-4.6.0-6]. */
static void ordering(int version)
{
    enum { COUNT = 1000 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    char payload[16];
    int last_mid = 0;
    int i;

    cr_assert_eq(e2e_client_subscribe(sub, "order/t", 1), 1);
    for (i = 0; i < COUNT; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        last_mid = e2e_client_publish_async(pub, "order/t", payload, strlen(payload), 1, false);
    }
    for (i = 0; i < COUNT; i++) {
        struct e2e_msg *m = e2e_client_wait_message(sub, E2E_WAIT_MS);

        cr_assert_not_null(m, "message %d of %d did not arrive", i, COUNT);
        snprintf(payload, sizeof(payload), "%d", i);
        cr_assert_str_eq((const char *)m->payload, payload,
                         "message %d arrived out of order (got %s) [MQTT-4.6.0-6]", i,
                         (const char *)m->payload);
        cr_assert_eq(m->qos, 1);
        e2e_msg_free(m);
    }
    e2e_client_wait_published(pub, last_mid, E2E_WAIT_MS);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, delivers_1000_qos1_messages_in_order, ordering)

/* Every subscriber gets its copy; a non-matching subscriber gets none. */
static void fan_out(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *s1 = e2e_client_connect(b, version, "s1", true);
    struct e2e_client *s2 = e2e_client_connect(b, version, "s2", true);
    struct e2e_client *s3 = e2e_client_connect(b, version, "s3", true);
    struct e2e_client *other = e2e_client_connect(b, version, "other", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);

    cr_assert_eq(e2e_client_subscribe(s1, "fan/t", 0), 0);
    cr_assert_eq(e2e_client_subscribe(s2, "fan/t", 1), 1);
    cr_assert_eq(e2e_client_subscribe(s3, "fan/t", 2), 2);
    cr_assert_eq(e2e_client_subscribe(other, "fan/u", 2), 2);
    e2e_client_publish(pub, "fan/t", "all", 3, 2, false);
    e2e_client_expect(s1, "fan/t", "all", 0, false);
    e2e_client_expect(s2, "fan/t", "all", 1, false);
    e2e_client_expect(s3, "fan/t", "all", 2, false);
    e2e_client_expect_no_message(other, E2E_QUIET_MS);
    e2e_client_disconnect(s1);
    e2e_client_disconnect(s2);
    e2e_client_disconnect(s3);
    e2e_client_disconnect(other);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, delivers_to_every_matching_subscriber_only, fan_out)

/*
 * On the wire: QoS 1 PUBLISH gets PUBACK with its packet id; QoS 2 gets
 * PUBREC, PUBREL gets PUBCOMP [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-2.3.1-6].
 */
static void raw_publish_acks(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    int fd = e2e_raw_connect_ok(b, version, "rawpub", true, 0);
    struct e2e_pkt p;

    cr_assert_eq(e2e_client_subscribe(sub, "ack/+", 2), 2);

    e2e_pkt_publish(&p, "ack/1", 1, false, false, 0x1234, "one", 3);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x40\x02\x12\x34", 4, E2E_WAIT_MS);
    e2e_client_expect(sub, "ack/1", "one", 1, false);

    e2e_pkt_publish(&p, "ack/2", 2, false, false, 0x0102, "two", 3);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x50\x02\x01\x02", 4, E2E_WAIT_MS);
    e2e_pkt_ack(&p, 0x62, 0x0102);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x70\x02\x01\x02", 4, E2E_WAIT_MS);
    e2e_client_expect(sub, "ack/2", "two", 2, false);

    /* QoS 0 gets no answer at all: the next thing back is the PINGRESP. */
    e2e_pkt_publish(&p, "ack/0", 0, false, false, 0, "zero", 4);
    e2e_raw_send_pkt(fd, &p);
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_client_expect(sub, "ack/0", "zero", 0, false);

    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, acknowledges_qos1_and_qos2_publishes_with_their_packet_ids, raw_publish_acks)

/*
 * A QoS 2 PUBLISH re-sent (DUP) before PUBREL is delivered only once
 * [MQTT-4.3.3-2]; each copy gets a PUBREC.
 */
static void qos2_duplicate(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    int fd = e2e_raw_connect_ok(b, version, "rawpub", true, 0);
    struct e2e_pkt p;

    cr_assert_eq(e2e_client_subscribe(sub, "dup/t", 2), 2);
    e2e_pkt_publish(&p, "dup/t", 2, false, false, 7, "once", 4);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x50\x02\x00\x07", 4, E2E_WAIT_MS);
    e2e_pkt_publish(&p, "dup/t", 2, false, true, 7, "once", 4);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x50\x02\x00\x07", 4, E2E_WAIT_MS);
    e2e_pkt_ack(&p, 0x62, 7);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x70\x02\x00\x07", 4, E2E_WAIT_MS);
    e2e_client_expect(sub, "dup/t", "once", 2, false);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, qos2_publish_resent_before_pubrel_is_delivered_once, qos2_duplicate)

/*
 * On the wire, to a subscriber: QoS 1 PUBLISH has a non-zero packet id
 * [MQTT-2.3.1-1]; QoS 2 is PUBLISH, PUBREC -> PUBREL (flags 0010
 * [MQTT-3.6.1-1]), PUBCOMP; nothing is re-sent once acknowledged.
 */
static void raw_subscriber_flows(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    int fd = e2e_raw_connect_ok(b, version, "rawsub", true, 0);
    const char *filters[] = {"flow/1", "flow/2"};
    const uint8_t qos[] = {1, 2};
    struct e2e_pkt p;
    uint8_t pkt[64];
    size_t hdr = 0;
    size_t n;
    uint16_t id;

    e2e_pkt_subscribe(&p, 0x0a0b, 2, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x04\x0a\x0b\x01\x02", 6, E2E_WAIT_MS);

    e2e_client_publish(pub, "flow/1", "q1", 2, 1, false);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, &hdr);
    cr_assert_eq(n, 14, "QoS 1 PUBLISH size %zu", n);
    cr_assert_eq(pkt[0], 0x32, "QoS 1 PUBLISH first byte %02x", pkt[0]);
    cr_assert(memcmp(pkt + 2,
                     "\x00\x06"
                     "flow/1",
                     8) == 0);
    id = (uint16_t)(pkt[10] << 8 | pkt[11]);
    cr_assert_neq(id, 0, "packet id 0 [MQTT-2.3.1-1]");
    cr_assert(memcmp(pkt + 12, "q1", 2) == 0);
    e2e_pkt_ack(&p, 0x40, id);
    e2e_raw_send_pkt(fd, &p);

    e2e_client_publish(pub, "flow/2", "q2", 2, 2, false);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, &hdr);
    cr_assert_eq(n, 14, "QoS 2 PUBLISH size %zu", n);
    cr_assert_eq(pkt[0], 0x34, "QoS 2 PUBLISH first byte %02x", pkt[0]);
    cr_assert(memcmp(pkt + 2,
                     "\x00\x06"
                     "flow/2",
                     8) == 0);
    id = (uint16_t)(pkt[10] << 8 | pkt[11]);
    cr_assert_neq(id, 0, "packet id 0 [MQTT-2.3.1-1]");
    e2e_pkt_ack(&p, 0x50, id);
    e2e_raw_send_pkt(fd, &p);
    {
        uint8_t want[4] = {0x62, 0x02, (uint8_t)(id >> 8), (uint8_t)id};

        e2e_raw_expect(fd, want, 4, E2E_WAIT_MS);
    }
    e2e_pkt_ack(&p, 0x70, id);
    e2e_raw_send_pkt(fd, &p);

    /* Nothing else is pending: the next packet is our PINGRESP. */
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, sends_qos1_and_qos2_to_subscriber_with_correct_flows, raw_subscriber_flows)

/* MQTT 3.1 and 3.1.1 clients exchange messages both ways. */
E2E_TEST(pubsub, v31_and_v311_clients_interoperate)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *old = e2e_client_connect(b, E2E_V31, "old", true);
    struct e2e_client *new = e2e_client_connect(b, E2E_V311, "new", true);

    cr_assert_eq(e2e_client_subscribe(old, "mix/old", 2), 2);
    cr_assert_eq(e2e_client_subscribe(new, "mix/new", 2), 2);
    e2e_client_publish(new, "mix/old", "to 3.1", 6, 2, false);
    e2e_client_publish(old, "mix/new", "to 3.1.1", 8, 1, true);
    e2e_client_expect(old, "mix/old", "to 3.1", 2, false);
    e2e_client_expect(new, "mix/new", "to 3.1.1", 1, false);
    e2e_client_disconnect(old);
    e2e_client_disconnect(new);
    e2e_broker_stop(b);
}

/*
 * One SUBSCRIBE with 300 filters gets one SUBACK with 300 return codes in
 * order [MQTT-3.9.3-1] (a multi-byte remaining length), and all work.
 */
static void many_filters(int version)
{
    enum { COUNT = 300 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    int fd = e2e_raw_connect_ok(b, version, "many", true, 0);
    char names[COUNT][16];
    const char *filters[COUNT];
    uint8_t qos[COUNT];
    uint8_t pkt[COUNT + 16];
    struct e2e_pkt p;
    size_t hdr = 0;
    size_t n;
    int i;

    for (i = 0; i < COUNT; i++) {
        snprintf(names[i], sizeof(names[i]), "mf/%d", i);
        filters[i] = names[i];
        qos[i] = (uint8_t)(i % 3);
    }
    e2e_pkt_subscribe(&p, 0x7777, COUNT, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, &hdr);
    cr_assert_eq(n, 3 + 2 + COUNT, "SUBACK of %zu bytes", n);
    cr_assert(pkt[0] == 0x90 && hdr == 3 && pkt[3] == 0x77 && pkt[4] == 0x77);
    for (i = 0; i < COUNT; i++) {
        cr_assert_eq(pkt[5 + i], i % 3, "return code %d is %d", i, pkt[5 + i]);
    }
    e2e_client_publish(pub, "mf/299", "last", 4, 0, false);
    e2e_raw_expect(fd,
                   "\x30\x0c\x00\x06"
                   "mf/299last",
                   14, E2E_WAIT_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(pubsub, subscribe_with_300_filters_gets_300_return_codes, many_filters)
