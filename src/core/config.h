/*
 * config.h - settings from defaults, a config file, the environment and the
 * command line, in that order of precedence (later wins).
 *
 * One table of config_def describes every setting once; the same name is
 * the config-file key (`max_frame = 65536`), the environment variable
 * (PARLEY_MAX_FRAME) and the command-line flag (--max-frame 65536 or
 * --max-frame=65536).  A config file is lines of `key = value`; blank lines
 * and lines starting with '#' are ignored; values may be double-quoted.
 *
 * Every error is one line naming the setting and the source, e.g.
 * "bad setting workers=abc (from PARLEY_WORKERS): expected an integer".
 * Unknown keys in a file and unknown flags are errors too (a typo must not
 * silently leave a default in place); unknown PARLEY_* variables are not,
 * since the environment is shared with other programs.
 */
#ifndef PARLEY_CORE_CONFIG_H
#define PARLEY_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum config_type { CONFIG_STR, CONFIG_INT, CONFIG_BOOL, CONFIG_DOUBLE } config_type;

typedef struct config_def {
    const char *name;        /* snake_case key */
    config_type type;
    const char *def;         /* default, as text ("" for none) */
    int64_t min, max;        /* CONFIG_INT range (both 0: any) */
    const char *help;        /* one line for --help */
    size_t offset;           /* where the value goes in the caller's struct */
} config_def;

/* Where the parsed values go: offsets into `out` are of type
 *   CONFIG_STR    char *   (heap copy, freed by config_free_strings)
 *   CONFIG_INT    int64_t
 *   CONFIG_BOOL   bool
 *   CONFIG_DOUBLE double
 * The special flag --config FILE (or PARLEY_CONFIG) names the file.  --help
 * sets *help and stops.  Returns 0, or -1 with a one-line reason in err. */
int config_load(const config_def *defs, size_t n, void *out, int argc, char **argv,
                bool *help, char *err, size_t errlen);

/* Apply the `key = value` lines of text[0..len) (a config file's
 * contents; `name` is used in messages as name:line).  Pure: no I/O.
 * 0, or -1 with a one-line reason in err. */
int config_parse_text(const config_def *defs, size_t n, void *out, const char *text, size_t len,
                      const char *name, char *err, size_t errlen);

/* Parse one value into out according to d; 0 or -1 with reason in err. */
int config_set(const config_def *d, void *out, const char *value, const char *source, char *err,
               size_t errlen);

void config_free_strings(const config_def *defs, size_t n, void *out);

/* Print "--name VALUE  help (default ...)" lines for --help. */
void config_usage(const config_def *defs, size_t n, const char *prog);

#endif
