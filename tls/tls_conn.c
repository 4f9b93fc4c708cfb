/*
 * tls_conn.c - per-connection TLS over caller-owned buffers (see tls_conn.h).
 *
 * Owned by the shard that holds the connection; that thread only.
 */
#include "tls/tls_conn.h"

#include <errno.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/aes.h>

#include "core/rm_assert.h"
#include "net/log.h"
#include "tls/tls_ctx.h"

#define TLS_ERR_TEXT_BYTES 160u

/* wolfSSL's receive callback: hand over what the current feed still holds. */
static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_io *io = ctx;
    size_t n;

    RM_ASSERT(io != NULL && buf != NULL);
    RM_ASSERT(sz >= 0);
    (void)ssl;
    if (io->in_len == 0) {
        return WOLFSSL_CBIO_ERR_WANT_READ;
    }
    n = io->in_len < (size_t)sz ? io->in_len : (size_t)sz;
    memcpy(buf, io->in, n);
    io->in += n;
    io->in_len -= n;
    return (int)n;
}

/* wolfSSL's send callback: append to the connection's output; sent later. */
static int io_send(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_io *io = ctx;
    uint8_t *dst;

    RM_ASSERT(io != NULL && io->out != NULL && buf != NULL);
    RM_ASSERT(sz >= 0);
    (void)ssl;
    dst = obuf_reserve(io->out, (size_t)sz, io->out_max);
    if (dst == NULL) {
        return WOLFSSL_CBIO_ERR_GENERAL;
    }
    memcpy(dst, buf, (size_t)sz);
    obuf_commit(io->out, (size_t)sz);
    return sz;
}

/*
 * The one mapping of a wolfSSL return value @ret of @what: > 0 passes
 * through, WANT_READ/WANT_WRITE are 0 (more input needed; output is never
 * refused), the rest an error, logged at DEBUG with wolfSSL's reason.
 */
static long status(WOLFSSL *ssl, int ret, const char *what)
{
    char text[TLS_ERR_TEXT_BYTES];
    int err;

    if (ret > 0) {
        return ret;
    }
    err = wolfSSL_get_error(ssl, ret);
    if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (err == WOLFSSL_ERROR_ZERO_RETURN) {
        return -EPIPE; /* close_notify */
    }
    if (err == MEMORY_E) {
        return -ENOMEM;
    }
    if (log_enabled(CONFIG_LOG_DEBUG)) {
        wolfSSL_ERR_error_string_n((unsigned long)(err < 0 ? -err : err), text, sizeof(text));
        LOG_DEBUG("tls %s failed: %s (%d)", what, text, err);
    }
    return -EPROTO;
}

struct WOLFSSL *tls_conn_new(const struct tls_ctx *t, struct tls_io *io)
{
    WOLFSSL *ssl;

    RM_ASSERT(t != NULL && io != NULL);
    tls_mem_begin(&io->mem, 0);
    ssl = wolfSSL_new(tls_ctx__wolfssl(t));
    tls_mem_end();
    if (ssl == NULL) {
        tls_mem_release(&io->mem);
        return NULL;
    }
    /* Per connection, so the shared WOLFSSL_CTX stays read-only after tls_ctx_new(). */
    wolfSSL_SSLSetIORecv(ssl, io_recv);
    wolfSSL_SSLSetIOSend(ssl, io_send);
    wolfSSL_SetIOReadCtx(ssl, io);
    wolfSSL_SetIOWriteCtx(ssl, io);
    tls_ctx__ref(t);
    io->ctx = t;
    io->mem.ref = tls_ctx__reference(t); /* lives while io->ctx's reference does */
    return ssl;
}

void tls_conn_free(struct WOLFSSL *ssl, struct tls_io *io)
{
    if (ssl != NULL) {
        RM_ASSERT(io != NULL && io->ctx != NULL);
        tls_mem_wake(&io->mem);
        RM_ASSERT(wolfSSL_GetIOReadCtx(ssl) == io);
        wolfSSL_free(ssl);
        tls_mem_release(&io->mem);
        tls_ctx__unref(io->ctx); /* after wolfSSL_free: the object used the context */
        io->ctx = NULL;
    }
}

int tls_conn_sleep(struct tls_io *io)
{
    RM_ASSERT(io != NULL && io->ctx != NULL);
    return tls_mem_sleep(&io->mem);
}

void tls_conn_wake(struct tls_io *io)
{
    RM_ASSERT(io != NULL);
    tls_mem_wake(&io->mem);
}

int tls_conn_handshake(struct WOLFSSL *ssl)
{
    struct tls_io *io;
    int ret;

    RM_ASSERT(ssl != NULL);
    io = wolfSSL_GetIOReadCtx(ssl);
    RM_ASSERT(io != NULL);
    tls_mem_begin(&io->mem, sizeof(Aes)); /* the cipher state joins the object (tls_mem.h) */
    ret = wolfSSL_accept(ssl);
    tls_mem_end();
    return (int)status(ssl, ret, "handshake");
}

bool tls_conn_resumed(struct WOLFSSL *ssl)
{
    RM_ASSERT(ssl != NULL);
    return wolfSSL_session_reused(ssl) == 1;
}

const char *tls_conn_version(struct WOLFSSL *ssl)
{
    RM_ASSERT(ssl != NULL);
    return wolfSSL_get_version(ssl);
}

long tls_conn_read(struct WOLFSSL *ssl, uint8_t *buf, size_t cap)
{
    RM_ASSERT(ssl != NULL && buf != NULL);
    RM_ASSERT(cap > 0 && cap <= INT32_MAX);
    return status(ssl, wolfSSL_read(ssl, buf, (int)cap), "read");
}

int tls_conn_write(struct WOLFSSL *ssl, const uint8_t *buf, size_t len)
{
    long ret;

    RM_ASSERT(ssl != NULL && buf != NULL);
    RM_ASSERT(len > 0 && len <= TLS_CONN_WRITE_MAX);
    ret = status(ssl, wolfSSL_write(ssl, buf, (int)len), "write");
    if (ret == 0) {
        return -EPROTO; /* the output callback never refuses: cannot happen */
    }
    RM_ASSERT(ret < 0 || (size_t)ret == len);
    return ret < 0 ? (int)ret : 0;
}

void tls_conn_close_notify(struct WOLFSSL *ssl)
{
    RM_ASSERT(ssl != NULL);
    (void)wolfSSL_shutdown(ssl);
}

int tls_conn_identity(struct WOLFSSL *ssl, char *cn, size_t cap)
{
    WOLFSSL_X509 *peer;
    WOLFSSL_X509_NAME *name;
    int n = -1;

    RM_ASSERT(ssl != NULL && cn != NULL);
    RM_ASSERT(cap > 1 && cap <= INT32_MAX);
    peer = wolfSSL_get_peer_certificate(ssl);
    if (peer == NULL) {
        return -ENOENT;
    }
    name = wolfSSL_X509_get_subject_name(peer);
    if (name != NULL) {
        n = wolfSSL_X509_NAME_get_text_by_NID(name, NID_commonName, cn, (int)cap);
    }
    wolfSSL_X509_free(peer);
    return n > 0 ? 0 : -ENOENT;
}

void tls_conn_handshake_over(struct WOLFSSL *ssl)
{
    RM_ASSERT(ssl != NULL);
    wolfSSL_FreeArrays(ssl);
}
