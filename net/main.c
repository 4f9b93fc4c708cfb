/*
 * main.c - the ringmq binary: options, configuration, start-up checks, the
 * shard threads.
 *
 *   ringmq [-c FILE] [-p PORT] [--test-config] [--version] [--help]
 *
 * Without -c, RINGMQ_DEFAULT_CONFIG (/etc/ringmq/ringmq.ini, set by the
 * build) is loaded when it exists, else the built-in defaults are used (one
 * listener "default" on 127.0.0.1:1883). -p overrides the first listener's
 * port (0: ephemeral, for tests; the bound port is logged). --test-config loads and validates,
 * prints "FILE: OK" or the error to stderr, exits 0 or 1. Bad options print
 * the usage to stderr and exit 2; a configuration or start-up error exits
 * 1; a graceful stop (SIGINT, SIGTERM) exits 0 (1 if a shard failed or its
 * stop timed out).
 *
 * Shards ([broker] shards): "auto" (0) means one per CPU this process may
 * run on (the sched_getaffinity mask, so a container's cpuset counts, not
 * the host's; sysconf(_SC_NPROCESSORS_ONLN) if that fails), capped at
 * LIMITS_SHARDS_MAX. With [broker] pin_shards, shard i is pinned to the i-th
 * CPU of that mask, modulo its size (more shards than CPUs is allowed;
 * failure to pin is a WARN). Unpinned is the default: the scheduler moves a
 * shard off a core that another busy process needs, where a pinned one waits.
 *
 * Start-up: signals are blocked first (every thread inherits the mask),
 * then the cross-shard matrix (net/xshard) is built. Shard 0 is built on
 * the main thread, binding the listeners (an ephemeral port is resolved
 * here and logged once); shards 1..N-1 are each built on their own thread
 * (their rings are SINGLE_ISSUER, bound to the creating thread) and bind the
 * ports shard 0 got. Every thread then waits at a start barrier; if any
 * shard failed to build, all give up and the process exits 1. Otherwise
 * each runs its loop and the main thread runs shard 0's. After shard 0
 * returns, main joins the others, frees every shard, then releases what is
 * still queued between shards (xshard_free) - in that order, so nothing is
 * freed while a shard might still ring another's ring.
 *
 * Connections: connections_max, connections_per_address_max and
 * accept_rate_max are process-wide (net/admit): every shard admits against
 * the same atomic counts and rate, and a connection handed to its home
 * shard gives its counts back there when it closes. memory_max = auto is
 * resolved here, before any shard starts, to half of the physical memory
 * or of the cgroup's memory.max (net/memwatch), and logged.
 *
 * Open files: the soft RLIMIT_NOFILE is raised to the hard limit. If
 * connections_max plus the reserve (listener sockets, rings and signalfd of
 * every shard, logs) does not fit, the effective maximum is lowered to fit
 * and a WARN says so. The per-address counts find an fd's address again
 * by fd number, so they track fds below the (raised) soft limit.
 *
 * Start-up thread only (the shard threads run shard_new/shard_run).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <unistd.h>

#include "config/config.h"
#include "core/broker.h"
#include "net/admit.h"
#include "net/board.h"
#include "net/live.h"
#include "net/log.h"
#include "net/memwatch.h"
#include "net/obs.h"
#include "net/sdnotify.h"
#include "net/shard.h"
#include "net/wal_dir.h"
#include "net/xshard.h"
#include "tls/tls_ctx.h"

/* File descriptors kept free for everything that is not a connection... */
#define MAIN_FD_RESERVE 64u
/* ...plus, per shard, its ring and one socket per listener. */
#define MAIN_FD_PER_SHARD 1u

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
            "  -c, --config FILE   load FILE (default: " RINGMQ_DEFAULT_CONFIG "\n"
            "                      when it exists, else the built-in defaults)\n"
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

/*
 * Raise the open-file limit; return the connections that fit under it.
 * *@fd_cap gets the limit: no fd is numbered at or above it.
 */
static uint32_t fit_nofile(uint32_t connections_max, uint64_t reserve, uint32_t *fd_cap)
{
    struct rlimit rl;
    uint64_t room;

    *fd_cap = ADMIT_FD_CAP_MAX;
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
    if (rl.rlim_cur < ADMIT_FD_CAP_MAX) {
        *fd_cap = (uint32_t)rl.rlim_cur;
    }
    room = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 1;
    if ((uint64_t)connections_max > room) {
        LOG_WARN("connections_max %u does not fit the open-file limit %llu: the effective "
                 "maximum is %llu connections",
                 connections_max, (unsigned long long)rl.rlim_cur, (unsigned long long)room);
        return (uint32_t)room;
    }
    return connections_max;
}

/*
 * memory_max = auto: half of the physical memory or of the cgroup limit
 * (net/memwatch); logs the budget either way. 0, or -1 when auto finds no
 * memory size (logged).
 */
static int resolve_memory_max(struct limits *lim)
{
    uint64_t phys = 0;
    uint64_t cgroup = 0;

    if (lim->memory_max == LIMITS_MEMORY_AUTO) {
        lim->memory_max = memwatch_auto_budget(&phys, &cgroup);
        if (lim->memory_max == 0) {
            LOG_ERROR("memory_max = auto: cannot tell the physical memory size; set a size");
            return -1;
        }
        LOG_INFO("memory budget %.1f MiB: half of the %s (%.1f MiB)",
                 (double)lim->memory_max / (1024.0 * 1024.0),
                 cgroup > 0 && cgroup < phys ? "cgroup's memory.max" : "physical memory",
                 (double)(cgroup > 0 && cgroup < phys ? cgroup : phys) / (1024.0 * 1024.0));
    } else if (lim->memory_max > 0) {
        LOG_INFO("memory budget %.1f MiB (memory_max)",
                 (double)lim->memory_max / (1024.0 * 1024.0));
    } else {
        LOG_INFO("no memory budget (memory_max = 0)");
    }
    return 0;
}

/* The CPUs this process may run on, in order; their count (0 if unknown). */
static uint32_t cpus_allowed(int *cpus, uint32_t cap)
{
    cpu_set_t set;
    uint32_t n = 0;
    int i;

    if (sched_getaffinity(0, sizeof(set), &set) < 0) {
        return 0;
    }
    for (i = 0; i < CPU_SETSIZE && n < cap; i++) {
        if (CPU_ISSET(i, &set)) {
            cpus[n++] = i;
        }
    }
    return n;
}

/* Start barrier: every shard thread reports whether its shard was built, then waits. */
struct start {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t built; /* threads that have reported */
    bool failed;    /* some shard could not be built */
    bool released;  /* main has decided: run (!failed) or give up */
};

/* What one shard thread needs; main keeps the array. */
struct shard_thread {
    pthread_t thread;
    bool started;
    uint32_t id;
    uint32_t count;
    struct admit *admit;
    int cpu; /* -1: do not pin */
    const struct config *cfg;
    struct live_owner *owner;
    struct xshard *xshard;
    struct board *board; /* where the shard publishes its counters (net/board.h) */
    const uint16_t *ports;
    const struct wal_dir *wal; /* the log to replay and write; NULL without persistence */
    struct start *start;
    struct shard *shard; /* built by the thread; freed by main after the joins */
    int ret;
};

static void pin(uint32_t id, int cpu)
{
    cpu_set_t set;
    int ret;

    if (cpu < 0) {
        return;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ret = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (ret != 0) {
        LOG_WARN("shard %u: cannot pin to CPU %d: %s", id, cpu, strerror(ret));
    } else {
        LOG_DEBUG("shard %u: pinned to CPU %d", id, cpu);
    }
}

/* Report this thread's build result; wait for main's decision. True: run. */
static bool start_wait(struct start *st, bool built)
{
    bool run;

    pthread_mutex_lock(&st->lock);
    st->built++;
    if (!built) {
        st->failed = true;
    }
    pthread_cond_broadcast(&st->cond);
    while (!st->released) {
        pthread_cond_wait(&st->cond, &st->lock);
    }
    run = !st->failed;
    pthread_mutex_unlock(&st->lock);
    return run;
}

static void *shard_thread_main(void *arg)
{
    struct shard_thread *t = arg;

    pin(t->id, t->cpu);
    t->shard =
        shard_new(t->cfg, t->owner, t->id, t->count, t->admit, t->xshard, t->ports, t->wal);
    if (t->shard != NULL) {
        t->shard->board = t->board;
    }
    if (start_wait(t->start, t->shard != NULL)) {
        t->ret = shard_run(t->shard);
    }
    return NULL;
}

/* Main: wait until @n threads have reported, then release them. True: all built. */
static bool start_release(struct start *st, uint32_t n, bool failed)
{
    bool ok;

    pthread_mutex_lock(&st->lock);
    /* Bounded: each thread reports exactly once. */
    while (st->built < n) {
        pthread_cond_wait(&st->cond, &st->lock);
    }
    if (failed) {
        st->failed = true;
    }
    st->released = true;
    ok = !st->failed;
    pthread_cond_broadcast(&st->cond);
    pthread_mutex_unlock(&st->lock);
    return ok;
}

/* Resolve [broker] shards: auto = usable CPUs, capped. */
static uint32_t shard_count(const struct config *cfg, uint32_t cpus)
{
    long online;

    if (cfg->shards != 0) {
        return cfg->shards < LIMITS_SHARDS_MAX ? cfg->shards : LIMITS_SHARDS_MAX;
    }
    if (cpus == 0) {
        online = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = online > 0 ? (uint32_t)online : 1;
    }
    return cpus < LIMITS_SHARDS_MAX ? cpus : LIMITS_SHARDS_MAX;
}

/* Build and run @n shards; returns the exit status. */
static int run_shards(const struct config *cfg, struct live_owner *owner, uint32_t n,
                      struct admit *admit, const int *cpus, uint32_t cpu_count,
                      struct wal_dir *wal)
{
    static struct start st = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, false, false};
    uint16_t ports[CONFIG_LISTENERS_MAX];
    struct shard_thread *t;
    struct xshard *xshard;
    struct board *board;
    struct obs *obs = NULL;
    uint32_t started = 0;
    bool failed = false;
    int status = 1;
    uint32_t i;
    int ret;

    xshard = xshard_new(n);
    board = board_new(n);
    t = calloc(n, sizeof(*t));
    if (xshard == NULL || board == NULL || t == NULL) {
        LOG_ERROR("cannot set up %u shards: out of memory", n);
        goto out_free;
    }
    /* $SYS and /metrics, served by shard 0 (net/obs.h); binds the metrics socket. */
    obs = obs_new(cfg, board, RINGMQ_VERSION, obs_clock_ns() / 1000000u);
    if (obs == NULL) {
        goto out_free;
    }
    LOG_INFO("%u shard%s, at most %u connections in all, %u-slot rings between shards", n,
             n == 1 ? "" : "s", admit->conns_max, xshard_capacity_for(n));
    for (i = 0; i < n; i++) {
        t[i] = (struct shard_thread){
            .id = i,
            .count = n,
            .admit = admit,
            .cpu = cfg->pin_shards && cpu_count > 0 ? cpus[i % cpu_count] : -1,
            .cfg = cfg,
            .owner = owner,
            .xshard = xshard,
            .board = board,
            .ports = ports,
            .wal = wal,
            .start = &st,
        };
    }
    t[0].ports = NULL;
    pin(0, t[0].cpu);
    t[0].shard = shard_new(cfg, owner, 0, n, admit, xshard, NULL, wal);
    if (t[0].shard == NULL) {
        goto out_free;
    }
    t[0].shard->board = board;
    t[0].shard->obs = obs;
    for (i = 0; i < cfg->listener_count; i++) {
        ports[i] = t[0].shard->listeners[i].port;
    }
    for (i = 1; i < n; i++) {
        ret = pthread_create(&t[i].thread, NULL, shard_thread_main, &t[i]);
        if (ret != 0) {
            LOG_ERROR("cannot start the thread of shard %u: %s", i, strerror(ret));
            failed = true;
            break;
        }
        t[i].started = true;
        started++;
    }
    if (!start_release(&st, started, failed)) {
        goto out_join;
    }
    if (wal != NULL) {
        wal_dir_retire(wal); /* every shard's snapshot is on disk: older generations go */
    }
    /* Every shard is built and runs: what tests and service managers wait for. */
    LOG_INFO("ready: %u shards running", n);
    sdnotify_sendf("READY=1\nMAINPID=%ld\nSTATUS=Running: %u shard%s, listening on %s%s",
                   (long)getpid(), n, n == 1 ? "" : "s",
                   cfg->listener_count > 0 ? t[0].shard->listeners[0].addr : "nothing",
                   cfg->listener_count > 1 ? " and more" : "");
    t[0].ret = shard_run(t[0].shard);

out_join:
    for (i = 1; i < n; i++) {
        if (t[i].started) {
            pthread_join(t[i].thread, NULL);
        }
    }
    status = failed || st.failed ? 1 : 0;
    for (i = 0; i < n; i++) {
        if (t[i].ret != 0) {
            status = 1;
        }
    }
out_free:
    /* Every shard has left its loop: free the shards, then what is still queued. */
    for (i = 0; t != NULL && i < n; i++) {
        shard_free(t[i].shard);
    }
    free(t);
    obs_free(obs);
    board_free(board);
    xshard_free(xshard);
    return status;
}

/* Free what the shards left in @o (after they all stopped), then wolfSSL. */
static void live_free_all(struct live_owner *o)
{
    live_free(o->old);
    live_free(o->cur);
    o->old = NULL;
    o->cur = NULL;
    tls_cleanup();
}

int main(int argc, char **argv)
{
    struct live_owner owner = {NULL, NULL, NULL};
    static struct config cfg; /* read-only snapshot once loaded; 8+ KiB */
    char err[CONFIG_ERRS_MAX]; /* every problem of the file, a line each */
    const char *config_path = NULL;
    bool test_config = false;
    bool port_set = false;
    uint16_t port = 0;
    int cpus[LIMITS_SHARDS_MAX];
    struct admit_cfg acfg = {0};
    struct admit *admit;
    struct wal_dir *wal = NULL;
    uint32_t cpu_count;
    uint32_t n;
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

    if (config_path == NULL && access(RINGMQ_DEFAULT_CONFIG, F_OK) == 0) {
        config_path = RINGMQ_DEFAULT_CONFIG; /* the installed file, as the service uses */
    }
    if (config_path == NULL) {
        config_defaults(&cfg);
    } else if (config_load(&cfg, config_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (tls_init() < 0) {
        fprintf(stderr, "%s: cannot initialise wolfSSL\n", argv[0]);
        config_free(&cfg);
        return 1;
    }
    /*
     * Certificates, keys and password files are loaded now, so --test-config
     * checks them too: the same live_build() a reload runs (net/live.h).
     * It takes the ACLs out of cfg.
     */
    owner.path = config_path;
    owner.cur = live_build(&cfg, config_path, err, sizeof(err));
    if (owner.cur == NULL) {
        fprintf(stderr, "%s\n", err);
        live_free_all(&owner);
        return 1;
    }
    if (test_config) {
        live_free_all(&owner);
        fprintf(stderr, "%s: OK\n", config_path != NULL ? config_path : "(defaults)");
        return 0;
    }
    if (port_set) {
        if (cfg.listener_count == 0) {
            fprintf(stderr, "%s: -p given but no listener is configured\n", argv[0]);
            live_free_all(&owner);
            return 1;
        }
        cfg.listeners[0].port = port;
    }

    log_set_level(cfg.log_level);
    log_set_format(cfg.log_format);
    if (log_open(cfg.log_dest, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", config_path != NULL ? config_path : "(defaults)", err);
        live_free_all(&owner);
        return 1;
    }
    if (getrandom(&cfg.limits.share_key_seed, sizeof(cfg.limits.share_key_seed), 0) !=
        (ssize_t)sizeof(cfg.limits.share_key_seed)) {
        LOG_ERROR("cannot draw a random seed: %s", strerror(errno));
        return 1;
    }
    ret = shard_signals_block();
    if (ret < 0) {
        LOG_ERROR("cannot block signals: %s", strerror(-ret));
        return 1;
    }
    cpu_count = cpus_allowed(cpus, LIMITS_SHARDS_MAX);
    n = shard_count(&cfg, cpu_count);
    acfg.conns_max = fit_nofile(
        cfg.limits.connections_max,
        MAIN_FD_RESERVE + (uint64_t)n * (MAIN_FD_PER_SHARD + cfg.listener_count), &acfg.fd_cap);
    LOG_INFO("ringmq %s starting", RINGMQ_VERSION);
    if (resolve_memory_max(&cfg.limits) < 0) {
        live_free_all(&owner);
        return 1;
    }
    if (getrandom(&acfg.seed, sizeof(acfg.seed), 0) != (ssize_t)sizeof(acfg.seed)) {
        LOG_ERROR("cannot draw a random seed: %s", strerror(errno));
        live_free_all(&owner);
        return 1;
    }
    acfg.per_address_max = cfg.limits.connections_per_address_max;
    acfg.rate_max = cfg.limits.accept_rate_max;
    acfg.memory_max = cfg.limits.memory_max;
    admit = admit_new(&acfg);
    if (admit == NULL) {
        live_free_all(&owner);
        return 1;
    }
    if (cfg.wal.enabled && wal_dir_open(&cfg.wal, &wal) < 0) {
        admit_free(admit);
        live_free_all(&owner);
        return 1;
    }
    if (wal) /* the groups' keys in the log mean the same after a restart */
        cfg.limits.share_key_seed = wal_dir_seed(wal);
    (void)sdnotify_init(); /* systemd's Type=notify; nothing without $NOTIFY_SOCKET */
    ret = run_shards(&cfg, &owner, n, admit, cpus, cpu_count, wal);
    sdnotify_close();
    wal_dir_close(wal);
    log_close();
    admit_free(admit);
    live_free_all(&owner);
    config_free(&cfg);
    return ret;
}
