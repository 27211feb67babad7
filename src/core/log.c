/* log.c - JSON-lines logging (see log.h).  Strings are escaped here. */
#include "core/log.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

static int log_fd = 2;
static _Atomic int log_min = LOG_INFO;
static char log_node[64];

static const char *level_names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, level_names[i])) return i;
    return -1;
}

int log_open(const char *path, log_level min, const char *node_id)
{
    atomic_store_explicit(&log_min, (int)min, memory_order_relaxed);
    snprintf(log_node, sizeof log_node, "%s", node_id ? node_id : "");
    if (!path || !*path || !strcmp(path, "-") || !strcmp(path, "stderr")) {
        log_fd = 2;
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return -1;
    log_fd = fd;
    return 0;
}

void log_set_level(log_level min) { atomic_store_explicit(&log_min, (int)min, memory_order_relaxed); }

void log_close(void)
{
    if (log_fd > 2) close(log_fd);
    log_fd = 2;
}

static void put_json_string(buf *b, const char *s)
{
    buf_appendc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': buf_appends(b, "\\\""); break;
        case '\\': buf_appends(b, "\\\\"); break;
        case '\n': buf_appends(b, "\\n"); break;
        case '\r': buf_appends(b, "\\r"); break;
        case '\t': buf_appends(b, "\\t"); break;
        default:
            if (*p < 0x20) buf_printf(b, "\\u%04x", *p);
            else buf_appendc(b, (char)*p);
        }
    }
    buf_appendc(b, '"');
}

static void begin(buf *b, log_level lvl)
{
    struct timeval tv;
    struct tm tm;
    char ts[40];
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    buf_printf(b, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\"", ts, (int)(tv.tv_usec / 1000),
               level_names[lvl]);
    if (log_node[0]) {
        buf_appends(b, ",\"node\":");
        put_json_string(b, log_node);
    }
}

static void finish(buf *b)
{
    buf_appends(b, "}\n");
    ssize_t r = write(log_fd, buf_begin(b), buf_size(b));
    (void)r;
    buf_free(b);
}

void log_event(log_level lvl, const char *msg, ...)
{
    if ((int)lvl < atomic_load_explicit(&log_min, memory_order_relaxed)) return;
    buf b = {0};
    begin(&b, lvl);
    buf_appends(&b, ",\"msg\":");
    put_json_string(&b, msg);
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        buf_appendc(&b, ',');
        put_json_string(&b, k);
        buf_appendc(&b, ':');
        put_json_string(&b, v ? v : "");
    }
    va_end(ap);
    finish(&b);
}

void log_msgf(log_level lvl, const char *fmt, ...)
{
    if ((int)lvl < atomic_load_explicit(&log_min, memory_order_relaxed)) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    buf b = {0};
    begin(&b, lvl);
    buf_appends(&b, ",\"msg\":");
    put_json_string(&b, msg);
    finish(&b);
}
