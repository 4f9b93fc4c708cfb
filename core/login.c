/*
 * login.c - authentication of a CONNECT, paced (see login.h).
 */
#include "core/login.h"

#include <stdlib.h>
#include <string.h>

#include "core/broker_types.h"
#include "core/mqtt_codec.h"
#include "core/pwdb.h"
#include "core/pwhash.h"
#include "core/rm_assert.h"
#include "core/saslprep.h"
#include "core/session.h"
#include "core/wait.h"

/* A password longer than this once prepared is checked only as sent (a bound on the copy). */
#define LOGIN_PASSWORD_PREP_MAX 1024

/* Checked for an unknown user, so that the time taken does not tell which names exist. */
static const struct pwhash dummy_hash = {
    .kind = PWHASH_PBKDF2_SHA512,
    .salt_len = PWHASH_SALT_BYTES,
    .iterations = PWHASH_ITERATIONS,
};

/* A held client's turn: a deferred CONNECT (rc 0), or a refusal due at @due_ms. */
struct login_pending {
    uint64_t token; /* its wait (core/wait) */
    uint64_t due_ms;
    int rc;
};

/* One source address's recent failures. */
struct login_fail {
    uint64_t key; /* 0: free */
    uint64_t last_ms;
    uint32_t count;
};

/* The refusal for a login that failed: 3.1.1 hears 0x05 for all of them. */
static int refusal(const struct client *cl, int v5_rc)
{
    return cl->version == MQTT_V5 ? v5_rc : -MQTT_RC_NOT_AUTHORIZED;
}

/* Append @p to queue @q (a growable array). 0 or -ENOMEM. */
static int queue_push(struct broker_login_queue *q, const struct login_pending *p)
{
    if (q->head + q->count == q->cap) {
        if (q->head > 0) {
            memmove(q->items, q->items + q->head, q->count * sizeof(*q->items));
            q->head = 0;
        } else {
            uint32_t cap = q->cap ? q->cap * 2 : 16;
            struct login_pending *n = realloc(q->items, cap * sizeof(*n));

            if (n == NULL) {
                return -1;
            }
            q->items = n;
            q->cap = cap;
        }
    }
    RM_ASSERT(q->head + q->count < q->cap);
    q->items[q->head + q->count++] = *p;
    return 0;
}

/* Hold @cl and queue it with @due_ms and @rc; false on ENOMEM (nothing held). */
static bool hold(struct broker *b, struct client *cl, struct broker_login_queue *q, uint64_t due_ms,
                 int rc)
{
    struct login_pending p = {.due_ms = due_ms, .rc = rc};

    RM_ASSERT(cl->_wait == 0);
    p.token = wait_new(b, cl, 0, 0, 1);
    if (p.token == 0) {
        return false;
    }
    if (queue_push(q, &p) < 0) {
        wait_cancel(b, cl);
        return false;
    }
    return true;
}

/* The failure slot of address @key (claimed, or reset when stale). */
static struct login_fail *fail_slot(struct broker *b, uint64_t key)
{
    struct login_fail *f;

    if (b->login_fails == NULL) {
        b->login_fails = calloc(LOGIN_FAIL_SLOTS, sizeof(*b->login_fails));
        if (b->login_fails == NULL) {
            return NULL;
        }
    }
    f = &b->login_fails[key % LOGIN_FAIL_SLOTS];
    if (f->key != key || b->now_ms - f->last_ms >= LOGIN_FORGET_MS) {
        *f = (struct login_fail){.key = key, .last_ms = b->now_ms};
    }
    return f;
}

/*
 * A login failed with @rc: refuse now, or hold the refusal when its
 * address failed before (see login.h).
 */
static int fail(struct broker *b, struct client *cl, int rc)
{
    uint64_t key = b->peer.address != NULL ? b->peer.address(b->peer.ctx, cl) : 0;
    struct login_fail *f = key != 0 ? fail_slot(b, key) : NULL;
    uint64_t delay_ms = 0;

    RM_ASSERT(rc < 0);
    b->login_fail_last_ms = b->now_ms;
    if (f != NULL) {
        f->count++;
        f->last_ms = b->now_ms;
        if (f->count >= 2) {
            uint32_t shift = f->count - 2 < 16 ? f->count - 2 : 16;

            delay_ms = (uint64_t)LOGIN_DELAY_BASE_MS << shift;
            if (delay_ms > LOGIN_DELAY_MAX_MS) {
                delay_ms = LOGIN_DELAY_MAX_MS;
            }
        }
    }
    if (delay_ms > 0 && hold(b, cl, &b->login_delayed, b->now_ms + delay_ms, rc)) {
        b->stats.logins_delayed++;
        if (b->login_delayed_due == 0 || b->now_ms + delay_ms < b->login_delayed_due) {
            b->login_delayed_due = b->now_ms + delay_ms;
        }
        return BROKER__HOLD;
    }
    return rc;
}

/* A login succeeded: its address starts again from 0 (looked up only after recent failures). */
static void succeed(struct broker *b, struct client *cl)
{
    b->stats.logins_ok++;
    if (b->login_fails == NULL || b->peer.address == NULL ||
        b->now_ms - b->login_fail_last_ms >= LOGIN_FORGET_MS) {
        return;
    }
    uint64_t key = b->peer.address(b->peer.ctx, cl);
    struct login_fail *f = &b->login_fails[key % LOGIN_FAIL_SLOTS];
    if (key != 0 && f->key == key) {
        f->count = 0;
    }
}

/* Check @c's password against @db; the budget decides whether it is now. */
static int check_password(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                          const struct pwdb *db, bool may_defer)
{
    const struct pwdb_user *u = pwdb_find(db, c->username.ptr, c->username.len);
    const struct pwhash *h = u != NULL ? &u->hash : &dummy_hash;

    RM_ASSERT(c->has_username);
    if (may_defer && !b->login_pass && (b->login_budget <= 0 || b->login_deferred.count > 0)) {
        /* Over budget, or others are waiting: after them, in a later iteration. */
        if (hold(b, cl, &b->login_deferred, 0, 0)) {
            b->stats.logins_deferred++;
            return BROKER__REDO;
        }
        /* No memory to hold it: check it now instead. */
    }
    b->login_pass = false;
    b->login_budget -= (int64_t)pwhash_cost(h);
    bool ok = pwhash_verify(h, c->password.ptr, c->has_password ? c->password.len : 0);
    if (!ok && c->has_password) {
        /*
         * A file made for SCRAM (ringmq-passwd) holds the hash of
         * SASLprep(password) (RFC 5802's Normalize()); mosquitto_passwd's
         * holds the raw bytes'. Try the prepared form too, only where it
         * differs (non-ASCII UTF-8 that SASLprep changes): one more hash,
         * charged like the first, for an unknown user too (against the
         * dummy), so that the time taken still does not tell which names
         * exist.
         */
        uint8_t prep[LOGIN_PASSWORD_PREP_MAX];
        const char *why;
        int n = saslprep_prepare(c->password.ptr, c->password.len, prep, sizeof(prep), true,
                                 &why);
        if (n >= 0 && ((uint32_t)n != c->password.len ||
                       memcmp(prep, c->password.ptr, c->password.len) != 0)) {
            b->login_budget -= (int64_t)pwhash_cost(h);
            ok = pwhash_verify(h, prep, (size_t)n);
        }
        memset(prep, 0, sizeof(prep));
    }
    if (u == NULL || !c->has_password || !ok) {
        b->stats.logins_failed++;
        return fail(b, cl, refusal(cl, -MQTT_RC_BAD_USERNAME_OR_PASSWORD));
    }
    return LOGIN_OK;
}

int login_check(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                bool may_defer, const uint8_t **user, size_t *user_len)
{
    const struct login_listener *l;
    const char *id;
    int rc;

    RM_ASSERT(b != NULL && cl != NULL && c != NULL);
    RM_ASSERT(user != NULL && user_len != NULL);
    *user = NULL;
    *user_len = 0;
    if (b->login == NULL) {
        return LOGIN_OK; /* no snapshot (unit tests): anonymous everywhere */
    }
    RM_ASSERT(cl->listener < b->login->listener_count);
    l = &b->login->listeners[cl->listener];
    if (l->identity_as_username) {
        /* mosquitto's use_identity_as_username: the certificate is the login. */
        id = b->peer.identity != NULL ? b->peer.identity(b->peer.ctx, cl) : NULL;
        if (id == NULL || id[0] == '\0' || strlen(id) > PWDB_USERNAME_BYTES_MAX) {
            b->stats.logins_refused++;
            return fail(b, cl, refusal(cl, -MQTT_RC_NOT_AUTHORIZED));
        }
        *user = (const uint8_t *)id;
        *user_len = strlen(id);
        succeed(b, cl);
        return LOGIN_OK;
    }
    if (c->has_username && l->db != NULL) {
        rc = check_password(b, cl, c, l->db, may_defer);
        if (rc != LOGIN_OK) {
            return rc;
        }
        RM_ASSERT(c->username.len <= PWDB_USERNAME_BYTES_MAX);
        *user = c->username.ptr;
        *user_len = c->username.len;
        succeed(b, cl);
        return LOGIN_OK;
    }
    /*
     * Anonymous: no user name, or one with nothing to check it against. An
     * unverified name is not kept: it must not count as a user for ACLs.
     */
    if (!l->allow_anonymous) {
        b->stats.logins_refused++;
        return fail(b, cl, refusal(cl, -MQTT_RC_NOT_AUTHORIZED));
    }
    return LOGIN_OK;
}

bool login_still_allowed(const struct login_conf *lc, const struct client *cl)
{
    const struct login_listener *l;
    const struct session *s;

    RM_ASSERT(lc != NULL && cl != NULL);
    RM_ASSERT(cl->listener < lc->listener_count);
    s = cl->_sess;
    if (cl->state != CLIENT_CONNECTED || s == NULL) {
        return true;
    }
    l = &lc->listeners[cl->listener];
    if (l->identity_as_username) {
        return true;
    }
    if (s->username_len > 0 && l->db != NULL) {
        return pwdb_find(l->db, session_username(s), s->username_len) != NULL;
    }
    return l->allow_anonymous;
}

const struct pwdb *login_method_db(const struct broker *b, const struct client *cl)
{
    const struct login_listener *l;

    RM_ASSERT(b != NULL && cl != NULL);
    if (b->login == NULL) {
        return NULL;
    }
    RM_ASSERT(cl->listener < b->login->listener_count);
    l = &b->login->listeners[cl->listener];
    return l->identity_as_username ? NULL : l->db;
}

void login_method_ok(struct broker *b, struct client *cl)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(cl->state == CLIENT_NEW);
    succeed(b, cl);
}

int login_method_failed(struct broker *b, struct client *cl, int rc, bool paced)
{
    RM_ASSERT(b != NULL && cl != NULL);
    RM_ASSERT(rc < 0);
    if (rc == -MQTT_RC_BAD_USERNAME_OR_PASSWORD) {
        b->stats.logins_failed++;
    } else {
        b->stats.logins_refused++;
    }
    return paced ? fail(b, cl, rc) : rc;
}

void login_tick(struct broker *b, uint64_t now_ms)
{
    RM_ASSERT(b != NULL);
    RM_ASSERT(now_ms >= b->now_ms || b->now_ms == 0);
    b->login_budget = LOGIN_BUDGET_PER_TICK;
    b->login_pass = false;
}

/* The next due refusal in the delayed list, removed from it; NULL if none. */
static struct client *next_delayed(struct broker *b, int *rc)
{
    struct broker_login_queue *q = &b->login_delayed;
    uint64_t min = 0;

    if (q->count == 0 || b->now_ms < b->login_delayed_due) {
        return NULL;
    }
    /* One pass: take the first due entry, and note the earliest of the rest. */
    for (uint32_t i = 0; i < q->count; i++) {
        struct login_pending *p = &q->items[q->head + i];

        if (p->due_ms <= b->now_ms) {
            struct login_pending due = *p;

            *p = q->items[q->head + q->count - 1];
            q->count--;
            struct client *cl = wait_done(b, due.token);
            if (cl != NULL) {
                *rc = due.rc;
                return cl;
            }
            i--; /* gone meanwhile: look at the entry moved here */
            continue;
        }
        if (min == 0 || p->due_ms < min) {
            min = p->due_ms;
        }
    }
    b->login_delayed_due = min;
    return NULL;
}

struct client *login_next(struct broker *b, int *rc)
{
    struct broker_login_queue *q = &b->login_deferred;
    struct client *cl;

    RM_ASSERT(b != NULL && rc != NULL);
    cl = next_delayed(b, rc);
    if (cl != NULL) {
        return cl;
    }
    /* Deferred CONNECTs, oldest first, while budget is left; gone ones cost nothing. */
    while (q->count > 0 && b->login_budget > 0) {
        struct login_pending p = q->items[q->head];

        q->head++;
        q->count--;
        if (q->count == 0) {
            q->head = 0;
        }
        cl = wait_done(b, p.token);
        if (cl != NULL) {
            *rc = 0;
            b->login_pass = true; /* its CONNECT, handled again now, goes ahead of the queue */
            return cl;
        }
    }
    return NULL;
}

bool login_backlog(const struct broker *b)
{
    RM_ASSERT(b != NULL);
    return b->login_deferred.count > 0;
}

void login_fini(struct broker *b)
{
    RM_ASSERT(b != NULL);
    free(b->login_deferred.items);
    free(b->login_delayed.items);
    free(b->login_fails);
    b->login_deferred = (struct broker_login_queue){0};
    b->login_delayed = (struct broker_login_queue){0};
    b->login_fails = NULL;
}
