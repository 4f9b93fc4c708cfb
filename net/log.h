/*
 * log.h - one-line log records, as text or JSON, to stderr, a file or syslog.
 *
 * Each call writes exactly one line with a single write(2) (or one
 * syslog(3) call). Text ([broker] log_format = text):
 *   "2026-11-25T17:30:00.123Z INFO <message> | shard=1 client_id="c1" addr=127.0.0.1:5555"
 * (UTC, ISO-8601 with milliseconds; shard=- on the start-up thread before
 * shard 0 is built; client_id and addr only on lines about a client). JSON
 * (log_format = json): one object per line,
 *   {"ts":"...","level":"info","shard":1,"client_id":"c1","addr":"127.0.0.1:5555","msg":"..."}
 * with null for what does not apply, every string escaped (control bytes as
 * \u00XX, bytes that are not UTF-8 as U+FFFD). Lines longer than
 * LOG_LINE_MAX are cut and end in "..." (JSON stays an object).
 *
 * Destinations ([broker] log_dest): stderr, "file PATH" (opened O_APPEND;
 * log_reopen() opens the path again, for logrotate's rename-then-SIGHUP),
 * or syslog (facility daemon, ident "ringmq"; the level maps to the
 * priority). The level filter and the format may change at run time
 * (reload); the destination is set once at start-up.
 *
 * Lines about a client: LOG_WHO() takes a struct log_who (client id and
 * the connection's fd) that is built only when the level is on, and the
 * address is asked of the socket (getpeername(2)) only then: nothing is
 * formatted or asked on the hot path when the level is off.
 *
 * THREADING: log_open() runs on the start-up thread before any shard
 * thread exists, log_close() after they are joined; any thread may log;
 * log_reopen() (shard 0) swaps the file under the same descriptor number
 * with dup2(2), so a concurrent write goes to the old file or the new one,
 * never to a closed or reused descriptor.
 */
#ifndef RINGMQ_LOG_H
#define RINGMQ_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Longest message, and longest line written (newline included). */
#define LOG_MSG_MAX 1024
#define LOG_LINE_MAX 4096

/*
 * The level filter and the format; use the functions and macros below
 * rather than these. THREADING: stored by the start-up thread and by a
 * reload (shard 0), loaded by every thread; relaxed, as they order nothing
 * else (a record logged while a reload changes them may go either way).
 */
extern _Atomic int log__level;
extern _Atomic int log__format;

/* Set the most verbose level that is written. Any thread. */
void log_set_level(enum config_log_level level);

/* Set the format of the records (text or JSON). Any thread. */
void log_set_format(enum config_log_format format);

/*
 * Send the records to @dest (a [broker] log_dest value, checked by the
 * configuration: "stderr", "syslog" or "file PATH"). Start-up thread, before
 * any other thread logs. Returns 0, or a negative errno (opening the file)
 * with a message in @err; the records then still go to stderr.
 */
int log_open(const char *dest, char *err, size_t err_len);

/*
 * Open the file destination's path again (after logrotate renamed it) and
 * put the new file under the log's descriptor. Does nothing for stderr and
 * syslog. A failure is logged (to the old file) and keeps the old one.
 * Any thread.
 */
void log_reopen(void);

/* Close the file or syslog (after every other thread has stopped). */
void log_close(void);

/* The shard the calling thread runs (shown on its lines); -1: none (start-up). */
void log_set_shard(int shard);

/* True when a record at @level would be written. */
static inline bool log_enabled(enum config_log_level level)
{
    return (int)level <= atomic_load_explicit(&log__level, memory_order_relaxed);
}

/* Who a line is about: a client's id (not NUL-terminated; NULL: none yet) and socket. */
struct log_who {
    const uint8_t *id;
    size_t id_len;
    int fd; /* its address is asked of this socket; -1: none */
};

/*
 * Write one record at @level (no filtering: the macros filter first, so
 * arguments of suppressed records are never formatted). @who may be NULL
 * (a line not about a client). No trailing newline in @fmt. Never fails
 * visibly: a short or failed write is dropped.
 */
void log_msg(enum config_log_level level, const struct log_who *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(level, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(level)) {                                                                  \
            log_msg((level), NULL, __VA_ARGS__);                                                   \
        }                                                                                          \
    } while (0)

/* A line about a client: @who (a struct log_who expression) is evaluated only when on. */
#define LOG_WHO(level, who, ...)                                                                   \
    do {                                                                                           \
        if (log_enabled(level)) {                                                                  \
            const struct log_who log_who_ = (who);                                                 \
            log_msg((level), &log_who_, __VA_ARGS__);                                              \
        }                                                                                          \
    } while (0)

#define LOG_ERROR(...) LOG_AT(CONFIG_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(CONFIG_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(CONFIG_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(CONFIG_LOG_DEBUG, __VA_ARGS__)

#endif
