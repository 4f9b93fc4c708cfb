/*
 * config_acl.h - access control from the configuration: the [acl],
 * [acl.HOST] and [group.NAME] sections of ringmq.ini, and mosquitto's acl_file format
 * (for migration), both into one core/acl rule list.
 *
 * Below the loader (config.c), above config_diag; builds a struct acl
 * (core/acl) and knows no other key. Start-up (and reload) thread only.
 */
#ifndef RINGMQ_CONFIG_ACL_H
#define RINGMQ_CONFIG_ACL_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config_diag.h"
#include "core/vhost.h"

struct acl;

/* Group names: 1..63 of A-Z a-z 0-9 _ - (like listener names). */
#define CONFIG_ACL_GROUP_NAME_MAX 63

/* One load's ACL under construction; zero it before the first call. */
struct config_acl {
    struct acl *acl; /* owned until config_acl__finish() hands it over; NULL: none yet */
    int group;       /* the [group.NAME] being read, or -1 */
    char group_name[CONFIG_ACL_GROUP_NAME_MAX + 1]; /* its NAME, for messages */
    unsigned default_line;                          /* line of [acl] default, 0: not set */
    bool any;          /* an [acl], [acl.HOST] or [group.*] header was seen */
    unsigned first_line; /* the first such header's line */
    /*
     * The [acl.HOST] sections, numbered here in the order first seen (the
     * hosts are known only at the end of the file: config_acl__finish()
     * renumbers them as [broker] hosts does); @host is the one being read
     * (1-based), 0 in [acl].
     */
    uint8_t host;
    uint32_t host_count;
    char host_name[VHOST_MAX][VHOST_NAME_MAX + 1];
    unsigned host_line[VHOST_MAX]; /* each one's first header */
};

/*
 * A header [acl] (@group NULL) or [group.@group] (@len bytes) on @line.
 * Returns 0, or -1 after config_diag__fail() (bad or duplicate group name,
 * too many groups, no memory).
 */
int config_acl__section(struct config_acl *ca, struct config_diag *diag, unsigned line,
                        const char *group, size_t len);

/*
 * A header [acl.@host] (@len bytes) on @line: the rules that follow are
 * for that virtual host's clients alone. Returns 0, or -1 after
 * config_diag__fail() (an empty or over-long name, more than VHOST_MAX
 * hosts, no memory). Whether [broker] hosts declares it is checked by
 * config_acl__finish().
 */
int config_acl__host_section(struct config_acl *ca, struct config_diag *diag, unsigned line,
                             const char *host, size_t len);

/*
 * Key @name = @value on @line in [acl] or [acl.HOST] (@in_group false) or
 * the current [group.NAME]. Returns 0, or -1 after config_diag__fail():
 * for [acl], "publish"/"subscribe" = "FILTER allow|deny WHO" (repeatable,
 * in order) and "default" = allow|deny ([acl] only); for a group "users" =
 * "a, b, c" (repeatable).
 */
int config_acl__key(struct config_acl *ca, struct config_diag *diag, unsigned line, bool in_group,
                    const char *name, const char *value);

/*
 * End of the file: give each [acl.HOST] its host's number in @hosts (the
 * [broker] hosts; borrowed until return), resolve the groups rules name
 * and hand the finished ACL to *@out (NULL when the file had no [acl],
 * [acl.HOST] or [group.*] section). Returns 0, or -1 after
 * config_diag__fail() (an [acl.HOST] for a host @hosts does not declare,
 * at its header's line; a rule naming an undefined group). Frees what it
 * does not hand over.
 */
int config_acl__finish(struct config_acl *ca, struct config_diag *diag,
                       const struct vhost_table *hosts, struct acl **out);

/* Free what a failed load left in @ca. */
void config_acl__discard(struct config_acl *ca);

/*
 * Read mosquitto acl_file @path into a new finished ACL in *@out. The
 * format (mosquitto.conf(5), acl_file): lines "user NAME", "topic
 * [read|write|readwrite|deny] FILTER" and "pattern [...] FILTER" (%u the
 * user name, %c the client id); '#' comment lines and blank lines; "topic"
 * lines before any "user" line are for anonymous clients, "pattern" lines
 * for everybody. Precedence as mosquitto's: the client's "topic deny" lines,
 * its other "topic" lines, then "pattern deny", then other "pattern"
 * lines; nothing matching denies. Returns 0, or -1 with "PATH:LINE:
 * problem" (or "PATH: problem") in @err.
 */
int config_acl__file_load(const char *path, struct acl **out, char *err, size_t err_len);

#endif
