/*
 * admin_exec.c - an admin socket command run on one shard (see admin_exec.h).
 *
 * The running shard's thread only.
 */
#include "net/admin_exec.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "core/broker.h"
#include "core/mqtt_codec.h"
#include "core/rm_assert.h"
#include "net/conn.h"
#include "net/shard_types.h"
#include "net/text.h"
#include "net/xshard.h"

struct walk {
    struct shard *s;
    struct text *t;
};

static const char *proto_name(uint8_t version)
{
    return version == 3 ? "3.1" : version == 4 ? "3.1.1" : version == 5 ? "5.0" : "-";
}

/* "ADDR:PORT" of @fd's peer into @buf, or "-". */
static void peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN];

    snprintf(buf, len, "-");
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl) < 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(a->sin6_port));
    }
}

/* One line: ID USER ADDRESS SHARD PROTOCOL QUEUED INFLIGHT SUBS. */
static void session_line(void *ctx, const struct broker_session_info *si)
{
    struct walk *w = ctx;
    char addr[INET6_ADDRSTRLEN + 8];
    uint8_t version = 0;

    if (si->client != NULL) {
        const struct conn *c = conn_from_client((struct client *)si->client);

        peer_name(c->fd, addr, sizeof(addr));
        version = si->client->version;
    } else {
        snprintf(addr, sizeof(addr), "-");
    }
    text_escaped(w->t, si->id, si->id_len);
    text_printf(w->t, " ");
    if (si->user != NULL) {
        text_escaped(w->t, si->user, si->user_len);
    } else {
        text_printf(w->t, "-");
    }
    text_printf(w->t, " %s %u %s %u %u %u\n", addr, w->s->id, proto_name(version), si->queued,
                si->inflight, si->subs);
}

/* One line: FILTER QOS. */
static void sub_line(void *ctx, const uint8_t *filter, size_t len, uint8_t qos)
{
    struct walk *w = ctx;

    text_escaped(w->t, filter, len);
    text_printf(w->t, " %u\n", qos);
}

void admin_exec_run(struct shard *s, struct admin_job *j)
{
    struct text t = {0};
    struct walk w = {s, &t};
    struct client *cl;

    RM_ASSERT(s != NULL && j != NULL);
    RM_ASSERT(j->text == NULL);
    j->rc = 0;
    switch (j->cmd) {
    case ADMIN_CLIENTS:
        broker_sessions_each(s->broker, session_line, &w);
        break;
    case ADMIN_SUBS:
        j->rc = broker_session_subs(s->broker, j->id, j->id_len, sub_line, &w);
        break;
    case ADMIN_KICK:
        cl = broker_session_client(s->broker, j->id, j->id_len);
        if (cl == NULL || cl->state != CLIENT_CONNECTED) {
            j->rc = -ENOENT;
            break;
        }
        /* Marks it closing: the dirty drain of this iteration flushes and closes it. */
        broker_client_kick(s->broker, cl, -MQTT_RC_ADMIN_ACTION);
        text_printf(&t, "disconnected on shard %u\n", s->id);
        break;
    default:
        RM_ASSERT(!"unknown admin command");
    }
    if (t.err != 0) {
        j->rc = -ENOMEM;
        text_free(&t);
    }
    j->text = t.p;
    j->text_len = t.len;
}

void admin_exec_received(struct shard *s, const struct xmsg *m)
{
    struct admin_job *j = m->payload.ptr[0];
    struct xmsg back = {.kind = XMSG_ADMIN_DONE};

    RM_ASSERT(m->kind == XMSG_ADMIN && j != NULL);
    RM_ASSERT(s->id != 0);
    admin_exec_run(s, j);
    back.payload.ptr[0] = j;
    if (xshard_send(s->xshard, s->id, 0, &back) < 0) {
        admin_job_free(j);
    }
}
