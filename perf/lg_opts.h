/*
 * lg_opts.h - the load generator's command line: scenarios, parameters,
 * defaults and validation.
 *
 * lg_opts_parse() fills a struct lg_opts that is read-only afterwards and
 * shared by every worker thread. It refuses anything that would aim the
 * generator outside this machine: the broker address and every source
 * address must be in 127.0.0.0/8 (or ::1).
 */
#ifndef RINGMQ_LG_OPTS_H
#define RINGMQ_LG_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "perf/lg_transport_types.h"

#define LG_OPTS_THREADS_MAX 64u /* a worker wake-up mask is one uint64_t */
#define LG_OPTS_PAYLOAD_MAX (256u * 1024u)
#define LG_OPTS_TOPIC_PREFIX_MAX 96u
#define LG_OPTS_CLIENTS_MAX 1000000u
/* --persistent 5.0 sessions outlive their connection this long. */
#define LG_PERSISTENT_EXPIRY_S 300u
#define LG_OPTS_WINDOW_MAX 65535u
#define LG_OPTS_WS_PATH_MAX 256u
#define LG_OPTS_WS_HOST_MAX 80u /* "[" ::1 "]:" port, or an IPv4 host and port */

enum lg_scenario {
    LG_SCENARIO_CONN,   /* N idle connections held with keepalive */
    LG_SCENARIO_P2P,    /* N publisher/subscriber pairs, one topic each */
    LG_SCENARIO_FANOUT, /* P publishers -> S subscribers, one topic */
    LG_SCENARIO_FANIN,  /* P publishers -> S subscribers (or a $share group of K) */
};

struct lg_opts {
    enum lg_scenario scenario;
    const char *scenario_name;

    /* Target. */
    char host[64];
    struct sockaddr_storage addr; /* host:port, resolved */
    socklen_t addr_len;
    uint16_t port;
    uint32_t src_first; /* --src-range, host byte order; 0 = let the kernel pick */
    uint32_t src_last;
    const struct lg_transport *transport;
    struct lg_transport_cfg tcfg;      /* its options; strings point into argv or below */
    char ws_host[LG_OPTS_WS_HOST_MAX]; /* the upgrade's Host header: host:port */
    uint8_t mqtt_version;              /* 3 (3.1), 4 (3.1.1) or 5 (5.0) */

    /* Shape. */
    uint32_t pairs;  /* p2p */
    uint32_t pubs;   /* fanout, fanin */
    uint32_t subs;   /* fanout, fanin (plain subscribers) */
    uint32_t shared; /* fanin: K subscribers sharing $share/<group>/topic; 0 = off */
    uint32_t conns;  /* conn */
    char topic_prefix[LG_OPTS_TOPIC_PREFIX_MAX];

    /* Messages. */
    uint8_t qos;
    uint32_t payload_bytes;
    double rate;                /* per publisher, msg/s; 0 = as fast as the window allows */
    uint32_t window;            /* messages in flight per publisher; 0 = unbounded */
    uint32_t window_timeout_ms; /* a message outstanding this long is given up on */

    /* Time. */
    double warmup_s;
    double duration_s;
    double drain_s;

    /* Connections. */
    double connect_rate;          /* new connections per second, all threads; 0 = no pacing */
    uint32_t connect_concurrency; /* connects in progress at once, all threads */
    uint32_t connect_attempts;    /* per client */
    double connect_timeout_s;     /* per attempt, TCP connect to CONNACK */
    uint16_t keepalive_s;
    bool persistent; /* clean session 0 (5.0: session expiry LG_PERSISTENT_EXPIRY_S) */

    /* Process. */
    uint32_t threads;
    pid_t broker_pid; /* 0 = none */
    bool quiet;       /* no progress lines */
    bool check;       /* exit 3 on loss, duplicates, failures */
};

/*
 * Parse @argv into @o (defaults first, then the scenario's defaults, then the
 * flags) and validate. Returns 0, 1 if help was printed (exit 0), or -EINVAL
 * after printing the reason to stderr.
 */
int lg_opts_parse(int argc, char **argv, struct lg_opts *o);

/* Total client connections the options ask for. */
uint32_t lg_opts_clients(const struct lg_opts *o);

/* Print the usage text to @f. */
void lg_opts_usage(FILE *f);

/* True if @ip (host byte order) is in 127.0.0.0/8. */
bool lg_opts_ip_is_loopback(uint32_t ip);

#endif
