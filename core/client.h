/*
 * client.h - one connection's protocol state, as net/ embeds it in its
 * struct conn and core/ keeps it: what net/ may read, and what core/ alone
 * touches (the fields with a leading underscore).
 *
 * Owned by the shard that owns the connection; single-threaded.
 */
#ifndef RINGMQ_CLIENT_H
#define RINGMQ_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/obuf.h"

/* Listeners a client may come in on (client.listener is below it). */
#define CLIENT_LISTENERS_MAX 16u

struct client_v5;
struct msg;
struct session;

enum client_state {
    CLIENT_NEW = 0,   /* accepted, no CONNECT yet */
    CLIENT_CONNECTED, /* CONNECT accepted, session attached */
    CLIENT_CLOSING,   /* flush out, then close the connection */
    CLIENT_HANDOFF,   /* CONNECT belongs to another shard: hand the connection over */
};

/* broker_client_feed() results besides 0 (keep reading) and -MQTT_RC_*. */
enum client_feed {
    CLIENT_FEED_CLOSE = 1,   /* DISCONNECT received: flush, then close */
    CLIENT_FEED_HANDOFF = 2, /* hand the connection to cl->handoff_shard */
};

/*
 * Per-connection protocol state, embedded in net/'s struct conn. Fields
 * without a leading underscore may be read by net/; only the broker writes.
 */
struct client {
    struct obuf out;        /* encoded packets waiting to be sent */
    uint8_t state;          /* enum client_state */
    uint8_t version;        /* protocol level, 0 until CONNECT accepted */
    uint16_t keepalive_s;   /* from CONNECT; 0 = none */
    int close_rc;           /* when CLOSING: why (-MQTT_RC_*), for logs */
    union {
        uint32_t handoff_shard; /* when HANDOFF: the session's home shard */
        /*
         * Private to core/, when CONNECTED (output_overloaded()): the broker
         * clock's second, mod 65536, when messages began to be dropped for
         * it (0: they are not) and when the last one was.
         */
        struct {
            uint16_t _over_since_s;
            uint16_t _over_last_s;
        };
    };

    /* Private to core/. */
    uint32_t _wait; /* 1 + broker wait slot while held, else 0 */
    struct session *_sess;
    struct client *_dirty_next;
    struct client *_dirty_prev;
    bool _dirty;
    uint8_t _partial_hdr_len;
    uint8_t _partial_hdr[5]; /* a fixed header split across reads */
    /*
     * Written by net/ after broker_client_init(), read by core/login: the
     * index of the listener the connection came in on (it lives in what
     * was padding: no byte more per connection); below CLIENT_LISTENERS_MAX.
     */
    uint8_t listener;
    /*
     * A held client (_wait) has no partial packet: its input goes to _held
     * unparsed, and a packet is whole before it can hold its client. So
     * the two share their bytes; either pointer frees them.
     */
    union {
        struct {
            uint8_t *_partial; /* a packet split across reads, whole packet size */
            uint32_t _partial_len;
            uint32_t _partial_need;
        };
        struct obuf _held; /* bytes received while held, handled after */
    };
    struct msg *_will;     /* will of this connection, if any */
    struct client_v5 *_v5;    /* MQTT 5.0 state, only once needed (output_v5_state()) */
};

_Static_assert(offsetof(struct client, _partial) == offsetof(struct client, _held.data),
               "_partial and _held share their buffer");
_Static_assert(offsetof(struct client, listener) < offsetof(struct client, _partial),
               "listener fills the padding before the union");

#endif
