/*
 * config_reload.c - the keys a reload applies, and the others put back
 * (see config_reload.h).
 *
 * Table-driven: each row of config_keys' table says what a reload does with
 * it (enum config__reload), so a new key is classified where it is
 * declared. Values compare by their stored bytes (text keys as text) and
 * are shown as the file would write them. Pure; any thread.
 */
#include "config/config_reload.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "config/config_diag.h"
#include "config/config_keys.h"
#include "core/rm_assert.h"

/* A value as shown in a note, at most. */
#define VALUE_SHOWN_MAX (CONFIG_DIAG_ESC_MAX + 2)

static bool is_text(const struct config__key *k)
{
    return k->type == CONFIG__STRING || k->type == CONFIG__ADDRESS;
}

static uint64_t read_uint(const void *field, size_t size)
{
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64 = 0;

    switch (size) {
    case 1:
        memcpy(&u8, field, 1);
        return u8;
    case 2:
        memcpy(&u16, field, 2);
        return u16;
    case 4:
        memcpy(&u32, field, 4);
        return u32;
    case 8:
        memcpy(&u64, field, 8);
        return u64;
    default:
        RM_ASSERT(!"a numeric key of an unexpected size");
        return 0;
    }
}

/* @field of key @k as the file would write it, into @out. */
static void show(const struct config__key *k, const void *field, char *out, size_t out_len)
{
    char esc[CONFIG_DIAG_ESC_MAX];
    uint64_t v;

    if (is_text(k)) {
        config_diag__esc(esc, sizeof(esc), field, strnlen(field, k->size));
        snprintf(out, out_len, "\"%s\"", esc);
        return;
    }
    v = k->type == CONFIG__BOOL ? (uint64_t)*(const bool *)field : read_uint(field, k->size);
    if (k->type == CONFIG__BOOL) {
        snprintf(out, out_len, "%s", v ? "true" : "false");
    } else if (k->type == CONFIG__ENUM && k->names != NULL && v <= k->max) {
        snprintf(out, out_len, "%s", k->names[v]);
    } else if (k->type == CONFIG__AUTO_BOOL) {
        snprintf(out, out_len, "%s", v == CONFIG_AUTO ? "auto" : v ? "true" : "false");
    } else if ((k->type == CONFIG__AUTO_UINT && v == 0) ||
               (k->type == CONFIG__AUTO_SIZE && v == UINT64_MAX)) {
        snprintf(out, out_len, "auto");
    } else {
        snprintf(out, out_len, "%" PRIu64, v);
    }
}

static bool same(const struct config__key *k, const void *a, const void *b)
{
    if (is_text(k)) {
        return strncmp(a, b, k->size) == 0;
    }
    return memcmp(a, b, k->size) == 0;
}

struct notes {
    void (*fn)(void *ctx, const char *msg);
    void *ctx;
    uint32_t count;
};

static void notef(struct notes *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void notef(struct notes *n, const char *fmt, ...)
{
    char msg[CONFIG_RELOAD_NOTE_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    n->count++;
    if (n->fn != NULL) {
        n->fn(n->ctx, msg);
    }
}

/*
 * Key @k in section @sec: @want is the new value, @have the running one.
 * Put @have back (and say so) unless the key is applied; @tls_kept: the
 * listener's TLS stays on, so CONFIG__LIVE_TLS keys apply.
 */
static void merge_key(struct notes *n, const char *sec, const struct config__key *k, void *want,
                      const void *have, bool tls_kept)
{
    char was[VALUE_SHOWN_MAX];
    char now[VALUE_SHOWN_MAX];

    if (same(k, want, have) || k->reload == CONFIG__LIVE ||
        (k->reload == CONFIG__LIVE_TLS && tls_kept)) {
        return;
    }
    show(k, have, was, sizeof(was));
    show(k, want, now, sizeof(now));
    if (k->reload == CONFIG__LIVE_TLS) {
        /* TLS turned on or off: the listener keeps all its TLS keys; certfile says why. */
        if (strcmp(k->name, "certfile") == 0) {
            notef(n, "[%s] %s: %s -> %s turns TLS %s, which needs a restart; keeping %s", sec,
                  k->name, was, now, ((const char *)want)[0] != '\0' ? "on" : "off", was);
        }
    } else {
        notef(n, "[%s] %s: %s -> %s needs a restart; keeping %s", sec, k->name, was, now, was);
    }
    memcpy(want, have, k->size);
}

static int find_listener(const struct config *cfg, const char *name)
{
    uint32_t i;

    for (i = 0; i < cfg->listener_count; i++) {
        if (strcmp(cfg->listeners[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

uint32_t config_reload_merge(const struct config *running, struct config *next,
                             void (*note)(void *ctx, const char *msg), void *ctx)
{
    struct config_listener merged[CONFIG_LISTENERS_MAX];
    struct notes n = {.fn = note, .ctx = ctx, .count = 0};
    char sec[CONFIG_NAME_MAX + 16];
    const struct config__key *keys;
    size_t count;
    size_t i;
    uint32_t j;

    RM_ASSERT(running != NULL && next != NULL && running != next);
    RM_ASSERT(running->listener_count <= CONFIG_LISTENERS_MAX &&
              next->listener_count <= CONFIG_LISTENERS_MAX);
    keys = config_keys__table(&count);
    for (i = 0; i < count; i++) {
        const struct config__key *k = &keys[i];
        const char *name = k->scope == CONFIG__SCOPE_BROKER   ? "broker"
                           : k->scope == CONFIG__SCOPE_LIMITS ? "limits"
                           : k->scope == CONFIG__SCOPE_MQTT   ? "mqtt"
                                                              : "auth";

        if (k->scope == CONFIG__SCOPE_LISTENER) {
            continue;
        }
        merge_key(&n, name, k, config_keys__field(next, k, 0),
                  config_keys__field((struct config *)running, k, 0), false);
    }

    /* Listeners: the running ones, in their order, each with what applies of its new self. */
    for (j = 0; j < running->listener_count; j++) {
        const struct config_listener *have = &running->listeners[j];
        int at = find_listener(next, have->name);

        merged[j] = *have;
        if (at < 0) {
            notef(&n, "[listener.%s]: removing a listener needs a restart; still listening",
                  have->name);
            continue;
        }
        merged[j] = next->listeners[at];
        snprintf(sec, sizeof(sec), "listener.%s", have->name);
        for (i = 0; i < count; i++) {
            const struct config__key *k = &keys[i];

            if (k->scope != CONFIG__SCOPE_LISTENER) {
                continue;
            }
            merge_key(&n, sec, k, (char *)&merged[j] + k->offset, (const char *)have + k->offset,
                      config_listener_tls(have) == config_listener_tls(&next->listeners[at]));
        }
    }
    for (j = 0; j < next->listener_count; j++) {
        if (find_listener(running, next->listeners[j].name) < 0) {
            notef(&n, "[listener.%s]: a new listener needs a restart; not listening",
                  next->listeners[j].name);
        }
    }
    memcpy(next->listeners, merged, sizeof(merged[0]) * running->listener_count);
    next->listener_count = running->listener_count;
    RM_ASSERT(next->listener_count >= 1);
    return n.count;
}
