/*
 * tls_nap.h - a sleeping region's bytes, in as few bytes as we can: only
 * what cannot be rebuilt.
 *
 * A region (tls_mem.h) holds one connection's wolfSSL object. Once the
 * handshake is done it is almost all zeros; most of the rest is the two
 * AES-GCM cipher states (a key schedule and a GHASH table each, 1104 bytes
 * in Debian's build), which wolfCrypt rebuilds from the 16-32 byte key in a
 * few microseconds. So a nap is:
 *
 * - the keys of the cipher states it can rebuild: each key is read from the
 *   state's own key schedule (its first round key is the key) and kept only
 *   where rebuilding it gives back most of the state's words;
 * - runs of the words that differ from the "expected" region: a reference
 *   region, a fresh object from the same context that is never used
 *   (wolfSSL_new() lays out every object of a context alike, so what never
 *   changes after it, the suites, options and callbacks, reads the same),
 *   its pointers into itself moved to the sleeper's base, and its owner's
 *   address (in each block header) read as the sleeper's; zeros past its
 *   end; the rebuilt cipher states at their offsets.
 *
 * tls_nap_decode() writes the expected region (rebuilding each state the
 * same way) and then the runs, so it gives back the region word for word
 * whatever the states hold: a word that rebuilding does not reproduce (the
 * streaming counters, the heap hint) is simply one of the runs. Nothing
 * depends on the guess of where the states are or how the key is laid out;
 * a wrong guess costs only bytes.
 *
 * Key material is in every nap (as it was in the region): tls_nap_free()
 * zeroes it before it goes back to the heap. Pure functions over caller
 * memory, any thread.
 */
#ifndef RINGMQ_TLS_NAP_H
#define RINGMQ_TLS_NAP_H

#include <stddef.h>
#include <stdint.h>

/* Cipher states one nap rebuilds, at most (a connection has two). */
#define TLS_NAP_CIPHERS_MAX 4u

/* A reference region: the same bytes at encode and at decode. */
struct tls_nap_ref {
    const uint8_t *base; /* NULL: none (zeros expected) */
    uint32_t len;        /* a multiple of 8 */
    uint64_t owner;      /* a word of the reference that reads as owner_as (0: none) */
    uint64_t owner_as;
};

/*
 * Encode @len bytes at @base (8-byte aligned, @len a multiple of 8) into a
 * new heap buffer, against @ref (NULL: none); @aes_off[0..@n_aes) are the
 * byte offsets of blocks that may be AES cipher states (sizeof(Aes) each,
 * ascending, inside @len). Returns the buffer and its length in @out_len,
 * or NULL (no memory).
 */
uint8_t *tls_nap_encode(const uint8_t *base, uint32_t len, const struct tls_nap_ref *ref,
                        const uint32_t *aes_off, uint32_t n_aes, uint32_t *out_len);
/* Write @nap back into @base (@len bytes that read as zeros), against the same @ref. */
void tls_nap_decode(uint8_t *base, uint32_t len, const struct tls_nap_ref *ref, const uint8_t *nap,
                    uint32_t nap_len);
/* Zero and free a nap. */
void tls_nap_free(uint8_t *nap, uint32_t nap_len);

#endif
