/*
 * tls_conn.h - one connection's TLS state (a WOLFSSL object) over
 * caller-owned buffers.
 *
 * wolfSSL never touches the socket. Its I/O callbacks read ciphertext from
 * struct tls_io's borrowed input (the bytes of one recv completion, set by
 * the caller for the length of a feed; empty means WANT_READ) and append
 * ciphertext to the caller's output buffer (never WANT_WRITE: the
 * connection sends it when its one send slot is free). So no call blocks
 * and every call finishes within the bytes at hand.
 *
 * wolfSSL copies what it reads into its own input buffer, so after a read
 * loop that ran to WANT_READ the borrowed input is fully consumed, and a
 * partial record lives inside the WOLFSSL object. A connection handed to
 * another shard carries its WOLFSSL (and the struct tls_io, at the same
 * address) along; one shard uses it at a time.
 *
 * Return conventions: progress functions are tri-state (> 0 done/bytes,
 * 0 need more input, < 0 error: -EPROTO for a TLS failure, logged at DEBUG
 * with wolfSSL's reason; -EPIPE for the peer's close_notify; -ENOMEM).
 * One function maps wolfSSL's WANT_READ/WANT_WRITE and errors (status()).
 *
 * Owned by the shard that holds the connection; that thread only.
 */
#ifndef RINGMQ_TLS_CONN_H
#define RINGMQ_TLS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/obuf.h"
#include "tls/tls_mem.h"

struct tls_ctx;
struct WOLFSSL;
struct WOLFSSL_CTX;

/* Plaintext handed to one wolfSSL_write, at most (wolfSSL takes an int). */
#define TLS_CONN_WRITE_MAX (1u << 20)
/* Longest certificate identity (subject CN) reported. */
#define TLS_CONN_IDENTITY_MAX 256u

/* The buffers a WOLFSSL object's callbacks use; lives as long as the object. */
struct tls_io {
    const uint8_t *in; /* ciphertext not yet taken by wolfSSL (borrowed during a feed) */
    size_t in_len;
    struct obuf *out;          /* ciphertext to send; wolfSSL's writes append to it */
    size_t out_max;            /* bound on out->len: past it a write fails (-ENOMEM) */
    const struct tls_ctx *ctx; /* the object's context: one reference, dropped by tls_conn_free */
    struct tls_mem mem;        /* the object's own memory (tls/tls_mem) */
};

/*
 * A new server-side WOLFSSL from @t, with @io (borrowed, must outlive the
 * object and keep its address) as its I/O. Takes a reference to @t (in
 * io->ctx) until tls_conn_free(), so the connection keeps its context
 * across a reload. NULL on allocation failure.
 */
struct WOLFSSL *tls_conn_new(const struct tls_ctx *t, struct tls_io *io);

/*
 * Free @ssl (NULL is fine) without sending anything; drops its context
 * reference and gives its memory back. Wakes it first if it sleeps.
 */
void tls_conn_free(struct WOLFSSL *ssl, struct tls_io *io);

/*
 * The connection is idle: put its WOLFSSL object's memory to sleep
 * (tls/tls_mem), from ~54 KB to ~2 KB. 0 or -ENOMEM (it stays awake).
 * Until tls_conn_wake(), no other tls_conn call may be made on it.
 */
int tls_conn_sleep(struct tls_io *io);

/* Wake the object of @io (no-op when awake): call before any other tls_conn call. */
void tls_conn_wake(struct tls_io *io);

/* Advance the handshake with io->in. > 0 complete, 0 need more, < 0 error. */
int tls_conn_handshake(struct WOLFSSL *ssl);

/* Whether the completed handshake resumed a session (a ticket). */
bool tls_conn_resumed(struct WOLFSSL *ssl);

/* The negotiated protocol version, e.g. "TLSv1.3" (static). */
const char *tls_conn_version(struct WOLFSSL *ssl);

/*
 * Decrypt application data into @buf[0..@cap). > 0 bytes, 0 need more
 * input, < 0 error (-EPIPE: the peer sent close_notify).
 */
long tls_conn_read(struct WOLFSSL *ssl, uint8_t *buf, size_t cap);

/*
 * Encrypt @buf[0..@len) (at most TLS_CONN_WRITE_MAX bytes) into io->out.
 * 0, or < 0 (-ENOMEM: out of memory or io->out_max reached; -EPROTO).
 */
int tls_conn_write(struct WOLFSSL *ssl, const uint8_t *buf, size_t len);

/* Queue a close_notify alert into io->out (best effort). */
void tls_conn_close_notify(struct WOLFSSL *ssl);

/*
 * The verified client certificate's subject CN into @cn (NUL-terminated).
 * 0, or -ENOENT when there is no certificate or it has no CN.
 */
int tls_conn_identity(struct WOLFSSL *ssl, char *cn, size_t cap);

/* The handshake is over: free what only the handshake needed. */
void tls_conn_handshake_over(struct WOLFSSL *ssl);

#endif
