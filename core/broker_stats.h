/*
 * broker_stats.h - one shard's counters, written by core/ and read by net/
 * for logs, $SYS and metrics.
 *
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_BROKER_STATS_H
#define RINGMQ_BROKER_STATS_H

#include <stdint.h>

/* Counters; read by net/ for logs and (later) $SYS and Prometheus. */
struct broker_stats {
    uint64_t pkts_in;
    uint64_t pkts_out;
    uint64_t msgs_in;      /* PUBLISH received */
    uint64_t msgs_out;     /* PUBLISH sent or queued to subscribers */
    uint64_t msgs_dropped; /* QoS 0 shed (slow or offline subscriber) */
    uint64_t msgs_shed_memory; /* QoS 0 PUBLISH dropped on arrival: memory pressure */
    uint64_t msgs_refused;     /* PUBLISH to a '$' topic (the broker's) or denied: not routed */
    uint64_t acl_publish_denied;   /* PUBLISH (and wills) the ACL denied */
    uint64_t acl_subscribe_denied; /* SUBSCRIBE filters the ACL refused (0x87 / 0x80) */
    uint64_t acl_read_denied;      /* deliveries the ACL withheld from a subscriber */
    uint64_t queue_full;   /* QoS 1/2 refused by a full session queue */
    uint64_t slow_readers_closed; /* clients over their bounds past slow_reader_grace */
    uint64_t malformed;    /* connections closed for protocol errors */
    uint64_t connects;
    uint64_t connects_refused;
    uint64_t takeovers;
    uint64_t takeovers_refused; /* CONNECTs refused: the client id's session is another user's */
    uint64_t logins_ok;         /* user names authenticated (password or certificate) */
    uint64_t logins_failed;     /* unknown user or wrong password */
    uint64_t logins_refused;    /* anonymous where not allowed, or no certificate identity */
    uint64_t logins_delayed;    /* refusals answered late: their address failed before */
    uint64_t logins_deferred;   /* password checks put off to a later loop iteration */
    uint64_t wills_sent;
    uint64_t msgs_expired;     /* v5 messages past their expiry, not delivered */
    uint64_t msgs_too_large;   /* not sent: over the client's Maximum Packet Size */
    uint64_t sessions_expired; /* v5 sessions ended by their expiry interval */
    uint64_t deadline_nomem;   /* offline sessions left without expiry (will sent early): ENOMEM */
    uint64_t share_dropped;    /* shared-group messages with no member left to take them */
    uint64_t handoffs;         /* connections handed to their home shard */
    uint64_t xmsg_publish_out; /* messages sent to other shards (once per shard) */
    uint64_t xmsg_lost;        /* cross-shard messages lost to allocation failure */
    uint64_t route_nomem;      /* messages routed to nobody: no memory to split the topic */
    uint64_t retained_refused; /* retained publishes not kept: store full (or no memory) */
    uint64_t retained_expired; /* retained messages swept out after their expiry */
    uint64_t rpair_nomem;    /* retained messages delivered unpaired: no memory (rpair.h) */
    uint64_t rpair_timeouts; /* a retained message's notice or apply never came */
    uint64_t wait_timeouts;    /* clients released without every shard's acknowledgement */
    uint64_t wait_failed;      /* durability promises the log could not keep: closed, never acked */
    uint64_t publishers_held;  /* QoS 1/2 publishes held: they crossed to a congested shard */
    uint64_t hold_nomem;       /* ... acknowledged at once instead: no memory to hold them */
    /* By QoS (index 0..2): PUBLISH received and sent, and their payload bytes. */
    uint64_t msgs_in_qos[3];
    uint64_t bytes_in_qos[3];
    uint64_t msgs_out_qos[3];
    uint64_t bytes_out_qos[3];
    uint64_t connects_proto[3]; /* connects by protocol: [0] 3.1, [1] 3.1.1, [2] 5.0 */
    uint64_t queued;           /* QoS 1/2 messages waiting in session queues (a gauge) */
    uint64_t inflight;         /* messages in sessions' inflight windows (a gauge) */
    uint32_t sessions;         /* live session objects, online or not */
    uint32_t clients;          /* connected clients */
};

#endif
