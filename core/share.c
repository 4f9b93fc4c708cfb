/*
 * share.c - MQTT shared subscriptions, one shard's table (see share.h).
 *
 * Owns every group, its member array and index, the group hash table and the
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
 *  - local members are an array (round-robin by index) that gains a hash
 *    index by member once it passes MEMBERS_SCAN_MAX, so a group with 100k
 *    members on one shard still joins and leaves in O(1);
 *  - the shard bitmap holds SHARE_SHARDS_MAX bits; rotation scans it from a
 *    cursor, at most shard_count steps.
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

#include "core/broker.h"
#include "core/lvlmap.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "core/topic.h"
#include "core/trie.h"

_Static_assert(SHARE_SHARDS_MAX == BROKER_SHARDS_MAX, "share bitmap must cover every shard");
_Static_assert(SHARE_SHARDS_MAX % 64 == 0, "shard bitmap is whole words");

/* Bucket table sizes: grow past load 1, shrink below load 1/8. */
#define BUCKETS_MIN 16u
#define BUCKETS_MAX (1u << 30)
/* Up to this many members in a group, find a member by scanning. */
#define MEMBERS_SCAN_MAX 8u
/* The first member array. */
#define MEMBERS_CAP_MIN 4u
/* Members of one group on one shard: indices are 32 bits, the index twice that. */
#define MEMBERS_CAP_MAX (1u << 30)
#define SHARD_WORDS (SHARE_SHARDS_MAX / 64u)
#define NONE UINT32_MAX

struct share_member {
    void *member;
    uint8_t options;
};

struct share_group {
    struct share_group *next; /* bucket chain */
    uint64_t key;             /* share_key(full) */
    struct share_member *mem; /* mem_count used of mem_cap; NULL while mem_cap == 0 */
    uint32_t *idx;            /* by member: mem index + 1, 0 = free; NULL while small */
    uint32_t idx_mask;        /* idx slots - 1 */
    uint32_t mem_count;
    uint32_t mem_cap;
    uint32_t mem_cursor;   /* the next local member in the rotation (< mem_count, or 0) */
    uint32_t shard_cursor; /* the next shard in the rotation (< shard_count) */
    uint32_t shard_bits;   /* bits set in shards[] */
    uint64_t shards[SHARD_WORDS];
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

static uint32_t member_hash(const void *member)
{
    uint64_t x = (uint64_t)(uintptr_t)member;

    /* The murmur3 finaliser: pointers differ mostly in their middle bits. */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

static bool bit_test(const struct share_group *g, uint32_t s)
{
    RM_ASSERT(s < SHARE_SHARDS_MAX);
    RM_ASSERT(g->shard_bits <= SHARE_SHARDS_MAX);
    return (g->shards[s / 64u] >> (s % 64u)) & 1u;
}

static void bit_put(struct share_group *g, uint32_t s, bool on)
{
    uint64_t b = 1ull << (s % 64u);

    RM_ASSERT(s < SHARE_SHARDS_MAX);
    if (on && !(g->shards[s / 64u] & b)) {
        g->shards[s / 64u] |= b;
        g->shard_bits++;
    } else if (!on && (g->shards[s / 64u] & b)) {
        g->shards[s / 64u] &= ~b;
        g->shard_bits--;
    }
    RM_ASSERT(g->shard_bits <= SHARE_SHARDS_MAX);
}

/*
 * The first shard with a bit, from @from on (wrapping), that is neither
 * @skip_a nor @skip_b (NONE skips nothing); NONE if there is none.
 */
static uint32_t shard_next(const struct share_table *t, const struct share_group *g, uint32_t from,
                           uint32_t skip_a, uint32_t skip_b)
{
    uint32_t s = from, n, found = NONE;

    RM_ASSERT(from < t->shard_count);
    RM_ASSERT(t->shard_count <= SHARE_SHARDS_MAX);
    for (n = 0; n < t->shard_count; n++) {
        if (s != skip_a && s != skip_b && bit_test(g, s)) {
            found = s;
            break;
        }
        s = s + 1 == t->shard_count ? 0 : s + 1;
    }
    return found;
}

/* Put mem[@i] into the index, which has a free slot. */
static void idx_put(struct share_group *g, uint32_t i)
{
    uint32_t s = member_hash(g->mem[i].member) & g->idx_mask;
    uint32_t n;

    RM_ASSERT(g->idx != NULL);
    RM_ASSERT(i < g->mem_cap);
    for (n = 0; n <= g->idx_mask; n++) {
        if (g->idx[s] == 0)
            break;
        s = (s + 1) & g->idx_mask;
    }
    RM_ASSERT(g->idx[s] == 0);
    g->idx[s] = i + 1;
}

/* The index slot that refers to mem[@i]. */
static uint32_t idx_slot_of(const struct share_group *g, uint32_t i)
{
    uint32_t s = member_hash(g->mem[i].member) & g->idx_mask;
    uint32_t n;

    RM_ASSERT(g->idx != NULL);
    for (n = 0; n <= g->idx_mask; n++) {
        if (g->idx[s] == i + 1)
            break;
        RM_ASSERT(g->idx[s] != 0);
        s = (s + 1) & g->idx_mask;
    }
    RM_ASSERT(g->idx[s] == i + 1);
    return s;
}

/* Empty index slot @s by backward shift, so probes need no tombstones. */
static void idx_del(struct share_group *g, uint32_t s)
{
    uint32_t mask = g->idx_mask;
    uint32_t j = s, n;

    RM_ASSERT(g->idx != NULL);
    RM_ASSERT(g->idx[s] != 0);
    g->idx[s] = 0;
    for (n = 0; n < mask; n++) {
        uint32_t home;

        j = (j + 1) & mask;
        if (g->idx[j] == 0)
            break;
        home = member_hash(g->mem[g->idx[j] - 1].member) & mask;
        /* The entry at j may fill the hole unless its home lies in (s, j]. */
        if (((j - home) & mask) >= ((j - s) & mask)) {
            g->idx[s] = g->idx[j];
            g->idx[j] = 0;
            s = j;
        }
    }
}

/* The index of @member in @g's local members, or NONE. */
static uint32_t mem_find(const struct share_group *g, const void *member)
{
    uint32_t i, n, s, found = NONE;

    RM_ASSERT(member != NULL);
    RM_ASSERT(g->mem_count <= g->mem_cap);
    if (g->idx == NULL) {
        for (i = 0; i < g->mem_count; i++) {
            if (g->mem[i].member == member) {
                found = i;
                break;
            }
        }
        goto out;
    }
    s = member_hash(member) & g->idx_mask;
    for (n = 0; n <= g->idx_mask && g->idx[s] != 0; n++) {
        if (g->mem[g->idx[s] - 1].member == member) {
            found = g->idx[s] - 1;
            break;
        }
        s = (s + 1) & g->idx_mask;
    }
out:
    return found;
}

/* Room for one more member: 0 or -ENOMEM (nothing changed). */
static int mem_reserve(struct share_group *g)
{
    struct share_member *mem;
    uint32_t *idx = NULL;
    uint32_t cap, i;
    int rc = 0;

    RM_ASSERT(g->mem_count <= g->mem_cap);
    RM_ASSERT(g->mem_cap <= MEMBERS_CAP_MAX);
    if (g->mem_count < g->mem_cap)
        goto out;
    rc = -ENOMEM;
    if (g->mem_cap == MEMBERS_CAP_MAX)
        goto out;
    cap = g->mem_cap == 0 ? MEMBERS_CAP_MIN : g->mem_cap * 2;
    if (cap > MEMBERS_SCAN_MAX) {
        idx = calloc((size_t)cap * 2, sizeof(*idx));
        if (idx == NULL)
            goto out;
    }
    mem = realloc(g->mem, (size_t)cap * sizeof(*mem));
    if (mem == NULL)
        goto out_free_idx;
    g->mem = mem;
    g->mem_cap = cap;
    if (idx != NULL) {
        free(g->idx);
        g->idx = idx;
        g->idx_mask = cap * 2 - 1;
        idx = NULL;
        for (i = 0; i < g->mem_count; i++)
            idx_put(g, i);
    }
    rc = 0;
out_free_idx:
    free(idx);
out:
    return rc;
}

/* Append (@member, @options); mem_reserve() made room. */
static void mem_append(struct share_group *g, void *member, uint8_t options)
{
    uint32_t i = g->mem_count;

    RM_ASSERT(i < g->mem_cap);
    RM_ASSERT(mem_find(g, member) == NONE);
    g->mem[i].member = member;
    g->mem[i].options = options;
    g->mem_count++;
    if (g->idx != NULL)
        idx_put(g, i);
}

/* Remove mem[@i]; the last member takes its place. Frees the arrays when empty. */
static void mem_del(struct share_group *g, uint32_t i)
{
    uint32_t last = g->mem_count - 1;

    RM_ASSERT(g->mem_count > 0);
    RM_ASSERT(i < g->mem_count);
    if (g->idx != NULL) {
        idx_del(g, idx_slot_of(g, i));
        if (i != last)
            g->idx[idx_slot_of(g, last)] = i + 1;
    }
    g->mem[i] = g->mem[last];
    g->mem_count--;
    /* The moved member keeps its turn: it now sits where the cursor may point. */
    if (g->mem_cursor == last)
        g->mem_cursor = i;
    if (g->mem_cursor >= g->mem_count)
        g->mem_cursor = 0;
    if (g->mem_count == 0) {
        free(g->mem);
        free(g->idx);
        g->mem = NULL;
        g->idx = NULL;
        g->idx_mask = 0;
        g->mem_cap = 0;
    }
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
    uint32_t i = g->mem_cursor, n, offline = NONE, excluded = NONE, found = NONE;

    RM_ASSERT(g->mem_count == 0 || g->mem_cursor < g->mem_count);
    RM_ASSERT(online != NULL);
    *online = false;
    for (n = 0; n < g->mem_count; n++) {
        void *m = g->mem[i].member;

        if (m == exclude) {
            excluded = i;
        } else if (t->online(m)) {
            found = i;
            *online = true;
            break;
        } else if (offline == NONE) {
            offline = i;
        }
        i = i + 1 == g->mem_count ? 0 : i + 1;
    }
    if (found == NONE)
        found = offline != NONE ? offline : excluded;
    return found;
}

/* Serve mem[@i]: the rotation continues after it. */
static void mem_served(struct share_group *g, uint32_t i)
{
    RM_ASSERT(i < g->mem_count);
    RM_ASSERT(g->mem_count > 0);
    g->mem_cursor = i + 1 == g->mem_count ? 0 : i + 1;
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
        if (g->key != key || (need_members && g->mem_count == 0))
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
 * A new group for @full (parsed as @sn), with no member and no shard bit,
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
    if (trie_insert(t->trie, g->full + g->filter_off, sn->filter_len, g, 0, NULL) < 0)
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

/* Free @g if it has neither local members nor shard bits. */
static void group_maybe_free(struct share_table *t, struct share_group *g)
{
    struct share_group **pp;
    bool removed;

    RM_ASSERT(g->mem_count > 0 || !bit_test(g, t->shard_id));
    RM_ASSERT(g->mem_count == 0 || bit_test(g, t->shard_id));
    if (g->mem_count > 0 || g->shard_bits > 0)
        goto out;
    for (pp = &t->buckets[bucket_of(t, g->key)]; *pp != g; pp = &(*pp)->next)
        RM_ASSERT(*pp != NULL);
    *pp = g->next;
    removed = trie_remove(t->trie, g->full + g->filter_off, g->full_len - g->filter_off, g, NULL);
    RM_ASSERT(removed);
    RM_ASSERT(g->mem == NULL && g->idx == NULL);
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
            free(g->mem);
            free(g->idx);
            free(g);
        }
    }
    trie_free(t->trie);
    free(t->buckets);
    free(t);
out:
    return;
}

int share_join(struct share_table *t, const uint8_t *full, size_t len, void *member,
               uint8_t options, bool *first)
{
    struct share_name sn;
    struct share_group *g;
    uint64_t key;
    uint32_t i;
    bool created = false;
    int rc = share_parse(full, len, &sn);

    RM_ASSERT(t != NULL && member != NULL);
    RM_ASSERT(rc == 1);
    if (first != NULL)
        *first = false;
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
    i = mem_find(g, member);
    if (i != NONE) {
        g->mem[i].options = options;
        rc = 0;
        goto out;
    }
    rc = mem_reserve(g);
    if (rc < 0)
        goto out_drop;
    mem_append(g, member, options);
    if (g->mem_count == 1) {
        bit_put(g, t->shard_id, true);
        if (first != NULL)
            *first = true;
    }
    rc = 1;
    goto out;
out_drop:
    if (created)
        group_maybe_free(t, g);
out:
    return rc;
}

bool share_leave(struct share_table *t, const uint8_t *full, size_t len, void *member, bool *last)
{
    struct share_group *g;
    uint32_t i;
    bool found = false;

    RM_ASSERT(t != NULL && member != NULL);
    RM_ASSERT(full != NULL);
    if (last != NULL)
        *last = false;
    g = group_find(t, share_key(t->key_seed, full, len), full, len);
    if (g == NULL)
        goto out;
    i = mem_find(g, member);
    if (i == NONE)
        goto out;
    found = true;
    mem_del(g, i);
    if (g->mem_count == 0) {
        bit_put(g, t->shard_id, false);
        if (last != NULL)
            *last = true;
        group_maybe_free(t, g);
    }
out:
    return found;
}

int share_remote(struct share_table *t, const uint8_t *full, size_t len, uint32_t shard, bool add)
{
    struct share_name sn;
    struct share_group *g;
    uint64_t key;
    int rc = 0;

    RM_ASSERT(t != NULL && full != NULL);
    RM_ASSERT(shard < t->shard_count && shard != t->shard_id);
    key = share_key(t->key_seed, full, len);
    g = group_find(t, key, full, len);
    if (g == NULL && add) {
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
    bit_put(g, shard, add);
    if (!add)
        group_maybe_free(t, g);
out:
    return rc;
}

struct match_ctx {
    struct share_table *t;
    share_pick_cb cb;
    void *ctx;
};

static void match_one(void *ctx, void *owner, uint8_t unused)
{
    struct match_ctx *mc = ctx;
    struct share_table *t = mc->t;
    struct share_group *g = owner;
    void *member = NULL;
    uint8_t options = 0;
    uint32_t s, i;
    bool online;

    (void)unused;
    RM_ASSERT(g != NULL && g->shard_bits > 0);
    s = shard_next(t, g, g->shard_cursor, NONE, NONE);
    RM_ASSERT(s != NONE);
    if (s == t->shard_id) {
        i = mem_choose(t, g, NULL, &online);
        RM_ASSERT(i != NONE);
        if (!online && g->shard_bits > 1) {
            /* Nobody here can take it now; another shard may have someone. */
            s = shard_next(t, g, s + 1 == t->shard_count ? 0 : s + 1, t->shard_id, NONE);
            RM_ASSERT(s != NONE);
        } else {
            mem_served(g, i);
            member = g->mem[i].member;
            options = g->mem[i].options;
        }
    }
    g->shard_cursor = s + 1 == t->shard_count ? 0 : s + 1;
    mc->cb(mc->ctx, g->key, s, member, options);
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
                 void *exclude, uint8_t *options)
{
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
    mem_served(g, i);
    member = g->mem[i].member;
    if (options != NULL)
        *options = g->mem[i].options;
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
    s = shard_next(t, g, g->shard_cursor, t->shard_id, exclude_shard);
    if (s == NONE && exclude_shard != UINT32_MAX && exclude_shard != t->shard_id &&
        bit_test(g, exclude_shard))
        s = exclude_shard;
    if (s != NONE) {
        g->shard_cursor = s + 1 == t->shard_count ? 0 : s + 1;
        *shard = s;
    }
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
    return g == NULL ? 0 : g->mem_count;
}
