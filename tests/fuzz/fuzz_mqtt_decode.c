/*
 * fuzz_mqtt_decode.c - libFuzzer target for core/mqtt_codec.
 *
 * Input: one byte that picks the connection's protocol level (0 = before
 * CONNECT, 3, 4), then a stream of packets. Each packet is framed with
 * mqtt_fixed_parse and decoded both ways; a decoded CONNECT sets the level for
 * the packets after it, as the session would. Invariants (abort on failure):
 *  - the server-direction decoder agrees with mqtt_decode_any on every packet
 *    a client may send, and refuses every other type with PROTOCOL_ERROR;
 *  - a decoded packet re-encodes (encoded size == bytes written), frames,
 *    and decodes again to the same fields;
 *  - when the input used the canonical encoding (minimal remaining length, the
 *    3.1.1 flag nibble), the re-encoding is byte-identical.
 * Build: cmake -DRINGMQ_FUZZ=ON -DCMAKE_C_COMPILER=clang, or by hand:
 *   clang -fsanitize=fuzzer,address,undefined -I. core/mqtt_codec.c \
 *       tests/fuzz/fuzz_mqtt_decode.c
 * Run:   ./fuzz_mqtt_decode -dict=tests/fuzz/mqtt.dict tests/fuzz/corpus/mqtt_decode
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mqtt_codec.h"

/* Frames larger than this are refused as too large (keeps runs fast). */
#define FUZZ_PACKET_BYTES_MAX (1u << 20)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_mqtt_decode: invariant failed: %s (line %d)\n", #cond,           \
                    __LINE__);                                                                     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(const struct mqtt_str *a, const struct mqtt_str *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static bool subs_eq(const struct mqtt_pkt *a, const struct mqtt_pkt *b)
{
    struct mqtt_sub_iter ia, ib;
    struct mqtt_sub_entry ea, eb;
    bool more_a, more_b;

    if (a->u.subscribe.pkt_id != b->u.subscribe.pkt_id ||
        a->u.subscribe.count != b->u.subscribe.count) {
        return false;
    }
    mqtt_sub_iter_init(&ia, a);
    mqtt_sub_iter_init(&ib, b);
    for (;;) {
        more_a = mqtt_sub_next(&ia, &ea);
        more_b = mqtt_sub_next(&ib, &eb);
        if (more_a != more_b) {
            return false;
        }
        if (!more_a) {
            return true;
        }
        if (!str_eq(&ea.filter, &eb.filter) || ea.options != eb.options) {
            return false;
        }
    }
}

/* Field equality of two decoded packets (strings compared by content). */
static bool pkt_eq(const struct mqtt_pkt *a, const struct mqtt_pkt *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;

        return x->version == y->version && x->clean_session == y->clean_session &&
               x->keepalive_s == y->keepalive_s && str_eq(&x->client_id, &y->client_id) &&
               x->will == y->will && x->will_qos == y->will_qos &&
               x->will_retain == y->will_retain && str_eq(&x->will_topic, &y->will_topic) &&
               str_eq(&x->will_payload, &y->will_payload) && x->has_username == y->has_username &&
               x->has_password == y->has_password && str_eq(&x->username, &y->username) &&
               str_eq(&x->password, &y->password);
    }
    case MQTT_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present &&
               a->u.connack.rc == b->u.connack.rc;
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;

        return x->qos == y->qos && x->dup == y->dup && x->retain == y->retain &&
               x->pkt_id == y->pkt_id && str_eq(&x->topic, &y->topic) &&
               str_eq(&x->payload, &y->payload);
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_UNSUBACK:
        return a->u.ack.pkt_id == b->u.ack.pkt_id;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return subs_eq(a, b);
    case MQTT_SUBACK:
        return a->u.suback.pkt_id == b->u.suback.pkt_id && a->u.suback.count == b->u.suback.count &&
               memcmp(a->u.suback.rcs, b->u.suback.rcs, a->u.suback.count) == 0;
    default:
        return true;
    }
}

static bool client_to_server(uint8_t type)
{
    return type == MQTT_CONNECT || type == MQTT_PUBLISH || type == MQTT_PUBACK ||
           type == MQTT_PUBREC || type == MQTT_PUBREL || type == MQTT_PUBCOMP ||
           type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE || type == MQTT_PINGREQ ||
           type == MQTT_DISCONNECT;
}

static uint8_t rl_bytes(uint32_t rl)
{
    return rl < 128 ? 1 : rl < 16384 ? 2 : rl < 2097152 ? 3 : 4;
}

/* True if re-encoding @fh's packet must give back the very same bytes. */
static bool canonical(const struct mqtt_fixed *fh, uint8_t version)
{
    if (fh->hdr_bytes != 1 + rl_bytes(fh->body_bytes)) {
        return false; /* non-minimal remaining length (accepted in 3.1.1) */
    }
    if (version == MQTT_V31) {
        /* 3.1: CONNACK's first byte is unused; DUP may mark retries. */
        return fh->type != MQTT_CONNACK && (fh->type == MQTT_PUBLISH || (fh->flags & 0x8) == 0);
    }
    return true;
}

/* Re-encode decoded @pkt, decode the result, and compare. */
static void check_round_trip(const struct mqtt_pkt *pkt, uint8_t dec_version, const uint8_t *orig,
                             const struct mqtt_fixed *orig_fh)
{
    uint8_t enc_version = pkt->type == MQTT_CONNECT ? pkt->u.connect.version : dec_version;
    struct mqtt_sub_entry *entries = NULL;
    struct mqtt_pkt enc = *pkt;
    struct mqtt_pkt again;
    struct mqtt_fixed fh;
    uint8_t *buf = NULL;
    size_t size;
    size_t wrote;
    uint32_t i;

    if (pkt->type == MQTT_SUBSCRIBE || pkt->type == MQTT_UNSUBSCRIBE) {
        struct mqtt_sub_iter it;

        /* The encoder reads entries[]; a decoded packet only has raw bytes. */
        entries = calloc(pkt->u.subscribe.count, sizeof(*entries));
        CHECK(entries != NULL);
        mqtt_sub_iter_init(&it, pkt);
        for (i = 0; i < pkt->u.subscribe.count; i++) {
            CHECK(mqtt_sub_next(&it, &entries[i]));
        }
        CHECK(!mqtt_sub_next(&it, &entries[0]));
        enc.u.subscribe.entries = entries;
    }

    size = mqtt_encoded_size(&enc, enc_version);
    CHECK(size == (size_t)orig_fh->hdr_bytes + orig_fh->body_bytes ||
          !canonical(orig_fh, enc_version));
    CHECK(size >= 2);
    buf = malloc(size);
    CHECK(buf != NULL);
    wrote = mqtt_encode(&enc, enc_version, buf, size);
    CHECK(wrote == size);
    if (canonical(orig_fh, enc_version)) {
        CHECK(memcmp(buf, orig, size) == 0);
    }
    CHECK(mqtt_fixed_parse(buf, wrote, UINT32_MAX, &fh) > 0);
    CHECK((size_t)fh.hdr_bytes + fh.body_bytes == wrote);
    CHECK(fh.hdr_bytes == 1 + rl_bytes(fh.body_bytes));
    CHECK(mqtt_decode_any(&fh, buf + fh.hdr_bytes, dec_version, &again) == 0);
    CHECK(pkt_eq(pkt, &again));

    free(buf);
    free(entries);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t versions[] = {0, MQTT_V31, MQTT_V311};
    const uint8_t *p;
    size_t left;
    uint8_t version;

    if (size < 1) {
        return 0;
    }
    version = versions[data[0] % sizeof(versions)];
    p = data + 1;
    left = size - 1;
    /* Each round consumes at least the 2-byte fixed header. */
    while (left > 0) {
        struct mqtt_fixed fh;
        struct mqtt_pkt srv, any;
        const uint8_t *body;
        size_t total;
        size_t k;
        int rc_srv, rc_any;
        int rc = mqtt_fixed_parse(p, left, FUZZ_PACKET_BYTES_MAX, &fh);

        if (rc <= 0) {
            break;
        }
        CHECK(rc == fh.hdr_bytes && fh.type != 0);
        for (k = 0; k < fh.hdr_bytes; k++) {
            CHECK(mqtt_fixed_parse(p, k, FUZZ_PACKET_BYTES_MAX, &fh) == 0);
        }
        CHECK(mqtt_fixed_parse(p, left, FUZZ_PACKET_BYTES_MAX, &fh) == rc);
        total = (size_t)fh.hdr_bytes + fh.body_bytes;
        if (total > left) {
            break;
        }
        body = p + fh.hdr_bytes;

        rc_srv = mqtt_decode(&fh, body, version, &srv);
        rc_any = mqtt_decode_any(&fh, body, version, &any);
        CHECK(rc_srv <= 0 && rc_any <= 0);
        if (client_to_server(fh.type)) {
            CHECK(rc_srv == rc_any);
            CHECK(rc_srv != 0 || pkt_eq(&srv, &any));
        } else {
            CHECK(rc_srv == -MQTT_RC_PROTOCOL_ERROR);
        }
        if (rc_any == -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            CHECK(fh.type == MQTT_CONNECT && version == 0 && any.type == MQTT_CONNECT);
        }
        if (rc_any == 0) {
            check_round_trip(&any, version, p, &fh);
            if (any.type == MQTT_CONNECT) {
                version = any.u.connect.version; /* the session's negotiated level */
            }
        }
        p += total;
        left -= total;
    }
    return 0;
}
