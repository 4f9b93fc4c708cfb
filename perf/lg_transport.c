/*
 * lg_transport.c - the list of transports the load generator speaks; see
 * lg_transport.h.
 *
 * Owns nothing; read-only tables. Any thread may call it.
 */
#include "perf/lg_transport.h"

#include <string.h>

#include "core/rm_assert.h"
#include "perf/lg_tcp.h"
#include "perf/lg_tls.h"
#include "perf/lg_ws.h"

const struct lg_transport *lg_transport_find(const char *name)
{
    static const struct lg_transport *const all[] = {
        &lg_tcp_transport,
        &lg_tls_transport,
        &lg_ws_transport,
        &lg_ws_tls_transport,
    };
    size_t i;

    RM_ASSERT(name != NULL);
    for (i = 0; i < RM_ARRAY_LEN(all); i++) {
        RM_ASSERT(all[i]->open != NULL && all[i]->recv != NULL && all[i]->send != NULL);
        if (strcmp(all[i]->name, name) == 0) {
            return all[i];
        }
    }
    return NULL;
}
