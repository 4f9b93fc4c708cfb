/*
 * mqtt_utf8.h - MQTT strings: UTF-8 as MQTT restricts it (section 1.5.4),
 * and the topic-name check the codec applies to PUBLISH topics, will topics
 * and Response Topics.
 *
 * Pure: reads only its arguments, owns nothing; any thread may call it.
 */
#ifndef RINGMQ_MQTT_UTF8_H
#define RINGMQ_MQTT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mqtt_types.h"

/* True if @s is well-formed UTF-8 without U+0000 and surrogates [MQTT-1.5.3-1, -2]. */
bool mqtt_utf8_valid(const uint8_t *s, size_t len);

/*
 * True if @s is a topic name: at least one byte, no wildcards, UTF-8
 * [MQTT-4.7.3-1, 3.3.2-2, 1.5.3-1]. Borrows @s until return. For the codec
 * files (core/mqtt_decode.c, core/mqtt_props.c); the rest of the tree has
 * core/topic.
 */
bool mqtt_utf8__topic_name_ok(const struct mqtt_str *s);

#endif
