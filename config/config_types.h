/*
 * config_types.h - the configuration's types: struct config (a read-only
 * snapshot once loaded), its listeners, enums and bounds. Every config/
 * module and the rest of ringmq read these; config.h loads them.
 *
 * Start-up thread writes; any thread reads a finished snapshot.
 */
#ifndef RINGMQ_CONFIG_TYPES_H
#define RINGMQ_CONFIG_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"
#include "core/vhost.h"

#define CONFIG_LISTENERS_MAX 16
#define CONFIG_NAME_MAX 64
#define CONFIG_ERR_MAX 512
/* Every problem of one load, a line each (config_load()'s @err for --test-config). */
#define CONFIG_ERRS_MAX (16 * 1024)
#define CONFIG_PATH_MAX 256    /* certificate, key and CA file paths */
#define CONFIG_WS_PATH_MAX 128 /* WebSocket request path */
#define CONFIG_WS_PATH_DEFAULT "/mqtt"
#define CONFIG_CIPHERS_MAX 512 /* one cipher list */
#define CONFIG_HOSTS_TEXT_MAX 4096 /* [broker] hosts, the whole list */

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

/*
 * A three-way switch: an explicit on or off, or "auto" (the default, whose
 * meaning each key states: allow_anonymous = auto is off where a
 * password_file applies).
 */
enum config_tristate {
    CONFIG_OFF = 0,
    CONFIG_ON = 1,
    CONFIG_AUTO = 2,
};

enum config_log_level {
    CONFIG_LOG_ERROR = 0,
    CONFIG_LOG_WARN,
    CONFIG_LOG_INFO,
    CONFIG_LOG_DEBUG,
};

/* [broker] log_format: how a record is written. */
enum config_log_format {
    CONFIG_LOG_TEXT = 0, /* "TS LEVEL message | shard=N client_id=... addr=..." */
    CONFIG_LOG_JSON,     /* one JSON object per line */
};

/* [broker] log_dest, parsed (config_log_dest_parse()). */
enum config_log_dest {
    CONFIG_LOG_STDERR = 0,
    CONFIG_LOG_FILE, /* "file PATH": opened O_APPEND, reopened on SIGHUP */
    CONFIG_LOG_SYSLOG,
};

#define CONFIG_LOG_DEST_MAX (CONFIG_PATH_MAX + 8) /* "file " and a path */

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
    /*
     * Authentication. Each is [auth]'s unless the listener sets it; once
     * loaded, allow_anonymous is resolved (CONFIG_ON or CONFIG_OFF, never
     * CONFIG_AUTO) and the paths are the ones that apply here.
     */
    char password_file[CONFIG_PATH_MAX]; /* mosquitto-format password file; "": none */
    char acl_file[CONFIG_PATH_MAX];      /* ACL file (parsed elsewhere); "": none */
    uint8_t allow_anonymous;             /* enum config_tristate */
};

/* Whether listener @l speaks TLS. */
static inline bool config_listener_tls(const struct config_listener *l)
{
    return l->certfile[0] != '\0';
}

enum config_fsync {
    CONFIG_FSYNC_ALWAYS = 0, /* acknowledgements wait for fdatasync */
    CONFIG_FSYNC_INTERVAL,   /* synced every fsync_interval_ms; acknowledged when written */
    CONFIG_FSYNC_OFF,        /* written, never synced by ringmq */
};

/* [persistence]: the write-ahead log (net/wal_io, core/wal). */
struct config_wal {
    bool enabled;
    char dir[CONFIG_PATH_MAX];
    enum config_fsync fsync;
    uint32_t fsync_interval_ms;
    uint32_t segment_mb;
    uint32_t compact_ratio;
};

/* [auth]: the defaults every listener inherits, and what applies to all. */
struct config_auth {
    char password_file[CONFIG_PATH_MAX];
    char acl_file[CONFIG_PATH_MAX];
    uint8_t allow_anonymous;     /* enum config_tristate, as written (CONFIG_AUTO by default) */
    bool bind_client_id_to_user; /* a client id's session belongs to the user that made it */
};

struct acl;

/* A mosquitto-format acl_file some listener names, loaded (config_load()). */
struct config_acl_file {
    char path[CONFIG_PATH_MAX];
    struct acl *acl; /* owned by the struct config that lists it */
};

struct config {
    enum config_log_level log_level;
    enum config_log_format log_format;
    char log_dest[CONFIG_LOG_DEST_MAX]; /* as written: stderr, syslog or file PATH */
    uint32_t shards; /* 0 = auto: one per online CPU */
    bool pin_shards; /* pin shard i to the i-th allowed CPU */
    struct limits limits;
    struct config_auth auth;
    struct config_wal wal;
    char hosts_text[CONFIG_HOSTS_TEXT_MAX]; /* [broker] hosts, as written */
    struct vhost_table hosts;               /* ... checked and split (core/vhost.h) */
    uint32_t sys_interval_s;                /* [broker] sys_interval; 0: no $SYS topics */
    char metrics_bind[CONFIG_NAME_MAX];     /* [metrics] bind; "": no endpoint */
    uint32_t metrics_port;                  /* [metrics] port */
    char admin_socket[CONFIG_PATH_MAX];     /* [admin] socket; "": no admin socket */
    int admin_mode;                         /* [admin] mode: 0 = 0600, 1 = 0660 */
    uint32_t listener_count;
    struct config_listener listeners[CONFIG_LISTENERS_MAX];
    /*
     * The [acl], [acl.HOST] and [group.NAME] rules (core/acl), owned by
     * this snapshot and read-only, so every shard may read it; NULL: no
     * rules. They apply on every listener where no acl_file does.
     * config_free() frees it.
     */
    struct acl *acl;
    /*
     * Each distinct acl_file the listeners name ([auth]'s or their own),
     * loaded once however many listeners share it; owned, read-only,
     * freed by config_free(). A listener's ACL is the one whose path is
     * its acl_file, else @acl (net/live resolves it per listener).
     */
    struct config_acl_file acl_files[CONFIG_LISTENERS_MAX];
    uint32_t acl_file_count;
};

#endif
