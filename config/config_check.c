/*
 * config_check.c - rules that relate several keys or sections.
 *
 * Runs once after the whole file is parsed, over d->cfg. Each rule names
 * the line that set the offending key, so the message points where the fix
 * goes. Start-up thread only.
 */
#include "config/config_check.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "config/config_diag.h"
#include "config/config_keys.h"
#include "config/pwfile.h"
#include "core/rm_assert.h"

/* A listener's address in binary form, for comparing "::1" with "0::1". */
struct addr {
    int family;
    unsigned char bytes[sizeof(struct in6_addr)];
};

static size_t key_index(enum config__scope scope, const char *name)
{
    size_t count;
    size_t i = config_keys__index(scope, name);

    config_keys__table(&count);
    RM_ASSERT(i < count); /* the rules below name keys of the table */
    return i;
}

static int check_limits(const struct config__draft *d, struct config_diag *diag)
{
    const struct limits *lim = &d->cfg.limits;
    size_t out = key_index(CONFIG__SCOPE_LIMITS, "output_bytes_max");
    size_t pkt = key_index(CONFIG__SCOPE_LIMITS, "packet_bytes_max");
    unsigned out_line = d->key_line[out];
    unsigned pkt_line = d->key_line[pkt];
    int rc = 0;

    if (lim->output_bytes_max < lim->packet_bytes_max) {
        /* The defaults pass, so at least one of the two was set in the file. */
        RM_ASSERT(out_line != 0 || pkt_line != 0);
        if (out_line >= pkt_line) {
            config_diag__fail(diag, out_line,
                              "[limits] output_bytes_max: must be at least packet_bytes_max (%u), "
                              "got %u",
                              lim->packet_bytes_max, lim->output_bytes_max);
        } else {
            config_diag__fail(diag, pkt_line,
                              "[limits] packet_bytes_max: must be at most output_bytes_max (%u), "
                              "got %u",
                              lim->output_bytes_max, lim->packet_bytes_max);
        }
        rc = -1;
    }
    return rc;
}

static void addr_parse(const char *s, struct addr *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(AF_INET, s, a->bytes) == 1) {
        a->family = AF_INET;
    } else {
        /* Parsing already accepted @s as one or the other. */
        RM_ASSERT(inet_pton(AF_INET6, s, a->bytes) == 1);
        a->family = AF_INET6;
    }
}

/* The first listener before @j on the same address and port as @j, or @j. */
static uint32_t listener_clash(const struct config *cfg, uint32_t j)
{
    const struct config_listener *lj = &cfg->listeners[j];
    struct addr a;
    struct addr b;
    uint32_t i;

    RM_ASSERT(j < cfg->listener_count);
    addr_parse(lj->bind, &b);
    for (i = 0; i < j; i++) {
        const struct config_listener *li = &cfg->listeners[i];

        addr_parse(li->bind, &a);
        if (li->port == lj->port && a.family == b.family &&
            memcmp(a.bytes, b.bytes, sizeof(a.bytes)) == 0) {
            break;
        }
    }
    return i;
}

static int check_listeners(const struct config__draft *d, struct config_diag *diag)
{
    const struct config *cfg = &d->cfg;
    size_t bind = key_index(CONFIG__SCOPE_LISTENER, "bind");
    size_t port = key_index(CONFIG__SCOPE_LISTENER, "port");
    uint32_t i = 0;
    uint32_t j;
    int rc = -1;

    if (cfg->listener_count == 0) {
        config_diag__fail(diag, 0, "no listener");
        goto out;
    }
    RM_ASSERT(cfg->listener_count <= CONFIG_LISTENERS_MAX);
    for (j = 1; j < cfg->listener_count; j++) {
        /* Port 0 asks the kernel for a fresh port each time: never a clash. */
        if (cfg->listeners[j].port != 0) {
            i = listener_clash(cfg, j);
            if (i < j) {
                break;
            }
        }
    }
    if (j < cfg->listener_count) {
        const struct config_listener *lj = &cfg->listeners[j];
        unsigned bind_line = d->listener_key_line[j][bind];
        unsigned port_line = d->listener_key_line[j][port];
        unsigned line = d->listener_line[j];
        const char *key = "";
        bool v6 = strchr(lj->bind, ':') != NULL;

        if (bind_line != 0 || port_line != 0) {
            line = bind_line > port_line ? bind_line : port_line;
            key = bind_line > port_line ? " bind" : " port";
        }
        config_diag__fail(diag, line,
                          "[listener.%s]%s: %s%s%s:%u is already used by [listener.%s] (line %u)",
                          lj->name, key, v6 ? "[" : "", lj->bind, v6 ? "]" : "", lj->port,
                          cfg->listeners[i].name, d->listener_line[i]);
        goto out;
    }
    rc = 0;
out:
    return rc;
}

/* Bytes of a file read to tell whether it is PEM at all. */
#define PEM_SNIFF_BYTES 4096u

/* The line of listener @j's @key, or its header's line when the key is a default. */
static unsigned listener_key_line(const struct config__draft *d, uint32_t j, const char *key)
{
    unsigned line = d->listener_key_line[j][key_index(CONFIG__SCOPE_LISTENER, key)];

    return line != 0 ? line : d->listener_line[j];
}

/*
 * A PEM file that TLS will load at start-up: it must open, and hold at
 * least one "-----BEGIN " block. 0, or -1 after config_diag__fail().
 */
static int check_pem(const struct config__draft *d, struct config_diag *diag, uint32_t j,
                     const char *key, const char *path)
{
    const struct config_listener *l = &d->cfg.listeners[j];
    char buf[PEM_SNIFF_BYTES + 1];
    unsigned line = listener_key_line(d, j, key);
    size_t n;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        config_diag__fail(diag, line, "[listener.%s] %s: cannot read '%s': %s", l->name, key, path,
                          strerror(errno));
        return -1;
    }
    n = fread(buf, 1, PEM_SNIFF_BYTES, f);
    fclose(f);
    buf[n] = '\0';
    if (strstr(buf, "-----BEGIN ") == NULL) {
        config_diag__fail(diag, line, "[listener.%s] %s: '%s' is not a PEM file", l->name, key,
                          path);
        return -1;
    }
    return 0;
}

/*
 * The TLS key of listener @l that was given a value other than its default
 * although certfile is empty (TLS off), or NULL. Defaults are harmless, so
 * the shipped file can list every key.
 */
static const char *tls_key_without_cert(const struct config_listener *l)
{
    if (l->keyfile[0] != '\0') {
        return "keyfile";
    }
    if (l->cafile[0] != '\0') {
        return "cafile";
    }
    if (l->capath[0] != '\0') {
        return "capath";
    }
    if (l->require_certificate) {
        return "require_certificate";
    }
    if (l->use_identity_as_username) {
        return "use_identity_as_username";
    }
    if (l->tls_version != CONFIG_TLS_12) {
        return "tls_version";
    }
    if (l->ciphers[0] != '\0') {
        return "ciphers";
    }
    if (l->ciphers_tls13[0] != '\0') {
        return "ciphers_tls1.3";
    }
    return NULL;
}

static int check_listener_tls(const struct config__draft *d, struct config_diag *diag, uint32_t j)
{
    const struct config_listener *l = &d->cfg.listeners[j];
    const char *key;
    DIR *dir;

    if (!config_listener_tls(l)) {
        key = tls_key_without_cert(l);
        if (key != NULL) {
            config_diag__fail(diag, listener_key_line(d, j, key),
                              "[listener.%s] %s: needs certfile (TLS is off without it)", l->name,
                              key);
            return -1;
        }
        return 0;
    }
    if (check_pem(d, diag, j, "certfile", l->certfile) < 0 ||
        (l->keyfile[0] != '\0' && check_pem(d, diag, j, "keyfile", l->keyfile) < 0) ||
        (l->cafile[0] != '\0' && check_pem(d, diag, j, "cafile", l->cafile) < 0)) {
        return -1;
    }
    if (l->capath[0] != '\0') {
        dir = opendir(l->capath);
        if (dir == NULL) {
            config_diag__fail(diag, listener_key_line(d, j, "capath"),
                              "[listener.%s] capath: cannot open directory '%s': %s", l->name,
                              l->capath, strerror(errno));
            return -1;
        }
        closedir(dir);
    }
    if (l->require_certificate && l->cafile[0] == '\0' && l->capath[0] == '\0') {
        config_diag__fail(diag, listener_key_line(d, j, "require_certificate"),
                          "[listener.%s] require_certificate: needs cafile or capath to verify "
                          "client certificates with",
                          l->name);
        return -1;
    }
    if (l->use_identity_as_username && !l->require_certificate) {
        config_diag__fail(
            diag, listener_key_line(d, j, "use_identity_as_username"),
            "[listener.%s] use_identity_as_username: needs require_certificate = true", l->name);
        return -1;
    }
    return 0;
}

static int check_listener_ws(const struct config__draft *d, struct config_diag *diag, uint32_t j)
{
    const struct config_listener *l = &d->cfg.listeners[j];
    unsigned line = listener_key_line(d, j, "ws_path");
    const char *p;

    if (l->protocol != CONFIG_PROTO_WEBSOCKETS) {
        if (strcmp(l->ws_path, CONFIG_WS_PATH_DEFAULT) != 0) {
            config_diag__fail(diag, line, "[listener.%s] ws_path: needs protocol = websockets",
                              l->name);
            return -1;
        }
        return 0;
    }
    if (l->ws_path[0] != '/') {
        config_diag__fail(diag, line, "[listener.%s] ws_path: must start with '/', got '%s'",
                          l->name, l->ws_path);
        return -1;
    }
    for (p = l->ws_path; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;

        if (ch <= ' ' || ch == '?' || ch == '#' || ch >= 0x7f) {
            config_diag__fail(diag, line,
                              "[listener.%s] ws_path: printable ASCII only, no spaces, '?' or '#'",
                              l->name);
            return -1;
        }
    }
    return 0;
}

/*
 * Where listener @j's value of auth key @key came from: its own line, or
 * [auth]'s (0 when neither set it), and that section's name into @sec.
 */
static unsigned auth_key_line(const struct config__draft *d, uint32_t j, const char *key,
                              char *sec, size_t sec_len)
{
    unsigned line = d->listener_key_line[j][key_index(CONFIG__SCOPE_LISTENER, key)];

    if (line != 0) {
        snprintf(sec, sec_len, "listener.%s", d->cfg.listeners[j].name);
        return line;
    }
    snprintf(sec, sec_len, "auth");
    return d->key_line[key_index(CONFIG__SCOPE_AUTH, key)];
}

/* True when listener @j's @path was already checked for an earlier listener. */
static bool auth_path_seen(const struct config *cfg, uint32_t j, size_t offset)
{
    const char *path = (const char *)&cfg->listeners[j] + offset;

    for (uint32_t i = 0; i < j; i++) {
        if (strcmp((const char *)&cfg->listeners[i] + offset, path) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * Listener @j's password file must load, so --test-config and a reload
 * report its lines as FILE:LINE: problem; its ACL file must be readable
 * (the loader reads it).
 */
static int check_listener_auth(const struct config__draft *d, struct config_diag *diag,
                               uint32_t j)
{
    const struct config_listener *l = &d->cfg.listeners[j];
    char sec[CONFIG_NAME_MAX + 16];
    struct pwdb *db;
    unsigned line;
    int sys_errno;
    int rc = 0;
    FILE *f;

    if (l->password_file[0] != '\0' &&
        !auth_path_seen(&d->cfg, j, offsetof(struct config_listener, password_file))) {
        /* Every line in error, one per line (pwfile_load() reads on past each). */
        char *err = malloc(CONFIG_ERRS_MAX);

        db = err != NULL ? pwfile_load(l->password_file, err, CONFIG_ERRS_MAX, &sys_errno) : NULL;
        if (db == NULL) {
            line = auth_key_line(d, j, "password_file", sec, sizeof(sec));
            if (err == NULL) {
                config_diag__fail(diag, line, "[%s] password_file: out of memory", sec);
            } else if (sys_errno != 0) {
                config_diag__fail(diag, line, "[%s] password_file: cannot read '%s': %s", sec,
                                  l->password_file, strerror(sys_errno));
            } else {
                config_diag__fail_raw(diag, err);
            }
            rc = -1;
        }
        pwfile_free(db);
        free(err);
    }
    if (l->acl_file[0] != '\0' &&
        !auth_path_seen(&d->cfg, j, offsetof(struct config_listener, acl_file))) {
        f = fopen(l->acl_file, "re");
        sys_errno = f == NULL ? errno : 0;
        if (f != NULL && (getc(f), ferror(f))) {
            sys_errno = errno; /* a directory opens, then fails with EISDIR */
        }
        if (f != NULL) {
            fclose(f);
        }
        if (sys_errno != 0) {
            line = auth_key_line(d, j, "acl_file", sec, sizeof(sec));
            config_diag__fail(diag, line, "[%s] acl_file: cannot read '%s': %s", sec, l->acl_file,
                              strerror(sys_errno));
            rc = -1;
        }
        /* Its lines are read once, by the loader (config.c), into the snapshot. */
    }
    return rc;
}

/*
 * [broker] log_dest: one of its three forms, and a file the broker can
 * append to (an existing one writable, or a new one's directory), so that
 * --test-config says so rather than the start-up.
 */
static int check_log_dest(const struct config__draft *d, struct config_diag *diag)
{
    unsigned line = d->key_line[key_index(CONFIG__SCOPE_BROKER, "log_dest")];
    char dir[CONFIG_LOG_DEST_MAX];
    const char *path;
    const char *slash;
    int dest = config_log_dest_parse(d->cfg.log_dest, &path);

    if (dest < 0) {
        config_diag__fail(diag, line,
                          "[broker] log_dest: expected stderr, syslog or file PATH, got \"%s\"",
                          d->cfg.log_dest);
        return -1;
    }
    if (dest != CONFIG_LOG_FILE) {
        return 0;
    }
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) < 0) {
            goto out_fail;
        }
        return 0;
    }
    slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    }
    if (access(dir, W_OK | X_OK) == 0) {
        return 0;
    }
out_fail:
    config_diag__fail(diag, line, "[broker] log_dest: cannot write '%s': %s", path,
                      strerror(errno));
    return -1;
}

/* [metrics]: bind, when set (the endpoint is off until it is), is a numeric address. */
static int check_metrics(const struct config__draft *d, struct config_diag *diag)
{
    unsigned bind_line = d->key_line[key_index(CONFIG__SCOPE_METRICS, "bind")];
    const char *bind = d->cfg.metrics_bind;
    unsigned char buf[sizeof(struct in6_addr)];
    char esc[4 * CONFIG_NAME_MAX];

    if (bind[0] != '\0' && inet_pton(AF_INET, bind, buf) != 1 &&
        inet_pton(AF_INET6, bind, buf) != 1) {
        config_diag__fail(diag, bind_line,
                          "[metrics] bind: expected a numeric IPv4 or IPv6 address, got '%s'",
                          config_diag__esc(esc, sizeof(esc), bind, strlen(bind)));
        return -1;
    }
    return 0;
}

/* [admin] socket: a path that fits a sockaddr_un. */
static int check_admin(const struct config__draft *d, struct config_diag *diag)
{
    unsigned line = d->key_line[key_index(CONFIG__SCOPE_ADMIN, "socket")];
    size_t len = strlen(d->cfg.admin_socket);

    if (len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        config_diag__fail(diag, line, "[admin] socket: path too long for a socket (%zu bytes, "
                                      "at most %zu)",
                          len, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return -1;
    }
    return 0;
}

int config_check__run(const struct config__draft *d, struct config_diag *diag)
{
    uint32_t i;
    int rc;

    RM_ASSERT(d != NULL && diag != NULL);
    RM_ASSERT(d->cfg.listener_count <= CONFIG_LISTENERS_MAX);
    /* Every rule runs, whatever the others found: one load lists every problem. */
    rc = check_limits(d, diag);
    rc |= check_log_dest(d, diag);
    rc |= check_metrics(d, diag);
    rc |= check_admin(d, diag);
    rc |= check_listeners(d, diag);
    for (i = 0; i < d->cfg.listener_count; i++) {
        rc |= check_listener_ws(d, diag, i);
        rc |= check_listener_tls(d, diag, i);
        rc |= check_listener_auth(d, diag, i);
    }
    RM_ASSERT(rc == 0 || diag->failed);
    return rc == 0 ? 0 : -1;
}
