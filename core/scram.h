/*
 * scram.h - the server side of SCRAM-SHA-512 (RFC 5802, with SHA-512 in
 * place of SHA-1 as RFC 7677 does for SHA-256), over wolfCrypt's
 * HMAC-SHA512, SHA-512 and base64.
 *
 * The messages, as this server takes them:
 *   client-first  gs2-header client-first-bare
 *                 gs2-header = ("n" / "y") ",," (no authzid; "p=" channel
 *                 binding and "a=" are refused)
 *                 client-first-bare = "n=" saslname ",r=" cnonce ["," ext]*
 *   server-first  "r=" cnonce snonce ",s=" base64(salt) ",i=" iterations
 *   client-final  "c=" base64(gs2-header) ",r=" nonce ["," ext]* ",p=" proof
 *   server-final  "v=" base64(ServerSignature)
 * A mosquitto $7$ hash is PBKDF2-HMAC-SHA512 with a 64-byte key: exactly
 * RFC 5802's Hi(password, salt, i) = SaltedPassword, so the same password
 * file serves both plain and SCRAM logins. The server keeps only StoredKey
 * and ServerKey, derived from it, for the length of one exchange.
 *
 * The user name (',' and '=' escaped as "=2C" and "=3D") is prepared
 * with SASLprep (RFC 4013, core/saslprep) as a query string; one that
 * SASLprep refuses is refused as malformed. The password never reaches
 * the server: the client hashes SASLprep(password), so the file must hold
 * the hash of that (ringmq-passwd stores it; for ASCII, the same bytes).
 * Channel binding: no -PLUS mechanism, so "n" and "y" gs2 flags are
 * accepted and "p=" refused (RFC 5802 section 6).
 *
 * Pure computation, no state of its own; any thread.
 */
#ifndef RINGMQ_SCRAM_H
#define RINGMQ_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRAM_KEY_BYTES 64u          /* SHA-512 output: SaltedPassword, keys, proof */
#define SCRAM_SALT_BYTES_MAX 64u     /* as PWHASH_SALT_BYTES_MAX */
#define SCRAM_FAKE_SALT_BYTES 12u    /* what mosquitto_passwd writes */
#define SCRAM_SECRET_BYTES 32u       /* the per-process secret behind fake salts */
#define SCRAM_USER_BYTES_MAX 255u    /* as PWDB_USERNAME_BYTES_MAX */
#define SCRAM_CNONCE_BYTES_MAX 255u  /* longest client nonce accepted */
#define SCRAM_SNONCE_RANDOM_BYTES 18u /* random bytes of the server's nonce (24 base64 chars) */
#define SCRAM_MSG_BYTES_MAX 1024u    /* longest client message accepted */
/* "v=" and the base64 of 64 bytes. */
#define SCRAM_FINAL_BYTES (2u + ((SCRAM_KEY_BYTES + 2) / 3) * 4)

/* A client-first message, parsed. */
struct scram_first {
    uint8_t user[SCRAM_USER_BYTES_MAX]; /* the decoded user name */
    uint32_t user_len;                  /* 1..SCRAM_USER_BYTES_MAX */
    const uint8_t *bare;                /* client-first-message-bare, borrowed */
    uint32_t bare_len;
    const uint8_t *nonce;               /* the client's nonce, borrowed */
    uint32_t nonce_len;
    char cbind;                         /* the gs2 flag: 'n' or 'y' */
};

/* What a user's exchange needs: its salt and iteration count, and the two keys. */
struct scram_keys {
    uint8_t stored[SCRAM_KEY_BYTES]; /* H(HMAC(SaltedPassword, "Client Key")) */
    uint8_t server[SCRAM_KEY_BYTES]; /* HMAC(SaltedPassword, "Server Key") */
    uint8_t salt[SCRAM_SALT_BYTES_MAX];
    uint8_t salt_len;
    uint32_t iterations;
};

/* One exchange between server-first and client-final (opaque). */
struct scram;

/*
 * Parse client-first message @msg (@len bytes) into @f (whose pointers
 * then borrow @msg). Returns 0, or -1 with *@why a static phrase
 * ("channel binding is not supported", "malformed client-first message",
 * ...).
 */
int scram_parse_first(const uint8_t *msg, size_t len, struct scram_first *f, const char **why);

/*
 * The keys of a user whose SaltedPassword is @salted (a $7$ hash's 64
 * bytes), with @salt (@salt_len bytes, 1..SCRAM_SALT_BYTES_MAX) and
 * @iterations. Returns 0, or -1 if wolfCrypt fails.
 */
int scram_keys_from_salted(struct scram_keys *k, const uint8_t salted[SCRAM_KEY_BYTES],
                           const uint8_t *salt, size_t salt_len, uint32_t iterations);

/*
 * A SaltedPassword and salt (SCRAM_FAKE_SALT_BYTES) for user @user (@len
 * bytes) that has none (unknown, or a hash that cannot do SCRAM), derived
 * from @secret so that the same name always gets the same salt: a client
 * cannot tell it from a real user before the proof fails, and nobody
 * knows a password for it. Two HMACs. Returns 0, or -1 if wolfCrypt fails.
 */
int scram_fake_salted(const uint8_t secret[SCRAM_SECRET_BYTES], const uint8_t *user, size_t len,
                      uint8_t salted[SCRAM_KEY_BYTES], uint8_t salt[SCRAM_KEY_BYTES]);

/*
 * Start an exchange for @f with keys @k (copied) and the server's random
 * bytes @rnd (SCRAM_SNONCE_RANDOM_BYTES). @real: false for fake keys (the
 * exchange then always fails at the proof). Returns it, with *@server_first
 * and *@server_first_len the message to send (borrowed from it), or NULL
 * on ENOMEM. Borrows @f until return.
 */
struct scram *scram_start(const struct scram_first *f, const struct scram_keys *k, bool real,
                          const uint8_t rnd[SCRAM_SNONCE_RANDOM_BYTES],
                          const uint8_t **server_first, uint32_t *server_first_len);

/*
 * Judge client-final message @msg (@len bytes). Returns 1 when the proof
 * is right (then scram_server_final() is the answer), 0 when it is wrong
 * (a wrong password, or an unknown user), -1 with *@why set when the
 * message is malformed or does not continue this exchange.
 */
int scram_finish(struct scram *s, const uint8_t *msg, size_t len, const char **why);

/* The server-final message ("v=..."), once scram_finish() returned 1. Borrowed from @s. */
const uint8_t *scram_server_final(const struct scram *s, uint32_t *len);

/* The user name the exchange is for (client-first's, decoded). Borrowed from @s. */
const uint8_t *scram_user(const struct scram *s, uint32_t *len);

/* Free @s, wiping its keys (NULL is fine). */
void scram_free(struct scram *s);

#endif
