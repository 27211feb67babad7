/*
 * url.c - the URLs a client connects to (pure).
 *
 *   ws://HOST[:PORT][/PATH[?QUERY]]   WebSocket; PORT 80 by default; a
 *                                     missing PATH or "/" means /v1/ws
 *   tcp://HOST[:PORT][/]              length-prefixed protobuf; PORT 9000
 *
 * HOST is a name, an IPv4 address or an IPv6 address in brackets.  User
 * info, fragments and wss:// (no TLS yet) are refused with a reason.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static int fail(char *err, size_t errlen, const char *s, const char *why)
{
    snprintf(err, errlen, "bad URL (%s): \"%.120s\"", why, s);
    return -1;
}

static bool host_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
           ch == '-' || ch == '_';
}

int parley__url_parse(const char *s, parley__url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s) return fail(err, errlen, "", "empty");
    const char *p = strstr(s, "://");
    if (!p) return fail(err, errlen, s, "expected ws://host:port or tcp://host:port");
    size_t sl = (size_t)(p - s);
    if (sl == 2 && !strncasecmp(s, "ws", 2)) {
        out->transport = PARLEY__WS;
        out->port = 80;
    } else if (sl == 3 && !strncasecmp(s, "tcp", 3)) {
        out->transport = PARLEY__TCP;
        out->port = 9000;
    } else if (sl == 3 && !strncasecmp(s, "wss", 3)) {
        return fail(err, errlen, s, "wss:// (TLS) is not supported");
    } else {
        return fail(err, errlen, s, "the scheme must be ws or tcp");
    }
    p += 3;

    /* Host. */
    const char *h = p, *he;
    if (*p == '[') {
        h = p + 1;
        he = strchr(h, ']');
        if (!he || he == h) return fail(err, errlen, s, "unterminated IPv6 address");
        for (const char *q = h; q < he; q++)
            if (!(host_char(*q) || *q == ':' || *q == '%')) return fail(err, errlen, s, "bad IPv6 address");
        p = he + 1;
    } else {
        while (*p && host_char(*p)) p++;
        he = p;
        if (*p == '@') return fail(err, errlen, s, "user info is not supported");
    }
    size_t hl = (size_t)(he - h);
    if (!hl) return fail(err, errlen, s, "no host");
    if (hl >= sizeof out->host) return fail(err, errlen, s, "host too long");
    memcpy(out->host, h, hl);
    out->host[hl] = 0;

    /* Port. */
    if (*p == ':') {
        p++;
        unsigned long port = 0;
        const char *d = p;
        while (*p >= '0' && *p <= '9') {
            port = port * 10 + (unsigned long)(*p - '0');
            if (port > 65535) return fail(err, errlen, s, "port out of range");
            p++;
        }
        if (p == d) return fail(err, errlen, s, "missing port after ':'");
        if (port == 0) return fail(err, errlen, s, "port 0");
        out->port = (uint16_t)port;
    }

    /* Path. */
    if (*p && *p != '/' && *p != '?') return fail(err, errlen, s, "unexpected character after the host");
    if (strchr(p, '#')) return fail(err, errlen, s, "fragments are not allowed");
    for (const char *q = p; *q; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
            return fail(err, errlen, s, "spaces or control characters in the path");
    if (out->transport == PARLEY__TCP) {
        if (*p && strcmp(p, "/")) return fail(err, errlen, s, "a tcp:// URL has no path");
        return 0;
    }
    if (!*p || !strcmp(p, "/")) p = "/v1/ws";
    if (*p == '?') {
        /* A query without a path: the default path with that query. */
        if (snprintf(out->path, sizeof out->path, "/v1/ws%s", p) >= (int)sizeof out->path)
            return fail(err, errlen, s, "path too long");
        return 0;
    }
    if (strlen(p) >= sizeof out->path) return fail(err, errlen, s, "path too long");
    strcpy(out->path, p);
    return 0;
}
