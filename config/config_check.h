/*
 * config_check.h - cross-key validation of a parsed configuration.
 *
 * Per-key ranges are enforced while parsing (config.c); this file holds the
 * rules that relate several keys or sections. Start-up thread only.
 */
#ifndef RINGMQ_CONFIG_CHECK_H
#define RINGMQ_CONFIG_CHECK_H

#include "config/config_ini.h"

/*
 * Check ld->cfg as a whole: output_bytes_max >= packet_bytes_max, at least
 * one listener, no two listeners on the same address and port (port 0, an
 * ephemeral port, never clashes); per listener, ws_path only with
 * websockets and well formed, TLS keys only with certfile, certificate, key
 * and CA files readable PEM (opened here), require_certificate with a CA,
 * use_identity_as_username with require_certificate. Returns 0, or -1 after
 * config__fail(), naming the line that set the offending key (or the
 * listener's header).
 */
int config__check(struct config__load *ld);

#endif
