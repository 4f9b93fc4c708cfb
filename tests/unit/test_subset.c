/*
 * test_subset.c - the subscriber set shared by the trie and shared
 * subscriptions: add without duplicates, update in place, removal that
 * fills the hole with the last entry and carries a rotation cursor, the
 * block halving at a quarter full and going away when one entry is left,
 * and the hash index past SUBSET_SCAN_MAX.
 *
 * Owners are opaque to the set, so the tests use fake, never-dereferenced
 * pointers.
 */
#include <criterion/criterion.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/subset.h"

/* Owner number @i (from 0) as a fake, aligned pointer. */
static void *own(size_t i)
{
    return (void *)(uintptr_t)(0x10000 + i * 16);
}

/* Present (and exact) in ASan builds, where mallinfo2() reports nothing. */
size_t __sanitizer_get_current_allocated_bytes(void) __attribute__((weak));

/* Bytes allocated now, mmap()ed blocks included, give or take malloc's cache. */
static size_t heap_in_use(void)
{
    struct mallinfo2 mi;

    if (__sanitizer_get_current_allocated_bytes)
        return __sanitizer_get_current_allocated_bytes();
    mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/*
 * Every owner in @s is found at its own position; so none is there twice
 * (a duplicate would be found at the other's position).
 */
static void check_consistent(const struct subset *s)
{
    const struct subset_entry *e = subset_entries(s);
    uint32_t i;

    for (i = 0; i < subset_count(s); i++)
        cr_assert_eq(subset_find(s, e[i].owner), i, "entry %u", i);
}

Test(subset, zero_initialised_is_empty)
{
    struct subset s = {0};

    cr_assert_eq(subset_count(&s), 0);
    cr_assert_eq(subset_capacity(&s), 0);
    cr_assert_eq(subset_find(&s, own(1)), SUBSET_NONE);
    cr_assert_not(subset_remove(&s, own(1), NULL));
    subset_fini(&s);
}

Test(subset, adding_an_owner_again_updates_its_options_and_identifier_in_place)
{
    struct subset s = {0};
    size_t n, i;

    /* The identifier rides in the entry's padding: no byte more per subscription. */
    cr_assert_eq(sizeof(struct subset_entry), 2 * sizeof(void *));
    /* Inline (one), a block without index, a block with index. */
    for (n = 1; n <= 3 * SUBSET_SCAN_MAX; n = n * 2 + 1) {
        for (i = 0; i < n; i++)
            cr_assert_eq(subset_add(&s, own(i), (uint8_t)i, (uint32_t)i + 100), 1);
        cr_assert_eq(subset_entries(&s)[n - 1].sub_id, n - 1 + 100);
        cr_assert_eq(subset_add(&s, own(0), 7, 0), 0, "n=%zu", n);
        cr_assert_eq(subset_add(&s, own(n - 1), 9, 268435455), 0, "n=%zu", n);
        cr_assert_eq(subset_count(&s), n, "no duplicate was added");
        cr_assert_eq(subset_entries(&s)[0].owner, own(0), "position kept");
        cr_assert_eq(subset_entries(&s)[n - 1].owner, own(n - 1), "position kept");
        cr_assert_eq(subset_entries(&s)[n - 1].options, 9);
        cr_assert_eq(subset_entries(&s)[n - 1].sub_id, 268435455);
        if (n > 1) {
            cr_assert_eq(subset_entries(&s)[0].options, 7);
            cr_assert_eq(subset_entries(&s)[0].sub_id, 0);
        }
        check_consistent(&s);
        subset_fini(&s);
        cr_assert_eq(subset_count(&s), 0);
    }
}

Test(subset, entries_keep_insertion_order_until_a_removal)
{
    struct subset s = {0};
    size_t i;

    for (i = 0; i < 20; i++) {
        cr_assert_eq(subset_add(&s, own(i), (uint8_t)(i + 1), 0), 1);
        cr_assert_eq(subset_count(&s), i + 1);
    }
    for (i = 0; i < 20; i++) {
        cr_assert_eq(subset_entries(&s)[i].owner, own(i));
        cr_assert_eq(subset_entries(&s)[i].options, i + 1);
    }
    subset_fini(&s);
}

Test(subset, removal_moves_the_last_entry_into_the_hole)
{
    struct subset s = {0};
    size_t i;

    for (i = 0; i < 6; i++)
        subset_add(&s, own(i), 0, 0);
    cr_assert(subset_remove(&s, own(1), NULL));
    cr_assert_not(subset_remove(&s, own(1), NULL), "already gone");
    cr_assert_not(subset_remove(&s, own(99), NULL), "never there");
    cr_assert_eq(subset_count(&s), 5);
    cr_assert_eq(subset_entries(&s)[0].owner, own(0));
    cr_assert_eq(subset_entries(&s)[1].owner, own(5));
    cr_assert_eq(subset_entries(&s)[2].owner, own(2));
    cr_assert_eq(subset_entries(&s)[4].owner, own(4));
    cr_assert_eq(subset_find(&s, own(1)), SUBSET_NONE);
    check_consistent(&s);
    subset_fini(&s);
}

Test(subset, the_cursor_follows_the_moved_entry_and_wraps_off_the_end)
{
    struct subset s = {0};
    uint32_t cursor;
    size_t i;

    for (i = 0; i < 5; i++)
        subset_add(&s, own(i), 0, 0);

    /* The cursor is on the last entry, which moves into the hole. */
    cursor = 4;
    cr_assert(subset_remove(&s, own(1), &cursor));
    cr_assert_eq(cursor, 1);
    cr_assert_eq(subset_entries(&s)[cursor].owner, own(4), "same entry's turn");

    /* An entry that does not move leaves the cursor alone. */
    cursor = 2;
    cr_assert(subset_remove(&s, own(0), &cursor));
    cr_assert_eq(cursor, 2);
    cr_assert_eq(subset_entries(&s)[cursor].owner, own(2));

    /* Not a member: nothing moves. */
    cursor = 1;
    cr_assert_not(subset_remove(&s, own(0), &cursor));
    cr_assert_eq(cursor, 1);

    /* The cursor's own entry was the last: the turn goes round to 0. */
    cr_assert_eq(subset_count(&s), 3);
    cursor = 2;
    cr_assert(subset_remove(&s, own(2), &cursor));
    cr_assert_eq(cursor, 0);

    /* Down to nothing: the cursor is 0. */
    cursor = 1;
    cr_assert(subset_remove(&s, subset_entries(&s)[1].owner, &cursor));
    cr_assert_eq(cursor, 0);
    cr_assert(subset_remove(&s, subset_entries(&s)[0].owner, &cursor));
    cr_assert_eq(cursor, 0);
    cr_assert_eq(subset_count(&s), 0);
    subset_fini(&s);
}

Test(subset, the_block_doubles_and_halves_at_a_quarter_full)
{
    struct subset s = {0};
    size_t i;

    cr_assert_eq(subset_add(&s, own(0), 0, 0), 1);
    cr_assert_eq(subset_capacity(&s), 0, "one entry is held inline");
    for (i = 1; i < 64; i++)
        subset_add(&s, own(i), 0, 0);
    cr_assert_eq(subset_capacity(&s), 64);

    /* Down to 17 of 64: above a quarter, the block stays. */
    for (i = 63; i >= 17; i--)
        cr_assert(subset_remove(&s, own(i), NULL));
    cr_assert_eq(subset_count(&s), 17);
    cr_assert_eq(subset_capacity(&s), 64);
    /* 16 of 64 is a quarter: halved. */
    cr_assert(subset_remove(&s, own(16), NULL));
    cr_assert_eq(subset_capacity(&s), 32);
    check_consistent(&s);
    /* And on down: 8 of 32, 4 of 16 (the index goes), 2 of 8. */
    for (i = 15; i >= 8; i--)
        cr_assert(subset_remove(&s, own(i), NULL));
    cr_assert_eq(subset_capacity(&s), 16);
    for (i = 7; i >= 4; i--)
        cr_assert(subset_remove(&s, own(i), NULL));
    cr_assert_eq(subset_capacity(&s), 8);
    check_consistent(&s);
    for (i = 3; i >= 2; i--)
        cr_assert(subset_remove(&s, own(i), NULL));
    cr_assert_eq(subset_capacity(&s), 4);
    cr_assert(subset_remove(&s, own(1), NULL));
    cr_assert_eq(subset_capacity(&s), 0, "one entry left goes back inline");
    cr_assert_eq(subset_entries(&s)[0].owner, own(0));
    cr_assert_eq(subset_find(&s, own(0)), 0);
    subset_fini(&s);
}

Test(subset, emptying_a_large_set_frees_every_byte)
{
    enum { N = 100000 };
    struct subset s = {0};
    size_t before, i;

    before = heap_in_use();
    for (i = 0; i < N; i++)
        cr_assert_eq(subset_add(&s, own(i), 0, 0), 1);
    cr_assert_gt(heap_in_use(), before + N * sizeof(struct subset_entry));
    for (i = 0; i < N; i++) {
        size_t j = (i * 7919) % N; /* a different order from the adds */

        cr_assert(subset_remove(&s, own(j), NULL), "owner %zu", j);
        if (i % 9973 == 0)
            check_consistent(&s);
    }
    cr_assert_eq(subset_count(&s), 0);
    cr_assert_eq(subset_capacity(&s), 0);
    cr_assert_leq(heap_in_use(), before + 64 * 1024, "%zu bytes left", heap_in_use() - before);
    subset_fini(&s);
}

Test(subset, the_index_finds_every_owner_through_mixed_adds_and_removes)
{
    enum { N = 2000 };
    static bool in[N];
    struct subset s = {0};
    uint64_t x = 42;
    size_t step, i, live = 0;

    for (step = 0; step < 50000; step++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        i = (size_t)(x >> 33) % N;
        if (in[i]) {
            cr_assert(subset_remove(&s, own(i), NULL));
            live--;
        } else {
            cr_assert_eq(subset_add(&s, own(i), (uint8_t)i, 0), 1);
            live++;
        }
        in[i] = !in[i];
        cr_assert_eq(subset_count(&s), live);
    }
    for (i = 0; i < N; i++) {
        uint32_t at = subset_find(&s, own(i));

        cr_assert_eq(at != SUBSET_NONE, in[i], "owner %zu", i);
        if (in[i])
            cr_assert_eq(subset_entries(&s)[at].options, (uint8_t)i);
    }
    check_consistent(&s);
    subset_fini(&s);
    cr_assert_eq(subset_count(&s), 0);
}
