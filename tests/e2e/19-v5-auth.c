/*
 * 19-v5-auth.c - e2e: MQTT 5.0 enhanced authentication (section 4.12) with
 * ringmq's test-only method "ringmq-test" ([auth] test_method = on):
 *   CONNECT(method, "hello") -> AUTH 0x18 "challenge" -> AUTH 0x18
 *   "response" -> CONNACK 0x00 (method echoed);
 * re-authentication AUTH 0x19 "hello" -> AUTH 0x18 "challenge" -> AUTH 0x18
 * "response" -> AUTH 0x00. Wrong response: CONNACK 0x87; unknown method (or
 * the method switched off): CONNACK 0x8C; AUTH without a method where one
 * is required: DISCONNECT 0x82; a client stalling mid-exchange is closed
 * within connect_timeout_ms.
 *
 * All ringmq-only (mosquitto has no such method), raw sockets.
 */
#include <string.h>

#include "tests/e2e/harness.h"

#define METHOD "ringmq-test"
#define AUTH_ON "[auth]\ntest_method = on\n"

static struct e2e_broker *start_auth(const char *extra)
{
    e2e_ringmq_only("the ringmq-test authentication method is ringmq's");
    return e2e_broker_start(extra != NULL ? extra : AUTH_ON);
}

/* Send CONNECT with @method (NULL: none) and @data (NULL: none). */
static int send_connect(struct e2e_broker *b, const char *id, const char *method, const char *data)
{
    struct e2e_props pr = {.len = 0};
    struct e2e_connect_opts o = {.version = E2E_V5, .id = id, .clean = true, .props = &pr};
    struct e2e_pkt p;
    int fd = e2e_raw_open(b);

    if (method != NULL) {
        e2e_props_str(&pr, MQTT_PROP_AUTHENTICATION_METHOD, method);
    }
    if (data != NULL) {
        e2e_props_bin(&pr, MQTT_PROP_AUTHENTICATION_DATA, data, strlen(data));
    }
    e2e_pkt_connect(&p, &o);
    e2e_raw_send_pkt(fd, &p);
    return fd;
}

static void send_auth(int fd, uint8_t reason, const char *method, const char *data)
{
    struct e2e_props pr = {.len = 0};
    struct e2e_pkt p;

    if (method != NULL) {
        e2e_props_str(&pr, MQTT_PROP_AUTHENTICATION_METHOD, method);
    }
    if (data != NULL) {
        e2e_props_bin(&pr, MQTT_PROP_AUTHENTICATION_DATA, data, strlen(data));
    }
    e2e_pkt_auth(&p, reason, &pr);
    e2e_raw_send_pkt(fd, &p);
}

/*
 * Expect AUTH @reason carrying the method [MQTT-4.12.0-5] and, if @data is
 * non-NULL, that Authentication Data.
 */
static void expect_auth(int fd, uint8_t reason, const char *data)
{
    struct e2e_v5pkt m;

    e2e_raw_expect5(fd, E2E_AUTH, &m);
    cr_assert_eq(m.reason, reason, "AUTH reason 0x%02x, expected 0x%02x", m.reason, reason);
    cr_assert(e2e_prop_streq(e2e_v5pkt_prop(&m, MQTT_PROP_AUTHENTICATION_METHOD), METHOD),
              "AUTH without the method [MQTT-4.12.0-5]");
    if (data != NULL) {
        cr_assert(e2e_prop_streq(e2e_v5pkt_prop(&m, MQTT_PROP_AUTHENTICATION_DATA), data),
                  "AUTH data is not \"%s\"", data);
    }
    e2e_v5pkt_free(&m);
}

/* Expect CONNACK @reason; for success, with the method echoed [MQTT-4.12.0-5]. */
static void expect_connack(int fd, uint8_t reason)
{
    struct e2e_v5pkt m;

    e2e_raw_expect5(fd, E2E_CONNACK, &m);
    cr_assert_eq(m.reason, reason, "CONNACK reason 0x%02x, expected 0x%02x", m.reason, reason);
    if (reason == 0) {
        cr_assert(e2e_prop_streq(e2e_v5pkt_prop(&m, MQTT_PROP_AUTHENTICATION_METHOD), METHOD),
                  "successful CONNACK without the method [MQTT-4.12.0-5]");
    }
    e2e_v5pkt_free(&m);
}

/* The full exchange up to CONNACK 0x00. */
static int authenticated(struct e2e_broker *b, const char *id)
{
    int fd = send_connect(b, id, METHOD, "hello");

    expect_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, "challenge");
    send_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, METHOD, "response");
    expect_connack(fd, 0);
    return fd;
}

/*
 * CONNECT with the method, AUTH 0x18 challenge [MQTT-4.12.0-2], AUTH 0x18
 * response [MQTT-4.12.0-3], CONNACK 0x00 echoing the method [MQTT-4.12.0-5];
 * the connection then works.
 */
E2E_TEST(v5_auth, continue_exchange_then_connack_success)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = authenticated(b, "auth-ok");

    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "auth/t", 1, NULL), 1);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* A wrong response: CONNACK 0x87 and close [MQTT-4.12.0-4]. */
E2E_TEST(v5_auth, wrong_response_gets_connack_0x87)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = send_connect(b, "auth-bad", METHOD, "hello");

    expect_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, "challenge");
    send_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, METHOD, "wrong");
    expect_connack(fd, MQTT_RC_NOT_AUTHORIZED);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "not closed [MQTT-3.2.2-7]");
    e2e_raw_close(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * Re-authentication: AUTH 0x19 with the same method [MQTT-4.12.1-1] ->
 * AUTH 0x18 challenge -> AUTH 0x18 response -> AUTH 0x00; the connection
 * stays up, and can re-authenticate again.
 */
E2E_TEST(v5_auth, reauthentication_succeeds)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = authenticated(b, "auth-re");
    int round;

    for (round = 0; round < 2; round++) {
        send_auth(fd, MQTT_RC_REAUTHENTICATE, METHOD, "hello");
        expect_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, "challenge");
        send_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, METHOD, "response");
        expect_auth(fd, MQTT_RC_SUCCESS, NULL);
        e2e_raw_ping5(fd);
    }
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* A failed re-authentication ends the connection [MQTT-4.12.1-2]. */
E2E_TEST(v5_auth, failed_reauthentication_closes_the_connection)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = authenticated(b, "auth-refail");
    struct e2e_v5pkt m;

    send_auth(fd, MQTT_RC_REAUTHENTICATE, METHOD, "hello");
    expect_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, "challenge");
    send_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, METHOD, "wrong");
    e2e_raw_expect5(fd, E2E_DISCONNECT, &m);
    cr_assert_geq(m.reason, 0x80, "DISCONNECT reason 0x%02x after a failed re-auth", m.reason);
    e2e_v5pkt_free(&m);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "[MQTT-4.12.1-2]");
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/* An unknown method: CONNACK 0x8C and close [MQTT-4.12.0-1]. */
E2E_TEST(v5_auth, unknown_method_gets_connack_0x8c)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = send_connect(b, "auth-unknown", "SCRAM-SHA-1", "n,,n=user,r=abc");

    expect_connack(fd, MQTT_RC_BAD_AUTHENTICATION_METHOD);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL));
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/* With test_method off, "ringmq-test" is unknown too: CONNACK 0x8C. */
E2E_TEST(v5_auth, test_method_off_gets_connack_0x8c)
{
    struct e2e_broker *b = start_auth("[auth]\ntest_method = off\n");
    int fd = send_connect(b, "auth-off", METHOD, "hello");

    expect_connack(fd, MQTT_RC_BAD_AUTHENTICATION_METHOD);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL));
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}

/*
 * AUTH from a client that connected without a method is a Protocol Error
 * [MQTT-4.12.0-7]: DISCONNECT 0x82.
 */
E2E_TEST(v5_auth, auth_without_a_connect_method_is_a_protocol_error)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = e2e_raw_connect5_ok(b, "auth-none", true, 0, NULL);

    send_auth(fd, MQTT_RC_REAUTHENTICATE, METHOD, "hello");
    e2e_raw_expect_disconnect5(fd, MQTT_RC_PROTOCOL_ERROR);
    e2e_broker_stop(b);
}

/*
 * Re-authentication without the Authentication Method the connection used
 * [MQTT-4.12.1-1] is a Protocol Error: DISCONNECT 0x82.
 */
E2E_TEST(v5_auth, reauthentication_without_the_method_is_a_protocol_error)
{
    struct e2e_broker *b = start_auth(NULL);
    int fd = authenticated(b, "auth-nomethod");

    send_auth(fd, MQTT_RC_REAUTHENTICATE, NULL, "hello");
    e2e_raw_expect_disconnect5(fd, MQTT_RC_PROTOCOL_ERROR);
    e2e_broker_stop(b);
}

/*
 * A client that never answers the challenge is closed within the connect
 * timeout (1 s here), never left hanging; it gets no successful CONNACK and
 * no DISCONNECT before a CONNACK [MQTT-3.14.0-1].
 */
E2E_TEST(v5_auth, client_stalling_mid_exchange_is_closed_within_the_connect_timeout)
{
    struct e2e_broker *b = start_auth(AUTH_ON "\n[limits]\nconnect_timeout_ms = 1000\n");
    int fd = send_connect(b, "auth-stall", METHOD, "hello");
    struct e2e_v5pkt m;
    int64_t t0;
    int64_t dt;

    expect_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, "challenge");
    t0 = e2e_now_ms();
    if (e2e_raw_read5(fd, &m, 3000)) {
        cr_assert(m.type == E2E_CONNACK && m.reason >= 0x80,
                  "stalled exchange got packet type %u reason 0x%02x", m.type, m.reason);
        e2e_v5pkt_free(&m);
    }
    cr_assert(e2e_raw_wait_closed(fd, 3000, NULL), "stalled client still connected after 4 s");
    dt = e2e_now_ms() - t0;
    cr_assert_leq(dt, 3000, "closed after %lld ms", (long long)dt);
    e2e_raw_close(fd);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/* The connect timeout of the stalled re-authentication (as configured below), and the stall. */
#define RESTALL_TIMEOUT_MS 500
#define RESTALL_STALL_MS 800

/*
 * A client that starts a re-authentication and never answers the challenge
 * keeps its connection only until connect_timeout_ms: a packet within the
 * time is served, its next packet after it gets DISCONNECT 0x87 (a silent
 * client meets keep alive instead). The times are measured so that a test
 * thread running late cannot fail the broker: a ping sent that late may
 * meet the DISCONNECT already, one answered well within the time may not.
 */
E2E_TEST(v5_auth, stalled_reauthentication_ends_after_the_connect_timeout)
{
    struct e2e_broker *b = start_auth(AUTH_ON "\n[limits]\nconnect_timeout_ms = 500\n");
    int fd = authenticated(b, "auth-restall");
    struct e2e_v5pkt m;
    int64_t t_auth;
    int64_t t_challenge;
    int64_t dt;

    t_auth = e2e_now_ms(); /* the broker's timeout starts after this... */
    send_auth(fd, MQTT_RC_REAUTHENTICATE, METHOD, "hello");
    expect_auth(fd, MQTT_RC_CONTINUE_AUTHENTICATION, "challenge");
    t_challenge = e2e_now_ms(); /* ...and before this */
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2), "send PINGREQ");
    cr_assert(e2e_raw_read5(fd, &m, E2E_WAIT_MS), "no answer to PINGREQ within %d ms", E2E_WAIT_MS);
    dt = e2e_now_ms() - t_auth;
    if (m.type == E2E_DISCONNECT && dt >= RESTALL_TIMEOUT_MS - 100) {
        /* This ping came past the timeout already (100 ms: the clocks' whole milliseconds). */
        cr_assert_eq(m.reason, MQTT_RC_NOT_AUTHORIZED, "DISCONNECT reason 0x%02x", m.reason);
        e2e_v5pkt_free(&m);
        cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "not closed after DISCONNECT");
        e2e_raw_close(fd);
        goto out;
    }
    cr_assert_eq(m.type, E2E_PINGRESP,
                 "packet type %u (reason 0x%02x) %lld ms into a re-authentication that may "
                 "stall for %d ms",
                 m.type, m.reason, (long long)dt, RESTALL_TIMEOUT_MS);
    e2e_v5pkt_free(&m);
    /* The stall is the behaviour under test: the broker acts on the next packet, not on time. */
    e2e_sleep_until_ms(t_challenge + RESTALL_STALL_MS);
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2), "send PINGREQ");
    e2e_raw_expect_disconnect5(fd, MQTT_RC_NOT_AUTHORIZED);
out:
    e2e_broker_stop(b);
}
