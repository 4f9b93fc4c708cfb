/*
 * tls_nap.c - a sleeping region's encoding (see tls_nap.h).
 *
 * Layout: one byte, the count of rebuilt cipher states; per state its byte
 * offset (4 bytes), its key length (1) and key; then runs: skip words that
 * equal the expected region, then count words that follow literally (skip
 * and count in one byte each below 128, else two).
 *
 * The expected word i: the rebuilt state covering it; else the
 * reference's word i, moved by (base - ref) when it points into the
 * reference; else zero.
 */
#include "tls/tls_nap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "core/rm_assert.h"

#define AES_WORDS (sizeof(Aes) / 8)

/* A region's (or a cipher state's) words, read whatever they were stored as. */
typedef uint64_t __attribute__((may_alias)) word64;
#define KEY_MAX 32u

_Static_assert(sizeof(Aes) % 8 == 0, "a cipher state is whole words");

/* A run's skip and count: 7 bits a byte, low first, at most two bytes (14 bits). */
#define VAR_MAX ((1u << 14) - 1)

static size_t var_put(uint8_t *out, uint32_t v)
{
    RM_ASSERT(v <= VAR_MAX);
    if (v < 0x80) {
        if (out != NULL) {
            out[0] = (uint8_t)v;
        }
        return 1;
    }
    if (out != NULL) {
        out[0] = (uint8_t)(0x80u | (v & 0x7fu));
        out[1] = (uint8_t)(v >> 7);
    }
    return 2;
}

/* The number at @nap[*pos], bounded by @len; *pos moves past it. */
static uint32_t var_get(const uint8_t *nap, size_t len, size_t *pos)
{
    uint32_t v;

    RM_ASSERT(*pos < len);
    v = nap[*pos] & 0x7fu;
    if (nap[(*pos)++] & 0x80u) {
        RM_ASSERT(*pos < len && nap[*pos] < 0x80u);
        v |= (uint32_t)nap[(*pos)++] << 7;
    }
    return v;
}

/* A cipher state rebuilt from its key: where it is and what it reads as. */
struct cipher {
    uint32_t word; /* its first word in the region */
    uint8_t key_len;
    uint8_t key[KEY_MAX];
    Aes img;
};

/* What wolfSSL's own wc_AesInit + wc_AesGcmSetKey leave in a zeroed state. */
static bool rebuild(Aes *img, const uint8_t *key, uint32_t key_len)
{
    memset(img, 0, sizeof(*img));
    return wc_AesInit(img, NULL, INVALID_DEVID) == 0 &&
           wc_AesGcmSetKey(img, key, (word32)key_len) == 0;
}

static void forget(Aes *img)
{
    wc_AesFree(img);
    explicit_bzero(img, sizeof(*img));
}

static uint32_t differing(const word64 *a, const word64 *b, uint32_t n)
{
    uint32_t d = 0;

    for (uint32_t i = 0; i < n; i++) {
        d += a[i] != b[i];
    }
    return d;
}

/*
 * Whether the state at @live can be rebuilt into most of its words: its key
 * is its first round key, as bytes (AES-NI) or as big-endian words (the C
 * code). On success @c holds the key and the rebuilt image.
 */
static bool guess(struct cipher *c, const Aes *live)
{
    uint8_t key[KEY_MAX];
    uint32_t key_len;
    uint32_t best = AES_WORDS / 2; /* worth it only when it rebuilds half or more */
    bool found = false;
    Aes img;

    if (live->keylen != 16 && live->keylen != 24 && live->keylen != 32) {
        return false;
    }
    key_len = (uint32_t)live->keylen;
    for (int swapped = 0; swapped <= 1; swapped++) {
        memcpy(key, live->key, key_len);
        for (uint32_t i = 0; swapped && i < key_len; i += 4) {
            uint32_t v;

            memcpy(&v, key + i, 4);
            v = __builtin_bswap32(v);
            memcpy(key + i, &v, 4);
        }
        if (rebuild(&img, key, key_len)) {
            uint32_t d = differing((const word64 *)(const void *)&img,
                                   (const word64 *)(const void *)live, AES_WORDS);
            if (d < best) {
                best = d;
                found = true;
                c->key_len = (uint8_t)key_len;
                memcpy(c->key, key, key_len);
                memcpy(&c->img, &img, sizeof(img));
            }
        }
        forget(&img);
    }
    explicit_bzero(key, sizeof(key));
    return found;
}

/* What the region is expected to read as, word by word, while encoding. */
struct expect {
    const word64 *ref; /* NULL: none */
    uint32_t ref_words;
    const struct tls_nap_ref *r;
    uintptr_t at; /* the region's address */
    const struct cipher *c;
    uint32_t nc;
};

/*
 * @v, a word of reference @r (of @len bytes looked at), as the region at
 * @at is expected to hold it: moved there when it points into the
 * reference, its owner's address read as the region's.
 */
static uint64_t moved(uint64_t v, const struct tls_nap_ref *r, uint32_t len, uintptr_t at)
{
    uintptr_t ref_at = (uintptr_t)r->base;

    if (r->owner != 0 && v == r->owner) {
        return r->owner_as;
    }
    if (v >= ref_at && v - ref_at <= len) {
        return v - ref_at + at;
    }
    return v;
}

static uint64_t expected(const struct expect *e, uint32_t i)
{
    for (uint32_t k = 0; k < e->nc; k++) {
        if (i >= e->c[k].word && i < e->c[k].word + AES_WORDS) {
            return ((const word64 *)(const void *)&e->c[k].img)[i - e->c[k].word];
        }
    }
    if (i < e->ref_words) {
        return moved(e->ref[i], e->r, e->ref_words * 8, e->at);
    }
    return 0;
}

/* Runs of @w[0..@n) that differ from @e, into @out (NULL: only measure). */
static size_t encode_runs(const word64 *w, uint32_t n, const struct expect *e, uint8_t *out)
{
    size_t len = 0;
    uint32_t i = 0;
    uint32_t last = 0;
    uint32_t start;

    while (i < n) {
        if (w[i] == expected(e, i)) {
            i++;
            continue;
        }
        for (start = i; i < n && w[i] != expected(e, i) && i - start < VAR_MAX; i++) {
        }
        len += var_put(out != NULL ? out + len : NULL, start - last);
        len += var_put(out != NULL ? out + len : NULL, i - start);
        if (out != NULL) {
            memcpy(out + len, w + start, (size_t)(i - start) * 8);
        }
        len += (size_t)(i - start) * 8;
        last = i;
    }
    return len;
}

static size_t header_len(const struct cipher *c, uint32_t nc)
{
    size_t len = 1;

    for (uint32_t k = 0; k < nc; k++) {
        len += 4 + 1 + c[k].key_len;
    }
    return len;
}

uint8_t *tls_nap_encode(const uint8_t *base, uint32_t len, const struct tls_nap_ref *ref,
                        const uint32_t *aes_off, uint32_t n_aes, uint32_t *out_len)
{
    struct cipher c[TLS_NAP_CIPHERS_MAX] = {0};
    const word64 *w = (const word64 *)(const void *)base;
    struct expect e = {.at = (uintptr_t)base, .c = c};
    uint32_t nc = 0;
    uint8_t *nap = NULL;
    size_t head;
    size_t pos;

    RM_ASSERT(base != NULL && len % 8 == 0 && out_len != NULL);
    RM_ASSERT(len / 8 <= VAR_MAX); /* every skip fits a run */
    for (uint32_t k = 0; k < n_aes && nc < TLS_NAP_CIPHERS_MAX; k++) {
        RM_ASSERT(aes_off[k] % 8 == 0 && aes_off[k] + sizeof(Aes) <= len);
        RM_ASSERT(nc == 0 || aes_off[k] / 8 >= c[nc - 1].word + AES_WORDS);
        c[nc].word = aes_off[k] / 8;
        if (guess(&c[nc], (const Aes *)(const void *)(base + aes_off[k]))) {
            nc++;
        }
    }
    if (ref != NULL && ref->base != NULL) {
        RM_ASSERT(ref->len % 8 == 0);
        e.ref = (const word64 *)(const void *)ref->base;
        e.r = ref;
        e.ref_words = (ref->len < len ? ref->len : len) / 8;
    }
    e.nc = nc;
    head = header_len(c, nc);
    pos = head + encode_runs(w, len / 8, &e, NULL);
    nap = malloc(pos);
    if (nap == NULL) {
        goto out;
    }
    nap[0] = (uint8_t)nc;
    pos = 1;
    for (uint32_t k = 0; k < nc; k++) {
        uint32_t off = c[k].word * 8;

        memcpy(nap + pos, &off, 4);
        nap[pos + 4] = c[k].key_len;
        memcpy(nap + pos + 5, c[k].key, c[k].key_len);
        pos += 5 + (size_t)c[k].key_len;
    }
    RM_ASSERT(pos == head);
    pos += encode_runs(w, len / 8, &e, nap + head);
    *out_len = (uint32_t)pos;
out:
    for (uint32_t k = 0; k < nc; k++) {
        explicit_bzero(&c[k], sizeof(c[k]));
    }
    return nap;
}

/* The reference's nonzero words, moved, into the region @w (zeros) of @n words. */
static void decode_ref(word64 *w, uint32_t n, const struct tls_nap_ref *ref)
{
    const word64 *r = (const word64 *)(const void *)ref->base;
    uint32_t words = (ref->len < n * 8 ? ref->len : n * 8) / 8;

    for (uint32_t i = 0; i < words; i++) {
        if (r[i] != 0) {
            w[i] = moved(r[i], ref, words * 8, (uintptr_t)w);
        }
    }
}

void tls_nap_decode(uint8_t *base, uint32_t len, const struct tls_nap_ref *ref, const uint8_t *nap,
                    uint32_t nap_len)
{
    Aes img;
    size_t pos = 1;
    uint32_t count;
    size_t word = 0;
    uint32_t off;
    uint32_t key_len;
    bool ok;

    RM_ASSERT(base != NULL && nap != NULL && nap_len >= 1 && nap[0] <= TLS_NAP_CIPHERS_MAX);
    if (ref != NULL && ref->base != NULL) {
        decode_ref((word64 *)(void *)base, len / 8, ref);
    }
    for (uint32_t k = 0; k < nap[0]; k++) {
        RM_ASSERT(pos + 5 <= nap_len);
        memcpy(&off, nap + pos, 4);
        key_len = nap[pos + 4];
        RM_ASSERT(key_len <= KEY_MAX && pos + 5 + key_len <= nap_len);
        RM_ASSERT(off % 8 == 0 && off + sizeof(Aes) <= len);
        /* Rebuilt exactly as tls_nap_encode() did: it cannot fail where that did not. */
        ok = rebuild(&img, nap + pos + 5, key_len);
        RM_ASSERT(ok);
        memcpy(base + off, &img, sizeof(img));
        forget(&img);
        pos += 5 + (size_t)key_len;
    }
    while (pos < nap_len) {
        word += var_get(nap, nap_len, &pos);
        count = var_get(nap, nap_len, &pos);
        RM_ASSERT((word + count) * 8 <= len && pos + (size_t)count * 8 <= nap_len);
        memcpy(base + word * 8, nap + pos, (size_t)count * 8);
        pos += (size_t)count * 8;
        word += count;
    }
}

void tls_nap_free(uint8_t *nap, uint32_t nap_len)
{
    if (nap != NULL) {
        explicit_bzero(nap, nap_len);
        free(nap);
    }
}
