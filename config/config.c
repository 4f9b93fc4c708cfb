/*
 * config.c - config_load(): read a file, store its values, check the whole.
 *
 * The top of the config module and the only file that calls more than one
 * other: it drives the INI reader (config_ini) with two callbacks, turns
 * each section header into a scope or a new listener and each key into a
 * stored value (through config_keys), records the line that set each value,
 * then runs the cross-key rules (config_check) and publishes the result.
 * Nothing below calls back up here except through those callbacks, which
 * config_ini only knows as function pointers. Start-up thread only (a
 * finished struct config is read-only).
 */
#include "config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_acl.h"
#include "config/config_check.h"
#include "config/config_diag.h"
#include "config/config_ini.h"
#include "config/config_keys.h"
#include "core/acl.h"
#include "core/rm_assert.h"

#define LISTENER_PREFIX "listener."
#define GROUP_PREFIX "group."
#define ACL_HOST_PREFIX "acl."
#define LISTENER_NAME_LEN_MAX (CONFIG_NAME_MAX - 1)
/* A section header longer than this is shown truncated and never matches. */
#define SECTION_MAX 128

/* The state of one load. Every problem is recorded, and the load reads on past it. */
struct load {
    struct config__draft draft; /* working copy; the caller's is written only on success */
    struct config_diag diag;
    char section[SECTION_MAX]; /* current header's text, "" before the first */
    enum config__scope scope;  /* kind of the current section */
    uint32_t listener;         /* index in draft.cfg.listeners while in a listener */
    bool listeners_defined;    /* a [listener.*] header was seen */
    bool skip;                 /* the current header was refused: its keys are not read */
    struct config_acl acl;     /* the [acl] and [group.*] rules read so far */
};

const struct config__key *config__keys(size_t *count)
{
    return config_keys__table(count);
}

void config_defaults(struct config *cfg)
{
    config_keys__defaults(cfg);
}

int config_log_level_parse(const char *s)
{
    size_t count;
    const struct config__key *keys = config_keys__table(&count);
    size_t k = config_keys__index(CONFIG__SCOPE_BROKER, "log_level");
    const char *const *names;
    int i;

    RM_ASSERT(s != NULL);
    RM_ASSERT(k < count && keys[k].type == CONFIG__ENUM);
    names = keys[k].names;
    for (i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            break;
        }
    }
    return names[i] != NULL ? i : -1;
}

static void load_init(struct load *ld, const char *path, char *err, size_t err_len)
{
    RM_ASSERT(ld != NULL && path != NULL);
    RM_ASSERT(err != NULL && err_len >= 1);
    memset(ld, 0, sizeof(*ld));
    config_keys__defaults(&ld->draft.cfg);
    config_diag__init(&ld->diag, path, err, err_len);
    ld->acl.group = -1;
}

void config_free(struct config *cfg)
{
    RM_ASSERT(cfg != NULL);
    acl_free(cfg->acl);
    cfg->acl = NULL;
    RM_ASSERT(cfg->acl_file_count <= CONFIG_LISTENERS_MAX);
    for (uint32_t i = 0; i < cfg->acl_file_count; i++) {
        acl_free(cfg->acl_files[i].acl);
        cfg->acl_files[i].acl = NULL;
    }
    cfg->acl_file_count = 0;
}

static bool listener_name_valid(const char *name, size_t len)
{
    bool ok = len >= 1 && len <= LISTENER_NAME_LEN_MAX;
    size_t i;

    for (i = 0; ok && i < len; i++) {
        char c = name[i];

        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    return ok;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* A [listener.NAME] header (or an unknown section); @shown is ld->section escaped. */
static int listener_begin(struct load *ld, unsigned line, size_t len, const char *shown)
{
    const size_t plen = sizeof(LISTENER_PREFIX) - 1;
    struct config *cfg = &ld->draft.cfg;
    const char *lname = ld->section + plen;
    uint32_t i;
    int rc = -1;

    RM_ASSERT(len < sizeof(ld->section));
    RM_ASSERT(plen < sizeof(ld->section));
    if (len < plen || memcmp(ld->section, LISTENER_PREFIX, plen) != 0) {
        config_diag__fail(&ld->diag, line,
                          "[%s]: unknown section (expected " CONFIG__SECTIONS_EXPECTED ")", shown);
        goto out;
    }
    if (!listener_name_valid(lname, len - plen)) {
        config_diag__fail(&ld->diag, line,
                          "[%s]: bad listener name (expected 1..%d of A-Z a-z 0-9 _ -)", shown,
                          LISTENER_NAME_LEN_MAX);
        goto out;
    }
    if (!ld->listeners_defined) {
        /* The file's listeners replace the default one. */
        ld->listeners_defined = true;
        cfg->listener_count = 0;
    }
    for (i = 0; i < cfg->listener_count; i++) {
        if (strcmp(cfg->listeners[i].name, lname) == 0) {
            config_diag__fail(&ld->diag, line,
                              "[%s]: duplicate listener (first defined on line %u)", shown,
                              ld->draft.listener_line[i]);
            goto out;
        }
    }
    if (cfg->listener_count == CONFIG_LISTENERS_MAX) {
        config_diag__fail(&ld->diag, line, "[%s]: too many listeners (at most %d)", shown,
                          CONFIG_LISTENERS_MAX);
        goto out;
    }
    i = cfg->listener_count++;
    config_keys__listener_defaults(cfg, i, lname);
    ld->draft.listener_line[i] = line;
    memset(ld->draft.listener_key_line[i], 0, sizeof(ld->draft.listener_key_line[i]));
    ld->listener = i;
    ld->scope = CONFIG__SCOPE_LISTENER;
    rc = 0;
out:
    return rc;
}

/*
 * The reader's section callback: a header "[@name]" (@name as written
 * between the brackets, @len bytes) starts on @line. Returns 0, or -1 after
 * config_diag__fail() for an unknown section, a bad or duplicate listener
 * name, or too many listeners.
 */
static int load_section(void *user, unsigned line, const char *name, size_t len)
{
    struct load *ld = user;
    char shown[SECTION_MAX * 4];
    enum config__scope scope;
    int rc = 0;

    RM_ASSERT(ld != NULL && name != NULL);
    /* "[ limits ]" means [limits]: inih keeps the blanks, we do not. */
    while (len > 0 && is_blank(name[0])) {
        name++;
        len--;
    }
    while (len > 0 && is_blank(name[len - 1])) {
        len--;
    }
    if (len >= sizeof(ld->section)) {
        len = sizeof(ld->section) - 1;
    }
    memcpy(ld->section, name, len);
    ld->section[len] = '\0';
    config_diag__esc(shown, sizeof(shown), ld->section, len);

    scope = config_keys__scope(ld->section);
    if (strcmp(ld->section, "acl") == 0) {
        ld->scope = CONFIG__SCOPE_ACL;
        rc = config_acl__section(&ld->acl, &ld->diag, line, NULL, 0);
    } else if (len >= sizeof(ACL_HOST_PREFIX) - 1 &&
               memcmp(ld->section, ACL_HOST_PREFIX, sizeof(ACL_HOST_PREFIX) - 1) == 0) {
        ld->scope = CONFIG__SCOPE_ACL;
        rc = config_acl__host_section(&ld->acl, &ld->diag, line,
                                      ld->section + sizeof(ACL_HOST_PREFIX) - 1,
                                      len - (sizeof(ACL_HOST_PREFIX) - 1));
    } else if (len > sizeof(GROUP_PREFIX) - 1 &&
               memcmp(ld->section, GROUP_PREFIX, sizeof(GROUP_PREFIX) - 1) == 0) {
        ld->scope = CONFIG__SCOPE_GROUP;
        rc = config_acl__section(&ld->acl, &ld->diag, line, ld->section + sizeof(GROUP_PREFIX) - 1,
                                 len - (sizeof(GROUP_PREFIX) - 1));
    } else if (scope != CONFIG__SCOPE_NONE) {
        ld->scope = scope;
    } else {
        rc = listener_begin(ld, line, len, shown);
    }
    RM_ASSERT(rc == 0 || ld->diag.failed);
    /* Its keys would only add problems that are this one. */
    ld->skip = rc != 0;
    return rc;
}

/*
 * The reader's key callback: set key @name to @value on @line, in the
 * current section. Returns 0, or -1 after config_diag__fail() for a key
 * outside any section, an unknown or duplicate key, or a bad value.
 */
static int load_key(void *user, unsigned line, const char *name, const char *value)
{
    struct load *ld = user;
    char shown_sec[SECTION_MAX * 4];
    char shown_key[CONFIG_DIAG_ESC_MAX];
    char why[CONFIG_ERR_MAX];
    const struct config__key *keys;
    const struct config__key *k;
    const char *hint;
    const char *home;
    unsigned *set_line;
    size_t count;
    size_t i;
    int rc = -1;

    RM_ASSERT(ld != NULL && name != NULL && value != NULL);
    if (ld->skip) {
        return 0;
    }
    keys = config_keys__table(&count);
    config_diag__esc(shown_key, sizeof(shown_key), name, strlen(name));
    if (ld->scope == CONFIG__SCOPE_NONE) {
        config_diag__fail(&ld->diag, line,
                          "%s: key outside any section (expected " CONFIG__SECTIONS_EXPECTED
                          " above it)",
                          shown_key);
        goto out;
    }
    config_diag__esc(shown_sec, sizeof(shown_sec), ld->section, sizeof(ld->section));
    if (name[0] == '\0') {
        config_diag__fail(&ld->diag, line, "[%s]: missing key name before '='", shown_sec);
        goto out;
    }
    if (ld->scope == CONFIG__SCOPE_ACL || ld->scope == CONFIG__SCOPE_GROUP) {
        /* Ordered, repeatable lines: not table keys. */
        rc = config_acl__key(&ld->acl, &ld->diag, line, ld->scope == CONFIG__SCOPE_GROUP, name,
                             value);
        goto out;
    }
    i = config_keys__index(ld->scope, name);
    if (i == count) {
        config_keys__hint(ld->scope, name, &hint, &home);
        if (hint != NULL) {
            config_diag__fail(&ld->diag, line, "[%s] %s: unknown key (did you mean %s?)", shown_sec,
                              shown_key, hint);
        } else if (home != NULL) {
            config_diag__fail(&ld->diag, line, "[%s] %s: unknown key (it belongs in [%s])",
                              shown_sec, shown_key, home);
        } else {
            config_diag__fail(&ld->diag, line, "[%s] %s: unknown key", shown_sec, shown_key);
        }
        goto out;
    }
    k = &keys[i];
    if (k->scope == CONFIG__SCOPE_LISTENER) {
        RM_ASSERT(ld->listener < ld->draft.cfg.listener_count);
        set_line = &ld->draft.listener_key_line[ld->listener][i];
    } else {
        set_line = &ld->draft.key_line[i];
    }
    if (*set_line != 0) {
        config_diag__fail(&ld->diag, line, "[%s] %s: duplicate key (first set on line %u)",
                          shown_sec, shown_key, *set_line);
        goto out;
    }
    if (config_keys__store(k, config_keys__field(&ld->draft.cfg, k, ld->listener), value, why,
                           sizeof(why)) != 0) {
        config_diag__fail(&ld->diag, line, "[%s] %s: %s", shown_sec, shown_key, why);
        goto out;
    }
    *set_line = line;
    rc = 0;
out:
    return rc;
}

/*
 * Give each listener [auth]'s password_file, acl_file and allow_anonymous
 * unless it set its own, then resolve allow_anonymous = auto: off where a
 * password file applies, on elsewhere.
 */
static void inherit_auth(struct config__draft *d)
{
    const struct config_auth *a = &d->cfg.auth;
    size_t pw = config_keys__index(CONFIG__SCOPE_LISTENER, "password_file");
    size_t acl = config_keys__index(CONFIG__SCOPE_LISTENER, "acl_file");
    size_t anon = config_keys__index(CONFIG__SCOPE_LISTENER, "allow_anonymous");
    size_t count;
    uint32_t i;

    config_keys__table(&count);
    RM_ASSERT(pw < count && acl < count && anon < count);
    for (i = 0; i < d->cfg.listener_count; i++) {
        struct config_listener *l = &d->cfg.listeners[i];
        const unsigned *set = d->listener_key_line[i];

        if (set[pw] == 0) {
            memcpy(l->password_file, a->password_file, sizeof(l->password_file));
        }
        if (set[acl] == 0) {
            memcpy(l->acl_file, a->acl_file, sizeof(l->acl_file));
        }
        if (set[anon] == 0) {
            l->allow_anonymous = a->allow_anonymous;
        }
        if (l->allow_anonymous == CONFIG_AUTO) {
            l->allow_anonymous = l->password_file[0] == '\0' ? CONFIG_ON : CONFIG_OFF;
        }
        RM_ASSERT(l->allow_anonymous == CONFIG_ON || l->allow_anonymous == CONFIG_OFF);
    }
}

/*
 * Split [broker] hosts into d->cfg.hosts, each name checked (vhost_add()):
 * 0, or -1 with the message against the key's line.
 */
static int build_hosts(struct config__draft *d, struct config_diag *diag)
{
    size_t key = config_keys__index(CONFIG__SCOPE_BROKER, "hosts");
    const char *p = d->cfg.hosts_text;
    int rc = 0;

    memset(&d->cfg.hosts, 0, sizeof(d->cfg.hosts));
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *why = NULL;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) {
            len--;
        }
        if (vhost_add(&d->cfg.hosts, p, len, &why) < 0) {
            config_diag__fail(diag, d->key_line[key], "[broker] hosts: %s: '%.*s'", why,
                              (int)(len < 64 ? len : 64), p);
            rc = -1; /* the others are still checked */
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return rc;
}

/*
 * [auth] acl_file is every listener's ACL unless it sets its own, so it
 * and the [acl]/[group.*] rules (the ACL of listeners without a file)
 * cannot both be given. Returns 0 or -1 after config_diag__fail().
 */
static int acl_sources_check(struct load *ld)
{
    const struct config__draft *d = &ld->draft;
    size_t akey = config_keys__index(CONFIG__SCOPE_AUTH, "acl_file");
    size_t count;

    config_keys__table(&count);
    RM_ASSERT(akey < count);
    if (d->cfg.auth.acl_file[0] == '\0' || !ld->acl.any)
        return 0;
    config_diag__fail(&ld->diag, d->key_line[akey],
                      "[auth] acl_file: cannot be used with the [acl]/[group.*] rules of "
                      "line %u; keep one of the two",
                      ld->acl.first_line);
    return -1;
}

/* Whether @path opens and reads (a directory opens, then fails with EISDIR). */
static bool readable(const char *path)
{
    FILE *f = fopen(path, "re");
    bool ok = f != NULL && (getc(f), !ferror(f));

    if (f != NULL) {
        fclose(f);
    }
    return ok;
}

/*
 * Load each distinct acl_file the listeners name (their own or [auth]'s)
 * once into d->cfg.acl_files; its problems read ACL_FILE:LINE: problem.
 * Returns 0 or -1 after config_diag__fail().
 */
static int acl_files_load(struct load *ld)
{
    struct config *cfg = &ld->draft.cfg;

    char *err = malloc(CONFIG_ERRS_MAX);
    int rc = 0;

    RM_ASSERT(cfg->acl_file_count == 0);
    RM_ASSERT(cfg->listener_count <= CONFIG_LISTENERS_MAX);
    for (uint32_t i = 0; i < cfg->listener_count; i++) {
        const char *path = cfg->listeners[i].acl_file;
        bool seen = path[0] == '\0';
        struct acl *acl = NULL;

        for (uint32_t j = 0; !seen && j < cfg->acl_file_count; j++)
            seen = strcmp(cfg->acl_files[j].path, path) == 0;
        /* One config_check found unreadable is reported there, at the key that names it. */
        if (seen || !readable(path))
            continue;
        if (err == NULL) {
            config_diag__fail(&ld->diag, 0, "%s: out of memory", path);
            rc = -1;
            break;
        }
        if (config_acl__file_load(path, &acl, err, CONFIG_ERRS_MAX) < 0) {
            config_diag__fail_raw(&ld->diag, err);
            rc = -1; /* the other files are read too */
            continue;
        }
        RM_ASSERT(acl != NULL && cfg->acl_file_count < CONFIG_LISTENERS_MAX);
        memcpy(cfg->acl_files[cfg->acl_file_count].path, path, CONFIG_PATH_MAX);
        cfg->acl_files[cfg->acl_file_count++].acl = acl;
    }
    free(err);
    return rc;
}

/* Parse @src, check, and publish the result into @cfg on success. */
static int load(struct config *cfg, struct load *ld, struct config_ini_src *src)
{
    const struct config_ini_parse_cb cb = {.section = load_section, .key = load_key, .user = ld};
    int rc;

    RM_ASSERT(cfg != NULL && ld != NULL && src != NULL);
    /*
     * Every step runs, whatever the ones before found, so one load lists
     * every problem (--test-config); a value in error kept its default, so
     * the later steps see a complete configuration.
     */
    rc = config_ini__parse(src, &ld->diag, &cb);
    inherit_auth(&ld->draft);
    rc |= build_hosts(&ld->draft, &ld->diag);
    rc |= config_acl__finish(&ld->acl, &ld->diag, &ld->draft.cfg.hosts, &ld->draft.cfg.acl);
    rc |= acl_sources_check(ld);
    rc |= config_check__run(&ld->draft, &ld->diag);
    rc |= acl_files_load(ld);
    if (ld->diag.failed) {
        rc = -1;
    }
    if (rc == 0) {
        RM_ASSERT(!ld->diag.failed && ld->draft.cfg.listener_count >= 1);
        memcpy(cfg, &ld->draft.cfg, sizeof(*cfg));
    } else {
        config_acl__discard(&ld->acl);
        config_free(&ld->draft.cfg);
    }
    RM_ASSERT(rc == 0 || ld->diag.failed);
    return rc == 0 ? 0 : -1;
}

int config_load(struct config *cfg, const char *path, char *err, size_t err_len)
{
    struct config_ini_src src = {0};
    struct load ld;
    FILE *f;
    int rc;

    RM_ASSERT(cfg != NULL && path != NULL);
    RM_ASSERT(err != NULL && err_len >= 1);
    f = fopen(path, "re");
    if (f == NULL) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        rc = -1;
        goto out;
    }
    load_init(&ld, path, err, err_len);
    src.file = f;
    rc = load(cfg, &ld, &src);
    fclose(f);
out:
    return rc;
}

int config__load_buffer(struct config *cfg, const char *name, const void *data, size_t len,
                        char *err, size_t err_len)
{
    struct config_ini_src src = {0};
    struct load ld;

    RM_ASSERT(cfg != NULL && name != NULL);
    RM_ASSERT(data != NULL || len == 0);
    load_init(&ld, name, err, err_len);
    src.buf = data != NULL ? data : "";
    src.len = len;
    return load(cfg, &ld, &src);
}
