/*
 * pwdb.h - a password database: users and their hashes, read-only once
 * built.
 *
 * config/pwfile builds one from a password file (mosquitto's format) and
 * frees it; core/login looks users up in it. Entries are sorted by name
 * (bytes, then length), so a lookup is a binary search with no allocation
 * and no hashing seed. A database is never changed after it is built: a
 * reload builds a new one and swaps the pointer (see core/login.h), so any
 * thread may read one while it is published.
 */
#ifndef RINGMQ_PWDB_H
#define RINGMQ_PWDB_H

#include <stddef.h>
#include <stdint.h>

#include "core/pwhash.h"

/*
 * Longest user name kept: a session stores its user's name in one byte of
 * length (core/session.h), and certificate CNs are at most 64 characters
 * (X.509's upper bound), so 255 is ample.
 */
#define PWDB_USERNAME_BYTES_MAX 255u

struct pwdb_user {
    const uint8_t *name; /* in pwdb.names; not NUL-terminated */
    uint32_t name_len;   /* 1..PWDB_USERNAME_BYTES_MAX */
    uint32_t line;       /* where the file defined it, for messages */
    struct pwhash hash;
};

struct pwdb {
    struct pwdb_user *users; /* sorted by pwdb_cmp() */
    uint32_t count;
    uint32_t cost_max;       /* the largest pwhash_cost() of any user (at least 1) */
    uint8_t *names;          /* every user's name, back to back */
    char *path;              /* the file it was read from, NUL-terminated */
};

/* Order of names @a and @b (memcmp over the shorter, then the shorter first). */
int pwdb_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* The user named @name (@len bytes) in @db, or NULL. Borrowed from @db. */
const struct pwdb_user *pwdb_find(const struct pwdb *db, const uint8_t *name, size_t len);

#endif
