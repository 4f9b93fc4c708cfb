/*
 * 08-malformed.c - e2e: hostile and malformed input over a raw socket. Each
 * case checks the spec's answer (close, or CONNACK with a code then close)
 * and then that the broker still serves a fresh client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

/* Send @bytes as the very first thing on a connection; expect a silent close. */
static void first_bytes_rejected(const void *bytes, size_t len)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_open(b);

    e2e_raw_send(fd, bytes, len);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* CONNECT (@version), then @bytes; expect a silent close. */
static void after_connect_rejected(int version, const void *bytes, size_t len)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_connect_ok(b, version, "bad", true, 0);

    e2e_raw_send(fd, bytes, len);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* Send the CONNECT of @o; expect a silent close (no CONNACK at all). */
static void connect_rejected_silently(const struct e2e_connect_opts *o)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_open(b);
    struct e2e_pkt p;

    e2e_pkt_connect(&p, o);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * Send the CONNECT of @o; expect either nothing or a refusing CONNACK
 * (20 02 00 rc, rc != 0), then a close. Returns the CONNACK rc, or -1.
 */
static int connect_refused(struct e2e_broker *b, const struct e2e_connect_opts *o)
{
    int fd = e2e_raw_open(b);
    struct e2e_pkt p;
    uint8_t ack[4];
    size_t n;
    int rc = -1;

    e2e_pkt_connect(&p, o);
    e2e_raw_send_pkt(fd, &p);
    n = e2e_raw_recv(fd, ack, 4, E2E_WAIT_MS);
    if (n > 0) {
        cr_assert_eq(n, 4, "partial answer (%zu bytes)", n);
        cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x00,
                  "answer %02x %02x %02x %02x is not a refusing CONNACK", ack[0], ack[1], ack[2],
                  ack[3]);
        cr_assert_neq(ack[3], 0, "a bad CONNECT was accepted");
        rc = ack[3];
    }
    e2e_raw_expect_closed_silently(fd);
    return rc;
}

/* -------------------------------------------------- before / at CONNECT */

/* The first packet must be CONNECT [MQTT-3.1.0-1]. */
E2E_TEST(malformed, pingreq_before_connect_is_closed_without_answer)
{
    first_bytes_rejected("\xc0\x00", 2);
}

E2E_TEST(malformed, publish_before_connect_is_closed_without_answer)
{
    first_bytes_rejected("\x30\x05\x00\x01"
                         "ahi",
                         7);
}

E2E_TEST(malformed, subscribe_before_connect_is_closed_without_answer)
{
    first_bytes_rejected("\x82\x06\x00\x01\x00\x01"
                         "a\x00",
                         8);
}

/* Packet type 0 is reserved [MQTT-2.2.1]; also a plain garbage stream. */
E2E_TEST(malformed, garbage_stream_is_closed_and_others_are_undisturbed)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *by = e2e_client_connect(b, E2E_V311, "bystander", true);
    uint8_t junk[4096];
    uint32_t x = 0x12345678;
    size_t i;
    int fd;

    cr_assert_eq(e2e_client_subscribe(by, "by/t", 1), 1);
    for (i = 0; i < sizeof(junk); i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (uint8_t)(x >> 16);
    }
    junk[0] = 0x00; /* reserved type: rejected on the first byte */
    fd = e2e_raw_open(b);
    e2e_raw_send(fd, junk, sizeof(junk));
    e2e_raw_expect_closed_silently(fd);

    /* After a valid CONNECT, garbage starting with type 15 (not in 3.1.1). */
    fd = e2e_raw_connect_ok(b, E2E_V311, "junk", true, 0);
    junk[0] = 0xf0;
    e2e_raw_send(fd, junk, sizeof(junk));
    e2e_raw_expect_closed_silently(fd);

    e2e_client_publish(by, "by/t", "fine", 4, 1, false);
    e2e_client_expect(by, "by/t", "fine", 1, false);
    e2e_client_disconnect(by);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* A wrong protocol name: the broker may refuse or just close [MQTT-3.1.2-1]. */
E2E_TEST(malformed, connect_with_unknown_protocol_name_is_refused)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "x", .clean = true};

    o.proto_name = "MQTX";
    connect_refused(b, &o);
    o.proto_name = "mqtt";
    connect_refused(b, &o);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* An unsupported protocol level gets CONNACK 0x01, then close [MQTT-3.1.2-2]. */
E2E_TEST(malformed, connect_with_unsupported_protocol_level_gets_connack_1)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "x", .clean = true};
    uint8_t ack[4];
    int fd;

    o.proto_level = 6;
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x00 && ack[3] == 0x01,
              "CONNACK %02x %02x %02x %02x, expected 20 02 00 01 [MQTT-3.1.2-2]", ack[0], ack[1],
              ack[2], ack[3]);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* "MQIsdp" is level 3 only, "MQTT" 4 (or 5): mismatches are refused. */
E2E_TEST(malformed, connect_with_mismatched_protocol_name_and_level_is_refused)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V31, .id = "x", .clean = true};

    o.proto_level = 4; /* "MQIsdp" level 4 */
    connect_refused(b, &o);
    o.version = E2E_V311;
    o.proto_level = 3; /* "MQTT" level 3 */
    connect_refused(b, &o);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * The reserved CONNECT flag must be 0 [MQTT-3.1.2-3]. (3.1.1 only: MQTT 3.1
 * just calls the bit unused, and mosquitto accepts it there.)
 */
E2E_TEST(malformed, connect_with_reserved_flag_is_closed_v311)
{
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "x", .clean = true, .flags_set = 1};

    connect_rejected_silently(&o);
}

/* Will QoS 3 is malformed [MQTT-3.1.2-14]. */
E2E_TEST(malformed, connect_with_will_qos_3_is_closed)
{
    struct e2e_connect_opts o = {
        .version = E2E_V311,
        .id = "x",
        .clean = true,
        .will_topic = "w",
        .will_payload = "p",
        .will_qos = 3,
    };

    connect_rejected_silently(&o);
}

/* Without the will flag, will QoS and will retain must be 0 [MQTT-3.1.2-13] [MQTT-3.1.2-15]. */
E2E_TEST(malformed, connect_with_will_qos_but_no_will_flag_is_closed)
{
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "x", .clean = true, .flags_set = 0x08};

    connect_rejected_silently(&o);
}

E2E_TEST(malformed, connect_with_will_retain_but_no_will_flag_is_closed)
{
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "x", .clean = true, .flags_set = 0x20};

    connect_rejected_silently(&o);
}

/* A password without a user name is malformed in 3.1.1 [MQTT-3.1.2-22]. */
E2E_TEST(malformed, connect_with_password_but_no_username_is_closed)
{
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "x", .clean = true, .password = "pw"};

    connect_rejected_silently(&o);
}

/* A client id that is not valid UTF-8 is never accepted [MQTT-1.5.3-1]. */
E2E_TEST(malformed, connect_with_invalid_utf8_client_id_is_refused)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "ab\xff", .clean = true};

    connect_refused(b, &o);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* A CONNECT whose fields run past its remaining length is malformed. */
E2E_TEST(malformed, connect_with_truncated_fields_is_closed)
{
    /* The packet ends inside the client id (declared 5 bytes, 2 present). */
    first_bytes_rejected("\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x05"
                         "ab",
                         16);
}

/* Remaining length encoded in 5 bytes is malformed [MQTT-2.2.3]. */
E2E_TEST(malformed, remaining_length_of_five_bytes_is_closed)
{
    after_connect_rejected(E2E_V311, "\x30\xff\xff\xff\xff\x01", 6);
}

E2E_TEST(malformed, connect_with_five_byte_remaining_length_is_closed)
{
    first_bytes_rejected("\x10\x80\x80\x80\x80\x01", 6);
}

/* A second CONNECT is a protocol violation [MQTT-3.1.0-2]. */
static void second_connect(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_connect_ok(b, version, "twice", true, 0);
    struct e2e_connect_opts o = {.version = version, .id = "twice", .clean = true};
    struct e2e_pkt p;

    e2e_pkt_connect(&p, &o);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(malformed, second_connect_is_closed, second_connect)

/* ------------------------------------------------------- fixed header */

/* Reserved fixed-header flag bits must be as specified [MQTT-2.2.2-1] [MQTT-2.2.2-2]. */
E2E_TEST(malformed, subscribe_with_flags_0_is_closed)
{
    /* [MQTT-3.8.1-1] */
    after_connect_rejected(E2E_V311,
                           "\x80\x06\x00\x01\x00\x01"
                           "a\x00",
                           8);
}

E2E_TEST(malformed, unsubscribe_with_flags_0_is_closed)
{
    /* [MQTT-3.10.1-1] */
    after_connect_rejected(E2E_V311,
                           "\xa0\x05\x00\x01\x00\x01"
                           "a",
                           7);
}

E2E_TEST(malformed, pubrel_with_flags_0_is_closed)
{
    /* [MQTT-3.6.1-1] */
    after_connect_rejected(E2E_V311, "\x60\x02\x00\x01", 4);
}

E2E_TEST(malformed, pingreq_with_flags_set_is_closed)
{
    e2e_ringmq_only("mosquitto 2.0.11 ignores PINGREQ's flags, violating [MQTT-2.2.2-2]");
    after_connect_rejected(E2E_V311, "\xc1\x00", 2);
}

/* PUBLISH with both QoS bits set [MQTT-3.3.1-4]. */
static void publish_qos3(int version)
{
    after_connect_rejected(version,
                           "\x36\x07\x00\x03"
                           "a/b"
                           "\x00\x01",
                           9);
}
E2E_TEST_BOTH(malformed, publish_with_qos_3_is_closed, publish_qos3)

/* Packets only a server sends are protocol errors from a client. */
E2E_TEST(malformed, connack_from_a_client_is_closed)
{
    after_connect_rejected(E2E_V311, "\x20\x02\x00\x00", 4);
}

E2E_TEST(malformed, suback_from_a_client_is_closed)
{
    /* [MQTT-4.8.0-1] */
    e2e_ringmq_only("mosquitto 2.0.11 ignores a SUBACK from a client");
    after_connect_rejected(E2E_V311, "\x90\x03\x00\x01\x00", 5);
}

/* ------------------------------------------------------------- topics */

/* Topic names are UTF-8 [MQTT-1.5.3-1]: bad bytes, overlong forms, surrogates. */
E2E_TEST(malformed, publish_with_invalid_utf8_topic_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x30\x05\x00\x03"
                           "a\xc3\x28",
                           7);
}

E2E_TEST(malformed, publish_with_overlong_utf8_topic_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x30\x05\x00\x03"
                           "a\xc0\xaf",
                           7);
}

E2E_TEST(malformed, publish_with_utf16_surrogate_in_topic_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x30\x05\x00\x03"
                           "\xed\xa0\x80",
                           7);
}

/* U+0000 is not allowed in a topic [MQTT-1.5.3-2]. */
static void publish_nul(int version)
{
    after_connect_rejected(version,
                           "\x30\x05\x00\x03"
                           "a\x00"
                           "b",
                           7);
}
E2E_TEST_BOTH(malformed, publish_with_nul_in_topic_is_closed, publish_nul)

E2E_TEST(malformed, subscribe_with_invalid_utf8_filter_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x82\x07\x00\x01\x00\x02"
                           "a\xff"
                           "\x00",
                           9);
}

E2E_TEST(malformed, subscribe_with_nul_in_filter_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x82\x07\x00\x01\x00\x02"
                           "a\x00"
                           "\x00",
                           9);
}

/* A topic name must not contain wildcards [MQTT-3.3.2-2]. */
static void publish_wildcard_plus(int version)
{
    after_connect_rejected(version,
                           "\x30\x05\x00\x03"
                           "a/+",
                           7);
}
E2E_TEST_BOTH(malformed, publish_to_plus_wildcard_topic_is_closed, publish_wildcard_plus)

E2E_TEST(malformed, publish_to_hash_wildcard_topic_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x30\x05\x00\x03"
                           "a/#",
                           7);
}

/* A topic name is at least one character [MQTT-4.7.3-1]. */
E2E_TEST(malformed, publish_with_empty_topic_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x30\x04\x00\x00"
                           "hi",
                           6);
}

/* The topic length must fit in the packet. */
E2E_TEST(malformed, publish_with_topic_longer_than_packet_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x30\x05\x00\x0a"
                           "abc",
                           7);
}

/* QoS > 0 needs a non-zero packet id [MQTT-2.3.1-1]. */
E2E_TEST(malformed, qos1_publish_with_packet_id_0_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x32\x07\x00\x01"
                           "a"
                           "\x00\x00"
                           "hi",
                           9);
}

E2E_TEST(malformed, subscribe_with_packet_id_0_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x82\x06\x00\x00\x00\x01"
                           "a\x00",
                           8);
}

/* SUBSCRIBE/UNSUBSCRIBE need at least one filter [MQTT-3.8.3-3] [MQTT-3.10.3-2]. */
E2E_TEST(malformed, subscribe_without_filters_is_closed)
{
    after_connect_rejected(E2E_V311, "\x82\x02\x00\x01", 4);
}

E2E_TEST(malformed, unsubscribe_without_filters_is_closed)
{
    after_connect_rejected(E2E_V311, "\xa2\x02\x00\x01", 4);
}

/* Requested QoS 3, or reserved bits in the options byte [MQTT-3.8.3-4]. */
E2E_TEST(malformed, subscribe_with_requested_qos_3_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x82\x06\x00\x01\x00\x01"
                           "a\x03",
                           8);
}

E2E_TEST(malformed, subscribe_with_reserved_option_bits_is_closed)
{
    after_connect_rejected(E2E_V311,
                           "\x82\x06\x00\x01\x00\x01"
                           "a\x04",
                           8);
}

/*
 * A syntactically invalid filter gets SUBACK 0x80 for that filter while a
 * valid one in the same packet is granted [MQTT-3.9.3-2] [MQTT-4.7.1-2]
 * [MQTT-4.7.1-3]. mosquitto 2.0.11 closes the connection instead, so this
 * is ringmq-only.
 */
static void invalid_filter_suback(int version)
{
    static const char *const filters[] = {"a/#/b", "ok/t", "a+", "#/a", "sp/ort#", "x/+y"};
    static const uint8_t qos[] = {1, 1, 0, 2, 0, 1};
    struct e2e_broker *b;
    struct e2e_client *pub;
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("mosquitto closes the connection on an invalid filter");
    b = e2e_broker_start(NULL);
    fd = e2e_raw_connect_ok(b, version, "subber", true, 0);
    e2e_pkt_subscribe(&p, 0x0203, 6, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x08\x02\x03\x80\x01\x80\x80\x80\x80", 10, E2E_WAIT_MS);

    /* The granted one works, the connection is still up. */
    pub = e2e_client_connect(b, version, "pub", true);
    e2e_client_publish(pub, "ok/t", "yes", 3, 0, false);
    e2e_raw_expect(fd,
                   "\x30\x09\x00\x04"
                   "ok/tyes",
                   11, E2E_WAIT_MS);
    e2e_client_disconnect(pub);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(malformed, invalid_filter_gets_suback_failure_and_valid_one_is_granted,
              invalid_filter_suback)

/* ------------------------------------------------------------ slowloris */

/*
 * A client that sends half a packet and stalls does not delay anyone else;
 * when it closes, the broker cleans up and keeps serving.
 */
E2E_TEST(malformed, half_packet_then_close_does_not_disturb_others)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *by = e2e_client_connect(b, E2E_V311, "bystander", true);
    int half_connect = e2e_raw_open(b);
    int half_publish = e2e_raw_connect_ok(b, E2E_V311, "half", true, 0);
    int64_t t0;
    int i;

    cr_assert_eq(e2e_client_subscribe(by, "slow/t", 1), 1);
    cr_assert(e2e_raw_send(half_connect, "\x10\x20\x00\x04MQ", 6));
    cr_assert(e2e_raw_send(half_publish, "\x30\x80\x10\x00\x06slow/t", 11));
    t0 = e2e_now_ms();
    for (i = 0; i < 20; i++) {
        e2e_client_publish(by, "slow/t", "go", 2, 1, false);
        e2e_client_expect(by, "slow/t", "go", 1, false);
    }
    cr_assert(e2e_now_ms() - t0 < 3000, "20 round trips took %lld ms next to stalled peers",
              (long long)(e2e_now_ms() - t0));
    e2e_raw_close(half_connect);
    e2e_raw_close(half_publish);
    /* The half PUBLISH was not delivered. */
    e2e_client_expect_no_message(by, E2E_QUIET_MS);
    e2e_client_disconnect(by);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* Many abrupt connects and closes at every stage leave the broker healthy. */
E2E_TEST(malformed, abrupt_closes_at_every_stage_leave_the_broker_healthy)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "churn", .clean = true};
    struct e2e_pkt p;
    size_t cut;

    e2e_pkt_connect(&p, &o);
    for (cut = 0; cut <= p.len; cut++) {
        int fd = e2e_raw_open(b);

        e2e_raw_send(fd, p.buf, cut);
        e2e_raw_close(fd);
    }
    e2e_pkt_free(&p);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}
