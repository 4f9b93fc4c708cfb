/*
 * config_reload.h - what a reload may apply: a newly loaded configuration
 * checked against the running one, key by key, with every key a running
 * broker cannot take (listeners' sockets, shards, limits, memory sizes...)
 * put back to its running value and reported.
 *
 * Pure: it reads two finished snapshots and the key table, and writes only
 * the new one. The reload (net/live) and the unit tests call it. Any
 * thread, on snapshots that thread owns or that nobody writes.
 */
#ifndef RINGMQ_CONFIG_RELOAD_H
#define RINGMQ_CONFIG_RELOAD_H

#include <stdint.h>

#include "config/config_types.h"

/* The longest message config_reload_merge() hands to its callback. */
#define CONFIG_RELOAD_NOTE_MAX 512

/*
 * Turn @next (a configuration just loaded and validated by config_load())
 * into what a broker running @running (the configuration it applied last,
 * as loaded from its file) can apply: the keys a reload applies
 * (config_keys' CONFIG__LIVE, and CONFIG__LIVE_TLS while a listener keeps
 * TLS on) take @next's values; every other key that differs gets
 * @running's back. Listeners are matched by name and keep @running's
 * order and count: a listener new in @next, or gone from it, needs a
 * restart too. For each key or listener put back, @note(@ctx, msg) gets one
 * message, e.g. "[limits] inflight_max: 20 -> 30 needs a restart; keeping
 * 20" or "[listener.b]: a new listener needs a restart; not listening".
 * @next->acl is left alone (the [acl] rules always apply). Returns the
 * number of notes. Borrows everything until return; @note runs
 * synchronously.
 */
uint32_t config_reload_merge(const struct config *running, struct config *next,
                             void (*note)(void *ctx, const char *msg), void *ctx);

#endif
