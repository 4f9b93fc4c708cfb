/*
 * log_syslog.h - the syslog(3) destination of net/log: kept apart because
 * <syslog.h> defines LOG_INFO and LOG_DEBUG, which are net/log.h's macros.
 * Any thread (glibc's syslog() takes its own lock); open and close on the
 * start-up thread.
 */
#ifndef RINGMQ_LOG_SYSLOG_H
#define RINGMQ_LOG_SYSLOG_H

#include <stddef.h>

#include "config/config_types.h"

/* openlog(3): ident "ringmq", the pid, facility daemon, connected now. */
void log_syslog_open(void);

/* One record at @level: the @len bytes of @line (borrowed). */
void log_syslog_write(enum config_log_level level, const char *line, size_t len);

void log_syslog_close(void);

#endif
