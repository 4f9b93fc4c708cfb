/*
 * config_diag.c - the problems of one config load, and input escaping.
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

/*
 * Append @line (@len bytes, one problem) to d->err as its own line, keeping
 * room after it for "\n" CONFIG_DIAG_MORE, so that the first problem that
 * does not fit can always say so.
 */
static void append(struct config_diag *d, const char *line, size_t len)
{
    size_t sep = d->used > 0 ? 1 : 0;
    size_t more = sizeof(CONFIG_DIAG_MORE) - 1;

    RM_ASSERT(d->used < d->err_len);
    RM_ASSERT(d->err[d->used] == '\0');
    d->failed = true;
    d->count++;
    if (d->full) {
        return;
    }
    if (d->used + sep + len + 1 + more + 1 > d->err_len) {
        d->full = true;
        if (d->used == 0) {
            /* Not even one fits whole: keep what does of it. */
            snprintf(d->err, d->err_len, "%.*s", (int)len, line);
            d->used = strlen(d->err);
        } else {
            RM_ASSERT(d->used + 1 + more + 1 <= d->err_len); /* the room kept */
            d->err[d->used++] = '\n';
            memcpy(d->err + d->used, CONFIG_DIAG_MORE, more + 1);
            d->used += more;
        }
        return;
    }
    if (sep) {
        d->err[d->used++] = '\n';
    }
    memcpy(d->err + d->used, line, len);
    d->used += len;
    d->err[d->used] = '\0';
}

void config_diag__fail(struct config_diag *d, unsigned line, const char *fmt, ...)
{
    char msg[CONFIG_DIAG_LINE_MAX];
    va_list ap;
    int n;

    RM_ASSERT(d != NULL && fmt != NULL);
    RM_ASSERT(d->err != NULL && d->err_len >= 1);
    if (line > 0) {
        n = snprintf(msg, sizeof(msg), "%s:%u: ", d->path, line);
    } else {
        n = snprintf(msg, sizeof(msg), "%s: ", d->path);
    }
    if (n >= 0 && (size_t)n < sizeof(msg)) {
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    append(d, msg, strlen(msg));
}

void config_diag__fail_raw(struct config_diag *d, const char *msg)
{
    RM_ASSERT(d != NULL && msg != NULL);
    RM_ASSERT(d->err != NULL && d->err_len >= 1);
    /* One problem per line; an empty message is still one. */
    do {
        const char *nl = strchr(msg, '\n');
        size_t len = nl != NULL ? (size_t)(nl - msg) : strlen(msg);

        if (len > 0 || nl == NULL) {
            append(d, msg, len);
        }
        msg = nl != NULL ? nl + 1 : NULL;
    } while (msg != NULL && *msg != '\0');
}
