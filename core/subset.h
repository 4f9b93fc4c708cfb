/*
 * subset.h - a subscriber set: the (owner, options, sub_id) entries of one
 * trie node or of one shared-subscription group.
 *
 * An owner is an opaque, non-NULL pointer compared by identity and never
 * dereferenced (a struct session, a struct share_group, a shard marker).
 * Each owner is in a set at most once. The set is laid out for the publish
 * path: subset_entries() is a plain array, so matching reads one pointer per
 * set and then indexes, with nothing allocated.
 *
 *  - zero or one entry: held inline, nothing allocated (the common case of
 *    a device's own topic);
 *  - two or more: one block of entries that doubles as it fills, gains a
 *    hash index by owner once it passes SUBSET_SCAN_MAX entries (so 100k
 *    owners still add and remove in O(1)), is halved when the set falls to a
 *    quarter of it, and is freed when one entry is left.
 *
 * Removal moves the last entry into the hole, so positions are stable
 * except for that one entry; a caller's rotation cursor is carried along by
 * subset_remove().
 *
 * Owned by whoever embeds it (one shard); not thread-safe.
 */
#ifndef RINGMQ_SUBSET_H
#define RINGMQ_SUBSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Up to this many entries, an owner is found by scanning (no index). */
#define SUBSET_SCAN_MAX 8u
/* Entries one set may hold: positions are 32 bits, the index twice that. */
#define SUBSET_COUNT_MAX (1u << 30)
/* "No position", from subset_find(). */
#define SUBSET_NONE UINT32_MAX

struct subset_entry {
    void *owner;
    /*
     * The v5 Subscription Identifier of the owner's subscription (0: none),
     * reported by the match that finds it, so a delivery never looks the
     * identifiers up again. Opaque here. It sits in what was padding.
     */
    uint32_t sub_id;
    uint8_t options;
};

_Static_assert(sizeof(void *) != 8 || sizeof(struct subset_entry) == 16,
               "a subscriber entry stays 16 bytes: sub_id fills the padding after owner");

/* Two or more entries; private to subset.c but for subset_entries(). */
struct subset_block {
    uint32_t _cap;      /* entries in _arr (a power of two) */
    uint32_t _idx_mask; /* index slots - 1; 0 while _cap <= SUBSET_SCAN_MAX (no index) */
    uint32_t *_idx;     /* open addressing by owner: _arr position + 1, 0 = free */
    struct subset_entry _arr[];
};

/* Zero-initialised is empty. */
struct subset {
    union {
        struct subset_entry one;    /* _count == 1 */
        struct subset_block *block; /* _count >= 2 */
    } _u;
    uint32_t _count;
};

/*
 * Entries held. This and subset_entries() are the publish path's accessors:
 * like lvlmap_count() they assert nothing; subset.c checks _count on every
 * change.
 */
static inline uint32_t subset_count(const struct subset *s)
{
    return s->_count;
}

/*
 * The entries as an array of subset_count() elements, in rotation order.
 * Borrowed: valid until the next subset_add() or subset_remove(). The
 * options may be read; owners must not be changed through it.
 */
static inline const struct subset_entry *subset_entries(const struct subset *s)
{
    return s->_count >= 2 ? s->_u.block->_arr : &s->_u.one;
}

/* Free @s's block, if any; @s is empty afterwards. Owners are borrowed. */
void subset_fini(struct subset *s);

/* Position of @owner in subset_entries(), or SUBSET_NONE. */
uint32_t subset_find(const struct subset *s, const void *owner);

/*
 * Add (@owner, @options, @sub_id), or set @options and @sub_id if @owner is
 * already in @s (its position is kept) [MQTT-3.8.4-3]. Returns 1 if added
 * (at the end of the rotation), 0 if updated, -ENOMEM (nothing changed;
 * also past SUBSET_COUNT_MAX). @owner is borrowed for as long as it is in @s.
 */
int subset_add(struct subset *s, void *owner, uint8_t options, uint32_t sub_id);

/*
 * Remove @owner. Returns true if it was in @s. The last entry takes its
 * position. *@cursor (may be NULL), a position below subset_count() or 0,
 * keeps designating the same entry when that entry is the one moved, and
 * becomes 0 when it falls off the end. Never fails: shrinking the block is
 * best effort.
 */
bool subset_remove(struct subset *s, const void *owner, uint32_t *cursor);

/* Entries the block holds; 0 while the set is inline (at most one entry). */
uint32_t subset_capacity(const struct subset *s);

#endif
