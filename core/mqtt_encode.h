/*
 * mqtt_encode.h - MQTT 3.1 / 3.1.1 / 5.0 packet sizes and encoding into a
 * caller's buffer.
 *
 * Pure: no allocation, no syscalls, no globals; reads @pkt (and the bytes its
 * strings borrow) and writes only the caller's buffer. The input is the
 * broker's own, so a value the protocol forbids is a programmer error and
 * asserted on. Any thread may call these functions.
 */
#ifndef RINGMQ_MQTT_ENCODE_H
#define RINGMQ_MQTT_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/mqtt_types.h"

/*
 * Size in bytes of @pkt encoded for @version (3, 4 or 5), fixed header
 * included; 0 if the packet cannot be encoded (a field over its maximum: a
 * string over 65535 bytes, a property block or remaining length over
 * 268435455). v5 acks, DISCONNECT and AUTH take their shortest form.
 */
size_t mqtt_encoded_size(const struct mqtt_pkt *pkt, uint8_t version);

/*
 * Encode @pkt for @version into @buf, which must hold mqtt_encoded_size()
 * bytes (@cap is asserted against it). Returns the bytes written.
 */
size_t mqtt_encode(const struct mqtt_pkt *pkt, uint8_t version, uint8_t *buf, size_t cap);

#endif
