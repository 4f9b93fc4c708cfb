/*
 * test_tls_nap.c - a sleeping region's encoding: word for word back, and
 * small because cipher states are rebuilt from their keys, not copied.
 *
 * The regions here are built by hand: zeros, some live words, and real
 * AES-GCM states made and used through wolfCrypt the way wolfSSL does.
 * test_tls_mem covers the same code under a real handshake.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "tls/tls_nap.h"

#define REGION_BYTES (16u << 10)
#define LIVE_WORDS 32u /* the region's other nonzero words */

static uint8_t *region_new(void)
{
    uint8_t *r = aligned_alloc(4096, REGION_BYTES);

    cr_assert_not_null(r);
    memset(r, 0, REGION_BYTES);
    for (uint32_t i = 0; i < LIVE_WORDS; i++) {
        uint64_t v = 0x9e3779b97f4a7c15ull * (i + 1);

        memcpy(r + 64 + i * 8, &v, 8);
    }
    return r;
}

/* A cipher state at @r + @off keyed with @key_len bytes, then used once. */
static void cipher_put(uint8_t *r, uint32_t off, uint32_t key_len)
{
    Aes *aes = (Aes *)(void *)(r + off);
    uint8_t key[32];
    uint8_t iv[12] = {1, 2, 3};
    uint8_t in[40] = "a record's worth of plaintext";
    uint8_t out[40];
    uint8_t tag[16];

    for (uint32_t i = 0; i < sizeof(key); i++) {
        key[i] = (uint8_t)(i * 7 + off);
    }
    cr_assert_eq(wc_AesInit(aes, NULL, INVALID_DEVID), 0);
    cr_assert_eq(wc_AesGcmSetKey(aes, key, key_len), 0);
    cr_assert_eq(
        wc_AesGcmEncrypt(aes, out, in, sizeof(in), iv, sizeof(iv), tag, sizeof(tag), NULL, 0), 0);
}

/*
 * Encode @r against @ref (NULL: none), zero it, decode it in place (where
 * a region wakes: its pointers into itself are only valid there), and
 * check it reads as before. Returns the nap's length.
 */
static uint32_t round_trip(uint8_t *r, const struct tls_nap_ref *ref, const uint32_t *aes_off,
                           uint32_t n_aes)
{
    uint8_t *before = malloc(REGION_BYTES);
    uint32_t len = 0;
    uint8_t *nap;

    cr_assert_not_null(before);
    memcpy(before, r, REGION_BYTES);
    nap = tls_nap_encode(r, REGION_BYTES, ref, aes_off, n_aes, &len);
    cr_assert_not_null(nap);
    cr_assert_geq(len, 1u);
    memset(r, 0, REGION_BYTES);
    tls_nap_decode(r, REGION_BYTES, ref, nap, len);
    cr_assert_arr_eq(r, before, REGION_BYTES, "the region did not come back word for word");
    tls_nap_free(nap, len);
    free(before);
    return len;
}

Test(tls_nap, a_region_of_zeros_naps_in_one_byte)
{
    uint8_t *r = aligned_alloc(4096, REGION_BYTES);

    cr_assert_not_null(r);
    memset(r, 0, REGION_BYTES);
    cr_assert_eq(round_trip(r, NULL, NULL, 0), 1u);
    free(r);
}

Test(tls_nap, cipher_states_are_rebuilt_from_their_keys_not_copied)
{
    uint32_t off[2] = {2048, 2048 + 2 * (uint32_t)sizeof(Aes)};
    uint32_t copied;
    uint32_t rebuilt;
    uint8_t *r = region_new();

    cipher_put(r, off[0], 16);
    cipher_put(r, off[1], 32);
    copied = round_trip(r, NULL, NULL, 0); /* told of no state: every nonzero word copied */
    rebuilt = round_trip(r, NULL, off, 2);
    /* Each state has hundreds of nonzero bytes (its key schedule, its GHASH table). */
    cr_assert_gt(copied, LIVE_WORDS * 8 + 2 * 400u, "copied: %u bytes", copied);
    /* Rebuilt: the live words, two keys, and the few words a use changes. */
    cr_assert_lt(rebuilt, LIVE_WORDS * 8 + 2 * 160u, "rebuilt: %u bytes", rebuilt);
    free(r);
}

Test(tls_nap, a_rebuilt_state_still_decrypts_what_the_original_encrypted)
{
    uint32_t off = 4096;
    uint8_t *r = region_new();
    uint8_t *back = aligned_alloc(4096, REGION_BYTES);
    uint8_t iv[12] = {9};
    uint8_t in[24] = "sealed before the sleep";
    uint8_t sealed[24];
    uint8_t opened[24];
    uint8_t tag[16];
    uint8_t *nap;
    uint32_t len;

    cr_assert_not_null(back);
    cipher_put(r, off, 16);
    cr_assert_eq(wc_AesGcmEncrypt((Aes *)(void *)(r + off), sealed, in, sizeof(in), iv, sizeof(iv),
                                  tag, sizeof(tag), NULL, 0),
                 0);
    nap = tls_nap_encode(r, REGION_BYTES, NULL, &off, 1, &len);
    cr_assert_not_null(nap);
    memset(back, 0, REGION_BYTES);
    tls_nap_decode(back, REGION_BYTES, NULL, nap, len);
    tls_nap_free(nap, len);
    cr_assert_eq(wc_AesGcmDecrypt((Aes *)(void *)(back + off), opened, sealed, sizeof(sealed), iv,
                                  sizeof(iv), tag, sizeof(tag), NULL, 0),
                 0);
    cr_assert_arr_eq(opened, in, sizeof(in));
    free(back);
    free(r);
}

Test(tls_nap, a_wrong_guess_of_where_a_state_is_costs_bytes_not_correctness)
{
    uint32_t off[3] = {1024, 4096, 8192};
    uint8_t *r = region_new();
    Aes *fake = (Aes *)(void *)(r + off[1]);

    /* off[0]: zeros (no key length); off[1]: noise with a valid key length; off[2]: a real state.
     */
    for (uint32_t i = 0; i < sizeof(Aes); i++) {
        r[off[1] + i] = (uint8_t)(i * 131 + 17);
    }
    fake->keylen = 16;
    cipher_put(r, off[2], 24);
    (void)round_trip(r, NULL, off, 3);
    free(r);
}

/* @ref's word @i, as a pointer into @base at byte @to. */
static void point(uint8_t *base, uint32_t i, uint32_t to)
{
    uint64_t v = (uint64_t)(uintptr_t)(base + to);

    memcpy(base + i * 8, &v, 8);
}

Test(tls_nap, what_a_region_shares_with_its_reference_is_not_copied_pointers_included)
{
    struct tls_nap_ref ref;
    uint8_t *old = region_new(); /* the reference: live words, and pointers into itself */
    uint8_t *r = aligned_alloc(4096, REGION_BYTES);
    uint32_t alone;
    uint32_t against;
    uint64_t v = 0x1234;

    cr_assert_not_null(r);
    point(old, 600, 4096);
    point(old, 601, REGION_BYTES / 2); /* half: the reference is shorter than the region */
    point(old, 602, REGION_BYTES / 2 - 8);
    /* Its block headers name their owner, which the sleeper's name as theirs. */
    ref = (struct tls_nap_ref){
        .base = old, .len = REGION_BYTES / 2, .owner = 0xa11ce, .owner_as = 0xb0b};
    memcpy(old + 700 * 8, &ref.owner, 8);
    /* The sleeper: the same words, its pointers into itself, and two words of its own. */
    memcpy(r, old, REGION_BYTES);
    point(r, 600, 4096);
    point(r, 601, REGION_BYTES / 2);
    point(r, 602, REGION_BYTES / 2 - 8);
    memcpy(r + 700 * 8, &ref.owner_as, 8);
    memcpy(r + 80, &v, 8);
    memcpy(r + REGION_BYTES - 8, &v, 8); /* past the reference's end: expected zero */
    alone = round_trip(r, NULL, NULL, 0);
    against = round_trip(r, &ref, NULL, 0);
    cr_assert_gt(alone, LIVE_WORDS * 8, "alone: %u bytes", alone);
    /* Two runs of a word each: skip 10 words (1 byte), then skip ~2,000 (2 bytes). */
    cr_assert_eq(against, 1u + (1u + 1u + 8u) + (2u + 1u + 8u), "against the reference: %u bytes",
                 against);
    free(r);
    free(old);
}

Test(tls_nap, long_runs_and_long_skips_round_trip)
{
    uint8_t *r = aligned_alloc(4096, REGION_BYTES);
    uint32_t words = 1500; /* a count past one byte */

    cr_assert_not_null(r);
    memset(r, 0, REGION_BYTES);
    for (uint32_t i = 0; i < words; i++) {
        uint64_t v = i + 1;

        memcpy(r + 8 * 300 + 8 * i, &v, 8); /* after a skip past one byte */
    }
    r[REGION_BYTES - 1] = 7; /* the last word, after another long skip */
    cr_assert_eq(round_trip(r, NULL, NULL, 0), 1u + (2u + 2u + words * 8) + (2u + 1u + 8u));
    free(r);
}

/* A deterministic generator (xorshift64), so a failure repeats. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

Test(tls_nap, random_regions_against_random_references_come_back_word_for_word)
{
    uint8_t *mem =
        aligned_alloc(4096, 3 * REGION_BYTES); /* the reference right before the region */
    uint8_t *old = mem + REGION_BYTES;
    uint8_t *r = mem + 2 * REGION_BYTES;
    uint64_t seed = 0x9e3779b97f4a7c15ull;

    cr_assert_not_null(mem);
    for (int round = 0; round < 300; round++) {
        uint32_t ref_len = (uint32_t)(rnd(&seed) % (REGION_BYTES / 8 + 1)) * 8;
        struct tls_nap_ref ref = {
            .base = old, .len = ref_len, .owner = rnd(&seed) % 2 ? 0 : 42, .owner_as = 43};
        /* Pointers at and around the reference's ends and the region's, as words. */
        uintptr_t edges[] = {(uintptr_t)old - 8,
                             (uintptr_t)old,
                             (uintptr_t)old + ref_len,
                             (uintptr_t)old + ref_len + 8,
                             (uintptr_t)r,
                             (uintptr_t)r + REGION_BYTES,
                             42,
                             43};
        uint32_t off[2] = {1024, 8192};

        memset(mem, 0, 3 * REGION_BYTES);
        for (uint32_t i = 0; i < REGION_BYTES / 8; i++) {
            uint64_t kind = rnd(&seed) % 8;
            uint64_t v = kind < 5 ? 0 : kind == 5 ? rnd(&seed) : edges[rnd(&seed) % 8];

            memcpy(old + i * 8, &v, 8);
            /* The sleeper: mostly the reference's words, some of its own. */
            if (rnd(&seed) % 4 == 0) {
                v = rnd(&seed) % 2 ? 0 : edges[rnd(&seed) % 8];
            }
            memcpy(r + i * 8, &v, 8);
        }
        if (round % 3 == 0) {
            cipher_put(r, off[0], 16);
            cipher_put(r, off[1], 32);
        }
        (void)round_trip(r, round % 5 == 0 ? NULL : &ref, off, 2);
    }
    free(mem);
}
