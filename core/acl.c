/*
 * acl.c - access control rules and decisions (see acl.h).
 *
 * A finished ACL is an array of rules, each owning a copy of its filter
 * (and of its user name), walked in order; groups are resolved to indexes
 * when the build ends, and a client's groups are a bitmap computed once per
 * client, so a decision costs one pass over the rules with a topic match
 * for each rule that applies to the client. Owns its rules and groups;
 * read-only and lock-free once finished, so any thread may read it.
 */
#include "core/acl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "core/rm_assert.h"
#include "core/topic.h"
#include "core/vhost.h"

_Static_assert(ACL_HOSTS == VHOST_MAX + 1, "a rule scope per virtual host");

#define SHARE_PREFIX "$share/"
#define SUBST_USER 1u   /* the filter holds %u */
#define SUBST_CLIENT 2u /* the filter holds %c */

struct acl_rule {
    uint8_t *filter; /* owned; as written (with %u / %c) */
    uint32_t filter_len;
    uint8_t access; /* enum acl_access mask */
    bool allow;
    uint8_t who; /* enum acl_who_kind */
    uint8_t subst;
    char *name; /* owned: the user (ACL_WHO_USER) or, until acl_finish(), the group */
    uint32_t name_len;
    uint32_t group; /* ACL_WHO_GROUP, once resolved */
    unsigned line;
    /*
     * The filter's first level when it is plain (no wildcard, no %u/%c):
     * a topic whose first level differs cannot match, so most rules cost
     * a length and a byte compare, not a topic_match(). 0: no such level.
     */
    uint32_t first_len;
};

struct acl_group {
    char *name; /* owned */
    size_t name_len;
    char **members; /* owned, each owned */
    size_t *member_lens;
    uint32_t member_count;
    uint32_t member_cap;
};

/* The rules of one scope, in order: every host's ([acl]), or one host's ([acl.HOST]). */
struct acl_list {
    struct acl_rule *rules;
    uint32_t count;
    uint32_t cap;
};

struct acl {
    /* [0]: the rules for every host; [h]: host h's own, asked before [0] for its clients. */
    struct acl_list lists[ACL_HOSTS];
    uint32_t rule_count; /* in all lists */
    struct acl_group groups[ACL_GROUPS_MAX];
    uint32_t group_count;
    bool default_allow;
    bool default_set;
    bool finished;
    bool has_subst; /* a rule holds %u or %c */
};

struct acl *acl_new(void)
{
    return calloc(1, sizeof(struct acl));
}

void acl_free(struct acl *acl)
{
    if (!acl)
        return;
    for (uint32_t h = 0; h < ACL_HOSTS; h++) {
        struct acl_list *l = &acl->lists[h];
        for (uint32_t i = 0; i < l->count; i++) {
            free(l->rules[i].filter);
            free(l->rules[i].name);
        }
        free(l->rules);
    }
    for (uint32_t g = 0; g < acl->group_count; g++) {
        struct acl_group *gr = &acl->groups[g];
        for (uint32_t m = 0; m < gr->member_count; m++)
            free(gr->members[m]);
        free(gr->members);
        free(gr->member_lens);
        free(gr->name);
    }
    free(acl);
}

static char *dup_bytes(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static int group_find(const struct acl *acl, const char *name, size_t len)
{
    RM_ASSERT(acl != NULL);
    RM_ASSERT(name != NULL || len == 0);
    for (uint32_t g = 0; g < acl->group_count; g++) {
        if (acl->groups[g].name_len == len && memcmp(acl->groups[g].name, name, len) == 0)
            return (int)g;
    }
    return -1;
}

int acl_group_add(struct acl *acl, const char *name, size_t len)
{
    RM_ASSERT(acl != NULL && !acl->finished);
    RM_ASSERT(name != NULL);
    if (group_find(acl, name, len) >= 0)
        return -EEXIST;
    if (acl->group_count == ACL_GROUPS_MAX)
        return -E2BIG;
    struct acl_group *gr = &acl->groups[acl->group_count];
    memset(gr, 0, sizeof(*gr));
    gr->name = dup_bytes(name, len);
    if (!gr->name)
        return -ENOMEM;
    gr->name_len = len;
    return (int)acl->group_count++;
}

int acl_group_add_member(struct acl *acl, int group, const char *user, size_t len)
{
    RM_ASSERT(acl != NULL && !acl->finished);
    RM_ASSERT(group >= 0 && (uint32_t)group < acl->group_count);
    struct acl_group *gr = &acl->groups[group];
    if (gr->member_count == gr->member_cap) {
        uint32_t ncap = gr->member_cap ? gr->member_cap * 2 : 8;
        char **m = realloc(gr->members, ncap * sizeof(*m));
        if (!m)
            return -ENOMEM;
        gr->members = m;
        size_t *l = realloc(gr->member_lens, ncap * sizeof(*l));
        if (!l)
            return -ENOMEM;
        gr->member_lens = l;
        gr->member_cap = ncap;
    }
    char *copy = dup_bytes(user, len);
    if (!copy)
        return -ENOMEM;
    gr->members[gr->member_count] = copy;
    gr->member_lens[gr->member_count++] = len;
    return 0;
}

/* Which of %u and %c @f holds. */
static uint8_t subst_flags(const uint8_t *f, size_t len)
{
    uint8_t flags = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (f[i] != '%')
            continue;
        if (f[i + 1] == 'u')
            flags |= SUBST_USER;
        else if (f[i + 1] == 'c')
            flags |= SUBST_CLIENT;
    }
    return flags;
}

int acl_rule_add(struct acl *acl, const struct acl_rule_spec *spec)
{
    RM_ASSERT(acl != NULL && !acl->finished);
    RM_ASSERT(spec != NULL && spec->filter != NULL);
    /* Filters are checked as MQTT allows them, whatever the broker's own limits. */
    struct limits lim = {.topic_bytes_max = 65535, .topic_levels_max = 65535};
    if ((spec->access & ACL_ACCESS_ALL) == 0 ||
        topic_filter_check((const uint8_t *)spec->filter, spec->filter_len, &lim) < 0)
        return -EINVAL;
    if ((spec->who == ACL_WHO_USER || spec->who == ACL_WHO_GROUP) && spec->name_len == 0)
        return -EINVAL;
    if (spec->host >= ACL_HOSTS)
        return -EINVAL;
    if (acl->rule_count == ACL_RULES_MAX)
        return -E2BIG;
    struct acl_list *l = &acl->lists[spec->host];
    if (l->count == l->cap) {
        uint32_t ncap = l->cap ? l->cap * 2 : 16;
        struct acl_rule *n = realloc(l->rules, ncap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        l->rules = n;
        l->cap = ncap;
    }
    struct acl_rule *r = &l->rules[l->count];
    memset(r, 0, sizeof(*r));
    r->filter = (uint8_t *)dup_bytes(spec->filter, spec->filter_len);
    if (!r->filter)
        return -ENOMEM;
    if (spec->who == ACL_WHO_USER || spec->who == ACL_WHO_GROUP) {
        r->name = dup_bytes(spec->name, spec->name_len);
        if (!r->name) {
            free(r->filter);
            return -ENOMEM;
        }
        r->name_len = (uint32_t)spec->name_len;
    }
    r->filter_len = (uint32_t)spec->filter_len;
    /* Subscribing to a filter and reading its messages are one right, seen from two sides. */
    r->access = spec->access;
    if (r->access & (ACL_SUBSCRIBE | ACL_READ))
        r->access |= ACL_SUBSCRIBE | ACL_READ;
    r->allow = spec->allow;
    r->who = (uint8_t)spec->who;
    r->subst = subst_flags(r->filter, r->filter_len);
    acl->has_subst |= r->subst != 0;
    r->line = spec->line;
    const uint8_t *slash = memchr(r->filter, '/', r->filter_len);
    uint32_t first = slash ? (uint32_t)(slash - r->filter) : r->filter_len;
    if (first > 0 && subst_flags(r->filter, first) == 0 &&
        !((first == 1) && (r->filter[0] == '+' || r->filter[0] == '#')) &&
        memchr(r->filter, '%', first) == NULL)
        r->first_len = first;
    l->count++;
    acl->rule_count++;
    return 0;
}

int acl_hosts_renumber(struct acl *acl, const uint8_t *map, uint32_t n)
{
    struct acl_list moved[ACL_HOSTS];

    RM_ASSERT(acl != NULL && !acl->finished);
    RM_ASSERT(map != NULL && n <= ACL_HOSTS);
    memset(moved, 0, sizeof(moved));
    moved[0] = acl->lists[0];
    for (uint32_t h = 1; h < ACL_HOSTS; h++) {
        if (acl->lists[h].count == 0 && acl->lists[h].rules == NULL)
            continue;
        if (h >= n || map[h] == 0 || map[h] >= ACL_HOSTS || moved[map[h]].rules != NULL)
            return -EINVAL;
        moved[map[h]] = acl->lists[h];
    }
    memcpy(acl->lists, moved, sizeof(moved));
    return 0;
}

uint32_t acl_host_rule_count(const struct acl *acl, uint8_t host)
{
    RM_ASSERT(host < ACL_HOSTS);
    return acl ? acl->lists[host].count : 0;
}

void acl_set_default(struct acl *acl, bool allow)
{
    RM_ASSERT(acl != NULL && !acl->finished);
    acl->default_allow = allow;
    acl->default_set = true;
}

int acl_finish(struct acl *acl, unsigned *bad_line, const char **bad_name)
{
    RM_ASSERT(acl != NULL && !acl->finished);
    RM_ASSERT(bad_line != NULL && bad_name != NULL);
    for (uint32_t h = 0; h < ACL_HOSTS; h++) {
        for (uint32_t i = 0; i < acl->lists[h].count; i++) {
            struct acl_rule *r = &acl->lists[h].rules[i];
            if (r->who != ACL_WHO_GROUP)
                continue;
            int g = group_find(acl, r->name, r->name_len);
            if (g < 0) {
                *bad_line = r->line;
                *bad_name = r->name;
                return -ENOENT;
            }
            r->group = (uint32_t)g;
        }
    }
    acl->finished = true;
    return 0;
}

uint32_t acl_undefined_groups(const struct acl *acl,
                              void (*each)(void *ctx, unsigned line, const char *name), void *ctx)
{
    uint32_t n = 0;

    RM_ASSERT(acl != NULL && !acl->finished);
    RM_ASSERT(each != NULL);
    for (uint32_t h = 0; h < ACL_HOSTS; h++) {
        for (uint32_t i = 0; i < acl->lists[h].count; i++) {
            const struct acl_rule *r = &acl->lists[h].rules[i];
            if (r->who == ACL_WHO_GROUP && group_find(acl, r->name, r->name_len) < 0) {
                each(ctx, r->line, r->name);
                n++;
            }
        }
    }
    return n;
}

/*
 * What decides when no rule does, for a client of @host: the default set,
 * else deny when any rule can apply to it (every host's, or its host's
 * own), allow when none can.
 */
static bool default_for(const struct acl *acl, uint8_t host)
{
    RM_ASSERT(host < ACL_HOSTS);
    if (acl->default_set)
        return acl->default_allow;
    return acl->lists[0].count == 0 && (host == 0 || acl->lists[host].count == 0);
}

uint32_t acl_rule_count(const struct acl *acl)
{
    return acl ? acl->rule_count : 0;
}

bool acl_default_allows(const struct acl *acl)
{
    return !acl || (acl->default_set ? acl->default_allow : acl->rule_count == 0);
}

/* A value that would add wildcards to a rule's filter (mosquitto denies those too). */
static bool dangerous(const uint8_t *v, size_t len)
{
    return len > 0 && (memchr(v, '+', len) != NULL || memchr(v, '#', len) != NULL);
}

void acl_who_init(const struct acl *acl, struct acl_who *who, const uint8_t *username,
                  size_t username_len, const uint8_t *client_id, size_t client_id_len)
{
    RM_ASSERT(who != NULL);
    RM_ASSERT(client_id != NULL || client_id_len == 0);
    memset(who, 0, sizeof(*who));
    who->username = username;
    who->username_len = username ? username_len : 0;
    who->client_id = client_id;
    who->client_id_len = client_id_len;
    who->wildcard_name =
        dangerous(client_id, client_id_len) || (username && dangerous(username, username_len));
    if (!acl || !username)
        return;
    /* Once per client: each decision then tests one bit per group rule. */
    for (uint32_t g = 0; g < acl->group_count; g++) {
        const struct acl_group *gr = &acl->groups[g];
        for (uint32_t m = 0; m < gr->member_count; m++) {
            if (gr->member_lens[m] == username_len &&
                memcmp(gr->members[m], username, username_len) == 0) {
                who->groups[g / 64] |= 1ull << (g % 64);
                break;
            }
        }
    }
}

static bool rule_applies(const struct acl_rule *r, const struct acl_who *who)
{
    if ((r->subst & SUBST_USER) && !who->username)
        return false; /* %u: only clients with a user name (mosquitto's pattern rule) */
    switch (r->who) {
    case ACL_WHO_ALL:
        return true;
    case ACL_WHO_ANONYMOUS:
        return who->username == NULL;
    case ACL_WHO_USER:
        return who->username && who->username_len == r->name_len &&
               memcmp(who->username, r->name, r->name_len) == 0;
    case ACL_WHO_GROUP:
        return who->username && ((who->groups[r->group / 64] >> (r->group % 64)) & 1u);
    }
    RM_ASSERT(!"not a who kind");
    return false;
}

/*
 * Rule @r's filter for @who: its own bytes, or substituted into @buf
 * (ACL_SUBST_BYTES_MAX). Returns the length, or -1 when the rule must deny
 * (too long).
 */
static long rule_filter(const struct acl_rule *r, const struct acl_who *who, uint8_t *buf,
                        const uint8_t **out)
{
    RM_ASSERT(r->filter != NULL);
    if (!r->subst) {
        *out = r->filter;
        return r->filter_len;
    }
    RM_ASSERT(!who->wildcard_name); /* refused before any rule (acl_check()) */
    size_t n = 0;
    for (uint32_t i = 0; i < r->filter_len; i++) {
        const uint8_t *v = &r->filter[i];
        size_t vlen = 1;
        if (r->filter[i] == '%' && i + 1 < r->filter_len &&
            (r->filter[i + 1] == 'u' || r->filter[i + 1] == 'c')) {
            bool user = r->filter[i + 1] == 'u';
            v = user ? who->username : who->client_id;
            vlen = user ? who->username_len : who->client_id_len;
            i++;
        }
        if (n + vlen > ACL_SUBST_BYTES_MAX)
            return -1;
        if (vlen)
            memcpy(buf + n, v, vlen);
        n += vlen;
    }
    *out = buf;
    return (long)n;
}

/* @filter without a "$share/GROUP/" prefix; false for a malformed one. */
static bool strip_share(const uint8_t **filter, size_t *len)
{
    const size_t plen = sizeof(SHARE_PREFIX) - 1;
    if (*len <= plen || memcmp(*filter, SHARE_PREFIX, plen) != 0)
        return true;
    const uint8_t *slash = memchr(*filter + plen, '/', *len - plen);
    if (!slash || slash == *filter + plen || slash + 1 == *filter + *len)
        return false;
    *len -= (size_t)(slash + 1 - *filter);
    *filter = slash + 1;
    return true;
}

bool acl_check(const struct acl *acl, const struct acl_who *who, enum acl_access access,
               const uint8_t *topic, size_t len)
{
    RM_ASSERT(who != NULL && topic != NULL);
    RM_ASSERT(access == ACL_PUBLISH || access == ACL_SUBSCRIBE || access == ACL_READ);
    if (!acl)
        return true;
    RM_ASSERT(acl->finished);
    if (access == ACL_SUBSCRIBE)
        return acl_subscribe_class(acl, who, topic, len) != ACL_SUB_NONE;
    if (acl->has_subst && who->wildcard_name)
        return false; /* a name that would widen %u / %c: denied outright, as mosquitto */
    uint8_t buf[ACL_SUBST_BYTES_MAX];
    const uint8_t *slash = memchr(topic, '/', len);
    size_t first = slash ? (size_t)(slash - topic) : len;
    RM_ASSERT(who->host < ACL_HOSTS);
    /* The client's host's own rules first, then every host's: one order, first match. */
    for (uint32_t pass = who->host ? 0 : 1; pass < 2; pass++) {
        const struct acl_list *l = &acl->lists[pass == 0 ? who->host : 0];
        for (uint32_t i = 0; i < l->count; i++) {
            const struct acl_rule *r = &l->rules[i];
            if (!(r->access & access))
                continue;
            if (r->first_len && (r->first_len != first || memcmp(r->filter, topic, first) != 0))
                continue;
            if (!rule_applies(r, who))
                continue;
            const uint8_t *f;
            long flen = rule_filter(r, who, buf, &f);
            if (flen < 0)
                return false;
            if (topic_match(f, (size_t)flen, topic, len))
                return r->allow;
        }
    }
    return default_for(acl, who->host);
}

/* The first level of @s and whether it is a lone wildcard or starts with '$'. */
static void first_level(const uint8_t *s, size_t len, bool *wild, bool *dollar)
{
    *wild = len >= 1 && (s[0] == '+' || s[0] == '#') && (len == 1 || s[1] == '/');
    *dollar = len >= 1 && s[0] == '$';
}

static bool level_is(const uint8_t *l, size_t len, char c)
{
    return len == 1 && l[0] == (uint8_t)c;
}

/* [MQTT-4.7.2-1]: no topic matches both a wildcard-first and a '$'-first filter. */
static bool dollar_apart(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    bool aw, ad, bw, bd;
    first_level(a, alen, &aw, &ad);
    first_level(b, blen, &bw, &bd);
    return (aw && bd) || (bw && ad);
}

bool acl_filter_covers(const uint8_t *outer, size_t olen, const uint8_t *inner, size_t ilen)
{
    RM_ASSERT(outer != NULL && inner != NULL);
    RM_ASSERT(olen > 0 && ilen > 0);
    if (dollar_apart(outer, olen, inner, ilen))
        return false;
    size_t po = 0, pi = 0;
    const uint8_t *o, *in;
    size_t ol, il;
    for (;;) {
        bool ho = topic_level_next(&po, outer, olen, &o, &ol);
        bool hi = topic_level_next(&pi, inner, ilen, &in, &il);
        if (!ho && !hi)
            return true;
        if (ho && level_is(o, ol, '#'))
            return true; /* matches what is left, and the parent level ("a/#" matches "a") */
        if (!ho || !hi)
            return false;
        if (level_is(in, il, '#'))
            return false; /* inner goes deeper than any outer level but '#' */
        if (level_is(o, ol, '+'))
            continue;
        if (level_is(in, il, '+') || ol != il || memcmp(o, in, ol) != 0)
            return false;
    }
}

bool acl_filter_overlaps(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    RM_ASSERT(a != NULL && b != NULL);
    RM_ASSERT(alen > 0 && blen > 0);
    if (dollar_apart(a, alen, b, blen))
        return false;
    size_t pa = 0, pb = 0;
    const uint8_t *x, *y;
    size_t xl, yl;
    for (;;) {
        bool ha = topic_level_next(&pa, a, alen, &x, &xl);
        bool hb = topic_level_next(&pb, b, blen, &y, &yl);
        if (!ha && !hb)
            return true;
        if ((ha && level_is(x, xl, '#')) || (hb && level_is(y, yl, '#')))
            return true;
        if (!ha || !hb)
            return false;
        if (level_is(x, xl, '+') || level_is(y, yl, '+'))
            continue;
        if (xl != yl || memcmp(x, y, xl) != 0)
            return false;
    }
}

enum acl_sub_class acl_subscribe_class(const struct acl *acl, const struct acl_who *who,
                                       const uint8_t *filter, size_t len)
{
    RM_ASSERT(who != NULL && filter != NULL);
    if (!acl)
        return ACL_SUB_ALL;
    RM_ASSERT(acl->finished);
    if (!strip_share(&filter, &len) || (acl->has_subst && who->wildcard_name))
        return ACL_SUB_NONE;
    uint8_t buf[ACL_SUBST_BYTES_MAX];
    const uint8_t *slash = memchr(filter, '/', len);
    size_t first = slash ? (size_t)(slash - filter) : len;
    bool first_wild = level_is(filter, first, '+') || level_is(filter, first, '#');
    bool some_allowed = false; /* an earlier rule allows part of it */
    bool some_denied = false;  /* an earlier rule denies part of it */
    /*
     * First match per topic: a rule that covers the whole filter decides
     * every topic no earlier rule took; one that only overlaps it decides
     * some. Order is precedence, so one pass settles it.
     */
    RM_ASSERT(who->host < ACL_HOSTS);
    for (uint32_t pass = who->host ? 0 : 1; pass < 2; pass++) {
        const struct acl_list *l = &acl->lists[pass == 0 ? who->host : 0];
        for (uint32_t i = 0; i < l->count; i++) {
            const struct acl_rule *r = &l->rules[i];
            if (!(r->access & ACL_READ))
                continue;
            /* A plain first level overlaps only the same level or a wildcard one. */
            if (r->first_len && !first_wild &&
                (r->first_len != first || memcmp(r->filter, filter, first) != 0))
                continue;
            if (!rule_applies(r, who))
                continue;
            const uint8_t *f;
            long flen = rule_filter(r, who, buf, &f);
            if (flen < 0) {
                /* The rule denies whatever it meets: treat it as a deny of everything. */
                return some_allowed ? ACL_SUB_SOME : ACL_SUB_NONE;
            }
            if (!acl_filter_overlaps(f, (size_t)flen, filter, len))
                continue;
            bool whole = acl_filter_covers(f, (size_t)flen, filter, len);
            if (r->allow) {
                if (whole)
                    return some_denied ? ACL_SUB_SOME : ACL_SUB_ALL;
                some_allowed = true;
            } else {
                if (whole)
                    return some_allowed ? ACL_SUB_SOME : ACL_SUB_NONE;
                some_denied = true;
            }
        }
    }
    if (default_for(acl, who->host))
        return some_denied ? ACL_SUB_SOME : ACL_SUB_ALL;
    return some_allowed ? ACL_SUB_SOME : ACL_SUB_NONE;
}
