/*
 * 07-keepalive.c - e2e: keepalive enforcement, PINGREQ/PINGRESP, and the
 * connect timeout for connections that never send CONNECT.
 */
#include <string.h>

#include "tests/e2e/harness.h"

/*
 * A client with keepalive 1 s that goes silent after CONNACK is disconnected
 * after 1.5 x keepalive [MQTT-3.1.2-24]: not before 1 s, and within 3 s.
 */
static void silent_client(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_connect_ok(b, version, "silent", true, 1);
    int64_t t0 = e2e_now_ms();
    int64_t max_ms = e2e_keepalive_1s_max_ms();
    size_t junk = 0;
    bool closed = e2e_raw_wait_closed(fd, (int)max_ms + 1000, &junk);
    int64_t dt = e2e_now_ms() - t0;

    cr_assert(closed, "not disconnected within %lld ms of a 1 s keepalive [MQTT-3.1.2-24]",
              (long long)max_ms + 1000);
    cr_assert_eq(junk, 0, "broker sent %zu bytes to an idle client", junk);
    cr_assert(dt >= 1000, "disconnected after %lld ms, before the keepalive elapsed",
              (long long)dt);
    cr_assert(dt <= max_ms, "disconnected after %lld ms, expected about 1500 [MQTT-3.1.2-24]",
              (long long)dt);
    e2e_raw_close(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(keepalive, silent_client_is_disconnected_after_one_and_a_half_keepalives,
              silent_client)

/*
 * PINGREQ gets PINGRESP [MQTT-3.12.4-1], and pinging every 0.5 s keeps a
 * 1 s keepalive connection open for 2.5 s.
 */
static void pings_keep_alive(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_connect_ok(b, version, "pinger", true, 1);
    int i;

    for (i = 0; i < 5; i++) {
        e2e_sleep_ms(500);
        cr_assert(e2e_raw_send(fd, "\xc0\x00", 2), "connection closed after %d pings", i);
        e2e_raw_expect(fd, "\xd0\x00", 2, 1000);
    }
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(keepalive, pingreq_gets_pingresp_and_keeps_the_connection, pings_keep_alive)

/* Any control packet counts as activity, not only PINGREQ [MQTT-3.1.2-23]. */
E2E_TEST(keepalive, publishes_count_as_keepalive_activity_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_connect_ok(b, E2E_V311, "talker", true, 1);
    struct e2e_pkt p;
    int i;

    for (i = 0; i < 5; i++) {
        e2e_sleep_ms(500);
        e2e_pkt_publish(&p, "ka/t", 1, false, false, (uint16_t)(i + 1), "x", 1);
        cr_assert(e2e_raw_send(fd, p.buf, p.len), "connection closed after %d publishes", i);
        e2e_pkt_free(&p);
        {
            uint8_t want[4] = {0x40, 0x02, 0x00, (uint8_t)(i + 1)};

            e2e_raw_expect(fd, want, 4, 1000);
        }
    }
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/* A connection that sends nothing is closed after connect_timeout_ms. */
E2E_TEST(keepalive, connection_without_connect_is_closed_after_connect_timeout)
{
    struct e2e_broker *b;
    int64_t t0;
    int64_t dt;
    int fd;
    size_t junk = 0;

    e2e_ringmq_only("connect_timeout_ms is a ringmq limit key");
    b = e2e_broker_start("[limits]\nconnect_timeout_ms = 500\n");
    fd = e2e_raw_open(b);
    t0 = e2e_now_ms();
    cr_assert(e2e_raw_wait_closed(fd, 3000, &junk), "not closed within 3 s");
    dt = e2e_now_ms() - t0;
    cr_assert_eq(junk, 0);
    cr_assert(dt >= 400 && dt <= 2000, "closed after %lld ms, expected about 500", (long long)dt);
    e2e_raw_close(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* A partial CONNECT does not extend the connect timeout (slowloris). */
E2E_TEST(keepalive, partial_connect_is_closed_after_connect_timeout)
{
    struct e2e_broker *b;
    int64_t t0;
    int64_t dt;
    int fd;

    e2e_ringmq_only("connect_timeout_ms is a ringmq limit key");
    b = e2e_broker_start("[limits]\nconnect_timeout_ms = 500\n");
    fd = e2e_raw_open(b);
    t0 = e2e_now_ms();
    /* A CONNECT header announcing 20 body bytes, then a trickle. */
    cr_assert(e2e_raw_send(fd, "\x10\x14\x00", 3));
    e2e_sleep_ms(200);
    e2e_raw_send(fd, "\x04", 1);
    e2e_sleep_ms(200);
    e2e_raw_send(fd, "M", 1);
    cr_assert(e2e_raw_wait_closed(fd, 3000, NULL), "not closed within 3 s");
    dt = e2e_now_ms() - t0;
    cr_assert(dt >= 400 && dt <= 2000, "closed after %lld ms, expected about 500", (long long)dt);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}
