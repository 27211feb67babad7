/*
 * config.c - settings from defaults, file, environment and flags (see
 * config.h).  Values are applied in precedence order, each source
 * overwriting the previous; a string setting's old copy is freed on
 * overwrite, so nothing leaks whatever the sources.
 */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/mem.h"

#define SLOT(out, d, type) ((type *)((char *)(out) + (d)->offset))

static const config_def *find(const config_def *defs, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(defs[i].name) == len && !strncmp(defs[i].name, name, len)) return &defs[i];
    return NULL;
}

int config_set(const config_def *d, void *out, const char *value, const char *source, char *err,
               size_t errlen)
{
    char *end;
    switch (d->type) {
    case CONFIG_STR: {
        char **slot = SLOT(out, d, char *);
        pl_free(*slot);
        *slot = pl_strdup(value);
        return 0;
    }
    case CONFIG_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (!*value || *end || errno) {
            snprintf(err, errlen, "bad setting %s=%s (from %s): expected an integer", d->name,
                     value, source);
            return -1;
        }
        if ((d->min || d->max) && (v < d->min || v > d->max)) {
            snprintf(err, errlen, "bad setting %s=%s (from %s): must be between %lld and %lld",
                     d->name, value, source, (long long)d->min, (long long)d->max);
            return -1;
        }
        *SLOT(out, d, int64_t) = v;
        return 0;
    }
    case CONFIG_BOOL:
        if (!strcmp(value, "true") || !strcmp(value, "yes") || !strcmp(value, "on") ||
            !strcmp(value, "1")) {
            *SLOT(out, d, bool) = true;
        } else if (!strcmp(value, "false") || !strcmp(value, "no") || !strcmp(value, "off") ||
                   !strcmp(value, "0")) {
            *SLOT(out, d, bool) = false;
        } else {
            snprintf(err, errlen, "bad setting %s=%s (from %s): expected true or false", d->name,
                     value, source);
            return -1;
        }
        return 0;
    case CONFIG_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (!*value || *end || errno || !isfinite(v) || v < 0) {
            snprintf(err, errlen, "bad setting %s=%s (from %s): expected a non-negative number",
                     d->name, value, source);
            return -1;
        }
        *SLOT(out, d, double) = v;
        return 0;
    }
    }
    return -1;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int config_parse_text(const config_def *defs, size_t n, void *out, const char *text, size_t len,
                      const char *name, char *err, size_t errlen)
{
    char line[4096], source[600];
    int lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - text - pos) : len - pos;
        lineno++;
        snprintf(source, sizeof source, "%s:%d", name, lineno);
        if (ll >= sizeof line || memchr(text + pos, 0, ll)) {
            snprintf(err, errlen, "bad line in %s: too long or not text", source);
            return -1;
        }
        memcpy(line, text + pos, ll);
        line[ll] = 0;
        pos += ll + (nl ? 1 : 0);
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "bad line in %s: expected key = value", source);
            return -1;
        }
        *eq = 0;
        char *key = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && value[0] == '"' && value[vl - 1] == '"') {
            value[vl - 1] = 0;
            value++;
        }
        const config_def *d = find(defs, n, key, strlen(key));
        if (!d) {
            snprintf(err, errlen, "unknown setting %.64s in %s", key, source);
            return -1;
        }
        if (config_set(d, out, value, source, err, errlen)) return -1;
    }
    return 0;
}

static int load_file(const config_def *defs, size_t n, void *out, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    buf b = {0};
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) buf_append(&b, chunk, got);
    int rc = ferror(f) ? -1 : 0;
    fclose(f);
    if (rc) snprintf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
    else rc = config_parse_text(defs, n, out, (const char *)buf_begin(&b), buf_size(&b), path, err, errlen);
    buf_free(&b);
    return rc;
}

static void env_name(const char *name, char *out, size_t outlen)
{
    size_t i = (size_t)snprintf(out, outlen, "PARLEY_");
    for (const char *p = name; *p && i + 1 < outlen; p++) out[i++] = (char)toupper((unsigned char)*p);
    out[i] = 0;
}

/* "--max-frame" -> "max_frame" in buf; returns NULL if not a long flag. */
static const char *flag_key(const char *arg, char *buf, size_t buflen, size_t *keylen)
{
    if (strncmp(arg, "--", 2) || !arg[2]) return NULL;
    size_t i = 0;
    const char *p = arg + 2;
    for (; *p && *p != '=' && i + 1 < buflen; p++) buf[i++] = *p == '-' ? '_' : *p;
    buf[i] = 0;
    *keylen = i;
    return buf;
}

int config_load(const config_def *defs, size_t n, void *out, int argc, char **argv, bool *help,
                char *err, size_t errlen)
{
    *help = false;
    for (size_t i = 0; i < n; i++)
        if (config_set(&defs[i], out, defs[i].def, "default", err, errlen)) return -1;

    /* The config file first: from --config or PARLEY_CONFIG. */
    const char *file = getenv("PARLEY_CONFIG");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            *help = true;
            return 0;
        }
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--config needs a file name");
                return -1;
            }
            file = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            file = argv[i] + 9;
        }
    }
    if (file && *file && load_file(defs, n, out, file, err, errlen)) return -1;

    char name[128];
    for (size_t i = 0; i < n; i++) {
        env_name(defs[i].name, name, sizeof name);
        const char *v = getenv(name);
        if (v && config_set(&defs[i], out, v, name, err, errlen)) return -1;
    }

    for (int i = 1; i < argc; i++) {
        char key[128];
        size_t keylen;
        const char *arg = argv[i];
        if (!flag_key(arg, key, sizeof key, &keylen)) {
            snprintf(err, errlen, "unexpected argument %s (try --help)", arg);
            return -1;
        }
        const char *eq = strchr(arg, '='), *value;
        if (!strcmp(key, "config")) {
            if (!eq) i++;
            continue;
        }
        const config_def *d = find(defs, n, key, keylen);
        if (!d) {
            snprintf(err, errlen, "unknown option %.*s (try --help)",
                     (int)(eq ? (size_t)(eq - arg) : strlen(arg)), arg);
            return -1;
        }
        if (eq) {
            value = eq + 1;
        } else if (d->type == CONFIG_BOOL && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "option %s needs a value", arg);
            return -1;
        }
        char source[160];
        snprintf(source, sizeof source, "--%s", d->name);
        for (char *p = source; *p; p++)
            if (*p == '_') *p = '-';
        if (config_set(d, out, value, source, err, errlen)) return -1;
    }
    return 0;
}

void config_free_strings(const config_def *defs, size_t n, void *out)
{
    for (size_t i = 0; i < n; i++)
        if (defs[i].type == CONFIG_STR) {
            char **slot = SLOT(out, &defs[i], char *);
            pl_free(*slot);
            *slot = NULL;
        }
}

void config_usage(const config_def *defs, size_t n, const char *prog)
{
    printf("usage: %s [--config FILE] [--name VALUE ...]\n\n"
           "Every setting is also a config-file key and a PARLEY_<NAME> environment variable.\n\n",
           prog);
    for (size_t i = 0; i < n; i++) {
        char flag[128];
        size_t j = 0;
        for (const char *p = defs[i].name; *p && j + 1 < sizeof flag; p++)
            flag[j++] = *p == '_' ? '-' : *p;
        flag[j] = 0;
        printf("  --%-22s %s (default: %s)\n", flag, defs[i].help,
               *defs[i].def ? defs[i].def : "none");
    }
}
