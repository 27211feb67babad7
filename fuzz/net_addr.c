/*
 * net_addr.c - libFuzzer driver for the listen address parser
 * (net__addr_parse in src/net/addr.c), which reads the http, tcp and udp
 * settings: "host:port", "[v6]:port", ":port", "localhost:port".
 *
 * Checked: an accepted address has a family of IPv4 or IPv6; a refused
 * one has a reason, on one line unless the input itself held a newline
 * (the reason quotes it).
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 512) return 0;
    char in[513];
    memcpy(in, data, size);
    in[size] = 0;
    struct sockaddr_storage ss;
    char err[256] = "";
    if (net__addr_parse(in, &ss, err, sizeof err) == 0) {
        if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) abort();
    } else {
        if (!err[0] || (strchr(err, '\n') && !memchr(data, '\n', size))) abort();
    }
    return 0;
}
