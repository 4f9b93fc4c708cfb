/*
 * pwhash.c - mosquitto's password hashes over wolfCrypt (see pwhash.h).
 */
#include "core/pwhash.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "core/rm_assert.h"

/* Longest base64 field read: the encoding of PWHASH_SALT_BYTES_MAX or PWHASH_BYTES. */
#define B64_FIELD_MAX (((PWHASH_SALT_BYTES_MAX + 2) / 3) * 4)
/* Most digits in an iteration count (PWHASH_ITERATIONS_MAX has 7). */
#define ITER_DIGITS_MAX 7

bool pwhash_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    volatile uint8_t diff = 0;

    RM_ASSERT(a != NULL && b != NULL);
    for (size_t i = 0; i < len; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

/*
 * Decode the base64 field @s[0..@len) into @out (@cap bytes). Returns the
 * byte count, or -1 when it is not base64 or does not fit.
 */
static int b64_field(const char *s, size_t len, uint8_t *out, size_t cap)
{
    uint8_t tmp[B64_FIELD_MAX];
    word32 n = sizeof(tmp);

    RM_ASSERT(cap <= sizeof(tmp));
    if (len == 0 || len > B64_FIELD_MAX || len % 4 != 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || (c == '=' && i + 2 >= len);

        if (!ok) {
            return -1;
        }
    }
    if (Base64_Decode((const byte *)s, (word32)len, tmp, &n) != 0 || n == 0 || n > cap) {
        return -1;
    }
    memcpy(out, tmp, n);
    return (int)n;
}

/* The next '$'-separated field of @s[*@pos..@len): its start and length. */
static const char *next_field(const char *s, size_t len, size_t *pos, size_t *flen)
{
    const char *start = s + *pos;
    const char *end = memchr(start, '$', len - *pos);
    size_t n = end != NULL ? (size_t)(end - start) : len - *pos;

    *flen = n;
    *pos += n + (end != NULL ? 1 : 0);
    return start;
}

int pwhash_parse(const char *s, size_t len, struct pwhash *out, const char **why)
{
    struct pwhash h = {0};
    const char *f;
    size_t flen;
    size_t pos = 3;
    int n;

    RM_ASSERT(s != NULL && out != NULL && why != NULL);
    if (len < 3 || s[0] != '$' || (s[1] != '6' && s[1] != '7') || s[2] != '$') {
        *why = "unknown hash type (expected $6$ or $7$ as mosquitto_passwd writes)";
        return -1;
    }
    h.kind = s[1] == '7' ? PWHASH_PBKDF2_SHA512 : PWHASH_SHA512;
    h.iterations = 1;
    if (h.kind == PWHASH_PBKDF2_SHA512) {
        uint32_t v = 0;

        f = next_field(s, len, &pos, &flen);
        if (flen == 0 || flen > ITER_DIGITS_MAX || pos >= len) {
            *why = "bad iteration count in $7$ hash";
            return -1;
        }
        for (size_t i = 0; i < flen; i++) {
            if (f[i] < '0' || f[i] > '9') {
                *why = "bad iteration count in $7$ hash";
                return -1;
            }
            v = v * 10 + (uint32_t)(f[i] - '0');
        }
        if (v == 0 || v > PWHASH_ITERATIONS_MAX) {
            *why = "iteration count out of range (1..1000000)";
            return -1;
        }
        h.iterations = v;
    }
    f = next_field(s, len, &pos, &flen);
    if (pos >= len) {
        *why = "missing '$' between salt and hash";
        return -1;
    }
    n = b64_field(f, flen, h.salt, sizeof(h.salt));
    if (n < 0) {
        *why = "salt is not base64 (or longer than 64 bytes)";
        return -1;
    }
    h.salt_len = (uint8_t)n;
    f = next_field(s, len, &pos, &flen);
    if (pos != len || memchr(f, '$', flen) != NULL) {
        *why = "extra '$' field after the hash";
        return -1;
    }
    n = b64_field(f, flen, h.hash, sizeof(h.hash));
    if (n != (int)PWHASH_BYTES) {
        *why = "hash is not the base64 of 64 bytes";
        return -1;
    }
    RM_ASSERT(h.salt_len >= 1 && h.iterations >= 1);
    *out = h;
    return 0;
}

/* @h's digest of @pw into @dk; false only if wolfCrypt fails. */
static bool digest(const struct pwhash *h, const uint8_t *pw, size_t len,
                   uint8_t dk[PWHASH_BYTES])
{
    wc_Sha512 sha;
    bool ok;

    RM_ASSERT(h->salt_len >= 1 && h->salt_len <= PWHASH_SALT_BYTES_MAX);
    RM_ASSERT(len <= INT32_MAX);
    if (h->kind == PWHASH_PBKDF2_SHA512) {
        return wc_PBKDF2(dk, pw, (int)len, h->salt, h->salt_len, (int)h->iterations,
                         (int)PWHASH_BYTES, WC_SHA512) == 0;
    }
    RM_ASSERT(h->kind == PWHASH_SHA512);
    if (wc_InitSha512(&sha) != 0) {
        return false;
    }
    ok = wc_Sha512Update(&sha, pw, (word32)len) == 0 &&
         wc_Sha512Update(&sha, h->salt, h->salt_len) == 0 && wc_Sha512Final(&sha, dk) == 0;
    wc_Sha512Free(&sha);
    return ok;
}

bool pwhash_verify(const struct pwhash *h, const uint8_t *pw, size_t len)
{
    uint8_t dk[PWHASH_BYTES];
    bool ok;

    RM_ASSERT(h != NULL);
    RM_ASSERT(pw != NULL || len == 0);
    ok = digest(h, pw != NULL ? pw : (const uint8_t *)"", len, dk);
    /* Compare whatever happened: the time does not tell a failure apart. */
    ok = pwhash_equal(dk, h->hash, sizeof(dk)) && ok;
    memset(dk, 0, sizeof(dk));
    return ok;
}

int pwhash_make(struct pwhash *out, const uint8_t *pw, size_t len, const uint8_t *salt,
                size_t salt_len, uint32_t iterations)
{
    struct pwhash h = {.kind = PWHASH_PBKDF2_SHA512};

    RM_ASSERT(out != NULL && salt != NULL);
    RM_ASSERT(pw != NULL || len == 0);
    if (salt_len == 0 || salt_len > PWHASH_SALT_BYTES_MAX || iterations == 0 ||
        iterations > PWHASH_ITERATIONS_MAX || len > INT32_MAX) {
        return -EINVAL;
    }
    h.salt_len = (uint8_t)salt_len;
    h.iterations = iterations;
    memcpy(h.salt, salt, salt_len);
    if (!digest(&h, pw != NULL ? pw : (const uint8_t *)"", len, h.hash)) {
        return -EINVAL;
    }
    *out = h;
    return 0;
}

int pwhash_format(const struct pwhash *h, char *buf, size_t cap)
{
    char salt[B64_FIELD_MAX + 1];
    char hash[B64_FIELD_MAX + 1];
    word32 sn = sizeof(salt);
    word32 hn = sizeof(hash);
    int n;

    RM_ASSERT(h != NULL && buf != NULL);
    RM_ASSERT(h->salt_len >= 1 && h->salt_len <= PWHASH_SALT_BYTES_MAX);
    if (Base64_Encode_NoNl(h->salt, h->salt_len, (byte *)salt, &sn) != 0 ||
        Base64_Encode_NoNl(h->hash, PWHASH_BYTES, (byte *)hash, &hn) != 0) {
        return -ENOSPC;
    }
    salt[sn] = '\0';
    hash[hn] = '\0';
    if (h->kind == PWHASH_PBKDF2_SHA512) {
        n = snprintf(buf, cap, "$7$%u$%s$%s", (unsigned)h->iterations, salt, hash);
    } else {
        n = snprintf(buf, cap, "$6$%s$%s", salt, hash);
    }
    return n >= 0 && (size_t)n < cap ? n : -ENOSPC;
}
