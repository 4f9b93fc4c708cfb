/*
 * config_ini.h - internals shared by the config module's three files.
 *
 * config.c owns the key table, defaults, value parsing and section rules;
 * config_ini.c drives inih over a file or a memory buffer, counting lines so
 * every message names FILE:LINE; config_check.c runs the cross-key rules.
 * Nothing here is part of the public contract (that is config.h): tests and
 * the fuzz target use config__load_buffer() and config__keys(). Start-up
 * thread only; a struct config__load lives for one load.
 */
#ifndef RINGMQ_CONFIG_INI_H
#define RINGMQ_CONFIG_INI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

/* Upper bound on the table's length; config.c checks it at compile time. */
#define CONFIG__KEYS_MAX 48
/* A section header longer than this is shown truncated and never matches. */
#define CONFIG__SECTION_MAX 128

enum config__type {
    CONFIG__BOOL,     /* true|false (also yes|no, on|off, 1|0) */
    CONFIG__UINT,     /* decimal integer in [min, max] */
    CONFIG__SIZE,     /* bytes, decimal with an optional k|m|g suffix (x1024^n) */
    CONFIG__DURATION, /* milliseconds, decimal integer in [min, max] */
    CONFIG__SECONDS,  /* seconds, decimal integer in [min, max] */
    CONFIG__ENUM,     /* one of names[] (stored as the index) */
    CONFIG__STRING,   /* free text shorter than the field */
    CONFIG__ADDRESS,  /* numeric IPv4 or IPv6 address (inet_pton) */
    CONFIG__AUTO_UINT, /* "auto" (stored as 0) or a decimal integer in [min, max] */
};

/* Which kind of section a key belongs to. */
enum config__scope {
    CONFIG__SCOPE_NONE = 0, /* before the first section header */
    CONFIG__SCOPE_BROKER,   /* [broker] */
    CONFIG__SCOPE_LIMITS,   /* [limits] */
    CONFIG__SCOPE_MQTT,     /* [mqtt]: MQTT 5.0 features advertised in CONNACK */
    CONFIG__SCOPE_AUTH,     /* [auth] */
    CONFIG__SCOPE_LISTENER, /* [listener.NAME]; offsets are into struct config_listener */
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
};

/* Where the lines come from: an open FILE or a memory buffer. */
struct config__src {
    FILE *file;      /* borrowed; NULL for a buffer */
    const char *buf; /* borrowed; may hold NUL bytes; not NUL-terminated */
    size_t len;
    size_t pos;
    char *line; /* line buffer for @file, owned, freed by config__ini_parse() */
};

/* The state of one load. Only the first error is kept; after it, parsing stops. */
struct config__load {
    struct config cfg; /* working copy; the caller's is written only on success */
    const char *path;  /* borrowed; names the input in messages */
    char *err;         /* borrowed; the caller's message buffer */
    size_t err_len;
    bool failed;
    unsigned lineno;                              /* line being parsed, 1-based */
    char section[CONFIG__SECTION_MAX];            /* current header's text, "" before the first */
    enum config__scope scope;                     /* kind of the current section */
    uint32_t listener;                            /* index in cfg.listeners while in a listener */
    bool listeners_defined;                       /* a [listener.*] header was seen */
    unsigned key_line[CONFIG__KEYS_MAX];          /* line that set each global key, 0 = default */
    unsigned listener_line[CONFIG_LISTENERS_MAX]; /* header line */
    unsigned listener_key_line[CONFIG_LISTENERS_MAX][CONFIG__KEYS_MAX]; /* 0 = default */
    struct config__src src;
};

/* The key table and its length (static storage, never NULL). */
const struct config__key *config__keys(size_t *count);

/*
 * Prepare @ld for a load of the input called @path (borrowed until the load
 * ends), with errors going to @err (@err_len >= 1). The working copy starts
 * as config_defaults().
 */
void config__load_init(struct config__load *ld, const char *path, char *err, size_t err_len);

/*
 * Record the first error, "PATH:LINE: " then @fmt (LINE omitted when @line
 * is 0). Later calls do nothing. Always leaves ld->failed set.
 */
void config__fail(struct config__load *ld, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copy @s (at most @n bytes, stopping at NUL) into @dst for a message:
 * printable ASCII as is, anything else as \xNN, cut with "..." past 64
 * characters. @dst is always NUL-terminated; returns @dst.
 */
char *config__esc(char *dst, size_t dst_len, const char *s, size_t n);

/*
 * A section header "[@name]" (@name as written between the brackets, @len
 * bytes) starts on the current line. Returns 0, or -1 after config__fail()
 * for an unknown section, a bad or duplicate listener name, or too many
 * listeners.
 */
int config__section(struct config__load *ld, const char *name, size_t len);

/*
 * Set key @name to @value (both NUL-terminated, borrowed until return) in
 * the current section. Returns 0, or -1 after config__fail() for a key
 * outside any section, an unknown or duplicate key, or a bad value.
 */
int config__set(struct config__load *ld, const char *name, const char *value);

/*
 * Run inih over ld->src, feeding config__section() and config__set().
 * Returns 0, or -1 with the first error recorded (malformed line, line too
 * long, NUL byte, read error, or whatever the callbacks reported). Frees
 * ld->src.line.
 */
int config__ini_parse(struct config__load *ld);

/*
 * Like config_load() but reads @len bytes at @data (need not be
 * NUL-terminated, may contain anything) and names the input @name in
 * messages. For tests and the fuzz target.
 */
int config__load_buffer(struct config *cfg, const char *name, const void *data, size_t len,
                        char *err, size_t err_len);

#endif
