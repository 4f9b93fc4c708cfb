/*
 * wal_format.c - write-ahead log records (see wal_format.h).
 * Pure; any thread, on its own buffers.
 */
#include "core/wal_format.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "core/rm_assert.h"

static uint64_t checksum(uint8_t type, const uint8_t *body, uint32_t len)
{
    return XXH3_64bits_withSeed(body, len, ((uint64_t)type << 32) | len);
}

static uint64_t load_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint8_t *wal_reserve_grow(struct wal_out *o, size_t n)
{
    if (o->nomem)
        return NULL;
    if (o->cap - o->len < n) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n) {
            if (cap > SIZE_MAX / 2) {
                o->nomem = true;
                return NULL;
            }
            cap *= 2;
        }
        uint8_t *nb = realloc(o->buf, cap);
        if (!nb) {
            o->nomem = true;
            return NULL;
        }
        o->buf = nb;
        o->cap = cap;
    }
    uint8_t *p = o->buf + o->len;
    o->len += n;
    return p;
}

size_t wal_begin(struct wal_out *o, enum wal_type type)
{
    RM_ASSERT(type > 0 && type < WAL_TYPE_END);
    size_t off = o->len;
    uint8_t *p = wal_reserve(o, WAL_HDR_BYTES);
    if (p) {
        memset(p, 0, WAL_HDR_BYTES);
        p[4] = (uint8_t)type;
    }
    return off;
}

void wal_end(struct wal_out *o, size_t off)
{
    if (o->nomem)
        return;
    RM_ASSERT(off + WAL_HDR_BYTES <= o->len);
    uint8_t *h = o->buf + off;
    size_t body = o->len - off - WAL_HDR_BYTES;
    RM_ASSERT(body <= WAL_BODY_MAX);
    wal_store_le(h, body, 4);
    wal_store_le(h + 8, checksum(h[4], h + WAL_HDR_BYTES, (uint32_t)body), 8);
}

void wal_out_free(struct wal_out *o)
{
    free(o->buf);
    *o = (struct wal_out){0};
}

/* The record at @off when it is whole and its checksum right. */
static bool good_at(const uint8_t *buf, size_t len, size_t off, struct wal_rec *r)
{
    if (len - off < WAL_HDR_BYTES)
        return false;
    const uint8_t *h = buf + off;
    uint32_t body = (uint32_t)load_le(h, 4);
    uint8_t type = h[4];
    if (body > WAL_BODY_MAX || body > len - off - WAL_HDR_BYTES)
        return false;
    if (type == 0 || type >= WAL_TYPE_END || h[5] || h[6] || h[7])
        return false;
    if (load_le(h + 8, 8) != checksum(type, h + WAL_HDR_BYTES, body))
        return false;
    *r = (struct wal_rec){type, h + WAL_HDR_BYTES, body};
    return true;
}

/* @n bytes at @p are all zero (a segment's preallocated, never written space). */
static bool all_zero(const uint8_t *p, size_t n)
{
    static const uint8_t zeros[256];
    /* Bounded: each pass looks at up to 256 more bytes. */
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        if (memcmp(p, zeros, k) != 0)
            return false;
        p += k;
        n -= k;
    }
    return true;
}

int wal_read(const uint8_t *buf, size_t len, size_t *off, struct wal_rec *r)
{
    RM_ASSERT(buf != NULL || len == 0);
    RM_ASSERT(*off <= len);
    if (*off == len)
        return 0;
    if (!good_at(buf, len, *off, r))
        return all_zero(buf + *off, len - *off) ? 0 : -EBADMSG;
    *off += WAL_HDR_BYTES + r->len;
    return 1;
}

size_t wal_resync(const uint8_t *buf, size_t len, size_t off)
{
    RM_ASSERT(off <= len);
    struct wal_rec r;
    /* Bounded: one step per byte left. */
    for (size_t at = off + 1; at + WAL_HDR_BYTES <= len; at++) {
        if (good_at(buf, len, at, &r))
            return at;
    }
    return len;
}

static const uint8_t *take(struct wal_in *in, size_t n)
{
    if (in->bad || (size_t)(in->end - in->p) < n) {
        in->bad = true;
        return NULL;
    }
    const uint8_t *p = in->p;
    in->p += n;
    return p;
}

static uint64_t get_le(struct wal_in *in, unsigned bytes)
{
    const uint8_t *p = take(in, bytes);
    return p ? load_le(p, bytes) : 0;
}

uint8_t wal_get_u8(struct wal_in *in)
{
    return (uint8_t)get_le(in, 1);
}

uint16_t wal_get_u16(struct wal_in *in)
{
    return (uint16_t)get_le(in, 2);
}

uint32_t wal_get_u32(struct wal_in *in)
{
    return (uint32_t)get_le(in, 4);
}

uint64_t wal_get_u64(struct wal_in *in)
{
    return get_le(in, 8);
}

static const uint8_t *get_str(struct wal_in *in, unsigned prefix, uint32_t *len)
{
    *len = (uint32_t)get_le(in, prefix);
    const uint8_t *p = take(in, *len);
    if (!p)
        *len = 0;
    return p;
}

const uint8_t *wal_get_str8(struct wal_in *in, uint32_t *len)
{
    return get_str(in, 1, len);
}

const uint8_t *wal_get_str16(struct wal_in *in, uint32_t *len)
{
    return get_str(in, 2, len);
}

const uint8_t *wal_get_str32(struct wal_in *in, uint32_t *len)
{
    return get_str(in, 4, len);
}
