/*
 * mqtt_codec.h - the MQTT 3.1 / 3.1.1 / 5.0 codec: the one header the rest of
 * the tree includes for it.
 *
 * Pure: no allocation, no syscalls, no globals; decoding borrows the caller's
 * bytes and encoding writes the caller's buffer. Any thread may call it. The
 * codec is split so that each file has one job (issue 12); a file only
 * includes and calls the ones above it in this list:
 *   core/mqtt_types.h   protocol levels, packet types, reason codes, property
 *                       ids and the packet structures (types only)
 *   core/mqtt_utf8      UTF-8 strings (section 1.5.4) and topic names
 *   core/mqtt_wire.h    body reader, writers, sizes, wire constants; private
 *                       to the codec's .c files (not included here)
 *   core/mqtt_props     MQTT 5.0 properties: validate, walk, copy, size, encode
 *   core/mqtt_rc        reason codes: which packet may carry which; names
 *   core/mqtt_decode    fixed header and each packet's decoder; the
 *                       normative checks decoding makes are listed there
 *   core/mqtt_encode    each packet's size and encoder
 * This header includes all the public ones, so its includers need nothing else.
 */
#ifndef RINGMQ_MQTT_CODEC_H
#define RINGMQ_MQTT_CODEC_H

#include "core/mqtt_decode.h"
#include "core/mqtt_encode.h"
#include "core/mqtt_props.h"
#include "core/mqtt_rc.h"
#include "core/mqtt_types.h"
#include "core/mqtt_utf8.h"

#endif
