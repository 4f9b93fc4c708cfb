/*
 * main.c - the ringmq binary: options, configuration, start-up checks, one
 * shard run on the main thread.
 *
 *   ringmq [-c FILE] [-p PORT] [--test-config] [--version] [--help]
 *
 * Without -c the built-in defaults are used (one listener "default" on
 * 127.0.0.1:1883). -p overrides the first listener's port (0: ephemeral,
 * for tests; the bound port is logged). --test-config loads and validates,
 * prints "FILE: OK" or the error to stderr, exits 0 or 1. Bad options print
 * the usage to stderr and exit 2; a configuration or start-up error exits
 * 1; a graceful stop (SIGINT, SIGTERM) exits 0.
 *
 * Open files: the soft RLIMIT_NOFILE is raised to the hard limit. If
 * connections_max plus MAIN_FD_RESERVE (listeners, ring, signalfd, logs)
 * does not fit, the effective maximum is lowered to fit and a WARN says so.
 *
 * Start-up thread only.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config/config.h"
#include "net/log.h"
#include "net/shard.h"

/* File descriptors kept free for everything that is not a connection. */
#define MAIN_FD_RESERVE 64u

enum {
    OPT_TEST_CONFIG = 256,
    OPT_VERSION,
};

static const struct option long_options[] = {
    {"config", required_argument, NULL, 'c'},
    {"port", required_argument, NULL, 'p'},
    {"test-config", no_argument, NULL, OPT_TEST_CONFIG},
    {"version", no_argument, NULL, OPT_VERSION},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [-c FILE] [-p PORT] [--test-config] [--version] [--help]\n"
            "  -c, --config FILE   load FILE (default: built-in defaults)\n"
            "  -p, --port PORT     override the first listener's port (0: ephemeral)\n"
            "      --test-config   validate the configuration and exit\n"
            "      --version       print the version and exit\n"
            "  -h, --help          print this help and exit\n",
            prog);
}

static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > 65535 || s[0] == '-') {
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

/* Raise the open-file limit; return the connections that fit under it. */
static uint32_t fit_nofile(uint32_t connections_max)
{
    struct rlimit rl;
    uint64_t room;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        LOG_WARN("getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        return connections_max;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            LOG_WARN("setrlimit(RLIMIT_NOFILE, %llu): %s", (unsigned long long)rl.rlim_max,
                     strerror(errno));
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    room = rl.rlim_cur > MAIN_FD_RESERVE ? rl.rlim_cur - MAIN_FD_RESERVE : 1;
    if ((uint64_t)connections_max > room) {
        LOG_WARN("connections_max %u does not fit the open-file limit %llu: the effective "
                 "maximum is %llu connections",
                 connections_max, (unsigned long long)rl.rlim_cur, (unsigned long long)room);
        return (uint32_t)room;
    }
    return connections_max;
}

int main(int argc, char **argv)
{
    static struct config cfg; /* read-only snapshot once loaded; 8+ KiB */
    char err[CONFIG_ERR_MAX];
    const char *config_path = NULL;
    bool test_config = false;
    bool port_set = false;
    uint16_t port = 0;
    struct shard *s;
    uint32_t conn_max;
    int opt;
    int ret;

    while ((opt = getopt_long(argc, argv, "c:p:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'p':
            if (parse_port(optarg, &port) < 0) {
                fprintf(stderr, "%s: bad port '%s'\n", argv[0], optarg);
                usage(stderr, argv[0]);
                return 2;
            }
            port_set = true;
            break;
        case OPT_TEST_CONFIG:
            test_config = true;
            break;
        case OPT_VERSION:
            printf("ringmq %s\n", RINGMQ_VERSION);
            return 0;
        case 'h':
            usage(stdout, argv[0]);
            return 0;
        default:
            usage(stderr, argv[0]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr, argv[0]);
        return 2;
    }

    if (config_path == NULL) {
        config_defaults(&cfg);
    } else if (config_load(&cfg, config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (test_config) {
        fprintf(stderr, "%s: OK\n", config_path != NULL ? config_path : "(defaults)");
        return 0;
    }
    if (port_set) {
        if (cfg.listener_count == 0) {
            fprintf(stderr, "%s: -p given but no listener is configured\n", argv[0]);
            return 1;
        }
        cfg.listeners[0].port = port;
    }

    log_set_level(cfg.log_level);
    ret = shard_signals_block();
    if (ret < 0) {
        LOG_ERROR("cannot block signals: %s", strerror(-ret));
        return 1;
    }
    conn_max = fit_nofile(cfg.limits.connections_max);
    LOG_INFO("ringmq %s starting", RINGMQ_VERSION);

    s = shard_new(&cfg, 0, conn_max);
    if (s == NULL) {
        return 1;
    }
    ret = shard_run(s);
    shard_free(s);
    return ret == 0 ? 0 : 1;
}
