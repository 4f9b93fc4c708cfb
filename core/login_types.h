/*
 * login_types.h - what core/login shares with struct broker and net/: the
 * questions core/ asks net/ about a connection (see login.h).
 *
 * Owned by one shard; single-threaded.
 */
#ifndef RINGMQ_LOGIN_TYPES_H
#define RINGMQ_LOGIN_TYPES_H

#include <stddef.h>
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
    /*
     * Fill @buf with @len unpredictable bytes (a SCRAM server nonce): 0, or
     * negative. May make a syscall. NULL: SCRAM is not offered.
     */
    int (*random)(void *ctx, uint8_t *buf, size_t len);
    void *ctx;
};

#endif
