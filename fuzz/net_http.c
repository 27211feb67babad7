/*
 * net_http.c - libFuzzer driver for the HTTP/1.1 request parser
 * (src/net/http.c).
 *
 * The first input byte says how the rest is cut into reads (that many bytes
 * each; 0 means one read), so the fuzzer explores requests split at any
 * position.  Requests are parsed one after another as on a keep-alive
 * connection.  Checked: the parser never consumes more than it was given,
 * consumes everything when it asks for more, answers errors with a 4xx/5xx
 * status and a description, and a finished request is well-formed (every
 * string NUL-terminated where the request says it ends).  The request
 * helpers (net_http_header, net_query_get) run over every request.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"

static void check_request(const net_http_req *q)
{
    if (!q->method || !q->path || !q->query || q->path[0] != '/') abort();
    (void)strlen(q->method);
    (void)strlen(q->query);
    for (size_t i = 0; i < q->n_headers; i++) {
        (void)strlen(q->headers[i].name);
        (void)strlen(q->headers[i].value);
        if (net_http_header(q, q->headers[i].name) == NULL) abort();
    }
    if (q->body[q->body_len] != 0) abort();
    char out[32];
    (void)net_query_get(q->query, "a", out, sizeof out);
    (void)net_query_get(q->query, "", out, 1);
    (void)net__ws_is_upgrade(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = data[0] ? data[0] : size;
    data++;
    size--;

    net__http_parser p;
    net__http_init(&p, 1024, 2048);
    size_t off = 0;
    while (off < size) {
        size_t n = size - off < step ? size - off : step;
        size_t used = 0;
        int r = net__http_feed(&p, data + off, n, &used);
        if (used > n) abort();
        off += used;
        if (r == NET__HTTP_DONE) {
            check_request(&p.req);
            net__http_reset(&p);
        } else if (r == NET__HTTP_ERROR) {
            if (p.status < 400 || p.status > 599 || !p.error) abort();
            break;
        } else if (used != n) {
            abort();
        }
    }
    net__http_free(&p);
    return 0;
}
