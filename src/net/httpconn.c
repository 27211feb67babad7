/*
 * httpconn.c - HTTP/1.1 connections: requests in, responses out.
 *
 * Thread: the connection's worker.
 *
 * A connection on the HTTP port starts in HTTP_READ.  Bytes go through the
 * pure parser (http.c) straight from the read buffer.  A complete request
 * either upgrades to WebSocket (ws.c) or goes to on_http: the connection is
 * then in HTTP_APP and reading stops until net_http_respond, so pipelined
 * requests are answered one at a time and in order; bytes that came after
 * the request wait in conn->in, and are parsed when the response is queued
 * (process, called from net_http_respond, or from the read when the app
 * answered at once; `in_pump` keeps a synchronous answer from recursing).
 *
 * Keep-alive follows http-parser's reading of the request (HTTP/1.1
 * default, `Connection: close`, HTTP/1.0 with or without keep-alive); a
 * response that ends the connection carries `Connection: close` and the
 * connection goes to CLOSING after it.  Errors found by the parser are
 * answered with their status and close the connection.
 *
 * Timeouts (conn.c's sweep): `head_wait` with `t_mark` is the time since
 * the connection was accepted or since the first byte of the current
 * request arrived, bounded by header_timeout_ms (408, close); between
 * requests the idle timeout applies.
 *
 * The parser (about 250 bytes plus its buffers) belongs to a connection
 * only while a request is in progress: from its first byte until it is
 * answered (or, for an upgrade, until the 101 is queued).  Between requests
 * it goes back to the worker, which keeps one spare with its buffers
 * (net__http_take, net__http_release), so a crowd of upgrades costs the
 * heap nothing per connection and leaves no holes behind.
 */
#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "net/net_internal.h"

static void write_response(net_conn *c, int status, const char *ctype, const char *extra, const void *body,
                           size_t len, bool keep, bool head_only, unsigned minor)
{
    if (status < 100 || status > 999) status = 500;
    bool bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
    buf *o = net__conn_out(c);
    buf_printf(o, "HTTP/1.1 %d %s\r\n", status, net__http_reason(status));
    if (!bodyless) {
        if (ctype) buf_printf(o, "Content-Type: %s\r\n", ctype);
        else if (len) buf_appends(o, "Content-Type: application/octet-stream\r\n");
        buf_printf(o, "Content-Length: %zu\r\n", len);
    }
    if (extra) buf_appends(o, extra);
    if (!keep) buf_appends(o, "Connection: close\r\n");
    else if (minor == 0) buf_appends(o, "Connection: keep-alive\r\n");
    buf_appends(o, "\r\n");
    if (!bodyless && !head_only && len) buf_append(o, body, len);
    net__conn_mark_dirty(c);
}

void net__http_error(net_conn *c, int status, const char *extra_headers, const char *why)
{
    if (c->state >= NET__S_CLOSING) return;
    char body[160];
    int n = snprintf(body, sizeof body, "%s\n", why ? why : net__http_reason(status));
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof body) n = sizeof body - 1;
    write_response(c, status, "text/plain; charset=utf-8", extra_headers, body, (size_t)n, false, false, 1);
    net__conn_enter_closing(c);
}

static void dispatch(net_conn *c, net__http_parser *hp)
{
    net *n = c->w->n;
    if (net__ws_is_upgrade(&hp->req)) {
        net__ws_upgrade(c, hp);
        return;
    }
    c->state = NET__S_HTTP_APP;
    net__conn_read_stop(c);
    metric_inc(net__m.frames_in[NET_HTTP]);
    if (n->cb.on_http) n->cb.on_http(c, &hp->req);
    else net_http_respond(c, 404, "text/plain; charset=utf-8", NULL, "not found\n", 10);
}

/* Parse and dispatch requests from p[0..n).  Returns the bytes consumed:
 * all of them unless a request is left with the app (HTTP_APP). */
static size_t process(net_conn *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    c->in_pump = 1;
    while (off < n && c->state == NET__S_HTTP_READ) {
        net__http_parser *hp = net__http_take(c);
        if (!hp->started && !c->head_wait) {
            c->head_wait = 1;
            c->t_mark = net__now(c->w);
        }
        bool expected = hp->expect_continue;
        size_t used;
        int r = net__http_feed(hp, p + off, n - off, &used);
        off += used;
        if (hp->head_done) c->head_wait = 0;
        if (r == NET__HTTP_ERROR) {
            net__http_error(c, hp->status, NULL, hp->error);
            break;
        }
        if (r == NET__HTTP_MORE) {
            if (hp->expect_continue && !expected) {
                buf_appends(net__conn_out(c), "HTTP/1.1 100 Continue\r\n\r\n");
                net__conn_mark_dirty(c);
            }
            continue;
        }
        dispatch(c, hp);
        if (c->state == NET__S_OPEN) { /* upgraded: the rest is WebSocket */
            c->in_pump = 0;
            if (off < n) net__ws_input(c, p + off, n - off);
            return n;
        }
    }
    c->in_pump = 0;
    if (c->state == NET__S_HTTP_APP) return off;
    if (c->state == NET__S_HTTP_READ) {
        if (c->p.http && !c->p.http->started) net__http_release(c);
        net__conn_read_start(c);
    }
    return n;
}

/* Parse what waits in conn->in. */
static void pump_in(net_conn *c)
{
    if (!buf_size(&c->in)) return;
    buf tmp = c->in;
    memset(&c->in, 0, sizeof c->in);
    size_t used = process(c, buf_begin(&tmp), buf_size(&tmp));
    if (used < buf_size(&tmp) && !buf_size(&c->in)) {
        buf_free(&c->in);
        buf_consume(&tmp, used);
        c->in = tmp;
    } else {
        buf_free(&tmp);
    }
}

void net__http_input(net_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == NET__S_HTTP_APP || buf_size(&c->in)) {
        buf_append(&c->in, p, n);
        if (c->state == NET__S_HTTP_READ) pump_in(c);
        return;
    }
    size_t used = process(c, p, n);
    if (used < n) buf_append(&c->in, p + used, n - used);
}

net__http_parser *net__http_take(net_conn *c)
{
    if (c->p.http) return c->p.http;
    net_worker *w = c->w;
    net__http_parser *hp = w->http_spare;
    w->http_spare = NULL;
    if (!hp) {
        const net_config *cfg = &w->n->cfg;
        hp = pl_malloc(sizeof *hp);
        net__http_init(hp, cfg->max_header, cfg->max_body);
    }
    c->p.http = hp;
    return hp;
}

void net__http_release(net_conn *c)
{
    net__http_parser *hp = c->p.http;
    if (!hp) return;
    c->p.http = NULL;
    net_worker *w = c->w;
    if (w->http_spare) {
        net__http_free(hp);
        pl_free(hp);
        return;
    }
    if (hp->data.cap > NET__HTTP_SPARE_KEEP || hp->offs.cap > NET__HTTP_SPARE_KEEP ||
        hp->hdrs.cap > NET__HTTP_SPARE_KEEP) {
        /* A large body: keep the struct, not its buffers. */
        size_t max_header = hp->max_header, max_body = hp->max_body;
        net__http_free(hp);
        net__http_init(hp, max_header, max_body);
    } else {
        net__http_reset(hp);
    }
    w->http_spare = hp;
}

void net__http_worker_free(net_worker *w)
{
    if (!w->http_spare) return;
    net__http_free(w->http_spare);
    pl_free(w->http_spare);
    w->http_spare = NULL;
}

void net_http_respond(net_conn *c, int status, const char *content_type, const char *extra_headers,
                      const void *body, size_t len)
{
    if (c->kind != NET_HTTP || c->state != NET__S_HTTP_APP) return;
    net__http_parser *hp = c->p.http;
    bool keep = hp->keep_alive && !c->stop_pending && !c->eof && !c->w->stopping;
    /* One response may be larger than max_outbound; a client that keeps
     * pipelining without reading may not make the queue grow past it. */
    if (net__conn_queued(c) && net__conn_out_room(c, len + 512)) return;
    write_response(c, status, content_type, extra_headers, body, len, keep, hp->is_head, hp->hp.http_minor);
    metric_inc(net__m.frames_out[NET_HTTP]);
    c->last_rx = net__now(c->w);
    if (!keep) {
        net__conn_enter_closing(c);
        return;
    }
    net__http_reset(hp);
    c->state = NET__S_HTTP_READ;
    c->head_wait = 0;
    if (c->in_pump) return; /* answered from on_http: process goes on */
    if (buf_size(&c->in)) {
        pump_in(c);
    } else {
        net__http_release(c);
        net__conn_read_start(c);
    }
}
