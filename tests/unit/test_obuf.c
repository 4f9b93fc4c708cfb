/*
 * test_obuf.c - unit tests for core/obuf (the per-connection output buffer).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <string.h>

#include "core/obuf.h"

static void append(struct obuf *b, const char *s, size_t bytes_max)
{
    size_t n = strlen(s);
    uint8_t *p = obuf_reserve(b, n, bytes_max);

    cr_assert_not_null(p);
    memcpy(p, s, n);
    obuf_commit(b, n);
}

Test(obuf, empty_buffer_holds_no_memory)
{
    struct obuf b = {0};

    cr_assert_null(b.data);
    obuf_free(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    cr_assert_eq(b.cap, 0);
}

Test(obuf, appends_keep_order_across_growth)
{
    struct obuf b = {0};
    char chunk[100];
    unsigned i;

    for (i = 0; i < 1000; i++) {
        memset(chunk, 'a' + (char)(i % 26), sizeof(chunk) - 1);
        chunk[sizeof(chunk) - 1] = '\0';
        append(&b, chunk, 1 << 20);
    }
    cr_assert_eq(b.len, 1000 * 99);
    cr_assert_geq(b.cap, b.len);
    for (i = 0; i < 1000; i++) {
        cr_assert_eq(b.data[i * 99], 'a' + i % 26);
        cr_assert_eq(b.data[i * 99 + 98], 'a' + i % 26);
    }
    obuf_free(&b);
    cr_assert_null(b.data);
}

Test(obuf, reserve_over_the_limit_fails_and_leaves_the_buffer_unchanged)
{
    struct obuf b = {0};
    uint8_t *data;

    append(&b, "hello", 10);
    data = b.data;
    cr_assert_null(obuf_reserve(&b, 6, 10));
    cr_assert_eq(b.len, 5);
    cr_assert_eq(b.data, data);
    cr_assert_eq(memcmp(b.data, "hello", 5), 0);
    /* Exactly up to the limit is fine, and capacity never passes it. */
    cr_assert_not_null(obuf_reserve(&b, 5, 10));
    cr_assert_leq(b.cap, 10);
    obuf_free(&b);
}

Test(obuf, reserve_without_commit_publishes_nothing)
{
    struct obuf b = {0};

    cr_assert_not_null(obuf_reserve(&b, 100, 1000));
    cr_assert_eq(b.len, 0);
    obuf_commit(&b, 0);
    cr_assert_eq(b.len, 0);
    obuf_free(&b);
}

Test(obuf, huge_reserve_is_refused_without_overflow)
{
    struct obuf b = {0};

    append(&b, "x", 100);
    cr_assert_null(obuf_reserve(&b, SIZE_MAX, SIZE_MAX));
    cr_assert_null(obuf_reserve(&b, UINT32_MAX, SIZE_MAX));
    cr_assert_eq(b.len, 1);
    obuf_free(&b);
}
