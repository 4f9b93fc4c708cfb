/*
 * config_keys.c - the key table, the sections, value parsing and defaults.
 *
 * keys[] below is the single list of configuration keys: section, name,
 * type, range, default, and where the value lands in struct config. Defaults
 * are written as they would be in the file and go through the same parser,
 * so a default is always a valid value. Calls only config_diag (to escape a
 * bad value for its message); the checks and the loader call down into it.
 * Start-up thread only (the table itself is read-only).
 */
#include "config/config_keys.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "config/config_diag.h"
#include "core/rm_assert.h"

#define DEFAULT_LISTENER_NAME "default"
/* Unknown keys within this edit distance of a known one get a suggestion. */
#define SUGGEST_DISTANCE_MAX 2
/* Names longer than this are never close to a key (and keep the DP row small). */
#define SUGGEST_NAME_MAX 64

static const char *const log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const char *const protocol_names[] = {"mqtt", "websockets", NULL};
static const char *const tls_version_names[] = {"tlsv1.2", "tlsv1.3", NULL};
static const char *const fsync_names[] = {"always", "interval", "off", NULL};
static const char *const admin_mode_names[] = {"0600", "0660", NULL};

/* The sections with a fixed name ([listener.NAME] is handled apart by the loader). */
static const struct {
    const char *name;
    enum config__scope scope;
} sections[] = {
    {"broker", CONFIG__SCOPE_BROKER},
    {"limits", CONFIG__SCOPE_LIMITS},
    {"mqtt", CONFIG__SCOPE_MQTT},
    {"auth", CONFIG__SCOPE_AUTH},
    {"persistence", CONFIG__SCOPE_PERSISTENCE},
    {"metrics", CONFIG__SCOPE_METRICS},
    {"admin", CONFIG__SCOPE_ADMIN},
};

#define G(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)
#define LIM(field) G(limits.field)
#define L(field)                                                                                   \
    offsetof(struct config_listener, field), sizeof(((struct config_listener *)0)->field)

/* clang-format off */
static const struct config__key keys[] = {
    {CONFIG__SCOPE_BROKER, "log_level", CONFIG__ENUM, 0, 3, "info", G(log_level),
     log_level_names, "least severe message logged: error, warn, info or debug", CONFIG__LIVE},
    {CONFIG__SCOPE_BROKER, "log_format", CONFIG__ENUM, 0, 1, "text", G(log_format),
     log_format_names, "text, or json: one object per line (ts, level, shard, client_id, addr, "
     "msg)", CONFIG__LIVE},
    {CONFIG__SCOPE_BROKER, "log_dest", CONFIG__STRING, 0, 0, "stderr", G(log_dest), NULL,
     "stderr, syslog, or file PATH (appended to; reopened on SIGHUP, for logrotate)",
     CONFIG__RESTART},
    {CONFIG__SCOPE_BROKER, "shards", CONFIG__AUTO_UINT, 1, 256, "auto", G(shards), NULL,
     "event-loop threads, one per core; auto = one per online CPU", CONFIG__RESTART},
    {CONFIG__SCOPE_BROKER, "pin_shards", CONFIG__BOOL, 0, 1, "false", G(pin_shards), NULL,
     "pin shard i to the i-th CPU: only where ringmq has those cores to itself", CONFIG__RESTART},
    {CONFIG__SCOPE_BROKER, "hosts", CONFIG__STRING, 0, 0, "", G(hosts_text), NULL,
     "virtual hosts, comma-separated: user@HOST belongs to HOST's own topics and sessions",
     CONFIG__RESTART},
    {CONFIG__SCOPE_BROKER, "sys_interval", CONFIG__SECONDS, 0, 86400, "10", G(sys_interval_s),
     NULL, "seconds between updates of the $SYS/broker/... topics; 0 = none", CONFIG__RESTART},

    {CONFIG__SCOPE_PERSISTENCE, "enabled", CONFIG__BOOL, 0, 1, "false", G(wal.enabled), NULL,
     "write-ahead log: acknowledged messages, retained messages and sessions survive a crash",
     CONFIG__RESTART},
    {CONFIG__SCOPE_PERSISTENCE, "dir", CONFIG__STRING, 0, 0, "/var/lib/ringmq", G(wal.dir), NULL,
     "directory of the log's segments (one stream per shard) and its lock file",
     CONFIG__RESTART},
    {CONFIG__SCOPE_PERSISTENCE, "fsync", CONFIG__ENUM, 0, 2, "always", G(wal.fsync), fsync_names,
     "always: acknowledge only what is on disk; interval: sync every fsync_interval_ms; off",
     CONFIG__RESTART},
    {CONFIG__SCOPE_PERSISTENCE, "fsync_interval_ms", CONFIG__UINT, 1, 60000, "1000",
     G(wal.fsync_interval_ms), NULL, "with fsync = interval: the longest a write waits for a sync",
     CONFIG__RESTART},
    {CONFIG__SCOPE_PERSISTENCE, "segment_mb", CONFIG__UINT, 1, 4096, "64", G(wal.segment_mb),
     NULL, "a segment file is closed and a new one started past this size", CONFIG__RESTART},
    {CONFIG__SCOPE_PERSISTENCE, "compact_ratio", CONFIG__UINT, 2, 1000, "4",
     G(wal.compact_ratio), NULL,
     "compact a shard's log once it is this many times the size of its live state",
     CONFIG__RESTART},

    {CONFIG__SCOPE_LIMITS, "packet_bytes_max", CONFIG__SIZE, 2, 268435460, "1m",
     LIM(packet_bytes_max), NULL,
     "largest packet accepted, fixed header included; bigger ones close the connection",
     CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "client_id_bytes_max", CONFIG__SIZE, 1, 65535, "1024",
     LIM(client_id_bytes_max), NULL, "longest client id accepted in CONNECT", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "topic_bytes_max", CONFIG__SIZE, 1, 65535, "65535",
     LIM(topic_bytes_max), NULL, "longest topic name or filter", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "topic_levels_max", CONFIG__UINT, 1, 65535, "128",
     LIM(topic_levels_max), NULL, "most '/'-separated levels in a topic name or filter",
     CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "subs_per_client_max", CONFIG__UINT, 1, 10000000, "10000",
     LIM(subs_per_client_max), NULL, "most subscriptions one session may hold", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "inflight_max", CONFIG__UINT, 1, 65535, "20",
     LIM(inflight_max), NULL, "outgoing QoS 1/2 messages awaiting acknowledgement, per session",
     CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "inflight_in_max", CONFIG__UINT, 1, 65535, "1024",
     LIM(inflight_in_max), NULL, "incoming QoS 2 messages awaiting PUBREL, per session",
     CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "queued_max", CONFIG__UINT, 0, 10000000, "1000",
     LIM(queued_max), NULL,
     "messages queued per session while offline or over inflight_max", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "queued_bytes_max", CONFIG__SIZE, 0, UINT32_MAX, "64m",
     LIM(queued_bytes_max), NULL,
     "payload bytes of the messages queued per session (mosquitto's max_queued_bytes); "
     "0 = only queued_max bounds them", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "output_bytes_max", CONFIG__SIZE, 2, UINT32_MAX, "8m",
     LIM(output_bytes_max), NULL,
     "pending output per connection before QoS 0 messages are shed", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "slow_reader_grace", CONFIG__SECONDS, 0, 3600, "30",
     LIM(slow_reader_grace_s), NULL,
     "a client that messages keep being dropped for (output or queue full) this long is "
     "closed; 0 = never", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "retained_max", CONFIG__UINT, 0, 100000000, "1000000",
     LIM(retained_max), NULL, "retained messages held by the broker", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "connect_timeout_ms", CONFIG__DURATION, 100, 3600000, "10000",
     LIM(connect_timeout_ms), NULL, "time from accept to a complete CONNECT", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "connections_max", CONFIG__UINT, 1, 10000000, "100000",
     LIM(connections_max), NULL, "open client connections, all listeners and shards together",
     CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "connections_per_address_max", CONFIG__UINT, 0, 10000000, "0",
     LIM(connections_per_address_max), NULL,
     "open connections from one source IP address; 0 = no limit", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "accept_rate_max", CONFIG__UINT, 0, 10000000, "10000",
     LIM(accept_rate_max), NULL,
     "new connections admitted per second, whole process (bursts up to a second's worth); "
     "0 = no limit", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "memory_max", CONFIG__AUTO_SIZE, 0, CONFIG__MEMORY_MAX, "auto",
     LIM(memory_max), NULL,
     "memory budget (resident set): near it, new connections are refused and QoS 0 publishes "
     "shed; auto = half of RAM (or of the cgroup limit); 0 = off", CONFIG__RESTART},
    {CONFIG__SCOPE_LIMITS, "allow_zero_length_client_id", CONFIG__BOOL, 0, 1, "true",
     LIM(allow_zero_length_client_id), NULL,
     "accept an empty client id (the broker assigns one) with clean session", CONFIG__RESTART},

    {CONFIG__SCOPE_MQTT, "max_qos", CONFIG__UINT, 0, 2, "2", LIM(max_qos), NULL,
     "highest QoS accepted in PUBLISH and granted in SUBACK (CONNACK Maximum QoS)",
     CONFIG__RESTART},
    {CONFIG__SCOPE_MQTT, "retain_available", CONFIG__BOOL, 0, 1, "true",
     LIM(retain_available), NULL, "accept retained messages (CONNACK Retain Available)",
     CONFIG__RESTART},
    {CONFIG__SCOPE_MQTT, "wildcard_subscriptions", CONFIG__BOOL, 0, 1, "true",
     LIM(wildcard_subscriptions), NULL,
     "accept + and # in topic filters (CONNACK Wildcard Subscription Available)", CONFIG__RESTART},
    {CONFIG__SCOPE_MQTT, "subscription_identifiers", CONFIG__BOOL, 0, 1, "true",
     LIM(subscription_identifiers), NULL,
     "accept Subscription Identifiers in SUBSCRIBE (CONNACK Subscription Identifiers "
     "Available)", CONFIG__RESTART},
    {CONFIG__SCOPE_MQTT, "shared_subscriptions", CONFIG__BOOL, 0, 1, "true",
     LIM(shared_subscriptions), NULL,
     "accept $share/GROUP/FILTER subscriptions (CONNACK Shared Subscription Available)",
     CONFIG__RESTART},
    {CONFIG__SCOPE_MQTT, "topic_alias_max", CONFIG__UINT, 0, 65535, "10", LIM(topic_alias_max),
     NULL, "topic aliases a client may set per connection; 0 = none (CONNACK Topic Alias Maximum)",
     CONFIG__RESTART},
    {CONFIG__SCOPE_MQTT, "keepalive_max", CONFIG__SECONDS, 0, 65535, "0", LIM(keepalive_max_s),
     NULL,
     "longest keep alive allowed (mosquitto's max_keepalive); 0 = the client's stands "
     "(v5: CONNACK Server Keep Alive; 3.1.1 asking more: refused)", CONFIG__RESTART},

    {CONFIG__SCOPE_AUTH, "allow_anonymous", CONFIG__AUTO_BOOL, 0, 1, "auto",
     G(auth.allow_anonymous), NULL,
     "accept clients without a user name; auto = off where a password_file applies, else on",
     CONFIG__LIVE},
    {CONFIG__SCOPE_AUTH, "password_file", CONFIG__STRING, 0, 0, "", G(auth.password_file), NULL,
     "mosquitto-format password file (ringmq-passwd or mosquitto_passwd makes one)", CONFIG__LIVE},
    {CONFIG__SCOPE_AUTH, "acl_file", CONFIG__STRING, 0, 0, "", G(auth.acl_file), NULL,
     "access control list file (must be readable)", CONFIG__LIVE},
    {CONFIG__SCOPE_AUTH, "bind_client_id_to_user", CONFIG__BOOL, 0, 1, "true",
     G(auth.bind_client_id_to_user), NULL,
     "a client id's session belongs to the user that made it: another user's CONNECT with it "
     "is refused", CONFIG__LIVE},
    {CONFIG__SCOPE_AUTH, "test_method", CONFIG__BOOL, 0, 1, "false", LIM(auth_test_method), NULL,
     "TESTS ONLY: accept the deterministic AUTH method ringmq-test; never in production",
     CONFIG__RESTART},

    {CONFIG__SCOPE_LISTENER, "bind", CONFIG__ADDRESS, 0, 0, "127.0.0.1", L(bind), NULL,
     "numeric IPv4 or IPv6 address to listen on (0.0.0.0 or :: for all)", CONFIG__RESTART},
    {CONFIG__SCOPE_LISTENER, "port", CONFIG__UINT, 0, 65535, "1883", L(port), NULL,
     "TCP port; 0 picks a free one", CONFIG__RESTART},
    {CONFIG__SCOPE_LISTENER, "backlog", CONFIG__UINT, 1, 65535, "1024", L(backlog), NULL,
     "listen(2) backlog", CONFIG__RESTART},
    {CONFIG__SCOPE_LISTENER, "protocol", CONFIG__ENUM, 0, 1, "mqtt", L(protocol), protocol_names,
     "mqtt, or websockets: MQTT over WebSocket (ws, or wss with certfile)", CONFIG__RESTART},
    {CONFIG__SCOPE_LISTENER, "ws_path", CONFIG__STRING, 0, 0, CONFIG_WS_PATH_DEFAULT, L(ws_path),
     NULL,
     "websockets: the path clients upgrade on", CONFIG__RESTART},
    {CONFIG__SCOPE_LISTENER, "certfile", CONFIG__STRING, 0, 0, "", L(certfile), NULL,
     "PEM server certificate chain (may hold the key too); set: TLS is on", CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "keyfile", CONFIG__STRING, 0, 0, "", L(keyfile), NULL,
     "PEM private key of certfile; empty: the key is in certfile", CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "cafile", CONFIG__STRING, 0, 0, "", L(cafile), NULL,
     "PEM CA certificates that client certificates must chain to", CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "capath", CONFIG__STRING, 0, 0, "", L(capath), NULL,
     "directory of PEM CA certificates (instead of or beside cafile)", CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "require_certificate", CONFIG__BOOL, 0, 1, "false",
     L(require_certificate), NULL, "clients must present a certificate signed by cafile/capath",
     CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "use_identity_as_username", CONFIG__BOOL, 0, 1, "false",
     L(use_identity_as_username), NULL,
     "the client certificate's subject CN is the username (needs require_certificate)",
     CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "tls_version", CONFIG__ENUM, 0, 1, "tlsv1.2", L(tls_version),
     tls_version_names, "oldest TLS version accepted: tlsv1.2 or tlsv1.3", CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "ciphers", CONFIG__STRING, 0, 0, "", L(ciphers), NULL,
     "TLS 1.2 cipher list (OpenSSL names, ':'-separated); empty: wolfSSL's defaults",
     CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "ciphers_tls1.3", CONFIG__STRING, 0, 0, "", L(ciphers_tls13), NULL,
     "TLS 1.3 cipher suites (':'-separated); empty: wolfSSL's defaults", CONFIG__LIVE_TLS},
    {CONFIG__SCOPE_LISTENER, "allow_anonymous", CONFIG__AUTO_BOOL, 0, 1, "auto",
     L(allow_anonymous), NULL, "[auth] allow_anonymous for this listener", CONFIG__LIVE},
    {CONFIG__SCOPE_LISTENER, "password_file", CONFIG__STRING, 0, 0, "", L(password_file), NULL,
     "[auth] password_file for this listener (empty: none here)", CONFIG__LIVE},
    {CONFIG__SCOPE_LISTENER, "acl_file", CONFIG__STRING, 0, 0, "", L(acl_file), NULL,
     "[auth] acl_file for this listener (empty: none here)", CONFIG__LIVE},

    /* After the listener's: an unknown "bind" or "port" is hinted to [listener.NAME]. */
    {CONFIG__SCOPE_METRICS, "bind", CONFIG__STRING, 0, 0, "", G(metrics_bind), NULL,
     "numeric IPv4 or IPv6 address of the Prometheus endpoint (GET /metrics); empty = off",
     CONFIG__RESTART},
    {CONFIG__SCOPE_METRICS, "port", CONFIG__UINT, 0, 65535, "9883", G(metrics_port), NULL,
     "TCP port of the Prometheus endpoint; 0 picks a free one", CONFIG__RESTART},
    {CONFIG__SCOPE_ADMIN, "socket", CONFIG__STRING, 0, 0, "", G(admin_socket), NULL,
     "path of the admin socket (AF_UNIX; tools/ringmq-ctl); empty = none", CONFIG__RESTART},
    {CONFIG__SCOPE_ADMIN, "mode", CONFIG__ENUM, 0, 1, "0600", G(admin_mode), admin_mode_names,
     "permissions of the admin socket: 0600 (owner) or 0660 (and group)", CONFIG__RESTART},
};
/* clang-format on */

_Static_assert(RM_ARRAY_LEN(keys) <= CONFIG__KEYS_MAX, "raise CONFIG__KEYS_MAX");
_Static_assert(sizeof(enum config_log_level) == sizeof(int), "enum stored as int");
_Static_assert(sizeof(enum config_log_format) == sizeof(int), "enum stored as int");

int config_log_dest_parse(const char *s, const char **path)
{
    RM_ASSERT(s != NULL && path != NULL);
    *path = NULL;
    if (strcmp(s, "stderr") == 0) {
        return CONFIG_LOG_STDERR;
    }
    if (strcmp(s, "syslog") == 0) {
        return CONFIG_LOG_SYSLOG;
    }
    if (strncmp(s, "file", 4) == 0 && (s[4] == ' ' || s[4] == '\t')) {
        s += 4;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        if (*s != '\0') {
            *path = s;
            return CONFIG_LOG_FILE;
        }
    }
    return -1;
}

const struct config__key *config_keys__table(size_t *count)
{
    RM_ASSERT(count != NULL);
    *count = RM_ARRAY_LEN(keys);
    return keys;
}

size_t config_keys__index(enum config__scope scope, const char *name)
{
    size_t i;

    RM_ASSERT(name != NULL);
    for (i = 0; i < RM_ARRAY_LEN(keys); i++) {
        if (keys[i].scope == scope && strcmp(keys[i].name, name) == 0) {
            break;
        }
    }
    return i;
}

enum config__scope config_keys__scope(const char *name)
{
    enum config__scope scope = CONFIG__SCOPE_NONE;
    size_t i;

    RM_ASSERT(name != NULL);
    for (i = 0; i < RM_ARRAY_LEN(sections) && scope == CONFIG__SCOPE_NONE; i++) {
        if (strcmp(name, sections[i].name) == 0) {
            scope = sections[i].scope;
        }
    }
    return scope;
}

/* Decimal digits only; false for anything else, including overflow (*overflow set). */
static bool parse_digits(const char **p, uint64_t *out, bool *overflow)
{
    const char *s = *p;
    uint64_t v = 0;
    bool any = *s >= '0' && *s <= '9';

    for (; *s >= '0' && *s <= '9'; s++) {
        unsigned d = (unsigned)(*s - '0');

        if (v > (UINT64_MAX - d) / 10) {
            *overflow = true;
        } else {
            v = v * 10 + d;
        }
    }
    *p = s;
    *out = v;
    return any;
}

/*
 * Parse a numeric value. Returns 1 ok, 0 malformed, -1 well-formed but out
 * of the key's range.
 */
static int parse_number(const struct config__key *k, const char *value, uint64_t *out)
{
    const char *p = value;
    bool overflow = false;
    uint64_t v = 0;
    uint64_t mul = 1;
    int rc = 0;

    if (!parse_digits(&p, &v, &overflow)) {
        goto out;
    }
    if ((k->type == CONFIG__SIZE || k->type == CONFIG__AUTO_SIZE) && *p != '\0') {
        switch (*p) {
        case 'k':
        case 'K':
            mul = 1024;
            break;
        case 'm':
        case 'M':
            mul = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mul = 1024 * 1024 * 1024;
            break;
        default:
            goto out;
        }
        p++;
    }
    if (*p != '\0') {
        goto out;
    }
    rc = -1;
    if (overflow || v > UINT64_MAX / mul) {
        goto out;
    }
    v *= mul;
    if (v < k->min || v > k->max) {
        goto out;
    }
    *out = v;
    rc = 1;
out:
    return rc;
}

static int parse_bool(const char *value)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    int rc = -1;
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(yes) && rc < 0; i++) {
        if (strcmp(value, yes[i]) == 0) {
            rc = 1;
        } else if (strcmp(value, no[i]) == 0) {
            rc = 0;
        }
    }
    return rc;
}

static bool address_valid(const char *value)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, value, buf) == 1 || inet_pton(AF_INET6, value, buf) == 1;
}

/* What a key accepts, for messages: "an integer 1..65535" and so on. */
static void describe(const struct config__key *k, char *buf, size_t len)
{
    size_t o;
    int i;

    switch (k->type) {
    case CONFIG__BOOL:
        snprintf(buf, len, "true or false");
        break;
    case CONFIG__AUTO_BOOL:
        snprintf(buf, len, "auto, true or false");
        break;
    case CONFIG__UINT:
        snprintf(buf, len, "an integer %" PRIu64 "..%" PRIu64, k->min, k->max);
        break;
    case CONFIG__SIZE:
        snprintf(buf, len, "a size in bytes %" PRIu64 "..%" PRIu64 " (suffix k, m or g allowed)",
                 k->min, k->max);
        break;
    case CONFIG__DURATION:
        snprintf(buf, len, "a duration in milliseconds %" PRIu64 "..%" PRIu64, k->min, k->max);
        break;
    case CONFIG__SECONDS:
        snprintf(buf, len, "a duration in seconds %" PRIu64 "..%" PRIu64, k->min, k->max);
        break;
    case CONFIG__ENUM:
        o = (size_t)snprintf(buf, len, "one of");
        for (i = 0; k->names[i] != NULL && o < len; i++) {
            o += (size_t)snprintf(buf + o, len - o, "%s %s", i == 0 ? "" : ",", k->names[i]);
        }
        break;
    case CONFIG__STRING:
        snprintf(buf, len, "text of at most %zu bytes", k->size - 1);
        break;
    case CONFIG__ADDRESS:
        snprintf(buf, len, "a numeric IPv4 or IPv6 address");
        break;
    case CONFIG__AUTO_UINT:
        snprintf(buf, len, "auto or an integer %" PRIu64 "..%" PRIu64, k->min, k->max);
        break;
    case CONFIG__AUTO_SIZE:
        snprintf(buf, len,
                 "auto or a size in bytes %" PRIu64 "..%" PRIu64 " (suffix k, m or g allowed)",
                 k->min, k->max);
        break;
    }
}

static void store_uint(void *field, size_t size, uint64_t v)
{
    uint8_t u8 = (uint8_t)v;
    uint16_t u16 = (uint16_t)v;
    uint32_t u32 = (uint32_t)v;

    switch (size) {
    case sizeof(u8):
        RM_ASSERT(v <= UINT8_MAX);
        memcpy(field, &u8, sizeof(u8));
        break;
    case sizeof(u16):
        RM_ASSERT(v <= UINT16_MAX);
        memcpy(field, &u16, sizeof(u16));
        break;
    case sizeof(u32):
        RM_ASSERT(v <= UINT32_MAX);
        memcpy(field, &u32, sizeof(u32));
        break;
    default:
        RM_ASSERT(size == sizeof(v));
        memcpy(field, &v, sizeof(v));
        break;
    }
}

int config_keys__store(const struct config__key *k, void *field, const char *value, char *why,
                       size_t why_len)
{
    char want[160];
    char got[CONFIG_DIAG_ESC_MAX];
    const char *prefix = "";
    uint64_t v = 0;
    size_t len = strlen(value);
    int rc = 1;
    int i;

    switch (k->type) {
    case CONFIG__BOOL:
        i = parse_bool(value);
        if (i < 0) {
            rc = 0;
            break;
        }
        RM_ASSERT(k->size == sizeof(bool));
        *(bool *)field = i == 1;
        break;
    case CONFIG__AUTO_BOOL:
        i = strcmp(value, "auto") == 0 ? CONFIG_AUTO : parse_bool(value);
        if (i < 0) {
            rc = 0;
            break;
        }
        RM_ASSERT(k->size == sizeof(uint8_t));
        *(uint8_t *)field = (uint8_t)i;
        break;
    case CONFIG__AUTO_UINT:
        if (strcmp(value, "auto") == 0) {
            store_uint(field, k->size, 0);
            break;
        }
        /* fall through */
    case CONFIG__AUTO_SIZE:
        if (k->type == CONFIG__AUTO_SIZE && strcmp(value, "auto") == 0) {
            RM_ASSERT(k->size == sizeof(uint64_t) && k->max < UINT64_MAX);
            store_uint(field, k->size, UINT64_MAX);
            break;
        }
        /* fall through */
    case CONFIG__UINT:
    case CONFIG__SIZE:
    case CONFIG__DURATION:
    case CONFIG__SECONDS:
        rc = parse_number(k, value, &v);
        if (rc == 1) {
            store_uint(field, k->size, v);
        }
        break;
    case CONFIG__ENUM:
        for (i = 0; k->names[i] != NULL; i++) {
            if (strcmp(value, k->names[i]) == 0) {
                break;
            }
        }
        if (k->names[i] == NULL) {
            rc = 0;
            break;
        }
        RM_ASSERT(k->size == sizeof(int));
        memcpy(field, &i, sizeof(i));
        break;
    case CONFIG__STRING:
        if (len >= k->size) {
            rc = 0;
            break;
        }
        memcpy(field, value, len + 1);
        break;
    case CONFIG__ADDRESS:
        if (len >= k->size || !address_valid(value)) {
            rc = 0;
            break;
        }
        memcpy(field, value, len + 1);
        break;
    }
    if (rc != 1) {
        if (rc < 0) {
            prefix = "out of range: ";
        }
        describe(k, want, sizeof(want));
        snprintf(why, why_len, "%sexpected %s, got \"%s\"", prefix, want,
                 config_diag__esc(got, sizeof(got), value, len));
    }
    return rc == 1 ? 0 : -1;
}

void *config_keys__field(struct config *cfg, const struct config__key *k, uint32_t listener)
{
    char *base = (char *)cfg;

    if (k->scope == CONFIG__SCOPE_LISTENER) {
        RM_ASSERT(listener < CONFIG_LISTENERS_MAX);
        base = (char *)&cfg->listeners[listener];
        RM_ASSERT(k->offset + k->size <= sizeof(struct config_listener));
    } else {
        RM_ASSERT(k->offset + k->size <= sizeof(struct config));
    }
    return base + k->offset;
}

void config_keys__listener_defaults(struct config *cfg, uint32_t idx, const char *name)
{
    struct config_listener *l = &cfg->listeners[idx];
    char why[CONFIG_ERR_MAX];
    size_t i;

    RM_ASSERT(idx < CONFIG_LISTENERS_MAX);
    RM_ASSERT(strlen(name) < sizeof(l->name));
    memset(l, 0, sizeof(*l));
    memcpy(l->name, name, strlen(name) + 1);
    for (i = 0; i < RM_ARRAY_LEN(keys); i++) {
        if (keys[i].scope == CONFIG__SCOPE_LISTENER) {
            void *field = config_keys__field(cfg, &keys[i], idx);
            int rc = config_keys__store(&keys[i], field, keys[i].def, why, sizeof(why));

            RM_ASSERT(rc == 0);
        }
    }
}

void config_keys__defaults(struct config *cfg)
{
    char why[CONFIG_ERR_MAX];
    size_t i;

    RM_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    for (i = 0; i < RM_ARRAY_LEN(keys); i++) {
        RM_ASSERT(keys[i].scope != CONFIG__SCOPE_NONE);
        if (keys[i].scope != CONFIG__SCOPE_LISTENER) {
            void *field = config_keys__field(cfg, &keys[i], 0);
            int rc = config_keys__store(&keys[i], field, keys[i].def, why, sizeof(why));

            RM_ASSERT(rc == 0);
        }
    }
    config_keys__listener_defaults(cfg, 0, DEFAULT_LISTENER_NAME);
    /* Resolved as a load resolves it: auto, and no password_file by default. */
    cfg->listeners[0].allow_anonymous = CONFIG_ON;
    cfg->listener_count = 1;
}

/* Levenshtein distance, or SUGGEST_DISTANCE_MAX + 1 for over-long names. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    size_t row[SUGGEST_NAME_MAX + 1];
    size_t i;
    size_t j;

    row[0] = 0;

    if (la > SUGGEST_NAME_MAX || lb > SUGGEST_NAME_MAX) {
        /* Too long to be a near miss; the DP row below would not fit. */
        la = 0;
        lb = 0;
        row[0] = SUGGEST_DISTANCE_MAX + 1;
    }
    for (j = 1; j <= lb; j++) {
        row[j] = j;
    }
    for (i = 1; i <= la; i++) {
        size_t diag = row[0];

        row[0] = i;
        for (j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);

            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

/* The closest key of @scope to @name within SUGGEST_DISTANCE_MAX, or NULL. */
static const char *suggest(enum config__scope scope, const char *name)
{
    const char *best = NULL;
    size_t best_d = SUGGEST_DISTANCE_MAX + 1;
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(keys); i++) {
        if (keys[i].scope == scope) {
            size_t d = edit_distance(name, keys[i].name);

            if (d < best_d) {
                best_d = d;
                best = keys[i].name;
            }
        }
    }
    return best;
}

/* The section a key of @scope goes in, for messages. */
static const char *scope_section(enum config__scope scope)
{
    const char *name = "listener.NAME";
    size_t i;

    RM_ASSERT(scope != CONFIG__SCOPE_NONE);
    for (i = 0; i < RM_ARRAY_LEN(sections); i++) {
        if (sections[i].scope == scope) {
            name = sections[i].name;
        }
    }
    return name;
}

/* The section holding a key named exactly @name, other than @scope's; NULL if none. */
static const char *home_section(enum config__scope scope, const char *name)
{
    const char *home = NULL;
    size_t i;

    for (i = 0; i < RM_ARRAY_LEN(keys) && home == NULL; i++) {
        if (keys[i].scope != scope && strcmp(keys[i].name, name) == 0) {
            home = scope_section(keys[i].scope);
        }
    }
    return home;
}

void config_keys__hint(enum config__scope scope, const char *name, const char **near,
                       const char **home)
{
    RM_ASSERT(name != NULL && near != NULL && home != NULL);
    *near = suggest(scope, name);
    *home = *near == NULL ? home_section(scope, name) : NULL;
}
