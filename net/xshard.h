/*
 * xshard.h - the channels between shards: the N x N matrix of SPSC rings,
 * each producer's overflow, batched publication and the MSG_RING doorbell.
 *
 * One struct xshard per process, built by the start-up thread before any
 * shard thread starts and freed after every shard thread has been joined.
 * It holds, for every ordered pair (from, to) with from != to, one struct
 * spsc q[from][to] of struct xmsg (core/xmsg.h) and, on the producer's side,
 * a local overflow FIFO; for every shard, its doorbell state.
 *
 * Sending (shard `from` only): xshard_send() pushes into q[from][to] without
 * publishing. When the ring is full, or anything already waits in the
 * overflow (so order is kept), the message goes to the end of the overflow
 * instead, which grows as needed: nothing is ever dropped here (QoS 1/2
 * included); each message that had to wait is counted (overflow_events).
 * xshard_flush(), once per loop iteration, moves what fits from each
 * overflow into its ring, publishes every ring that got items (one release
 * store each) and rings the doorbells due.
 *
 * Doorbell (IORING_OP_MSG_RING, submitted on the producer's own ring, CQE
 * user_data XSHARD_DOORBELL_USERDATA on the consumer's ring): rung for a
 * destination only when its consumer may be asleep, at most once per
 * destination per flush. Each shard has one `sleeping` flag (its own, not
 * the per-queue spsc field, so a producer checks one flag per destination
 * and a consumer sets one flag for all its inbound rings). The protocol is
 * Dekker's, with seq_cst fences on both sides:
 *   consumer (xshard_sleep_prepare): store(sleeping, 1); fence;
 *             if any inbound ring is non-empty: store(sleeping, 0), do not
 *             block; else block in the ring wait; then xshard_woke().
 *   producer (xshard_flush): spsc_publish(q); fence;
 *             if load(sleeping) and exchange(sleeping, 0) returned 1: ring.
 * Either the consumer sees the batch before it blocks, or the producer sees
 * the flag and rings. The exchange makes the first producer that finds the
 * flag set the only one to ring for that sleep (several producers do not
 * each post a CQE); the plain load first keeps an awake consumer's flag line
 * shared instead of bouncing it to every producer on every flush. A failed
 * MSG_RING posts a CQE on the producer's ring (success posts none:
 * IOSQE_CQE_SKIP_SUCCESS); xshard_doorbell_done() then rings that
 * destination again on the next flush, since the flag was consumed.
 * Destinations whose loop has ended (xshard_done) are never rung.
 *
 * MSG_RING and IORING_SETUP_DEFER_TASKRUN: a DEFER_TASKRUN target still
 * receives the CQE (the kernel posts it via task work on the target's
 * thread, which wakes its wait); test_xshard checks it on the running
 * kernel with rings built by uring_init(), so no fallback is needed there.
 *
 * Receiving (shard `to` only): xshard_receive(), at the start of every loop
 * iteration, pops each inbound ring in batches, at most
 * XSHARD_RECV_PER_SOURCE_MAX per source per call, and hands each message to
 * the caller's callback in per-source FIFO order.
 *
 * Ring size: XSHARD_SLOTS_MAX slots per pair, fewer for many shards so that
 * the N x (N - 1) rings stay within XSHARD_RINGS_BYTES_MAX (at least
 * XSHARD_SLOTS_MIN each). 2 shards: 2 rings of 4096 x 32 bytes.
 *
 * THREADING: xshard_new/xshard_set_ring_fd/xshard_free run while no shard
 * thread runs (start-up before the barrier that starts them; shutdown after
 * they are all joined). Then shard i alone calls the functions taking
 * `from = i` or `me = i`. The shared fields are the rings (struct spsc's
 * own THREADING rules), each shard's `sleeping` flag (written by the
 * consumer, exchanged by producers) and `done` flag (written by its shard,
 * read by producers); everything else belongs to one shard and says which.
 */
#ifndef RINGMQ_XSHARD_H
#define RINGMQ_XSHARD_H

#include <liburing.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/xmsg.h"
#include "net/spsc.h"
#include "net/uring.h"

#define XSHARD_SLOTS_MAX 4096u             /* slots per ring, fewer shards */
#define XSHARD_SLOTS_MIN 64u               /* slots per ring, many shards */
#define XSHARD_RINGS_BYTES_MAX (64u << 20) /* all rings' slots together, soft */
#define XSHARD_OVERFLOW_MIN 64u            /* first allocation of an overflow */
#define XSHARD_RECV_PER_SOURCE_MAX 1024u   /* per xshard_receive() call */
#define XSHARD_RECV_BATCH 64u              /* messages per spsc_pop_batch() */
#define XSHARD_RETRY_NS 200000ll           /* wait bound while an overflow waits */

/* The doorbell's CQE on the consumer's ring: op URING_OP_DOORBELL, no object. */
#define XSHARD_DOORBELL_USERDATA ((uint64_t)URING_OP_DOORBELL)

/* Per-shard counters (the shard that owns them writes, logs at exit). */
struct xshard_stats {
    uint64_t sent;            /* messages given to xshard_send() */
    uint64_t received;        /* messages handed out by xshard_receive() */
    uint64_t overflow_events; /* messages that waited in an overflow */
    uint64_t overflow_max;    /* deepest any overflow of this shard got */
    uint64_t overflow_nomem;  /* sends refused: the overflow could not grow */
    uint64_t qos0_shed;       /* QoS 0 publishes dropped: their link was congested */
    uint64_t congestions;     /* times a link went over its budget */
    uint64_t doorbells;       /* MSG_RINGs submitted */
    uint64_t doorbell_errors; /* MSG_RINGs that failed (rung again) */
};

/*
 * The budget of one link (q[from][to] and its overflow): past
 * XSHARD_BUDGET_MSGS messages or the link's budget_bytes of message bytes
 * waiting in the overflow, the link is congested. While it is, QoS 0
 * publishes for it are shed (counted) instead of queued, and the sending
 * shard holds the clients whose QoS 1/2 publishes cross it
 * (broker_set_congested()): those still queue, so nothing acknowledged is
 * lost, but their publishers send no more until the link drains to half
 * the budget. Every other kind always queues. The bytes budget is
 * XSHARD_BUDGET_BYTES_ALL shared by all links, within
 * [XSHARD_BUDGET_BYTES_MIN, XSHARD_BUDGET_BYTES_MAX] per link; a message
 * crossing to several shards counts once per link.
 */
#define XSHARD_BUDGET_MSGS 16384u
#define XSHARD_BUDGET_BYTES_ALL (256ull << 20)
#define XSHARD_BUDGET_BYTES_MIN (1ull << 20)
#define XSHARD_BUDGET_BYTES_MAX (32ull << 20)

/* A growable FIFO of messages (a circular array). */
struct xshard_fifo {
    struct xmsg *items;
    uint32_t head;
    uint32_t count;
    uint32_t cap; /* 0 or a power of two */
};

/* Producer side of q[from][to]. THREADING: shard `from` only. */
struct xshard_link {
    struct xshard_fifo overflow; /* waits for room in the ring, in order */
    uint64_t overflow_bytes;     /* message bytes in the overflow (xshard_msg_bytes()) */
    uint32_t pushed;             /* pushed since the last publish */
    bool congested;              /* over its budget, until it drains to half of it */
    bool ring_again;             /* the last doorbell failed: ring on the next flush */
    bool ring_ready;             /* q[from][to] was spsc_init()ed (start-up, shutdown) */
};

/* Per shard. */
struct xshard_peer {
    /*
     * 1 while this shard may be blocked in its ring wait (see the protocol
     * above). THREADING: stored by the shard itself, loaded and exchanged
     * to 0 by producers.
     */
    alignas(SPSC_CACHELINE) _Atomic uint32_t sleeping;
    /* 1 once this shard's loop has ended. THREADING: stored by the shard, read by producers. */
    _Atomic uint32_t done;
    /* This shard's ring fd, the doorbell target. THREADING: set before threads run. */
    int ring_fd;

    /* THREADING: the rest belongs to this shard (as producer and consumer). */
    alignas(SPSC_CACHELINE) struct xshard_link *links; /* [shard_count], indexed by `to` */
    uint32_t overflowing;                              /* links with a non-empty overflow */
    uint32_t congested;                                /* links over their budget */
    struct xshard_stats stats;
};

struct xshard {
    alignas(SPSC_CACHELINE) uint32_t shard_count;
    uint32_t capacity;        /* slots per ring */
    uint64_t budget_bytes;    /* per link (see XSHARD_BUDGET_MSGS) */
    struct spsc *q;           /* [from * shard_count + to]; the diagonal is unused */
    struct xshard_peer *peer; /* [shard_count] */
};

/* Slots per ring for @shard_count shards (pure; see "Ring size" above). */
uint32_t xshard_capacity_for(uint32_t shard_count);

/*
 * Build the matrix for @shard_count shards (1..LIMITS_SHARDS_MAX), with
 * rings of xshard_capacity_for() slots. Start-up only. NULL on ENOMEM.
 */
struct xshard *xshard_new(uint32_t shard_count);

/*
 * Record shard @id's ring fd as its doorbell target. Before the shard
 * threads are released (the start-up barrier publishes it).
 */
void xshard_set_ring_fd(struct xshard *x, uint32_t id, int ring_fd);

/*
 * Release what one undelivered message owns, once no shard runs any more
 * (or on the shard that may free it): msg_unref for XMSG_PUBLISH and
 * XMSG_RETAIN_*, msg_free for XMSG_MSG_FREE, free() for XMSG_INTEREST_* and the
 * handoff bytes, close() for the handed-off fd.
 */
void xshard_release(struct xmsg *m);

/*
 * After every shard thread was joined: release every message still in a
 * ring or an overflow (xshard_release), then free everything. NULL is a
 * no-op.
 */
void xshard_free(struct xshard *x);

/*
 * Shard @from: send *@m to shard @to (!= @from): push into the ring, or
 * append to the overflow when the ring is full or the overflow is not
 * empty. Visible to @to after the next xshard_flush(). Returns 0 (the
 * message and what it points to now belong to @to), or -ENOMEM when the
 * overflow could not grow (nothing was taken: the caller still owns @m's
 * pointers and must retry or release them).
 */
int xshard_send(struct xshard *x, uint32_t from, uint32_t to, const struct xmsg *m);

/* Whether the link from shard @from to shard @to is over its budget (shard @from only). */
bool xshard_congested(const struct xshard *x, uint32_t from, uint32_t to);

/* How many of shard @from's links are over their budget (shard @from only). */
uint32_t xshard_congested_links(const struct xshard *x, uint32_t from);

/*
 * Shard @from, once per loop iteration after its last xshard_send(): move
 * what fits from each overflow into its ring, publish every ring that got
 * items, and queue (not submit) a MSG_RING SQE on @ring for each
 * destination that may be asleep. Returns the number of doorbells queued.
 */
uint32_t xshard_flush(struct xshard *x, uint32_t from, struct io_uring *ring);

/*
 * Shard @from: true while a message waits in an overflow for a shard whose
 * loop still runs (the caller retries soon: wait at most XSHARD_RETRY_NS).
 */
bool xshard_pending(const struct xshard *x, uint32_t from);

/*
 * Shard @from only: messages it sent that no other shard has taken yet (in
 * its rings, unread, and in its overflows), for metrics. O(shards).
 */
uint64_t xshard_waiting(const struct xshard *x, uint32_t from);

/*
 * Shard @me: a CQE of op URING_OP_DOORBELL arrived on its ring: either a
 * wake-up (user_data XSHARD_DOORBELL_USERDATA: nothing to do, the loop
 * drains its rings every iteration) or the failure of one of @me's own
 * doorbells, which is then rung again on the next flush.
 */
void xshard_doorbell_done(struct xshard *x, uint32_t me, const struct io_uring_cqe *cqe);

/*
 * Shard @me: pop up to XSHARD_RECV_PER_SOURCE_MAX messages from each
 * inbound ring and call @done(@ctx, from, msg) for each, oldest first per
 * source (the callback takes ownership of what the message points to and
 * runs synchronously). *@more is set when a source had more than the bound
 * (call again without sleeping). Returns the number handed out.
 */
uint32_t xshard_receive(struct xshard *x, uint32_t me, bool *more, void *ctx,
                        void (*done)(void *ctx, uint32_t from, const struct xmsg *m));

/*
 * Shard @me, just before blocking in its ring wait: announce the sleep and
 * re-check the inbound rings. Returns true if it may block (a producer that
 * publishes from now on rings the doorbell); false if a message already
 * waits (the flag is cleared again: do not block).
 */
bool xshard_sleep_prepare(struct xshard *x, uint32_t me);

/* Shard @me, after a wait that xshard_sleep_prepare() allowed: clear the flag. */
void xshard_woke(struct xshard *x, uint32_t me);

/*
 * Shard @me's loop has ended: producers stop ringing it and stop waiting
 * for room in its rings (what they still send stays queued and is released
 * by xshard_free()).
 */
void xshard_done(struct xshard *x, uint32_t me);

/* Shard @id's counters. */
static inline const struct xshard_stats *xshard_stats(const struct xshard *x, uint32_t id)
{
    return &x->peer[id].stats;
}

#endif
