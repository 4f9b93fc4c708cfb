/*
 * reload.c - a reloaded configuration handed to every shard (see reload.h).
 * Owned by one shard; single-threaded (the snapshot crosses shards over
 * the rings, written only before it is sent).
 */
#include "net/reload.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "core/broker.h"
#include "core/login.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "net/conn.h"
#include "net/live.h"
#include "net/log.h"
#include "net/sdnotify.h"
#include "net/xshard.h"

/* Milliseconds on the monotonic clock: how long a reload took to read its files. */
static uint64_t reload_clock_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void reload_apply(struct shard *s, const struct live *lv)
{
    uint32_t revoked = 0;
    struct conn *c;
    uint32_t i;

    RM_ASSERT(lv != NULL && lv->login != NULL);
    RM_ASSERT(lv->cfg.listener_count == s->listener_count);
    s->live = lv;
    broker_set_login(s->broker, lv->login, NULL);
    /*
     * The one place a shard takes a reload's new ACLs (owned by the
     * snapshot, freed only after every shard has answered): cached verdicts
     * are forgotten and subscriptions classed again (broker_set_acls()).
     */
    broker_set_acls(s->broker, lv->listener_acl, lv->cfg.listener_count);
    for (i = 0; i < s->listener_count; i++) {
        RM_ASSERT((lv->tls[i] != NULL) == (s->listeners[i].tls != NULL));
        s->listeners[i].tls = lv->tls[i];
    }
    /* Kicking only marks the client closing: the list is not changed under us. */
    for (c = s->conns; c != NULL; c = c->next) {
        if (c->client.state == CLIENT_CONNECTED && !login_still_allowed(lv->login, &c->client)) {
            broker_client_kick(s->broker, &c->client, -MQTT_RC_NOT_AUTHORIZED);
            revoked++;
        }
    }
    if (revoked > 0) {
        LOG_INFO("shard %u: reload: disconnected %u client%s no longer allowed in", s->id,
                 revoked, revoked == 1 ? "" : "s");
    }
}

/* A key the reload cannot apply (config_reload_merge()). */
static void reload_note(void *ctx, const char *msg)
{
    (void)ctx;
    LOG_WARN("reload: %s", msg);
}

/* Shard 0: once every shard has answered, free the snapshot the reload retired. */
static void reload_retire(struct shard *s)
{
    struct live_owner *o = s->owner;

    RM_ASSERT(s->id == 0 && o != NULL);
    if (s->reload_acks_due > 0 || o->old == NULL) {
        return;
    }
    live_free(o->old);
    o->old = NULL;
    LOG_INFO("reload: every shard uses configuration generation %llu",
             (unsigned long long)o->cur->generation);
    sdnotify_sendf("READY=1\nSTATUS=Running: configuration generation %llu",
                   (unsigned long long)o->cur->generation);
    if (s->reload_again) {
        s->reload_again = false;
        reload_start(s);
    }
}

void reload_start(struct shard *s)
{
    struct live_owner *o = s->owner;
    char err[CONFIG_ERRS_MAX]; /* every problem, a line each: 16 KiB of shard 0's stack */
    uint64_t start_ms;
    struct live *lv;

    RM_ASSERT(s->id == 0 && o != NULL && o->cur != NULL);
    /* logrotate renamed the file and sent SIGHUP: reopen it, whatever the reload does. */
    log_reopen();
    if (s->stopping) {
        LOG_INFO("SIGHUP: stopping, not reloading");
        return;
    }
    if (o->path == NULL) {
        LOG_WARN("SIGHUP: no configuration file (-c) to reload");
        return;
    }
    if (o->old != NULL) {
        LOG_INFO("SIGHUP: the last reload is still being handed out; reloading after it");
        s->reload_again = true;
        return;
    }
    LOG_INFO("SIGHUP: reloading %s", o->path);
    start_ms = reload_clock_ms();
    /* systemd wants the monotonic time of the request with RELOADING=1 (systemd 253+). */
    sdnotify_sendf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading %s",
                   (unsigned long long)start_ms * 1000u, o->path);
    lv = live_reload(o->cur, o->path, err, sizeof(err), reload_note, NULL);
    if (lv == NULL) {
        /* One log line per problem, each as --test-config prints it. */
        for (char *p = err, *nl; p != NULL; p = nl != NULL ? nl + 1 : NULL) {
            nl = strchr(p, '\n');
            if (nl != NULL) {
                *nl = '\0';
            }
            LOG_ERROR("reload refused, the running configuration stays: %s", p);
        }
        /* The first problem (the loop cut @err at its first newline). */
        sdnotify_sendf("READY=1\nSTATUS=Running; the last reload was refused: %s", err);
        return;
    }
    o->old = o->cur;
    o->cur = lv;
    log_set_level(lv->cfg.log_level);
    log_set_format(lv->cfg.log_format);
    reload_apply(s, lv);
    s->reload_next = 1;
    s->reload_acks_due = s->shard_count - 1;
    LOG_INFO("reload: %s applied as generation %llu (read in %llu ms)", o->path,
             (unsigned long long)lv->generation,
             (unsigned long long)(reload_clock_ms() - start_ms));
    reload_retire(s);
}

void reload_received(struct shard *s, uint32_t from, const struct xmsg *m)
{
    if (m->kind == XMSG_RELOAD) {
        RM_ASSERT(from == 0 && s->reload_ack == NULL);
        reload_apply(s, m->payload.ptr[0]);
        s->reload_ack = s->live; /* answered at the end of this iteration */
        return;
    }
    RM_ASSERT(m->kind == XMSG_RELOAD_DONE);
    RM_ASSERT(s->id == 0 && s->reload_acks_due > 0);
    RM_ASSERT(m->payload.ptr[0] == s->owner->cur);
    (void)from;
    s->reload_acks_due--;
    reload_retire(s);
}

void reload_send(struct shard *s)
{
    struct xmsg m = {.kind = XMSG_RELOAD};

    if (s->reload_ack != NULL) {
        m.kind = XMSG_RELOAD_DONE;
        m.payload.ptr[0] = (void *)s->reload_ack;
        if (xshard_send(s->xshard, s->id, 0, &m) < 0) {
            s->more_work = true;
            return;
        }
        s->reload_ack = NULL;
    }
    if (s->reload_next >= s->shard_count) {
        return;
    }
    RM_ASSERT(s->id == 0 && s->owner != NULL);
    m.kind = XMSG_RELOAD;
    m.payload.ptr[0] = s->owner->cur;
    for (; s->reload_next < s->shard_count; s->reload_next++) {
        if (xshard_send(s->xshard, s->id, s->reload_next, &m) < 0) {
            s->more_work = true;
            return;
        }
    }
}
