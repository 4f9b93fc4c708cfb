/*
 * config_login.c - building the authentication snapshot (see config_login.h).
 */
#include "config/config_login.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "config/config_types.h"
#include "config/pwfile.h"
#include "core/login.h"
#include "core/pwdb.h"
#include "core/rm_assert.h"

_Static_assert(CONFIG_LISTENERS_MAX <= LOGIN_LISTENERS_MAX, "a snapshot holds every listener");

struct login_conf *config_login_build(const struct config *cfg, char *err, size_t err_len)
{
    struct login_conf *lc;
    int sys_errno;
    uint32_t i;
    uint32_t j;

    RM_ASSERT(cfg != NULL && err != NULL);
    RM_ASSERT(cfg->listener_count <= CONFIG_LISTENERS_MAX);
    lc = calloc(1, sizeof(*lc));
    if (lc == NULL) {
        snprintf(err, err_len, "authentication: out of memory");
        return NULL;
    }
    /* The per-process secret behind unknown users' SCRAM salts (core/scram.h). */
    if (getrandom(lc->secret, sizeof(lc->secret), 0) != (ssize_t)sizeof(lc->secret)) {
        snprintf(err, err_len, "authentication: getrandom: %s", strerror(errno));
        free(lc);
        return NULL;
    }
    lc->listener_count = cfg->listener_count;
    lc->bind_client_id_to_user = cfg->auth.bind_client_id_to_user;
    for (i = 0; i < cfg->listener_count; i++) {
        const struct config_listener *l = &cfg->listeners[i];
        struct login_listener *ll = &lc->listeners[i];

        RM_ASSERT(l->allow_anonymous != CONFIG_AUTO);
        ll->allow_anonymous = l->allow_anonymous == CONFIG_ON;
        ll->identity_as_username = l->use_identity_as_username;
        if (l->password_file[0] == '\0') {
            continue;
        }
        for (j = 0; j < i; j++) {
            if (lc->listeners[j].db != NULL &&
                strcmp(cfg->listeners[j].password_file, l->password_file) == 0) {
                ll->db = lc->listeners[j].db; /* one database per file */
                break;
            }
        }
        if (ll->db == NULL) {
            ll->db = pwfile_load(l->password_file, err, err_len, &sys_errno);
            if (ll->db == NULL) {
                config_login_free(lc);
                return NULL;
            }
        }
    }
    return lc;
}

void config_login_free(struct login_conf *lc)
{
    uint32_t i;
    uint32_t j;

    if (lc == NULL) {
        return;
    }
    RM_ASSERT(lc->listener_count <= LOGIN_LISTENERS_MAX);
    for (i = 0; i < lc->listener_count; i++) {
        const struct pwdb *db = lc->listeners[i].db;
        bool first = db != NULL;

        for (j = 0; j < i && first; j++) {
            first = lc->listeners[j].db != db;
        }
        if (first) {
            pwfile_free((struct pwdb *)db);
        }
    }
    free(lc);
}
