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
 *    inih split them; comment lines never reach inih, so they may be longer
 *    (up to LINE_BYTES_MAX, which also bounds what a file without newlines
 *    can cost);
 *  - stops inih (returns NULL) after the first error.
 * Start-up thread only.
 */
#include "config/config_ini.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#include "core/rm_assert.h"

#define UTF8_BOM "\xef\xbb\xbf"
/* Longest raw line read (comments included); inih's own limit is far lower. */
#define LINE_BYTES_MAX 65536

/*
 * The next raw line (without its '\n'), or NULL at the end or after an error
 * (a read error, a line over LINE_BYTES_MAX, no memory). Bytes are read one
 * at a time so a line without end (say -c /dev/zero) costs a bounded buffer.
 */
static const char *next_line(struct config__load *ld, size_t *len)
{
    struct config__src *src = &ld->src;
    const char *line = NULL;
    const char *nl;
    size_t n = 0;
    int c = EOF;

    RM_ASSERT(len != NULL);
    if (src->file != NULL) {
        if (src->line == NULL) {
            src->line = malloc(LINE_BYTES_MAX);
            if (src->line == NULL) {
                config__fail(ld, 0, "cannot read: out of memory");
                goto out;
            }
        }
        while (n <= LINE_BYTES_MAX && (c = getc(src->file)) != EOF && c != '\n') {
            if (n < LINE_BYTES_MAX) {
                src->line[n] = (char)c;
            }
            n++;
        }
        if (c == EOF && ferror(src->file)) {
            config__fail(ld, 0, "cannot read: %s", strerror(errno ? errno : EIO));
            goto out;
        }
        if (c == EOF && n == 0) {
            goto out;
        }
        line = src->line;
    } else if (src->pos < src->len) {
        line = src->buf + src->pos;
        nl = memchr(line, '\n', src->len - src->pos);
        n = nl != NULL ? (size_t)(nl - line) : src->len - src->pos;
        src->pos += n + (nl != NULL);
        RM_ASSERT(src->pos <= src->len);
    }
    if (n > LINE_BYTES_MAX) {
        config__fail(ld, ld->lineno + 1, "line too long (over %d bytes)", LINE_BYTES_MAX);
        line = NULL;
    }
    *len = n;
out:
    return line;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * If @line is a section header as inih sees it ("[" then text up to "]",
 * where an inline comment " ;" ends the search first), tell config.c.
 * Returns -1 if config.c refused the section. Without a closing bracket the
 * line is malformed and inih reports it.
 */
static int maybe_section(struct config__load *ld, const char *line, size_t len)
{
    bool was_blank = false;
    int rc = 0;
    size_t i;

    if (len == 0 || line[0] != '[') {
        goto out;
    }
    for (i = 1; i < len; i++) {
        if (line[i] == ']') {
            rc = config__section(ld, line + 1, i - 1);
            break;
        }
        if (was_blank && line[i] == ';') {
            break;
        }
        was_blank = is_blank(line[i]);
    }
out:
    return rc;
}

/* inih's fgets-style reader over ld->src; see the file comment. */
static char *reader(char *str, int num, void *stream)
{
    struct config__load *ld = stream;
    const char *line;
    char *ret = NULL;
    size_t len = 0;

    RM_ASSERT(ld != NULL && str != NULL);
    RM_ASSERT(num >= 4);
    if (ld->failed) {
        goto out;
    }
    line = next_line(ld, &len);
    if (line == NULL) {
        goto out;
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
        goto out;
    }
    if (len == 0 || line[0] == ';' || line[0] == '#') {
        /* Blank or comment: any length is fine, inih needs to see none of it. */
        memcpy(str, "\n", 2);
        ret = str;
        goto out;
    }
    if (len + 2 > (size_t)num) {
        config__fail(ld, ld->lineno, "line too long (at most %d characters)", num - 2);
        goto out;
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    if (maybe_section(ld, line, len) == 0) {
        ret = str;
    }
out:
    return ret;
}

/* inih's handler: @section is inih's (possibly truncated) copy; ours is in @ld. */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct config__load *ld = user;

    (void)section;
    RM_ASSERT(ld != NULL && name != NULL);
    RM_ASSERT(value != NULL); /* inih is built without INI_ALLOW_NO_VALUE */
    /* After an error the reader stops inih, so this call is never the second. */
    RM_ASSERT(!ld->failed);
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
