/*
 * auth.h - MQTT 5.0 enhanced authentication methods (section 4.12).
 *
 * A method is a named step function driven by core/broker through the
 * CONNECT / AUTH / CONNACK exchange and through re-authentication. The
 * broker owns the exchange's state (which step, the method, timeouts);
 * a method only judges the client's Authentication Data at each step.
 *
 * Only the test-only method "ringmq-test" exists so far ([auth]
 * test_method): CONNECT data "hello" is answered with the challenge
 * "challenge", and the client's AUTH data "response" completes it. Real
 * methods (SCRAM with password files) come later behind this interface.
 *
 * Pure and stateless; any thread.
 */
#ifndef RINGMQ_AUTH_H
#define RINGMQ_AUTH_H

#include <stdint.h>

#include "core/mqtt_codec.h"

struct limits;

enum auth_result {
    AUTH_FAIL = 0,     /* refuse: CONNACK / DISCONNECT 0x87 Not authorized */
    AUTH_CONTINUE = 1, /* send @out in AUTH 0x18 and wait for the client's next AUTH */
    AUTH_OK = 2,       /* authenticated */
};

struct auth_method {
    const char *name;
    /*
     * Judge the client's Authentication Data @in at step @step (0: the
     * CONNECT's, or a re-authentication's first AUTH). On AUTH_CONTINUE,
     * @out is the data to send back (static storage).
     */
    enum auth_result (*step)(uint8_t step, const struct mqtt_str *in, struct mqtt_str *out);
};

/* The method named @name that @lim enables, or NULL (0x8C Bad authentication method). */
const struct auth_method *auth_find(const struct limits *lim, const struct mqtt_str *name);

#endif
