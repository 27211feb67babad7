/*
 * udp.c - chat sessions over UDP: reliable frames (proto/rudp.h) on the
 * net layer's UDP connections (SPEC section 3, "Acks and QoS").
 *
 * Each UDP connection (one peer address, net.h) gets a srv_udp: its chat
 * session and the rudp state of the peer.  Everything runs on the
 * connection's worker thread.
 *
 *   session start: a session's numbers begin at 1 in both directions, and
 *       a new connection acts on nothing numbered until the peer's number
 *       1 arrived.  A numbered frame above 1 from an address with no
 *       session belongs to a session this server no longer has (it timed
 *       out, or the server restarted): it is neither acked nor answered, so
 *       the client cannot mistake the new session's datagrams for its old
 *       ones; it gives up on its unacked datagrams and starts over from a
 *       new socket, with number 1 and a login (docs/protocol.md).
 *   inbound datagram (srv_udp_message): rudp_recv releases what the peer
 *       acked; a frame not seen before goes to chat_session_frame, once;
 *       a malformed datagram gets an error frame (sent reliably, like any
 *       frame), except from a peer that never sent a well-formed numbered
 *       frame: that connection is closed without an answer, so that
 *       garbage with a forged source address is not answered (and
 *       answered again by retransmission) to whoever owns the address.  The acks owed go
 *       out with the next frame sent to the peer; whatever no frame carried
 *       by the end of the loop iteration goes out as one ack-only datagram
 *       (srv_udp_flush, from net's on_flush).
 *   outbound frame (chat_io.send): numbered and kept by rudp_send until
 *       acked, sent with net_send.  A frame that cannot fit one datagram is
 *       not sent: a reply becomes a too_large error with its id, a push is
 *       dropped (the client sees the gap in useq and syncs with a smaller
 *       limit).
 *   tick (srv_udp_tick, every SRV_TICK_MS from net's on_tick): rudp_poll
 *       resends what is due; a peer that let a datagram go unacked through
 *       RUDP_MAX_TRIES sends is gone and its connection is closed.  Only
 *       connections with unacked datagrams are visited (the busy list).
 *
 * Closing.  When chat closes the session (kick, revoked token, login
 * timeout) the frames it sent last (`kicked`...) still deserve delivery:
 * the acks owed go out at once, and the connection lingers, resending,
 * until its frames are acked or SRV_UDP_LINGER_MS passed, then net_close.
 * While it lingers nothing new is sent and the peer's frames are neither
 * acted on nor acked.  The idle
 * timeout (no datagram for idle_timeout_ms) and net_stop close it in the
 * net layer directly.  A connection whose unacked datagrams exceed
 * max_outbound bytes is closed at once as a slow consumer.
 *
 * Memory per idle connection: the srv_udp, 768 bytes (696 of them the
 * rudp state, mostly its pending-ack array and receive bitmap), besides the
 * chat session (328) and the net layer's connection (about 220): about
 * 1.3 KiB in all.
 */
#include <stdio.h>
#include <string.h>

#include <utlist.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/mem.h"
#include "proto/rudp.h"
#include "server/server.h"

/* How long a closed session keeps resending its last frames. */
#define SRV_UDP_LINGER_MS 2000u

struct srv_udp {
    net_conn *c;
    srv_worker *sw;
    chat_session *s;
    srv_udp *bprev, *bnext;      /* sw->udp_busy: datagrams not yet acked */
    srv_udp *aprev, *anext;      /* sw->udp_ack: acks not yet sent */
    uint64_t linger_until;       /* closing with datagrams unacked: until when */
    bool busy, acking;           /* on those lists */
    bool valid;                  /* a well-formed numbered frame came from the peer */
    bool started;                /* the peer's number 1 arrived */
    bool closing;                /* chat closed the session */
    rudp r;
};

static void busy_add(srv_udp *u)
{
    if (u->busy) return;
    u->busy = true;
    DL_APPEND2(u->sw->udp_busy, u, bprev, bnext);
}

static void busy_remove(srv_udp *u)
{
    if (!u->busy) return;
    u->busy = false;
    DL_DELETE2(u->sw->udp_busy, u, bprev, bnext);
}

static void ack_add(srv_udp *u)
{
    if (u->acking) return;
    u->acking = true;
    DL_APPEND2(u->sw->udp_ack, u, aprev, anext);
}

static void ack_remove(srv_udp *u)
{
    if (!u->acking) return;
    u->acking = false;
    DL_DELETE2(u->sw->udp_ack, u, aprev, anext);
}

/* The largest datagram the net layer sends. */
static size_t udp_max(const srv_udp *u)
{
    size_t max = (size_t)u->sw->srv->cfg.max_frame;
    return max < NET_UDP_MAX ? max : NET_UDP_MAX;
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* The encoded size of f once rudp_send has numbered it and attached the
 * acks now pending. */
static size_t datagram_size(const srv_udp *u, const Parley__Frame *f)
{
    size_t n = protobuf_c_message_get_packed_size(&f->base);
    n += 1 + varint_len(u->r.next_dgram);
    if (u->r.n_acks) {
        size_t acks = 0;
        for (size_t i = 0; i < u->r.n_acks; i++) acks += varint_len(u->r.acks[i]);
        n += 1 + varint_len(acks) + acks;
    }
    return n;
}

static void close_slow(srv_udp *u)
{
    log_debug("udp: closing connection %llu (%s): %zu bytes unacked", (unsigned long long)net_conn_id(u->c),
              net_conn_remote_ip(u->c), rudp_unacked_bytes(&u->r));
    u->closing = true;
    busy_remove(u);
    metric_inc(metric_counter("parley_slow_consumer_disconnects_total",
                              "Connections closed because their outbound queue passed max_outbound.",
                              "transport=\"udp\""));
    net_close(u->c, NET_CLOSE_SLOW, "slow consumer");
}

static void io_send(void *conn, const Parley__Frame *f, chat_memo *memo)
{
    srv_udp *u = conn;
    if (u->closing) return;
    if (datagram_size(u, f) > udp_max(u)) {
        if (f->has_id && f->id) {
            Parley__Frame e = PARLEY__FRAME__INIT;
            Parley__Error err = PARLEY__ERROR__INIT;
            err.code = (char *)pl_status_str(PL_TOO_LARGE);
            err.message = "the reply does not fit in a UDP datagram: ask for less (a smaller limit)";
            e.has_id = true;
            e.id = f->id;
            e.body_case = PARLEY__FRAME__BODY_ERROR;
            e.error = &err;
            io_send(conn, &e, NULL);
        } else {
            log_debug("udp: a %s push does not fit in a datagram; dropped", proto_body_name(f->body_case));
        }
        return;
    }
    buf *b = &u->sw->scratch;
    rudp_send(&u->r, f, clock_mono_ms(), b);
    net_send(u->c, true, buf_begin(b), buf_size(b));
    busy_add(u);
    if (rudp_unacked_bytes(&u->r) > (size_t)u->sw->srv->cfg.max_outbound) close_slow(u);
}

static void io_close(void *conn, uint16_t code, const char *reason)
{
    srv_udp *u = conn;
    if (u->closing) return;
    u->closing = true;
    /* The frames acted on so far are acked now; none after this. */
    ack_remove(u);
    buf *b = &u->sw->scratch;
    if (rudp_ack(&u->r, b)) net_send(u->c, true, buf_begin(b), buf_size(b));
    if (!rudp_unacked_count(&u->r)) {
        busy_remove(u);
        net_close(u->c, code, reason);
        return;
    }
    u->linger_until = clock_mono_ms() + SRV_UDP_LINGER_MS;
}

static const chat_io udp_io = {io_send, io_close};

void srv_udp_open(srv_worker *sw, net_conn *c)
{
    srv_udp *u = PL_NEW(srv_udp);
    u->c = c;
    u->sw = sw;
    rudp_init(&u->r);
    u->s = chat_session_new(sw->cw, &udp_io, u, "udp", net_conn_remote_ip(c));
    net_conn_set_data(c, u);
    if (atomic_load(&sw->srv->draining)) {
        Parley__Frame f = PARLEY__FRAME__INIT;
        Parley__Goaway g = PARLEY__GOAWAY__INIT;
        g.reason = "node is shutting down";
        f.body_case = PARLEY__FRAME__BODY_GOAWAY;
        f.goaway = &g;
        io_send(u, &f, NULL);
        io_close(u, NET_CLOSE_GOING_AWAY, "shutting down");
    }
}

void srv_udp_message(net_conn *c, const uint8_t *data, size_t len)
{
    srv_udp *u = net_conn_data(c);
    if (!u) return;
    Parley__Frame *f = NULL;
    char err[160];
    if (!u->started) {
        /* Until number 1 arrives, a look at the number first (the first
         * datagrams of a connection are decoded twice). */
        if (proto_frame_decode(PROTO_PB, data, len, &f, err, sizeof err) == PL_OK) {
            bool numbered = f->body_case != PARLEY__FRAME__BODY__NOT_SET && f->has_dgram && f->dgram;
            uint64_t d = f->dgram;
            proto_free(&f->base);
            f = NULL;
            if (numbered && d != 1) return; /* a session we do not have */
            if (numbered) u->started = true;
        }
    }
    pl_status st = rudp_recv(&u->r, data, len, &f, err, sizeof err);
    if (st) {
        if (!u->valid) {
            /* Not one well-formed datagram from this address: no answer. */
            u->closing = true;
            net_close(c, NET_CLOSE_PROTOCOL, "malformed datagram");
        } else if (!u->closing) {
            chat_session_bad_frame(u->s, proto_frame_peek_id(PROTO_PB, data, len), st, err);
        }
        return;
    }
    if (f) u->valid = true;
    if (u->closing) {
        /* Lingering: only the peer's acks matter.  Its frames are not
         * acted on, so they must not be acked either (io_close sent the
         * acks owed before). */
        if (f) proto_free(&f->base);
        u->r.n_acks = 0;
        if (!rudp_unacked_count(&u->r)) {
            busy_remove(u);
            net_close(c, NET_CLOSE_NORMAL, NULL);
        }
        return;
    }
    if (f) {
        chat_session_frame(u->s, f);
        proto_free(&f->base);
    }
    if (u->r.n_acks && !u->closing) ack_add(u);
}

void srv_udp_closed(net_conn *c)
{
    srv_udp *u = net_conn_data(c);
    if (!u) return;
    net_conn_set_data(c, NULL);
    busy_remove(u);
    ack_remove(u);
    chat_session_closed(u->s);
    rudp_free(&u->r);
    pl_free(u);
}

static void emit(void *ud, const uint8_t *data, size_t len)
{
    srv_udp *u = ud;
    net_send(u->c, true, data, len);
}

void srv_udp_tick(srv_worker *sw, uint64_t now_ms)
{
    srv_udp *u, *tmp;
    DL_FOREACH_SAFE2(sw->udp_busy, u, tmp, bnext)
    {
        if (!rudp_unacked_count(&u->r) || (u->closing && now_ms >= u->linger_until)) {
            busy_remove(u);
            if (u->closing) net_close(u->c, NET_CLOSE_NORMAL, NULL);
            continue;
        }
        if (rudp_poll(&u->r, now_ms, emit, u) < 0) {
            log_debug("udp: connection %llu (%s): no ack after %d sends; closing",
                      (unsigned long long)net_conn_id(u->c), net_conn_remote_ip(u->c), RUDP_MAX_TRIES);
            u->closing = true;
            busy_remove(u);
            net_close(u->c, NET_CLOSE_IDLE, "peer gone");
            continue;
        }
        if (rudp_unacked_bytes(&u->r) > (size_t)sw->srv->cfg.max_outbound) close_slow(u);
    }
}

void srv_udp_flush(srv_worker *sw)
{
    buf *b = &sw->scratch;
    while (sw->udp_ack) {
        srv_udp *u = sw->udp_ack;
        ack_remove(u);
        if (!u->closing && rudp_ack(&u->r, b)) net_send(u->c, true, buf_begin(b), buf_size(b));
    }
}
