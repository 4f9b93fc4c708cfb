/*
 * pwfile.c - reading a password file into a struct pwdb (see pwfile.h).
 */
#include "config/pwfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_diag.h"
#include "core/pwdb.h"
#include "core/pwhash.h"
#include "core/rm_assert.h"

/* A user being read, before the database is laid out. */
struct entry {
    uint32_t name_off;
    uint32_t name_len;
    uint32_t line;
    struct pwhash hash;
};

struct reader {
    struct entry *entries;
    uint32_t count;
    uint32_t cap;
    uint8_t *names;
    size_t names_len;
    size_t names_cap;
};

int pwfile_split(const char *line, size_t len, const char **user, size_t *user_len,
                 const char **rest, size_t *rest_len, const char **why)
{
    const char *colon;
    size_t i = 0;

    RM_ASSERT(line != NULL || len == 0);
    RM_ASSERT(user != NULL && rest != NULL && why != NULL);
    while (i < len && (line[i] == ' ' || line[i] == '\t')) {
        i++;
    }
    if (i == len || line[0] == '#') {
        return 0;
    }
    colon = memchr(line, ':', len);
    if (colon == NULL) {
        *why = "expected NAME:HASH (no ':' on the line)";
        return -1;
    }
    if (colon == line) {
        *why = "empty user name before ':'";
        return -1;
    }
    *user = line;
    *user_len = (size_t)(colon - line);
    *rest = colon + 1;
    *rest_len = len - *user_len - 1;
    return 1;
}

static int entry_cmp(const void *pa, const void *pb, void *ctx)
{
    const struct entry *a = pa;
    const struct entry *b = pb;
    const uint8_t *names = ctx;

    return pwdb_cmp(names + a->name_off, a->name_len, names + b->name_off, b->name_len);
}

/* Keep one entry. Returns 0 or -ENOMEM. */
static int reader_add(struct reader *r, const char *user, size_t ulen, uint32_t line,
                      const struct pwhash *h)
{
    if (r->count == r->cap) {
        uint32_t cap = r->cap ? r->cap * 2 : 16;
        struct entry *e = realloc(r->entries, cap * sizeof(*e));

        if (e == NULL) {
            return -ENOMEM;
        }
        r->entries = e;
        r->cap = cap;
    }
    if (r->names_len + ulen > r->names_cap) {
        size_t cap = r->names_cap ? r->names_cap * 2 : 256;
        uint8_t *n;

        while (cap < r->names_len + ulen) {
            cap *= 2;
        }
        n = realloc(r->names, cap);
        if (n == NULL) {
            return -ENOMEM;
        }
        r->names = n;
        r->names_cap = cap;
    }
    memcpy(r->names + r->names_len, user, ulen);
    r->entries[r->count] = (struct entry){
        .name_off = (uint32_t)r->names_len, .name_len = (uint32_t)ulen, .line = line, .hash = *h};
    r->names_len += ulen;
    r->count++;
    return 0;
}

/*
 * Lay the sorted entries out as a database; NULL after config_diag__fail()
 * for each duplicate name (every one is told), or on ENOMEM.
 */
static struct pwdb *reader_finish(struct reader *r, struct config_diag *diag)
{
    char shown[CONFIG_DIAG_ESC_MAX];
    struct pwdb *db = NULL;
    uint32_t i;

    if (r->count > 0) {
        qsort_r(r->entries, r->count, sizeof(*r->entries), entry_cmp, r->names);
    }
    for (i = 1; i < r->count; i++) {
        if (entry_cmp(&r->entries[i - 1], &r->entries[i], r->names) == 0) {
            const struct entry *a = &r->entries[i - 1];
            const struct entry *b = &r->entries[i];
            const struct entry *later = a->line > b->line ? a : b;
            const struct entry *first = a->line > b->line ? b : a;

            config_diag__fail(diag, later->line, "user '%s' is already defined on line %u",
                              config_diag__esc(shown, sizeof(shown),
                                               (const char *)r->names + later->name_off,
                                               later->name_len),
                              first->line);
        }
    }
    if (diag->failed) {
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        goto out_nomem;
    }
    db->path = strdup(diag->path);
    db->users = calloc(r->count ? r->count : 1, sizeof(*db->users));
    if (db->path == NULL || db->users == NULL) {
        pwfile_free(db);
        goto out_nomem;
    }
    db->names = r->names;
    r->names = NULL;
    db->count = r->count;
    db->cost_max = 1;
    for (i = 0; i < r->count; i++) {
        const struct entry *e = &r->entries[i];

        db->users[i] = (struct pwdb_user){.name = db->names + e->name_off,
                                          .name_len = e->name_len,
                                          .line = e->line,
                                          .hash = e->hash};
        if (pwhash_cost(&e->hash) > db->cost_max) {
            db->cost_max = pwhash_cost(&e->hash);
        }
    }
    return db;
out_nomem:
    config_diag__fail(diag, 0, "out of memory");
    return NULL;
}

/*
 * One line (@len bytes, line end cut): 0, or -1 after config_diag__fail()
 * (-ENOMEM-like problems too: the caller stops only on those, see @fatal).
 */
static int read_line(struct reader *r, struct config_diag *diag, uint32_t lineno,
                     const char *line, size_t len, bool *fatal)
{
    char shown[CONFIG_DIAG_ESC_MAX];
    const char *user;
    const char *rest;
    const char *why = NULL;
    size_t ulen;
    size_t rlen;
    struct pwhash h;
    int rc;

    if (memchr(line, '\0', len) != NULL) {
        config_diag__fail(diag, lineno, "NUL byte in the line");
        return -1;
    }
    rc = pwfile_split(line, len, &user, &ulen, &rest, &rlen, &why);
    if (rc <= 0) {
        if (rc < 0) {
            config_diag__fail(diag, lineno, "%s", why);
        }
        return rc;
    }
    config_diag__esc(shown, sizeof(shown), user, ulen);
    if (ulen > PWDB_USERNAME_BYTES_MAX) {
        config_diag__fail(diag, lineno, "user '%s': name longer than %u bytes", shown,
                          PWDB_USERNAME_BYTES_MAX);
        return -1;
    }
    if (pwhash_parse(rest, rlen, &h, &why) < 0) {
        config_diag__fail(diag, lineno, "user '%s': %s%s", shown, why,
                          rlen > 0 && rest[0] != '$' ? " (a plaintext password? ringmq-passwd -U "
                                                       "hashes a file)"
                                                     : "");
        return -1;
    }
    if (r->count == PWFILE_USERS_MAX) {
        config_diag__fail(diag, lineno, "more than %u users", PWFILE_USERS_MAX);
        *fatal = true;
        return -1;
    }
    if (reader_add(r, user, ulen, lineno, &h) < 0) {
        config_diag__fail(diag, 0, "out of memory");
        *fatal = true;
        return -1;
    }
    return 0;
}

struct pwdb *pwfile_load(const char *path, char *err, size_t err_len, int *sys_errno)
{
    struct config_diag diag;
    struct reader r = {0};
    struct pwdb *db = NULL;
    char *line = NULL;
    size_t line_cap = 0;
    uint32_t lineno = 0;
    bool fatal = false;
    ssize_t n;
    FILE *f;

    RM_ASSERT(path != NULL && err != NULL && sys_errno != NULL);
    RM_ASSERT(err_len > 0);
    *sys_errno = 0;
    config_diag__init(&diag, path, err, err_len);
    f = fopen(path, "re");
    if (f == NULL) {
        *sys_errno = errno;
        config_diag__fail(&diag, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    /* One line per pass; the file's length bounds the passes. Every bad line is told. */
    while (!fatal && (n = getline(&line, &line_cap, f)) >= 0) {
        size_t len = (size_t)n;

        lineno++;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        if (len > PWFILE_LINE_MAX) {
            config_diag__fail(&diag, lineno, "line longer than %u bytes", PWFILE_LINE_MAX);
            continue;
        }
        (void)read_line(&r, &diag, lineno, line, len, &fatal);
    }
    if (!fatal && ferror(f)) {
        *sys_errno = errno ? errno : EIO;
        config_diag__fail(&diag, 0, "cannot read: %s", strerror(*sys_errno));
    }
    if (!fatal) {
        db = reader_finish(&r, &diag);
    }
    fclose(f);
    free(line);
    free(r.entries);
    free(r.names);
    RM_ASSERT(db != NULL || err[0] != '\0');
    return db;
}

void pwfile_free(struct pwdb *db)
{
    if (db == NULL) {
        return;
    }
    free(db->users);
    free(db->names);
    free(db->path);
    free(db);
}
