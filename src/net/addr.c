/*
 * addr.c - listen addresses: parsing "host:port" and opening listening
 * sockets.
 *
 * Accepted forms: "127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080",
 * "[::]:8080", ":8080" (every IPv4 address) and "localhost:8080"
 * (127.0.0.1).  Host names are not resolved: a listener binds an address
 * the operator wrote down.  Port 0 asks the kernel for a free port; the
 * bound port is read back with getsockname.
 *
 * Errors are one line, ready for `parleyd` to print and exit with, e.g.
 * "cannot listen on 127.0.0.1:8080: address already in use".
 *
 * Runs on the main thread, from net_start.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/net_internal.h"

static int parse_port(const char *s, int *port)
{
    if (!*s) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
        if (v > 65535) return -1;
    }
    *port = (int)v;
    return 0;
}

int net__addr_parse(const char *s, struct sockaddr_storage *out, char *err, size_t errlen)
{
    char host[64];
    const char *port_s;
    bool v6 = false;

    memset(out, 0, sizeof *out);
    if (!s || !*s) {
        snprintf(err, errlen, "empty listen address");
        return -1;
    }
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host) goto bad;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = 0;
        port_s = close + 2;
        v6 = true;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host) goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        if (strchr(host, ':')) goto bad; /* a bare IPv6 address needs brackets */
        port_s = colon + 1;
    }
    int port;
    if (parse_port(port_s, &port)) goto bad;
    if (v6) {
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out)) goto bad;
        return 0;
    }
    const char *ip = host;
    if (!host[0] || !strcmp(host, "*")) ip = "0.0.0.0";
    else if (!strcmp(host, "localhost")) ip = "127.0.0.1";
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)out)) goto bad;
    return 0;
bad:
    snprintf(err, errlen, "invalid listen address \"%s\": expected host:port or [v6]:port", s);
    return -1;
}

int net__listen(const char *addr, int *fd_out, int *port_out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (net__addr_parse(addr, &ss, err, errlen)) return -1;
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) goto fail;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one)) goto fail;
    if (bind(fd, (struct sockaddr *)&ss, sl)) goto fail;
    if (listen(fd, 1024)) goto fail;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &bl)) goto fail;
    *port_out = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
    *fd_out = fd;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(-e));
    return -1;
}
