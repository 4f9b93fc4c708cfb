/*
 * lg_tls.c - the TLS transport: MQTT bytes in TLS 1.2/1.3 records, by wolfSSL.
 *
 * setup() (main thread) builds one client WOLFSSL_CTX from the options: the
 * CA certificates that verify the broker (--tls-ca) or no verification
 * (--tls-insecure). Workers only create WOLFSSL objects from it, which
 * wolfSSL allows from several threads at once; nothing else touches the
 * context until cleanup(), after the workers have been joined.
 *
 * Each connection owns one WOLFSSL, non-blocking, with the worker's socket
 * as its I/O (wolfSSL_set_fd): the handshake runs in open() as readiness
 * allows, recv() drains every record the socket has, send() encrypts. Every
 * call for a connection comes from the worker thread that owns it.
 */
#include "perf/lg_tls.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include "core/rm_assert.h"

#define TLS_ERR_TEXT_BYTES 160u  /* wolfSSL_ERR_error_string_n buffer */
#define TLS_WRITE_MAX (1u << 20) /* bytes handed to one wolfSSL_write */

/* Built by setup() on the main thread; read-only while workers run. */
static WOLFSSL_CTX *ctx;
static const struct lg_transport_cfg *cfg_now;
/* The first failure is explained on stderr once; the rest are only counted. */
static atomic_bool told;
/* --tls-resume: this worker's session to resume (with a ticket); its own thread only. */
static _Thread_local WOLFSSL_SESSION *resume_session;

static void tell_once(const char *what, int err)
{
    char text[TLS_ERR_TEXT_BYTES];

    if (atomic_exchange(&told, true)) {
        return;
    }
    wolfSSL_ERR_error_string_n((unsigned long)err, text, sizeof(text));
    fprintf(stderr, "ringmq-loadgen: TLS %s failed: %s (%d)%s\n", what, text, err,
            err == ASN_NO_SIGNER_E || err == ASN_SELF_SIGNED_E || err == VERIFY_CERT_ERROR ||
                    err == DOMAIN_NAME_MISMATCH
                ? "; check --tls-ca / --tls-sni, or --tls-insecure"
                : "");
}

static int tls_setup(const struct lg_transport_cfg *cfg)
{
    int ret = -EINVAL;

    RM_ASSERT(cfg != NULL);
    RM_ASSERT(ctx == NULL);
    if (wolfSSL_Init() != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-loadgen: wolfSSL_Init failed\n");
        goto out;
    }
    ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (ctx == NULL) {
        fprintf(stderr, "ringmq-loadgen: cannot create a TLS context\n");
        ret = -ENOMEM;
        goto out_cleanup;
    }
    /* TLS 1.2 or 1.3, whichever the broker prefers; nothing older. */
    if (wolfSSL_CTX_SetMinVersion(ctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-loadgen: cannot require TLS 1.2\n");
        goto out_free;
    }
    /*
     * Key exchange as OpenSSL, browsers and Node offer it: X25519 first, the
     * NIST curves after (TLS 1.3 sends a key share for the first only).
     */
    if (wolfSSL_CTX_set_groups(ctx, (int[]){WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1,
                                            WOLFSSL_ECC_SECP384R1},
                               3) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-loadgen: cannot set the key exchange groups\n");
        goto out_free;
    }
    if (cfg->tls_resume && wolfSSL_CTX_UseSessionTicket(ctx) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-loadgen: cannot ask for session tickets\n");
        goto out_free;
    }
    if (cfg->tls_ciphers != NULL &&
        wolfSSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != WOLFSSL_SUCCESS) {
        fprintf(stderr, "ringmq-loadgen: --tls-ciphers '%s': no cipher suite this wolfSSL knows\n",
                cfg->tls_ciphers);
        goto out_free;
    }
    if (cfg->tls_insecure) {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    } else {
        RM_ASSERT(cfg->tls_ca != NULL); /* lg_opts requires one of the two */
        if (wolfSSL_CTX_load_verify_locations(ctx, cfg->tls_ca, NULL) != WOLFSSL_SUCCESS) {
            fprintf(stderr, "ringmq-loadgen: --tls-ca '%s': cannot load CA certificates (PEM)\n",
                    cfg->tls_ca);
            goto out_free;
        }
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    }
    cfg_now = cfg;
    atomic_store(&told, false);
    ret = 0;
    goto out;
out_free:
    wolfSSL_CTX_free(ctx);
    ctx = NULL;
out_cleanup:
    wolfSSL_Cleanup();
out:
    return ret;
}

/* The fixed-point ECC cache (FP_ECC) is thread-local: each worker frees its own. */
static void tls_thread_done(void)
{
    wc_ecc_fp_free();
    if (resume_session != NULL) {
        wolfSSL_SESSION_free(resume_session);
        resume_session = NULL;
    }
}

/*
 * --tls-resume: keep @ssl's session once it holds a ticket (TLS 1.3 sends it
 * after the handshake, so this runs after reads).
 */
static void keep_session(WOLFSSL *ssl)
{
    WOLFSSL_SESSION *s;

    if (!cfg_now->tls_resume || resume_session != NULL) {
        return;
    }
    s = wolfSSL_get1_session(ssl);
    if (s != NULL && wolfSSL_SESSION_has_ticket(s)) {
        resume_session = s;
    } else if (s != NULL) {
        wolfSSL_SESSION_free(s);
    }
}

static void tls_cleanup(void)
{
    RM_ASSERT(ctx != NULL);
    RM_ASSERT(cfg_now != NULL);
    wolfSSL_CTX_free(ctx);
    ctx = NULL;
    cfg_now = NULL;
    wolfSSL_Cleanup();
}

/* Map a failed wolfSSL call on @ssl to -EAGAIN (setting tc->want_out) or a -errno. */
static int tls_fail(struct lg_tconn *tc, WOLFSSL *ssl, int r, const char *what)
{
    int err = wolfSSL_get_error(ssl, r);

    switch (err) {
    case WOLFSSL_ERROR_WANT_READ:
        tc->want_out = false;
        return -EAGAIN;
    case WOLFSSL_ERROR_WANT_WRITE:
        tc->want_out = true;
        return -EAGAIN;
    case WOLFSSL_ERROR_ZERO_RETURN: /* close_notify */
        return 0;
    case SOCKET_PEER_CLOSED_E:
    case SOCKET_ERROR_E:
        return -ECONNRESET;
    default:
        tell_once(what, err);
        return -ECONNABORTED;
    }
}

static int tls_open(struct lg_tconn *tc)
{
    WOLFSSL *ssl = tc->state;
    int r;

    RM_ASSERT(tc->fd >= 0);
    RM_ASSERT(ctx != NULL && cfg_now != NULL);
    if (ssl == NULL) {
        ssl = wolfSSL_new(ctx);
        if (ssl == NULL) {
            return -ENOMEM;
        }
        tc->state = ssl;
        if (wolfSSL_set_fd(ssl, tc->fd) != WOLFSSL_SUCCESS) {
            return -ENOMEM;
        }
        wolfSSL_set_using_nonblock(ssl, 1);
        if (resume_session != NULL && wolfSSL_set_session(ssl, resume_session) != WOLFSSL_SUCCESS) {
            return -ENOMEM;
        }
        if (cfg_now->tls_sni != NULL) {
            const char *sni = cfg_now->tls_sni;

            if (wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni)) !=
                    WOLFSSL_SUCCESS ||
                wolfSSL_check_domain_name(ssl, sni) != WOLFSSL_SUCCESS) {
                return -ENOMEM;
            }
        }
    }
    r = wolfSSL_connect(ssl);
    if (r == WOLFSSL_SUCCESS) {
        tc->want_out = false;
        return 1;
    }
    r = tls_fail(tc, ssl, r, "handshake");
    if (r == -EAGAIN) {
        return 0;
    }
    return r == 0 ? -ECONNRESET : r;
}

static ssize_t tls_recv(struct lg_tconn *tc, uint8_t *buf, size_t len)
{
    WOLFSSL *ssl = tc->state;
    size_t got = 0;
    int r = -EAGAIN;

    RM_ASSERT(ssl != NULL);
    RM_ASSERT(buf != NULL && len > 0 && len <= INT_MAX);
    /*
     * Every record the socket has, until @buf is full: wolfSSL reads exactly
     * the bytes of the record it needs, so once it wants to read, nothing is
     * left inside it and epoll tells of the rest.
     */
    while (got < len) {
        int n = wolfSSL_read(ssl, buf + got, (int)(len - got));

        if (n <= 0) {
            r = tls_fail(tc, ssl, n, "read");
            break;
        }
        got += (size_t)n;
    }
    tc->rx_more = got == len && wolfSSL_pending(ssl) > 0;
    keep_session(ssl);
    if (got > 0) {
        return (ssize_t)got; /* an error after data shows again on the next call */
    }
    return r;
}

static ssize_t tls_send(struct lg_tconn *tc, const uint8_t *buf, size_t len)
{
    WOLFSSL *ssl = tc->state;
    int n;

    RM_ASSERT(ssl != NULL);
    RM_ASSERT(buf != NULL && len > 0);
    /*
     * wolfSSL_write either takes everything or, on a full socket, keeps what
     * it already encrypted and reports WANT_WRITE; the next call with the
     * same bytes (the worker's output from the same offset) continues there.
     */
    n = wolfSSL_write(ssl, buf, (int)(len < TLS_WRITE_MAX ? len : TLS_WRITE_MAX));
    if (n > 0) {
        tc->want_out = false;
        return n;
    }
    n = tls_fail(tc, ssl, n, "write");
    return n == 0 ? -EPIPE : n;
}

static void tls_close(struct lg_tconn *tc)
{
    WOLFSSL *ssl = tc->state;

    RM_ASSERT(tc != NULL);
    if (ssl == NULL) {
        return;
    }
    if (wolfSSL_is_init_finished(ssl)) {
        wolfSSL_shutdown(ssl); /* one try at close_notify; never waits */
    }
    wolfSSL_free(ssl);
    tc->state = NULL;
}

const struct lg_transport lg_tls_transport = {
    .name = "tls",
    .setup = tls_setup,
    .cleanup = tls_cleanup,
    .thread_done = tls_thread_done,
    .open = tls_open,
    .recv = tls_recv,
    .send = tls_send,
    .flush = NULL,
    .close = tls_close,
};
