/*
 * log_syslog.c - the syslog(3) destination of net/log (see log_syslog.h).
 * Any thread.
 */
#include "net/log_syslog.h"

#include <syslog.h>

void log_syslog_open(void)
{
    openlog("ringmq", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_syslog_write(enum config_log_level level, const char *line, size_t len)
{
    static const int prio[] = {
        [CONFIG_LOG_ERROR] = LOG_ERR,
        [CONFIG_LOG_WARN] = LOG_WARNING,
        [CONFIG_LOG_INFO] = LOG_INFO,
        [CONFIG_LOG_DEBUG] = LOG_DEBUG,
    };

    syslog((unsigned)level < sizeof(prio) / sizeof(prio[0]) ? prio[level] : LOG_ERR, "%.*s",
           (int)len, line);
}

void log_syslog_close(void)
{
    closelog();
}
