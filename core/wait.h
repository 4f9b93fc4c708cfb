/*
 * wait.h - clients held until other shards acknowledge: a retained publish
 * applied by every replica before its PUBACK [MQTT-3.3.1-6], or a new
 * filter known to every shard before its SUBACK.
 *
 * A wait is a slot counting acknowledgements (XMSG_ACK carrying its token);
 * its client, if still there, gets the deferred acknowledgement when the
 * count reaches 0, and the caller then handles what the client sent
 * meanwhile. An acknowledgement lost on the way (another shard out of
 * memory) must not hold a client forever: a wait gives up after
 * WAIT_TIMEOUT_MS, counted, and late acknowledgements for it are ignored;
 * except under a write-ahead log with fsync = always, where a wait may
 * stand for a durability promise and is never given up. A relay is a wait
 * with no client that, when done, acknowledges another shard's wait; a
 * callback wait has no client either, and tells its owner how it ended.
 * Calls output, outbox, session and wal. Owned by one shard;
 * single-threaded.
 */
#ifndef RINGMQ_WAIT_H
#define RINGMQ_WAIT_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct client;
struct session;

/* A wait is given up this long after it began (far beyond any healthy round trip). */
#define WAIT_TIMEOUT_MS 10000u

/*
 * Hold @cl (not held yet) for @remaining acknowledgements; then send it
 * @ack_type (MQTT_PUBACK, MQTT_PUBREC, or 0 for nothing) for @pkt_id.
 * Returns the wait's token, or 0 on ENOMEM (nothing held).
 */
uint64_t wait_new(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                  uint32_t remaining);

/*
 * A wait with no client, for @remaining acknowledgements: when they are in,
 * XMSG_ACK(@token) goes to shard @dest (a wait of its own, which a shared
 * group's message passed on from here owes an acknowledgement). Returns
 * its token, or 0 on ENOMEM.
 */
uint64_t wait_relay(struct broker *b, uint32_t dest, uint64_t token, uint32_t remaining);

/*
 * A wait with no client, for @remaining acknowledgements: its end is told
 * to @fn(b, @arg, done) - done when they are in, not when it fails
 * (wait_fail()). Its owner keeps the token. Returns it, or 0 on ENOMEM.
 */
uint64_t wait_callback(struct broker *b, void (*fn)(struct broker *b, uint64_t arg, bool done),
                       uint64_t arg, uint32_t remaining);

/*
 * Hold @cl (not held yet) until what the log's open batch holds is durable,
 * then send it @ack_type for @pkt_id with v5 reason code @rc. Returns 1
 * (held) or, when no wait can be made or the log cannot take it (ENOMEM),
 * a negative close code: @cl is closed, never acknowledged before what it
 * is promised is durable.
 */
int wait_for_log(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                 uint8_t rc);

/*
 * One of @token's acknowledgements is the log's open batch becoming
 * durable (wal_hold()). False when the log cannot take it (ENOMEM, the log
 * is degraded): the wait has failed (wait_fail(); its client is closing).
 */
bool wait_on_log(struct broker *b, uint64_t token);

/*
 * @token's wait (live, a PUBREC's) is for the QoS 2 message tagged
 * @origin (core/wal.h): if its client is gone when it completes, the
 * message is committed all the same.
 */
void wait_set_origin(struct broker *b, uint64_t token, uint64_t origin);

/*
 * The deferred acknowledgement of @token's wait (live) carries v5 reason
 * code @rc (0 when never set: wait_new() clears it).
 */
void wait_set_ack_rc(struct broker *b, uint64_t token, uint8_t rc);

/* True while @token's wait still counts acknowledgements (not completed nor given up). */
bool wait_live(const struct broker *b, uint64_t token);

/* @n more acknowledgements are due on @token's wait. */
void wait_add(struct broker *b, uint64_t token, uint32_t n);

/* One acknowledgement fewer is due on @token's wait (of @cl, more than one due). */
void wait_drop(struct broker *b, uint64_t token);

/* The acknowledgements still due on @token's wait. */
uint32_t wait_remaining(const struct broker *b, uint64_t token);

/* Free @cl's wait before anything was asked of other shards; @cl is no longer held. */
void wait_cancel(struct broker *b, struct client *cl);

/*
 * @cl goes away or stops waiting: its wait completes without anyone to
 * answer (freed now if nothing is due). @cl is no longer held.
 */
void wait_forget(struct broker *b, struct client *cl);

/*
 * One acknowledgement for @token arrived. When it was the last one and the
 * client is still there, the client is sent its deferred acknowledgement
 * and no longer held: returns it, so that the caller handles the bytes it
 * kept meanwhile (client->_held). Else (or when that send failed and the
 * client is now closing, or the wait was given up) NULL.
 */
struct client *wait_done(struct broker *b, uint64_t token);

/*
 * @token's wait stands for a promise the log cannot keep (a record lost to
 * allocation failure, core/wal.h): it ends now, failed. Its client is
 * closed without its acknowledgement (it sends again when it comes back),
 * a relay tells its shard the same (XMSG_NACK), a tagged QoS 2 message is
 * not committed and its id is released (the resend is routed again); late
 * acknowledgements are ignored. Counted. A wait that already ended:
 * nothing.
 */
void wait_fail(struct broker *b, uint64_t token);

/*
 * Give up one wait older than WAIT_TIMEOUT_MS at @now_ms (looking at most
 * once a second): as wait_done() for its last acknowledgement. Returns the
 * client released, or NULL when there is none (call again until NULL).
 */
struct client *wait_expire(struct broker *b, uint64_t now_ms);

/*
 * Back-pressure between shards. net/ reports each link from this shard over
 * or back under its budget; while the link to shard d is over it, a client
 * whose QoS 1/2 publish crossed to d is held (its acknowledgement deferred,
 * so it gets no more receive-maximum credit, and its input kept, then no
 * longer read: broker_client_backlogged()) until the link drains. The
 * message itself is queued: nothing acknowledged is dropped. A hold is a
 * wait like the others, given up after WAIT_TIMEOUT_MS.
 */

/* Record that the link to shard @dest is (@on) or is no longer over its budget. */
void wait_set_congested(struct broker *b, uint32_t dest, bool on);

/* Whether the link to shard @dest is over its budget. */
static inline bool wait_congested(const uint64_t *congested, uint32_t dest)
{
    return (congested[dest / 64] >> (dest % 64)) & 1u;
}

/*
 * Hold @cl until each of the @n shards at @dests drains: on top of wait
 * @token when it is not 0, else in a new wait answering @ack_type for
 * @pkt_id (as wait_new()). Returns the token of the wait holding @cl, or
 * @token unchanged when there was no memory for the hold (counted; the
 * client is then not held for the links: the budget is soft).
 */
uint64_t wait_link_hold(struct broker *b, struct client *cl, uint8_t ack_type, uint16_t pkt_id,
                        uint64_t token, const uint32_t *dests, uint32_t n);

/*
 * The link to @dest drained (after wait_set_congested(b, @dest, false)):
 * complete the next hold for it whose client is now free, and return that
 * client (as wait_done()); NULL when none is left (call until NULL).
 */
struct client *wait_link_drained(struct broker *b, uint32_t dest);

/* Free the hold lists (broker_free()). */
void wait_fini(struct broker *b);

/*
 * The session of the client that began @token's wait, while the wait still
 * counts acknowledgements; else NULL (also for @token 0). Only to compare:
 * the session may have ended.
 */
const struct session *wait_publisher(const struct broker *b, uint64_t token);

/*
 * @cl (not held) resent QoS 2 PUBLISH @pkt_id, a duplicate of one its
 * session's earlier connection sent: if that one's PUBREC still waits on
 * other shards (its client gone), @cl takes the wait over, so the resend is
 * answered no sooner than the first would have been. Returns its token, or
 * 0 when there is no such wait. Scans the slots: only for duplicates.
 */
uint64_t wait_adopt(struct broker *b, struct client *cl, uint16_t pkt_id);

/* True while any client is held: the clock must keep ticking. */
bool wait_pending(const struct broker *b);

#endif
