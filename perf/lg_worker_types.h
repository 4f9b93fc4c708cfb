/*
 * lg_worker_types.h - the loop state of one worker thread (struct lg_loop),
 * shared by the modules that run on that thread.
 *
 * lg_run.c allocates it (and sizes its arrays) on the main thread and
 * lg_worker_start() sets its clocks; from then until lg_worker_join()
 * returns only the worker thread touches it. Fields are grouped by the
 * module that owns them; others only read them where a comment says so.
 */
#ifndef RINGMQ_LG_WORKER_TYPES_H
#define RINGMQ_LG_WORKER_TYPES_H

#include <stdbool.h>
#include <stdint.h>

struct lg_conn;
struct lg_pub;

struct lg_loop {
    /* lg_worker.c: the loop. @now: read by every module here, refreshed by lg_input too. */
    uint64_t now;
    int phase; /* enum lg_phase, as last read from the run */
    uint64_t next_sweep_ns;

    /* lg_conn.c: connecting (the loop's wait reads conn_next, conn_due_ns and pending). */
    uint32_t conn_next; /* next never-tried connection */
    uint64_t conn_due_ns;
    uint64_t conn_period_ns;
    uint32_t pending; /* attempts between connect() and CONNACK/SUBACK */
    uint32_t pending_max;
    uint64_t connect_timeout_ns;

    /* lg_sched.c: where publishers wait (the loop's wait reads ready_len, heap, recheck). */
    struct lg_pub **ready; /* ring of npubs */
    uint32_t ready_head;
    uint32_t ready_len;
    struct lg_pub **heap; /* min-heap on due_ns */
    uint32_t heap_len;
    struct lg_pub **blocked;
    uint32_t blocked_len;
    bool recheck;       /* a blocked publisher may be free to go (also set by the loop) */
    uint64_t wake_mask; /* workers whose publishers we released (the loop wakes them) */
    uint64_t window_timeout_ns;

    /* lg_publish.c */
    bool pubs_started;
    bool pubs_stopped;
    uint64_t pub_period_ns;
    uint8_t *payload;

    /* lg_wire.c: output batching (drained by the loop) and the receive buffer. */
    struct lg_conn **dirty;
    uint32_t ndirty;
    uint8_t *rxbuf;
    uint32_t rxbuf_bytes;
    uint32_t packet_max;

    /* lg_input.c */
    struct lg_conn **rxmore; /* transports holding read bytes past its read limit */
    uint32_t nrxmore;
};

#endif
