/*
 * log.h - one-line log records on stderr.
 *
 * Each call writes exactly one line with a single write(2):
 *   "2026-11-25T17:30:00.123Z INFO <message>\n"
 * (UTC, ISO-8601 with milliseconds). Lines longer than LOG_LINE_MAX are cut
 * and end in "...". The level filter is a process-wide value set at
 * start-up and by a reload (log_set_level()); any thread may log
 * (log_msg() touches only its stack and fd 2).
 */
#ifndef RINGMQ_LOG_H
#define RINGMQ_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config/config.h"

/* Longest line written, newline included. */
#define LOG_LINE_MAX 1024

/*
 * The level filter; use the macros below rather than this. THREADING:
 * stored by the start-up thread and by a reload (shard 0), loaded by every
 * thread; relaxed, as it orders nothing else (a record logged while a
 * reload changes it may go either way).
 */
extern _Atomic int log__level;

/* Set the most verbose level that is written. Any thread. */
void log_set_level(enum config_log_level level);

/* True when a record at @level would be written. */
static inline bool log_enabled(enum config_log_level level)
{
    return (int)level <= atomic_load_explicit(&log__level, memory_order_relaxed);
}

/*
 * Write one record at @level (no filtering: the macros filter first, so
 * arguments of suppressed records are never formatted). No trailing newline
 * in @fmt. Never fails visibly: a short or failed write is dropped.
 */
void log_msg(enum config_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define LOG_AT(level, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(level)) {                                                                  \
            log_msg((level), __VA_ARGS__);                                                         \
        }                                                                                          \
    } while (0)

#define LOG_ERROR(...) LOG_AT(CONFIG_LOG_ERROR, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(CONFIG_LOG_WARN, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(CONFIG_LOG_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(CONFIG_LOG_DEBUG, __VA_ARGS__)

#endif
