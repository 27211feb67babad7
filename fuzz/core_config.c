/*
 * core_config.c - libFuzzer driver for the config-file parser
 * (config_parse_text): arbitrary bytes as a config file against a table
 * with every setting type.  It must answer 0 or an error, never crash,
 * and leak nothing.
 */
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

typedef struct values {
    char *name;
    int64_t count;
    bool flag;
    double rate;
} values;

static const config_def defs[] = {
    {"name", CONFIG_STR, "x", 0, 0, "", offsetof(values, name)},
    {"count", CONFIG_INT, "1", 0, 100, "", offsetof(values, count)},
    {"flag", CONFIG_BOOL, "false", 0, 0, "", offsetof(values, flag)},
    {"rate", CONFIG_DOUBLE, "1.5", 0, 0, "", offsetof(values, rate)},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    values v = {0};
    char err[256];
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        config_set(&defs[i], &v, defs[i].def, "default", err, sizeof err);
    config_parse_text(defs, 4, &v, (const char *)data, size, "fuzz", err, sizeof err);
    config_free_strings(defs, 4, &v);
    return 0;
}
