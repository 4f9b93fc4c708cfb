/*
 * test_config.c - config/: defaults, the shipped file, every kind of error
 * (with its exact FILE:LINE message), size suffixes and listener sections.
 *
 * Each test writes its INI text to a file under a fresh mkdtemp() directory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_keys.h"

static char dir[200];
static char path[256];
static char err[CONFIG_ERR_MAX];
static char want[1024];
static char msgbuf[512];
static struct config cfg;

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof(dir), "%s/ringmq-test-config-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/t.ini", dir);
    memset(err, 0, sizeof(err));
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_file(const char *p, const char *text, size_t len)
{
    FILE *f = fopen(p, "w");

    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    cr_assert_eq(fwrite(text, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Write @text to the test file and load it over cfg. */
static int load(const char *text)
{
    write_file(path, text, strlen(text));
    return config_load(&cfg, path, err, sizeof(err));
}

/* Load @text, expect failure with exactly "PATH:@line: @msg". */
static void expect_error(const char *text, unsigned line, const char *msg)
{
    cr_assert_eq(load(text), -1, "loaded:\n%s", text);
    if (line > 0) {
        snprintf(want, sizeof(want), "%s:%u: %s", path, line, msg);
    } else {
        snprintf(want, sizeof(want), "%s: %s", path, msg);
    }
    cr_assert_str_eq(err, want);
}

static void expect_defaults(const struct config *c)
{
    struct config d;

    config_defaults(&d);
    cr_assert_eq(memcmp(c, &d, sizeof(d)), 0);
}

/* The source tree: RINGMQ_SRC if set, else derived from this file's path. */
static void src_path(char *buf, size_t len, const char *rel)
{
    const char *src = getenv("RINGMQ_SRC");
    const char *me = __FILE__;
    const char *tail = strstr(me, "tests/unit/test_config.c");

    if (src != NULL && src[0] != '\0') {
        snprintf(buf, len, "%s/%s", src, rel);
    } else {
        cr_assert_not_null(tail, "cannot locate the source tree from %s", me);
        snprintf(buf, len, "%.*s%s", (int)(tail - me), me, rel);
    }
}

Test(config, defaults_match_the_documented_values)
{
    struct config c;

    memset(&c, 0xa5, sizeof(c));
    config_defaults(&c);
    cr_assert_eq(c.log_level, CONFIG_LOG_INFO);
    cr_assert_eq(c.shards, 0, "auto");
    cr_assert_eq(c.limits.packet_bytes_max, 1048576);
    cr_assert_eq(c.limits.client_id_bytes_max, 1024);
    cr_assert_eq(c.limits.topic_bytes_max, 65535);
    cr_assert_eq(c.limits.topic_levels_max, 128);
    cr_assert_eq(c.limits.subs_per_client_max, 10000);
    cr_assert_eq(c.limits.inflight_max, 20);
    cr_assert_eq(c.limits.inflight_in_max, 1024);
    cr_assert_eq(c.limits.queued_max, 1000);
    cr_assert_eq(c.limits.output_bytes_max, 8388608);
    cr_assert_eq(c.limits.retained_max, 1000000);
    cr_assert_eq(c.limits.connect_timeout_ms, 10000);
    cr_assert_eq(c.limits.connections_max, 100000);
    cr_assert_eq(c.limits.connections_per_address_max, 0, "no per-address limit");
    cr_assert_eq(c.limits.accept_rate_max, 10000);
    cr_assert_eq(c.limits.memory_max, LIMITS_MEMORY_AUTO, "resolved at start-up");
    cr_assert(c.limits.allow_zero_length_client_id);
    cr_assert_eq(c.limits.max_qos, 2);
    cr_assert(c.limits.retain_available);
    cr_assert(c.limits.wildcard_subscriptions);
    cr_assert(c.limits.subscription_identifiers);
    cr_assert(c.limits.shared_subscriptions);
    cr_assert_eq(c.limits.topic_alias_max, 10);
    cr_assert_eq(c.limits.keepalive_max_s, 0, "the client's keep alive stands");
    cr_assert_not(c.limits.auth_test_method, "the test-only AUTH method is off");
    cr_assert_eq(c.listener_count, 1);
    cr_assert_str_eq(c.listeners[0].name, "default");
    cr_assert_str_eq(c.listeners[0].bind, "127.0.0.1");
    cr_assert_eq(c.listeners[0].port, 1883);
    cr_assert_eq(c.listeners[0].backlog, 1024);
}

Test(config, log_level_names_parse_and_unknown_ones_do_not)
{
    cr_assert_eq(config_log_level_parse("error"), CONFIG_LOG_ERROR);
    cr_assert_eq(config_log_level_parse("warn"), CONFIG_LOG_WARN);
    cr_assert_eq(config_log_level_parse("info"), CONFIG_LOG_INFO);
    cr_assert_eq(config_log_level_parse("debug"), CONFIG_LOG_DEBUG);
    cr_assert_eq(config_log_level_parse("DEBUG"), -1);
    cr_assert_eq(config_log_level_parse(""), -1);
}

Test(config, shipped_file_loads_and_equals_the_defaults)
{
    char shipped[PATH_MAX];

    src_path(shipped, sizeof(shipped), "config/ringmq.ini");
    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(config_load(&cfg, shipped, err, sizeof(err)), 0, "%s", err);
    expect_defaults(&cfg);
}

Test(config, shipped_file_lists_every_key_with_a_comment_above_it)
{
    const struct config__key *keys;
    char shipped[PATH_MAX];
    char text[16384];
    char needle[128];
    size_t count;
    size_t n;
    size_t i;
    FILE *f;

    src_path(shipped, sizeof(shipped), "config/ringmq.ini");
    f = fopen(shipped, "r");
    cr_assert_not_null(f, "%s: %s", shipped, strerror(errno));
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    keys = config__keys(&count);
    cr_assert_gt(count, 0);
    for (i = 0; i < count; i++) {
        const char *at;

        snprintf(needle, sizeof(needle), "\n%s =", keys[i].name);
        at = strstr(text, needle);
        cr_assert_not_null(at, "key %s missing from %s", keys[i].name, shipped);
        /* The line before it is a "; " comment. */
        cr_assert(at - text >= 2);
        for (at--; at > text && at[-1] != '\n'; at--) {
        }
        cr_assert_eq(*at, ';', "no comment above %s", keys[i].name);
    }
}

Test(config, empty_and_comment_only_files_give_the_defaults)
{
    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(load(""), 0, "%s", err);
    expect_defaults(&cfg);
    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(load("; nothing\n# here\n\n   \n"), 0, "%s", err);
    expect_defaults(&cfg);
}

Test(config, keys_set_their_fields)
{
    cr_assert_eq(load("[broker]\n"
                      "log_level = debug\n"
                      "[limits]\n"
                      "inflight_max = 7\n"
                      "queued_max = 0\n"
                      "connect_timeout_ms = 100\n"
                      "allow_zero_length_client_id = false\n"
                      "topic_levels_max: 9\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.log_level, CONFIG_LOG_DEBUG);
    cr_assert_eq(cfg.limits.inflight_max, 7);
    cr_assert_eq(cfg.limits.queued_max, 0);
    cr_assert_eq(cfg.limits.connect_timeout_ms, 100);
    cr_assert_not(cfg.limits.allow_zero_length_client_id);
    cr_assert_eq(cfg.limits.topic_levels_max, 9);
    cr_assert_eq(cfg.limits.subs_per_client_max, 10000, "untouched keys keep defaults");
}

Test(config, shards_take_auto_or_a_count)
{
    cr_assert_eq(load("[broker]\nshards = 4\n"), 0, "%s", err);
    cr_assert_eq(cfg.shards, 4);
    cr_assert_eq(load("[broker]\nshards = auto\n"), 0, "%s", err);
    cr_assert_eq(cfg.shards, 0);
    expect_error("[broker]\nshards = 0\n", 2,
                 "[broker] shards: out of range: expected auto or an integer 1..256, got \"0\"");
    expect_error("[broker]\nshards = many\n", 2,
                 "[broker] shards: expected auto or an integer 1..256, got \"many\"");
}

Test(config, hosts_are_split_trimmed_and_checked)
{
    cr_assert_eq(load("[broker]\nhosts = a.example ,b.example,\tc\n"), 0, "%s", err);
    cr_assert_eq(cfg.hosts.count, 3);
    cr_assert_str_eq(cfg.hosts.name[0], "a.example");
    cr_assert_str_eq(cfg.hosts.name[1], "b.example");
    cr_assert_str_eq(cfg.hosts.name[2], "c");
    cr_assert_eq(cfg.hosts.len[1], 9);
    config_free(&cfg);
    expect_error("[broker]\nhosts = a.example, b/c\n", 2,
                 "[broker] hosts: a host name may not contain spaces, control bytes or any of "
                 "@/+#$: 'b/c'");
    expect_error("[broker]\nhosts = a, , b\n", 2, "[broker] hosts: an empty host name: ''");
    expect_error("[broker]\nhosts = a, b, a\n", 2, "[broker] hosts: a host named twice: 'a'");
    expect_error("[broker]\nhosts = x y\n", 2,
                 "[broker] hosts: a host name may not contain spaces, control bytes or any of "
                 "@/+#$: 'x y'");
}

Test(config, pin_shards_is_off_unless_asked)
{
    cr_assert_eq(load("[broker]\nshards = 2\n"), 0, "%s", err);
    cr_assert_not(cfg.pin_shards);
    cr_assert_eq(load("[broker]\npin_shards = true\n"), 0, "%s", err);
    cr_assert(cfg.pin_shards);
    expect_error("[broker]\npin_shards = 2\n", 2,
                 "[broker] pin_shards: expected true or false, got \"2\"");
}

Test(config, log_format_and_log_dest_are_checked_with_their_line)
{
    char text[600];

    cr_assert_eq(load("[broker]\nlog_format = json\nlog_dest = syslog\n"), 0, "%s", err);
    cr_assert_eq(cfg.log_format, CONFIG_LOG_JSON);
    cr_assert_str_eq(cfg.log_dest, "syslog");
    snprintf(text, sizeof(text), "[broker]\nlog_dest = file   %s/ringmq.log\n", dir);
    cr_assert_eq(load(text), 0, "%s", err);
    expect_error("[broker]\nlog_format = xml\n", 2,
                 "[broker] log_format: expected one of text, json, got \"xml\"");
    expect_error("[broker]\n\nlog_dest = journal\n", 3,
                 "[broker] log_dest: expected stderr, syslog or file PATH, got \"journal\"");
    expect_error("[broker]\nlog_dest = file\n", 2,
                 "[broker] log_dest: expected stderr, syslog or file PATH, got \"file\"");
    snprintf(text, sizeof(text), "[broker]\nlog_dest = file %s/no/such/dir/ringmq.log\n", dir);
    snprintf(msgbuf, sizeof(msgbuf),
             "[broker] log_dest: cannot write '%s/no/such/dir/ringmq.log': No such file or "
             "directory",
             dir);
    expect_error(text, 2, msgbuf);
}

Test(config, booleans_accept_true_false_yes_no_on_off_1_0)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    char text[128];
    size_t i;

    for (i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), "[limits]\nallow_zero_length_client_id = %s\n", no[i]);
        cr_assert_eq(load(text), 0, "%s", err);
        cr_assert_not(cfg.limits.allow_zero_length_client_id, "%s", no[i]);
        snprintf(text, sizeof(text), "[limits]\nallow_zero_length_client_id = %s\n", yes[i]);
        cr_assert_eq(load(text), 0, "%s", err);
        cr_assert(cfg.limits.allow_zero_length_client_id, "%s", yes[i]);
    }
}

Test(config, size_suffixes_multiply_by_powers_of_1024)
{
    cr_assert_eq(load("[limits]\npacket_bytes_max = 64k\noutput_bytes_max = 3M\n"
                      "client_id_bytes_max = 1K\ntopic_bytes_max = 100\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.limits.packet_bytes_max, 64 * 1024);
    cr_assert_eq(cfg.limits.output_bytes_max, 3 * 1024 * 1024);
    cr_assert_eq(cfg.limits.client_id_bytes_max, 1024);
    cr_assert_eq(cfg.limits.topic_bytes_max, 100);

    cr_assert_eq(load("[limits]\noutput_bytes_max = 3g\npacket_bytes_max = 256m\n"), 0, "%s", err);
    cr_assert_eq(cfg.limits.output_bytes_max, 3u * 1024 * 1024 * 1024);
    cr_assert_eq(cfg.limits.packet_bytes_max, 256u * 1024 * 1024);
    cr_assert_eq(load("[limits]\npacket_bytes_max = 268435460\noutput_bytes_max = 1g\n"), 0, "%s",
                 err);
    cr_assert_eq(cfg.limits.packet_bytes_max, 268435460u);
}

Test(config, size_out_of_range_after_the_suffix_is_an_error)
{
    expect_error("[limits]\noutput_bytes_max = 4g\n", 2,
                 "[limits] output_bytes_max: out of range: expected a size in bytes "
                 "2..4294967295 (suffix k, m or g allowed), got \"4g\"");
    expect_error("[limits]\npacket_bytes_max = 1g\n", 2,
                 "[limits] packet_bytes_max: out of range: expected a size in bytes "
                 "2..268435460 (suffix k, m or g allowed), got \"1g\"");
}

Test(config, size_suffixes_only_on_size_keys)
{
    expect_error("[limits]\ninflight_max = 1k\n", 2,
                 "[limits] inflight_max: expected an integer 1..65535, got \"1k\"");
    expect_error("[limits]\npacket_bytes_max = 1kb\n", 2,
                 "[limits] packet_bytes_max: expected a size in bytes 2..268435460 "
                 "(suffix k, m or g allowed), got \"1kb\"");
    expect_error("[limits]\npacket_bytes_max = k\n", 2,
                 "[limits] packet_bytes_max: expected a size in bytes 2..268435460 "
                 "(suffix k, m or g allowed), got \"k\"");
}

Test(config, bad_integer_says_what_was_expected)
{
    expect_error("[limits]\n\ninflight_max = abc\n", 3,
                 "[limits] inflight_max: expected an integer 1..65535, got \"abc\"");
    expect_error("[limits]\ninflight_max = -1\n", 2,
                 "[limits] inflight_max: expected an integer 1..65535, got \"-1\"");
    expect_error("[limits]\ninflight_max = 0x10\n", 2,
                 "[limits] inflight_max: expected an integer 1..65535, got \"0x10\"");
    expect_error("[limits]\ninflight_max =\n", 2,
                 "[limits] inflight_max: expected an integer 1..65535, got \"\"");
}

Test(config, integer_out_of_range_is_an_error)
{
    expect_error("[limits]\ninflight_max = 65536\n", 2,
                 "[limits] inflight_max: out of range: expected an integer 1..65535, "
                 "got \"65536\"");
    expect_error("[limits]\ninflight_max = 0\n", 2,
                 "[limits] inflight_max: out of range: expected an integer 1..65535, "
                 "got \"0\"");
    expect_error("[limits]\nqueued_max = 99999999999999999999999\n", 2,
                 "[limits] queued_max: out of range: expected an integer 0..10000000, "
                 "got \"99999999999999999999999\"");
    expect_error("[limits]\nconnect_timeout_ms = 99\n", 2,
                 "[limits] connect_timeout_ms: out of range: expected a duration in "
                 "milliseconds 100..3600000, got \"99\"");
}

Test(config, admission_and_memory_keys_set_their_fields)
{
    cr_assert_eq(load("[limits]\n"
                      "connections_per_address_max = 2\n"
                      "accept_rate_max = 0\n"
                      "memory_max = 512m\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.limits.connections_per_address_max, 2);
    cr_assert_eq(cfg.limits.accept_rate_max, 0, "0 = no limit");
    cr_assert_eq(cfg.limits.memory_max, 512ull << 20);
    cr_assert_eq(load("[limits]\nmemory_max = 0\n"), 0, "%s", err);
    cr_assert_eq(cfg.limits.memory_max, 0, "0 = off");
    cr_assert_eq(load("[limits]\nmemory_max = 64g\n"), 0, "%s", err);
    cr_assert_eq(cfg.limits.memory_max, 64ull << 30, "sizes are 64-bit");
    cr_assert_eq(load("[limits]\nmemory_max = auto\n"), 0, "%s", err);
    cr_assert_eq(cfg.limits.memory_max, LIMITS_MEMORY_AUTO);
    cr_assert_eq(load("[limits]\nmemory_max = 1125899906842624\n"), 0, "%s", err);
    cr_assert_eq(cfg.limits.memory_max, 1ull << 50, "the largest size");
}

Test(config, admission_and_memory_errors_name_file_line_and_key)
{
    expect_error("[limits]\naccept_rate_max = 10000001\n", 2,
                 "[limits] accept_rate_max: out of range: expected an integer 0..10000000, "
                 "got \"10000001\"");
    expect_error("[limits]\naccept_rate_max = 10k\n", 2,
                 "[limits] accept_rate_max: expected an integer 0..10000000, got \"10k\"");
    expect_error("[limits]\n\nconnections_per_address_max = -1\n", 3,
                 "[limits] connections_per_address_max: expected an integer 0..10000000, "
                 "got \"-1\"");
    expect_error("[limits]\nconnections_per_address_max = 10000001\n", 2,
                 "[limits] connections_per_address_max: out of range: expected an integer "
                 "0..10000000, got \"10000001\"");
    expect_error("[limits]\nmemory_max = lots\n", 2,
                 "[limits] memory_max: expected auto or a size in bytes 0..1125899906842624 "
                 "(suffix k, m or g allowed), got \"lots\"");
    expect_error("[limits]\nmemory_max = Auto\n", 2,
                 "[limits] memory_max: expected auto or a size in bytes 0..1125899906842624 "
                 "(suffix k, m or g allowed), got \"Auto\"");
    expect_error("[limits]\nmemory_max = 1048577g\n", 2,
                 "[limits] memory_max: out of range: expected auto or a size in bytes "
                 "0..1125899906842624 (suffix k, m or g allowed), got \"1048577g\"");
    /* The stored value of auto is not a size one can write. */
    expect_error("[limits]\nmemory_max = 18446744073709551615\n", 2,
                 "[limits] memory_max: out of range: expected auto or a size in bytes "
                 "0..1125899906842624 (suffix k, m or g allowed), "
                 "got \"18446744073709551615\"");
    expect_error("[limits]\nmemory_max = 1m\nmemory_max = 2m\n", 3,
                 "[limits] memory_max: duplicate key (first set on line 2)");
    expect_error("[broker]\nmemory_max = 1m\n", 2,
                 "[broker] memory_max: unknown key (it belongs in [limits])");
}

Test(config, bad_bool_enum_and_address_say_what_was_expected)
{
    expect_error("[limits]\nallow_zero_length_client_id = maybe\n", 2,
                 "[limits] allow_zero_length_client_id: expected true or false, "
                 "got \"maybe\"");
    expect_error("[broker]\nlog_level = verbose\n", 2,
                 "[broker] log_level: expected one of error, warn, info, debug, "
                 "got \"verbose\"");
    expect_error("[listener.a]\nbind = localhost\n", 2,
                 "[listener.a] bind: expected a numeric IPv4 or IPv6 address, "
                 "got \"localhost\"");
    expect_error("[listener.a]\nbind = 1.2.3.256\n", 2,
                 "[listener.a] bind: expected a numeric IPv4 or IPv6 address, "
                 "got \"1.2.3.256\"");
}

Test(config, unknown_section_is_an_error_even_when_empty)
{
#define SECTIONS                                                                                   \
    "(expected [broker], [limits], [mqtt], [auth], [acl], [acl.HOST], [group.NAME], "              \
    "[persistence], [metrics], [admin] or [listener.NAME])"
    expect_error("[broker]\nlog_level = info\n[brokers]\n", 3,
                 "[brokers]: unknown section " SECTIONS);
    expect_error("[listener]\nport = 1\n", 1, "[listener]: unknown section " SECTIONS);
    /* Near misses of the new sections are not taken for them. */
    expect_error("[mqtt5]\nmax_qos = 1\n", 1, "[mqtt5]: unknown section " SECTIONS);
    expect_error("[MQTT]\n", 1, "[MQTT]: unknown section " SECTIONS);
    expect_error("[limits]\n[authentication]\ntest_method = true\n", 2,
                 "[authentication]: unknown section " SECTIONS);
    expect_error("[acls]\n", 1, "[acls]: unknown section " SECTIONS);
    expect_error("[group]\n", 1, "[group]: unknown section " SECTIONS);
#undef SECTIONS
}

Test(config, unknown_key_suggests_the_closest_known_key)
{
    expect_error("[limits]\npacket_byte_max = 10\n", 2,
                 "[limits] packet_byte_max: unknown key (did you mean packet_bytes_max?)");
    expect_error("[listener.x]\nprot = 10\n", 2,
                 "[listener.x] prot: unknown key (did you mean port?)");
    expect_error("[limits]\nfrobnicate = 1\n", 2, "[limits] frobnicate: unknown key");
    /* A key of another section is unknown here, and the message says where it goes. */
    expect_error("[broker]\ninflight_max = 1\n", 2,
                 "[broker] inflight_max: unknown key (it belongs in [limits])");
    expect_error("[limits]\nmax_qos = 1\n", 2,
                 "[limits] max_qos: unknown key (it belongs in [mqtt])");
    expect_error("[mqtt]\ntest_method = true\n", 2,
                 "[mqtt] test_method: unknown key (it belongs in [auth])");
    expect_error("[mqtt]\nport = 1\n", 2,
                 "[mqtt] port: unknown key (it belongs in [listener.NAME])");
}

Test(config, unknown_key_in_mqtt_and_auth_suggests_the_closest_known_key)
{
    expect_error("[mqtt]\nmax_qso = 1\n", 2,
                 "[mqtt] max_qso: unknown key (did you mean max_qos?)");
    expect_error("[mqtt]\n\nretain_avaliable = true\n", 3,
                 "[mqtt] retain_avaliable: unknown key (did you mean retain_available?)");
    expect_error("[mqtt]\nkeepalive_max_s = 60\n", 2,
                 "[mqtt] keepalive_max_s: unknown key (did you mean keepalive_max?)");
    expect_error("[mqtt]\nshared_subscription = false\n", 2,
                 "[mqtt] shared_subscription: unknown key (did you mean shared_subscriptions?)");
    expect_error("[mqtt]\ntopic_alias_maximum = 5\n", 2,
                 "[mqtt] topic_alias_maximum: unknown key");
    expect_error("[auth]\ntest_methods = true\n", 2,
                 "[auth] test_methods: unknown key (did you mean test_method?)");
    expect_error("[auth]\npasword_file = x\n", 2,
                 "[auth] pasword_file: unknown key (did you mean password_file?)");
}

Test(config, duplicate_key_names_both_lines)
{
    expect_error("[limits]\ninflight_max = 1\n; again\ninflight_max = 2\n", 4,
                 "[limits] inflight_max: duplicate key (first set on line 2)");
    /* Also across two [limits] sections. */
    expect_error("[limits]\ninflight_max = 1\n[broker]\n[limits]\ninflight_max = 2\n", 5,
                 "[limits] inflight_max: duplicate key (first set on line 2)");
    expect_error("[listener.a]\nport = 1\nport = 2\n", 3,
                 "[listener.a] port: duplicate key (first set on line 2)");
}

Test(config, same_key_in_two_listeners_is_not_a_duplicate)
{
    cr_assert_eq(load("[listener.a]\nport = 1\n[listener.b]\nport = 2\n"), 0, "%s", err);
    cr_assert_eq(cfg.listeners[0].port, 1);
    cr_assert_eq(cfg.listeners[1].port, 2);
}

Test(config, malformed_lines_are_reported_by_line)
{
    expect_error("[limits]\ninflight_max 5\n", 2,
                 "malformed line (expected [section], key = value or a ; comment)");
    expect_error("[limits\ninflight_max = 5\n", 1,
                 "malformed line (expected [section], key = value or a ; comment)");
    expect_error("[limits]\n= 5\n", 2, "[limits]: missing key name before '='");
}

/* Load @text, expect failure with exactly @n lines "PATH:@lines[i]: @msgs[i]", in order. */
static void expect_errors(const char *text, size_t n, const unsigned *lines,
                          const char *const *msgs)
{
    char all[4096] = "";
    size_t used = 0;

    cr_assert_eq(load(text), -1, "loaded:\n%s", text);
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(all + used, sizeof(all) - used, "%s%s:%u: %s", i ? "\n" : "", path,
                         lines[i], msgs[i]);
        cr_assert(k > 0 && (size_t)k < sizeof(all) - used);
        used += (size_t)k;
    }
    cr_assert_str_eq(err, all);
}

Test(config, every_problem_is_reported_in_line_order)
{
    /* A malformed line (inih's kind) and one of ours, either way round: both told. */
    static const unsigned l1[] = {2, 3};
    static const char *const m1[] = {
        "malformed line (expected [section], key = value or a ; comment)",
        "[limits] inflight_max: out of range: expected an integer 1..65535, got \"0\""};
    expect_errors("[limits]\ngarbage\ninflight_max = 0\n", 2, l1, m1);
    static const unsigned l2[] = {2, 3};
    static const char *const m2[] = {
        "[limits] inflight_max: out of range: expected an integer 1..65535, got \"0\"",
        "malformed line (expected [section], key = value or a ; comment)"};
    expect_errors("[limits]\ninflight_max = 0\ngarbage\n", 2, l2, m2);
}

Test(config, three_independent_mistakes_give_three_lines)
{
    /* A bad value, an unknown key, a cross-key rule: each its own line, and nothing else. */
    static const unsigned lines[] = {2, 4, 7};
    static const char *const msgs[] = {
        "[mqtt] max_qos: out of range: expected an integer 0..2, got \"3\"",
        "[limits] packet_byte_max: unknown key (did you mean packet_bytes_max?)",
        "[listener.b] port: 127.0.0.1:1883 is already used by [listener.a] (line 5)"};
    expect_errors("[mqtt]\nmax_qos = 3\n[limits]\npacket_byte_max = 5\n"
                  "[listener.a]\n[listener.b]\nport = 1883\n",
                  3, lines, msgs);
}

Test(config, keys_under_a_refused_header_add_no_problem)
{
    /* An unknown section, a malformed header: their keys are not told again. */
    static const unsigned lines[] = {1, 3, 6};
    static const char *const msgs[] = {
        ("[brokers]: unknown section (expected [broker], [limits], [mqtt], [auth], [acl], "
         "[acl.HOST], [group.NAME], [persistence], [metrics], [admin] or [listener.NAME])"),
        "malformed line (expected [section], key = value or a ; comment)",
        "[limits] inflight_max: expected an integer 1..65535, got \"x\""};
    expect_errors("[brokers]\nshards = 2\n[mqtt\nmax_qos = 9\n[limits]\ninflight_max = x\n", 3,
                  lines, msgs);
}

Test(config, key_before_any_section_is_an_error)
{
    expect_error("; top\ninflight_max = 5\n", 2,
                 "inflight_max: key outside any section (expected [broker], [limits], [mqtt], "
                 "[auth], [acl], [acl.HOST], [group.NAME], [persistence], [metrics], [admin] "
                 "or [listener.NAME] above it)");
}

Test(config, failure_leaves_the_callers_config_untouched)
{
    struct config before;

    memset(&cfg, 0x5a, sizeof(cfg));
    memcpy(&before, &cfg, sizeof(cfg));
    cr_assert_eq(load("[limits]\ninflight_max = 3\nqueued_max = x\n"), -1);
    cr_assert_eq(memcmp(&cfg, &before, sizeof(cfg)), 0);
}

Test(config, missing_file_says_cannot_open_with_strerror)
{
    snprintf(path, sizeof(path), "%s/nope.ini", dir);
    cr_assert_eq(config_load(&cfg, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    cr_assert_str_eq(err, want);
}

Test(config, directory_says_cannot_read)
{
    cr_assert_eq(config_load(&cfg, dir, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot read: %s", dir, strerror(EISDIR));
    cr_assert_str_eq(err, want);
}

Test(config, listener_sections_replace_the_default_listener)
{
    cr_assert_eq(load("[listener.plain]\n"
                      "bind = 0.0.0.0\n"
                      "port = 1884\n"
                      "backlog = 16\n"
                      "[listener.v6]\n"
                      "bind = ::1\n"
                      "port = 0\n"
                      "[listener.empty-one_2]\n"
                      "port = 1885\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.listener_count, 3);
    cr_assert_str_eq(cfg.listeners[0].name, "plain");
    cr_assert_str_eq(cfg.listeners[0].bind, "0.0.0.0");
    cr_assert_eq(cfg.listeners[0].port, 1884);
    cr_assert_eq(cfg.listeners[0].backlog, 16);
    cr_assert_str_eq(cfg.listeners[1].name, "v6");
    cr_assert_str_eq(cfg.listeners[1].bind, "::1");
    cr_assert_eq(cfg.listeners[1].port, 0);
    cr_assert_eq(cfg.listeners[1].backlog, 1024, "default backlog");
    cr_assert_str_eq(cfg.listeners[2].name, "empty-one_2");
    cr_assert_str_eq(cfg.listeners[2].bind, "127.0.0.1", "default bind");
}

Test(config, empty_listener_section_gets_the_defaults)
{
    cr_assert_eq(load("[listener.only]\n"), 0, "%s", err);
    cr_assert_eq(cfg.listener_count, 1);
    cr_assert_str_eq(cfg.listeners[0].name, "only");
    cr_assert_str_eq(cfg.listeners[0].bind, "127.0.0.1");
    cr_assert_eq(cfg.listeners[0].port, 1883);
}

Test(config, listener_names_up_to_63_characters_are_kept_whole)
{
    char name[80];
    char text[160];

    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(text, sizeof(text), "[listener.%s]\nport = 1\n", name);
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_str_eq(cfg.listeners[0].name, name);

    name[63] = 'n';
    name[64] = '\0';
    snprintf(text, sizeof(text), "[listener.%s]\n", name);
    snprintf(msgbuf, sizeof(msgbuf),
             "[listener.%.55s...]: bad listener name (expected 1..63 of A-Z a-z 0-9 _ -)", name);
    expect_error(text, 1, msgbuf);
}

Test(config, bad_listener_names_are_errors)
{
    expect_error("[listener.]\n", 1,
                 "[listener.]: bad listener name (expected 1..63 of A-Z a-z 0-9 _ -)");
    expect_error("\n[listener.a.b]\n", 2,
                 "[listener.a.b]: bad listener name (expected 1..63 of A-Z a-z 0-9 _ -)");
}

Test(config, duplicate_listener_name_is_an_error)
{
    expect_error("[listener.a]\nport = 1\n[listener.b]\nport = 2\n[listener.a]\n", 5,
                 "[listener.a]: duplicate listener (first defined on line 1)");
}

Test(config, more_than_the_maximum_listeners_is_an_error)
{
    char text[4096];
    size_t o = 0;
    int i;

    for (i = 0; i <= CONFIG_LISTENERS_MAX; i++) {
        o += (size_t)snprintf(text + o, sizeof(text) - o, "[listener.l%d]\nport = %d\n", i,
                              2000 + i);
    }
    snprintf(msgbuf, sizeof(msgbuf), "[listener.l%d]: too many listeners (at most %d)",
             CONFIG_LISTENERS_MAX, CONFIG_LISTENERS_MAX);
    expect_error(text, 2 * CONFIG_LISTENERS_MAX + 1, msgbuf);

    /* Exactly the maximum is fine. */
    text[0] = '\0';
    for (o = 0, i = 0; i < CONFIG_LISTENERS_MAX; i++) {
        o += (size_t)snprintf(text + o, sizeof(text) - o, "[listener.l%d]\nport = %d\n", i,
                              2000 + i);
    }
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_eq(cfg.listener_count, CONFIG_LISTENERS_MAX);
}

Test(config, two_listeners_on_one_address_and_port_is_an_error)
{
    expect_error("[listener.a]\n[listener.b]\n", 2,
                 "[listener.b]: 127.0.0.1:1883 is already used by [listener.a] (line 1)");
    expect_error("[listener.a]\nbind = ::1\nport = 5\n[listener.b]\nport = 5\nbind = 0::1\n", 6,
                 "[listener.b] bind: [0::1]:5 is already used by [listener.a] (line 1)");
    expect_error("[listener.a]\nport = 5\n[listener.b]\nport = 5\n", 4,
                 "[listener.b] port: 127.0.0.1:5 is already used by [listener.a] (line 1)");
}

Test(config, port_zero_never_clashes)
{
    cr_assert_eq(load("[listener.a]\nport = 0\n[listener.b]\nport = 0\n"), 0, "%s", err);
    cr_assert_eq(cfg.listener_count, 2);
}

Test(config, output_bytes_max_below_packet_bytes_max_is_an_error)
{
    expect_error("[limits]\npacket_bytes_max = 2m\noutput_bytes_max = 1m\n", 3,
                 "[limits] output_bytes_max: must be at least packet_bytes_max (2097152), "
                 "got 1048576");
    expect_error("[limits]\noutput_bytes_max = 1m\npacket_bytes_max = 2m\n", 3,
                 "[limits] packet_bytes_max: must be at most output_bytes_max (1048576), "
                 "got 2097152");
    expect_error("[limits]\n\npacket_bytes_max = 9m\n", 3,
                 "[limits] packet_bytes_max: must be at most output_bytes_max (8388608), "
                 "got 9437184");
}

Test(config, indented_keys_are_keys_not_continuations)
{
    cr_assert_eq(load("[limits]\n    inflight_max = 5\n    queued_max = 6\n\t[broker]\n"
                      "  log_level = warn\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.limits.inflight_max, 5);
    cr_assert_eq(cfg.limits.queued_max, 6);
    cr_assert_eq(cfg.log_level, CONFIG_LOG_WARN);
}

Test(config, inline_comments_crlf_and_bom_are_accepted)
{
    cr_assert_eq(load("\xef\xbb\xbf[limits]\r\ninflight_max = 5 ; five\r\n"
                      "[ broker ] ; spaced\r\nlog_level=error\r\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.limits.inflight_max, 5);
    cr_assert_eq(cfg.log_level, CONFIG_LOG_ERROR);
}

Test(config, long_comments_are_fine_but_long_lines_are_not)
{
    char text[1024];

    memset(text, 'x', sizeof(text));
    memcpy(text, "; ", 2);
    memcpy(text + 600, "\n[limits]\ninflight_max = ", 25);
    memset(text + 625, '1', 300);
    memcpy(text + 925, "\n", 2);
    expect_error(text, 3, "line too long (at most 198 characters)");
    memcpy(text + 625, "4\n", 3);
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_eq(cfg.limits.inflight_max, 4);
}

Test(config, nul_byte_in_a_line_is_an_error)
{
    static const char text[] = "[limits]\ninflight_max = 5\0 9\n";
    struct config c;

    cr_assert_eq(config__load_buffer(&c, "buf.ini", text, sizeof(text) - 1, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "buf.ini:2: NUL byte in line");
}

Test(config, non_printable_bytes_are_escaped_in_messages)
{
    expect_error("[limits]\ninflight_max = \x01\xff\"\n", 2,
                 "[limits] inflight_max: expected an integer 1..65535, got \"\\x01\\xff\\x22\"");
}

Test(config, buffer_loading_matches_file_loading)
{
    static const char text[] = "[limits]\ninflight_max = 9\n[listener.x]\nport = 0";
    struct config c;

    cr_assert_eq(config__load_buffer(&c, "mem", text, sizeof(text) - 1, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_eq(memcmp(&c, &cfg, sizeof(c)), 0);
    cr_assert_eq(config__load_buffer(&c, "mem", NULL, 0, err, sizeof(err)), 0, "%s", err);
    expect_defaults(&c);
}

Test(config, tiny_error_buffers_are_not_overrun)
{
    char small[8];

    memset(small, 'z', sizeof(small));
    cr_assert_eq(config__load_buffer(&cfg, "a-long-name.ini", "[x]\n", 4, small, 5), -1);
    cr_assert_str_eq(small, "a-lo");
    cr_assert_eq(small[5], 'z');
}

Test(config, lines_over_64k_are_refused_even_as_comments)
{
    size_t len = 70000;
    char *text = malloc(len + 1);

    cr_assert_not_null(text);
    memset(text, 'x', len);
    memcpy(text, "[limits]\n; ", 11);
    text[len] = '\0';
    expect_error(text, 2, "line too long (over 65536 bytes)");
    cr_assert_eq(config__load_buffer(&cfg, "mem", text, len, err, sizeof(err)), -1);
    cr_assert_str_eq(err, "mem:2: line too long (over 65536 bytes)");
    free(text);
}

Test(config, mqtt_keys_set_their_fields)
{
    cr_assert_eq(load("[mqtt]\n"
                      "max_qos = 1\n"
                      "retain_available = false\n"
                      "wildcard_subscriptions = no\n"
                      "subscription_identifiers = off\n"
                      "shared_subscriptions = 0\n"
                      "topic_alias_max = 65535\n"
                      "keepalive_max = 65535\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.limits.max_qos, 1);
    cr_assert_not(cfg.limits.retain_available);
    cr_assert_not(cfg.limits.wildcard_subscriptions);
    cr_assert_not(cfg.limits.subscription_identifiers);
    cr_assert_not(cfg.limits.shared_subscriptions);
    cr_assert_eq(cfg.limits.topic_alias_max, 65535);
    cr_assert_eq(cfg.limits.keepalive_max_s, 65535);
    cr_assert_not(cfg.limits.auth_test_method, "untouched keys keep defaults");
    cr_assert_eq(cfg.limits.inflight_max, 20, "[limits] keys keep their defaults");

    cr_assert_eq(load("[mqtt]\nmax_qos = 0\ntopic_alias_max = 0\nkeepalive_max = 30\n"
                      "[auth]\ntest_method = true\n"),
                 0, "%s", err);
    cr_assert_eq(cfg.limits.max_qos, 0);
    cr_assert_eq(cfg.limits.topic_alias_max, 0, "0 = no topic aliases");
    cr_assert_eq(cfg.limits.keepalive_max_s, 30);
    cr_assert(cfg.limits.auth_test_method);
    cr_assert(cfg.limits.retain_available, "untouched keys keep defaults");

    cr_assert_eq(load("[mqtt]\nmax_qos = 2\nretain_available = yes\n"), 0, "%s", err);
    cr_assert_eq(cfg.limits.max_qos, 2);
    cr_assert(cfg.limits.retain_available);
}

/* Each [mqtt] boolean set to false in turn: only its own field changes. */
Test(config, each_mqtt_boolean_sets_only_its_own_field)
{
    static const char *const names[] = {"retain_available", "wildcard_subscriptions",
                                        "subscription_identifiers", "shared_subscriptions"};
    char text[128];
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct limits *l = &cfg.limits;
        bool got[4];
        size_t j;

        snprintf(text, sizeof(text), "[mqtt]\n%s = false\n", names[i]);
        cr_assert_eq(load(text), 0, "%s", err);
        got[0] = l->retain_available;
        got[1] = l->wildcard_subscriptions;
        got[2] = l->subscription_identifiers;
        got[3] = l->shared_subscriptions;
        for (j = 0; j < 4; j++) {
            cr_assert_eq(got[j], j != i, "%s = false: field %zu is %d", names[i], j, got[j]);
        }
    }
}

Test(config, mqtt_values_out_of_range_name_file_line_and_key)
{
    expect_error("[mqtt]\nmax_qos = 3\n", 2,
                 "[mqtt] max_qos: out of range: expected an integer 0..2, got \"3\"");
    expect_error("[mqtt]\n; comment\nmax_qos = 256\n", 3,
                 "[mqtt] max_qos: out of range: expected an integer 0..2, got \"256\"");
    expect_error("[mqtt]\nmax_qos = -1\n", 2,
                 "[mqtt] max_qos: expected an integer 0..2, got \"-1\"");
    expect_error("[mqtt]\nmax_qos = two\n", 2,
                 "[mqtt] max_qos: expected an integer 0..2, got \"two\"");
    expect_error("[mqtt]\ntopic_alias_max = 65536\n", 2,
                 "[mqtt] topic_alias_max: out of range: expected an integer 0..65535, "
                 "got \"65536\"");
    expect_error("[mqtt]\nkeepalive_max = 65536\n", 2,
                 "[mqtt] keepalive_max: out of range: expected a duration in seconds "
                 "0..65535, got \"65536\"");
    expect_error("[mqtt]\nkeepalive_max = 60s\n", 2,
                 "[mqtt] keepalive_max: expected a duration in seconds 0..65535, got \"60s\"");
    expect_error("[mqtt]\nkeepalive_max = 18446744073709551616\n", 2,
                 "[mqtt] keepalive_max: out of range: expected a duration in seconds "
                 "0..65535, got \"18446744073709551616\"");
}

Test(config, mqtt_and_auth_bad_booleans_name_file_line_and_key)
{
    static const char *const names[] = {"retain_available", "wildcard_subscriptions",
                                        "subscription_identifiers", "shared_subscriptions"};
    char text[128];
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(text, sizeof(text), "[broker]\n[mqtt]\n%s = maybe\n", names[i]);
        snprintf(msgbuf, sizeof(msgbuf), "[mqtt] %s: expected true or false, got \"maybe\"",
                 names[i]);
        expect_error(text, 3, msgbuf);
    }
    expect_error("[auth]\ntest_method = TRUE\n", 2,
                 "[auth] test_method: expected true or false, got \"TRUE\"");
    expect_error("[auth]\ntest_method = 2\n", 2,
                 "[auth] test_method: expected true or false, got \"2\"");
    expect_error("[auth]\ntest_method =\n", 2,
                 "[auth] test_method: expected true or false, got \"\"");
}

Test(config, mqtt_and_auth_duplicate_keys_are_errors)
{
    expect_error("[mqtt]\nmax_qos = 1\n[auth]\n[mqtt]\nmax_qos = 2\n", 5,
                 "[mqtt] max_qos: duplicate key (first set on line 2)");
    expect_error("[auth]\ntest_method = true\ntest_method = false\n", 3,
                 "[auth] test_method: duplicate key (first set on line 2)");
}

Test(config, empty_mqtt_and_auth_sections_give_the_defaults)
{
    memset(&cfg, 0, sizeof(cfg));
    cr_assert_eq(load("[mqtt]\n[auth]\n[ mqtt ]\n"), 0, "%s", err);
    expect_defaults(&cfg);
}

Test(config, failed_mqtt_load_leaves_the_callers_config_untouched)
{
    struct config before;

    memset(&cfg, 0x5a, sizeof(cfg));
    memcpy(&before, &cfg, sizeof(cfg));
    cr_assert_eq(load("[mqtt]\nmax_qos = 0\ntopic_alias_max = 3\n[auth]\ntest_method = on\n"
                      "[mqtt]\nkeepalive_max = x\n"),
                 -1);
    cr_assert_eq(memcmp(&cfg, &before, sizeof(cfg)), 0);
}

/* A PEM-looking file in the test dir (the config check only sniffs for a PEM block). */
static void write_pem(const char *name, char *out, size_t cap)
{
    static const char pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    snprintf(out, cap, "%s/%s", dir, name);
    write_file(out, pem, sizeof(pem) - 1);
}

Test(config, listener_transport_keys_default_to_plain_mqtt)
{
    const struct config_listener *l;

    cr_assert_eq(load("[listener.a]\nport = 1\n"), 0, "%s", err);
    l = &cfg.listeners[0];
    cr_assert_eq(l->protocol, CONFIG_PROTO_MQTT);
    cr_assert_str_eq(l->ws_path, "/mqtt");
    cr_assert_str_eq(l->certfile, "");
    cr_assert(!config_listener_tls(l));
    cr_assert(!l->require_certificate);
    cr_assert(!l->use_identity_as_username);
    cr_assert_eq(l->tls_version, CONFIG_TLS_12);
}

Test(config, websocket_and_tls_keys_set_their_fields)
{
    char crt[300];
    char key[300];
    char ca[300];
    char text[2048];
    const struct config_listener *l;

    write_pem("s.crt", crt, sizeof(crt));
    write_pem("s.key", key, sizeof(key));
    write_pem("ca.crt", ca, sizeof(ca));
    snprintf(text, sizeof(text),
             "[listener.wss]\nport = 8443\nprotocol = websockets\nws_path = /ws/mqtt\n"
             "certfile = %s\nkeyfile = %s\ncafile = %s\nrequire_certificate = on\n"
             "use_identity_as_username = on\ntls_version = tlsv1.3\n"
             "ciphers = ECDHE-RSA-AES128-GCM-SHA256\nciphers_tls1.3 = TLS13-AES128-GCM-SHA256\n",
             crt, key, ca);
    cr_assert_eq(load(text), 0, "%s", err);
    l = &cfg.listeners[0];
    cr_assert_eq(l->protocol, CONFIG_PROTO_WEBSOCKETS);
    cr_assert_str_eq(l->ws_path, "/ws/mqtt");
    cr_assert(config_listener_tls(l));
    cr_assert_str_eq(l->certfile, crt);
    cr_assert_str_eq(l->keyfile, key);
    cr_assert_str_eq(l->cafile, ca);
    cr_assert(l->require_certificate);
    cr_assert(l->use_identity_as_username);
    cr_assert_eq(l->tls_version, CONFIG_TLS_13);
    cr_assert_str_eq(l->ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
    cr_assert_str_eq(l->ciphers_tls13, "TLS13-AES128-GCM-SHA256");
    unlink(crt);
    unlink(key);
    unlink(ca);
}

Test(config, bad_protocol_and_tls_version_name_their_values)
{
    expect_error("[listener.a]\nprotocol = ws\n", 2,
                 "[listener.a] protocol: expected one of mqtt, websockets, got \"ws\"");
    expect_error("[listener.a]\ntls_version = tlsv1.1\n", 2,
                 "[listener.a] tls_version: expected one of tlsv1.2, tlsv1.3, got \"tlsv1.1\"");
}

Test(config, a_tls_key_without_certfile_names_its_line)
{
    expect_error("[listener.a]\nport = 1\nkeyfile = /x.key\n", 3,
                 "[listener.a] keyfile: needs certfile (TLS is off without it)");
    expect_error("[listener.a]\nrequire_certificate = true\n", 2,
                 "[listener.a] require_certificate: needs certfile (TLS is off without it)");
    expect_error("[listener.a]\n\ntls_version = tlsv1.3\n", 3,
                 "[listener.a] tls_version: needs certfile (TLS is off without it)");
}

Test(config, a_missing_or_non_pem_certificate_names_file_and_line)
{
    char text[1024];
    char notpem[300];

    snprintf(text, sizeof(text), "[listener.a]\nport = 1\ncertfile = %s/missing.pem\n", dir);
    snprintf(msgbuf, sizeof(msgbuf),
             "[listener.a] certfile: cannot read '%s/missing.pem': No such file or directory",
             dir);
    expect_error(text, 3, msgbuf);

    snprintf(notpem, sizeof(notpem), "%s/plain.txt", dir);
    write_file(notpem, "hello\n", 6);
    snprintf(text, sizeof(text), "[listener.a]\ncertfile = %s\n", notpem);
    snprintf(msgbuf, sizeof(msgbuf), "[listener.a] certfile: '%s' is not a PEM file", notpem);
    expect_error(text, 2, msgbuf);
    unlink(notpem);
}

Test(config, client_certificates_need_a_ca_and_identity_needs_them)
{
    char crt[300];
    char text[1024];

    write_pem("s.pem", crt, sizeof(crt));
    snprintf(text, sizeof(text), "[listener.a]\ncertfile = %s\nrequire_certificate = true\n",
             crt);
    expect_error(text, 3,
                 "[listener.a] require_certificate: needs cafile or capath to verify client "
                 "certificates with");
    snprintf(text, sizeof(text), "[listener.a]\ncertfile = %s\nuse_identity_as_username = yes\n",
             crt);
    expect_error(text, 3,
                 "[listener.a] use_identity_as_username: needs require_certificate = true");
    snprintf(text, sizeof(text), "[listener.a]\ncertfile = %s\ncapath = %s/nodir\n", crt, dir);
    snprintf(msgbuf, sizeof(msgbuf),
             "[listener.a] capath: cannot open directory '%s/nodir': No such file or directory",
             dir);
    expect_error(text, 3, msgbuf);
    unlink(crt);
}

Test(config, ws_path_needs_websockets_and_a_leading_slash)
{
    expect_error("[listener.a]\nws_path = /other\n", 2,
                 "[listener.a] ws_path: needs protocol = websockets");
    expect_error("[listener.a]\nprotocol = websockets\nws_path = mqtt\n", 3,
                 "[listener.a] ws_path: must start with '/', got 'mqtt'");
    expect_error("[listener.a]\nprotocol = websockets\nws_path = /a?b\n", 3,
                 "[listener.a] ws_path: printable ASCII only, no spaces, '?' or '#'");
    expect_error("[listener.a]\nprotocol = websockets\nws_path = /\xc3\xa9\n", 3,
                 "[listener.a] ws_path: printable ASCII only, no spaces, '?' or '#'");
    cr_assert_eq(load("[listener.a]\nprotocol = websockets\nws_path = /\n"), 0, "%s", err);
    cr_assert_str_eq(cfg.listeners[0].ws_path, "/");
}

Test(config, metrics_and_sys_interval_keys_set_their_fields)
{
    cr_assert_eq(load("[broker]\nsys_interval = 1\n[metrics]\nbind = ::1\nport = 0\n"), 0, "%s",
                 err);
    cr_assert_eq(cfg.sys_interval_s, 1);
    cr_assert_str_eq(cfg.metrics_bind, "::1");
    cr_assert_eq(cfg.metrics_port, 0);
    cr_assert_eq(load("[broker]\nlog_level = info\n"), 0, "%s", err);
    cr_assert_eq(cfg.sys_interval_s, 10, "mosquitto's default");
    cr_assert_str_eq(cfg.metrics_bind, "", "off unless set");
}

Test(config, metrics_bind_must_be_a_numeric_address)
{
    expect_error("[metrics]\nport = 9100\nbind = localhost\n", 3,
                 "[metrics] bind: expected a numeric IPv4 or IPv6 address, got 'localhost'");
    expect_error("[metrics]\nbogus = 1\n", 2, "[metrics] bogus: unknown key");
}

Test(config, admin_socket_path_must_fit_a_socket_address)
{
    char text[400];

    cr_assert_eq(load("[admin]\nsocket = /run/ringmq/admin.sock\nmode = 0660\n"), 0, "%s", err);
    cr_assert_str_eq(cfg.admin_socket, "/run/ringmq/admin.sock");
    cr_assert_eq(cfg.admin_mode, 1);
    snprintf(text, sizeof(text), "[admin]\nsocket = /%0150d\n", 0);
    expect_error(text, 2, "[admin] socket: path too long for a socket (151 bytes, at most 107)");
    expect_error("[admin]\nmode = 0644\n", 2,
                 "[admin] mode: expected one of 0600, 0660, got \"0644\"");
}
