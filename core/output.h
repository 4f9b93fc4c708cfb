/*
 * output.h - packets to one client: encoding into its output buffer, the
 * dirty list net/ drains, outbound topic aliases, and closing with a reason.
 *
 * The bottom of core/'s call graph (see broker_types.h): it calls only the
 * codec. Owned by one shard; every function runs on that shard's thread.
 */
#ifndef RINGMQ_OUTPUT_H
#define RINGMQ_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "core/broker_types.h"

struct broker;
struct client;
struct mqtt_pkt;

/* Put @cl on @b's dirty list (idempotent). */
void output_mark_dirty(struct broker *b, struct client *cl);

/* Take @cl off the dirty list (no-op if it is not on it). */
void output_unlink(struct broker *b, struct client *cl);

/* Pop the oldest dirty client, or NULL. */
struct client *output_next_dirty(struct broker *b);

/*
 * Encode @pkt into @cl's output buffer and mark it dirty. @bytes_max bounds
 * the buffer (output_bytes_max for what may be shed, output_hard_max() for
 * what must be sent). Returns 0 (also for a CLOSING client: nobody reads
 * it), -ENOBUFS over @bytes_max, -ENOMEM, -EMSGSIZE over an MQTT 5.0
 * client's Maximum Packet Size (nothing is sent).
 */
int output_send(struct broker *b, struct client *cl, const struct mqtt_pkt *pkt, size_t bytes_max);

/*
 * Send PUBLISH @pkt to @cl as output_send() does, first giving it an
 * outbound topic alias where the client allows them (@pkt is changed).
 * -EMSGSIZE: over the client's Maximum Packet Size, not sent [MQTT-3.1.2-24].
 */
int output_publish(struct broker *b, struct client *cl, struct mqtt_pkt *pkt, size_t bytes_max);

/* A packet-id-only packet (PUBACK, PUBREC, PUBREL, PUBCOMP) for @cl; as output_send(). */
int output_ack(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id);

/*
 * As output_ack(), with reason code @rc for a v5 client (one @type may
 * carry: 0x10 No matching subscribers, 0x87 Not authorized, ...); before v5
 * @rc is not sent.
 */
int output_ack_rc(struct broker *b, struct client *cl, uint8_t type, uint16_t pkt_id, uint8_t rc);

/*
 * Send @pkt, a v5 CONNACK or DISCONNECT carrying reason code @rc in @props,
 * with Reason String @why (static; NULL: the name of @rc), or without it
 * when that would pass the client's Maximum Packet Size [MQTT-3.2.2-19,
 * 3.14.2-3]. As output_send().
 */
int output_with_reason(struct broker *b, struct client *cl, struct mqtt_pkt *pkt,
                       struct mqtt_props *props, uint8_t rc, const char *why);

/*
 * Stop serving @cl: a v5 client is told why with DISCONNECT when @rc < 0
 * [MQTT-4.13.2-1], it becomes CLOSING and dirty, and net/ flushes and
 * closes it. Protocol errors are counted. Returns @rc (never 0), so packet
 * handlers can `return output_close(...)`.
 */
int output_close(struct broker *b, struct client *cl, int rc);

/*
 * A message for connected @cl was dropped: its output is past
 * output_bytes_max or its session queue is full. The first drop starts an
 * episode, which more than slow_reader_grace_s without drops ends; a drop
 * slow_reader_grace_s or more into an episode closes @cl with 0x97 Quota
 * exceeded (v5 DISCONNECT).
 */
void output_overloaded(struct broker *b, struct client *cl);

/*
 * @cl's MQTT 5.0 state, allocated with the defaults of absent CONNECT
 * properties on first need (a v5 client that negotiates nothing has none:
 * NULL cl->_v5 reads as the defaults everywhere). NULL on ENOMEM.
 */
struct client_v5 *output_v5_state(struct client *cl);

/* The bound for packets that must not be shed: limits_output_hard_max(). */
static inline size_t output_hard_max(const struct broker *b)
{
    return limits_output_hard_max(b->lim);
}

#endif
