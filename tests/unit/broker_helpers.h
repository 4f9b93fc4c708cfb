/*
 * broker_helpers.h - shared helpers of the core/broker unit tests: one
 * broker per test (setup/teardown, for TestSuite's .init and .fini), a
 * packet encoder that feeds clients, and a decoder of what the broker queued
 * for them. No sockets: this is the pure core/ that net/ feeds. Packets a
 * client sends are encoded in the protocol version it connected with.
 * Include once per test executable, after criterion.h.
 */
#ifndef RINGMQ_TESTS_BROKER_HELPERS_H
#define RINGMQ_TESTS_BROKER_HELPERS_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker.h"
#include "core/limits.h"
#include "core/mqtt_codec.h"

static struct limits lim;
static struct broker *b;

/* The limits every core/broker test starts from; a test may change them before use. */
static inline void limits_defaults(void)
{
    lim = (struct limits){
        .packet_bytes_max = 1 << 20,
        .client_id_bytes_max = 64,
        .topic_bytes_max = 65535,
        .topic_levels_max = 128,
        .subs_per_client_max = 100,
        .inflight_max = 20,
        .inflight_in_max = 16,
        .queued_max = 100,
        .output_bytes_max = 1 << 20,
        .retained_max = 1000,
        .connect_timeout_ms = 1000,
        .connections_max = 1000,
        .allow_zero_length_client_id = true,
        .max_qos = 2,
        .retain_available = true,
        .wildcard_subscriptions = true,
        .subscription_identifiers = true,
        .shared_subscriptions = true,
        .topic_alias_max = 10,
    };
}

static inline void setup(void)
{
    limits_defaults();
    b = broker_new(&lim, 0, 1);
    cr_assert_not_null(b);
}

static inline void teardown(void)
{
    broker_free(b);
}

/*
 * The home shard's half of net/'s handoff: @cl, whose CONNECT another shard
 * decoded and gave up (broker_client_handoff_take() there returned @kept,
 * @len), starts afresh on @home, fed every byte that shard kept. Frees
 * @kept; returns what broker_client_feed() returned.
 */
static inline int handoff_land(struct broker *home, struct client *cl, uint8_t *kept,
                               uint32_t len)
{
    broker_client_init(home, cl);
    int rc = broker_client_feed(home, cl, kept, len);
    free(kept);
    return rc;
}

/* A decoded packet with its bytes copied, so it outlives the client's buffer. */
struct got {
    struct mqtt_pkt pkt;
    uint8_t bytes[4096];
};

/* The protocol version @cl's packets are encoded in: the one it connected with. */
static inline uint8_t ver(const struct client *cl)
{
    return cl->version ? cl->version : MQTT_V311;
}

static inline int feed_pkt(struct client *cl, const struct mqtt_pkt *pkt, uint8_t version)
{
    uint8_t buf[4096];
    size_t n = mqtt_encoded_size(pkt, version);
    cr_assert(n > 0 && n <= sizeof(buf));
    cr_assert_eq(mqtt_encode(pkt, version, buf, sizeof(buf)), n);
    return broker_client_feed(b, cl, buf, n);
}

/* Pop the next packet the broker queued for @cl; false if none. */
static inline bool next_out(struct client *cl, struct got *g)
{
    if (cl->out.len == 0)
        return false;
    struct mqtt_fixed fh;
    int r = mqtt_fixed_parse(cl->out.data, cl->out.len, 1 << 28, &fh);
    cr_assert_gt(r, 0);
    size_t total = (size_t)r + fh.body_bytes;
    cr_assert_leq(total, cl->out.len);
    cr_assert_leq(total, sizeof(g->bytes));
    memcpy(g->bytes, cl->out.data, total);
    memmove(cl->out.data, cl->out.data + total, cl->out.len - total);
    cl->out.len -= (uint32_t)total;
    cr_assert_eq(mqtt_decode_any(&fh, g->bytes + r, ver(cl), &g->pkt), 0);
    return true;
}

static inline void expect_none(struct client *cl)
{
    struct got g;
    cr_assert_not(next_out(cl, &g), "unexpected %s", mqtt_type_name(g.pkt.type));
}

static inline void drain_dirty(void)
{
    for (int i = 0; i < 10000 && broker_next_dirty(b); i++)
        ;
}

static inline struct mqtt_pkt connect_pkt(const char *id, bool clean, uint8_t version)
{
    struct mqtt_pkt p = {.type = MQTT_CONNECT};
    p.u.connect.version = version;
    p.u.connect.clean_session = clean;
    p.u.connect.keepalive_s = 60;
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)strlen(id)};
    return p;
}

static inline bool do_connect(struct client *cl, const char *id, bool clean)
{
    broker_client_init(b, cl);
    struct mqtt_pkt p = connect_pkt(id, clean, MQTT_V311);
    cr_assert_eq(feed_pkt(cl, &p, MQTT_V311), 0);
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_CONNACK);
    cr_assert_eq(g.pkt.u.connack.rc, MQTT_CONNACK_ACCEPTED);
    cr_assert_eq(cl->state, CLIENT_CONNECTED);
    return g.pkt.u.connack.session_present;
}

static inline void do_subscribe(struct client *cl, const char *filter, uint8_t qos, uint8_t want_rc)
{
    struct mqtt_sub_entry e = {{(const uint8_t *)filter, (uint32_t)strlen(filter)}, qos};
    struct mqtt_pkt p = {.type = MQTT_SUBSCRIBE};
    p.u.subscribe = (struct mqtt_subscribe){.pkt_id = 7, .count = 1, .entries = &e};
    cr_assert_eq(feed_pkt(cl, &p, ver(cl)), 0);
    struct got g;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, MQTT_SUBACK);
    cr_assert_eq(g.pkt.u.suback.pkt_id, 7);
    cr_assert_eq(g.pkt.u.suback.count, 1);
    cr_assert_eq(g.pkt.u.suback.rcs[0], want_rc);
}

static inline struct mqtt_pkt publish_pkt(const char *topic, const char *payload, uint8_t qos,
                                          bool retain, uint16_t id)
{
    struct mqtt_pkt p = {.type = MQTT_PUBLISH};
    p.u.publish = (struct mqtt_publish){
        .qos = qos,
        .retain = retain,
        .topic = {(const uint8_t *)topic, (uint32_t)strlen(topic)},
        .pkt_id = id,
        .payload = {(const uint8_t *)payload, (uint32_t)strlen(payload)},
    };
    return p;
}

static inline void do_publish(struct client *cl, const char *topic, const char *payload,
                              uint8_t qos, bool retain, uint16_t id)
{
    struct mqtt_pkt p = publish_pkt(topic, payload, qos, retain, id);
    cr_assert_eq(feed_pkt(cl, &p, ver(cl)), 0);
    struct got g;
    if (qos == 0)
        return;
    cr_assert(next_out(cl, &g));
    cr_assert_eq(g.pkt.type, qos == 1 ? MQTT_PUBACK : MQTT_PUBREC);
    cr_assert_eq(g.pkt.u.ack.pkt_id, id);
}

static inline void expect_publish(struct client *cl, const char *topic, const char *payload,
                                  uint8_t qos, bool retain, struct got *g)
{
    cr_assert(next_out(cl, g), "no PUBLISH for %s", topic);
    cr_assert_eq(g->pkt.type, MQTT_PUBLISH);
    struct mqtt_publish *p = &g->pkt.u.publish;
    cr_assert_eq(p->topic.len, strlen(topic));
    cr_assert(memcmp(p->topic.ptr, topic, p->topic.len) == 0);
    cr_assert_eq(p->payload.len, strlen(payload));
    cr_assert(memcmp(p->payload.ptr, payload, p->payload.len) == 0);
    cr_assert_eq(p->qos, qos, "qos %u, want %u", p->qos, qos);
    cr_assert_eq(p->retain, retain);
}

static inline void ack(struct client *cl, uint8_t type, uint16_t id)
{
    struct mqtt_pkt p = {.type = type};
    p.u.ack.pkt_id = id;
    cr_assert_eq(feed_pkt(cl, &p, ver(cl)), 0);
}

#endif
