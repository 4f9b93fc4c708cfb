/*
 * config_diag.h - the first error of one config load, and input escaping.
 *
 * The bottom of the config module: it knows nothing of keys, sections or
 * inih, only how a message is laid out ("PATH:LINE: ...") and that only the
 * first one is kept. Every other config file reports through it. Start-up
 * thread only; a struct config_diag lives for one load.
 */
#ifndef RINGMQ_CONFIG_DIAG_H
#define RINGMQ_CONFIG_DIAG_H

#include <stdbool.h>
#include <stddef.h>

/* Values shown back in messages are cut to this many bytes of input. */
#define CONFIG_DIAG_ESC_INPUT_MAX 64
/* A buffer that holds any config_diag__esc() of CONFIG_DIAG_ESC_INPUT_MAX bytes. */
#define CONFIG_DIAG_ESC_MAX (CONFIG_DIAG_ESC_INPUT_MAX * 4 + 8)

/* Where one load's first error goes. */
struct config_diag {
    const char *path; /* borrowed; names the input in messages */
    char *err;        /* borrowed; the caller's message buffer */
    size_t err_len;
    bool failed; /* an error was recorded; the load stops */
};

/*
 * Prepare @d for a load of the input called @path, with the message going to
 * @err (@err_len >= 1, emptied here). Borrows @path and @err until the load
 * ends.
 */
void config_diag__init(struct config_diag *d, const char *path, char *err, size_t err_len);

/*
 * Record the first error, "PATH:LINE: " then @fmt (LINE omitted when @line
 * is 0). Later calls do nothing. Always leaves d->failed set.
 */
void config_diag__fail(struct config_diag *d, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Record @msg (already "FILE:LINE: ...", about another file than the
 * configuration: a password file's line) as the first error. Later calls
 * do nothing. Always leaves d->failed set.
 */
void config_diag__fail_raw(struct config_diag *d, const char *msg);

/*
 * Copy @s (at most @n bytes, stopping at NUL) into @dst for a message:
 * printable ASCII as is, anything else as \xNN, cut with "..." past
 * CONFIG_DIAG_ESC_INPUT_MAX characters. @dst is always NUL-terminated;
 * returns @dst.
 */
char *config_diag__esc(char *dst, size_t dst_len, const char *s, size_t n);

#endif
