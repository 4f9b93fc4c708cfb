/*
 * limits.h - every limit on peer input, in one struct, with its default.
 *
 * config/ owns the values (one read-only snapshot); core/ reads them through
 * a borrowed pointer. The defaults live in config/config_keys.c's table, the one
 * list of keys. Nothing here is mutable after start-up (or reload).
 */
#ifndef RINGMQ_LIMITS_H
#define RINGMQ_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard protocol maxima (MQTT 3.1.1 section 2.2.3 and 1.5.3). */
#define LIMITS_REMAINING_LENGTH_MAX 268435455u
#define LIMITS_STRING_BYTES_MAX 65535u

/* Shards supported: the size of the per-publish shard bitmap (core/route.c). */
#define LIMITS_SHARDS_MAX 256u

/*
 * memory_max = auto, until net/main.c resolves it at start-up (half of the
 * physical memory or of the cgroup's limit, whichever is lower).
 */
#define LIMITS_MEMORY_AUTO UINT64_MAX

struct limits {
    uint32_t packet_bytes_max;       /* whole packet, fixed header included */
    uint32_t client_id_bytes_max;    /* longer client ids are refused (0x02 / 0x85) */
    uint32_t topic_bytes_max;        /* topic names and filters */
    uint32_t topic_levels_max;       /* '/'-separated levels in a name or filter */
    uint32_t subs_per_client_max;    /* subscriptions held by one session */
    uint32_t inflight_max;           /* outbound QoS 1/2 awaiting ack, per session */
    uint32_t inflight_in_max;        /* inbound QoS 2 awaiting PUBREL, per session */
    uint32_t queued_max;             /* messages queued per session (offline or over inflight) */
    uint32_t queued_bytes_max;       /* their payload bytes; 0 = no bound but queued_max */
    uint32_t output_bytes_max;       /* pending output per connection before QoS 0 is shed */
    uint32_t slow_reader_grace_s;    /* over a bound this long (drops): closed; 0 never */
    uint32_t retained_max;           /* retained messages held by the broker */
    uint32_t connect_timeout_ms;     /* from accept to a complete CONNECT */
    uint32_t connections_max;        /* connections per process (all listeners) */
    uint32_t connections_per_address_max; /* open connections from one source address; 0: any */
    uint32_t accept_rate_max;        /* connections admitted per second, per process; 0: any */
    uint64_t memory_max;             /* RSS budget in bytes; 0: off; LIMITS_MEMORY_AUTO */
    bool allow_zero_length_client_id;

    /* MQTT 5.0 features, advertised in CONNACK ([mqtt] section). */
    uint8_t max_qos;                 /* highest QoS accepted and granted, 0..2 */
    bool retain_available;
    bool wildcard_subscriptions;
    bool subscription_identifiers;
    bool shared_subscriptions;
    uint16_t topic_alias_max;        /* inbound topic aliases per connection; 0 = none */
    uint16_t keepalive_max_s;        /* 0: the client's keep alive stands */
    bool auth_test_method;           /* [auth] test_method: the test-only AUTH method */

    /*
     * Not configured: a random secret the binary draws at start-up, the same
     * for every shard, that seeds shared-group keys (share_key()) so a
     * client cannot compute filters whose keys collide or are 0.
     */
    uint64_t share_key_seed;
};

/*
 * The bound on a connection's output for packets that must not be shed
 * (acks, QoS 1/2 PUBLISH): twice output_bytes_max. A client that lets that
 * much pile up (it sends but does not read) is closed instead.
 */
static inline size_t limits_output_hard_max(const struct limits *lim)
{
    return (size_t)lim->output_bytes_max * 2;
}

#endif
