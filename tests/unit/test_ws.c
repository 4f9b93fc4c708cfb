/*
 * test_ws.c - unit tests for net/ws (WebSocket upgrade and frame codec, RFC 6455).
 *
 * Frames are decoded whole, at every split point, and from a buffer that ends
 * at a guard page (a read past the end faults).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "net/ws.h"
#include "tests/unit/codec_helpers.h"

#define FRAME_MAX 1000u

/* RFC 6455 section 1.3's example key and its accept value. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

#define REQ_HEAD                                                                                   \
    "GET /mqtt HTTP/1.1\r\nHost: broker\r\nUpgrade: websocket\r\nConnection: keep-alive, "      \
    "Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n"

static int parse(const char *req, struct ws_upgrade *up)
{
    size_t len = strlen(req);

    cr_assert_eq(ws_http_head_len((const uint8_t *)req, len), len, "head not found in %s", req);
    return ws_upgrade_parse((const uint8_t *)req, len, "/mqtt", up);
}

Test(ws, finds_the_end_of_the_request_head_only_when_it_is_there)
{
    const char *req = REQ_HEAD "\r\nEXTRA";

    cr_assert_eq(ws_http_head_len((const uint8_t *)req, strlen(req)), strlen(req) - 5);
    cr_assert_eq(ws_http_head_len((const uint8_t *)REQ_HEAD, strlen(REQ_HEAD)), 0);
    cr_assert_eq(ws_http_head_len((const uint8_t *)"\r\n\r", 3), 0);
}

Test(ws, accepts_an_upgrade_and_answers_with_the_rfc_accept_key)
{
    struct ws_upgrade up;
    char out[WS_HTTP_RESPONSE_MAX];
    size_t n;

    cr_assert_eq(parse(REQ_HEAD "Sec-WebSocket-Protocol: mqtt\r\n\r\n", &up), 101);
    cr_assert_str_eq(up.key, RFC_KEY);
    cr_assert_str_eq(up.protocol, "mqtt");
    n = ws_upgrade_response(&up, out, sizeof(out));
    cr_assert_gt(n, 0);
    out[n] = '\0';
    cr_assert(strstr(out, "HTTP/1.1 101 Switching Protocols\r\n") == out);
    cr_assert_not_null(strstr(out, "\r\nSec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
    cr_assert_not_null(strstr(out, "\r\nSec-WebSocket-Protocol: mqtt\r\n"));
    cr_assert(strcmp(out + n - 4, "\r\n\r\n") == 0);
}

Test(ws, accepts_a_client_that_offers_no_subprotocol_and_names_none)
{
    struct ws_upgrade up;
    char out[WS_HTTP_RESPONSE_MAX];
    size_t n;

    cr_assert_eq(parse(REQ_HEAD "\r\n", &up), 101);
    cr_assert_null(up.protocol);
    n = ws_upgrade_response(&up, out, sizeof(out));
    out[n] = '\0';
    cr_assert_null(strstr(out, "Sec-WebSocket-Protocol"));
}

Test(ws, picks_mqtt_from_a_list_and_takes_mqttv31_for_old_clients)
{
    struct ws_upgrade up;

    cr_assert_eq(parse(REQ_HEAD "Sec-WebSocket-Protocol: chat, MQTT\r\n\r\n", &up), 101);
    cr_assert_str_eq(up.protocol, "mqtt");
    cr_assert_eq(parse(REQ_HEAD "Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n", &up), 101);
    cr_assert_str_eq(up.protocol, "mqttv3.1");
    cr_assert_eq(parse(REQ_HEAD "Sec-WebSocket-Protocol: chat\r\n\r\n", &up), 400);
}

Test(ws, ignores_a_query_string_and_refuses_another_path)
{
    struct ws_upgrade up;
    const char *other = "GET /mqttx HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: "
                        "Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                        "\r\nSec-WebSocket-Version: 13\r\n\r\n";
    const char *query = "GET /mqtt?x=1 HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: "
                        "Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
                        "\r\nSec-WebSocket-Version: 13\r\n\r\n";

    cr_assert_eq(parse(other, &up), 404);
    cr_assert_eq(parse(query, &up), 101);
}

Test(ws, refuses_each_bad_request_with_its_status)
{
    static const struct {
        const char *req;
        int status;
    } cases[] = {
        {"POST /mqtt HTTP/1.1\r\nHost: b\r\n\r\n", 405},
        {"get /mqtt HTTP/1.1\r\nHost: b\r\n\r\n", 405},
        {"GET /mqtt HTTP/1.0\r\nHost: b\r\n\r\n", 400},
        {"GET /mqtt HTTP/1.1\r\nHost: b\r\n\r\n", 426},
        {"GET /mqtt HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\n\r\n", 426},
        {"GET /mqtt HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
         426},
        {"GET /mqtt HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /mqtt HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: short==\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /mqtt HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
         400},
        {"GET /mqtt HTTP/1.1\r\nno colon here\r\n\r\n", 400},
        {"GET /mqtt HTTP/1.1\nHost: b\r\n\r\n", 400},
        {"garbage\r\n\r\n", 400},
    };
    struct ws_upgrade up;
    char out[WS_HTTP_RESPONSE_MAX];
    char want[32];
    size_t i;
    size_t n;

    for (i = 0; i < RM_ARRAY_LEN(cases); i++) {
        cr_assert_eq(ws_upgrade_parse((const uint8_t *)cases[i].req, strlen(cases[i].req),
                                      "/mqtt", &up),
                     cases[i].status, "case %zu: %s", i, cases[i].req);
        cr_assert_not_null(up.why);
        n = ws_upgrade_response(&up, out, sizeof(out));
        out[n] = '\0';
        snprintf(want, sizeof(want), "HTTP/1.1 %d ", cases[i].status);
        cr_assert(strncmp(out, want, strlen(want)) == 0, "case %zu answered %s", i, out);
        cr_assert_not_null(strstr(out, "Connection: close\r\n"));
        if (cases[i].status == 426) {
            cr_assert_not_null(strstr(out, "Sec-WebSocket-Version: 13\r\n"));
        }
    }
}

/* A masked client frame of @op carrying @payload[0..@len), into @out; its length. */
static size_t client_frame(uint8_t *out, uint8_t first, const uint8_t *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    size_t i;

    out[n++] = first;
    if (len < 126) {
        out[n++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[n++] = 0x80 | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = 0x80 | 127;
        for (i = 0; i < 8; i++) {
            out[n++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        }
    }
    memcpy(out + n, mask, 4);
    n += 4;
    for (i = 0; i < len; i++) {
        out[n + i] = payload[i] ^ mask[i % 4];
    }
    return n + len;
}

/* What decoding a stream produced: data bytes, pings, closes, the error. */
struct decoded {
    uint8_t data[4096];
    size_t data_len;
    unsigned pings;
    uint8_t ping[WS_CONTROL_BYTES_MAX];
    size_t ping_len;
    unsigned closes;
    uint16_t close_status;
    long err;
};

/* Feed @stream[0..@len) in two pieces split at @split, each from a guard-page buffer. */
static void decode_split(const uint8_t *stream, size_t len, size_t split, struct decoded *d)
{
    const size_t cuts[3] = {0, split, len};
    struct ws_rx rx;
    struct ws_event ev;
    int part;

    memset(d, 0, sizeof(*d));
    ws_rx_init(&rx, FRAME_MAX);
    for (part = 0; part < 2 && d->err == 0 && d->closes == 0; part++) {
        struct guard g = guard_new(cuts[part + 1] - cuts[part]);
        size_t n = cuts[part + 1] - cuts[part];
        uint8_t *p = guard_place(&g, stream + cuts[part], n);
        long used;

        while (n > 0) {
            used = ws_rx_next(&rx, p, n, &ev);
            if (used < 0) {
                d->err = used;
                break;
            }
            cr_assert_gt(used, 0);
            cr_assert_leq((size_t)used, n);
            if (ev.kind == WS_EV_DATA) {
                cr_assert_leq(d->data_len + ev.len, sizeof(d->data));
                memcpy(d->data + d->data_len, ev.data, ev.len);
                d->data_len += ev.len;
            } else if (ev.kind == WS_EV_PING) {
                d->pings++;
                memcpy(d->ping, ev.data, ev.len);
                d->ping_len = ev.len;
            } else if (ev.kind == WS_EV_CLOSE) {
                d->closes++;
                d->close_status = ev.status;
                break;
            }
            p += used;
            n -= (size_t)used;
        }
        guard_free(&g);
    }
}

Test(ws, unmasks_fragments_and_interleaved_pings_at_every_split_point)
{
    uint8_t stream[2048];
    uint8_t payload[300];
    struct decoded d;
    size_t len = 0;
    size_t split;
    size_t i;

    for (i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7);
    }
    len += client_frame(stream + len, WS_OP_BINARY, payload, 100);            /* FIN=0 */
    len += client_frame(stream + len, 0x80 | WS_OP_PING, (const uint8_t *)"ping!", 5);
    len += client_frame(stream + len, WS_OP_CONT, payload + 100, 150);        /* 16-bit len */
    len += client_frame(stream + len, 0x80 | WS_OP_CONT, payload + 250, 50);
    len += client_frame(stream + len, 0x80 | WS_OP_BINARY, payload, 0);      /* empty message */
    len += client_frame(stream + len, 0x80 | WS_OP_PONG, NULL, 0);
    for (split = 0; split <= len; split++) {
        decode_split(stream, len, split, &d);
        cr_assert_eq(d.err, 0, "split %zu: error %ld", split, d.err);
        cr_assert_eq(d.data_len, sizeof(payload), "split %zu", split);
        cr_assert_arr_eq(d.data, payload, sizeof(payload), "split %zu", split);
        cr_assert_eq(d.pings, 1);
        cr_assert_eq(d.ping_len, 5);
        cr_assert_arr_eq(d.ping, "ping!", 5);
        cr_assert_eq(d.closes, 0);
    }
}

Test(ws, reads_a_64_bit_length_and_a_close_status)
{
    uint8_t stream[256];
    uint8_t big[200] = {1, 2, 3};
    const uint8_t status[2] = {0x03, 0xe8}; /* 1000 */
    struct decoded d;
    size_t len = 0;

    /* A 64-bit length for a short payload is legal (not minimal, but RFC 6455 allows it). */
    stream[len++] = 0x80 | WS_OP_BINARY;
    stream[len++] = 0x80 | 127;
    memset(stream + len, 0, 7);
    stream[len + 7] = sizeof(big);
    len += 8;
    memset(stream + len, 0, 4); /* zero mask */
    len += 4;
    memcpy(stream + len, big, sizeof(big));
    len += sizeof(big);
    len += client_frame(stream + len, 0x80 | WS_OP_CLOSE, status, sizeof(status));
    decode_split(stream, len, len / 2, &d);
    cr_assert_eq(d.err, 0);
    cr_assert_eq(d.data_len, sizeof(big));
    cr_assert_arr_eq(d.data, big, sizeof(big));
    cr_assert_eq(d.closes, 1);
    cr_assert_eq(d.close_status, 1000);
}

/* One frame that must be refused with @status. */
static void expect_violation(const uint8_t *frame, size_t len, long status)
{
    struct decoded d;
    size_t split;

    for (split = 0; split <= len; split++) {
        decode_split(frame, len, split, &d);
        cr_assert_eq(d.err, -status, "split %zu: got %ld, want %ld", split, d.err, -status);
    }
}

Test(ws, refuses_unmasked_reserved_text_and_oversized_frames_with_their_status)
{
    uint8_t f[64];
    uint8_t payload[130] = {0};
    size_t n;

    /* Unmasked (RFC 6455 5.1): 1002. */
    f[0] = 0x80 | WS_OP_BINARY;
    f[1] = 3;
    memcpy(f + 2, "abc", 3);
    expect_violation(f, 5, WS_STATUS_PROTOCOL);
    /* Reserved bits: 1002. */
    n = client_frame(f, 0x80 | 0x40 | WS_OP_BINARY, payload, 3);
    expect_violation(f, n, WS_STATUS_PROTOCOL);
    /* Reserved opcode: 1002. */
    n = client_frame(f, 0x80 | 0x3, payload, 3);
    expect_violation(f, n, WS_STATUS_PROTOCOL);
    /* Text [MQTT-6.0.0-1]: 1003. */
    n = client_frame(f, 0x80 | WS_OP_TEXT, payload, 3);
    expect_violation(f, n, WS_STATUS_UNSUPPORTED);
    /* Continuation without a message: 1002. */
    n = client_frame(f, 0x80 | WS_OP_CONT, payload, 3);
    expect_violation(f, n, WS_STATUS_PROTOCOL);
    /* Fragmented control frame: 1002. */
    n = client_frame(f, WS_OP_PING, payload, 3);
    expect_violation(f, n, WS_STATUS_PROTOCOL);
    /* A one-byte close payload: 1002. */
    n = client_frame(f, 0x80 | WS_OP_CLOSE, payload, 1);
    expect_violation(f, n, WS_STATUS_PROTOCOL);
    /* A close status that may not be sent (1005): 1002. */
    payload[0] = 0x03;
    payload[1] = 0xed;
    n = client_frame(f, 0x80 | WS_OP_CLOSE, payload, 2);
    expect_violation(f, n, WS_STATUS_PROTOCOL);
    /* A 64-bit length with the top bit set: 1002. */
    f[0] = 0x80 | WS_OP_BINARY;
    f[1] = 0x80 | 127;
    memset(f + 2, 0xff, 8);
    memset(f + 10, 0, 4);
    expect_violation(f, 14, WS_STATUS_PROTOCOL);
    /* Over the frame limit: 1009, decided by the header alone. */
    f[0] = 0x80 | WS_OP_BINARY;
    f[1] = 0x80 | 126;
    f[2] = (uint8_t)((FRAME_MAX + 1) >> 8);
    f[3] = (uint8_t)(FRAME_MAX + 1);
    memset(f + 4, 0, 4);
    expect_violation(f, 8, WS_STATUS_TOO_BIG);
}

Test(ws, refuses_a_new_message_inside_a_fragmented_one)
{
    uint8_t stream[64];
    const uint8_t p[3] = {1, 2, 3};
    size_t len = 0;

    len += client_frame(stream + len, WS_OP_BINARY, p, 3);
    len += client_frame(stream + len, 0x80 | WS_OP_BINARY, p, 3);
    expect_violation(stream, len, WS_STATUS_PROTOCOL);
}

Test(ws, control_frames_over_125_bytes_are_refused)
{
    uint8_t f[200];
    uint8_t payload[126] = {0};
    size_t n = client_frame(f, 0x80 | WS_OP_PING, payload, sizeof(payload));

    expect_violation(f, n, WS_STATUS_PROTOCOL);
}

Test(ws, writes_server_frame_headers_with_the_shortest_length)
{
    uint8_t h[WS_FRAME_HDR_OUT_MAX];

    cr_assert_eq(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    cr_assert_eq(h[0], 0x82);
    cr_assert_eq(h[1], 125);
    cr_assert_eq(ws_frame_header(h, WS_OP_BINARY, 126), 4);
    cr_assert_eq(h[1], 126);
    cr_assert_eq(h[2], 0);
    cr_assert_eq(h[3], 126);
    cr_assert_eq(ws_frame_header(h, WS_OP_CLOSE, 65536), 10);
    cr_assert_eq(h[0], 0x88);
    cr_assert_eq(h[1], 127);
    cr_assert_eq(h[7], 1);
    cr_assert_eq(h[8], 0);
    cr_assert_eq(h[9], 0);
}
