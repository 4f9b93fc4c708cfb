/*
 * test_config_reload.c - config/config_reload: which keys a reload applies
 * and which keep their running value (with the note that says so),
 * listeners matched by name, TLS turned on or off.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_reload.h"

#define NOTES_MAX 16

static char notes[NOTES_MAX][CONFIG_RELOAD_NOTE_MAX];
static uint32_t note_count;

static void note(void *ctx, const char *msg)
{
    cr_assert_eq(ctx, notes);
    cr_assert_lt(note_count, NOTES_MAX);
    snprintf(notes[note_count++], sizeof(notes[0]), "%s", msg);
}

static void load(struct config *cfg, const char *text)
{
    char err[CONFIG_ERR_MAX];

    cr_assert_eq(config__load_buffer(cfg, "t.ini", text, strlen(text), err, sizeof(err)), 0,
                 "%s", err);
}

/* Merge @after over @before; returns the note count. */
static uint32_t merge(struct config *run, struct config *next, const char *before,
                      const char *after)
{
    uint32_t n;

    note_count = 0;
    load(run, before);
    load(next, after);
    n = config_reload_merge(run, next, note, notes);
    cr_assert_eq(n, note_count);
    return n;
}

/* Two files that pass the load's PEM sniffing: @a and @b get their paths. */
static void pem_files(char *a, char *b, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    char dir[200];
    FILE *f;

    snprintf(dir, sizeof(dir), "%s/ringmq-test-reload-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(a, len, "%s/a.pem", dir);
    snprintf(b, len, "%s/b.pem", dir);
    for (int i = 0; i < 2; i++) {
        f = fopen(i == 0 ? a : b, "w");
        cr_assert_not_null(f);
        fputs("-----BEGIN CERTIFICATE-----\n", f);
        cr_assert_eq(fclose(f), 0);
    }
}

static bool noted(const char *want)
{
    for (uint32_t i = 0; i < note_count; i++) {
        if (strcmp(notes[i], want) == 0) {
            return true;
        }
    }
    return false;
}

static void dump(void)
{
    for (uint32_t i = 0; i < note_count; i++) {
        cr_log_info("note: %s", notes[i]);
    }
}

Test(config_reload, applies_log_level_and_auth_without_a_note)
{
    static struct config run, next;

    cr_assert_eq(merge(&run, &next, "[broker]\nlog_level = info\n[listener.a]\nport = 0\n",
                       "[broker]\nlog_level = debug\n[auth]\nallow_anonymous = false\n"
                       "bind_client_id_to_user = false\n[listener.a]\nport = 0\n"),
                 0);
    cr_assert_eq(next.log_level, CONFIG_LOG_DEBUG);
    cr_assert_eq(next.listeners[0].allow_anonymous, CONFIG_OFF);
    cr_assert_not(next.auth.bind_client_id_to_user);
}

Test(config_reload, keeps_limits_and_shards_and_says_each)
{
    static struct config run, next;

    cr_assert_eq(merge(&run, &next, "[broker]\nshards = 2\n[limits]\ninflight_max = 20\n",
                       "[broker]\nshards = auto\n[limits]\ninflight_max = 30\n"
                       "memory_max = 1g\n"),
                 3);
    dump();
    cr_assert_eq(next.shards, 2);
    cr_assert_eq(next.limits.inflight_max, 20);
    cr_assert_eq(next.limits.memory_max, run.limits.memory_max);
    cr_assert(noted("[broker] shards: 2 -> auto needs a restart; keeping 2"));
    cr_assert(noted("[limits] inflight_max: 20 -> 30 needs a restart; keeping 20"));
    cr_assert(noted("[limits] memory_max: auto -> 1073741824 needs a restart; keeping auto"));
}

Test(config_reload, keeps_a_listeners_socket_keys)
{
    static struct config run, next;

    cr_assert_eq(merge(&run, &next, "[listener.a]\nport = 1883\n",
                       "[listener.a]\nport = 1884\nbind = ::1\nprotocol = websockets\n"),
                 3);
    dump();
    cr_assert_eq(next.listeners[0].port, 1883);
    cr_assert_str_eq(next.listeners[0].bind, "127.0.0.1");
    cr_assert_eq(next.listeners[0].protocol, CONFIG_PROTO_MQTT);
    cr_assert(noted("[listener.a] port: 1883 -> 1884 needs a restart; keeping 1883"));
    cr_assert(noted("[listener.a] bind: \"127.0.0.1\" -> \"::1\" needs a restart; keeping "
                    "\"127.0.0.1\""));
    cr_assert(noted("[listener.a] protocol: mqtt -> websockets needs a restart; keeping mqtt"));
}

Test(config_reload, matches_listeners_by_name_and_keeps_their_order_and_count)
{
    static struct config run, next;

    cr_assert_eq(merge(&run, &next,
                       "[listener.a]\nport = 1000\n[listener.b]\nport = 2000\n"
                       "[listener.c]\nport = 3000\n",
                       "[listener.d]\nport = 4000\n[listener.b]\nport = 2000\n"
                       "allow_anonymous = false\n[listener.a]\nport = 1000\n"),
                 2);
    dump();
    cr_assert_eq(next.listener_count, 3);
    cr_assert_str_eq(next.listeners[0].name, "a");
    cr_assert_str_eq(next.listeners[1].name, "b");
    cr_assert_str_eq(next.listeners[2].name, "c");
    cr_assert_eq(next.listeners[1].allow_anonymous, CONFIG_OFF, "b's live key applies");
    cr_assert_eq(next.listeners[2].port, 3000, "c keeps running");
    cr_assert(noted("[listener.c]: removing a listener needs a restart; still listening"));
    cr_assert(noted("[listener.d]: a new listener needs a restart; not listening"));
}

Test(config_reload, applies_tls_keys_while_tls_stays_on)
{
    static struct config run, next;
    char a[256];
    char b[256];
    char before[1024];
    char after[1024];

    pem_files(a, b, sizeof(a));
    snprintf(before, sizeof(before), "[listener.s]\nport = 0\ncertfile = %s\nkeyfile = %s\n", a,
             a);
    snprintf(after, sizeof(after),
             "[listener.s]\nport = 0\ncertfile = %s\nkeyfile = %s\n"
             "tls_version = tlsv1.3\nciphers_tls1.3 = TLS13-AES128-GCM-SHA256\n",
             b, a);
    cr_assert_eq(merge(&run, &next, before, after), 0);
    cr_assert_str_eq(next.listeners[0].certfile, b);
    cr_assert_eq(next.listeners[0].tls_version, CONFIG_TLS_13);
    cr_assert_str_eq(next.listeners[0].ciphers_tls13, "TLS13-AES128-GCM-SHA256");
}

Test(config_reload, turning_tls_on_or_off_needs_a_restart_and_keeps_every_tls_key)
{
    static struct config run, next;
    char a[256];
    char b[256];
    char tls[1024];
    char want[1024];

    pem_files(a, b, sizeof(a));
    snprintf(tls, sizeof(tls), "[listener.s]\nport = 0\ncertfile = %s\ntls_version = tlsv1.3\n",
             a);
    cr_assert_eq(merge(&run, &next, "[listener.s]\nport = 0\n", tls), 1);
    dump();
    snprintf(want, sizeof(want),
             "[listener.s] certfile: \"\" -> \"%s\" turns TLS on, which needs a restart; "
             "keeping \"\"",
             a);
    cr_assert(noted(want));
    cr_assert_str_eq(next.listeners[0].certfile, "");
    cr_assert_eq(next.listeners[0].tls_version, CONFIG_TLS_12);

    cr_assert_eq(merge(&run, &next, tls, "[listener.s]\nport = 0\n"), 1);
    snprintf(want, sizeof(want),
             "[listener.s] certfile: \"%s\" -> \"\" turns TLS off, which needs a restart; "
             "keeping \"%s\"",
             a, a);
    cr_assert(noted(want));
    cr_assert_str_eq(next.listeners[0].certfile, a);
    cr_assert_eq(next.listeners[0].tls_version, CONFIG_TLS_13);
    config_free(&run);
    config_free(&next);
}

Test(config_reload, the_same_file_twice_changes_nothing)
{
    static struct config run, next;
    static const char text[] = "[broker]\nshards = 3\n[limits]\nqueued_max = 7\n"
                               "[listener.a]\nport = 0\n[listener.b]\nport = 0\nbind = ::1\n";

    cr_assert_eq(merge(&run, &next, text, text), 0);
    cr_assert_eq(memcmp(&run.limits, &next.limits, sizeof(run.limits)), 0);
    cr_assert_eq(memcmp(run.listeners, next.listeners, sizeof(run.listeners)), 0);
}
