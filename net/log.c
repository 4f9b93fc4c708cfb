/*
 * log.c - one-line log records on stderr (see log.h).
 *
 * The line is built on the stack and written with one write(2), so records
 * from several threads never interleave inside a line (writes to a pipe or
 * terminal of at most PIPE_BUF bytes are atomic; LOG_LINE_MAX is 1024).
 * Any thread; the level is an atomic (log.h).
 */
#include "net/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

_Atomic int log__level = CONFIG_LOG_INFO;

static const char *const level_names[] = {
    [CONFIG_LOG_ERROR] = "ERROR",
    [CONFIG_LOG_WARN] = "WARN",
    [CONFIG_LOG_INFO] = "INFO",
    [CONFIG_LOG_DEBUG] = "DEBUG",
};

void log_set_level(enum config_log_level level)
{
    atomic_store_explicit(&log__level, (int)level, memory_order_relaxed);
}

void log_msg(enum config_log_level level, const char *fmt, ...)
{
    char line[LOG_LINE_MAX];
    struct timespec ts;
    struct tm tm;
    const char *name = "?";
    size_t len = 0;
    va_list ap;
    int n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if ((unsigned)level < sizeof(level_names) / sizeof(level_names[0])) {
        name = level_names[level];
    }
    n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                 name);
    if (n > 0) {
        len = (size_t)n;
    }

    va_start(ap, fmt);
    n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
    va_end(ap);
    if (n > 0) {
        if ((size_t)n >= sizeof(line) - len - 1) {
            /* Cut: vsnprintf wrote sizeof - len - 2 characters and a NUL. */
            len = sizeof(line) - 2;
            memcpy(line + len - 3, "...", 3);
        } else {
            len += (size_t)n;
        }
    }
    line[len++] = '\n';

    /* One write per line; a failed or short write to stderr is dropped. */
    while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR) {
    }
}
