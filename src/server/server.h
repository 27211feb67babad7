/*
 * server.h - the wiring of parleyd: what main.c, conn.c and routes.c share.
 *
 * The server layer owns no policy: it turns bytes from the net layer into
 * decoded frames and HTTP bodies for the chat layer, and chat's answers
 * back into bytes.  Threads: `server` is built on the main thread; each
 * `srv_worker` belongs to one net worker thread, and everything reached
 * from a connection callback runs on that thread.
 */
#ifndef PARLEY_SERVER_SERVER_H
#define PARLEY_SERVER_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

#include "chat/chat.h"
#include "core/buf.h"
#include "net/net.h"
#include "proto/codec.h"
#include "server/settings.h"
#include "store/store.h"

/* Period of each worker's on_tick: UDP retransmissions are due at this
 * granularity; chat_worker_tick runs every SRV_CHAT_TICK_MS of them. */
#define SRV_TICK_MS 50u
#define SRV_CHAT_TICK_MS 1000u

typedef struct srv_udp srv_udp;

typedef struct server {
    settings cfg;
    net *net;
    store *st;
    chat *chat;
    uv_loop_t *loop;
    uv_timer_t grace;
    uv_signal_t sigterm, sigint, sighup;
    atomic_bool draining;
    char **origins;                /* allowed_origins, split */
    size_t n_origins;
    bool any_origin;
    uint64_t started_ms;
    size_t n_workers;
    int dir_lock;                  /* DATA/parley.pid, flocked while running */
    int argc;                      /* the command line, read again on SIGHUP */
    char **argv;
} server;

typedef struct srv_worker {
    server *srv;
    net_worker *nw;
    chat_worker *cw;
    buf scratch;                   /* encoding buffer, reused */
    arena frames;                  /* the frame being handled, reset after it */
    bool frames_busy;              /* a frame of `frames` is being handled */
    uint64_t next_chat_tick;       /* clock_mono_ms of the next chat_worker_tick */
    srv_udp *udp_busy;             /* UDP sessions with datagrams not yet acked */
    srv_udp *udp_ack;              /* UDP sessions owing acks this loop iteration */
    mail goaway_mail;
} srv_worker;

/* conn.c: the net callbacks */
void srv_callbacks(server *srv, net_callbacks *cb);
/* Send goaway to every session of this worker (on its thread). */
void srv_worker_goaway(srv_worker *sw);

/* udp.c: sessions over UDP (reliable frames, proto/rudp.h) */
void srv_udp_open(srv_worker *sw, net_conn *c);
void srv_udp_message(net_conn *c, const uint8_t *data, size_t len);
void srv_udp_closed(net_conn *c);
/* Resend what is due; close peers that are gone. */
void srv_udp_tick(srv_worker *sw, uint64_t now_ms);
/* Send the acks no frame carried in this loop iteration. */
void srv_udp_flush(srv_worker *sw);

/* routes.c: one HTTP request (not an upgrade) */
void srv_http(srv_worker *sw, net_conn *c, const net_http_req *req);
/* routes.c: the pending HTTP call of a connection that closed */
void srv_http_closed(net_conn *c);
/* routes.c: the route of req and its body message, decoded as the chat
 * op expects it (path parameters, query, JSON or raw body).  0 with *op
 * and *body (free it with proto_free); or the status to answer: 404 (no
 * such path), 405 (the path exists: its methods in allow), 400 (a bad
 * body or parameter), with the reason in err.  Pure: no I/O, no chat. */
int srv_route_decode(const net_http_req *req, chat_op *op, ProtobufCMessage **body, char *allow,
                     size_t allowlen, char *err, size_t errlen);
/* routes.c: refuse a WebSocket upgrade with an HTTP status, or 0 */
int srv_ws_check(server *srv, const net_http_req *req);

#endif
