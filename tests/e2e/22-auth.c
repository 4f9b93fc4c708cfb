/*
 * 22-auth.c - e2e: authentication on CONNECT ([auth], issue 14) with real
 * libmosquitto clients, MQTT 3.1.1 and 5.0: a password file in
 * mosquitto's format (written here with the broker's own core/pwhash),
 * login, wrong password, unknown user, anonymous refused, a listener that
 * overrides [auth], a client id that another user cannot take over,
 * repeated failures answered later and counted, and checks spread over
 * loop iterations under a heavy hash.
 *
 * A refused CONNECT gets a CONNACK with a non-zero code and then the
 * connection closes [MQTT-3.2.2-5] (3.1.1) [MQTT-3.2.2-7] (5.0). 3.1.1
 * clients hear 0x05 Not authorized for every refusal; 5.0 clients 0x86
 * Bad User Name or Password or 0x87 Not authorized. All ringmq-only
 * (the harness runs mosquitto anonymous).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/pwhash.h"
#include "tests/e2e/harness.h"

#define RC_NOT_AUTHORIZED_V3 5
#define RC_BAD_USER_OR_PASSWORD 0x86
#define RC_NOT_AUTHORIZED 0x87

static char pwfile[300];

/* A password file with alice:secret and bob:hunter2 ($7$ with @iterations). */
static void make_pwfile(uint32_t iterations)
{
    static const char *const users[][2] = {{"alice", "secret"}, {"bob", "hunter2"}};
    char dir[256];

    e2e_tmpdir("auth", dir, sizeof(dir));
    snprintf(pwfile, sizeof(pwfile), "%s/passwd", dir);
    e2e_pwfile_write(pwfile, users, 2, iterations);
}

static struct e2e_broker *start(const char *extra_fmt)
{
    char ini[2048];

    e2e_ringmq_only("ringmq's password files and [auth] keys");
    make_pwfile(PWHASH_ITERATIONS);
    snprintf(ini, sizeof(ini), extra_fmt, pwfile);
    return e2e_broker_start(ini);
}

#define LOCKED "[auth]\npassword_file = %s\n"

/* Start a client of @version as @user/@pw (NULL: anonymous) with id @id. */
static struct e2e_client *login(struct e2e_broker *b, int version, const char *id,
                                const char *user, const char *pw)
{
    struct e2e_client_opts o = {
        .version = version, .id = id, .clean = true, .username = user, .password = pw};

    return e2e_client_start(b, &o);
}

/* The refusal @version hears for @v5_rc. */
static int refused(int version, int v5_rc)
{
    return version == E2E_V5 ? v5_rc : RC_NOT_AUTHORIZED_V3;
}

static void login_ok(int version)
{
    struct e2e_broker *b = start(LOCKED);
    struct e2e_client *c = login(b, version, "a1", "alice", "secret");

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    e2e_client_subscribe(c, "t/#", 1);
    e2e_client_publish(c, "t/x", "hi", 2, 1, false);
    e2e_client_expect(c, "t/x", "hi", 1, false);
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "logins 1 ok, 0 failed"));
}

static void wrong_password(int version)
{
    struct e2e_broker *b = start(LOCKED);
    struct e2e_client *c = login(b, version, "a1", "alice", "Secret");

    e2e_client_wait_connack(c, refused(version, RC_BAD_USER_OR_PASSWORD));
    cr_assert(e2e_client_wait_closed(c, 3000), "closed after the refusal [MQTT-3.2.2-5]");
    e2e_client_abort(c);
    /* No password at all is as wrong. */
    c = login(b, version, "a2", "alice", NULL);
    e2e_client_wait_connack(c, refused(version, RC_BAD_USER_OR_PASSWORD));
    e2e_client_abort(c);
    c = login(b, version, "a3", "alice", "secret");
    cr_assert_eq(e2e_client_wait_connack(c, 0), 0, "the right one still gets in");
    e2e_client_disconnect(c);
    e2e_broker_stop(b);
}

static void unknown_user(int version)
{
    struct e2e_broker *b = start(LOCKED);
    struct e2e_client *c = login(b, version, "a1", "mallory", "secret");

    e2e_client_wait_connack(c, refused(version, RC_BAD_USER_OR_PASSWORD));
    cr_assert(e2e_client_wait_closed(c, 3000));
    e2e_client_abort(c);
    e2e_broker_stop(b);
}

static void anonymous_refused(int version)
{
    struct e2e_broker *b = start(LOCKED);
    struct e2e_client *c = login(b, version, "a1", NULL, NULL);

    e2e_client_wait_connack(c, refused(version, RC_NOT_AUTHORIZED));
    cr_assert(e2e_client_wait_closed(c, 3000));
    e2e_client_abort(c);
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "1 refused (anonymous"));
}

/* [listener.open] sets its own: no password file, anonymous on. */
static void listener_overrides_auth(int version)
{
    struct e2e_broker *b = start(LOCKED "[listener.open]\nbind = 127.0.0.1\nport = 0\n"
                                        "password_file =\n");
    uint16_t locked = b->port;
    struct e2e_client *c;

    b->port = e2e_broker_listener_port(b, 1);
    cr_assert_neq(b->port, locked);
    c = login(b, version, "anon", NULL, NULL);
    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    e2e_client_disconnect(c);
    /* There, a user name is not checked (nothing to check it against). */
    c = login(b, version, "anon2", "alice", "whatever");
    cr_assert_eq(e2e_client_wait_connack(c, 0), 0);
    e2e_client_disconnect(c);
    b->port = locked;
    c = login(b, version, "anon3", NULL, NULL);
    e2e_client_wait_connack(c, refused(version, RC_NOT_AUTHORIZED));
    e2e_client_abort(c);
    e2e_broker_stop(b);
}

/* bob cannot take alice's client id; alice's connection stays. */
static void takeover_by_other_user_refused(int version)
{
    struct e2e_broker *b = start(LOCKED);
    struct e2e_client *alice = login(b, version, "shared-id", "alice", "secret");
    struct e2e_client *bob;

    cr_assert_eq(e2e_client_wait_connack(alice, 0), 0);
    e2e_client_subscribe(alice, "t", 1);
    bob = login(b, version, "shared-id", "bob", "hunter2");
    e2e_client_wait_connack(bob, refused(version, RC_NOT_AUTHORIZED));
    e2e_client_abort(bob);
    e2e_client_publish(alice, "t", "still", 5, 1, false);
    e2e_client_expect(alice, "t", "still", 1, false);
    /* The same user takes over as usual [MQTT-3.1.4-2]. */
    struct e2e_client *again = login(b, version, "shared-id", "alice", "secret");
    cr_assert_eq(e2e_client_wait_connack(again, 0), 0);
    cr_assert(e2e_client_wait_closed(alice, 3000), "the old connection is closed [MQTT-3.1.4-2]");
    e2e_client_abort(alice);
    e2e_client_disconnect(again);
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "1 client id takeovers by another user refused"));
}

/* With bind_client_id_to_user off, another user takes over but gets a new session. */
static void takeover_allowed_starts_a_new_session(int version)
{
    struct e2e_broker *b = start(LOCKED "bind_client_id_to_user = off\n");
    struct e2e_client_opts o = {.version = version, .id = "sid", .clean = false,
                                .username = "alice", .password = "secret"};
    struct e2e_client *alice = e2e_client_start(b, &o);
    struct e2e_client *bob;

    cr_assert_eq(e2e_client_wait_connack(alice, 0), 0);
    e2e_client_subscribe(alice, "t", 1);
    o.username = "bob";
    o.password = "hunter2";
    bob = e2e_client_start(b, &o);
    cr_assert_eq(e2e_client_wait_connack(bob, 0), 0, "alice's session is not handed to bob");
    cr_assert(e2e_client_wait_closed(alice, 3000));
    e2e_client_abort(alice);
    e2e_client_publish(bob, "t", "x", 1, 1, false);
    e2e_client_expect_no_message(bob, 300); /* alice's subscription ended with her session */
    e2e_client_disconnect(bob);
    e2e_broker_stop(b);
}

/* The same source (and client id: one shard) failing again and again waits longer each time. */
static void failures_slowed_down_and_counted(int version)
{
    struct e2e_broker *b = start(LOCKED);
    int64_t took[4];

    for (int i = 0; i < 4; i++) {
        int64_t t0 = e2e_now_ms();
        struct e2e_client *c = login(b, version, "guess", "alice", "wrong");

        e2e_client_wait_connack(c, refused(version, RC_BAD_USER_OR_PASSWORD));
        took[i] = e2e_now_ms() - t0;
        e2e_client_abort(c);
    }
    /* 0, 250, 500, 1000 ms (LOGIN_DELAY_BASE_MS doubling). */
    cr_assert_lt(took[0], 250, "the first failure is answered at once (%lld ms)",
                 (long long)took[0]);
    cr_assert_geq(took[2], 450, "third failure: %lld ms", (long long)took[2]);
    cr_assert_geq(took[3], 950, "fourth failure: %lld ms", (long long)took[3]);
    /* A right password still gets in at once, and resets the count. */
    struct e2e_client *ok = login(b, version, "guess", "alice", "secret");
    cr_assert_eq(e2e_client_wait_connack(ok, 0), 0);
    e2e_client_disconnect(ok);
    int64_t t0 = e2e_now_ms();
    struct e2e_client *c = login(b, version, "guess", "alice", "wrong");
    e2e_client_wait_connack(c, refused(version, RC_BAD_USER_OR_PASSWORD));
    cr_assert_lt(e2e_now_ms() - t0, 250, "count reset by a success");
    e2e_client_abort(c);
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "1 ok, 5 failed"));
    cr_assert(e2e_broker_log_contains(b, "3 refusals delayed"));
}

/* A heavy hash: checks go past one loop iteration's budget, all still answered. */
static void heavy_hashes_are_spread_over_iterations(int version)
{
    struct e2e_client *c[6];
    struct e2e_broker *b;
    char ini[512];

    e2e_ringmq_only("ringmq's password files and [auth] keys");
    make_pwfile(20000); /* 5 budgets' worth per check */
    snprintf(ini, sizeof(ini), LOCKED, pwfile);
    b = e2e_broker_start_shards(1, ini); /* one shard's budget and counters */
    for (int i = 0; i < 6; i++) {
        char id[16];

        snprintf(id, sizeof(id), "h%d", i);
        c[i] = login(b, version, id, "bob", i == 5 ? "nope" : "hunter2");
    }
    for (int i = 0; i < 6; i++) {
        e2e_client_wait_connack(c[i], i == 5 ? refused(version, RC_BAD_USER_OR_PASSWORD) : 0);
        e2e_client_abort(c[i]);
    }
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "logins 5 ok, 1 failed"));
    cr_assert_not(e2e_broker_log_contains(b, " 0 checks deferred"),
                  "some checks waited for a later iteration");
}

#define BOTH(name)                                                                                 \
    E2E_TEST(auth, name##_v311)                                                                    \
    {                                                                                              \
        name(E2E_V311);                                                                            \
    }                                                                                              \
    E2E_TEST(auth, name##_v5)                                                                      \
    {                                                                                              \
        name(E2E_V5);                                                                              \
    }

BOTH(login_ok)
BOTH(wrong_password)
BOTH(unknown_user)
BOTH(anonymous_refused)
BOTH(listener_overrides_auth)
BOTH(takeover_by_other_user_refused)
BOTH(takeover_allowed_starts_a_new_session)
BOTH(failures_slowed_down_and_counted)
BOTH(heavy_hashes_are_spread_over_iterations)
