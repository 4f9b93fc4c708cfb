/*
 * share.c - MQTT shared subscriptions, one shard's table (see share.h).
 *
 * Owns every group, its member set, the group hash table and the
 * trie of group filters; borrows the members. One shard's thread only.
 *
 * Layout:
 *  - groups sit in a chained hash table keyed by share_key() (seeded XXH3 of the
 *    full "$share/g/f" string), re-hashed under a per-table seed to pick the
 *    bucket so a peer cannot aim many names at one chain; the full string is
 *    compared on every lookup by name, so key collisions only matter to
 *    share_pick()/share_pick_shard(), which also check the filter matches;
 *  - each group is an owner in a trie under its filter f, so a publish finds
 *    every matching group with one trie_match();
 *  - local members are a struct subset (core/subset.h), round-robin by
 *    position, with a hash index by member past SUBSET_SCAN_MAX, so a group
 *    with 100k members on one shard still joins and leaves in O(1), and its
 *    block shrinks as members leave;
 *  - the shards with members are a small array of (shard, member count,
 *    credit), only as long as the number of such shards (16 bytes each);
 *    choosing one is one pass over it (smooth weighted round-robin, see
 *    shard_next()).
 * Choosing an online member scans the members from the cursor until one is
 * online: O(members) in the worst case (every member offline), bounded by
 * the number of sessions homed here.
 */
#include "core/share.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/limits.h"
#include "core/lvlmap.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "core/subset.h"
#include "core/topic.h"
#include "core/trie.h"

_Static_assert(SHARE_SHARDS_MAX == LIMITS_SHARDS_MAX, "a table must cover every shard");

/* Bucket table sizes: grow past load 1, shrink below load 1/8. */
#define BUCKETS_MIN 16u
#define BUCKETS_MAX (1u << 30)
#define NONE UINT32_MAX

/* A shard with members in a group: its weight in the group's rotation. */
struct share_shard {
    uint32_t shard;
    uint32_t members; /* as it last announced; this shard's: subset_count() of the group's mem */
    int64_t credit;   /* smooth weighted round-robin: the highest is served next */
};

struct share_group {
    struct share_group *next;  /* bucket chain */
    uint64_t key;              /* share_key(full) */
    struct share_shard *shards; /* the shards with members, in no order; NULL while none */
    struct subset mem;         /* the local members, in rotation order */
    uint32_t mem_cursor;       /* the next local member in the rotation (< its count, or 0) */
    uint32_t shards_used;      /* entries in shards */
    uint32_t shards_cap;
    uint32_t full_len;
    uint32_t filter_off; /* f starts at full + filter_off */
    uint8_t full[];      /* "$share/g/f" */
};

struct share_table {
    struct share_group **buckets;
    uint32_t bucket_mask;
    uint32_t shard_id;
    uint32_t shard_count;
    size_t group_count;
    uint64_t seed;     /* bucket seed */
    uint64_t key_seed; /* share_key() seed, the same on every shard */
    struct trie *trie;
    bool (*online)(void *member);
};

int share_parse(const uint8_t *f, size_t len, struct share_name *out)
{
    size_t i, name_end = 0;
    int rc = 0;

    RM_ASSERT(f != NULL || len == 0);
    RM_ASSERT(out != NULL);
    if (len < SHARE_PREFIX_LEN || memcmp(f, SHARE_PREFIX, SHARE_PREFIX_LEN) != 0)
        goto out;
    rc = -MQTT_RC_TOPIC_FILTER_INVALID;
    /* The ShareName runs to the next '/', which must exist [MQTT-4.8.2-2]. */
    for (i = SHARE_PREFIX_LEN; i < len; i++) {
        if (f[i] == '/') {
            name_end = i;
            break;
        }
        if (f[i] == '+' || f[i] == '#')
            goto out;
    }
    if (name_end == 0 || name_end == SHARE_PREFIX_LEN || name_end + 1 == len)
        goto out;
    out->name = f + SHARE_PREFIX_LEN;
    out->name_len = name_end - SHARE_PREFIX_LEN;
    out->filter = f + name_end + 1;
    out->filter_len = len - name_end - 1;
    rc = 1;
out:
    return rc;
}

uint64_t share_key(uint64_t seed, const uint8_t *full, size_t len)
{
    uint64_t h;

    RM_ASSERT(full != NULL || len == 0);
    RM_ASSERT(len <= UINT32_MAX);
    h = XXH3_64bits_withSeed(full, len, seed);
    return h != 0 ? h : 1;
}

static uint32_t bucket_of(const struct share_table *t, uint64_t key)
{
    RM_ASSERT(t->buckets != NULL);
    RM_ASSERT(t->bucket_mask + 1 >= BUCKETS_MIN);
    return (uint32_t)XXH3_64bits_withSeed(&key, sizeof(key), t->seed) & t->bucket_mask;
}

/* @g's entry for shard @s, or NULL when @s has no members in it. */
static struct share_shard *shard_find(const struct share_group *g, uint32_t s)
{
    uint32_t i;

    RM_ASSERT(s < SHARE_SHARDS_MAX);
    RM_ASSERT(g->shards_used <= g->shards_cap);
    for (i = 0; i < g->shards_used; i++) {
        if (g->shards[i].shard == s)
            return &g->shards[i];
    }
    return NULL;
}

/* Room for one more shard in @g: 0, or -ENOMEM (nothing changed). */
static int shard_reserve(struct share_group *g)
{
    struct share_shard *n;
    uint32_t cap;

    RM_ASSERT(g->shards_used <= g->shards_cap);
    RM_ASSERT(g->shards_cap <= SHARE_SHARDS_MAX);
    if (g->shards_used < g->shards_cap)
        return 0;
    cap = g->shards_cap != 0 ? g->shards_cap * 2 : 2;
    n = realloc(g->shards, (size_t)cap * sizeof(*n));
    if (n == NULL)
        return -ENOMEM;
    g->shards = n;
    g->shards_cap = cap;
    return 0;
}

/*
 * Shard @s now has @members members in @g (0: none, its entry goes).
 * Returns 0, or -ENOMEM when a new entry found no room (nothing changed;
 * never after shard_reserve()). The credits always sum to 0 (see
 * shard_next()): a new shard starts at 0, and a leaving shard's credit is
 * shared evenly among the others, so neither a newcomer nor anyone else
 * gains or loses turns by membership changing, however often it does.
 */
static int shard_set(struct share_group *g, uint32_t s, uint32_t members)
{
    struct share_shard *e = shard_find(g, s);
    int64_t credit, each;
    uint32_t i;

    RM_ASSERT(s < SHARE_SHARDS_MAX);
    if (e != NULL && members > 0) {
        e->members = members;
    } else if (e != NULL) {
        credit = e->credit;
        *e = g->shards[--g->shards_used];
        if (g->shards_used > 0) {
            each = credit / (int64_t)g->shards_used;
            for (i = 0; i < g->shards_used; i++)
                g->shards[i].credit += each;
            g->shards[0].credit += credit - each * (int64_t)g->shards_used;
        }
    } else if (members > 0) {
        if (shard_reserve(g) < 0)
            return -ENOMEM;
        g->shards[g->shards_used++] = (struct share_shard){s, members, 0};
    }
    RM_ASSERT(g->shards_used <= g->shards_cap);
    return 0;
}

/*
 * The shard whose turn it is in @g, other than @skip_a and @skip_b (NONE
 * skips nothing); NONE if there is none. Smooth weighted round-robin
 * (nginx's): every candidate gains its member count in credit, the richest
 * (the first of equals) is chosen and pays the candidates' total, so the
 * credits keep summing to 0. From credits all 0 the choices repeat with a
 * period of W (the total count), in which each shard is chosen exactly as
 * many times as it has members, spread evenly; after a change of counts
 * the shares converge to the new counts. So each member, wherever it is
 * homed, gets the same share of the group's messages. One pass over the
 * shards with members.
 */
static uint32_t shard_next(struct share_group *g, uint32_t skip_a, uint32_t skip_b)
{
    struct share_shard *best = NULL;
    uint64_t total = 0;
    uint32_t i;

    RM_ASSERT(g->shards_used <= g->shards_cap);
    RM_ASSERT(g->shards_used <= SHARE_SHARDS_MAX);
    for (i = 0; i < g->shards_used; i++) {
        struct share_shard *e = &g->shards[i];

        if (e->shard == skip_a || e->shard == skip_b)
            continue;
        e->credit += e->members;
        total += e->members;
        if (best == NULL || e->credit > best->credit)
            best = e;
    }
    if (best == NULL)
        return NONE;
    best->credit -= (int64_t)total;
    return best->shard;
}

/*
 * The local member to serve next: the first online member other than
 * @exclude from the cursor on, else the first offline one other than
 * @exclude, else @exclude if it is a member; NONE if there are no members.
 * *@online says whether the choice is online. Does not move the cursor.
 */
static uint32_t mem_choose(const struct share_table *t, const struct share_group *g,
                           const void *exclude, bool *online)
{
    const struct subset_entry *e = subset_entries(&g->mem);
    uint32_t count = subset_count(&g->mem);
    uint32_t i = g->mem_cursor, n, offline = NONE, excluded = NONE, found = NONE;

    RM_ASSERT(count == 0 || g->mem_cursor < count);
    RM_ASSERT(online != NULL);
    *online = false;
    for (n = 0; n < count; n++) {
        void *m = e[i].owner;

        if (m == exclude) {
            excluded = i;
        } else if (t->online(m)) {
            found = i;
            *online = true;
            break;
        } else if (offline == NONE) {
            offline = i;
        }
        i = i + 1 == count ? 0 : i + 1;
    }
    if (found == NONE)
        found = offline != NONE ? offline : excluded;
    return found;
}

/* Serve mem[@i]: the rotation continues after it. */
static void mem_served(struct share_group *g, uint32_t i)
{
    uint32_t count = subset_count(&g->mem);

    RM_ASSERT(i < count);
    RM_ASSERT(count > 0);
    g->mem_cursor = i + 1 == count ? 0 : i + 1;
}

static bool group_is(const struct share_group *g, uint64_t key, const uint8_t *full, size_t len)
{
    RM_ASSERT(g != NULL);
    RM_ASSERT(full != NULL);
    return g->key == key && g->full_len == len && memcmp(g->full, full, len) == 0;
}

/* The group of full filter @full (key @key), or NULL. */
static struct share_group *group_find(const struct share_table *t, uint64_t key,
                                      const uint8_t *full, size_t len)
{
    struct share_group *g;

    RM_ASSERT(t != NULL);
    RM_ASSERT(full != NULL);
    for (g = t->buckets[bucket_of(t, key)]; g != NULL; g = g->next) {
        if (group_is(g, key, full, len))
            break;
    }
    return g;
}

/* The group with key @key whose filter matches @topic, or NULL. */
static struct share_group *group_find_key(const struct share_table *t, uint64_t key,
                                          const uint8_t *topic, size_t topic_len, bool need_members)
{
    struct share_group *g;

    RM_ASSERT(t != NULL);
    RM_ASSERT(topic != NULL || topic_len == 0);
    for (g = t->buckets[bucket_of(t, key)]; g != NULL; g = g->next) {
        if (g->key != key || (need_members && subset_count(&g->mem) == 0))
            continue;
        if (topic_match(g->full + g->filter_off, g->full_len - g->filter_off, topic, topic_len))
            break;
    }
    return g;
}

/* Re-hash into @nb buckets (a power of two); on ENOMEM keep the old table. */
static void buckets_resize(struct share_table *t, uint32_t nb)
{
    struct share_group **b, **old_b = t->buckets;
    uint32_t i, old = t->bucket_mask + 1;

    RM_ASSERT(nb >= BUCKETS_MIN && nb <= BUCKETS_MAX);
    RM_ASSERT((nb & (nb - 1)) == 0);
    b = calloc(nb, sizeof(*b));
    if (b == NULL)
        goto out;
    t->buckets = b;
    t->bucket_mask = nb - 1;
    for (i = 0; i < old; i++) {
        while (old_b[i] != NULL) {
            struct share_group *g = old_b[i];
            uint32_t k = bucket_of(t, g->key);

            old_b[i] = g->next;
            g->next = b[k];
            b[k] = g;
        }
    }
    free(old_b);
out:
    return;
}

/*
 * A new group for @full (parsed as @sn), with no member and no shard,
 * linked into the table and the trie; NULL on ENOMEM.
 */
static struct share_group *group_new(struct share_table *t, uint64_t key, const uint8_t *full,
                                     size_t len, const struct share_name *sn)
{
    struct share_group *g;
    uint32_t k;

    RM_ASSERT(sn->filter > full && sn->filter + sn->filter_len == full + len);
    RM_ASSERT(len <= UINT32_MAX);
    g = calloc(1, sizeof(*g) + len);
    if (g == NULL)
        goto out;
    g->key = key;
    g->full_len = (uint32_t)len;
    g->filter_off = (uint32_t)(sn->filter - full);
    memcpy(g->full, full, len);
    if (trie_insert(t->trie, g->full + g->filter_off, sn->filter_len, g, 0, 0, NULL) < 0)
        goto out_free;
    k = bucket_of(t, key);
    g->next = t->buckets[k];
    t->buckets[k] = g;
    t->group_count++;
    if (t->group_count > (size_t)t->bucket_mask + 1 && t->bucket_mask + 1 < BUCKETS_MAX)
        buckets_resize(t, (t->bucket_mask + 1) * 2);
    goto out;
out_free:
    free(g);
    g = NULL;
out:
    return g;
}

/* Free @g if no shard has members in it, this one included. */
static void group_maybe_free(struct share_table *t, struct share_group *g)
{
    struct share_group **pp;
    bool removed;

    RM_ASSERT((subset_count(&g->mem) > 0) == (shard_find(g, t->shard_id) != NULL));
    RM_ASSERT(g->shards_used > 0 || subset_count(&g->mem) == 0);
    if (g->shards_used > 0)
        goto out;
    for (pp = &t->buckets[bucket_of(t, g->key)]; *pp != g; pp = &(*pp)->next)
        RM_ASSERT(*pp != NULL);
    *pp = g->next;
    removed = trie_remove(t->trie, g->full + g->filter_off, g->full_len - g->filter_off, g, NULL);
    RM_ASSERT(removed);
    RM_ASSERT(subset_capacity(&g->mem) == 0);
    free(g->shards);
    free(g);
    t->group_count--;
    if (t->group_count < ((size_t)t->bucket_mask + 1) / 8 && t->bucket_mask + 1 > BUCKETS_MIN)
        buckets_resize(t, (t->bucket_mask + 1) / 2);
out:
    return;
}

struct share_table *share_table_new(uint32_t shard_id, uint32_t shard_count, uint64_t seed,
                                    uint64_t key_seed, bool (*online)(void *member))
{
    struct share_table *t;

    RM_ASSERT(shard_count >= 1 && shard_count <= SHARE_SHARDS_MAX);
    RM_ASSERT(shard_id < shard_count && online != NULL);
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        goto out;
    t->buckets = calloc(BUCKETS_MIN, sizeof(*t->buckets));
    if (t->buckets == NULL)
        goto out_free_t;
    t->trie = trie_new(seed);
    if (t->trie == NULL)
        goto out_free_buckets;
    t->bucket_mask = BUCKETS_MIN - 1;
    t->shard_id = shard_id;
    t->shard_count = shard_count;
    t->seed = lvlmap_seed(t);
    t->key_seed = key_seed;
    t->online = online;
    goto out;
out_free_buckets:
    free(t->buckets);
out_free_t:
    free(t);
    t = NULL;
out:
    return t;
}

void share_table_free(struct share_table *t)
{
    uint32_t i;

    if (t == NULL)
        goto out;
    RM_ASSERT(t->buckets != NULL);
    RM_ASSERT(t->trie != NULL);
    for (i = 0; i <= t->bucket_mask; i++) {
        while (t->buckets[i] != NULL) {
            struct share_group *g = t->buckets[i];

            t->buckets[i] = g->next;
            subset_fini(&g->mem);
            free(g->shards);
            free(g);
        }
    }
    trie_free(t->trie);
    free(t->buckets);
    free(t);
out:
    return;
}

uint32_t share_members(const struct share_table *t, const uint8_t *full, size_t len)
{
    RM_ASSERT(t != NULL && full != NULL);
    RM_ASSERT(len > 0);
    const struct share_group *g = group_find(t, share_key(t->key_seed, full, len), full, len);
    return g != NULL ? subset_count(&g->mem) : 0;
}

int share_join(struct share_table *t, const uint8_t *full, size_t len, void *member,
               uint8_t options, uint32_t sub_id, uint32_t *members)
{
    struct share_name sn;
    struct share_group *g;
    uint64_t key;
    bool created = false;
    int rc = share_parse(full, len, &sn);

    RM_ASSERT(t != NULL && member != NULL);
    RM_ASSERT(rc == 1);
    key = share_key(t->key_seed, full, len);
    g = group_find(t, key, full, len);
    if (g == NULL) {
        g = group_new(t, key, full, len, &sn);
        if (g == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        created = true;
    }
    /* This shard's entry in the rotation cannot fail once the member is in. */
    rc = subset_count(&g->mem) == 0 ? shard_reserve(g) : 0;
    /* An update keeps the member's round-robin position. */
    if (rc == 0)
        rc = subset_add(&g->mem, member, options, sub_id);
    if (rc < 0)
        goto out_drop;
    if (rc == 1) {
        rc = shard_set(g, t->shard_id, subset_count(&g->mem));
        RM_ASSERT(rc == 0);
        rc = 1;
    }
    goto out;
out_drop:
    if (created)
        group_maybe_free(t, g);
    g = NULL;
out:
    if (members != NULL)
        *members = g != NULL ? subset_count(&g->mem) : 0;
    return rc;
}

bool share_leave(struct share_table *t, const uint8_t *full, size_t len, void *member,
                 uint32_t *members)
{
    struct share_group *g;
    uint32_t left = 0;
    bool found = false;
    int rc;

    RM_ASSERT(t != NULL && member != NULL);
    RM_ASSERT(full != NULL);
    g = group_find(t, share_key(t->key_seed, full, len), full, len);
    if (g == NULL)
        goto out;
    left = subset_count(&g->mem);
    found = subset_remove(&g->mem, member, &g->mem_cursor);
    if (!found)
        goto out;
    left = subset_count(&g->mem);
    rc = shard_set(g, t->shard_id, left); /* fewer, or none: never allocates */
    RM_ASSERT(rc == 0);
    if (left == 0)
        group_maybe_free(t, g);
out:
    if (members != NULL)
        *members = left;
    return found;
}

int share_remote(struct share_table *t, const uint8_t *full, size_t len, uint32_t shard,
                 uint32_t members)
{
    struct share_name sn;
    struct share_group *g;
    uint64_t key;
    int rc = 0;

    RM_ASSERT(t != NULL && full != NULL);
    RM_ASSERT(shard < t->shard_count && shard != t->shard_id);
    key = share_key(t->key_seed, full, len);
    g = group_find(t, key, full, len);
    if (g == NULL && members > 0) {
        /* The origin shard parsed and checked it before announcing it. */
        rc = share_parse(full, len, &sn);
        RM_ASSERT(rc == 1);
        rc = 0;
        g = group_new(t, key, full, len, &sn);
        if (g == NULL) {
            rc = -ENOMEM;
            goto out;
        }
    }
    if (g == NULL)
        goto out;
    /* A new entry may find no memory: a group made for it goes again. */
    rc = shard_set(g, shard, members);
    group_maybe_free(t, g);
out:
    return rc;
}

struct match_ctx {
    struct share_table *t;
    share_pick_cb cb;
    void *ctx;
};

static void match_one(void *ctx, void *owner, uint8_t unused, uint32_t unused_id)
{
    struct match_ctx *mc = ctx;
    struct share_table *t = mc->t;
    struct share_group *g = owner;
    void *member = NULL;
    uint8_t options = 0;
    uint32_t s, i, sub_id = 0;
    bool online;

    (void)unused;
    (void)unused_id;
    RM_ASSERT(g != NULL && g->shards_used > 0);
    s = shard_next(g, NONE, NONE);
    RM_ASSERT(s != NONE);
    if (s == t->shard_id) {
        i = mem_choose(t, g, NULL, &online);
        RM_ASSERT(i != NONE);
        if (!online && g->shards_used > 1) {
            /*
             * Nobody here can take it now; another shard may have someone:
             * the turn among the others (this shard's is spent, so its
             * offline members earn no backlog of turns).
             */
            s = shard_next(g, t->shard_id, NONE);
            RM_ASSERT(s != NONE);
        } else {
            const struct subset_entry *e = &subset_entries(&g->mem)[i];

            mem_served(g, i);
            member = e->owner;
            options = e->options;
            sub_id = e->sub_id;
        }
    }
    mc->cb(mc->ctx, g->key, s, member, options, sub_id);
}

void share_match(struct share_table *t, const struct trie_name *topic, share_pick_cb cb, void *ctx)
{
    struct match_ctx mc = {.t = t, .cb = cb, .ctx = ctx};

    RM_ASSERT(t != NULL && topic != NULL && cb != NULL);
    if (t->group_count == 0)
        goto out;
    trie_match(t->trie, topic, match_one, &mc);
out:
    return;
}

void *share_pick(struct share_table *t, uint64_t group_key, const uint8_t *topic, size_t topic_len,
                 void *exclude, uint8_t *options, uint32_t *sub_id)
{
    const struct subset_entry *e;
    struct share_group *g;
    void *member = NULL;
    uint32_t i;
    bool online;

    RM_ASSERT(t != NULL);
    RM_ASSERT(topic != NULL || topic_len == 0);
    g = group_find_key(t, group_key, topic, topic_len, true);
    if (g == NULL)
        goto out;
    i = mem_choose(t, g, exclude, &online);
    RM_ASSERT(i != NONE);
    e = &subset_entries(&g->mem)[i];
    mem_served(g, i);
    member = e->owner;
    if (options != NULL)
        *options = e->options;
    if (sub_id != NULL)
        *sub_id = e->sub_id;
out:
    return member;
}

bool share_pick_shard(struct share_table *t, uint64_t group_key, const uint8_t *topic,
                      size_t topic_len, uint32_t exclude_shard, uint32_t *shard)
{
    struct share_group *g;
    uint32_t s = NONE;

    RM_ASSERT(t != NULL && shard != NULL);
    RM_ASSERT(exclude_shard == UINT32_MAX || exclude_shard < t->shard_count);
    g = group_find_key(t, group_key, topic, topic_len, false);
    if (g == NULL)
        goto out;
    s = shard_next(g, t->shard_id, exclude_shard);
    if (s == NONE && exclude_shard != UINT32_MAX && exclude_shard != t->shard_id &&
        shard_find(g, exclude_shard) != NULL)
        s = exclude_shard;
    if (s != NONE)
        *shard = s;
out:
    return s != NONE;
}

size_t share_group_count(const struct share_table *t)
{
    RM_ASSERT(t != NULL);
    RM_ASSERT(t->buckets != NULL);
    return t->group_count;
}

size_t share_member_count(const struct share_table *t, const uint8_t *full, size_t len)
{
    const struct share_group *g;

    RM_ASSERT(t != NULL);
    RM_ASSERT(full != NULL);
    g = group_find(t, share_key(t->key_seed, full, len), full, len);
    return g == NULL ? 0 : subset_count(&g->mem);
}
