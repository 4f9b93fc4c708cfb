/*
 * prom.h - the Prometheus text exposition (format 0.0.4) of the counter
 * board: every shard's counters, labelled by shard (and listener,
 * protocol, qos, reason, result where they split), with HELP and TYPE
 * lines, in base units (seconds, bytes), counters named ..._total.
 *
 * Reads the board (any thread may); the text is the caller's.
 */
#ifndef RINGMQ_PROM_H
#define RINGMQ_PROM_H

#include <stddef.h>

#include "config/config.h"
#include "net/board.h"
#include "net/text.h"

/*
 * Render every shard's snapshot on @b into @t (zeroed before), with the
 * listener names of @cfg (borrowed) and the broker's @version. Returns 0
 * or -ENOMEM (free @t with text_free() either way).
 */
int prom_render(const struct board *b, const struct config *cfg, const char *version,
                struct text *t);

#endif
