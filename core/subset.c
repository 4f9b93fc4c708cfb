/*
 * subset.c - a subscriber set (see subset.h).
 *
 * Owns its block and index; borrows the owners. One shard's thread only.
 */
#include "core/subset.h"

#include <errno.h>
#include <stdlib.h>

#include "core/rm_assert.h"

/* The first block, when a second entry arrives. */
#define CAP_MIN 4u

static uint32_t owner_hash(const void *owner)
{
    uint64_t x = (uint64_t)(uintptr_t)owner;

    /* The murmur3 finaliser: pointers differ mostly in their middle bits. */
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* Put _arr[@i] into the index, which has a free slot. */
static void idx_put(struct subset_block *b, uint32_t i)
{
    uint32_t s = owner_hash(b->_arr[i].owner) & b->_idx_mask;
    uint32_t n;

    RM_ASSERT(b->_idx != NULL);
    for (n = 0; n <= b->_idx_mask; n++) {
        if (b->_idx[s] == 0) {
            b->_idx[s] = i + 1;
            return;
        }
        s = (s + 1) & b->_idx_mask;
    }
    RM_ASSERT(!"subset index full");
}

/* The index slot that refers to _arr[@i]. */
static uint32_t idx_slot_of(const struct subset_block *b, uint32_t i)
{
    uint32_t s = owner_hash(b->_arr[i].owner) & b->_idx_mask;
    uint32_t n;

    RM_ASSERT(b->_idx != NULL);
    for (n = 0; n <= b->_idx_mask; n++) {
        if (b->_idx[s] == i + 1)
            return s;
        RM_ASSERT(b->_idx[s] != 0);
        s = (s + 1) & b->_idx_mask;
    }
    RM_ASSERT(!"subset entry not indexed");
    return 0;
}

/* Empty index slot @s by backward shift (see lvlmap_del()). */
static void idx_del(struct subset_block *b, uint32_t s)
{
    uint32_t mask = b->_idx_mask;
    uint32_t j = s, n;

    RM_ASSERT(b->_idx != NULL && s <= mask);
    for (n = 0; n < mask; n++) {
        uint32_t home;

        j = (j + 1) & mask;
        if (b->_idx[j] == 0)
            break;
        home = owner_hash(b->_arr[b->_idx[j] - 1].owner) & mask;
        if (((j - home) & mask) >= ((j - s) & mask)) {
            b->_idx[s] = b->_idx[j];
            s = j;
        }
    }
    b->_idx[s] = 0;
    RM_ASSERT(s <= mask);
}

uint32_t subset_find(const struct subset *s, const void *owner)
{
    const struct subset_block *b = s->_u.block;
    uint32_t i, slot;

    RM_ASSERT(owner != NULL);
    RM_ASSERT(s->_count <= SUBSET_COUNT_MAX);
    if (s->_count == 0)
        return SUBSET_NONE;
    if (s->_count == 1)
        return s->_u.one.owner == owner ? 0 : SUBSET_NONE;
    RM_ASSERT(b->_cap >= s->_count);
    if (!b->_idx) {
        for (i = 0; i < s->_count; i++) {
            if (b->_arr[i].owner == owner)
                return i;
        }
        return SUBSET_NONE;
    }
    slot = owner_hash(owner) & b->_idx_mask;
    for (i = 0; i <= b->_idx_mask; i++) {
        uint32_t v = b->_idx[slot];

        if (v == 0)
            return SUBSET_NONE;
        if (b->_arr[v - 1].owner == owner)
            return v - 1;
        slot = (slot + 1) & b->_idx_mask;
    }
    return SUBSET_NONE;
}

/*
 * Move @s's entries (inline or in its block) into a new block of @cap, with
 * an index when @cap passes SUBSET_SCAN_MAX. Returns 0, the old block freed;
 * or -ENOMEM with @s unchanged.
 */
static int block_resize(struct subset *s, uint32_t cap)
{
    const struct subset_entry *e = subset_entries(s);
    struct subset_block *b;
    uint32_t i;
    int rc = -ENOMEM;

    RM_ASSERT(cap >= s->_count && cap >= CAP_MIN);
    RM_ASSERT((cap & (cap - 1)) == 0 && cap <= SUBSET_COUNT_MAX);

    b = malloc(sizeof(*b) + (size_t)cap * sizeof(b->_arr[0]));
    if (!b)
        goto out;
    b->_cap = cap;
    b->_idx_mask = 0;
    b->_idx = NULL;
    if (cap > SUBSET_SCAN_MAX) {
        b->_idx = calloc((size_t)cap * 2, sizeof(b->_idx[0]));
        if (!b->_idx)
            goto out_free_block;
        b->_idx_mask = cap * 2 - 1;
    }
    for (i = 0; i < s->_count; i++) {
        b->_arr[i] = e[i];
        if (b->_idx)
            idx_put(b, i);
    }
    if (s->_count >= 2) {
        free(s->_u.block->_idx);
        free(s->_u.block);
    }
    s->_u.block = b;
    rc = 0;
    goto out;

out_free_block:
    free(b);
out:
    return rc;
}

int subset_add(struct subset *s, void *owner, uint8_t options, uint32_t sub_id)
{
    struct subset_block *b;
    struct subset_entry *e;
    uint32_t i;
    int rc;

    RM_ASSERT(owner != NULL);
    RM_ASSERT(s->_count <= SUBSET_COUNT_MAX);
    i = subset_find(s, owner);
    if (i != SUBSET_NONE) {
        /* A subscription again replaces its options, keeping its turn. */
        e = s->_count == 1 ? &s->_u.one : &s->_u.block->_arr[i];
        e->options = options;
        e->sub_id = sub_id;
        rc = 0;
        goto out;
    }
    if (s->_count == 0) {
        s->_u.one = (struct subset_entry){.owner = owner, .sub_id = sub_id, .options = options};
        goto out_added;
    }
    b = s->_count == 1 ? NULL : s->_u.block;
    if (!b || b->_cap == s->_count) {
        rc = -ENOMEM;
        if (b && b->_cap == SUBSET_COUNT_MAX)
            goto out;
        if (block_resize(s, b ? b->_cap * 2 : CAP_MIN) < 0)
            goto out;
        b = s->_u.block;
    }
    b->_arr[s->_count] =
        (struct subset_entry){.owner = owner, .sub_id = sub_id, .options = options};
    if (b->_idx)
        idx_put(b, s->_count);
out_added:
    s->_count++;
    rc = 1;
out:
    return rc;
}

bool subset_remove(struct subset *s, const void *owner, uint32_t *cursor)
{
    struct subset_block *b = s->_u.block;
    uint32_t i, last;
    bool found = false;

    RM_ASSERT(owner != NULL);
    RM_ASSERT(!cursor || *cursor == 0 || *cursor < s->_count);
    i = subset_find(s, owner);
    if (i == SUBSET_NONE)
        goto out;
    found = true;
    last = s->_count - 1;
    if (s->_count == 1) {
        s->_u.one = (struct subset_entry){0};
        s->_count = 0;
        goto out_cursor;
    }
    RM_ASSERT(b != NULL && b->_cap >= s->_count);
    if (b->_idx) {
        idx_del(b, idx_slot_of(b, i));
        if (i != last)
            b->_idx[idx_slot_of(b, last)] = i + 1;
    }
    b->_arr[i] = b->_arr[last];
    s->_count--;

    if (s->_count == 1) {
        struct subset_entry e = b->_arr[0];

        free(b->_idx);
        free(b);
        s->_u.one = e;
    } else if (s->_count * 4 <= b->_cap && b->_cap > CAP_MIN) {
        /* Give memory back after mass unsubscribes; best effort. */
        (void)block_resize(s, b->_cap / 2);
    }
out_cursor:
    /* The moved entry keeps its turn: it now sits where the cursor may point. */
    if (cursor && *cursor == last)
        *cursor = i;
    if (cursor && *cursor >= s->_count)
        *cursor = 0;
out:
    return found;
}

void subset_fini(struct subset *s)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->_count <= SUBSET_COUNT_MAX);
    if (s->_count >= 2) {
        free(s->_u.block->_idx);
        free(s->_u.block);
    }
    *s = (struct subset){0};
}

uint32_t subset_capacity(const struct subset *s)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(s->_count <= SUBSET_COUNT_MAX);
    return s->_count >= 2 ? s->_u.block->_cap : 0;
}
