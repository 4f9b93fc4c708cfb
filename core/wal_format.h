/*
 * wal_format.h - the write-ahead log's records: framing, checksums, field
 * encoding, and reading them back (torn tails and corrupt records found,
 * never trusted).
 *
 * A record is a 16-byte header and a body:
 *
 *   u32 body length | u8 type | 3 bytes 0 | u64 XXH3-64 of the body,
 *   seeded with (type << 32 | body length)
 *
 * all little-endian, so a flipped bit in the length, the type or the body
 * fails the checksum. Bodies are sequences of fixed-width little-endian
 * integers and length-prefixed byte strings (wal_put_*, wal_get_*); what
 * each type holds is listed at enum wal_type. A segment file starts with
 * one WAL_SEGMENT record; its space is preallocated (net/wal_io.h), so it
 * may end in zeros, which read as its end.
 *
 * Pure: no allocation outside struct wal_out, no syscalls. Any thread, on
 * its own buffers.
 */
#ifndef RINGMQ_WAL_FORMAT_H
#define RINGMQ_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/rm_assert.h"

#define WAL_HDR_BYTES 16u
/* The largest body a reader accepts: a maximal MQTT packet and its framing. */
#define WAL_BODY_MAX ((uint32_t)(268435455u + 4096u))
/* WAL_SEGMENT's magic: "RINGMQW1". */
#define WAL_MAGIC 0x31574d51474e4952ull
/*
 * 2: WAL_QOS2_PEND, WAL_HAS, WAL_MSG's origin, WAL_SESSION's listener.
 * 3: WAL_GIVE, WAL_GIVEN. 4: a segment may end in zeros (preallocated),
 * which an older reader would take for damage. A reader takes every
 * version up to its own and refuses a later one.
 */
#define WAL_VERSION 4u

/*
 * Record types; "cid" is a session's client id as stored (a virtual host's
 * prefix included), a u16-prefixed string; "str8" a u8-prefixed one.
 */
enum wal_type {
    WAL_SEGMENT = 1, /* u64 magic, u32 version, u32 generation, u32 shard, u32 shards, u32 seq */
    /*
     * cid, str8 user, u32 expiry_s, u8 listener (whose ACL applies; absent
     * in older logs: 0): the session exists (created or changed)
     */
    WAL_SESSION,
    WAL_SESSION_END, /* cid: the session ended */
    WAL_RESET,       /* cid: forget the session's subscriptions, messages and QoS 2 state */
    WAL_SUB,         /* cid, u16 filter, u8 options, u32 subscription identifier */
    WAL_UNSUB,       /* cid, u16 filter */
    WAL_MSG,         /* u64 id, u8 qos, u8 retain, u64 expiry (wall ms, 0: never), topic,
                        props, payload, then for a tagged QoS 2 message its u64 origin */
    /*
     * cid, u64 msg id, u8 qos, u8 retain, u64 share key, u32 sub id, u16 pkt
     * id, then with several subscription identifiers: u16 n, n u32 more
     */
    WAL_DELIVER,
    WAL_SENT,        /* cid, u16 pkt id: the oldest queued message went out with it (0: dropped) */
    WAL_DONE,        /* cid, u16 pkt id: that outbound flow ended (PUBACK, PUBCOMP, refused) */
    WAL_PUBREC,      /* cid, u16 pkt id: outbound QoS 2 released, PUBREL sent */
    WAL_DROPQ,       /* cid, u32 index: that queued message left (to another group member) */
    WAL_QOS2_IN,     /* cid, u16 pkt id: inbound QoS 2 committed (PUBREC), awaiting PUBREL */
    WAL_QOS2_REL,    /* cid, u16 pkt id: its PUBREL came */
    WAL_RETAIN,      /* u8 qos, u64 expiry, topic, props, payload (empty: cleared) */
    WAL_WILL,        /* cid, u64 due (wall ms), u8 qos, u8 retain, u32 expiry s (from its
                        publish; 0 none), topic, props, payload: a delayed will [MQTT-3.1.3-9] */
    WAL_WILL_GONE,   /* cid: its delayed will was sent or cancelled (the session resumed) */
    WAL_SNAP_END,    /* cid: its snapshot (from its WAL_RESET on) is complete */
    /*
     * cid, u16 pkt id, u64 origin: inbound QoS 2 arrived, routed as the
     * message tagged @origin, not committed yet (WAL_QOS2_IN commits it)
     */
    WAL_QOS2_PEND,
    /*
     * u64 origin, u64 who: a session (its client id's hash) or a shared
     * group (its key) was given the QoS 2 message tagged @origin (kept
     * across compactions and restarts while it may be uncommitted)
     */
    WAL_HAS,
    /*
     * cid, u64 give id, u64 msg id, u64 share key: the session handed the
     * message to another member of that shared group as it ended, and the
     * shard it went to may not have logged it yet (core/give.h)
     */
    WAL_GIVE,
    WAL_GIVEN, /* cid, u64 give id: that message is logged where it went */
    WAL_TYPE_END
};

/* A growable output buffer; @nomem once an allocation failed (nothing more is added). */
struct wal_out {
    uint8_t *buf;
    size_t len;
    size_t cap;
    bool nomem;
};

/* Start a record of @type in @o; returns its offset, for wal_end(). */
size_t wal_begin(struct wal_out *o, enum wal_type type);

/* Finish the record begun at @off: its length and checksum. */
void wal_end(struct wal_out *o, size_t off);

/* wal_reserve() when @o has no room for @n more bytes: it grows. */
uint8_t *wal_reserve_grow(struct wal_out *o, size_t n);

/*
 * Room for @n more bytes at the end of @o, to be written by the caller;
 * NULL (and @o->nomem) when there is none. Inline, as are the puts below:
 * a logged message costs a dozen of them, and a call each was ~2 % of the
 * broker's CPU with fsync = interval (perf/README.md).
 */
static inline uint8_t *wal_reserve(struct wal_out *o, size_t n)
{
    if (!o->nomem && o->cap - o->len >= n) {
        uint8_t *p = o->buf + o->len;
        o->len += n;
        return p;
    }
    return wal_reserve_grow(o, n);
}

/* @v's low @bytes bytes at @p, little-endian. */
static inline void wal_store_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void wal_put_le(struct wal_out *o, uint64_t v, unsigned bytes)
{
    uint8_t *p = wal_reserve(o, bytes);
    if (p)
        wal_store_le(p, v, bytes);
}

static inline void wal_put_u8(struct wal_out *o, uint8_t v)
{
    wal_put_le(o, v, 1);
}

static inline void wal_put_u16(struct wal_out *o, uint16_t v)
{
    wal_put_le(o, v, 2);
}

static inline void wal_put_u32(struct wal_out *o, uint32_t v)
{
    wal_put_le(o, v, 4);
}

static inline void wal_put_u64(struct wal_out *o, uint64_t v)
{
    wal_put_le(o, v, 8);
}

/* Raw bytes, no length. */
static inline void wal_put_raw(struct wal_out *o, const void *src, size_t len)
{
    uint8_t *p = len ? wal_reserve(o, len) : NULL;
    if (p)
        memcpy(p, src, len);
}

/* A u8-prefixed string (@len <= 255). */
static inline void wal_put_str8(struct wal_out *o, const uint8_t *p, size_t len)
{
    RM_ASSERT(len <= UINT8_MAX);
    wal_put_u8(o, (uint8_t)len);
    wal_put_raw(o, p, len);
}

/* A u16-prefixed string (@len <= 65535). */
static inline void wal_put_str16(struct wal_out *o, const uint8_t *p, size_t len)
{
    RM_ASSERT(len <= UINT16_MAX);
    wal_put_u16(o, (uint16_t)len);
    wal_put_raw(o, p, len);
}

/* A u32-prefixed string. */
static inline void wal_put_str32(struct wal_out *o, const uint8_t *p, size_t len)
{
    RM_ASSERT(len <= UINT32_MAX);
    wal_put_u32(o, (uint32_t)len);
    wal_put_raw(o, p, len);
}

/* Free @o's buffer and empty it. */
void wal_out_free(struct wal_out *o);

/* One record read back: its type and body (pointing into the reader's buffer). */
struct wal_rec {
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
};

/*
 * Read the record at *@off of @buf (@len bytes). Returns 1 and advances
 * *@off past it; 0 at the clean end (*@off == @len, or only zeros from
 * *@off on: a segment's preallocated space, never written); -EBADMSG when
 * what is at *@off is not a whole record with a good checksum (torn or
 * corrupt), *@off unchanged.
 */
int wal_read(const uint8_t *buf, size_t len, size_t *off, struct wal_rec *r);

/*
 * After a bad record at @off: the offset of the next good record (its
 * length in bounds and its checksum right), or @len when there is none.
 * Bounded by the bytes after @off.
 */
size_t wal_resync(const uint8_t *buf, size_t len, size_t off);

/* A body being parsed; @bad once a field ran past its end. */
struct wal_in {
    const uint8_t *p;
    const uint8_t *end;
    bool bad;
};

static inline struct wal_in wal_in_of(const struct wal_rec *r)
{
    return (struct wal_in){r->body, r->body + r->len, false};
}

uint8_t wal_get_u8(struct wal_in *in);
uint16_t wal_get_u16(struct wal_in *in);
uint32_t wal_get_u32(struct wal_in *in);
uint64_t wal_get_u64(struct wal_in *in);
/* A u16-prefixed string: its bytes (in the record) and *@len. */
const uint8_t *wal_get_str16(struct wal_in *in, uint32_t *len);
/* A u8-prefixed string. */
const uint8_t *wal_get_str8(struct wal_in *in, uint32_t *len);
/* A u32-prefixed string. */
const uint8_t *wal_get_str32(struct wal_in *in, uint32_t *len);

/* True when @in was read to its end exactly, nothing bad. */
static inline bool wal_in_done(const struct wal_in *in)
{
    return !in->bad && in->p == in->end;
}

#endif
