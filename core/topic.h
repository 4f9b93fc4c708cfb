/*
 * topic.h - topic names and filters: validation, level splitting, matching.
 *
 * Rules (MQTT 3.1.1 section 4.7, same in 5.0 section 4.7):
 *  - names and filters are at least one byte [MQTT-4.7.3-1];
 *  - '#' only as the whole last level of a filter [MQTT-4.7.1-2];
 *  - '+' only as a whole level of a filter [MQTT-4.7.1-3];
 *  - names never contain '+' or '#' [MQTT-3.3.2-2];
 *  - a filter starting with '+' or '#' never matches a name starting with '$'
 *    [MQTT-4.7.2-1];
 *  - empty levels are legal ("a//b", "/a") and match only empty levels.
 * UTF-8 validity is the codec's check (mqtt_utf8_valid), not repeated here.
 * Pure; any thread.
 */
#ifndef RINGMQ_TOPIC_H
#define RINGMQ_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct limits;

/*
 * 0 if @name (@len bytes) is a valid topic name within @lim's topic length
 * and level limits; -MQTT_RC_TOPIC_NAME_INVALID otherwise.
 */
int topic_name_check(const uint8_t *name, size_t len, const struct limits *lim);

/*
 * 0 if @filter is a valid topic filter within @lim's limits;
 * -MQTT_RC_TOPIC_FILTER_INVALID otherwise.
 */
int topic_filter_check(const uint8_t *filter, size_t len, const struct limits *lim);

/*
 * Reference matcher: true if @filter matches @name, with the '$' rule. The
 * trie and retained store must agree with it (their tests cross-check).
 */
bool topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen);

/*
 * Level iteration: topic_level_next(&pos, s, len, &lvl, &lvl_len) yields each
 * '/'-separated level of @s in order (empty levels included) and returns
 * false when there are no more. Start with pos = 0.
 */
bool topic_level_next(size_t *pos, const uint8_t *s, size_t len, const uint8_t **lvl,
                      size_t *lvl_len);

#endif
