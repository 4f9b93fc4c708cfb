/*
 * lg_selftest.c - `ringmq-loadgen selftest`: checks of the generator's own
 * arithmetic, runnable without a broker (CTest: perf/loadgen_selftest).
 *
 * Covers what a wrong benchmark would silently get wrong: histogram bucket
 * bounds and quantiles, merging, the payload stamp, loss/duplicate/
 * out-of-order accounting, /proc parsing, and the option checks that keep
 * the generator on loopback. Main thread only; prints one line per failure.
 */
#include "perf/lg_selftest.h"

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
    CHECK(PARSE(o, "p2p", "--mqtt", "5") < 0);
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
    fprintf(stderr, "selftest: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
