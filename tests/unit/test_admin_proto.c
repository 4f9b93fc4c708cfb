/*
 * test_admin_proto.c - net/admin_proto: what an admin socket request line
 * asks for, client id escapes, and how a job's result reads. (The socket
 * itself, with real clients, is tests/ops/admin_test.py.)
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/admin_proto.h"
#include "net/text.h"

static struct text out;

static void fini(void)
{
    text_free(&out);
}

TestSuite(admin_proto, .fini = fini);

/* Parse a copy of @line; its kind, with *@cmd and the argument copied into @arg. */
static enum admin_proto_kind parse(const char *line, uint32_t *cmd, char *arg, size_t arg_size)
{
    char buf[128];
    const char *a;
    enum admin_proto_kind k;

    cr_assert_lt(strlen(line), sizeof(buf));
    memcpy(buf, line, strlen(line) + 1);
    k = admin_proto_parse(buf, cmd, &a, &out);
    arg[0] = '\0';
    if (a != NULL) {
        cr_assert_lt(strlen(a), arg_size);
        memcpy(arg, a, strlen(a) + 1);
    }
    return k;
}

Test(admin_proto, commands_and_their_arguments)
{
    uint32_t cmd;
    char arg[64];

    cr_assert_eq(parse("help", &cmd, arg, sizeof(arg)), ADMIN_PROTO_HELP);
    cr_assert_eq(parse("stats", &cmd, arg, sizeof(arg)), ADMIN_PROTO_STATS);
    cr_assert_eq(parse("reload", &cmd, arg, sizeof(arg)), ADMIN_PROTO_RELOAD);
    cr_assert_eq(parse("clients", &cmd, arg, sizeof(arg)), ADMIN_PROTO_JOB);
    cr_assert_eq(cmd, ADMIN_CLIENTS);
    cr_assert_eq(parse("subscriptions a%20b", &cmd, arg, sizeof(arg)), ADMIN_PROTO_JOB);
    cr_assert_eq(cmd, ADMIN_SUBS);
    cr_assert_str_eq(arg, "a%20b");
    cr_assert_eq(parse("disconnect x", &cmd, arg, sizeof(arg)), ADMIN_PROTO_JOB);
    cr_assert_eq(cmd, ADMIN_KICK);
    cr_assert_eq(out.len, 0, "nothing written for good requests");
}

Test(admin_proto, bad_requests_are_answered_err)
{
    uint32_t cmd;
    char arg[64];

    cr_assert_eq(parse("clients x", &cmd, arg, sizeof(arg)), ADMIN_PROTO_BAD);
    cr_assert_str_eq(out.p, "ERR clients takes no argument\n");
    text_free(&out);
    cr_assert_eq(parse("disconnect", &cmd, arg, sizeof(arg)), ADMIN_PROTO_BAD);
    cr_assert_str_eq(out.p, "ERR usage: COMMAND CLIENT_ID\n");
    text_free(&out);
    cr_assert_eq(parse("kill\x01me", &cmd, arg, sizeof(arg)), ADMIN_PROTO_BAD);
    cr_assert_str_eq(out.p, "ERR unknown command: kill%01me (try help)\n");
}

Test(admin_proto, client_ids_are_unescaped)
{
    struct admin_job *j;

    cr_assert_eq(admin_proto_job_new(ADMIN_KICK, "a%20b%25", &j), 0);
    cr_assert_eq(j->cmd, ADMIN_KICK);
    cr_assert_eq(j->id_len, 4);
    cr_assert_eq(memcmp(j->id, "a b%", 4), 0);
    admin_job_free(j);
    cr_assert_eq(admin_proto_job_new(ADMIN_SUBS, "bad%2", &j), -EINVAL);
    cr_assert_null(j);
    cr_assert_eq(admin_proto_job_new(ADMIN_SUBS, "bad%zz", &j), -EINVAL);
    cr_assert_eq(admin_proto_job_new(ADMIN_SUBS, "", &j), -EINVAL);
    cr_assert_eq(admin_proto_job_new(ADMIN_CLIENTS, NULL, &j), 0);
    cr_assert_null(j->id);
    admin_job_free(j);
}

Test(admin_proto, a_jobs_answer_ends_with_its_status)
{
    struct admin_job *j;

    cr_assert_eq(admin_proto_job_new(ADMIN_SUBS, "c", &j), 0);
    j->text = strdup("t/# 1\n");
    j->text_len = 6;
    admin_proto_job_answer(&out, j);
    cr_assert_str_eq(out.p, "t/# 1\nOK\n");
    text_free(&out);
    cr_assert_eq(admin_proto_job_new(ADMIN_KICK, "c", &j), 0);
    j->rc = -ENOENT;
    admin_proto_job_answer(&out, j);
    cr_assert_str_eq(out.p, "ERR no such client connected\n");
    text_free(&out);
    cr_assert_eq(admin_proto_job_new(ADMIN_CLIENTS, NULL, &j), 0);
    j->text = strdup("c - - 0 - 0 0 1\n");
    j->text_len = strlen(j->text);
    admin_proto_job_answer(&out, j);
    cr_assert_str_eq(out.p, "c - - 0 - 0 0 1\n", "a clients part has no status of its own");
}
