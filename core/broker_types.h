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
#include "core/mqtt_codec.h"
#include "core/trie.h"
#include "core/xmsg.h"

struct auth_method;
struct mqtt_pkt;
struct share_table;
struct trie;
struct retained;

/* An outbound topic alias (MQTT 5.0 section 3.3.2.3.4), least recently used first out. */
struct alias_out {
    uint8_t *topic;
    uint16_t topic_len;
    uint16_t alias;
    uint32_t used; /* client_v5.alias_clock when last used */
};

/* Outbound aliases used per connection, at most (within the client's maximum). */
#define BROKER_ALIAS_OUT_MAX 32u

/*
 * What a connection negotiated with MQTT 5.0, allocated only for v5 clients
 * (3.1.1 connections pay nothing for it).
 */
struct client_v5 {
    uint32_t max_packet;   /* the client's Maximum Packet Size (protocol maximum if none) */
    uint32_t will_delay_s; /* the will's Will Delay Interval */
    uint16_t recv_max;     /* the client's Receive Maximum */
    uint16_t alias_max;    /* the client's Topic Alias Maximum: outbound aliases */
    uint16_t alias_out_count;
    uint32_t alias_clock;
    struct alias_out *alias_out; /* [BROKER_ALIAS_OUT_MAX], lazily */
    struct mqtt_str *alias_in;   /* [alias_in_cap] owned copies, lazily */
    uint16_t alias_in_cap;       /* topic_alias_max when alias_in was allocated */
    /* Enhanced authentication in progress (core/auth.h). */
    const struct auth_method *auth;
    uint8_t *auth_connect;       /* the CONNECT packet, handled once authenticated */
    uint32_t auth_connect_len;
    uint8_t auth_step;
    uint64_t auth_deadline_ms; /* a re-authentication must end by then */
};

/* A shared group's choice for the message being routed: a local member or another shard. */
struct broker_share_pick {
    uint64_t key;
    struct session *member; /* NULL: send to @shard */
    uint32_t shard;
    uint8_t options;
};

/* A message waiting in the broker's outbox for another shard. */
struct broker_outbox_entry {
    uint32_t dest;
    struct xmsg m;
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
    struct share_table *share; /* shared subscription groups ($share/g/f) */

    /* Outbox to other shards: a FIFO ring, drained by net/ each iteration. */
    struct broker_outbox_entry *outbox;
    uint32_t outbox_head;
    uint32_t outbox_count;
    uint32_t outbox_cap;

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

    /*
     * Routing scratch: the topic being routed, split and hashed once under
     * seed, which the trie, the interest map and the shared groups share.
     */
    uint64_t seed;
    struct trie_name split;
    /* Routing scratch: sessions matched by the publish being routed. */
    struct session **match;
    uint32_t match_count;
    uint32_t match_cap;
    uint32_t match_epoch;

    /* Scratch for the subscription identifiers of one PUBLISH. */
    uint32_t *sub_ids;
    uint32_t sub_ids_cap;

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
     * XMSG_INTEREST_ADDs are acknowledged on. The SUBACK goes out only once
     * every other shard forwards matching publishes here, so a publish made
     * after the SUBACK is never missed.
     */
    struct client *sub_client;
    uint64_t sub_token;

    /*
     * Offline sessions with a deadline: a finite session expiry, or a
     * delayed will. Walked by broker_tick() at next_scan_ms: the earliest
     * deadline, at most once a second.
     */
    struct session *timed_head;
    uint64_t now_ms;      /* broker_tick()'s clock */
    uint64_t next_scan_ms;

    /* Routing scratch: one pick per matching shared group. */
    struct broker_share_pick *picks;
    uint32_t pick_count;
    uint32_t pick_cap;

    /* Routing scratch: the session publishing (No Local), or NULL. */
    const struct session *publisher;

    uint64_t assigned_id_seq;
    struct broker_stats stats;
};

/* Put @cl on the dirty list (idempotent). */
void broker__mark_dirty(struct broker *b, struct client *cl);

/*
 * Encode @pkt into @cl's output buffer and mark it dirty. @bytes_max bounds
 * the buffer (output_bytes_max for what may be shed, larger for what must be
 * sent). Returns 0, -ENOBUFS over @bytes_max, -ENOMEM, -EMSGSIZE over
 * an MQTT 5.0 client's Maximum Packet Size (nothing is sent).
 */
int broker__send(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt,
                 size_t bytes_max);

/*
 * Send PUBLISH @pkt to @cl as broker__send() does, first giving it an
 * outbound topic alias where the client allows them. -EMSGSIZE: over the
 * client's Maximum Packet Size, not sent [MQTT-3.1.2-24].
 */
int broker__send_publish(struct broker *b, struct client *cl, struct mqtt_pkt *pkt,
                         size_t bytes_max);

/* Encode a packet-id-only packet (PUBACK, PUBREC, ...) for @cl; as broker__send(). */
int broker__send_ack(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id);

/*
 * Drop one reference to @m; when it was the last, free it here if this is
 * its home shard, else send it home (XMSG_MSG_FREE). NULL is a no-op.
 */
void broker__msg_put(struct broker *b, struct msg *m);

/*
 * Queue @m for shard @dest. Never fails the caller: the outbox grows, and on
 * allocation failure the message is lost and counted (QoS 1/2 loss is only
 * possible when the process is out of memory).
 */
void broker__outbox_push(struct broker *b, uint32_t dest, const struct xmsg *m);

/*
 * Give @m, which a shared group @key member @from can no longer take, to
 * another member of the group: on this shard if one is here, else on
 * another shard. Returns false when @from is the only member left anywhere
 * (the caller keeps it).
 */
bool broker__share_redispatch(struct broker *b, struct msg *m, uint64_t key,
                              const struct session *from);

/*
 * This shard's sessions subscribe (@add) or no longer subscribe to @filter
 * at all: tell every other shard, so they forward matching messages here.
 */
void broker__interest(struct broker *b, const uint8_t *filter, size_t len, bool add);

/* The bound for packets that must not be shed: limits_output_hard_max(). */
static inline size_t broker__output_hard_max(const struct broker *b)
{
    return limits_output_hard_max(b->lim);
}

#endif
