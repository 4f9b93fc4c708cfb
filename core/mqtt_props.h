/*
 * mqtt_props.h - MQTT 5.0 properties (section 2.2.2): a property block is
 * decoded and validated into struct mqtt_props, walked with the iterator,
 * copied in part, sized and encoded.
 *
 * It knows every property's type, which packets may carry it and whether it
 * may repeat; the rules a decoded block must keep, and the reason code each
 * broken rule gives, are listed in core/mqtt_decode.h. Pure: no allocation,
 * no syscalls, no state but a constant table; decoded strings borrow the
 * packet. Any thread may call it.
 *
 * The mqtt_props__* functions are the packet code's (core/mqtt_decode.c,
 * core/mqtt_encode.c): a whole property block inside a packet body.
 */
#ifndef RINGMQ_MQTT_PROPS_H
#define RINGMQ_MQTT_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mqtt_types.h"

/* Start walking the properties @pr decoded (its @raw block). */
void mqtt_prop_iter_init(struct mqtt_prop_iter *it, const struct mqtt_props *pr);

/* The next property of a decoded block, in packet order; false after the last. */
bool mqtt_prop_next(struct mqtt_prop_iter *it, struct mqtt_prop *p);

/*
 * Copy, in order, the encoded properties of decoded @pr whose ids are in
 * the bitmask @keep (MQTT_PROP_BIT()s) to @out, which may be NULL to just
 * measure. Returns the bytes copied. A broker uses it to keep the
 * application properties of a PUBLISH it forwards [MQTT-3.3.2-17 etc.].
 */
size_t mqtt_props_copy(const struct mqtt_props *pr, uint64_t keep, uint8_t *out);

/* ---- for the packet decoder and encoder ---------------------------------- */

/* Where a property may appear (@where below): one bit per packet type; bit 0 is the will. */
#define MQTT_PROPS_IN(type) (1u << (type))
#define MQTT_PROPS_IN_WILL 1u

/* Properties the encoder writes from their field (the others come from raw/sub_ids). */
#define MQTT_PROPS_FIELDS                                                                          \
    (~(MQTT_PROP_BIT(MQTT_PROP_USER) | MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)))

/* The codec's body reader (core/mqtt_wire.h); opaque to everyone else. */
struct rd;

/*
 * The property block at @r: its length, then properties valid in @where.
 * @sub_ids_repeat lets the subscription identifier repeat (a PUBLISH a server
 * sends). Fills @pr (zeroed by the caller) and leaves @r after the block.
 * Returns 0, -MQTT_RC_MALFORMED_PACKET, -MQTT_RC_PROTOCOL_ERROR or
 * -MQTT_RC_TOPIC_ALIAS_INVALID.
 */
int mqtt_props__decode(struct rd *r, uint16_t where, bool sub_ids_repeat, struct mqtt_props *pr);

/*
 * Bytes of @pr's property block with its length (v5); 0 before v5.
 * BODY_UNENCODABLE (core/mqtt_wire.h) if the block is over its maximum.
 */
uint64_t mqtt_props__bytes(const struct mqtt_props *pr, uint16_t where, uint8_t version);

/*
 * The property block of @pr (v5 only): length, fields in id order, raw, sub_ids.
 * @p must hold mqtt_props__bytes() bytes; returns the byte after the block.
 */
uint8_t *mqtt_props__put(uint8_t *p, const struct mqtt_props *pr, uint16_t where);

/* True if encoding @pr writes no property at all. */
static inline bool mqtt_props__empty(const struct mqtt_props *pr)
{
    return (pr->has & MQTT_PROPS_FIELDS) == 0 && pr->raw.len == 0 && pr->sub_id_count == 0;
}

#endif
