/*
 * publish.h - a PUBLISH from a client: the server's limits, MQTT 5.0 rules
 * and inbound topic aliases, QoS 2 duplicates [MQTT-4.3.3-2], routing, and
 * the acknowledgement (held until every replica has a retained one).
 *
 * This is where a publish-side ACL check belongs: in publish_on_publish(),
 * after the topic is known and before it is routed (v5: PUBACK/PUBREC
 * 0x87; 3.1.1: acknowledge and drop, or close). Returns 0, what
 * output_close() returned, or BROKER__HOLD. Calls route, session, wait and
 * output. Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_PUBLISH_H
#define RINGMQ_PUBLISH_H

struct broker;
struct client;
struct mqtt_publish;

/*
 * PUBLISH @pub from @cl; @pub's topic may be replaced by an alias's. While
 * the broker is under memory pressure (broker_set_memory_pressure()) a
 * valid QoS 0 PUBLISH is dropped once its alias is recorded (counted in
 * msgs_shed_memory; returns 0).
 */
int publish_on_publish(struct broker *b, struct client *cl, struct mqtt_publish *pub);

#endif
