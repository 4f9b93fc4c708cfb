/*
 * text.h - growable text built with printf-style appends (the /metrics
 * exposition, the admin socket's answers).
 *
 * The caller owns the text; single-threaded.
 */
#ifndef RINGMQ_TEXT_H
#define RINGMQ_TEXT_H

#include <stddef.h>

/* Zero it before use; free with text_free(). */
struct text {
    char *p; /* NUL-terminated once anything was appended */
    size_t len;
    size_t cap;
    int err; /* 0, or -ENOMEM once an append failed (the text is then incomplete) */
};

/* Append printf(@fmt, ...) to @t; after a failure, nothing more is appended. */
void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append @len bytes of @s with every byte outside '!'..'~' and '%' as %XX. */
void text_escaped(struct text *t, const void *s, size_t len);

/* Free what @t holds and zero it. */
void text_free(struct text *t);

#endif
