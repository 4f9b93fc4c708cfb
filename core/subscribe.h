/*
 * subscribe.h - SUBSCRIBE and UNSUBSCRIBE: filter checks, the session's
 * subscriptions, other shards told of new filters before the SUBACK, and
 * the retained messages a new subscription gets.
 *
 * This is where a subscribe-side ACL check belongs: per filter, in
 * subscribe_one(), answered with the SUBACK code 0x87 (Not authorized).
 * Handlers return 0, what output_close() returned, or BROKER__REDO (hold
 * the client and handle this SUBSCRIBE again once every shard has the new
 * filters). Calls session, wait, outbox, output and the retained store.
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_SUBSCRIBE_H
#define RINGMQ_SUBSCRIBE_H

struct broker;
struct client;
struct mqtt_pkt;

int subscribe_on_subscribe(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt);
int subscribe_on_unsubscribe(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt);

#endif
