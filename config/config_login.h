/*
 * config_login.h - the authentication snapshot (core/login.h's struct
 * login_conf) built from a loaded configuration: each listener's rules and
 * its password database, read from the files the configuration names.
 *
 * Start-up thread (or shard 0, building a reload). The snapshot is read-only
 * once built and may then be read by every shard; it is freed with
 * config_login_free() once no shard points at it (see core/login.h,
 * Reload).
 */
#ifndef RINGMQ_CONFIG_LOGIN_H
#define RINGMQ_CONFIG_LOGIN_H

#include <stddef.h>

struct config;
struct login_conf;

/*
 * Build the snapshot for @cfg (borrowed until return): one password
 * database per distinct password_file, shared by the listeners naming it.
 * Returns it, or NULL with a message in @err ("PATH:LINE: problem" for a
 * password file's line, "PATH: problem" for the whole file).
 */
struct login_conf *config_login_build(const struct config *cfg, char *err, size_t err_len);

/* Free @lc and its databases (NULL is fine). */
void config_login_free(struct login_conf *lc);

#endif
