/*
 * 27-vhosts.c - e2e: virtual hosts ([broker] hosts, issue 14) with real
 * libmosquitto clients. A client whose user name ends in "@a.example"
 * belongs to host a.example, with its own topics, retained messages,
 * client ids and shared groups; every other client to the default host.
 * Two hosts never see each other's messages, on one shard or across four.
 * Password entries and ACL rules go by full user name (user@host). All
 * ringmq-only (mosquitto has no virtual hosts).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

#define HOSTS "[broker]\nhosts = a.example, b.example\n"

static struct e2e_broker *start(unsigned shards)
{
    e2e_ringmq_only("ringmq's virtual hosts");
    return e2e_broker_start_shards(shards, HOSTS);
}

/* A connected client as @user (NULL: no user name) with id @id. */
static struct e2e_client *as(struct e2e_broker *b, int version, const char *user, const char *id,
                             bool clean, int want_present)
{
    struct e2e_client_opts o = {.version = version, .id = id, .clean = clean, .username = user};
    struct e2e_client *c = e2e_client_start(b, &o);

    cr_assert_eq(e2e_client_wait_connack(c, 0), want_present, "%s (%s): session present",
                 id, user ? user : "no user");
    return c;
}

/* The same topic published in each host reaches only that host's '#' subscriber. */
static void topics_are_separate(unsigned shards)
{
    static const char *const users[] = {NULL, "alice@a.example", "bob@b.example"};
    static const char *const ids[] = {"vh-sub-d", "vh-sub-a", "vh-sub-b"};
    struct e2e_broker *b = start(shards);
    struct e2e_client *sub[3], *pub[3];

    for (int i = 0; i < 3; i++) {
        sub[i] = as(b, E2E_V311, users[i], ids[i], true, 0);
        cr_assert_eq(e2e_client_subscribe(sub[i], "#", 1), 1);
    }
    for (int i = 0; i < 3; i++) {
        char id[32];

        snprintf(id, sizeof(id), "vh-pub-%d", i);
        pub[i] = as(b, i == 2 ? E2E_V5 : E2E_V311, users[i], id, true, 0);
    }
    for (int i = 0; i < 3; i++) {
        char payload[16];

        snprintf(payload, sizeof(payload), "from-%d", i);
        e2e_client_publish(pub[i], "t/1", payload, strlen(payload), 1, false);
    }
    for (int i = 0; i < 3; i++) {
        char payload[16];

        snprintf(payload, sizeof(payload), "from-%d", i);
        /* Its own, under the topic it was published to (no prefix shows). */
        e2e_client_expect(sub[i], "t/1", payload, 1, false);
        e2e_client_expect_no_message(sub[i], E2E_QUIET_MS);
    }
    /* A host no configured host matches is the default host. */
    struct e2e_client *other = as(b, E2E_V311, "x@c.example", "vh-pub-c", true, 0);

    e2e_client_publish(other, "t/2", "from-c", 6, 1, false);
    e2e_client_expect(sub[0], "t/2", "from-c", 1, false);
    e2e_client_expect_no_message(sub[1], E2E_QUIET_MS);
    e2e_client_expect_no_message(sub[2], 0);
    e2e_client_disconnect(other);
    for (int i = 0; i < 3; i++) {
        e2e_client_disconnect(pub[i]);
        e2e_client_disconnect(sub[i]);
    }
    e2e_broker_stop(b);
}

E2E_TEST_SHARDS(vhosts, each_host_sees_only_its_own_topics, topics_are_separate)

/* A retained message is kept in its own host's store only. */
static void retained_are_separate(unsigned shards)
{
    struct e2e_broker *b = start(shards);
    struct e2e_client *pub = as(b, E2E_V311, "alice@a.example", "vh-rpub", true, 0);

    e2e_client_publish(pub, "r/1", "kept-a", 6, 1, true);
    e2e_client_disconnect(pub);

    struct e2e_client *d = as(b, E2E_V311, NULL, "vh-rd", true, 0);
    struct e2e_client *o = as(b, E2E_V5, "bob@b.example", "vh-rb", true, 0);
    struct e2e_client *a = as(b, E2E_V311, "carol@a.example", "vh-ra", true, 0);

    cr_assert_eq(e2e_client_subscribe(d, "r/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(o, "r/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(a, "r/#", 1), 1);
    e2e_client_expect(a, "r/1", "kept-a", 1, true); /* [MQTT-3.3.1-6]: in its own host */
    e2e_client_expect_no_message(d, E2E_QUIET_MS);
    e2e_client_expect_no_message(o, 0);
    e2e_client_disconnect(a);
    e2e_client_disconnect(o);
    e2e_client_disconnect(d);
    e2e_broker_stop(b);
}

E2E_TEST_SHARDS(vhosts, each_host_keeps_its_own_retained_messages, retained_are_separate)

/* The same client id in two hosts is two clients: neither takes the other over. */
static void client_ids_are_separate(unsigned shards)
{
    struct e2e_broker *b = start(shards);
    struct e2e_client *d = as(b, E2E_V311, NULL, "vh-same", false, 0);
    struct e2e_client *a = as(b, E2E_V311, "alice@a.example", "vh-same", false, 0);

    cr_assert_eq(e2e_client_subscribe(d, "s/d", 1), 1);
    cr_assert_eq(e2e_client_subscribe(a, "s/a", 1), 1);
    /* Both still connected: a takeover would have closed the first [MQTT-3.1.4-2]. */
    cr_assert_not(e2e_client_wait_closed(d, E2E_QUIET_MS), "the default host's client was closed");
    e2e_client_disconnect(a);
    /* Its own persistent session comes back, in its own host. */
    a = as(b, E2E_V311, "alice@a.example", "vh-same", false, 1);
    struct e2e_client *p = as(b, E2E_V311, "dave@a.example", "vh-spub", true, 0);

    e2e_client_publish(p, "s/a", "to-a", 4, 1, false);
    e2e_client_expect(a, "s/a", "to-a", 1, false);
    e2e_client_expect_no_message(d, E2E_QUIET_MS);
    e2e_client_disconnect(p);
    e2e_client_disconnect(a);
    e2e_client_disconnect(d);
    e2e_broker_stop(b);
}

E2E_TEST_SHARDS(vhosts, a_client_id_belongs_to_its_host, client_ids_are_separate)

/* A shared group of one name in two hosts is two groups. */
static void shared_groups_are_separate(unsigned shards)
{
    struct e2e_broker *b = start(shards);
    struct e2e_client *a = as(b, E2E_V5, "alice@a.example", "vh-ga", true, 0);
    struct e2e_client *o = as(b, E2E_V5, "bob@b.example", "vh-gb", true, 0);
    struct e2e_client *d = as(b, E2E_V5, NULL, "vh-gd", true, 0);

    cr_assert_eq(e2e_client_subscribe(a, "$share/g/q/+", 1), 1);
    cr_assert_eq(e2e_client_subscribe(o, "$share/g/q/+", 1), 1);
    cr_assert_eq(e2e_client_subscribe(d, "$share/g/q/+", 1), 1);
    struct e2e_client *p = as(b, E2E_V311, "erin@b.example", "vh-gp", true, 0);

    for (int i = 0; i < 4; i++)
        e2e_client_publish(p, "q/1", "to-b", 4, 1, false);
    for (int i = 0; i < 4; i++)
        e2e_client_expect(o, "q/1", "to-b", 1, false); /* the only member in host b */
    e2e_client_expect_no_message(a, E2E_QUIET_MS);
    e2e_client_expect_no_message(d, 0);
    e2e_client_disconnect(p);
    e2e_client_disconnect(d);
    e2e_client_disconnect(o);
    e2e_client_disconnect(a);
    e2e_broker_stop(b);
}

E2E_TEST_SHARDS(vhosts, a_shared_group_belongs_to_its_host, shared_groups_are_separate)

/* A will goes out in its client's host. */
E2E_TEST(vhosts, a_will_is_published_in_its_host)
{
    struct e2e_broker *b = start(4);
    struct e2e_client *a = as(b, E2E_V311, "alice@a.example", "vh-wsa", true, 0);
    struct e2e_client *d = as(b, E2E_V311, NULL, "vh-wsd", true, 0);
    struct e2e_will w = {.topic = "w/gone", .payload = "bye", .payload_len = 3, .qos = 1};
    struct e2e_client_opts o = {.version = E2E_V311,
                                .id = "vh-w",
                                .clean = true,
                                .username = "carol@a.example",
                                .will = &w};

    cr_assert_eq(e2e_client_subscribe(a, "w/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(d, "w/#", 1), 1);
    struct e2e_client *c = e2e_client_start(b, &o);

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    e2e_client_abort(c); /* no DISCONNECT: the will goes [MQTT-3.1.2-8] */
    e2e_client_expect(a, "w/gone", "bye", 1, false);
    e2e_client_expect_no_message(d, E2E_QUIET_MS);
    e2e_client_disconnect(d);
    e2e_client_disconnect(a);
    e2e_broker_stop(b);
}

/* A connected v5 client logged in as @user with password "pw". */
static struct e2e_client *login(struct e2e_broker *b, const char *user, const char *id)
{
    struct e2e_client_opts o = {
        .version = E2E_V5, .id = id, .clean = true, .username = user, .password = "pw"};
    struct e2e_client *c = e2e_client_start(b, &o);

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0, "%s logs in", user);
    return c;
}

/*
 * Password entries are per full user name, so per host; ACL rules name
 * users by their full name, and their filters are host-relative.
 */
E2E_TEST(vhosts, passwords_and_acl_rules_belong_to_full_user_names)
{
    static const char *const users[][2] = {{"alice@a.example", "pw"}, {"bob@b.example", "pw"},
                                           {"carol@a.example", "pw"}, {"dave@b.example", "pw"}};
    char dir[256], pw[300], ini[1024];

    e2e_ringmq_only("ringmq's virtual hosts");
    e2e_tmpdir("vhosts", dir, sizeof(dir));
    snprintf(pw, sizeof(pw), "%s/passwd", dir);
    e2e_pwfile_write(pw, users, 4, 101);
    snprintf(ini, sizeof(ini),
             HOSTS "[auth]\npassword_file = %s\n[acl]\npublish = t/# allow alice@a.example\n"
                   "publish = # deny all\nsubscribe = # allow all\n",
             pw);
    struct e2e_broker *b = e2e_broker_start_shards(4, ini);
    /* alice exists in a.example only: alice@b.example is an unknown user (0x86). */
    struct e2e_client_opts wrong = {.version = E2E_V5,
                                    .id = "vh-acl-x",
                                    .clean = true,
                                    .username = "alice@b.example",
                                    .password = "pw"};
    struct e2e_client *x = e2e_client_start(b, &wrong);

    e2e_client_wait_connack(x, 0x86);
    e2e_client_abort(x);
    struct e2e_client *a = login(b, "carol@a.example", "vh-acl-sa");
    struct e2e_client *o = login(b, "dave@b.example", "vh-acl-sb");

    cr_assert_eq(e2e_client_subscribe(a, "t/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(o, "t/#", 1), 1);
    struct e2e_client *alice = login(b, "alice@a.example", "vh-acl-pa");
    struct e2e_client *bob = login(b, "bob@b.example", "vh-acl-pb");

    cr_assert_eq(e2e_client_publish5(alice, "t/1", "ok", 2, 1, false, NULL), 0);
    cr_assert_eq(e2e_client_publish5(bob, "t/1", "no", 2, 1, false, NULL), 0x87,
                 "bob@b.example may not publish: PUBACK 0x87 [MQTT-3.4.2-1]");
    e2e_client_expect(a, "t/1", "ok", 1, false);
    e2e_client_expect_no_message(a, E2E_QUIET_MS);
    e2e_client_expect_no_message(o, 0);
    e2e_client_disconnect(bob);
    e2e_client_disconnect(alice);
    e2e_client_disconnect(o);
    e2e_client_disconnect(a);
    e2e_broker_stop(b);
}

/*
 * [acl.HOST] rules apply to that host's clients only, before the [acl]
 * ones: b.example opens a topic [acl] closes, a.example closes one [acl]
 * opens, the default host has [acl] alone. No password file: the host a
 * user name names is taken as it is, and `all` rules apply in every host.
 */
static void host_acl_rules(unsigned shards)
{
    static const char *const users[] = {NULL, "alice@a.example", "bob@b.example"};
    /* Per host (default, a, b): PUBACK for t/secret and t/extra. */
    static const int secret_rc[] = {0x87, 0x87, 0};
    static const int extra_rc[] = {0, 0x87, 0};
    struct e2e_client *sub[3], *pub[3];
    char id[32];

    e2e_ringmq_only("ringmq's virtual hosts");
    struct e2e_broker *b = e2e_broker_start_shards(
        shards, HOSTS "[acl]\npublish = t/secret deny all\npublish = # allow all\n"
                      "subscribe = # allow all\nsubscribe = $e2e/sync allow all\n"
                      "[acl.a.example]\npublish = t/extra deny all\n"
                      "[acl.b.example]\npublish = t/secret allow all\n");
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof(id), "vh-hacl-s%d", i);
        sub[i] = as(b, E2E_V5, users[i], id, true, 0);
        cr_assert_eq(e2e_client_subscribe(sub[i], "t/#", 1), 1);
        snprintf(id, sizeof(id), "vh-hacl-p%d", i);
        pub[i] = as(b, E2E_V5, users[i], id, true, 0);
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(e2e_client_publish5(pub[i], "t/secret", "s", 1, 1, false, NULL),
                     secret_rc[i], "host %d: t/secret", i);
        cr_assert_eq(e2e_client_publish5(pub[i], "t/extra", "e", 1, 1, false, NULL),
                     extra_rc[i], "host %d: t/extra", i);
        if (secret_rc[i] == 0)
            e2e_client_expect(sub[i], "t/secret", "s", 1, false);
        if (extra_rc[i] == 0)
            e2e_client_expect(sub[i], "t/extra", "e", 1, false);
        e2e_client_expect_no_message(sub[i], i == 0 ? E2E_QUIET_MS : 0);
    }
    for (int i = 0; i < 3; i++) {
        e2e_client_disconnect(pub[i]);
        e2e_client_disconnect(sub[i]);
    }
    e2e_broker_stop(b);
}

E2E_TEST_SHARDS(vhosts, acl_host_rules_apply_in_their_host_before_the_acl_ones, host_acl_rules)

/*
 * A host's prefix takes 3 bytes of MQTT's 65535 [MQTT-1.5.3-1]: a name the
 * default host accepts can be too long in a host, and is refused as too
 * long, never a crash: SUBACK 0x8F for a filter, DISCONNECT 0x90 for a
 * topic [MQTT-3.3.2-1].
 */
E2E_TEST(vhosts, names_too_long_with_the_host_prefix_are_refused)
{
    static char longest[65534];
    struct e2e_broker *b = start(1);

    memset(longest, 'x', sizeof(longest) - 1);
    struct e2e_client *d = as(b, E2E_V5, NULL, "vh-long-d", true, 0);
    struct e2e_client *a = as(b, E2E_V5, "alice@a.example", "vh-long-a", true, 0);

    cr_assert_eq(e2e_client_subscribe5(d, longest, 1, NULL), 1, "fits in the default host");
    cr_assert_eq(e2e_client_subscribe5(a, longest, 1, NULL), 0x8F, "too long in a host");
    cr_assert_eq(e2e_client_subscribe5(a, "t/ok", 1, NULL), 1, "the client goes on");
    (void)e2e_client_publish_async(a, longest, "x", 1, 1, false);
    cr_assert_eq(e2e_client_wait_disconnect_reason(a, E2E_WAIT_MS), 0x90);
    e2e_client_abort(a);
    e2e_client_publish(d, longest, "x", 1, 1, false); /* the broker still serves */
    e2e_client_expect(d, longest, "x", 1, false);
    e2e_client_disconnect(d);
    e2e_broker_stop(b);
}

/*
 * A host's client sees only its own names: its assigned client id, topics
 * sent with Topic Aliases both ways [MQTT-3.3.2-12], UNSUBSCRIBE, and the
 * '$' refusal, all without the host's prefix.
 */
E2E_TEST(vhosts, a_host_client_sees_only_its_own_names)
{
    struct e2e_broker *b = start(4);
    struct e2e_props pr = {.len = 0}, ta = {.len = 0};
    struct e2e_connect_opts o = {
        .version = E2E_V5, .id = "", .clean = true, .username = "alice@a.example"};
    struct e2e_v5pkt ack, m;
    char map[3][64] = {{0}};

    /* The subscriber takes aliases (at most 2) from the broker. */
    e2e_props_u16(&pr, MQTT_PROP_TOPIC_ALIAS_MAXIMUM, 2);
    o.props = &pr;
    int sub = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    const struct e2e_prop *id = e2e_v5pkt_prop(&ack, MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);

    cr_assert_not_null(id, "no Assigned Client Identifier [MQTT-3.2.2-16]");
    cr_assert(id->len > 7 && memcmp(id->data, "ringmq-", 7) == 0,
              "the assigned id comes without the host's prefix");
    e2e_v5pkt_free(&ack);
    cr_assert_eq(e2e_raw_subscribe5(sub, 1, "al/#", 1, NULL), 1);

    o.props = NULL;
    int pub = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0);
    e2e_v5pkt_free(&ack);
    e2e_props_u16(&ta, MQTT_PROP_TOPIC_ALIAS, 1);
    cr_assert_eq(e2e_raw_publish5(pub, "al/x", 1, false, 1, &ta, "one", 3), 0);
    cr_assert_eq(e2e_raw_publish5(pub, "", 1, false, 2, &ta, "two", 3), 0, "alias 1 reused");
    cr_assert_eq(e2e_raw_publish5(pub, "$SYS/x", 1, false, 3, NULL, "no", 2), 0x87,
                 "a '$' topic is the broker's in a host too");
    for (int i = 0; i < 2; i++) {
        e2e_raw_expect5(sub, E2E_PUBLISH, &m);
        const struct e2e_prop *a = e2e_v5pkt_prop(&m, MQTT_PROP_TOPIC_ALIAS);
        const char *topic = m.topic;

        if (a != NULL) {
            cr_assert(a->value >= 1 && a->value <= 2);
            if (m.topic[0] != '\0')
                snprintf(map[a->value], sizeof(map[a->value]), "%s", m.topic);
            topic = map[a->value];
        }
        cr_assert_str_eq(topic, "al/x", "message %d's topic, prefix-free", i);
        e2e_v5pkt_free(&m);
    }
    e2e_raw_ping5(sub); /* nothing else: not the '$' one */
    e2e_raw_disconnect5(pub);
    e2e_raw_disconnect5(sub);

    /* UNSUBSCRIBE in a host removes the host's subscription. */
    struct e2e_client *u = as(b, E2E_V311, "carol@a.example", "vh-unsub", true, 0);
    struct e2e_client *p = as(b, E2E_V311, "dave@a.example", "vh-unsub-p", true, 0);

    cr_assert_eq(e2e_client_subscribe(u, "u/#", 1), 1);
    e2e_client_publish(p, "u/1", "before", 6, 1, false);
    e2e_client_expect(u, "u/1", "before", 1, false);
    e2e_client_unsubscribe(u, "u/#");
    e2e_client_publish(p, "u/1", "after", 5, 1, false);
    e2e_client_expect_no_message(u, E2E_QUIET_MS);
    e2e_client_disconnect(p);
    e2e_client_disconnect(u);
    e2e_broker_stop(b);
}
