/*
 * lg_worker.h - the load generator's clients and the worker threads that run
 * them.
 *
 * lg_worker_setup() turns the options into topic groups, publishers,
 * subscribers and connections, and partitions the connections over T
 * workers. Each worker is one thread with its own epoll loop that owns its
 * connections outright: it connects them, speaks MQTT on them (CONNECT,
 * SUBSCRIBE, PUBLISH with QoS 0/1/2 in both directions, PINGREQ), batches
 * their writes once per loop iteration, and paces its publishers.
 *
 * Why epoll and not io_uring: the generator must not be the bottleneck and
 * must be easy to trust. With a few hundred busy sockets per thread a
 * level-triggered epoll loop that batches one send() per connection per
 * iteration costs the generator less CPU than the broker spends on the same
 * messages, needs no kernel feature probing, and keeps the generator
 * independent of the broker's own I/O layer (a bug in one does not hide in
 * the other's numbers).
 *
 * The main thread drives the run through phases (lg_worker_set_phase) and
 * reads the _Atomic progress counters; everything else in a worker is private
 * to it until lg_worker_join() returns.
 */
#ifndef RINGMQ_LG_WORKER_H
#define RINGMQ_LG_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "perf/lg_hist.h"
#include "perf/lg_msg.h"
#include "perf/lg_opts.h"
#include "perf/lg_transport_types.h"

enum lg_phase {
    LG_PHASE_CONNECT = 0, /* open every connection, subscribe the subscribers */
    LG_PHASE_RUN,         /* publishers publish from t_pub_start; conn: hold */
    LG_PHASE_DRAIN,       /* publishers stop; acks and in-flight messages finish */
    LG_PHASE_STOP,        /* DISCONNECT, close, and the worker thread returns */
};

struct lg_conn;

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
    uint8_t state;        /* enum in lg_worker.c */
    uint8_t block;        /* why it is blocked */
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

    void *_priv; /* loop state private to lg_worker.c */
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

/* CLOCK_MONOTONIC in nanoseconds, the clock of every timestamp here. */
uint64_t lg_worker_now_ns(void);

/*
 * Build groups, publishers, subscribers, workers and connections for
 * @opts (borrowed for the life of @run). Returns 0 or -ENOMEM/-errno; on
 * failure everything built so far is freed.
 */
int lg_worker_setup(struct lg_run *run, const struct lg_opts *opts);

/* Start every worker thread in LG_PHASE_CONNECT. Returns 0 or -errno. */
int lg_worker_start(struct lg_run *run);

/* Move every worker to @phase (never backwards) and wake them. */
void lg_worker_set_phase(struct lg_run *run, enum lg_phase phase);

/* Sum of the workers' live counters (relaxed reads; a consistent-enough snapshot). */
void lg_worker_live_sum(const struct lg_run *run, struct lg_live_sum *out);

/*
 * Receptions the subscribers owe so far: for each publisher, messages sent
 * times its group's fan. Safe while workers run (relaxed reads).
 */
uint64_t lg_worker_expected(const struct lg_run *run);

/* Wait for every started worker to return (after LG_PHASE_STOP). */
void lg_worker_join(struct lg_run *run);

/* Free everything lg_worker_setup() built; workers must have been joined. */
void lg_worker_free(struct lg_run *run);

#endif
