/*
 * admin_proto.h - the admin socket's line protocol (net/admin.h lists the
 * commands): what a request line asks for, and the answers shard 0 writes
 * itself (help, stats, a job's answer, the errors). net/admin owns the
 * connections that carry the lines; net/admin_exec runs a job on a shard.
 *
 * Shard 0's thread only (stats read the counter board, never write it).
 */
#ifndef RINGMQ_ADMIN_PROTO_H
#define RINGMQ_ADMIN_PROTO_H

#include <stdint.h>

#include "net/admin_job.h"

struct board;
struct text;

enum admin_proto_kind {
    ADMIN_PROTO_BAD = 0, /* not a command, or a wrong argument: the ERR line is written */
    ADMIN_PROTO_HELP,
    ADMIN_PROTO_STATS,
    ADMIN_PROTO_RELOAD,
    ADMIN_PROTO_JOB, /* a job for one shard, or (ADMIN_CLIENTS) for every shard */
};

/*
 * What the request @line (NUL-terminated; changed) asks for. For
 * ADMIN_PROTO_JOB: *@cmd (enum admin_cmd) and *@arg, the escaped client
 * id (NULL for ADMIN_CLIENTS). For ADMIN_PROTO_BAD the ERR line is
 * appended to @out.
 */
enum admin_proto_kind admin_proto_parse(char *line, uint32_t *cmd, const char **arg,
                                        struct text *out);

/* Append the command list and OK to @out. */
void admin_proto_help(struct text *out);

/* Append the NAME VALUE counters, summed over @board's shards, and OK to @out. */
void admin_proto_stats(const struct board *board, struct text *out);

/*
 * A new job of @cmd into *@out; for ADMIN_SUBS and ADMIN_KICK with the
 * client id @arg decodes (%XX escapes). Returns 0, -ENOMEM, or -EINVAL
 * (a bad escape or an empty id; nothing is allocated then).
 */
int admin_proto_job_new(uint32_t cmd, const char *arg, struct admin_job **out);

/*
 * Append job @j's answer to @out and free @j: its lines, then ERR or OK
 * (no OK for ADMIN_CLIENTS: one follows once every shard has answered).
 */
void admin_proto_job_answer(struct text *out, struct admin_job *j);

#endif
