/*
 * admin.h - the admin socket: a local AF_UNIX stream socket ([admin]
 * socket = PATH, mode 0600 or 0660: access is by file permissions) served
 * on shard 0's ring, with a line protocol; tools/ringmq-ctl speaks it.
 *
 * A request is one line (at most ADMIN_LINE_MAX bytes, '\n'-terminated; a
 * trailing '\r' is ignored). The answer is zero or more data lines, then
 * one status line: "OK" (perhaps followed by a space and text) or
 * "ERR message". Requests on one connection are answered in order.
 * Client ids and user names in requests and answers are escaped: every
 * byte outside '!'..'~', and '%', as %XX (so a line always splits on
 * spaces, and a virtual host's stored ids round-trip).
 *
 *   help                   the commands
 *   clients                one line per session, from every shard:
 *                          ID USER ADDRESS SHARD PROTOCOL QUEUED INFLIGHT SUBS
 *                          (USER "-": anonymous; ADDRESS, PROTOCOL "-": offline)
 *   subscriptions ID       one line per subscription of session ID: FILTER QOS
 *   disconnect ID          disconnect ID's client on its home shard (MQTT 5.0:
 *                          DISCONNECT 0x98 Administrative action); ERR if offline
 *   stats                  NAME VALUE lines: the counters summed over shards
 *   reload                 reload the configuration, as SIGHUP does
 *
 * Commands that need other shards send them the job over the cross-shard
 * rings (XMSG_ADMIN, answered XMSG_ADMIN_DONE; net/admin_exec); an answer
 * missing after ADMIN_REPLY_WAIT_MS ends the command with an ERR line.
 *
 * Shard 0's thread only (admin_open() on the start-up thread, before the
 * shard threads exist: it sets the process umask around bind(2)).
 */
#ifndef RINGMQ_ADMIN_H
#define RINGMQ_ADMIN_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/admin_job.h"

#define ADMIN_LINE_MAX 4096u
#define ADMIN_CONNS_MAX 16u
#define ADMIN_IDLE_MS 60000u
#define ADMIN_REPLY_WAIT_MS 5000u
#define ADMIN_BACKLOG 16

struct admin;
struct board;
struct shard;

/*
 * Listen on the AF_UNIX socket @path with permissions @mode (0600 or
 * 0660). A stale socket file (nothing accepts on it) is replaced; one
 * another process serves, or a file that is not a socket, is an error.
 * @board is borrowed (for stats). NULL after logging why at ERROR.
 */
struct admin *admin_open(const char *path, uint32_t mode, const struct board *board);

/* Start accepting on shard 0's ring. 0 or -EBUSY. */
int admin_start(struct admin *a, struct shard *s);

/* Stop: cancel the accept and close every connection (their completions still come). */
void admin_stop(struct admin *a, struct shard *s);

/* A URING_OP_OBS completion for one of @a's objects (@obj). */
void admin_done(struct admin *a, struct shard *s, void *obj, const struct io_uring_cqe *cqe);

/* XMSG_ADMIN_DONE: another shard answered job @j (owned from here). */
void admin_job_done(struct admin *a, struct shard *s, struct admin_job *j);

/* Once per iteration: end commands whose answers are overdue. */
void admin_tick(struct admin *a, struct shard *s);

/* Whether a command waits for other shards (the loop must tick). */
bool admin_waiting(const struct admin *a);

/* Free @a (NULL: nothing) after the ring is gone; removes the socket file. */
void admin_free(struct admin *a);

#endif
