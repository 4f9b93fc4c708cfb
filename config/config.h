/*
 * config.h - ringmq's configuration: the struct, its defaults, loading.
 *
 * A struct config is a read-only snapshot once loaded: shards borrow it, a
 * reload (SIGHUP; net/live) builds a new one and hands it over. config.c is the
 * loader, the top of the module; below it, each calling only files further
 * down: config_check.c (cross-key rules), config_ini.c (the INI reader, which
 * reaches the loader only through callbacks), config_keys.c (the single
 * list of keys, their sections, types, ranges and defaults) and
 * config_diag.c (error messages). Start-up thread only, or any thread for
 * reading a finished snapshot.
 */
#ifndef RINGMQ_CONFIG_H
#define RINGMQ_CONFIG_H

#include <stddef.h>

#include "config/config_types.h"

/* Fill @cfg with the defaults (one listener "default" on 127.0.0.1:1883). */
void config_defaults(struct config *cfg);

/*
 * Load @path over the defaults and validate. Returns 0, or -1 with every
 * problem in @err, one per line, each "FILE:LINE: [SECTION] KEY: what is
 * wrong" (or "FILE: ..." for whole-file problems such as a missing file or
 * no listener; a password or ACL file's lines name that file): the whole
 * file is read, and every check run, whatever was found before. Give it
 * CONFIG_ERRS_MAX bytes to see them all; what does not fit ends in
 * CONFIG_DIAG_MORE.
 * @cfg is only written on success; then it owns its ACLs (config_free()).
 */
int config_load(struct config *cfg, const char *path, char *err, size_t err_len);

/* Free what a loaded @cfg owns (its ACLs); @cfg is left with the defaults' NULLs. */
void config_free(struct config *cfg);

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
