/*
 * conn.c - net callbacks to chat sessions: the worker's life, WebSocket and
 * TCP connections, and the dispatch of UDP ones to udp.c.
 *
 * Each WebSocket or TCP connection gets a srv_conn holding its chat
 * session and the encoding to answer in: TCP always speaks protobuf; a
 * WebSocket answers each frame in the encoding it came in (text = JSON,
 * binary = protobuf), and pushes go in the encoding of the last frame the
 * client sent (its login, usually).  Frames are encoded into the worker's
 * scratch buffer and queued with net_send, which copies them into the
 * connection's outbound buffer: no allocation per frame.  A UDP
 * connection's data is a srv_udp instead (udp.c).
 *
 * Timers: the net layer calls on_tick on each worker every SRV_TICK_MS;
 * it drives UDP retransmissions and, every SRV_CHAT_TICK_MS, the chat
 * worker's tick (login timeouts, sweeps).  on_flush sends the UDP acks
 * that no reply carried, once per loop iteration.
 */
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "server/server.h"

typedef struct srv_conn {
    net_conn *c;
    srv_worker *sw;
    chat_session *s;
    proto_enc enc;
} srv_conn;

static srv_worker *worker_of(net_conn *c) { return net_worker_data(net_conn_worker(c)); }

/* A push's encodings, one buffer per encoding, made on first use. */
static void memo_release(chat_memo *m)
{
    for (int i = 0; i < 2; i++) {
        buf *b = m->slot[i];
        if (b) {
            buf_free(b);
            pl_free(b);
        }
        m->slot[i] = NULL;
    }
}

static void io_send(void *conn, const Parley__Frame *f, chat_memo *memo)
{
    srv_conn *sc = conn;
    buf *b;
    if (memo) {
        b = memo->slot[sc->enc];
        if (!b) {
            b = memo->slot[sc->enc] = PL_NEW(buf);
            memo->release = memo_release;
            proto_frame_encode(f, sc->enc, b);
        }
    } else {
        b = &sc->sw->scratch;
        buf_reset(b);
        proto_frame_encode(f, sc->enc, b);
    }
    net_send(sc->c, sc->enc == PROTO_PB, buf_begin(b), buf_size(b));
}

static void io_close(void *conn, uint16_t code, const char *reason)
{
    srv_conn *sc = conn;
    net_close(sc->c, code, reason);
}

static const chat_io srv_io = {io_send, io_close};

static void goaway_fn(mail *m)
{
    srv_worker *sw = (srv_worker *)((char *)m - offsetof(srv_worker, goaway_mail));
    srv_worker_goaway(sw);
}

static void *on_worker_start(net_worker *w, void *ud)
{
    server *srv = ud;
    srv_worker *sw = PL_NEW(srv_worker);
    sw->srv = srv;
    sw->nw = w;
    sw->goaway_mail.fn = goaway_fn;
    sw->next_chat_tick = clock_mono_ms() + SRV_CHAT_TICK_MS;
    sw->cw = chat_worker_new(srv->chat, net_worker_index(w), srv->n_workers,
                             net_worker_mailbox(w));
    return sw;
}

static void on_tick(net_worker *w, void *wdata, uint64_t now_ms)
{
    srv_worker *sw = wdata;
    srv_udp_tick(sw, now_ms);
    if (now_ms >= sw->next_chat_tick) {
        sw->next_chat_tick = now_ms + SRV_CHAT_TICK_MS;
        chat_worker_tick(sw->cw, clock_wall_ms());
    }
}

static void on_flush(net_worker *w, void *wdata)
{
    srv_worker *sw = wdata;
    if (sw->udp_ack) srv_udp_flush(sw);
}

static void on_worker_stop(net_worker *w, void *wdata)
{
    srv_worker *sw = wdata;
    chat_worker_free(sw->cw);
    buf_free(&sw->scratch);
    arena_free(&sw->frames);
    pl_free(sw);
}

static void on_http(net_conn *c, const net_http_req *req) { srv_http(worker_of(c), c, req); }

static int on_ws_upgrade(net_conn *c, const net_http_req *req)
{
    return srv_ws_check(worker_of(c)->srv, req);
}

static void on_open(net_conn *c)
{
    srv_worker *sw = worker_of(c);
    if (net_conn_kind(c) == NET_UDP) {
        srv_udp_open(sw, c);
        return;
    }
    srv_conn *sc = PL_NEW(srv_conn);
    sc->c = c;
    sc->sw = sw;
    bool tcp = net_conn_kind(c) == NET_TCP;
    sc->enc = tcp ? PROTO_PB : PROTO_JSON;
    sc->s = chat_session_new(sw->cw, &srv_io, sc, tcp ? "tcp" : "ws", net_conn_remote_ip(c));
    net_conn_set_data(c, sc);
    if (atomic_load(&sw->srv->draining)) {
        Parley__Frame f = PARLEY__FRAME__INIT;
        Parley__Goaway g = PARLEY__GOAWAY__INIT;
        g.reason = "node is shutting down";
        f.body_case = PARLEY__FRAME__BODY_GOAWAY;
        f.goaway = &g;
        io_send(sc, &f, NULL);
        net_close(c, NET_CLOSE_GOING_AWAY, "shutting down");
    }
}

static void on_message(net_conn *c, bool binary, const uint8_t *data, size_t len)
{
    if (net_conn_kind(c) == NET_UDP) {
        srv_udp_message(c, data, len);
        return;
    }
    srv_conn *sc = net_conn_data(c);
    if (!sc) return;
    sc->enc = binary ? PROTO_PB : PROTO_JSON;
    /* Decoded into the worker's frame arena: the chat layer copies what
     * it keeps, so the frame is dropped with one reset and decoding
     * allocates nothing once the arena has its block.  Feeding can nest
     * (net/ws.c): a frame handled while another is being handled gets an
     * arena of its own, so the outer frame outlives it. */
    srv_worker *sw = sc->sw;
    arena nested = {0};
    bool outer = !sw->frames_busy;
    arena *fa = outer ? &sw->frames : &nested;
    sw->frames_busy = true;
    Parley__Frame *f = NULL;
    char err[160];
    pl_status st = proto_frame_decode_in(fa, sc->enc, data, len, &f, err, sizeof err);
    if (st) chat_session_bad_frame(sc->s, proto_frame_peek_id(sc->enc, data, len), st, err);
    else chat_session_frame(sc->s, f);
    if (outer) {
        arena_reset(fa);
        sw->frames_busy = false;
    } else {
        arena_free(fa);
    }
}

static void on_close(net_conn *c)
{
    if (net_conn_kind(c) == NET_HTTP) {
        srv_http_closed(c);
        return;
    }
    if (net_conn_kind(c) == NET_UDP) {
        srv_udp_closed(c);
        return;
    }
    srv_conn *sc = net_conn_data(c);
    if (!sc) return;
    net_conn_set_data(c, NULL);
    chat_session_closed(sc->s);
    pl_free(sc);
}

void srv_worker_goaway(srv_worker *sw) { chat_worker_goaway(sw->cw, NULL); }

void srv_callbacks(server *srv, net_callbacks *cb)
{
    memset(cb, 0, sizeof *cb);
    cb->ud = srv;
    cb->worker_start = on_worker_start;
    cb->worker_stop = on_worker_stop;
    cb->on_http = on_http;
    cb->on_ws_upgrade = on_ws_upgrade;
    cb->on_open = on_open;
    cb->on_message = on_message;
    cb->on_close = on_close;
    cb->on_tick = on_tick;
    cb->on_flush = on_flush;
}
