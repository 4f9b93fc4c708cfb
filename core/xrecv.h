/*
 * xrecv.h - a message from another shard: a publish to deliver here, a
 * shared-group message, a retained set to order or apply, a filter another
 * shard's sessions gained or lost, an acknowledgement, or a message of ours
 * coming home to be freed.
 *
 * Calls route, replica, rpair, wait and outbox. Owned by one shard;
 * single-threaded.
 */
#ifndef RINGMQ_XRECV_H
#define RINGMQ_XRECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct client;
struct xmsg;

/*
 * Handle @x from shard @from, taking ownership of what it points to.
 * Returns a client whose wait it completed (see wait_done()): the caller
 * handles what that client sent meanwhile. Else NULL.
 */
struct client *xrecv_receive(struct broker *b, uint32_t from, const struct xmsg *x);

/*
 * Shard @from's sessions gained (@add, @members > 0) or lost filter
 * @filter: matching publishes here cross to @from from now on. For a
 * shared group ("$share/g/f") @members is @from's member count. Used for
 * XMSG_INTEREST_ADD/DEL and by the log's replay (core/wal_replay.h), which
 * learns other shards' subscriptions from the log itself. Returns 0,
 * -ENOMEM, or -ENOENT for a removal of what was not there.
 */
int xrecv_interest(struct broker *b, uint32_t from, const uint8_t *filter, size_t len,
                   uint32_t members, bool add);

/*
 * The clock moved (b->now_ms): a retained message whose notice never came
 * reaches its subscribers here anyway, after RPAIR_TIMEOUT_MS.
 */
void xrecv_tick(struct broker *b);

#endif
