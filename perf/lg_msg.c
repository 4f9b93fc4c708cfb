/*
 * lg_msg.c - payload stamp and per-edge receive accounting; see lg_msg.h.
 *
 * The tracker is a sliding 64-bit bitmap below the highest sequence number
 * seen: O(1) per message and 40 bytes per edge, so fan-in 1000 -> 1 costs a
 * subscriber 40 KB. Called from the subscriber's worker thread only.
 */
#include "perf/lg_msg.h"

#include <stddef.h>

#include "core/rm_assert.h"

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void lg_msg_stamp_put(uint8_t *buf, const struct lg_msg_stamp *s)
{
    RM_ASSERT(buf != NULL);
    RM_ASSERT(s != NULL);
    put_le32(buf, s->seq);
    put_le32(buf + 4, s->pub_id);
    put_le32(buf + 8, (uint32_t)s->sent_ns);
    put_le32(buf + 12, (uint32_t)(s->sent_ns >> 32));
}

bool lg_msg_stamp_get(const uint8_t *buf, uint32_t len, struct lg_msg_stamp *s)
{
    RM_ASSERT(s != NULL);
    RM_ASSERT(buf != NULL || len == 0);
    if (len < LG_MSG_STAMP_BYTES) {
        return false;
    }
    s->seq = get_le32(buf);
    s->pub_id = get_le32(buf + 4);
    s->sent_ns = (uint64_t)get_le32(buf + 8) | (uint64_t)get_le32(buf + 12) << 32;
    return true;
}

enum lg_msg_verdict lg_msg_track_note(struct lg_msg_track *t, uint32_t seq, bool dup_flag)
{
    enum lg_msg_verdict v;
    uint32_t back;

    RM_ASSERT(t != NULL);
    RM_ASSERT(t->next != 0 || t->seen == 0);
    RM_ASSERT(seq != UINT32_MAX); /* the caller checks seq against what was sent */

    if (seq >= t->next) {
        uint32_t shift = seq - t->next + 1;

        t->seen = shift >= 64 ? 0 : t->seen << shift;
        t->seen |= 1;
        t->next = seq + 1;
        t->received++;
        v = LG_MSG_NEW;
        goto out;
    }
    back = t->next - 1 - seq;
    if (back >= LG_MSG_TRACK_SPAN) {
        if (dup_flag) {
            t->dups++;
            v = LG_MSG_DUP;
        } else {
            t->received++;
            t->ooo++;
            v = LG_MSG_LATE;
        }
        goto out;
    }
    if ((t->seen >> back) & 1) {
        t->dups++;
        v = LG_MSG_DUP;
        goto out;
    }
    t->seen |= 1ull << back;
    t->received++;
    t->ooo++;
    v = LG_MSG_LATE;
out:
    RM_ASSERT((t->seen & 1) != 0);
    RM_ASSERT(t->received + t->dups > 0);
    return v;
}
