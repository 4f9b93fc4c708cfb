/*
 * mqtt_decode.h - MQTT 3.1 / 3.1.1 / 5.0 packet framing and decoding: the
 * fixed header, then one whole packet of any type.
 *
 * Pure: no allocation, no syscalls, no globals. Decoding borrows the caller's
 * bytes (every mqtt_str points into the packet) and validates everything the
 * specification makes normative for the packet on its own: fixed-header flags
 * [MQTT-2.2.2-1], remaining length [MQTT-2.2.3], UTF-8 [MQTT-1.5.3-1..3],
 * packet identifiers [MQTT-2.3.1-1], CONNECT flags [MQTT-3.1.2-3 etc.],
 * PUBLISH QoS/DUP [MQTT-3.3.1-2, -4], topic names without wildcards
 * [MQTT-3.3.2-2], non-empty SUBSCRIBE/UNSUBSCRIBE [MQTT-3.8.3-3, 3.10.3-2],
 * reserved bits of requested QoS [MQTT-3.8.3-4]. Filter *syntax* ('+', '#'
 * placement) is not checked here: a bad filter is refused per filter in
 * SUBACK by the session, so it is core/topic's job.
 *
 * MQTT 5.0: every packet including AUTH, every property (section 2.2.2.2)
 * with its type, which packets may carry it and whether it may repeat,
 * reason codes in acknowledgements, DISCONNECT and AUTH. A property id
 * unknown or not valid for its packet, a value cut short, a property block
 * overrunning the packet, a non-minimal variable byte integer, or a reason
 * code not in the packet's table is malformed; a repeated property, a value
 * the spec forbids (0 receive maximum / maximum packet size / subscription
 * id, a 0/1 byte with another value, a Response Topic with
 * wildcards, Authentication Data without a method, an empty topic without a
 * topic alias) is a protocol error; Topic Alias 0 is -MQTT_RC_TOPIC_ALIAS_INVALID
 * (DISCONNECT 0x94). Malformed wins when both occur in one property block.
 *
 * Any thread may call these functions; they touch only their arguments.
 */
#ifndef RINGMQ_MQTT_DECODE_H
#define RINGMQ_MQTT_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mqtt_types.h"

/*
 * Parse the fixed header at the start of @buf (@len bytes available).
 * Returns >0: the header is complete (its size, 2..5) and @fh is filled;
 * 0: more bytes are needed; -MQTT_RC_MALFORMED_PACKET: remaining length uses
 * more than 4 bytes or packet type 0; -MQTT_RC_PACKET_TOO_LARGE: header plus
 * body exceeds @packet_bytes_max. Checks nothing else: flags are mqtt_decode's.
 */
int mqtt_fixed_parse(const uint8_t *buf, size_t len, uint32_t packet_bytes_max,
                     struct mqtt_fixed *fh);

/*
 * Decode one whole packet whose fixed header is @fh and whose body is the
 * @fh->body_bytes bytes at @body. @version is the connection's negotiated
 * protocol level (3, 4 or 5), or 0 before CONNECT (then only CONNECT
 * decodes, at the level it names; anything else is -MQTT_RC_PROTOCOL_ERROR
 * [MQTT-3.1.0-1]). AUTH before 5.0 is -MQTT_RC_PROTOCOL_ERROR.
 *
 * Returns 0 and fills @out (borrowing @body), or a negative mqtt_rc:
 *  -MQTT_RC_MALFORMED_PACKET  bad flags, lengths, UTF-8, QoS 3, id 0, ...
 *  -MQTT_RC_PROTOCOL_ERROR    a packet a server never receives (CONNACK,
 *                             SUBACK, ...), or a second CONNECT when
 *                             @version != 0 [MQTT-3.1.0-2]; v5 rules above
 *  -MQTT_RC_TOPIC_ALIAS_INVALID  v5 PUBLISH with Topic Alias 0 [MQTT-3.3.2-8]
 *  -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION  CONNECT with a protocol name/level
 *                             pair this codec does not speak; out->u.connect
 *                             .version holds the level so the caller can
 *                             answer CONNACK 0x01 [MQTT-3.1.2-2]
 * Server direction only decodes client->server packets, and refuses a v5
 * PUBLISH that carries a subscription identifier [MQTT-3.3.4-6];
 * mqtt_decode_any() decodes every type, and a PUBLISH with several
 * subscription identifiers (tests, load generator, bridges).
 */
int mqtt_decode(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                struct mqtt_pkt *out);
int mqtt_decode_any(const struct mqtt_fixed *fh, const uint8_t *body, uint8_t version,
                    struct mqtt_pkt *out);

/* Next entry of a decoded SUBSCRIBE/UNSUBSCRIBE; false after the last. */
void mqtt_sub_iter_init(struct mqtt_sub_iter *it, const struct mqtt_pkt *pkt);
bool mqtt_sub_next(struct mqtt_sub_iter *it, struct mqtt_sub_entry *e);

#endif
