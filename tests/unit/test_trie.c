/*
 * test_trie.c - the subscription trie: insert/update/remove, the 0<->1
 * transitions, many subscribers per filter, node freeing, the '$' rule, and
 * a randomized cross-check against the reference matcher topic_match().
 *
 * Sessions are opaque to the trie, so the tests use fake, never-dereferenced
 * pointers.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/lvlmap.h"
#include "core/rm_assert.h"
#include "core/topic.h"
#include "core/trie.h"

/* The level hashing seed of the tries here (any value works). */
#define SEED 0x5eedull

/* Session number @i (from 0) as a fake, aligned pointer. */
static struct session *sess_n(size_t i)
{
    return (struct session *)(uintptr_t)(0x10000 + i * 16);
}

static size_t sess_index(struct session *s)
{
    uintptr_t p = (uintptr_t)s;

    cr_assert_geq(p, 0x10000);
    cr_assert_eq(p % 16, 0);
    return (p - 0x10000) / 16;
}

static int ins(struct trie *t, const char *f, size_t sess, uint8_t opt, bool *first)
{
    return trie_insert(t, (const uint8_t *)f, strlen(f), sess_n(sess), opt, 0, first);
}

static bool rem(struct trie *t, const char *f, size_t sess, bool *last)
{
    return trie_remove(t, (const uint8_t *)f, strlen(f), sess_n(sess), last);
}

/* What one trie_match() reported. */
struct hits {
    size_t n;        /* callbacks */
    size_t cap;      /* entries in per_sess */
    uint32_t *count; /* callbacks per session index */
    uint8_t *opt;    /* last options per session index */
    uint64_t id_sum; /* sum of the Subscription Identifiers reported */
};

static void hits_init(struct hits *h, size_t cap)
{
    h->n = 0;
    h->id_sum = 0;
    h->cap = cap;
    h->count = calloc(cap, sizeof(*h->count));
    h->opt = calloc(cap, 1);
    cr_assert(h->count && h->opt);
}

static void hits_reset(struct hits *h)
{
    h->n = 0;
    h->id_sum = 0;
    memset(h->count, 0, h->cap * sizeof(*h->count));
    memset(h->opt, 0, h->cap);
}

static void hits_fini(struct hits *h)
{
    free(h->count);
    free(h->opt);
}

static void on_match(void *ctx, void *sess, uint8_t options, uint32_t sub_id)
{
    struct hits *h = ctx;
    size_t i = sess_index(sess);

    cr_assert_lt(i, h->cap);
    h->n++;
    h->count[i]++;
    h->opt[i] = options;
    h->id_sum += sub_id;
}

/* Split @name under SEED and match it against @t. */
static void match_bytes(const struct trie *t, const uint8_t *name, size_t len, struct hits *h)
{
    struct trie_name n = {0};

    cr_assert_eq(trie_split(&n, SEED, name, len), 0);
    trie_match(t, &n, on_match, h);
    trie_name_fini(&n);
}

static void match(const struct trie *t, const char *name, struct hits *h)
{
    hits_reset(h);
    match_bytes(t, (const uint8_t *)name, strlen(name), h);
}

/* Each case: a name and its levels, joined by '|'. */
static const struct {
    const char *name;
    const char *levels;
} split_cases[] = {
    {"a", "a"},       {"/", "|"},     {"a/", "a|"},        {"/a", "|a"},
    {"a//b", "a||b"}, {"$SYS/x", "$SYS|x"}, {"sensors/12/temp", "sensors|12|temp"},
};

Test(trie, split_yields_every_level_with_its_hash)
{
    struct trie_name n = {0};

    for (size_t i = 0; i < RM_ARRAY_LEN(split_cases); i++) {
        const char *name = split_cases[i].name;
        char joined[64] = "";
        size_t at = 0;

        cr_assert_eq(trie_split(&n, SEED, (const uint8_t *)name, strlen(name)), 0);
        cr_assert_eq(n.seed, SEED);
        for (uint32_t l = 0; l < n.count; l++) {
            const struct trie_level *lv = &n.lvl[l];

            cr_assert_leq(lv->off + lv->len, strlen(name));
            cr_expect_eq(lv->hash, lvlmap_hash(SEED, (const uint8_t *)name + lv->off, lv->len),
                         "\"%s\" level %u", name, l);
            at += (size_t)snprintf(joined + at, sizeof(joined) - at, "%s%.*s", l ? "|" : "",
                                   (int)lv->len, name + lv->off);
        }
        cr_expect_str_eq(joined, split_cases[i].levels, "\"%s\"", name);
    }
    trie_name_fini(&n);
    cr_assert_null(n.lvl);
}

Test(trie, split_grows_past_its_first_array_and_is_reused)
{
    static const char many[] = "0/1/2/3/4/5/6/7/8/9/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w";
    struct trie_name n = {0};

    cr_assert_eq(trie_split(&n, SEED, (const uint8_t *)many, strlen(many)), 0);
    cr_assert_eq(n.count, 33);
    cr_assert_geq(n.cap, 33);
    for (uint32_t l = 0; l < n.count; l++)
        cr_expect_eq(many[n.lvl[l].off], many[2 * l], "level %u", l);
    /* A shorter name reuses the array and reports only its own levels. */
    cr_assert_eq(trie_split(&n, SEED, (const uint8_t *)"x/y", 3), 0);
    cr_assert_eq(n.count, 2);
    cr_assert_eq(n.lvl[1].off, 2);
    cr_assert_eq(n.lvl[1].len, 1);
    trie_name_fini(&n);
}

Test(trie, insert_reports_added_then_updated)
{
    struct trie *t = trie_new(SEED);
    struct hits h;

    cr_assert_not_null(t);
    hits_init(&h, 4);
    cr_assert_eq(ins(t, "a/b", 1, 0, NULL), 1);
    cr_assert_eq(trie_count(t), 1);
    match(t, "a/b", &h);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.opt[1], 0);

    /* [MQTT-3.8.4-3]: the same filter again replaces the subscription. */
    cr_assert_eq(ins(t, "a/b", 1, 2, NULL), 0);
    cr_assert_eq(trie_count(t), 1);
    match(t, "a/b", &h);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.opt[1], 2);

    cr_assert_eq(ins(t, "a/b", 2, 1, NULL), 1);
    cr_assert_eq(trie_count(t), 2);
    cr_assert_eq(ins(t, "a/b", 2, 0, NULL), 0);
    match(t, "a/b", &h);
    cr_assert_eq(h.n, 2);
    cr_assert_eq(h.opt[1], 2);
    cr_assert_eq(h.opt[2], 0);
    hits_fini(&h);
    trie_free(t);
}

Test(trie, filter_first_and_filter_last_mark_the_zero_one_transitions)
{
    struct trie *t = trie_new(SEED);
    bool flag = true;

    cr_assert_not_null(t);
    cr_assert_eq(ins(t, "x/+", 1, 0, &flag), 1);
    cr_assert(flag, "first subscriber of x/+");
    flag = true;
    cr_assert_eq(ins(t, "x/+", 2, 0, &flag), 1);
    cr_assert_not(flag, "second subscriber of x/+");
    flag = true;
    cr_assert_eq(ins(t, "x/+", 2, 1, &flag), 0);
    cr_assert_not(flag, "update of x/+");
    /* A prefix of a filter in use is a new filter. */
    flag = false;
    cr_assert_eq(ins(t, "x", 2, 0, &flag), 1);
    cr_assert(flag, "first subscriber of x");

    flag = true;
    cr_assert(rem(t, "x/+", 1, &flag));
    cr_assert_not(flag, "x/+ still has session 2");
    flag = true;
    cr_assert_not(rem(t, "x/+", 1, &flag));
    cr_assert_not(flag, "nothing removed");
    flag = false;
    cr_assert(rem(t, "x/+", 2, &flag));
    cr_assert(flag, "x/+ has no subscriber left");
    flag = true;
    cr_assert_not(rem(t, "x/+", 2, &flag));
    cr_assert_not(flag);
    flag = false;
    cr_assert(rem(t, "x", 2, &flag));
    cr_assert(flag);
    cr_assert_eq(trie_count(t), 0);
    trie_free(t);
}

Test(trie, remove_needs_the_exact_filter_and_session)
{
    struct trie *t = trie_new(SEED);
    struct hits h;

    cr_assert_not_null(t);
    hits_init(&h, 4);
    cr_assert_eq(ins(t, "a/+/c", 1, 0, NULL), 1);
    cr_assert_not(rem(t, "a/b/c", 1, NULL));
    cr_assert_not(rem(t, "a/+", 1, NULL));
    cr_assert_not(rem(t, "a/+/c/#", 1, NULL));
    cr_assert_not(rem(t, "a/+/c", 2, NULL));
    cr_assert_not(rem(t, "#", 1, NULL));
    cr_assert_eq(trie_count(t), 1);
    match(t, "a/b/c", &h);
    cr_assert_eq(h.count[1], 1);
    cr_assert(rem(t, "a/+/c", 1, NULL));
    match(t, "a/b/c", &h);
    cr_assert_eq(h.n, 0);
    hits_fini(&h);
    trie_free(t);
}

Test(trie, overlapping_filters_are_reported_once_per_filter)
{
    static const char *filters[] = {"a/b", "a/+", "+/b", "+/+", "#", "a/#", "a/b/#", "+/#"};
    static const char *others[] = {"a", "b/a", "a/b/c", "+", "a/c"};
    struct trie *t = trie_new(SEED);
    struct hits h;
    size_t i;

    cr_assert_not_null(t);
    hits_init(&h, 16);
    /* Session 1 through every filter; session 2 through one each. */
    for (i = 0; i < RM_ARRAY_LEN(filters); i++) {
        cr_assert_eq(ins(t, filters[i], 1, 1, NULL), 1);
        cr_assert_eq(ins(t, filters[i], 2 + i, 2, NULL), 1);
    }
    for (i = 0; i < RM_ARRAY_LEN(others); i++)
        cr_assert_eq(ins(t, others[i], 1, 1, NULL), 1);
    match(t, "a/b", &h);
    cr_assert_eq(h.count[1], RM_ARRAY_LEN(filters));
    for (i = 0; i < RM_ARRAY_LEN(filters); i++)
        cr_assert_eq(h.count[2 + i], 1, "filter %s", filters[i]);
    cr_assert_eq(h.n, 2 * RM_ARRAY_LEN(filters));
    hits_fini(&h);
    trie_free(t);
}

Test(trie, a_match_reports_the_identifier_of_each_matching_filter_and_no_other)
{
    /*
     * Issue 13: the identifiers of one session's matching subscriptions come
     * with the match, one callback per matching filter, however many other
     * filters the session has: the walk visits the name's levels, not them.
     */
    enum { OTHERS = 10000 };
    struct trie *t = trie_new(SEED);
    struct hits h;
    char f[32];
    uint32_t i;

    cr_assert_not_null(t);
    hits_init(&h, 4);
    cr_assert_eq(trie_insert(t, (const uint8_t *)"s/+", 3, sess_n(1), 1, 7, NULL), 1);
    cr_assert_eq(trie_insert(t, (const uint8_t *)"s/#", 3, sess_n(1), 1, 268435455, NULL), 1);
    cr_assert_eq(trie_insert(t, (const uint8_t *)"s/x", 3, sess_n(1), 1, 0, NULL), 1);
    for (i = 0; i < OTHERS; i++) {
        int n = snprintf(f, sizeof(f), "o/%u/+", i);

        cr_assert_eq(trie_insert(t, (const uint8_t *)f, (size_t)n, sess_n(1), 1, 100 + i, NULL),
                     1);
    }
    match(t, "s/x", &h);
    cr_assert_eq(h.n, 3, "one callback per matching filter, none for the %u others", OTHERS);
    cr_assert_eq(h.id_sum, 7 + 268435455ull);
    /* A replace updates the identifier [MQTT-3.8.4-3]. */
    cr_assert_eq(trie_insert(t, (const uint8_t *)"s/+", 3, sess_n(1), 1, 8, NULL), 0);
    hits_reset(&h);
    match(t, "s/x", &h);
    cr_assert_eq(h.id_sum, 8 + 268435455ull);
    hits_reset(&h);
    match(t, "o/77/x", &h);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.id_sum, 177);
    hits_fini(&h);
    trie_free(t);
}

Test(trie, many_sessions_on_one_filter_each_reported_once)
{
    enum { N = 20000 };
    struct trie *t = trie_new(SEED);
    struct hits h;
    bool flag;
    size_t i;

    cr_assert_not_null(t);
    hits_init(&h, N);
    for (i = 0; i < N; i++)
        cr_assert_eq(ins(t, "alerts/#", i, (uint8_t)(i % 3), NULL), 1);
    /* Updates find each session among many. */
    for (i = 0; i < N; i += 7)
        cr_assert_eq(ins(t, "alerts/#", i, 2, NULL), 0);
    cr_assert_eq(trie_count(t), N);
    match(t, "alerts/fire", &h);
    cr_assert_eq(h.n, N);
    for (i = 0; i < N; i++) {
        cr_assert_eq(h.count[i], 1);
        cr_assert_eq(h.opt[i], i % 7 == 0 ? 2 : i % 3);
    }

    /* Remove the even sessions (each removal moves the last entry). */
    for (i = 0; i < N; i += 2) {
        cr_assert(rem(t, "alerts/#", i, &flag));
        cr_assert_not(flag);
    }
    cr_assert_eq(trie_count(t), N / 2);
    match(t, "alerts", &h);
    cr_assert_eq(h.n, N / 2);
    for (i = 0; i < N; i++)
        cr_assert_eq(h.count[i], i % 2, "session %zu", i);
    for (i = 1; i < N; i += 2) {
        cr_assert_not(rem(t, "alerts/#", i - 1, NULL));
        cr_assert(rem(t, "alerts/#", i, &flag));
        cr_assert_eq(flag, i == N - 1);
    }
    cr_assert_eq(trie_count(t), 0);
    match(t, "alerts", &h);
    cr_assert_eq(h.n, 0);
    hits_fini(&h);
    trie_free(t);
}

Test(trie, sessions_interleave_across_index_growth_and_shrink)
{
    enum { N = 300 };
    struct trie *t = trie_new(SEED);
    struct hits h;
    uint32_t x = 12345;
    bool in[N] = {0};
    size_t i, k, live = 0;

    cr_assert_not_null(t);
    hits_init(&h, N);
    for (k = 0; k < 20000; k++) {
        x = x * 1103515245u + 12345u;
        i = (x >> 8) % N;
        if (in[i]) {
            cr_assert(rem(t, "q", i, NULL));
            live--;
        } else {
            cr_assert_eq(ins(t, "q", i, 1, NULL), 1);
            live++;
        }
        in[i] = !in[i];
        if (k % 1000 == 0) {
            match(t, "q", &h);
            cr_assert_eq(h.n, live);
            for (i = 0; i < N; i++)
                cr_assert_eq(h.count[i], in[i] ? 1u : 0u);
        }
    }
    cr_assert_eq(trie_count(t), live);
    hits_fini(&h);
    trie_free(t);
}

/* Present (and exact) in ASan builds, where mallinfo2() reports nothing. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* Bytes allocated now, give or take malloc's per-thread cache. */
static size_t heap_in_use(void)
{
    if (__sanitizer_get_current_allocated_bytes)
        return __sanitizer_get_current_allocated_bytes();
    return mallinfo2().uordblks;
}

Test(trie, removing_every_filter_frees_every_node)
{
    enum { N = 100000 };
    struct trie *t = trie_new(SEED);
    char f[64];
    size_t before, i;
    bool flag;

    cr_assert_not_null(t);
    before = heap_in_use();
    for (i = 0; i < N; i++) {
        snprintf(f, sizeof(f), "dev/%zu/%s", i, i % 2 ? "cmd/+" : "#");
        cr_assert_eq(ins(t, f, i % 5, 0, &flag), 1);
        cr_assert(flag);
    }
    cr_assert_eq(trie_count(t), N);
    cr_assert_gt(heap_in_use(), before + N * 8, "the trie should hold its nodes");
    for (i = 0; i < N; i++) {
        size_t j = (i * 7919) % N; /* a different order from the inserts */

        snprintf(f, sizeof(f), "dev/%zu/%s", j, j % 2 ? "cmd/+" : "#");
        cr_assert(rem(t, f, j % 5, &flag), "%s", f);
        cr_assert(flag);
    }
    cr_assert_eq(trie_count(t), 0);
    /*
     * Every node and table went back: the 100k nodes took megabytes; what is
     * left is malloc's per-thread cache.
     */
    cr_assert_leq(heap_in_use(), before + 64 * 1024, "%zu bytes left", heap_in_use() - before);
    trie_free(t);
}

Test(trie, free_releases_a_populated_trie)
{
    struct trie *t = trie_new(SEED);
    char f[64];
    size_t i;

    cr_assert_not_null(t);
    for (i = 0; i < 5000; i++) {
        snprintf(f, sizeof(f), "%s/%zu/+/x/#", i % 3 ? "a" : "$b", i % 97);
        cr_assert_geq(ins(t, f, i % 13, 0, NULL), 0);
    }
    cr_assert_gt(trie_count(t), 0);
    /* The ASan build's leak check fails this test if anything stays. */
    trie_free(t);
}

Test(trie, dollar_topics_skip_first_level_wildcards)
{
    struct trie *t = trie_new(SEED);
    struct hits h;

    cr_assert_not_null(t);
    hits_init(&h, 8);
    cr_assert_eq(ins(t, "#", 1, 0, NULL), 1);
    cr_assert_eq(ins(t, "+/monitor/Clients", 2, 0, NULL), 1);
    cr_assert_eq(ins(t, "$SYS/#", 3, 0, NULL), 1);
    cr_assert_eq(ins(t, "$SYS/monitor/+", 4, 0, NULL), 1);
    cr_assert_eq(ins(t, "+/#", 5, 0, NULL), 1);

    /* [MQTT-4.7.2-1] */
    match(t, "$SYS/monitor/Clients", &h);
    cr_assert_eq(h.count[1], 0);
    cr_assert_eq(h.count[2], 0);
    cr_assert_eq(h.count[3], 1);
    cr_assert_eq(h.count[4], 1);
    cr_assert_eq(h.count[5], 0);
    cr_assert_eq(h.n, 2);

    match(t, "SYS/monitor/Clients", &h);
    cr_assert_eq(h.count[1], 1);
    cr_assert_eq(h.count[2], 1);
    cr_assert_eq(h.count[5], 1);
    cr_assert_eq(h.n, 3);
    hits_fini(&h);
    trie_free(t);
}

Test(trie, multi_level_wildcard_matches_the_parent_level)
{
    struct trie *t = trie_new(SEED);
    struct hits h;

    cr_assert_not_null(t);
    hits_init(&h, 4);
    cr_assert_eq(ins(t, "sport/#", 1, 0, NULL), 1);
    match(t, "sport", &h);
    cr_assert_eq(h.n, 1);
    match(t, "sport/tennis/player1", &h);
    cr_assert_eq(h.n, 1);
    match(t, "sports", &h);
    cr_assert_eq(h.n, 0);
    hits_fini(&h);
    trie_free(t);
}

Test(trie, deep_names_match_without_recursion)
{
    enum { LEVELS = 20000 };
    struct trie *t = trie_new(SEED);
    struct hits h;
    uint8_t *s = malloc(LEVELS * 2);
    size_t i;

    cr_assert(t && s);
    hits_init(&h, 4);
    for (i = 0; i < LEVELS; i++) {
        s[2 * i] = 'a';
        s[2 * i + 1] = '/';
    }
    /* "a/a/.../a" and "+/+/.../+" of LEVELS levels, and "#". */
    cr_assert_eq(trie_insert(t, s, LEVELS * 2 - 1, sess_n(1), 0, 0, NULL), 1);
    for (i = 0; i < LEVELS; i++)
        s[2 * i] = '+';
    cr_assert_eq(trie_insert(t, s, LEVELS * 2 - 1, sess_n(2), 0, 0, NULL), 1);
    cr_assert_eq(trie_insert(t, (const uint8_t *)"#", 1, sess_n(3), 0, 0, NULL), 1);
    for (i = 0; i < LEVELS; i++)
        s[2 * i] = 'a';
    match_bytes(t, s, LEVELS * 2 - 1, &h);
    cr_assert_eq(h.n, 3);
    hits_reset(&h);
    match_bytes(t, s, LEVELS * 2 - 3, &h);
    cr_assert_eq(h.n, 1);
    cr_assert_eq(h.count[3], 1);
    free(s);
    hits_fini(&h);
    trie_free(t);
}

/* A seeded PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/*
 * A random topic over a small alphabet that makes matches likely: levels
 * "a", "b", "$", "$a", "" and, in filters, "+" and a final "#".
 */
static size_t random_topic(uint64_t *rng, char *out, size_t cap, bool filter)
{
    static const char *lv[] = {"a", "b", "$", "$a", "", "ab"};
    size_t levels = 1 + rng_next(rng) % 4, len = 0, i;

    for (i = 0; i < levels; i++) {
        const char *l;
        uint64_t r = rng_next(rng) % 10;

        if (filter && r == 8)
            l = "+";
        else if (filter && r == 9 && i + 1 == levels)
            l = "#";
        else
            l = lv[r % RM_ARRAY_LEN(lv)];
        cr_assert_lt(len + strlen(l) + 2, cap);
        if (i)
            out[len++] = '/';
        memcpy(out + len, l, strlen(l));
        len += strlen(l);
    }
    out[len] = '\0';
    return len;
}

Test(trie, random_filters_and_names_agree_with_topic_match)
{
    enum { FILTERS = 400, NAMES = 3000 };
    static const struct limits lim = {.topic_bytes_max = 1024, .topic_levels_max = 16};
    static char filters[FILTERS][64];
    struct trie *t = trie_new(SEED);
    uint64_t rng = 0x5eed1234abcdull;
    bool live[FILTERS];
    struct hits h;
    char name[64];
    size_t i, k, round;

    cr_assert_not_null(t);
    hits_init(&h, FILTERS);
    for (i = 0; i < FILTERS; i++) {
        size_t len;

        do {
            len = random_topic(&rng, filters[i], sizeof(filters[i]), true);
        } while (topic_filter_check((const uint8_t *)filters[i], len, &lim) != 0);
        /* Session i subscribes to filter i; duplicates are distinct subscriptions. */
        cr_assert_eq(ins(t, filters[i], i, (uint8_t)(i % 3), NULL), 1);
        live[i] = true;
    }

    for (round = 0; round < 2; round++) {
        for (k = 0; k < NAMES / 2; k++) {
            size_t nl;

            do {
                nl = random_topic(&rng, name, sizeof(name), false);
            } while (topic_name_check((const uint8_t *)name, nl, &lim) != 0);
            match(t, name, &h);
            for (i = 0; i < FILTERS; i++) {
                bool want = live[i] && topic_match((const uint8_t *)filters[i], strlen(filters[i]),
                                                   (const uint8_t *)name, nl);

                cr_assert_eq(h.count[i], want ? 1u : 0u, "filter \"%s\" name \"%s\"", filters[i],
                             name);
                if (want)
                    cr_assert_eq(h.opt[i], i % 3);
            }
        }
        /* Second round: after removing a random half. */
        for (i = 0; i < FILTERS; i++) {
            if (live[i] && rng_next(&rng) % 2) {
                cr_assert(rem(t, filters[i], i, NULL));
                live[i] = false;
            }
        }
    }
    for (i = 0; i < FILTERS; i++) {
        if (live[i])
            cr_assert(rem(t, filters[i], i, NULL));
    }
    cr_assert_eq(trie_count(t), 0);
    hits_fini(&h);
    trie_free(t);
}
