/*
 * lg_msg.h - what a load-generator message carries, and how a subscriber
 * accounts for what it receives.
 *
 * Every PUBLISH payload starts with a 16-byte stamp: the publisher's
 * sequence number (u32), the publisher id (u32) and the send time in
 * CLOCK_MONOTONIC nanoseconds (u64), all little-endian; the rest of the
 * payload is filler. A subscriber keeps one struct lg_msg_track per
 * publisher it hears, which tells new messages from duplicates and counts
 * those arriving after a later one (out of order).
 *
 * Pure: no clock, no syscalls. A tracker is owned by the subscriber's worker
 * thread.
 */
#ifndef RINGMQ_LG_MSG_H
#define RINGMQ_LG_MSG_H

#include <stdbool.h>
#include <stdint.h>

#define LG_MSG_STAMP_BYTES 16u
/* How far behind the newest sequence number duplicates are still told apart. */
#define LG_MSG_TRACK_SPAN 64u

struct lg_msg_stamp {
    uint32_t seq;
    uint32_t pub_id;
    uint64_t sent_ns;
};

/* One (subscriber, publisher) edge. Zeroed means "nothing received yet". */
struct lg_msg_track {
    uint32_t next;     /* one past the highest sequence number received */
    uint64_t seen;     /* bit i set: (next - 1 - i) was received */
    uint64_t received; /* distinct messages */
    uint64_t dups;     /* copies of a message already received */
    uint64_t ooo;      /* new messages that arrived after a later one */
};

enum lg_msg_verdict {
    LG_MSG_NEW = 1,  /* first copy, in order or after a gap */
    LG_MSG_LATE = 2, /* first copy, but a later one came first (counted in ooo) */
    LG_MSG_DUP = 3,  /* a copy of one already received */
};

/* Write @s into the first LG_MSG_STAMP_BYTES of @buf. */
void lg_msg_stamp_put(uint8_t *buf, const struct lg_msg_stamp *s);

/* Read the stamp from @buf, which holds @len bytes; false if too short. */
bool lg_msg_stamp_get(const uint8_t *buf, uint32_t len, struct lg_msg_stamp *s);

/*
 * Account message @seq on edge @t. @dup_flag is the PUBLISH DUP bit: a
 * message older than LG_MSG_TRACK_SPAN behind the newest cannot be checked
 * against the bitmap, and is taken as a duplicate only when the broker marked
 * it as a redelivery (otherwise as a late first copy).
 * Returns the verdict; the counters in @t are updated.
 */
enum lg_msg_verdict lg_msg_track_note(struct lg_msg_track *t, uint32_t seq, bool dup_flag);

#endif
