/*
 * config_ini.c - the INI reader: feed lines to inih, pass on what it finds.
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
 *  - finds the lines inih would call malformed itself, since inih reports
 *    only the first; each problem is reported and the line handed to inih
 *    as a blank one, so the parse goes on and every problem is seen
 *    (--test-config lists them all); it stops only when the file cannot be
 *    read on.
 * Headers and keys go to the caller's callbacks (struct config_ini_parse_cb),
 * never to a config file by name; errors go to config_diag, the only config
 * file this one calls.
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

/* One parse: inih's stream and handler user pointer. */
struct parse {
    struct config_ini_src *src;
    struct config_diag *diag;
    const struct config_ini_parse_cb *cb;
    unsigned lineno; /* line being parsed, 1-based */
    bool stop;       /* the input ended, or cannot be read on */
    bool bad_header; /* the last header was malformed: its keys are not passed on */
};

/*
 * The next raw line (without its '\n'), or NULL at the end or after an error
 * (a read error, a line over LINE_BYTES_MAX, no memory). Bytes are read one
 * at a time so a line without end (say -c /dev/zero) costs a bounded buffer.
 */
static const char *next_line(struct parse *ps, size_t *len)
{
    struct config_ini_src *src = ps->src;
    const char *line = NULL;
    const char *nl;
    size_t n = 0;
    int c = EOF;

    RM_ASSERT(len != NULL);
    if (src->file != NULL) {
        if (src->_line == NULL) {
            src->_line = malloc(LINE_BYTES_MAX);
            if (src->_line == NULL) {
                config_diag__fail(ps->diag, 0, "cannot read: out of memory");
                goto out;
            }
        }
        while (n <= LINE_BYTES_MAX && (c = getc(src->file)) != EOF && c != '\n') {
            if (n < LINE_BYTES_MAX) {
                src->_line[n] = (char)c;
            }
            n++;
        }
        if (c == EOF && ferror(src->file)) {
            config_diag__fail(ps->diag, 0, "cannot read: %s", strerror(errno ? errno : EIO));
            goto out;
        }
        if (c == EOF && n == 0) {
            goto out;
        }
        line = src->_line;
    } else if (src->pos < src->len) {
        line = src->buf + src->pos;
        nl = memchr(line, '\n', src->len - src->pos);
        n = nl != NULL ? (size_t)(nl - line) : src->len - src->pos;
        src->pos += n + (nl != NULL);
        RM_ASSERT(src->pos <= src->len);
    }
    if (n > LINE_BYTES_MAX) {
        config_diag__fail(ps->diag, ps->lineno + 1, "line too long (over %d bytes)",
                          LINE_BYTES_MAX);
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
 * Whether inih would call @line (@len bytes, leading blanks gone, not a
 * comment) malformed: a header without ']', or a line with no '=' or ':'
 * before an inline comment (" ;"), as its ini_parse_stream() decides
 * (built without INI_ALLOW_NO_VALUE, with inline comments).
 */
static bool malformed(const char *line, size_t len)
{
    bool was_blank = false;
    bool header = line[0] == '[';
    size_t i;

    for (i = header ? 1 : 0; i < len; i++) {
        if (was_blank && line[i] == ';') {
            break;
        }
        if (header ? line[i] == ']' : (line[i] == '=' || line[i] == ':')) {
            return false;
        }
        was_blank = is_blank(line[i]);
    }
    return true;
}

/*
 * If @line is a section header as inih sees it ("[" then text up to "]",
 * where an inline comment " ;" ends the search first), tell the caller.
 * Returns -1 if the caller refused the section. Without a closing bracket
 * the line is malformed and inih reports it.
 */
static int maybe_section(struct parse *ps, const char *line, size_t len)
{
    bool was_blank = false;
    int rc = 0;
    size_t i;

    if (len == 0 || line[0] != '[') {
        goto out;
    }
    for (i = 1; i < len; i++) {
        if (line[i] == ']') {
            ps->bad_header = false;
            rc = ps->cb->section(ps->cb->user, ps->lineno, line + 1, i - 1);
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

/* inih's fgets-style reader over ps->src; see the file comment. */
static char *reader(char *str, int num, void *stream)
{
    struct parse *ps = stream;
    const char *line;
    char *ret = NULL;
    size_t len = 0;

    RM_ASSERT(ps != NULL && str != NULL);
    RM_ASSERT(num >= 4);
    if (ps->stop) {
        goto out;
    }
    line = next_line(ps, &len);
    if (line == NULL) {
        ps->stop = true; /* the end, or no way to read on */
        goto out;
    }
    ps->lineno++;
    if (ps->lineno == 1 && len >= 3 && memcmp(line, UTF8_BOM, 3) == 0) {
        line += 3;
        len -= 3;
    }
    while (len > 0 && is_blank(line[0])) {
        line++;
        len--;
    }
    /* A line in error reaches inih as a blank one: reported once, here. */
    memcpy(str, "\n", 2);
    ret = str;
    if (memchr(line, '\0', len) != NULL) {
        config_diag__fail(ps->diag, ps->lineno, "NUL byte in line");
        goto out;
    }
    if (len == 0 || line[0] == ';' || line[0] == '#') {
        /* Blank or comment: any length is fine, inih needs to see none of it. */
        goto out;
    }
    if (len + 2 > (size_t)num) {
        config_diag__fail(ps->diag, ps->lineno, "line too long (at most %d characters)", num - 2);
        goto out;
    }
    if (malformed(line, len)) {
        config_diag__fail(ps->diag, ps->lineno,
                          "malformed line (expected [section], key = value or a ; comment)");
        /* Keys under a header that is not one would only repeat this problem. */
        ps->bad_header |= line[0] == '[';
        goto out;
    }
    memcpy(str, line, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    (void)maybe_section(ps, line, len); /* a refused header: its keys are the caller's to skip */
out:
    return ret;
}

/*
 * inih's handler: @section is inih's (possibly truncated) copy; the caller
 * saw the header whole through cb->section.
 */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *ps = user;

    (void)section;
    RM_ASSERT(ps != NULL && name != NULL);
    RM_ASSERT(value != NULL); /* inih is built without INI_ALLOW_NO_VALUE */
    /* A key in error is reported by the callback; the parse goes on past it. */
    if (!ps->bad_header) {
        (void)ps->cb->key(ps->cb->user, ps->lineno, name, value);
    }
    return 1;
}

int config_ini__parse(struct config_ini_src *src, struct config_diag *diag,
                      const struct config_ini_parse_cb *cb)
{
    struct parse ps = {.src = src, .diag = diag, .cb = cb, .lineno = 0};
    int rc;

    RM_ASSERT(src != NULL && diag != NULL && !diag->failed);
    RM_ASSERT(cb != NULL && cb->section != NULL && cb->key != NULL);
    RM_ASSERT(src->file != NULL || src->buf != NULL);
    rc = ini_parse_stream(reader, &ps, handler, &ps);
    free(src->_line);
    src->_line = NULL;
    if (rc > 0) {
        /* A line inih cannot parse that malformed() let through. */
        config_diag__fail(diag, (unsigned)rc,
                          "malformed line (expected [section], key = value or a ; comment)");
    } else if (rc < 0 && !diag->failed) {
        config_diag__fail(diag, 0, "cannot parse (inih error %d)", rc);
    }
    return diag->failed ? -1 : 0;
}
