/*
 * config_acl.c - access control from the configuration (see config_acl.h).
 *
 * Both formats end as one ordered core/acl rule list: [acl] lines keep the
 * order they are written in (first match wins), a mosquitto acl_file is
 * reordered into mosquitto's own precedence. Calls core/acl, core/topic
 * (through it) and config_diag. Start-up (and reload) thread only.
 */
#include "config/config_acl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acl.h"
#include "core/limits.h"
#include "core/rm_assert.h"
#include "core/topic.h"

#define VALUE_SHOWN_MAX CONFIG_DIAG_ESC_MAX
/* Entries of one mosquitto file, a bound on hostile input (as many as the rules allowed). */
#define FILE_ENTRIES_MAX ACL_RULES_MAX

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static bool group_name_valid(const char *name, size_t len)
{
    bool ok = len >= 1 && len <= CONFIG_ACL_GROUP_NAME_MAX;
    for (size_t i = 0; ok && i < len; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    return ok;
}

/* The ACL being built, created on first use. */
static struct acl *acl_get(struct config_acl *ca, struct config_diag *diag, unsigned line)
{
    if (!ca->acl) {
        ca->acl = acl_new();
        if (!ca->acl)
            config_diag__fail(diag, line, "out of memory");
    }
    return ca->acl;
}

int config_acl__section(struct config_acl *ca, struct config_diag *diag, unsigned line,
                        const char *group, size_t len)
{
    char shown[VALUE_SHOWN_MAX];
    RM_ASSERT(ca != NULL && diag != NULL);
    if (!ca->any)
        ca->first_line = line;
    ca->any = true;
    ca->group = -1;
    ca->host = 0;
    if (!acl_get(ca, diag, line))
        return -1;
    if (!group)
        return 0;
    config_diag__esc(shown, sizeof(shown), group, len);
    if (!group_name_valid(group, len)) {
        config_diag__fail(diag, line,
                          "[group.%s]: bad group name (expected 1..%d of A-Z a-z 0-9 _ -)", shown,
                          CONFIG_ACL_GROUP_NAME_MAX);
        return -1;
    }
    int g = acl_group_add(ca->acl, group, len);
    if (g == -EEXIST) {
        config_diag__fail(diag, line, "[group.%s]: duplicate group", shown);
    } else if (g == -E2BIG) {
        config_diag__fail(diag, line, "[group.%s]: too many groups (at most %d)", shown,
                          ACL_GROUPS_MAX);
    } else if (g < 0) {
        config_diag__fail(diag, line, "[group.%s]: out of memory", shown);
    }
    ca->group = g;
    if (g >= 0) {
        memcpy(ca->group_name, group, len);
        ca->group_name[len] = '\0';
    }
    return g < 0 ? -1 : 0;
}

int config_acl__host_section(struct config_acl *ca, struct config_diag *diag, unsigned line,
                             const char *host, size_t len)
{
    char shown[VALUE_SHOWN_MAX];
    uint32_t h;

    RM_ASSERT(ca != NULL && diag != NULL && host != NULL);
    RM_ASSERT(ca->host_count <= VHOST_MAX);
    if (config_acl__section(ca, diag, line, NULL, 0) < 0)
        return -1;
    config_diag__esc(shown, sizeof(shown), host, len);
    if (len == 0 || len > VHOST_NAME_MAX) {
        config_diag__fail(diag, line, "[acl.%s]: bad host name (expected 1..%u bytes)", shown,
                          VHOST_NAME_MAX);
        return -1;
    }
    for (h = 0; h < ca->host_count; h++) {
        if (strlen(ca->host_name[h]) == len && memcmp(ca->host_name[h], host, len) == 0)
            break;
    }
    if (h == ca->host_count) {
        if (h == VHOST_MAX) {
            config_diag__fail(diag, line, "[acl.%s]: too many hosts (at most %u)", shown,
                              VHOST_MAX);
            return -1;
        }
        memcpy(ca->host_name[h], host, len);
        ca->host_name[h][len] = '\0';
        ca->host_line[h] = line;
        ca->host_count++;
    }
    ca->host = (uint8_t)(h + 1);
    return 0;
}

/* The section a key is in, for messages: "acl" or "acl.HOST". */
static const char *acl_scope(const struct config_acl *ca, char *buf, size_t len)
{
    RM_ASSERT(ca->host <= ca->host_count);
    if (ca->host == 0)
        return "acl";
    snprintf(buf, len, "acl.%s", ca->host_name[ca->host - 1]);
    return buf;
}

/* "users = a, b, c": each name, blanks around it trimmed; an empty one is an error. */
static int group_users(struct config_acl *ca, struct config_diag *diag, unsigned line,
                       const char *value)
{
    const char *p = value;
    RM_ASSERT(ca->group >= 0);
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *b = p;
        const char *e = end;
        while (b < e && is_blank(*b))
            b++;
        while (e > b && is_blank(e[-1]))
            e--;
        if (b == e) {
            config_diag__fail(diag, line, "[group.%s] users: empty user name in the list",
                              ca->group_name);
            return -1;
        }
        if (acl_group_add_member(ca->acl, ca->group, b, (size_t)(e - b)) < 0) {
            config_diag__fail(diag, line, "[group.%s] users: out of memory", ca->group_name);
            return -1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

static int parse_verdict(const char *s, size_t len, bool *allow)
{
    if (len == 5 && memcmp(s, "allow", 5) == 0) {
        *allow = true;
        return 0;
    }
    if (len == 4 && memcmp(s, "deny", 4) == 0) {
        *allow = false;
        return 0;
    }
    return -1;
}

/* The last blank-separated word of @s[0..*len): its start; *len shrinks to what precedes it. */
static const char *last_word(const char *s, size_t *len, size_t *wlen)
{
    size_t e = *len;
    while (e > 0 && is_blank(s[e - 1]))
        e--;
    size_t b = e;
    while (b > 0 && !is_blank(s[b - 1]))
        b--;
    *wlen = e - b;
    *len = b;
    return s + b;
}

/* "FILTER allow|deny WHO" for access @access; the filter may hold blanks. */
static int acl_line(struct config_acl *ca, struct config_diag *diag, unsigned line,
                    const char *name, uint8_t access, const char *value)
{
    char shown[VALUE_SHOWN_MAX];
    char sbuf[VHOST_NAME_MAX + 8];
    const char *sec = acl_scope(ca, sbuf, sizeof(sbuf));
    struct acl_rule_spec spec = {.access = access, .line = line, .host = ca->host};
    size_t len = strlen(value);
    size_t who_len, verdict_len;
    const char *who = last_word(value, &len, &who_len);
    const char *verdict = last_word(value, &len, &verdict_len);
    while (len > 0 && is_blank(value[len - 1]))
        len--;
    config_diag__esc(shown, sizeof(shown), value, strlen(value));
    if (who_len == 0 || verdict_len == 0 || len == 0) {
        config_diag__fail(diag, line, "[%s] %s: expected \"FILTER allow|deny WHO\", got \"%s\"",
                          sec, name, shown);
        return -1;
    }
    if (parse_verdict(verdict, verdict_len, &spec.allow) < 0) {
        config_diag__esc(shown, sizeof(shown), verdict, verdict_len);
        config_diag__fail(diag, line, "[%s] %s: expected allow or deny, got \"%s\"", sec, name,
                          shown);
        return -1;
    }
    if (who_len == 3 && memcmp(who, "all", 3) == 0) {
        spec.who = ACL_WHO_ALL;
    } else if (who_len == 9 && memcmp(who, "anonymous", 9) == 0) {
        spec.who = ACL_WHO_ANONYMOUS;
    } else if (who[0] == '@') {
        spec.who = ACL_WHO_GROUP;
        spec.name = who + 1;
        spec.name_len = who_len - 1;
        if (!group_name_valid(spec.name, spec.name_len)) {
            config_diag__esc(shown, sizeof(shown), who, who_len);
            config_diag__fail(diag, line,
                              "[%s] %s: bad group \"%s\" (expected @NAME, NAME 1..%d of "
                              "A-Z a-z 0-9 _ -)",
                              sec, name, shown, CONFIG_ACL_GROUP_NAME_MAX);
            return -1;
        }
    } else {
        spec.who = ACL_WHO_USER;
        spec.name = who;
        spec.name_len = who_len;
    }
    spec.filter = value;
    spec.filter_len = len;
    int rc = acl_rule_add(ca->acl, &spec);
    if (rc == -EINVAL) {
        config_diag__esc(shown, sizeof(shown), value, len);
        config_diag__fail(diag, line, "[%s] %s: invalid topic filter \"%s\"", sec, name,
                          shown);
    } else if (rc == -E2BIG) {
        config_diag__fail(diag, line, "[%s] %s: too many rules (at most %d)", sec, name,
                          ACL_RULES_MAX);
    } else if (rc < 0) {
        config_diag__fail(diag, line, "[%s] %s: out of memory", sec, name);
    }
    return rc < 0 ? -1 : 0;
}

int config_acl__key(struct config_acl *ca, struct config_diag *diag, unsigned line, bool in_group,
                    const char *name, const char *value)
{
    char shown[VALUE_SHOWN_MAX];
    RM_ASSERT(ca != NULL && ca->acl != NULL);
    RM_ASSERT(name != NULL && value != NULL);
    config_diag__esc(shown, sizeof(shown), name, strlen(name));
    if (in_group) {
        if (strcmp(name, "users") != 0) {
            config_diag__fail(diag, line, "[group.%s] %s: unknown key (expected users)",
                              ca->group_name, shown);
            return -1;
        }
        return group_users(ca, diag, line, value);
    }
    if (strcmp(name, "publish") == 0)
        return acl_line(ca, diag, line, name, ACL_PUBLISH, value);
    if (strcmp(name, "subscribe") == 0)
        return acl_line(ca, diag, line, name, ACL_SUBSCRIBE | ACL_READ, value);
    if (strcmp(name, "default") == 0) {
        bool allow;
        if (ca->host != 0) {
            config_diag__fail(diag, line,
                              "[acl.%s] default: only in [acl] (one default for every host)",
                              ca->host_name[ca->host - 1]);
            return -1;
        }
        if (ca->default_line) {
            config_diag__fail(diag, line, "[acl] default: duplicate key (first set on line %u)",
                              ca->default_line);
            return -1;
        }
        if (parse_verdict(value, strlen(value), &allow) < 0) {
            config_diag__esc(shown, sizeof(shown), value, strlen(value));
            config_diag__fail(diag, line, "[acl] default: expected allow or deny, got \"%s\"",
                              shown);
            return -1;
        }
        acl_set_default(ca->acl, allow);
        ca->default_line = line;
        return 0;
    }
    if (ca->host != 0) {
        config_diag__fail(diag, line, "[acl.%s] %s: unknown key (expected publish or subscribe)",
                          ca->host_name[ca->host - 1], shown);
        return -1;
    }
    config_diag__fail(diag, line, "[acl] %s: unknown key (expected publish, subscribe or default)",
                      shown);
    return -1;
}

/*
 * Give each [acl.HOST] the number [broker] hosts gives HOST. Returns 0, or
 * -1 after config_diag__fail() at the header of one it does not declare.
 */
static int hosts_resolve(struct config_acl *ca, struct config_diag *diag,
                         const struct vhost_table *hosts)
{
    uint8_t map[VHOST_MAX + 1] = {0};
    char shown[VALUE_SHOWN_MAX];
    bool bad = false;

    RM_ASSERT(ca->host_count <= VHOST_MAX);
    RM_ASSERT(hosts == NULL || hosts->count <= VHOST_MAX);
    for (uint32_t h = 0; h < ca->host_count; h++) {
        size_t len = strlen(ca->host_name[h]);
        for (uint32_t i = 0; hosts && i < hosts->count && !map[h + 1]; i++) {
            if (hosts->len[i] == len && memcmp(hosts->name[i], ca->host_name[h], len) == 0)
                map[h + 1] = (uint8_t)(i + 1); /* vhost_add()'s numbering */
        }
        if (!map[h + 1]) {
            config_diag__esc(shown, sizeof(shown), ca->host_name[h], len);
            config_diag__fail(diag, ca->host_line[h],
                              "[acl.%s]: unknown host (not in [broker] hosts)", shown);
            bad = true; /* each one is told */
        }
    }
    if (bad)
        return -1;
    int rc = acl_hosts_renumber(ca->acl, map, ca->host_count + 1);
    RM_ASSERT(rc == 0); /* distinct names, each found once */
    return rc;
}

/* acl_undefined_groups()'s report: one problem per rule naming an undefined group. */
static void undefined_group(void *ctx, unsigned line, const char *name)
{
    char shown[VALUE_SHOWN_MAX];

    config_diag__esc(shown, sizeof(shown), name, strlen(name));
    config_diag__fail(ctx, line, "[acl] unknown group @%s (no [group.%s] section)", shown, shown);
}

int config_acl__finish(struct config_acl *ca, struct config_diag *diag,
                       const struct vhost_table *hosts, struct acl **out)
{
    unsigned bad_line = 0;
    const char *bad_name = NULL;
    RM_ASSERT(ca != NULL && out != NULL);
    RM_ASSERT(diag != NULL);
    *out = NULL;
    if (!ca->acl)
        return 0;
    int rc = hosts_resolve(ca, diag, hosts);
    /* Every rule naming an undefined group is told, not only the first. */
    acl_undefined_groups(ca->acl, undefined_group, diag);
    if (rc < 0 || acl_finish(ca->acl, &bad_line, &bad_name) < 0) {
        config_acl__discard(ca);
        return -1;
    }
    *out = ca->acl;
    ca->acl = NULL;
    return 0;
}

void config_acl__discard(struct config_acl *ca)
{
    RM_ASSERT(ca != NULL);
    acl_free(ca->acl);
    ca->acl = NULL;
}

/* ------------------------------------------------------ mosquitto acl_file */

/* One "topic" or "pattern" line of a mosquitto file, kept until the rules are ordered. */
struct file_entry {
    char *filter; /* owned */
    char *user;   /* owned; NULL: anonymous ("topic" before any "user") or a pattern */
    uint8_t access;
    bool allow;
    bool pattern;
    unsigned line;
};

struct file_entries {
    struct file_entry *v;
    size_t n;
    size_t cap;
};

static void entries_free(struct file_entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->v[i].filter);
        free(es->v[i].user);
    }
    free(es->v);
}

static char *copy_str(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* The next blank-separated word of [*p, end): its start and length; *p moves past it. */
static const char *next_word(const char **p, const char *end, size_t *len)
{
    const char *s = *p;
    while (s < end && is_blank(*s))
        s++;
    const char *b = s;
    while (s < end && !is_blank(*s))
        s++;
    *len = (size_t)(s - b);
    *p = s;
    return b;
}

/* "topic|pattern [ACCESS] FILTER" after its first word (@p..@end). */
static int file_rule(struct file_entries *es, struct config_diag *diag, unsigned line,
                     const char *p, const char *end, const char *user, bool pattern, bool *fatal)
{
    char shown[VALUE_SHOWN_MAX];
    size_t alen;
    const char *access = next_word(&p, end, &alen);
    const char *filter = p;
    while (filter < end && is_blank(*filter))
        filter++;
    const char *fend = end;
    while (fend > filter && is_blank(fend[-1]))
        fend--;
    struct file_entry e = {.allow = true, .pattern = pattern, .line = line};
    if (alen == 0) {
        config_diag__fail(diag, line, "%s: missing topic filter", pattern ? "pattern" : "topic");
        return -1;
    }
    if (filter == fend) {
        /* One word: it is the filter, read and write (as mosquitto reads it). */
        filter = access;
        fend = access + alen;
        e.access = ACL_ACCESS_ALL;
    } else if (alen == 4 && memcmp(access, "read", 4) == 0) {
        e.access = ACL_SUBSCRIBE | ACL_READ;
    } else if (alen == 5 && memcmp(access, "write", 5) == 0) {
        e.access = ACL_PUBLISH;
    } else if (alen == 9 && memcmp(access, "readwrite", 9) == 0) {
        e.access = ACL_ACCESS_ALL;
    } else if (alen == 4 && memcmp(access, "deny", 4) == 0) {
        e.access = ACL_ACCESS_ALL;
        e.allow = false;
    } else {
        config_diag__esc(shown, sizeof(shown), access, alen);
        config_diag__fail(diag, line,
                          "%s: invalid access \"%s\" (expected read, write, readwrite or deny)",
                          pattern ? "pattern" : "topic", shown);
        return -1;
    }
    /* Checked here, in line order, as acl_rule_add() will (filters as MQTT allows them). */
    struct limits lim = {.topic_bytes_max = 65535, .topic_levels_max = 65535};
    if (topic_filter_check((const uint8_t *)filter, (size_t)(fend - filter), &lim) < 0) {
        config_diag__esc(shown, sizeof(shown), filter, (size_t)(fend - filter));
        config_diag__fail(diag, line, "invalid topic filter \"%s\"", shown);
        return -1;
    }
    if (es->n == FILE_ENTRIES_MAX) {
        config_diag__fail(diag, line, "too many rules (at most %d)", FILE_ENTRIES_MAX);
        *fatal = true;
        return -1;
    }
    if (es->n == es->cap) {
        size_t ncap = es->cap ? es->cap * 2 : 32;
        struct file_entry *n = realloc(es->v, ncap * sizeof(*n));
        if (!n)
            goto nomem;
        es->v = n;
        es->cap = ncap;
    }
    e.filter = copy_str(filter, (size_t)(fend - filter));
    e.user = user && !pattern ? copy_str(user, strlen(user)) : NULL;
    if (!e.filter || (user && !pattern && !e.user)) {
        free(e.filter);
        free(e.user);
        goto nomem;
    }
    es->v[es->n++] = e;
    return 0;
nomem:
    config_diag__fail(diag, line, "out of memory");
    *fatal = true;
    return -1;
}

/* Add the entries of one precedence class (pattern?, deny?) to @acl, in file order. */
static int file_add_class(struct acl *acl, const struct file_entries *es, struct config_diag *diag,
                          bool pattern, bool allow)
{
    char shown[VALUE_SHOWN_MAX];
    int bad = 0;
    for (size_t i = 0; i < es->n; i++) {
        const struct file_entry *e = &es->v[i];
        if (e->pattern != pattern || e->allow != allow)
            continue;
        struct acl_rule_spec spec = {
            .filter = e->filter,
            .filter_len = strlen(e->filter),
            .access = e->access,
            .allow = e->allow,
            .who = pattern   ? ACL_WHO_ALL
                   : e->user ? ACL_WHO_USER
                             : ACL_WHO_ANONYMOUS,
            .name = e->user,
            .name_len = e->user ? strlen(e->user) : 0,
            .line = e->line,
        };
        int rc = acl_rule_add(acl, &spec);
        if (rc == -EINVAL) {
            /* Told, and the other lines still read: every bad filter is told. */
            config_diag__esc(shown, sizeof(shown), e->filter, strlen(e->filter));
            config_diag__fail(diag, e->line, "invalid topic filter \"%s\"", shown);
            bad = -1;
        } else if (rc < 0) {
            config_diag__fail(diag, e->line, rc == -E2BIG ? "too many rules" : "out of memory");
            return -1;
        }
    }
    return bad;
}

/* Parse every line of @f into @es (user lines set the owner of later topic lines). */
static int file_parse(FILE *f, struct config_diag *diag, struct file_entries *es)
{
    char shown[VALUE_SHOWN_MAX];
    char *buf = NULL;
    size_t cap = 0;
    char *user = NULL;
    unsigned line = 0;
    ssize_t n;
    int rc = 0;
    bool fatal = false;

    /* Every line is read: each bad one is told (fatal: out of memory, too many rules). */
    while (!fatal && (n = getline(&buf, &cap, f)) >= 0) {
        const char *p = buf;
        const char *end = buf + n;
        size_t wlen;
        line++;
        if (memchr(buf, '\0', (size_t)n)) {
            config_diag__fail(diag, line, "NUL byte in the line");
            rc = -1;
            continue;
        }
        const char *word = next_word(&p, end, &wlen);
        if (wlen == 0 || word[0] == '#')
            continue; /* blank line, or a comment */
        if (wlen == 5 && memcmp(word, "topic", 5) == 0) {
            rc |= file_rule(es, diag, line, p, end, user, false, &fatal);
        } else if (wlen == 7 && memcmp(word, "pattern", 7) == 0) {
            rc |= file_rule(es, diag, line, p, end, NULL, true, &fatal);
        } else if (wlen == 4 && memcmp(word, "user", 4) == 0) {
            while (p < end && is_blank(*p))
                p++;
            while (end > p && is_blank(end[-1]))
                end--;
            free(user);
            user = NULL;
            if (p == end) {
                /* Its topic lines are read as anonymous ones: the load fails anyway. */
                config_diag__fail(diag, line, "user: missing user name");
                rc = -1;
                continue;
            }
            user = copy_str(p, (size_t)(end - p));
            if (!user) {
                config_diag__fail(diag, line, "out of memory");
                rc = -1;
                fatal = true;
            }
        } else {
            config_diag__esc(shown, sizeof(shown), word, wlen);
            config_diag__fail(diag, line,
                              "invalid line: \"%s\" (expected user, topic, pattern or a # "
                              "comment)",
                              shown);
            rc = -1;
        }
    }
    if (!fatal && ferror(f)) {
        config_diag__fail(diag, 0, "read error");
        rc = -1;
    }
    free(user);
    free(buf);
    return rc;
}

int config_acl__file_load(const char *path, struct acl **out, char *err, size_t err_len)
{
    struct config_diag diag;
    struct file_entries es = {0};
    struct acl *acl = NULL;
    unsigned bad_line;
    const char *bad_name;
    int rc = -1;

    RM_ASSERT(path != NULL && out != NULL);
    RM_ASSERT(err != NULL && err_len >= 1);
    *out = NULL;
    config_diag__init(&diag, path, err, err_len);
    FILE *f = fopen(path, "re");
    if (!f) {
        config_diag__fail(&diag, 0, "cannot open: %s", strerror(errno));
        return -1;
    }
    /* Every line is read and told before the rules are built. */
    if (file_parse(f, &diag, &es) < 0)
        goto out;
    acl = acl_new();
    if (!acl) {
        config_diag__fail(&diag, 0, "out of memory");
        goto out;
    }
    /* mosquitto's precedence: the client's denials, its grants, then the patterns alike. */
    if (file_add_class(acl, &es, &diag, false, false) < 0 ||
        file_add_class(acl, &es, &diag, false, true) < 0 ||
        file_add_class(acl, &es, &diag, true, false) < 0 ||
        file_add_class(acl, &es, &diag, true, true) < 0)
        goto out;
    acl_set_default(acl, false); /* nothing matching: denied, as mosquitto */
    rc = acl_finish(acl, &bad_line, &bad_name);
    RM_ASSERT(rc == 0); /* no groups in this format */
    *out = acl;
    acl = NULL;
out:
    acl_free(acl);
    entries_free(&es);
    fclose(f);
    return rc;
}
