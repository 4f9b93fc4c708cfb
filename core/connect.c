/*
 * connect.c - a client's session binding (see connect.h).
 *
 * A CONNECT is handled on the shard that homes its client id: elsewhere it
 * is handed off before anything is decided. There, an existing connection
 * of the same id is taken over [MQTT-3.1.4-2], and the session is resumed
 * or started anew. Owned by one shard; single-threaded.
 */
#include "core/connect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth.h"
#include "core/acl.h"
#include "core/broker_types.h"
#include "core/deadline.h"
#include "core/home.h"
#include "core/login.h"
#include "core/msg.h"
#include "core/mqtt_codec.h"
#include "core/outbox.h"
#include "core/output.h"
#include "core/rm_assert.h"
#include "core/route.h"
#include "core/sess_table.h"
#include "core/session.h"
#include "core/topic.h"
#include "core/vhost.h"
#include "core/wait.h"
#include "core/wal.h"

/* MQTT 3.1 limits client ids to 23 bytes; we allow longer ones as 3.1.1 does. */
#define ASSIGNED_ID_BYTES_MAX 40u

/* Steps of one enhanced authentication exchange, at most (auth_step is a byte). */
#define AUTH_STEPS_MAX 0xFE

static int send_connack(struct broker *b, struct client *cl, bool session_present, uint8_t rc,
                        const struct mqtt_props *props)
{
    struct mqtt_pkt pkt = {.type = MQTT_CONNACK};
    pkt.u.connack.session_present = session_present;
    pkt.u.connack.rc = rc;
    if (props)
        pkt.u.connack.props = *props;
    return output_send(b, cl, &pkt, output_hard_max(b));
}

/* connect_refuse() with Reason String @why (NULL: the code's name). */
static int refuse_why(struct broker *b, struct client *cl, int rc, const char *why)
{
    RM_ASSERT(rc < 0);
    RM_ASSERT(cl->state == CLIENT_NEW);
    b->stats.connects_refused++;
    if (cl->version == MQTT_V5) {
        struct mqtt_pkt pkt = {.type = MQTT_CONNACK};
        pkt.u.connack.rc = (uint8_t)-rc;
        (void)output_with_reason(b, cl, &pkt, &pkt.u.connack.props, (uint8_t)-rc, why);
    } else {
        (void)send_connack(b, cl, false, mqtt_rc_to_connack_v3(rc), NULL);
    }
    return output_close(b, cl, rc);
}

int connect_refuse(struct broker *b, struct client *cl, int rc)
{
    return refuse_why(b, cl, rc, NULL);
}

/* A fresh id for a client of host @host that sent an empty one [MQTT-3.1.3-6]. */
static size_t assign_client_id(struct broker *b, uint8_t host, uint8_t *buf, size_t cap)
{
    RM_ASSERT(cap >= ASSIGNED_ID_BYTES_MAX);
    uint8_t key[ASSIGNED_ID_BYTES_MAX + VHOST_ID_PREFIX];
    size_t n, k;
    /* Homed here (as its host's), so a later CONNECT with this id lands on this shard too. */
    do {
        n = (size_t)snprintf((char *)buf, cap, "ringmq-%u-%llu", (unsigned)b->shard_id,
                             (unsigned long long)++b->assigned_id_seq);
        RM_ASSERT(n < cap);
        k = host ? vhost_prefix(host, false, buf, n, key) : n;
    } while (home_shard(host ? key : buf, k, b->shard_count) != b->shard_id ||
             *sess_table_slot(b, host ? key : buf, k, sess_table_hash(host ? key : buf, k)) !=
                 NULL);
    return n;
}

/*
 * The client's MQTT 5.0 CONNECT properties, kept only when one differs from
 * its default (most clients send none: they pay nothing); -ENOMEM.
 */
static int connect_v5(struct client *cl, const struct mqtt_connect *c)
{
    RM_ASSERT(c->version == MQTT_V5 && cl->_v5 == NULL);
    const struct mqtt_props *pr = &c->props;
    uint32_t max_packet =
        (pr->has & MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE)) ? pr->max_packet_size : UINT32_MAX;
    uint16_t recv_max = (pr->has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX)) ? pr->receive_max : 65535;
    uint32_t will_delay_s = 0;
    /*
     * Request Problem Information 0 needs nothing: Reason Strings go only on
     * CONNACK and DISCONNECT, which it still allows [MQTT-3.1.2-29].
     */
    if (c->will && (c->will_props.has & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY)))
        will_delay_s = c->will_props.will_delay;
    RM_ASSERT(recv_max > 0);
    if (max_packet == UINT32_MAX && recv_max == 65535 && pr->topic_alias_max == 0 &&
        will_delay_s == 0)
        return 0;
    struct client_v5 *v5 = output_v5_state(cl);
    if (!v5)
        return -ENOMEM;
    v5->max_packet = max_packet;
    v5->recv_max = recv_max;
    v5->alias_max = pr->topic_alias_max;
    v5->will_delay_s = will_delay_s;
    return 0;
}

/* CONNACK properties telling a v5 client what this server allows (section 3.2.2.3). */
static void connack_props(const struct broker *b, const struct client *cl, const uint8_t *assigned,
                          size_t assigned_len, bool keepalive_set, const struct auth_out *authed,
                          struct mqtt_props *pr)
{
    const struct limits *lim = b->lim;
    RM_ASSERT(cl->version == MQTT_V5);
    RM_ASSERT(lim->max_qos <= 2);
    pr->has |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAX) | MQTT_PROP_BIT(MQTT_PROP_MAX_PACKET_SIZE);
    pr->receive_max = (uint16_t)(lim->inflight_in_max < 65535 ? lim->inflight_in_max : 65535);
    pr->max_packet_size = lim->packet_bytes_max;
    if (lim->max_qos < 2) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_MAX_QOS);
        pr->max_qos = lim->max_qos;
    }
    if (!lim->retain_available)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE); /* value 0 */
    if (!lim->wildcard_subscriptions)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_WILDCARD_SUB_AVAILABLE);
    if (!lim->subscription_identifiers)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_SUB_ID_AVAILABLE);
    if (!lim->shared_subscriptions)
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_SHARED_SUB_AVAILABLE);
    if (lim->topic_alias_max > 0) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAX);
        pr->topic_alias_max = lim->topic_alias_max;
    }
    if (assigned) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_ID);
        pr->assigned_client_id = (struct mqtt_str){assigned, (uint32_t)assigned_len};
    }
    if (keepalive_set) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEPALIVE);
        pr->server_keepalive = cl->keepalive_s;
    }
    if (cl->_v5 && cl->_v5->auth) {
        /* The method the exchange used (MQTT 5.0 section 3.2.2.3.17). */
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
        pr->auth_method = (struct mqtt_str){(const uint8_t *)cl->_v5->auth->name,
                                            (uint32_t)strlen(cl->_v5->auth->name)};
        if (authed && authed->data.len > 0) {
            /* The method's last word (SCRAM's server-final) [MQTT-4.12.0-5]. */
            pr->has |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
            pr->auth_data = authed->data;
        }
    }
}

static int send_auth(struct broker *b, struct client *cl, uint8_t rc, const struct mqtt_str *data)
{
    RM_ASSERT(cl->_v5 && cl->_v5->auth);
    RM_ASSERT(rc == MQTT_RC_SUCCESS || rc == MQTT_RC_CONTINUE_AUTH);
    struct mqtt_pkt pkt = {.type = MQTT_AUTH};
    struct mqtt_props *pr = &pkt.u.ack.props;
    pkt.u.ack.rc = rc;
    pr->has = MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD);
    pr->auth_method = (struct mqtt_str){(const uint8_t *)cl->_v5->auth->name,
                                        (uint32_t)strlen(cl->_v5->auth->name)};
    if (data) {
        pr->has |= MQTT_PROP_BIT(MQTT_PROP_AUTH_DATA);
        pr->auth_data = *data;
    }
    if (output_send(b, cl, &pkt, output_hard_max(b)) < 0)
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}

/* What the methods may use on @cl's listener, and the method named @name there (or NULL). */
static const struct auth_method *method_find(const struct broker *b, const struct client *cl,
                                             const struct mqtt_str *name, struct auth_ctx *ctx)
{
    RM_ASSERT(cl->version == MQTT_V5);
    *ctx = (struct auth_ctx){
        .db = login_method_db(b, cl),
        .secret = b->login ? b->login->secret : NULL,
        .random = b->peer.random,
        .rctx = b->peer.ctx,
    };
    return auth_find(b->lim, ctx, name);
}

/* The exchange on @cl is over: the method's state goes (the method stays, for re-auth). */
static void auth_end(struct client_v5 *v5)
{
    RM_ASSERT(v5 != NULL);
    if (v5->auth && v5->auth->end)
        v5->auth->end(v5->auth_priv);
    v5->auth_priv = NULL;
    v5->auth_step = 0;
}

/*
 * The exchange of a connecting @cl failed with @r (AUTH_FAIL: 0x87,
 * AUTH_DENIED: 0x86): refused, with @why. When the method identifies the
 * user it is counted, and a wrong proof is paced as a wrong password is
 * (core/login.h); a malformed message guesses nothing, so it is answered
 * at once, with its reason.
 */
static int auth_refuse(struct broker *b, struct client *cl, enum auth_result r, const char *why)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(v5 && v5->auth);
    RM_ASSERT(r == AUTH_FAIL || r == AUTH_DENIED);
    int rc = r == AUTH_DENIED ? -MQTT_RC_BAD_USERNAME_OR_PASSWORD : -MQTT_RC_NOT_AUTHORIZED;
    bool identifies = v5->auth->identifies;
    auth_end(v5);
    if (identifies) {
        rc = login_method_failed(b, cl, rc, r == AUTH_DENIED);
        if (rc == BROKER__HOLD)
            return rc;
    }
    return refuse_why(b, cl, rc, why);
}

/*
 * A CONNECT naming Authentication Method @m (section 4.12): judge its
 * data. Returns 1 to go on connecting (a method that needs no second
 * step), 0 while an AUTH exchange goes on (the CONNECT @raw is kept and
 * handled again once it succeeds), or what connect_refuse() returns.
 */
static int connect_auth(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                        const struct auth_method *m, const uint8_t *raw, uint32_t raw_len)
{
    RM_ASSERT(c->version == MQTT_V5 && m != NULL);
    struct client_v5 *v5 = output_v5_state(cl);
    if (!v5)
        return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    RM_ASSERT(v5->auth_priv == NULL && v5->auth_connect == NULL);
    struct auth_ctx ctx;
    if (method_find(b, cl, &c->props.auth_method, &ctx) != m)
        return connect_refuse(b, cl, -MQTT_RC_BAD_AUTH_METHOD);
    v5->auth = m;
    struct auth_out out = {0};
    enum auth_result r = m->step(&ctx, &v5->auth_priv, 0, &c->props.auth_data, &out);
    if (r == AUTH_OK) {
        /* One step is all: nothing to carry (a method that identifies takes two or more). */
        RM_ASSERT(!m->identifies);
        auth_end(v5);
        return 1;
    }
    if (r != AUTH_CONTINUE)
        return auth_refuse(b, cl, r, out.why);
    RM_ASSERT(raw != NULL && raw_len > 0);
    v5->auth_connect = malloc(raw_len);
    if (!v5->auth_connect) {
        auth_end(v5);
        return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    }
    memcpy(v5->auth_connect, raw, raw_len);
    v5->auth_connect_len = raw_len;
    v5->auth_step = 1;
    /* The connect timeout still runs: a client that stalls here is closed. */
    return send_auth(b, cl, MQTT_RC_CONTINUE_AUTH, &out.data);
}

static int connect_handle(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                          const uint8_t *raw, uint32_t raw_len, const struct auth_out *authed);

/*
 * The exchange for a pending CONNECT succeeded with @out: handle the
 * CONNECT now, then drop the method's state (@out borrows it).
 */
static int connect_resume(struct broker *b, struct client *cl, const struct auth_out *out)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(v5 && v5->auth_connect);
    RM_ASSERT(cl->state == CLIENT_NEW);
    uint8_t *raw = v5->auth_connect;
    void *priv = v5->auth_priv;
    struct mqtt_fixed fh;
    struct mqtt_pkt pkt;
    v5->auth_connect = NULL;
    v5->auth_priv = NULL;
    v5->auth_step = 0;
    int r = mqtt_fixed_parse(raw, v5->auth_connect_len, UINT32_MAX, &fh);
    RM_ASSERT(r > 0);
    int rc = mqtt_decode(&fh, raw + r, 0, &pkt);
    RM_ASSERT(rc == 0 && pkt.type == MQTT_CONNECT);
    rc = connect_handle(b, cl, &pkt.u.connect, NULL, 0, out);
    if (v5->auth->end)
        v5->auth->end(priv);
    free(raw);
    return rc;
}

/* A re-authentication of connected @cl succeeded with @out: the same user, or it ends. */
static int reauth_done(struct broker *b, struct client *cl, const struct auth_out *out)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(cl->state == CLIENT_CONNECTED && cl->_sess);
    if (v5->auth->identifies && !session_owned_by(cl->_sess, out->user.ptr, out->user.len)) {
        /* Another user: the session's subscriptions and client id were granted to the first. */
        auth_end(v5);
        b->stats.logins_refused++;
        return output_close(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    }
    int rc = send_auth(b, cl, MQTT_RC_SUCCESS, out->data.len > 0 ? &out->data : NULL);
    auth_end(v5);
    return rc;
}

int connect_on_auth(struct broker *b, struct client *cl, const struct mqtt_ack *a)
{
    struct client_v5 *v5 = cl->_v5;
    RM_ASSERT(cl->version == MQTT_V5);
    bool connecting = cl->state == CLIENT_NEW;
    struct auth_ctx ctx;
    /* Only within the method the CONNECT chose [MQTT-4.12.0-1, 4.12.1-1]. */
    if (!v5 || !v5->auth || !(a->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD)) ||
        method_find(b, cl, &a->props.auth_method, &ctx) != v5->auth)
        return output_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    uint8_t step;
    if (a->rc == MQTT_RC_REAUTHENTICATE && !connecting && v5->auth_step == 0)
        step = 0;
    else if (a->rc == MQTT_RC_CONTINUE_AUTH && v5->auth_step > 0)
        step = v5->auth_step;
    else
        return output_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
    struct auth_out out = {0};
    enum auth_result r = v5->auth->step(&ctx, &v5->auth_priv, step, &a->props.auth_data, &out);
    if (r == AUTH_CONTINUE) {
        if (step == 0 && !connecting)
            v5->auth_deadline_ms = b->now_ms + b->lim->connect_timeout_ms;
        v5->auth_step = (uint8_t)(step + 1 < AUTH_STEPS_MAX ? step + 1 : AUTH_STEPS_MAX);
        return send_auth(b, cl, MQTT_RC_CONTINUE_AUTH, &out.data);
    }
    if (r != AUTH_OK) {
        if (connecting)
            return auth_refuse(b, cl, r, out.why);
        /* DISCONNECT has no 0x86: a failed re-authentication is 0x87 (section 4.12.1). */
        if (v5->auth->identifies)
            (void)login_method_failed(b, cl,
                                      r == AUTH_DENIED ? -MQTT_RC_BAD_USERNAME_OR_PASSWORD
                                                       : -MQTT_RC_NOT_AUTHORIZED,
                                      false);
        auth_end(v5);
        return output_close(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    }
    return connecting ? connect_resume(b, cl, &out) : reauth_done(b, cl, &out);
}

/*
 * Check and build the will of CONNECT @c, by user @user (@user_len bytes;
 * NULL: anonymous) with client id @id (as the client sent it) of virtual
 * host @host, into *@will. Returns 0, or what
 * connect_refuse() or output_close() returned.
 */
static int connect_will(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                        const uint8_t *user, size_t user_len, const uint8_t *id, size_t id_len,
                        uint8_t host, struct msg **will)
{
    const struct limits *lim = b->lim;
    RM_ASSERT(c->will);
    if (topic_name_check(c->will_topic.ptr, c->will_topic.len, lim) < 0)
        return c->version == MQTT_V5 ? connect_refuse(b, cl, -MQTT_RC_TOPIC_NAME_INVALID)
                                     : output_close(b, cl, -MQTT_RC_TOPIC_NAME_INVALID);
    /*
     * '$' topics are the broker's (MQTT 5.0 section 4.7.2): a client may
     * not publish there, so neither may its will. Refused at once (v5 0x87,
     * 3.1.1 0x05), as mosquitto refuses a will its ACL denies, rather than
     * accepted and dropped when the client is long gone.
     */
    if (c->will_topic.ptr[0] == '$')
        return connect_refuse(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    const struct acl *acl = b->acls[cl->listener];
    if (acl) {
        /* The same rule as a PUBLISH there (its listener's ACL); once per CONNECT, so no cache. */
        struct acl_who who;
        acl_who_init(acl, &who, user_len ? user : NULL, user_len, id, id_len);
        who.host = host;
        if (!acl_check(acl, &who, ACL_PUBLISH, c->will_topic.ptr, c->will_topic.len)) {
            b->stats.acl_publish_denied++;
            return connect_refuse(b, cl, -MQTT_RC_NOT_AUTHORIZED);
        }
    }
    if (c->will_qos > lim->max_qos) /* [MQTT-3.2.2-12] */
        return connect_refuse(b, cl, -MQTT_RC_QOS_NOT_SUPPORTED);
    if (c->will_retain && !lim->retain_available) /* [MQTT-3.2.2-13] */
        return connect_refuse(b, cl, -MQTT_RC_RETAIN_NOT_SUPPORTED);
    /* In its host's topic space (core/vhost.h). */
    struct mqtt_str topic = c->will_topic;
    size_t len;
    topic.ptr = vhost_name(&b->vhost_buf[1], host, true, topic.ptr, topic.len, &len);
    if (!topic.ptr && len == VHOST_TOO_LONG) /* past 65535 bytes with its host's prefix */
        return c->version == MQTT_V5 ? connect_refuse(b, cl, -MQTT_RC_TOPIC_NAME_INVALID)
                                     : output_close(b, cl, -MQTT_RC_TOPIC_NAME_INVALID);
    topic.len = (uint32_t)len;
    *will = topic.ptr ? route_msg_new(b, &topic, &c->will_payload, &c->will_props, c->will_qos,
                                      c->will_retain, true)
                      : NULL;
    return *will ? 0 : connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
}

/*
 * The session for client id @id that CONNECT @c of user @user (@user_len
 * bytes; 0: anonymous) attaches to, with Session Expiry Interval
 * @expiry_s: the existing one, whose connection (if any) is taken over,
 * unless Clean Start ends it or it is another user's; else a new one.
 * *@present: an existing one is resumed. NULL on ENOMEM.
 */
static struct session *session_bind(struct broker *b, const struct mqtt_connect *c,
                                    const uint8_t *id, size_t id_len, uint32_t expiry_s,
                                    const uint8_t *user, size_t user_len, uint8_t listener,
                                    bool *present)
{
    RM_ASSERT(id_len > 0);
    uint64_t h = sess_table_hash(id, id_len);
    struct session *s = *sess_table_slot(b, id, id_len, h);
    if (s && s->client) {
        /* Takeover: the existing connection is closed [MQTT-3.1.4-2]. */
        struct client *old = s->client;
        old->_sess = NULL;
        s->client = NULL;
        session_settle(s);
        if (old->_will && old->_v5 && old->_v5->will_delay_s > 0 && !c->clean_session &&
            s->expiry_s > 0) {
            /* The session goes on: a delayed will is not sent [MQTT-3.1.3-9]. */
            outbox_msg_put(b, old->_will);
            old->_will = NULL;
        }
        if (old->_wait) {
            /*
             * Held (a retained publish waiting for the replicas, say): its
             * wait goes on without it now, not when its socket finally
             * closes, so a resend on the new connection can take it over
             * (wait_adopt()). What it sent meanwhile is never handled.
             */
            wait_forget(b, old);
            obuf_free(&old->_held);
        }
        output_close(b, old, -MQTT_RC_SESSION_TAKEN_OVER);
        b->stats.clients--;
        b->stats.takeovers++;
    }
    if (s && (c->clean_session || s->expiry_s == 0 || !session_owned_by(s, user, user_len))) {
        /*
         * Clean Start, a session that ended with its connection, or another
         * user's (bind_client_id_to_user off): its subscriptions were made
         * under that user's rights, so it is not handed to this one.
         */
        deadline_end(b, s);
        s = NULL;
    }
    *present = s != NULL;
    if (s) {
        /* Back in time: no expiry, no delayed will [MQTT-3.1.3-9]. */
        deadline_cancel(b, s);
        if (b->wal && s->expiry_s != expiry_s)
            wal_session(b, s->client_id, s->client_id_len, user, user_len, expiry_s, listener);
        s->expiry_s = expiry_s;
        return s;
    }
    s = session_new(id, id_len, h, expiry_s, user, user_len, b->acl_on);
    if (s) {
        s->listener = listener; /* a new session: nothing to class again */
        sess_table_insert(b, s);
    }
    if (s && b->wal && expiry_s != 0) /* outlives it */
        wal_session(b, s->client_id, s->client_id_len, user, user_len, expiry_s, listener);
    return s;
}

/*
 * The keep alive @cl gets (Server Keep Alive [MQTT-3.2.2-21]) and, for v5,
 * the CONNACK properties into @props (@assigned: an assigned client id, or
 * NULL). Returns 0, or -EMSGSIZE when that CONNACK would pass the client's
 * Maximum Packet Size.
 */
static int connack_prepare(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                           const uint8_t *assigned, size_t id_len, const struct auth_out *authed,
                           struct mqtt_props *props)
{
    const struct limits *lim = b->lim;
    bool v5 = c->version == MQTT_V5;
    bool keepalive_set = false;
    cl->keepalive_s = c->keepalive_s;
    if (v5 && lim->keepalive_max_s &&
        (c->keepalive_s == 0 || c->keepalive_s > lim->keepalive_max_s)) {
        /* Server Keep Alive: the client must use ours [MQTT-3.2.2-21]. */
        cl->keepalive_s = lim->keepalive_max_s;
        keepalive_set = true;
    }
    if (!v5)
        return 0;
    connack_props(b, cl, assigned, id_len, keepalive_set, authed, props);
    struct mqtt_pkt connack = {.type = MQTT_CONNACK};
    connack.u.connack.props = *props;
    if (cl->_v5 && mqtt_encoded_size(&connack, MQTT_V5) > cl->_v5->max_packet)
        return -EMSGSIZE;
    return 0;
}

int connect_on_connect(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                       const uint8_t *raw, uint32_t raw_len)
{
    return connect_handle(b, cl, c, raw, raw_len, NULL);
}

/*
 * Who CONNECT @c is: the user an exchange named (@authed, from
 * connect_resume()), or the one an exchange starting now will name, or
 * login_check()'s answer. Returns 1 with *@user and *@user_len, or what
 * connect_on_connect() returns at once (held, refused, an exchange begun).
 */
static int connect_who(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                       const uint8_t *raw, uint32_t raw_len, const struct auth_out *authed,
                       const uint8_t **user, size_t *user_len)
{
    const struct auth_method *m = NULL;
    struct auth_ctx ctx;
    int rc;

    RM_ASSERT(cl->state == CLIENT_NEW);
    if (c->version == MQTT_V5 && !authed && (c->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTH_METHOD))) {
        m = method_find(b, cl, &c->props.auth_method, &ctx);
        if (!m)
            return connect_refuse(b, cl, -MQTT_RC_BAD_AUTH_METHOD); /* [MQTT-4.12.0-1] */
    }
    if (authed && authed->user.len > 0) {
        /* Named by the exchange (SCRAM): any user name and password in the CONNECT are not used. */
        *user = authed->user.ptr;
        *user_len = authed->user.len;
        login_method_ok(b, cl);
        return 1;
    }
    if (m && m->identifies) {
        rc = connect_auth(b, cl, c, m, raw, raw_len);
        RM_ASSERT(rc != 1);
        return rc;
    }
    rc = login_check(b, cl, c, raw != NULL, user, user_len);
    if (rc < 0)
        return connect_refuse(b, cl, rc);
    if (rc == BROKER__REDO)
        cl->version = 0; /* its CONNECT comes again: still the first [MQTT-3.1.0-2] */
    if (rc != LOGIN_OK)
        return rc; /* held: checked, or refused, in a later loop iteration */
    return m ? connect_auth(b, cl, c, m, raw, raw_len) : 1;
}

/*
 * The virtual host of CONNECT @c on @cl (core/vhost.h): from its
 * certificate's identity on a listener where that is the user name, else
 * from the user name it gives. Known before the handoff, so it decides the
 * home shard; checked against the verified user once login has run.
 */
static uint8_t connect_host(struct broker *b, const struct client *cl,
                            const struct mqtt_connect *c)
{
    if (!b->vhosts)
        return 0;
    if (b->login && cl->listener < b->login->listener_count &&
        b->login->listeners[cl->listener].identity_as_username) {
        const char *cn = b->peer.identity ? b->peer.identity(b->peer.ctx, cl) : NULL;
        return cn ? vhost_of_user(b->vhosts, (const uint8_t *)cn, strlen(cn)) : 0;
    }
    return c->has_username ? vhost_of_user(b->vhosts, c->username.ptr, c->username.len) : 0;
}

static int connect_handle(struct broker *b, struct client *cl, const struct mqtt_connect *c,
                          const uint8_t *raw, uint32_t raw_len, const struct auth_out *authed)
{
    RM_ASSERT(cl->state == CLIENT_NEW);
    RM_ASSERT(c->version == MQTT_V31 || c->version == MQTT_V311 || c->version == MQTT_V5);
    const struct limits *lim = b->lim;
    bool v5 = c->version == MQTT_V5;
    uint8_t assigned[ASSIGNED_ID_BYTES_MAX];
    const uint8_t *id = c->client_id.ptr;
    size_t id_len = c->client_id.len;
    bool id_assigned = false;
    int rc;
    uint8_t host = connect_host(b, cl, c);

    cl->version = c->version;
    if (id_len == 0) {
        /*
         * 3.1 requires an id; 3.1.1 only with clean session [MQTT-3.1.3-7,
         * -8]; v5 with either Clean Start [MQTT-3.1.3-6 (v5)].
         */
        if (c->version == MQTT_V31 || (!v5 && !c->clean_session) ||
            !lim->allow_zero_length_client_id)
            return connect_refuse(b, cl, -MQTT_RC_CLIENT_ID_NOT_VALID);
        id_len = assign_client_id(b, host, assigned, sizeof(assigned));
        id_assigned = true;
    } else if (id_len > lim->client_id_bytes_max) {
        return connect_refuse(b, cl, -MQTT_RC_CLIENT_ID_NOT_VALID);
    }
    /* The id as the client knows it (the ACL's %c, an assigned id's CONNACK)... */
    const uint8_t *own_id = id_assigned ? assigned : id;
    size_t own_len = id_len;
    /* ...and from here on as the session table knows it: with its host's prefix. */
    id = vhost_name(&b->vhost_buf[0], host, false, own_id, own_len, &id_len);
    if (!id)
        return connect_refuse(b, cl, id_len == VHOST_TOO_LONG ? -MQTT_RC_CLIENT_ID_NOT_VALID
                                                              : -MQTT_RC_SERVER_UNAVAILABLE);
    if (!id_assigned) {
        uint32_t home = home_shard(id, id_len, b->shard_count);
        if (home != b->shard_id) {
            /* The home shard decides takeover and owns the session. */
            cl->state = CLIENT_HANDOFF;
            cl->handoff_shard = home;
            cl->version = 0;
            return CLIENT_FEED_HANDOFF;
        }
    }
    if (v5 && !cl->_v5 && connect_v5(cl, c) < 0)
        return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    /* Who it is, before any session is touched (core/login.h, core/auth.h). */
    const uint8_t *user = NULL;
    size_t user_len = 0;
    rc = connect_who(b, cl, c, raw, raw_len, authed, &user, &user_len);
    if (rc != 1)
        return rc;
    if (user && vhost_of_user(b->vhosts, user, user_len) != host) {
        /* Verified as a user of another host than it was homed for (SCRAM's name, say). */
        return connect_refuse(b, cl, -MQTT_RC_NOT_AUTHORIZED);
    }
    if (!id_assigned && b->login && b->login->bind_client_id_to_user) {
        /* Not a takeover [MQTT-3.1.4-2] by another user: refused (section 3.1.4, authorize). */
        const struct session *held = *sess_table_slot(b, id, id_len, sess_table_hash(id, id_len));
        if (held && !session_owned_by(held, user, user_len)) {
            b->stats.takeovers_refused++;
            return connect_refuse(b, cl, -MQTT_RC_NOT_AUTHORIZED);
        }
    }
    if (!v5 && lim->keepalive_max_s &&
        (c->keepalive_s == 0 || c->keepalive_s > lim->keepalive_max_s)) {
        /*
         * 3.1/3.1.1 cannot be told a Server Keep Alive: refused with
         * "identifier rejected", as mosquitto 2.0 refuses a keep alive over
         * max_keepalive (or 0, no keep alive), rather than dropped later
         * for keeping the keep alive it asked for.
         */
        return connect_refuse(b, cl, -MQTT_RC_CLIENT_ID_NOT_VALID);
    }
    struct msg *will = NULL;
    if (c->will) {
        rc = connect_will(b, cl, c, user, user_len, own_id, own_len, host, &will);
        if (rc != 0)
            return rc;
    }

    uint32_t expiry_s = c->clean_session ? 0 : SESSION_EXPIRY_NEVER;
    if (v5)
        expiry_s = c->props.session_expiry; /* absent: 0 [MQTT-3.1.2-11 (v5)] */
    struct mqtt_props props = {0};
    if (connack_prepare(b, cl, c, id_assigned ? own_id : NULL, id_assigned ? own_len : 0, authed,
                        &props) < 0) {
        /*
         * No CONNACK can reach it: refuse before any session is touched (no
         * takeover, no Clean Start, no delayed will lost), silently
         * [MQTT-3.14.0-1]; the will of a connection that never began is
         * dropped.
         */
        outbox_msg_put(b, will);
        b->stats.connects_refused++;
        return output_close(b, cl, -MQTT_RC_PACKET_TOO_LARGE);
    }
    bool present;
    struct session *s =
        session_bind(b, c, id, id_len, expiry_s, user, user_len, cl->listener, &present);
    if (!s) {
        outbox_msg_put(b, will);
        return connect_refuse(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    }
    s->client = cl;
    cl->_sess = s;
    cl->_will = will;
    b->stats.clients++;
    /* Its listener's ACL applies (a session taken over from another listener takes this one's). */
    session_acl_move(b, s, cl->listener);

    /* Session present is 0 for a clean session [MQTT-3.2.2-1], else [-2, -3]. */
    rc = send_connack(b, cl, present, MQTT_CONNACK_ACCEPTED, &props);
    if (rc < 0) {
        /* No memory for it: as above, but the session is bound by now (and stays). */
        outbox_msg_put(b, cl->_will);
        cl->_will = NULL;
        b->stats.connects_refused++;
        return output_close(b, cl, rc == -EMSGSIZE ? -MQTT_RC_PACKET_TOO_LARGE
                                                   : -MQTT_RC_SERVER_UNAVAILABLE);
    }
    /* Connected only now that the CONNACK is on its way: what follows may close with DISCONNECT. */
    cl->state = CLIENT_CONNECTED;
    b->stats.connects++;
    b->stats.connects_proto[cl->version >= 5 ? 2 : cl->version == 4 ? 1 : 0]++;
    if (present && session_resume(b, s) < 0)
        return output_close(b, cl, -MQTT_RC_SERVER_UNAVAILABLE);
    return 0;
}

int connect_on_disconnect(struct broker *b, struct client *cl, const struct mqtt_ack *d)
{
    struct session *s = cl->_sess;
    RM_ASSERT(s != NULL);
    RM_ASSERT(cl->version == MQTT_V5 || d->rc == 0);
    if (d->props.has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY)) {
        /* Not from 0 to more: the session is already bound to end [MQTT-3.14.2-2]. */
        if (s->expiry_s == 0 && d->props.session_expiry != 0)
            return output_close(b, cl, -MQTT_RC_PROTOCOL_ERROR);
        if (b->wal && s->expiry_s != 0 && s->expiry_s != d->props.session_expiry)
            wal_session(b, s->client_id, s->client_id_len, session_username(s), s->username_len,
                        d->props.session_expiry, s->listener);
        s->expiry_s = d->props.session_expiry;
    }
    /* Only 0x00 discards the will; 0x04 and errors publish it [MQTT-3.14.4-3, 3.1.2-8]. */
    if (d->rc == MQTT_RC_SUCCESS) {
        outbox_msg_put(b, cl->_will); /* not published [MQTT-3.1.2-10] */
        cl->_will = NULL;
    }
    output_close(b, cl, 1);
    return 1;
}

static void client_v5_free(struct broker *b, struct client *cl)
{
    struct client_v5 *v5 = cl->_v5;
    if (!v5)
        return;
    RM_ASSERT(v5->alias_out_count <= BROKER_ALIAS_OUT_MAX);
    for (uint32_t i = 0; i < v5->alias_out_count; i++)
        free(v5->alias_out[i].topic);
    free(v5->alias_out);
    if (v5->alias_in) {
        for (uint32_t i = 0; i < v5->alias_in_cap; i++)
            free((void *)v5->alias_in[i].ptr);
        free(v5->alias_in);
    }
    free(v5->auth_connect);
    if (v5->auth && v5->auth->end)
        v5->auth->end(v5->auth_priv); /* closed mid-exchange */
    free(v5);
    cl->_v5 = NULL;
}

void connect_leave(struct broker *b, struct client *cl)
{
    RM_ASSERT(cl->state != CLIENT_NEW || cl->_sess == NULL);
    RM_ASSERT(!cl->_sess || cl->_sess->client == cl);
    struct session *s = cl->_sess;
    struct msg *will = cl->_will; /* NULL after a normal DISCONNECT (connect_on_disconnect) */
    cl->_will = NULL;
    if (s) {
        /* Detach first: a persistent session subscribed to its own will queues it. */
        b->stats.clients--;
        s->client = NULL;
        cl->_sess = NULL;
        session_settle(s);
        struct msg *delayed = NULL;
        uint64_t will_at_ms = 0;
        if (will && cl->_v5 && cl->_v5->will_delay_s > 0 && s->expiry_s > 0) {
            /* Delayed: sent later unless the session resumes first [MQTT-3.1.3-9]. */
            delayed = will;
            will_at_ms = b->now_ms + (uint64_t)cl->_v5->will_delay_s * 1000;
            will = NULL;
        }
        if (s->expiry_s == 0) {
            deadline_end(b, s); /* its shared-group messages go to others there */
        } else {
            /* Its unacknowledged shared-group messages go to other members. */
            session_share_redispatch(b, s, wal_sync(b) ? route_share_give_here : route_share_give,
                                     b);
            deadline_arm(b, s, delayed, will_at_ms);
        }
    }
    if (will)
        route_will(b, will); /* on every other end [MQTT-3.1.2-8] */
    client_v5_free(b, cl);
}

bool connect_will_now(struct broker *b, struct client *cl)
{
    RM_ASSERT(b != NULL && cl != NULL);
    /* A client taken over keeps its will, without a session, until its close. */
    RM_ASSERT(!cl->_will || cl->state == CLIENT_CONNECTED || cl->state == CLIENT_CLOSING);
    struct msg *will = cl->_will;
    if (!will)
        return false;
    cl->_will = NULL;
    route_will(b, will);
    return true;
}
