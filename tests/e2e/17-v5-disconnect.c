/*
 * 17-v5-disconnect.c - e2e: server-initiated DISCONNECT with reason codes
 * for v5 clients: 0x8E session taken over, 0x8D keep alive timeout, 0x8B
 * server shutting down, 0x82 protocol error (a second CONNECT). Every
 * server DISCONNECT is checked to carry no Session Expiry Interval
 * [MQTT-3.14.2-2] and to be followed by the close (e2e_raw_expect_disconnect5).
 * (0x95 packet too large is in 13-v5-connect.c, 0x94 topic alias invalid
 * too; 0x97 quota exceeded is a SUBACK code in 15-v5-subscribe.c.)
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/e2e/harness.h"

#define ID_MAX 48

/*
 * A second connection with the same client id: the first gets DISCONNECT
 * 0x8E and is closed [MQTT-3.1.4-3]; the second works. With 4 shards the
 * connections may land on different shards.
 */
static void takeover(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    int first;
    int second;
    int i;

    for (i = 0; i < 3; i++) {
        first = e2e_raw_connect5_ok(b, "taken", true, 0, NULL);
        second = e2e_raw_connect5_ok(b, "taken", i % 2 == 0, 0, NULL);
        /* mosquitto 2.0.11 just closes the old connection. */
        e2e_raw_expect_disconnect5_or_mosquitto_close(first, MQTT_RC_SESSION_TAKEN_OVER);
        e2e_raw_ping5(second);
        e2e_raw_disconnect5(second);
    }
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_disconnect, takeover_sends_disconnect_0x8e, takeover)

/*
 * No packet within 1.5 x keepalive: DISCONNECT 0x8D, then close
 * [MQTT-3.1.2-22], not before the keepalive has elapsed.
 */
E2E_TEST(v5_disconnect, keep_alive_timeout_sends_disconnect_0x8d)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "ka", .clean = true, .keepalive_s = 1};
    struct e2e_v5pkt ack;
    struct e2e_v5pkt d;
    int64_t t0;
    int64_t dt;
    int fd;

    fd = e2e_raw_connect5(b, &o, &ack);
    t0 = e2e_now_ms();
    cr_assert_eq(ack.reason, 0);
    e2e_v5pkt_free(&ack);
    if (e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 closes without DISCONNECT on keepalive expiry. */
        cr_assert(e2e_raw_wait_closed(fd, (int)e2e_keepalive_1s_max_ms(), NULL));
        e2e_raw_close(fd);
        e2e_broker_stop(b);
        return;
    }
    cr_assert(e2e_raw_read5(fd, &d, (int)e2e_keepalive_1s_max_ms()),
              "nothing within %lld ms of a 1 s keepalive", (long long)e2e_keepalive_1s_max_ms());
    dt = e2e_now_ms() - t0;
    cr_assert_eq(d.type, E2E_DISCONNECT);
    cr_assert_eq(d.reason, MQTT_RC_KEEP_ALIVE_TIMEOUT, "reason 0x%02x", d.reason);
    cr_assert_null(e2e_v5pkt_prop(&d, MQTT_PROP_SESSION_EXPIRY_INTERVAL), "[MQTT-3.14.2-2]");
    e2e_v5pkt_free(&d);
    cr_assert_geq(dt, 1000, "dropped after %lld ms, before the keepalive", (long long)dt);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL));
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/*
 * SIGTERM: connected v5 clients get DISCONNECT 0x8B before the close; a
 * 3.1.1 client gets no DISCONNECT (3.1.1 has no server DISCONNECT).
 */
static void shutdown_0x8b(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    int fds[4];
    int v3;
    size_t junk = 0;
    int i;

    for (i = 0; i < 4; i++) {
        char id[ID_MAX];
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "sd%d-", i);
        e2e_id_on((uint32_t)i % n, n, prefix, id, sizeof(id));
        fds[i] = e2e_raw_connect5_ok(b, id, true, 0, NULL);
    }
    v3 = e2e_raw_connect_ok(b, E2E_V311, "sd-v3", true, 0);
    e2e_broker_stop(b);
    for (i = 0; i < 4; i++) {
        /* mosquitto 2.0.11 just closes. */
        e2e_raw_expect_disconnect5_or_mosquitto_close(fds[i], MQTT_RC_SERVER_SHUTTING_DOWN);
    }
    cr_assert(e2e_raw_wait_closed(v3, E2E_WAIT_MS, &junk));
    cr_assert_eq(junk, 0, "a 3.1.1 client got %zu bytes at shutdown", junk);
    e2e_raw_close(v3);
}
E2E_TEST_SHARDS(v5_disconnect, shutdown_sends_disconnect_0x8b, shutdown_0x8b)

/* A second CONNECT is a Protocol Error: DISCONNECT 0x82 and close [MQTT-3.1.0-2]. */
E2E_TEST(v5_disconnect, second_connect_gets_disconnect_0x82)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "twice", .clean = true};
    struct e2e_pkt p;
    int fd = e2e_raw_connect5_ok(b, "twice", true, 0, NULL);

    e2e_pkt_connect(&p, &o);
    e2e_raw_send_pkt(fd, &p);
    /* mosquitto 2.0.11 closes without a DISCONNECT. */
    e2e_raw_expect_disconnect5_or_mosquitto_close(fd, MQTT_RC_PROTOCOL_ERROR);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * A libmosquitto v5 client sees the takeover reason code too (what
 * applications get through on_disconnect_v5).
 */
E2E_TEST(v5_disconnect, libmosquitto_client_sees_the_takeover_reason)
{
    struct e2e_broker *b;
    struct e2e_client *a;
    struct e2e_client *c;
    int rc;

    e2e_ringmq_only("mosquitto 2.0.11 sends no DISCONNECT 0x8E");
    b = e2e_broker_start(NULL);
    a = e2e_client_connect5(b, "libtake", true, 0, NULL);
    c = e2e_client_connect5(b, "libtake", true, 0, NULL);
    rc = e2e_client_wait_disconnect_reason(a, E2E_WAIT_MS);
    cr_assert_eq(rc, MQTT_RC_SESSION_TAKEN_OVER, "on_disconnect_v5 reason %d", rc);
    e2e_client_abort(a);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}

/*
 * The server's DISCONNECT says why in a Reason String too, and leaves it
 * out when it would pass the client's Maximum Packet Size [MQTT-3.14.2-3].
 */
static void reason_string_case(uint32_t max_packet, bool want_string)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "why", .clean = true};
    struct e2e_props pr = {.len = 0};
    const struct e2e_prop *rs;
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("mosquitto 2.0.11 sends no DISCONNECT for a second CONNECT");
    e2e_props_u32(&pr, MQTT_PROP_MAXIMUM_PACKET_SIZE, max_packet);
    fd = e2e_raw_connect5_ok(b, "why", true, 0, &pr);
    e2e_pkt_connect(&p, &o);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_DISCONNECT, &m);
    cr_assert_eq(m.reason, MQTT_RC_PROTOCOL_ERROR);
    cr_assert_leq(m.len, max_packet, "DISCONNECT of %zu bytes over the client's maximum %u",
                  m.len, max_packet);
    rs = e2e_v5pkt_prop(&m, MQTT_PROP_REASON_STRING);
    if (want_string)
        cr_assert(rs != NULL && e2e_prop_streq(rs, "protocol error"),
                  "DISCONNECT without the Reason String \"protocol error\"");
    else
        cr_assert_null(rs, "Reason String sent past the client's Maximum Packet Size");
    e2e_v5pkt_free(&m);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

E2E_TEST(v5_disconnect, server_disconnect_carries_a_reason_string)
{
    reason_string_case(1024, true);
}

E2E_TEST(v5_disconnect, reason_string_is_dropped_past_the_client_maximum_packet_size)
{
    /* 18: the CONNACK (16 bytes with ringmq's defaults) fits, DISCONNECT + string does not. */
    reason_string_case(18, false);
}

/*
 * A client that has more on the wire when the server decides to close still
 * reads the DISCONNECT saying why, and then an orderly end of stream: closing
 * over unread input would reset the connection instead (paho's v5
 * test_flow_control2 saw a broken pipe instead of DISCONNECT 0x93). The
 * broker reads and drops the rest after its DISCONNECT and FIN, until the
 * client closes too.
 */
/* More than the broker reads before it decides (64 x 16 KiB buffers) and the sockets hold. */
#define FLOOD_BYTES (16 * 1024 * 1024)

E2E_TEST(v5_disconnect, a_client_still_writing_reads_its_disconnect_then_an_orderly_close)
{
    struct e2e_broker *b;
    struct e2e_connect_opts o = {.version = E2E_V5, .id = "writer", .clean = true};
    struct pollfd pfd;
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    uint8_t *flood;
    uint8_t byte;
    ssize_t r;
    int fd;

    e2e_ringmq_only("mosquitto 2.0.11 sends no DISCONNECT for a second CONNECT");
    b = e2e_broker_start(NULL);
    fd = e2e_raw_connect5_ok(b, "writer", true, 0, NULL);
    /* A second CONNECT (a Protocol Error: DISCONNECT 0x82), and PINGREQs behind it. */
    e2e_pkt_connect(&p, &o);
    flood = malloc(p.len + FLOOD_BYTES);
    cr_assert_not_null(flood);
    memcpy(flood, p.buf, p.len);
    for (size_t i = 0; i < FLOOD_BYTES; i += 2) {
        flood[p.len + i] = 0xC0;
        flood[p.len + i + 1] = 0x00;
    }
    cr_assert(e2e_raw_send(fd, flood, p.len + FLOOD_BYTES), "the broker reset the connection");
    e2e_pkt_free(&p);
    free(flood);
    cr_assert(e2e_raw_read5(fd, &m, E2E_WAIT_MS), "the DISCONNECT was lost");
    cr_assert_eq(m.type, E2E_DISCONNECT);
    cr_assert_eq(m.reason, MQTT_RC_PROTOCOL_ERROR);
    e2e_v5pkt_free(&m);
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    pfd = (struct pollfd){.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, E2E_WAIT_MS), 1, "no end of stream within %d ms", E2E_WAIT_MS);
    r = recv(fd, &byte, 1, 0);
    cr_assert_eq(r, 0, "want an orderly close, got %s", r < 0 ? strerror(errno) : "data");
    e2e_raw_close(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * The same for a CONNECT refused on its session's home shard after a
 * handoff (most connections with 4 shards): the CONNACK 0x8C and an orderly
 * end of stream, though the client sends more right behind the CONNECT.
 */
#define REFUSED_ROUNDS 8
#define REFUSED_FLOOD_BYTES (4 * 1024 * 1024)

E2E_TEST(v5_disconnect, a_refused_connect_is_heard_after_a_handoff_too)
{
    struct e2e_broker *b;
    struct e2e_props pr = {.len = 0};
    struct e2e_connect_opts o = {.version = E2E_V5, .clean = true, .props = &pr};
    char id[32];
    uint8_t *flood;
    int rounds;

    e2e_ringmq_only("the shard count is a ringmq setting");
    b = e2e_broker_start_shards(4, NULL);
    e2e_props_str(&pr, MQTT_PROP_AUTHENTICATION_METHOD, "no-such-method");
    for (rounds = 0; rounds < REFUSED_ROUNDS; rounds++) {
        struct e2e_v5pkt m;
        struct pollfd pfd;
        struct e2e_pkt p;
        uint8_t byte;
        ssize_t r;
        int fd = e2e_raw_open(b);

        snprintf(id, sizeof(id), "refused-%d", rounds);
        o.id = id;
        e2e_pkt_connect(&p, &o);
        flood = malloc(p.len + REFUSED_FLOOD_BYTES);
        cr_assert_not_null(flood);
        memcpy(flood, p.buf, p.len);
        for (size_t i = 0; i < REFUSED_FLOOD_BYTES; i += 2) {
            flood[p.len + i] = 0xC0; /* PINGREQ */
            flood[p.len + i + 1] = 0x00;
        }
        cr_assert(e2e_raw_send(fd, flood, p.len + REFUSED_FLOOD_BYTES),
                  "round %d: the broker reset the connection", rounds);
        e2e_pkt_free(&p);
        free(flood);
        cr_assert(e2e_raw_read5(fd, &m, E2E_WAIT_MS), "round %d: the CONNACK was lost", rounds);
        cr_assert_eq(m.type, E2E_CONNACK);
        cr_assert_eq(m.reason, MQTT_RC_BAD_AUTHENTICATION_METHOD);
        e2e_v5pkt_free(&m);
        cr_assert_eq(shutdown(fd, SHUT_WR), 0);
        pfd = (struct pollfd){.fd = fd, .events = POLLIN};
        cr_assert_eq(poll(&pfd, 1, E2E_WAIT_MS), 1, "round %d: no end of stream", rounds);
        r = recv(fd, &byte, 1, 0);
        cr_assert_eq(r, 0, "round %d: want an orderly close, got %s", rounds,
                     r < 0 ? strerror(errno) : "data");
        e2e_raw_close(fd);
    }
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}
