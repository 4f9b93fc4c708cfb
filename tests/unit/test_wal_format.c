/*
 * test_wal_format.c - core/wal_format: records written and read back,
 * every flipped bit caught by the checksum, torn tails, a preallocated
 * segment's zeros, and resync.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/wal_format.h"

/* Three records of different types in @o: a session, a message, a packet id step. */
static void three(struct wal_out *o)
{
    size_t at = wal_begin(o, WAL_SESSION);
    wal_put_str16(o, (const uint8_t *)"client-1", 8);
    wal_put_str8(o, (const uint8_t *)"alice", 5);
    wal_put_u32(o, 3600);
    wal_end(o, at);
    at = wal_begin(o, WAL_MSG);
    wal_put_u64(o, 42);
    wal_put_u8(o, 2);
    wal_put_u8(o, 1);
    wal_put_u64(o, 0);
    wal_put_str16(o, (const uint8_t *)"a/b", 3);
    wal_put_str32(o, NULL, 0);
    wal_put_str32(o, (const uint8_t *)"payload", 7);
    wal_end(o, at);
    at = wal_begin(o, WAL_DONE);
    wal_put_str16(o, (const uint8_t *)"client-1", 8);
    wal_put_u16(o, 65535);
    wal_end(o, at);
    cr_assert_not(o->nomem);
}

Test(wal_format, fields_read_back_as_written)
{
    struct wal_out o = {0};
    three(&o);
    size_t off = 0;
    struct wal_rec r;
    uint32_t len;
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
    cr_assert_eq(r.type, WAL_SESSION);
    struct wal_in in = wal_in_of(&r);
    const uint8_t *p = wal_get_str16(&in, &len);
    cr_assert(len == 8 && memcmp(p, "client-1", 8) == 0);
    p = wal_get_str8(&in, &len);
    cr_assert(len == 5 && memcmp(p, "alice", 5) == 0);
    cr_assert_eq(wal_get_u32(&in), 3600);
    cr_assert(wal_in_done(&in));

    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
    cr_assert_eq(r.type, WAL_MSG);
    in = wal_in_of(&r);
    cr_assert_eq(wal_get_u64(&in), 42);
    cr_assert_eq(wal_get_u8(&in), 2);
    cr_assert_eq(wal_get_u8(&in), 1);
    cr_assert_eq(wal_get_u64(&in), 0);
    p = wal_get_str16(&in, &len);
    cr_assert(len == 3 && memcmp(p, "a/b", 3) == 0);
    (void)wal_get_str32(&in, &len);
    cr_assert_eq(len, 0);
    p = wal_get_str32(&in, &len);
    cr_assert(len == 7 && memcmp(p, "payload", 7) == 0);
    cr_assert(wal_in_done(&in));

    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
    in = wal_in_of(&r);
    (void)wal_get_str16(&in, &len);
    cr_assert_eq(wal_get_u16(&in), 65535);
    cr_assert(wal_in_done(&in));
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 0, "clean end");
    cr_assert_eq(off, o.len);
    wal_out_free(&o);
}

Test(wal_format, a_field_read_past_the_body_marks_it_bad)
{
    struct wal_out o = {0};
    size_t at = wal_begin(&o, WAL_DONE);
    wal_put_u8(&o, 1);
    wal_end(&o, at);
    size_t off = 0;
    struct wal_rec r;
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
    struct wal_in in = wal_in_of(&r);
    uint32_t len;
    cr_assert_null(wal_get_str16(&in, &len), "a u16 length where one byte is left");
    cr_assert(in.bad);
    cr_assert_eq(wal_get_u64(&in), 0);
    cr_assert_not(wal_in_done(&in));
    wal_out_free(&o);
}

Test(wal_format, every_flipped_bit_fails_the_checksum)
{
    struct wal_out o = {0};
    three(&o);
    /* The first record's length, type, padding, checksum and body: every bit. */
    size_t first = 0;
    struct wal_rec r;
    cr_assert_eq(wal_read(o.buf, o.len, &first, &r), 1);
    for (size_t i = 0; i < first; i++) {
        for (int bit = 0; bit < 8; bit++) {
            o.buf[i] ^= (uint8_t)(1u << bit);
            size_t off = 0;
            cr_assert_eq(wal_read(o.buf, o.len, &off, &r), -EBADMSG, "byte %zu bit %d", i, bit);
            cr_assert_eq(off, 0, "a bad record does not move the offset");
            o.buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    wal_out_free(&o);
}

Test(wal_format, a_torn_tail_reads_up_to_the_last_whole_record)
{
    struct wal_out o = {0};
    three(&o);
    size_t ends[3];
    size_t off = 0;
    struct wal_rec r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
        ends[i] = off;
    }
    /* Cut at every length: whole records read, then the torn one is refused. */
    for (size_t cut = 0; cut < o.len; cut++) {
        size_t n = 0;
        off = 0;
        int rc;
        while ((rc = wal_read(o.buf, cut, &off, &r)) == 1)
            n++;
        size_t whole = cut >= ends[2] ? 3 : cut >= ends[1] ? 2 : cut >= ends[0] ? 1 : 0;
        cr_assert_eq(n, whole, "cut at %zu", cut);
        cr_assert_eq(rc, off == cut ? 0 : -EBADMSG, "cut at %zu", cut);
        cr_assert_eq(wal_resync(o.buf, cut, off), cut, "nothing good after a torn tail");
    }
    wal_out_free(&o);
}

Test(wal_format, zeros_after_the_records_are_the_segments_end)
{
    /* A preallocated segment: its records, then zeros (never written) to its end. */
    struct wal_out o = {0};
    three(&o);
    size_t cap = o.len + 4096;
    uint8_t *seg = calloc(1, cap);
    cr_assert_not_null(seg);
    size_t ends[3];
    size_t off = 0;
    struct wal_rec r;
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
        /* A record whose last bytes are zeros is whole without them, zeros following. */
        for (ends[i] = off; o.buf[ends[i] - 1] == 0; ends[i]--)
            ;
    }
    /* A write torn at every length: zeros after it. */
    for (size_t cut = 0; cut <= o.len; cut++) {
        memset(seg, 0, cap);
        memcpy(seg, o.buf, cut);
        size_t n = 0;
        int rc;
        off = 0;
        while ((rc = wal_read(seg, cap, &off, &r)) == 1)
            n++;
        size_t whole = cut >= ends[2] ? 3 : cut >= ends[1] ? 2 : cut >= ends[0] ? 1 : 0;
        cr_assert_eq(n, whole, "cut at %zu", cut);
        bool zeros = true;
        for (size_t i = off; i < cap; i++)
            zeros = zeros && seg[i] == 0;
        /* The end when only zeros follow; a record begun and cut short is torn. */
        cr_assert_eq(rc, zeros ? 0 : -EBADMSG, "cut at %zu", cut);
        if (cut == ends[0] || cut == ends[1] || cut == ends[2])
            cr_assert_eq(rc, 0, "zeros right after a whole record: the end (cut at %zu)", cut);
    }
    /* Zeros, then something again past the first 256 of them: not the end. */
    memset(seg, 0, cap);
    memcpy(seg, o.buf, ends[0]);
    seg[ends[0] + 1000] = 1;
    off = 0;
    cr_assert_eq(wal_read(seg, cap, &off, &r), 1);
    cr_assert_eq(wal_read(seg, cap, &off, &r), -EBADMSG, "a byte 1000 zeros on is not the end");
    /* A damaged record with zeros after it is not the end. */
    memset(seg, 0, cap);
    memcpy(seg, o.buf, o.len);
    seg[WAL_HDR_BYTES + 2] ^= 0x55;
    off = 0;
    cr_assert_eq(wal_read(seg, cap, &off, &r), -EBADMSG);
    cr_assert_eq(off, 0);
    free(seg);
    wal_out_free(&o);
}

Test(wal_format, resync_skips_garbage_to_the_next_good_record)
{
    struct wal_out o = {0};
    three(&o);
    size_t second = 0;
    struct wal_rec r;
    cr_assert_eq(wal_read(o.buf, o.len, &second, &r), 1);
    /* Damage the first record's body: it fails, and the second is found after it. */
    o.buf[WAL_HDR_BYTES + 2] ^= 0x55;
    size_t off = 0;
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), -EBADMSG);
    cr_assert_eq(wal_resync(o.buf, o.len, off), second);
    off = second;
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
    cr_assert_eq(r.type, WAL_MSG);
    wal_out_free(&o);
}

Test(wal_format, unknown_types_and_nonzero_padding_are_refused)
{
    struct wal_out o = {0};
    size_t at = wal_begin(&o, WAL_DONE);
    wal_put_u16(&o, 1);
    wal_end(&o, at);
    struct wal_rec r;
    size_t off = 0;
    o.buf[4] = WAL_TYPE_END; /* the checksum is seeded with the type: recompute cannot help */
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), -EBADMSG);
    o.buf[4] = WAL_DONE;
    o.buf[6] = 1;
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), -EBADMSG);
    o.buf[6] = 0;
    cr_assert_eq(wal_read(o.buf, o.len, &off, &r), 1);
    wal_out_free(&o);
}
