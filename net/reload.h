/*
 * reload.h - SIGHUP: a reloaded configuration handed to every shard.
 *
 * Shard 0 reads SIGHUP, builds the new snapshot (net/live: the same checks
 * as --test-config; a refused one changes nothing), applies it to itself
 * and sends its pointer to every other shard (XMSG_RELOAD). Each shard
 * applies it between two loop iterations and answers (XMSG_RELOAD_DONE);
 * once all have, shard 0 frees the snapshot the reload retired. One reload
 * at a time: a SIGHUP while one is being handed out runs after it.
 * docs/architecture.md "Reload" says why this is race-free.
 *
 * Called by net/shard (the signal, the messages, the end of each loop
 * iteration); calls live, broker, login and xshard. Owned by one shard;
 * single-threaded.
 */
#ifndef RINGMQ_RELOAD_H
#define RINGMQ_RELOAD_H

#include <stdint.h>

#include "net/shard_types.h"

struct live;
struct xmsg;

/*
 * From now on shard @s uses snapshot @lv (between two loop iterations):
 * its broker's login snapshot and ACL, its listeners' TLS contexts for the
 * connections they accept next, and its connected clients checked again
 * (those no longer let in are disconnected, v5 with 0x87).
 */
void reload_apply(struct shard *s, const struct live *lv);

/* Shard 0, on SIGHUP: reload the configuration file and start handing it out. */
void reload_start(struct shard *s);

/* XMSG_RELOAD (apply it, answer at the end of the iteration) or XMSG_RELOAD_DONE (shard 0). */
void reload_received(struct shard *s, uint32_t from, const struct xmsg *m);

/*
 * End of a loop iteration: shard 0 hands the new snapshot to shards
 * [reload_next, count); any other shard answers the one it applied. An
 * allocation failure leaves the rest for the next iteration (more_work).
 */
void reload_send(struct shard *s);

#endif
