/*
 * live.c - building and freeing the live snapshot (see live.h).
 *
 * Runs on the start-up thread or, for a reload, on shard 0's: it reads
 * files with blocking stdio (the configuration, password and ACL files,
 * certificates and keys), which stalls shard 0 for as long as that takes
 * (a few milliseconds); the other shards go on meanwhile.
 */
#include "net/live.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/config_acl.h"
#include "config/config_login.h"
#include "config/config_reload.h"
#include "core/acl.h"
#include "core/client.h"
#include "core/rm_assert.h"
#include "tls/tls_ctx.h"

/* client.listener indexes the brokers' per-listener ACLs (broker_set_acls()). */
_Static_assert(CONFIG_LISTENERS_MAX <= CLIENT_LISTENERS_MAX, "a listener without an ACL slot");

/*
 * Point each listener of @lv at its ACL: the one loaded from its acl_file
 * (@cfg->acl_files' paths, in the order of lv->acl_files), else lv->acl.
 * A path @cfg did not load (a listener config_reload_merge() kept as it
 * runs) is read now. Returns 0, or -1 with "ACLFILE:LINE: ..." in @err.
 */
static int listener_acls(struct live *lv, const struct config *cfg, char *err, size_t err_len)
{
    const char *paths[CONFIG_LISTENERS_MAX];
    uint32_t i, j;

    RM_ASSERT(lv->acl_file_count == cfg->acl_file_count);
    RM_ASSERT(lv->cfg.listener_count <= CONFIG_LISTENERS_MAX);
    for (j = 0; j < lv->acl_file_count; j++) {
        paths[j] = cfg->acl_files[j].path;
    }
    for (i = 0; i < lv->cfg.listener_count; i++) {
        const char *want = lv->cfg.listeners[i].acl_file;

        if (want[0] == '\0') {
            lv->listener_acl[i] = lv->acl;
            continue;
        }
        for (j = 0; j < lv->acl_file_count && strcmp(paths[j], want) != 0; j++) {
        }
        if (j == lv->acl_file_count) {
            RM_ASSERT(j < CONFIG_LISTENERS_MAX);
            if (config_acl__file_load(want, &lv->acl_files[j], err, err_len) < 0) {
                return -1;
            }
            paths[j] = want;
            lv->acl_file_count++;
        }
        lv->listener_acl[i] = lv->acl_files[j];
    }
    return 0;
}

struct live *live_build(struct config *cfg, const char *path, char *err, size_t err_len)
{
    char why[CONFIG_ERR_MAX];
    struct live *lv;
    uint32_t i;
    int rc;

    RM_ASSERT(cfg != NULL && err != NULL && err_len > 0);
    RM_ASSERT(cfg->listener_count >= 1 && cfg->listener_count <= CONFIG_LISTENERS_MAX);
    lv = calloc(1, sizeof(*lv));
    if (lv == NULL) {
        snprintf(err, err_len, "%s: out of memory", path != NULL ? path : "(defaults)");
        config_free(cfg);
        return NULL;
    }
    lv->cfg = *cfg;
    lv->cfg.acl = NULL;
    lv->cfg.acl_file_count = 0;
    lv->acl = cfg->acl;
    cfg->acl = NULL;
    for (i = 0; i < cfg->acl_file_count; i++) {
        lv->acl_files[i] = cfg->acl_files[i].acl;
        cfg->acl_files[i].acl = NULL;
    }
    lv->acl_file_count = cfg->acl_file_count;
    lv->generation = 1;
    rc = listener_acls(lv, cfg, err, err_len);
    cfg->acl_file_count = 0; /* lv owns them now, and their paths were read */
    if (rc < 0) {
        goto out_free;
    }
    /* Certificates and keys are loaded now, so --test-config checks them too. */
    for (i = 0; i < cfg->listener_count; i++) {
        const struct config_listener *l = &lv->cfg.listeners[i];

        if (!config_listener_tls(l)) {
            continue;
        }
        lv->tls[i] = tls_ctx_new(l, why, sizeof(why));
        if (lv->tls[i] == NULL) {
            snprintf(err, err_len, "%s: [listener.%s] %s", path != NULL ? path : "(defaults)",
                     l->name, why);
            goto out_free;
        }
    }
    /* The password files, read again: the snapshot the shards share (core/login.h). */
    lv->login = config_login_build(&lv->cfg, err, err_len);
    if (lv->login == NULL) {
        goto out_free;
    }
    return lv;

out_free:
    live_free(lv);
    return NULL;
}

struct live *live_reload(const struct live *cur, const char *path, char *err, size_t err_len,
                         void (*note)(void *ctx, const char *msg), void *ctx)
{
    struct config *next;
    struct config *asis;
    struct live *lv = NULL;

    RM_ASSERT(cur != NULL && path != NULL);
    RM_ASSERT(err != NULL && err_len > 0);
    next = malloc(sizeof(*next));
    asis = malloc(sizeof(*asis));
    if (next == NULL || asis == NULL) {
        snprintf(err, err_len, "%s: out of memory", path);
        goto out;
    }
    if (config_load(next, path, err, err_len) < 0) {
        goto out;
    }
    *asis = *next; /* shares next's ACLs, which live_build() takes: asis never frees them */
    config_reload_merge(&cur->cfg, next, NULL, NULL);
    lv = live_build(next, path, err, err_len);
    if (lv == NULL) {
        goto out;
    }
    lv->generation = cur->generation + 1;
    /* Only now that it will be applied, say what it leaves out. */
    config_reload_merge(&cur->cfg, asis, note, ctx);
out:
    free(asis);
    free(next);
    return lv;
}

void live_free(struct live *lv)
{
    uint32_t i;

    if (lv == NULL) {
        return;
    }
    for (i = 0; i < CONFIG_LISTENERS_MAX; i++) {
        tls_ctx_free(lv->tls[i]);
    }
    config_login_free(lv->login);
    acl_free(lv->acl);
    for (i = 0; i < lv->acl_file_count; i++) {
        acl_free(lv->acl_files[i]);
    }
    free(lv);
}
