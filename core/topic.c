/*
 * topic.c - topic names and filters: validation, level splitting, and the
 * reference matcher that the trie and the retained store are tested against.
 *
 * Owns nothing; pure functions over caller bytes. Any thread.
 */
#include "core/topic.h"

#include <string.h>

#include "core/limits.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"

bool topic_level_next(size_t *pos, const uint8_t *s, size_t len, const uint8_t **lvl,
                      size_t *lvl_len)
{
    const uint8_t *slash;
    size_t end;

    RM_ASSERT(pos != NULL && lvl != NULL && lvl_len != NULL);
    RM_ASSERT(s != NULL || len == 0);

    /* *pos == len + 1 once the last level (which ends at len) was yielded. */
    if (*pos > len)
        return false;
    slash = len > *pos ? memchr(s + *pos, '/', len - *pos) : NULL;
    end = slash ? (size_t)(slash - s) : len;
    *lvl = s + *pos;
    *lvl_len = end - *pos;
    *pos = end + 1;
    return true;
}

/* Common checks of names and filters; @filter allows the wildcards. */
static bool topic_valid(const uint8_t *s, size_t len, const struct limits *lim, bool filter)
{
    size_t levels = 1;
    size_t i;

    RM_ASSERT(lim != NULL);
    RM_ASSERT(s != NULL || len == 0);

    /* [MQTT-4.7.3-1]: at least one byte; and within this broker's limits. */
    if (len == 0 || len > lim->topic_bytes_max || len > LIMITS_STRING_BYTES_MAX)
        return false;
    for (i = 0; i < len; i++) {
        uint8_t c = s[i];

        if (c == '/') {
            levels++;
            if (levels > lim->topic_levels_max)
                return false;
            continue;
        }
        if (c != '+' && c != '#')
            continue;
        /* [MQTT-3.3.2-2]: no wildcard in a topic name. */
        if (!filter)
            return false;
        /* [MQTT-4.7.1-2], [MQTT-4.7.1-3]: a wildcard is a whole level. */
        if (i > 0 && s[i - 1] != '/')
            return false;
        if (c == '+' && i + 1 < len && s[i + 1] != '/')
            return false;
        /* [MQTT-4.7.1-2]: '#' is the last character, so the last level. */
        if (c == '#' && i + 1 != len)
            return false;
    }
    return levels <= lim->topic_levels_max;
}

int topic_name_check(const uint8_t *name, size_t len, const struct limits *lim)
{
    RM_ASSERT(lim != NULL);
    RM_ASSERT(name != NULL || len == 0);
    return topic_valid(name, len, lim, false) ? 0 : -MQTT_RC_TOPIC_NAME_INVALID;
}

int topic_filter_check(const uint8_t *filter, size_t len, const struct limits *lim)
{
    RM_ASSERT(lim != NULL);
    RM_ASSERT(filter != NULL || len == 0);
    return topic_valid(filter, len, lim, true) ? 0 : -MQTT_RC_TOPIC_FILTER_INVALID;
}

static bool level_is(const uint8_t *lvl, size_t len, char c)
{
    return len == 1 && lvl[0] == (uint8_t)c;
}

bool topic_match(const uint8_t *filter, size_t flen, const uint8_t *name, size_t nlen)
{
    size_t fpos = 0, npos = 0;
    const uint8_t *f, *n;
    size_t fl, nl;
    size_t level = 0;
    bool host = nlen > 0 && name[0] == 0; /* a virtual host's topic (core/vhost.h) */

    RM_ASSERT(filter != NULL || flen == 0);
    RM_ASSERT(name != NULL || nlen == 0);

    /* Every iteration consumes a filter level, so flen + 1 bounds the loop. */
    while (topic_level_next(&fpos, filter, flen, &f, &fl)) {
        bool plus = level_is(f, fl, '+');
        bool hash = level_is(f, fl, '#');

        /*
         * [MQTT-4.7.2-1]: wildcards at the first level skip '$' topics -
         * at a virtual host's own first level (the one after its prefix)
         * too - and never reach into a virtual host's topics (core/vhost.h:
         * they start with "\0").
         */
        bool guarded = level == 0 ? nlen > 0 && (name[0] == '$' || host)
                                  : level == 1 && host && npos < nlen && name[npos] == '$';
        if ((plus || hash) && guarded)
            return false;
        level++;
        /* '#' matches the parent level too: "sport/#" matches "sport". */
        if (hash)
            return true;
        if (!topic_level_next(&npos, name, nlen, &n, &nl))
            return false;
        if (!plus && (fl != nl || (fl > 0 && memcmp(f, n, fl) != 0)))
            return false;
    }
    /* The filter is used up: a match only if the name is too. */
    return !topic_level_next(&npos, name, nlen, &n, &nl);
}
