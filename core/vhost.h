/*
 * vhost.h - virtual hosts: separate topic spaces, sessions and retained
 * messages in one broker ([broker] hosts).
 *
 * A client whose user name ends in "@HOST", HOST one of the configured
 * hosts, belongs to that host; every other client to the default host
 * (id 0). Inside core/ a host's names carry a prefix no client can write,
 * since MQTT strings never hold U+0000 [MQTT-1.5.4-2]:
 *   topics and filters  "\0" H "/" + the client's topic or filter
 *   client ids          "\0" H + the client's id
 * with H = 0x80 | id. The default host has no prefix: it costs nothing.
 * So the trie, the interest map, shared groups, retained replicas, the
 * session table and the homing of sessions keep hosts apart without
 * knowing of them; the client sees its own names only (send_publish()
 * strips the prefix). The '$' rule [MQTT-4.7.2-1] applies at a host's own
 * first level (topic_match(), trie_match(), retained_match()), and no
 * default-host wildcard matches a host's topic.
 *
 * Pure; the table is read-only once built, read by every shard.
 */
#ifndef RINGMQ_VHOST_H
#define RINGMQ_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hosts besides the default one; ids 1..VHOST_MAX. */
#define VHOST_MAX 127u
/* A host name's bytes, at most. */
#define VHOST_NAME_MAX 63u
/* Prefix bytes of a host's topics and filters, and of its client ids. */
#define VHOST_TOPIC_PREFIX 3u
#define VHOST_ID_PREFIX 2u

/* The configured hosts ([broker] hosts), in order: id i + 1 is name[i]. */
struct vhost_table {
    uint32_t count;
    uint8_t len[VHOST_MAX];
    char name[VHOST_MAX][VHOST_NAME_MAX + 1];
};

/* Scratch room for one prefixed name at a time (vhost_name()); a broker has two. */
struct vhost_buf {
    uint8_t *p;
    size_t cap;
};

/* *out_len of a NULL vhost_name()/vhost_filter(): the name is too long with its prefix. */
#define VHOST_TOO_LONG SIZE_MAX

/*
 * @name (@len bytes) as host @host's (a topic or filter if @topic, else a
 * client id), in @vb (valid until its next use): @name itself for the
 * default host. *@out_len: its length. NULL on ENOMEM, or with *@out_len
 * VHOST_TOO_LONG when the prefix would take it past MQTT's 65535 bytes
 * (LIMITS_STRING_BYTES_MAX): a name the client may send in the default
 * host is that much too long in another.
 */
const uint8_t *vhost_name(struct vhost_buf *vb, uint8_t host, bool topic, const uint8_t *name,
                          size_t len, size_t *out_len);

/*
 * Filter @filter (@len bytes) as host @host's, in @vb (as vhost_name()):
 * the prefix goes at @at, after the "$share/GROUP/" of a shared
 * subscription (0 for a plain one).
 */
const uint8_t *vhost_filter(struct vhost_buf *vb, uint8_t host, const uint8_t *filter, size_t len,
                            size_t at, size_t *out_len);

/* Free @vb's room. */
void vhost_buf_fini(struct vhost_buf *vb);

/* The host of user name @user (@len bytes; NULL: none): 1..count, or 0 (the default host). */
uint8_t vhost_of_user(const struct vhost_table *t, const uint8_t *user, size_t len);

/* The host a prefixed client id or topic belongs to (0: the default host, no prefix). */
static inline uint8_t vhost_of_name(const uint8_t *name, size_t len)
{
    return len >= VHOST_ID_PREFIX && name[0] == 0 ? (uint8_t)(name[1] & 0x7f) : 0;
}

/* Bytes of host prefix at the start of topic or filter @t (0 or VHOST_TOPIC_PREFIX). */
static inline size_t vhost_topic_skip(const uint8_t *t, size_t len)
{
    return len >= VHOST_TOPIC_PREFIX && t[0] == 0 ? VHOST_TOPIC_PREFIX : 0;
}

/*
 * Write host @host's prefix and @len bytes of @name into @out (room for
 * @len + VHOST_TOPIC_PREFIX bytes); @topic: a topic or filter (else a
 * client id). Returns the length written. @host > 0.
 */
size_t vhost_prefix(uint8_t host, bool topic, const uint8_t *name, size_t len, uint8_t *out);

/*
 * Check and add @name (@len bytes) as the next host. Returns its id
 * (1..VHOST_MAX), or -1 with *@why saying what is wrong with it.
 */
int vhost_add(struct vhost_table *t, const char *name, size_t len, const char **why);

#endif
