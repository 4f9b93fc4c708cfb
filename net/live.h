/*
 * live.h - the live snapshot: what a reload (SIGHUP) replaces while
 * connections stay up. One struct live holds, for the whole process, the
 * configuration as applied (the file as loaded, with the keys a running
 * broker cannot take put back: config/config_reload), the authentication
 * snapshot (core/login's struct login_conf, the password files read), the
 * ACLs (core/acl: the [acl] rules and each distinct acl_file, and which
 * one applies on each listener) and one TLS context per TLS listener
 * (tls/tls_ctx, certificates and keys read, a fresh session-ticket key).
 *
 * Built whole or not at all: live_build() is what start-up, --test-config
 * and a reload run, so the three validate alike, and a reload that fails
 * anywhere (file, password file, ACL file, certificate) changes nothing.
 *
 * Swapping (net/shard): shard 0 builds the new snapshot on its own thread,
 * applies it, and sends its pointer to every other shard over the
 * cross-shard rings (XMSG_RELOAD); each applies it between two loop
 * iterations and answers (XMSG_RELOAD_DONE); after the last answer no
 * shard points into the old snapshot and shard 0 frees it. One reload at
 * a time: a SIGHUP while one is under way runs after it.
 *
 * THREADING: a snapshot is written only by the thread that builds it,
 * before it is published (the start-up barrier, or the rings'
 * release/acquire); then every shard reads it and nobody writes it. TLS
 * contexts outlive it while connections made from them remain (their
 * reference counts, tls/tls_ctx.h). struct live_owner is main's before
 * the shard threads start and after they are joined, shard 0's between.
 */
#ifndef RINGMQ_LIVE_H
#define RINGMQ_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include "config/config_types.h"

struct acl;
struct login_conf;
struct tls_ctx;

struct live {
    /* As applied: the file's values (no -p, memory_max not resolved); no ACL here. */
    struct config cfg;
    struct login_conf *login; /* owned */
    struct acl *acl;          /* owned; NULL: no [acl] rules */
    struct acl *acl_files[CONFIG_LISTENERS_MAX]; /* owned: one per distinct acl_file */
    uint32_t acl_file_count;
    /* Listener i's ACL: its acl_file's, else @acl (borrowed from the two above). */
    const struct acl *listener_acl[CONFIG_LISTENERS_MAX];
    struct tls_ctx *tls[CONFIG_LISTENERS_MAX]; /* one reference each; NULL: no TLS there */
    uint64_t generation;                       /* 1 at start-up, +1 per applied reload */
};

/* The snapshots in force: shard 0 manages them, main frees what is left at exit. */
struct live_owner {
    struct live *cur;  /* the shards' snapshot (or the one being handed out) */
    struct live *old;  /* the one a reload retires, until every shard answered; or NULL */
    const char *path;  /* the configuration file; NULL: built-in defaults, nothing to reload */
};

/*
 * Build a snapshot from @cfg (loaded and validated by config_load(), or the
 * defaults): a TLS context for each TLS listener, the password files, each
 * listener's ACL. It takes @cfg's ACLs (left none; an acl_file a listener
 * names that @cfg has not loaded, one config_reload_merge() kept, is read
 * now) and copies the rest. @path names the file in
 * messages (NULL: "(defaults)"). Returns it (generation 1), or NULL with
 * the reason in @err ("PATH: [listener.NAME] certfile '...': ...",
 * "PWFILE:LINE: ...", "ACLFILE:LINE: ..."); @cfg's ACLs are freed then.
 */
struct live *live_build(struct config *cfg, const char *path, char *err, size_t err_len);

/*
 * A reload: load @path again with config_load() (the checks --test-config
 * runs), keep what @cur's broker cannot change (config_reload_merge(),
 * each key put back reported to @note(@ctx, msg)), and live_build() the
 * rest. Returns the new snapshot (generation @cur's + 1), or NULL with the
 * reason in @err (then nothing was noted, and nothing changes). Borrows
 * @cur until return.
 */
struct live *live_reload(const struct live *cur, const char *path, char *err, size_t err_len,
                         void (*note)(void *ctx, const char *msg), void *ctx);

/*
 * Free @lv (NULL is fine) once no shard points into it: its login
 * snapshot and ACL now, its TLS contexts when their last connection goes.
 */
void live_free(struct live *lv);

#endif
