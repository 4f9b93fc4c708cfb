/*
 * auth.c - the enhanced authentication methods (see auth.h).
 */
#include "core/auth.h"

#include <stdbool.h>
#include <string.h>

#include "core/limits.h"
#include "core/pwdb.h"
#include "core/pwhash.h"
#include "core/rm_assert.h"
#include "core/scram.h"

_Static_assert(SCRAM_KEY_BYTES == PWHASH_BYTES, "a $7$ hash is SCRAM's SaltedPassword");
_Static_assert(SCRAM_SALT_BYTES_MAX >= PWHASH_SALT_BYTES_MAX, "every file salt fits");
_Static_assert(SCRAM_USER_BYTES_MAX == PWDB_USERNAME_BYTES_MAX, "the same user names");

static bool str_is(const struct mqtt_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->len == n && (n == 0 || memcmp(s->ptr, lit, n) == 0);
}

/* The test-only method: "hello" -> "challenge" -> "response". No secret. */
static enum auth_result test_step(const struct auth_ctx *ctx, void **priv, uint8_t step,
                                  const struct mqtt_str *in, struct auth_out *out)
{
    static const uint8_t challenge[] = "challenge";
    (void)ctx;
    (void)priv;
    RM_ASSERT(in != NULL && out != NULL);
    RM_ASSERT(in->ptr != NULL || in->len == 0);
    if (step == 0 && str_is(in, "hello")) {
        out->data = (struct mqtt_str){challenge, sizeof(challenge) - 1};
        return AUTH_CONTINUE;
    }
    return step == 1 && str_is(in, "response") ? AUTH_OK : AUTH_FAIL;
}

static const struct auth_method test_method = {"ringmq-test", false, test_step, NULL};

/*
 * SCRAM's first step: parse client-first, look the user up, answer
 * server-first. An unknown user, or one whose hash is not $7$, gets a
 * salt derived from its name and the same work, and fails at the proof.
 */
static enum auth_result scram_first(const struct auth_ctx *ctx, void **priv,
                                    const struct mqtt_str *in, struct auth_out *out)
{
    uint8_t fake_salted[SCRAM_KEY_BYTES];
    uint8_t fake_salt[SCRAM_KEY_BYTES];
    uint8_t rnd[SCRAM_SNONCE_RANDOM_BYTES];
    struct scram_first f;
    struct scram_keys k;
    const struct pwdb_user *u;
    const uint8_t *salted = fake_salted;
    const uint8_t *salt = fake_salt;
    size_t salt_len = SCRAM_FAKE_SALT_BYTES;
    uint32_t iterations;
    bool real;
    int rc;

    RM_ASSERT(ctx->db != NULL && ctx->secret != NULL && ctx->random != NULL);
    RM_ASSERT(*priv == NULL);
    if (scram_parse_first(in->ptr, in->len, &f, &out->why) < 0) {
        return AUTH_FAIL;
    }
    u = pwdb_find(ctx->db, f.user, f.user_len);
    real = u != NULL && u->hash.kind == PWHASH_PBKDF2_SHA512;
    /* Fake users look like the file's: its (largest) iteration count, mosquitto's salt size. */
    iterations = ctx->db->cost_max > 1 ? ctx->db->cost_max : PWHASH_ITERATIONS;
    /* Always derived, so a known name costs what an unknown one does. */
    rc = scram_fake_salted(ctx->secret, f.user, f.user_len, fake_salted, fake_salt);
    if (real) {
        salted = u->hash.hash;
        salt = u->hash.salt;
        salt_len = u->hash.salt_len;
        iterations = u->hash.iterations;
    }
    if (rc == 0) {
        rc = scram_keys_from_salted(&k, salted, salt, salt_len, iterations);
    }
    memset(fake_salted, 0, sizeof(fake_salted));
    if (rc == 0) {
        rc = ctx->random(ctx->rctx, rnd, sizeof(rnd));
    }
    if (rc < 0) {
        out->why = "the server could not start a SCRAM exchange";
        return AUTH_FAIL;
    }
    *priv = scram_start(&f, &k, real, rnd, &out->data.ptr, &out->data.len);
    memset(&k, 0, sizeof(k));
    if (*priv == NULL) {
        out->why = "the server could not start a SCRAM exchange";
        return AUTH_FAIL;
    }
    return AUTH_CONTINUE;
}

static enum auth_result scram_step(const struct auth_ctx *ctx, void **priv, uint8_t step,
                                   const struct mqtt_str *in, struct auth_out *out)
{
    int rc;

    RM_ASSERT(ctx != NULL && priv != NULL);
    RM_ASSERT(in != NULL && out != NULL);
    if (step == 0) {
        return scram_first(ctx, priv, in, out);
    }
    if (step != 1 || *priv == NULL) {
        out->why = "unexpected SCRAM message";
        return AUTH_FAIL;
    }
    rc = scram_finish(*priv, in->ptr, in->len, &out->why);
    if (rc < 0) {
        return AUTH_FAIL;
    }
    if (rc == 0) {
        out->why = NULL;
        return AUTH_DENIED;
    }
    out->data.ptr = scram_server_final(*priv, &out->data.len);
    out->user.ptr = scram_user(*priv, &out->user.len);
    return AUTH_OK;
}

static void scram_end(void *priv)
{
    scram_free(priv);
}

static const struct auth_method scram_method = {"SCRAM-SHA-512", true, scram_step, scram_end};

const struct auth_method *auth_find(const struct limits *lim, const struct auth_ctx *ctx,
                                    const struct mqtt_str *name)
{
    RM_ASSERT(lim != NULL && ctx != NULL);
    RM_ASSERT(name != NULL);
    if (ctx->db != NULL && ctx->secret != NULL && ctx->random != NULL &&
        str_is(name, scram_method.name))
        return &scram_method;
    if (lim->auth_test_method && str_is(name, test_method.name))
        return &test_method;
    return NULL;
}
