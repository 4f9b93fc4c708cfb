/*
 * auth.h - MQTT 5.0 enhanced authentication methods (section 4.12).
 *
 * A method is a named step function driven by core/connect through the
 * CONNECT / AUTH / CONNACK exchange and through re-authentication. The
 * connection owns the exchange's state (which step, the method, the
 * method's private state while an exchange runs); a method judges the
 * client's Authentication Data at each step.
 *
 * Methods:
 *   SCRAM-SHA-512  RFC 5802 with SHA-512 (core/scram), against the $7$
 *                  entries of the listener's password file: offered only
 *                  where a password file applies. It identifies the user:
 *                  the exchange replaces the user name / password check.
 *   ringmq-test    test-only ([auth] test_method): CONNECT data "hello" is
 *                  answered with the challenge "challenge", and the
 *                  client's AUTH data "response" completes it. No user.
 *
 * Pure (randomness comes from the caller's @ctx); any thread.
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mqtt_codec.h"

struct limits;
struct pwdb;

enum auth_result {
    AUTH_FAIL = 0,     /* malformed, unsupported: CONNACK / DISCONNECT 0x87 Not authorized */
    AUTH_CONTINUE = 1, /* send @out.data in AUTH 0x18 and wait for the client's next AUTH */
    AUTH_OK = 2,       /* authenticated */
    AUTH_DENIED = 3,   /* wrong credentials: CONNACK 0x86 Bad User Name or Password */
};

/* What a method may use, for the listener a connection came in on. */
struct auth_ctx {
    const struct pwdb *db;   /* the listener's password database; NULL: none applies */
    const uint8_t *secret;   /* SCRAM_SECRET_BYTES of per-process secret (fake salts) */
    /* Fill @buf with @len unpredictable bytes; 0 or negative. NULL: no source. */
    int (*random)(void *rctx, uint8_t *buf, size_t len);
    void *rctx;
};

/* A step's answer. Pointers are static or borrowed from the method's state. */
struct auth_out {
    /* CONTINUE: AUTH 0x18's data; OK: the CONNACK's or AUTH 0x00's (may be empty). */
    struct mqtt_str data;
    struct mqtt_str user; /* OK from a method that identifies: who (len 0 otherwise) */
    const char *why;      /* FAIL / DENIED: a Reason String, or NULL for the code's name */
};

struct auth_method {
    const char *name;
    bool identifies; /* the exchange names the user: it replaces the password check */
    /*
     * Judge the client's Authentication Data @in at step @step (0: the
     * CONNECT's, or a re-authentication's first AUTH). *@priv is the
     * method's state for this exchange (NULL at step 0); the caller keeps
     * it between steps and hands it to end() when the exchange is over,
     * whatever the result. @out is valid until then.
     */
    enum auth_result (*step)(const struct auth_ctx *ctx, void **priv, uint8_t step,
                             const struct mqtt_str *in, struct auth_out *out);
    /* Free an exchange's state (NULL is fine). */
    void (*end)(void *priv);
};

/*
 * The method named @name that @lim and @ctx enable, or NULL (0x8C Bad
 * authentication method).
 */
const struct auth_method *auth_find(const struct limits *lim, const struct auth_ctx *ctx,
                                    const struct mqtt_str *name);

#endif
