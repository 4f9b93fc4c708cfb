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
#include "core/limits.h"
#include "core/xs.h"

struct mqtt_pkt;
struct trie;
struct retained;

/* A message waiting in the broker's outbox for another shard. */
struct broker_xs {
    uint32_t dest;
    struct xs_msg m;
};

/* A retained publish waiting for every replica (see broker.waits). */
struct broker_wait {
    struct client *cl; /* NULL once the client is gone */
    uint32_t gen;      /* bumped when the slot is freed: stale tokens miss */
    uint32_t remaining; /* acknowledgements still to come (slot free: 0 and no cl) */
    uint16_t pkt_id;
    uint8_t ack_type;  /* MQTT_PUBACK, MQTT_PUBREC, or 0 (QoS 0: nothing to send) */
};

struct broker {
    const struct limits *lim;
    uint32_t shard_id;
    uint32_t shard_count;
    struct trie *trie;     /* this shard's sessions' subscriptions */
    struct trie *interest; /* filters other shards subscribe to; owner = &shard_marker[i] */
    uint8_t *shard_marker; /* shard_count distinct addresses, one per shard */
    struct retained *retained;

    /* Outbox to other shards: a FIFO ring, drained by net/ each iteration. */
    struct broker_xs *xs;
    uint32_t xs_head;
    uint32_t xs_count;
    uint32_t xs_cap;

    /* Routing scratch: shards with interest in the publish being routed. */
    uint64_t shard_hit[BROKER_SHARDS_MAX / 64];
    uint32_t remote[BROKER_SHARDS_MAX];
    uint32_t remote_count;

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

    /*
     * Clients held until every shard's retained replica has applied their
     * retained QoS 1/2 publish: only then is it acknowledged, so a subscribe
     * made after the PUBACK sees it on any shard [MQTT-3.3.1-6].
     */
    struct broker_wait *waits;
    uint32_t wait_cap;
    uint32_t wait_used;

    /*
     * While a SUBSCRIBE is handled: its client, and the wait its new filters'
     * XS_INTEREST_ADDs are acknowledged on. The SUBACK goes out only once
     * every other shard forwards matching publishes here, so a publish made
     * after the SUBACK is never missed.
     */
    struct client *sub_client;
    uint64_t sub_token;

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

/* Encode a packet-id-only packet (PUBACK, PUBREC, ...) for @cl; as broker__send(). */
int broker__send_ack(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id);

/*
 * Drop one reference to @m; when it was the last, free it here if this is
 * its home shard, else send it home (XS_MSG_FREE). NULL is a no-op.
 */
void broker__msg_put(struct broker *b, struct msg *m);

/*
 * Queue @m for shard @dest. Never fails the caller: the outbox grows, and on
 * allocation failure the message is lost and counted (QoS 1/2 loss is only
 * possible when the process is out of memory).
 */
void broker__xs_push(struct broker *b, uint32_t dest, const struct xs_msg *m);

/*
 * This shard's sessions subscribe (@add) or no longer subscribe to @filter
 * at all: tell every other shard, so they forward matching messages here.
 */
void broker__interest(struct broker *b, const uint8_t *filter, size_t len, bool add);

/*
 * The bound for packets that must not be shed (acks, QoS 1/2 PUBLISH):
 * twice output_bytes_max. A client that lets that much pile up (it sends
 * but does not read) is closed rather than allowed to grow broker memory.
 */
static inline size_t broker__output_hard_max(const struct broker *b)
{
    return (size_t)b->lim->output_bytes_max * 2;
}

#endif
