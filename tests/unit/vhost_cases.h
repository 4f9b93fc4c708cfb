/*
 * vhost_cases.h - shared by test_topic, test_trie and test_retained: names
 * and filters of virtual hosts (core/vhost.h), written with "~N" for host
 * N's prefix, and whether each filter matches each name: no default-host
 * wildcard reaches a host's topics, hosts never match each other, and the
 * '$' rule [MQTT-4.7.2-1] applies at a host's own first level.
 */
#ifndef RINGMQ_TEST_VHOST_CASES_H
#define RINGMQ_TEST_VHOST_CASES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/vhost.h"

static const char *const vhost_names[] = {"t", "$SYS/x", "~1/t", "~1/$SYS/x", "~1/a/$b", "~2/t"};
#define VHOST_NAMES (sizeof(vhost_names) / sizeof(vhost_names[0]))

/* Each filter and, per name above, whether it matches ('1') or not ('0'). */
static const struct {
    const char *filter;
    const char *want;
} vhost_cases[] = {
    {"#", "100000"},          {"+/t", "000000"},      {"+", "100000"},
    {"~1/#", "001010"},       {"~1/+", "001000"},     {"~1/+/x", "000000"},
    {"~1/$SYS/#", "000100"},  {"~1/t/#", "001000"},   {"~1/a/+", "000010"},
    {"~2/#", "000001"},       {"$SYS/#", "010000"},   {"~1/+/+", "000010"},
};
#define VHOST_CASES (sizeof(vhost_cases) / sizeof(vhost_cases[0]))

/* @s with a leading "~N" written as host N's prefix, into @out; its length. */
static inline size_t vhost_case_bytes(const char *s, uint8_t *out)
{
    if (s[0] == '~') {
        uint8_t host = (uint8_t)(s[1] - '0');
        return vhost_prefix(host, true, (const uint8_t *)s + 3, strlen(s + 3), out);
    }
    memcpy(out, s, strlen(s));
    return strlen(s);
}

#endif
