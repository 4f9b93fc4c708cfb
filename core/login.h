/*
 * login.h - who a CONNECT is: password check, certificate identity,
 * anonymous access, and the pacing of both.
 *
 * connect_on_connect() asks login_check() on the session's home shard
 * (after any handoff) before it touches a session. The answer depends on
 * the listener the connection came in on (client.listener) and on the
 * shard's struct login_conf, an immutable snapshot: per listener, its
 * password database (core/pwdb), whether anonymous clients are allowed and
 * whether the TLS certificate's CN is the user name.
 *
 * Pacing. A PBKDF2 check costs real CPU (about 1 us per iteration), so a
 * shard spends at most LOGIN_BUDGET_PER_TICK iterations per loop iteration
 * on checks; a CONNECT past the budget is held (a core/wait with nothing
 * to acknowledge) and handled again, first come first served, in a later
 * iteration, so other clients' traffic goes on between checks. A refused
 * login is answered late when its source address failed before: the
 * delay doubles from LOGIN_DELAY_BASE_MS per consecutive failure up to
 * LOGIN_DELAY_MAX_MS, and a failure-free minute forgets the address. Both
 * are counted in struct broker_stats.
 *
 * Reload. A snapshot is never written after it is published. A reload
 * (SIGHUP) builds a new one (config_login_build(), net/live), sends each shard
 * a pointer to it (an xmsg), and each shard swaps b->login between two
 * loop iterations (broker_set_login()) and answers; the old snapshot is
 * freed once every shard has answered. Nothing else keeps a pointer into
 * a snapshot: a session holds a copy of its user's name, and a held
 * CONNECT is checked again, against whatever snapshot is current then.
 *
 * Calls wait, pwdb and pwhash. Owned by one shard; single-threaded (the
 * snapshot itself may be read by every shard).
 */
#ifndef RINGMQ_LOGIN_H
#define RINGMQ_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/login_types.h"

struct broker;
struct client;
struct mqtt_connect;
struct pwdb;

/* Listeners a snapshot describes (as config/'s CONFIG_LISTENERS_MAX). */
#define LOGIN_LISTENERS_MAX 16u
/* PBKDF2 iterations one shard spends on checks per loop iteration (~2-5 ms). */
#define LOGIN_BUDGET_PER_TICK 4000
/* The second consecutive failure from an address waits this long, then twice more each. */
#define LOGIN_DELAY_BASE_MS 250u
/* ... up to this (under WAIT_TIMEOUT_MS, so a delayed refusal is never given up). */
#define LOGIN_DELAY_MAX_MS 5000u
/* An address without a failure for this long starts again from 0. */
#define LOGIN_FORGET_MS 60000u
/* Addresses whose failures a shard remembers (a hash table; a collision overwrites). */
#define LOGIN_FAIL_SLOTS 1024u

/* Bytes of login_conf.secret (SCRAM_SECRET_BYTES). */
#define LOGIN_SECRET_BYTES 32u

/* One listener's rules. */
struct login_listener {
    const struct pwdb *db;     /* NULL: no password file here */
    bool allow_anonymous;      /* a CONNECT without a user name is accepted */
    bool identity_as_username; /* the verified certificate CN is the user; no password */
};

/*
 * Authentication for the whole broker, read-only once built (see Reload
 * above). THREADING: every shard reads it; nobody writes it after
 * publication.
 */
struct login_conf {
    uint32_t listener_count;
    bool bind_client_id_to_user; /* another user's CONNECT with a held client id: refused */
    /* Per process, random: the fake SCRAM salts of unknown users (core/scram.h). */
    uint8_t secret[LOGIN_SECRET_BYTES];
    struct login_listener listeners[LOGIN_LISTENERS_MAX];
};

/* login_check() results besides a close (negative) and BROKER__REDO or BROKER__HOLD. */
#define LOGIN_OK 0

/*
 * Who CONNECT @c on @cl is. Returns LOGIN_OK with *@user and *@user_len the
 * user name to keep (NULL/0: anonymous; borrowed until @c or the client
 * goes); BROKER__REDO when the check waits for a later loop iteration (the
 * client is held, its CONNECT kept and handled again); BROKER__HOLD when
 * the refusal waits (the client is held; login_next() hands it back); or
 * -MQTT_RC_* to refuse it now (connect_refuse()): v5 0x86 Bad User Name or
 * Password for an unknown user or a wrong password, 0x87 Not authorized
 * for an anonymous client where none is allowed or a missing certificate
 * identity; 3.1.1 gets 0x05 Not authorized for both. @may_defer: false for
 * a CONNECT handled again after an AUTH exchange (checked now, whatever
 * the budget).
 */
int login_check(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                bool may_defer, const uint8_t **user, size_t *user_len);

/*
 * Whether connected client @cl would still be let in under snapshot @lc
 * (a reload's new one), as far as can be told without its password, which
 * is not kept: a user with a name must still be in the listener's password
 * file (or, where none applies any more, anonymous clients must be
 * allowed); an anonymous client needs allow_anonymous; a certificate
 * identity stands (the certificate was verified at its handshake). A
 * changed password does not end a connection made with the old one, as
 * in mosquitto. A client not connected yet (CONNECT not accepted) is
 * always true: its CONNECT is checked against @lc. Pure; borrows both.
 */
bool login_still_allowed(const struct login_conf *lc, const struct client *cl);

/*
 * The password database an enhanced authentication method (SCRAM) checks
 * @cl against: its listener's, or NULL where none applies (no password
 * file, the certificate is the login, or no snapshot). Borrowed from the
 * current snapshot until the loop iteration ends.
 */
const struct pwdb *login_method_db(const struct broker *b, const struct client *cl);

/*
 * An enhanced authentication of a CONNECT on @cl succeeded: counted, and
 * its address's failures forgotten, as for a password.
 */
void login_method_ok(struct broker *b, struct client *cl);

/*
 * An enhanced authentication on @cl failed with @rc (-MQTT_RC_*: 0x86 for
 * a wrong proof, counted in logins_failed; else logins_refused). With
 * @paced (a CONNECT's wrong proof), the refusal is paced as a password's:
 * returns @rc to refuse now or BROKER__HOLD (login_next() hands it back
 * later); else only counted: returns @rc.
 */
int login_method_failed(struct broker *b, struct client *cl, int rc, bool paced);

/*
 * Start of a loop iteration at @now_ms (broker_tick()): the budget is
 * full again. Then call login_next() until it returns NULL.
 */
void login_tick(struct broker *b, uint64_t now_ms);

/*
 * The next held client whose turn came: a deferred CONNECT while budget is
 * left (*@rc = 0: handle its kept bytes again, which checks it), or a
 * delayed refusal that is due (*@rc = the -MQTT_RC_* to refuse it with).
 * The client is no longer held. NULL when there is none now.
 */
struct client *login_next(struct broker *b, int *rc);

/* True while CONNECTs wait for budget: net/ should not sleep. */
bool login_backlog(const struct broker *b);

/* Free the queues and the failure table (broker_free()). */
void login_fini(struct broker *b);

#endif
