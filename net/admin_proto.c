/*
 * admin_proto.c - the admin socket's line protocol (see admin_proto.h).
 *
 * Shard 0's thread only.
 */
#include "net/admin_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/broker_stats.h"
#include "core/rm_assert.h"
#include "net/board.h"
#include "net/text.h"

static const char help_text[] =
    "clients                 ID USER ADDRESS SHARD PROTOCOL QUEUED INFLIGHT SUBS per session\n"
    "subscriptions ID        FILTER QOS per subscription of session ID\n"
    "disconnect ID           disconnect ID's client (MQTT 5.0: reason 0x98)\n"
    "stats                   NAME VALUE per counter, summed over shards\n"
    "reload                  reload the configuration (as SIGHUP)\n"
    "help                    this list\n"
    "IDs and user names are escaped: bytes outside '!'..'~', and '%', as %XX\n";

enum admin_proto_kind admin_proto_parse(char *line, uint32_t *cmd, const char **arg,
                                        struct text *out)
{
    char *space = strchr(line, ' ');

    RM_ASSERT(line != NULL && cmd != NULL && arg != NULL && out != NULL);
    *cmd = 0;
    *arg = NULL;
    if (space != NULL) {
        *space = '\0';
        *arg = space + 1;
    }
    if (strcmp(line, "help") == 0) {
        return ADMIN_PROTO_HELP;
    }
    if (strcmp(line, "stats") == 0) {
        return ADMIN_PROTO_STATS;
    }
    if (strcmp(line, "reload") == 0) {
        return ADMIN_PROTO_RELOAD;
    }
    if (strcmp(line, "clients") == 0) {
        *cmd = ADMIN_CLIENTS;
    } else if (strcmp(line, "subscriptions") == 0) {
        *cmd = ADMIN_SUBS;
    } else if (strcmp(line, "disconnect") == 0) {
        *cmd = ADMIN_KICK;
    } else {
        text_printf(out, "ERR unknown command: ");
        text_escaped(out, line, strlen(line));
        text_printf(out, " (try help)\n");
        return ADMIN_PROTO_BAD;
    }
    if ((*cmd == ADMIN_CLIENTS) != (*arg == NULL)) {
        text_printf(out, "ERR %s\n", *cmd == ADMIN_CLIENTS ? "clients takes no argument"
                                                           : "usage: COMMAND CLIENT_ID");
        return ADMIN_PROTO_BAD;
    }
    return ADMIN_PROTO_JOB;
}

void admin_proto_help(struct text *out)
{
    RM_ASSERT(out != NULL);
    text_printf(out, "%sOK\n", help_text);
}

void admin_proto_stats(const struct board *board, struct text *out)
{
    struct board_snap s;
    const struct broker_stats *b = &s.broker;
    uint64_t busy;

    RM_ASSERT(board != NULL && out != NULL);
    board_sum(board, &s);
    busy = s.shard.busy_ns + s.shard.wait_ns;
    text_printf(out,
                "clients_connected %u\nsessions %u\nconnections_accepted %llu\n"
                "connections_refused %llu\nmessages_received %llu\nmessages_sent %llu\n"
                "messages_dropped %llu\nmessages_queued %llu\nmessages_inflight %llu\n"
                "subscriptions %llu\nretained_messages %llu\nbytes_received %llu\n"
                "bytes_sent %llu\nauth_failures %llu\ntls_handshakes_failed %llu\n"
                "shard_link_waiting %llu\nloop_busy_percent %.1f\nOK\n",
                b->clients, b->sessions, (unsigned long long)s.shard.conns_accepted,
                (unsigned long long)s.shard.conns_refused, (unsigned long long)b->msgs_in,
                (unsigned long long)b->msgs_out,
                (unsigned long long)(b->msgs_dropped + b->queue_full + b->msgs_shed_memory +
                                     s.xshard.qos0_shed),
                (unsigned long long)b->queued, (unsigned long long)b->inflight,
                (unsigned long long)s.subscriptions, (unsigned long long)s.retained,
                (unsigned long long)s.shard.bytes_in, (unsigned long long)s.shard.bytes_out,
                (unsigned long long)(b->logins_failed + b->logins_refused),
                (unsigned long long)s.xport.tls_failed, (unsigned long long)s.xshard_waiting,
                busy > 0 ? 100.0 * (double)s.shard.busy_ns / (double)busy : 0.0);
}

/* Decode the escaped @arg into @j's id. -EINVAL: bad escape or empty. */
static int decode_id(struct admin_job *j, const char *arg)
{
    size_t n = strlen(arg);
    size_t k = 0;

    j->id = malloc(n + 1);
    if (j->id == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;

        if (arg[i] != '%') {
            j->id[k++] = (uint8_t)arg[i];
        } else if (i + 2 < n + 1 && sscanf(arg + i + 1, "%2x", &v) == 1 && arg[i + 1] != '\0' &&
                   arg[i + 2] != '\0') {
            j->id[k++] = (uint8_t)v;
            i += 2;
        } else {
            return -EINVAL;
        }
    }
    j->id_len = (uint32_t)k;
    return k > 0 ? 0 : -EINVAL;
}

int admin_proto_job_new(uint32_t cmd, const char *arg, struct admin_job **out)
{
    struct admin_job *j;
    int rc = 0;

    RM_ASSERT(out != NULL && cmd >= ADMIN_CLIENTS && cmd <= ADMIN_KICK);
    RM_ASSERT((cmd == ADMIN_CLIENTS) == (arg == NULL));
    *out = NULL;
    j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return -ENOMEM;
    }
    j->cmd = cmd;
    if (arg != NULL) {
        rc = decode_id(j, arg);
    }
    if (rc < 0) {
        admin_job_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

void admin_proto_job_answer(struct text *out, struct admin_job *j)
{
    RM_ASSERT(out != NULL && j != NULL);
    if (j->text != NULL) {
        text_printf(out, "%.*s", (int)j->text_len, j->text);
    }
    if (j->rc == -ENOMEM) {
        text_printf(out, "ERR out of memory on a shard\n");
    } else if (j->rc == -ENOENT) {
        text_printf(out, "ERR %s\n",
                    j->cmd == ADMIN_KICK ? "no such client connected" : "no such session");
    } else if (j->cmd != ADMIN_CLIENTS) {
        text_printf(out, "OK\n");
    }
    admin_job_free(j);
}
