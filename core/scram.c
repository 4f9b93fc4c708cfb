/*
 * scram.c - SCRAM-SHA-512, the server side, over wolfCrypt (see scram.h).
 */
#include "core/scram.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/hmac.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "core/rm_assert.h"
#include "core/saslprep.h"

/* base64 of @n bytes, with padding. */
#define B64_LEN(n) ((((n) + 2) / 3) * 4)
/* Longest server-first: "r=" cnonce snonce ",s=" salt ",i=" 7 digits. */
#define SERVER_FIRST_MAX                                                                   \
    (2 + SCRAM_CNONCE_BYTES_MAX + B64_LEN(SCRAM_SNONCE_RANDOM_BYTES) + 3 +                 \
     B64_LEN(SCRAM_SALT_BYTES_MAX) + 3 + 10)

struct scram {
    uint8_t stored[SCRAM_KEY_BYTES];
    uint8_t server[SCRAM_KEY_BYTES];
    bool real;     /* false: fake keys, the proof never passes */
    bool proven;   /* scram_finish() returned 1 */
    char cbind;    /* the client's gs2 flag */
    uint8_t user_len;
    uint8_t user[SCRAM_USER_BYTES_MAX];
    uint8_t final[SCRAM_FINAL_BYTES];
    uint32_t final_len;
    uint32_t first_off;  /* server-first within msg */
    uint32_t first_len;
    uint32_t nonce_len;  /* the whole nonce, at msg[first_off + 2] */
    uint32_t msg_len;    /* client-first-bare "," server-first "," */
    uint8_t msg[];
};

/* HMAC-SHA512 of @a then @b (@b may be NULL) under @key into @out. 0 or -1. */
static int hmac(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                const uint8_t *b, size_t b_len, uint8_t out[SCRAM_KEY_BYTES])
{
    Hmac h;
    int rc;

    RM_ASSERT(key != NULL && a != NULL);
    RM_ASSERT(b != NULL || b_len == 0);
    if (wc_HmacInit(&h, NULL, INVALID_DEVID) != 0) {
        return -1;
    }
    rc = wc_HmacSetKey(&h, WC_SHA512, key, (word32)key_len) == 0 &&
                 wc_HmacUpdate(&h, a, (word32)a_len) == 0 &&
                 (b_len == 0 || wc_HmacUpdate(&h, b, (word32)b_len) == 0) &&
                 wc_HmacFinal(&h, out) == 0
             ? 0
             : -1;
    wc_HmacFree(&h);
    return rc;
}

static int sha512(const uint8_t *in, size_t len, uint8_t out[SCRAM_KEY_BYTES])
{
    wc_Sha512 sha;
    int rc;

    RM_ASSERT(in != NULL);
    RM_ASSERT(len <= SCRAM_KEY_BYTES);
    if (wc_InitSha512(&sha) != 0) {
        return -1;
    }
    rc = wc_Sha512Update(&sha, in, (word32)len) == 0 && wc_Sha512Final(&sha, out) == 0 ? 0 : -1;
    wc_Sha512Free(&sha);
    return rc;
}

/* base64 of @in (@len bytes) into @out (room for B64_LEN(@len)); its length, or -1. */
static int b64(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    word32 n = (word32)cap;

    RM_ASSERT(in != NULL && out != NULL);
    RM_ASSERT(cap >= B64_LEN(len));
    if (Base64_Encode_NoNl(in, (word32)len, out, &n) != 0) {
        return -1;
    }
    return (int)n;
}

static bool has_prefix(const uint8_t *p, const uint8_t *end, const char *lit)
{
    size_t n = strlen(lit);

    RM_ASSERT(p != NULL && lit != NULL);
    RM_ASSERT(p <= end);
    return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

/* A nonce character: printable ASCII except ',' (RFC 5802, "printable"). */
static bool nonce_char(uint8_t c)
{
    return c >= 0x21 && c <= 0x7e && c != ',';
}

/*
 * Decode saslname @p..@end (up to the next ',') and prepare it with
 * SASLprep as a query string into @f->user, as RFC 5802 section 5.1 has
 * the server do with the name it receives; the end of it in *@stop. 0, or
 * -1 with *@why.
 */
static int parse_user(const uint8_t *p, const uint8_t *end, struct scram_first *f,
                      const uint8_t **stop, const char **why)
{
    uint8_t raw[SCRAM_MSG_BYTES_MAX];
    uint32_t n = 0;
    int prepared;

    RM_ASSERT(p <= end);
    RM_ASSERT((size_t)(end - p) <= SCRAM_MSG_BYTES_MAX);
    /* Each pass consumes at least one byte of the message (at most SCRAM_MSG_BYTES_MAX). */
    while (p < end && *p != ',') {
        uint8_t c = *p++;

        if (c == '=') {
            if (has_prefix(p, end, "2C")) {
                c = ',';
            } else if (has_prefix(p, end, "3D")) {
                c = '=';
            } else {
                *why = "bad '=' escape in the SCRAM user name (only =2C and =3D)";
                return -1;
            }
            p += 2;
        }
        RM_ASSERT(n < sizeof(raw)); /* a decoded name is never longer than its message */
        raw[n++] = c;
    }
    if (n == 0) {
        *why = "empty SCRAM user name";
        return -1;
    }
    prepared = saslprep_prepare(raw, n, f->user, sizeof(f->user), false, why);
    if (prepared < 0) {
        /* Not UTF-8, a control or other prohibited character, bad bidi, too long. */
        if (prepared == -ENOSPC) {
            *why = "SCRAM user name too long";
        } else {
            *why = "SCRAM user name refused by SASLprep (RFC 4013): not UTF-8, or a "
                   "prohibited character";
        }
        return -1;
    }
    if (prepared == 0) {
        *why = "empty SCRAM user name once prepared (SASLprep)";
        return -1;
    }
    f->user_len = (uint32_t)prepared;
    *stop = p;
    return 0;
}

int scram_parse_first(const uint8_t *msg, size_t len, struct scram_first *f, const char **why)
{
    const uint8_t *end = msg + len;
    const uint8_t *p;

    RM_ASSERT(msg != NULL || len == 0);
    RM_ASSERT(f != NULL && why != NULL);
    *why = "malformed SCRAM client-first message";
    if (len < 3 || len > SCRAM_MSG_BYTES_MAX) {
        return -1;
    }
    if (msg[0] == 'p' && msg[1] == '=') {
        /*
         * The client requires channel binding ("p=" cb-name): no -PLUS
         * mechanism is offered, so none can be, and the exchange fails
         * (RFC 5802 section 6; its server-error "channel-binding-not-supported").
         */
        *why = "SCRAM channel binding is not supported (channel-binding-not-supported; use n,, "
               "or y,,)";
        return -1;
    }
    if ((msg[0] != 'n' && msg[0] != 'y') || msg[1] != ',') {
        return -1;
    }
    if (msg[2] != ',') {
        if (msg[2] == 'a') {
            *why = "SCRAM authorization identity (a=) is not supported";
        }
        return -1;
    }
    f->cbind = (char)msg[0];
    p = msg + 3;
    f->bare = p;
    f->bare_len = (uint32_t)(end - p);
    if (has_prefix(p, end, "m=")) {
        *why = "SCRAM mandatory extension (m=) is not supported";
        return -1;
    }
    if (!has_prefix(p, end, "n=")) {
        return -1;
    }
    if (parse_user(p + 2, end, f, &p, why) < 0) {
        return -1;
    }
    *why = "malformed SCRAM client-first message";
    if (!has_prefix(p, end, ",r=")) {
        return -1;
    }
    p += 3;
    f->nonce = p;
    while (p < end && nonce_char(*p)) {
        p++;
    }
    f->nonce_len = (uint32_t)(p - f->nonce);
    if (f->nonce_len == 0 || f->nonce_len > SCRAM_CNONCE_BYTES_MAX) {
        *why = "bad SCRAM client nonce";
        return -1;
    }
    /* Optional extensions follow; unknown ones are ignored (RFC 5802 section 5.1). */
    if (p < end && *p != ',') {
        *why = "bad SCRAM client nonce";
        return -1;
    }
    return 0;
}

int scram_keys_from_salted(struct scram_keys *k, const uint8_t salted[SCRAM_KEY_BYTES],
                           const uint8_t *salt, size_t salt_len, uint32_t iterations)
{
    static const uint8_t client_key[] = "Client Key";
    static const uint8_t server_key[] = "Server Key";
    uint8_t ck[SCRAM_KEY_BYTES];
    int rc;

    RM_ASSERT(k != NULL && salted != NULL && salt != NULL);
    RM_ASSERT(salt_len >= 1 && salt_len <= SCRAM_SALT_BYTES_MAX && iterations >= 1);
    rc = hmac(salted, SCRAM_KEY_BYTES, client_key, sizeof(client_key) - 1, NULL, 0, ck) == 0 &&
                 sha512(ck, sizeof(ck), k->stored) == 0 &&
                 hmac(salted, SCRAM_KEY_BYTES, server_key, sizeof(server_key) - 1, NULL, 0,
                      k->server) == 0
             ? 0
             : -1;
    memcpy(k->salt, salt, salt_len);
    k->salt_len = (uint8_t)salt_len;
    k->iterations = iterations;
    memset(ck, 0, sizeof(ck));
    return rc;
}

int scram_fake_salted(const uint8_t secret[SCRAM_SECRET_BYTES], const uint8_t *user, size_t len,
                      uint8_t salted[SCRAM_KEY_BYTES], uint8_t salt[SCRAM_KEY_BYTES])
{
    RM_ASSERT(secret != NULL && user != NULL);
    RM_ASSERT(salted != NULL && salt != NULL);
    /* Two domain-separated PRF outputs of the name: the salt, and a SaltedPassword nobody knows. */
    if (hmac(secret, SCRAM_SECRET_BYTES, (const uint8_t *)"salt:", 5, user, len, salt) < 0 ||
        hmac(secret, SCRAM_SECRET_BYTES, (const uint8_t *)"pass:", 5, user, len, salted) < 0) {
        return -1;
    }
    return 0;
}

struct scram *scram_start(const struct scram_first *f, const struct scram_keys *k, bool real,
                          const uint8_t rnd[SCRAM_SNONCE_RANDOM_BYTES],
                          const uint8_t **server_first, uint32_t *server_first_len)
{
    uint8_t snonce[B64_LEN(SCRAM_SNONCE_RANDOM_BYTES)];
    uint8_t salt[B64_LEN(SCRAM_SALT_BYTES_MAX) + 1];
    char iter[16];
    struct scram *s;
    uint8_t *p;
    int sn;
    int saltn;
    int itn;

    RM_ASSERT(f != NULL && k != NULL && rnd != NULL);
    RM_ASSERT(f->nonce_len <= SCRAM_CNONCE_BYTES_MAX && f->user_len <= SCRAM_USER_BYTES_MAX);
    RM_ASSERT(f->bare_len <= SCRAM_MSG_BYTES_MAX);
    sn = b64(rnd, SCRAM_SNONCE_RANDOM_BYTES, snonce, sizeof(snonce));
    saltn = b64(k->salt, k->salt_len, salt, sizeof(salt));
    itn = snprintf(iter, sizeof(iter), "%u", (unsigned)k->iterations);
    if (sn < 0 || saltn < 0 || itn <= 0) {
        return NULL;
    }
    s = calloc(1, sizeof(*s) + f->bare_len + 1 + SERVER_FIRST_MAX + 1);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s->stored, k->stored, sizeof(s->stored));
    memcpy(s->server, k->server, sizeof(s->server));
    s->real = real;
    s->cbind = f->cbind;
    s->user_len = (uint8_t)f->user_len;
    memcpy(s->user, f->user, f->user_len);
    /* AuthMessage's first two parts: client-first-bare "," server-first ",". */
    p = s->msg;
    memcpy(p, f->bare, f->bare_len);
    p += f->bare_len;
    *p++ = ',';
    s->first_off = (uint32_t)(p - s->msg);
    memcpy(p, "r=", 2);
    p += 2;
    memcpy(p, f->nonce, f->nonce_len);
    p += f->nonce_len;
    memcpy(p, snonce, (size_t)sn);
    p += sn;
    s->nonce_len = f->nonce_len + (uint32_t)sn;
    memcpy(p, ",s=", 3);
    p += 3;
    memcpy(p, salt, (size_t)saltn);
    p += saltn;
    memcpy(p, ",i=", 3);
    p += 3;
    memcpy(p, iter, (size_t)itn);
    p += itn;
    s->first_len = (uint32_t)(p - s->msg) - s->first_off;
    *p++ = ',';
    s->msg_len = (uint32_t)(p - s->msg);
    RM_ASSERT(s->first_len <= SERVER_FIRST_MAX);
    *server_first = s->msg + s->first_off;
    *server_first_len = s->first_len;
    return s;
}

/* The next attribute "x=value" of @p..@end: its value and the position after it. */
static bool attr(const uint8_t **p, const uint8_t *end, char name, const uint8_t **val,
                 size_t *val_len)
{
    const uint8_t *q = *p;
    const uint8_t *comma;

    RM_ASSERT(q != NULL && q <= end);
    RM_ASSERT(val != NULL && val_len != NULL);
    if (end - q < 2 || q[0] != (uint8_t)name || q[1] != '=') {
        return false;
    }
    q += 2;
    comma = memchr(q, ',', (size_t)(end - q));
    *val = q;
    *val_len = comma != NULL ? (size_t)(comma - q) : (size_t)(end - q);
    *p = comma != NULL ? comma + 1 : end;
    return true;
}

int scram_finish(struct scram *s, const uint8_t *msg, size_t len, const char **why)
{
    const uint8_t gs2[3] = {(uint8_t)s->cbind, ',', ','};
    uint8_t gs2_b64[B64_LEN(3)];
    uint8_t proof_b64[B64_LEN(SCRAM_KEY_BYTES) + 1];
    uint8_t proof[SCRAM_KEY_BYTES + 2];
    uint8_t sig[SCRAM_KEY_BYTES];
    uint8_t key[SCRAM_KEY_BYTES];
    uint8_t stored[SCRAM_KEY_BYTES];
    const uint8_t *end = msg + len;
    const uint8_t *p = msg;
    const uint8_t *v;
    const uint8_t *proof_at = NULL;
    size_t vlen = 0;
    word32 n = sizeof(proof);
    bool ok;

    RM_ASSERT(s != NULL && why != NULL);
    RM_ASSERT(msg != NULL || len == 0);
    *why = "malformed SCRAM client-final message";
    if (len > SCRAM_MSG_BYTES_MAX || s->proven) {
        return -1;
    }
    /* c=: the gs2 header again, as base64 (no channel binding data). */
    if (!attr(&p, end, 'c', &v, &vlen) || b64(gs2, sizeof(gs2), gs2_b64, sizeof(gs2_b64)) < 0 ||
        vlen != sizeof(gs2_b64) || memcmp(v, gs2_b64, vlen) != 0) {
        *why = "SCRAM channel binding data does not match the client-first message";
        return -1;
    }
    if (!attr(&p, end, 'r', &v, &vlen) || vlen != s->nonce_len ||
        memcmp(v, s->msg + s->first_off + 2, vlen) != 0) {
        *why = "SCRAM nonce does not match";
        return -1;
    }
    /* Extensions, then p=, which is last. Each pass consumes an attribute. */
    while (p < end) {
        const uint8_t *at = p;

        if (attr(&p, end, 'p', &v, &vlen)) {
            proof_at = at;
            break;
        }
        if (!attr(&p, end, *p, &v, &vlen)) {
            return -1;
        }
    }
    if (proof_at == NULL || p != end || vlen != B64_LEN(SCRAM_KEY_BYTES)) {
        return -1;
    }
    RM_ASSERT(proof_at > msg && proof_at[-1] == ',');
    memcpy(proof_b64, v, vlen);
    if (Base64_Decode(proof_b64, (word32)vlen, proof, &n) != 0 || n != SCRAM_KEY_BYTES) {
        return -1;
    }
    /*
     * AuthMessage = client-first-bare "," server-first ","
     * client-final-without-proof (everything before ",p=").
     */
    if (hmac(s->stored, SCRAM_KEY_BYTES, s->msg, s->msg_len, msg, (size_t)(proof_at - 1 - msg),
             sig) < 0) {
        return -1;
    }
    for (size_t i = 0; i < SCRAM_KEY_BYTES; i++) {
        key[i] = proof[i] ^ sig[i]; /* the ClientKey the client claims */
    }
    ok = sha512(key, sizeof(key), stored) == 0;
    /* Constant time, and the same work for fake keys. */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < SCRAM_KEY_BYTES; i++) {
        diff |= (uint8_t)(stored[i] ^ s->stored[i]);
    }
    ok = ok && diff == 0 && s->real;
    memset(key, 0, sizeof(key));
    if (!ok) {
        return 0;
    }
    if (hmac(s->server, SCRAM_KEY_BYTES, s->msg, s->msg_len, msg, (size_t)(proof_at - 1 - msg),
             sig) < 0) {
        return -1;
    }
    memcpy(s->final, "v=", 2);
    int fn = b64(sig, sizeof(sig), s->final + 2, sizeof(s->final) - 2);
    if (fn < 0) {
        return -1;
    }
    s->final_len = 2 + (uint32_t)fn;
    s->proven = true;
    return 1;
}

const uint8_t *scram_server_final(const struct scram *s, uint32_t *len)
{
    RM_ASSERT(s != NULL && len != NULL);
    RM_ASSERT(s->proven);
    *len = s->final_len;
    return s->final;
}

const uint8_t *scram_user(const struct scram *s, uint32_t *len)
{
    RM_ASSERT(s != NULL && len != NULL);
    RM_ASSERT(s->user_len >= 1);
    *len = s->user_len;
    return s->user;
}

void scram_free(struct scram *s)
{
    if (s == NULL) {
        return;
    }
    memset(s->stored, 0, sizeof(s->stored));
    memset(s->server, 0, sizeof(s->server));
    free(s);
}
