/*
 * 03-retained.c - e2e: retained messages: stored, replaced, delivered with
 * retain 1 on subscribe (also through wildcards), cleared by an empty
 * payload, delivered at min(message QoS, subscription QoS).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

/* A new subscription gets the retained message with retain 1 [MQTT-3.3.1-6] [MQTT-3.3.1-8]. */
static void set_and_deliver(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_client *sub;

    e2e_client_publish(pub, "ret/a", "kept", 4, 1, true);
    e2e_client_disconnect(pub);
    sub = e2e_client_connect(b, version, "sub", true);
    cr_assert_eq(e2e_client_subscribe(sub, "ret/a", 1), 1);
    e2e_client_expect(sub, "ret/a", "kept", 1, true);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(retained, new_subscription_receives_retained_message_with_retain_1, set_and_deliver)

/* A retained publish replaces the previous one on that topic [MQTT-3.3.1-5]. */
static void replaced(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);

    e2e_client_publish(pub, "ret/r", "v1", 2, 1, true);
    e2e_client_publish(pub, "ret/r", "v2", 2, 1, true);
    /* A non-retained publish does not replace it. */
    e2e_client_publish(pub, "ret/r", "live", 4, 1, false);
    cr_assert_eq(e2e_client_subscribe(sub, "ret/r", 1), 1);
    e2e_client_expect(sub, "ret/r", "v2", 1, true);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(retained, newer_retained_message_replaces_the_older_one, replaced)

/* A wildcard subscription gets every matching retained message, each with retain 1. */
static void wildcard(int version)
{
    static const char *const topics[] = {"wr/a", "wr/b", "wr/c/d", "wr"};
    static const char *const others[] = {"wx/a", "$wr/a"};
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    bool seen[4] = {false, false, false, false};
    size_t i;
    size_t k;

    for (i = 0; i < 4; i++) {
        e2e_client_publish(pub, topics[i], topics[i], strlen(topics[i]), 0, true);
    }
    for (i = 0; i < 2; i++) {
        e2e_client_publish(pub, others[i], "no", 2, 0, true);
    }
    cr_assert_eq(e2e_client_subscribe(sub, "wr/#", 2), 2);
    for (i = 0; i < 4; i++) {
        struct e2e_msg *m = e2e_client_expect_message(sub);

        for (k = 0; k < 4; k++) {
            if (strcmp(m->topic, topics[k]) == 0) {
                break;
            }
        }
        cr_assert(k < 4, "unexpected retained topic %s", m->topic);
        cr_assert(!seen[k], "retained %s delivered twice", m->topic);
        seen[k] = true;
        cr_assert_str_eq((const char *)m->payload, topics[k]);
        cr_assert(m->retain, "retained %s delivered with retain 0 [MQTT-3.3.1-8]", m->topic);
        cr_assert_eq(m->qos, 0);
        e2e_msg_free(m);
    }
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);

    /* "+" subscriptions too. */
    cr_assert_eq(e2e_client_subscribe(sub, "wr/+/d", 0), 0);
    e2e_client_expect(sub, "wr/c/d", "wr/c/d", 0, true);
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(retained, wildcard_subscription_receives_every_matching_retained_message, wildcard)

/*
 * An empty retained payload clears the topic's retained message
 * [MQTT-3.3.1-10]; current subscribers still receive that empty message
 * [MQTT-3.3.1-11] (with retain 0, [MQTT-3.3.1-9]).
 */
static void cleared(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_client *live = e2e_client_connect(b, version, "live", true);
    struct e2e_client *late;
    struct e2e_msg *m;

    e2e_client_publish(pub, "ret/c", "soon gone", 9, 1, true);
    cr_assert_eq(e2e_client_subscribe(live, "ret/c", 1), 1);
    e2e_client_expect(live, "ret/c", "soon gone", 1, true);
    e2e_client_publish(pub, "ret/c", "", 0, 1, true);
    m = e2e_client_expect_message(live);
    cr_assert_str_eq(m->topic, "ret/c");
    cr_assert_eq(m->payload_len, 0, "the clearing message is delivered as is [MQTT-3.3.1-11]");
    cr_assert(!m->retain, "live delivery has retain 0 [MQTT-3.3.1-9]");
    e2e_msg_free(m);

    late = e2e_client_connect(b, version, "late", true);
    cr_assert_eq(e2e_client_subscribe(late, "ret/#", 1), 1);
    e2e_client_expect_no_message(late, E2E_QUIET_MS);
    e2e_client_disconnect(late);
    e2e_client_disconnect(live);
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(retained, empty_retained_payload_clears_the_retained_message, cleared)

/* Retained delivery QoS = min(stored message QoS, subscription QoS). */
static void retained_qos(int version)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_client *sub = e2e_client_connect(b, version, "sub", true);
    char topic[32];
    int mq;
    int sq;

    for (mq = 0; mq <= 2; mq++) {
        snprintf(topic, sizeof(topic), "rq/%d", mq);
        e2e_client_publish(pub, topic, "x", 1, mq, true);
    }
    for (sq = 0; sq <= 2; sq++) {
        for (mq = 0; mq <= 2; mq++) {
            snprintf(topic, sizeof(topic), "rq/%d", mq);
            /* Re-subscribing re-sends the retained message [MQTT-3.8.4-3]. */
            cr_assert_eq(e2e_client_subscribe(sub, topic, sq), sq);
            e2e_client_expect(sub, topic, "x", mq < sq ? mq : sq, true);
        }
    }
    e2e_client_expect_no_message(sub, E2E_QUIET_MS);
    e2e_client_disconnect(pub);
    e2e_client_disconnect(sub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(retained, retained_delivery_qos_is_min_of_message_and_subscription_qos, retained_qos)

/* A retained message survives its publisher and serves several later subscribers. */
E2E_TEST(retained, retained_message_outlives_its_publisher_and_serves_many_v311)
{
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, E2E_V311, "pub", true);
    char id[16];
    int i;

    e2e_client_publish(pub, "ret/many", "hello", 5, 2, true);
    e2e_client_abort(pub);
    for (i = 0; i < 3; i++) {
        struct e2e_client *sub;

        snprintf(id, sizeof(id), "sub%d", i);
        sub = e2e_client_connect(b, E2E_V311, id, true);
        cr_assert_eq(e2e_client_subscribe(sub, "ret/many", 2), 2);
        e2e_client_expect(sub, "ret/many", "hello", 2, true);
        e2e_client_disconnect(sub);
    }
    e2e_broker_stop(b);
}

/*
 * Once a retained PUBLISH is acknowledged, any later subscription gets it
 * [MQTT-3.3.1-6], whichever connection (or shard) the subscriber is on:
 * 50 rounds of publish-retained, PUBACK, subscribe from another client.
 */
static void visible_after_puback(int version)
{
    enum { ROUNDS = 50 };
    struct e2e_broker *b = e2e_broker_start(NULL);
    struct e2e_client *pub = e2e_client_connect(b, version, "pub", true);
    struct e2e_client *subs[4];
    char topic[32];
    char id[8];
    int missed = 0;
    int first_miss = -1;
    int i;

    for (i = 0; i < 4; i++) {
        snprintf(id, sizeof(id), "s%d", i);
        subs[i] = e2e_client_connect(b, version, id, true);
    }
    for (i = 0; i < ROUNDS; i++) {
        struct e2e_client *sub = subs[i % 4];
        struct e2e_msg *m;

        snprintf(topic, sizeof(topic), "vis/%d", i);
        e2e_client_publish(pub, topic, "r", 1, 1, true);
        cr_assert_eq(e2e_client_subscribe(sub, topic, 1), 1);
        m = e2e_client_wait_message(sub, 1000);
        if (m == NULL) {
            missed++;
            if (first_miss < 0) {
                first_miss = i;
            }
            continue;
        }
        cr_assert_str_eq(m->topic, topic);
        cr_assert(m->retain);
        e2e_msg_free(m);
    }
    cr_assert_eq(missed, 0,
                 "%d of %d subscriptions made after the retained PUBLISH was acknowledged did "
                 "not get it (first: round %d) [MQTT-3.3.1-6]",
                 missed, ROUNDS, first_miss);
    for (i = 0; i < 4; i++) {
        e2e_client_disconnect(subs[i]);
    }
    e2e_client_disconnect(pub);
    e2e_broker_stop(b);
}
E2E_TEST_BOTH(retained, acknowledged_retained_message_is_visible_to_every_later_subscriber,
              visible_after_puback)
