/*
 * config_check.h - cross-key validation of a parsed configuration.
 *
 * Per-key ranges are enforced while parsing (config_keys); this file holds
 * the rules that relate several keys or sections. It reads a finished
 * struct config__draft and reports through config_diag; the loader (config.c)
 * is its only caller. Start-up thread only.
 */
#ifndef RINGMQ_CONFIG_CHECK_H
#define RINGMQ_CONFIG_CHECK_H

#include "config/config_diag.h"
#include "config/config_keys.h"

/*
 * Check @d->cfg as a whole: output_bytes_max >= packet_bytes_max, at least
 * one listener, no two listeners on the same address and port (port 0, an
 * ephemeral port, never clashes); per listener, ws_path only with
 * websockets and well formed, TLS keys only with certfile, certificate, key
 * and CA files readable PEM (opened here), require_certificate with a CA,
 * use_identity_as_username with require_certificate. Returns 0, or -1 after
 * config_diag__fail(@diag), naming the line that set the offending key (or
 * the listener's header). Borrows @d and @diag until return; @diag must not
 * have failed yet.
 */
int config_check__run(const struct config__draft *d, struct config_diag *diag);

#endif
