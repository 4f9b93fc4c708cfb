/*
 * trie.c - this shard's subscriptions, by topic filter level (see trie.h).
 *
 * Owns every node and subscription array; borrows the sessions. One shard's
 * thread only.
 *
 * Layout, chosen for a million sibling levels and for the publish path:
 *  - a node is one allocation, with its level bytes at the end; literal
 *    children sit in a lvlmap (nothing allocated for zero or one child), the
 *    '+' and '#' children in their own pointers;
 *  - the subscriptions of a node: one held inline (the common case of a
 *    device's own topic), else an array in one block that gains a hash index
 *    by session once it passes SUBS_SCAN_MAX, so a filter with 100k
 *    subscribers still inserts and removes in O(1);
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
#include "core/topic.h"

/* Up to this many subscriptions on one node, find a session by scanning. */
#define SUBS_SCAN_MAX 8u
/* The first subscription array, when a second subscriber arrives. */
#define SUBS_CAP_MIN 4u
/* Subscriptions on one node: indices are 32 bits, the index twice that. */
#define SUBS_CAP_MAX (1u << 30)
#define SUBS_NONE UINT32_MAX

struct trie_sub {
    void *sess;
    uint8_t options;
};

/* The subscriptions of a node with two or more. */
struct subs_block {
    uint32_t cap;      /* entries in arr */
    uint32_t idx_mask; /* idx slots - 1; 0 while cap <= SUBS_SCAN_MAX (no index) */
    uint32_t *idx;     /* open addressing by session: arr index + 1, 0 = free */
    struct trie_sub arr[];
};

struct trie_node {
    struct lvlmap_key key; /* first: this node's entry in its parent's kids */
    struct trie_node *parent;
    struct lvlmap kids;     /* literal levels */
    struct trie_node *plus; /* the '+' child */
    struct trie_node *hash; /* the '#' child (never has children) */
    union {
        void *one;      /* subs_count == 1 */
        struct subs_block *block; /* subs_count >= 2 */
    } subs;
    uint32_t subs_count;
    uint8_t one_options; /* options of subs.one */
    uint8_t level[];     /* key.len bytes */
};

struct trie {
    struct trie_node *root; /* the empty prefix; never freed before trie_free() */
    uint64_t seed;          /* lvlmap hashing seed */
    size_t count;           /* (filter, session) subscriptions */
};

static uint32_t sess_hash(const void *sess)
{
    uint64_t x = (uint64_t)(uintptr_t)sess;

    /* The murmur3 finaliser: pointers differ mostly in their middle bits. */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static struct trie_sub sub_at(const struct trie_node *n, uint32_t i)
{
    struct trie_sub s;

    RM_ASSERT(i < n->subs_count);
    if (n->subs_count == 1) {
        s.sess = n->subs.one;
        s.options = n->one_options;
    } else {
        s = n->subs.block->arr[i];
    }
    RM_ASSERT(s.sess != NULL);
    return s;
}

/* Put arr[@i] into the index, which has a free slot. */
static void idx_put(struct subs_block *b, uint32_t i)
{
    uint32_t s = sess_hash(b->arr[i].sess) & b->idx_mask;
    uint32_t n;

    for (n = 0; n <= b->idx_mask; n++) {
        if (b->idx[s] == 0) {
            b->idx[s] = i + 1;
            return;
        }
        s = (s + 1) & b->idx_mask;
    }
    RM_ASSERT(!"subscription index full");
}

/* The index slot that refers to arr[@i]. */
static uint32_t idx_slot_of(const struct subs_block *b, uint32_t i)
{
    uint32_t s = sess_hash(b->arr[i].sess) & b->idx_mask;
    uint32_t n;

    for (n = 0; n <= b->idx_mask; n++) {
        if (b->idx[s] == i + 1)
            return s;
        RM_ASSERT(b->idx[s] != 0);
        s = (s + 1) & b->idx_mask;
    }
    RM_ASSERT(!"subscription not indexed");
    return 0;
}

/* Empty index slot @s by backward shift (see lvlmap_del()). */
static void idx_del(struct subs_block *b, uint32_t s)
{
    uint32_t mask = b->idx_mask;
    uint32_t j = s, n;

    for (n = 0; n < mask; n++) {
        uint32_t home;

        j = (j + 1) & mask;
        if (b->idx[j] == 0)
            break;
        home = sess_hash(b->arr[b->idx[j] - 1].sess) & mask;
        if (((j - home) & mask) >= ((j - s) & mask)) {
            b->idx[s] = b->idx[j];
            s = j;
        }
    }
    b->idx[s] = 0;
}

/* Index of @sess among @n's subscriptions, or SUBS_NONE. */
static uint32_t subs_find(const struct trie_node *n, const void *sess)
{
    const struct subs_block *b = n->subs.block;
    uint32_t i, s;

    RM_ASSERT(sess != NULL);
    if (n->subs_count == 0)
        return SUBS_NONE;
    if (n->subs_count == 1)
        return n->subs.one == sess ? 0 : SUBS_NONE;
    RM_ASSERT(b->cap >= n->subs_count);
    if (!b->idx) {
        for (i = 0; i < n->subs_count; i++) {
            if (b->arr[i].sess == sess)
                return i;
        }
        return SUBS_NONE;
    }
    s = sess_hash(sess) & b->idx_mask;
    for (i = 0; i <= b->idx_mask; i++) {
        uint32_t v = b->idx[s];

        if (v == 0)
            return SUBS_NONE;
        if (b->arr[v - 1].sess == sess)
            return v - 1;
        s = (s + 1) & b->idx_mask;
    }
    return SUBS_NONE;
}

/*
 * A new block of @cap entries holding @n's subscriptions (from its old block
 * or its inline one), with an index when @cap passes SUBS_SCAN_MAX. Returns
 * it, the old block freed; or NULL with @n unchanged.
 */
static struct subs_block *block_resize(struct trie_node *n, uint32_t cap)
{
    struct subs_block *b;
    uint32_t i;

    RM_ASSERT(cap >= n->subs_count && cap >= SUBS_CAP_MIN);
    RM_ASSERT((cap & (cap - 1)) == 0 && cap <= SUBS_CAP_MAX);

    b = malloc(sizeof(*b) + (size_t)cap * sizeof(b->arr[0]));
    if (!b)
        goto out;
    b->cap = cap;
    b->idx_mask = 0;
    b->idx = NULL;
    if (cap > SUBS_SCAN_MAX) {
        b->idx = calloc((size_t)cap * 2, sizeof(b->idx[0]));
        if (!b->idx)
            goto out_free_block;
        b->idx_mask = cap * 2 - 1;
    }
    for (i = 0; i < n->subs_count; i++) {
        b->arr[i] = sub_at(n, i);
        if (b->idx)
            idx_put(b, i);
    }
    if (n->subs_count >= 2) {
        free(n->subs.block->idx);
        free(n->subs.block);
    }
    goto out;

out_free_block:
    free(b);
    b = NULL;
out:
    return b;
}

static int subs_add(struct trie_node *n, void *sess, uint8_t options)
{
    struct subs_block *b;
    int rc = 0;

    RM_ASSERT(sess != NULL);
    RM_ASSERT(subs_find(n, sess) == SUBS_NONE);
    if (n->subs_count == 0) {
        n->subs.one = sess;
        n->one_options = options;
        goto out_added;
    }
    b = n->subs_count == 1 ? NULL : n->subs.block;
    if (!b || b->cap == n->subs_count) {
        uint32_t cap = b ? b->cap * 2 : SUBS_CAP_MIN;

        if (!b || b->cap < SUBS_CAP_MAX)
            b = block_resize(n, cap);
        else
            b = NULL;
        if (!b) {
            rc = -ENOMEM;
            goto out;
        }
        n->subs.block = b;
    }
    b->arr[n->subs_count].sess = sess;
    b->arr[n->subs_count].options = options;
    if (b->idx)
        idx_put(b, n->subs_count);
out_added:
    n->subs_count++;
out:
    return rc;
}

static void subs_del(struct trie_node *n, uint32_t i)
{
    struct subs_block *b = n->subs.block;
    uint32_t last = n->subs_count - 1;

    RM_ASSERT(i < n->subs_count);
    if (n->subs_count == 1) {
        n->subs.one = NULL;
        n->subs_count = 0;
        return;
    }
    RM_ASSERT(b != NULL && b->cap >= n->subs_count);
    if (b->idx)
        idx_del(b, idx_slot_of(b, i));
    if (i != last) {
        if (b->idx)
            b->idx[idx_slot_of(b, last)] = i + 1;
        b->arr[i] = b->arr[last];
    }
    n->subs_count--;

    if (n->subs_count == 1) {
        struct trie_sub s = b->arr[0];

        free(b->idx);
        free(b);
        n->subs.one = s.sess;
        n->one_options = s.options;
    } else if (n->subs_count * 4 <= b->cap && b->cap > SUBS_CAP_MIN) {
        /* Give memory back after mass unsubscribes; best effort. */
        b = block_resize(n, b->cap / 2);
        if (b)
            n->subs.block = b;
    }
}

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
    return n->subs_count == 0 && lvlmap_count(&n->kids) == 0 && !n->plus && !n->hash;
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
        if (n->subs_count >= 2) {
            free(n->subs.block->idx);
            free(n->subs.block);
        }
        subs += n->subs_count;
        n->subs_count = 0;
        node_free(n);
        n = c;
    }
    RM_ASSERT(subs == t->count);
    free(t);
}

int trie_insert(struct trie *t, const uint8_t *filter, size_t len, void *sess,
                uint8_t options, bool *filter_first)
{
    struct trie_node *n;
    uint32_t i;
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
    i = subs_find(n, sess);
    if (i != SUBS_NONE) {
        /* [MQTT-3.8.4-3]: the same filter again replaces the subscription. */
        if (n->subs_count == 1)
            n->one_options = options;
        else
            n->subs.block->arr[i].options = options;
        rc = 0;
        goto out;
    }
    rc = subs_add(n, sess, options);
    if (rc < 0)
        goto out_prune;
    if (filter_first)
        *filter_first = n->subs_count == 1;
    t->count++;
    rc = 1;
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
    uint32_t i;
    bool found = false;

    RM_ASSERT(t != NULL && sess != NULL);
    RM_ASSERT(filter != NULL && len > 0);
    if (filter_last)
        *filter_last = false;

    n = node_of(t, filter, len, false);
    if (!n)
        goto out;
    i = subs_find(n, sess);
    if (i == SUBS_NONE)
        goto out;
    subs_del(n, i);
    RM_ASSERT(t->count > 0);
    t->count--;
    found = true;
    if (filter_last)
        *filter_last = n->subs_count == 0;
    prune(t, n);
out:
    return found;
}

static void report(const struct trie_node *n, trie_match_cb cb, void *ctx)
{
    uint32_t i;

    for (i = 0; i < n->subs_count; i++) {
        struct trie_sub s = sub_at(n, i);

        cb(ctx, s.sess, s.options);
    }
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
    bool dollar;
    uint32_t i = 0;

    RM_ASSERT(t != NULL && nm != NULL && cb != NULL);
    RM_ASSERT(nm->count > 0 && nm->seed == t->seed);
    root = t->root;
    n = root;
    /* [MQTT-4.7.2-1]: '$' names skip the root's '+' and '#' children. */
    dollar = nm->name[0] == '$';

    /*
     * Depth-first, with the level index as the only state: @n has matched
     * the name's levels before @i (i == count: all of them). Each node is
     * visited at most once, so the walk is bounded by the trie's size, and
     * it needs no stack whatever the depth: climbing back is one level up.
     */
    for (;;) {
        const struct trie_node *c = NULL;
        bool wild = n != root || !dollar;

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
            if (n != p->plus && p->plus && (p != root || !dollar)) {
                c = p->plus;
                break;
            }
            RM_ASSERT(i > 0);
            i--;
            n = p;
        }
        n = c;
    }
}

size_t trie_count(const struct trie *t)
{
    RM_ASSERT(t != NULL);
    RM_ASSERT(t->root != NULL);
    return t->count;
}
