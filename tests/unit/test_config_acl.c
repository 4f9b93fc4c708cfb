/*
 * test_config_acl.c - config/config_acl: the [acl] and [group.NAME]
 * sections of ringmq.ini (rules in order, groups, the default, one test per
 * error class with its FILE:LINE message) and the mosquitto acl_file reader
 * (user/topic/pattern lines, comments, anonymous lines, mosquitto's
 * precedence, errors).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_acl.h"
#include "core/acl.h"

static char dir[200];
static char path[256];
static char err[CONFIG_ERR_MAX];
static char want[1024];
static struct config cfg;

static void setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/ringmq-test-config-acl-XXXXXX", tmp ? tmp : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/t.ini", dir);
    memset(err, 0, sizeof(err));
    memset(&cfg, 0, sizeof(cfg));
}

static void teardown(void)
{
    config_free(&cfg);
    unlink(path);
    rmdir(dir);
}

TestSuite(config_acl, .init = setup, .fini = teardown);

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static int load(const char *text)
{
    write_file(text);
    config_free(&cfg);
    return config_load(&cfg, path, err, sizeof(err));
}

static void expect_error(const char *text, unsigned line, const char *msg)
{
    cr_assert_eq(load(text), -1, "loaded:\n%s", text);
    snprintf(want, sizeof(want), "%s:%u: %s", path, line, msg);
    cr_assert_str_eq(err, want);
}

static struct acl_who who(const char *user, const char *cid)
{
    struct acl_who w;
    acl_who_init(cfg.acl, &w, (const uint8_t *)user, user ? strlen(user) : 0, (const uint8_t *)cid,
                 strlen(cid));
    return w;
}

static bool can(const struct acl *a, const char *user, enum acl_access x, const char *t)
{
    struct acl_who w;
    acl_who_init(a, &w, (const uint8_t *)user, user ? strlen(user) : 0, (const uint8_t *)"cid", 3);
    return acl_check(a, &w, x, (const uint8_t *)t, strlen(t));
}

/* ------------------------------------------------------------------ ringmq.ini */

Test(config_acl, no_acl_section_means_no_acl)
{
    cr_assert_eq(load("[limits]\ninflight_max = 5\n"), 0, "%s", err);
    cr_assert_null(cfg.acl);
}

Test(config_acl, rules_keep_their_order_and_groups_resolve_later_in_the_file)
{
    cr_assert_eq(load("[acl]\n"
                      "publish = sensors/secret deny all\n"
                      "publish = sensors/# allow @devices\n"
                      "subscribe = sensors/# allow @ops\n"
                      "subscribe = users/%u/# allow all\n"
                      "publish = guest/# allow anonymous\n"
                      "publish = admin/# allow root\n"
                      "publish = with space/# allow all\n"
                      "\n"
                      "[group.devices]\n"
                      "users = d1, d2\n"
                      "users = d3\n"
                      "[group.ops]\n"
                      "users = alice\n"),
                 0, "%s", err);
    cr_assert_not_null(cfg.acl);
    cr_assert_eq(acl_rule_count(cfg.acl), 7);
    cr_assert_not(acl_default_allows(cfg.acl), "rules and no default: deny");
    cr_assert(can(cfg.acl, "d3", ACL_PUBLISH, "sensors/t"), "second users line appends");
    cr_assert_not(can(cfg.acl, "d1", ACL_PUBLISH, "sensors/secret"), "first match: deny");
    cr_assert_not(can(cfg.acl, "alice", ACL_PUBLISH, "sensors/t"));
    cr_assert(can(cfg.acl, "alice", ACL_READ, "sensors/t"));
    cr_assert(can(cfg.acl, "bob", ACL_SUBSCRIBE, "users/bob/#"));
    cr_assert_not(can(cfg.acl, "bob", ACL_SUBSCRIBE, "users/carl/#"));
    cr_assert(can(cfg.acl, NULL, ACL_PUBLISH, "guest/x"));
    cr_assert_not(can(cfg.acl, "bob", ACL_PUBLISH, "guest/x"));
    cr_assert(can(cfg.acl, "root", ACL_PUBLISH, "admin/x"));
    cr_assert(can(cfg.acl, "bob", ACL_PUBLISH, "with space/x"), "a filter may hold blanks");
    struct acl_who w = who("d2", "c");
    cr_assert(acl_check(cfg.acl, &w, ACL_PUBLISH, (const uint8_t *)"sensors/x", 9));
}

Test(config_acl, default_can_be_set_either_way)
{
    cr_assert_eq(load("[acl]\ndefault = allow\npublish = locked/# deny all\n"), 0, "%s", err);
    cr_assert(acl_default_allows(cfg.acl));
    cr_assert(can(cfg.acl, "u", ACL_PUBLISH, "x"));
    cr_assert_not(can(cfg.acl, "u", ACL_PUBLISH, "locked/x"));
    cr_assert_eq(load("[acl]\ndefault = deny\n"), 0, "%s", err);
    cr_assert_not(acl_default_allows(cfg.acl), "no rules, default deny: nothing allowed");
    cr_assert_eq(load("[acl]\n"), 0, "%s", err);
    cr_assert(acl_default_allows(cfg.acl), "an empty [acl]: no rules, allow");
}

/* A client of host @host (1-based, as [broker] hosts numbers them) as the ACL sees it. */
static bool can_in(uint8_t host, const char *user, enum acl_access x, const char *t)
{
    struct acl_who w;
    acl_who_init(cfg.acl, &w, (const uint8_t *)user, user ? strlen(user) : 0,
                 (const uint8_t *)"cid", 3);
    w.host = host;
    return acl_check(cfg.acl, &w, x, (const uint8_t *)t, strlen(t));
}

Test(config_acl, acl_host_sections_hold_a_host_s_own_rules_asked_first)
{
    /* [acl.b.example] comes before [broker] hosts in the file: numbered at the end. */
    cr_assert_eq(load("[acl.b.example]\n"
                      "publish = shared/secret allow all\n"
                      "[acl]\n"
                      "publish = shared/secret deny all\n"
                      "publish = shared/# allow all\n"
                      "[acl.a.example]\n"
                      "publish = shared/# deny all\n"
                      "[acl.b.example]\n"
                      "subscribe = b/# allow all\n"
                      "[broker]\n"
                      "hosts = a.example, b.example\n"),
                 0, "%s", err);
    cr_assert_eq(acl_host_rule_count(cfg.acl, 0), 2);
    cr_assert_eq(acl_host_rule_count(cfg.acl, 1), 1, "a.example is host 1");
    cr_assert_eq(acl_host_rule_count(cfg.acl, 2), 2, "both [acl.b.example] sections");
    cr_assert_not(can_in(0, "u", ACL_PUBLISH, "shared/secret"));
    cr_assert(can_in(0, "u", ACL_PUBLISH, "shared/x"));
    cr_assert_not(can_in(1, "u", ACL_PUBLISH, "shared/x"), "a.example's own deny first");
    cr_assert(can_in(2, "u", ACL_PUBLISH, "shared/secret"), "b.example's own allow first");
    cr_assert(can_in(2, "u", ACL_SUBSCRIBE, "b/#"));
    cr_assert_not(can_in(1, "u", ACL_SUBSCRIBE, "b/#"));
}

Test(config_acl, an_acl_host_section_for_an_undeclared_host_is_an_error)
{
    expect_error("[broker]\nhosts = a.example\n[acl]\npublish = x allow all\n"
                 "[acl.c.example]\npublish = y allow all\n",
                 5, "[acl.c.example]: unknown host (not in [broker] hosts)");
    expect_error("[acl.a.example]\npublish = y allow all\n", 1,
                 "[acl.a.example]: unknown host (not in [broker] hosts)");
    expect_error("[acl.]\n", 1, "[acl.]: bad host name (expected 1..63 bytes)");
}

Test(config_acl, acl_host_sections_name_themselves_in_messages_and_take_no_default)
{
    expect_error("[broker]\nhosts = h\n[acl.h]\npublish = a/#/b allow all\n", 4,
                 "[acl.h] publish: invalid topic filter \"a/#/b\"");
    expect_error("[broker]\nhosts = h\n[acl.h]\ndefault = allow\n", 4,
                 "[acl.h] default: only in [acl] (one default for every host)");
    expect_error("[broker]\nhosts = h\n[acl.h]\nread = x\n", 4,
                 "[acl.h] read: unknown key (expected publish or subscribe)");
}

Test(config_acl, malformed_rule_line_is_an_error)
{
    expect_error("[acl]\npublish = a/b allow\n", 2,
                 "[acl] publish: expected \"FILTER allow|deny WHO\", got \"a/b allow\"");
    expect_error("[acl]\n\nsubscribe = all\n", 3,
                 "[acl] subscribe: expected \"FILTER allow|deny WHO\", got \"all\"");
}

Test(config_acl, verdict_other_than_allow_or_deny_is_an_error)
{
    expect_error("[acl]\npublish = a/b permit all\n", 2,
                 "[acl] publish: expected allow or deny, got \"permit\"");
}

Test(config_acl, invalid_topic_filter_is_an_error)
{
    expect_error("[acl]\npublish = a/#/b allow all\n", 2,
                 "[acl] publish: invalid topic filter \"a/#/b\"");
    expect_error("[acl]\nsubscribe = a+ allow all\n", 2,
                 "[acl] subscribe: invalid topic filter \"a+\"");
}

Test(config_acl, bad_group_reference_is_an_error)
{
    expect_error("[acl]\npublish = a allow @\n", 2,
                 "[acl] publish: bad group \"@\" (expected @NAME, NAME 1..63 of A-Z a-z 0-9 _ -)");
    expect_error("[acl]\npublish = a allow all\npublish = b allow @ops\n[group.dev]\nusers = x\n",
                 3, "[acl] unknown group @ops (no [group.ops] section)");
}

Test(config_acl, unknown_key_in_acl_or_group_is_an_error)
{
    expect_error("[acl]\nread = a allow all\n", 2,
                 "[acl] read: unknown key (expected publish, subscribe or default)");
    expect_error("[group.ops]\nmembers = a\n", 2,
                 "[group.ops] members: unknown key (expected users)");
}

Test(config_acl, bad_or_duplicate_default_is_an_error)
{
    expect_error("[acl]\ndefault = maybe\n", 2,
                 "[acl] default: expected allow or deny, got \"maybe\"");
    expect_error("[acl]\ndefault = allow\n[acl]\ndefault = deny\n", 4,
                 "[acl] default: duplicate key (first set on line 2)");
}

Test(config_acl, bad_or_duplicate_group_section_is_an_error)
{
    expect_error("[group.a b]\n", 1,
                 "[group.a b]: bad group name (expected 1..63 of A-Z a-z 0-9 _ -)");
    expect_error("[group.ops]\nusers = a\n[group.ops]\n", 3, "[group.ops]: duplicate group");
}

Test(config_acl, empty_user_in_a_group_list_is_an_error)
{
    expect_error("[group.ops]\nusers = a,,b\n", 2,
                 "[group.ops] users: empty user name in the list");
    expect_error("[group.ops]\nusers = a, \n", 2, "[group.ops] users: empty user name in the list");
}

Test(config_acl, a_later_error_frees_the_rules_read_so_far)
{
    /* Under ASan with leak detection: the ACL built before the error is freed. */
    expect_error("[acl]\npublish = a allow all\n[limits]\ninflight_max = 0\n", 4,
                 "[limits] inflight_max: out of range: expected an integer 1..65535, got \"0\"");
    cr_assert_null(cfg.acl);
}

/* ------------------------------------------------------------ mosquitto acl_file */

static struct acl *file_acl;

static int load_file(const char *text)
{
    write_file(text);
    acl_free(file_acl);
    file_acl = NULL;
    return config_acl__file_load(path, &file_acl, err, sizeof(err));
}

static void expect_file_error(const char *text, unsigned line, const char *msg)
{
    cr_assert_eq(load_file(text), -1, "loaded:\n%s", text);
    cr_assert_null(file_acl);
    snprintf(want, sizeof(want), "%s:%u: %s", path, line, msg);
    cr_assert_str_eq(err, want);
}

static void file_fini(void)
{
    acl_free(file_acl);
    file_acl = NULL;
    teardown();
}

Test(config_acl, mosquitto_file_users_topics_patterns_and_comments, .fini = file_fini)
{
    cr_assert_eq(load_file("# anonymous clients\n"
                           "topic read public/#\n"
                           "\n"
                           "  # an indented comment\n"
                           "user alice\n"
                           "topic readwrite alice/#\n"
                           "topic write cmd/+\n"
                           "topic deny alice/private\n"
                           "topic both/rw\n"
                           "user bob smith\n"
                           "topic read bob/#\n"
                           "pattern write devices/%c/out\n"
                           "pattern read users/%u/inbox\n"),
                 0, "%s", err);
    struct acl *a = file_acl;
    cr_assert_eq(acl_rule_count(a), 8);
    cr_assert_not(acl_default_allows(a), "mosquitto: nothing matching is denied");
    /* Anonymous: only the lines before the first user. */
    cr_assert(can(a, NULL, ACL_READ, "public/x"));
    cr_assert(can(a, NULL, ACL_SUBSCRIBE, "public/#"));
    cr_assert_not(can(a, NULL, ACL_PUBLISH, "public/x"), "read is not write");
    cr_assert_not(can(a, "alice", ACL_READ, "public/x"), "anonymous lines are not alice's");
    cr_assert(can(a, "alice", ACL_PUBLISH, "alice/x"));
    cr_assert(can(a, "alice", ACL_READ, "alice/x"));
    cr_assert(can(a, "alice", ACL_PUBLISH, "cmd/go"));
    cr_assert_not(can(a, "alice", ACL_READ, "cmd/go"));
    cr_assert_not(can(a, "alice", ACL_PUBLISH, "alice/private"),
                  "a deny line wins over an earlier readwrite (mosquitto checks denials first)");
    cr_assert(can(a, "alice", ACL_PUBLISH, "both/rw"), "no access word: readwrite");
    cr_assert(can(a, "alice", ACL_READ, "both/rw"));
    cr_assert(can(a, "bob smith", ACL_READ, "bob/x"), "a user name may hold blanks");
    cr_assert_not(can(a, "bob", ACL_READ, "bob/x"));
    /* Patterns: everybody, %c the client id ("cid" here), %u only with a user name. */
    cr_assert(can(a, NULL, ACL_PUBLISH, "devices/cid/out"));
    cr_assert(can(a, "alice", ACL_PUBLISH, "devices/cid/out"));
    cr_assert(can(a, "alice", ACL_READ, "users/alice/inbox"));
    cr_assert_not(can(a, "alice", ACL_READ, "users/bob/inbox"));
}

Test(config_acl, mosquitto_file_deny_patterns_come_after_user_topics, .fini = file_fini)
{
    cr_assert_eq(load_file("pattern deny secret/#\n"
                           "pattern readwrite #\n"
                           "user ann\n"
                           "topic readwrite secret/ann\n"),
                 0, "%s", err);
    cr_assert(can(file_acl, "ann", ACL_PUBLISH, "secret/ann"), "her topic line comes first");
    cr_assert_not(can(file_acl, "ann", ACL_PUBLISH, "secret/other"), "pattern deny next");
    cr_assert(can(file_acl, "ann", ACL_PUBLISH, "open"));
    cr_assert_not(can(file_acl, "bo", ACL_PUBLISH, "secret/ann"));
}

Test(config_acl, mosquitto_file_invalid_line_is_an_error, .fini = file_fini)
{
    expect_file_error("topic read a\nusers bob\n", 2,
                      "invalid line: \"users\" (expected user, topic, pattern or a # comment)");
}

Test(config_acl, mosquitto_file_invalid_access_is_an_error, .fini = file_fini)
{
    expect_file_error("user a\ntopic readonly a/#\n", 2,
                      "topic: invalid access \"readonly\" (expected read, write, readwrite or "
                      "deny)");
}

Test(config_acl, mosquitto_file_missing_filter_or_user_is_an_error, .fini = file_fini)
{
    expect_file_error("\npattern\n", 2, "pattern: missing topic filter");
    expect_file_error("user   \n", 1, "user: missing user name");
}

Test(config_acl, mosquitto_file_invalid_topic_filter_is_an_error, .fini = file_fini)
{
    expect_file_error("topic read a\n\ntopic write a/#/b\n", 3, "invalid topic filter \"a/#/b\"");
}

Test(config_acl, mosquitto_file_that_cannot_be_opened_is_an_error, .fini = file_fini)
{
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/none.acl", dir);
    cr_assert_eq(config_acl__file_load(missing, &file_acl, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", missing);
    cr_assert_str_eq(err, want);
}

Test(config_acl, every_bad_line_of_an_acl_file_is_told)
{
    char two[1024];

    cr_assert_eq(load_file("user alice\ntopic sometimes x\ntopic read ok/#\n"
                           "topic read a/#/b\n"),
                 -1);
    cr_assert_null(file_acl);
    snprintf(two, sizeof(two),
             "%s:2: topic: invalid access \"sometimes\" (expected read, write, readwrite or "
             "deny)\n%s:4: invalid topic filter \"a/#/b\"",
             path, path);
    cr_assert_str_eq(err, two);
}

/* ------------------------------------------------------------ [auth] acl_file */

static char aclpath[256];

static void write_acl(const char *text)
{
    snprintf(aclpath, sizeof(aclpath), "%s/acl", dir);
    FILE *f = fopen(aclpath, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

static void acl_fini(void)
{
    unlink(aclpath);
    teardown();
}

Test(config_acl, auth_acl_file_is_loaded_into_the_snapshot, .fini = acl_fini)
{
    char text[512];
    write_acl("user alice\ntopic readwrite alice/#\npattern read in/%u\n");
    snprintf(text, sizeof(text), "[auth]\nacl_file = %s\n", aclpath);
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_null(cfg.acl, "no [acl] rules");
    cr_assert_eq(cfg.acl_file_count, 1);
    cr_assert_str_eq(cfg.acl_files[0].path, aclpath);
    const struct acl *a = cfg.acl_files[0].acl;
    cr_assert(can(a, "alice", ACL_PUBLISH, "alice/x"));
    cr_assert(can(a, "alice", ACL_READ, "in/alice"));
    cr_assert_not(can(a, "bob", ACL_READ, "in/alice"));
    cr_assert_not(can(a, NULL, ACL_PUBLISH, "alice/x"));
}

Test(config_acl, a_listener_acl_file_overrides_and_each_file_is_loaded_once, .fini = acl_fini)
{
    char text[1024];
    write_acl("topic read #\n");
    /* a and c share [auth]'s file; b has its own (the same path: still one load); d has none. */
    snprintf(text, sizeof(text),
             "[auth]\nacl_file = %s\n[listener.a]\nport = 0\n[listener.b]\nport = 0\n"
             "acl_file = %s\n[listener.c]\nport = 0\n[listener.d]\nport = 0\nacl_file =\n",
             aclpath, aclpath);
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_eq(cfg.acl_file_count, 1, "one load per distinct path");
    cr_assert_str_eq(cfg.listeners[1].acl_file, aclpath);
    cr_assert_str_eq(cfg.listeners[3].acl_file, "", "an empty acl_file = : none here");
}

Test(config_acl, a_listener_acl_file_goes_with_the_acl_sections, .fini = acl_fini)
{
    char text[1024];
    write_acl("topic read #\n");
    /* [acl] for every listener without a file, the file for the one that names it. */
    snprintf(text, sizeof(text),
             "[acl]\npublish = x allow all\n[listener.a]\nport = 0\n[listener.b]\nport = 0\n"
             "acl_file = %s\n",
             aclpath);
    cr_assert_eq(load(text), 0, "%s", err);
    cr_assert_not_null(cfg.acl);
    cr_assert_eq(cfg.acl_file_count, 1);
    cr_assert(can(cfg.acl, "u", ACL_PUBLISH, "x"));
    cr_assert_not(can(cfg.acl_files[0].acl, "u", ACL_PUBLISH, "x"));
}

Test(config_acl, acl_file_problems_read_as_acl_file_line, .fini = acl_fini)
{
    char text[512];
    write_acl("user alice\ntopic readwrite alice/#\ntopic sometimes x\n");
    snprintf(text, sizeof(text), "[auth]\nacl_file = %s\n", aclpath);
    cr_assert_eq(load(text), -1);
    snprintf(want, sizeof(want), "%s:3: ", aclpath);
    cr_assert_eq(strncmp(err, want, strlen(want)), 0, "got %s", err);
}

Test(config_acl, a_load_tells_the_configuration_s_problems_and_each_bad_acl_file_line,
     .fini = acl_fini)
{
    char text[512];
    char all[1024];
    write_acl("topic readwrite alice/#\nuser\ntopic maybe x\n");
    snprintf(text, sizeof(text), "[auth]\nacl_file = %s\n[mqtt]\nmax_qos = 3\n", aclpath);
    cr_assert_eq(load(text), -1);
    snprintf(all, sizeof(all),
             "%s:4: [mqtt] max_qos: out of range: expected an integer 0..2, got \"3\"\n"
             "%s:2: user: missing user name\n"
             "%s:3: topic: invalid access \"maybe\" (expected read, write, readwrite or deny)",
             path, aclpath, aclpath);
    cr_assert_str_eq(err, all);
}

Test(config_acl, acl_rules_and_an_acl_file_together_are_refused, .fini = acl_fini)
{
    char text[512];
    write_acl("topic read #\n");
    snprintf(text, sizeof(text),
             "[acl]\nsubscribe = # allow all\n[auth]\n\nacl_file = %s\n", aclpath);
    expect_error(text, 5,
                 "[auth] acl_file: cannot be used with the [acl]/[group.*] rules of line 1; "
                 "keep one of the two");
}
