/*
 * test_topic.c - topic names and filters: validity, level iteration, and the
 * spec's matching examples (MQTT 3.1.1 section 4.7) checked against the
 * reference matcher, the subscription trie and the retained store alike.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/msg.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/topic.h"
#include "core/trie.h"
#include "tests/unit/vhost_cases.h"

static const struct limits lim = {
    .topic_bytes_max = 1024,
    .topic_levels_max = 16,
};

static int name_check(const char *s)
{
    return topic_name_check((const uint8_t *)s, strlen(s), &lim);
}

static int filter_check(const char *s)
{
    return topic_filter_check((const uint8_t *)s, strlen(s), &lim);
}

struct validity_case {
    const char *s;
    bool name_ok;
    bool filter_ok;
};

static const struct validity_case validity_cases[] = {
    /* [MQTT-4.7.1-2]: '#' alone, and only as the last level. */
    {"sport/tennis/#", false, true},
    {"sport/tennis#", false, false},
    {"sport/tennis/#/ranking", false, false},
    {"#", false, true},
    {"#/", false, false},
    {"##", false, false},
    {"a#", false, false},
    /* [MQTT-4.7.1-3]: '+' only as a whole level. */
    {"+", false, true},
    {"sport+", false, false},
    {"+sport", false, false},
    {"sport/+/player1", false, true},
    {"+/tennis/#", false, true},
    {"+/+", false, true},
    {"/+", false, true},
    {"+/", false, true},
    {"++", false, false},
    {"+#", false, false},
    /* Plain names are valid filters too; empty levels are legal. */
    {"/finance", true, true},
    {"finance/", true, true},
    {"a//b", true, true},
    {"/", true, true},
    {"//", true, true},
    {"$SYS/monitor/Clients", true, true},
    {"$SYS/#", false, true},
    {"Accounts payable", true, true},
    {"sport/tennis/player1", true, true},
};

Test(topic, validity_table_for_names_and_filters)
{
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(validity_cases); i++) {
        const struct validity_case *c = &validity_cases[i];

        cr_expect_eq(name_check(c->s), c->name_ok ? 0 : -MQTT_RC_TOPIC_NAME_INVALID, "name \"%s\"",
                     c->s);
        cr_expect_eq(filter_check(c->s), c->filter_ok ? 0 : -MQTT_RC_TOPIC_FILTER_INVALID,
                     "filter \"%s\"", c->s);
    }
}

Test(topic, empty_name_and_filter_are_invalid)
{
    /* [MQTT-4.7.3-1]: names and filters are at least one character long. */
    cr_assert_eq(topic_name_check((const uint8_t *)"", 0, &lim), -MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(topic_filter_check((const uint8_t *)"", 0, &lim), -MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(topic, names_never_hold_wildcards)
{
    /* [MQTT-3.3.2-2]: a topic name in a PUBLISH has no wildcard characters. */
    cr_assert_eq(name_check("a/+"), -MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(name_check("a/#"), -MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(name_check("a+b"), -MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(name_check("#"), -MQTT_RC_TOPIC_NAME_INVALID);
}

Test(topic, length_limit_is_enforced_to_the_byte)
{
    struct limits l = {.topic_bytes_max = 8, .topic_levels_max = 16};
    const uint8_t *s = (const uint8_t *)"abcdefghi";

    cr_assert_eq(topic_name_check(s, 8, &l), 0);
    cr_assert_eq(topic_name_check(s, 9, &l), -MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(topic_filter_check(s, 8, &l), 0);
    cr_assert_eq(topic_filter_check(s, 9, &l), -MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(topic, level_limit_is_enforced_to_the_level)
{
    struct limits l = {.topic_bytes_max = 1024, .topic_levels_max = 3};

    cr_assert_eq(topic_name_check((const uint8_t *)"a/b/c", 5, &l), 0);
    cr_assert_eq(topic_name_check((const uint8_t *)"a/b/c/d", 7, &l), -MQTT_RC_TOPIC_NAME_INVALID);
    /* Empty levels count: "//" has three. */
    cr_assert_eq(topic_name_check((const uint8_t *)"//", 2, &l), 0);
    cr_assert_eq(topic_name_check((const uint8_t *)"///", 3, &l), -MQTT_RC_TOPIC_NAME_INVALID);
    cr_assert_eq(topic_filter_check((const uint8_t *)"+/+/#", 5, &l), 0);
    cr_assert_eq(topic_filter_check((const uint8_t *)"+/+/+/#", 7, &l),
                 -MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(topic, longest_protocol_string_is_checked_without_overflow)
{
    struct limits l = {.topic_bytes_max = 70000, .topic_levels_max = 70000};
    size_t len = LIMITS_STRING_BYTES_MAX + 1;
    uint8_t *s = malloc(len);

    cr_assert_not_null(s);
    memset(s, '/', len);
    cr_expect_eq(topic_name_check(s, len - 1, &l), 0);
    cr_expect_eq(topic_name_check(s, len, &l), -MQTT_RC_TOPIC_NAME_INVALID);
    free(s);
}

/* Collect the levels of @s joined by '|' into @out. */
static void levels_of(const char *s, char *out, size_t out_len)
{
    const uint8_t *lvl;
    size_t pos = 0, ll, used = 0;
    int n = 0;

    out[0] = '\0';
    while (topic_level_next(&pos, (const uint8_t *)s, strlen(s), &lvl, &ll)) {
        cr_assert_lt(used + ll + 2, out_len);
        if (n++)
            out[used++] = '|';
        memcpy(out + used, lvl, ll);
        used += ll;
        out[used] = '\0';
    }
    cr_assert_gt(n, 0);
}

Test(topic, level_iteration_yields_empty_levels)
{
    char buf[64];

    levels_of("a/b/c", buf, sizeof(buf));
    cr_expect_str_eq(buf, "a|b|c");
    levels_of("/a", buf, sizeof(buf));
    cr_expect_str_eq(buf, "|a");
    levels_of("a/", buf, sizeof(buf));
    cr_expect_str_eq(buf, "a|");
    levels_of("a//b", buf, sizeof(buf));
    cr_expect_str_eq(buf, "a||b");
    levels_of("/", buf, sizeof(buf));
    cr_expect_str_eq(buf, "|");
    levels_of("x", buf, sizeof(buf));
    cr_expect_str_eq(buf, "x");
}

Test(topic, level_iteration_counts_every_level)
{
    const uint8_t *lvl;
    size_t pos = 0, ll;
    int n = 0;

    while (topic_level_next(&pos, (const uint8_t *)"//", 2, &lvl, &ll)) {
        cr_assert_eq(ll, 0);
        n++;
    }
    cr_assert_eq(n, 3);
    /* Finished stays finished. */
    cr_assert_not(topic_level_next(&pos, (const uint8_t *)"//", 2, &lvl, &ll));
}

/*
 * The matching examples of MQTT 3.1.1 section 4.7 (and 5.0 section 4.7),
 * plus the edges of empty levels.
 */
struct match_case {
    const char *filter;
    const char *name;
    bool match;
};

static const struct match_case match_cases[] = {
    /* 4.7.1.2 multi-level wildcard. */
    {"sport/tennis/player1/#", "sport/tennis/player1", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
    {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
    {"sport/tennis/player1/#", "sport/tennis/player2", false},
    {"sport/tennis/player1/#", "sport/tennis", false},
    {"sport/#", "sport", true},
    {"sport/#", "sport/", true},
    {"sport/#", "sports", false},
    {"#", "sport/tennis/player1", true},
    {"#", "/", true},
    {"#", "a", true},
    /* 4.7.1.3 single-level wildcard. */
    {"sport/tennis/+", "sport/tennis/player1", true},
    {"sport/tennis/+", "sport/tennis/player2", true},
    {"sport/tennis/+", "sport/tennis/player1/ranking", false},
    {"sport/+", "sport", false},
    {"sport/+", "sport/", true},
    {"+", "sport", true},
    {"+/+", "/finance", true},
    {"/+", "/finance", true},
    {"+", "/finance", false},
    {"+/tennis/#", "sport/tennis/player1", true},
    {"+/tennis/#", "sport/tennis", true},
    {"+/tennis/#", "sport/golf", false},
    {"sport/+/player1", "sport/tennis/player1", true},
    {"sport/+/player1", "sport/player1", false},
    /* 4.7.2 [MQTT-4.7.2-1]: wildcards at the first level skip '$' topics. */
    {"#", "$SYS/monitor/Clients", false},
    {"+/monitor/Clients", "$SYS/monitor/Clients", false},
    {"$SYS/#", "$SYS/monitor/Clients", true},
    {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
    {"+", "$SYS", false},
    {"+/#", "$SYS/x", false},
    {"$SYS", "$SYS", true},
    {"a/+", "a/$b", true},
    {"a/#", "a/$b", true},
    /* 4.7.3: case sensitive; spaces allowed; a leading '/' is a level. */
    {"ACCOUNTS", "Accounts", false},
    {"Accounts payable", "Accounts payable", true},
    {"finance", "/finance", false},
    {"/finance", "/finance", true},
    /* Empty levels match only empty levels, and '+' matches them. */
    {"a//b", "a//b", true},
    {"a/+/b", "a//b", true},
    {"a/+/b", "a/b", false},
    {"a//b", "a/b", false},
    {"+/+/+", "//", true},
    {"+/+", "//", false},
    {"/#", "/", true},
    {"a/b", "a/b/", false},
    {"a/b/", "a/b", false},
};

static void count_sub(void *ctx, void *sess, uint8_t options, uint32_t sub_id)
{
    int *n = ctx;

    cr_assert_eq(sess, (struct session *)&lim);
    cr_assert_eq(options, 1);
    (*n)++;
}

static void count_msg(void *ctx, struct msg *m)
{
    int *n = ctx;

    cr_assert_not_null(m);
    (*n)++;
}

/* What the virtual-host test's matches found. */
struct vhost_found {
    size_t n;
    struct msg *m[16];
};

struct vhost_subs {
    uint64_t mask; /* bit i: the session of filter i */
};

static void vhost_found_msg(void *ctx, struct msg *m)
{
    struct vhost_found *f = ctx;

    cr_assert_lt(f->n, RM_ARRAY_LEN(f->m));
    f->m[f->n++] = m;
}

static void vhost_found_sub(void *ctx, void *sess, uint8_t options, uint32_t sub_id)
{
    struct vhost_subs *s = ctx;
    uintptr_t i = (uintptr_t)sess / 16 - 1;

    cr_assert_lt(i, 64);
    s->mask |= 1ull << i;
}

Test(topic, spec_examples_match_reference_trie_and_retained)
{
    struct session *sess = (struct session *)&lim;
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(match_cases); i++) {
        const struct match_case *c = &match_cases[i];
        const uint8_t *f = (const uint8_t *)c->filter, *n = (const uint8_t *)c->name;
        size_t fl = strlen(c->filter), nl = strlen(c->name);
        struct trie *t = trie_new(0x5eed);
        struct retained *r = retained_new();
        struct msg *m = msg_new(n, nl, NULL, 0, (const uint8_t *)"x", 1, 0, true);
        int hits = 0;

        cr_assert(t && r && m);
        cr_assert_eq(filter_check(c->filter), 0, "filter \"%s\"", c->filter);
        cr_assert_eq(name_check(c->name), 0, "name \"%s\"", c->name);

        cr_expect_eq(topic_match(f, fl, n, nl), c->match, "topic_match(\"%s\", \"%s\")", c->filter,
                     c->name);

        cr_assert_eq(trie_insert(t, f, fl, sess, 1, 0, NULL), 1);
        struct trie_name tn = {0};
        cr_assert_eq(trie_split(&tn, 0x5eed, n, nl), 0);
        trie_match(t, &tn, count_sub, &hits);
        trie_name_fini(&tn);
        cr_expect_eq(hits, c->match ? 1 : 0, "trie: \"%s\" vs \"%s\"", c->filter, c->name);

        hits = 0;
        cr_assert_eq(retained_set(r, m, 10), 1);
        retained_match(r, f, fl, count_msg, &hits);
        cr_expect_eq(hits, c->match ? 1 : 0, "retained: \"%s\" vs \"%s\"", c->filter, c->name);

        msg_unref(m);
        retained_free(r);
        trie_free(t);
    }
}

/*
 * Virtual hosts (core/vhost.h): topic_match(), the trie and the retained
 * store agree with the table in vhost_cases.h, with every host's names in
 * one trie and one store.
 */
Test(topic, virtual_hosts_keep_their_topics_apart_in_match_trie_and_retained)
{
    struct trie *t = trie_new(0x5eed);
    struct retained *r = retained_new();
    struct msg *msgs[VHOST_NAMES];
    uint8_t nb[VHOST_NAMES][64], fb[64];
    size_t nl[VHOST_NAMES];

    cr_assert(t && r);
    for (size_t j = 0; j < VHOST_NAMES; j++) {
        nl[j] = vhost_case_bytes(vhost_names[j], nb[j]);
        msgs[j] = msg_new(nb[j], nl[j], NULL, 0, (const uint8_t *)"x", 1, 0, true);
        cr_assert_not_null(msgs[j]);
        cr_assert_eq(retained_set(r, msgs[j], 64), 1);
    }
    /* Session i (a fake pointer) subscribes to filter i. */
    for (size_t i = 0; i < VHOST_CASES; i++) {
        size_t fl = vhost_case_bytes(vhost_cases[i].filter, fb);

        cr_assert_eq(trie_insert(t, fb, fl, (struct session *)(uintptr_t)(16 * (i + 1)), 1, 0,
                                 NULL),
                     1);
    }
    for (size_t i = 0; i < VHOST_CASES; i++) {
        size_t fl = vhost_case_bytes(vhost_cases[i].filter, fb);
        struct vhost_found found = {0};

        retained_match(r, fb, fl, vhost_found_msg, &found);
        for (size_t j = 0; j < VHOST_NAMES; j++) {
            bool want = vhost_cases[i].want[j] == '1';
            bool got = false;

            cr_expect_eq(topic_match(fb, fl, nb[j], nl[j]), want, "topic_match(%s, %s)",
                         vhost_cases[i].filter, vhost_names[j]);
            for (size_t k = 0; k < found.n; k++)
                got = got || found.m[k] == msgs[j];
            cr_expect_eq(got, want, "retained_match(%s) has %s", vhost_cases[i].filter,
                         vhost_names[j]);

            struct vhost_subs subs = {0};
            struct trie_name tn = {0};

            cr_assert_eq(trie_split(&tn, 0x5eed, nb[j], nl[j]), 0);
            trie_match(t, &tn, vhost_found_sub, &subs);
            trie_name_fini(&tn);
            cr_expect_eq((subs.mask >> i) & 1, want ? 1u : 0u, "trie: %s gets %s",
                         vhost_cases[i].filter, vhost_names[j]);
        }
    }
    for (size_t j = 0; j < VHOST_NAMES; j++)
        msg_unref(msgs[j]);
    retained_free(r);
    trie_free(t);
}
