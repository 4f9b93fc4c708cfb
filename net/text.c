/*
 * text.c - growable text (see text.h).
 *
 * Single-threaded; the caller owns the text.
 */
#include "net/text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"

#define TEXT_MIN 4096u

/* Room for @n more bytes and a NUL; false (and err set) without memory. */
static int reserve(struct text *t, size_t n)
{
    size_t cap = t->cap != 0 ? t->cap : TEXT_MIN;
    char *p;

    if (t->len + n < t->cap) {
        return 0;
    }
    while (cap <= t->len + n) {
        cap *= 2;
    }
    p = realloc(t->p, cap);
    if (p == NULL) {
        t->err = -ENOMEM;
        return -ENOMEM;
    }
    t->p = p;
    t->cap = cap;
    return 0;
}

void text_printf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    RM_ASSERT(t != NULL && fmt != NULL);
    if (t->err != 0) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    RM_ASSERT(n >= 0);
    if (reserve(t, (size_t)n) < 0) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    RM_ASSERT(n >= 0 && t->len + (size_t)n < t->cap);
    t->len += (size_t)n;
}

void text_escaped(struct text *t, const void *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *b = s;

    RM_ASSERT(t != NULL && (s != NULL || len == 0));
    if (t->err != 0 || reserve(t, len * 3) < 0) {
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (b[i] > ' ' && b[i] <= '~' && b[i] != '%') {
            t->p[t->len++] = (char)b[i];
        } else {
            t->p[t->len++] = '%';
            t->p[t->len++] = hex[b[i] >> 4];
            t->p[t->len++] = hex[b[i] & 15];
        }
    }
    t->p[t->len] = '\0';
}

void text_free(struct text *t)
{
    free(t->p);
    memset(t, 0, sizeof(*t));
}
