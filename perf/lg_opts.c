/*
 * lg_opts.c - command-line parsing and validation for ringmq-loadgen; see
 * lg_opts.h.
 *
 * Main thread only, before any worker starts.
 */
#include "perf/lg_opts.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "perf/lg_msg.h"
#include "perf/lg_tcp.h"
#include "perf/lg_transport.h"

enum {
    OPT_HOST = 256,
    OPT_PORT,
    OPT_SRC_RANGE,
    OPT_TRANSPORT,
    OPT_TLS_CA,
    OPT_TLS_INSECURE,
    OPT_TLS_SNI,
    OPT_TLS_CIPHERS,
    OPT_TLS_RESUME,
    OPT_WS_PATH,
    OPT_MQTT,
    OPT_PAIRS,
    OPT_PUBS,
    OPT_SUBS,
    OPT_SHARED,
    OPT_CONNS,
    OPT_TOPIC_PREFIX,
    OPT_QOS,
    OPT_PAYLOAD,
    OPT_RATE,
    OPT_WINDOW,
    OPT_WINDOW_TIMEOUT,
    OPT_WARMUP,
    OPT_DURATION,
    OPT_DRAIN,
    OPT_CONNECT_RATE,
    OPT_CONNECT_CONCURRENCY,
    OPT_CONNECT_ATTEMPTS,
    OPT_CONNECT_TIMEOUT,
    OPT_KEEPALIVE,
    OPT_PERSISTENT,
    OPT_THREADS,
    OPT_BROKER_PID,
    OPT_QUIET,
    OPT_CHECK,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"host", required_argument, NULL, OPT_HOST},
    {"port", required_argument, NULL, OPT_PORT},
    {"src-range", required_argument, NULL, OPT_SRC_RANGE},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"tls-ca", required_argument, NULL, OPT_TLS_CA},
    {"tls-insecure", no_argument, NULL, OPT_TLS_INSECURE},
    {"tls-sni", required_argument, NULL, OPT_TLS_SNI},
    {"tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS},
    {"tls-resume", no_argument, NULL, OPT_TLS_RESUME},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"mqtt", required_argument, NULL, OPT_MQTT},
    {"pairs", required_argument, NULL, OPT_PAIRS},
    {"pubs", required_argument, NULL, OPT_PUBS},
    {"subs", required_argument, NULL, OPT_SUBS},
    {"shared", required_argument, NULL, OPT_SHARED},
    {"conns", required_argument, NULL, OPT_CONNS},
    {"topic-prefix", required_argument, NULL, OPT_TOPIC_PREFIX},
    {"qos", required_argument, NULL, OPT_QOS},
    {"payload", required_argument, NULL, OPT_PAYLOAD},
    {"rate", required_argument, NULL, OPT_RATE},
    {"window", required_argument, NULL, OPT_WINDOW},
    {"window-timeout-ms", required_argument, NULL, OPT_WINDOW_TIMEOUT},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
    {"connect-concurrency", required_argument, NULL, OPT_CONNECT_CONCURRENCY},
    {"connect-attempts", required_argument, NULL, OPT_CONNECT_ATTEMPTS},
    {"connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"keepalive", required_argument, NULL, OPT_KEEPALIVE},
    {"persistent", no_argument, NULL, OPT_PERSISTENT},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"check", no_argument, NULL, OPT_CHECK},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

void lg_opts_usage(FILE *f)
{
    RM_ASSERT(f != NULL);
    fputs("usage: ringmq-loadgen SCENARIO [OPTIONS]\n"
          "\n"
          "scenarios:\n"
          "  conn     --conns N idle connections, opened at --connect-rate, held for\n"
          "           --duration with keepalive (default 1000)\n"
          "  p2p      --pairs N publisher/subscriber pairs, one topic each (default 100)\n"
          "  fanout   --pubs P publishers -> --subs S subscribers on one topic (1 -> 100)\n"
          "  fanin    --pubs P publishers -> --subs S subscribers (100 -> 1), or\n"
          "           --shared K subscribers in one $share group\n"
          "\n"
          "target (loopback only: 127.0.0.0/8 or ::1):\n"
          "  --host ADDR             broker address (127.0.0.1)\n"
          "  --port N                broker port (1883)\n"
          "  --src-range A-B         bind clients to source addresses A..B in turn,\n"
          "                          e.g. 127.0.0.2-127.0.0.254 (default: kernel's choice)\n"
          "  --transport NAME        tcp, tls (TLS 1.2/1.3), ws (WebSocket) or wss\n"
          "                          (WebSocket over TLS) (tcp)\n"
          "  --tls-ca FILE           tls/wss: PEM CA certificates that verify the broker\n"
          "  --tls-insecure          tls/wss: do not verify the broker's certificate\n"
          "  --tls-sni NAME          tls/wss: send NAME as SNI and check the certificate\n"
          "                          is for NAME (default: no SNI, no name check)\n"
          "  --tls-ciphers LIST      tls/wss: cipher suites to offer, wolfSSL names joined\n"
          "                          by ':', e.g. TLS13-CHACHA20-POLY1305-SHA256\n"
          "                          (default: wolfSSL's list)\n"
          "  --tls-resume            tls/wss: each worker keeps the session (ticket) of its\n"
          "                          first connection and resumes it in every later\n"
          "                          handshake (default: full handshakes)\n"
          "  --ws-path PATH          ws/wss: request target of the upgrade (/mqtt)\n"
          "  --mqtt V                5 (or 5.0), 3.1.1 (or 4), 3.1 (or 3) (3.1.1)\n"
          "\n"
          "messages:\n"
          "  --qos 0|1|2             publish and subscribe QoS (0)\n"
          "  --payload BYTES         payload size, >= 16 (64)\n"
          "  --rate R|max            messages/s per publisher (max)\n"
          "  --window W              messages in flight per publisher, sent but not yet\n"
          "                          received by all its subscribers; 0 = unbounded (10)\n"
          "  --window-timeout-ms MS  give up on a message outstanding this long (2000)\n"
          "  --topic-prefix P        topics are P/<scenario>[/<n>] (lg/<pid>)\n"
          "\n"
          "time (seconds, fractions allowed):\n"
          "  --warmup S              publish unmeasured first (2)\n"
          "  --duration S            measured interval, or conn hold time (10)\n"
          "  --drain S               wait at most this long for messages in flight (2)\n"
          "\n"
          "connections:\n"
          "  --connect-rate R        new connections/s, all threads; 0 = unpaced (0)\n"
          "  --connect-concurrency C connects in progress at once (500)\n"
          "  --connect-attempts N    tries per client before it counts as failed (3)\n"
          "  --connect-timeout S     per try, TCP connect to CONNACK (10)\n"
          "  --keepalive S           MQTT keepalive; PINGREQ when idle (60)\n"
          "  --persistent            sessions outlive their connection (clean session 0;\n"
          "                          5.0: session expiry 300 s), so a broker with a\n"
          "                          write-ahead log logs their messages (off: clean)\n"
          "\n"
          "process:\n"
          "  --threads T             worker threads, each its own epoll loop (1)\n"
          "  --broker-pid PID        sample the broker's CPU time and RSS\n"
          "  --quiet                 no progress line each second\n"
          "  --check                 exit 3 on loss, duplicates or failed connections\n"
          "\n"
          "Progress and a summary go to stderr; one JSON line with every parameter\n"
          "and figure goes to stdout. Exit: 0 done, 1 bad usage or setup, 2 the run\n"
          "could not complete, 3 --check found a problem.\n",
          f);
}

bool lg_opts_ip_is_loopback(uint32_t ip)
{
    return (ip >> 24) == 127;
}

uint32_t lg_opts_clients(const struct lg_opts *o)
{
    RM_ASSERT(o != NULL);
    switch (o->scenario) {
    case LG_SCENARIO_CONN:
        return o->conns;
    case LG_SCENARIO_P2P:
        return 2 * o->pairs;
    default:
        return o->pubs + o->subs + o->shared;
    }
}

static int bad(const char *what, const char *arg, const char *why)
{
    fprintf(stderr, "ringmq-loadgen: %s '%s': %s\n", what, arg, why);
    return -EINVAL;
}

static int parse_u32(const char *what, const char *arg, uint32_t min, uint32_t max, uint32_t *out)
{
    unsigned long long v;
    char *end;

    errno = 0;
    v = strtoull(arg, &end, 10);
    if (errno != 0 || end == arg || *end != '\0' || arg[0] == '-') {
        return bad(what, arg, "not a whole number");
    }
    if (v < min || v > max) {
        fprintf(stderr, "ringmq-loadgen: %s '%s': must be %u..%u\n", what, arg, min, max);
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *what, const char *arg, double min, double max, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(arg, &end);
    if (errno != 0 || end == arg || *end != '\0' || !isfinite(v)) {
        return bad(what, arg, "not a number");
    }
    if (v < min || v > max) {
        fprintf(stderr, "ringmq-loadgen: %s '%s': must be %g..%g\n", what, arg, min, max);
        return -EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_ipv4_loopback(const char *what, const char *arg, uint32_t *ip)
{
    struct in_addr a;

    if (inet_pton(AF_INET, arg, &a) != 1) {
        return bad(what, arg, "not an IPv4 address");
    }
    *ip = ntohl(a.s_addr);
    if (!lg_opts_ip_is_loopback(*ip)) {
        return bad(what, arg, "only 127.0.0.0/8 is allowed: the generator loads this machine only");
    }
    return 0;
}

static int parse_host(struct lg_opts *o, const char *arg)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&o->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&o->addr;
    const char *lit = strcmp(arg, "localhost") == 0 ? "127.0.0.1" : arg;
    struct in6_addr a6;
    uint32_t ip;

    if (strlen(arg) >= sizeof(o->host)) {
        return bad("--host", arg, "too long");
    }
    memset(&o->addr, 0, sizeof(o->addr));
    if (inet_pton(AF_INET6, lit, &a6) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6)) {
            return bad("--host", arg,
                       "only 127.0.0.0/8 and ::1 are allowed: the generator loads this "
                       "machine only");
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = a6;
        o->addr_len = sizeof(*sin6);
    } else {
        struct in_addr a4;

        if (inet_pton(AF_INET, lit, &a4) != 1) {
            return bad("--host", arg,
                       "give a literal address in 127.0.0.0/8 or ::1 (or 'localhost'); "
                       "names are not resolved");
        }
        ip = ntohl(a4.s_addr);
        if (!lg_opts_ip_is_loopback(ip)) {
            return bad("--host", arg,
                       "only 127.0.0.0/8 and ::1 are allowed: the generator loads this "
                       "machine only");
        }
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(ip);
        o->addr_len = sizeof(*sin);
    }
    memcpy(o->host, arg, strlen(arg) + 1);
    return 0;
}

static int parse_src_range(struct lg_opts *o, const char *arg)
{
    char first[INET_ADDRSTRLEN];
    const char *dash = strchr(arg, '-');
    size_t n;
    int ret;

    if (dash == NULL) {
        return bad("--src-range", arg, "expected FIRST-LAST, e.g. 127.0.0.2-127.0.0.254");
    }
    n = (size_t)(dash - arg);
    if (n == 0 || n >= sizeof(first)) {
        return bad("--src-range", arg, "expected FIRST-LAST, e.g. 127.0.0.2-127.0.0.254");
    }
    memcpy(first, arg, n);
    first[n] = '\0';
    ret = parse_ipv4_loopback("--src-range", first, &o->src_first);
    if (ret == 0) {
        ret = parse_ipv4_loopback("--src-range", dash + 1, &o->src_last);
    }
    if (ret == 0 && o->src_last < o->src_first) {
        ret = bad("--src-range", arg, "the last address is below the first");
    }
    if (ret == 0 && o->src_first == 0x7f000000u) {
        ret = bad("--src-range", arg, "127.0.0.0 is not a usable source address");
    }
    return ret;
}

static int parse_mqtt(struct lg_opts *o, const char *arg)
{
    if (strcmp(arg, "3.1.1") == 0 || strcmp(arg, "4") == 0) {
        o->mqtt_version = MQTT_V311;
    } else if (strcmp(arg, "3.1") == 0 || strcmp(arg, "3") == 0) {
        o->mqtt_version = MQTT_V31;
    } else if (strcmp(arg, "5") == 0 || strcmp(arg, "5.0") == 0) {
        o->mqtt_version = MQTT_V5;
    } else {
        return bad("--mqtt", arg, "expected 5, 5.0, 3.1.1, 4, 3.1 or 3");
    }
    return 0;
}

/* An origin-form request target: '/', then visible ASCII but no '#' [RFC 7230 5.3.1]. */
static int parse_ws_path(struct lg_opts *o, const char *arg)
{
    size_t n = strlen(arg);
    size_t i;

    if (n == 0 || n >= LG_OPTS_WS_PATH_MAX || arg[0] != '/') {
        return bad("--ws-path", arg, "must start with '/' and be shorter than 256 bytes");
    }
    for (i = 0; i < n; i++) {
        if (arg[i] <= ' ' || arg[i] > '~' || arg[i] == '#') {
            return bad("--ws-path", arg, "visible ASCII only, no '#'");
        }
    }
    o->tcfg.ws_path = arg;
    return 0;
}

/* A DNS name: letters, digits, '-', '.', at most 253 bytes. */
static int parse_tls_sni(struct lg_opts *o, const char *arg)
{
    size_t n = strlen(arg);
    size_t i;

    if (n == 0 || n > 253) {
        return bad("--tls-sni", arg, "must be 1..253 bytes");
    }
    for (i = 0; i < n; i++) {
        char ch = arg[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.')) {
            return bad("--tls-sni", arg, "a host name: letters, digits, '-' and '.'");
        }
    }
    o->tcfg.tls_sni = arg;
    return 0;
}

static int parse_topic_prefix(struct lg_opts *o, const char *arg)
{
    size_t n = strlen(arg);

    if (n == 0 || n >= sizeof(o->topic_prefix)) {
        return bad("--topic-prefix", arg, "must be 1..95 bytes");
    }
    if (strpbrk(arg, "+#") != NULL || arg[0] == '$') {
        return bad("--topic-prefix", arg, "no wildcards, and not a $ topic");
    }
    if (!mqtt_utf8_valid((const uint8_t *)arg, n)) {
        return bad("--topic-prefix", arg, "not valid UTF-8");
    }
    memcpy(o->topic_prefix, arg, n + 1);
    return 0;
}

static int parse_scenario(struct lg_opts *o, const char *arg)
{
    static const struct {
        const char *name;
        enum lg_scenario sc;
    } names[] = {
        {"conn", LG_SCENARIO_CONN},
        {"p2p", LG_SCENARIO_P2P},
        {"fanout", LG_SCENARIO_FANOUT},
        {"fanin", LG_SCENARIO_FANIN},
    };
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(names); i++) {
        if (strcmp(arg, names[i].name) == 0) {
            o->scenario = names[i].sc;
            o->scenario_name = names[i].name;
            return 0;
        }
    }
    return bad("scenario", arg, "expected conn, p2p, fanout or fanin (see --help)");
}

static void set_defaults(struct lg_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->port = 1883;
    o->transport = &lg_tcp_transport;
    o->tcfg.ws_path = "/mqtt";
    o->mqtt_version = MQTT_V311;
    o->pairs = 100;
    o->conns = 1000;
    o->qos = 0;
    o->payload_bytes = 64;
    o->rate = 0;
    o->window = 10;
    o->window_timeout_ms = 2000;
    o->warmup_s = 2;
    o->duration_s = 10;
    o->drain_s = 2;
    o->connect_rate = 0;
    o->connect_concurrency = 500;
    o->connect_attempts = 3;
    o->connect_timeout_s = 10;
    o->keepalive_s = 60;
    o->threads = 1;
    snprintf(o->topic_prefix, sizeof(o->topic_prefix), "lg/%d", (int)getpid());
}

/*
 * One flag. Returns 0, 1 for --help, -EINVAL.
 * Long: one case per flag, each a line or two; the switch is the flag table.
 */
static int parse_one(struct lg_opts *o, int c, const char *arg, bool *subs_given,
                     bool *ws_path_given)
{
    uint32_t v;
    int ret = 0;

    switch (c) {
    case OPT_HOST:
        ret = parse_host(o, arg);
        break;
    case OPT_PORT:
        ret = parse_u32("--port", arg, 1, 65535, &v);
        o->port = (uint16_t)v;
        break;
    case OPT_SRC_RANGE:
        ret = parse_src_range(o, arg);
        break;
    case OPT_TRANSPORT:
        o->transport = lg_transport_find(arg);
        if (o->transport == NULL) {
            ret = bad("--transport", arg, "expected tcp, tls, ws or wss");
        }
        break;
    case OPT_TLS_CA:
        o->tcfg.tls_ca = arg;
        break;
    case OPT_TLS_INSECURE:
        o->tcfg.tls_insecure = true;
        break;
    case OPT_TLS_SNI:
        ret = parse_tls_sni(o, arg);
        break;
    case OPT_TLS_RESUME:
        o->tcfg.tls_resume = true;
        break;
    case OPT_TLS_CIPHERS:
        o->tcfg.tls_ciphers = arg;
        break;
    case OPT_WS_PATH:
        ret = parse_ws_path(o, arg);
        *ws_path_given = true;
        break;
    case OPT_MQTT:
        ret = parse_mqtt(o, arg);
        break;
    case OPT_PAIRS:
        ret = parse_u32("--pairs", arg, 1, LG_OPTS_CLIENTS_MAX / 2, &o->pairs);
        break;
    case OPT_PUBS:
        ret = parse_u32("--pubs", arg, 1, LG_OPTS_CLIENTS_MAX, &o->pubs);
        break;
    case OPT_SUBS:
        ret = parse_u32("--subs", arg, 1, LG_OPTS_CLIENTS_MAX, &o->subs);
        *subs_given = true;
        break;
    case OPT_SHARED:
        ret = parse_u32("--shared", arg, 1, LG_OPTS_CLIENTS_MAX, &o->shared);
        break;
    case OPT_CONNS:
        ret = parse_u32("--conns", arg, 1, LG_OPTS_CLIENTS_MAX, &o->conns);
        break;
    case OPT_TOPIC_PREFIX:
        ret = parse_topic_prefix(o, arg);
        break;
    case OPT_QOS:
        ret = parse_u32("--qos", arg, 0, 2, &v);
        o->qos = (uint8_t)v;
        break;
    case OPT_PAYLOAD:
        ret =
            parse_u32("--payload", arg, LG_MSG_STAMP_BYTES, LG_OPTS_PAYLOAD_MAX, &o->payload_bytes);
        break;
    case OPT_RATE:
        if (strcmp(arg, "max") == 0) {
            o->rate = 0;
        } else {
            ret = parse_double("--rate", arg, 0.001, 10e6, &o->rate);
        }
        break;
    case OPT_WINDOW:
        ret = parse_u32("--window", arg, 0, LG_OPTS_WINDOW_MAX, &o->window);
        break;
    case OPT_WINDOW_TIMEOUT:
        ret = parse_u32("--window-timeout-ms", arg, 1, 600000, &o->window_timeout_ms);
        break;
    case OPT_WARMUP:
        ret = parse_double("--warmup", arg, 0, 3600, &o->warmup_s);
        break;
    case OPT_DURATION:
        ret = parse_double("--duration", arg, 0.1, 86400, &o->duration_s);
        break;
    case OPT_DRAIN:
        ret = parse_double("--drain", arg, 0, 60, &o->drain_s);
        break;
    case OPT_CONNECT_RATE:
        ret = parse_double("--connect-rate", arg, 0, 10e6, &o->connect_rate);
        break;
    case OPT_CONNECT_CONCURRENCY:
        ret = parse_u32("--connect-concurrency", arg, 1, LG_OPTS_CLIENTS_MAX,
                        &o->connect_concurrency);
        break;
    case OPT_CONNECT_ATTEMPTS:
        ret = parse_u32("--connect-attempts", arg, 1, 100, &o->connect_attempts);
        break;
    case OPT_CONNECT_TIMEOUT:
        ret = parse_double("--connect-timeout", arg, 0.1, 600, &o->connect_timeout_s);
        break;
    case OPT_KEEPALIVE:
        ret = parse_u32("--keepalive", arg, 0, 65535, &v);
        o->keepalive_s = (uint16_t)v;
        break;
    case OPT_PERSISTENT:
        o->persistent = true;
        break;
    case OPT_THREADS:
        ret = parse_u32("--threads", arg, 1, LG_OPTS_THREADS_MAX, &o->threads);
        break;
    case OPT_BROKER_PID:
        ret = parse_u32("--broker-pid", arg, 1, 0x7fffffff, &v);
        o->broker_pid = (pid_t)v;
        break;
    case OPT_QUIET:
        o->quiet = true;
        break;
    case OPT_CHECK:
        o->check = true;
        break;
    case OPT_HELP:
        lg_opts_usage(stdout);
        ret = 1;
        break;
    default:
        lg_opts_usage(stderr);
        ret = -EINVAL;
        break;
    }
    return ret;
}

/* Transport flags fit the transport; the WebSocket Host header. */
static int check_transport(struct lg_opts *o, bool ws_path_given)
{
    const char *t = o->transport->name;
    bool tls = strcmp(t, "tls") == 0 || strcmp(t, "wss") == 0;
    bool ws = strcmp(t, "ws") == 0 || strcmp(t, "wss") == 0;
    const char *host = o->host[0] != '\0' && strcmp(o->host, "localhost") != 0 ? o->host
                       : o->addr.ss_family == AF_INET6                         ? "::1"
                                                                               : "127.0.0.1";

    if (!tls && (o->tcfg.tls_ca != NULL || o->tcfg.tls_insecure || o->tcfg.tls_sni != NULL ||
                 o->tcfg.tls_ciphers != NULL || o->tcfg.tls_resume)) {
        fprintf(stderr, "ringmq-loadgen: --tls-* apply to --transport tls or wss only\n");
        return -EINVAL;
    }
    if (tls && (o->tcfg.tls_ca == NULL) == !o->tcfg.tls_insecure) {
        fprintf(stderr,
                "ringmq-loadgen: --transport %s needs --tls-ca FILE (verify the broker) "
                "or --tls-insecure (do not), one of the two\n",
                t);
        return -EINVAL;
    }
    if (!ws && ws_path_given) {
        fprintf(stderr, "ringmq-loadgen: --ws-path applies to --transport ws or wss only\n");
        return -EINVAL;
    }
    if (strchr(host, ':') != NULL) {
        snprintf(o->ws_host, sizeof(o->ws_host), "[%s]:%u", host, (unsigned)o->port);
    } else {
        snprintf(o->ws_host, sizeof(o->ws_host), "%s:%u", host, (unsigned)o->port);
    }
    o->tcfg.ws_host = o->ws_host;
    return 0;
}

/* Cross-flag rules and scenario shapes. */
static int check(struct lg_opts *o, bool subs_given, bool ws_path_given)
{
    if (o->addr_len == 0) {
        int ret = parse_host(o, "127.0.0.1");

        RM_ASSERT(ret == 0);
    }
    if (o->addr.ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)&o->addr)->sin6_port = htons(o->port);
        if (o->src_first != 0) {
            fprintf(stderr, "ringmq-loadgen: --src-range needs an IPv4 --host\n");
            return -EINVAL;
        }
    } else {
        ((struct sockaddr_in *)&o->addr)->sin_port = htons(o->port);
    }
    if (check_transport(o, ws_path_given) < 0) {
        return -EINVAL;
    }
    switch (o->scenario) {
    case LG_SCENARIO_FANOUT:
        if (o->pubs == 0) {
            o->pubs = 1;
        }
        if (o->subs == 0) {
            o->subs = 100;
        }
        break;
    case LG_SCENARIO_FANIN:
        if (o->pubs == 0) {
            o->pubs = 100;
        }
        if (o->shared > 0 && subs_given) {
            fprintf(stderr, "ringmq-loadgen: fanin takes --subs S or --shared K, not both\n");
            return -EINVAL;
        }
        if (o->shared == 0 && o->subs == 0) {
            o->subs = 1;
        }
        break;
    default:
        break;
    }
    if (o->shared > 0 && o->scenario != LG_SCENARIO_FANIN) {
        fprintf(stderr, "ringmq-loadgen: --shared applies to fanin only\n");
        return -EINVAL;
    }
    if (o->scenario != LG_SCENARIO_FANIN && o->scenario != LG_SCENARIO_FANOUT) {
        o->pubs = 0;
        o->subs = 0;
    }
    if ((uint64_t)lg_opts_clients(o) > LG_OPTS_CLIENTS_MAX) {
        fprintf(stderr, "ringmq-loadgen: at most %u connections per process\n",
                LG_OPTS_CLIENTS_MAX);
        return -EINVAL;
    }
    if (o->threads > lg_opts_clients(o)) {
        o->threads = lg_opts_clients(o);
    }
    if (o->window_timeout_ms < 1) {
        o->window_timeout_ms = 1;
    }
    return 0;
}

int lg_opts_parse(int argc, char **argv, struct lg_opts *o)
{
    bool subs_given = false;
    bool ws_path_given = false;
    int ret = -EINVAL;
    int c;

    RM_ASSERT(o != NULL);
    RM_ASSERT(argc >= 1 && argv != NULL);

    set_defaults(o);
    if (argc < 2) {
        lg_opts_usage(stderr);
        goto out;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        lg_opts_usage(stdout);
        ret = 1;
        goto out;
    }
    ret = parse_scenario(o, argv[1]);
    if (ret < 0) {
        goto out;
    }
    /*
     * Flags follow the scenario: getopt sees argv[1] as its program name, so
     * name it after the program for its messages. optind 0 re-initialises
     * GNU getopt, so lg_opts_parse can run more than once (tests).
     */
    argv[1] = argv[0];
    optind = 0;
    while ((c = getopt_long(argc - 1, argv + 1, "h", long_opts, NULL)) != -1) {
        ret = parse_one(o, c == 'h' ? OPT_HELP : c, optarg, &subs_given, &ws_path_given);
        if (ret != 0) {
            goto out;
        }
    }
    if (optind < argc - 1) {
        ret = bad("argument", argv[optind + 1], "unexpected (flags are --name VALUE)");
        goto out;
    }
    ret = check(o, subs_given, ws_path_given);
out:
    return ret;
}
