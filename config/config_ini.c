/*
 * config_ini.c - inih glue: feed lines to inih, route what it finds.
 *
 * Debian's inih (55) calls its handler without a line number, so we drive
 * ini_parse_stream() with our own reader. It hands inih one whole line per
 * call, which makes our count the line inih is parsing when it calls back.
 * The reader also:
 *  - strips leading blanks, which turns off inih's multi-line values (an
 *    indented "key = value" would otherwise be glued onto the previous key);
 *  - sees section headers first, so unknown or empty sections are reported
 *    and inih's 50-byte section buffer never truncates a listener name;
 *  - rejects NUL bytes and lines longer than inih's buffer instead of letting
 *    inih split them;
 *  - stops inih (returns NULL) after the first error.
 * Start-up thread only.
 */
#include "config/config_ini.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "core/rm_assert.h"

#define UTF8_BOM "\xef\xbb\xbf"

/* The next raw line (without its '\n') or NULL at the end or on a read error. */
static const char *next_line(struct config__load *ld, size_t *len)
{
    struct config__src *src = &ld->src;
    const char *line;
    const char *nl;
    ssize_t n;

    if (src->file != NULL) {
        errno = 0;
        n = getline(&src->line, &src->line_cap, src->file);
        if (n < 0) {
            if (ferror(src->file)) {
                config__fail(ld, 0, "cannot read: %s", strerror(errno ? errno : EIO));
            }
            return NULL;
        }
        *len = (size_t)n;
        if (n > 0 && src->line[n - 1] == '\n') {
            (*len)--;
        }
        return src->line;
    }
    if (src->pos >= src->len) {
        return NULL;
    }
    line = src->buf + src->pos;
    nl = memchr(line, '\n', src->len - src->pos);
    *len = nl != NULL ? (size_t)(nl - line) : src->len - src->pos;
    src->pos += *len + (nl != NULL);
    return line;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * If @line is a section header as inih sees it ("[" then text up to "]",
 * where an inline comment " ;" ends the search first), tell config.c.
 * Returns -1 if config.c refused the section.
 */
static int maybe_section(struct config__load *ld, const char *line, size_t len)
{
    bool was_blank = false;
    size_t i;

    if (len == 0 || line[0] != '[') {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if (line[i] == ']') {
            return config__section(ld, line + 1, i - 1);
        }
        if (was_blank && line[i] == ';') {
            break;
        }
        was_blank = is_blank(line[i]);
    }
    /* No closing bracket: inih reports the malformed line. */
    return 0;
}

/* inih's fgets-style reader over ld->src; see the file comment. */
static char *reader(char *str, int num, void *stream)
{
    struct config__load *ld = stream;
    const char *line;
    size_t len = 0;

    RM_ASSERT(ld != NULL && str != NULL);
    RM_ASSERT(num >= 4);
    if (ld->failed) {
        return NULL;
    }
    line = next_line(ld, &len);
    if (line == NULL) {
        return NULL;
    }
    ld->lineno++;
    if (ld->lineno == 1 && len >= 3 && memcmp(line, UTF8_BOM, 3) == 0) {
        line += 3;
        len -= 3;
    }
    while (len > 0 && is_blank(line[0])) {
        line++;
        len--;
    }
    if (memchr(line, '\0', len) != NULL) {
        config__fail(ld, ld->lineno, "NUL byte in line");
        return NULL;
    }
    if (len == 0 || line[0] == ';' || line[0] == '#') {
        /* Blank or comment: any length is fine, inih needs to see none of it. */
        str[0] = '\n';
        str[1] = '\0';
        return str;
    }
    if (len + 2 > (size_t)num) {
        config__fail(ld, ld->lineno, "line too long (at most %d characters)", num - 2);
        return NULL;
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    if (maybe_section(ld, line, len) != 0) {
        return NULL;
    }
    return str;
}

/* inih's handler: @section is inih's (possibly truncated) copy; ours is in @ld. */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct config__load *ld = user;

    (void)section;
    RM_ASSERT(ld != NULL && name != NULL);
    RM_ASSERT(value != NULL); /* inih is built without INI_ALLOW_NO_VALUE */
    if (ld->failed) {
        return 0;
    }
    return config__set(ld, name, value) == 0;
}

int config__ini_parse(struct config__load *ld)
{
    int rc;

    RM_ASSERT(ld != NULL && !ld->failed);
    RM_ASSERT(ld->src.file != NULL || ld->src.buf != NULL);
    rc = ini_parse_stream(reader, ld, handler, ld);
    free(ld->src.line);
    ld->src.line = NULL;
    ld->src.line_cap = 0;
    if (rc > 0 && (!ld->failed || (unsigned)rc < ld->lineno)) {
        /*
         * inih found a line it cannot parse before (or without) any error of
         * ours. Ours stops the reader on its own line, so an earlier inih
         * error always has a smaller number. Only the first message is kept,
         * so overwrite ours by clearing the flag first.
         */
        ld->failed = false;
        config__fail(ld, (unsigned)rc,
                     "malformed line (expected [section], key = value or a ; comment)");
    } else if (rc < 0 && !ld->failed) {
        config__fail(ld, 0, "cannot parse (inih error %d)", rc);
    }
    return ld->failed ? -1 : 0;
}
