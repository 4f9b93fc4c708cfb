/*
 * 15-v5-subscribe.c - e2e: MQTT 5.0 SUBSCRIBE/UNSUBSCRIBE: the No Local,
 * Retain As Published and Retain Handling options, per-filter SUBACK reason
 * codes, UNSUBACK 0x11, quota exceeded (0x97).
 *
 * Multi-shard-relevant cases run at shards = 1 and 4.
 */
#include <stdio.h>
#include <string.h>

#include "tests/e2e/harness.h"

#define ID_MAX 48

/*
 * No Local: a client's own messages are not sent back to it through a
 * subscription with No Local [MQTT-3.8.3-3], but still through one without
 * and to everyone else.
 */
static void no_local(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char aid[ID_MAX];
    char bid[ID_MAX];
    struct e2e_client *a;
    struct e2e_client *o;

    e2e_id_on(0, n, "nla-", aid, sizeof(aid));
    e2e_id_on(n - 1, n, "nlb-", bid, sizeof(bid));
    a = e2e_client_connect5(b, aid, true, 0, NULL);
    o = e2e_client_connect5(b, bid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(a, "nl/t", 1 | MQTT_SUB_OPT_NO_LOCAL, NULL), 1);
    cr_assert_eq(e2e_client_subscribe5(a, "nl/all", 1, NULL), 1);
    cr_assert_eq(e2e_client_subscribe5(o, "nl/#", 1, NULL), 1);
    e2e_client_publish5(a, "nl/t", "own", 3, 1, false, NULL);
    e2e_client_publish5(a, "nl/all", "all", 3, 1, false, NULL);
    e2e_client_publish5(o, "nl/t", "other", 5, 1, false, NULL);
    /* Order per publisher is kept: a sees "all", then "other". */
    e2e_client_expect(a, "nl/all", "all", 1, false);
    e2e_client_expect(a, "nl/t", "other", 1, false);
    e2e_client_expect_no_message(a, E2E_QUIET_MS);
    e2e_client_expect(o, "nl/t", "own", 1, false);
    e2e_client_expect(o, "nl/all", "all", 1, false);
    e2e_client_expect(o, "nl/t", "other", 1, false);
    e2e_client_disconnect(a);
    e2e_client_disconnect(o);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_subscribe, no_local_suppresses_the_clients_own_messages, no_local)

/*
 * Retain As Published: with it the RETAIN flag is forwarded as published
 * [MQTT-3.3.1-13]; without it, cleared [MQTT-3.3.1-12]. Retained messages
 * sent because of a new subscription have RETAIN 1 either way [3.3.1.3].
 */
static void retain_as_published(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char xid[ID_MAX];
    char yid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *x;
    struct e2e_client *y;
    struct e2e_client *pub;

    e2e_id_on(n - 1, n, "rapx-", xid, sizeof(xid));
    e2e_id_on(1 % n, n, "rapy-", yid, sizeof(yid));
    e2e_id_on(0, n, "rapp-", pid, sizeof(pid));
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "rap/old", "old", 3, 1, true, NULL);
    x = e2e_client_connect5(b, xid, true, 0, NULL);
    y = e2e_client_connect5(b, yid, true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(x, "rap/#", 1 | MQTT_SUB_OPT_RETAIN_AS_PUBLISHED, NULL), 1);
    cr_assert_eq(e2e_client_subscribe5(y, "rap/#", 1, NULL), 1);
    e2e_client_expect(x, "rap/old", "old", 1, true);
    e2e_client_expect(y, "rap/old", "old", 1, true);
    e2e_client_publish5(pub, "rap/t", "r1", 2, 1, true, NULL);
    e2e_client_publish5(pub, "rap/t", "r0", 2, 1, false, NULL);
    e2e_client_expect(x, "rap/t", "r1", 1, true);
    e2e_client_expect(x, "rap/t", "r0", 1, false);
    e2e_client_expect(y, "rap/t", "r1", 1, false);
    e2e_client_expect(y, "rap/t", "r0", 1, false);
    e2e_client_publish5(pub, "rap/old", "", 0, 1, true, NULL);
    e2e_client_publish5(pub, "rap/t", "", 0, 1, true, NULL);
    e2e_client_disconnect(x);
    e2e_client_disconnect(y);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_subscribe, retain_as_published_keeps_the_retain_flag, retain_as_published)

/*
 * Retain Handling: 0 sends retained messages on every SUBSCRIBE
 * [MQTT-3.3.1-9][MQTT-3.8.4-4]; 1 only when the subscription is new
 * [MQTT-3.3.1-10]; 2 never [MQTT-3.3.1-11].
 */
static void retain_handling(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char cid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *c;
    struct e2e_client *pub;

    e2e_id_on(n - 1, n, "rhc-", cid, sizeof(cid));
    e2e_id_on(0, n, "rhp-", pid, sizeof(pid));
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "rh/t", "kept", 4, 1, true, NULL);
    c = e2e_client_connect5(b, cid, true, 0, NULL);

    cr_assert_eq(e2e_client_subscribe5(c, "rh/t", 1 | MQTT_SUB_OPT_SEND_RETAIN_ALWAYS, NULL), 1);
    e2e_client_expect(c, "rh/t", "kept", 1, true);
    cr_assert_eq(e2e_client_subscribe5(c, "rh/t", 1 | MQTT_SUB_OPT_SEND_RETAIN_ALWAYS, NULL), 1);
    e2e_client_expect(c, "rh/t", "kept", 1, true);

    cr_assert_eq(e2e_client_subscribe5(c, "rh/+", 1 | MQTT_SUB_OPT_SEND_RETAIN_NEW, NULL), 1);
    e2e_client_expect(c, "rh/t", "kept", 1, true);
    cr_assert_eq(e2e_client_subscribe5(c, "rh/+", 1 | MQTT_SUB_OPT_SEND_RETAIN_NEW, NULL), 1);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);

    cr_assert_eq(e2e_client_subscribe5(c, "rh/#", 1 | MQTT_SUB_OPT_SEND_RETAIN_NEVER, NULL), 1);
    e2e_client_expect_no_message(c, E2E_QUIET_MS);

    /* After unsubscribing, Retain Handling 1 counts it as new again. */
    e2e_client_unsubscribe(c, "rh/+");
    cr_assert_eq(e2e_client_subscribe5(c, "rh/+", 1 | MQTT_SUB_OPT_SEND_RETAIN_NEW, NULL), 1);
    e2e_client_expect(c, "rh/t", "kept", 1, true);
    e2e_client_publish5(pub, "rh/t", "", 0, 1, true, NULL);
    e2e_client_disconnect(c);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(v5_subscribe, retain_handling_0_1_2, retain_handling)

/*
 * SUBACK has one reason code per filter, in order [MQTT-3.8.4-6]
 * [MQTT-3.9.3-1]: the granted QoS [MQTT-3.8.4-7], or 0x8F for an invalid
 * filter (the rest of the packet is still handled [MQTT-3.8.4-5]).
 */
E2E_TEST(v5_subscribe, suback_has_a_reason_code_per_filter)
{
    static const char *const filters[] = {"sa/a", "sa/#/bad", "sa/b", "sa/c", "sa/d+"};
    static const uint8_t opts[] = {0, 1, 1, 2, 1};
    static const uint8_t want[] = {0, 0x8F, 1, 2, 0x8F};
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd = e2e_raw_connect5_ok(b, "suback", true, 0, NULL);
    size_t i;

    if (e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 closes the connection on an invalid filter. */
        static const char *const ok[] = {"sa/a", "sa/b", "sa/c"};
        static const uint8_t okq[] = {0, 1, 2};

        e2e_pkt_subscribe5(&p, 9, NULL, 3, ok, okq);
        e2e_raw_send_pkt(fd, &p);
        e2e_raw_expect5(fd, E2E_SUBACK, &m);
        cr_assert_eq(m.pkt_id, 9);
        cr_assert_eq(m.nreasons, 3);
        for (i = 0; i < 3; i++) {
            cr_assert_eq(m.reasons[i], okq[i]);
        }
        e2e_v5pkt_free(&m);
        e2e_raw_disconnect5(fd);
        e2e_broker_stop(b);
        return;
    }
    e2e_pkt_subscribe5(&p, 9, NULL, 5, filters, opts);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_SUBACK, &m);
    cr_assert_eq(m.pkt_id, 9, "[MQTT-3.8.4-2]");
    cr_assert_eq(m.nreasons, 5, "%zu reason codes for 5 filters [MQTT-3.8.4-6]", m.nreasons);
    for (i = 0; i < 5; i++) {
        cr_assert_eq(m.reasons[i], want[i], "filter %s: reason 0x%02x, expected 0x%02x", filters[i],
                     m.reasons[i], want[i]);
    }
    e2e_v5pkt_free(&m);
    /* The valid ones are in place. */
    e2e_pkt_publish5(&p, "sa/b", 0, false, false, 0, NULL, "x", 1);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_PUBLISH, &m);
    cr_assert_str_eq(m.topic, "sa/b");
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/*
 * UNSUBACK: 0x00 for a subscription removed, 0x11 where none existed, one
 * per filter in order [MQTT-3.11.3-1][MQTT-3.11.3-2][MQTT-3.10.4-5].
 */
E2E_TEST(v5_subscribe, unsuback_0x11_when_no_subscription_existed)
{
    static const char *const filters[] = {"us/a", "us/none", "us/#"};
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd = e2e_raw_connect5_ok(b, "unsuback", true, 0, NULL);

    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "us/a", 1, NULL), 1);
    cr_assert_eq(e2e_raw_subscribe5(fd, 2, "us/#", 0, NULL), 0);
    e2e_pkt_unsubscribe5(&p, 3, NULL, 3, filters);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_UNSUBACK, &m);
    cr_assert_eq(m.pkt_id, 3);
    cr_assert_eq(m.nreasons, 3, "%zu reason codes for 3 filters", m.nreasons);
    cr_assert_eq(m.reasons[0], 0x00);
    cr_assert_eq(m.reasons[1], MQTT_RC_NO_SUBSCRIPTION_EXISTED);
    cr_assert_eq(m.reasons[2], 0x00);
    e2e_v5pkt_free(&m);
    e2e_pkt_unsubscribe5(&p, 4, NULL, 1, filters);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_UNSUBACK, &m);
    cr_assert_eq(m.nreasons, 1);
    cr_assert_eq(m.reasons[0], MQTT_RC_NO_SUBSCRIPTION_EXISTED, "already removed");
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* Filters beyond subs_per_client_max: SUBACK 0x97 Quota exceeded (v5). */
E2E_TEST(v5_subscribe, subscriptions_over_the_quota_get_suback_0x97)
{
    static const char *const three[] = {"q/1", "q/2", "q/3"};
    static const uint8_t opts[] = {1, 1, 1};
    struct e2e_broker *b;
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("subs_per_client_max is a ringmq limit key");
    b = e2e_broker_start("[limits]\nsubs_per_client_max = 2\n");
    fd = e2e_raw_connect5_ok(b, "quota", true, 0, NULL);
    e2e_pkt_subscribe5(&p, 1, NULL, 3, three, opts);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_SUBACK, &m);
    cr_assert_eq(m.nreasons, 3);
    cr_assert_eq(m.reasons[0], 1);
    cr_assert_eq(m.reasons[1], 1);
    cr_assert_eq(m.reasons[2], MQTT_RC_QUOTA_EXCEEDED, "reason 0x%02x", m.reasons[2]);
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}
