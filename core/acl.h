/*
 * acl.h - access control: who may publish to a topic, subscribe to a filter
 * and receive a message (issue 14).
 *
 * An ACL is an ordered list of rules, each (filter, access, allow or deny,
 * who); the first rule that applies to the client and the access and whose
 * filter matches decides; when none does, the ACL's default decides (see
 * acl_finish()). Rules are for every virtual host ([acl]) or for one
 * ([acl.HOST]); a client of host H is judged by H's own rules first, then
 * by every host's, as one list. WHO is everybody, anonymous clients, one user name, or a
 * group of user names. A rule's filter may hold %u (the user name) and %c
 * (the client id), substituted per client as mosquitto's `pattern` lines.
 *
 * Built once (config/: the [acl] and [group.NAME] sections, or a mosquitto
 * acl_file), then read-only: every shard reads the same struct acl without
 * locks, a reload builds a new one. Pure: no I/O, no clock, no globals;
 * allocates only while building. Any thread may read a finished ACL.
 *
 * Where the decisions are asked (the wiring, once sessions know their user
 * name; docs/architecture.md "Access control"): acl_check(ACL_PUBLISH) in
 * publish_on_publish() before route_publish() and in connect_will();
 * acl_subscribe_class() in subscribe_one() (ACL_SUB_NONE: SUBACK 0x87);
 * acl_check(ACL_READ) per delivery only through subscriptions classed
 * ACL_SUB_SOME, and for retained messages sent on subscribe.
 */
#ifndef RINGMQ_ACL_H
#define RINGMQ_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a rule grants or refuses; a rule holds a mask of them. */
enum acl_access {
    ACL_PUBLISH = 1u << 0,   /* PUBLISH (and a will) to a topic name */
    ACL_SUBSCRIBE = 1u << 1, /* SUBSCRIBE to a topic filter */
    ACL_READ = 1u << 2,      /* receive a message on a topic name */
};
#define ACL_ACCESS_ALL (ACL_PUBLISH | ACL_SUBSCRIBE | ACL_READ)

/* Whom a rule applies to. */
enum acl_who_kind {
    ACL_WHO_ALL = 0,   /* every client, anonymous ones included */
    ACL_WHO_ANONYMOUS, /* clients without a user name */
    ACL_WHO_USER,      /* one user name */
    ACL_WHO_GROUP,     /* the user names of a [group.NAME] */
};

/* Groups an ACL may define (a client's membership is a bitmap of them). */
#define ACL_GROUPS_MAX 256
/* Rules an ACL may hold. */
#define ACL_RULES_MAX 1000000
/* Rule scopes: 0, every host; 1..ACL_HOSTS-1, one virtual host's id (core/vhost.h). */
#define ACL_HOSTS 128u
/* A rule filter after %u / %c substitution longer than this denies (fails closed). */
#define ACL_SUBST_BYTES_MAX 1024

/*
 * A subscription's class: what its filter may deliver under the ACL.
 * ACL_SUB_ALL: every topic it matches is readable, so deliveries through it
 * need no check. ACL_SUB_SOME: some are, some may not be: deliveries need
 * acl_check(ACL_READ). ACL_SUB_NONE: none is: refuse it (SUBACK 0x87).
 */
enum acl_sub_class {
    ACL_SUB_NONE = 0,
    ACL_SUB_SOME,
    ACL_SUB_ALL,
};

/* One rule as the builder is given it (strings borrowed until return). */
struct acl_rule_spec {
    const char *filter; /* topic filter; may hold %u and %c */
    size_t filter_len;
    uint8_t access; /* mask of enum acl_access, not 0 */
    bool allow;
    enum acl_who_kind who;
    const char *name; /* ACL_WHO_USER: the user name; ACL_WHO_GROUP: the group name */
    size_t name_len;
    unsigned line; /* where it was written, for messages (0: unknown) */
    uint8_t host;  /* 0: for every host; else only for clients of that host (< ACL_HOSTS) */
};

struct acl;

/*
 * A client as the ACL sees it: its user name (NULL: anonymous) and client
 * id, borrowed for as long as the who is used (the session's), and its
 * groups, computed once by acl_who_init().
 */
struct acl_who {
    const uint8_t *username;
    size_t username_len;
    const uint8_t *client_id;
    size_t client_id_len;
    bool wildcard_name; /* the user name or client id holds '+' or '#' */
    uint8_t host;       /* its virtual host (core/vhost.h; 0: the default one), set by the caller */
    uint64_t groups[ACL_GROUPS_MAX / 64];
};

/* An empty ACL to build (default: see acl_finish()). NULL on ENOMEM. */
struct acl *acl_new(void);

/* Free @acl and everything it owns; NULL is fine. */
void acl_free(struct acl *acl);

/*
 * Define group @name (@len bytes). Returns its index, -EEXIST when it is
 * defined already, -E2BIG past ACL_GROUPS_MAX, -ENOMEM.
 */
int acl_group_add(struct acl *acl, const char *name, size_t len);

/* Add user @user (@len bytes) to group @group. Returns 0 or -ENOMEM. */
int acl_group_add_member(struct acl *acl, int group, const char *user, size_t len);

/*
 * Append a rule (after those added before: order is precedence). Group
 * names are resolved by acl_finish(), so a group may be defined after the
 * rules that name it. Returns 0, -EINVAL for a filter that is not a valid
 * topic filter, an empty access mask or a host past ACL_HOSTS, -E2BIG past
 * ACL_RULES_MAX, -ENOMEM.
 */
int acl_rule_add(struct acl *acl, const struct acl_rule_spec *spec);

/*
 * Before acl_finish(): the rules were added with the caller's own host
 * numbers (config/ knows the hosts only once the file is read); move the
 * rules of each host h (1 <= h < @n) to host @map[h]. Returns 0, or
 * -EINVAL when a host with rules has no new number (0, past ACL_HOSTS,
 * or past @n) or two share one.
 */
int acl_hosts_renumber(struct acl *acl, const uint8_t *map, uint32_t n);

/* Rules for @host alone (0: the ones for every host). */
uint32_t acl_host_rule_count(const struct acl *acl, uint8_t host);

/* The default when no rule decides; without a call see acl_finish(). */
void acl_set_default(struct acl *acl, bool allow);

/*
 * End the build: resolve group names. The default, unless
 * acl_set_default() said: for a client of host H, deny when any rule can
 * apply to it (a rule for every host, or one of H's own), allow when none
 * can.
 * Returns 0, or -ENOENT when a rule names an undefined group (*@bad_line:
 * that rule's line; *@bad_name its group name, borrowed from @acl).
 */
int acl_finish(struct acl *acl, unsigned *bad_line, const char **bad_name);

/*
 * Before acl_finish(): call @each(@ctx, line, group name) for every rule
 * naming a group not defined (the name borrowed until it returns), in
 * rule order; returns how many. For a configuration check that lists
 * every problem, where acl_finish() stops at the first.
 */
uint32_t acl_undefined_groups(const struct acl *acl,
                              void (*each)(void *ctx, unsigned line, const char *name), void *ctx);

/*
 * Number of rules (all hosts), and whether the default allows for the
 * default host's clients (for logs and tests).
 */
uint32_t acl_rule_count(const struct acl *acl);
bool acl_default_allows(const struct acl *acl);

/*
 * Fill @who for a client with @username (NULL: anonymous) and @client_id,
 * both borrowed by @who; computes its groups in @acl (NULL: none). Its
 * host is 0 (the default one): the caller sets who->host for another.
 */
void acl_who_init(const struct acl *acl, struct acl_who *who, const uint8_t *username,
                  size_t username_len, const uint8_t *client_id, size_t client_id_len);

/*
 * May @who do @access on @topic (@len bytes)? ACL_PUBLISH and ACL_READ take
 * a topic name; ACL_SUBSCRIBE a topic filter (allowed unless its class is
 * ACL_SUB_NONE; a "$share/GROUP/" prefix is judged by the filter after it).
 * A NULL @acl allows everything. A rule with %u never applies to an
 * anonymous client. When the ACL has %u or %c rules, a client whose user
 * name or client id holds '+' or '#' is denied everything (it could widen
 * them; mosquitto does the same), and a rule whose substituted filter
 * would pass ACL_SUBST_BYTES_MAX denies when reached (fail closed).
 */
bool acl_check(const struct acl *acl, const struct acl_who *who, enum acl_access access,
               const uint8_t *topic, size_t len);

/*
 * The class of a subscription of @who to @filter (@len bytes, "$share/G/"
 * prefix allowed) under the ACL's ACL_READ rules: walks the rules once, in
 * order, comparing filters with filters. ACL_SUB_ALL only when no topic of
 * @filter can be denied; ACL_SUB_NONE only when none can be allowed;
 * anything undecided is ACL_SUB_SOME (safe: checked per delivery).
 */
enum acl_sub_class acl_subscribe_class(const struct acl *acl, const struct acl_who *who,
                                       const uint8_t *filter, size_t len);

/*
 * Filter relations (exported for tests): whether every topic name @inner
 * matches is matched by @outer, and whether some topic name matches both,
 * with the '$' rule (a filter starting with a wildcard matches no '$'
 * topic) [MQTT-4.7.2-1].
 */
bool acl_filter_covers(const uint8_t *outer, size_t olen, const uint8_t *inner, size_t ilen);
bool acl_filter_overlaps(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

#endif
