/*
 * mqtt_utf8.c - UTF-8 validation (RFC 3629 as MQTT restricts it) and the
 * codec's topic-name check.
 *
 * Owns nothing: both functions read only their arguments; no allocation, no
 * syscalls, no state; any thread may call them. They live together because
 * both skip plain ASCII eight bytes at a time with the same word tests.
 */
#include "core/mqtt_utf8.h"

#include <string.h>

#include "core/rm_assert.h"

/* Word-at-a-time byte tests (8 bytes per step); memcpy keeps loads unaligned-safe. */
#define WORD_ONES 0x0101010101010101ull
#define WORD_HIGHS 0x8080808080808080ull

/* Nonzero if some byte of @w is zero (exact as a boolean). */
static uint64_t word_has_zero(uint64_t w)
{
    return (w - WORD_ONES) & ~w & WORD_HIGHS;
}

/* True if all 8 bytes of @w are ASCII other than NUL, '+' and '#'. */
static bool plain_word(uint64_t w)
{
    const uint64_t plus = WORD_ONES * '+';
    const uint64_t hash = WORD_ONES * '#';

    return ((w | word_has_zero(w) | word_has_zero(w ^ plus) | word_has_zero(w ^ hash)) &
            WORD_HIGHS) == 0;
}

/*
 * A topic name: at least one byte, no wildcards, UTF-8 [MQTT-4.7.3-1,
 * 3.3.2-2, 1.5.3-1]. Checked on every PUBLISH, so plain ASCII words are
 * skipped in one pass; from the first other word on it goes the slow way.
 */
bool mqtt_utf8__topic_name_ok(const struct mqtt_str *s)
{
    size_t i = 0;
    uint64_t w;

    if (s->len == 0) {
        return false;
    }
    while (s->len - i >= 8) {
        memcpy(&w, s->ptr + i, 8);
        if (!plain_word(w)) {
            break;
        }
        i += 8;
    }
    if (s->len - i < 8) {
        /* The tail, padded with a harmless byte, is one more word. */
        w = WORD_ONES * 'a';
        memcpy(&w, s->ptr + i, s->len - i);
        if (plain_word(w)) {
            return true;
        }
    }
    /* Everything before @i is ASCII, so a UTF-8 sequence cannot straddle it. */
    return memchr(s->ptr + i, '+', s->len - i) == NULL &&
           memchr(s->ptr + i, '#', s->len - i) == NULL && mqtt_utf8_valid(s->ptr + i, s->len - i);
}

/*
 * Well-formed UTF-8 (RFC 3629): shortest form, no surrogates, at most
 * U+10FFFF; and no U+0000 [MQTT-1.5.3-1, -2]. ASCII runs, the common case for
 * topics and client ids, are skipped eight bytes at a time.
 */
bool mqtt_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;

    RM_ASSERT(s != NULL || len == 0);

    while (i < len) {
        uint8_t c;
        uint8_t lo = 0x80;
        uint8_t hi = 0xbf;
        size_t more;
        size_t k;

        /* Any byte with the high bit set, or zero, ends the fast run. */
        while (len - i >= 8) {
            uint64_t w;

            memcpy(&w, s + i, 8);
            if (((w | word_has_zero(w)) & WORD_HIGHS) != 0) {
                break;
            }
            i += 8;
        }
        if (i == len) {
            break;
        }
        c = s[i];
        if (c < 0x80) {
            if (c == 0) {
                return false;
            }
            i++;
            continue;
        }
        if (c < 0xc2 || c > 0xf4) {
            return false; /* continuation byte, overlong 2-byte lead, or past U+10FFFF */
        }
        if (c < 0xe0) {
            more = 1;
        } else if (c < 0xf0) {
            more = 2;
            lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
            hi = c == 0xed ? 0x9f : 0xbf; /* surrogates U+D800..U+DFFF */
        } else {
            more = 3;
            lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
            hi = c == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
        }
        if (len - i - 1 < more) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (k = 2; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += 1 + more;
    }
    RM_ASSERT(i == len);
    return true;
}
