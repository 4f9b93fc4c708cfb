/*
 * replica.h - every shard's retained replica, kept in one order.
 *
 * Each shard keeps a full replica of the retained store, so a SUBSCRIBE is
 * answered from local memory. Every replica must apply the sets of one
 * topic in the same order, so the topic's home shard orders them: it
 * applies each and broadcasts it to the others. A publish that waits (a
 * wait.h token) is acknowledged by every replica once applied.
 *
 * Calls retained, wait and outbox. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_REPLICA_H
#define RINGMQ_REPLICA_H

#include <stdint.h>

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
 * XMSG_RETAIN_APPLY: apply @m ordered by its home shard, and acknowledge
 * @token to @origin. Returns the client whose wait that completed when
 * @origin is this shard (see wait_done()), else NULL. Borrows @m.
 */
struct client *replica_apply(struct broker *b, struct msg *m, uint64_t token, uint32_t origin);

#endif
