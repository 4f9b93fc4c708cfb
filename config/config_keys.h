/*
 * config_keys.h - the key table: every key, its section, type, range and
 * default, and what can be done with the table alone.
 *
 * Above config_diag (for value messages), below the checks and the loader;
 * it knows nothing of INI syntax or of a load in progress. It owns the
 * table (static, read-only), the list of fixed sections, value parsing and
 * storing, unknown-key hints, and filling a struct config with defaults.
 * Nothing here is part of the public contract (that is config.h). Start-up
 * thread only; the table may be read from any thread.
 */
#ifndef RINGMQ_CONFIG_KEYS_H
#define RINGMQ_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config_types.h"

/* Upper bound on the table's length; config_keys.c checks it at compile time. */
#define CONFIG__KEYS_MAX 80
/* Every section a file may have, for messages; keep in step with config_keys.c. */
#define CONFIG__SECTIONS_EXPECTED                                                                  \
    "[broker], [limits], [mqtt], [auth], [acl], [acl.HOST], [group.NAME], [persistence], "         \
    "[metrics], [admin] or [listener.NAME]"

enum config__type {
    CONFIG__BOOL,      /* true|false (also yes|no, on|off, 1|0) */
    CONFIG__UINT,      /* decimal integer in [min, max] */
    CONFIG__SIZE,      /* bytes, decimal with an optional k|m|g suffix (x1024^n) */
    CONFIG__DURATION,  /* milliseconds, decimal integer in [min, max] */
    CONFIG__SECONDS,   /* seconds, decimal integer in [min, max] */
    CONFIG__ENUM,      /* one of names[] (stored as the index) */
    CONFIG__STRING,    /* free text shorter than the field */
    CONFIG__ADDRESS,   /* numeric IPv4 or IPv6 address (inet_pton) */
    CONFIG__AUTO_UINT, /* "auto" (stored as 0) or a decimal integer in [min, max] */
    CONFIG__AUTO_SIZE, /* "auto" (stored as UINT64_MAX, a 64-bit field) or a size in [min, max] */
    CONFIG__AUTO_BOOL, /* "auto" or a bool, stored as enum config_tristate in a uint8_t */
};

/* The largest memory_max: 1 PiB, so that "auto" (UINT64_MAX) can never be a size. */
#define CONFIG__MEMORY_MAX (1ull << 50)

/* Which kind of section a key belongs to. */
enum config__scope {
    CONFIG__SCOPE_NONE = 0, /* before the first section header */
    CONFIG__SCOPE_BROKER,   /* [broker] */
    CONFIG__SCOPE_LIMITS,   /* [limits] */
    CONFIG__SCOPE_MQTT,     /* [mqtt]: MQTT 5.0 features advertised in CONNACK */
    CONFIG__SCOPE_AUTH,     /* [auth] */
    CONFIG__SCOPE_PERSISTENCE, /* [persistence]: the write-ahead log */
    CONFIG__SCOPE_METRICS,  /* [metrics]: the Prometheus endpoint */
    CONFIG__SCOPE_ADMIN,    /* [admin]: the admin socket */
    CONFIG__SCOPE_LISTENER, /* [listener.NAME]; offsets are into struct config_listener */
    CONFIG__SCOPE_ACL,      /* [acl]: ordered rules, not in the key table (config_acl) */
    CONFIG__SCOPE_GROUP,    /* [group.NAME]: its users (config_acl) */
};

/*
 * Whether a running broker can take a key's new value on reload (SIGHUP;
 * config_reload.h). A key that cannot keeps its running value, and the
 * reload says it needs a restart.
 */
enum config__reload {
    CONFIG__RESTART = 0, /* sockets, threads, memory sizes: read once at start-up */
    CONFIG__LIVE,        /* applied by a reload */
    CONFIG__LIVE_TLS,    /* applied while the listener keeps TLS on (certfile before and after) */
};

/* One row of the key table: the single list of configuration keys. */
struct config__key {
    enum config__scope scope;
    const char *name;
    enum config__type type;
    uint64_t min; /* numeric types: inclusive range */
    uint64_t max;
    const char *def;          /* the default, written as it would be in the file */
    size_t offset;            /* in struct config, or struct config_listener */
    size_t size;              /* sizeof the field */
    const char *const *names; /* CONFIG__ENUM: NULL-terminated value names */
    const char *doc;          /* one line: what the key means */
    enum config__reload reload; /* what a reload does with a new value */
};

/*
 * A configuration being built and the line that set each value (0: the
 * default), indexed like the table: what the loader fills and the checks
 * read, so their messages can point at the line to fix.
 */
struct config__draft {
    struct config cfg;
    unsigned key_line[CONFIG__KEYS_MAX];          /* global keys */
    unsigned listener_line[CONFIG_LISTENERS_MAX]; /* each listener's header */
    unsigned listener_key_line[CONFIG_LISTENERS_MAX][CONFIG__KEYS_MAX];
};

/* The key table and its length (static storage, never NULL). */
/*
 * Parse [broker] log_dest @s: "stderr", "syslog" or "file PATH" (blanks
 * after "file"; *@path then points at PATH inside @s, else NULL). Returns
 * the enum config_log_dest, or -1 when @s is none of them.
 */
int config_log_dest_parse(const char *s, const char **path);

const struct config__key *config_keys__table(size_t *count);

/* The index in the table of key @name of @scope, or the table's length if none. */
size_t config_keys__index(enum config__scope scope, const char *name);

/* The scope of the fixed-name section @name ("limits"), or CONFIG__SCOPE_NONE. */
enum config__scope config_keys__scope(const char *name);

/*
 * A hint for unknown key @name in a section of @scope: sets *@near to the
 * closest key of @scope within a small edit distance, or else *@home to the
 * section ("mqtt", "listener.NAME") of a key named exactly @name elsewhere.
 * Each is NULL when there is none; both point to static strings.
 */
void config_keys__hint(enum config__scope scope, const char *name, const char **near,
                       const char **home);

/* Where key @k's value lives in @cfg (in listener @listener for listener keys). */
void *config_keys__field(struct config *cfg, const struct config__key *k, uint32_t listener);

/*
 * Parse @value (NUL-terminated, borrowed until return) for @k and store it
 * at @field. Returns 0, or -1 with "expected ..., got ..." (prefixed by
 * "out of range: " for a well-formed number outside the key's range) in
 * @why; @field is untouched then.
 */
int config_keys__store(const struct config__key *k, void *field, const char *value, char *why,
                       size_t why_len);

/* Fill @cfg with the defaults: every global key, one listener "default". */
void config_keys__defaults(struct config *cfg);

/* Reset listener @idx of @cfg to the defaults, named @name (borrowed until return). */
void config_keys__listener_defaults(struct config *cfg, uint32_t idx, const char *name);

#endif
