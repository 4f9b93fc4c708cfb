/*
 * config.h - ringmq's configuration: the struct, its defaults, loading.
 *
 * A struct config is a read-only snapshot once loaded: shards borrow it, a
 * reload (SIGHUP, later) builds a new one and hands it over. config.c is the
 * loader, the top of the module; below it, each calling only files further
 * down: config_check.c (cross-key rules), config_ini.c (the INI reader, which
 * reaches the loader only through callbacks), config_keys.c (the single
 * list of keys, their sections, types, ranges and defaults) and
 * config_diag.c (error messages). Start-up thread only, or any thread for
 * reading a finished snapshot.
 */
#ifndef RINGMQ_CONFIG_H
#define RINGMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#define CONFIG_LISTENERS_MAX 16
#define CONFIG_NAME_MAX 64
#define CONFIG_ERR_MAX 512
#define CONFIG_PATH_MAX 256    /* certificate, key and CA file paths */
#define CONFIG_WS_PATH_MAX 128 /* WebSocket request path */
#define CONFIG_WS_PATH_DEFAULT "/mqtt"
#define CONFIG_CIPHERS_MAX 512 /* one cipher list */

/* What a listener speaks on top of TCP (or TLS). */
enum config_protocol {
    CONFIG_PROTO_MQTT = 0,   /* MQTT directly */
    CONFIG_PROTO_WEBSOCKETS, /* MQTT in WebSocket binary frames (RFC 6455) */
};

/* The oldest TLS version a listener accepts. */
enum config_tls_version {
    CONFIG_TLS_12 = 0,
    CONFIG_TLS_13,
};

enum config_log_level {
    CONFIG_LOG_ERROR = 0,
    CONFIG_LOG_WARN,
    CONFIG_LOG_INFO,
    CONFIG_LOG_DEBUG,
};

/*
 * One [listener.NAME] section. TLS is on when certfile is set; the other
 * TLS keys need it (config_check). Empty strings mean "not set".
 */
struct config_listener {
    char name[CONFIG_NAME_MAX];    /* NAME from the section header */
    char bind[CONFIG_NAME_MAX];    /* numeric IPv4 or IPv6 address */
    uint16_t port;                 /* 0 = ephemeral (tests) */
    uint32_t backlog;
    enum config_protocol protocol;
    char ws_path[CONFIG_WS_PATH_MAX];   /* websockets: the upgrade's path */
    char certfile[CONFIG_PATH_MAX];     /* PEM chain (and the key when keyfile is empty) */
    char keyfile[CONFIG_PATH_MAX];      /* PEM private key */
    char cafile[CONFIG_PATH_MAX];       /* PEM CA certificates for client certificates */
    char capath[CONFIG_PATH_MAX];       /* directory of CA certificates */
    bool require_certificate;           /* clients must present a certificate */
    bool use_identity_as_username;      /* the certificate's subject CN is the username */
    enum config_tls_version tls_version; /* minimum */
    char ciphers[CONFIG_CIPHERS_MAX];   /* TLS 1.2 cipher list (OpenSSL names) */
    char ciphers_tls13[CONFIG_CIPHERS_MAX]; /* TLS 1.3 suites */
};

/* Whether listener @l speaks TLS. */
static inline bool config_listener_tls(const struct config_listener *l)
{
    return l->certfile[0] != '\0';
}

struct config {
    enum config_log_level log_level;
    uint32_t shards; /* 0 = auto: one per online CPU */
    bool pin_shards; /* pin shard i to the i-th allowed CPU */
    struct limits limits;
    uint32_t listener_count;
    struct config_listener listeners[CONFIG_LISTENERS_MAX];
};

/* Fill @cfg with the defaults (one listener "default" on 127.0.0.1:1883). */
void config_defaults(struct config *cfg);

/*
 * Load @path over the defaults and validate. Returns 0, or -1 with a message
 * in @err of the form "FILE:LINE: [SECTION] KEY: what is wrong" (or
 * "FILE: ..." for whole-file problems such as a missing file or no listener).
 * @cfg is only written on success.
 */
int config_load(struct config *cfg, const char *path, char *err, size_t err_len);

/* Parse a log level name ("error", "warn", "info", "debug"); -1 if unknown. */
int config_log_level_parse(const char *s);

/*
 * Module internals (config__*), for tests and the fuzz target only; the
 * table's row type is in config/config_keys.h.
 */
struct config__key;

/* The key table and its length (static storage, never NULL). */
const struct config__key *config__keys(size_t *count);

/*
 * Like config_load() but reads @len bytes at @data (need not be
 * NUL-terminated, may contain anything) and names the input @name in
 * messages. Borrows @data and @name until return.
 */
int config__load_buffer(struct config *cfg, const char *name, const void *data, size_t len,
                        char *err, size_t err_len);

#endif
