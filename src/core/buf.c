/* buf.c - growable byte buffer (see buf.h). */
#include "core/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/mem.h"

void buf_reserve(buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) return;
    if (b->off && b->cap - buf_size(b) >= extra) {
        buf_compact(b);
        return;
    }
    size_t need = b->len + extra, cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    b->data = pl_realloc(b->data, cap);
    b->cap = cap;
}

void buf_append(buf *b, const void *p, size_t n)
{
    if (!n) return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void buf_appendc(buf *b, char c) { buf_append(b, &c, 1); }

void buf_appends(buf *b, const char *s) { buf_append(b, s, strlen(s)); }

void buf_printf(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    buf_reserve(b, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void buf_consume(buf *b, size_t n)
{
    if (n >= buf_size(b)) {
        b->off = b->len = 0;
        return;
    }
    b->off += n;
}

void buf_compact(buf *b)
{
    if (!b->off) return;
    memmove(b->data, b->data + b->off, buf_size(b));
    b->len -= b->off;
    b->off = 0;
}

void buf_reset(buf *b) { b->off = b->len = 0; }

void buf_free(buf *b)
{
    pl_free(b->data);
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}
