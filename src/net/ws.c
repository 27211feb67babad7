/*
 * ws.c - WebSocket connections (RFC 6455): the upgrade handshake, inbound
 * messages through wslay, outbound close frames, and the worker's one
 * wslay context that its connections share.
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
 * One context per worker.  A wslay event context takes about 9.4 KiB (two
 * 4 KiB buffers), far above the 2 KiB an idle connection may cost (SPEC
 * section 6), and allocating one per connection for each burst of traffic
 * fragments the heap.  Because wslay is only ever given whole frames, what
 * a context holds once a frame has been fed is empty unless a message is
 * still incomplete:
 *   - its frame parser is back at "expect a header" with its input buffer
 *     drained (the recv callback hands over exactly one frame);
 *   - its message assembly is reset after the final frame of a message
 *     (`ws_frag`, tracked from on_frame_recv_start, says when one is in
 *     progress; control frames interleaved in a fragmented message are
 *     assembled apart and reset after each);
 *   - its send queues are empty, since send_cb takes every byte at once;
 *   - reading and writing stay enabled unless a close was received, queued
 *     or sent, or a violation was found.
 * Its user data is therefore the worker, not a connection: the worker
 * records the connection being fed (`ws_cur`) for the duration of a frame,
 * and the callbacks act on it.  The life of a context:
 *
 *   worker's spare --frame for a connection (ctx_take)--> lent to it
 *   lent --frame done, clean, no fragmented message (ctx_give_back)-->
 *         worker's spare (freed if the worker already has one)
 *   lent --frame done inside a fragmented message--> kept by the connection
 *         until its final frame (a fresh spare is made for the others)
 *   lent or kept --close, violation, connection freed--> wslay_event_context_free
 *
 * So a worker holds one context, plus one per connection in the middle of
 * a fragmented message.  Feeding can nest (an on_message handler may answer
 * another connection's HTTP request, whose pipelined bytes may upgrade it
 * and carry frames): the nested frame finds no spare and gets a fresh
 * context, and the outer connection's `ws_cur` and input are restored
 * after it.
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
    buf_printf(net__conn_out(c),
               "HTTP/1.1 101 Switching Protocols\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Accept: %s\r\n\r\n",
               accept);
    net__conn_mark_dirty(c);

    net__http_release(c); /* back to the worker for the next upgrade */
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
    net_worker *w = ud;
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
 * interleave and nothing stays queued in the context; they count against
 * max_outbound like everything else (a client that pings without reading
 * is a slow consumer too), and once the connection is closing they are
 * dropped. */
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    net_conn *c = ((net_worker *)ud)->ws_cur;
    if (!c || c->state != NET__S_OPEN || net__conn_out_room(c, len)) return (ssize_t)len;
    buf_append(net__conn_out(c), data, len);
    net__conn_mark_dirty(c);
    return (ssize_t)len;
}

static void on_frame_start(wslay_event_context_ptr ctx, const struct wslay_event_on_frame_recv_start_arg *a,
                           void *ud)
{
    net_conn *c = ((net_worker *)ud)->ws_cur;
    if (a->opcode == WSLAY_TEXT_FRAME || a->opcode == WSLAY_BINARY_FRAME || a->opcode == WSLAY_CONTINUATION_FRAME)
        c->ws_frag = !a->fin;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *ud)
{
    net_conn *c = ((net_worker *)ud)->ws_cur;
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

/* The context for c's next frame: the one it keeps (a fragmented message
 * is in progress), else the worker's spare, else a new one.  NULL when out
 * of memory. */
static wslay_event_context_ptr ctx_take(net_conn *c)
{
    net_worker *w = c->w;
    if (c->p.ws) return c->p.ws;
    wslay_event_context_ptr ctx = w->ws_spare;
    w->ws_spare = NULL;
    if (!ctx) {
        if (wslay_event_context_server_init(&ctx, &callbacks, w)) return NULL;
        wslay_event_config_set_max_recv_msg_length(ctx, w->n->cfg.max_frame);
    }
    c->p.ws = ctx;
    return ctx;
}

/* True if ctx carries nothing from the frames fed so far (see the top of
 * the file); only then may another connection use it. */
static bool ctx_clean(wslay_event_context_ptr ctx)
{
    return wslay_event_get_read_enabled(ctx) && wslay_event_get_write_enabled(ctx) && !wslay_event_want_write(ctx) &&
           !wslay_event_get_queued_msg_count(ctx);
}

/* After a frame: c keeps its context while a fragmented message is in
 * progress; otherwise a clean context becomes the worker's spare (or is
 * freed if the worker has one) and any other is freed. */
static void ctx_give_back(net_conn *c)
{
    wslay_event_context_ptr ctx = c->p.ws;
    if (!ctx) return;
    bool clean = ctx_clean(ctx);
    if (clean && c->ws_frag && c->state == NET__S_OPEN) return;
    c->p.ws = NULL;
    c->ws_frag = 0;
    net_worker *w = c->w;
    if (clean && !w->ws_spare) w->ws_spare = ctx;
    else wslay_event_context_free(ctx);
}

/* Feed one whole frame to wslay. */
static int feed_frame(void *arg, const uint8_t *frame, size_t len)
{
    net_conn *c = arg;
    net_worker *w = c->w;
    wslay_event_context_ptr ctx = ctx_take(c);
    if (!ctx) {
        net_close(c, NET_CLOSE_INTERNAL, "out of memory");
        return 1;
    }
    net_conn *outer = w->ws_cur;
    const uint8_t *outer_rx = w->ws_rx;
    size_t outer_rx_len = w->ws_rx_len;
    w->ws_cur = c;
    w->ws_rx = frame;
    w->ws_rx_len = len;
    int r = wslay_event_recv(ctx);
    w->ws_rx = NULL;
    w->ws_rx_len = 0;
    int stop = 1;
    if (c->state != NET__S_OPEN) {
        /* closed by us or the app meanwhile */
    } else if (r < 0) {
        wslay_event_shutdown_write(ctx);
        net_close(c, r == WSLAY_ERR_NOMEM ? NET_CLOSE_INTERNAL : NET_CLOSE_PROTOCOL, NULL);
    } else {
        bool ended = !wslay_event_get_read_enabled(ctx);
        if (wslay_event_want_write(ctx)) wslay_event_send(ctx);
        if (ended) {
            c->close_code = wslay_event_get_status_code_sent(ctx);
            net__conn_enter_closing(c);
        } else if (c->state == NET__S_OPEN) {
            stop = 0;
        }
    }
    w->ws_cur = outer;
    w->ws_rx = outer_rx;
    w->ws_rx_len = outer_rx_len;
    ctx_give_back(c);
    return stop;
}

void net__ws_input(net_conn *c, const uint8_t *p, size_t n)
{
    int r = net__frames_feed(&c->in, p, n, net__ws_frame_scan, c->w->n->cfg.max_frame, feed_frame, c);
    if (!buf_size(&c->in) && c->in.cap) buf_free(&c->in); /* kept only for an incomplete frame */
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
    buf *o = net__conn_out(c);
    buf_append(o, hdr, hl);
    buf_append(o, payload, pl);
    net__conn_mark_dirty(c);
}

void net__ws_free(net_conn *c)
{
    if (c->p.ws) wslay_event_context_free(c->p.ws);
    c->p.ws = NULL;
}

void net__ws_worker_free(net_worker *w)
{
    if (w->ws_spare) wslay_event_context_free(w->ws_spare);
    w->ws_spare = NULL;
}
