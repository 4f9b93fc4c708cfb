/*
 * fuzz_mqtt_decode.c - libFuzzer target for core/mqtt_codec.
 *
 * Input: one byte that picks the connection's protocol level (0 = before
 * CONNECT, 3, 4, 5), then a stream of packets. Each packet is framed with
 * mqtt_fixed_parse and decoded both ways; a decoded CONNECT sets the level for
 * the packets after it, as the session would. Invariants (abort on failure):
 *  - the server-direction decoder agrees with mqtt_decode_any on every packet
 *    a client may send (but refuses a 5.0 PUBLISH with a subscription id,
 *    [MQTT-3.3.4-6]), and refuses every other type with PROTOCOL_ERROR;
 *  - a decoded packet re-encodes (encoded size == bytes written), frames,
 *    and decodes again to the same fields; 5.0 properties are re-encoded
 *    both from the raw block and from the decoded fields (plus user
 *    properties via mqtt_props_copy and subscription ids via mqtt_prop_next);
 *  - when the input used the canonical encoding (minimal remaining length, the
 *    3.1.1 flag nibble, 5.0 shortest ack forms), the raw re-encoding is
 *    byte-identical.
 * Build: cmake -DRINGMQ_FUZZ=ON -DCMAKE_C_COMPILER=clang, or by hand:
 *   clang -fsanitize=fuzzer,address,undefined -I. core/mqtt_*.c \
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

/* Subscription ids and user properties of a decoded block, in order. */
static bool prop_seq_eq(const struct mqtt_props *a, const struct mqtt_props *b, uint8_t id)
{
    struct mqtt_prop_iter ia, ib;
    struct mqtt_prop pa, pb;
    bool more_a, more_b;

    mqtt_prop_iter_init(&ia, a);
    mqtt_prop_iter_init(&ib, b);
    for (;;) {
        do {
            more_a = mqtt_prop_next(&ia, &pa);
        } while (more_a && pa.id != id);
        do {
            more_b = mqtt_prop_next(&ib, &pb);
        } while (more_b && pb.id != id);
        if (more_a != more_b) {
            return false;
        }
        if (!more_a) {
            return true;
        }
        if (pa.num != pb.num || !str_eq(&pa.str, &pb.str) || !str_eq(&pa.val, &pb.val)) {
            return false;
        }
    }
}

/* Equality of two decoded property blocks by field (order of fields aside). */
static bool props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    return a->has == b->has && a->sub_id == b->sub_id && a->user_count == b->user_count &&
           a->message_expiry == b->message_expiry && a->session_expiry == b->session_expiry &&
           a->will_delay == b->will_delay && a->max_packet_size == b->max_packet_size &&
           a->server_keepalive == b->server_keepalive && a->receive_max == b->receive_max &&
           a->topic_alias_max == b->topic_alias_max && a->topic_alias == b->topic_alias &&
           a->payload_format == b->payload_format &&
           a->request_problem_info == b->request_problem_info &&
           a->request_response_info == b->request_response_info && a->max_qos == b->max_qos &&
           a->retain_available == b->retain_available &&
           a->wildcard_sub_available == b->wildcard_sub_available &&
           a->sub_id_available == b->sub_id_available &&
           a->shared_sub_available == b->shared_sub_available &&
           str_eq(&a->content_type, &b->content_type) &&
           str_eq(&a->response_topic, &b->response_topic) &&
           str_eq(&a->correlation_data, &b->correlation_data) &&
           str_eq(&a->assigned_client_id, &b->assigned_client_id) &&
           str_eq(&a->auth_method, &b->auth_method) && str_eq(&a->auth_data, &b->auth_data) &&
           str_eq(&a->response_info, &b->response_info) &&
           str_eq(&a->server_reference, &b->server_reference) &&
           str_eq(&a->reason_string, &b->reason_string) && prop_seq_eq(a, b, MQTT_PROP_USER) &&
           prop_seq_eq(a, b, MQTT_PROP_SUBSCRIPTION_ID);
}

/* How a decoded block is handed to the encoder. */
enum props_mode {
    PROPS_RAW,    /* the raw block verbatim */
    PROPS_FIELDS, /* fields by has bit, user properties copied, sub ids collected */
};

/* Scratch for one packet's PROPS_FIELDS rebuild (CONNECT has two blocks). */
struct rebuild {
    uint8_t *users;
    uint32_t *ids;
};

static void props_for_encode(struct mqtt_props *pr, enum props_mode mode, struct rebuild *rb)
{
    struct mqtt_prop_iter it;
    struct mqtt_prop p;
    uint32_t n = 0;
    size_t users;

    if (mode == PROPS_RAW) {
        *pr = (struct mqtt_props){.raw = pr->raw};
        return;
    }
    rb->users = malloc(pr->raw.len + 1);
    rb->ids = malloc((pr->raw.len / 2 + 1) * sizeof(uint32_t));
    CHECK(rb->users != NULL && rb->ids != NULL);
    users = mqtt_props_copy(pr, MQTT_PROP_BIT(MQTT_PROP_USER), NULL);
    CHECK(mqtt_props_copy(pr, MQTT_PROP_BIT(MQTT_PROP_USER), rb->users) == users);
    mqtt_prop_iter_init(&it, pr);
    while (mqtt_prop_next(&it, &p)) {
        CHECK(p.bytes.len >= 2);
        if (p.id == MQTT_PROP_SUBSCRIPTION_ID) {
            rb->ids[n++] = p.num;
        }
    }
    pr->raw = (struct mqtt_str){rb->users, (uint32_t)users};
    pr->sub_ids = rb->ids;
    pr->sub_id_count = n;
}

static bool subs_eq(const struct mqtt_pkt *a, const struct mqtt_pkt *b)
{
    struct mqtt_sub_iter ia, ib;
    struct mqtt_sub_entry ea, eb;
    bool more_a, more_b;

    if (a->u.subscribe.pkt_id != b->u.subscribe.pkt_id ||
        a->u.subscribe.count != b->u.subscribe.count ||
        !props_eq(&a->u.subscribe.props, &b->u.subscribe.props)) {
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
               str_eq(&x->password, &y->password) && props_eq(&x->props, &y->props) &&
               props_eq(&x->will_props, &y->will_props);
    }
    case MQTT_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present &&
               a->u.connack.rc == b->u.connack.rc &&
               props_eq(&a->u.connack.props, &b->u.connack.props);
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;

        return x->qos == y->qos && x->dup == y->dup && x->retain == y->retain &&
               x->pkt_id == y->pkt_id && str_eq(&x->topic, &y->topic) &&
               str_eq(&x->payload, &y->payload) && props_eq(&x->props, &y->props);
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return a->u.ack.pkt_id == b->u.ack.pkt_id && a->u.ack.rc == b->u.ack.rc &&
               props_eq(&a->u.ack.props, &b->u.ack.props);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return subs_eq(a, b);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return a->u.suback.pkt_id == b->u.suback.pkt_id && a->u.suback.count == b->u.suback.count &&
               (a->u.suback.count == 0 ||
                memcmp(a->u.suback.rcs, b->u.suback.rcs, a->u.suback.count) == 0) &&
               props_eq(&a->u.suback.props, &b->u.suback.props);
    default:
        return true;
    }
}

static bool client_to_server(uint8_t type)
{
    return type == MQTT_CONNECT || type == MQTT_PUBLISH || type == MQTT_PUBACK ||
           type == MQTT_PUBREC || type == MQTT_PUBREL || type == MQTT_PUBCOMP ||
           type == MQTT_SUBSCRIBE || type == MQTT_UNSUBSCRIBE || type == MQTT_PINGREQ ||
           type == MQTT_DISCONNECT || type == MQTT_AUTH;
}

static uint8_t rl_bytes(uint32_t rl)
{
    return rl < 128 ? 1 : rl < 16384 ? 2 : rl < 2097152 ? 3 : 4;
}

/* True if a 5.0 ack, DISCONNECT or AUTH used its shortest form (3.4.2.1 etc.). */
static bool shortest_form(const struct mqtt_fixed *fh, const struct mqtt_pkt *pkt)
{
    uint32_t head = fh->type == MQTT_DISCONNECT || fh->type == MQTT_AUTH ? 0 : 2;
    uint32_t want;

    if (pkt->u.ack.props.raw.len > 0) {
        return true;
    }
    if (pkt->u.ack.rc == 0) {
        want = head;
    } else {
        want = fh->type == MQTT_AUTH ? 2 : head + 1;
    }
    return fh->body_bytes == want;
}

/* True if re-encoding @fh's packet must give back the very same bytes. */
static bool canonical(const struct mqtt_fixed *fh, uint8_t version, const struct mqtt_pkt *pkt)
{
    if (fh->hdr_bytes != 1 + rl_bytes(fh->body_bytes)) {
        return false; /* non-minimal remaining length (accepted in 3.1.1) */
    }
    if (version == MQTT_V5 && ((fh->type >= MQTT_PUBACK && fh->type <= MQTT_PUBCOMP) ||
                               fh->type == MQTT_DISCONNECT || fh->type == MQTT_AUTH)) {
        return shortest_form(fh, pkt);
    }
    if (version == MQTT_V31) {
        /* 3.1: CONNACK's first byte is unused; DUP may mark retries. */
        return fh->type != MQTT_CONNACK && (fh->type == MQTT_PUBLISH || (fh->flags & 0x8) == 0);
    }
    return true;
}

/* The property blocks of @pkt (none for PINGREQ/PINGRESP and before 5.0). */
static size_t props_of(struct mqtt_pkt *pkt, struct mqtt_props **out)
{
    switch (pkt->type) {
    case MQTT_CONNECT:
        out[0] = &pkt->u.connect.props;
        out[1] = &pkt->u.connect.will_props;
        return 2;
    case MQTT_CONNACK:
        out[0] = &pkt->u.connack.props;
        return 1;
    case MQTT_PUBLISH:
        out[0] = &pkt->u.publish.props;
        return 1;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        out[0] = &pkt->u.subscribe.props;
        return 1;
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        out[0] = &pkt->u.suback.props;
        return 1;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        out[0] = &pkt->u.ack.props;
        return 1;
    default:
        return 0;
    }
}

/* Re-encode decoded @pkt (properties per @mode), decode the result, and compare. */
static void check_round_trip(const struct mqtt_pkt *pkt, uint8_t dec_version, const uint8_t *orig,
                             const struct mqtt_fixed *orig_fh, enum props_mode mode)
{
    uint8_t enc_version = pkt->type == MQTT_CONNECT ? pkt->u.connect.version : dec_version;
    struct mqtt_sub_entry *entries = NULL;
    struct mqtt_pkt enc = *pkt;
    struct mqtt_pkt again;
    struct mqtt_fixed fh;
    struct mqtt_props *blocks[2];
    struct rebuild rb[2] = {{NULL, NULL}, {NULL, NULL}};
    bool exact = mode == PROPS_RAW && canonical(orig_fh, enc_version, pkt);
    uint8_t *buf = NULL;
    size_t size;
    size_t wrote;
    size_t nb;
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
    nb = enc_version == MQTT_V5 ? props_of(&enc, blocks) : 0;
    for (i = 0; i < nb; i++) {
        props_for_encode(blocks[i], mode, &rb[i]);
    }

    size = mqtt_encoded_size(&enc, enc_version);
    CHECK(size == (size_t)orig_fh->hdr_bytes + orig_fh->body_bytes || !exact);
    CHECK(size >= 2);
    buf = malloc(size);
    CHECK(buf != NULL);
    wrote = mqtt_encode(&enc, enc_version, buf, size);
    CHECK(wrote == size);
    if (exact) {
        CHECK(memcmp(buf, orig, size) == 0);
    }
    CHECK(mqtt_fixed_parse(buf, wrote, UINT32_MAX, &fh) > 0);
    CHECK((size_t)fh.hdr_bytes + fh.body_bytes == wrote);
    CHECK(fh.hdr_bytes == 1 + rl_bytes(fh.body_bytes));
    CHECK(mqtt_decode_any(&fh, buf + fh.hdr_bytes, dec_version, &again) == 0);
    CHECK(pkt_eq(pkt, &again));

    free(buf);
    free(entries);
    for (i = 0; i < 2; i++) {
        free(rb[i].users);
        free(rb[i].ids);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t versions[] = {0, MQTT_V31, MQTT_V311, MQTT_V5};
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
        if (fh.type == MQTT_PUBLISH && rc_any == 0 &&
            (any.u.publish.props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_ID)) != 0) {
            CHECK(version == MQTT_V5 && rc_srv == -MQTT_RC_PROTOCOL_ERROR); /* [MQTT-3.3.4-6] */
        } else if (client_to_server(fh.type)) {
            CHECK(rc_srv == rc_any);
            CHECK(rc_srv != 0 || pkt_eq(&srv, &any));
        } else {
            CHECK(rc_srv == -MQTT_RC_PROTOCOL_ERROR);
        }
        if (rc_any == -MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION) {
            CHECK(fh.type == MQTT_CONNECT && version == 0 && any.type == MQTT_CONNECT);
        }
        if (rc_any == 0) {
            check_round_trip(&any, version, p, &fh, PROPS_RAW);
            check_round_trip(&any, version, p, &fh, PROPS_FIELDS);
            if (any.type == MQTT_CONNECT) {
                version = any.u.connect.version; /* the session's negotiated level */
            }
        }
        p += total;
        left -= total;
    }
    return 0;
}
