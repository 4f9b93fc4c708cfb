/*
 * mqtt_rc.h - MQTT reason codes: which codes MQTT 5.0 allows in which
 * packet, the 3.1.1 CONNACK return code for one, and names of reason codes
 * and packet types for logs.
 *
 * Pure: constant tables only, owns nothing; any thread may call it.
 */
#ifndef RINGMQ_MQTT_RC_H
#define RINGMQ_MQTT_RC_H

#include <stdbool.h>
#include <stdint.h>

#include "core/mqtt_types.h"

/*
 * True if @rc is a reason code MQTT 5.0 allows in packet @type (CONNACK,
 * PUBACK..PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH; false for others).
 */
bool mqtt_rc_allowed(uint8_t type, uint8_t rc);

/* Map an internal reason code to a 3.1.1 CONNACK return code. */
uint8_t mqtt_rc_to_connack_v3(int rc);

/* Human name of a packet type, for logs ("PUBLISH"); "?" if unknown. */
const char *mqtt_type_name(uint8_t type);

/* Human name of a reason code ("keep alive timeout"); "unknown reason code" if none. */
const char *mqtt_rc_name(uint8_t rc);

#endif
