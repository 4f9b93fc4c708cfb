/*
 * broker.h - one shard's MQTT logic: the facade net/ drives.
 *
 * A struct broker owns this shard's sessions (by client id), its trie of
 * subscriptions and its retained store. net/ embeds one struct client in each
 * connection and feeds it the bytes it receives; the broker decodes packets,
 * runs the session state machine, routes publishes and appends the encoded
 * answers to each affected client's output buffer. It returns no bytes
 * directly: clients with new output, or that must be closed, are put on the
 * broker's dirty list, which net/ drains once per loop iteration - that is
 * where output is batched into one send per connection.
 *
 * Pure (core/): no syscalls, no clocks, no globals. Owned by one shard; every
 * function must be called on that shard's thread.
 */
#ifndef RINGMQ_BROKER_H
#define RINGMQ_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/obuf.h"

struct broker;
struct session;
struct limits;
struct msg;

enum client_state {
    CLIENT_NEW = 0,   /* accepted, no CONNECT yet */
    CLIENT_CONNECTED, /* CONNECT accepted, session attached */
    CLIENT_CLOSING,   /* flush out, then close the connection */
};

/*
 * Per-connection protocol state, embedded in net/'s struct conn. Fields
 * without a leading underscore may be read by net/; only the broker writes.
 */
struct client {
    struct obuf out;       /* encoded packets waiting to be sent */
    uint8_t state;         /* enum client_state */
    uint8_t version;       /* protocol level, 0 until CONNECT accepted */
    uint16_t keepalive_s;  /* from CONNECT; 0 = none */
    int close_rc;          /* when CLOSING: why (-MQTT_RC_*), for logs */

    /* Private to core/broker.c. */
    struct session *_sess;
    struct client *_dirty_next;
    struct client *_dirty_prev;
    bool _dirty;
    bool _clean_disconnect; /* DISCONNECT received: no will */
    uint8_t _partial_hdr_len;
    uint8_t _partial_hdr[5];  /* a fixed header split across reads */
    uint8_t *_partial;        /* a packet split across reads, whole packet size */
    uint32_t _partial_len;
    uint32_t _partial_need;
    struct msg *_will;        /* will of this connection, if any */
};

/* Counters; read by net/ for logs and (later) $SYS and Prometheus. */
struct broker_stats {
    uint64_t pkts_in;
    uint64_t pkts_out;
    uint64_t msgs_in;          /* PUBLISH received */
    uint64_t msgs_out;         /* PUBLISH sent or queued to subscribers */
    uint64_t msgs_dropped;     /* QoS 0 shed (slow or offline subscriber) */
    uint64_t queue_full;       /* QoS 1/2 refused by a full session queue */
    uint64_t malformed;        /* connections closed for protocol errors */
    uint64_t connects;
    uint64_t connects_refused;
    uint64_t takeovers;
    uint64_t wills_sent;
    uint32_t sessions;         /* live session objects, online or not */
    uint32_t clients;          /* connected clients */
};

/*
 * A broker for one shard, reading limits from @lim (borrowed; must outlive
 * the broker). @shard_id goes into assigned client ids. NULL on ENOMEM.
 */
struct broker *broker_new(const struct limits *lim, uint32_t shard_id);

/* Free every session, subscription, retained and queued message. */
void broker_free(struct broker *b);

/* Point the broker at a new limits snapshot (config reload). */
void broker_set_limits(struct broker *b, const struct limits *lim);

/* Initialise @cl for a newly accepted connection. */
void broker_client_init(struct broker *b, struct client *cl);

/*
 * Feed @len received bytes. Whole packets are handled in place; a trailing
 * partial packet is copied into the client. Answers are appended to cl->out
 * (and other clients' out, for routed messages) and those clients are put on
 * the dirty list.
 * Returns 0 to keep reading; >0 when the client sent DISCONNECT; or a
 * negative mqtt_rc for a protocol error (already counted, and any answer the
 * spec requires, such as CONNACK 0x01, is queued). In both non-zero cases the
 * client is now CLOSING and on the dirty list: stop reading, flush cl->out,
 * close. Bytes fed to a CLOSING client are ignored (same return value).
 */
int broker_client_feed(struct broker *b, struct client *cl, const uint8_t *buf, size_t len);

/*
 * The connection of @cl is gone (peer closed, I/O error, keepalive or connect
 * timeout, or the broker closed it). @reason is 0 or a negative errno/mqtt_rc,
 * for logs. Publishes the will unless a DISCONNECT was received, detaches the
 * session (kept if clean session was 0, destroyed otherwise), frees the
 * client's buffers, and removes it from the dirty list. @cl may then be freed.
 */
void broker_client_gone(struct broker *b, struct client *cl, int reason);

/*
 * Pop the next client that got output or must close since the last call, or
 * NULL. net/ calls this at the end of each loop iteration and, for each,
 * starts a send if none is in flight, and closes it once flushed if
 * CLIENT_CLOSING.
 */
struct client *broker_next_dirty(struct broker *b);

/* The broker's counters. */
const struct broker_stats *broker_stats(const struct broker *b);

#endif
