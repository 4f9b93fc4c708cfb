/*
 * outbox.h - messages from this shard to the others, queued in order until
 * net/ moves them into the SPSC rings, and the one place a message
 * reference is released (freed here, or sent home to be freed).
 *
 * Calls nothing in core/ but msg and grow. Owned by one shard; every function runs
 * on that shard's thread, except outbox_release() (see there).
 */
#ifndef RINGMQ_OUTBOX_H
#define RINGMQ_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct msg;
struct xmsg;

/*
 * Queue @m for shard @dest. Never fails the caller: the outbox grows, and on
 * allocation failure the message is lost and counted (QoS 1/2 loss is only
 * possible when the process is out of memory).
 */
void outbox_push(struct broker *b, uint32_t dest, const struct xmsg *m);

/*
 * A message whose origin (core/wal.h) this shard gave it leaves for another
 * shard only once its WAL_QOS2_PEND is durable (broker.origin_durable):
 * outbox_push() holds it, and every message to the same shard after it,
 * until the write-ahead log's open batch is durable. The log calls these:
 * the open batch is taken (what it held now waits for that batch in
 * flight), and that batch is durable (what it held is queued now, in
 * order). True while the open batch holds some.
 */
void outbox_hold_take(struct broker *b);
void outbox_hold_release(struct broker *b);
bool outbox_holding(const struct broker *b);

/* Pop the oldest queued message into *@dest and *@m; false when none. */
bool outbox_next(struct broker *b, uint32_t *dest, struct xmsg *m);

/*
 * Drop one reference to @m; when it was the last, free it here if this is
 * its home shard, else send it home (XMSG_MSG_FREE). NULL is a no-op.
 */
void outbox_msg_put(struct broker *b, struct msg *m);

/* XMSG_ACK(@token) to shard @dest: one of the acknowledgements a wait there counts. */
void outbox_ack(struct broker *b, uint32_t dest, uint64_t token);

/* XMSG_NACK(@token) to shard @dest: the wait there fails (wait_fail()). */
void outbox_nack(struct broker *b, uint32_t dest, uint64_t token);

/*
 * Tell every other shard that this shard's sessions now subscribe (@members
 * > 0) or no longer subscribe to @filter at all (0), so they forward
 * matching messages here. For a shared group "$share/g/f", @members is the
 * group's member count here, by which the others weigh this shard; for
 * other filters 1. With a @token (@members > 0 only), each receiver
 * acknowledges with XMSG_ACK(@token). Returns how many shards were told
 * (those that will acknowledge); the others are lost to allocation failure
 * and counted.
 */
uint32_t outbox_interest(struct broker *b, const uint8_t *filter, size_t len, uint32_t members,
                         uint64_t token);

/*
 * Release what an undelivered message owns (msg_unref, msg_free for
 * XMSG_MSG_FREE, free() for XMSG_INTEREST_*). Any thread, but only once
 * no shard will receive it (shutdown).
 */
void outbox_release(struct xmsg *m);

/* Release everything still queued and the ring itself (broker_free()). */
void outbox_fini(struct broker *b);

#endif
