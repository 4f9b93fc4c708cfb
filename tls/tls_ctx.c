/*
 * tls_ctx.c - listener TLS contexts and the session ticket key (see tls_ctx.h).
 *
 * Start-up thread (or shard 0, for a reload) builds; shards only read, but
 * for the reference count. The ticket callback runs on whichever shard
 * handshakes and reads nothing but the context's key.
 */
#include "tls/tls_ctx.h"

#include <errno.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "core/rm_assert.h"
#include "tls/tls_mem.h"

/*
 * The suites a listener offers when its lists are not configured
 * (forward-secret AEADs only), in the server's order of preference, which
 * wolfSSL follows: the cheaper AEAD first. This wolfSSL's AES-GCM runs in
 * C unless it was built with AES-NI (TLS_AES_NI, tls_ctx.h; Debian's is
 * not), and then ChaCha20-Poly1305 costs a broker about two thirds of it
 * per record (0.56 against 0.87 us for 100 bytes here): ~45 % more TLS
 * messages per CPU-second.
 */
#define TLS13_AES "TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384"
#define TLS13_CHACHA "TLS13-CHACHA20-POLY1305-SHA256"
#define TLS12_AES                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384"
#define TLS12_CHACHA "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
/* TLS 1.3 suites kept when only `ciphers` (the TLS 1.2 list) is configured. */
#define TLS13_DEFAULT_SUITES (TLS_AES_NI ? TLS13_AES ":" TLS13_CHACHA : TLS13_CHACHA ":" TLS13_AES)
/* TLS 1.2 suites kept when only `ciphers_tls1.3` is configured. */
#define TLS12_DEFAULT_SUITES (TLS_AES_NI ? TLS12_AES ":" TLS12_CHACHA : TLS12_CHACHA ":" TLS12_AES)
#define TLS_CIPHERS_MAX (2 * CONFIG_CIPHERS_MAX + 2)
#define TLS_ERR_TEXT_BYTES 160u
/* Ticket lifetime advertised to clients (seconds); the key lives as long as the process. */
#define TLS_TICKET_HINT_S 7200

struct tls_ctx {
    WOLFSSL_CTX *ctx;
    /* The owner's reference plus one per connection. THREADING: any shard (atomic). */
    _Atomic uint32_t refs;
    bool identity_as_username; /* the listener's use_identity_as_username */
    /* Sealing key of session tickets, drawn at start-up; read-only after. */
    uint8_t ticket_name[WOLFSSL_TICKET_NAME_SZ];
    uint8_t ticket_key[CHACHA20_POLY1305_AEAD_KEYSIZE];
    /*
     * A fresh object of this context, never used: what its connections'
     * sleeping regions are encoded against (tls_nap.h). Read-only after
     * tls_ctx_new(); NULL when it could not be made (naps are larger then).
     */
    WOLFSSL *ref_ssl;
    struct tls_mem ref_mem;
};

_Static_assert(CHACHA20_POLY1305_AEAD_IV_SIZE <= WOLFSSL_TICKET_IV_SZ, "nonce fits the iv");
_Static_assert(CHACHA20_POLY1305_AEAD_AUTHTAG_SIZE <= WOLFSSL_TICKET_MAC_SZ, "tag fits the mac");

int tls_init(void)
{
    if (tls_mem_init() < 0) {
        return -1;
    }
    return wolfSSL_Init() == WOLFSSL_SUCCESS ? 0 : -1;
}

void tls_cleanup(void)
{
    wolfSSL_Cleanup();
}

void tls_idle_trim(void)
{
    wc_ecc_fp_free();
    (void)malloc_trim(0);
}

void tls_thread_done(void)
{
    wc_ecc_fp_free();
    tls_mem_thread_done();
}

/*
 * wolfSSL's SessionTicketEncCb: seal (@enc) or open a ticket in place.
 * The nonce is random per ticket; key name and nonce are authenticated.
 */
static int ticket_cb(WOLFSSL *ssl, unsigned char key_name[WOLFSSL_TICKET_NAME_SZ],
                     unsigned char iv[WOLFSSL_TICKET_IV_SZ],
                     unsigned char mac[WOLFSSL_TICKET_MAC_SZ], int enc, unsigned char *ticket,
                     int in_len, int *out_len, void *user)
{
    const struct tls_ctx *t = user;
    uint8_t aad[WOLFSSL_TICKET_NAME_SZ + WOLFSSL_TICKET_IV_SZ];
    int rc = WOLFSSL_TICKET_RET_REJECT;

    RM_ASSERT(t != NULL && ticket != NULL && out_len != NULL);
    RM_ASSERT(in_len >= 0);
    (void)ssl;
    if (enc) {
        memcpy(key_name, t->ticket_name, WOLFSSL_TICKET_NAME_SZ);
        if (getrandom(iv, WOLFSSL_TICKET_IV_SZ, 0) != WOLFSSL_TICKET_IV_SZ) {
            return WOLFSSL_TICKET_RET_FATAL;
        }
        memset(mac, 0, WOLFSSL_TICKET_MAC_SZ);
    } else if (memcmp(key_name, t->ticket_name, WOLFSSL_TICKET_NAME_SZ) != 0) {
        return WOLFSSL_TICKET_RET_REJECT; /* another process's key: full handshake */
    }
    memcpy(aad, key_name, WOLFSSL_TICKET_NAME_SZ);
    memcpy(aad + WOLFSSL_TICKET_NAME_SZ, iv, WOLFSSL_TICKET_IV_SZ);
    if (enc) {
        if (wc_ChaCha20Poly1305_Encrypt(t->ticket_key, iv, aad, sizeof(aad), ticket, (word32)in_len,
                                        ticket, mac) == 0) {
            *out_len = in_len;
            rc = WOLFSSL_TICKET_RET_OK;
        } else {
            rc = WOLFSSL_TICKET_RET_FATAL;
        }
    } else if (wc_ChaCha20Poly1305_Decrypt(t->ticket_key, iv, aad, sizeof(aad), ticket,
                                           (word32)in_len, mac, ticket) == 0) {
        *out_len = in_len;
        rc = WOLFSSL_TICKET_RET_OK;
    }
    return rc;
}

/*
 * "@what '@path': why": wolfSSL's reason when it gave one (a negative
 * return, or its error queue), else @plain.
 */
static void fail(char *err, size_t err_len, const char *what, const char *path, int ret,
                 const char *plain)
{
    char text[TLS_ERR_TEXT_BYTES];
    unsigned long code = ret < 0 ? (unsigned long)-ret : wolfSSL_ERR_get_error();

    if (code != 0) {
        wolfSSL_ERR_error_string_n(code, text, sizeof(text));
        snprintf(err, err_len, "%s '%s': %s (%s)", what, path, plain, text);
    } else {
        snprintf(err, err_len, "%s '%s': %s", what, path, plain);
    }
}

/*
 * Does the context's private key belong to its certificate? Signs a fixed
 * message with the one and verifies it with the other: wolfSSL 5.5's
 * wolfSSL_CTX_check_private_key() lets a mismatched EC key through.
 */
static bool keys_match(WOLFSSL_CTX *ctx)
{
    static const unsigned char msg[] = "ringmq: does the key match the certificate?";
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    WOLFSSL_EVP_PKEY *priv = wolfSSL_CTX_get0_privatekey(ctx);
    WOLFSSL_X509 *cert = wolfSSL_CTX_get0_certificate(ctx);
    WOLFSSL_EVP_PKEY *pub = cert != NULL ? wolfSSL_X509_get_pubkey(cert) : NULL;
    WOLFSSL_EVP_MD_CTX *md = wolfSSL_EVP_MD_CTX_new();
    bool ok = false;

    if (priv == NULL || pub == NULL || md == NULL) {
        goto out;
    }
    if (wolfSSL_EVP_DigestSignInit(md, NULL, wolfSSL_EVP_sha256(), NULL, priv) != 1 ||
        wolfSSL_EVP_DigestSignUpdate(md, msg, sizeof(msg)) != 1 ||
        wolfSSL_EVP_DigestSignFinal(md, sig, &sig_len) != 1) {
        goto out;
    }
    wolfSSL_EVP_MD_CTX_free(md);
    md = wolfSSL_EVP_MD_CTX_new();
    ok = md != NULL &&
         wolfSSL_EVP_DigestVerifyInit(md, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
         wolfSSL_EVP_DigestVerifyUpdate(md, msg, sizeof(msg)) == 1 &&
         wolfSSL_EVP_DigestVerifyFinal(md, sig, sig_len) == 1;
out:
    wolfSSL_EVP_MD_CTX_free(md);
    wolfSSL_EVP_PKEY_free(pub);
    return ok;
}

/*
 * Cipher lists: TLS 1.2 names and TLS 1.3 suites go to wolfSSL as one list;
 * the one not configured keeps its defaults, so naming one list never turns
 * the other protocol version off.
 */
static int set_ciphers(WOLFSSL_CTX *ctx, const struct config_listener *l, char *err, size_t err_len)
{
    char list[TLS_CIPHERS_MAX];
    int i;

    /* Each configured list alone must name a suite wolfSSL knows. */
    for (i = 0; i < 2; i++) {
        const char *one = i == 0 ? l->ciphers : l->ciphers_tls13;

        if (one[0] != '\0' && wolfSSL_CTX_set_cipher_list(ctx, one) != WOLFSSL_SUCCESS) {
            snprintf(err, err_len, "%s '%s': no cipher suite this wolfSSL knows",
                     i == 0 ? "ciphers" : "ciphers_tls1.3", one);
            return -1;
        }
    }
    /*
     * TLS 1.3 suites first: wolfSSL takes the first suite of the server's
     * list that the client offers, and a client offering both kinds (any
     * OpenSSL one) would otherwise get a TLS 1.2 suite in a TLS 1.3
     * handshake, which fails (record layer version error).
     */
    snprintf(list, sizeof(list), "%s:%s",
             l->ciphers_tls13[0] != '\0' ? l->ciphers_tls13 : TLS13_DEFAULT_SUITES,
             l->ciphers[0] != '\0' ? l->ciphers : TLS12_DEFAULT_SUITES);
    if (wolfSSL_CTX_set_cipher_list(ctx, list) != WOLFSSL_SUCCESS) {
        snprintf(err, err_len, "ciphers: wolfSSL refused the combined list '%s'", list);
        return -1;
    }
    return 0;
}

struct tls_ctx *tls_ctx_new(const struct config_listener *l, char *err, size_t err_len)
{
    struct tls_ctx *t;
    const char *keyfile;
    bool ok;
    int ret;

    RM_ASSERT(l != NULL && l->certfile[0] != '\0');
    RM_ASSERT(err != NULL && err_len > 0);
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, err_len, "out of memory");
        goto out;
    }
    atomic_init(&t->refs, 1);
    t->identity_as_username = l->use_identity_as_username;
    if (getrandom(t->ticket_key, sizeof(t->ticket_key), 0) != sizeof(t->ticket_key) ||
        getrandom(t->ticket_name, sizeof(t->ticket_name), 0) != sizeof(t->ticket_name)) {
        snprintf(err, err_len, "getrandom: %s", strerror(errno));
        goto out_free;
    }
    t->ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    if (t->ctx == NULL) {
        snprintf(err, err_len, "cannot create a TLS context");
        goto out_free;
    }
    ret = wolfSSL_CTX_SetMinVersion(t->ctx, l->tls_version == CONFIG_TLS_13 ? WOLFSSL_TLSV1_3
                                                                            : WOLFSSL_TLSV1_2);
    if (ret != WOLFSSL_SUCCESS) {
        snprintf(err, err_len, "tls_version: this wolfSSL cannot require it");
        goto out_free;
    }
    ret = wolfSSL_CTX_use_certificate_chain_file(t->ctx, l->certfile);
    if (ret != WOLFSSL_SUCCESS) {
        fail(err, err_len, "certfile", l->certfile, ret, "no PEM certificate wolfSSL can use");
        goto out_free;
    }
    keyfile = l->keyfile[0] != '\0' ? l->keyfile : l->certfile;
    ret = wolfSSL_CTX_use_PrivateKey_file(t->ctx, keyfile, WOLFSSL_FILETYPE_PEM);
    if (ret != WOLFSSL_SUCCESS) {
        fail(err, err_len, l->keyfile[0] != '\0' ? "keyfile" : "certfile (no keyfile given)",
             keyfile, ret, "no PEM private key wolfSSL can use");
        goto out_free;
    }
    ok = keys_match(t->ctx);
    wc_ecc_fp_free(); /* its sign and verify built this thread's tables: not kept for it */
    if (!ok) {
        snprintf(err, err_len, "keyfile '%s': the key does not match certfile '%s'", keyfile,
                 l->certfile);
        goto out_free;
    }
    if (l->cafile[0] != '\0' || l->capath[0] != '\0') {
        ret = wolfSSL_CTX_load_verify_locations(t->ctx, l->cafile[0] ? l->cafile : NULL,
                                                l->capath[0] ? l->capath : NULL);
        if (ret != WOLFSSL_SUCCESS) {
            fail(err, err_len, l->cafile[0] ? "cafile" : "capath",
                 l->cafile[0] ? l->cafile : l->capath, ret, "no CA certificate wolfSSL can use");
            goto out_free;
        }
    }
    wolfSSL_CTX_set_verify(t->ctx,
                           l->require_certificate
                               ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                               : WOLFSSL_VERIFY_NONE,
                           NULL);
    if (set_ciphers(t->ctx, l, err, err_len) < 0) {
        goto out_free;
    }
    wolfSSL_CTX_set_session_cache_mode(t->ctx, WOLFSSL_SESS_CACHE_OFF);
    if (wolfSSL_CTX_set_TicketEncCb(t->ctx, ticket_cb) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketEncCtx(t->ctx, t) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_TicketHint(t->ctx, TLS_TICKET_HINT_S) != WOLFSSL_SUCCESS) {
        snprintf(err, err_len, "cannot set up session tickets");
        goto out_free;
    }
    if (l->use_identity_as_username &&
        (wolfSSL_CTX_NoTicketTLSv12(t->ctx) != WOLFSSL_SUCCESS ||
         wolfSSL_CTX_no_ticket_TLSv13(t->ctx) != 0)) { /* 0: success, unlike the other */
        snprintf(err, err_len, "cannot turn session tickets off");
        goto out_free;
    }
    /* Last: the object copies the context's settings. */
    tls_mem_begin(&t->ref_mem, 0);
    t->ref_ssl = wolfSSL_new(t->ctx);
    tls_mem_end();
    if (t->ref_ssl == NULL) {
        tls_mem_release(&t->ref_mem);
    }
    return t;

out_free:
    tls_ctx_free(t);
    t = NULL;
out:
    return t;
}

void tls_ctx__ref(const struct tls_ctx *t)
{
    struct tls_ctx *m = (struct tls_ctx *)t; /* the count is the one mutable field */

    RM_ASSERT(t != NULL);
    RM_ASSERT(atomic_load_explicit(&m->refs, memory_order_relaxed) > 0);
    /* Relaxed: whoever takes a reference already holds one (a listener's, via its owner). */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

void tls_ctx__unref(const struct tls_ctx *t)
{
    struct tls_ctx *m = (struct tls_ctx *)t;
    uint32_t was;

    if (m == NULL) {
        return;
    }
    /* Release, then acquire by the last: every use happens before the free. */
    was = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
    RM_ASSERT(was > 0);
    if (was != 1) {
        return;
    }
    if (m->ref_ssl != NULL) {
        wolfSSL_free(m->ref_ssl);
        tls_mem_release(&m->ref_mem);
    }
    if (m->ctx != NULL) {
        wolfSSL_CTX_free(m->ctx);
    }
    explicit_bzero(m->ticket_key, sizeof(m->ticket_key));
    free(m);
}

void tls_ctx_free(struct tls_ctx *t)
{
    tls_ctx__unref(t);
}

bool tls_ctx_identity_as_username(const struct tls_ctx *t)
{
    RM_ASSERT(t != NULL);
    return t->identity_as_username;
}

const struct tls_mem *tls_ctx__reference(const struct tls_ctx *t)
{
    RM_ASSERT(t != NULL);
    return t->ref_ssl != NULL ? &t->ref_mem : NULL;
}

struct WOLFSSL_CTX *tls_ctx__wolfssl(const struct tls_ctx *t)
{
    RM_ASSERT(t != NULL && t->ctx != NULL);
    return t->ctx;
}
