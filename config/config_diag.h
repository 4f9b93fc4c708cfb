/*
 * config_diag.h - the problems of one config load, and input escaping.
 *
 * The bottom of the config module: it knows nothing of keys, sections or
 * inih, only how a message is laid out ("PATH:LINE: ...") and that every
 * problem is kept, one per line, in the order found (a load goes on past
 * a problem, so --test-config can list them all). Every other config file
 * reports through it. Start-up thread only; a struct config_diag lives for
 * one load.
 */
#ifndef RINGMQ_CONFIG_DIAG_H
#define RINGMQ_CONFIG_DIAG_H

#include <stdbool.h>
#include <stddef.h>

/* Values shown back in messages are cut to this many bytes of input. */
#define CONFIG_DIAG_ESC_INPUT_MAX 64
/* A buffer that holds any config_diag__esc() of CONFIG_DIAG_ESC_INPUT_MAX bytes. */
#define CONFIG_DIAG_ESC_MAX (CONFIG_DIAG_ESC_INPUT_MAX * 4 + 8)

/* One problem's text, at most (longer ones are cut). */
#define CONFIG_DIAG_LINE_MAX 1024
/* What is shown when the problems no longer fit the caller's buffer. */
#define CONFIG_DIAG_MORE "(more problems not shown)"

/* Where one load's problems go. */
struct config_diag {
    const char *path; /* borrowed; names the input in messages */
    char *err;        /* borrowed; the caller's message buffer, lines separated by '\n' */
    size_t err_len;
    size_t used;     /* bytes of @err written, without its NUL */
    unsigned count;  /* problems recorded (shown or not) */
    bool failed;     /* a problem was recorded: the load fails, though it reads on */
    bool full;       /* a problem did not fit; CONFIG_DIAG_MORE ends @err */
};

/*
 * Prepare @d for a load of the input called @path, with the message going to
 * @err (@err_len >= 1, emptied here). Borrows @path and @err until the load
 * ends.
 */
void config_diag__init(struct config_diag *d, const char *path, char *err, size_t err_len);

/*
 * Record a problem, "PATH:LINE: " then @fmt (LINE omitted when @line is
 * 0), as a new line of d->err (which stays NUL-terminated; a problem that
 * does not fit is counted, and CONFIG_DIAG_MORE ends the text once).
 * Always leaves d->failed set.
 */
void config_diag__fail(struct config_diag *d, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Record @msg (already "FILE:LINE: ...", about another file than the
 * configuration: a password file's lines, one or more, '\n'-separated)
 * as config_diag__fail() does, one problem per line. Always leaves
 * d->failed set.
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
