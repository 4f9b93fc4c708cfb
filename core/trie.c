/*
 * trie.c - this shard's subscriptions, by topic filter level (see trie.h).
 *
 * Owns every node and its subscription set; borrows the sessions. One shard's
 * thread only.
 *
 * Layout, chosen for a million sibling levels and for the publish path:
 *  - a node is one allocation, with its level bytes at the end; literal
 *    children sit in a lvlmap (nothing allocated for zero or one child), the
 *    '+' and '#' children in their own pointers;
 *  - the subscriptions of a node are a struct subset (core/subset.h): one
 *    held inline (the common case of a device's own topic), else one block
 *    with a hash index by session, so a filter with 100k subscribers still
 *    inserts and removes in O(1), and matching reads a plain array;
 *  - every node knows its parent, so insert, remove, match and free are
 *    loops with no stack and no depth limit, and a node that becomes empty
 *    (no subscriptions, no children) is freed at once, all the way up.
 */
#include "core/trie.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/lvlmap.h"
#include "core/rm_assert.h"
#include "core/subset.h"
#include "core/topic.h"

struct trie_node {
    struct lvlmap_key key; /* first: this node's entry in its parent's kids */
    struct trie_node *parent;
    struct lvlmap kids;     /* literal levels */
    struct trie_node *plus; /* the '+' child */
    struct trie_node *hash; /* the '#' child (never has children) */
    struct subset subs;     /* the subscriptions whose filter ends here */
    uint8_t level[];        /* key.len bytes */
};

struct trie {
    struct trie_node *root; /* the empty prefix; never freed before trie_free() */
    uint64_t seed;          /* lvlmap hashing seed */
    size_t count;           /* (filter, session) subscriptions */
};

static struct trie_node *node_new(struct trie_node *parent, const uint8_t *lvl, size_t len,
                                  uint32_t hash)
{
    size_t size = offsetof(struct trie_node, level) + len;
    struct trie_node *n;

    RM_ASSERT(len <= UINT16_MAX);
    RM_ASSERT(lvl != NULL || len == 0);
    if (size < sizeof(*n))
        size = sizeof(*n);
    n = calloc(1, size);
    if (!n)
        return NULL;
    lvlmap_key_init(&n->key, hash, len, offsetof(struct trie_node, level));
    if (len > 0)
        memcpy(n->level, lvl, len);
    n->parent = parent;
    lvlmap_init(&n->kids);
    return n;
}

static bool node_empty(const struct trie_node *n)
{
    return subset_count(&n->subs) == 0 && lvlmap_count(&n->kids) == 0 && !n->plus && !n->hash;
}

/* Unlink @c from its parent and free it; it must be empty. */
static void node_free(struct trie_node *c)
{
    struct trie_node *p = c->parent;

    RM_ASSERT(node_empty(c));
    if (p) {
        if (p->plus == c)
            p->plus = NULL;
        else if (p->hash == c)
            p->hash = NULL;
        else
            lvlmap_del(&p->kids, &c->key);
    }
    lvlmap_fini(&c->kids);
    free(c);
}

/* Free @n and its ancestors while they are empty, stopping at the root. */
static void prune(struct trie *t, struct trie_node *n)
{
    RM_ASSERT(n != NULL);
    while (n != t->root && node_empty(n)) {
        struct trie_node *p = n->parent;

        node_free(n);
        n = p;
    }
    RM_ASSERT(n != NULL);
}

static bool level_is(const uint8_t *lvl, size_t len, char c)
{
    return len == 1 && lvl[0] == (uint8_t)c;
}

/* The child of @n for filter level @lvl, created if @create; NULL if none or no memory. */
static struct trie_node *child(struct trie *t, struct trie_node *n, const uint8_t *lvl, size_t len,
                               bool create)
{
    struct trie_node **wild = NULL;
    struct trie_node *c;
    uint32_t h = 0;

    if (level_is(lvl, len, '+'))
        wild = &n->plus;
    else if (level_is(lvl, len, '#'))
        wild = &n->hash;
    if (wild) {
        if (!*wild && create)
            *wild = node_new(n, lvl, len, 0);
        return *wild;
    }
    h = lvlmap_hash(t->seed, lvl, len);
    c = (struct trie_node *)lvlmap_find(&n->kids, h, lvl, len);
    if (c || !create)
        return c;
    c = node_new(n, lvl, len, h);
    if (c && lvlmap_add(&n->kids, &c->key) < 0) {
        free(c);
        c = NULL;
    }
    return c;
}

/* The node of @filter, created (with its missing ancestors) if @create. */
static struct trie_node *node_of(struct trie *t, const uint8_t *filter, size_t len, bool create)
{
    struct trie_node *n = t->root;
    const uint8_t *lvl;
    size_t pos = 0, ll;

    RM_ASSERT(filter != NULL && len > 0 && len <= UINT16_MAX);
    while (topic_level_next(&pos, filter, len, &lvl, &ll)) {
        struct trie_node *c = child(t, n, lvl, ll, create);

        /*
         * A valid filter has '#' only as its last level [MQTT-4.7.1-2]. A
         * lookup need not check: a '#' node never has children.
         */
        RM_ASSERT(!create || !level_is(lvl, ll, '#') || pos > len);
        if (!c) {
            if (create)
                prune(t, n);
            return NULL;
        }
        n = c;
    }
    return n;
}

struct trie *trie_new(uint64_t seed)
{
    struct trie *t = calloc(1, sizeof(*t));

    if (!t)
        goto out;
    t->root = node_new(NULL, NULL, 0, 0);
    if (!t->root)
        goto out_free_trie;
    t->seed = seed;
    t->count = 0;
    RM_ASSERT(node_empty(t->root) && t->root->parent == NULL);
    goto out;

out_free_trie:
    free(t);
    t = NULL;
out:
    return t;
}

void trie_free(struct trie *t)
{
    struct trie_node *n;
    size_t subs;

    if (!t)
        return;
    RM_ASSERT(t->root != NULL && t->root->parent == NULL);
    /* Post-order without a stack: descend to a leaf, free it, climb. */
    n = t->root;
    subs = 0;
    while (n) {
        struct trie_node *c = n->plus;

        if (!c)
            c = n->hash;
        if (!c)
            c = (struct trie_node *)lvlmap_next(&n->kids, NULL);
        if (c) {
            n = c;
            continue;
        }
        c = n->parent;
        subs += subset_count(&n->subs);
        subset_fini(&n->subs);
        node_free(n);
        n = c;
    }
    RM_ASSERT(subs == t->count);
    free(t);
}

int trie_insert(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                uint8_t options, uint32_t sub_id, bool *filter_first)
{
    struct trie_node *n;
    int rc;

    RM_ASSERT(t != NULL && sess != NULL);
    RM_ASSERT(filter != NULL && len > 0);
    if (filter_first)
        *filter_first = false;

    n = node_of(t, filter, len, true);
    if (!n) {
        rc = -ENOMEM;
        goto out;
    }
    /* [MQTT-3.8.4-3]: the same filter again replaces the subscription. */
    rc = subset_add(&n->subs, sess, options, sub_id);
    if (rc < 0)
        goto out_prune;
    if (rc == 0)
        goto out;
    if (filter_first)
        *filter_first = subset_count(&n->subs) == 1;
    t->count++;
    goto out;

out_prune:
    prune(t, n);
out:
    return rc;
}

bool trie_remove(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                 bool *filter_last)
{
    struct trie_node *n;
    bool found = false;

    RM_ASSERT(t != NULL && sess != NULL);
    RM_ASSERT(filter != NULL && len > 0);
    if (filter_last)
        *filter_last = false;

    n = node_of(t, filter, len, false);
    if (!n)
        goto out;
    if (!subset_remove(&n->subs, sess, NULL))
        goto out;
    RM_ASSERT(t->count > 0);
    t->count--;
    found = true;
    if (filter_last)
        *filter_last = subset_count(&n->subs) == 0;
    prune(t, n);
out:
    return found;
}

static void report(const struct trie_node *n, trie_match_cb cb, void *ctx)
{
    const struct subset_entry *e = subset_entries(&n->subs);
    uint32_t i, count = subset_count(&n->subs);

    RM_ASSERT(cb != NULL);
    RM_ASSERT(count == 0 || e[0].owner != NULL);
    for (i = 0; i < count; i++)
        cb(ctx, e[i].owner, e[i].options, e[i].sub_id);
}

int trie_split(struct trie_name *n, uint64_t seed, const uint8_t *name, size_t len)
{
    const uint8_t *lvl;
    size_t pos = 0, lvl_len;

    RM_ASSERT(n != NULL && name != NULL && len > 0);
    n->name = name;
    n->seed = seed;
    n->count = 0;
    while (topic_level_next(&pos, name, len, &lvl, &lvl_len)) {
        if (n->count == n->cap) {
            uint32_t ncap = n->cap ? n->cap * 2 : 16;
            struct trie_level *l = realloc(n->lvl, ncap * sizeof(*l));

            if (!l) {
                n->count = 0;
                return -ENOMEM;
            }
            n->lvl = l;
            n->cap = ncap;
        }
        n->lvl[n->count++] = (struct trie_level){(uint32_t)(lvl - name), (uint32_t)lvl_len,
                                                 lvlmap_hash(seed, lvl, lvl_len)};
    }
    return 0;
}

void trie_name_fini(struct trie_name *n)
{
    RM_ASSERT(n != NULL);
    free(n->lvl);
    *n = (struct trie_name){0};
}

void trie_match(const struct trie *t, const struct trie_name *nm, trie_match_cb cb, void *ctx)
{
    const struct trie_node *root, *n;
    uint32_t i = 0;

    RM_ASSERT(t != NULL && nm != NULL && cb != NULL);
    RM_ASSERT(nm->count > 0 && nm->seed == t->seed);
    root = t->root;
    n = root;
    /*
     * [MQTT-4.7.2-1]: '$' names skip the '+' and '#' children of the root,
     * or of a virtual host's prefix level (core/vhost.h), whose names skip
     * the root's wildcards too (no default-host filter reaches them).
     */
    bool host = nm->name[0] == 0;
    bool guard0 = host || nm->name[0] == '$';
    bool guard1 = host && nm->count > 1 && nm->lvl[1].len > 0 && nm->name[nm->lvl[1].off] == '$';
#define GUARDED(depth) ((depth) == 0 ? guard0 : (depth) == 1 && guard1)

    /*
     * Depth-first, with the level index as the only state: @n has matched
     * the name's levels before @i (i == count: all of them). Each node is
     * visited at most once, so the walk is bounded by the trie's size, and
     * it needs no stack whatever the depth: climbing back is one level up.
     */
    for (;;) {
        const struct trie_node *c = NULL;
        bool wild = !GUARDED(i);

        /* '#' matches what is left, even nothing: "sport/#" matches "sport". */
        if (wild && n->hash)
            report(n->hash, cb, ctx);
        if (i == nm->count) {
            report(n, cb, ctx);
        } else {
            const struct trie_level *l = &nm->lvl[i];

            if (lvlmap_count(&n->kids) > 0)
                c = (const struct trie_node *)lvlmap_find(&n->kids, l->hash, nm->name + l->off,
                                                          l->len);
            if (!c && wild)
                c = n->plus;
            if (c) {
                n = c;
                i++;
                continue;
            }
        }

        /* Climb until an unvisited '+' sibling is found. */
        for (;;) {
            const struct trie_node *p;

            if (n == root)
                return;
            p = n->parent;
            /* A '+' sibling matches the same level as the literal child did. */
            RM_ASSERT(i > 0);
            if (n != p->plus && p->plus && !GUARDED(i - 1)) {
                c = p->plus;
                break;
            }
            i--;
            n = p;
        }
        n = c;
    }
#undef GUARDED
}

size_t trie_count(const struct trie *t)
{
    RM_ASSERT(t != NULL);
    RM_ASSERT(t->root != NULL);
    return t->count;
}
