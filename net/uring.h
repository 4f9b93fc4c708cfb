/*
 * uring.h - io_uring setup, feature probe, user_data encoding, SQE supply.
 *
 * Setup asks for IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN
 * (completions are only run when the owning thread waits, so one loop
 * iteration sees one consistent batch), plus SUBMIT_ALL, CQSIZE and CLAMP.
 * If the kernel refuses (-EINVAL), it retries without DEFER_TASKRUN (adding
 * COOP_TASKRUN), then without SINGLE_ISSUER. Start-up then requires the
 * opcodes the loop uses and kernel 6.0 features (multishot recv, provided
 * buffer rings), failing with a clear error otherwise.
 *
 * user_data: there is no per-operation object. Every object an operation
 * belongs to (conn, listener, shard) is at least 8-byte aligned, so
 * user_data = pointer | op kind in the low 3 bits, as liburing's
 * examples/proxy.h packs its fields; the shard has one dispatch switch on the
 * kind. Each object has at most one operation of each kind in flight, so
 * the same value also names the operation for IORING_OP_ASYNC_CANCEL.
 * user_data 0 (URING_OP_IGNORE) marks operations whose completion needs no
 * work (cancel requests). URING_OP_DOORBELL carries no pointer: the wake-up
 * CQE another shard posts with IORING_OP_MSG_RING is the bare op value, and
 * a failed doorbell of our own carries the destination shard (net/xshard).
 *
 * One ring per shard; only the owning shard's thread may call these.
 */
#ifndef RINGMQ_URING_H
#define RINGMQ_URING_H

#include <liburing.h>
#include <stdint.h>

#include "core/rm_assert.h"

/* Ring sizes (entries). The CQ is larger: multishot ops post many CQEs each. */
#define URING_SQ_ENTRIES 4096u
#define URING_CQ_ENTRIES 16384u

enum uring_op {
    URING_OP_IGNORE = 0, /* cancel requests: completion needs no work */
    URING_OP_ACCEPT,     /* multishot accept; object: struct listener */
    URING_OP_RECV,       /* multishot recv; object: struct conn */
    URING_OP_SEND,       /* send of conn->sending; object: struct conn */
    URING_OP_SIGNAL,     /* multishot poll of the signalfd; object: struct shard */
    URING_OP_DOORBELL,   /* MSG_RING between shards; no object (net/xshard decodes it) */
    URING_OP_WAL,        /* write or fdatasync of the log; object: one of struct wal_io's tags */
    URING_OP_OBS,        /* metrics and admin services; object: starts with struct obs_io */
    URING_OP__COUNT,
};

#define URING_OP_MASK 7u

_Static_assert(URING_OP__COUNT <= URING_OP_MASK + 1, "op kinds must fit in 3 bits");

/* Encode @obj (8-byte aligned) and @op into a user_data value. */
static inline uint64_t uring_ud(const void *obj, enum uring_op op)
{
    uintptr_t p = (uintptr_t)obj;

    RM_ASSERT((p & URING_OP_MASK) == 0);
    return (uint64_t)p | (uint64_t)op;
}

static inline enum uring_op uring_ud_op(uint64_t ud)
{
    return (enum uring_op)(ud & URING_OP_MASK);
}

static inline void *uring_ud_obj(uint64_t ud)
{
    return (void *)(uintptr_t)(ud & ~(uint64_t)URING_OP_MASK);
}

/*
 * Set up @ring (URING_SQ_ENTRIES / URING_CQ_ENTRIES) with the best flags the
 * kernel takes, and check the features the loop needs. Returns 0, or a
 * negative errno after logging why at ERROR level (the ring is then not
 * initialised).
 */
int uring_init(struct io_uring *ring);

/* Tear down @ring (initialised by uring_init()). */
void uring_exit(struct io_uring *ring);

/*
 * Next free SQE, submitting what is queued when the SQ is full. NULL only if
 * the kernel takes nothing (logged); the caller then fails the one object
 * it works for, never the process.
 */
struct io_uring_sqe *uring_get_sqe(struct io_uring *ring);

/*
 * Queue a cancel of the operation named @ud (ASYNC_CANCEL by user_data).
 * Returns 0 or -EBUSY when no SQE could be had.
 */
int uring_cancel(struct io_uring *ring, uint64_t ud);

#endif
