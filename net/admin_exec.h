/*
 * admin_exec.h - what a shard does for an admin socket command: list the
 * sessions homed on it, list one session's subscriptions, disconnect one
 * session's client (MQTT 5.0: DISCONNECT 0x98 Administrative action, then
 * the usual flush and close). The answer goes into the job's text, one
 * line per item (net/admin.h has the line formats).
 *
 * The running shard's thread only.
 */
#ifndef RINGMQ_ADMIN_EXEC_H
#define RINGMQ_ADMIN_EXEC_H

#include "core/xmsg.h"
#include "net/admin_job.h"

struct shard;

/* Run @j on @s (its own sessions) and fill in its rc and text. */
void admin_exec_run(struct shard *s, struct admin_job *j);

/*
 * XMSG_ADMIN @m from shard 0: run its job here and send it back
 * (XMSG_ADMIN_DONE); if it cannot be sent (no memory), it is freed and
 * shard 0 gives up on it after its wait.
 */
void admin_exec_received(struct shard *s, const struct xmsg *m);

#endif
