/*
 * route.h - where a message goes: this shard's matching sessions (one
 * delivery per session at the highest granted QoS [MQTT-3.3.5-1]), each
 * other shard with interest, and one member of each matching shared group,
 * here or on another shard. A message crosses to each other shard once,
 * with one reference, for its plain subscribers and the groups that chose
 * a member there together. Builds the message only when somebody wants it.
 *
 * This is where a publish-side check that applies to every route (an ACL
 * on the topic, a WAL append of what was accepted) belongs, at
 * route_publish(). Calls session, replica and outbox. Owned by one shard;
 * single-threaded.
 */
#ifndef RINGMQ_ROUTE_H
#define RINGMQ_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct broker;
struct msg;
struct mqtt_props;
struct mqtt_publish;
struct mqtt_str;
struct session;
struct xmsg;

/*
 * A message published on this shard, with the forwarded properties of
 * @props (v5; zeroed before) and its Message Expiry Interval, which for a
 * @will starts only when it is published (route_will()). NULL on ENOMEM.
 */
struct msg *route_msg_new(struct broker *b, const struct mqtt_str *topic,
                          const struct mqtt_str *payload, const struct mqtt_props *props,
                          uint8_t qos, bool retain, bool will);

/*
 * Route a PUBLISH received from @from's client on this shard (No Local
 * spares @from). A retained one carries @token, the client's wait for every
 * replica (0: nobody waits). A QoS 2 one of a persistent publisher under
 * fsync = always carries its @origin (msg.origin, core/wal.h; 0: none).
 * Returns 1 when it matched a subscriber
 * somewhere (a session here, another shard with interest in it, a shared
 * group), 0 when it matched nobody (v5: PUBACK/PUBREC 0x10 No matching
 * subscribers), or -ENOMEM (routed to nobody). What another shard's trie
 * holds is known here only through the interest map, so 1 means "sent to
 * somebody who subscribed", as the match itself already knows: no extra
 * walk. A QoS 1/2 one that crossed to congested shards leaves them in
 * b->hold[0..hold_count) for the caller to hold the client on.
 */
int route_publish(struct broker *b, const struct session *from, const struct mqtt_publish *pub,
                  uint64_t token, uint64_t origin);

/* Publish a will built on this shard; takes the caller's (only) reference. */
void route_will(struct broker *b, struct msg *m);

/*
 * Publish @m, built on this shard by the broker itself (a will once its
 * expiry is set, or a $SYS message), to every matching session and, if
 * retained, to every replica; counts nothing. Takes the caller's (only)
 * reference.
 */
void route_own(struct broker *b, struct msg *m);

/*
 * XMSG_PUBLISH @x from shard @from, a message's one crossing to this shard:
 * deliver it to this shard's plain subscribers and/or to one member of each
 * shared group named. Frees what @x owns but its msg (the caller's).
 * Returns the origin's durability wait token it carried (0: none): the
 * caller acknowledges it once what this left in the log is durable.
 */
uint64_t route_remote(struct broker *b, uint32_t from, const struct xmsg *x);

/*
 * Retained @m published elsewhere (or a will) reaches the plain subscribers
 * here now (see retained_route() in route.c): its replica here has just
 * taken it. @publisher: the publishing session when it is one of ours (its
 * No Local subscriptions skip it), else NULL. Borrows @m.
 */
void route_retained(struct broker *b, struct msg *m, const struct session *publisher);

/*
 * XMSG_SHARE_PUBLISH: @m for one member of shared group @key, sent here by
 * shard @from after @hops passes, carrying @from's wait @token (0: none):
 * passed on from here, it leaves b->relay_wait for the caller to settle
 * (xrecv.c). Borrows @m.
 */
void route_share_received(struct broker *b, uint32_t from, struct msg *m, uint64_t key,
                          uint32_t hops, uint64_t token);

/*
 * Give @m, which a shared group @key member @from can no longer take, to
 * another member of the group: on this shard if one is here, else on
 * another shard. Returns false when @from is the only member left anywhere
 * (the caller keeps it). Borrows @m. A session_give_fn (session.h): @ctx
 * is the broker.
 */
bool route_share_give(void *ctx, struct msg *m, uint64_t key, const struct session *from);

/*
 * As route_share_give(), but only to a member on this shard: the messages
 * of a member that disconnected while its session goes on, under fsync =
 * always. Handed to another shard, one would leave this shard's log before
 * that shard had logged it, and a crash between the two would lose it;
 * without a member here it waits for its own member's return instead
 * (which MQTT 5.0 section 4.8.2 allows).
 */
bool route_share_give_here(void *ctx, struct msg *m, uint64_t key, const struct session *from);

/*
 * give.c: @m for a member of shared group @key (core/give.h): one online
 * here, else on another shard (owing wait @token, 0: none, an
 * acknowledgement once logged there), else offline here. False when the
 * group has no member left (dropped, counted). Borrows @m.
 */
bool route_give(struct broker *b, struct msg *m, uint64_t key, uint64_t token);

#endif
