/*
 * loadgen.c - ringmq-loadgen: the MQTT load generator of issue 4.
 *
 * The main thread parses the options, raises its own open-file limit, builds
 * the clients (lg_run_setup) and then drives the run through its phases:
 * connect every client (subscribers also subscribe), publish for warmup +
 * duration while measuring the duration, drain messages still in flight,
 * stop. It samples the broker's CPU time and RSS at the edges of the measured
 * interval, prints a progress line each second and a summary to stderr, and
 * one JSON line with every parameter and figure to stdout. Every phase has a
 * deadline, so a run always ends.
 *
 * Workers (lg_worker.c) own the connections; this thread only reads their
 * atomic counters while they run and their full statistics after join.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <arpa/inet.h>

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "perf/lg_clock.h"
#include "perf/lg_hist.h"
#include "perf/lg_opts.h"
#include "perf/lg_proc.h"
#include "perf/lg_run.h"
#include "perf/lg_selftest.h"
#include "perf/lg_worker.h"

#define TICK_NS 50000000ull       /* main thread poll period */
#define PROGRESS_NS 1000000000ull /* one progress line per second */
#define FDS_SPARE 64u             /* fds besides the clients: epoll, eventfd, stdio, /proc */
#define CONNECT_SLACK_S 5.0       /* added to the computed connect-phase bound */
#define EXIT_OK 0
#define EXIT_SETUP 1
#define EXIT_RUN 2
#define EXIT_CHECK 3

/*
 * SIGINT/SIGTERM: the first ends the measured interval (the drain still runs),
 * a second skips the drain too.
 */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    if (interrupted < 2) {
        interrupted++;
    }
}

/* Everything the report needs, gathered by main. */
struct report {
    const char *error; /* NULL when the run completed */
    bool interrupted;

    uint64_t t_start_ns;
    uint64_t t_conn_end_ns;
    uint64_t t_meas_start_ns;
    uint64_t t_meas_end_ns; /* actual end of the measured interval */
    uint64_t t_end_ns;
    double drain_used_s;

    struct lg_live_sum live;
    struct lg_stats st;
    struct lg_hist lat;
    struct lg_hist conn_lat;
    uint64_t expected;
    uint64_t loss;
    uint64_t loss_subs;    /* subscribers (or shared groups) missing messages */
    uint64_t loss_max_sub; /* most missed by one subscriber */
    uint64_t dups;
    uint64_t ooo;

    struct lg_proc_sample b_base;  /* before connecting */
    struct lg_proc_sample b_conn;  /* after connecting */
    struct lg_proc_sample b_start; /* start of the measured interval */
    struct lg_proc_sample b_end;   /* end of the measured interval */
    uint64_t fd_limit;
};

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(t_ns / 1000000000ull),
                          .tv_nsec = (long)(t_ns % 1000000000ull)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        if (interrupted) {
            break;
        }
    }
}

static void sample_broker(const struct lg_opts *o, struct lg_proc_sample *s)
{
    if (o->broker_pid > 0) {
        lg_proc_sample(o->broker_pid, s);
    }
}

static const char *phase_name(enum lg_phase p)
{
    static const char *const names[] = {"connect", "run", "drain", "stop"};

    RM_ASSERT((unsigned)p < RM_ARRAY_LEN(names));
    return names[p];
}

/* Progress on stderr, at most once per PROGRESS_NS. */
struct progress {
    uint64_t next_ns;
    uint64_t last_ns;
    struct lg_live_sum last;
};

static void progress_tick(const struct lg_run *run, struct progress *pg, uint64_t t0,
                          enum lg_phase phase, bool force)
{
    const struct lg_opts *o = run->opts;
    uint64_t now = lg_clock_ns();
    struct lg_live_sum cur;
    double dt;
    uint64_t exp;

    if (o->quiet || (!force && now < pg->next_ns)) {
        return;
    }
    lg_run_live_sum(run, &cur);
    dt = pg->last_ns != 0 ? secs(now - pg->last_ns) : secs(now - t0);
    if (dt <= 0) {
        dt = 1e-9;
    }
    exp = lg_run_expected(run);
    fprintf(stderr,
            "lg [%6.1fs] %-7s conns %" PRIu64 "/%u failed %" PRIu64 " lost %" PRIu64
            "  sent %.0f/s  recv %.0f/s  in-flight %" PRIu64 "\n",
            secs(now - t0), phase_name(phase), cur.conns_ok, run->nclients, cur.conns_failed,
            cur.conns_lost, (double)(cur.sent - pg->last.sent) / dt,
            (double)(cur.recv - pg->last.recv) / dt, exp > cur.recv ? exp - cur.recv : 0);
    pg->last = cur;
    pg->last_ns = now;
    pg->next_ns = now + PROGRESS_NS;
}

/* Sleep in ticks until @t_ns (or a signal), printing progress. */
static void wait_until(const struct lg_run *run, struct progress *pg, uint64_t t0, uint64_t t_ns,
                       enum lg_phase phase)
{
    for (;;) {
        uint64_t now = lg_clock_ns();

        progress_tick(run, pg, t0, phase, false);
        if (now >= t_ns || interrupted) {
            break;
        }
        sleep_until(t_ns - now > TICK_NS ? now + TICK_NS : t_ns);
    }
}

/* Bound on the connect phase: pacing, plus every attempt of every wave timing out. */
static uint64_t connect_bound_ns(const struct lg_opts *o, uint32_t clients)
{
    double waves = ceil((double)clients / (double)o->connect_concurrency);
    double s = CONNECT_SLACK_S + waves * o->connect_attempts * (o->connect_timeout_s + 1.0);

    if (o->connect_rate > 0) {
        s += clients / o->connect_rate;
    }
    return (uint64_t)(s * 1e9);
}

static bool pubsub(const struct lg_opts *o)
{
    return o->scenario != LG_SCENARIO_CONN;
}

/* Connect phase: until every client is connected (and subscribed) or given up. */
static void run_connect(struct lg_run *run, struct report *r, struct progress *pg)
{
    const struct lg_opts *o = run->opts;
    uint64_t deadline = r->t_start_ns + connect_bound_ns(o, run->nclients);

    for (;;) {
        uint64_t now = lg_clock_ns();

        progress_tick(run, pg, r->t_start_ns, LG_PHASE_CONNECT, false);
        lg_run_live_sum(run, &r->live);
        if (r->live.conns_done >= run->nclients) {
            break;
        }
        if (interrupted) {
            r->error = "interrupted while connecting";
            break;
        }
        if (now >= deadline) {
            r->error = "connect phase did not finish within its bound";
            break;
        }
        sleep_until(now + TICK_NS / 5);
    }
    r->t_conn_end_ns = lg_clock_ns();
    sample_broker(o, &r->b_conn);
    lg_run_live_sum(run, &r->live);
    if (r->error == NULL && pubsub(o) && r->live.conns_ok < run->nclients) {
        r->error = "some clients failed to connect or subscribe (see connect_errors)";
    }
}

/* Publish scenarios: warmup, measured interval, drain. */
static void run_publish(struct lg_run *run, struct report *r, struct progress *pg)
{
    const struct lg_opts *o = run->opts;
    uint64_t now = lg_clock_ns();
    uint64_t drain_end;

    run->t_pub_start_ns = now;
    run->t_meas_start_ns = now + (uint64_t)(o->warmup_s * 1e9);
    run->t_meas_end_ns = run->t_meas_start_ns + (uint64_t)(o->duration_s * 1e9);
    lg_worker_set_phase(run, LG_PHASE_RUN);

    wait_until(run, pg, r->t_start_ns, run->t_meas_start_ns, LG_PHASE_RUN);
    r->t_meas_start_ns = lg_clock_ns();
    sample_broker(o, &r->b_start);
    wait_until(run, pg, r->t_start_ns, run->t_meas_end_ns, LG_PHASE_RUN);
    r->t_meas_end_ns = lg_clock_ns();
    if (r->t_meas_end_ns > run->t_meas_end_ns) {
        r->t_meas_end_ns = run->t_meas_end_ns;
    }
    sample_broker(o, &r->b_end);
    lg_worker_set_phase(run, LG_PHASE_DRAIN);

    /* Drain: every owed message received, every QoS 1/2 exchange finished, or time up. */
    now = lg_clock_ns();
    drain_end = now + (uint64_t)(o->drain_s * 1e9);
    for (;;) {
        struct lg_live_sum cur;

        progress_tick(run, pg, r->t_start_ns, LG_PHASE_DRAIN, false);
        lg_run_live_sum(run, &cur);
        if (cur.recv >= lg_run_expected(run) && cur.unacked == 0 && cur.q2_in == 0) {
            break;
        }
        if (lg_clock_ns() >= drain_end || interrupted > 1) {
            break;
        }
        sleep_until(lg_clock_ns() + TICK_NS / 5);
    }
    r->drain_used_s = secs(lg_clock_ns() - now);
}

/* Conn scenario: hold every connection for the duration. */
static void run_hold(struct lg_run *run, struct report *r, struct progress *pg)
{
    const struct lg_opts *o = run->opts;

    r->t_meas_start_ns = r->t_start_ns;
    r->b_start = r->b_base;
    lg_worker_set_phase(run, LG_PHASE_RUN);
    wait_until(run, pg, r->t_start_ns, r->t_conn_end_ns + (uint64_t)(o->duration_s * 1e9),
               LG_PHASE_RUN);
    r->t_meas_end_ns = lg_clock_ns();
    sample_broker(o, &r->b_end);
}

/* ---------------------------------------------------------------- results */

static void collect(const struct lg_run *run, struct report *r)
{
    uint64_t *group_sent;
    uint64_t *group_recv;
    uint32_t i;

    lg_hist_init(&r->lat);
    lg_hist_init(&r->conn_lat);
    memset(&r->st, 0, sizeof(r->st));
    for (i = 0; i < run->nworkers; i++) {
        const struct lg_worker *w = &run->workers[i];
        const uint64_t *from = (const uint64_t *)&w->st;
        uint64_t *into = (uint64_t *)&r->st;
        size_t k;

        _Static_assert(sizeof(struct lg_stats) % sizeof(uint64_t) == 0,
                       "struct lg_stats holds only uint64_t counters");
        for (k = 0; k < sizeof(r->st) / sizeof(uint64_t); k++) {
            into[k] += from[k];
        }
        lg_hist_merge(&r->lat, &w->lat);
        lg_hist_merge(&r->conn_lat, &w->conn_lat);
    }
    lg_run_live_sum(run, &r->live);
    r->expected = lg_run_expected(run);

    if (run->ngroups == 0) {
        return;
    }
    group_sent = calloc(run->ngroups, sizeof(*group_sent));
    group_recv = calloc(run->ngroups, sizeof(*group_recv));
    if (group_sent == NULL || group_recv == NULL) {
        r->error = "out of memory while collecting results";
        goto out;
    }
    for (i = 0; i < run->npubs; i++) {
        group_sent[run->pubs[i].group] += atomic_load(&run->pubs[i].sent_total);
    }
    for (i = 0; i < run->nsubs; i++) {
        const struct lg_sub *s = &run->subs[i];
        const struct lg_group *g = &run->groups[s->group];
        uint64_t recv = 0;
        uint32_t k;

        for (k = 0; k < g->pub_count; k++) {
            recv += s->tracks[k].received;
            r->dups += s->tracks[k].dups;
            r->ooo += s->tracks[k].ooo;
        }
        if (g->shared) {
            group_recv[s->group] += recv;
            continue;
        }
        if (recv < group_sent[s->group]) {
            uint64_t miss = group_sent[s->group] - recv;

            r->loss += miss;
            r->loss_subs++;
            if (miss > r->loss_max_sub) {
                r->loss_max_sub = miss;
            }
        }
    }
    /* A shared group owes each message once, to any one member. */
    for (i = 0; i < run->ngroups; i++) {
        if (!run->groups[i].shared) {
            continue;
        }
        if (group_recv[i] < group_sent[i]) {
            uint64_t miss = group_sent[i] - group_recv[i];

            r->loss += miss;
            r->loss_subs++;
            if (miss > r->loss_max_sub) {
                r->loss_max_sub = miss;
            }
        } else {
            r->dups += group_recv[i] - group_sent[i]; /* delivered to two members */
        }
    }
out:
    free(group_sent);
    free(group_recv);
}

/* A minimal JSON object writer: one line, keys in call order. */
struct json {
    FILE *f;
    bool first;
};

static void json_key(struct json *j, const char *key)
{
    fprintf(j->f, "%s\"%s\":", j->first ? "{" : ",", key);
    j->first = false;
}

static void json_str(struct json *j, const char *key, const char *v)
{
    const unsigned char *p;

    json_key(j, key);
    if (v == NULL) {
        fputs("null", j->f);
        return;
    }
    fputc('"', j->f);
    for (p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(j->f, "\\%c", *p);
        } else if (*p < 0x20) {
            fprintf(j->f, "\\u%04x", *p);
        } else {
            fputc(*p, j->f);
        }
    }
    fputc('"', j->f);
}

static void json_u64(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    fprintf(j->f, "%" PRIu64, v);
}

static void json_num(struct json *j, const char *key, double v)
{
    json_key(j, key);
    if (isfinite(v)) {
        fprintf(j->f, "%.6g", v);
    } else {
        fputs("null", j->f);
    }
}

static void json_bool(struct json *j, const char *key, bool v)
{
    json_key(j, key);
    fputs(v ? "true" : "false", j->f);
}

static double us(uint64_t ns)
{
    return (double)ns / 1e3;
}

/* Figures derived from the report, shared by the JSON line and the summary. */
struct derived {
    double measured_s;
    double sent_per_s;
    double recv_per_s;
    double connect_s;
    double connect_rate;
    double broker_cpu_s;
    double broker_connect_cpu_s;
    double msgs_per_broker_cpu_s;
    double connects_per_broker_cpu_s;
    double bytes_per_conn;
    bool broker;
};

static void derive(const struct lg_opts *o, const struct report *r, struct derived *d)
{
    memset(d, 0, sizeof(*d));
    d->measured_s = secs(r->t_meas_end_ns - r->t_meas_start_ns);
    if (d->measured_s > 0) {
        d->sent_per_s = (double)r->live.sent_meas / d->measured_s;
        d->recv_per_s = (double)r->live.recv_meas / d->measured_s;
    }
    d->connect_s =
        secs((r->live.last_ok_ns > r->t_start_ns ? r->live.last_ok_ns : r->t_conn_end_ns) -
             r->t_start_ns);
    d->connect_rate = d->connect_s > 0 ? (double)r->live.conns_ok / d->connect_s : NAN;
    d->broker = o->broker_pid > 0 && r->b_start.ok && r->b_end.ok;
    if (!d->broker) {
        d->broker_cpu_s = NAN;
        d->broker_connect_cpu_s = NAN;
        d->msgs_per_broker_cpu_s = NAN;
        d->connects_per_broker_cpu_s = NAN;
        d->bytes_per_conn = NAN;
        return;
    }
    d->broker_cpu_s = r->b_end.cpu_s - r->b_start.cpu_s;
    d->broker_connect_cpu_s =
        r->b_base.ok && r->b_conn.ok ? r->b_conn.cpu_s - r->b_base.cpu_s : NAN;
    /* Each delivered message counts once (fan-out 1 -> 100: 100 deliveries). */
    d->msgs_per_broker_cpu_s =
        d->broker_cpu_s > 0 && pubsub(o) ? (double)r->live.recv_meas / d->broker_cpu_s : NAN;
    d->connects_per_broker_cpu_s =
        d->broker_connect_cpu_s > 0 ? (double)r->live.conns_ok / d->broker_connect_cpu_s : NAN;
    d->bytes_per_conn =
        r->live.conns_ok > 0 && r->b_base.ok
            ? ((double)r->b_end.rss_bytes - (double)r->b_base.rss_bytes) / (double)r->live.conns_ok
            : NAN;
}

static const char *mqtt_name(uint8_t v)
{
    return v == MQTT_V31 ? "3.1" : v == MQTT_V5 ? "5.0" : "3.1.1";
}

static bool transport_is(const struct lg_opts *o, const char *a, const char *b)
{
    return strcmp(o->transport->name, a) == 0 || strcmp(o->transport->name, b) == 0;
}

/*
 * The one JSON line on stdout. Long: one statement per field, nothing else;
 * kept whole so that the line's fields read top to bottom in one place.
 */
static void print_json(const struct lg_run *run, const struct report *r, const struct derived *d)
{
    const struct lg_opts *o = run->opts;
    struct json j = {.f = stdout, .first = true};
    char src[2 * INET_ADDRSTRLEN + 2] = "";

    if (o->src_first != 0) {
        struct in_addr a = {.s_addr = htonl(o->src_first)};
        struct in_addr b = {.s_addr = htonl(o->src_last)};
        char sa[INET_ADDRSTRLEN];
        char sb[INET_ADDRSTRLEN];

        inet_ntop(AF_INET, &a, sa, sizeof(sa));
        inet_ntop(AF_INET, &b, sb, sizeof(sb));
        snprintf(src, sizeof(src), "%s-%s", sa, sb);
    }
    /* Parameters. */
    json_str(&j, "tool", "ringmq-loadgen");
    json_str(&j, "scenario", o->scenario_name);
    json_bool(&j, "ok", r->error == NULL);
    json_str(&j, "error", r->error);
    json_bool(&j, "interrupted", r->interrupted);
    json_str(&j, "transport", o->transport->name);
    json_str(&j, "mqtt", mqtt_name(o->mqtt_version));
    json_str(&j, "ws_path", transport_is(o, "ws", "wss") ? o->tcfg.ws_path : NULL);
    json_str(&j, "tls_verify",
             !transport_is(o, "tls", "wss") ? NULL
             : o->tcfg.tls_insecure         ? "none"
                                            : "ca");
    json_str(&j, "tls_sni", o->tcfg.tls_sni);
    json_str(&j, "host", o->host[0] != '\0' ? o->host : "127.0.0.1");
    json_u64(&j, "port", o->port);
    json_str(&j, "src_range", src[0] != '\0' ? src : NULL);
    json_u64(&j, "connections", run->nclients);
    json_u64(&j, "pairs", o->scenario == LG_SCENARIO_P2P ? o->pairs : 0);
    json_u64(&j, "pubs", run->npubs);
    json_u64(&j, "subs", run->nsubs);
    json_u64(&j, "shared", o->shared);
    json_u64(&j, "qos", o->qos);
    json_u64(&j, "payload", o->payload_bytes);
    json_num(&j, "rate", o->rate);
    json_str(&j, "rate_mode", o->rate > 0 ? "fixed" : "max");
    json_u64(&j, "window", o->window);
    json_u64(&j, "window_timeout_ms", o->window_timeout_ms);
    json_num(&j, "warmup_s", o->warmup_s);
    json_num(&j, "duration_s", o->duration_s);
    json_num(&j, "drain_s", o->drain_s);
    json_u64(&j, "threads", run->nworkers);
    json_num(&j, "connect_rate_target", o->connect_rate);
    json_u64(&j, "connect_concurrency", o->connect_concurrency);
    json_u64(&j, "connect_attempts", o->connect_attempts);
    json_num(&j, "connect_timeout_s", o->connect_timeout_s);
    json_u64(&j, "keepalive_s", o->keepalive_s);
    json_u64(&j, "broker_pid", (uint64_t)o->broker_pid);
    json_str(&j, "topic_prefix", o->topic_prefix);
    json_u64(&j, "fd_limit", r->fd_limit);

    /* Connections. */
    json_u64(&j, "conns_ok", r->live.conns_ok);
    json_u64(&j, "conns_failed", r->live.conns_failed);
    json_u64(&j, "conns_lost", r->live.conns_lost);
    json_u64(&j, "connect_attempts_made", r->st.attempts);
    json_u64(&j, "connect_err_refused", r->st.err_refused);
    json_u64(&j, "connect_err_timeout", r->st.err_timeout);
    json_u64(&j, "connect_err_reset", r->st.err_reset);
    json_u64(&j, "connect_err_addr", r->st.err_addr);
    json_u64(&j, "connect_err_fd", r->st.err_fd);
    json_u64(&j, "connect_err_handshake", r->st.err_handshake);
    json_u64(&j, "connect_err_other", r->st.err_other);
    json_u64(&j, "connack_refused", r->st.connack_refused);
    json_u64(&j, "suback_refused", r->st.suback_refused);
    json_num(&j, "connect_s", d->connect_s);
    json_num(&j, "connect_rate", d->connect_rate);
    json_num(&j, "connect_lat_p50_us", us(lg_hist_quantile(&r->conn_lat, 0.5)));
    json_num(&j, "connect_lat_p99_us", us(lg_hist_quantile(&r->conn_lat, 0.99)));
    json_num(&j, "connect_lat_max_us", us(r->conn_lat.max_ns));

    /* Messages. */
    json_num(&j, "measured_s", d->measured_s);
    json_u64(&j, "sent", r->live.sent);
    json_u64(&j, "sent_measured", r->live.sent_meas);
    json_num(&j, "sent_per_s", d->sent_per_s);
    json_u64(&j, "received", r->live.recv);
    json_u64(&j, "received_measured", r->live.recv_meas);
    json_num(&j, "received_per_s", d->recv_per_s);
    json_u64(&j, "expected", r->expected);
    json_u64(&j, "loss", r->loss);
    json_u64(&j, "loss_subs", r->loss_subs);
    json_u64(&j, "loss_max_per_sub", r->loss_max_sub);
    json_u64(&j, "duplicates", r->dups);
    json_u64(&j, "out_of_order", r->ooo);
    json_u64(&j, "bogus", r->st.bogus);
    json_u64(&j, "window_timeouts", r->st.window_timeouts);
    json_u64(&j, "unacked_at_end", r->live.unacked);
    json_u64(&j, "ack_order_errors", r->st.ack_order_errors);
    json_u64(&j, "protocol_errors", r->st.proto_errors);
    json_u64(&j, "pub_refused", r->st.pub_refused);
    json_u64(&j, "server_disconnects", r->st.server_disconnects);
    json_u64(&j, "rate_lag", r->st.rate_lag);
    json_num(&j, "drain_used_s", r->drain_used_s);
    json_u64(&j, "lat_count", r->lat.count);
    json_num(&j, "lat_p50_us", us(lg_hist_quantile(&r->lat, 0.5)));
    json_num(&j, "lat_p90_us", us(lg_hist_quantile(&r->lat, 0.9)));
    json_num(&j, "lat_p99_us", us(lg_hist_quantile(&r->lat, 0.99)));
    json_num(&j, "lat_p999_us", us(lg_hist_quantile(&r->lat, 0.999)));
    json_num(&j, "lat_max_us", us(r->lat.max_ns));
    json_num(&j, "lat_min_us", r->lat.count > 0 ? us(r->lat.min_ns) : 0);
    json_num(&j, "lat_mean_us", lg_hist_mean(&r->lat) / 1e3);
    json_u64(&j, "pings", r->st.pings);
    json_u64(&j, "pongs", r->st.pongs);
    json_u64(&j, "ping_timeouts", r->st.ping_timeouts);
    json_u64(&j, "tx_bytes", r->st.tx_bytes);
    json_u64(&j, "rx_bytes", r->st.rx_bytes);

    /* Broker. */
    json_num(&j, "broker_cpu_s", d->broker_cpu_s);
    json_num(&j, "broker_connect_cpu_s", d->broker_connect_cpu_s);
    json_u64(&j, "broker_rss_base_bytes", r->b_base.rss_bytes);
    json_u64(&j, "broker_rss_start_bytes", r->b_start.rss_bytes);
    json_u64(&j, "broker_rss_end_bytes", r->b_end.rss_bytes);
    json_num(&j, "msgs_per_broker_cpu_s", d->msgs_per_broker_cpu_s);
    json_num(&j, "connects_per_broker_cpu_s", d->connects_per_broker_cpu_s);
    json_num(&j, "bytes_per_conn", d->bytes_per_conn);
    json_num(&j, "elapsed_s", secs(r->t_end_ns - r->t_start_ns));
    fputs("}\n", stdout);
    fflush(stdout);
}

static void print_summary(const struct lg_run *run, const struct report *r, const struct derived *d)
{
    const struct lg_opts *o = run->opts;
    char rate[32];

    if (o->rate > 0) {
        snprintf(rate, sizeof(rate), "%g/s", o->rate);
    } else {
        snprintf(rate, sizeof(rate), "max");
    }
    fprintf(stderr,
            "\nringmq-loadgen %s: %u connections (%u pub, %u sub%s), MQTT %s over %s%s%s%s, "
            "%u thread%s\n",
            o->scenario_name, run->nclients, run->npubs, run->nsubs, o->shared > 0 ? " shared" : "",
            mqtt_name(o->mqtt_version), o->transport->name, transport_is(o, "ws", "wss") ? " " : "",
            transport_is(o, "ws", "wss") ? o->tcfg.ws_path : "",
            !transport_is(o, "tls", "wss") ? ""
            : o->tcfg.tls_insecure         ? " (certificate not verified)"
                                           : " (certificate verified)",
            run->nworkers, run->nworkers == 1 ? "" : "s");
    fprintf(stderr,
            "  connect: %" PRIu64 " ok, %" PRIu64 " failed, %" PRIu64 " lost; %.0f conn/s; "
            "CONNACK p50 %.0f us p99 %.0f us\n",
            r->live.conns_ok, r->live.conns_failed, r->live.conns_lost, d->connect_rate,
            us(lg_hist_quantile(&r->conn_lat, 0.5)), us(lg_hist_quantile(&r->conn_lat, 0.99)));
    if (pubsub(o)) {
        fprintf(stderr, "  qos %u, payload %u B, window %u, rate %s; measured %.2f s\n", o->qos,
                o->payload_bytes, o->window, rate, d->measured_s);
        fprintf(stderr,
                "  sent %.0f/s, received %.0f/s; loss %" PRIu64 " (%" PRIu64 " subs), dups %" PRIu64
                ", out-of-order %" PRIu64 ", window timeouts %" PRIu64 "\n",
                d->sent_per_s, d->recv_per_s, r->loss, r->loss_subs, r->dups, r->ooo,
                r->st.window_timeouts);
        fprintf(stderr, "  latency us: p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  (n %" PRIu64 ")\n",
                us(lg_hist_quantile(&r->lat, 0.5)), us(lg_hist_quantile(&r->lat, 0.99)),
                us(lg_hist_quantile(&r->lat, 0.999)), us(r->lat.max_ns), r->lat.count);
    } else {
        fprintf(
            stderr, "  held %.1f s with keepalive %u s: %" PRIu64 " pings, %" PRIu64 " answered\n",
            secs(r->t_meas_end_ns - r->t_conn_end_ns), o->keepalive_s, r->st.pings, r->st.pongs);
    }
    if (d->broker) {
        fprintf(stderr, "  broker %d: %.2f CPU s, RSS %.1f -> %.1f MB", (int)o->broker_pid,
                d->broker_cpu_s, (double)r->b_start.rss_bytes / 1e6,
                (double)r->b_end.rss_bytes / 1e6);
        if (pubsub(o)) {
            fprintf(stderr, ", %.0f msgs per broker CPU s\n", d->msgs_per_broker_cpu_s);
        } else {
            fprintf(stderr, ", %.0f B/conn, %.0f connects per broker CPU s\n", d->bytes_per_conn,
                    d->connects_per_broker_cpu_s);
        }
    }
    if (r->st.err_handshake > 0 || r->st.pub_refused > 0 || r->st.server_disconnects > 0) {
        fprintf(stderr,
                "  refused: %" PRIu64 " %s handshakes, %" PRIu64 " publishes (v5 reason code); "
                "%" PRIu64 " DISCONNECTs from the broker\n",
                r->st.err_handshake, o->transport->name, r->st.pub_refused,
                r->st.server_disconnects);
    }
    if (r->error != NULL) {
        fprintf(stderr, "  ERROR: %s\n", r->error);
    }
}

/* Raise the soft open-file limit to the hard one; check the run fits. */
static int raise_fd_limit(uint32_t clients, uint64_t *limit)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        return -errno;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            return -errno;
        }
    }
    *limit = rl.rlim_cur;
    if ((uint64_t)clients + FDS_SPARE > rl.rlim_cur) {
        fprintf(stderr,
                "ringmq-loadgen: %u connections need %u open files but this process may "
                "hold %llu; run several generator processes\n",
                clients, clients + FDS_SPARE, (unsigned long long)rl.rlim_cur);
        return -EMFILE;
    }
    return 0;
}

static void transport_cleanup(const struct lg_opts *o)
{
    if (o->transport->cleanup != NULL) {
        o->transport->cleanup();
    }
}

static bool check_failed(const struct report *r)
{
    return r->error != NULL || r->loss > 0 || r->dups > 0 || r->live.conns_failed > 0 ||
           r->live.conns_lost > 0 || r->st.proto_errors > 0 || r->st.bogus > 0 ||
           r->st.pub_refused > 0 || r->st.server_disconnects > 0;
}

int main(int argc, char **argv)
{
    static struct lg_opts opts;
    static struct lg_run run;
    static struct report r;
    struct progress pg = {0};
    struct sigaction sa = {.sa_handler = on_signal};
    int code = EXIT_SETUP;
    int ret;

    if (argc == 2 && strcmp(argv[1], "selftest") == 0) {
        return lg_selftest_run() == 0 ? EXIT_OK : EXIT_CHECK;
    }
    ret = lg_opts_parse(argc, argv, &opts);
    if (ret != 0) {
        return ret > 0 ? EXIT_OK : EXIT_SETUP;
    }
    if (raise_fd_limit(lg_opts_clients(&opts), &r.fd_limit) < 0) {
        return EXIT_SETUP;
    }
    if (opts.broker_pid > 0) {
        sample_broker(&opts, &r.b_base);
        if (!r.b_base.ok) {
            fprintf(stderr, "ringmq-loadgen: cannot read /proc/%d (--broker-pid)\n",
                    (int)opts.broker_pid);
            return EXIT_SETUP;
        }
    }
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (opts.transport->setup != NULL && opts.transport->setup(&opts.tcfg) < 0) {
        return EXIT_SETUP;
    }
    ret = lg_run_setup(&run, &opts);
    if (ret < 0) {
        fprintf(stderr, "ringmq-loadgen: setup failed: %s\n", strerror(-ret));
        transport_cleanup(&opts);
        return EXIT_SETUP;
    }
    r.t_start_ns = lg_clock_ns();
    ret = lg_worker_start(&run);
    if (ret < 0) {
        r.error = "could not start the worker threads";
    } else {
        run_connect(&run, &r, &pg);
        if (r.error == NULL && pubsub(&opts)) {
            run_publish(&run, &r, &pg);
        } else if (r.error == NULL) {
            run_hold(&run, &r, &pg);
        }
    }
    r.interrupted = interrupted != 0;
    progress_tick(&run, &pg, r.t_start_ns, atomic_load(&run.phase), true);
    lg_worker_set_phase(&run, LG_PHASE_STOP);
    lg_worker_join(&run);
    r.t_end_ns = lg_clock_ns();
    if (r.t_meas_end_ns < r.t_meas_start_ns) {
        r.t_meas_end_ns = r.t_meas_start_ns; /* never reached the measured interval */
    }
    collect(&run, &r);
    {
        struct derived d;

        derive(&opts, &r, &d);
        print_summary(&run, &r, &d);
        print_json(&run, &r, &d);
    }
    lg_run_free(&run);
    transport_cleanup(&opts);
    code = r.error != NULL ? EXIT_RUN : EXIT_OK;
    if (code == EXIT_OK && opts.check && check_failed(&r)) {
        code = EXIT_CHECK;
    }
    return code;
}
