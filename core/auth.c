/*
 * auth.c - the enhanced authentication methods (see auth.h).
 */
#include "core/auth.h"

#include <stdbool.h>
#include <string.h>

#include "core/limits.h"
#include "core/rm_assert.h"

static bool str_is(const struct mqtt_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && (n == 0 || memcmp(s->ptr, lit, n) == 0);
}

/* The test-only method: "hello" -> "challenge" -> "response". No secret. */
static enum auth_result test_step(uint8_t step, const struct mqtt_str *in, struct mqtt_str *out)
{
    static const uint8_t challenge[] = "challenge";
    RM_ASSERT(in != NULL && out != NULL);
    RM_ASSERT(in->ptr != NULL || in->len == 0);
    if (step == 0 && str_is(in, "hello")) {
        *out = (struct mqtt_str){challenge, sizeof(challenge) - 1};
        return AUTH_CONTINUE;
    }
    return step == 1 && str_is(in, "response") ? AUTH_OK : AUTH_FAIL;
}

static const struct auth_method test_method = {"ringmq-test", test_step};

const struct auth_method *auth_find(const struct limits *lim, const struct mqtt_str *name)
{
    RM_ASSERT(lim != NULL);
    RM_ASSERT(name != NULL);
    if (lim->auth_test_method && str_is(name, test_method.name))
        return &test_method;
    return NULL;
}
