/*
 * lvlmap.c - a topic level -> child node hash map (see lvlmap.h).
 *
 * Owns only its slot table; the entries are the calling tree's nodes. One
 * shard's thread at a time (whoever owns the enclosing trie or retained
 * store).
 */
#include "core/lvlmap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/rm_assert.h"

/* The first table, when a second entry arrives. */
#define LVLMAP_TABLE_MIN 4u
/* The largest table: indices and counts are 32 bits. */
#define LVLMAP_TABLE_MAX (1u << 31)

static bool key_eq(const struct lvlmap_key *k, uint32_t hash, const uint8_t *lvl, size_t len)
{
    return k->hash == hash && k->len == len &&
           (len == 0 || memcmp(lvlmap_key_bytes(k), lvl, len) == 0);
}

/* Put @k in the first free slot from its home; the table has a free slot. */
static void slot_put(struct lvlmap_key **slots, uint32_t mask, struct lvlmap_key *k)
{
    uint32_t i = k->hash & mask;
    uint32_t n;

    for (n = 0; n <= mask; n++) {
        if (!slots[i]) {
            slots[i] = k;
            return;
        }
        i = (i + 1) & mask;
    }
    RM_ASSERT(!"lvlmap table full");
}

/* The slot holding exactly @k (by pointer), which must be in the table. */
static uint32_t slot_of(struct lvlmap_key *const *slots, uint32_t mask, const struct lvlmap_key *k)
{
    uint32_t i = k->hash & mask;
    uint32_t n;

    for (n = 0; n <= mask; n++) {
        if (slots[i] == k)
            return i;
        RM_ASSERT(slots[i] != NULL);
        i = (i + 1) & mask;
    }
    RM_ASSERT(!"lvlmap key not found");
    return 0;
}

/*
 * Move every entry into a new table of @cap slots (a power of two, at least
 * LVLMAP_TABLE_MIN). Returns 0 or -ENOMEM with @m unchanged.
 */
static int rehash(struct lvlmap *m, uint32_t cap)
{
    struct lvlmap_key **slots;
    uint32_t i;

    RM_ASSERT(cap >= LVLMAP_TABLE_MIN && (cap & (cap - 1)) == 0);
    RM_ASSERT((uint64_t)m->_count * 4 <= (uint64_t)cap * 3);

    slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    if (m->_mask == 0) {
        if (m->_p)
            slot_put(slots, cap - 1, m->_p);
    } else {
        struct lvlmap_key **old = m->_p;

        for (i = 0; i <= m->_mask; i++) {
            if (old[i])
                slot_put(slots, cap - 1, old[i]);
        }
        free(old);
    }
    m->_p = slots;
    m->_mask = cap - 1;
    return 0;
}

uint64_t lvlmap_seed(const void *owner)
{
    uintptr_t addr = (uintptr_t)owner;

    /*
     * Not a secret, but it varies with ASLR and between trees, which is
     * enough that collisions cannot be computed offline and replayed.
     */
    RM_ASSERT(owner != NULL);
    RM_ASSERT(sizeof(addr) <= sizeof(uint64_t));
    return XXH3_64bits_withSeed(&addr, sizeof(addr), 0x9e3779b97f4a7c15ull);
}

uint32_t lvlmap_hash(uint64_t seed, const uint8_t *lvl, size_t len)
{
    /* Any length hashes; only lvlmap_key_init() needs a level to fit 16 bits. */
    RM_ASSERT(lvl != NULL || len == 0);
    return (uint32_t)XXH3_64bits_withSeed(lvl, len, seed);
}

void lvlmap_key_init(struct lvlmap_key *k, uint32_t hash, size_t len, size_t off)
{
    RM_ASSERT(len <= UINT16_MAX);
    RM_ASSERT(off >= sizeof(*k) && off <= UINT16_MAX);
    k->hash = hash;
    k->len = (uint16_t)len;
    k->off = (uint16_t)off;
}

struct lvlmap_key *lvlmap_find(const struct lvlmap *m, uint32_t hash, const uint8_t *lvl,
                               size_t len)
{
    struct lvlmap_key *const *slots;
    uint32_t i, n;

    RM_ASSERT(m != NULL);
    RM_ASSERT(lvl != NULL || len == 0);
    if (m->_mask == 0) {
        struct lvlmap_key *k = m->_p;

        return k && key_eq(k, hash, lvl, len) ? k : NULL;
    }
    slots = m->_p;
    i = hash & m->_mask;
    for (n = 0; n <= m->_mask; n++) {
        struct lvlmap_key *k = slots[i];

        if (!k || key_eq(k, hash, lvl, len))
            return k;
        i = (i + 1) & m->_mask;
    }
    return NULL;
}

int lvlmap_add(struct lvlmap *m, struct lvlmap_key *k)
{
    uint32_t cap = m->_mask + 1;
    int rc;

    RM_ASSERT(k != NULL);
    RM_ASSERT(lvlmap_find(m, k->hash, lvlmap_key_bytes(k), k->len) == NULL);
    if (m->_mask == 0 && !m->_p) {
        RM_ASSERT(m->_count == 0);
        m->_p = k;
        m->_count = 1;
        return 0;
    }
    if (m->_mask == 0) {
        rc = rehash(m, LVLMAP_TABLE_MIN);
        if (rc < 0)
            return rc;
    } else if (((uint64_t)m->_count + 1) * 4 > (uint64_t)cap * 3) {
        if (cap >= LVLMAP_TABLE_MAX)
            return -ENOMEM;
        rc = rehash(m, cap * 2);
        if (rc < 0)
            return rc;
    }
    slot_put(m->_p, m->_mask, k);
    m->_count++;
    return 0;
}

void lvlmap_del(struct lvlmap *m, struct lvlmap_key *k)
{
    struct lvlmap_key **slots;
    uint32_t mask = m->_mask;
    uint32_t i, j, n, cap;

    RM_ASSERT(m->_count > 0);
    RM_ASSERT(k != NULL);
    if (mask == 0) {
        RM_ASSERT(m->_p == k);
        m->_p = NULL;
        m->_count = 0;
        return;
    }
    slots = m->_p;
    i = slot_of(slots, mask, k);

    /*
     * Backward-shift deletion: pull later members of the cluster into the
     * hole unless their home lies cyclically after the hole, so every entry
     * stays reachable from its home without tombstones.
     */
    j = i;
    for (n = 0; n < mask; n++) {
        struct lvlmap_key *e;

        j = (j + 1) & mask;
        e = slots[j];
        if (!e)
            break;
        if (((j - (e->hash & mask)) & mask) >= ((j - i) & mask)) {
            slots[i] = e;
            i = j;
        }
    }
    slots[i] = NULL;
    m->_count--;

    if (m->_count == 1) {
        struct lvlmap_key *last = NULL;

        for (i = 0; i <= mask && !last; i++)
            last = slots[i];
        RM_ASSERT(last != NULL);
        free(slots);
        m->_p = last;
        m->_mask = 0;
        return;
    }
    if ((uint64_t)m->_count * 8 <= (uint64_t)mask + 1 && mask + 1 > LVLMAP_TABLE_MIN) {
        cap = LVLMAP_TABLE_MIN;
        while (cap < m->_count * 2)
            cap *= 2;
        /* Shrinking only gives memory back; on failure keep the big table. */
        (void)rehash(m, cap);
    }
}

struct lvlmap_key *lvlmap_next(const struct lvlmap *m, const struct lvlmap_key *prev)
{
    struct lvlmap_key *const *slots;
    uint32_t i;

    RM_ASSERT(m != NULL);
    if (m->_mask == 0) {
        RM_ASSERT(!prev || prev == m->_p);
        return prev ? NULL : m->_p;
    }
    slots = m->_p;
    i = prev ? slot_of(slots, m->_mask, prev) + 1 : 0;
    for (; i <= m->_mask; i++) {
        if (slots[i])
            return slots[i];
    }
    return NULL;
}

void lvlmap_fini(struct lvlmap *m)
{
    RM_ASSERT(m != NULL);
    RM_ASSERT(m->_count == 0);
    if (m->_mask != 0)
        free(m->_p);
    lvlmap_init(m);
}
