/*
 * fuzz_wal_replay.c - libFuzzer target: any bytes as a write-ahead log
 * segment replayed at start-up (core/wal_replay through the broker).
 *
 * The first byte picks the shard count (1 to 4), which of them replays,
 * whether the segment is its stream's last (a torn tail) or not
 * (corruption in the middle), whether the file's data ends halfway (bit
 * 5: a hole after it, which only a record running into it reads), and
 * whether the broker then runs with fsync = always (bit 6); the rest is
 * the segment, possibly several
 * WAL_SEGMENT-headed streams. Replay must never crash, hang, leak or read
 * out of bounds, whatever the records say; the broker it rebuilt must then
 * tick once (open gives are routed again: core/give.h), take a snapshot
 * of itself (compaction), make its batch durable and free cleanly.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/broker.h"
#include "core/limits.h"
#include "core/rm_assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct limits lim = {
        .packet_bytes_max = 1 << 20,
        .client_id_bytes_max = 256,
        .topic_bytes_max = 65535,
        .topic_levels_max = 128,
        .subs_per_client_max = 64,
        .inflight_max = 8,
        .inflight_in_max = 16,
        .queued_max = 64,
        .output_bytes_max = 1 << 20,
        .retained_max = 256,
        .connect_timeout_ms = 1000,
        .connections_max = 16,
        .max_qos = 2,
        .retain_available = true,
        .wildcard_subscriptions = true,
        .subscription_identifiers = true,
        .shared_subscriptions = true,
        .topic_alias_max = 10,
    };
    if (size < 1)
        return 0;
    uint32_t count = 1u + (data[0] & 3u);
    uint32_t id = ((uint32_t)data[0] >> 2) % count;
    bool last = (data[0] & 0x80u) == 0;
    /* Bit 5: the file's data ends halfway (struct wal_seg's data: a hole after it). */
    size_t hole_at = (data[0] & 0x20u) ? (size - 1) / 2 : size - 1;
    struct wal_seg seg = {data + 1, size - 1, "fuzz", last, hole_at};
    struct broker *b = broker_new(&lim, id, count);
    if (!b)
        return 0;
    broker_tick(b, 1000000);
    struct wal_replay_report rep;
    bool sync = (data[0] & 0x40u) != 0;
    if (broker_wal_replay(b, &seg, 1, 0, NULL, NULL, &rep) == 0 &&
        broker_wal_start(b, sync, 0) == 0) {
        broker_tick(b, 1000001); /* what the log held open goes again */
        struct broker_wal_cursor cur = {0};
        /* Bounded: each call moves on by a bucket at least. */
        for (int i = 0; i < 100000 && !broker_wal_snapshot(b, &cur, 16); i++) {
        }
        const uint8_t *buf;
        size_t len;
        if (broker_wal_take(b, &buf, &len))
            broker_wal_durable(b);
    }
    RM_ASSERT(rep.records <= size);
    broker_free(b);
    return 0;
}
