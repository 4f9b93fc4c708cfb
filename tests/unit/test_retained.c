/*
 * test_retained.c - the retained store: set/replace/clear, the count limit,
 * message references, node freeing, the '$' rule, and a randomized
 * cross-check of retained_match() against the reference topic_match().
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/msg.h"
#include "core/retained.h"
#include "core/rm_assert.h"
#include "core/topic.h"

static struct msg *mk(const char *topic, const char *payload)
{
    struct msg *m = msg_new((const uint8_t *)topic, strlen(topic), NULL, 0,
                            (const uint8_t *)payload, strlen(payload), 1, true);

    cr_assert_not_null(m);
    return m;
}

static uint32_t refs(struct msg *m)
{
    return atomic_load(&m->refs);
}

/* The messages one retained_match() reported. */
struct found {
    size_t n;
    struct msg *m[64];
};

static void on_msg(void *ctx, struct msg *m)
{
    struct found *f = ctx;

    cr_assert_lt(f->n, RM_ARRAY_LEN(f->m));
    f->m[f->n++] = m;
}

static struct found match(const struct retained *r, const char *filter)
{
    struct found f = {0};

    retained_match(r, (const uint8_t *)filter, strlen(filter), on_msg, &f);
    return f;
}

static bool found_has(const struct found *f, const struct msg *m)
{
    size_t i;

    for (i = 0; i < f->n; i++) {
        if (f->m[i] == m)
            return true;
    }
    return false;
}

Test(retained, msg_new_lays_out_topic_and_payload_with_one_reference)
{
    struct msg *m =
        msg_new((const uint8_t *)"a/b", 3, NULL, 0, (const uint8_t *)"hello", 5, 2, true);

    cr_assert_not_null(m);
    cr_assert_eq(refs(m), 1);
    cr_assert_eq(m->topic_len, 3);
    cr_assert_eq(m->payload_len, 5);
    cr_assert_eq(m->qos, 2);
    cr_assert(m->retain);
    cr_assert_eq(memcmp(msg_topic(m), "a/b", 3), 0);
    cr_assert_eq(memcmp(msg_payload(m), "hello", 5), 0);
    cr_assert_eq(msg_ref(m), m);
    cr_assert_eq(refs(m), 2);
    msg_unref(m);
    cr_assert_eq(refs(m), 1);
    msg_unref(m);
}

Test(retained, set_stores_and_takes_its_own_reference)
{
    struct retained *r = retained_new();
    struct msg *m = mk("a/b", "1");
    struct found f;

    cr_assert_not_null(r);
    cr_assert_eq(retained_count(r), 0);
    cr_assert_eq(retained_set(r, m, 10), 1);
    cr_assert_eq(retained_count(r), 1);
    cr_assert_eq(refs(m), 2);
    f = match(r, "a/b");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], m);
    retained_free(r);
    /* The store dropped its reference. */
    cr_assert_eq(refs(m), 1);
    msg_unref(m);
}

Test(retained, set_replaces_the_previous_message_of_the_topic)
{
    struct retained *r = retained_new();
    struct msg *m1 = mk("a/b", "1"), *m2 = mk("a/b", "2");
    struct found f;

    cr_assert_not_null(r);
    cr_assert_eq(retained_set(r, m1, 10), 1);
    /* [MQTT-3.3.1-5]: the new message replaces the old one. */
    cr_assert_eq(retained_set(r, m2, 10), 1);
    cr_assert_eq(retained_count(r), 1);
    cr_assert_eq(refs(m1), 1);
    cr_assert_eq(refs(m2), 2);
    f = match(r, "a/b");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], m2);
    /* Setting the same message again keeps one reference. */
    cr_assert_eq(retained_set(r, m2, 10), 1);
    cr_assert_eq(refs(m2), 2);
    retained_free(r);
    cr_assert_eq(refs(m2), 1);
    msg_unref(m1);
    msg_unref(m2);
}

Test(retained, empty_payload_clears_the_topic)
{
    struct retained *r = retained_new();
    struct msg *m = mk("a/b", "1"), *child = mk("a/b/c", "2"), *clear = mk("a/b", "");
    struct found f;

    cr_assert_not_null(r);
    cr_assert_eq(retained_set(r, m, 10), 1);
    cr_assert_eq(retained_set(r, child, 10), 1);
    /* [MQTT-3.3.1-10], [MQTT-3.3.1-11]: a zero-byte payload clears, never stored. */
    cr_assert_eq(retained_set(r, clear, 10), 0);
    cr_assert_eq(retained_count(r), 1);
    cr_assert_eq(refs(m), 1);
    cr_assert_eq(refs(clear), 1);
    f = match(r, "a/b");
    cr_assert_eq(f.n, 0);
    f = match(r, "a/#");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], child);
    /* Clearing what is not there is not an error. */
    cr_assert_eq(retained_set(r, clear, 10), 0);
    cr_assert_eq(retained_count(r), 1);
    retained_free(r);
    msg_unref(m);
    msg_unref(child);
    msg_unref(clear);
}

Test(retained, new_topic_past_the_limit_is_refused_with_enospc)
{
    struct retained *r = retained_new();
    struct msg *a = mk("a", "1"), *b = mk("b", "1"), *c = mk("c", "1"), *a2 = mk("a", "2");
    struct msg *clear_a = mk("a", "");

    cr_assert_not_null(r);
    cr_assert_eq(retained_set(r, a, 2), 1);
    cr_assert_eq(retained_set(r, b, 2), 1);
    cr_assert_eq(retained_set(r, c, 2), -ENOSPC);
    cr_assert_eq(retained_count(r), 2);
    cr_assert_eq(refs(c), 1);
    cr_assert_eq(match(r, "c").n, 0);
    /* Replacing an existing topic is allowed at the limit. */
    cr_assert_eq(retained_set(r, a2, 2), 1);
    cr_assert_eq(retained_count(r), 2);
    /* Clearing makes room. */
    cr_assert_eq(retained_set(r, clear_a, 2), 0);
    cr_assert_eq(retained_set(r, c, 2), 1);
    cr_assert_eq(retained_count(r), 2);
    /* A limit of zero stores nothing. */
    cr_assert_eq(retained_set(r, a, 0), -ENOSPC);
    retained_free(r);
    cr_assert_eq(refs(a), 1);
    cr_assert_eq(refs(a2), 1);
    cr_assert_eq(refs(b), 1);
    cr_assert_eq(refs(c), 1);
    msg_unref(a);
    msg_unref(a2);
    msg_unref(b);
    msg_unref(c);
    msg_unref(clear_a);
}

Test(retained, dollar_topics_skip_first_level_wildcards)
{
    struct retained *r = retained_new();
    struct msg *sys = mk("$SYS/monitor/Clients", "1"), *plain = mk("SYS/monitor/Clients", "1");
    struct msg *inner = mk("a/$b", "1");
    struct found f;

    cr_assert_not_null(r);
    cr_assert_eq(retained_set(r, sys, 10), 1);
    cr_assert_eq(retained_set(r, plain, 10), 1);
    cr_assert_eq(retained_set(r, inner, 10), 1);

    /* [MQTT-4.7.2-1] */
    f = match(r, "#");
    cr_assert_eq(f.n, 2);
    cr_assert_not(found_has(&f, sys));
    f = match(r, "+/monitor/Clients");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], plain);
    f = match(r, "$SYS/#");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], sys);
    f = match(r, "$SYS/monitor/+");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], sys);
    /* Only the first level is special. */
    f = match(r, "a/+");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], inner);
    retained_free(r);
    msg_unref(sys);
    msg_unref(plain);
    msg_unref(inner);
}

Test(retained, multi_level_wildcard_includes_the_parent_level)
{
    struct retained *r = retained_new();
    struct msg *sport = mk("sport", "1"), *tennis = mk("sport/tennis/player1", "1");
    struct msg *sports = mk("sports", "1"), *empty = mk("sport/", "1");
    struct found f;

    cr_assert_not_null(r);
    cr_assert_eq(retained_set(r, sport, 10), 1);
    cr_assert_eq(retained_set(r, tennis, 10), 1);
    cr_assert_eq(retained_set(r, sports, 10), 1);
    cr_assert_eq(retained_set(r, empty, 10), 1);
    f = match(r, "sport/#");
    cr_assert_eq(f.n, 3);
    cr_assert(found_has(&f, sport) && found_has(&f, tennis) && found_has(&f, empty));
    f = match(r, "sport/+");
    cr_assert_eq(f.n, 1);
    cr_assert_eq(f.m[0], empty);
    retained_free(r);
    msg_unref(sport);
    msg_unref(tennis);
    msg_unref(sports);
    msg_unref(empty);
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

Test(retained, clearing_every_topic_frees_every_node)
{
    enum { N = 20000 };
    struct retained *r = retained_new();
    struct msg **ms = calloc(N, sizeof(*ms));
    char topic[64];
    size_t before, i;

    cr_assert(r && ms);
    for (i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "dev/%zu/state", i);
        ms[i] = mk(topic, "on");
    }
    before = heap_in_use();
    for (i = 0; i < N; i++)
        cr_assert_eq(retained_set(r, ms[i], N), 1);
    cr_assert_eq(retained_count(r), N);
    for (i = 0; i < N; i++) {
        struct msg *clear;

        snprintf(topic, sizeof(topic), "dev/%zu/state", (i * 7919) % N);
        clear = mk(topic, "");
        cr_assert_eq(retained_set(r, clear, N), 0);
        msg_unref(clear);
    }
    cr_assert_eq(retained_count(r), 0);
    cr_assert_eq(match(r, "#").n, 0);
    /* What is left is malloc's per-thread cache. */
    cr_assert_leq(heap_in_use(), before + 64 * 1024, "%zu bytes left", heap_in_use() - before);
    for (i = 0; i < N; i++) {
        cr_assert_eq(refs(ms[i]), 1);
        msg_unref(ms[i]);
    }
    free(ms);
    retained_free(r);
}

Test(retained, free_drops_every_reference)
{
    enum { N = 3000 };
    struct retained *r = retained_new();
    struct msg **ms = calloc(N, sizeof(*ms));
    char topic[64];
    size_t i;

    cr_assert(r && ms);
    for (i = 0; i < N; i++) {
        snprintf(topic, sizeof(topic), "%s/%zu/x/%zu", i % 4 ? "a" : "$s", i % 50, i);
        ms[i] = mk(topic, "v");
        cr_assert_eq(retained_set(r, ms[i], N), 1);
        cr_assert_eq(refs(ms[i]), 2);
    }
    retained_free(r);
    for (i = 0; i < N; i++) {
        cr_assert_eq(refs(ms[i]), 1);
        msg_unref(ms[i]);
    }
    free(ms);
}

Test(retained, deep_topics_match_without_recursion)
{
    enum { LEVELS = 20000 };
    struct retained *r = retained_new();
    uint8_t *s = malloc(LEVELS * 2);
    struct msg *m;
    struct found f = {0};
    size_t i;

    cr_assert(r && s);
    for (i = 0; i < LEVELS; i++) {
        s[2 * i] = 'a';
        s[2 * i + 1] = '/';
    }
    m = msg_new(s, LEVELS * 2 - 1, NULL, 0, (const uint8_t *)"v", 1, 0, true);
    cr_assert_not_null(m);
    cr_assert_eq(retained_set(r, m, 10), 1);
    retained_match(r, (const uint8_t *)"#", 1, on_msg, &f);
    cr_assert_eq(f.n, 1);
    for (i = 0; i < LEVELS; i++)
        s[2 * i] = '+';
    f.n = 0;
    retained_match(r, s, LEVELS * 2 - 1, on_msg, &f);
    cr_assert_eq(f.n, 1);
    retained_free(r);
    msg_unref(m);
    free(s);
}

/* A seeded PRNG (xorshift64*), so failures reproduce. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* As in test_trie.c: a random topic over a small alphabet. */
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

struct tally {
    size_t n;
    size_t cap;
    struct msg **ms; /* the stored messages, by index */
    uint32_t *count; /* reports per index */
};

static void on_tally(void *ctx, struct msg *m)
{
    struct tally *t = ctx;
    size_t i;

    t->n++;
    for (i = 0; i < t->cap; i++) {
        if (t->ms[i] == m) {
            t->count[i]++;
            return;
        }
    }
    cr_assert_fail("reported a message that is not stored");
}

Test(retained, random_names_and_filters_agree_with_topic_match)
{
    /* About 1500 distinct names exist over this alphabet; store a few hundred. */
    enum { NAMES = 300, FILTERS = 3000 };
    static const struct limits lim = {.topic_bytes_max = 1024, .topic_levels_max = 16};
    static char names[NAMES][64];
    struct retained *r = retained_new();
    struct msg *ms[NAMES] = {0};
    uint32_t count[NAMES];
    struct tally tl = {.cap = NAMES, .ms = ms, .count = count};
    uint64_t rng = 0xfeedbeef1234ull;
    char filter[64];
    size_t i, j, k, round;

    cr_assert_not_null(r);
    /* Distinct valid names, each with its own message. */
    for (i = 0; i < NAMES; i++) {
        size_t nl;
        bool dup;

        do {
            nl = random_topic(&rng, names[i], sizeof(names[i]), false);
            dup = false;
            for (j = 0; j < i; j++)
                dup = dup || strcmp(names[j], names[i]) == 0;
        } while (dup || topic_name_check((const uint8_t *)names[i], nl, &lim) != 0);
        ms[i] = mk(names[i], "v");
        cr_assert_eq(retained_set(r, ms[i], NAMES), 1);
    }
    cr_assert_eq(retained_count(r), NAMES);

    for (round = 0; round < 2; round++) {
        for (k = 0; k < FILTERS / 2; k++) {
            size_t fl;

            do {
                fl = random_topic(&rng, filter, sizeof(filter), true);
            } while (topic_filter_check((const uint8_t *)filter, fl, &lim) != 0);
            tl.n = 0;
            memset(count, 0, sizeof(count));
            retained_match(r, (const uint8_t *)filter, fl, on_tally, &tl);
            for (i = 0; i < NAMES; i++) {
                bool want = ms[i] && topic_match((const uint8_t *)filter, fl,
                                                 (const uint8_t *)names[i], strlen(names[i]));

                cr_assert_eq(count[i], want ? 1u : 0u, "filter \"%s\" name \"%s\"", filter,
                             names[i]);
            }
        }
        /* Second round: after clearing a random half. */
        for (i = 0; i < NAMES; i++) {
            if (ms[i] && rng_next(&rng) % 2) {
                struct msg *clear = mk(names[i], "");

                cr_assert_eq(retained_set(r, clear, NAMES), 0);
                msg_unref(clear);
                cr_assert_eq(refs(ms[i]), 1);
                msg_unref(ms[i]);
                ms[i] = NULL;
            }
        }
    }
    retained_free(r);
    for (i = 0; i < NAMES; i++) {
        if (ms[i]) {
            cr_assert_eq(refs(ms[i]), 1);
            msg_unref(ms[i]);
        }
    }
}

Test(retained, each_visits_every_message_dollar_topics_too)
{
    struct retained *r = retained_new();
    struct msg *m[4] = {mk("a", "1"), mk("a/b/c", "2"), mk("$SYS/x", "3"), mk("z", "4")};
    struct found f = {0};
    size_t i;

    cr_assert_not_null(r);
    for (i = 0; i < 4; i++)
        cr_assert_eq(retained_set(r, m[i], 100), 1);
    retained_each(r, on_msg, &f);
    cr_assert_eq(f.n, 4);
    for (i = 0; i < 4; i++)
        cr_assert(found_has(&f, m[i]), "message %zu not visited", i);
    retained_free(r);
    for (i = 0; i < 4; i++)
        msg_unref(m[i]);
}

Test(retained, take_removes_a_message_only_while_it_is_its_topics)
{
    struct retained *r = retained_new();
    struct msg *old = mk("t/x", "old");
    struct msg *cur = mk("t/x", "new");

    cr_assert_not_null(r);
    cr_assert_eq(retained_set(r, old, 100), 1);
    cr_assert_eq(retained_set(r, cur, 100), 1); /* replaces: old is not its topic's any more */
    cr_assert_null(retained_take(r, old));
    cr_assert_eq(retained_count(r), 1);
    cr_assert_eq(retained_take(r, cur), cur);
    cr_assert_eq(retained_count(r), 0);
    cr_assert_eq(match(r, "#").n, 0, "the emptied branch is gone");
    msg_unref(cur); /* the store's reference, handed over by take */
    retained_free(r);
    msg_unref(old);
    msg_unref(cur);
}
