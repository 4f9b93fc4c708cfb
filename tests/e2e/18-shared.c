/*
 * 18-shared.c - e2e: shared subscriptions $share/{group}/{filter} for 3.1.1
 * and 5.0 clients: each message to exactly one member of a group, one copy
 * per group, non-shared subscribers unaffected, members and publishers on
 * different shards; each member gets the same share wherever it is homed
 * (issue 13); QoS 1 in flight to a member that goes away is re-sent to
 * another member; No Local on a shared subscription is a protocol error;
 * no retained messages on a shared subscribe; invalid share names.
 *
 * Multi-shard-relevant cases run at shards = 1 and 4 with every member
 * homed on a different shard (e2e_id_on()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

#define ID_MAX 48
#define SH_MSGS 40
#define MEMBERS_MAX 4

/* A member of a group: a libmosquitto client, 3.1.1 or v5. */
static struct e2e_client *member(struct e2e_broker *b, unsigned n, uint32_t shard, int version,
                                 const char *prefix, const char *filter)
{
    char id[ID_MAX];
    struct e2e_client *c;

    e2e_id_on(shard % n, n, prefix, id, sizeof(id));
    if (version == E2E_V5) {
        c = e2e_client_connect5(b, id, true, 0, NULL);
        cr_assert_eq(e2e_client_subscribe5(c, filter, 1, NULL), 1, "%s refused", filter);
    } else {
        c = e2e_client_connect(b, version, id, true);
        cr_assert_eq(e2e_client_subscribe(c, filter, 1), 1, "%s refused", filter);
    }
    return c;
}

/*
 * Publish SH_MSGS QoS 1 messages "0".."39" on @topic, alternately from
 * @npub publishers.
 */
static void publish_n(struct e2e_client **pubs, int npub, const char *topic, int from, int count)
{
    int i;

    for (i = from; i < from + count; i++) {
        char payload[16];

        snprintf(payload, sizeof(payload), "%d", i);
        e2e_client_publish(pubs[i % npub], topic, payload, strlen(payload), 1, false);
    }
}

/*
 * Drain @ms (a set of clients) until @total messages on @topic arrived, then
 * until quiet; count[i] = copies of message i. Asserts each came once.
 */
static void expect_each_once(struct e2e_client **ms, int nm, const char *topic, int from, int total,
                             const char *what)
{
    int count[SH_MSGS * 2] = {0};
    int got = 0;
    int64_t deadline = e2e_now_ms() + E2E_WAIT_MS;
    int i;

    cr_assert_leq(from + total, SH_MSGS * 2);
    while (got < total && e2e_now_ms() < deadline) {
        for (i = 0; i < nm; i++) {
            struct e2e_msg *m = e2e_client_wait_message(ms[i], 5);

            if (m == NULL) {
                continue;
            }
            cr_assert_str_eq(m->topic, topic);
            long v = strtol((const char *)m->payload, NULL, 10);

            cr_assert(v >= from && v < from + total, "%s: unexpected message %ld", what, v);
            count[v]++;
            got++;
            e2e_msg_free(m);
        }
    }
    for (i = 0; i < nm; i++) {
        e2e_client_expect_no_message(ms[i], i == 0 ? E2E_QUIET_MS : 20);
    }
    for (i = from; i < from + total; i++) {
        cr_assert_eq(count[i], 1, "%s: message %d delivered %d times", what, i, count[i]);
    }
}

/*
 * Each message to a shared subscription goes to exactly one member of the
 * group [4.8.2], 3.1.1 and v5 members alike; a member that unsubscribes
 * gets no more while the others get all. (A shared subscription is the
 * ShareName plus the filter: all members use the same filter.)
 */
static void one_member_each(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_client *ms[3];
    struct e2e_client *pubs[2];
    char pid[ID_MAX];
    int i;

    ms[0] = member(b, n, 0, E2E_V311, "shm0-", "$share/g/sh/t");
    ms[1] = member(b, n, 1, E2E_V5, "shm1-", "$share/g/sh/t");
    ms[2] = member(b, n, 2, E2E_V311, "shm2-", "$share/g/sh/t");
    for (i = 0; i < 2; i++) {
        char prefix[16];

        snprintf(prefix, sizeof(prefix), "shp%d-", i);
        e2e_id_on((uint32_t)(3 - i) % n, n, prefix, pid, sizeof(pid));
        pubs[i] = e2e_client_connect5(b, pid, true, 0, NULL);
    }
    publish_n(pubs, 2, "sh/t", 0, SH_MSGS);
    expect_each_once(ms, 3, "sh/t", 0, SH_MSGS, "group g");
    e2e_client_unsubscribe(ms[1], "$share/g/sh/t");
    publish_n(pubs, 2, "sh/t", SH_MSGS, 10);
    expect_each_once(ms, 3, "sh/t", SH_MSGS, 10, "group g after one left");
    e2e_client_expect_no_message(ms[1], E2E_QUIET_MS);
    for (i = 0; i < 3; i++) {
        e2e_client_disconnect(ms[i]);
    }
    e2e_client_disconnect(pubs[0]);
    e2e_client_disconnect(pubs[1]);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(shared, each_message_goes_to_exactly_one_member, one_member_each)

/*
 * Two groups on the same filter each get one copy of every message; a
 * non-shared subscriber gets its own copy of every message.
 */
static void two_groups(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_client *g1[2];
    struct e2e_client *g2[2];
    struct e2e_client *plain[1];
    struct e2e_client *pubs[1];
    char pid[ID_MAX];
    int i;

    g1[0] = member(b, n, 0, E2E_V5, "tga0-", "$share/one/tg/#");
    g1[1] = member(b, n, 1, E2E_V311, "tga1-", "$share/one/tg/#");
    g2[0] = member(b, n, 2, E2E_V311, "tgb0-", "$share/two/tg/x");
    g2[1] = member(b, n, 3, E2E_V5, "tgb1-", "$share/two/tg/x");
    plain[0] = member(b, n, 1, E2E_V5, "tgp-", "tg/x");
    e2e_id_on(0, n, "tgpub-", pid, sizeof(pid));
    pubs[0] = e2e_client_connect5(b, pid, true, 0, NULL);
    publish_n(pubs, 1, "tg/x", 0, SH_MSGS);
    expect_each_once(g1, 2, "tg/x", 0, SH_MSGS, "group one");
    expect_each_once(g2, 2, "tg/x", 0, SH_MSGS, "group two");
    expect_each_once(plain, 1, "tg/x", 0, SH_MSGS, "non-shared subscriber");
    for (i = 0; i < 2; i++) {
        e2e_client_disconnect(g1[i]);
        e2e_client_disconnect(g2[i]);
    }
    e2e_client_disconnect(plain[0]);
    e2e_client_disconnect(pubs[0]);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(shared, two_groups_each_get_one_copy_and_non_shared_subscribers_theirs, two_groups)

/*
 * Each member of a group gets the same share, not each shard (issue 13):
 * one member homed on shard 1 and three on shard 2 each get a quarter of
 * FAIR_MSGS QoS 1 messages published from shards 0 and 3 - exactly, since
 * every SUBACK waits until every shard knows the new member count and each
 * publishing shard's weighted rotation comes back to its start every four
 * messages. (Round-robin over shards gave the lone member a half and the
 * three a sixth each.) With one shard, plain round-robin gives the same.
 */
static void fair_per_member(unsigned n)
{
    enum { FAIR_MSGS = 400, FAIR_MEMBERS = 4 };
    static const uint32_t home[FAIR_MEMBERS] = {1, 2, 2, 2};
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_client *ms[FAIR_MEMBERS];
    struct e2e_client *pubs[2];
    static uint8_t seen[FAIR_MSGS];
    int got[FAIR_MEMBERS] = {0};
    int total = 0;
    int64_t deadline;
    char id[ID_MAX];
    char prefix[16];
    int i;

    for (i = 0; i < FAIR_MEMBERS; i++) {
        snprintf(prefix, sizeof(prefix), "fm%d-", i);
        ms[i] = member(b, n, home[i], i % 2 ? E2E_V5 : E2E_V311, prefix, "$share/fair/fa/t");
    }
    e2e_id_on(0, n, "fp0-", id, sizeof(id));
    pubs[0] = e2e_client_connect5(b, id, true, 0, NULL);
    e2e_id_on(3 % n, n, "fp3-", id, sizeof(id));
    pubs[1] = e2e_client_connect(b, E2E_V311, id, true);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < FAIR_MSGS; i++) {
        char payload[16];

        snprintf(payload, sizeof(payload), "%d", i);
        e2e_client_publish(pubs[i % 2], "fa/t", payload, strlen(payload), 1, false);
    }
    deadline = e2e_now_ms() + 2 * E2E_WAIT_MS;
    while (total < FAIR_MSGS && e2e_now_ms() < deadline) {
        for (i = 0; i < FAIR_MEMBERS; i++) {
            struct e2e_msg *m = e2e_client_wait_message(ms[i], 5);
            long v;

            if (m == NULL) {
                continue;
            }
            v = strtol((const char *)m->payload, NULL, 10);
            cr_assert(v >= 0 && v < FAIR_MSGS, "unexpected message %ld", v);
            cr_assert_eq(seen[v], 0, "message %ld delivered twice", v);
            seen[v] = 1;
            got[i]++;
            total++;
            e2e_msg_free(m);
        }
    }
    cr_assert_eq(total, FAIR_MSGS, "%d of %d messages arrived", total, FAIR_MSGS);
    for (i = 0; i < FAIR_MEMBERS; i++) {
        e2e_client_expect_no_message(ms[i], i == 0 ? E2E_QUIET_MS : 20);
    }
    for (i = 0; i < FAIR_MEMBERS; i++) {
        /* mosquitto's own rotation is not this test's business: a tenth either way. */
        int slack = e2e_mosquitto_mode() ? FAIR_MSGS / FAIR_MEMBERS / 10 : 0;

        cr_assert(abs(got[i] - FAIR_MSGS / FAIR_MEMBERS) <= slack,
                  "member %d (shard %u of %u) got %d of %d, want %d: %d %d %d %d", i,
                  home[i] % n, n, got[i], FAIR_MSGS, FAIR_MSGS / FAIR_MEMBERS, got[0], got[1],
                  got[2], got[3]);
    }
    for (i = 0; i < FAIR_MEMBERS; i++) {
        e2e_client_disconnect(ms[i]);
    }
    e2e_client_disconnect(pubs[0]);
    e2e_client_disconnect(pubs[1]);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(shared, each_member_gets_the_same_share_wherever_it_is_homed, fair_per_member)

/* Read one QoS 1 PUBLISH (either version's format) and check topic and payload. */
static void raw_expect_qos1(int fd, bool v5, const char *topic, const char *payload)
{
    if (v5) {
        struct e2e_v5pkt m;

        e2e_raw_expect5(fd, E2E_PUBLISH, &m);
        cr_assert_str_eq(m.topic, topic);
        cr_assert_eq(m.qos, 1);
        cr_assert(m.payload_len == strlen(payload) &&
                  memcmp(m.payload, payload, m.payload_len) == 0);
        e2e_v5pkt_free(&m);
    } else {
        uint8_t buf[256];
        size_t hdr = 0;
        size_t n = e2e_raw_read_packet(fd, buf, sizeof(buf), E2E_WAIT_MS, &hdr);
        size_t tl = strlen(topic);

        cr_assert_gt(n, 0, "no PUBLISH for the first member");
        cr_assert_eq(buf[0] & 0xf6, 0x32, "first byte 0x%02x", buf[0]);
        cr_assert(buf[hdr + 1] == tl && memcmp(buf + hdr + 2, topic, tl) == 0);
        cr_assert(n - hdr - 4 - tl == strlen(payload) &&
                  memcmp(buf + hdr + 4 + tl, payload, strlen(payload)) == 0);
    }
}

/*
 * A QoS 1 message in flight to a member whose session ends before it acks
 * is sent to another member of the group [4.8.2: "SHOULD send the
 * Application Message to another Client"]; a 3.1.1 (clean session) and a
 * v5 (session expiry 0) first member.
 */
static void resend_to_other(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    char aid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    struct e2e_client *other;
    int round;

    e2e_id_on(0, n, "rsp-", pid, sizeof(pid));
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    for (round = 0; round < 2; round++) {
        bool v5 = round == 1;
        char filter[32];
        char topic[16];
        int fd;

        snprintf(filter, sizeof(filter), "$share/rs/rs/%d", round);
        snprintf(topic, sizeof(topic), "rs/%d", round);
        e2e_id_on((uint32_t)(1 + round) % n, n, v5 ? "rsa5-" : "rsa3-", aid, sizeof(aid));
        if (v5) {
            fd = e2e_raw_connect5_ok(b, aid, true, 0, NULL);
            cr_assert_eq(e2e_raw_subscribe5(fd, 1, filter, 1, NULL), 1);
        } else {
            const char *filters[1] = {filter};
            const uint8_t qos[1] = {1};
            struct e2e_pkt p;

            fd = e2e_raw_connect_ok(b, E2E_V311, aid, true, 0);
            e2e_pkt_subscribe(&p, 1, 1, filters, qos);
            e2e_raw_send_pkt(fd, &p);
            e2e_raw_expect(fd, "\x90\x03\x00\x01\x01", 5, E2E_WAIT_MS);
        }
        e2e_client_publish(pub, topic, "inflight", 8, 1, false);
        raw_expect_qos1(fd, v5, topic, "inflight");
        /* Not acked. A second member joins, then the first goes away. */
        other = member(b, n, 3, round == 0 ? E2E_V5 : E2E_V311, "rso-", filter);
        e2e_client_expect_no_message(other, 100);
        e2e_raw_close(fd);
        e2e_client_expect(other, topic, "inflight", 1, false);
        e2e_client_expect_no_message(other, E2E_QUIET_MS);
        e2e_client_disconnect(other);
    }
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}

E2E_TEST(shared, qos1_in_flight_to_a_member_that_leaves_goes_to_another_shards1)
{
    e2e_ringmq_only("mosquitto 2.0.11 drops QoS 1 in flight to a departed shared member");
    resend_to_other(1);
}

E2E_TEST(shared, qos1_in_flight_to_a_member_that_leaves_goes_to_another_shards4)
{
    e2e_ringmq_only("mosquitto 2.0.11 drops QoS 1 in flight to a departed shared member");
    resend_to_other(4);
}

/* No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4]. */
E2E_TEST(shared, no_local_on_a_shared_subscription_is_a_protocol_error)
{
    static const char *const filters[] = {"$share/g/nl/t"};
    static const uint8_t opts[] = {1 | MQTT_SUB_OPT_NO_LOCAL};
    struct e2e_broker *b;
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("mosquitto 2.0.11 grants No Local on a shared subscription");
    b = e2e_broker_start(NULL);
    fd = e2e_raw_connect5_ok(b, "shnl", true, 0, NULL);

    e2e_pkt_subscribe5(&p, 1, NULL, 1, filters, opts);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect_disconnect5(fd, MQTT_RC_PROTOCOL_ERROR);
    e2e_broker_check_alive(b);
    e2e_broker_stop(b);
}

/*
 * A shared subscription gets no retained messages when it is made (3.3.1.3
 * sends them "when a new Non-shared Subscription is made"), for
 * 3.1.1 and v5; a non-shared one does. Live retained publishes are shared
 * normally.
 */
E2E_TEST(shared, shared_subscriptions_get_no_retained_messages_on_subscribe)
{
    struct e2e_broker *b;
    struct e2e_client *pub;
    struct e2e_client *s5;
    struct e2e_client *s3;
    struct e2e_client *plain;

    e2e_ringmq_only("mosquitto 2.0.11 sends retained messages to new shared subscriptions");
    b = e2e_broker_start(NULL);
    pub = e2e_client_connect5(b, "srpub", true, 0, NULL);

    e2e_client_publish5(pub, "sr/t", "kept", 4, 1, true, NULL);
    s5 = e2e_client_connect5(b, "srv5", true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(s5, "$share/a/sr/t", 1, NULL), 1);
    s3 = e2e_client_connect(b, E2E_V311, "srv3", true);
    cr_assert_eq(e2e_client_subscribe(s3, "$share/b/sr/#", 1), 1);
    plain = e2e_client_connect5(b, "srplain", true, 0, NULL);
    cr_assert_eq(e2e_client_subscribe5(plain, "sr/t", 1, NULL), 1);
    e2e_client_expect(plain, "sr/t", "kept", 1, true);
    e2e_client_expect_no_message(s5, E2E_QUIET_MS);
    e2e_client_expect_no_message(s3, 20);
    e2e_client_publish5(pub, "sr/t", "live", 4, 1, true, NULL);
    e2e_client_expect(s5, "sr/t", "live", 1, false);
    e2e_client_expect(s3, "sr/t", "live", 1, false);
    e2e_client_expect(plain, "sr/t", "live", 1, false);
    e2e_client_publish5(pub, "sr/t", "", 0, 1, true, NULL);
    e2e_client_disconnect(s5);
    e2e_client_disconnect(s3);
    e2e_client_disconnect(plain);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}

/*
 * Invalid shared filters: an empty ShareName or one with '+', '#' or no
 * "/filter" after it [MQTT-4.8.2-1][MQTT-4.8.2-2] get SUBACK 0x8F; the
 * valid one in the same SUBSCRIBE is granted.
 */
E2E_TEST(shared, invalid_share_names_get_suback_0x8f)
{
    static const char *const filters[] = {"$share/g",    "$share//t",   "$share/g+/t",
                                          "$share/g#/t", "$share/ok/t", "$share/g/"};
    static const uint8_t opts[] = {1, 1, 1, 1, 1, 1};
    static const uint8_t want[] = {0x8F, 0x8F, 0x8F, 0x8F, 1, 0x8F};
    struct e2e_broker *b;
    struct e2e_v5pkt m;
    struct e2e_pkt p;
    int fd;

    e2e_ringmq_only("mosquitto 2.0.11 closes the connection on an invalid shared filter");
    b = e2e_broker_start(NULL);
    fd = e2e_raw_connect5_ok(b, "shbad", true, 0, NULL);
    e2e_pkt_subscribe5(&p, 1, NULL, 6, filters, opts);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_SUBACK, &m);
    cr_assert_eq(m.nreasons, 6);
    for (size_t i = 0; i < 6; i++) {
        cr_assert_eq(m.reasons[i], want[i], "%s: reason 0x%02x, expected 0x%02x", filters[i],
                     m.reasons[i], want[i]);
    }
    e2e_v5pkt_free(&m);
    e2e_raw_disconnect5(fd);
    e2e_broker_stop(b);
}

/* Read one v5 PUBLISH on @fd and check topic, payload, QoS and DUP; returns its packet id. */
static uint16_t raw_expect_pub5(int fd, const char *topic, const char *payload, uint8_t qos,
                                bool dup)
{
    struct e2e_v5pkt m;
    uint16_t id;

    e2e_raw_expect5(fd, E2E_PUBLISH, &m);
    cr_assert_str_eq(m.topic, topic);
    cr_assert(m.payload_len == strlen(payload) && memcmp(m.payload, payload, m.payload_len) == 0,
              "payload %.*s, expected %s", (int)m.payload_len, (const char *)m.payload, payload);
    cr_assert_eq(m.qos, qos, "%s: QoS %u, expected %u", topic, m.qos, qos);
    cr_assert_eq(m.dup, dup, "%s: DUP %d, expected %d", topic, m.dup, dup);
    id = m.pkt_id;
    e2e_v5pkt_free(&m);
    return id;
}

/*
 * A QoS 2 message sent to a shared member whose connection breaks before
 * its PUBREC is not given to another member: it stays with that session
 * and is resent to it (DUP, same packet id) when it reconnects
 * [MQTT-4.8.2-4][MQTT-4.8.2-5][MQTT-4.4.0-1]. A QoS 1 one in the same
 * situation still goes to another member [4.8.2]. The first member is the
 * group's only one while both are sent, so both go to it; the second joins
 * before the first drops. (The old behaviour gave the QoS 2 one to the
 * second member: the check on its first message, and the one on the
 * resent PUBLISH, catch that.)
 */
static void qos2_stays(unsigned n)
{
    struct e2e_broker *b = e2e_broker_start_shards(n, NULL);
    struct e2e_props se = {.len = 0};
    struct e2e_connect_opts o = {.version = E2E_V5, .clean = false, .props = &se};
    char aid[ID_MAX];
    char pid[ID_MAX];
    struct e2e_client *pub;
    struct e2e_client *other;
    struct e2e_msg *m;
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    uint16_t id2;
    uint16_t id;
    int fd;

    e2e_id_on(1 % n, n, "q2a-", aid, sizeof(aid));
    e2e_id_on(0, n, "q2p-", pid, sizeof(pid));
    e2e_props_u32(&se, MQTT_PROP_SESSION_EXPIRY_INTERVAL, 300);
    fd = e2e_raw_connect5_ok(b, aid, true, 300, NULL);
    cr_assert_eq(e2e_raw_subscribe5(fd, 1, "$share/q2/q2/#", 2, NULL), 2);
    pub = e2e_client_connect5(b, pid, true, 0, NULL);
    e2e_client_publish5(pub, "q2/two", "exactly", 7, 2, false, NULL);
    id2 = raw_expect_pub5(fd, "q2/two", "exactly", 2, false);
    e2e_client_publish5(pub, "q2/one", "atleast", 7, 1, false, NULL);
    raw_expect_pub5(fd, "q2/one", "atleast", 1, false);
    /* Neither acknowledged. A second member joins, then the first's connection breaks. */
    other = member(b, n, 2, E2E_V5, "q2o-", "$share/q2/q2/#");
    e2e_client_expect_no_message(other, 100);
    e2e_raw_close(fd);
    if (!e2e_mosquitto_mode()) {
        /* mosquitto 2.0.11 keeps the QoS 1 one with the departed member too. */
        m = e2e_client_expect_message(other);
        cr_assert_str_eq(m->topic, "q2/one", "%s given to another member [MQTT-4.8.2-4]",
                         m->topic);
        cr_assert_str_eq((const char *)m->payload, "atleast");
        cr_assert_eq(m->qos, 1);
        e2e_msg_free(m);
    }
    e2e_client_expect_no_message(other, E2E_QUIET_MS);

    o.id = aid;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    cr_assert(ack.session_present, "session with expiry 300 s lost");
    e2e_v5pkt_free(&ack);
    id = raw_expect_pub5(fd, "q2/two", "exactly", 2, true);
    cr_assert_eq(id, id2, "QoS 2 resent with packet id %u, first sent as %u [MQTT-4.4.0-1]", id,
                 id2);
    if (e2e_mosquitto_mode()) {
        e2e_pkt_ack5(&p, 0x40, raw_expect_pub5(fd, "q2/one", "atleast", 1, true), 0, NULL);
        e2e_raw_send_pkt(fd, &p);
    }
    e2e_pkt_ack5(&p, 0x50, id, 0, NULL);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_PUBREL, &ack);
    cr_assert_eq(ack.pkt_id, id);
    e2e_v5pkt_free(&ack);
    e2e_pkt_ack5(&p, 0x70, id, 0, NULL);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_ping5(fd);
    e2e_client_expect_no_message(other, E2E_QUIET_MS);
    /* End the session. */
    e2e_raw_close(fd);
    fd = e2e_raw_connect5_ok(b, aid, true, 0, NULL);
    e2e_raw_disconnect5(fd);
    e2e_client_disconnect(other);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_SHARDS(shared, qos2_in_flight_to_a_member_that_drops_stays_with_its_session, qos2_stays)
