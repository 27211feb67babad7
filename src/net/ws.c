/*
 * ws.c - WebSocket connections (RFC 6455): the upgrade handshake, inbound
 * messages through wslay, outbound close frames, and releasing wslay's
 * context while a connection is quiet.
 *
 * Thread: the connection's worker.
 *
 * Inbound.  frames.c cuts the stream into whole frames (scanned by
 * wsproto.c, which refuses a data frame above max_frame with 1009 from its
 * header alone); each whole frame is fed to wslay's event API, which checks
 * masking, opcodes, fragmentation order and UTF-8, reassembles fragmented
 * messages (at most max_frame in total, else 1009), answers pings and the
 * peer's close.  wslay queues those control frames; wslay_event_send, run
 * right after each frame, hands them to send_cb, which appends them whole to
 * the same outbound buffer as everything else, so frames never interleave.
 * The peer's close is answered by wslay only: when it arrives the
 * connection is still OPEN, so the reply goes out, then CLOSING follows.
 * When wslay stops reading (close received, or a violation it answered with
 * 1002/1007/1009) the connection enters CLOSING behind that close frame.
 *
 * Outbound data frames do not go through wslay: net_send (conn.c) writes
 * the header and payload straight into the outbound buffer.  Our own close
 * frames (net_close) are written the same way, after telling wslay to send
 * and read nothing more.
 *
 * Memory.  A wslay event context takes about 9.4 KiB (two 4 KiB buffers),
 * far above the 2 KiB an idle connection may cost (SPEC section 6).  Because
 * wslay is only ever given whole frames, it holds no partial frame between
 * reads; when no fragmented message is in progress (`ws_frag`, tracked from
 * on_frame_recv_start) and nothing is queued in it, the context carries no
 * state worth keeping.  The sweep frees it from connections quiet for
 * NET__TRIM_AFTER_MS, and the next frame creates a fresh one.
 */
#include <string.h>

#include "core/mem.h"
#include "core/utf8.h"
#include "net/net_internal.h"

static const uint8_t empty_msg[1];

bool net__ws_is_upgrade(const net_http_req *req)
{
    return !strcmp(req->method, "GET") && net__http_has_token(net_http_header(req, "Upgrade"), "websocket");
}

void net__ws_upgrade(net_conn *c, net__http_parser *hp)
{
    net *n = c->w->n;
    const net_http_req *req = &hp->req;
    if (hp->hp.http_minor < 1) {
        net__http_error(c, 400, NULL, "WebSocket needs HTTP/1.1");
        return;
    }
    if (!net__http_has_token(net_http_header(req, "Connection"), "upgrade")) {
        net__http_error(c, 400, NULL, "missing Connection: Upgrade");
        return;
    }
    const char *version = net_http_header(req, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13")) {
        net__http_error(c, 400, "Sec-WebSocket-Version: 13\r\n", "unsupported WebSocket version");
        return;
    }
    const char *key = net_http_header(req, "Sec-WebSocket-Key");
    if (!net__ws_key_valid(key)) {
        net__http_error(c, 400, NULL, "bad Sec-WebSocket-Key");
        return;
    }
    int status = n->cb.on_ws_upgrade ? n->cb.on_ws_upgrade(c, req) : 0;
    if (c->state != NET__S_HTTP_READ) return; /* closed from the callback */
    if (status) {
        if (status < 400 || status > 599) status = 403;
        net__http_error(c, status, NULL, net__http_reason(status));
        return;
    }
    char accept[29];
    net__ws_accept_key(key, accept);
    buf_printf(&c->out,
               "HTTP/1.1 101 Switching Protocols\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n\r\n",
               accept);
    net__conn_mark_dirty(c);

    net__http_free(hp);
    pl_free(hp);
    c->p.ws = NULL;
    net__conn_set_kind(c, NET_WS);
    c->state = NET__S_OPEN;
    c->head_wait = 0;
    c->last_rx = net__now(c->w);
    if (n->cb.on_open) n->cb.on_open(c);
}

/* ------------------------------------------------------------------ */
/* wslay glue                                                           */
/* ------------------------------------------------------------------ */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *out, size_t len, int flags, void *ud)
{
    net_conn *c = ud;
    net_worker *w = c->w;
    if (!w->ws_rx_len) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < w->ws_rx_len ? len : w->ws_rx_len;
    memcpy(out, w->ws_rx, n);
    w->ws_rx += n;
    w->ws_rx_len -= n;
    return (ssize_t)n;
}

/* Control frames from wslay.  Always takes every byte, so frames never
 * interleave; they count against max_outbound like everything else (a
 * client that pings without reading is a slow consumer too), and once the
 * connection is closing they are dropped. */
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    net_conn *c = ud;
    if (c->state != NET__S_OPEN || net__conn_out_room(c, len)) return (ssize_t)len;
    buf_append(&c->out, data, len);
    net__conn_mark_dirty(c);
    return (ssize_t)len;
}

static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
                           void *ud)
{
    net_conn *c = ud;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME || a->opcode == WSLAY_CONTINUATION_FRAME)
        c->ws_frag = !a->fin;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *ud)
{
    net_conn *c = ud;
    if (c->state != NET__S_OPEN) return;
    if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME) return;
    const uint8_t *m = a->msg ? a->msg : empty_msg;
    bool binary = a->opcode == WSLAY_BINARY_FRAME;
    if (!binary && !utf8_valid(m, a->msg_length)) {
        net_close(c, NET_CLOSE_BAD_DATA, "invalid UTF-8");
        return;
    }
    metric_inc(net__m.frames_in[NET_WS]);
    if (c->w->n->cb.on_message) c->w->n->cb.on_message(c, binary, m, a->msg_length);
}

static const struct wslay_event_callbacks callbacks = {
    .recv_callback = recv_cb,
    .send_callback = send_cb,
    .on_frame_recv_start_callback = on_frame_start,
    .on_msg_recv_callback = on_msg,
};

/* Feed one whole frame to wslay. */
static int feed_frame(void *arg, const uint8_t *frame, size_t len)
{
    net_conn *c = arg;
    net_worker *w = c->w;
    if (!c->p.ws) {
        if (wslay_event_context_server_init(&c->p.ws, &callbacks, c)) {
            c->p.ws = NULL;
            net_close(c, NET_CLOSE_INTERNAL, "out of memory");
            return 1;
        }
        wslay_event_config_set_max_recv_msg_length(c->p.ws, w->n->cfg.max_frame);
    }
    wslay_event_context_ptr ctx = c->p.ws;
    w->ws_rx = frame;
    w->ws_rx_len = len;
    int r = wslay_event_recv(ctx);
    w->ws_rx = NULL;
    w->ws_rx_len = 0;
    if (c->state != NET__S_OPEN) return 1; /* closed by us or the app meanwhile */
    if (r < 0) {
        wslay_event_shutdown_write(ctx);
        net_close(c, r == WSLAY_ERR_NOMEM ? NET_CLOSE_INTERNAL : NET_CLOSE_PROTOCOL, NULL);
        return 1;
    }
    bool ended = !wslay_event_get_read_enabled(ctx);
    if (wslay_event_want_write(ctx)) wslay_event_send(ctx);
    if (ended) {
        c->close_code = wslay_event_get_status_code_sent(ctx);
        net__conn_enter_closing(c);
        return 1;
    }
    return 0;
}

void net__ws_input(net_conn *c, const uint8_t *p, size_t n)
{
    int r = net__frames_feed(&c->in, p, n, net__ws_frame_scan, c->w->n->cfg.max_frame, feed_frame, c);
    if (r == NET__SCAN_TOO_BIG) net_close(c, NET_CLOSE_TOO_BIG, "message too big");
    else if (r < 0) net_close(c, NET_CLOSE_PROTOCOL, "protocol error");
}

static bool code_sendable(uint16_t code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

void net__ws_close(net_conn *c, uint16_t code, const char *reason)
{
    if (c->p.ws) {
        wslay_event_shutdown_read(c->p.ws);
        wslay_event_shutdown_write(c->p.ws);
    }
    uint8_t payload[125], hdr[10];
    size_t pl = net__ws_close_payload(payload, code_sendable(code) ? code : 0, reason);
    size_t hl = net__ws_frame_header(hdr, true, NET__WS_CLOSE, pl);
    buf_append(&c->out, hdr, hl);
    buf_append(&c->out, payload, pl);
    net__conn_mark_dirty(c);
}

void net__ws_trim(net_conn *c)
{
    wslay_event_context_ptr ctx = c->p.ws;
    if (!ctx || c->ws_frag || c->state != NET__S_OPEN || wslay_event_get_queued_msg_count(ctx)) return;
    wslay_event_context_free(ctx);
    c->p.ws = NULL;
}

void net__ws_free(net_conn *c)
{
    if (c->p.ws) wslay_event_context_free(c->p.ws);
    c->p.ws = NULL;
}
