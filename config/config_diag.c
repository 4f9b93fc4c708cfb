/*
 * config_diag.c - the first error of one config load, and input escaping.
 *
 * Calls nothing else in config/: the key table, the INI reader, the checks
 * and the loader all report through here, so it sits at the bottom.
 * Start-up thread only.
 */
#include "config/config_diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/rm_assert.h"

void config_diag__init(struct config_diag *d, const char *path, char *err, size_t err_len)
{
    RM_ASSERT(d != NULL && path != NULL);
    RM_ASSERT(err != NULL && err_len >= 1);
    memset(d, 0, sizeof(*d));
    d->path = path;
    d->err = err;
    d->err_len = err_len;
    err[0] = '\0';
}

char *config_diag__esc(char *dst, size_t dst_len, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    size_t i;

    RM_ASSERT(dst != NULL && dst_len >= 1);
    RM_ASSERT(s != NULL);
    for (i = 0; i < n && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
        size_t need = plain ? 1 : 4;

        if (i == CONFIG_DIAG_ESC_INPUT_MAX || o + need + 1 > dst_len) {
            if (o + 4 <= dst_len) {
                memcpy(dst + o, "...", 3);
                o += 3;
            }
            break;
        }
        if (plain) {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 0xf];
        }
    }
    dst[o] = '\0';
    return dst;
}

void config_diag__fail(struct config_diag *d, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n;

    RM_ASSERT(d != NULL && fmt != NULL);
    RM_ASSERT(d->err != NULL && d->err_len >= 1);
    if (!d->failed) {
        d->failed = true;
        if (line > 0) {
            n = snprintf(d->err, d->err_len, "%s:%u: ", d->path, line);
        } else {
            n = snprintf(d->err, d->err_len, "%s: ", d->path);
        }
        if (n >= 0 && (size_t)n < d->err_len) {
            va_start(ap, fmt);
            vsnprintf(d->err + n, d->err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
}

void config_diag__fail_raw(struct config_diag *d, const char *msg)
{
    RM_ASSERT(d != NULL && msg != NULL);
    RM_ASSERT(d->err != NULL && d->err_len >= 1);
    if (!d->failed) {
        d->failed = true;
        snprintf(d->err, d->err_len, "%s", msg);
    }
}
