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
#include "config/config_login.h"
#include "config/config_reload.h"
#include "core/acl.h"
#include "core/rm_assert.h"
#include "tls/tls_ctx.h"

struct live *live_build(struct config *cfg, const char *path, char *err, size_t err_len)
{
    char why[CONFIG_ERR_MAX];
    struct live *lv;
    uint32_t i;

    RM_ASSERT(cfg != NULL && err != NULL && err_len > 0);
    RM_ASSERT(cfg->listener_count >= 1 && cfg->listener_count <= CONFIG_LISTENERS_MAX);
    lv = calloc(1, sizeof(*lv));
    if (lv == NULL) {
        snprintf(err, err_len, "%s: out of memory", path != NULL ? path : "(defaults)");
        acl_free(cfg->acl);
        cfg->acl = NULL;
        return NULL;
    }
    lv->cfg = *cfg;
    lv->cfg.acl = NULL;
    lv->acl = cfg->acl;
    cfg->acl = NULL;
    lv->generation = 1;
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
    *asis = *next; /* shares next->acl, which live_build() takes: asis never frees it */
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
    free(lv);
}
