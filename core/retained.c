/*
 * retained.c - retained messages by topic name (see retained.h).
 *
 * Owns the tree's nodes and one reference on each stored msg. One shard's
 * thread only (each shard keeps its own replica).
 *
 * A node is one topic level, one allocation with its level bytes at the end,
 * its children in a lvlmap. Every node but the root holds a message or has
 * children: clearing a topic frees the nodes that become empty, all the way
 * up. Nodes know their parent, so matching and freeing are loops with no
 * stack and no depth limit.
 */
#include "core/retained.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/lvlmap.h"
#include "core/msg.h"
#include "core/rm_assert.h"
#include "core/topic.h"

struct retained_node {
    struct lvlmap_key key; /* first: this node's entry in its parent's kids */
    struct retained_node *parent;
    struct lvlmap kids;
    struct msg *msg; /* the retained message of this topic, or NULL */
    uint8_t level[]; /* key.len bytes */
};

struct retained {
    struct retained_node *root; /* the empty prefix; never holds a message */
    uint64_t seed;              /* lvlmap hashing seed */
    size_t count;               /* nodes holding a message */
};

static struct retained_node *node_new(struct retained_node *parent, const uint8_t *lvl, size_t len,
                                      uint32_t hash)
{
    size_t size = offsetof(struct retained_node, level) + len;
    struct retained_node *n;

    RM_ASSERT(len <= UINT16_MAX);
    RM_ASSERT(lvl != NULL || len == 0);
    if (size < sizeof(*n))
        size = sizeof(*n);
    n = calloc(1, size);
    if (!n)
        return NULL;
    lvlmap_key_init(&n->key, hash, len, offsetof(struct retained_node, level));
    if (len > 0)
        memcpy(n->level, lvl, len);
    n->parent = parent;
    lvlmap_init(&n->kids);
    return n;
}

static bool node_empty(const struct retained_node *n)
{
    return !n->msg && lvlmap_count(&n->kids) == 0;
}

/* Unlink @n from its parent and free it; it must be empty. */
static void node_free(struct retained_node *n)
{
    RM_ASSERT(node_empty(n));
    if (n->parent)
        lvlmap_del(&n->parent->kids, &n->key);
    lvlmap_fini(&n->kids);
    free(n);
}

/* Free @n and its ancestors while they are empty, stopping at the root. */
static void prune(struct retained *r, struct retained_node *n)
{
    RM_ASSERT(n != NULL);
    while (n != r->root && node_empty(n)) {
        struct retained_node *p = n->parent;

        node_free(n);
        n = p;
    }
    RM_ASSERT(n != NULL);
}

static struct retained_node *child_find(const struct retained *r, const struct retained_node *n,
                                        const uint8_t *lvl, size_t len)
{
    uint32_t h;

    if (lvlmap_count(&n->kids) == 0)
        return NULL;
    h = lvlmap_hash(r->seed, lvl, len);
    return (struct retained_node *)lvlmap_find(&n->kids, h, lvl, len);
}

/*
 * The node of topic @name, or NULL. With @create, missing nodes are made;
 * NULL then means no memory, with nothing left behind.
 */
static struct retained_node *node_of(struct retained *r, const uint8_t *name, size_t len,
                                     bool create)
{
    struct retained_node *n = r->root;
    const uint8_t *lvl;
    size_t pos = 0, ll;

    RM_ASSERT(name != NULL && len > 0);
    while (topic_level_next(&pos, name, len, &lvl, &ll)) {
        struct retained_node *c = child_find(r, n, lvl, ll);

        if (!c && create) {
            c = node_new(n, lvl, ll, lvlmap_hash(r->seed, lvl, ll));
            if (c && lvlmap_add(&n->kids, &c->key) < 0) {
                free(c);
                c = NULL;
            }
            if (!c)
                prune(r, n);
        }
        if (!c)
            return NULL;
        n = c;
    }
    return n;
}

/* What a wildcard below a node skips [MQTT-4.7.2-1] (wild_skip()). */
enum skip {
    SKIP_NONE = 0,
    SKIP_DOLLAR,      /* levels that start with '$': a virtual host's first level */
    SKIP_DOLLAR_HOST, /* and a virtual host's "\0" prefix level (vhost.h): the root */
};

/* The child of @n after @prev (the first if @prev is NULL), skipping what @skip says, or NULL. */
static const struct retained_node *child_next(const struct retained_node *n,
                                              const struct retained_node *prev, enum skip skip)
{
    const struct lvlmap_key *k = prev ? &prev->key : NULL;

    for (;;) {
        k = lvlmap_next(&n->kids, k);
        if (!k || skip == SKIP_NONE || k->len == 0)
            return (const struct retained_node *)k;
        uint8_t c = lvlmap_key_bytes(k)[0];
        if (c != '$' && (c != 0 || skip != SKIP_DOLLAR_HOST))
            return (const struct retained_node *)k;
    }
}

/*
 * What '+' and '#' skip below @n: '$' levels and hosts' prefixes at the
 * root, '$' levels below a virtual host's prefix level, nothing elsewhere.
 */
static enum skip wild_skip(const struct retained_node *root, const struct retained_node *n)
{
    if (n == root)
        return SKIP_DOLLAR_HOST;
    if (n->parent == root && n->key.len > 0 && lvlmap_key_bytes(&n->key)[0] == 0)
        return SKIP_DOLLAR;
    return SKIP_NONE;
}

/* Report @top's message and every message below it (the '#' of a filter). */
static void match_subtree(const struct retained_node *top, enum skip skip, retained_match_cb cb,
                          void *ctx)
{
    const struct retained_node *n;

    if (top->msg)
        cb(ctx, top->msg);
    n = child_next(top, NULL, skip);
    while (n) {
        const struct retained_node *c;

        if (n->msg)
            cb(ctx, n->msg);
        c = child_next(n, NULL, SKIP_NONE);
        if (c) {
            n = c;
            continue;
        }
        /* No children: the next sibling of the nearest ancestor below @top. */
        for (;;) {
            const struct retained_node *p = n->parent;

            c = child_next(p, n, p == top ? skip : SKIP_NONE);
            if (c || p == top)
                break;
            n = p;
        }
        n = c;
    }
}

struct retained *retained_new(void)
{
    struct retained *r = calloc(1, sizeof(*r));

    if (!r)
        goto out;
    r->root = node_new(NULL, NULL, 0, 0);
    if (!r->root)
        goto out_free_store;
    r->seed = lvlmap_seed(r);
    r->count = 0;
    RM_ASSERT(node_empty(r->root) && r->root->parent == NULL);
    goto out;

out_free_store:
    free(r);
    r = NULL;
out:
    return r;
}

void retained_free(struct retained *r)
{
    struct retained_node *n;

    if (!r)
        return;
    RM_ASSERT(r->root != NULL && r->root->parent == NULL);
    /* Post-order without a stack: descend to a leaf, free it, climb. */
    n = r->root;
    while (n) {
        struct retained_node *c = (struct retained_node *)lvlmap_next(&n->kids, NULL);

        if (c) {
            n = c;
            continue;
        }
        c = n->parent;
        if (n->msg) {
            msg_unref(n->msg);
            n->msg = NULL;
            r->count--;
        }
        node_free(n);
        n = c;
    }
    RM_ASSERT(r->count == 0);
    free(r);
}

int retained_swap(struct retained *r, struct msg *m, size_t count_max, struct msg **old)
{
    struct retained_node *n;
    int rc = 0;

    RM_ASSERT(r != NULL && m != NULL && old != NULL);
    RM_ASSERT(m->topic_len > 0);
    *old = NULL;

    /* [MQTT-3.3.1-10], [MQTT-3.3.1-11]: an empty payload clears the topic. */
    if (m->payload_len == 0) {
        n = node_of(r, msg_topic(m), m->topic_len, false);
        if (!n || !n->msg)
            goto out;
        *old = n->msg;
        n->msg = NULL;
        RM_ASSERT(r->count > 0);
        r->count--;
        prune(r, n);
        goto out;
    }

    /* [MQTT-3.3.1-5]: a new retained message replaces the topic's old one. */
    n = node_of(r, msg_topic(m), m->topic_len, false);
    if (n && n->msg) {
        *old = n->msg;
        n->msg = msg_ref(m);
        rc = 1;
        goto out;
    }
    if (r->count >= count_max) {
        rc = -ENOSPC;
        goto out;
    }
    n = node_of(r, msg_topic(m), m->topic_len, true);
    if (!n) {
        rc = -ENOMEM;
        goto out;
    }
    RM_ASSERT(n->msg == NULL && n != r->root);
    n->msg = msg_ref(m);
    r->count++;
    rc = 1;
out:
    return rc;
}

int retained_set(struct retained *r, struct msg *m, size_t count_max)
{
    struct msg *old;
    int rc = retained_swap(r, m, count_max, &old);

    msg_unref(old);
    return rc;
}

static bool level_is_plus(const uint8_t *filter, size_t end)
{
    /* The level ending at @end (exclusive) is exactly "+". */
    return end >= 1 && filter[end - 1] == '+' && (end == 1 || filter[end - 2] == '/');
}

void retained_match(const struct retained *r, const uint8_t *filter, size_t len,
                    retained_match_cb cb, void *ctx)
{
    const struct retained_node *root, *n;
    size_t pos = 0;

    RM_ASSERT(r != NULL && cb != NULL);
    RM_ASSERT(filter != NULL || len == 0);
    root = r->root;
    n = root;

    /*
     * Depth-first, with the filter position as the only state: @n has
     * matched the filter's levels before @pos (pos == len + 1: all of them).
     * A node is visited at most once. Climbing back recovers the position
     * from the node's level length, or 1 below a '+'. [MQTT-4.7.2-1]: at the
     * first level, '+' and '#' skip the levels that start with '$' (wild_skip()).
     */
    for (;;) {
        const struct retained_node *c = NULL;

        if (pos > len) {
            if (n->msg)
                cb(ctx, n->msg);
        } else {
            const uint8_t *slash = len > pos ? memchr(filter + pos, '/', len - pos) : NULL;
            size_t end = slash ? (size_t)(slash - filter) : len;

            if (end - pos == 1 && filter[pos] == '#')
                match_subtree(n, wild_skip(root, n), cb, ctx);
            else if (end - pos == 1 && filter[pos] == '+')
                c = child_next(n, NULL, wild_skip(root, n));
            else
                c = child_find(r, n, filter + pos, end - pos);
            if (c) {
                n = c;
                pos = end + 1;
                continue;
            }
        }

        /* Climb until a '+' level has a sibling left to try. */
        for (;;) {
            const struct retained_node *p;

            if (n == root)
                return;
            p = n->parent;
            if (level_is_plus(filter, pos - 1)) {
                c = child_next(p, n, wild_skip(root, p));
                if (c)
                    break;
                pos -= 2;
            } else {
                RM_ASSERT(pos >= (size_t)n->key.len + 1);
                pos -= (size_t)n->key.len + 1;
            }
            n = p;
        }
        n = c;
    }
}

size_t retained_count(const struct retained *r)
{
    RM_ASSERT(r != NULL);
    RM_ASSERT(r->root != NULL);
    return r->count;
}

void retained_each(const struct retained *r, retained_match_cb cb, void *ctx)
{
    RM_ASSERT(r != NULL && cb != NULL);
    match_subtree(r->root, SKIP_NONE, cb, ctx);
}

struct msg *retained_take(struct retained *r, const struct msg *m)
{
    struct retained_node *n;
    struct msg *taken;

    RM_ASSERT(r != NULL && m != NULL);
    n = node_of(r, msg_topic(m), m->topic_len, false);
    if (!n || n->msg != m)
        return NULL;
    taken = n->msg;
    n->msg = NULL;
    RM_ASSERT(r->count > 0);
    r->count--;
    prune(r, n);
    return taken;
}
