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
 * The activity tests: a packet every KA_GAP_MS on a connection with a 1 s
 * keep alive, KA_ROUNDS times (2.5 s, past 1.5 x keep alive), so the
 * connection lives only if the packets count as activity.
 */
#define KA_MS 1000
#define KA_GAP_MS 500
#define KA_ROUNDS 5
/* Connections tried when the test thread itself is too late (see activity_attempt()). */
#define KA_ATTEMPTS_MAX 3

/*
 * Send round @i's packet on @fd (PINGREQ, or with @publish a QoS 1 PUBLISH
 * with packet id @i + 1) and read its answer (PINGRESP [MQTT-3.12.4-1] or
 * PUBACK). False if none came: the connection was closed.
 */
static bool activity_round(int fd, bool publish, int i)
{
    uint8_t puback[4] = {0x40, 0x02, 0x00, (uint8_t)(i + 1)};
    const uint8_t *want = publish ? puback : (const uint8_t *)"\xd0\x00";
    size_t n = publish ? sizeof(puback) : 2;
    uint8_t got[4];
    struct e2e_pkt p;
    bool sent;

    if (publish) {
        e2e_pkt_publish(&p, "ka/t", 1, false, false, (uint16_t)(i + 1), "x", 1);
        sent = e2e_raw_send(fd, p.buf, p.len);
        e2e_pkt_free(&p);
    } else {
        sent = e2e_raw_send(fd, "\xc0\x00", 2);
    }
    if (!sent || e2e_raw_recv(fd, got, n, E2E_WAIT_MS) != n) {
        return false;
    }
    cr_assert(memcmp(got, want, n) == 0, "round %d: answer %02x %02x, expected %02x %02x", i,
              got[0], got[1], want[0], want[1]);
    return true;
}

/*
 * One connection through KA_ROUNDS rounds. The pause between packets is
 * the behaviour under test, so it is a sleep; but on a loaded machine the
 * test thread may wake late, and the broker may then rightly close. So
 * each gap is measured from before the previous packet was sent (the
 * broker's silence can only be shorter): a close after gaps all under the
 * keep alive fails the test; after a longer one the attempt is void, and
 * this returns false.
 */
static bool activity_attempt(struct e2e_broker *b, int version, bool publish)
{
    int64_t last = e2e_now_ms();
    int fd = e2e_raw_connect_ok(b, version, publish ? "talker" : "pinger", true, 1);
    int64_t gap_max = 0;
    int64_t now;
    bool open = true;
    int i;

    for (i = 0; i < KA_ROUNDS && open; i++) {
        e2e_sleep_until_ms(last + KA_GAP_MS);
        now = e2e_now_ms();
        if (now - last > gap_max) {
            gap_max = now - last;
        }
        last = now;
        open = activity_round(fd, publish, i);
    }
    e2e_raw_close(fd);
    cr_assert(open || gap_max >= KA_MS,
              "no answer (closed) in round %d although packets came at most %lld ms apart, "
              "with a 1 s keep alive [MQTT-3.1.2-24]",
              i - 1, (long long)gap_max);
    return open;
}

/* KA_ROUNDS rounds of activity on one connection, trying again if an attempt was void. */
static void activity_keeps_alive(int version, bool publish)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int attempt;

    for (attempt = 0; attempt < KA_ATTEMPTS_MAX; attempt++) {
        if (activity_attempt(b, version, publish)) {
            break;
        }
    }
    cr_assert_lt(attempt, KA_ATTEMPTS_MAX,
                 "all %d attempts void: each time the test thread ran a keep alive late",
                 KA_ATTEMPTS_MAX);
    e2e_broker_stop(b);
}

/*
 * PINGREQ gets PINGRESP [MQTT-3.12.4-1], and pinging every 0.5 s keeps a
 * 1 s keepalive connection open for 2.5 s.
 */
static void pings_keep_alive(int version)
{
    activity_keeps_alive(version, false);
}
E2E_TEST_BOTH(keepalive, pingreq_gets_pingresp_and_keeps_the_connection, pings_keep_alive)

/* Any control packet counts as activity, not only PINGREQ [MQTT-3.1.2-23]. */
E2E_TEST(keepalive, publishes_count_as_keepalive_activity_v311)
{
    activity_keeps_alive(E2E_V311, true);
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

/* The pause between the bytes of a trickled CONNECT. */
#define TRICKLE_GAP_MS 200

/*
 * A partial CONNECT does not extend the connect timeout (slowloris): a
 * CONNECT sent one byte every TRICKLE_GAP_MS, never completed, is closed
 * while the trickle goes on (it lasts 3.6 s: a timer that each byte reset
 * would never fire), and not before the timeout. The pause between bytes
 * is the behaviour under test; it ends early when the broker closes, so the
 * close is seen when it comes, and a test thread running late only makes
 * the trickle slower.
 */
E2E_TEST(keepalive, partial_connect_is_closed_after_connect_timeout)
{
    struct e2e_connect_opts o = {.version = E2E_V311, .id = "trickler", .clean = true};
    struct e2e_broker *b;
    struct e2e_pkt p;
    bool closed = false;
    int64_t t0;
    int64_t dt;
    size_t i;
    int fd;

    e2e_ringmq_only("connect_timeout_ms is a ringmq limit key");
    b = e2e_broker_start("[limits]\nconnect_timeout_ms = 500\n");
    e2e_pkt_connect(&p, &o);
    t0 = e2e_now_ms(); /* the broker's timer starts after this */
    fd = e2e_raw_open(b);
    /* The fixed header and a first body byte, then the rest but its last byte. */
    cr_assert(e2e_raw_send(fd, p.buf, 3));
    for (i = 3; i + 1 < p.len && !closed; i++) {
        closed = e2e_raw_wait_closed(fd, TRICKLE_GAP_MS, NULL);
        if (!closed) {
            e2e_raw_send(fd, p.buf + i, 1);
        }
    }
    dt = e2e_now_ms() - t0;
    e2e_pkt_free(&p);
    cr_assert(closed,
              "a CONNECT trickled for %lld ms was not closed: each byte extends the "
              "500 ms connect timeout",
              (long long)dt);
    cr_assert_geq(dt, 400, "closed after %lld ms, before the 500 ms timeout", (long long)dt);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}
