/*
 * lvlmap.h - a topic level -> child node hash map, shared by trie and retained.
 *
 * The map does not own its entries: each entry is a node of the caller's tree
 * whose first member is a struct lvlmap_key, and whose level bytes live in
 * the same allocation, lvlmap_key.off bytes after the key (the node's
 * trailing level[] array). The map holds only pointers to those keys, so a
 * level is stored once, in its node.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones); grows at 3/4 load and shrinks at 1/8. A map with zero or one
 * entry allocates nothing (the one entry is held inline), because most nodes
 * of a topic tree have at most one child. Keys are hashed with XXH3 under a
 * per-tree seed (lvlmap_seed()), so a peer cannot precompute levels that
 * collide. The 32-bit hash is cached in the key: probes compare it before the
 * bytes, and growth never rehashes the bytes.
 *
 * Not thread-safe: owned by the tree (and the shard) that embeds it.
 */
#ifndef RINGMQ_LVLMAP_H
#define RINGMQ_LVLMAP_H

#include <stddef.h>
#include <stdint.h>

/* The first member of every node kept in a lvlmap. */
struct lvlmap_key {
    uint32_t hash; /* lvlmap_hash() of the level, under the tree's seed */
    uint16_t len;  /* level length in bytes */
    uint16_t off;  /* offset from this key to the level bytes */
};

/* Zero-initialised (or lvlmap_init()) means empty. */
struct lvlmap {
    void *_p;        /* mask == 0: the one entry or NULL; else the slot table */
    uint32_t _mask;  /* table slots - 1, or 0 while inline */
    uint32_t _count; /* entries */
};

static inline void lvlmap_init(struct lvlmap *m)
{
    m->_p = NULL;
    m->_mask = 0;
    m->_count = 0;
}

static inline uint32_t lvlmap_count(const struct lvlmap *m)
{
    return m->_count;
}

/* The level bytes of @k (borrowed from its node). */
static inline const uint8_t *lvlmap_key_bytes(const struct lvlmap_key *k)
{
    return (const uint8_t *)k + k->off;
}

/* A hashing seed for one tree, derived from the address of its owner @owner. */
uint64_t lvlmap_seed(const void *owner);

/* Hash of level @lvl (@len bytes) under @seed; store it in lvlmap_key.hash. */
uint32_t lvlmap_hash(uint64_t seed, const uint8_t *lvl, size_t len);

/*
 * Fill @k for level @lvl of @len bytes (at most UINT16_MAX) whose bytes are
 * (or will be) stored @off bytes after @k. Does not copy the bytes.
 */
void lvlmap_key_init(struct lvlmap_key *k, uint32_t hash, size_t len, size_t off);

/* The entry for level @lvl (@len bytes, hash @hash), or NULL. */
struct lvlmap_key *lvlmap_find(const struct lvlmap *m, uint32_t hash, const uint8_t *lvl,
                               size_t len);

/*
 * Add @k, whose level must not be in @m yet; @m borrows @k until
 * lvlmap_del(). Returns 0 or -ENOMEM (then @m is unchanged).
 */
int lvlmap_add(struct lvlmap *m, struct lvlmap_key *k);

/* Remove @k, which must be in @m. Never fails (shrinking is best effort). */
void lvlmap_del(struct lvlmap *m, struct lvlmap_key *k);

/*
 * Iteration: the first entry when @prev is NULL, else the entry after @prev
 * (which must be in @m), or NULL at the end. The order is arbitrary but
 * stable while @m is not modified.
 */
struct lvlmap_key *lvlmap_next(const struct lvlmap *m, const struct lvlmap_key *prev);

/* Free the table. @m must be empty; the entries are always the caller's. */
void lvlmap_fini(struct lvlmap *m);

#endif
