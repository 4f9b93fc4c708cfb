/*
 * sdnotify.h - tell the service manager how the broker is doing: systemd's
 * sd_notify(3) protocol, spoken directly (one AF_UNIX datagram of
 * "KEY=VALUE\n" lines to the socket named by $NOTIFY_SOCKET; a name
 * starting with '@' is in the abstract namespace). Without $NOTIFY_SOCKET
 * (not started by systemd with Type=notify) every call does nothing.
 *
 * The states ringmq sends: READY=1 once every shard listens (net/main.c),
 * RELOADING=1 then READY=1 around a SIGHUP reload (net/reload.c),
 * STOPPING=1 when a stop signal arrives (net/drain.c), each with a
 * STATUS= line for `systemctl status`.
 *
 * THREADING: sdnotify_init() runs on the start-up thread before any shard
 * thread exists and sdnotify_close() after they are joined; in between
 * sdnotify_send() may be called from any thread (one sendto(2) on a
 * datagram socket, which the kernel keeps whole).
 */
#ifndef RINGMQ_SDNOTIFY_H
#define RINGMQ_SDNOTIFY_H

/*
 * Read $NOTIFY_SOCKET and open the socket to it. Returns 1 when there is a
 * service manager to tell, 0 when the variable is unset, or a negative
 * errno when it is set but unusable (logged as a WARN; the broker runs on,
 * untold, as systemd will then time the start out).
 */
int sdnotify_init(void);

/*
 * Send @state ("READY=1\nSTATUS=..." without a trailing newline; borrowed)
 * in one datagram. Best effort: a failure is logged at DEBUG, never
 * returned, as a broker must not stop serving because its supervisor went.
 */
void sdnotify_send(const char *state);

/* printf-style sdnotify_send(); the state is cut at SDNOTIFY_STATE_MAX bytes. */
void sdnotify_sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define SDNOTIFY_STATE_MAX 512

/* Close the socket (after every shard has stopped). */
void sdnotify_close(void);

#endif
