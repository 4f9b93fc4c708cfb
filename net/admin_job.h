/*
 * admin_job.h - one admin socket command on its way to a shard and back
 * (XMSG_ADMIN / XMSG_ADMIN_DONE): what to do, and the answer's text.
 *
 * THREADING: a job belongs to the shard that holds the message carrying
 * it; shard 0 allocates it, the shard that runs it fills in the answer,
 * shard 0 frees it (or xshard_release(), if it never arrived).
 */
#ifndef RINGMQ_ADMIN_JOB_H
#define RINGMQ_ADMIN_JOB_H

#include <stdint.h>
#include <stdlib.h>

#define ADMIN_ID_MAX 65535u /* a client id, as stored */

enum admin_cmd {
    ADMIN_CLIENTS = 1, /* list the sessions homed on the shard */
    ADMIN_SUBS,        /* list the subscriptions of session @id */
    ADMIN_KICK,        /* disconnect the client of session @id */
};

struct admin_job {
    uint32_t cmd;    /* enum admin_cmd */
    uint32_t serial; /* the admin connection's command it answers (net/admin.c) */
    int rc;          /* 0, or -ENOENT (no such session / not connected), -ENOMEM */
    uint32_t id_len;
    uint8_t *id;    /* malloc'd; NULL for ADMIN_CLIENTS */
    char *text;     /* the answer's lines (malloc'd, '\n'-terminated); NULL: none */
    size_t text_len;
};

/* Free @j and what it holds (NULL: nothing). */
static inline void admin_job_free(struct admin_job *j)
{
    if (j != NULL) {
        free(j->id);
        free(j->text);
        free(j);
    }
}

#endif
