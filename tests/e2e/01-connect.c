/*
 * 01-connect.c - e2e: CONNECT / CONNACK, client identifiers, sessions
 * present, client-id takeover, for MQTT 3.1.1 and 3.1.
 */
#include <string.h>

#include "tests/e2e/harness.h"

static const uint8_t connack_ok[4] = {0x20, 0x02, 0x00, 0x00};

/* CONNACK 0 with session present 0 for a clean session [MQTT-3.2.2-1] [MQTT-3.2.2-4]. */
static void clean_session_connack(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = version, .id = "c1", .clean = true};
    uint8_t ack[4];
    int fd = e2e_raw_connect(b, &o, ack);
    struct e2e_client *c;

    cr_assert(memcmp(ack, connack_ok, 4) == 0, "CONNACK %02x %02x %02x %02x", ack[0], ack[1],
              ack[2], ack[3]);
    /* The connection works: PINGREQ gets PINGRESP [MQTT-3.12.4-1]. */
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);

    /* And the same through libmosquitto. */
    c = e2e_client_connect(b, version, "c2", true);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(connect, clean_session_gets_connack_accepted_without_session_present,
              clean_session_connack)

/*
 * A persistent session: first CONNACK has session present 0 [MQTT-3.2.2-3],
 * a reconnect with clean session 0 has session present 1 [MQTT-3.2.2-2].
 */
E2E_TEST(connect, reconnect_with_clean_session_0_reports_session_present_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "persist", .clean = false};
    uint8_t ack[4];
    int fd = e2e_raw_connect(b, &o, ack);

    cr_assert(memcmp(ack, connack_ok, 4) == 0, "first CONNACK %02x %02x %02x %02x", ack[0], ack[1],
              ack[2], ack[3]);
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2)); /* DISCONNECT */
    e2e_raw_expect_closed_silently(fd);

    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x01 && ack[3] == 0x00,
              "second CONNACK %02x %02x %02x %02x, expected 20 02 01 00 [MQTT-3.2.2-2]", ack[0],
              ack[1], ack[2], ack[3]);
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2));
    e2e_raw_expect_closed_silently(fd);

    /* Clean session 1 discards it: session present 0 [MQTT-3.2.2-1]... */
    o.clean = true;
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, connack_ok, 4) == 0, "clean CONNACK %02x %02x %02x %02x", ack[0], ack[1],
              ack[2], ack[3]);
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2));
    e2e_raw_expect_closed_silently(fd);

    /* ...and does not leave one behind either [MQTT-3.1.2-6]. */
    o.clean = false;
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, connack_ok, 4) == 0, "CONNACK after clean %02x %02x %02x %02x", ack[0],
              ack[1], ack[2], ack[3]);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/*
 * MQTT 3.1 has no session-present flag: the first byte of CONNACK's variable
 * header is reserved, so it stays 0 even for a resumed session.
 */
E2E_TEST(connect, v31_connack_reserved_byte_stays_zero_on_resumed_session)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V31, .id = "persist31", .clean = false};
    uint8_t ack[4];
    int fd = e2e_raw_connect(b, &o, ack);

    cr_assert(memcmp(ack, connack_ok, 4) == 0);
    cr_assert(e2e_raw_send(fd, "\xe0\x00", 2));
    e2e_raw_expect_closed_silently(fd);
    fd = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, connack_ok, 4) == 0, "3.1 CONNACK %02x %02x %02x %02x", ack[0], ack[1],
              ack[2], ack[3]);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/* A zero-byte client id with clean session 1 is accepted and works [MQTT-3.1.3-6]. */
E2E_TEST(connect, empty_client_id_with_clean_session_is_accepted_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "", .clean = true};
    const char *filters[] = {"empty/id"};
    const uint8_t qos[] = {1};
    uint8_t ack[4];
    uint8_t pkt[64];
    size_t n;
    struct e2e_pkt p;
    int fd = e2e_raw_connect(b, &o, ack);
    int fd2;

    cr_assert(memcmp(ack, connack_ok, 4) == 0, "CONNACK %02x %02x %02x %02x [MQTT-3.1.3-6]", ack[0],
              ack[1], ack[2], ack[3]);
    /* The broker assigned it an identity it can route to. */
    e2e_pkt_subscribe(&p, 1, 1, filters, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x03\x00\x01\x01", 5, E2E_WAIT_MS);
    e2e_pkt_publish(&p, "empty/id", 0, false, false, 0, "hi", 2);
    e2e_raw_send_pkt(fd, &p);
    n = e2e_raw_read_packet(fd, pkt, sizeof(pkt), E2E_WAIT_MS, NULL);
    cr_assert_eq(n, 14, "expected the QoS 0 PUBLISH back");
    cr_assert(memcmp(pkt,
                     "\x30\x0c\x00\x08"
                     "empty/idhi",
                     14) == 0);

    /* Two such clients do not take each other over. */
    fd2 = e2e_raw_connect(b, &o, ack);
    cr_assert(memcmp(ack, connack_ok, 4) == 0);
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd2);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/* Zero-byte id with clean session 0: CONNACK 0x02, then close [MQTT-3.1.3-8]. */
E2E_TEST(connect, empty_client_id_without_clean_session_is_rejected_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "", .clean = false};
    uint8_t ack[4];
    int fd = e2e_raw_connect(b, &o, ack);

    cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x00 && ack[3] == 0x02,
              "CONNACK %02x %02x %02x %02x, expected 20 02 00 02 [MQTT-3.1.3-8]", ack[0], ack[1],
              ack[2], ack[3]);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* MQTT 3.1 requires a client id of 1..23 characters: an empty one gets 0x02. */
E2E_TEST(connect, empty_client_id_is_rejected_v31)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V31, .id = "", .clean = true};
    uint8_t ack[4];
    int fd = e2e_raw_connect(b, &o, ack);

    cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x00 && ack[3] == 0x02,
              "CONNACK %02x %02x %02x %02x, expected 20 02 00 02", ack[0], ack[1], ack[2], ack[3]);
    e2e_raw_expect_closed_silently(fd);
    e2e_broker_stop(b);
}

/*
 * A second connection with the same client id makes the broker close the
 * first [MQTT-3.1.4-2]; the second one keeps working.
 */
static void takeover(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *first = e2e_client_connect(b, version, "twin", true);
    struct e2e_client *second;
    struct e2e_client *pub;

    cr_assert_eq(e2e_client_subscribe(first, "take/first", 1), 1);
    second = e2e_client_connect(b, version, "twin", true);
    cr_assert(e2e_client_wait_closed(first, E2E_WAIT_MS),
              "the first connection was not closed on takeover [MQTT-3.1.4-2]");
    e2e_client_abort(first);

    cr_assert_eq(e2e_client_subscribe(second, "take/second", 1), 1);
    pub = e2e_client_connect(b, version, "pub", true);
    e2e_client_publish(pub, "take/second", "x", 1, 1, false);
    e2e_client_expect(second, "take/second", "x", 1, false);
    /* A clean session 1 takeover does not inherit the first's subscription. */
    e2e_client_publish(pub, "take/first", "y", 1, 1, false);
    e2e_client_expect_no_message(second, E2E_QUIET_MS);
    cr_assert(!e2e_client_wait_closed(second, 0), "the new connection was closed");
    e2e_client_disconnect(second);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(connect, same_client_id_takes_over_and_closes_the_first_connection, takeover)

/*
 * Takeover with clean session 0 hands the session to the new connection:
 * session present 1 and the subscription still delivers [MQTT-3.1.4-2].
 */
E2E_TEST(connect, takeover_of_a_persistent_session_keeps_its_subscriptions_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client_opts o = {.version = E2E_V311, .id = "ptwin", .clean = false};
    struct e2e_client *first = e2e_client_start(b, &o);
    struct e2e_client *second;
    struct e2e_client *pub;

    cr_assert_eq(e2e_client_wait_connack(first, 0), 0);
    cr_assert_eq(e2e_client_subscribe(first, "ptake/t", 1), 1);
    second = e2e_client_start(b, &o);
    cr_assert_eq(e2e_client_wait_connack(second, 0), 1, "session present [MQTT-3.2.2-2]");
    cr_assert(e2e_client_wait_closed(first, E2E_WAIT_MS), "first not closed [MQTT-3.1.4-2]");
    e2e_client_abort(first);
    pub = e2e_client_connect(b, E2E_V311, "ppub", true);
    e2e_client_publish(pub, "ptake/t", "z", 1, 1, false);
    e2e_client_expect(second, "ptake/t", "z", 1, false);
    e2e_client_disconnect(second);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}

/* CONNACK is the first packet the server sends [MQTT-3.2.0-1]. */
E2E_TEST(connect, connack_is_the_first_packet_even_with_queued_messages_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client_opts o = {.version = E2E_V311, .id = "first", .clean = false};
    struct e2e_client *c = e2e_client_start(b, &o);
    struct e2e_client *pub;
    struct e2e_connect_opts ro = {.version = E2E_V311, .id = "first", .clean = false};
    uint8_t ack[4];
    int fd;

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    cr_assert_eq(e2e_client_subscribe(c, "first/t", 1), 1);
    e2e_client_disconnect(c);
    pub = e2e_client_connect(b, E2E_V311, "fpub", true);
    e2e_client_publish(pub, "first/t", "queued", 6, 1, false);
    fd = e2e_raw_connect(b, &ro, ack);
    cr_assert(ack[0] == 0x20 && ack[1] == 0x02 && ack[2] == 0x01 && ack[3] == 0x00,
              "CONNACK %02x %02x %02x %02x first, expected 20 02 01 00", ack[0], ack[1], ack[2],
              ack[3]);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
