/*
 * test_scram.c - SCRAM-SHA-512, the server side (core/scram).
 *
 * The vector is RFC 7677's example (user "user", password "pencil", its
 * salt, 4096 iterations, its client nonce) recomputed for SHA-512 with
 * Python's hashlib and hmac, the server nonce being the base64 of bytes
 * 1..18:
 *   salted = hashlib.pbkdf2_hmac("sha512", b"pencil", salt, 4096)
 *   ClientKey = HMAC(salted, "Client Key"), StoredKey = SHA512(ClientKey),
 *   proof = ClientKey ^ HMAC(StoredKey, AuthMessage),
 *   v = HMAC(HMAC(salted, "Server Key"), AuthMessage).
 * The salted password comes from core/pwhash, as a $7$ line stores it.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "core/pwhash.h"
#include "core/scram.h"

#define CFIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define SFIRST "r=rOprNGfwEbeRWgbNEkqOAQIDBAUGBwgJCgsMDQ4PEBES,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define CFINAL_NOPROOF "c=biws,r=rOprNGfwEbeRWgbNEkqOAQIDBAUGBwgJCgsMDQ4PEBES"
#define PROOF                                                                                      \
    "IQm09Gfr7Wi2+eAi5yyQkYVL8112tbgaeBjL4JTv5Nhwsy1EHVtAVwFABZddbDwRKp5pqOdGlW4JVzIyd99DjA=="
#define VFINAL                                                                                     \
    "v=OtCeuvzUCn+YTwPfxEE1o22y7CIzkN6Tx9gjOcrH9z+mBjB8QmNbeEYlDj3o46tEqPGZ3JoU/wN04ZLJMLG2vw=="

static const uint8_t salt[16] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                                 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

/* The keys of user/pencil, through a $7$ hash as the password file holds it. */
static void pencil_keys(struct scram_keys *k)
{
    struct pwhash h;

    cr_assert_eq(pwhash_make(&h, u8("pencil"), 6, salt, sizeof(salt), 4096), 0);
    cr_assert_eq(scram_keys_from_salted(k, h.hash, h.salt, h.salt_len, h.iterations), 0);
}

/* Start the vector's exchange; *@sf gets server-first. */
static struct scram *start(const char *cfirst, bool real, const uint8_t **sf, uint32_t *sf_len)
{
    uint8_t rnd[SCRAM_SNONCE_RANDOM_BYTES];
    struct scram_first f;
    struct scram_keys k;
    const char *why = NULL;

    for (size_t i = 0; i < sizeof(rnd); i++) {
        rnd[i] = (uint8_t)(i + 1);
    }
    cr_assert_eq(scram_parse_first(u8(cfirst), strlen(cfirst), &f, &why), 0, "%s", why);
    pencil_keys(&k);
    struct scram *s = scram_start(&f, &k, real, rnd, sf, sf_len);
    cr_assert_not_null(s);
    return s;
}

static int finish(struct scram *s, const char *msg, const char **why)
{
    return scram_finish(s, u8(msg), strlen(msg), why);
}

Test(scram, rfc7677_vector_for_sha512_passes_and_signs)
{
    const uint8_t *sf;
    uint32_t sf_len;
    const char *why = NULL;
    struct scram *s = start(CFIRST, true, &sf, &sf_len);

    cr_assert_eq(sf_len, strlen(SFIRST));
    cr_assert_eq(memcmp(sf, SFIRST, sf_len), 0, "server-first %.*s", (int)sf_len, sf);
    cr_assert_eq(finish(s, CFINAL_NOPROOF ",p=" PROOF, &why), 1, "%s", why);
    uint32_t n;
    const uint8_t *v = scram_server_final(s, &n);
    cr_assert_eq(n, strlen(VFINAL));
    cr_assert_eq(memcmp(v, VFINAL, n), 0, "server-final %.*s", (int)n, v);
    const uint8_t *user = scram_user(s, &n);
    cr_assert(n == 4 && memcmp(user, "user", 4) == 0);
    scram_free(s);
}

Test(scram, stored_key_is_sha512_of_client_key_from_the_7_hash)
{
    static const uint8_t stored[SCRAM_KEY_BYTES] = {
        0xe8, 0x00, 0x2e, 0x6f, 0x7d, 0x3a, 0xe4, 0x46, 0x11, 0x9b, 0x21, 0x69, 0x33,
        0x64, 0x4d, 0xc2, 0xa2, 0xbe, 0x78, 0x69, 0xeb, 0x91, 0x8b, 0x84, 0x59, 0xb5,
        0xe7, 0xd7, 0xd2, 0xec, 0x12, 0x60, 0x6a, 0xce, 0xef, 0x10, 0x68, 0x25, 0xcd,
        0x73, 0x51, 0x70, 0xa6, 0x75, 0xfd, 0x36, 0x11, 0xf6, 0x84, 0xaf, 0xfa, 0xd1,
        0xdc, 0xe3, 0xf4, 0x3a, 0x0e, 0xe4, 0x3b, 0xd5, 0x90, 0xe1, 0xdb, 0xbe};
    struct scram_keys k;

    pencil_keys(&k);
    cr_assert_eq(memcmp(k.stored, stored, sizeof(stored)), 0);
    cr_assert_eq(k.iterations, 4096);
    cr_assert_eq(k.salt_len, sizeof(salt));
}

Test(scram, wrong_proof_is_denied_not_malformed)
{
    const uint8_t *sf;
    uint32_t sf_len;
    const char *why = NULL;
    struct scram *s = start(CFIRST, true, &sf, &sf_len);
    char msg[256];

    snprintf(msg, sizeof(msg), "%s,p=%s", CFINAL_NOPROOF, PROOF);
    msg[strlen(CFINAL_NOPROOF) + 3] ^= 1; /* 'I' -> 'H': another proof */
    cr_assert_eq(finish(s, msg, &why), 0);
    scram_free(s);
}

Test(scram, fake_keys_never_pass_even_with_the_right_proof)
{
    const uint8_t *sf;
    uint32_t sf_len;
    const char *why = NULL;
    struct scram *s = start(CFIRST, false, &sf, &sf_len);

    cr_assert_eq(finish(s, CFINAL_NOPROOF ",p=" PROOF, &why), 0);
    scram_free(s);
}

Test(scram, fake_salt_is_stable_per_name_and_differs_between_names)
{
    uint8_t secret[SCRAM_SECRET_BYTES] = {7};
    uint8_t sp1[SCRAM_KEY_BYTES], s1[SCRAM_KEY_BYTES];
    uint8_t sp2[SCRAM_KEY_BYTES], s2[SCRAM_KEY_BYTES];
    uint8_t sp3[SCRAM_KEY_BYTES], s3[SCRAM_KEY_BYTES];

    cr_assert_eq(scram_fake_salted(secret, u8("mallory"), 7, sp1, s1), 0);
    cr_assert_eq(scram_fake_salted(secret, u8("mallory"), 7, sp2, s2), 0);
    cr_assert_eq(scram_fake_salted(secret, u8("mallorz"), 7, sp3, s3), 0);
    cr_assert_eq(memcmp(s1, s2, SCRAM_FAKE_SALT_BYTES), 0);
    cr_assert_eq(memcmp(sp1, sp2, SCRAM_KEY_BYTES), 0);
    cr_assert_neq(memcmp(s1, s3, SCRAM_FAKE_SALT_BYTES), 0);
    cr_assert_neq(memcmp(s1, sp1, SCRAM_FAKE_SALT_BYTES), 0, "salt and key are separated");
    secret[0] = 8;
    cr_assert_eq(scram_fake_salted(secret, u8("mallory"), 7, sp3, s3), 0);
    cr_assert_neq(memcmp(s1, s3, SCRAM_FAKE_SALT_BYTES), 0, "another process, another salt");
}

Test(scram, user_name_escapes_decode)
{
    struct scram_first f;
    const char *why = NULL;
    const char *m = "y,,n=a=2Cb=3Dc,r=xyz,ext=1";

    cr_assert_eq(scram_parse_first(u8(m), strlen(m), &f, &why), 0, "%s", why);
    cr_assert_eq(f.user_len, 5);
    cr_assert_eq(memcmp(f.user, "a,b=c", 5), 0);
    cr_assert_eq(f.nonce_len, 3);
    cr_assert_eq(memcmp(f.nonce, "xyz", 3), 0);
    cr_assert_eq(f.cbind, 'y');
    cr_assert_eq(f.bare_len, strlen(m) - 3);
}

/* One malformed client-first: refused, with a reason containing @frag. */
static void bad_first(const char *m, const char *frag)
{
    struct scram_first f;
    const char *why = NULL;

    cr_assert_eq(scram_parse_first(u8(m), strlen(m), &f, &why), -1, "accepted %s", m);
    cr_assert_not_null(why);
    cr_assert_not_null(strstr(why, frag), "%s: reason \"%s\" lacks \"%s\"", m, why, frag);
}

Test(scram, client_first_errors_say_why)
{
    /* p=: the client requires channel binding, which no -PLUS mechanism offers (RFC 5802 s6). */
    bad_first("p=tls-unique,,n=user,r=abc", "channel-binding-not-supported");
    bad_first("p=tls-server-end-point,,n=user,r=abc", "channel binding");
    bad_first("p,,n=user,r=abc", "malformed"); /* gs2-cbind-flag "p" needs "=" cb-name */
    bad_first("n,a=admin,n=user,r=abc", "authorization identity");
    bad_first("n,,m=ext,n=user,r=abc", "mandatory extension");
    bad_first("n,,n=us=2Xer,r=abc", "escape");
    bad_first("n,,n=us=2,r=abc", "escape");
    /* SASLprep (RFC 4013) refuses: a control character, bytes that are not UTF-8. */
    bad_first("n,,n=us\x01r,r=abc", "SASLprep");
    bad_first("n,,n=us\xc3r,r=abc", "SASLprep");
    bad_first("n,,n=\xe2\x80\xae\xd8\xa7,r=abc", "SASLprep"); /* U+202E: prohibited */
    bad_first("n,,n=\xc2\xad,r=abc", "empty"); /* U+00AD alone maps to nothing */
    bad_first("n,,n=,r=abc", "empty");
    bad_first("n,,n=user,r=", "nonce");
    bad_first("n,,n=user,r=a b", "nonce");
    bad_first("n,,n=user", "malformed");
    bad_first("n,,r=abc", "malformed");
    bad_first("x,,n=user,r=abc", "malformed");
    bad_first("n,", "malformed");
    bad_first("", "malformed");
}

Test(scram, client_first_limits)
{
    char m[SCRAM_MSG_BYTES_MAX + 64];
    struct scram_first f;
    const char *why = NULL;

    /* A 255-byte name passes, 256 does not. */
    memcpy(m, "n,,n=", 5);
    memset(m + 5, 'u', 256);
    memcpy(m + 5 + 255, ",r=abc", 7);
    cr_assert_eq(scram_parse_first(u8(m), strlen(m), &f, &why), 0, "%s", why);
    memset(m + 5, 'u', 256);
    memcpy(m + 5 + 256, ",r=abc", 7);
    bad_first(m, "too long");
    /* A 256-byte nonce does not. */
    memcpy(m, "n,,n=u,r=", 9);
    memset(m + 9, 'x', 256);
    m[9 + 256] = '\0';
    bad_first(m, "nonce");
    /* Nor a message past SCRAM_MSG_BYTES_MAX. */
    memcpy(m, "n,,n=u,r=abc,e=", 15);
    memset(m + 15, 'x', SCRAM_MSG_BYTES_MAX);
    m[15 + SCRAM_MSG_BYTES_MAX] = '\0';
    bad_first(m, "malformed");
}

/* One malformed client-final for the vector's exchange: -1. */
static void bad_final(const char *msg)
{
    const uint8_t *sf;
    uint32_t sf_len;
    const char *why = NULL;
    struct scram *s = start(CFIRST, true, &sf, &sf_len);

    cr_assert_eq(finish(s, msg, &why), -1, "accepted %s", msg);
    cr_assert_not_null(why);
    scram_free(s);
}

Test(scram, client_final_errors_are_malformed)
{
    /* Channel binding input other than the gs2 header "n,," ("biws"). */
    bad_final("c=eSws,r=rOprNGfwEbeRWgbNEkqOAQIDBAUGBwgJCgsMDQ4PEBES,p=" PROOF);
    /* Another nonce, or a prefix of it. */
    bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=" PROOF);
    bad_final("c=biws,r=rOprNGfwEbeRWgbNEkqOAQIDBAUGBwgJCgsMDQ4PEBEX,p=" PROOF);
    /* No proof, a short one, one not base64, one not last. */
    bad_final(CFINAL_NOPROOF);
    bad_final(CFINAL_NOPROOF ",p=AAAA");
    bad_final(CFINAL_NOPROOF ",p=" PROOF ",x=1");
    bad_final(CFINAL_NOPROOF ",p=!Qm09Gfr7Wi2+eAi5yyQkYVL8112tbgaeBjL4JTv5Nhwsy1EHVtAVwF"
                             "ABZddbDwRKp5pqOdGlW4JVzIyd99DjA==");
    /* Attributes out of order, or none. */
    bad_final("r=rOprNGfwEbeRWgbNEkqOAQIDBAUGBwgJCgsMDQ4PEBES,c=biws,p=" PROOF);
    bad_final("");
}

Test(scram, client_final_extensions_before_the_proof_are_part_of_the_signature)
{
    const uint8_t *sf;
    uint32_t sf_len;
    const char *why = NULL;
    struct scram *s = start(CFIRST, true, &sf, &sf_len);

    /* Valid syntax, but the proof was made without the extension: wrong, not malformed. */
    cr_assert_eq(finish(s, CFINAL_NOPROOF ",x=1,p=" PROOF, &why), 0);
    scram_free(s);
}

Test(scram, a_finished_exchange_takes_no_second_final)
{
    const uint8_t *sf;
    uint32_t sf_len;
    const char *why = NULL;
    struct scram *s = start(CFIRST, true, &sf, &sf_len);

    cr_assert_eq(finish(s, CFINAL_NOPROOF ",p=" PROOF, &why), 1);
    cr_assert_eq(finish(s, CFINAL_NOPROOF ",p=" PROOF, &why), -1);
    scram_free(s);
}

/* ------------------------------------------------------------ SASLprep, channel binding */

Test(scram, user_names_are_prepared_with_saslprep_as_queries)
{
    /* RFC 4013 section 3's examples, through the name a client-first carries. */
    static const struct {
        const char *sent;
        const char *prepared;
    } cases[] = {
        {"I\xc2\xadX", "IX"},   /* U+00AD SOFT HYPHEN: mapped to nothing */
        {"user", "user"},       /* no transformation */
        {"USER", "USER"},       /* case preserved */
        {"\xc2\xaa", "a"},      /* U+00AA: NFKC */
        {"\xe2\x85\xa8", "IX"}, /* U+2168 ROMAN NUMERAL NINE: NFKC */
        {"a\xe2\x80\x80" "b", "a b"}, /* U+2000 EN QUAD: a non-ASCII space becomes U+0020 */
        {"J\xc3\xb6" "rg", "J\xc3\xb6" "rg"}, /* already NFKC: unchanged */
        {"\xf3\xa0\x80\x80x", NULL},  /* U+E0000 unassigned: a query may hold it */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char m[128];
        struct scram_first f;
        const char *why = NULL;

        snprintf(m, sizeof(m), "n,,n=%s,r=abc", cases[i].sent);
        cr_assert_eq(scram_parse_first(u8(m), strlen(m), &f, &why), 0, "%s: %s", m, why);
        if (cases[i].prepared) {
            cr_assert_eq(f.user_len, strlen(cases[i].prepared), "%s", m);
            cr_assert_eq(memcmp(f.user, cases[i].prepared, f.user_len), 0, "%s", m);
        }
        cr_assert_eq(f.bare_len, strlen(m) - 3, "the message as sent stays for AuthMessage");
    }
    /* RFC 4013's other two examples fail: U+0007 prohibited, U+0627 U+0031 bad bidi. */
    bad_first("n,,n=\x07,r=abc", "SASLprep");
    bad_first("n,,n=\xd8\xa7\x31,r=abc", "SASLprep");
}

Test(scram, a_client_that_did_not_prepare_its_name_still_logs_in_as_the_prepared_one)
{
    /* Client-first names "I<U+00AD>X" (not prepared); the file's user is "IX", password "IX"
     * (what RFC 5802's Normalize() makes of U+2168). Vector from Python's hmac/hashlib. */
    const char *cfirst = "n,,n=I\xc2\xadX,r=rOprNGfwEbeRWgbNEkqO";
    uint8_t rnd[SCRAM_SNONCE_RANDOM_BYTES];
    struct scram_first f;
    struct scram_keys k;
    struct pwhash h;
    const uint8_t *sf;
    uint32_t sf_len, n;
    const char *why = NULL;

    for (size_t i = 0; i < sizeof(rnd); i++)
        rnd[i] = (uint8_t)(i + 1);
    cr_assert_eq(scram_parse_first(u8(cfirst), strlen(cfirst), &f, &why), 0, "%s", why);
    cr_assert(f.user_len == 2 && memcmp(f.user, "IX", 2) == 0);
    cr_assert_eq(pwhash_make(&h, u8("IX"), 2, salt, sizeof(salt), 4096), 0);
    cr_assert_eq(scram_keys_from_salted(&k, h.hash, h.salt, h.salt_len, h.iterations), 0);
    struct scram *s = scram_start(&f, &k, true, rnd, &sf, &sf_len);
    cr_assert_not_null(s);
    cr_assert_eq(finish(s,
                        CFINAL_NOPROOF ",p=R+tkr4lWWyOU/ZkkQYlvS6LHx3xv6hDC0E8A8GZ5mbeYsewfutXNhi"
                                       "mJVXjo7pcz0OnJQfYb1G7oEiB/X63QXA==",
                        &why),
                 1, "%s", why);
    const uint8_t *v = scram_server_final(s, &n);
    const char *want = "v=a0ynwDofxYwFAcMsCnmsRE0Z1Ro37ZdW6hcvqrba3L0I6+o4EimDtoXukKu7M+XNPJlK4Kl"
                       "dQ8AYzYoYhPNt1w==";
    cr_assert(n == strlen(want) && memcmp(v, want, n) == 0, "%.*s", (int)n, v);
    const uint8_t *user = scram_user(s, &n);
    cr_assert(n == 2 && memcmp(user, "IX", 2) == 0, "the session's user is the prepared name");
    scram_free(s);
}

Test(scram, gs2_flag_y_is_accepted_and_its_header_must_come_back_in_c)
{
    /*
     * "y,,": the client supports channel binding and thinks the server does
     * not. No -PLUS mechanism is offered, so that is right, and the
     * exchange goes on (RFC 5802 section 6); client-final's c= is then the
     * base64 of "y,," ("eSws"), and "biws" ("n,,") is a mismatch.
     */
    const uint8_t *sf;
    uint32_t sf_len, n;
    const char *why = NULL;
    const char *cfinal = "c=eSws,r=rOprNGfwEbeRWgbNEkqOAQIDBAUGBwgJCgsMDQ4PEBES,p=zR/Li9afkLVvKdkX"
                         "zuz24BClBRDvMfdxnH6CiaTqWYq8GF1bv3iwNRCgIknTMYnAPWZk+jsnDMLetnkYvDHU2w==";
    struct scram *s = start("y,,n=user,r=rOprNGfwEbeRWgbNEkqO", true, &sf, &sf_len);

    cr_assert_eq(finish(s, cfinal, &why), 1, "%s", why);
    const uint8_t *v = scram_server_final(s, &n);
    const char *want = "v=e8LlI7ij6gF/6sspDc7R3KoPaWdt9viXmDRzAgFYpQjadFtka2eqqtDVA8AR67KDIcSI2tu"
                       "v0D3Xf8onzdJMRw==";
    cr_assert(n == strlen(want) && memcmp(v, want, n) == 0, "%.*s", (int)n, v);
    scram_free(s);

    s = start("y,,n=user,r=rOprNGfwEbeRWgbNEkqO", true, &sf, &sf_len);
    cr_assert_eq(finish(s, CFINAL_NOPROOF ",p=" PROOF, &why), -1, "c=biws after y,,");
    cr_assert_not_null(strstr(why, "channel binding data"), "%s", why);
    scram_free(s);
}
