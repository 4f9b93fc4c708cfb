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
 * The clock moved (b->now_ms): a retained message whose notice never came
 * reaches its subscribers here anyway, after RPAIR_TIMEOUT_MS.
 */
void xrecv_tick(struct broker *b);

#endif
