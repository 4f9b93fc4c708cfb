/*
 * harness.c - end-to-end test harness (see harness.h).
 *
 * Owns, per test process: the one broker child it started (killed with the
 * process via PR_SET_PDEATHSIG if the test dies), its temp dir, libmosquitto
 * clients and their loop threads, raw sockets. The report hooks at the end
 * run in the Criterion runner process: they print the broker logs of failed
 * tests and remove every test's temp dir.
 */
#include "tests/e2e/harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/hooks.h>

#include "core/broker.h"
#include "core/pwhash.h"

#define MOSQUITTO_BIN "/usr/sbin/mosquitto"
#define START_WAIT_MS 10000
#define STOP_WAIT_MS 10000
#define START_TRIES_MAX 3
#define DIR_PREFIX "/tmp/ringmq-e2e-"
#define LOG_DUMP_BYTES_MAX (256 * 1024)
#define MID_SPACE 65536

/* ----------------------------------------------------------------- misc */

int64_t e2e_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void e2e_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

void e2e_sleep_until_ms(int64_t when_ms)
{
    struct timespec ts = {.tv_sec = when_ms / 1000, .tv_nsec = (long)(when_ms % 1000) * 1000000L};

    if (when_ms <= e2e_now_ms()) {
        return;
    }
    /* An absolute deadline: an interrupted sleep resumes towards the same instant. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    cr_assert_not_null(p, "out of memory");
    return p;
}

bool e2e_mosquitto_mode(void)
{
    const char *v = getenv("RINGMQ_E2E_MOSQUITTO");

    return v != NULL && strcmp(v, "1") == 0;
}

int64_t e2e_keepalive_1s_max_ms(void)
{
    return e2e_mosquitto_mode() ? 6500 : 3000;
}

void e2e_ringmq_only(const char *why)
{
    if (e2e_mosquitto_mode()) {
        cr_skip_test("ringmq only: %s", why);
    }
}

/* ---------------------------------------------------------------- broker */

static struct e2e_broker the_broker;
static bool lib_ready;

static void broker_kill_at_exit(void)
{
    int status;

    if (the_broker.pid > 0) {
        kill(the_broker.pid, SIGKILL);
        waitpid(the_broker.pid, &status, 0);
        the_broker.pid = 0;
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert(fputs(text, f) >= 0);
    cr_assert(fclose(f) == 0);
}

/* Read a whole (small) file; NULL-terminated, caller frees; NULL if absent. */
static char *read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;
    size_t cap = 0;
    size_t n;

    if (f == NULL) {
        goto out;
    }
    cap = 4096;
    buf = xcalloc(1, cap + 1);
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
    }
    buf[len] = '\0';
    fclose(f);
out:
    if (len_out != NULL) {
        *len_out = len;
    }
    return buf;
}

bool e2e_broker_log_contains(const struct e2e_broker *b, const char *needle)
{
    char *log = read_file(b->log_path, NULL);
    bool found = log != NULL && strstr(log, needle) != NULL;

    free(log);
    return found;
}

size_t e2e_broker_log_size(const struct e2e_broker *b)
{
    size_t len = 0;

    free(read_file(b->log_path, &len));
    return len;
}

bool e2e_broker_log_contains_after(const struct e2e_broker *b, size_t from, const char *needle)
{
    size_t len = 0;
    char *log = read_file(b->log_path, &len);
    bool found = log != NULL && from <= len && strstr(log + from, needle) != NULL;

    free(log);
    return found;
}

void e2e_broker_write_config(struct e2e_broker *b, const char *ini)
{
    cr_assert_not(b->mosquitto, "a ringmq configuration file");
    write_file(b->conf_path, ini);
}

size_t e2e_broker_reload(struct e2e_broker *b, bool ok)
{
    const char *needle = ok ? "reload: every shard uses configuration generation"
                            : "reload refused, the running configuration stays";
    size_t mark = e2e_broker_log_size(b);
    int64_t until = e2e_now_ms() + E2E_WAIT_MS;

    cr_assert_not(b->mosquitto, "SIGHUP reload is tested on ringmq");
    cr_assert_gt(b->pid, 0, "the broker this test started");
    cr_assert_eq(kill(b->pid, SIGHUP), 0, "kill(SIGHUP): %s", strerror(errno));
    while (!e2e_broker_log_contains_after(b, mark, needle)) {
        cr_assert_lt(e2e_now_ms(), until, "no \"%s\" in the log after SIGHUP", needle);
        e2e_sleep_ms(10);
    }
    return mark;
}

static void dump_log_file(const char *path)
{
    size_t len;
    char *log = read_file(path, &len);
    const char *start;

    if (log == NULL) {
        fprintf(stderr, "---- no broker log at %s\n", path);
        return;
    }
    start = log;
    if (len > LOG_DUMP_BYTES_MAX) {
        start = log + len - LOG_DUMP_BYTES_MAX;
    }
    fprintf(stderr, "---- broker log %s%s:\n%s\n---- end of broker log\n", path,
            start != log ? " (tail)" : "", start);
    free(log);
}

void e2e_tmpdir(const char *tag, char *dir, size_t cap)
{
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(dir, cap, "%s/ringmq-e2e-%s-XXXXXX", tmp ? tmp : "/tmp", tag);

    cr_assert(n > 0 && (size_t)n < cap, "temporary directory name too long");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

void e2e_pwfile_write(const char *path, const char *const (*users)[2], size_t n,
                      uint32_t iterations)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "cannot write %s", path);
    for (size_t i = 0; i < n; i++) {
        const uint8_t salt[PWHASH_SALT_BYTES] = {(uint8_t)i, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
        char text[PWHASH_TEXT_MAX];
        struct pwhash h;

        cr_assert_eq(pwhash_make(&h, (const uint8_t *)users[i][1], strlen(users[i][1]), salt,
                                 sizeof(salt), iterations),
                     0);
        cr_assert_gt(pwhash_format(&h, text, sizeof(text)), 0);
        fprintf(f, "%s:%s\n", users[i][0], text);
    }
    cr_assert_eq(fclose(f), 0);
}

void e2e_broker_dump_log(const struct e2e_broker *b)
{
    dump_log_file(b->log_path);
}

static uint16_t free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    uint16_t port;

    cr_assert(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s", strerror(errno));
    cr_assert(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/* Find "KEY = VALUE" in @ini's @section ("[limits]"); copies VALUE to @out. */
static bool ini_get(const char *ini, const char *section, const char *key, char *out, size_t cap)
{
    const char *p = ini;
    bool in_limits = false;
    size_t klen = strlen(key);
    size_t slen = strlen(section);

    while (p != NULL && *p != '\0') {
        const char *eol = strchr(p, '\n');
        size_t len = eol != NULL ? (size_t)(eol - p) : strlen(p);
        const char *q = p;

        while (q < p + len && (*q == ' ' || *q == '\t')) {
            q++;
        }
        if (*q == '[') {
            in_limits = strncmp(q, section, slen) == 0;
        } else if (in_limits && strncmp(q, key, klen) == 0) {
            const char *v = q + klen;

            while (v < p + len && (*v == ' ' || *v == '\t')) {
                v++;
            }
            if (v < p + len && *v == '=') {
                size_t vlen;

                v++;
                while (v < p + len && (*v == ' ' || *v == '\t')) {
                    v++;
                }
                vlen = (size_t)(p + len - v);
                while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\r')) {
                    vlen--;
                }
                if (vlen < cap) {
                    memcpy(out, v, vlen);
                    out[vlen] = '\0';
                    return true;
                }
            }
        }
        p = eol != NULL ? eol + 1 : NULL;
    }
    return false;
}

/* mosquitto.conf lines for ringmq keys that have an equivalent. */
static const struct {
    const char *section;
    const char *key;
    const char *mosq;
} mosq_map[] = {
    {"[limits]", "queued_max", "max_queued_messages"},
    {"[limits]", "inflight_max", "max_inflight_messages"},
    {"[limits]", "allow_zero_length_client_id", "allow_zero_length_clientid"},
    {"[limits]", "packet_bytes_max", "max_packet_size"},
    {"[mqtt]", "max_qos", "max_qos"},
    {"[mqtt]", "retain_available", "retain_available"},
    {"[mqtt]", "topic_alias_max", "max_topic_alias"},
    {"[mqtt]", "keepalive_max", "max_keepalive"},
};

static void write_config(struct e2e_broker *b, const char *extra_ini)
{
    char text[8192];
    char v[64];
    int n;

    if (!b->mosquitto) {
        n = snprintf(text, sizeof(text),
                     "[broker]\nlog_level = debug\n\n"
                     "[listener.default]\nbind = 127.0.0.1\nport = 0\n\n%s\n",
                     extra_ini != NULL ? extra_ini : "");
        cr_assert(n > 0 && (size_t)n < sizeof(text), "config too long");
        write_file(b->conf_path, text);
        return;
    }
    n = snprintf(text, sizeof(text),
                 "listener %u 127.0.0.1\nallow_anonymous true\npersistence false\n"
                 "log_dest stderr\nlog_type all\nconnection_messages true\n",
                 b->port);
    cr_assert(n > 0 && (size_t)n < sizeof(text));
    for (size_t i = 0; extra_ini != NULL && i < sizeof(mosq_map) / sizeof(mosq_map[0]); i++) {
        if (ini_get(extra_ini, mosq_map[i].section, mosq_map[i].key, v, sizeof(v))) {
            n += snprintf(text + n, sizeof(text) - (size_t)n, "%s %s\n", mosq_map[i].mosq, v);
            cr_assert((size_t)n < sizeof(text));
        }
    }
    cr_assert((size_t)n < sizeof(text));
    write_file(b->conf_path, text);
}

/* Fork and exec the broker with stdout+stderr into the log; never via a shell. */
static void spawn(struct e2e_broker *b)
{
    const char *bin = b->mosquitto ? MOSQUITTO_BIN : getenv("RINGMQ_BIN");
    char *argv[4];
    pid_t parent = getpid();
    int logfd;
    pid_t pid;

    cr_assert(bin != NULL && bin[0] != '\0',
              "RINGMQ_BIN is not set (or set RINGMQ_E2E_MOSQUITTO=1)");
    cr_assert(access(bin, X_OK) == 0, "broker binary %s: %s", bin, strerror(errno));
    argv[0] = (char *)bin;
    argv[1] = (char *)"-c";
    argv[2] = b->conf_path;
    argv[3] = NULL;
    logfd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(logfd >= 0, "open %s: %s", b->log_path, strerror(errno));
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* Child: only async-signal-safe calls until exec. */
        struct sigaction sa;
        sigset_t none;
        int nullfd;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(SIGPIPE, &sa, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        nullfd = open("/dev/null", O_RDONLY);
        if (nullfd >= 0) {
            dup2(nullfd, 0);
        }
        dup2(logfd, 1);
        dup2(logfd, 2);
        execv(bin, argv);
        _exit(127);
    }
    close(logfd);
    b->pid = pid;
}

/* Non-blocking check whether the broker has died; reaps it if so. */
static bool broker_exited(struct e2e_broker *b, int *status)
{
    pid_t r = waitpid(b->pid, status, WNOHANG);

    if (r == b->pid) {
        b->pid = 0;
        return true;
    }
    return false;
}

/* The port of listener @n in the log so far, or 0. */
static unsigned long listener_port_now(const struct e2e_broker *b, unsigned n)
{
    char *log = read_file(b->log_path, NULL);
    const char *line = log;
    const char *eol;
    const char *colon = NULL;
    unsigned long port = 0;

    for (unsigned i = 0; line != NULL && i <= n; i++) {
        line = strstr(i == 0 ? line : line + 1, "listening on ");
    }
    eol = line != NULL ? strchr(line, '\n') : NULL;
    for (const char *q = line; eol != NULL && q < eol; q++) {
        if (*q == ':') {
            colon = q;
        }
    }
    if (colon != NULL) {
        port = strtoul(colon + 1, NULL, 10);
    }
    free(log);
    return port;
}

uint16_t e2e_broker_listener_port(const struct e2e_broker *b, unsigned n)
{
    int64_t deadline = e2e_now_ms() + E2E_WAIT_MS;
    unsigned long port;

    /* Shard 0 logs its listeners one by one: the later ones may still come. */
    while ((port = listener_port_now(b, n)) == 0 && e2e_now_ms() < deadline) {
        e2e_sleep_ms(10);
    }
    cr_assert(port > 0 && port <= 65535, "listener %u has no port in the log", n);
    return (uint16_t)port;
}

/* ringmq: parse the port from "listening on ADDR:PORT" in the log. */
static bool parse_listen_port(struct e2e_broker *b)
{
    char *log = read_file(b->log_path, NULL);
    const char *line;
    const char *eol;
    const char *colon = NULL;
    const char *q;
    unsigned long port;
    bool ok = false;

    if (log == NULL) {
        goto out;
    }
    line = strstr(log, "listening on ");
    if (line == NULL) {
        goto out;
    }
    eol = strchr(line, '\n');
    if (eol == NULL) {
        goto out; /* line not complete yet */
    }
    for (q = line; q < eol; q++) {
        if (*q == ':') {
            colon = q;
        }
    }
    if (colon == NULL) {
        goto out;
    }
    port = strtoul(colon + 1, NULL, 10);
    if (port == 0 || port > 65535) {
        goto out;
    }
    b->port = (uint16_t)port;
    ok = true;
out:
    free(log);
    return ok;
}

static bool port_accepts(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    cr_assert(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

/* Wait until the broker listens. False if it exited (e.g. port taken). */
static bool wait_listening(struct e2e_broker *b)
{
    int64_t deadline = e2e_now_ms() + START_WAIT_MS;
    int status;

    while (e2e_now_ms() < deadline) {
        if (broker_exited(b, &status)) {
            return false;
        }
        if (b->mosquitto ? port_accepts(b->port) : parse_listen_port(b)) {
            return true;
        }
        e2e_sleep_ms(10);
    }
    cr_assert_fail("broker did not start listening within %d ms", START_WAIT_MS);
    return false;
}

struct e2e_broker *e2e_broker_start(const char *extra_ini)
{
    struct e2e_broker *b = &the_broker;
    const char *suite = criterion_current_suite != NULL ? criterion_current_suite->name : "x";
    const char *test = criterion_current_test != NULL ? criterion_current_test->name : "x";
    int tries;
    int n;

    cr_assert(b->pid == 0, "one broker per test");
    if (!lib_ready) {
        signal(SIGPIPE, SIG_IGN);
        cr_assert(mosquitto_lib_init() == MOSQ_ERR_SUCCESS);
        atexit(broker_kill_at_exit);
        lib_ready = true;
    }
    memset(b, 0, sizeof(*b));
    b->mosquitto = e2e_mosquitto_mode();
    /* The runner (our parent) finds the dir by this name; see the hooks. */
    n = snprintf(b->dir, sizeof(b->dir), DIR_PREFIX "%d-%s-%s-XXXXXX", (int)getppid(), suite, test);
    cr_assert(n > 0 && (size_t)n < sizeof(b->dir));
    cr_assert_not_null(mkdtemp(b->dir), "mkdtemp %s: %s", b->dir, strerror(errno));
    n = snprintf(b->conf_path, sizeof(b->conf_path), "%s/%s", b->dir,
                 b->mosquitto ? "mosquitto.conf" : "ringmq.ini");
    cr_assert(n > 0 && (size_t)n < sizeof(b->conf_path));
    n = snprintf(b->log_path, sizeof(b->log_path), "%s/broker.log", b->dir);
    cr_assert(n > 0 && (size_t)n < sizeof(b->log_path));

    for (tries = 0; tries < START_TRIES_MAX; tries++) {
        if (b->mosquitto) {
            b->port = free_port();
        }
        write_config(b, extra_ini);
        spawn(b);
        if (wait_listening(b)) {
            return b;
        }
        /* It exited: in mosquitto mode most likely a lost race for the port. */
        if (!b->mosquitto) {
            break;
        }
    }
    cr_assert_fail("broker exited during start-up (its log follows)");
    return NULL;
}

struct e2e_broker *e2e_broker_start_shards(unsigned shards, const char *extra_ini)
{
    char ini[4096];
    int len;

    cr_assert(shards >= 1);
    len = snprintf(ini, sizeof(ini), "[broker]\nshards = %u\n\n%s", shards,
                   extra_ini != NULL ? extra_ini : "");
    cr_assert(len > 0 && (size_t)len < sizeof(ini), "config too long");
    return e2e_broker_start(ini);
}

void e2e_id_on(uint32_t want, uint32_t n, const char *prefix, char *out, size_t cap)
{
    if (n <= 1 || e2e_mosquitto_mode()) {
        snprintf(out, cap, "%s", prefix);
        return;
    }
    for (unsigned i = 0; i < 100000; i++) {
        snprintf(out, cap, "%s%u", prefix, i);
        if (broker_home_shard((const uint8_t *)out, strlen(out), n) == want) {
            return;
        }
    }
    cr_assert_fail("no id with prefix %s homed on shard %u of %u", prefix, want, n);
}

void e2e_broker_stop(struct e2e_broker *b)
{
    cr_assert(b->pid > 0, "broker not running (it died during the test?)");
    cr_assert(kill(b->pid, SIGTERM) == 0, "kill: %s", strerror(errno));
    e2e_broker_wait_exit(b);
}

void e2e_broker_wait_exit(struct e2e_broker *b)
{
    int64_t deadline = e2e_now_ms() + STOP_WAIT_MS;
    int status = 0;
    bool exited = false;

    cr_assert(b->pid > 0, "broker not running (it died during the test?)");
    while (e2e_now_ms() < deadline) {
        if (broker_exited(b, &status)) {
            exited = true;
            break;
        }
        e2e_sleep_ms(5);
    }
    if (!exited) {
        kill(b->pid, SIGKILL);
        waitpid(b->pid, &status, 0);
        b->pid = 0;
        cr_assert_fail("broker did not exit within %d ms of SIGTERM", STOP_WAIT_MS);
    }
    cr_assert(WIFEXITED(status), "broker killed by signal %d", WTERMSIG(status));
    cr_assert_eq(WEXITSTATUS(status), 0, "broker exit status %d (leak under ASan?)",
                 WEXITSTATUS(status));
}

/* ---------------------------------------------------------------- client */

struct e2e_client {
    struct mosquitto *m;
    char id[128];
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    struct e2e_msg *head;
    struct e2e_msg *tail;
    int connack_rc; /* -1 until CONNACK */
    int connack_flags;
    bool closed; /* the loop thread ended: connection gone */
    int close_rc;
    uint8_t *done;    /* per mid: DONE_* bits */
    uint8_t *granted; /* per mid: first granted QoS of a SUBACK (v5: reason code) */
    uint8_t *pub_rc;  /* per mid: v5 PUBACK/PUBREC reason code */
    bool v5;
    mosquitto_property *connack_props; /* v5 */
    int disconnect_rc;                 /* v5: reason of the broker's DISCONNECT, or -1 */
};

enum {
    DONE_PUB = 1,
    DONE_SUB = 2,
    DONE_UNSUB = 4,
};

static void deadline_ts(struct timespec *ts, int64_t deadline_ms)
{
    ts->tv_sec = deadline_ms / 1000;
    ts->tv_nsec = (long)(deadline_ms % 1000) * 1000000L;
}

/* Wait on c->cv (mutex held) until @deadline_ms; false on timeout. */
static bool cv_wait(struct e2e_client *c, int64_t deadline_ms)
{
    struct timespec ts;

    if (e2e_now_ms() >= deadline_ms) {
        return false;
    }
    deadline_ts(&ts, deadline_ms);
    pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    return true;
}

static void on_connect_flags(struct mosquitto *m, void *obj, int rc, int flags)
{
    struct e2e_client *c = obj;

    pthread_mutex_lock(&c->mu);
    c->connack_rc = rc;
    c->connack_flags = flags;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

enum prop_type { PT_NONE, PT_BYTE, PT_U16, PT_U32, PT_VARINT, PT_STR, PT_BIN, PT_PAIR };
static enum prop_type prop_type(uint8_t id);

/*
 * Copy a property list. Not mosquitto_property_copy_all(): libmosquitto
 * 2.0.11 stores an empty string as NULL and that function then strdup()s
 * the NULL.
 */
static void props_copy(mosquitto_property **dest, const mosquitto_property *src)
{
    const mosquitto_property *it;

    for (it = src; it != NULL; it = mosquitto_property_next(it)) {
        int id = mosquitto_property_identifier(it);
        uint8_t u8 = 0;
        uint16_t u16 = 0;
        uint32_t u32 = 0;
        char *a = NULL;
        char *v = NULL;
        void *bin = NULL;
        uint16_t blen = 0;
        int rc = MOSQ_ERR_SUCCESS;

        switch (prop_type((uint8_t)id)) {
        case PT_BYTE:
            mosquitto_property_read_byte(it, id, &u8, false);
            rc = mosquitto_property_add_byte(dest, id, u8);
            break;
        case PT_U16:
            mosquitto_property_read_int16(it, id, &u16, false);
            rc = mosquitto_property_add_int16(dest, id, u16);
            break;
        case PT_U32:
            mosquitto_property_read_int32(it, id, &u32, false);
            rc = mosquitto_property_add_int32(dest, id, u32);
            break;
        case PT_VARINT:
            mosquitto_property_read_varint(it, id, &u32, false);
            rc = mosquitto_property_add_varint(dest, id, u32);
            break;
        case PT_STR:
            mosquitto_property_read_string(it, id, &a, false);
            rc = mosquitto_property_add_string(dest, id, a != NULL ? a : "");
            break;
        case PT_BIN:
            mosquitto_property_read_binary(it, id, &bin, &blen, false);
            rc = mosquitto_property_add_binary(dest, id, bin, blen);
            break;
        case PT_PAIR:
            mosquitto_property_read_string_pair(it, id, &a, &v, false);
            rc = mosquitto_property_add_string_pair(dest, id, a != NULL ? a : "",
                                                    v != NULL ? v : "");
            break;
        default:
            rc = MOSQ_ERR_INVAL;
        }
        free(a);
        free(v);
        free(bin);
        cr_assert(rc == MOSQ_ERR_SUCCESS, "copying property %d", id);
    }
}

static void on_message_props(struct e2e_client *c, const struct mosquitto_message *mm,
                             const mosquitto_property *props)
{
    struct e2e_msg *msg = xcalloc(1, sizeof(*msg));

    msg->topic = strdup(mm->topic);
    msg->payload = xcalloc(1, (size_t)mm->payloadlen + 1);
    if (mm->payloadlen > 0) {
        memcpy(msg->payload, mm->payload, (size_t)mm->payloadlen);
    }
    msg->payload_len = (size_t)mm->payloadlen;
    msg->qos = mm->qos;
    msg->retain = mm->retain;
    msg->mid = mm->mid;
    props_copy(&msg->props, props);
    pthread_mutex_lock(&c->mu);
    if (c->tail != NULL) {
        c->tail->_next = msg;
    } else {
        c->head = msg;
    }
    c->tail = msg;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *mm)
{
    on_message_props(obj, mm, NULL);
}

static void on_message_v5(struct mosquitto *m, void *obj, const struct mosquitto_message *mm,
                          const mosquitto_property *props)
{
    on_message_props(obj, mm, props);
}

static void on_connect_v5(struct mosquitto *m, void *obj, int rc, int flags,
                          const mosquitto_property *props)
{
    struct e2e_client *c = obj;

    pthread_mutex_lock(&c->mu);
    mosquitto_property_free_all(&c->connack_props);
    props_copy(&c->connack_props, props);
    c->connack_rc = rc;
    c->connack_flags = flags;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_disconnect_v5(struct mosquitto *m, void *obj, int rc,
                             const mosquitto_property *props)
{
    struct e2e_client *c = obj;

    /*
     * libmosquitto 2.0 passes the reason code of a DISCONNECT it received,
     * else an MOSQ_ERR_* (CONN_LOST = 7, ...) or 0 for our own DISCONNECT.
     * Real reason codes a broker sends are 0x80 and up (0x00 has no use
     * here), so only those count.
     */
    pthread_mutex_lock(&c->mu);
    if (rc >= 0x80 && c->disconnect_rc < 0) {
        c->disconnect_rc = rc;
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void mark_done(struct e2e_client *c, int mid, uint8_t bit, int granted)
{
    pthread_mutex_lock(&c->mu);
    if (mid >= 0 && mid < MID_SPACE) {
        c->done[mid] |= bit;
        if (granted >= 0) {
            c->granted[mid] = (uint8_t)granted;
        }
    }
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    mark_done(obj, mid, DONE_PUB, -1);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int count, const int *granted)
{
    mark_done(obj, mid, DONE_SUB, count > 0 ? granted[0] : 0x80);
}

static void on_unsubscribe(struct mosquitto *m, void *obj, int mid)
{
    mark_done(obj, mid, DONE_UNSUB, -1);
}

static void on_publish_v5(struct mosquitto *m, void *obj, int mid, int reason,
                          const mosquitto_property *props)
{
    struct e2e_client *c = obj;

    pthread_mutex_lock(&c->mu);
    if (mid >= 0 && mid < MID_SPACE) {
        c->pub_rc[mid] = (uint8_t)reason;
    }
    pthread_mutex_unlock(&c->mu);
    mark_done(c, mid, DONE_PUB, -1);
}

static void on_subscribe_v5(struct mosquitto *m, void *obj, int mid, int count, const int *granted,
                            const mosquitto_property *props)
{
    mark_done(obj, mid, DONE_SUB, count > 0 ? granted[0] : 0x80);
}

static void on_unsubscribe_v5(struct mosquitto *m, void *obj, int mid,
                              const mosquitto_property *props)
{
    mark_done(obj, mid, DONE_UNSUB, -1);
}

static void *loop_thread(void *arg)
{
    struct e2e_client *c = arg;
    int rc = MOSQ_ERR_SUCCESS;

    /* Bounded by the stop flag or the first error (a closed connection). */
    while (!atomic_load(&c->stop)) {
        rc = mosquitto_loop(c->m, 20, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            break;
        }
    }
    pthread_mutex_lock(&c->mu);
    c->closed = true;
    c->close_rc = rc;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct e2e_client *e2e_client_start(struct e2e_broker *b, const struct e2e_client_opts *o)
{
    struct e2e_client *c = xcalloc(1, sizeof(*c));
    pthread_condattr_t ca;
    int rc;

    cr_assert(o->id != NULL && o->id[0] != '\0', "libmosquitto clients need an id");
    snprintf(c->id, sizeof(c->id), "%s", o->id);
    c->done = xcalloc(MID_SPACE, 1);
    c->granted = xcalloc(MID_SPACE, 1);
    c->pub_rc = xcalloc(MID_SPACE, 1);
    c->connack_rc = -1;
    c->disconnect_rc = -1;
    c->v5 = o->version == E2E_V5;
    cr_assert(c->v5 || (o->props == NULL && o->will_props == NULL), "properties need a v5 client");
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);

    c->m = mosquitto_new(o->id, o->clean, c);
    cr_assert_not_null(c->m, "mosquitto_new");
    cr_assert(mosquitto_int_option(c->m, MOSQ_OPT_PROTOCOL_VERSION, o->version) ==
              MOSQ_ERR_SUCCESS);
    if (c->v5) {
        /* Only the v5 callbacks: libmosquitto would call both kinds. */
        mosquitto_connect_v5_callback_set(c->m, on_connect_v5);
        mosquitto_disconnect_v5_callback_set(c->m, on_disconnect_v5);
        mosquitto_message_v5_callback_set(c->m, on_message_v5);
        mosquitto_publish_v5_callback_set(c->m, on_publish_v5);
        mosquitto_subscribe_v5_callback_set(c->m, on_subscribe_v5);
        mosquitto_unsubscribe_v5_callback_set(c->m, on_unsubscribe_v5);
    } else {
        mosquitto_connect_with_flags_callback_set(c->m, on_connect_flags);
        mosquitto_message_callback_set(c->m, on_message);
        mosquitto_publish_callback_set(c->m, on_publish);
        mosquitto_subscribe_callback_set(c->m, on_subscribe);
        mosquitto_unsubscribe_callback_set(c->m, on_unsubscribe);
    }
    if (o->will != NULL && c->v5) {
        rc = mosquitto_will_set_v5(c->m, o->will->topic, (int)o->will->payload_len,
                                   o->will->payload, o->will->qos, o->will->retain, o->will_props);
        cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_will_set_v5: %s", mosquitto_strerror(rc));
    } else if (o->will != NULL) {
        rc = mosquitto_will_set(c->m, o->will->topic, (int)o->will->payload_len, o->will->payload,
                                o->will->qos, o->will->retain);
        cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_will_set: %s", mosquitto_strerror(rc));
    } else {
        cr_assert_null(o->will_props, "will properties without a will");
    }
    if (o->username != NULL) {
        rc = mosquitto_username_pw_set(c->m, o->username, o->password);
        cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_username_pw_set: %s", mosquitto_strerror(rc));
    }
    /* Our own thread runs the loop; tell the library so it queues writes. */
    mosquitto_threaded_set(c->m, true);
    if (c->v5) {
        rc = mosquitto_connect_bind_v5(c->m, "127.0.0.1", b->port,
                                       o->keepalive_s > 0 ? o->keepalive_s : 60, NULL, o->props);
    } else {
        rc =
            mosquitto_connect(c->m, "127.0.0.1", b->port, o->keepalive_s > 0 ? o->keepalive_s : 60);
    }
    cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_connect: %s", mosquitto_strerror(rc));
    cr_assert(pthread_create(&c->thread, NULL, loop_thread, c) == 0);
    c->thread_started = true;
    return c;
}

int e2e_client_wait_connack(struct e2e_client *c, int rc)
{
    int64_t deadline = e2e_now_ms() + E2E_WAIT_MS;
    int got;
    int flags;

    pthread_mutex_lock(&c->mu);
    while (c->connack_rc < 0 && !c->closed && cv_wait(c, deadline)) {
    }
    got = c->connack_rc;
    flags = c->connack_flags;
    pthread_mutex_unlock(&c->mu);
    cr_assert(got >= 0, "client %s: no CONNACK within %d ms", c->id, E2E_WAIT_MS);
    cr_assert_eq(got, rc, "client %s: CONNACK return code %d, expected %d", c->id, got, rc);
    return flags & 1;
}

struct e2e_client *e2e_client_connect(struct e2e_broker *b, int version, const char *id, bool clean)
{
    struct e2e_client_opts o = {.version = version, .id = id, .clean = clean};
    struct e2e_client *c = e2e_client_start(b, &o);

    cr_assert_eq(e2e_client_wait_connack(c, 0), 0,
                 "client %s: session present set for a new session [MQTT-3.2.2-3]", id);
    return c;
}

/* Wait for @bit on @mid; returns the granted byte. */
static int wait_done(struct e2e_client *c, int mid, uint8_t bit, int timeout_ms, const char *what)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    bool ok;
    int granted;

    pthread_mutex_lock(&c->mu);
    while (!(c->done[mid] & bit) && !c->closed && cv_wait(c, deadline)) {
    }
    ok = (c->done[mid] & bit) != 0;
    granted = c->granted[mid];
    pthread_mutex_unlock(&c->mu);
    cr_assert(ok, "client %s: no %s for mid %d within %d ms%s", c->id, what, mid, timeout_ms,
              c->closed ? " (connection closed)" : "");
    return granted;
}

int e2e_client_subscribe(struct e2e_client *c, const char *filter, int qos)
{
    int mid = 0;
    int rc = mosquitto_subscribe(c->m, &mid, filter, qos);

    cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_subscribe %s: %s", filter, mosquitto_strerror(rc));
    return wait_done(c, mid, DONE_SUB, E2E_WAIT_MS, "SUBACK");
}

void e2e_client_unsubscribe(struct e2e_client *c, const char *filter)
{
    int mid = 0;
    int rc = mosquitto_unsubscribe(c->m, &mid, filter);

    cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_unsubscribe: %s", mosquitto_strerror(rc));
    wait_done(c, mid, DONE_UNSUB, E2E_WAIT_MS, "UNSUBACK");
}

int e2e_client_publish_async(struct e2e_client *c, const char *topic, const void *payload,
                             size_t len, int qos, bool retain)
{
    int mid = 0;
    int rc = mosquitto_publish(c->m, &mid, topic, (int)len, payload, qos, retain);

    cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_publish %s: %s", topic, mosquitto_strerror(rc));
    return mid;
}

void e2e_client_wait_published(struct e2e_client *c, int mid, int timeout_ms)
{
    wait_done(c, mid, DONE_PUB, timeout_ms, "PUBACK/PUBCOMP");
}

void e2e_client_sync(struct e2e_client *c)
{
    /*
     * A broker handles one connection's packets in order, so once this
     * SUBACK is back everything sent before it has been processed. '$'
     * topics match no wildcard subscription [MQTT-4.7.2-1]: no side effects.
     */
    cr_assert_eq(e2e_client_subscribe(c, "$e2e/sync", 0), 0, "sync subscription refused");
}

void e2e_client_publish(struct e2e_client *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retain)
{
    int mid = e2e_client_publish_async(c, topic, payload, len, qos, retain);

    e2e_client_wait_published(c, mid, E2E_WAIT_MS);
    if (qos == 0) {
        e2e_client_sync(c);
    }
}

struct e2e_msg *e2e_client_wait_message(struct e2e_client *c, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    struct e2e_msg *msg;

    pthread_mutex_lock(&c->mu);
    while (c->head == NULL && cv_wait(c, deadline)) {
    }
    msg = c->head;
    if (msg != NULL) {
        c->head = msg->_next;
        if (c->head == NULL) {
            c->tail = NULL;
        }
        msg->_next = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    return msg;
}

struct e2e_msg *e2e_client_expect_message(struct e2e_client *c)
{
    struct e2e_msg *msg = e2e_client_wait_message(c, E2E_WAIT_MS);

    cr_assert_not_null(msg, "client %s: no message within %d ms", c->id, E2E_WAIT_MS);
    return msg;
}

void e2e_client_expect(struct e2e_client *c, const char *topic, const char *payload, int qos,
                       bool retain)
{
    e2e_client_expect_within(c, E2E_WAIT_MS, topic, payload, qos, retain);
}

void e2e_client_expect_within(struct e2e_client *c, int timeout_ms, const char *topic,
                              const char *payload, int qos, bool retain)
{
    struct e2e_msg *msg = e2e_client_wait_message(c, timeout_ms);

    cr_assert_not_null(msg, "client %s: expected a message on %s, got none within %d ms", c->id,
                       topic, timeout_ms);
    cr_assert_str_eq(msg->topic, topic, "client %s: topic", c->id);
    cr_assert_eq(msg->payload_len, strlen(payload), "client %s: payload length on %s", c->id,
                 topic);
    cr_assert_str_eq((const char *)msg->payload, payload, "client %s: payload on %s", c->id, topic);
    cr_assert_eq(msg->qos, qos, "client %s: message on %s has QoS %d, expected %d", c->id, topic,
                 msg->qos, qos);
    cr_assert_eq(msg->retain, retain, "client %s: message on %s has retain %d, expected %d", c->id,
                 topic, msg->retain, retain);
    e2e_msg_free(msg);
}

void e2e_client_expect_no_message(struct e2e_client *c, int ms)
{
    struct e2e_msg *msg = e2e_client_wait_message(c, ms);

    if (msg != NULL) {
        cr_assert_fail("client %s: unexpected message topic=%s payload=%.*s qos=%d retain=%d",
                       c->id, msg->topic, (int)(msg->payload_len > 64 ? 64 : msg->payload_len),
                       (const char *)msg->payload, msg->qos, msg->retain);
    }
}

void e2e_msg_free(struct e2e_msg *msg)
{
    if (msg == NULL) {
        return;
    }
    free(msg->topic);
    free(msg->payload);
    mosquitto_property_free_all(&msg->props);
    free(msg);
}

bool e2e_client_wait_closed(struct e2e_client *c, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    bool closed;

    pthread_mutex_lock(&c->mu);
    while (!c->closed && cv_wait(c, deadline)) {
    }
    closed = c->closed;
    pthread_mutex_unlock(&c->mu);
    return closed;
}

static void client_free(struct e2e_client *c)
{
    struct e2e_msg *msg;

    atomic_store(&c->stop, true);
    if (c->thread_started) {
        pthread_join(c->thread, NULL);
    }
    mosquitto_destroy(c->m);
    while ((msg = c->head) != NULL) {
        c->head = msg->_next;
        e2e_msg_free(msg);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->done);
    free(c->granted);
    free(c->pub_rc);
    mosquitto_property_free_all(&c->connack_props);
    free(c);
}

void e2e_client_disconnect(struct e2e_client *c)
{
    int rc = mosquitto_disconnect(c->m);

    cr_assert(rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN, "mosquitto_disconnect: %s",
              mosquitto_strerror(rc));
    /* The loop writes DISCONNECT, then the library closes and reports it. */
    cr_assert(e2e_client_wait_closed(c, E2E_WAIT_MS), "client %s: disconnect did not finish",
              c->id);
    client_free(c);
}

void e2e_client_abort(struct e2e_client *c)
{
    atomic_store(&c->stop, true);
    if (c->thread_started) {
        pthread_join(c->thread, NULL);
        c->thread_started = false;
    }
    /* The loop thread is gone: close the socket with no DISCONNECT. */
    if (mosquitto_socket(c->m) >= 0) {
        shutdown(mosquitto_socket(c->m), SHUT_RDWR);
    }
    client_free(c);
}

void e2e_client_drop(struct e2e_client *c)
{
    int fd;

    atomic_store(&c->stop, true);
    if (c->thread_started) {
        pthread_join(c->thread, NULL);
        c->thread_started = false;
    }
    fd = mosquitto_socket(c->m);
    cr_assert(fd >= 0, "client %s: no connection to drop", c->id);
    /*
     * EOF without DISCONNECT; the socket still reads, so the broker's own
     * close (its FIN, or a reset) says it has handled the loss.
     */
    cr_assert(shutdown(fd, SHUT_WR) == 0, "client %s: shutdown: %s", c->id, strerror(errno));
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL),
              "client %s: the broker did not close its side within %d ms of our EOF", c->id,
              E2E_WAIT_MS);
    client_free(c);
}

void e2e_broker_check_alive(struct e2e_broker *b)
{
    struct e2e_client *c = e2e_client_connect(b, E2E_V311, "alive-check", true);

    cr_assert_eq(e2e_client_subscribe(c, "alive/check", 1), 1);
    e2e_client_publish(c, "alive/check", "ping", 4, 1, false);
    e2e_client_expect(c, "alive/check", "ping", 1, false);
    e2e_client_disconnect(c);
}

/* ------------------------------------------------------- v5 client */

void e2e_prop_u8(mosquitto_property **l, int id, uint8_t v)
{
    cr_assert(mosquitto_property_add_byte(l, id, v) == MOSQ_ERR_SUCCESS, "property %d", id);
}

void e2e_prop_u32(mosquitto_property **l, int id, uint32_t v)
{
    cr_assert(mosquitto_property_add_int32(l, id, v) == MOSQ_ERR_SUCCESS, "property %d", id);
}

void e2e_prop_str(mosquitto_property **l, int id, const char *v)
{
    cr_assert(mosquitto_property_add_string(l, id, v) == MOSQ_ERR_SUCCESS, "property %d", id);
}

void e2e_prop_bin(mosquitto_property **l, int id, const void *v, uint16_t len)
{
    cr_assert(mosquitto_property_add_binary(l, id, v, len) == MOSQ_ERR_SUCCESS, "property %d", id);
}

void e2e_prop_pair(mosquitto_property **l, const char *name, const char *value)
{
    cr_assert(mosquitto_property_add_string_pair(l, MQTT_PROP_USER_PROPERTY, name, value) ==
              MOSQ_ERR_SUCCESS);
}

const mosquitto_property *e2e_client_connack_props(struct e2e_client *c)
{
    const mosquitto_property *p;

    pthread_mutex_lock(&c->mu);
    p = c->connack_props;
    pthread_mutex_unlock(&c->mu);
    return p;
}

struct e2e_client *e2e_client_connect5(struct e2e_broker *b, const char *id, bool clean_start,
                                       uint32_t session_expiry, int *present)
{
    mosquitto_property *props = NULL;
    struct e2e_client_opts o = {.version = E2E_V5, .id = id, .clean = clean_start};
    struct e2e_client *c;
    int sp;

    if (session_expiry > 0) {
        e2e_prop_u32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL, session_expiry);
    }
    o.props = props;
    c = e2e_client_start(b, &o);
    mosquitto_property_free_all(&props);
    sp = e2e_client_wait_connack(c, 0);
    if (present != NULL) {
        *present = sp;
    }
    return c;
}

int e2e_client_subscribe5(struct e2e_client *c, const char *filter, int options,
                          const mosquitto_property *props)
{
    int mid = 0;
    int rc;

    cr_assert(c->v5, "e2e_client_subscribe5 on a v3 client");
    rc = mosquitto_subscribe_v5(c->m, &mid, filter, options & 0x03, options & ~0x03, props);
    cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_subscribe_v5 %s: %s", filter,
              mosquitto_strerror(rc));
    return wait_done(c, mid, DONE_SUB, E2E_WAIT_MS, "SUBACK");
}

int e2e_client_publish5(struct e2e_client *c, const char *topic, const void *payload, size_t len,
                        int qos, bool retain, const mosquitto_property *props)
{
    int mid = 0;
    int rc;
    int reason;

    cr_assert(c->v5, "e2e_client_publish5 on a v3 client");
    rc = mosquitto_publish_v5(c->m, &mid, topic, (int)len, payload, qos, retain, props);
    cr_assert(rc == MOSQ_ERR_SUCCESS, "mosquitto_publish_v5 %s: %s", topic, mosquitto_strerror(rc));
    wait_done(c, mid, DONE_PUB, E2E_WAIT_MS, "PUBACK/PUBCOMP");
    pthread_mutex_lock(&c->mu);
    reason = qos > 0 ? c->pub_rc[mid] : 0;
    pthread_mutex_unlock(&c->mu);
    if (qos == 0) {
        e2e_client_sync(c);
    }
    return reason;
}

void e2e_client_disconnect5(struct e2e_client *c, int reason, const mosquitto_property *props)
{
    int rc = mosquitto_disconnect_v5(c->m, reason, props);

    cr_assert(rc == MOSQ_ERR_SUCCESS || rc == MOSQ_ERR_NO_CONN, "mosquitto_disconnect_v5: %s",
              mosquitto_strerror(rc));
    cr_assert(e2e_client_wait_closed(c, E2E_WAIT_MS), "client %s: disconnect did not finish",
              c->id);
    client_free(c);
}

int e2e_client_wait_disconnect_reason(struct e2e_client *c, int timeout_ms)
{
    int rc;

    cr_assert(e2e_client_wait_closed(c, timeout_ms), "client %s: still connected after %d ms",
              c->id, timeout_ms);
    pthread_mutex_lock(&c->mu);
    rc = c->disconnect_rc;
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---------------------------------------------------------------- packets */

#define PKT_HDR_RESERVE 5

void e2e_pkt_init(struct e2e_pkt *p)
{
    p->cap = 256;
    p->buf = xcalloc(1, p->cap);
    p->len = PKT_HDR_RESERVE;
}

void e2e_pkt_free(struct e2e_pkt *p)
{
    free(p->buf);
    p->buf = NULL;
    p->len = 0;
    p->cap = 0;
}

void e2e_pkt_bytes(struct e2e_pkt *p, const void *data, size_t len)
{
    if (p->len + len > p->cap) {
        while (p->len + len > p->cap) {
            p->cap *= 2;
        }
        p->buf = realloc(p->buf, p->cap);
        cr_assert_not_null(p->buf);
    }
    if (len > 0) {
        memcpy(p->buf + p->len, data, len);
    }
    p->len += len;
}

void e2e_pkt_u8(struct e2e_pkt *p, uint8_t v)
{
    e2e_pkt_bytes(p, &v, 1);
}

void e2e_pkt_u16(struct e2e_pkt *p, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    e2e_pkt_bytes(p, b, 2);
}

void e2e_pkt_str_n(struct e2e_pkt *p, const void *s, size_t len)
{
    cr_assert(len <= 65535);
    e2e_pkt_u16(p, (uint16_t)len);
    e2e_pkt_bytes(p, s, len);
}

void e2e_pkt_str(struct e2e_pkt *p, const char *s)
{
    e2e_pkt_str_n(p, s, strlen(s));
}

void e2e_pkt_finish(struct e2e_pkt *p, uint8_t first_byte)
{
    size_t body = p->len - PKT_HDR_RESERVE;
    uint8_t hdr[PKT_HDR_RESERVE];
    size_t n = 0;
    size_t rem = body;

    cr_assert(body <= 268435455u);
    hdr[n++] = first_byte;
    do {
        uint8_t d = rem % 128;

        rem /= 128;
        hdr[n++] = d | (rem > 0 ? 0x80 : 0);
    } while (rem > 0);
    memmove(p->buf + n, p->buf + PKT_HDR_RESERVE, body);
    memcpy(p->buf, hdr, n);
    p->len = n + body;
}

void e2e_pkt_connect(struct e2e_pkt *p, const struct e2e_connect_opts *o)
{
    const char *name = o->proto_name;
    uint8_t flags = 0;

    if (name == NULL) {
        name = o->version == E2E_V31 ? "MQIsdp" : "MQTT";
    }
    if (o->clean) {
        flags |= 0x02;
    }
    if (o->will_topic != NULL) {
        flags |= 0x04 | (uint8_t)(o->will_qos << 3) | (o->will_retain ? 0x20 : 0);
    }
    if (o->password != NULL) {
        flags |= 0x40;
    }
    if (o->username != NULL) {
        flags |= 0x80;
    }
    flags |= o->flags_set;
    e2e_pkt_init(p);
    e2e_pkt_str(p, name);
    e2e_pkt_u8(p, (uint8_t)(o->proto_level != 0 ? o->proto_level : o->version));
    e2e_pkt_u8(p, flags);
    e2e_pkt_u16(p, o->keepalive_s);
    if (o->version == E2E_V5) {
        e2e_pkt_props(p, o->props);
    } else {
        cr_assert(o->props == NULL && o->will_props == NULL, "properties need v5");
    }
    e2e_pkt_str(p, o->id != NULL ? o->id : "");
    if (o->will_topic != NULL) {
        if (o->version == E2E_V5) {
            e2e_pkt_props(p, o->will_props);
        }
        e2e_pkt_str(p, o->will_topic);
        e2e_pkt_str(p, o->will_payload != NULL ? o->will_payload : "");
    }
    if (o->username != NULL) {
        e2e_pkt_str(p, o->username);
    }
    if (o->password != NULL) {
        e2e_pkt_str(p, o->password);
    }
    e2e_pkt_finish(p, 0x10);
}

void e2e_pkt_publish(struct e2e_pkt *p, const char *topic, uint8_t qos, bool retain, bool dup,
                     uint16_t pkt_id, const void *payload, size_t len)
{
    uint8_t first = (uint8_t)(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));

    e2e_pkt_init(p);
    e2e_pkt_str(p, topic);
    if (qos > 0) {
        e2e_pkt_u16(p, pkt_id);
    }
    e2e_pkt_bytes(p, payload, len);
    e2e_pkt_finish(p, first);
}

void e2e_pkt_subscribe(struct e2e_pkt *p, uint16_t pkt_id, size_t n, const char *const *filters,
                       const uint8_t *qos)
{
    size_t i;

    e2e_pkt_init(p);
    e2e_pkt_u16(p, pkt_id);
    for (i = 0; i < n; i++) {
        e2e_pkt_str(p, filters[i]);
        e2e_pkt_u8(p, qos[i]);
    }
    e2e_pkt_finish(p, 0x82);
}

void e2e_pkt_unsubscribe(struct e2e_pkt *p, uint16_t pkt_id, size_t n, const char *const *filters)
{
    size_t i;

    e2e_pkt_init(p);
    e2e_pkt_u16(p, pkt_id);
    for (i = 0; i < n; i++) {
        e2e_pkt_str(p, filters[i]);
    }
    e2e_pkt_finish(p, 0xA2);
}

void e2e_pkt_ack(struct e2e_pkt *p, uint8_t first_byte, uint16_t pkt_id)
{
    e2e_pkt_init(p);
    e2e_pkt_u16(p, pkt_id);
    e2e_pkt_finish(p, first_byte);
}

/* ---------------------------------------------------------------- raw */

int e2e_raw_open(const struct e2e_broker *b)
{
    return e2e_raw_open_rcvbuf(b, 0);
}

int e2e_raw_open_rcvbuf(const struct e2e_broker *b, int rcvbuf_bytes)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(b->port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    if (rcvbuf_bytes > 0) {
        cr_assert(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes)) == 0);
    }
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to port %u: %s",
              b->port, strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

void e2e_raw_close(int fd)
{
    close(fd);
}

bool e2e_raw_send(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, p + off, len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        off += (size_t)n;
    }
    return true;
}

void e2e_raw_send_pkt(int fd, struct e2e_pkt *p)
{
    bool ok = e2e_raw_send(fd, p->buf, p->len);

    e2e_pkt_free(p);
    cr_assert(ok, "send: %s", strerror(errno));
}

/* Wait until @fd is readable or @deadline_ms; false on timeout. */
static bool wait_readable(int fd, int64_t deadline_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int64_t left;
    int r;

    for (;;) {
        left = deadline_ms - e2e_now_ms();
        if (left <= 0) {
            return false;
        }
        r = poll(&pfd, 1, (int)left);
        if (r > 0) {
            return true;
        }
        if (r < 0 && errno != EINTR) {
            return false;
        }
    }
}

/* recv into @buf by up to @n bytes before @deadline_ms; -1 closed, 0 timeout. */
static ssize_t recv_some(int fd, void *buf, size_t n, int64_t deadline_ms)
{
    ssize_t r;

    if (!wait_readable(fd, deadline_ms)) {
        return 0;
    }
    r = recv(fd, buf, n, 0);
    if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN)) {
        return -1;
    }
    return r < 0 ? 0 : r;
}

size_t e2e_raw_recv(int fd, void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    uint8_t *p = buf;
    size_t got = 0;

    while (got < n && e2e_now_ms() < deadline) {
        ssize_t r = recv_some(fd, p + got, n - got, deadline);

        if (r < 0) {
            break;
        }
        got += (size_t)r;
    }
    return got;
}

static void hex(const uint8_t *p, size_t n, char *out, size_t cap)
{
    size_t i;
    size_t off = 0;

    out[0] = '\0';
    for (i = 0; i < n && off + 4 < cap; i++) {
        off += (size_t)snprintf(out + off, cap - off, "%02x ", p[i]);
    }
}

void e2e_raw_expect(int fd, const void *want, size_t n, int timeout_ms)
{
    uint8_t got[256];
    char hw[800];
    char hg[800];
    size_t r;

    cr_assert(n <= sizeof(got));
    r = e2e_raw_recv(fd, got, n, timeout_ms);
    hex(want, n, hw, sizeof(hw));
    hex(got, r, hg, sizeof(hg));
    cr_assert(r == n && memcmp(got, want, n) == 0, "expected bytes [%s], got [%s]%s", hw, hg,
              r < n ? " (timeout or close)" : "");
}

size_t e2e_raw_read_packet(int fd, uint8_t *buf, size_t cap, int timeout_ms, size_t *hdr_bytes)
{
    size_t hdr = 1;
    uint32_t rem = 0;
    uint32_t mult = 1;

    if (cap < 2 || e2e_raw_recv(fd, buf, 1, timeout_ms) != 1) {
        return 0;
    }
    /* Remaining length: at most 4 bytes. */
    for (;;) {
        if (hdr >= 5 || hdr >= cap || e2e_raw_recv(fd, buf + hdr, 1, timeout_ms) != 1) {
            return 0;
        }
        rem += (uint32_t)(buf[hdr] & 0x7f) * mult;
        mult *= 128;
        if ((buf[hdr++] & 0x80) == 0) {
            break;
        }
    }
    if (hdr + rem > cap || e2e_raw_recv(fd, buf + hdr, rem, timeout_ms) != rem) {
        return 0;
    }
    if (hdr_bytes != NULL) {
        *hdr_bytes = hdr;
    }
    return hdr + rem;
}

bool e2e_raw_wait_closed(int fd, int timeout_ms, size_t *junk)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    uint8_t buf[4096];
    size_t total = 0;
    bool closed = false;

    while (e2e_now_ms() < deadline) {
        ssize_t r = recv_some(fd, buf, sizeof(buf), deadline);

        if (r < 0) {
            closed = true;
            break;
        }
        total += (size_t)r;
    }
    if (junk != NULL) {
        *junk = total;
    }
    return closed;
}

void e2e_raw_expect_closed_silently(int fd)
{
    size_t junk = 0;
    bool closed = e2e_raw_wait_closed(fd, E2E_WAIT_MS, &junk);

    cr_assert(closed, "broker did not close the connection within %d ms", E2E_WAIT_MS);
    cr_assert_eq(junk, 0, "broker sent %zu bytes before closing", junk);
    e2e_raw_close(fd);
}

int e2e_raw_connect(const struct e2e_broker *b, const struct e2e_connect_opts *o,
                    uint8_t connack[4])
{
    struct e2e_pkt p;
    int fd = e2e_raw_open(b);
    size_t r;

    e2e_pkt_connect(&p, o);
    e2e_raw_send_pkt(fd, &p);
    r = e2e_raw_recv(fd, connack, 4, E2E_WAIT_MS);
    cr_assert_eq(r, 4, "no CONNACK (got %zu bytes)", r);
    return fd;
}

int e2e_raw_connect_ok(const struct e2e_broker *b, int version, const char *id, bool clean,
                       uint16_t keepalive_s)
{
    struct e2e_connect_opts o = {
        .version = version,
        .id = id,
        .clean = clean,
        .keepalive_s = keepalive_s,
    };
    static const uint8_t ok[4] = {0x20, 0x02, 0x00, 0x00};
    uint8_t ack[4];
    int fd = e2e_raw_connect(b, &o, ack);

    cr_assert(memcmp(ack, ok, 4) == 0, "CONNACK %02x %02x %02x %02x, expected 20 02 00 00", ack[0],
              ack[1], ack[2], ack[3]);
    return fd;
}

/* ---------------------------------------------------------------- v5 packets */

static void props_bytes(struct e2e_props *pr, const void *data, size_t len)
{
    cr_assert(pr->len + len <= sizeof(pr->buf), "e2e_props full");
    memcpy(pr->buf + pr->len, data, len);
    pr->len += len;
}

static void props_u16_raw(struct e2e_props *pr, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};

    props_bytes(pr, b, 2);
}

static void props_lp(struct e2e_props *pr, const void *data, size_t len)
{
    cr_assert(len <= 65535);
    props_u16_raw(pr, (uint16_t)len);
    props_bytes(pr, data, len);
}

void e2e_props_u8(struct e2e_props *pr, uint8_t id, uint8_t v)
{
    props_bytes(pr, &id, 1);
    props_bytes(pr, &v, 1);
}

void e2e_props_u16(struct e2e_props *pr, uint8_t id, uint16_t v)
{
    props_bytes(pr, &id, 1);
    props_u16_raw(pr, v);
}

void e2e_props_u32(struct e2e_props *pr, uint8_t id, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

    props_bytes(pr, &id, 1);
    props_bytes(pr, b, 4);
}

void e2e_props_varint(struct e2e_props *pr, uint8_t id, uint32_t v)
{
    props_bytes(pr, &id, 1);
    do {
        uint8_t d = v % 128;

        v /= 128;
        d |= v > 0 ? 0x80 : 0;
        props_bytes(pr, &d, 1);
    } while (v > 0);
}

void e2e_props_str(struct e2e_props *pr, uint8_t id, const char *v)
{
    props_bytes(pr, &id, 1);
    props_lp(pr, v, strlen(v));
}

void e2e_props_bin(struct e2e_props *pr, uint8_t id, const void *v, size_t len)
{
    props_bytes(pr, &id, 1);
    props_lp(pr, v, len);
}

void e2e_props_pair(struct e2e_props *pr, const char *name, const char *value)
{
    uint8_t id = MQTT_PROP_USER_PROPERTY;

    props_bytes(pr, &id, 1);
    props_lp(pr, name, strlen(name));
    props_lp(pr, value, strlen(value));
}

void e2e_pkt_varint(struct e2e_pkt *p, uint32_t v)
{
    cr_assert(v <= 268435455u);
    do {
        uint8_t d = v % 128;

        v /= 128;
        e2e_pkt_u8(p, d | (v > 0 ? 0x80 : 0));
    } while (v > 0);
}

void e2e_pkt_props(struct e2e_pkt *p, const struct e2e_props *pr)
{
    size_t len = pr != NULL ? pr->len : 0;

    e2e_pkt_varint(p, (uint32_t)len);
    if (len > 0) {
        e2e_pkt_bytes(p, pr->buf, len);
    }
}

void e2e_pkt_publish5(struct e2e_pkt *p, const char *topic, uint8_t qos, bool retain, bool dup,
                      uint16_t pkt_id, const struct e2e_props *props, const void *payload,
                      size_t len)
{
    uint8_t first = (uint8_t)(0x30 | (dup ? 0x08 : 0) | (qos << 1) | (retain ? 0x01 : 0));

    e2e_pkt_init(p);
    e2e_pkt_str(p, topic);
    if (qos > 0) {
        e2e_pkt_u16(p, pkt_id);
    }
    e2e_pkt_props(p, props);
    e2e_pkt_bytes(p, payload, len);
    e2e_pkt_finish(p, first);
}

void e2e_pkt_subscribe5(struct e2e_pkt *p, uint16_t pkt_id, const struct e2e_props *props, size_t n,
                        const char *const *filters, const uint8_t *options)
{
    e2e_pkt_init(p);
    e2e_pkt_u16(p, pkt_id);
    e2e_pkt_props(p, props);
    for (size_t i = 0; i < n; i++) {
        e2e_pkt_str(p, filters[i]);
        e2e_pkt_u8(p, options[i]);
    }
    e2e_pkt_finish(p, 0x82);
}

void e2e_pkt_unsubscribe5(struct e2e_pkt *p, uint16_t pkt_id, const struct e2e_props *props,
                          size_t n, const char *const *filters)
{
    e2e_pkt_init(p);
    e2e_pkt_u16(p, pkt_id);
    e2e_pkt_props(p, props);
    for (size_t i = 0; i < n; i++) {
        e2e_pkt_str(p, filters[i]);
    }
    e2e_pkt_finish(p, 0xA2);
}

void e2e_pkt_ack5(struct e2e_pkt *p, uint8_t first_byte, uint16_t pkt_id, uint8_t reason,
                  const struct e2e_props *props)
{
    e2e_pkt_init(p);
    e2e_pkt_u16(p, pkt_id);
    if (reason != 0 || props != NULL) {
        e2e_pkt_u8(p, reason);
        e2e_pkt_props(p, props);
    }
    e2e_pkt_finish(p, first_byte);
}

void e2e_pkt_disconnect5(struct e2e_pkt *p, uint8_t reason, const struct e2e_props *props)
{
    e2e_pkt_init(p);
    e2e_pkt_u8(p, reason);
    e2e_pkt_props(p, props);
    e2e_pkt_finish(p, 0xE0);
}

void e2e_pkt_auth(struct e2e_pkt *p, uint8_t reason, const struct e2e_props *props)
{
    e2e_pkt_init(p);
    e2e_pkt_u8(p, reason);
    e2e_pkt_props(p, props);
    e2e_pkt_finish(p, 0xF0);
}

/* ---------------------------------------------------------------- v5 reader */

static enum prop_type prop_type(uint8_t id)
{
    switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
    case 0x24:
    case 0x25:
    case 0x28:
    case 0x29:
    case 0x2A:
        return PT_BYTE;
    case 0x13:
    case 0x21:
    case 0x22:
    case 0x23:
        return PT_U16;
    case 0x02:
    case 0x11:
    case 0x18:
    case 0x27:
        return PT_U32;
    case 0x0B:
        return PT_VARINT;
    case 0x03:
    case 0x08:
    case 0x12:
    case 0x15:
    case 0x1A:
    case 0x1C:
    case 0x1F:
        return PT_STR;
    case 0x09:
    case 0x16:
        return PT_BIN;
    case 0x26:
        return PT_PAIR;
    default:
        return PT_NONE;
    }
}

/* A cursor over a received packet; every read is bounds-checked (asserts). */
struct cur {
    const uint8_t *p;
    const uint8_t *end;
};

static uint8_t cur_u8(struct cur *c)
{
    cr_assert(c->p + 1 <= c->end, "broker packet truncated (byte)");
    return *c->p++;
}

static uint16_t cur_u16(struct cur *c)
{
    uint16_t v;

    cr_assert(c->p + 2 <= c->end, "broker packet truncated (two byte integer)");
    v = (uint16_t)(c->p[0] << 8 | c->p[1]);
    c->p += 2;
    return v;
}

static uint32_t cur_u32(struct cur *c)
{
    uint32_t v;

    cr_assert(c->p + 4 <= c->end, "broker packet truncated (four byte integer)");
    v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    c->p += 4;
    return v;
}

static uint32_t cur_varint(struct cur *c)
{
    uint32_t v = 0;
    uint32_t mult = 1;
    int i;

    for (i = 0; i < 4; i++) {
        uint8_t d = cur_u8(c);

        v += (uint32_t)(d & 0x7f) * mult;
        mult *= 128;
        if ((d & 0x80) == 0) {
            /* [MQTT-1.5.5-1] minimum number of bytes */
            cr_assert(i == 0 || d != 0, "broker sent a non-minimal variable byte integer");
            return v;
        }
    }
    cr_assert_fail("broker sent a variable byte integer over 4 bytes");
    return 0;
}

static const uint8_t *cur_lp(struct cur *c, size_t *len)
{
    const uint8_t *d;

    *len = cur_u16(c);
    cr_assert(c->p + *len <= c->end, "broker packet truncated (string/binary)");
    d = c->p;
    c->p += *len;
    return d;
}

static void parse_props(struct cur *c, struct e2e_v5pkt *out)
{
    uint32_t plen = cur_varint(c);
    struct cur pc;

    cr_assert(c->p + plen <= c->end, "property length %u beyond the packet", plen);
    pc.p = c->p;
    pc.end = c->p + plen;
    c->p += plen;
    while (pc.p < pc.end) {
        struct e2e_prop *pr;
        uint8_t id = cur_u8(&pc);

        cr_assert_lt(out->nprops, E2E_PKT_PROPS_MAX, "too many properties");
        pr = &out->props[out->nprops++];
        memset(pr, 0, sizeof(*pr));
        pr->id = id;
        switch (prop_type(id)) {
        case PT_BYTE:
            pr->value = cur_u8(&pc);
            break;
        case PT_U16:
            pr->value = cur_u16(&pc);
            break;
        case PT_U32:
            pr->value = cur_u32(&pc);
            break;
        case PT_VARINT:
            pr->value = cur_varint(&pc);
            break;
        case PT_STR:
        case PT_BIN:
            pr->data = cur_lp(&pc, &pr->len);
            break;
        case PT_PAIR:
            pr->data = cur_lp(&pc, &pr->len);
            pr->data2 = cur_lp(&pc, &pr->len2);
            break;
        default:
            cr_assert_fail("broker sent unknown property id 0x%02x (packet type %u)", id,
                           out->type);
        }
    }
}

void e2e_v5pkt_free(struct e2e_v5pkt *p)
{
    free(p->buf);
    free(p->topic);
    memset(p, 0, sizeof(*p));
}

static void parse5(struct e2e_v5pkt *out, size_t hdr)
{
    struct cur c = {.p = out->buf + hdr, .end = out->buf + out->len};
    size_t tlen;
    const uint8_t *t;

    out->type = out->buf[0] >> 4;
    out->flags = out->buf[0] & 0x0f;
    switch (out->type) {
    case E2E_CONNACK:
        out->session_present = (cur_u8(&c) & 1) != 0;
        out->reason = cur_u8(&c);
        parse_props(&c, out);
        break;
    case E2E_PUBLISH:
        out->qos = (out->flags >> 1) & 3;
        out->retain = (out->flags & 1) != 0;
        out->dup = (out->flags & 8) != 0;
        cr_assert(out->qos < 3, "PUBLISH with QoS 3");
        t = cur_lp(&c, &tlen);
        out->topic = xcalloc(1, tlen + 1);
        memcpy(out->topic, t, tlen);
        if (out->qos > 0) {
            out->pkt_id = cur_u16(&c);
            cr_assert(out->pkt_id != 0, "PUBLISH with packet id 0");
        }
        parse_props(&c, out);
        out->payload = c.p;
        out->payload_len = (size_t)(c.end - c.p);
        c.p = c.end;
        break;
    case E2E_PUBACK:
    case E2E_PUBREC:
    case E2E_PUBREL:
    case E2E_PUBCOMP:
        out->pkt_id = cur_u16(&c);
        if (c.p < c.end) {
            out->reason = cur_u8(&c);
        }
        if (c.p < c.end) {
            parse_props(&c, out);
        }
        break;
    case E2E_SUBACK:
    case E2E_UNSUBACK:
        out->pkt_id = cur_u16(&c);
        parse_props(&c, out);
        while (c.p < c.end) {
            cr_assert_lt(out->nreasons, E2E_PKT_REASONS_MAX);
            out->reasons[out->nreasons++] = cur_u8(&c);
        }
        break;
    case E2E_PINGRESP:
        break;
    case E2E_DISCONNECT:
    case E2E_AUTH:
        if (c.p < c.end) {
            out->reason = cur_u8(&c);
        }
        if (c.p < c.end) {
            parse_props(&c, out);
        }
        break;
    default:
        cr_assert_fail("broker sent packet type %u", out->type);
    }
    cr_assert(c.p == c.end, "%zu trailing bytes in a packet of type %u", (size_t)(c.end - c.p),
              out->type);
}

bool e2e_raw_read5(int fd, struct e2e_v5pkt *out, int timeout_ms)
{
    int64_t deadline = e2e_now_ms() + timeout_ms;
    uint8_t hdr[5];
    size_t n = 1;
    uint32_t rem = 0;
    uint32_t mult = 1;
    int64_t left;

    memset(out, 0, sizeof(*out));
    if (e2e_raw_recv(fd, hdr, 1, timeout_ms) != 1) {
        return false;
    }
    for (;;) {
        left = deadline - e2e_now_ms();
        cr_assert(n < 5, "remaining length over 4 bytes");
        cr_assert(e2e_raw_recv(fd, hdr + n, 1, left > 0 ? (int)left : 1) == 1,
                  "packet header cut short");
        rem += (uint32_t)(hdr[n] & 0x7f) * mult;
        mult *= 128;
        if ((hdr[n++] & 0x80) == 0) {
            break;
        }
    }
    out->len = n + rem;
    out->buf = xcalloc(1, out->len + 1);
    memcpy(out->buf, hdr, n);
    left = deadline - e2e_now_ms();
    /* The body of a packet whose header arrived must follow promptly. */
    if (left < E2E_WAIT_MS) {
        left = E2E_WAIT_MS;
    }
    cr_assert(e2e_raw_recv(fd, out->buf + n, rem, (int)left) == rem,
              "packet body cut short (type 0x%02x, %u bytes)", hdr[0], rem);
    parse5(out, n);
    return true;
}

void e2e_raw_expect5(int fd, uint8_t type, struct e2e_v5pkt *out)
{
    bool got = e2e_raw_read5(fd, out, E2E_WAIT_MS);

    cr_assert(got, "expected packet type %u, got nothing (timeout or close) within %d ms", type,
              E2E_WAIT_MS);
    if (out->type != type) {
        char h[800];

        hex(out->buf, out->len < 64 ? out->len : 64, h, sizeof(h));
        cr_assert_fail("expected packet type %u, got type %u reason 0x%02x [%s]", type, out->type,
                       out->reason, h);
    }
}

const struct e2e_prop *e2e_v5pkt_prop(const struct e2e_v5pkt *p, uint8_t id)
{
    for (size_t i = 0; i < p->nprops; i++) {
        if (p->props[i].id == id) {
            return &p->props[i];
        }
    }
    return NULL;
}

size_t e2e_v5pkt_prop_count(const struct e2e_v5pkt *p, uint8_t id)
{
    size_t n = 0;

    for (size_t i = 0; i < p->nprops; i++) {
        n += p->props[i].id == id;
    }
    return n;
}

bool e2e_prop_eq(const struct e2e_prop *pr, const void *s, size_t len)
{
    return pr != NULL && pr->len == len && (len == 0 || memcmp(pr->data, s, len) == 0);
}

bool e2e_prop_streq(const struct e2e_prop *pr, const char *s)
{
    return e2e_prop_eq(pr, s, strlen(s));
}

void e2e_raw_expect_disconnect5(int fd, uint8_t reason)
{
    struct e2e_v5pkt d;

    e2e_raw_expect5(fd, E2E_DISCONNECT, &d);
    cr_assert_eq(d.reason, reason, "DISCONNECT reason 0x%02x, expected 0x%02x", d.reason, reason);
    cr_assert_null(e2e_v5pkt_prop(&d, MQTT_PROP_SESSION_EXPIRY_INTERVAL),
                   "server DISCONNECT with a Session Expiry Interval [MQTT-3.14.2-2]");
    e2e_v5pkt_free(&d);
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL),
              "connection not closed after DISCONNECT [MQTT-3.14.4-2]");
    e2e_raw_close(fd);
}

void e2e_raw_expect_disconnect5_or_mosquitto_close(int fd, uint8_t reason)
{
    struct e2e_v5pkt d;

    if (!e2e_mosquitto_mode()) {
        e2e_raw_expect_disconnect5(fd, reason);
        return;
    }
    if (e2e_raw_read5(fd, &d, E2E_WAIT_MS)) {
        cr_assert_eq(d.type, E2E_DISCONNECT, "packet type %u instead of DISCONNECT", d.type);
        cr_assert_eq(d.reason, reason, "DISCONNECT reason 0x%02x, expected 0x%02x", d.reason,
                     reason);
        e2e_v5pkt_free(&d);
    }
    cr_assert(e2e_raw_wait_closed(fd, E2E_WAIT_MS, NULL), "connection not closed");
    e2e_raw_close(fd);
}

int e2e_raw_connect5(const struct e2e_broker *b, const struct e2e_connect_opts *o,
                     struct e2e_v5pkt *connack)
{
    struct e2e_connect_opts v5 = *o;
    struct e2e_pkt p;
    int fd = e2e_raw_open(b);

    v5.version = E2E_V5;
    e2e_pkt_connect(&p, &v5);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_CONNACK, connack);
    return fd;
}

int e2e_raw_connect5_ok(const struct e2e_broker *b, const char *id, bool clean_start,
                        uint32_t session_expiry, const struct e2e_props *props)
{
    struct e2e_props pr = {.len = 0};
    struct e2e_connect_opts o = {.version = E2E_V5, .id = id, .clean = clean_start};
    struct e2e_v5pkt ack;
    int fd;

    if (session_expiry > 0) {
        e2e_props_u32(&pr, MQTT_PROP_SESSION_EXPIRY_INTERVAL, session_expiry);
    }
    if (props != NULL) {
        props_bytes(&pr, props->buf, props->len);
    }
    o.props = &pr;
    fd = e2e_raw_connect5(b, &o, &ack);
    cr_assert_eq(ack.reason, 0, "CONNACK reason 0x%02x for %s", ack.reason, id);
    e2e_v5pkt_free(&ack);
    return fd;
}

uint8_t e2e_raw_subscribe5(int fd, uint16_t pkt_id, const char *filter, uint8_t options,
                           const struct e2e_props *props)
{
    const char *filters[1] = {filter};
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    uint8_t rc;

    e2e_pkt_subscribe5(&p, pkt_id, props, 1, filters, &options);
    e2e_raw_send_pkt(fd, &p);
    e2e_raw_expect5(fd, E2E_SUBACK, &ack);
    cr_assert_eq(ack.pkt_id, pkt_id, "SUBACK packet id [MQTT-3.8.4-2]");
    cr_assert_eq(ack.nreasons, 1, "SUBACK with %zu reason codes for 1 filter [MQTT-3.8.4-6]",
                 ack.nreasons);
    rc = ack.reasons[0];
    e2e_v5pkt_free(&ack);
    return rc;
}

void e2e_raw_ping5(int fd)
{
    struct e2e_v5pkt r;

    cr_assert(e2e_raw_send(fd, "\xc0\x00", 2), "send PINGREQ");
    e2e_raw_expect5(fd, E2E_PINGRESP, &r);
    e2e_v5pkt_free(&r);
}

uint8_t e2e_raw_publish5(int fd, const char *topic, uint8_t qos, bool retain, uint16_t pkt_id,
                         const struct e2e_props *props, const void *payload, size_t len)
{
    struct e2e_v5pkt ack;
    struct e2e_pkt p;
    uint8_t rc = 0;

    e2e_pkt_publish5(&p, topic, qos, retain, false, pkt_id, props, payload, len);
    e2e_raw_send_pkt(fd, &p);
    if (qos == 0) {
        e2e_raw_ping5(fd);
        return 0;
    }
    e2e_raw_expect5(fd, qos == 1 ? E2E_PUBACK : E2E_PUBREC, &ack);
    cr_assert_eq(ack.pkt_id, pkt_id);
    rc = ack.reason;
    e2e_v5pkt_free(&ack);
    if (qos == 2 && rc < 0x80) {
        e2e_pkt_ack(&p, 0x62, pkt_id);
        e2e_raw_send_pkt(fd, &p);
        e2e_raw_expect5(fd, E2E_PUBCOMP, &ack);
        cr_assert_eq(ack.pkt_id, pkt_id);
        e2e_v5pkt_free(&ack);
    }
    return rc;
}

void e2e_raw_disconnect5(int fd)
{
    e2e_raw_send(fd, "\xe0\x00", 2);
    e2e_raw_close(fd);
}

/* ------------------------------------------------- runner-side report hooks */

/*
 * These run in the Criterion runner process (the tests' parent). The test
 * process named its temp dir after the runner's pid, the suite and the test,
 * so here we find it, print the broker log if the test failed, and remove it.
 */
static void rm_tree_files(const char *dir)
{
    char pattern[512];
    glob_t g;
    size_t i;

    snprintf(pattern, sizeof(pattern), "%s/*", dir);
    if (glob(pattern, 0, NULL, &g) == 0) {
        for (i = 0; i < g.gl_pathc; i++) {
            unlink(g.gl_pathv[i]);
        }
        globfree(&g);
    }
    rmdir(dir);
}

static void finish_test_dirs(struct criterion_test_stats *st)
{
    char pattern[512];
    glob_t g;
    size_t i;
    bool failed = st->test_status == CR_STATUS_FAILED || st->crashed || st->timed_out;
    const char *keep = getenv("RINGMQ_E2E_KEEP");
    char log[600];

    snprintf(pattern, sizeof(pattern), DIR_PREFIX "%d-%s-%s-??????", (int)getpid(),
             st->test->category, st->test->name);
    if (glob(pattern, 0, NULL, &g) != 0) {
        return;
    }
    for (i = 0; i < g.gl_pathc; i++) {
        if (failed) {
            fprintf(stderr, "[e2e] %s::%s failed; broker dir %s\n", st->test->category,
                    st->test->name, g.gl_pathv[i]);
            snprintf(log, sizeof(log), "%s/broker.log", g.gl_pathv[i]);
            dump_log_file(log);
        }
        if (keep == NULL || strcmp(keep, "1") != 0) {
            rm_tree_files(g.gl_pathv[i]);
        }
    }
    globfree(&g);
}

ReportHook(POST_FINI)(struct criterion_test_stats *st)
{
    finish_test_dirs(st);
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *st)
{
    finish_test_dirs(st);
}
