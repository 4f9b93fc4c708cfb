/*
 * obs.h - a shard's observability duties in its loop: time the loop, put
 * the shard's counters on the board (net/board.h) now and then, and on
 * shard 0 run the $SYS topics (net/sys_topics.h), the /metrics server
 * (net/metrics_http.h) and the admin socket (net/admin.h).
 *
 * Every shard publishes its snapshot at most every OBS_PUBLISH_MS while it
 * works, and before each wait without a timeout (so an idle shard's last
 * counters are on the board too). Shard 0 publishes the $SYS topics every
 * [broker] sys_interval seconds, from the board's sum, through its broker,
 * before the iteration's output is drained.
 *
 * Each shard's own thread; obs_new()/obs_free() on the start-up thread.
 */
#ifndef RINGMQ_OBS_H
#define RINGMQ_OBS_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"

#define OBS_PUBLISH_MS 250u

struct admin_job;
struct board;
struct obs;
struct shard;

/*
 * Shard 0's services for @cfg (borrowed) over @board (borrowed): $SYS
 * every cfg->sys_interval_s seconds (0: none), /metrics when
 * cfg->metrics_bind is set, the admin socket when cfg->admin_socket is
 * (their sockets are bound here, before any shard thread exists). @version
 * is static. NULL after logging why at ERROR (a socket could not be bound,
 * or no memory).
 */
struct obs *obs_new(const struct config *cfg, struct board *board, const char *version,
                    uint64_t now_ms);

/* Free @o (NULL: nothing) once its shard's ring is gone. */
void obs_free(struct obs *o);

/* The monotonic clock in nanoseconds, for obs_waited(). */
uint64_t obs_clock_ns(void);

/* The ring wait that began at @began_ns just ended: account busy and waiting time. */
void obs_waited(struct shard *s, uint64_t began_ns);

/* Each iteration, after the completions and before the output is drained. */
void obs_tick(struct shard *s);

/* Before a wait without a timeout: publish what the board does not have yet. */
void obs_idle(struct shard *s);

/* Whether the loop must wake every tick for obs (shard 0 with $SYS on). */
bool obs_wants_tick(const struct shard *s);

/* Start shard 0's services on its ring (loop start). 0 or -EBUSY. */
int obs_start(struct shard *s);

/* The shard stops: stop the services (their last completions still come). */
void obs_stop(struct shard *s);

/* XMSG_ADMIN_DONE on shard 0: job @j (owned from here) came back answered. */
void obs_admin_job_done(struct shard *s, struct admin_job *j);

/* A URING_OP_OBS completion on @s for object @obj. */
void obs_done(struct shard *s, void *obj, const struct io_uring_cqe *cqe);

#endif
