/*
 * test_share.c - shared subscriptions: "$share/" parsing, join/leave and
 * their 0<->1 transitions, one delivery per group per message with
 * round-robin fairness, online preference and the offline fallback,
 * several shards wired by hand, exclusion for re-dispatch, forwarding to
 * another shard, and freeing (run under ASan for leaks).
 *
 * Members are opaque to the module, so the tests use fake, never-dereferenced
 * pointers; whether member i is online is online_flag[i].
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mqtt_codec.h"
#include "core/share.h"

#define MEMBERS_MAX 4096u
#define SHARDS 4u
/* The level hashing seed of every table here (a shard's tries share one). */
#define SEED 0x5eedull

static bool online_flag[MEMBERS_MAX];

/* Member number @i (from 0) as a fake, aligned pointer. */
static void *mem_n(size_t i)
{
    return (void *)(uintptr_t)(0x10000 + i * 16);
}

static size_t mem_index(const void *m)
{
    uintptr_t p = (uintptr_t)m;

    cr_assert_geq(p, 0x10000);
    cr_assert_eq(p % 16, 0);
    cr_assert_lt((p - 0x10000) / 16, MEMBERS_MAX);
    return (p - 0x10000) / 16;
}

static bool member_online(void *m)
{
    return online_flag[mem_index(m)];
}

static void all_online(void)
{
    size_t i;

    for (i = 0; i < MEMBERS_MAX; i++)
        online_flag[i] = true;
}

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

/* share_match() on @topic, split under SEED. */
static void share_match_str(struct share_table *t, const char *topic, share_pick_cb cb, void *ctx)
{
    struct trie_name n = {0};

    cr_assert_eq(trie_split(&n, SEED, u8(topic), strlen(topic)), 0);
    share_match(t, &n, cb, ctx);
    trie_name_fini(&n);
}

static int parse(const char *f, struct share_name *sn)
{
    return share_parse(u8(f), strlen(f), sn);
}

/* share_join(); *@first (may be NULL): the group is new to the shard (a count of 1). */
static int join(struct share_table *t, const char *f, size_t m, uint8_t opt, bool *first)
{
    uint32_t members = 0;
    int rc = share_join(t, u8(f), strlen(f), mem_n(m), opt, 0, &members);

    if (first != NULL)
        *first = rc == 1 && members == 1;
    return rc;
}

/* share_leave(); *@last (may be NULL): the shard's last member left. */
static bool leave(struct share_table *t, const char *f, size_t m, bool *last)
{
    uint32_t members = 1;
    bool found = share_leave(t, u8(f), strlen(f), mem_n(m), &members);

    if (last != NULL)
        *last = found && members == 0;
    return found;
}

static uint64_t key(const char *f)
{
    return share_key(SEED, u8(f), strlen(f));
}

/* What share_match() reported. */
struct picks {
    size_t n;                    /* callbacks */
    uint32_t local[MEMBERS_MAX]; /* local picks per member */
    uint32_t shard[SHARDS];      /* picks per shard */
    uint64_t last_key;
    uint32_t last_shard;
    void *last_member;
    uint8_t last_options;
    uint32_t last_sub_id;
};

static void record(void *ctx, uint64_t group_key, uint32_t shard, void *member, uint8_t options,
                   uint32_t sub_id)
{
    struct picks *p = ctx;

    cr_assert_lt(shard, SHARDS);
    p->n++;
    p->shard[shard]++;
    if (member != NULL)
        p->local[mem_index(member)]++;
    p->last_key = group_key;
    p->last_shard = shard;
    p->last_member = member;
    p->last_options = options;
    p->last_sub_id = sub_id;
}

static void match(struct share_table *t, const char *topic, struct picks *p)
{
    share_match_str(t, topic, record, p);
}

static struct share_table *table1(void)
{
    struct share_table *t;

    all_online();
    t = share_table_new(0, 1, SEED, SEED, member_online);
    cr_assert_not_null(t);
    return t;
}

Test(share, parse_recognises_a_shared_subscription_and_splits_it)
{
    struct share_name sn;

    cr_assert_eq(parse("$share/grp/a/b/#", &sn), 1);
    cr_assert_eq(sn.name_len, 3);
    cr_assert_eq(memcmp(sn.name, "grp", 3), 0);
    cr_assert_eq(sn.filter_len, 5);
    cr_assert_eq(memcmp(sn.filter, "a/b/#", 5), 0);
    cr_assert_eq(parse("$share/g/#", &sn), 1);
    cr_assert_eq(sn.filter_len, 1);
    cr_assert_eq(parse("$share/g/+", &sn), 1);
    /* The filter is any filter, even one made of empty levels or '$'. */
    cr_assert_eq(parse("$share/g//", &sn), 1);
    cr_assert_eq(sn.filter_len, 1);
    cr_assert_eq(sn.filter[0], '/');
    cr_assert_eq(parse("$share/g/$SYS/x", &sn), 1);
    cr_assert_eq(sn.filter_len, 6);
    /* A one-character ShareName is enough [MQTT-4.8.2-1]. */
    cr_assert_eq(parse("$share/x/y", &sn), 1);
    cr_assert_eq(sn.name_len, 1);
    cr_assert_eq(sn.name[0], 'x');
}

Test(share, parse_returns_zero_for_ordinary_filters)
{
    struct share_name sn = {0};

    cr_assert_eq(parse("a/b", &sn), 0);
    cr_assert_eq(parse("$share", &sn), 0);
    cr_assert_eq(parse("$shar/g/f", &sn), 0);
    cr_assert_eq(parse("$SHARE/g/f", &sn), 0);
    cr_assert_eq(parse("$shared/g/f", &sn), 0);
    cr_assert_eq(parse("#", &sn), 0);
    cr_assert_eq(share_parse(u8(""), 0, &sn), 0);
    cr_assert_null(sn.name, "out must not be written unless 1 is returned");
}

Test(share, parse_refuses_an_empty_share_name_MQTT_4_8_2_1)
{
    struct share_name sn;

    cr_assert_eq(parse("$share/", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share//f", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share//", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(share, parse_refuses_wildcards_in_the_share_name_and_a_missing_filter_MQTT_4_8_2_2)
{
    struct share_name sn;

    cr_assert_eq(parse("$share/+/f", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share/#/f", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share/a+/f", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share/a#b/f", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    /* The ShareName must be followed by '/' and then a filter. */
    cr_assert_eq(parse("$share/g", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share/g/", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
    cr_assert_eq(parse("$share/g#", &sn), -MQTT_RC_TOPIC_FILTER_INVALID);
}

Test(share, key_is_a_stable_hash_of_the_full_filter)
{
    cr_assert_eq(key("$share/g/a"), key("$share/g/a"));
    cr_assert_neq(key("$share/g/a"), key("$share/h/a"));
    cr_assert_neq(key("$share/g/a"), key("$share/g/b"));
    /* Equal on every shard of a process: it names a group in cross-shard messages. */
    cr_assert_eq(key("$share/g/a"), 0x837f989e215ebf01ull, "XXH3-64 under SEED");
    /* The process's secret seed changes every key: a client cannot compute them. */
    cr_assert_neq(key("$share/g/a"), share_key(SEED + 1, u8("$share/g/a"), 10));
}

Test(share, join_reports_the_first_local_member_and_replace_keeps_one)
{
    struct share_table *t = table1();
    struct picks p = {0};
    bool first = false;

    cr_assert_eq(join(t, "$share/g/a", 1, 1, &first), 1);
    cr_assert(first);
    cr_assert_eq(join(t, "$share/g/a", 2, 1, &first), 1);
    cr_assert_not(first);
    /* The same member again replaces its options [MQTT-3.8.4-3]. */
    cr_assert_eq(join(t, "$share/g/a", 1, 2, &first), 0);
    cr_assert_not(first);
    cr_assert_eq(share_member_count(t, u8("$share/g/a"), 10), 2);
    cr_assert_eq(share_group_count(t), 1);
    /* Another ShareName on the same filter is another group. */
    cr_assert_eq(join(t, "$share/h/a", 1, 0, &first), 1);
    cr_assert(first);
    cr_assert_eq(share_group_count(t), 2);
    cr_assert_eq(join(t, "$share/g/a", 3, 1, NULL), 1);

    match(t, "x", &p);
    cr_assert_eq(p.n, 0);
    /* Member 1 was first in, and kept its place with its new options. */
    match(t, "a", &p);
    cr_assert_eq(p.n, 2);
    memset(&p, 0, sizeof(p));
    share_leave(t, u8("$share/h/a"), 10, mem_n(1), NULL);
    match(t, "a", &p);
    cr_assert_eq(p.n, 1);
    cr_assert_eq(p.last_key, key("$share/g/a"));
    cr_assert_eq(p.last_member, mem_n(2));
    cr_assert_eq(p.last_options, 1);
    match(t, "a", &p);
    cr_assert_eq(p.last_member, mem_n(3));
    match(t, "a", &p);
    cr_assert_eq(p.last_member, mem_n(1));
    cr_assert_eq(p.last_options, 2);
    share_table_free(t);
}

Test(share, a_pick_reports_the_members_subscription_identifier)
{
    struct share_table *t = table1();
    struct picks p = {0};
    const char *f = "$share/g/a/+";
    uint32_t id = 1;
    uint8_t opt = 0;

    cr_assert_eq(share_join(t, u8(f), strlen(f), mem_n(0), 1, 0, NULL), 1);
    cr_assert_eq(share_join(t, u8(f), strlen(f), mem_n(1), 2, 268435455, NULL), 1);
    match(t, "a/b", &p);
    cr_assert_eq(p.last_member, mem_n(0));
    cr_assert_eq(p.last_sub_id, 0);
    match(t, "a/b", &p);
    cr_assert_eq(p.last_member, mem_n(1));
    cr_assert_eq(p.last_sub_id, 268435455);
    /* A replace changes it [MQTT-3.8.4-3]; share_pick() reports it too. */
    cr_assert_eq(share_join(t, u8(f), strlen(f), mem_n(0), 1, 5, NULL), 0);
    cr_assert_eq(share_pick(t, key(f), u8("a/c"), 3, NULL, &opt, &id), mem_n(0));
    cr_assert_eq(id, 5);
    cr_assert_eq(opt, 1);
    share_table_free(t);
}

Test(share, leave_reports_the_last_local_member_and_frees_the_group)
{
    struct share_table *t = table1();
    struct picks p = {0};
    bool last = true;

    join(t, "$share/g/a", 1, 0, NULL);
    join(t, "$share/g/a", 2, 0, NULL);
    cr_assert_not(leave(t, "$share/g/a", 3, &last), "not a member");
    cr_assert_not(last);
    cr_assert_not(leave(t, "$share/g/b", 1, &last), "no such group");
    cr_assert_not(leave(t, "$share/h/a", 1, &last), "no such group");
    cr_assert(leave(t, "$share/g/a", 1, &last));
    cr_assert_not(last);
    cr_assert(leave(t, "$share/g/a", 2, &last));
    cr_assert(last);
    cr_assert_not(leave(t, "$share/g/a", 2, &last));
    cr_assert_eq(share_group_count(t), 0);
    cr_assert_eq(share_member_count(t, u8("$share/g/a"), 10), 0);
    match(t, "a", &p);
    cr_assert_eq(p.n, 0);
    share_table_free(t);
}

Test(share, each_message_goes_to_exactly_one_member_round_robin)
{
    struct share_table *t = table1();
    struct picks p = {0};
    size_t i;

    for (i = 0; i < 5; i++)
        cr_assert_eq(join(t, "$share/g/s/t", i, (uint8_t)i, NULL), 1);
    for (i = 0; i < 1000; i++) {
        size_t before = p.n;

        match(t, "s/t", &p);
        cr_assert_eq(p.n, before + 1, "one delivery per message");
        cr_assert_eq(p.last_shard, 0);
        cr_assert_eq(p.last_member, mem_n(i % 5), "strict rotation");
        cr_assert_eq(p.last_options, i % 5);
    }
    for (i = 0; i < 5; i++)
        cr_assert_eq(p.local[i], 200);
    share_table_free(t);
}

Test(share, two_groups_on_one_filter_each_get_one_copy)
{
    struct share_table *t = table1();
    struct picks p = {0};
    size_t i, g_total = 0, h_total = 0;

    for (i = 0; i < 3; i++)
        join(t, "$share/g/a/b", i, 0, NULL);
    for (i = 10; i < 14; i++)
        join(t, "$share/h/a/b", i, 0, NULL);
    join(t, "$share/k/a/c", 20, 0, NULL);
    for (i = 0; i < 120; i++)
        match(t, "a/b", &p);
    cr_assert_eq(p.n, 240);
    for (i = 0; i < 3; i++) {
        cr_assert_eq(p.local[i], 40);
        g_total += p.local[i];
    }
    for (i = 10; i < 14; i++) {
        cr_assert_eq(p.local[i], 30);
        h_total += p.local[i];
    }
    cr_assert_eq(g_total, 120);
    cr_assert_eq(h_total, 120);
    cr_assert_eq(p.local[20], 0);
    share_table_free(t);
}

Test(share, wildcard_filters_match_and_obey_the_dollar_rule)
{
    struct share_table *t = table1();
    struct picks p = {0};

    join(t, "$share/g/sport/+/score", 1, 0, NULL);
    join(t, "$share/g/sport/#", 2, 0, NULL);
    join(t, "$share/g/#", 3, 0, NULL);
    join(t, "$share/g/$SYS/#", 4, 0, NULL);
    match(t, "sport/tennis/score", &p);
    cr_assert_eq(p.n, 3);
    cr_assert_eq(p.local[1] + p.local[2] + p.local[3], 3);
    match(t, "sport", &p);
    cr_assert_eq(p.n, 5);
    cr_assert_eq(p.local[2], 2);
    cr_assert_eq(p.local[3], 2);
    /* A filter starting with a wildcard never matches a '$' topic [MQTT-4.7.2-1]. */
    match(t, "$SYS/load", &p);
    cr_assert_eq(p.n, 6);
    cr_assert_eq(p.local[4], 1);
    cr_assert_eq(p.local[3], 2);
    share_table_free(t);
}

/* Four shards in one test; interest transitions are wired by hand. */
struct cluster {
    struct share_table *t[SHARDS];
};

static void cluster_init(struct cluster *c)
{
    uint32_t s;

    all_online();
    for (s = 0; s < SHARDS; s++) {
        c->t[s] = share_table_new(s, SHARDS, SEED, SEED, member_online);
        cr_assert_not_null(c->t[s]);
    }
}

static void cluster_free(struct cluster *c)
{
    uint32_t s;

    for (s = 0; s < SHARDS; s++)
        share_table_free(c->t[s]);
}

/* Tell every other shard @s's new member count, as XMSG_INTEREST_* would. */
static void announce(struct cluster *c, uint32_t s, const char *f, uint32_t members)
{
    uint32_t o;

    for (o = 0; o < SHARDS; o++) {
        if (o != s)
            cr_assert_eq(share_remote(c->t[o], u8(f), strlen(f), s, members), 0);
    }
}

static void cjoin(struct cluster *c, uint32_t s, const char *f, size_t m)
{
    uint32_t members = 0;
    int rc = share_join(c->t[s], u8(f), strlen(f), mem_n(m), 0, 0, &members);

    cr_assert_geq(rc, 0);
    if (rc == 1)
        announce(c, s, f, members);
}

static void cleave(struct cluster *c, uint32_t s, const char *f, size_t m)
{
    uint32_t members = 99;

    cr_assert(share_leave(c->t[s], u8(f), strlen(f), mem_n(m), &members));
    announce(c, s, f, members);
}

/* Publish on @s and deliver: remote picks go through share_pick() there. */
struct route {
    struct cluster *c;
    const char *topic;
    struct picks p;            /* as reported by the publishing shard */
    uint32_t got[MEMBERS_MAX]; /* deliveries per member, wherever picked */
    size_t delivered;
};

static void route_cb(void *ctx, uint64_t group_key, uint32_t shard, void *member, uint8_t options,
                     uint32_t sub_id)
{
    struct route *r = ctx;

    record(&r->p, group_key, shard, member, options, sub_id);
    if (member == NULL) {
        member = share_pick(r->c->t[shard], group_key, u8(r->topic), strlen(r->topic), NULL, NULL,
                            NULL);
        cr_assert_not_null(member, "the chosen shard has a member");
    }
    r->got[mem_index(member)]++;
    r->delivered++;
}

static void cpublish(struct cluster *c, uint32_t s, const char *topic, struct route *r)
{
    r->c = c;
    r->topic = topic;
    share_match_str(c->t[s], topic, route_cb, r);
}

Test(share, remote_shards_are_served_by_member_count_then_their_members)
{
    static const size_t per_shard[SHARDS] = {1, 2, 4, 5};
    struct cluster c;
    struct route *r = calloc(1, sizeof(*r));
    size_t m = 0, i;
    uint32_t s;

    cr_assert_not_null(r);
    cluster_init(&c);
    for (s = 0; s < SHARDS; s++) {
        for (i = 0; i < per_shard[s]; i++)
            cjoin(&c, s, "$share/g/t/+", m++);
    }
    for (s = 0; s < SHARDS; s++)
        cr_assert_eq(share_group_count(c.t[s]), 1);
    for (i = 0; i < 4800; i++) {
        size_t before = r->delivered;

        cpublish(&c, 1, "t/x", r);
        cr_assert_eq(r->delivered, before + 1, "exactly one member per message");
    }
    /* Each shard in proportion to its members: 12 members, 400 messages each. */
    for (s = 0; s < SHARDS; s++)
        cr_assert_eq(r->p.shard[s], 400 * per_shard[s], "shard %u: %u", s, r->p.shard[s]);
    /* Local picks only for the publishing shard's own members (1 and 2). */
    cr_assert_eq(r->p.local[1] + r->p.local[2], 800);
    for (m = 0; m < 12; m++)
        cr_assert_eq(r->got[m], 400, "member %zu: %u", m, r->got[m]);

    /* Shard 2's members leave: it is never chosen again; the others keep their weights. */
    for (m = 3; m < 7; m++)
        cleave(&c, 2, "$share/g/t/+", m);
    memset(r, 0, sizeof(*r));
    for (i = 0; i < 800; i++)
        cpublish(&c, 0, "t/y", r);
    cr_assert_eq(r->p.shard[2], 0);
    cr_assert_eq(r->p.shard[0], 100);
    cr_assert_eq(r->p.shard[1], 200);
    cr_assert_eq(r->p.shard[3], 500);
    cr_assert_eq(share_group_count(c.t[2]), 1, "shard 2 still knows the group");

    /* Everyone leaves: every shard frees the group. */
    cleave(&c, 0, "$share/g/t/+", 0);
    cleave(&c, 1, "$share/g/t/+", 1);
    cleave(&c, 1, "$share/g/t/+", 2);
    for (m = 7; m < 12; m++)
        cleave(&c, 3, "$share/g/t/+", m);
    for (s = 0; s < SHARDS; s++)
        cr_assert_eq(share_group_count(c.t[s]), 0, "shard %u", s);
    cluster_free(&c);
    free(r);
}

Test(share, a_member_alone_on_its_shard_gets_its_share_not_its_shards)
{
    /*
     * Issue 13: one member on shard 0, three on shard 1. Whichever shard
     * publishes, each member gets a quarter, and every run of four
     * messages from one shard reaches each member once (before: the lone
     * member got half, the three a sixth each).
     */
    const char *f = "$share/g/fair";
    struct cluster c;
    struct route *r = calloc(1, sizeof(*r));
    size_t last[4] = {0}, i, m;
    uint32_t from;

    cr_assert_not_null(r);
    cluster_init(&c);
    cjoin(&c, 0, f, 0);
    cjoin(&c, 1, f, 1);
    cjoin(&c, 1, f, 2);
    cjoin(&c, 1, f, 3);
    for (from = 0; from < SHARDS; from++) {
        memset(r, 0, sizeof(*r));
        for (i = 0; i < 400; i++) {
            uint32_t before[4];

            memcpy(before, r->got, sizeof(before));
            cpublish(&c, from, "fair", r);
            for (m = 0; m < 4; m++) {
                if (r->got[m] == before[m])
                    continue;
                /* Spread evenly: never twice within four messages. */
                cr_assert(i < 4 || i - last[m] >= 4, "from %u: member %zu again after %zu", from,
                          m, i - last[m]);
                last[m] = i;
            }
        }
        for (m = 0; m < 4; m++)
            cr_assert_eq(r->got[m], 100, "from shard %u: member %zu got %u", from, m, r->got[m]);
    }

    /* Two of shard 1's members leave, and the counts follow: half each. */
    cleave(&c, 1, f, 2);
    cleave(&c, 1, f, 3);
    memset(r, 0, sizeof(*r));
    for (i = 0; i < 400; i++)
        cpublish(&c, 2, "fair", r);
    cr_assert_eq(r->got[0], 200);
    cr_assert_eq(r->got[1], 200);
    cluster_free(&c);
    free(r);
}

Test(share, remote_add_and_remove_are_idempotent)
{
    struct cluster c;
    struct picks p = {0};
    const char *f = "$share/g/a";

    cluster_init(&c);
    cr_assert_eq(share_remote(c.t[0], u8(f), strlen(f), 2, 1), 0);
    cr_assert_eq(share_remote(c.t[0], u8(f), strlen(f), 2, 1), 0);
    cr_assert_eq(share_group_count(c.t[0]), 1);
    for (int i = 0; i < 3; i++)
        match(c.t[0], "a", &p);
    cr_assert_eq(p.shard[2], 3);
    cr_assert_null(p.last_member);
    cr_assert_eq(share_remote(c.t[0], u8(f), strlen(f), 2, 0), 0);
    cr_assert_eq(share_group_count(c.t[0]), 0);
    cr_assert_eq(share_remote(c.t[0], u8(f), strlen(f), 2, 0), 0);
    cr_assert_eq(share_group_count(c.t[0]), 0);
    /* A group with a local member outlives remote bits, and the reverse. */
    share_remote(c.t[0], u8(f), strlen(f), 3, 1);
    join(c.t[0], f, 1, 0, NULL);
    share_remote(c.t[0], u8(f), strlen(f), 3, 0);
    cr_assert_eq(share_group_count(c.t[0]), 1);
    share_remote(c.t[0], u8(f), strlen(f), 1, 1);
    leave(c.t[0], f, 1, NULL);
    cr_assert_eq(share_group_count(c.t[0]), 1);
    share_remote(c.t[0], u8(f), strlen(f), 1, 0);
    cr_assert_eq(share_group_count(c.t[0]), 0);
    cluster_free(&c);
}

Test(share, online_members_are_preferred)
{
    struct share_table *t = table1();
    struct picks p = {0};
    size_t i;

    for (i = 0; i < 4; i++)
        join(t, "$share/g/a", i, 0, NULL);
    online_flag[1] = false;
    online_flag[3] = false;
    for (i = 0; i < 100; i++)
        match(t, "a", &p);
    cr_assert_eq(p.n, 100);
    cr_assert_eq(p.local[0], 50);
    cr_assert_eq(p.local[2], 50);
    cr_assert_eq(p.local[1] + p.local[3], 0);
    share_table_free(t);
}

Test(share, offline_members_are_used_round_robin_when_none_is_online)
{
    struct share_table *t = table1();
    struct picks p = {0};
    size_t i;

    for (i = 0; i < 4; i++) {
        join(t, "$share/g/a", i, 0, NULL);
        online_flag[i] = false;
    }
    for (i = 0; i < 100; i++)
        match(t, "a", &p);
    for (i = 0; i < 4; i++)
        cr_assert_eq(p.local[i], 25, "a persistent session queues its share");
    /* One comes back: it takes everything. */
    online_flag[2] = true;
    memset(&p, 0, sizeof(p));
    for (i = 0; i < 10; i++)
        match(t, "a", &p);
    cr_assert_eq(p.local[2], 10);
    share_table_free(t);
}

Test(share, a_shard_with_only_offline_members_passes_its_turn_to_another)
{
    struct cluster c;
    struct route *r = calloc(1, sizeof(*r));
    size_t i;

    cr_assert_not_null(r);
    cluster_init(&c);
    cjoin(&c, 0, "$share/g/a", 0);
    cjoin(&c, 0, "$share/g/a", 1);
    cjoin(&c, 2, "$share/g/a", 2);
    online_flag[0] = false;
    online_flag[1] = false;
    for (i = 0; i < 50; i++)
        cpublish(&c, 0, "a", r);
    cr_assert_eq(r->p.shard[2], 50);
    cr_assert_eq(r->got[2], 50);
    cr_assert_eq(r->got[0] + r->got[1], 0);
    /* Shard 2's member leaves: the offline ones here queue it again. */
    cleave(&c, 2, "$share/g/a", 2);
    memset(r, 0, sizeof(*r));
    for (i = 0; i < 50; i++)
        cpublish(&c, 0, "a", r);
    cr_assert_eq(r->got[0], 25);
    cr_assert_eq(r->got[1], 25);
    cluster_free(&c);
    free(r);
}

Test(share, pick_never_returns_the_excluded_member_unless_it_is_alone)
{
    struct share_table *t = table1();
    uint64_t k = key("$share/g/a/+");
    uint8_t opt = 0xff;
    size_t i, n[3] = {0};

    join(t, "$share/g/a/+", 0, 1, NULL);
    join(t, "$share/g/a/+", 1, 1, NULL);
    join(t, "$share/g/a/+", 2, 2, NULL);
    for (i = 0; i < 60; i++) {
        void *m = share_pick(t, k, u8("a/b"), 3, mem_n(1), &opt, NULL);

        cr_assert_neq(m, mem_n(1));
        n[mem_index(m)]++;
    }
    cr_assert_eq(n[0], 30);
    cr_assert_eq(n[2], 30);
    /* An offline member beats the excluded one. */
    online_flag[0] = false;
    online_flag[2] = false;
    cr_assert_neq(share_pick(t, k, u8("a/b"), 3, mem_n(1), NULL, NULL), mem_n(1));
    leave(t, "$share/g/a/+", 0, NULL);
    leave(t, "$share/g/a/+", 2, NULL);
    cr_assert_eq(share_pick(t, k, u8("a/b"), 3, mem_n(1), &opt, NULL), mem_n(1));
    cr_assert_eq(opt, 1);
    /* Wrong topic for the key, unknown key, no member: NULL. */
    cr_assert_null(share_pick(t, k, u8("b/b"), 3, NULL, NULL, NULL));
    cr_assert_null(share_pick(t, k ^ 1, u8("a/b"), 3, NULL, NULL, NULL));
    leave(t, "$share/g/a/+", 1, NULL);
    cr_assert_null(share_pick(t, k, u8("a/b"), 3, NULL, NULL, NULL));
    share_table_free(t);
}

Test(share, pick_shard_forwards_to_another_shard_with_members)
{
    struct cluster c;
    const char *f = "$share/g/a";
    uint64_t k = key(f);
    uint32_t s = 99, i, n[SHARDS] = {0};

    cluster_init(&c);
    cjoin(&c, 1, f, 1);
    cjoin(&c, 3, f, 3);
    /* Shard 0 has no member of its own: it forwards, avoiding the sender. */
    for (i = 0; i < 10; i++) {
        cr_assert(share_pick_shard(c.t[0], k, u8("a"), 1, 1, &s));
        cr_assert_eq(s, 3);
    }
    for (i = 0; i < 10; i++) {
        cr_assert(share_pick_shard(c.t[0], k, u8("a"), 1, UINT32_MAX, &s));
        n[s]++;
    }
    cr_assert_eq(n[1], 5);
    cr_assert_eq(n[3], 5);
    /* Never itself, even with members. */
    cr_assert(share_pick_shard(c.t[1], k, u8("a"), 1, UINT32_MAX, &s));
    cr_assert_eq(s, 3);
    cleave(&c, 3, f, 3);
    /* The sender is the only shard left: back to it (the hop bound ends loops). */
    cr_assert(share_pick_shard(c.t[0], k, u8("a"), 1, 1, &s));
    cr_assert_eq(s, 1);
    cr_assert_not(share_pick_shard(c.t[1], k, u8("a"), 1, 0, &s));
    cr_assert_not(share_pick_shard(c.t[0], k, u8("b"), 1, UINT32_MAX, &s), "topic checked");
    cleave(&c, 1, f, 1);
    cr_assert_not(share_pick_shard(c.t[0], k, u8("a"), 1, UINT32_MAX, &s));
    cluster_free(&c);
}

Test(share, large_groups_join_replace_and_leave_in_any_order)
{
    struct share_table *t = table1();
    struct picks *p = calloc(1, sizeof(*p));
    size_t order[1000], i, j, n = 1000;
    bool first, last;

    cr_assert_not_null(p);
    for (i = 0; i < n; i++) {
        cr_assert_eq(join(t, "$share/big/x", i, 1, &first), 1);
        cr_assert_eq(first, i == 0);
        order[i] = i;
    }
    for (i = 0; i < n; i += 7)
        cr_assert_eq(join(t, "$share/big/x", i, 2, NULL), 0);
    cr_assert_eq(share_member_count(t, u8("$share/big/x"), 12), n);
    srand(7);
    for (i = n - 1; i > 0; i--) {
        size_t tmp;

        j = (size_t)rand() % (i + 1);
        tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    /* Half leave; the other half shares the load evenly. */
    for (i = 0; i < n / 2; i++) {
        cr_assert(leave(t, "$share/big/x", order[i], &last));
        cr_assert_not(last);
        cr_assert_not(leave(t, "$share/big/x", order[i], NULL));
    }
    for (i = 0; i < 5 * n / 2; i++)
        match(t, "x", p);
    for (i = 0; i < n / 2; i++) {
        cr_assert_eq(p->local[order[i]], 0);
        cr_assert_eq(p->local[order[n / 2 + i]], 5, "member %zu", order[n / 2 + i]);
    }
    for (i = n / 2; i < n; i++) {
        cr_assert(leave(t, "$share/big/x", order[i], &last));
        cr_assert_eq(last, i == n - 1);
    }
    cr_assert_eq(share_group_count(t), 0);
    share_table_free(t);
    free(p);
}

Test(share, many_groups_are_found_and_freed)
{
    struct share_table *t = table1();
    char f[64];
    size_t i;

    for (i = 0; i < 2000; i++) {
        snprintf(f, sizeof(f), "$share/g%zu/t/%zu", i, i % 10);
        cr_assert_eq(join(t, f, i, 0, NULL), 1);
    }
    cr_assert_eq(share_group_count(t), 2000);
    for (i = 0; i < 2000; i++) {
        struct picks p = {0};

        snprintf(f, sizeof(f), "t/%zu", i % 10);
        if (i < 10) {
            match(t, f, &p);
            cr_assert_eq(p.n, 200);
        }
        snprintf(f, sizeof(f), "$share/g%zu/t/%zu", i, i % 10);
        cr_assert_eq(share_member_count(t, u8(f), strlen(f)), 1);
    }
    for (i = 0; i < 2000; i++) {
        snprintf(f, sizeof(f), "$share/g%zu/t/%zu", i, i % 10);
        cr_assert(leave(t, f, i, NULL));
    }
    cr_assert_eq(share_group_count(t), 0);
    share_table_free(t);
}

Test(share, table_free_releases_live_groups)
{
    struct share_table *t = table1();
    struct share_table *u;
    size_t i;

    for (i = 0; i < 20; i++)
        join(t, "$share/g/a", i, 0, NULL);
    join(t, "$share/h/#", 1, 0, NULL);
    share_table_free(t);
    share_table_free(NULL);
    u = share_table_new(1, 2, SEED, SEED, member_online);
    cr_assert_not_null(u);
    share_remote(u, u8("$share/g/a"), 10, 0, 1);
    share_table_free(u);
}
