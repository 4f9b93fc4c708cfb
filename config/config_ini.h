/*
 * config_ini.h - the INI reader: lines in, section and key events out.
 *
 * Drives inih over a file or a memory buffer, counting lines so every event
 * and message carries its line number. It knows no keys or sections: what a
 * header or a "key = value" means is up to the callbacks its caller passes
 * in (the loader, config.c). Reports its own errors (malformed or over-long
 * line, NUL byte, read error) through config_diag, the only config file it
 * calls. Start-up thread only.
 */
#ifndef RINGMQ_CONFIG_INI_H
#define RINGMQ_CONFIG_INI_H

#include <stddef.h>
#include <stdio.h>

#include "config/config_diag.h"

/* Where the lines come from: an open FILE or a memory buffer. */
struct config_ini_src {
    FILE *file;      /* borrowed; NULL for a buffer */
    const char *buf; /* borrowed; may hold NUL bytes; not NUL-terminated */
    size_t len;
    size_t pos;
    char *_line; /* line buffer for @file, owned, freed by config_ini__parse() */
};

/*
 * What config_ini__parse() found, one event at a time, called synchronously
 * from within it in file order. Each returns 0, or -1 after
 * config_diag__fail(); the parse goes on either way (the caller decides
 * what a refused header means for the keys under it). @line is 1-based; strings are
 * borrowed until the callback returns.
 */
struct config_ini_parse_cb {
    /* A header "[@name]": @name is the @len bytes between the brackets, as written. */
    int (*section)(void *user, unsigned line, const char *name, size_t len);
    /* "@name = @value", both NUL-terminated and trimmed by inih. */
    int (*key)(void *user, unsigned line, const char *name, const char *value);
    void *user;
};

/*
 * Read @src to the end (or to a read error), feeding @cb. Returns 0, or -1
 * with every problem recorded in @diag (malformed lines, lines too long,
 * NUL bytes, a read error, whatever the callbacks reported). Borrows all three
 * until return; @diag must not have failed yet; frees @src's line buffer.
 */
int config_ini__parse(struct config_ini_src *src, struct config_diag *diag,
                      const struct config_ini_parse_cb *cb);

#endif
