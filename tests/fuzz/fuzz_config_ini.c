/*
 * fuzz_config_ini.c - libFuzzer target: any bytes as a config file.
 *
 * Loads the input from memory through the same path as config_load() (our
 * line reader, inih, the key table, the cross-key checks). It must never
 * crash, hang or leak; a failed load must leave a "NAME:" message and an
 * untouched struct, a successful one a config that passes its own rules.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/config.h"
#include "core/rm_assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char name[] = "fuzz.ini";
    struct config cfg;
    struct config before;
    char err[CONFIG_ERR_MAX];
    uint32_t i;

    memset(&cfg, 0x5a, sizeof(cfg));
    memcpy(&before, &cfg, sizeof(cfg));
    if (config__load_buffer(&cfg, name, data, size, err, sizeof(err)) != 0) {
        RM_ASSERT(strncmp(err, name, sizeof(name) - 1) == 0);
        RM_ASSERT(memcmp(&cfg, &before, sizeof(cfg)) == 0);
        return 0;
    }
    RM_ASSERT(cfg.listener_count >= 1 && cfg.listener_count <= CONFIG_LISTENERS_MAX);
    RM_ASSERT(cfg.limits.output_bytes_max >= cfg.limits.packet_bytes_max);
    RM_ASSERT(cfg.log_level >= CONFIG_LOG_ERROR && cfg.log_level <= CONFIG_LOG_DEBUG);
    for (i = 0; i < cfg.listener_count; i++) {
        RM_ASSERT(memchr(cfg.listeners[i].name, '\0', CONFIG_NAME_MAX) != NULL);
        RM_ASSERT(cfg.listeners[i].name[0] != '\0');
        RM_ASSERT(memchr(cfg.listeners[i].bind, '\0', CONFIG_NAME_MAX) != NULL);
    }
    config_free(&cfg); /* the [acl] rules it owns */
    return 0;
}
