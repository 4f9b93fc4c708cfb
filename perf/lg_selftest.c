/*
 * lg_selftest.c - `ringmq-loadgen selftest`: checks of the generator's own
 * arithmetic, runnable without a broker (CTest: perf/loadgen_selftest).
 *
 * Covers what a wrong benchmark would silently get wrong: histogram bucket
 * bounds and quantiles, merging, the payload stamp, loss/duplicate/
 * out-of-order accounting, /proc parsing, the option checks that keep
 * the generator on loopback and tie each transport flag to its transport,
 * and the WebSocket pieces (accept key, frame headers and masking, the
 * upgrade answer). Main thread only; prints one line per failure.
 */
#include "perf/lg_selftest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rm_assert.h"
#include "perf/lg_hist.h"
#include "perf/lg_msg.h"
#include "perf/lg_opts.h"
#include "perf/lg_proc.h"
#include "perf/lg_ws.h"

static int failures;
static int checks;
static FILE *report; /* the real stderr, while tests silence stderr */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        checks++;                                                                                  \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(report, "selftest: FAILED %s (%s:%d)\n", #cond, __FILE__, __LINE__);           \
        }                                                                                          \
    } while (0)

/* Every value lies in its bucket, and a bucket is at most 1/64 of its low bound wide. */
static void hist_buckets_bound_every_value(void)
{
    uint64_t v;
    uint32_t prev = 0;
    int bad = 0;

    for (v = 0; v < (1ull << 36); v = v < 4096 ? v + 1 : v + v / 97 + 1) {
        uint32_t i = lg_hist_index(v);
        uint64_t lo = lg_hist_bucket_low(i);
        uint64_t hi = lg_hist_bucket_high(i);

        if (lo > v || hi < v || i < prev || (lo >= 64 && (hi - lo + 1) * 64 > lo)) {
            bad++;
        }
        prev = i;
    }
    CHECK(bad == 0);
    CHECK(lg_hist_index(UINT64_MAX) == LG_HIST_BUCKETS - 1);
    CHECK(lg_hist_bucket_low(lg_hist_index(64)) == 64);
    CHECK(lg_hist_bucket_high(lg_hist_index(127)) == 127);
    CHECK(lg_hist_bucket_low(lg_hist_index(128)) == 128);
    CHECK(lg_hist_bucket_high(lg_hist_index(128)) == 129);
}

static bool within(uint64_t got, uint64_t want, double rel)
{
    double d = (double)got - (double)want;

    return (d < 0 ? -d : d) <= rel * (double)want + 1;
}

/* Quantiles of 1..100000 us are within the bucket error; merge adds up. */
static void hist_quantiles_are_within_two_percent(void)
{
    struct lg_hist *a = malloc(sizeof(*a));
    struct lg_hist *b = malloc(sizeof(*b));
    uint64_t v;

    RM_ASSERT(a != NULL && b != NULL);
    lg_hist_init(a);
    lg_hist_init(b);
    CHECK(lg_hist_quantile(a, 0.5) == 0);
    for (v = 1; v <= 100000; v++) {
        lg_hist_record(v % 2 ? a : b, v * 1000);
    }
    lg_hist_merge(a, b);
    CHECK(a->count == 100000);
    CHECK(a->min_ns == 1000 && a->max_ns == 100000000);
    CHECK(within(lg_hist_quantile(a, 0.5), 50000000, 0.02));
    CHECK(within(lg_hist_quantile(a, 0.99), 99000000, 0.02));
    CHECK(within(lg_hist_quantile(a, 0.999), 99900000, 0.02));
    CHECK(lg_hist_quantile(a, 1.0) == 100000000);
    CHECK(within((uint64_t)lg_hist_mean(a), 50000500, 0.0001));
    /* One outlier among many: p99.9 does not move, max does. */
    lg_hist_init(b);
    for (v = 0; v < 10000; v++) {
        lg_hist_record(b, 100000);
    }
    lg_hist_record(b, 50000000);
    CHECK(within(lg_hist_quantile(b, 0.999), 100000, 0.02));
    CHECK(lg_hist_quantile(b, 1.0) == 50000000);
    free(a);
    free(b);
}

static void msg_stamp_round_trips(void)
{
    uint8_t buf[LG_MSG_STAMP_BYTES];
    struct lg_msg_stamp in = {.seq = 0xfeedbeef, .pub_id = 77, .sent_ns = 0x0123456789abcdefull};
    struct lg_msg_stamp out;

    lg_msg_stamp_put(buf, &in);
    CHECK(lg_msg_stamp_get(buf, sizeof(buf), &out));
    CHECK(out.seq == in.seq && out.pub_id == in.pub_id && out.sent_ns == in.sent_ns);
    CHECK(buf[0] == 0xef && buf[4] == 77); /* little-endian on the wire */
    CHECK(!lg_msg_stamp_get(buf, LG_MSG_STAMP_BYTES - 1, &out));
}

static void msg_track_counts_dups_and_reordering(void)
{
    struct lg_msg_track t = {0};
    uint32_t s;

    for (s = 0; s < 10; s++) {
        CHECK(lg_msg_track_note(&t, s, false) == LG_MSG_NEW);
    }
    CHECK(lg_msg_track_note(&t, 5, false) == LG_MSG_DUP);
    CHECK(lg_msg_track_note(&t, 12, false) == LG_MSG_NEW); /* 10, 11 missing so far */
    CHECK(lg_msg_track_note(&t, 11, false) == LG_MSG_LATE);
    CHECK(lg_msg_track_note(&t, 11, true) == LG_MSG_DUP);
    CHECK(t.received == 12 && t.dups == 2 && t.ooo == 1);
    /* A jump past the bitmap, then something far behind it. */
    CHECK(lg_msg_track_note(&t, 500, false) == LG_MSG_NEW);
    CHECK(lg_msg_track_note(&t, 10, true) == LG_MSG_DUP);   /* flagged redelivery */
    CHECK(lg_msg_track_note(&t, 10, false) == LG_MSG_LATE); /* taken as a late first copy */
    CHECK(t.received == 14 && t.dups == 3 && t.ooo == 2);
    CHECK(lg_msg_track_note(&t, 499, false) == LG_MSG_LATE);
    CHECK(lg_msg_track_note(&t, 499, false) == LG_MSG_DUP);
}

static void proc_parses_stat_with_odd_names(void)
{
    const char *stat = "1234 (a) (b c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 "
                       "1 0 100 1000000 200 18446744073709551615";
    struct lg_proc_sample s;
    uint64_t ticks = 0;
    uint64_t ns = 0;

    CHECK(lg_proc_parse_stat(stat, strlen(stat), &ticks) == 0);
    CHECK(ticks == 325);
    CHECK(lg_proc_parse_stat("1 (x) S 1 2", 11, &ticks) < 0);
    CHECK(lg_proc_sample(getpid(), &s) == 0 && s.ok && s.rss_bytes > 0);
    /* schedstat and stat count the same time: within a few 10 ms ticks of each other. */
    if (lg_proc_cpu_ns(getpid(), &ns) == 0) {
        char path[64];
        char text[1024];
        ssize_t n;
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)getpid());
        fd = open(path, O_RDONLY);
        CHECK(fd >= 0);
        n = read(fd, text, sizeof(text) - 1);
        close(fd);
        CHECK(n > 0);
        text[n] = '\0';
        CHECK(lg_proc_parse_stat(text, (size_t)n, &ticks) == 0);
        CHECK((double)ns / 1e9 + 0.05 >= (double)ticks / (double)sysconf(_SC_CLK_TCK));
        CHECK((double)ns / 1e9 <= (double)ticks / (double)sysconf(_SC_CLK_TCK) + 0.05);
    }
}

static int parse(const char *const *args, int n, struct lg_opts *o)
{
    char *argv[16];
    int i;

    RM_ASSERT(n < 16);
    for (i = 0; i < n; i++) {
        argv[i] = (char *)args[i];
    }
    argv[n] = NULL;
    return lg_opts_parse(n, argv, o);
}

#define PARSE(o, ...)                                                                              \
    parse((const char *const[]){"ringmq-loadgen", __VA_ARGS__},                                    \
          (int)(sizeof((const char *const[]){"ringmq-loadgen", __VA_ARGS__}) / sizeof(char *)),    \
          (o))

/* --mqtt 5 and the transport flags: each belongs to its transport, TLS must say how to verify. */
static void opts_check_protocol_and_transport(void)
{
    struct lg_opts *o = malloc(sizeof(*o));
    FILE *saved = stderr;
    FILE *quiet = fopen("/dev/null", "w");

    RM_ASSERT(o != NULL);
    if (quiet != NULL) {
        stderr = quiet;
    }
    CHECK(PARSE(o, "p2p", "--mqtt", "5") == 0 && o->mqtt_version == 5);
    CHECK(PARSE(o, "p2p", "--mqtt", "5.0") == 0 && o->mqtt_version == 5);
    CHECK(PARSE(o, "p2p") == 0 && o->mqtt_version == 4 && strcmp(o->transport->name, "tcp") == 0);
    CHECK(PARSE(o, "p2p", "--transport", "tls", "--tls-ca", "/x.pem") == 0 &&
          strcmp(o->transport->name, "tls") == 0 && strcmp(o->tcfg.tls_ca, "/x.pem") == 0);
    CHECK(PARSE(o, "p2p", "--transport", "wss", "--tls-insecure", "--tls-sni", "broker.lan") == 0 &&
          o->tcfg.tls_insecure && strcmp(o->tcfg.tls_sni, "broker.lan") == 0);
    CHECK(PARSE(o, "p2p", "--transport", "ws", "--port", "8080") == 0 &&
          strcmp(o->tcfg.ws_path, "/mqtt") == 0 && strcmp(o->tcfg.ws_host, "127.0.0.1:8080") == 0);
    CHECK(PARSE(o, "p2p", "--transport", "ws", "--host", "::1", "--ws-path", "/a/b?c=1") == 0 &&
          strcmp(o->tcfg.ws_path, "/a/b?c=1") == 0 && strcmp(o->tcfg.ws_host, "[::1]:1883") == 0);
    CHECK(PARSE(o, "p2p", "--transport", "tls") < 0); /* verify how? */
    CHECK(PARSE(o, "p2p", "--transport", "tls", "--tls-ca", "a", "--tls-insecure") < 0);
    CHECK(PARSE(o, "p2p", "--tls-insecure") < 0);                     /* tcp */
    CHECK(PARSE(o, "p2p", "--transport", "ws", "--tls-ca", "a") < 0); /* no TLS under ws */
    CHECK(PARSE(o, "p2p", "--transport", "tls", "--tls-insecure", "--ws-path", "/m") < 0);
    CHECK(PARSE(o, "p2p", "--transport", "ws", "--ws-path", "mqtt") < 0);
    CHECK(PARSE(o, "p2p", "--transport", "ws", "--ws-path", "/a b") < 0);
    CHECK(PARSE(o, "p2p", "--transport", "wss", "--tls-insecure", "--tls-sni", "a_b") < 0);
    stderr = saved;
    if (quiet != NULL) {
        fclose(quiet);
    }
    free(o);
}

/* RFC 6455 section 1.3's example, and the SHA-1/base64 behind it. */
static void ws_accept_matches_rfc_example(void)
{
    char out[LG_WS_ACCEPT_CHARS + 1];

    CHECK(lg_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out) == 0);
    CHECK(strcmp(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

/* Server frames: every length form, every refusal, and 0 at every cut. */
static void ws_frame_parse_checks_server_frames(void)
{
    static const uint8_t small[] = {0x82, 0x05};
    static const uint8_t mid[] = {0x02, 126, 0x01, 0x00};
    static const uint8_t big[] = {0x80, 127, 0, 0, 0, 0, 0, 1, 0, 0};
    static const uint8_t ping[] = {0x89, 125};
    static const struct {
        uint8_t b[10];
        size_t n;
    } bad[] = {
        {{0x82, 0x85}, 2},                               /* masked */
        {{0xc2, 0x01}, 2},                               /* RSV1 */
        {{0x83, 0x01}, 2},                               /* reserved opcode */
        {{0x8b, 0x00}, 2},                               /* reserved control opcode */
        {{0x09, 0x00}, 2},                               /* fragmented ping */
        {{0x88, 126, 0, 126}, 4},                        /* control over 125 */
        {{0x82, 126, 0, 125}, 4},                        /* 16-bit form for 125 */
        {{0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10}, /* 64-bit form for 65535 */
        {{0x82, 127, 0x80, 0, 0, 0, 0, 1, 0, 0}, 10},    /* top bit */
    };
    struct lg_ws_frame f;
    size_t i;
    size_t k;
    int incomplete = 0;

    CHECK(lg_ws_frame_parse(small, sizeof(small), &f) == 2 && f.fin && f.len == 5 &&
          f.opcode == LG_WS_BINARY);
    CHECK(lg_ws_frame_parse(mid, sizeof(mid), &f) == 4 && !f.fin && f.len == 256 &&
          f.opcode == LG_WS_BINARY);
    CHECK(lg_ws_frame_parse(big, sizeof(big), &f) == 10 && f.fin && f.len == 65536 &&
          f.opcode == LG_WS_CONT);
    CHECK(lg_ws_frame_parse(ping, sizeof(ping), &f) == 2 && f.len == 125 && f.opcode == LG_WS_PING);
    for (k = 0; k < sizeof(big); k++) {
        incomplete += lg_ws_frame_parse(big, k, &f) == 0;
    }
    for (k = 0; k < sizeof(mid); k++) {
        incomplete += lg_ws_frame_parse(mid, k, &f) == 0;
    }
    CHECK(incomplete == (int)(sizeof(big) + sizeof(mid)));
    for (i = 0; i < RM_ARRAY_LEN(bad); i++) {
        CHECK(lg_ws_frame_parse(bad[i].b, bad[i].n, &f) == -EPROTO);
    }
}

/* Client frames are masked, in the shortest length form, and the mask undoes itself. */
static void ws_frame_header_masks_client_frames(void)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    static const uint64_t lens[] = {0, 125, 126, 65535, 65536};
    static const size_t sizes[] = {6, 6, 8, 8, 14};
    uint8_t h[LG_WS_HEADER_MAX];
    uint8_t data[11] = "Hello MQTT";
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(lens); i++) {
        size_t n = lg_ws_frame_header(h, LG_WS_BINARY, true, lens[i], mask);

        CHECK(n == sizes[i] && h[0] == 0x82 && (h[1] & 0x80) != 0);
        CHECK(memcmp(h + n - 4, mask, 4) == 0);
    }
    CHECK(lg_ws_frame_header(h, LG_WS_BINARY, true, 5, mask) == 6 && h[1] == 0x85);
    /* RFC 6455 5.7: "Hello" masked with 37 fa 21 3d is 7f 9f 4d 51 58. */
    lg_ws_mask(data, 5, mask, 0);
    CHECK(data[0] == 0x7f && data[1] == 0x9f && data[2] == 0x4d && data[3] == 0x51 &&
          data[4] == 0x58);
    lg_ws_mask(data + 5, 5, mask, 5); /* a later piece of the same frame */
    lg_ws_mask(data, 2, mask, 0);
    lg_ws_mask(data + 2, 8, mask, 2);
    CHECK(memcmp(data, "Hello MQTT", 10) == 0);
}

static int ws_check(const char *resp)
{
    return lg_ws_response_check(resp, strlen(resp), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL);
}

/* The upgrade answer: 101, the upgrade headers, the accept key and the mqtt subprotocol. */
static void ws_response_check_needs_every_part(void)
{
    const char *why = NULL;

    CHECK(ws_check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n\r\n") == 0);
    CHECK(ws_check("HTTP/1.1 101 OK\r\nupgrade:WebSocket\r\nconnection: keep-alive, upgrade\r\n"
                   "sec-websocket-protocol:  mqtt \r\n"
                   "SEC-WEBSOCKET-ACCEPT: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n") == 0);
    CHECK(ws_check("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n\r\n") < 0);
    CHECK(ws_check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "\r\n") < 0);
    CHECK(ws_check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "Sec-WebSocket-Protocol: mqttv3.1\r\n\r\n") < 0);
    CHECK(ws_check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n\r\n") < 0);
    CHECK(ws_check("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n"
                   "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n") < 0);
    static const char ok_for_other_key[] =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "Sec-WebSocket-Protocol: mqtt\r\n\r\n";
    /* A complete response whose accept value is for another key. */
    CHECK(lg_ws_response_check(ok_for_other_key, strlen(ok_for_other_key),
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", &why) < 0 &&
          why != NULL && strstr(why, "Accept") != NULL);
}

static void opts_stay_on_loopback(void)
{
    struct lg_opts *o = malloc(sizeof(*o));
    FILE *saved = stderr;
    FILE *quiet = fopen("/dev/null", "w");

    RM_ASSERT(o != NULL);
    if (quiet != NULL) {
        stderr = quiet; /* the refusals below print their reasons */
    }
    CHECK(PARSE(o, "p2p", "--host", "127.0.0.9", "--port", "1999") == 0);
    CHECK(o->pairs == 100 && o->window == 10 && o->port == 1999);
    CHECK(PARSE(o, "fanin", "--host", "::1", "--shared", "4") == 0);
    CHECK(o->shared == 4 && o->subs == 0 && o->pubs == 100);
    CHECK(PARSE(o, "fanout", "--host", "localhost") == 0);
    CHECK(o->pubs == 1 && o->subs == 100);
    CHECK(PARSE(o, "conn", "--src-range", "127.0.0.2-127.0.1.254", "--conns", "10") == 0);
    CHECK(o->src_first == 0x7f000002u && o->src_last == 0x7f0001feu && o->conns == 10);
    CHECK(PARSE(o, "p2p", "--mqtt", "3.1") == 0 && o->mqtt_version == 3);
    CHECK(PARSE(o, "p2p", "--host", "10.0.0.1") < 0);
    CHECK(PARSE(o, "p2p", "--host", "192.168.1.1") < 0);
    CHECK(PARSE(o, "p2p", "--host", "example.com") < 0);
    CHECK(PARSE(o, "p2p", "--host", "::ffff:10.0.0.1") < 0);
    CHECK(PARSE(o, "p2p", "--host", "2001:db8::1") < 0);
    CHECK(PARSE(o, "conn", "--src-range", "127.0.0.2-128.0.0.1") < 0);
    CHECK(PARSE(o, "conn", "--src-range", "127.0.0.9-127.0.0.2") < 0);
    CHECK(PARSE(o, "p2p", "--mqtt", "6") < 0);
    CHECK(PARSE(o, "p2p", "--payload", "15") < 0);
    CHECK(PARSE(o, "p2p", "--shared", "2") < 0);
    CHECK(PARSE(o, "fanin", "--shared", "2", "--subs", "2") < 0);
    CHECK(PARSE(o, "p2p", "--topic-prefix", "a/+/b") < 0);
    CHECK(PARSE(o, "p2p", "--transport", "carrier-pigeon") < 0);
    CHECK(PARSE(o, "nosuch") < 0);
    stderr = saved;
    if (quiet != NULL) {
        fclose(quiet);
    }
    free(o);
}

int lg_selftest_run(void)
{
    report = stderr;
    hist_buckets_bound_every_value();
    hist_quantiles_are_within_two_percent();
    msg_stamp_round_trips();
    msg_track_counts_dups_and_reordering();
    proc_parses_stat_with_odd_names();
    opts_stay_on_loopback();
    opts_check_protocol_and_transport();
    ws_accept_matches_rfc_example();
    ws_frame_parse_checks_server_frames();
    ws_frame_header_masks_client_frames();
    ws_response_check_needs_every_part();
    fprintf(stderr, "selftest: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
