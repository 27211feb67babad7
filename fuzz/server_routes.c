/*
 * server_routes.c - libFuzzer driver for the HTTP API's request decoding
 * (srv_route_decode in src/server/routes.c): route matching with path
 * parameters, query parameters typed by the op's body fields, JSON bodies
 * and raw bodies, merged and decoded by the frame codec.
 *
 * Input: the method, the path and the raw query, one per line, then the
 * body (everything after the third newline).  Checked: a decoded body has
 * the op's type and encodes back to JSON; an error comes with a status
 * from {400, 404, 405} and a reason; nothing leaks (ASan).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "server/server.h"

/* Cut the next line of [*p, end) into a NUL-terminated copy in out. */
static void line(const uint8_t **p, const uint8_t *end, char *out, size_t outlen)
{
    size_t n = 0;
    while (*p < end && **p != '\n') {
        if (n + 1 < outlen && **p) out[n++] = (char)**p;
        (*p)++;
    }
    if (*p < end) (*p)++;
    out[n] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char method[16], path[1024], query[2048];
    line(&p, end, method, sizeof method);
    line(&p, end, path, sizeof path);
    line(&p, end, query, sizeof query);
    if (path[0] != '/') return 0; /* the HTTP parser guarantees it */
    net_http_req req = {.method = method, .path = path, .query = query, .body = p,
                        .body_len = (size_t)(end - p)};
    chat_op op;
    ProtobufCMessage *body = NULL;
    char allow[64], err[200];
    int st = srv_route_decode(&req, &op, &body, allow, sizeof allow, err, sizeof err);
    if (st == 0) {
        if (!body || body->descriptor != chat_op_body(op)) abort();
        buf b = {0};
        proto_encode(body, PROTO_JSON, &b);
        if (!buf_size(&b)) abort();
        buf_free(&b);
        proto_free(body);
    } else {
        if (body || (st != 400 && st != 404 && st != 405) || !err[0]) abort();
        if (st == 405 && !allow[0]) abort();
    }
    return 0;
}
