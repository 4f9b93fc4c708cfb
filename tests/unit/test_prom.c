/*
 * test_prom.c - net/board (per-shard snapshots, summed) and net/prom (the
 * Prometheus text exposition of them).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "config/config.h"
#include "net/board.h"
#include "net/prom.h"

static struct config cfg;

static void two_listeners(void)
{
    memset(&cfg, 0, sizeof(cfg));
    cfg.listener_count = 2;
    snprintf(cfg.listeners[0].name, sizeof(cfg.listeners[0].name), "plain");
    snprintf(cfg.listeners[1].name, sizeof(cfg.listeners[1].name), "tls");
}

/* The value of the sample line starting with @prefix (name and labels), or -1. */
static double sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while (p != NULL && *p != '\0') {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ') {
            double v;

            cr_assert_eq(sscanf(p + n + 1, "%lf", &v), 1);
            return v;
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    return -1;
}

Test(board, sums_shards_but_keeps_the_largest_retained_replica)
{
    struct board *b = board_new(3);
    struct board_snap s;
    struct board_snap total;

    cr_assert_not_null(b);
    for (uint32_t i = 0; i < 3; i++) {
        memset(&s, 0, sizeof(s));
        s.at_ms = 100 + i;
        s.broker.msgs_in = 10 * (i + 1);
        s.broker.clients = i + 1;
        s.broker.sessions = 2 * (i + 1);
        s.retained = 5 + (i == 1);
        s.wal_fsync.bucket[3] = 1;
        board_store(b, i, &s);
    }
    board_sum(b, &total);
    cr_assert_eq(total.broker.msgs_in, 60);
    cr_assert_eq(total.broker.clients, 6);
    cr_assert_eq(total.broker.sessions, 12);
    cr_assert_eq(total.retained, 6);
    cr_assert_eq(total.at_ms, 102);
    cr_assert_eq(total.wal_fsync.bucket[3], 3);
    board_read(b, 2, &s);
    cr_assert_eq(s.broker.msgs_in, 30);
    board_free(b);
}

Test(prom, renders_help_type_and_one_sample_per_shard_and_label)
{
    struct board *b = board_new(2);
    struct board_snap s;
    struct text t = {0};

    two_listeners();
    memset(&s, 0, sizeof(s));
    s.shard.accepted_by_listener[1] = 7;
    s.broker.msgs_in_qos[2] = 4;
    s.broker.connects_proto[2] = 3;
    s.shard.busy_ns = 1500000000u;
    s.broker.slow_readers_closed = 2;
    board_store(b, 1, &s);
    cr_assert_eq(prom_render(b, &cfg, "9.9", &t), 0);
    cr_assert_not_null(t.p);
    cr_assert_not_null(strstr(t.p, "# TYPE ringmq_messages_received_total counter\n"));
    cr_assert_not_null(strstr(t.p, "# HELP ringmq_messages_received_total "));
    cr_assert_eq(sample(t.p, "ringmq_build_info{version=\"9.9\"}"), 1);
    cr_assert_eq(sample(t.p, "ringmq_connections_accepted_total{shard=\"1\",listener=\"tls\"}"),
                 7);
    cr_assert_eq(sample(t.p, "ringmq_connections_accepted_total{shard=\"0\",listener=\"tls\"}"),
                 0);
    cr_assert_eq(sample(t.p, "ringmq_messages_received_total{shard=\"1\",qos=\"2\"}"), 4);
    cr_assert_eq(sample(t.p, "ringmq_mqtt_connects_total{shard=\"1\",protocol=\"5.0\"}"), 3);
    cr_assert_eq(sample(t.p, "ringmq_loop_busy_seconds_total{shard=\"1\"}"), 1.5);
    cr_assert_eq(sample(t.p, "ringmq_clients_closed_total{shard=\"1\",reason=\"slow_reader\"}"),
                 2);
    cr_assert_eq(sample(t.p, "ringmq_wal_fsync_seconds_bucket{shard=\"0\",le=\"+Inf\"}"), 0);
    text_free(&t);
    board_free(b);
}

Test(prom, makes_histogram_buckets_cumulative)
{
    struct board *b = board_new(1);
    struct board_snap s;
    struct text t = {0};

    two_listeners();
    memset(&s, 0, sizeof(s));
    hist_record(&s.wal_fsync, 40000);     /* <= 50 us */
    hist_record(&s.wal_fsync, 3000000);   /* <= 5 ms */
    hist_record(&s.wal_fsync, 2000000000); /* +Inf */
    board_store(b, 0, &s);
    cr_assert_eq(prom_render(b, &cfg, "1", &t), 0);
    cr_assert_eq(sample(t.p, "ringmq_wal_fsync_seconds_bucket{shard=\"0\",le=\"5e-05\"}"), 1);
    cr_assert_eq(sample(t.p, "ringmq_wal_fsync_seconds_bucket{shard=\"0\",le=\"0.005\"}"), 2);
    cr_assert_eq(sample(t.p, "ringmq_wal_fsync_seconds_bucket{shard=\"0\",le=\"1\"}"), 2);
    cr_assert_eq(sample(t.p, "ringmq_wal_fsync_seconds_bucket{shard=\"0\",le=\"+Inf\"}"), 3);
    cr_assert_eq(sample(t.p, "ringmq_wal_fsync_seconds_count{shard=\"0\"}"), 3);
    text_free(&t);
    board_free(b);
}
