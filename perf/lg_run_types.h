/*
 * lg_run_types.h - the data of one load-generator run: topic groups,
 * publishers, subscribers, workers and their counters.
 *
 * lg_run.c builds and frees all of it on the main thread. While the worker
 * threads run, each worker owns its connections and the publishers and
 * subscribers on them (THREADING comments below say what crosses threads);
 * the main thread reads only the _Atomic counters, and everything else once
 * lg_worker_join() has returned.
 */
#ifndef RINGMQ_LG_RUN_TYPES_H
#define RINGMQ_LG_RUN_TYPES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "perf/lg_hist.h"
#include "perf/lg_msg.h"
#include "perf/lg_opts.h"

enum lg_phase {
    LG_PHASE_CONNECT = 0, /* open every connection, subscribe the subscribers */
    LG_PHASE_RUN,         /* publishers publish from t_pub_start; conn: hold */
    LG_PHASE_DRAIN,       /* publishers stop; acks and in-flight messages finish */
    LG_PHASE_STOP,        /* DISCONNECT, close, and the worker thread returns */
};

struct lg_conn; /* lg_conn_types.h */
struct lg_loop; /* lg_worker_types.h */

/* One topic: its publishers (ids pub_first.. pub_first + pub_count - 1) and subscribers. */
struct lg_group {
    char *topic;  /* what publishers publish to */
    char *filter; /* what subscribers subscribe to ($share/lg/topic when shared) */
    uint32_t topic_len;
    uint32_t filter_len;
    uint32_t pub_first;
    uint32_t pub_count;
    uint32_t sub_count;
    uint32_t fan; /* copies of each message its subscribers must receive */
    bool shared;
};

/*
 * A publisher.
 * THREADING: owned by worker @thread, which alone writes every plain field.
 * Subscribers on any worker release window slots (@slots, atomically); the
 * main thread and subscribers read @sent_total.
 */
struct lg_pub {
    uint32_t id;
    uint32_t group;
    uint32_t thread;
    struct lg_conn *conn;

    /* Owner only. */
    uint32_t seq_next;
    uint8_t state;        /* enum lg_sched_state (lg_sched.h) */
    uint8_t block;        /* why it is blocked: enum lg_sched_block */
    bool in_ring;         /* has an entry in the owner's ready ring */
    uint32_t pos;         /* index in the owner's heap or blocked array */
    uint64_t due_ns;      /* rate pacing: when the next message is due */
    uint64_t *sent_ns;    /* [window]: send time of the message holding each slot */
    uint32_t unacked;     /* QoS 1/2 messages awaiting PUBACK/PUBCOMP */
    uint32_t unacked_max; /* at most this many: ours, or the broker's Receive Maximum (v5) */
    uint32_t acks;        /* PUBACK/PUBCOMP received, to check their order */

    /* Shared. [window]: (seq << 32) | receptions still expected; 0 receptions = free. */
    _Atomic uint64_t *slots;
    _Atomic uint32_t sent_total; /* messages sent; release-stored after each */
};

/* A subscriber. THREADING: owned by worker @thread only. */
struct lg_sub {
    uint32_t id;
    uint32_t group;
    uint32_t thread;
    struct lg_conn *conn;
    struct lg_msg_track *tracks; /* [group's pub_count] */
    uint32_t q2_in;              /* QoS 2 received, PUBREL not yet seen */
};

/* Counters the main thread reads while workers run (single writer: the worker). */
struct lg_live {
    _Atomic uint64_t sent;         /* PUBLISH queued, whole run */
    _Atomic uint64_t sent_meas;    /* ... within the measured interval */
    _Atomic uint64_t recv;         /* distinct messages received, whole run */
    _Atomic uint64_t recv_meas;    /* ... received within the measured interval */
    _Atomic uint64_t conns_ok;     /* CONNACK accepted (and SUBACK, for subscribers) */
    _Atomic uint64_t conns_done;   /* ok or given up */
    _Atomic uint64_t conns_failed; /* given up after every attempt */
    _Atomic uint64_t conns_lost;   /* closed by the peer or an error after connecting */
    _Atomic uint64_t unacked;      /* QoS 1/2 publishes awaiting their final ack */
    _Atomic uint64_t q2_in;        /* QoS 2 deliveries awaiting PUBREL */
    _Atomic uint64_t last_ok_ns;   /* time of the latest successful connect */
};

/* A plain snapshot of struct lg_live, summed over workers (last_ok_ns: the latest). */
struct lg_live_sum {
    uint64_t sent;
    uint64_t sent_meas;
    uint64_t recv;
    uint64_t recv_meas;
    uint64_t conns_ok;
    uint64_t conns_done;
    uint64_t conns_failed;
    uint64_t conns_lost;
    uint64_t unacked;
    uint64_t q2_in;
    uint64_t last_ok_ns;
};

/* Everything else a worker counts; read by main after join. */
struct lg_stats {
    uint64_t attempts;      /* connect attempts started */
    uint64_t err_refused;   /* ECONNREFUSED */
    uint64_t err_timeout;   /* no CONNACK/SUBACK within --connect-timeout */
    uint64_t err_reset;     /* closed by the peer before CONNACK */
    uint64_t err_addr;      /* EADDRNOTAVAIL / EADDRINUSE: source ports exhausted */
    uint64_t err_fd;        /* EMFILE / ENFILE */
    uint64_t err_handshake; /* TLS handshake or WebSocket upgrade refused */
    uint64_t err_other;
    uint64_t connack_refused;    /* CONNACK with a non-zero return code */
    uint64_t suback_refused;     /* SUBACK 0x80 */
    uint64_t proto_errors;       /* malformed or unexpected packets from the broker */
    uint64_t bogus;              /* payloads without a valid stamp, or from nowhere */
    uint64_t window_timeouts;    /* messages given up on after --window-timeout-ms */
    uint64_t ack_order_errors;   /* PUBACK/PUBCOMP not in publish order */
    uint64_t pub_refused;        /* v5 PUBACK/PUBREC with a reason code >= 0x80 */
    uint64_t server_disconnects; /* v5 DISCONNECT from the broker */
    uint64_t rate_lag;           /* publisher fell > 100 ms behind its rate */
    uint64_t pings;
    uint64_t pongs;
    uint64_t ping_timeouts;
    uint64_t tx_bytes;
    uint64_t rx_bytes;
    uint64_t loops;
};

/*
 * One worker thread and what it owns.
 * THREADING: @live is read by the main thread while the worker runs; @evfd
 * is written by any thread to wake it; the rest is the worker's alone from
 * lg_worker_start() until lg_worker_join() returns.
 */
struct lg_worker {
    struct lg_run *run;
    uint32_t idx;
    pthread_t tid;
    bool started;
    int epfd;
    int evfd; /* wakes this worker: phase changes, windows freed by other workers */

    struct lg_conn *conns;
    uint32_t nconns;
    struct lg_pub **pubs; /* this worker's publishers */
    uint32_t npubs;

    struct lg_live live;
    struct lg_stats st;
    struct lg_hist lat;      /* end-to-end latency of messages sent while measuring */
    struct lg_hist conn_lat; /* connect attempt start to CONNACK */

    struct lg_loop *_loop; /* the thread's loop state (lg_worker_types.h) */
};

/* The run: read-only after setup except the phase and the workers' own state. */
struct lg_run {
    const struct lg_opts *opts;
    struct lg_group *groups;
    uint32_t ngroups;
    struct lg_pub *pubs;
    uint32_t npubs;
    struct lg_sub *subs;
    uint32_t nsubs;
    struct lg_worker *workers;
    uint32_t nworkers;
    uint32_t nclients;

    /* Written by main before it moves the phase to RUN (release); then read-only. */
    uint64_t t_pub_start_ns;
    uint64_t t_meas_start_ns;
    uint64_t t_meas_end_ns;
    _Atomic int phase; /* enum lg_phase */
};

/* Single-writer counter bump: a plain add that the main thread may read. */
static inline void lg_run_bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Single-writer counter decrement, stopping at zero. */
static inline void lg_run_drop(_Atomic uint64_t *c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed);

    atomic_store_explicit(c, v >= n ? v - n : 0, memory_order_relaxed);
}

/* True when @t (CLOCK_MONOTONIC ns) lies within @run's measured interval. */
static inline bool lg_run_measuring(const struct lg_run *run, uint64_t t)
{
    return t >= run->t_meas_start_ns && t < run->t_meas_end_ns;
}

#endif
