/*
 * pwdb.c - user lookup in a read-only password database (see pwdb.h).
 */
#include "core/pwdb.h"

#include <string.h>

#include "core/rm_assert.h"

int pwdb_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c;

    RM_ASSERT(a != NULL || alen == 0);
    RM_ASSERT(b != NULL || blen == 0);
    c = n > 0 ? memcmp(a, b, n) : 0;
    if (c == 0 && alen != blen) {
        c = alen < blen ? -1 : 1;
    }
    return c;
}

const struct pwdb_user *pwdb_find(const struct pwdb *db, const uint8_t *name, size_t len)
{
    uint32_t lo = 0;
    uint32_t hi;

    RM_ASSERT(db != NULL);
    RM_ASSERT(name != NULL || len == 0);
    hi = db->count;
    /* Halves [lo, hi) each pass: at most 32 passes. */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        const struct pwdb_user *u = &db->users[mid];
        int c = pwdb_cmp(name, len, u->name, u->name_len);

        if (c == 0) {
            return u;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}
