/*
 * login_types.h - what core/login shares with struct broker and net/: the
 * questions core/ asks net/ about a connection (see login.h).
 *
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_LOGIN_TYPES_H
#define RINGMQ_LOGIN_TYPES_H

#include <stdint.h>

struct client;

/*
 * What core/ asks net/ about a connection, only when it needs to. Each is
 * called synchronously, on the shard, with net/'s @ctx.
 */
struct login_peer_ops {
    /* The verified client certificate CN of @cl's connection, or NULL. Borrowed until return. */
    const char *(*identity)(void *ctx, const struct client *cl);
    /* A key for @cl's source address (a hash of it; 0 when unknown). May make a syscall. */
    uint64_t (*address)(void *ctx, const struct client *cl);
    void *ctx;
};

#endif
