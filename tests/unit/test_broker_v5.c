/*
 * test_broker_v5.c - the MQTT 5.0 delivery rules of the broker: subscription
 * options (No Local, Retain As Published, Retain Handling), subscription
 * identifiers, topic aliases both ways, Receive Maximum, Message Expiry and
 * Maximum Packet Size. Driven like test_broker.c, with v5 clients; the clock
 * is the one broker_tick() advances.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/broker.h"
#include "core/broker_types.h"
#include "core/mqtt_codec.h"

#include "broker_helpers.h"

TestSuite(broker_v5, .init = setup, .fini = teardown);

/* CONNECT as an MQTT 5.0 client @id with clean start and CONNECT properties @pr. */
static void connect5(struct client *cl, const char *id, const struct mqtt_props *pr)
{
    broker_client_init(b, cl);
    struct mqtt_pkt p = connect_pkt(id, true, MQTT_V5);
    if (pr)
        p.u.connect.props = *pr;
    cr_assert_eq(feed_pkt(cl, &p, MQTT_V5), 0);
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    cr_assert_eq(g.pkt.u.connack.rc, 0);
    cr_assert_eq(cl->state, CLIENT_CONNECTED);
    cr_assert_eq(cl->version, MQTT_V5);
}

/* SUBSCRIBE to @filter with subscription @options and identifier @sub_id (0: none). */
static void sub5(struct client *cl, const char *filter, uint8_t options, uint32_t sub_id)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, options};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 11, .count = 1, .entries = &e};
    if (sub_id) {
        p.u.subscribe.props.has = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
        p.u.subscribe.props.sub_ids = &sub_id;
        p.u.subscribe.props.sub_id_count = 1;
    }
    cr_assert_eq(feed_pkt(cl, &p, MQTT_V5), 0);
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    cr_assert_eq(g.pkt.u.suback.count, 1);
    cr_assert_eq(g.pkt.u.suback.rcs[0], options & MQTT_SUBOPT_QOS);
}

/* PUBLISH @p (QoS 0 or 1) from @cl, and take the PUBACK. */
static void pub5(struct client *cl, struct mqtt_pkt *p)
{
    cr_assert_eq(feed_pkt(cl, p, MQTT_V5), 0);
    if (p->u.publish.qos == 0)
        return;
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBACK);
    cr_assert_eq(g.pkt.u.ack.pkt_id, p->u.publish.pkt_id);
}

/* A QoS 1 PUBLISH with Message Expiry Interval @expiry_s. */
static void pub_expiring(struct client *cl, const char *topic, const char *payload, uint16_t id,
                         uint32_t expiry_s)
{
    struct mqtt_pkt p = publish_pkt(topic, payload, 1, false, id);
    p.u.publish.props.has = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
    p.u.publish.props.message_expiry = expiry_s;
    pub5(cl, &p);
}

/* The Subscription Identifiers of a decoded PUBLISH, in packet order; how many. */
static uint32_t sub_ids_of(const struct got *g, uint32_t *ids, uint32_t cap)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop pr;
    uint32_t n = 0;
    mqtt_prop_iter_init(&it, &g->pkt.u.publish.props);
    while (mqtt_prop_next(&it, &pr)) {
        if (pr.id != MQTT_PROP_SUBSCRIPTION_ID)
            continue;
        cr_assert_lt(n, cap);
        ids[n++] = pr.num;
    }
    return n;
}

/* ---- subscription options ---- */

Test(broker_v5, no_local_keeps_a_clients_own_publishes_from_it_but_not_others)
{
    struct client self, other;
    connect5(&self, "self", NULL);
    connect5(&other, "other", NULL);
    sub5(&self, "nl/t", 1 | MQTT_SUBOPT_NO_LOCAL, 0);
    sub5(&other, "nl/t", 1, 0);
    struct got g;

    /* Its own message is not forwarded to it [MQTT-3.8.3-3], but to the others. */
    do_publish(&self, "nl/t", "mine", 1, false, 1);
    expect_none(&self);
    expect_publish(&other, "nl/t", "mine", 1, false, &g);
    ack(&other, MQTT_PUBACK, g.pkt.u.publish.pkt_id);

    /* Another client's message is. */
    do_publish(&other, "nl/t", "theirs", 0, false, 0);
    expect_publish(&self, "nl/t", "theirs", 0, false, &g);
    expect_publish(&other, "nl/t", "theirs", 0, false, &g);
    expect_none(&self);
    expect_none(&other);
    broker_client_gone(b, &self, 0);
    broker_client_gone(b, &other, 0);
}

Test(broker_v5, retain_as_published_keeps_the_retain_flag_and_its_absence_clears_it)
{
    struct client pub, rap, plain;
    connect5(&pub, "pub", NULL);
    connect5(&rap, "rap", NULL);
    connect5(&plain, "plain", NULL);
    sub5(&rap, "rp/t", 0 | MQTT_SUBOPT_RAP, 0);
    sub5(&plain, "rp/t", 0, 0);
    struct got g;

    do_publish(&pub, "rp/t", "kept", 0, true, 0);
    expect_publish(&rap, "rp/t", "kept", 0, true, &g);    /* [MQTT-3.3.1-13] */
    expect_publish(&plain, "rp/t", "kept", 0, false, &g); /* [MQTT-3.3.1-12] */

    do_publish(&pub, "rp/t", "live", 0, false, 0);
    expect_publish(&rap, "rp/t", "live", 0, false, &g); /* as published: not retained */
    expect_publish(&plain, "rp/t", "live", 0, false, &g);
    expect_none(&rap);
    expect_none(&plain);
    broker_client_gone(b, &pub, 0);
    broker_client_gone(b, &rap, 0);
    broker_client_gone(b, &plain, 0);
}

/* A retained message on "rh/t" from a client that then goes. */
static void retain_one(void)
{
    struct client pub;
    connect5(&pub, "pub", NULL);
    do_publish(&pub, "rh/t", "old", 1, true, 1);
    broker_client_gone(b, &pub, 0);
}

#define RH(n) ((uint8_t)((n) << MQTT_SUBOPT_RH_SHIFT))

Test(broker_v5, retain_handling_0_sends_retained_on_every_subscribe)
{
    retain_one();
    struct client c;
    connect5(&c, "c", NULL);
    struct got g;
    for (int i = 0; i < 2; i++) {
        sub5(&c, "rh/t", 1 | RH(0), 0);
        expect_publish(&c, "rh/t", "old", 1, true, &g); /* [MQTT-3.3.1-9] */
        ack(&c, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
        expect_none(&c);
    }
    broker_client_gone(b, &c, 0);
}

Test(broker_v5, retain_handling_1_sends_retained_only_for_a_new_subscription)
{
    retain_one();
    struct client c;
    connect5(&c, "c", NULL);
    struct got g;
    sub5(&c, "rh/t", 1 | RH(1), 0);
    expect_publish(&c, "rh/t", "old", 1, true, &g); /* new [MQTT-3.3.1-10] */
    ack(&c, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
    expect_none(&c);
    sub5(&c, "rh/t", 1 | RH(1), 0);
    expect_none(&c); /* already existed [MQTT-3.3.1-10] */
    broker_client_gone(b, &c, 0);
}

Test(broker_v5, retain_handling_2_never_sends_retained_but_forwards_new_messages)
{
    retain_one();
    struct client c, pub;
    connect5(&c, "c", NULL);
    sub5(&c, "rh/t", 1 | RH(2), 0);
    expect_none(&c); /* [MQTT-3.3.1-11] */
    sub5(&c, "rh/t", 1 | RH(2), 0);
    expect_none(&c);
    connect5(&pub, "pub2", NULL);
    do_publish(&pub, "rh/t", "new", 0, false, 0);
    struct got g;
    expect_publish(&c, "rh/t", "new", 0, false, &g);
    expect_none(&c);
    broker_client_gone(b, &c, 0);
    broker_client_gone(b, &pub, 0);
}

/* ---- subscription identifiers ---- */

Test(broker_v5, one_copy_carries_the_identifier_of_each_matching_subscription_that_has_one)
{
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "si/+", 0, 5);
    sub5(&sub, "si/#", 0, 9);
    sub5(&sub, "si/a", 0, 0);
    sub5(&sub, "none/t", 0, 0);
    struct got g;
    uint32_t ids[4];

    /* Three subscriptions match, two with identifiers: one PUBLISH with both [MQTT-3.3.4-4]. */
    do_publish(&pub, "si/a", "x", 0, false, 0);
    expect_publish(&sub, "si/a", "x", 0, false, &g);
    cr_assert_eq(sub_ids_of(&g, ids, 4), 2);
    cr_assert((ids[0] == 5 && ids[1] == 9) || (ids[0] == 9 && ids[1] == 5));
    expect_none(&sub);

    /* Only "si/#" matches: its identifier alone [MQTT-3.3.4-3]. */
    do_publish(&pub, "si/b/c", "y", 0, false, 0);
    expect_publish(&sub, "si/b/c", "y", 0, false, &g);
    cr_assert_eq(sub_ids_of(&g, ids, 4), 1);
    cr_assert_eq(ids[0], 9);

    /* A subscription without an identifier: none, though others of the session have one. */
    do_publish(&pub, "none/t", "z", 0, false, 0);
    expect_publish(&sub, "none/t", "z", 0, false, &g);
    cr_assert_eq(sub_ids_of(&g, ids, 4), 0);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, resubscribing_without_an_identifier_removes_it)
{
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "si/t", 0, 7);
    sub5(&sub, "si/t", 0, 0); /* replaces the subscription [MQTT-3.8.4-3] */
    do_publish(&pub, "si/t", "x", 0, false, 0);
    struct got g;
    uint32_t ids[2];
    expect_publish(&sub, "si/t", "x", 0, false, &g);
    cr_assert_eq(sub_ids_of(&g, ids, 2), 0);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/*
 * Every call of topic_match() made from another object file: CMake links
 * this test with -Wl,--wrap=topic_match.
 */
static uint64_t topic_matches;
bool __real_topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen);
bool __wrap_topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen);
bool __wrap_topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen)
{
    topic_matches++;
    return __real_topic_match(filter, flen, name, nlen);
}

Test(broker_v5, identifiers_cost_nothing_per_subscription_that_does_not_match)
{
    /*
     * Issue 13: the identifiers come with the trie's match, so a delivery
     * to a session with 10,000 other subscriptions (each with an
     * identifier) matches no filter against the topic one by one (it was
     * one topic_match() per subscription, 10,002 here), and still carries
     * both identifiers that apply [MQTT-3.3.4-4].
     */
    enum { OTHERS = 10000 };
    lim.subs_per_client_max = OTHERS + 2;
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "cost/+", 1, 3);
    for (uint32_t i = 0; i < OTHERS; i++) {
        char f[32];
        snprintf(f, sizeof(f), "other/%u/#", i);
        sub5(&sub, f, 1, 100 + i);
    }
    sub5(&sub, "cost/#", 1, 268435455);
    struct got g;
    uint32_t ids[4];
    for (int round = 0; round < 2; round++) {
        uint64_t before = topic_matches;
        do_publish(&pub, "cost/x", "x", 1, false, (uint16_t)(round + 1));
        expect_publish(&sub, "cost/x", "x", 1, false, &g);
        cr_assert_eq(topic_matches, before, "%llu filters matched one by one",
                     (unsigned long long)(topic_matches - before));
        cr_assert_eq(sub_ids_of(&g, ids, 4), 2);
        cr_assert((ids[0] == 3 && ids[1] == 268435455) || (ids[0] == 268435455 && ids[1] == 3));
        ack(&sub, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
    }
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, a_retained_message_on_subscribe_carries_that_subscriptions_identifier)
{
    /*
     * Sent because of the new subscription alone, it carries its identifier
     * only, not those of the session's other subscriptions that match the
     * topic [MQTT-3.3.4-5]; later messages carry both [MQTT-3.3.4-4].
     */
    retain_one();
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "rh/+", RH(2), 4);
    expect_none(&sub);
    struct mqtt_sub_entry e = {{(const uint8_t *)"rh/#", 4}, 0};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    uint32_t id = 6;
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 12, .count = 1, .entries = &e};
    p.u.subscribe.props.has = MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID);
    p.u.subscribe.props.sub_ids = &id;
    p.u.subscribe.props.sub_id_count = 1;
    cr_assert_eq(feed_pkt(&sub, &p, MQTT_V5), 0);
    struct got g;
    uint32_t ids[4];
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    expect_publish(&sub, "rh/t", "old", 0, true, &g);
    cr_assert_eq(sub_ids_of(&g, ids, 4), 1);
    cr_assert_eq(ids[0], 6);
    do_publish(&pub, "rh/t", "new", 0, false, 0);
    expect_publish(&sub, "rh/t", "new", 0, false, &g);
    cr_assert_eq(sub_ids_of(&g, ids, 4), 2);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, a_shared_subscription_delivers_its_own_identifier)
{
    /* [MQTT-3.3.4-5]: the shared copy and the session's own copy, each with its identifier. */
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "$share/g/sh/t", 0, 21);
    sub5(&sub, "sh/+", 0, 22);
    do_publish(&pub, "sh/t", "x", 0, false, 0);
    struct got g;
    uint32_t ids[4];
    uint32_t seen = 0;
    for (int i = 0; i < 2; i++) {
        expect_publish(&sub, "sh/t", "x", 0, false, &g);
        cr_assert_eq(sub_ids_of(&g, ids, 4), 1);
        cr_assert(ids[0] == 21 || ids[0] == 22);
        seen |= 1u << (ids[0] - 21);
    }
    cr_assert_eq(seen, 3);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* ---- topic aliases ---- */

/* PUBLISH QoS 0 on @topic ("" for none) with Topic Alias @alias from @cl; the feed result. */
static int pub_alias(struct client *cl, const char *topic, const char *payload, uint16_t alias)
{
    struct mqtt_pkt p = publish_pkt(topic, payload, 0, false, 0);
    p.u.publish.props.has = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
    p.u.publish.props.topic_alias = alias;
    return feed_pkt(cl, &p, MQTT_V5);
}

Test(broker_v5, accepts_a_topic_alias_a_client_sets_and_then_uses_alone)
{
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "ta/#", 0, 0);
    struct got g;

    /* Aliases 1..topic_alias_max (the CONNACK's maximum) are accepted [MQTT-3.3.2-12]. */
    cr_assert_eq(pub_alias(&pub, "ta/one", "1", 10), 0);
    expect_publish(&sub, "ta/one", "1", 0, false, &g);
    cr_assert_eq(pub_alias(&pub, "", "2", 10), 0);
    expect_publish(&sub, "ta/one", "2", 0, false, &g);
    /* Setting it again moves it to another topic. */
    cr_assert_eq(pub_alias(&pub, "ta/two", "3", 10), 0);
    expect_publish(&sub, "ta/two", "3", 0, false, &g);
    cr_assert_eq(pub_alias(&pub, "", "4", 10), 0);
    expect_publish(&sub, "ta/two", "4", 0, false, &g);
    expect_none(&sub);
    expect_none(&pub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, a_topic_alias_set_by_a_publish_shed_for_memory_still_holds)
{
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "ta/#", 0, 0);
    struct got g;

    broker_set_memory_pressure(b, true);
    cr_assert_eq(pub_alias(&pub, "ta/one", "shed", 3), 0);
    expect_none(&sub);
    cr_assert_eq(broker_stats(b)->msgs_shed_memory, 1);
    broker_set_memory_pressure(b, false);
    /* The alias alone resolves: the shed PUBLISH still set it [MQTT-3.3.2-12]. */
    cr_assert_eq(pub_alias(&pub, "", "kept", 3), 0);
    expect_publish(&sub, "ta/one", "kept", 0, false, &g);
    expect_none(&sub);
    expect_none(&pub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, closes_on_a_topic_alias_over_the_maximum_or_never_set)
{
    struct {
        const char *topic;
        uint16_t alias;
        uint8_t rc;
    } bad[] = {
        {"ta/x", 11, MQTT_RC_TOPIC_ALIAS_INVALID}, /* over the maximum [MQTT-3.3.2-9] */
        {"", 3, MQTT_RC_PROTOCOL_ERROR},           /* used before it was set */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct client c;
        connect5(&c, "c", NULL);
        cr_assert_lt(pub_alias(&c, bad[i].topic, "x", bad[i].alias), 0);
        struct got g;
        cr_assert(next_out(&c, &g));
        cr_assert_eq(g.pkt.type, MQTT_DISCONNECT);
        cr_assert_eq(g.pkt.u.ack.rc, bad[i].rc, "case %zu: rc 0x%x", i, g.pkt.u.ack.rc);
        cr_assert_eq(c.state, CLIENT_CLOSING);
        broker_client_gone(b, &c, 0);
    }
}

/* A client's inbound alias table, as a receiver keeps it [MQTT-3.3.2-10]. */
struct alias_map {
    char topic[8][32];
};

/*
 * Take the next PUBLISH from @cl and check that, through @map, it names
 * @topic with @payload, using no alias above @max.
 */
static void expect_aliased(struct client *cl, struct alias_map *map, uint16_t max,
                           const char *topic, const char *payload)
{
    struct got g;
    cr_assert(next_out(cl, &g), "no PUBLISH for %s", topic);
    cr_assert_eq(g.pkt.type, MQTT_PUBLISH);
    const struct mqtt_publish *p = &g.pkt.u.publish;
    cr_assert_eq(p->payload.len, strlen(payload));
    cr_assert(memcmp(p->payload.ptr, payload, p->payload.len) == 0);
    char name[32] = "";
    cr_assert_lt(p->topic.len, sizeof(name));
    memcpy(name, p->topic.ptr, p->topic.len);
    if (p->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS)) {
        uint16_t a = p->props.topic_alias;
        /* [MQTT-3.1.2-26], [MQTT-3.3.2-11] */
        cr_assert(a >= 1 && a <= max, "alias %u, maximum %u", a, max);
        cr_assert_lt(a, sizeof(map->topic) / sizeof(map->topic[0]));
        if (p->topic.len > 0)
            memcpy(map->topic[a], name, sizeof(name));
        else
            memcpy(name, map->topic[a], sizeof(name));
    }
    cr_assert_str_eq(name, topic);
}

Test(broker_v5, aliases_topics_to_a_client_within_its_topic_alias_maximum)
{
    struct client sub, pub;
    struct mqtt_props pr = {.has = MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX), .topic_alias_max = 2};
    connect5(&sub, "sub", &pr);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "to/#", 0, 0);
    static const char *const seq[] = {"to/a", "to/a", "to/b", "to/a", "to/c",
                                      "to/b", "to/c", "to/c", "to/a", "to/b"};
    struct alias_map map = {0};
    size_t bytes_first = 0;
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        do_publish(&pub, seq[i], "p", 0, false, 0);
        if (i == 0)
            bytes_first = sub.out.len;
        if (i == 1)
            cr_assert_lt(sub.out.len, bytes_first, "a repeated topic goes by its alias alone");
        expect_aliased(&sub, &map, 2, seq[i], "p");
    }
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, sends_no_topic_alias_to_a_client_without_a_topic_alias_maximum)
{
    struct client sub, pub;
    connect5(&sub, "sub", NULL);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "to/t", 0, 0);
    for (int i = 0; i < 3; i++) {
        do_publish(&pub, "to/t", "p", 0, false, 0);
        struct got g;
        expect_publish(&sub, "to/t", "p", 0, false, &g);
        /* [MQTT-3.1.2-27] */
        cr_assert_not(g.pkt.u.publish.props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS));
    }
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* ---- flow control ---- */

Test(broker_v5, never_has_more_unacknowledged_publishes_out_than_the_receive_maximum)
{
    struct client sub, pub;
    struct mqtt_props pr = {.has = MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX), .receive_max = 2};
    connect5(&sub, "sub", &pr);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "rm/t", 2, 0);
    char pl[5][2] = {"0", "1", "2", "3", "4"};
    for (int i = 0; i < 5; i++)
        do_publish(&pub, "rm/t", pl[i], i % 2 + 1, false, (uint16_t)(i + 1));
    struct got g;
    uint16_t id[5];

    /* Two out, none more until one is done [MQTT-3.3.4-9]. */
    expect_publish(&sub, "rm/t", "0", 1, false, &g);
    id[0] = g.pkt.u.publish.pkt_id;
    expect_publish(&sub, "rm/t", "1", 2, false, &g);
    id[1] = g.pkt.u.publish.pkt_id;
    expect_none(&sub);

    /* QoS 2: PUBREC does not end it, PUBCOMP does. */
    ack(&sub, MQTT_PUBREC, id[1]);
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_PUBREL);
    expect_none(&sub);
    ack(&sub, MQTT_PUBCOMP, id[1]);
    expect_publish(&sub, "rm/t", "2", 1, false, &g);
    id[2] = g.pkt.u.publish.pkt_id;
    expect_none(&sub);

    /* QoS 1: PUBACK ends it. */
    ack(&sub, MQTT_PUBACK, id[0]);
    expect_publish(&sub, "rm/t", "3", 2, false, &g);
    expect_none(&sub);
    ack(&sub, MQTT_PUBACK, id[2]);
    expect_publish(&sub, "rm/t", "4", 1, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* ---- message expiry ---- */

/* A v5 subscriber to @topic at QoS 1 that takes one unacknowledged PUBLISH at a time. */
static void connect_one_at_a_time(struct client *sub, const char *topic)
{
    struct mqtt_props pr = {.has = MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX), .receive_max = 1};
    connect5(sub, "sub", &pr);
    sub5(sub, topic, 1, 0);
}

Test(broker_v5, does_not_deliver_a_message_whose_expiry_passed_while_it_waited)
{
    struct client sub, pub;
    broker_tick(b, 1000);
    connect_one_at_a_time(&sub, "ex/t");
    connect5(&pub, "pub", NULL);
    do_publish(&pub, "ex/t", "first", 1, false, 1); /* holds the window */
    pub_expiring(&pub, "ex/t", "stale", 2, 2);
    pub_expiring(&pub, "ex/t", "fresh", 3, 60);
    struct got g;
    expect_publish(&sub, "ex/t", "first", 1, false, &g);
    expect_none(&sub);

    broker_tick(b, 3500); /* "stale" expired 2 s after 1000 */
    ack(&sub, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
    expect_publish(&sub, "ex/t", "fresh", 1, false, &g); /* not "stale" [MQTT-3.3.2-5] */
    expect_none(&sub);
    cr_assert_eq(broker_stats(b)->msgs_expired, 1);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, forwards_the_expiry_interval_less_the_time_the_message_waited)
{
    struct client sub, pub;
    broker_tick(b, 1000);
    connect_one_at_a_time(&sub, "ex/t");
    connect5(&pub, "pub", NULL);
    pub_expiring(&pub, "ex/t", "now", 1, 10);
    pub_expiring(&pub, "ex/t", "later", 2, 10);
    struct got g;
    expect_publish(&sub, "ex/t", "now", 1, false, &g);
    cr_assert(g.pkt.u.publish.props.has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY));
    cr_assert_eq(g.pkt.u.publish.props.message_expiry, 10); /* no time waited */
    expect_none(&sub);

    broker_tick(b, 4000); /* "later" waited 3 s */
    ack(&sub, MQTT_PUBACK, g.pkt.u.publish.pkt_id);
    expect_publish(&sub, "ex/t", "later", 1, false, &g);
    cr_assert(g.pkt.u.publish.props.has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY));
    cr_assert_eq(g.pkt.u.publish.props.message_expiry, 7, "got %u", /* [MQTT-3.3.2-6] */
                 g.pkt.u.publish.props.message_expiry);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

/* ---- maximum packet size ---- */

Test(broker_v5, skips_a_publish_over_the_clients_maximum_packet_size_and_sends_a_smaller_one)
{
    struct client sub, pub;
    /* Receive Maximum 1: the skipped QoS 1 message must not hold the window. */
    struct mqtt_props pr = {
        .has = MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE) | MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX),
        .max_packet_size = 64,
        .receive_max = 1,
    };
    connect5(&sub, "sub", &pr);
    connect5(&pub, "pub", NULL);
    sub5(&sub, "mp/t", 1, 0);
    char big[80];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;

    do_publish(&pub, "mp/t", big, 1, false, 1);
    expect_none(&sub); /* [MQTT-3.1.2-24] */
    cr_assert_eq(broker_stats(b)->msgs_too_large, 1);
    /* As if it had been delivered [MQTT-3.1.2-25]: the next one goes out at once. */
    do_publish(&pub, "mp/t", "small", 1, false, 2);
    struct got g;
    expect_publish(&sub, "mp/t", "small", 1, false, &g);
    expect_none(&sub);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, a_connack_over_the_clients_maximum_packet_size_closes_without_disconnect)
{
    /*
     * [MQTT-3.14.0-1]: no DISCONNECT before a CONNACK; the will never began
     * either, and the session it names is not touched: its live connection
     * is not taken over.
     */
    struct client sub, cl, live;
    connect5(&sub, "watcher", NULL);
    sub5(&sub, "will/t", 0, 0);
    connect5(&live, "tiny", NULL);
    broker_client_init(b, &cl);
    struct mqtt_pkt p = connect_pkt("tiny", true, MQTT_V5);
    p.u.connect.props.has = MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE);
    p.u.connect.props.max_packet_size = 8; /* our CONNACK carries more */
    p.u.connect.will = true;
    p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)"will/t", 6};
    p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"w", 1};
    int rc = feed_pkt(&cl, &p, MQTT_V5);
    cr_assert_eq(rc, -MQTT_RC_PACKET_TOO_LARGE);
    cr_assert_eq(cl.state, CLIENT_CLOSING);
    cr_assert_eq(cl.out.len, 0, "not a byte: no CONNACK fits, and no DISCONNECT may go");
    broker_client_gone(b, &cl, rc);
    expect_none(&sub);
    cr_assert_eq(live.state, CLIENT_CONNECTED, "the refused CONNECT took the session over");
    expect_none(&live);
    cr_assert_eq(broker_stats(b)->connects_refused, 1);
    cr_assert_eq(broker_stats(b)->takeovers, 0);
    drain_dirty();
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &live, 0);
}

Test(broker_v5, expired_retained_messages_are_swept_and_make_room_when_full)
{
    /* [MQTT-3.3.2-5]: an expired retained message is gone, and no longer takes a place. */
    lim.retained_max = 1;
    struct client pub, sub;
    connect5(&pub, "pub", NULL);
    struct mqtt_pkt p = publish_pkt("r/old", "expires", 1, true, 1);
    p.u.publish.props.has = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY);
    p.u.publish.props.message_expiry = 1;
    pub5(&pub, &p);
    broker_tick(b, 100); /* not expired yet: kept */
    cr_assert_eq(broker_stats(b)->retained_expired, 0);
    broker_tick(b, 2000);
    p = publish_pkt("r/new", "stays", 1, true, 2); /* the store is full of an expired one */
    pub5(&pub, &p);
    cr_assert_eq(broker_stats(b)->retained_refused, 0);
    cr_assert_eq(broker_stats(b)->retained_expired, 1);
    connect5(&sub, "sub", NULL);
    sub5(&sub, "r/#", 1, 0);
    struct got g;
    expect_publish(&sub, "r/new", "stays", 1, true, &g);
    expect_none(&sub);
    /* Without expiry in the way, a full store refuses (and counts) a new topic. */
    p = publish_pkt("r/third", "x", 1, true, 3);
    pub5(&pub, &p);
    cr_assert_eq(broker_stats(b)->retained_refused, 1);
    drain_dirty();
    broker_client_gone(b, &pub, 0);
    broker_client_gone(b, &sub, 0);
}

Test(broker_v5, a_client_that_negotiates_nothing_holds_no_v5_state)
{
    /* Most clients send no CONNECT properties: their connections pay nothing for them. */
    struct client plain, tuned;
    connect5(&plain, "plain", NULL);
    cr_assert_null(plain._v5);
    struct mqtt_props pr = {.has = MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX), .receive_max = 5};
    connect5(&tuned, "tuned", &pr);
    cr_assert_not_null(tuned._v5);
    cr_assert_eq(tuned._v5->recv_max, 5);
    drain_dirty();
    broker_client_gone(b, &plain, 0);
    broker_client_gone(b, &tuned, 0);
}

/*
 * slow_reader_grace: a reader whose output stays past output_bytes_max (its
 * QoS 0 shed) is closed once drops have gone on for the grace, none of them
 * a whole grace after the one before: v5 hears DISCONNECT 0x97 Quota exceeded.
 */
Test(broker_v5, a_reader_over_its_output_bound_past_the_grace_gets_0x97)
{
    struct client sub, pub;
    struct got g;
    char payload[1000];
    memset(payload, 'x', sizeof(payload));
    payload[sizeof(payload) - 1] = '\0';
    lim.output_bytes_max = 8192;
    lim.slow_reader_grace_s = 5;
    connect5(&sub, "slow", NULL);
    sub5(&sub, "g/#", 0, 0);
    broker_client_init(b, &pub);
    do_connect(&pub, "pub", true);

    /* Fill the reader's output past the bound: the 9th message is shed. */
    for (int i = 0; i < 9; i++)
        do_publish(&pub, "g/t", payload, 0, false, 0);
    cr_assert_eq(broker_stats(b)->msgs_dropped, 1);
    cr_assert_eq(sub.state, CLIENT_CONNECTED, "the grace begins");
    /* It reads everything, and nothing is dropped for a whole grace: the episode ends. */
    for (int i = 0; i < 8; i++)
        expect_publish(&sub, "g/t", payload, 0, false, &g);
    broker_tick(b, 10000);
    do_publish(&pub, "g/t", payload, 0, false, 0);
    expect_publish(&sub, "g/t", payload, 0, false, &g);
    for (int i = 0; i < 9; i++)
        do_publish(&pub, "g/t", payload, 0, false, 0);
    cr_assert_eq(broker_stats(b)->msgs_dropped, 2);
    cr_assert_eq(sub.state, CLIENT_CONNECTED, "a new grace, not the old one");
    broker_tick(b, 14000);
    do_publish(&pub, "g/t", payload, 0, false, 0);
    cr_assert_eq(sub.state, CLIENT_CONNECTED, "4 s over: within the grace");
    broker_tick(b, 15999);
    do_publish(&pub, "g/t", payload, 0, false, 0);
    cr_assert_eq(sub.state, CLIENT_CONNECTED, "5 s over: whole seconds, not yet");
    broker_tick(b, 16000);
    do_publish(&pub, "g/t", payload, 0, false, 0);
    cr_assert_eq(sub.state, CLIENT_CLOSING, "6 s over: closed");
    cr_assert_eq(broker_stats(b)->slow_readers_closed, 1);
    for (int i = 0; i < 8; i++)
        expect_publish(&sub, "g/t", payload, 0, false, &g);
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_DISCONNECT, "type %u", g.pkt.type);
    cr_assert_eq(g.pkt.u.ack.rc, MQTT_RC_QUOTA_EXCEEDED);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, a_queue_that_stays_full_past_the_grace_closes_and_grace_0_never_does)
{
    struct client sub, pub;
    struct got g;
    lim.queued_max = 2;
    lim.inflight_max = 1;
    lim.slow_reader_grace_s = 3;
    broker_tick(b, 10000); /* the clock from 10 s */
    connect5(&sub, "never-acks", NULL);
    sub5(&sub, "q", 1, 0);
    broker_client_init(b, &pub);
    do_connect(&pub, "pub", true);
    for (uint16_t i = 1; i <= 4; i++) /* 1 in flight, 2 queued, the 4th dropped */
        do_publish(&pub, "q", "m", 1, false, i);
    cr_assert_eq(broker_stats(b)->queue_full, 1);
    broker_tick(b, 12000);
    do_publish(&pub, "q", "m", 1, false, 5); /* dropped again: the same episode */
    broker_tick(b, 14000);
    lim.slow_reader_grace_s = 0;
    do_publish(&pub, "q", "m", 1, false, 6);
    cr_assert_eq(sub.state, CLIENT_CONNECTED, "slow_reader_grace = 0: never");
    lim.slow_reader_grace_s = 3;
    do_publish(&pub, "q", "m", 1, false, 7);
    cr_assert_eq(sub.state, CLIENT_CLOSING);
    expect_publish(&sub, "q", "m", 1, false, &g);
    cr_assert(next_out(&sub, &g));
    cr_assert_eq(g.pkt.type, MQTT_DISCONNECT);
    cr_assert_eq(g.pkt.u.ack.rc, MQTT_RC_QUOTA_EXCEEDED);
    broker_client_gone(b, &sub, 0);
    broker_client_gone(b, &pub, 0);
}

Test(broker_v5, stopping_publishes_delayed_wills_of_connected_and_offline_sessions)
{
    /* Each session ends with the process: its will is due now [MQTT-3.1.3-9]. */
    struct client sub, on, off;
    struct mqtt_pkt p;
    struct got g;
    connect5(&sub, "watcher", NULL);
    sub5(&sub, "will/#", 0, 0);
    for (int i = 0; i < 2; i++) {
        struct client *cl = i == 0 ? &on : &off;
        broker_client_init(b, cl);
        p = connect_pkt(i == 0 ? "on" : "off", true, MQTT_V5);
        p.u.connect.props.has = MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY);
        p.u.connect.props.session_expiry = 600;
        p.u.connect.will = true;
        const char *topic = i == 0 ? "will/on" : "will/off";
        p.u.connect.will_topic = (struct mqtt_str){(const uint8_t *)topic, (uint32_t)strlen(topic)};
        p.u.connect.will_payload = (struct mqtt_str){(const uint8_t *)"w", 1};
        p.u.connect.will_props.has = MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY);
        p.u.connect.will_props.will_delay = 300;
        cr_assert_eq(feed_pkt(cl, &p, MQTT_V5), 0);
        cr_assert(next_out(cl, &g));
        cr_assert_eq(g.pkt.u.connack.rc, 0);
    }
    broker_client_gone(b, &off, -104); /* offline now, its will delayed by 300 s */
    expect_none(&sub);
    cr_assert(broker_has_deadlines(b));
    cr_assert_eq(broker_delayed_wills_now(b), 1);
    expect_publish(&sub, "will/off", "w", 0, false, &g);
    cr_assert(broker_client_will_now(b, &on), "a connected client's delayed will too");
    expect_publish(&sub, "will/on", "w", 0, false, &g);
    cr_assert_eq(broker_delayed_wills_now(b), 0, "each goes once");
    broker_tick(b, 400 * 1000);
    broker_client_gone(b, &on, 0);
    expect_none(&sub);
    drain_dirty();
    broker_client_gone(b, &sub, 0);
}
