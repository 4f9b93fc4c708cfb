/*
 * test_login.c - core/login: login_still_allowed(), which clients a
 * reload's new snapshot keeps (a user still in the password file, an
 * anonymous client where anonymous access stays, a certificate identity)
 * and which it disconnects.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/login.h"
#include "core/pwdb.h"
#include "core/session.h"

static uint8_t names[] = "alicecarol";
static struct pwdb_user users[2] = {
    {.name = names, .name_len = 5, .line = 1},
    {.name = names + 5, .name_len = 5, .line = 2},
};
static struct pwdb db = {.users = users, .count = 2, .cost_max = 1, .names = names};

/* A connected client on listener 0 whose session belongs to @user (NULL: anonymous). */
static struct client *connected(const char *user)
{
    struct client *cl = calloc(1, sizeof(*cl));
    size_t len = user != NULL ? strlen(user) : 0;

    cr_assert_not_null(cl);
    cl->_sess = session_new((const uint8_t *)"id", 2, 1, 0, (const uint8_t *)user, len, false);
    cr_assert_not_null(cl->_sess);
    cl->state = CLIENT_CONNECTED;
    cl->listener = 0;
    return cl;
}

static void gone(struct client *cl)
{
    free(cl->_sess);
    free(cl);
}

static struct login_conf conf(const struct pwdb *d, bool anonymous, bool identity)
{
    struct login_conf lc = {.listener_count = 1, .bind_client_id_to_user = true};

    lc.listeners[0].db = d;
    lc.listeners[0].allow_anonymous = anonymous;
    lc.listeners[0].identity_as_username = identity;
    return lc;
}

Test(login, a_user_still_in_the_password_file_stays_and_a_removed_one_goes)
{
    struct login_conf lc = conf(&db, false, false);
    struct client *alice = connected("alice");
    struct client *bob = connected("bob");

    cr_assert(login_still_allowed(&lc, alice));
    cr_assert_not(login_still_allowed(&lc, bob));
    gone(alice);
    gone(bob);
}

Test(login, anonymous_clients_follow_allow_anonymous)
{
    struct login_conf open = conf(&db, true, false);
    struct login_conf locked = conf(&db, false, false);
    struct client *anon = connected(NULL);

    cr_assert(login_still_allowed(&open, anon));
    cr_assert_not(login_still_allowed(&locked, anon));
    gone(anon);
}

Test(login, without_a_password_file_a_user_stays_only_where_anonymous_may)
{
    struct login_conf open = conf(NULL, true, false);
    struct login_conf locked = conf(NULL, false, false);
    struct client *alice = connected("alice");

    cr_assert(login_still_allowed(&open, alice));
    cr_assert_not(login_still_allowed(&locked, alice));
    gone(alice);
}

Test(login, a_certificate_identity_and_a_client_not_yet_connected_stand)
{
    struct login_conf identity = conf(&db, false, true);
    struct login_conf locked = conf(&db, false, false);
    struct client *cn = connected("device-7");
    struct client *fresh = connected(NULL);

    cr_assert(login_still_allowed(&identity, cn), "the certificate was verified at its handshake");
    fresh->state = CLIENT_NEW;
    cr_assert(login_still_allowed(&locked, fresh), "its CONNECT is checked against the new one");
    gone(cn);
    gone(fresh);
}
