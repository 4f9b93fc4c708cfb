/*
 * pwhash.h - password hashes in mosquitto's password-file format, checked
 * and made with wolfCrypt.
 *
 * Two forms, both as Debian's mosquitto_passwd (2.0.11) writes them:
 *   $7$ITERATIONS$SALT$HASH  PBKDF2-HMAC-SHA512, 64-byte key (the default,
 *                            101 iterations, 12-byte salt)
 *   $6$SALT$HASH             SHA-512 of the password followed by the salt
 * SALT and HASH are standard base64 with padding. The one place that
 * parses, checks and makes them: the broker's password database
 * (config/pwfile, core/login) and tools/ringmq-passwd call only this.
 *
 * Pure computation (wolfCrypt's PBKDF2, SHA-512 and base64: no syscalls,
 * no state), so core/ may call it; any thread.
 */
#ifndef RINGMQ_PWHASH_H
#define RINGMQ_PWHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PWHASH_BYTES 64u            /* SHA-512 output, and the PBKDF2 key length */
#define PWHASH_SALT_BYTES_MAX 64u   /* longest salt accepted in a file */
#define PWHASH_SALT_BYTES 12u       /* what mosquitto_passwd writes, and so do we */
#define PWHASH_ITERATIONS 101u      /* mosquitto_passwd's default for $7$ */
/*
 * Most PBKDF2 iterations accepted in a file: one check costs about 1 us per
 * iteration here, so a hash can never stall a shard for more than about a
 * second even alone (core/login also spreads checks over loop iterations).
 */
#define PWHASH_ITERATIONS_MAX 1000000u
/* Longest text form: "$7$" 7 digits "$" base64(64) "$" base64(64), NUL. */
#define PWHASH_TEXT_MAX 200u

enum pwhash_kind {
    PWHASH_SHA512 = 6,        /* $6$ */
    PWHASH_PBKDF2_SHA512 = 7, /* $7$ */
};

/* One parsed hash. */
struct pwhash {
    uint8_t kind;        /* enum pwhash_kind */
    uint8_t salt_len;    /* 1..PWHASH_SALT_BYTES_MAX */
    uint32_t iterations; /* $7$: 1..PWHASH_ITERATIONS_MAX; $6$: 1 */
    uint8_t salt[PWHASH_SALT_BYTES_MAX];
    uint8_t hash[PWHASH_BYTES];
};

/*
 * Parse the hash text @s (@len bytes, not NUL-terminated: what follows
 * "user:" on a password-file line). Returns 0, or -1 with *@why set to a
 * static phrase saying what is wrong ("unknown hash type (expected $6$ or
 * $7$)", ...). @out is fully written on success only.
 */
int pwhash_parse(const char *s, size_t len, struct pwhash *out, const char **why);

/*
 * True when password @pw (@len bytes) matches @h. Compares in constant
 * time. Costs h->iterations PBKDF2 rounds (see pwhash_cost()).
 */
bool pwhash_verify(const struct pwhash *h, const uint8_t *pw, size_t len);

/* What checking @h costs, in PBKDF2 iterations (1 for $6$). */
static inline uint32_t pwhash_cost(const struct pwhash *h)
{
    return h->kind == PWHASH_PBKDF2_SHA512 ? h->iterations : 1u;
}

/*
 * Make the $7$ hash of password @pw (@len bytes) with @salt (@salt_len
 * bytes, 1..PWHASH_SALT_BYTES_MAX, from a random source: the caller's)
 * and @iterations (1..PWHASH_ITERATIONS_MAX). Returns 0 or -EINVAL.
 */
int pwhash_make(struct pwhash *out, const uint8_t *pw, size_t len, const uint8_t *salt,
                size_t salt_len, uint32_t iterations);

/*
 * Write @h's text form ("$7$101$SALT$HASH") NUL-terminated into @buf of
 * @cap bytes (PWHASH_TEXT_MAX is always enough). Returns its length, or
 * -ENOSPC.
 */
int pwhash_format(const struct pwhash *h, char *buf, size_t cap);

/* Constant-time equality of @a and @b (@len bytes each). */
bool pwhash_equal(const uint8_t *a, const uint8_t *b, size_t len);

#endif
