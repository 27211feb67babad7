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
 * UDP (net__udp_bind): one socket per worker on the same address, each
 * with SO_REUSEPORT, so the kernel spreads peers over the workers and
 * keeps each peer on one.  SO_REUSEPORT would also let this group join
 * sockets another process bound with it (a second parleyd, say), and the
 * two would split the traffic without a word; so the address is first
 * bound by a probe socket without the option, which fails if anything
 * holds the port, and which also learns the port when 0 was asked.  The
 * probe is closed and the group binds that port at once.
 *
 * Runs on the main thread, from net_start (and net_check_addrs, which
 * binds and closes each address before the server prepares anything).
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

/* The port of an IPv4 or IPv6 socket address, in host order. */
static int sa_port(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
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
    *port_out = sa_port(&bound);
    *fd_out = fd;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(-e));
    return -1;
}

static int udp_socket(const struct sockaddr_storage *ss, bool reuseport)
{
    int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    socklen_t sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)ss, sl)) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET6) ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
}

int net__udp_bind(const char *addr, size_t n, int *fds, int *port_out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (net__addr_parse(addr, &ss, err, errlen)) return -1;
    size_t opened = 0;
    int e;
    int probe = udp_socket(&ss, false);
    if (probe < 0) goto fail;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof bound;
    if (getsockname(probe, (struct sockaddr *)&bound, &bl)) {
        e = errno;
        close(probe);
        errno = e;
        goto fail;
    }
    int port = sa_port(&bound);
    close(probe);
    set_port(&ss, port);
    /* Big buffers: one socket serves every peer of its worker. */
    int want = 4 << 20;
    for (; opened < n; opened++) {
        fds[opened] = udp_socket(&ss, true);
        if (fds[opened] < 0) goto fail;
        setsockopt(fds[opened], SOL_SOCKET, SO_RCVBUF, &want, sizeof want);
        setsockopt(fds[opened], SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    }
    *port_out = port;
    return 0;
fail:
    e = errno;
    for (size_t i = 0; i < opened; i++) close(fds[i]);
    snprintf(err, errlen, "cannot listen on %s (UDP): %s", addr, uv_strerror(-e));
    return -1;
}

int net_check_addrs(const net_config *cfg, char *err, size_t errlen)
{
    const char *addrs[3] = {cfg->http_addr, cfg->tcp_addr, cfg->udp_addr};
    for (int i = 0; i < 3; i++) {
        struct sockaddr_storage ss;
        if (!addrs[i] || !*addrs[i]) continue;
        if (net__addr_parse(addrs[i], &ss, err, errlen)) return -1;
        if (!sa_port(&ss)) continue; /* the kernel picks a free one */
        int fd, bound;
        if (i < 2 ? net__listen(addrs[i], &fd, &bound, err, errlen)
                  : net__udp_bind(addrs[i], 1, &fd, &bound, err, errlen))
            return -1;
        close(fd);
    }
    return 0;
}
