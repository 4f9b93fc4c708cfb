/*
 * 25-acl.c - e2e: access control ([acl], [group.NAME], a mosquitto
 * acl_file; issue 14) with real libmosquitto clients, MQTT 3.1.1 and 5.0:
 * a denied PUBLISH is not delivered (v5 PUBACK 0x87; 3.1.1 acknowledged
 * and dropped), a SUBSCRIBE no rule allows is refused (0x87 / 0x80), a '#'
 * subscriber never receives a denied topic, live or retained, on one shard
 * or across four, group rules, %u / %c patterns from a mosquitto file,
 * shared subscriptions judged by their inner filter, and a will to a
 * denied topic refused at CONNECT. All ringmq-only (the harness runs
 * mosquitto without ACLs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/e2e/harness.h"

#define RC_NOT_AUTHORIZED 0x87
#define RC_NOT_AUTHORIZED_V3 5
#define SUBACK_FAILURE_V3 0x80

static char dir[256];
static char pwfile[300];
static char aclfile[300];

/* A password file with alice:secret and bob:secret. */
static void make_files(const char *acl_text)
{
    static const char *const users[][2] = {{"alice", "secret"}, {"bob", "secret"}};
    FILE *f;

    e2e_tmpdir("acl", dir, sizeof(dir));
    snprintf(pwfile, sizeof(pwfile), "%s/passwd", dir);
    e2e_pwfile_write(pwfile, users, 2, 101);
    if (acl_text) {
        snprintf(aclfile, sizeof(aclfile), "%s/acl", dir);
        f = fopen(aclfile, "w");
        cr_assert_not_null(f);
        fputs(acl_text, f);
        cr_assert_eq(fclose(f), 0);
    }
}

/* Start @shards shards with @ini (may name %s once: the password file). */
static struct e2e_broker *start(unsigned shards, const char *ini_fmt, const char *acl_text)
{
    char ini[4096];

    e2e_ringmq_only("ringmq's ACL ([acl], acl_file)");
    make_files(acl_text);
    snprintf(ini, sizeof(ini), ini_fmt, pwfile, aclfile);
    return e2e_broker_start_shards(shards, ini);
}

static struct e2e_client *login(struct e2e_broker *b, int version, const char *id,
                                const char *user)
{
    struct e2e_client_opts o = {.version = version,
                                .id = id,
                                .clean = true,
                                .username = user,
                                .password = user ? "secret" : NULL};
    struct e2e_client *c = e2e_client_start(b, &o);

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    return c;
}

/* The SUBACK failure @version hears for a refused filter [MQTT-3.9.3-2]. */
static int sub_refused(int version)
{
    return version == E2E_V5 ? RC_NOT_AUTHORIZED : SUBACK_FAILURE_V3;
}

/* Publish at QoS 1 where the ACL denies it: v5 hears 0x87, 3.1.1 a plain PUBACK. */
static void publish_denied_q1(struct e2e_client *c, int version, const char *topic)
{
    if (version == E2E_V5)
        cr_assert_eq(e2e_client_publish5(c, topic, "no", 2, 1, false, NULL), RC_NOT_AUTHORIZED,
                     "PUBACK 0x87 Not authorized for %s", topic);
    else
        e2e_client_publish(c, topic, "no", 2, 1, false); /* acknowledged, then dropped */
}

#define OPEN_BUT_DENIED                                                                            \
    "[acl]\n"                                                                                      \
    "publish = denied/# deny all\n"                                                                \
    "publish = # allow all\n"                                                                      \
    "subscribe = secret/# deny all\n"                                                              \
    "subscribe = # allow all\n"                                                                    \
    "subscribe = $e2e/sync allow all\n" /* the harness's barrier */

static void publish_denied(int version)
{
    struct e2e_broker *b = start(1, OPEN_BUT_DENIED, NULL);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);

    cr_assert_eq(e2e_client_subscribe(sub, "#", 1), 1);
    publish_denied_q1(pub, version, "denied/a");
    e2e_client_publish(pub, "denied/b", "no", 2, 0, false); /* QoS 0: dropped silently */
    if (version == E2E_V5)
        cr_assert_eq(e2e_client_publish5(pub, "denied/c", "no", 2, 2, false, NULL),
                     RC_NOT_AUTHORIZED, "PUBREC 0x87 ends the QoS 2 exchange");
    e2e_client_publish(pub, "open/a", "yes", 3, 1, false);
    e2e_client_expect(sub, "open/a", "yes", 1, false);
    e2e_client_expect_no_message(sub, 300);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "ACL denied 3 publishes") ||
              e2e_broker_log_contains(b, "ACL denied 2 publishes"));
}

static void subscribe_denied(int version)
{
    struct e2e_broker *b = start(1, OPEN_BUT_DENIED, NULL);
    struct e2e_client *c = e2e_client_connect(b, version, "sub", true);

    /* A filter no rule allows any topic of: refused [MQTT-3.9.3-2]. */
    cr_assert_eq(e2e_client_subscribe(c, "secret/#", 1), sub_refused(version));
    cr_assert_eq(e2e_client_subscribe(c, "secret/x", 0), sub_refused(version));
    /* Partly denied: granted, and filtered per message. */
    cr_assert_eq(e2e_client_subscribe(c, "+/x", 1), 1);
    e2e_client_publish(c, "secret/x", "no", 2, 1, false);
    e2e_client_publish(c, "open/x", "yes", 3, 1, false);
    e2e_client_expect(c, "open/x", "yes", 1, false);
    e2e_client_expect_no_message(c, 300);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}

/* A '#' subscriber on one shard, the publisher on another: neither live nor retained. */
static void hash_never_gets_denied(unsigned shards)
{
    struct e2e_broker *b = start(shards, OPEN_BUT_DENIED, NULL);
    char sid[64], pid[64];

    e2e_id_on(0, shards, "sub", sid, sizeof(sid));
    e2e_id_on(shards - 1, shards, "pub", pid, sizeof(pid));
    struct e2e_client *pub = e2e_client_connect(b, E2E_V5, pid, true);

    e2e_client_publish(pub, "secret/r", "no", 2, 1, true);
    e2e_client_publish(pub, "open/r", "yes", 3, 1, true);
    struct e2e_client *sub = e2e_client_connect(b, E2E_V5, sid, true);
    cr_assert_eq(e2e_client_subscribe(sub, "#", 1), 1);
    /* Retained on subscribe: checked one by one. */
    e2e_client_expect(sub, "open/r", "yes", 1, true);
    e2e_client_expect_no_message(sub, 300);
    e2e_client_publish(pub, "secret/live", "no", 2, 1, false);
    e2e_client_publish(pub, "open/live", "yes", 3, 1, false);
    e2e_client_expect(sub, "open/live", "yes", 1, false);
    e2e_client_expect_no_message(sub, 300);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}

static void shared_inner_filter(int version)
{
    struct e2e_broker *b = start(1, OPEN_BUT_DENIED, NULL);
    struct e2e_client *m = e2e_client_connect(b, version, "member", true);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);

    cr_assert_eq(e2e_client_subscribe(m, "$share/g/secret/#", 1), sub_refused(version),
                 "judged by its filter secret/#");
    cr_assert_eq(e2e_client_subscribe(m, "$share/g/#", 1), 1);
    e2e_client_publish(pub, "secret/s", "no", 2, 1, false);
    e2e_client_publish(pub, "open/s", "yes", 3, 1, false);
    e2e_client_expect(m, "open/s", "yes", 1, false);
    e2e_client_expect_no_message(m, 300);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(m);
    e2e_broker_stop(b);
}

static void will_denied(int version)
{
    struct e2e_broker *b = start(1, OPEN_BUT_DENIED, NULL);
    struct e2e_will w = {.topic = "denied/will", .payload = "w", .payload_len = 1, .qos = 1};
    struct e2e_client_opts o = {.version = version, .id = "w1", .clean = true, .will = &w};
    struct e2e_client *c = e2e_client_start(b, &o);

    e2e_client_wait_connack(c, version == E2E_V5 ? RC_NOT_AUTHORIZED : RC_NOT_AUTHORIZED_V3);
    cr_assert(e2e_client_wait_closed(c, 3000), "closed after the refusal");
    e2e_client_abort(c);
    w.topic = "open/will";
    c = e2e_client_start(b, &o);
    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}

#define GROUPS                                                                                     \
    "[auth]\npassword_file = %s\nallow_anonymous = true\n"                                         \
    "[group.ops]\nusers = alice\n"                                                                 \
    "[acl]\n"                                                                                      \
    "subscribe = ops/# allow @ops\n"                                                               \
    "publish = ops/# allow @ops\n"                                                                 \
    "subscribe = public/# allow all\n"                                                             \
    "publish = public/# allow anonymous\n"

static void group_rules(int version)
{
    struct e2e_broker *b = start(1, GROUPS, NULL);
    struct e2e_client *alice = login(b, version, "a", "alice");
    struct e2e_client *bob = login(b, version, "b", "bob");
    struct e2e_client *anon = login(b, version, "n", NULL);

    cr_assert_eq(e2e_client_subscribe(alice, "ops/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(bob, "ops/#", 1), sub_refused(version));
    cr_assert_eq(e2e_client_subscribe(bob, "#", 1), 1, "public/# is his");
    publish_denied_q1(bob, version, "ops/x");
    e2e_client_publish(alice, "ops/x", "ops", 3, 1, false);
    e2e_client_expect(alice, "ops/x", "ops", 1, false);
    publish_denied_q1(bob, version, "public/x"); /* anonymous only */
    e2e_client_publish(anon, "public/x", "pub", 3, 1, false);
    e2e_client_expect(bob, "public/x", "pub", 1, false);
    e2e_client_expect_no_message(bob, 300);
    e2e_client_expect_no_message(alice, 100);
    e2e_client_disconnect(alice);
    e2e_client_disconnect(bob);
    e2e_client_disconnect(anon);
    e2e_broker_stop(b);
}

#define MOSQ_FILE                                                                                  \
    "# mosquitto format\n"                                                                         \
    "topic read announce/#\n"                                                                      \
    "pattern readwrite users/%u/#\n"                                                               \
    "pattern read clients/%c/#\n"

static void mosquitto_patterns(int version)
{
    struct e2e_broker *b =
        start(1, "[auth]\npassword_file = %s\nallow_anonymous = true\nacl_file = %s\n",
              MOSQ_FILE);
    struct e2e_client *alice = login(b, version, "cid-a", "alice");
    struct e2e_client *bob = login(b, version, "cid-b", "bob");

    cr_assert_eq(e2e_client_subscribe(alice, "users/alice/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(alice, "users/bob/#", 1), sub_refused(version));
    cr_assert_eq(e2e_client_subscribe(alice, "clients/cid-a/#", 1), 1);
    cr_assert_eq(e2e_client_subscribe(alice, "clients/cid-b/#", 1), sub_refused(version));
    cr_assert_eq(e2e_client_subscribe(alice, "announce/#", 1), sub_refused(version),
                 "topic lines before any user line are for anonymous clients");
    publish_denied_q1(bob, version, "users/alice/x");
    e2e_client_publish(alice, "users/alice/x", "mine", 4, 1, false);
    e2e_client_expect(alice, "users/alice/x", "mine", 1, false);
    e2e_client_expect_no_message(alice, 300);
    e2e_client_disconnect(alice);
    e2e_client_disconnect(bob);
    e2e_broker_stop(b);
}

/*
 * Per-listener ACLs (issue 14): [listener.other] names its own acl_file,
 * the default listener has the [acl] rules. The same topic is denied on
 * one and allowed on the other, to clients connected at once; a reload
 * that swaps which one denies applies to those same connections (their
 * cached verdicts are forgotten).
 */
#define ZONE_ACL_DENY                                                                              \
    "[acl]\n"                                                                                      \
    "publish = zone/# deny all\n"                                                                 \
    "publish = # allow all\n"                                                                      \
    "subscribe = # allow all\n"                                                                    \
    "subscribe = $e2e/sync allow all\n"
#define ZONE_ACL_OPEN                                                                              \
    "[acl]\n"                                                                                      \
    "publish = # allow all\n"                                                                      \
    "subscribe = # allow all\n"                                                                    \
    "subscribe = $e2e/sync allow all\n"
#define ZONE_LISTENER "[listener.other]\nbind = 127.0.0.1\nport = 0\nacl_file = %s\n"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

static void per_listener_acl(int version)
{
    char ini[4096];
    /* Anonymous clients (topic lines before any user line): everything. */
    struct e2e_broker *b = start(1, ZONE_ACL_DENY "%.0s" ZONE_LISTENER,
                                 "topic readwrite #\ntopic readwrite $e2e/sync\n");
    uint16_t first = b->port;
    uint16_t other = e2e_broker_listener_port(b, 1);

    cr_assert_neq(first, other);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    struct e2e_client *here = e2e_client_connect(b, version, "here", true);
    b->port = other;
    struct e2e_client *there = e2e_client_connect(b, version, "there", true);
    b->port = first;
    cr_assert_eq(e2e_client_subscribe(sub, "zone/#", 1), 1);

    publish_denied_q1(here, version, "zone/a");
    e2e_client_publish(there, "zone/b", "b", 1, 1, false);
    e2e_client_expect(sub, "zone/b", "b", 1, false);
    e2e_client_expect_no_message(sub, 300);

    /* Swapped by a reload: the file now denies zone/#, the [acl] rules do not. */
    write_text(aclfile, "topic deny zone/#\ntopic readwrite #\ntopic readwrite $e2e/sync\n");
    snprintf(ini, sizeof(ini),
             "[broker]\nlog_level = debug\n\n[listener.default]\nbind = 127.0.0.1\nport = 0\n\n"
             "[broker]\nshards = 1\n" ZONE_ACL_OPEN ZONE_LISTENER,
             aclfile);
    e2e_broker_write_config(b, ini);
    e2e_broker_reload(b, true);
    e2e_client_publish(here, "zone/a", "a", 1, 1, false);
    e2e_client_expect(sub, "zone/a", "a", 1, false);
    publish_denied_q1(there, version, "zone/b");
    e2e_client_expect_no_message(sub, 300);
    e2e_client_disconnect(here);
    e2e_client_disconnect(there);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}

#define BOTH(name)                                                                                 \
    E2E_TEST(acl, name##_v311)                                                                     \
    {                                                                                              \
        name(E2E_V311);                                                                            \
    }                                                                                              \
    E2E_TEST(acl, name##_v5)                                                                       \
    {                                                                                              \
        name(E2E_V5);                                                                              \
    }

BOTH(publish_denied)
BOTH(subscribe_denied)
BOTH(shared_inner_filter)
BOTH(will_denied)
BOTH(group_rules)
BOTH(mosquitto_patterns)
BOTH(per_listener_acl)

E2E_TEST(acl, hash_never_gets_denied_shards1)
{
    hash_never_gets_denied(1);
}

E2E_TEST(acl, hash_never_gets_denied_shards4)
{
    hash_never_gets_denied(4);
}
