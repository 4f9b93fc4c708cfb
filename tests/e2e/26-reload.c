/*
 * 26-reload.c - e2e: SIGHUP reloads the configuration while clients stay
 * connected (issue 14), with real libmosquitto clients, MQTT 3.1.1 and 5.0:
 * a password file changed under a running broker (a new password and a
 * new user work for new logins, connected clients go on, a removed user is
 * disconnected: v5 DISCONNECT 0x87, 3.1.1 closed), a bad file or password
 * file refused whole with the message --test-config prints (the running
 * configuration stays), the log level changed live, and a key that needs
 * a restart kept and named. All ringmq-only.
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

/* (Re)write the password file with @n users: @users[i][0]:@users[i][1]. */
static void write_pwfile(const char *const (*users)[2], size_t n)
{
    char dir[256];

    if (pwfile[0] == '\0') {
        e2e_tmpdir("reload", dir, sizeof(dir));
        snprintf(pwfile, sizeof(pwfile), "%s/passwd", dir);
    }
    e2e_pwfile_write(pwfile, users, n, PWHASH_ITERATIONS);
}

/* Remove the password file and its directory (end of a test). */
static void remove_pwfile(void)
{
    char *slash = strrchr(pwfile, '/');

    cr_assert_not_null(slash);
    unlink(pwfile);
    *slash = '\0';
    rmdir(pwfile);
    pwfile[0] = '\0';
}

static const char *const before[][2] = {{"alice", "secret"}, {"bob", "hunter2"}};
static const char *const after[][2] = {{"alice", "changed"}, {"carol", "pw3"}};

static struct e2e_broker *start(unsigned shards)
{
    char ini[512];

    e2e_ringmq_only("SIGHUP reload of ringmq's configuration");
    write_pwfile(before, 2);
    snprintf(ini, sizeof(ini), "[auth]\npassword_file = %s\n", pwfile);
    return e2e_broker_start_shards(shards, ini);
}

static struct e2e_client *login(struct e2e_broker *b, int version, const char *id,
                                const char *user, const char *pw)
{
    struct e2e_client_opts o = {
        .version = version, .id = id, .clean = true, .username = user, .password = pw};

    return e2e_client_start(b, &o);
}

static void login_expect(struct e2e_broker *b, int version, const char *id, const char *user,
                         const char *pw, int rc)
{
    struct e2e_client *c = login(b, version, id, user, pw);

    e2e_client_wait_connack(c, rc);
    if (rc == 0) {
        e2e_client_disconnect(c);
    } else {
        e2e_client_abort(c);
    }
}

static void password_file_reload(int version, unsigned shards)
{
    int refused = version == E2E_V5 ? RC_BAD_USER_OR_PASSWORD : RC_NOT_AUTHORIZED_V3;
    struct e2e_broker *b = start(shards);
    struct e2e_client *alice = login(b, version, "alice-1", "alice", "secret");
    struct e2e_client *bob = login(b, version, "bob-1", "bob", "hunter2");
    struct e2e_client *carol;

    cr_assert_eq(e2e_client_wait_connack(alice, 0), 0);
    cr_assert_eq(e2e_client_wait_connack(bob, 0), 0);
    e2e_client_subscribe(alice, "news/#", 1);
    e2e_client_subscribe(bob, "news/#", 1);

    /* alice's password changes, bob goes, carol comes. */
    write_pwfile(after, 2);
    e2e_broker_reload(b, true);

    if (version == E2E_V5) {
        cr_assert_eq(e2e_client_wait_disconnect_reason(bob, E2E_WAIT_MS), RC_NOT_AUTHORIZED,
                     "a removed user hears DISCONNECT 0x87 Not authorized");
    } else {
        cr_assert(e2e_client_wait_closed(bob, E2E_WAIT_MS), "a removed user is disconnected");
    }
    e2e_client_abort(bob);

    /* alice stays (her password changed, but she proved the old one) and is served. */
    carol = login(b, version, "carol-1", "carol", "pw3");
    cr_assert_eq(e2e_client_wait_connack(carol, 0), 0, "a new user logs in");
    e2e_client_publish(carol, "news/a", "after", 5, 1, false);
    e2e_client_expect(alice, "news/a", "after", 1, false);
    e2e_client_disconnect(carol);

    login_expect(b, version, "alice-2", "alice", "secret", refused);
    login_expect(b, version, "alice-3", "alice", "changed", 0);
    login_expect(b, version, "bob-2", "bob", "hunter2", refused);
    e2e_client_disconnect(alice);
    e2e_broker_stop(b);
    cr_assert(e2e_broker_log_contains(b, "reload: disconnected 1 client no longer allowed in"));
    remove_pwfile();
}

E2E_TEST(reload, password_file_v5_on_four_shards)
{
    password_file_reload(E2E_V5, 4);
}

E2E_TEST(reload, password_file_v311_on_one_shard)
{
    password_file_reload(E2E_V311, 1);
}

E2E_TEST(reload, password_file_v311_on_four_shards)
{
    password_file_reload(E2E_V311, 4);
}

E2E_TEST(reload, an_invalid_configuration_is_refused_and_the_old_one_stays)
{
    struct e2e_broker *b = start(2);
    char ini[1024];
    char want[1024];
    size_t mark;

    login_expect(b, E2E_V5, "alice-1", "alice", "secret", 0);

    /* Two bad values: the messages --test-config prints, a line each; nothing changes. */
    snprintf(ini, sizeof(ini),
             "[broker]\nlog_level = debug\nshards = 2\n\n[listener.default]\nbind = 127.0.0.1\n"
             "port = 0\n\n[auth]\npassword_file = %s\nallow_anonymous = true\n"
             "[limits]\ninflight_max = many\nqueued_max = lots\n",
             pwfile);
    e2e_broker_write_config(b, ini);
    write_pwfile(after, 2);
    mark = e2e_broker_reload(b, false);
    snprintf(want, sizeof(want),
             "reload refused, the running configuration stays: %s:13: [limits] inflight_max: "
             "expected an integer 1..65535, got \"many\"",
             b->conf_path);
    cr_assert(e2e_broker_log_contains_after(b, mark, want), "the log names the problem");
    snprintf(want, sizeof(want),
             "reload refused, the running configuration stays: %s:14: [limits] queued_max: "
             "expected an integer 0..10000000, got \"lots\"",
             b->conf_path);
    /* Logged right after the first; allow for the log's writes (bounded). */
    for (int i = 0; i < 100 && !e2e_broker_log_contains_after(b, mark, want); i++)
        e2e_sleep_ms(10);
    cr_assert(e2e_broker_log_contains_after(b, mark, want), "and the next one");
    login_expect(b, E2E_V5, "alice-2", "alice", "secret", 0);
    login_expect(b, E2E_V5, "anon-1", NULL, NULL, RC_NOT_AUTHORIZED);

    /* A bad password file line: refused too, with its FILE:LINE. */
    write_pwfile(before, 2);
    snprintf(ini, sizeof(ini),
             "[broker]\nlog_level = debug\nshards = 2\n\n[listener.default]\nbind = 127.0.0.1\n"
             "port = 0\n\n[auth]\npassword_file = %s\n",
             pwfile);
    e2e_broker_write_config(b, ini);
    {
        FILE *f = fopen(pwfile, "a");

        cr_assert_not_null(f);
        fputs("dave\n", f);
        cr_assert_eq(fclose(f), 0);
    }
    mark = e2e_broker_reload(b, false);
    snprintf(want, sizeof(want), "reload refused, the running configuration stays: %s:3: ",
             pwfile);
    cr_assert(e2e_broker_log_contains_after(b, mark, want), "the password file's line");
    login_expect(b, E2E_V5, "alice-3", "alice", "secret", 0);

    /* Fixed: it applies. */
    write_pwfile(after, 2);
    e2e_broker_reload(b, true);
    login_expect(b, E2E_V5, "alice-4", "alice", "changed", 0);
    e2e_broker_stop(b);
    remove_pwfile();
}

E2E_TEST(reload, the_log_level_changes_and_a_restart_key_is_kept_and_named)
{
    struct e2e_broker *b;
    struct e2e_client *c;
    size_t mark;

    e2e_ringmq_only("SIGHUP reload of ringmq's configuration");
    b = e2e_broker_start_shards(2, NULL);
    e2e_broker_write_config(b, "[broker]\nlog_level = info\nshards = 3\n\n"
                               "[listener.default]\nbind = 127.0.0.1\nport = 0\n");
    mark = e2e_broker_reload(b, true);
    cr_assert(e2e_broker_log_contains_after(
        b, mark, "WARN reload: [broker] shards: 2 -> 3 needs a restart; keeping 2"));
    mark = e2e_broker_log_size(b);
    c = e2e_client_connect(b, E2E_V311, "quiet", true);
    e2e_client_disconnect(c);
    e2e_sleep_ms(E2E_QUIET_MS);
    cr_assert_not(e2e_broker_log_contains_after(b, mark, " DEBUG "), "info: no debug records");

    e2e_broker_write_config(b, "[broker]\nlog_level = debug\nshards = 2\n\n"
                               "[listener.default]\nbind = 127.0.0.1\nport = 0\n");
    mark = e2e_broker_reload(b, true);
    cr_assert_not(e2e_broker_log_contains_after(b, mark, "needs a restart"), "shards = 2 again");
    c = e2e_client_connect(b, E2E_V311, "loud", true);
    e2e_client_disconnect(c);
    e2e_broker_check_alive(b);
    cr_assert(e2e_broker_log_contains_after(b, mark, " DEBUG "), "debug records again");
    e2e_broker_stop(b);
}
