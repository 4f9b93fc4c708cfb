/*
 * give.h - the shared-group messages that a logged session hands to
 * another member as it ends (fsync = always), kept in this shard's log
 * until they are logged where they went.
 *
 * A session that ends gives its shared-group messages to the group's
 * other members (MQTT 5.0 section 4.8.2). One handed to another shard
 * would leave this shard's log (its session's end) before that shard had
 * logged it, and a crash between the two would lose an acknowledged
 * message. So each becomes a give: a WAL_GIVE record, before the session's
 * WAL_SESSION_END, and a wait with no client counting this
 * shard's log and the acknowledgement of the shard the message went to
 * (wait_callback()).
 * When both are in, WAL_GIVEN ends it. A give that the log still holds at
 * start-up, or whose wait failed, is sent again from broker_tick() (at
 * most once a second): delivered twice perhaps, never lost. A compaction
 * rewrites the gives still open.
 *
 * Calls route, wait, wal, outbox and msg. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_GIVE_H
#define RINGMQ_GIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct broker;
struct msg;
struct session;

/*
 * Session @from, ending, hands @m to another member of shared group @key:
 * under fsync = always, when @from is logged, as a give (routed as
 * route_give() does), else as route_share_give(). A session_give_fn
 * (session.h) for session_free(): @ctx is the broker. Borrows @m. False
 * when the log lost the give (no memory): the session keeps the message
 * in the log, as it does when @from is the group's last member, and its
 * end is not logged until a snapshot repairs the log.
 */
bool give_share(void *ctx, struct msg *m, uint64_t key, const struct session *from);

/*
 * Give @id of session @cid, which the log held open at start-up, for @m
 * and shared group @key: sent again at the first tick. Returns 0 or
 * -ENOMEM. Borrows @m.
 */
int give_restore(struct broker *b, struct msg *m, uint64_t key, uint64_t id, const uint8_t *cid,
                 size_t cid_len);

/* Send again the gives that wait for it (broker_tick(); at most once a second). */
void give_tick(struct broker *b);

/* True while some give waits to be sent again: the clock must keep ticking. */
bool give_pending(const struct broker *b);

/* A snapshot's WAL_GIVE records: the gives still open. */
void give_snapshot(struct broker *b);

/* Free the gives (broker_free(); still open in the log, sent again after a restart). */
void give_fini(struct broker *b);

#endif
