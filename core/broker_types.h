/*
 * broker_types.h - struct broker and the internals core/broker.c shares with
 * core/session.c. Nothing outside core/ includes this.
 *
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_BROKER_TYPES_H
#define RINGMQ_BROKER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/broker.h"

struct mqtt_pkt;
struct trie;
struct retained;

struct broker {
    const struct limits *lim;
    uint32_t shard_id;
    struct trie *trie;
    struct retained *retained;

    /* Sessions by client id: chained hash table, power-of-two buckets. */
    struct session **sess_buckets;
    uint32_t sess_bucket_count;
    uint32_t sess_count;

    /* Clients with new output or closing, in the order they became so. */
    struct client *dirty_head;
    struct client *dirty_tail;

    /* Routing scratch: sessions matched by the publish being routed. */
    struct session **match;
    uint32_t match_count;
    uint32_t match_cap;
    uint32_t match_epoch;

    /* Scratch for SUBACK return codes. */
    uint8_t *rcs;
    uint32_t rcs_cap;

    uint64_t assigned_id_seq;
    struct broker_stats stats;
};

/* Put @cl on the dirty list (idempotent). */
void broker__mark_dirty(struct broker *b, struct client *cl);

/*
 * Encode @pkt into @cl's output buffer and mark it dirty. @bytes_max bounds
 * the buffer (output_bytes_max for what may be shed, larger for what must be
 * sent). Returns 0, -ENOBUFS over @bytes_max, -ENOMEM.
 */
int broker__send(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt,
                 size_t bytes_max);

/* The bound for packets that must not be shed (acks, QoS 1/2 PUBLISH). */
#define BROKER_OUTPUT_HARD_MAX (UINT32_MAX / 2)

#endif
