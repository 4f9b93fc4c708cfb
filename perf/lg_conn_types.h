/*
 * lg_conn_types.h - one load-generator client connection (struct lg_conn)
 * and its states, roles and flags.
 *
 * lg_run.c allocates the connections of each worker; from lg_worker_start()
 * until lg_worker_join() returns, a connection belongs to that worker thread
 * alone. lg_conn.c writes the state; the comments name the modules that
 * write the other fields.
 */
#ifndef RINGMQ_LG_CONN_TYPES_H
#define RINGMQ_LG_CONN_TYPES_H

#include <stdbool.h>
#include <stdint.h>

#include "perf/lg_transport_types.h"

struct lg_pub;
struct lg_sub;

/* Where a connection is in its life (lg_conn.c moves it). */
enum lg_conn_state {
    LG_CONN_NEW = 0,     /* not tried yet */
    LG_CONN_CONNECTING,  /* TCP connect in progress */
    LG_CONN_OPENING,     /* transport handshake (TLS, WebSocket) in progress */
    LG_CONN_MQTT,        /* CONNECT sent, waiting for CONNACK */
    LG_CONN_SUBSCRIBING, /* SUBSCRIBE sent, waiting for SUBACK */
    LG_CONN_READY,       /* connected (and subscribed) */
    LG_CONN_RETRY,       /* an attempt failed; the next is due at t_attempt_ns */
    LG_CONN_FAILED,      /* every attempt failed */
    LG_CONN_CLOSED,      /* lost or closed after connecting */
};

/* What the client does (set once, by lg_run.c). */
enum lg_conn_role {
    LG_CONN_ROLE_IDLE = 0,
    LG_CONN_ROLE_PUB,
    LG_CONN_ROLE_SUB,
};

enum lg_conn_flag {
    LG_CONN_F_DIRTY = 1,   /* in the worker's dirty list (lg_wire) */
    LG_CONN_F_OUT = 2,     /* EPOLLOUT is armed (lg_sock) */
    LG_CONN_F_PING = 4,    /* PINGREQ sent, PINGRESP not yet seen (lg_conn, lg_input) */
    LG_CONN_F_EPOLL = 8,   /* fd is registered with epoll (lg_sock) */
    LG_CONN_F_RXMORE = 16, /* in the worker's rx-more list (lg_input) */
};

/*
 * One client connection, 112 bytes plus buffers that exist only while
 * needed: output until it is sent (kept for busy clients), input only for a
 * partial packet.
 * THREADING: owned by one worker thread (see above).
 */
struct lg_conn {
    struct lg_tconn tc; /* fd: lg_sock; the rest: the transport */
    uint8_t state;      /* enum lg_conn_state */
    uint8_t role;       /* enum lg_conn_role */
    uint8_t flags;      /* enum lg_conn_flag */
    uint8_t attempts;
    uint32_t client_idx;
    uint16_t sub_pkt_id;
    uint16_t keepalive_s; /* ours, or the broker's Server Keep Alive (v5) */
    uint8_t *tx;          /* tx..rx: lg_wire */
    uint32_t tx_off;
    uint32_t tx_len;
    uint32_t tx_cap;
    uint32_t rx_len;
    uint32_t rx_cap;
    uint8_t *rx;
    uint64_t t_attempt_ns; /* attempt start; in LG_CONN_RETRY, when to retry */
    uint64_t t_last_tx_ns; /* lg_wire: when a packet was last queued */
    uint64_t t_ping_ns;
    struct lg_pub *pub;
    struct lg_sub *sub;
};

/* True while @c has a socket: not closed, failed or waiting to retry. */
static inline bool lg_conn_alive(const struct lg_conn *c)
{
    return c->tc.fd >= 0;
}

#endif
