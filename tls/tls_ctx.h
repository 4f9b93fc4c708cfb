/*
 * tls_ctx.h - one listener's TLS server context (wolfSSL).
 *
 * tls_ctx_new() builds a WOLFSSL_CTX from a [listener.NAME] section at
 * start-up and at each reload (SIGHUP): server certificate chain and key
 * (certfile may hold both, the `cat server.crt server.key > mqtt.pem`
 * habit), minimum protocol version
 * (tls_version), cipher lists, and when require_certificate is on, the CA
 * certificates (cafile / capath) that client certificates must chain to.
 * After that the context is only read: every shard creates its
 * connections' WOLFSSL objects from it (tls/tls_conn).
 *
 * Resumption: stateless session tickets (TLS 1.2 tickets, TLS 1.3 PSK
 * tickets), sealed with ChaCha20-Poly1305 under a key drawn once per
 * process. wolfSSL's own session cache is switched off: it is one table for
 * the whole process behind a mutex, and its default ticket callback takes a
 * mutex on every ticket too, so a handshake on one shard would wait for
 * another. Each context draws its own key, so a reload, which builds new
 * contexts, rotates it: tickets sealed before the reload (or by an earlier
 * process) are rejected, and that client does one full handshake. Listeners with
 * use_identity_as_username issue no tickets: a resumed TLS 1.2 session has
 * no peer certificate to take the identity from, so every client there does
 * a full handshake. wolfSSL_new()/wolfSSL_free() still take the context's
 * reference-count mutex: one short lock per accepted and closed TLS
 * connection, shared by the shards.
 *
 * tls/tls_conn sets its I/O callbacks on each connection: wolfSSL never
 * touches a socket, and a context is never written after it is built.
 *
 * Lifetime. A context is reference-counted: its owner (the live snapshot,
 * net/live) holds one reference and every connection made from it
 * another (tls_conn_new() takes it, tls_conn_free() drops it), so a
 * reload can retire a context while connections made from it still run:
 * they keep their context, and the last one to close frees it.
 *
 * THREADING: built on one thread (start-up, or shard 0 for a reload), then
 * published to the shards over the cross-shard rings (release/acquire);
 * after that only read, except the reference count (an atomic), which any
 * shard changes. Whichever thread drops the last reference frees it.
 */
#ifndef RINGMQ_TLS_CTX_H
#define RINGMQ_TLS_CTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wolfssl/options.h>

#include "config/config.h"

/*
 * wc_ecc_fp_free() (tls_idle_trim(), tls_thread_done()) frees the calling
 * thread's fixed-point ECC tables only where they are thread-local; with
 * one shared cache it would pull them from under the other shards.
 */
#if defined(FP_ECC) && !defined(HAVE_THREAD_LS)
#error "ringmq needs a wolfSSL whose fixed-point ECC cache is thread-local (HAVE_THREAD_LS)"
#endif

/* Whether this wolfSSL's AES-GCM uses AES-NI (else it runs in C: tls_ctx.c's suite order). */
#ifdef WOLFSSL_AESNI
#define TLS_AES_NI 1
#else
#define TLS_AES_NI 0
#endif

struct tls_ctx;

/*
 * Initialise wolfSSL once for the process (before any tls_ctx_new()), its
 * allocations going through tls/tls_mem. Returns 0 or -1.
 */
int tls_init(void);

/* Undo tls_init() after every context is freed. */
void tls_cleanup(void);

/*
 * Free the calling thread's wolfSSL caches (the fixed-point ECC cache is
 * thread-local) and its free connection regions (tls/tls_mem). Each shard
 * thread calls it when its loop ends.
 */
void tls_thread_done(void);

/*
 * This thread's handshakes paused: free its fixed-point ECC tables (the
 * next full handshakes build them again) and give the heap's free pages
 * back to the kernel (malloc_trim(): every thread's arena, each locked in
 * turn, so only at such a pause). Handshakes leave both behind: ~0.8 MB of
 * tables per shard, and their temporaries' freed pages.
 */
void tls_idle_trim(void);

/*
 * Build the context for listener @l (borrowed until return), which has
 * certfile set. Returns it, or NULL with a message in @err naming the file
 * that could not be used and why.
 */
struct tls_ctx *tls_ctx_new(const struct config_listener *l, char *err, size_t err_len);

/*
 * Drop the owner's reference to @t (NULL is fine): @t is freed now, or by
 * the last connection made from it (tls_conn_free()). Any thread.
 */
void tls_ctx_free(struct tls_ctx *t);

/* Whether @t's listener takes the certificate's CN as the user name (use_identity_as_username). */
bool tls_ctx_identity_as_username(const struct tls_ctx *t);

/* The wolfSSL context, for tls/tls_conn. */
struct WOLFSSL_CTX *tls_ctx__wolfssl(const struct tls_ctx *t);

struct tls_mem;
/*
 * For tls/tls_conn: the region of a fresh, never used object of @t, which
 * its connections' sleeping regions are encoded against (tls_mem.h's ref);
 * NULL: none. Lives as long as @t.
 */
const struct tls_mem *tls_ctx__reference(const struct tls_ctx *t);

/* tls/tls_conn: one more connection uses @t (any thread). */
void tls_ctx__ref(const struct tls_ctx *t);

/* tls/tls_conn: a connection made from @t is gone; the last reference frees @t (any thread). */
void tls_ctx__unref(const struct tls_ctx *t);

#endif
