/*
 * 09-unsubscribe.c - e2e: UNSUBSCRIBE: UNSUBACK, delivery stops, exact
 * filter match, other subscriptions unaffected.
 */
#include <string.h>

#include "tests/e2e/harness.h"

/*
 * UNSUBACK arrives [MQTT-3.10.4-4] and the filter stops delivering
 * [MQTT-3.10.4-2]; the client's other subscription is unaffected.
 */
static void stops_delivery(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);

    cr_assert_eq(e2e_client_subscribe(sub, "un/a", 1), 1);
    cr_assert_eq(e2e_client_subscribe(sub, "un/b", 1), 1);
    e2e_client_publish(pub, "un/a", "before", 6, 1, false);
    e2e_client_expect(sub, "un/a", "before", 1, false);
    e2e_client_unsubscribe(sub, "un/a");
    e2e_client_publish(pub, "un/a", "after", 5, 1, false);
    e2e_client_publish(pub, "un/b", "marker", 6, 1, false);
    e2e_client_expect(sub, "un/b", "marker", 1, false);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(unsubscribe, unsuback_arrives_and_delivery_stops, stops_delivery)

/* Unsubscribing a filter that was never subscribed still gets UNSUBACK [MQTT-3.10.4-5]. */
static void unknown_filter(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    int fd = e2e_raw_connect_ok(b, version, "rawun", true, 0);
    const char *filters[] = {"never/subscribed"};
    struct e2e_pkt p;

    e2e_pkt_unsubscribe(&p, 0x4242, 1, filters);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\xb0\x02\x42\x42", 4, E2E_WAIT_MS);
    /* And the connection stays up. */
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(unsubscribe, unsubscribe_of_unknown_filter_gets_unsuback, unknown_filter)

/*
 * Filters are compared character by character [MQTT-3.10.4-1]: unsubscribing
 * "us/a" does not remove "us/+", and UNSUBSCRIBE with several filters
 * removes each of them, with one UNSUBACK carrying the packet id.
 */
static void exact_match(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    int fd = e2e_raw_connect_ok(b, version, "rawun", true, 0);
    const char *subs[] = {"us/+", "ut/x", "uu/#"};
    const uint8_t qos[] = {0, 0, 0};
    const char *unsub1[] = {"us/a"};
    const char *unsub2[] = {"us/+", "uu/#", "nothing"};
    struct e2e_pkt p;

    e2e_pkt_subscribe(&p, 1, 3, subs, qos);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\x90\x05\x00\x01\x00\x00\x00", 7, E2E_WAIT_MS);

    e2e_pkt_unsubscribe(&p, 2, 1, unsub1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\xb0\x02\x00\x02", 4, E2E_WAIT_MS);
    e2e_client_publish(pub, "us/a", "still", 5, 0, false);
    e2e_raw_expect(fd,
                   "\x30\x0b\x00\x04"
                   "us/astill",
                   13, E2E_WAIT_MS);

    e2e_pkt_unsubscribe(&p, 3, 3, unsub2);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect(fd, "\xb0\x02\x00\x03", 4, E2E_WAIT_MS);
    e2e_client_publish(pub, "us/a", "gone", 4, 0, false);
    e2e_client_publish(pub, "uu/z", "gone", 4, 0, false);
    e2e_client_publish(pub, "ut/x", "kept", 4, 0, false);
    /* The first packet back is the one for the remaining subscription. */
    e2e_raw_expect(fd,
                   "\x30\x0a\x00\x04"
                   "ut/xkept",
                   12, E2E_WAIT_MS);
    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2));
    e2e_raw_expect(fd, "\xd0\x00", 2, E2E_WAIT_MS);
    e2e_raw_close(fd);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(unsubscribe, unsubscribe_matches_filters_exactly_and_handles_several, exact_match)

/* An unsubscribed persistent session stays unsubscribed after reconnect. */
E2E_TEST(unsubscribe, unsubscribe_persists_in_the_session_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client_opts o = {.version = E2E_V311, .id = "pers", .clean = false};
    struct e2e_client *c = e2e_client_start(b, &o);
    struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "pub", true);

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    cr_assert_eq(e2e_client_subscribe(c, "up/a", 1), 1);
    cr_assert_eq(e2e_client_subscribe(c, "up/b", 1), 1);
    e2e_client_unsubscribe(c, "up/a");
    e2e_client_disconnect(c);
    e2e_client_publish(pub, "up/a", "no", 2, 1, false);
    e2e_client_publish(pub, "up/b", "yes", 3, 1, false);
    c = e2e_client_start(b, &o);
    cr_assert_eq(e2e_client_wait_connack(c, 0), 1);
    e2e_client_expect(c, "up/b", "yes", 1, false);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
