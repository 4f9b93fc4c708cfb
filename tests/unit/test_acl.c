/*
 * test_acl.c - core/acl: filter relations, the decision table (users,
 * groups, anonymous, all, %u, %c, $share, '$' topics, first match, deny
 * before allow, defaults), subscription classes, and the cost of a decision
 * over a 1,000-rule ACL (printed, not asserted).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/acl.h"
#include "core/topic.h"

#define S(x) (const uint8_t *)(x), strlen(x)

/* ------------------------------------------------------------ filter relations */

struct rel_case {
    const char *a;
    const char *b;
    bool a_covers_b;
    bool overlap;
};

static const struct rel_case rel_cases[] = {
    {"#", "a/b", true, true},
    {"#", "#", true, true},
    {"a/#", "a", true, true},
    {"a/#", "a/#", true, true},
    {"a/#", "a/+/c", true, true},
    {"a/+", "a/#", false, true},
    {"a/+", "a/b", true, true},
    {"a/+", "a/+", true, true},
    {"a/b", "a/+", false, true},
    {"a/b", "a/b", true, true},
    {"a/b", "a/c", false, false},
    {"a/b", "a/b/c", false, false},
    {"a/+/c", "a/b/+", false, true},
    {"+/+", "a/#", false, true},
    {"+", "a/b", false, false},
    {"a/b/#", "a/#", false, true},
    {"a//b", "a/+/b", false, true},
    {"+/a", "$SYS/a", false, false},
    {"#", "$SYS/#", false, false},
    {"$SYS/#", "#", false, false},
    {"$SYS/#", "$SYS/broker/+", true, true},
    {"$SYS/+", "+/x", false, false},
};

Test(acl, filter_relations_follow_the_matcher_and_the_dollar_rule)
{
    for (size_t i = 0; i < sizeof(rel_cases) / sizeof(rel_cases[0]); i++) {
        const struct rel_case *c = &rel_cases[i];
        cr_assert_eq(acl_filter_covers(S(c->a), S(c->b)), c->a_covers_b, "%s covers %s: %d", c->a,
                     c->b, !c->a_covers_b);
        cr_assert_eq(acl_filter_overlaps(S(c->a), S(c->b)), c->overlap, "%s overlaps %s: %d", c->a,
                     c->b, !c->overlap);
        cr_assert_eq(acl_filter_overlaps(S(c->b), S(c->a)), c->overlap, "symmetric: %s, %s", c->b,
                     c->a);
    }
}

/* covers(a, b) means every name b matches a matches too: checked over a small universe. */
Test(acl, covers_agrees_with_topic_match_over_a_universe)
{
    static const char *const filters[] = {"#",   "+",     "a",     "a/#", "a/+",   "+/b",
                                          "a/b", "a/b/#", "+/+/c", "$x",  "$x/#",  "+/#",
                                          "a/",  "a/+/#", "b/#",   "a//", "$x/+/c"};
    static const char *const names[] = {"a",  "b",      "a/b", "a/c", "b/b",   "a/b/c", "a/b/d",
                                        "$x", "$x/b/c", "a/",  "a//", "x/y/c", "b",     "a/x/c"};
    const size_t nf = sizeof(filters) / sizeof(filters[0]);
    const size_t nn = sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < nf; i++) {
        for (size_t j = 0; j < nf; j++) {
            bool all = true, any = false;
            for (size_t k = 0; k < nn; k++) {
                bool in_b = topic_match(S(filters[j]), S(names[k]));
                bool in_a = topic_match(S(filters[i]), S(names[k]));
                if (in_b && !in_a)
                    all = false;
                if (in_b && in_a)
                    any = true;
            }
            /* The universe is finite: covers must imply "all", overlap found implies overlaps. */
            if (acl_filter_covers(S(filters[i]), S(filters[j])))
                cr_assert(all, "%s covers %s but misses a name", filters[i], filters[j]);
            if (any)
                cr_assert(acl_filter_overlaps(S(filters[i]), S(filters[j])),
                          "%s and %s share a name", filters[i], filters[j]);
        }
    }
}

/* -------------------------------------------------------------------- builder */

static void rule(struct acl *a, const char *filter, uint8_t access, bool allow,
                 enum acl_who_kind who, const char *name)
{
    struct acl_rule_spec s = {.filter = filter,
                              .filter_len = strlen(filter),
                              .access = access,
                              .allow = allow,
                              .who = who,
                              .name = name,
                              .name_len = name ? strlen(name) : 0};
    cr_assert_eq(acl_rule_add(a, &s), 0, "rule %s", filter);
}

static void finish(struct acl *a)
{
    unsigned line;
    const char *name;
    cr_assert_eq(acl_finish(a, &line, &name), 0);
}

static struct acl_who who_of(const struct acl *a, const char *user, const char *cid)
{
    struct acl_who w;
    acl_who_init(a, &w, (const uint8_t *)user, user ? strlen(user) : 0, (const uint8_t *)cid,
                 strlen(cid));
    return w;
}

static bool can(const struct acl *a, const struct acl_who *w, enum acl_access x, const char *t)
{
    return acl_check(a, w, x, S(t));
}

#define RW (ACL_SUBSCRIBE | ACL_READ)

Test(acl, no_acl_and_an_empty_acl_allow_everything)
{
    struct acl *a = acl_new();
    finish(a);
    struct acl_who w = who_of(a, NULL, "c");
    cr_assert(can(NULL, &w, ACL_PUBLISH, "x"));
    cr_assert(can(a, &w, ACL_PUBLISH, "x"));
    cr_assert(can(a, &w, ACL_READ, "$SYS/x"));
    cr_assert(can(a, &w, ACL_SUBSCRIBE, "#"));
    cr_assert(acl_default_allows(a));
    cr_assert_eq(acl_subscribe_class(a, &w, S("#")), ACL_SUB_ALL);
    acl_free(a);
}

Test(acl, with_rules_the_default_is_deny_unless_set)
{
    struct acl *a = acl_new();
    rule(a, "open/#", ACL_PUBLISH, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who w = who_of(a, "u", "c");
    cr_assert(can(a, &w, ACL_PUBLISH, "open/x"));
    cr_assert_not(can(a, &w, ACL_PUBLISH, "closed/x"));
    cr_assert_not(can(a, &w, ACL_READ, "open/x"), "a publish rule grants no read");
    acl_free(a);

    a = acl_new();
    rule(a, "closed/#", ACL_ACCESS_ALL, false, ACL_WHO_ALL, NULL);
    acl_set_default(a, true);
    finish(a);
    w = who_of(a, "u", "c");
    cr_assert(can(a, &w, ACL_PUBLISH, "open/x"));
    cr_assert_not(can(a, &w, ACL_PUBLISH, "closed/x"));
    cr_assert_not(can(a, &w, ACL_READ, "closed/x/y"));
    acl_free(a);
}

Test(acl, first_matching_rule_wins_so_order_is_precedence)
{
    struct acl *a = acl_new();
    rule(a, "a/secret", ACL_ACCESS_ALL, false, ACL_WHO_ALL, NULL);
    rule(a, "a/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    rule(a, "b/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    rule(a, "b/secret", ACL_ACCESS_ALL, false, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who w = who_of(a, "u", "c");
    cr_assert_not(can(a, &w, ACL_PUBLISH, "a/secret"), "deny before allow: deny");
    cr_assert(can(a, &w, ACL_PUBLISH, "a/public"));
    cr_assert(can(a, &w, ACL_PUBLISH, "b/secret"), "allow before deny: allow");
    cr_assert_not(can(a, &w, ACL_PUBLISH, "c"), "no rule: default deny");
    acl_free(a);
}

Test(acl, rules_apply_to_a_user_a_group_anonymous_or_all)
{
    struct acl *a = acl_new();
    int ops = acl_group_add(a, "ops", 3);
    cr_assert_geq(ops, 0);
    cr_assert_eq(acl_group_add(a, "ops", 3), -EEXIST);
    cr_assert_eq(acl_group_add_member(a, ops, "alice", 5), 0);
    cr_assert_eq(acl_group_add_member(a, ops, "bob", 3), 0);
    rule(a, "alice/#", ACL_PUBLISH, true, ACL_WHO_USER, "alice");
    rule(a, "ops/#", ACL_PUBLISH, true, ACL_WHO_GROUP, "ops");
    rule(a, "guest/#", ACL_PUBLISH, true, ACL_WHO_ANONYMOUS, NULL);
    rule(a, "public/#", ACL_PUBLISH, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who alice = who_of(a, "alice", "c1");
    struct acl_who bob = who_of(a, "bob", "c2");
    struct acl_who carol = who_of(a, "carol", "c3");
    struct acl_who anon = who_of(a, NULL, "c4");
    struct acl_who alic = who_of(a, "alic", "c5");

    cr_assert(can(a, &alice, ACL_PUBLISH, "alice/x"));
    cr_assert_not(can(a, &bob, ACL_PUBLISH, "alice/x"));
    cr_assert_not(can(a, &alic, ACL_PUBLISH, "alice/x"), "a prefix of the name is not it");
    cr_assert(can(a, &alice, ACL_PUBLISH, "ops/x"));
    cr_assert(can(a, &bob, ACL_PUBLISH, "ops/x"));
    cr_assert_not(can(a, &carol, ACL_PUBLISH, "ops/x"));
    cr_assert_not(can(a, &anon, ACL_PUBLISH, "ops/x"));
    cr_assert(can(a, &anon, ACL_PUBLISH, "guest/x"));
    cr_assert_not(can(a, &carol, ACL_PUBLISH, "guest/x"), "anonymous means no user name");
    cr_assert(can(a, &alice, ACL_PUBLISH, "public/x"));
    cr_assert(can(a, &anon, ACL_PUBLISH, "public/x"));
    acl_free(a);
}

Test(acl, a_rule_naming_an_undefined_group_fails_the_build)
{
    struct acl *a = acl_new();
    struct acl_rule_spec s = {.filter = "x",
                              .filter_len = 1,
                              .access = ACL_PUBLISH,
                              .allow = true,
                              .who = ACL_WHO_GROUP,
                              .name = "nope",
                              .name_len = 4,
                              .line = 12};
    unsigned line = 0;
    const char *name = NULL;
    cr_assert_eq(acl_rule_add(a, &s), 0);
    cr_assert_eq(acl_finish(a, &line, &name), -ENOENT);
    cr_assert_eq(line, 12);
    cr_assert_str_eq(name, "nope");
    acl_free(a);
}

Test(acl, bad_filters_and_empty_access_are_refused)
{
    struct acl *a = acl_new();
    struct acl_rule_spec s = {.filter = "a/#/b", .filter_len = 5, .access = ACL_PUBLISH};
    cr_assert_eq(acl_rule_add(a, &s), -EINVAL);
    s.filter = "a+";
    s.filter_len = 2;
    cr_assert_eq(acl_rule_add(a, &s), -EINVAL);
    s.filter = "a";
    s.filter_len = 1;
    s.access = 0;
    cr_assert_eq(acl_rule_add(a, &s), -EINVAL);
    s.filter_len = 0;
    s.access = ACL_PUBLISH;
    cr_assert_eq(acl_rule_add(a, &s), -EINVAL);
    acl_free(a);
}

Test(acl, percent_u_and_percent_c_are_the_user_name_and_client_id)
{
    struct acl *a = acl_new();
    rule(a, "users/%u/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    rule(a, "devices/%c/out", ACL_PUBLISH, true, ACL_WHO_ALL, NULL);
    rule(a, "mix/%u-%c", ACL_PUBLISH, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who w = who_of(a, "ann", "dev1");
    struct acl_who anon = who_of(a, NULL, "dev2");
    cr_assert(can(a, &w, ACL_PUBLISH, "users/ann/x"));
    cr_assert(can(a, &w, ACL_READ, "users/ann"));
    cr_assert_not(can(a, &w, ACL_PUBLISH, "users/bob/x"));
    cr_assert(can(a, &w, ACL_PUBLISH, "devices/dev1/out"));
    cr_assert_not(can(a, &w, ACL_PUBLISH, "devices/dev2/out"));
    cr_assert(can(a, &w, ACL_PUBLISH, "mix/ann-dev1"));
    cr_assert(can(a, &anon, ACL_PUBLISH, "devices/dev2/out"), "%%c needs no user name");
    cr_assert_not(can(a, &anon, ACL_PUBLISH, "users//x"), "%%u never applies to anonymous");
    cr_assert_not(can(a, &anon, ACL_PUBLISH, "users/%u/x"));
    acl_free(a);
}

Test(acl, a_wildcard_in_the_user_name_or_client_id_denies_through_a_pattern)
{
    struct acl *a = acl_new();
    rule(a, "users/%u/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    rule(a, "open/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who hash = who_of(a, "#", "c");
    struct acl_who plus = who_of(a, "a+", "c");
    /* "users/#/#" would be no valid filter, "users/+/#" everybody's: neither may pass. */
    cr_assert_not(can(a, &hash, ACL_PUBLISH, "users/bob/x"));
    cr_assert_not(can(a, &plus, ACL_PUBLISH, "users/a+/x"));
    cr_assert_not(can(a, &hash, ACL_PUBLISH, "open/x"), "denied outright, as mosquitto");
    cr_assert_eq(acl_subscribe_class(a, &hash, S("open/#")), ACL_SUB_NONE);
    acl_free(a);
}

Test(acl, a_substitution_over_the_bound_denies)
{
    static char user[ACL_SUBST_BYTES_MAX + 2];
    memset(user, 'u', sizeof(user) - 1);
    struct acl *a = acl_new();
    rule(a, "users/%u/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    acl_set_default(a, true);
    finish(a);
    struct acl_who w = who_of(a, user, "c");
    cr_assert_not(can(a, &w, ACL_PUBLISH, "users/x"), "fails closed, even over default allow");
    cr_assert(can(a, &w, ACL_PUBLISH, "other"), "a rule that cannot match is not reached");
    acl_free(a);
}

/* A rule for host @host alone (0: every host). */
static void host_rule(struct acl *a, uint8_t host, const char *filter, uint8_t access, bool allow)
{
    struct acl_rule_spec s = {.filter = filter,
                              .filter_len = strlen(filter),
                              .access = access,
                              .allow = allow,
                              .who = ACL_WHO_ALL,
                              .host = host};
    cr_assert_eq(acl_rule_add(a, &s), 0, "rule %s", filter);
}

static struct acl_who who_in(const struct acl *a, uint8_t host)
{
    struct acl_who w = who_of(a, "u", "c");
    w.host = host;
    return w;
}

Test(acl, a_host_s_own_rules_come_before_every_host_s)
{
    struct acl *a = acl_new();
    cr_assert_not_null(a);
    /* [acl]: deny x/secret, allow x/#. [acl.h1]: allow x/secret, deny x/closed. */
    host_rule(a, 0, "x/secret", ACL_PUBLISH, false);
    host_rule(a, 0, "x/#", ACL_PUBLISH, true);
    host_rule(a, 1, "x/secret", ACL_PUBLISH, true);
    host_rule(a, 1, "x/closed", ACL_PUBLISH, false);
    host_rule(a, 2, "y/#", ACL_PUBLISH | RW, true);
    finish(a);
    struct acl_who d = who_in(a, 0), h1 = who_in(a, 1), h2 = who_in(a, 2), h3 = who_in(a, 3);
    const struct {
        const struct acl_who *w;
        const char *topic;
        bool pub;
    } table[] = {
        {&d, "x/secret", false},  {&d, "x/closed", true},  {&d, "x/a", true},
        {&d, "y/a", false},       {&h1, "x/secret", true}, {&h1, "x/closed", false},
        {&h1, "x/a", true},       {&h1, "y/a", false},     {&h2, "x/secret", false},
        {&h2, "y/a", true},       {&h2, "x/a", true},      {&h3, "x/secret", false},
        {&h3, "x/a", true},       {&h3, "y/a", false},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        cr_assert_eq(can(a, table[i].w, ACL_PUBLISH, table[i].topic), table[i].pub,
                     "host %u publish %s", table[i].w->host, table[i].topic);
    /* Subscriptions are classed over the same order. */
    cr_assert_eq(acl_subscribe_class(a, &h2, S("y/#")), ACL_SUB_ALL);
    cr_assert_eq(acl_subscribe_class(a, &h1, S("y/#")), ACL_SUB_NONE);
    cr_assert_eq(acl_rule_count(a), 5);
    cr_assert_eq(acl_host_rule_count(a, 1), 2);
    acl_free(a);
}

Test(acl, the_default_denies_where_any_rule_can_apply_to_the_client_s_host)
{
    /* Only [acl.h1] rules: its clients default to deny, everybody else's to allow. */
    struct acl *a = acl_new();
    cr_assert_not_null(a);
    host_rule(a, 1, "only/#", ACL_PUBLISH, true);
    finish(a);
    struct acl_who d = who_in(a, 0), h1 = who_in(a, 1), h2 = who_in(a, 2);
    cr_assert(can(a, &d, ACL_PUBLISH, "z"), "no rule can apply: allowed");
    cr_assert(can(a, &h2, ACL_PUBLISH, "z"));
    cr_assert_eq(acl_subscribe_class(a, &h2, S("#")), ACL_SUB_ALL);
    cr_assert(can(a, &h1, ACL_PUBLISH, "only/z"));
    cr_assert_not(can(a, &h1, ACL_PUBLISH, "z"), "h1 has rules: deny by default");
    cr_assert_eq(acl_subscribe_class(a, &h1, S("#")), ACL_SUB_NONE);
    acl_free(a);
    /* An explicit default is every host's. */
    a = acl_new();
    host_rule(a, 1, "only/#", ACL_PUBLISH, false);
    acl_set_default(a, false);
    finish(a);
    d = who_in(a, 0);
    cr_assert_not(can(a, &d, ACL_PUBLISH, "z"));
    acl_free(a);
}

Test(acl, host_rules_are_renumbered_before_the_build_ends)
{
    struct acl *a = acl_new();
    cr_assert_not_null(a);
    host_rule(a, 1, "a", ACL_PUBLISH, true); /* the caller's host 1 is host 5 */
    host_rule(a, 2, "b", ACL_PUBLISH, true); /* its 2 is 3 */
    uint8_t bad[3] = {0, 5, 0};
    cr_assert_eq(acl_hosts_renumber(a, bad, 3), -EINVAL, "host 2 has rules and no number");
    uint8_t map[3] = {0, 5, 3};
    cr_assert_eq(acl_hosts_renumber(a, map, 3), 0);
    finish(a);
    struct acl_who h5 = who_in(a, 5), h3 = who_in(a, 3);
    cr_assert(can(a, &h5, ACL_PUBLISH, "a"));
    cr_assert_not(can(a, &h5, ACL_PUBLISH, "b"));
    cr_assert(can(a, &h3, ACL_PUBLISH, "b"));
    struct acl_rule_spec s = {.filter = "x", .filter_len = 1, .access = ACL_PUBLISH,
                              .host = ACL_HOSTS};
    struct acl *b = acl_new();
    cr_assert_eq(acl_rule_add(b, &s), -EINVAL, "a host past ACL_HOSTS");
    acl_free(b);
    acl_free(a);
}

Test(acl, dollar_topics_are_readable_only_where_a_rule_names_them)
{
    struct acl *a = acl_new();
    rule(a, "$SYS/#", RW, true, ACL_WHO_USER, "admin");
    rule(a, "#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who admin = who_of(a, "admin", "c1");
    struct acl_who user = who_of(a, "user", "c2");
    cr_assert(can(a, &admin, ACL_READ, "$SYS/broker/uptime"));
    cr_assert(can(a, &admin, ACL_SUBSCRIBE, "$SYS/#"));
    cr_assert_not(can(a, &user, ACL_READ, "$SYS/broker/uptime"), "'#' does not reach '$'");
    cr_assert_not(can(a, &user, ACL_SUBSCRIBE, "$SYS/#"));
    cr_assert(can(a, &user, ACL_SUBSCRIBE, "#"), "'#' itself never delivers '$' topics");
    cr_assert_eq(acl_subscribe_class(a, &user, S("#")), ACL_SUB_ALL);
    acl_free(a);
}

Test(acl, shared_subscriptions_are_judged_by_their_inner_filter)
{
    struct acl *a = acl_new();
    rule(a, "jobs/#", RW, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who w = who_of(a, "u", "c");
    cr_assert(can(a, &w, ACL_SUBSCRIBE, "$share/g/jobs/#"));
    cr_assert(can(a, &w, ACL_SUBSCRIBE, "$share/other/jobs/a"));
    cr_assert_not(can(a, &w, ACL_SUBSCRIBE, "$share/jobs/other"), "inner filter \"other\"");
    cr_assert_not(can(a, &w, ACL_SUBSCRIBE, "$share/g"), "no inner filter");
    cr_assert_not(can(a, &w, ACL_SUBSCRIBE, "$share/g/"), "empty inner filter");
    cr_assert_eq(acl_subscribe_class(a, &w, S("$share/g/jobs/+")), ACL_SUB_ALL);
    acl_free(a);
}

/*
 * The subscribe-time class: a/# next to a deny of a/secret is granted but
 * read-checked per delivery (SOME), as mosquitto lets it subscribe and
 * filters per message; a filter no rule can allow is refused (NONE); one
 * no deny can touch needs no check (ALL).
 */
Test(acl, subscription_classes_all_some_none)
{
    struct acl *a = acl_new();
    rule(a, "a/secret", ACL_ACCESS_ALL, false, ACL_WHO_ALL, NULL);
    rule(a, "a/#", RW, true, ACL_WHO_ALL, NULL);
    rule(a, "b/+/x", RW, true, ACL_WHO_ALL, NULL);
    rule(a, "c/#", ACL_PUBLISH, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who w = who_of(a, "u", "c");
    cr_assert_eq(acl_subscribe_class(a, &w, S("a/#")), ACL_SUB_SOME);
    cr_assert(can(a, &w, ACL_SUBSCRIBE, "a/#"));
    cr_assert(can(a, &w, ACL_READ, "a/public"));
    cr_assert_not(can(a, &w, ACL_READ, "a/secret"), "the per-delivery check filters it");
    cr_assert_eq(acl_subscribe_class(a, &w, S("a/public/#")), ACL_SUB_ALL);
    cr_assert_eq(acl_subscribe_class(a, &w, S("a/+")), ACL_SUB_SOME);
    cr_assert_eq(acl_subscribe_class(a, &w, S("a/secret")), ACL_SUB_NONE);
    cr_assert_not(can(a, &w, ACL_SUBSCRIBE, "a/secret"));
    cr_assert_eq(acl_subscribe_class(a, &w, S("b/+/x")), ACL_SUB_ALL);
    cr_assert_eq(acl_subscribe_class(a, &w, S("b/#")), ACL_SUB_SOME,
                 "b/# reaches b/1/x (allowed) and b/1/y (default deny)");
    cr_assert_eq(acl_subscribe_class(a, &w, S("c/#")), ACL_SUB_NONE, "publish rules only");
    cr_assert_eq(acl_subscribe_class(a, &w, S("#")), ACL_SUB_SOME);
    cr_assert_eq(acl_subscribe_class(a, &w, S("z")), ACL_SUB_NONE);
    acl_free(a);
}

/* The class agrees with acl_check(ACL_READ) on every name of a small universe. */
Test(acl, subscription_class_agrees_with_per_topic_reads)
{
    static const char *const filters[] = {"#", "a/#", "a/+", "a/b", "+/b", "b/#", "a/b/#", "+"};
    static const char *const names[] = {"a", "a/b", "a/c", "b", "b/b", "a/b/c", "c/b", "x"};
    struct acl *a = acl_new();
    rule(a, "a/b/#", RW, false, ACL_WHO_ALL, NULL);
    rule(a, "a/#", RW, true, ACL_WHO_ALL, NULL);
    rule(a, "+/b", RW, true, ACL_WHO_ALL, NULL);
    finish(a);
    struct acl_who w = who_of(a, "u", "c");
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
        enum acl_sub_class cls = acl_subscribe_class(a, &w, S(filters[i]));
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
            if (!topic_match(S(filters[i]), S(names[k])))
                continue;
            bool ok = can(a, &w, ACL_READ, names[k]);
            if (cls == ACL_SUB_ALL)
                cr_assert(ok, "%s classed ALL but %s is denied", filters[i], names[k]);
            if (cls == ACL_SUB_NONE)
                cr_assert_not(ok, "%s classed NONE but %s is allowed", filters[i], names[k]);
        }
    }
    acl_free(a);
}

/* -------------------------------------------------------------------- cost */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * 1,000 rules (users, groups, patterns) and a client that only the last
 * one decides for: every rule is looked at. Once with first levels that
 * differ from the topic's (most rules skipped on their first level), once
 * with every rule under the topic's first level (a topic_match() or a
 * substitution each). Printed, not asserted.
 */
static void bench(const char *root, const char *what)
{
    struct acl *a = acl_new();
    char f[64], u[32];
    int g = acl_group_add(a, "g", 1);
    cr_assert_geq(g, 0);
    for (int i = 0; i < 100; i++) {
        snprintf(u, sizeof(u), "member%d", i);
        cr_assert_eq(acl_group_add_member(a, g, u, strlen(u)), 0);
    }
    for (int i = 0; i < 999; i++) {
        snprintf(f, sizeof(f), "%s/%d/+/sensor/#", root, i);
        snprintf(u, sizeof(u), "user%d", i);
        switch (i % 4) {
        case 0:
            rule(a, f, ACL_ACCESS_ALL, i % 8 != 0, ACL_WHO_USER, u);
            break;
        case 1:
            rule(a, f, ACL_PUBLISH, true, ACL_WHO_GROUP, "g");
            break;
        case 2:
            snprintf(f, sizeof(f), "%s/%d/%%u/#", root, i);
            rule(a, f, ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
            break;
        default:
            rule(a, f, RW, true, ACL_WHO_ALL, NULL);
            break;
        }
    }
    rule(a, "plant/#", ACL_ACCESS_ALL, true, ACL_WHO_ALL, NULL);
    finish(a);
    cr_assert_eq(acl_rule_count(a), 1000);
    struct acl_who w = who_of(a, "member7", "client-7");
    const int n = 20000;
    int allowed = 0;
    double t0 = now_ns();
    for (int i = 0; i < n; i++)
        allowed += acl_check(a, &w, ACL_PUBLISH, S("plant/x7/line/3/sensor/temp"));
    double t1 = now_ns();
    for (int i = 0; i < n; i++)
        allowed += acl_subscribe_class(a, &w, S("plant/x7/#")) == ACL_SUB_ALL;
    double t2 = now_ns();
    cr_assert_eq(allowed, 2 * n);
    fprintf(stderr,
            "acl: 1000 rules, %s, the last one decides: acl_check %.0f ns, "
            "acl_subscribe_class %.0f ns per decision\n",
            what, (t1 - t0) / n, (t2 - t1) / n);
    acl_free(a);
}

Test(acl, cost_of_a_decision_over_1000_rules_is_printed)
{
    bench("site", "first levels unlike the topic's");
    bench("plant", "all under the topic's first level");
}
