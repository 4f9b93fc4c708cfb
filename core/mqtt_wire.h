/*
 * mqtt_wire.h - the byte-level pieces the MQTT codec files share: wire
 * constants (fixed-header flags, remaining-length bounds, CONNECT flags), a
 * bounds-checked reader over a packet body, the big-endian, variable byte
 * integer and string writers, and encoded sizes.
 *
 * Private to the codec: only core/mqtt_props.c, core/mqtt_decode.c and
 * core/mqtt_encode.c include it (no header does), so its short names stay
 * out of the rest of the tree. Every helper is static inline, as it was
 * file-local before the codec was split: they run for every field of every
 * packet. They touch only their arguments; any thread may call them.
 */
#ifndef RINGMQ_MQTT_WIRE_H
#define RINGMQ_MQTT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/limits.h"
#include "core/mqtt_types.h"
#include "core/mqtt_utf8.h"
#include "core/rm_assert.h"

/* Fixed-header flag nibble for types whose nibble is fixed [MQTT-2.2.2-1]. */
#define FLAGS_QOS1 0x2u
#define FLAGS_DUP 0x8u

/* Largest remaining length per encoded byte count (section 2.2.3). */
#define RL_MAX_1 127u
#define RL_MAX_2 16383u
#define RL_MAX_3 2097151u
#define RL_BYTES_MAX 4u

/* CONNECT flag bits (section 3.1.2.3). */
#define CF_RESERVED 0x01u
#define CF_CLEAN 0x02u
#define CF_WILL 0x04u
#define CF_WILL_QOS_SHIFT 3
#define CF_WILL_QOS_MASK 0x18u
#define CF_WILL_RETAIN 0x20u
#define CF_PASSWORD 0x40u
#define CF_USERNAME 0x80u

/* A body size no packet can have: marks a field over its maximum. */
#define BODY_UNENCODABLE UINT64_MAX

/* ---- reading a packet body ----------------------------------------------- */

/* Byte reader over a packet body; offsets avoid arithmetic on a NULL body. */
struct rd {
    const uint8_t *buf;
    uint32_t off;
    uint32_t len;
};

static inline uint32_t rd_left(const struct rd *r)
{
    return r->len - r->off;
}

static inline bool rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1) {
        return false;
    }
    *v = r->buf[r->off];
    r->off += 1;
    return true;
}

static inline bool rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2) {
        return false;
    }
    *v = (uint16_t)((uint16_t)r->buf[r->off] << 8 | r->buf[r->off + 1]);
    r->off += 2;
    return true;
}

/* A 2-byte length prefix and that many bytes, which must all be present. */
static inline bool rd_str(struct rd *r, struct mqtt_str *s)
{
    uint16_t n;

    if (!rd_u16(r, &n) || rd_left(r) < n) {
        return false;
    }
    s->ptr = r->buf + r->off;
    s->len = n;
    r->off += n;
    return true;
}

static inline bool rd_utf8(struct rd *r, struct mqtt_str *s)
{
    return rd_str(r, s) && mqtt_utf8_valid(s->ptr, s->len);
}

/*
 * A variable byte integer (section 1.5.5): at most 4 bytes, and in the fewest
 * bytes that hold it [MQTT-1.5.5-1]. False if short, too long or not minimal.
 */
static inline bool rd_varint(struct rd *r, uint32_t *v)
{
    uint32_t n = 0;
    uint32_t i;

    for (i = 0; i < RL_BYTES_MAX; i++) {
        uint8_t b;

        if (!rd_u8(r, &b)) {
            return false;
        }
        n |= (uint32_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0) {
            *v = n;
            /* A last byte of 0 after the first adds nothing: not minimal. */
            return i == 0 || b != 0;
        }
    }
    return false;
}

static inline bool rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4) {
        return false;
    }
    *v = (uint32_t)r->buf[r->off] << 24 | (uint32_t)r->buf[r->off + 1] << 16 |
         (uint32_t)r->buf[r->off + 2] << 8 | r->buf[r->off + 3];
    r->off += 4;
    return true;
}

/* ---- sizes and writing --------------------------------------------------- */

/* Bytes of a variable byte integer holding @v (<= MQTT_VARINT_MAX). */
static inline uint32_t varint_bytes(uint32_t v)
{
    if (v <= RL_MAX_1) {
        return 1;
    }
    if (v <= RL_MAX_2) {
        return 2;
    }
    return v <= RL_MAX_3 ? 3 : 4;
}

static inline uint64_t str_bytes(const struct mqtt_str *s)
{
    RM_ASSERT(s->ptr != NULL || s->len == 0);
    return s->len > LIMITS_STRING_BYTES_MAX ? BODY_UNENCODABLE : 2 + (uint64_t)s->len;
}

/* Sum that saturates at BODY_UNENCODABLE so one bad field poisons the total. */
static inline uint64_t add_bytes(uint64_t a, uint64_t b)
{
    return (a == BODY_UNENCODABLE || b == BODY_UNENCODABLE) ? BODY_UNENCODABLE : a + b;
}

static inline uint8_t *put_varint(uint8_t *p, uint32_t v)
{
    while (v > RL_MAX_1) {
        *p++ = (uint8_t)(0x80 | (v & 0x7f));
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

static inline uint8_t *put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static inline uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static inline uint8_t *put_bytes(uint8_t *p, const uint8_t *src, size_t n)
{
    if (n > 0) { /* memcpy from NULL is undefined even for 0 bytes */
        memcpy(p, src, n);
    }
    return p + n;
}

static inline uint8_t *put_str(uint8_t *p, const struct mqtt_str *s)
{
    return put_bytes(put_u16(p, (uint16_t)s->len), s->ptr, s->len);
}

#endif
