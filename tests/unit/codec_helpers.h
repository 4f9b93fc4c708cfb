/*
 * codec_helpers.h - shared helpers of the core/mqtt_codec unit tests.
 *
 * Decodes run from a buffer that ends exactly at a PROT_NONE page, so any read
 * past the packet crashes the test. Criterion runs each test in its own
 * process, so the one static guard buffer (the last decode's) is per test.
 * Include once per test executable, after criterion.h.
 */
#ifndef RINGMQ_TESTS_CODEC_HELPERS_H
#define RINGMQ_TESTS_CODEC_HELPERS_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"

#define BIG_MAX UINT32_MAX
#define SAMPLES_MAX 32
#define ENC_MAX 512

/* A byte-array literal and its length, as two arguments. */
#define B(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), sizeof(lit) - 1})

/* Decode outcomes that are not an mqtt_rc. */
#define NEED_MORE 1

/* Data pages then one PROT_NONE page; bytes are placed to end at the boundary. */
struct guard {
    uint8_t *base;
    size_t data_bytes;
    size_t page;
};

static inline struct guard guard_new(size_t len)
{
    struct guard g;

    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.data_bytes = (len / g.page + 1) * g.page;
    g.base = mmap(NULL, g.data_bytes + g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                  -1, 0);
    cr_assert(g.base != MAP_FAILED);
    cr_assert(mprotect(g.base + g.data_bytes, g.page, PROT_NONE) == 0);
    return g;
}

static inline uint8_t *guard_place(struct guard *g, const uint8_t *bytes, size_t len)
{
    uint8_t *dst = g->base + g->data_bytes - len;

    if (len > 0) {
        memcpy(dst, bytes, len);
    }
    return dst;
}

static inline void guard_free(struct guard *g)
{
    munmap(g->base, g->data_bytes + g->page);
}

/*
 * The decoded packet borrows its bytes, so the last guard buffer stays mapped
 * until the next decode. Criterion runs each test in its own process.
 */
static struct guard last_guard;

/*
 * Frame and decode the first packet of @bytes, copied to end at a guard page.
 * Returns NEED_MORE while the packet is incomplete, the parse error, or the
 * decode result. @used gets the packet's size when framing succeeded.
 */
static inline int frame_decode(const uint8_t *bytes, size_t len, uint8_t version, bool any,
                               struct mqtt_pkt *out, size_t *used)
{
    struct guard g = guard_new(len);
    const uint8_t *buf = guard_place(&g, bytes, len);
    struct mqtt_fixed fh;
    int rc = mqtt_fixed_parse(buf, len, BIG_MAX, &fh);

    if (last_guard.base != NULL) {
        guard_free(&last_guard);
    }
    last_guard = g;

    if (rc == 0) {
        rc = NEED_MORE;
        goto out;
    }
    if (rc < 0) {
        goto out;
    }
    cr_assert_eq(rc, fh.hdr_bytes);
    if ((size_t)fh.hdr_bytes + fh.body_bytes > len) {
        rc = NEED_MORE;
        goto out;
    }
    if (used != NULL) {
        *used = (size_t)fh.hdr_bytes + fh.body_bytes;
    }
    rc = any ? mqtt_decode_any(&fh, buf + fh.hdr_bytes, version, out)
             : mqtt_decode(&fh, buf + fh.hdr_bytes, version, out);
out:
    return rc;
}

/* Decode (server direction) a packet that fills @len exactly. */
static inline int dec(const uint8_t *bytes, size_t len, uint8_t version, struct mqtt_pkt *out)
{
    size_t used = 0;
    int rc = frame_decode(bytes, len, version, false, out, &used);

    cr_assert_neq(rc, NEED_MORE, "test packet is incomplete");
    if (rc == 0) {
        cr_assert_eq(used, len, "test packet has bytes after it");
    }
    return rc;
}

static inline int dec_any(const uint8_t *bytes, size_t len, uint8_t version, struct mqtt_pkt *out)
{
    size_t used = 0;
    int rc = frame_decode(bytes, len, version, true, out, &used);

    cr_assert_neq(rc, NEED_MORE, "test packet is incomplete");
    if (rc == 0) {
        cr_assert_eq(used, len, "test packet has bytes after it");
    }
    return rc;
}

#define MALFORMED (-MQTT_RC_MALFORMED_PACKET)
#define PROTO_ERR (-MQTT_RC_PROTOCOL_ERROR)

static inline void assert_str_eq(const struct mqtt_str *a, const struct mqtt_str *b,
                                 const char *what)
{
    cr_assert_eq(a->len, b->len, "%s: length %u != %u", what, a->len, b->len);
    if (a->len > 0) {
        cr_assert(memcmp(a->ptr, b->ptr, a->len) == 0, "%s: bytes differ", what);
    }
}

static inline void assert_str_is(const struct mqtt_str *s, const char *lit)
{
    struct mqtt_str want = {(const uint8_t *)lit, (uint32_t)strlen(lit)};

    assert_str_eq(s, &want, lit);
}

#endif
