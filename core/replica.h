/*
 * replica.h - every shard's retained replica, kept in one order.
 *
 * Each shard keeps a full replica of the retained store, so a SUBSCRIBE is
 * answered from local memory. Every replica must apply the sets of one
 * topic in the same order, so the topic's home shard orders them: it
 * applies each and broadcasts it to the others, and it alone decides
 * whether a new topic fits retained_max. A publish that waits (a wait.h
 * token) is acknowledged by every replica once applied. Expired messages
 * are swept out of each replica (REPLICA_SWEEP_MS, or when full).
 *
 * Calls retained, wait and outbox. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_REPLICA_H
#define RINGMQ_REPLICA_H

#include <stdint.h>

/* XMSG_RETAIN_APPLY's arg: the origin shard, with this bit when the home refused to keep it. */
#define REPLICA_REFUSED 0x80000000u

/* Expired retained messages are swept out at most this often (and when the store is full). */
#define REPLICA_SWEEP_MS 60000u

struct broker;
struct client;
struct msg;

/*
 * A retained set/clear @m published on this shard: to its home shard, or
 * applied and broadcast here if this is it. @token: the publisher's wait
 * (0: nobody waits). Borrows @m (takes its own references).
 */
void replica_publish(struct broker *b, struct msg *m, uint64_t token);

/*
 * XMSG_RETAIN_SET: this is @m's home shard; apply it, acknowledge @token to
 * @origin, and have every other replica apply it. Borrows @m.
 */
void replica_home_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t origin);

/*
 * XMSG_RETAIN_APPLY: apply @m ordered by its home shard (unless @arg has
 * REPLICA_REFUSED: the home kept no copy), and acknowledge @token to the
 * origin in @arg. Returns the client whose wait that completed when the
 * origin is this shard (see wait_done()), else NULL. Borrows @m.
 */
struct client *replica_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t arg);

/*
 * Start-up: @m restored from the write-ahead log, applied to this replica
 * alone. Every shard restores every retained message in the same (log)
 * order, so each decides retained_max alike and no replica waits for a
 * broadcast before its listeners serve. Borrows @m. Returns 0, -ENOSPC
 * (over retained_max) or -ENOMEM (both counted).
 */
int replica_restore(struct broker *b, struct msg *m);

/* The clock moved (b->now_ms): sweep expired retained messages when due. */
void replica_tick(struct broker *b);

#endif
