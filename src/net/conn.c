/*
 * conn.c - the life of a connection on its worker: reads, the outbound
 * queue and its flush, closing, the sweep's timeouts.
 *
 * Thread: everything here runs on the connection's worker thread.
 *
 * Reading.  Every connection of a worker reads into the worker's one 64 KiB
 * buffer (alloc_cb); the protocol code (httpconn.c, ws.c, tcpframe.c)
 * parses straight from it and copies only an incomplete frame or an
 * unanswered pipelined request into the connection's `in` buffer.
 *
 * Output.  net_send and net_http_respond append whole frames/responses to
 * `out` and put the connection on the worker's dirty list; the worker's
 * prepare hook (loop.c) calls net__conn_flush for each dirty connection
 * once per loop iteration, just before the loop sleeps.  A flush is one
 * uv_try_write of everything queued; what the kernel does not take moves,
 * buffer and all, into a write request (net__wreq) handed to uv_write, and
 * `out` starts afresh, so the bytes libuv holds never move.  While a write
 * is in flight, new frames wait in `out` for the next flush.  Invariant:
 * `out` holds only whole frames; a frame cut by a partial write lives on in
 * the in-flight request.  That is what lets a slow consumer's queue be
 * dropped (net__conn_out_room) without corrupting the stream: the close
 * frame that follows still lands on a frame boundary.  A buffer that has
 * been written out goes to the worker's cache (up to NET__OUT_CACHE of at
 * most NET__OUT_CACHE_CAP bytes) for the next connection with something to
 * send (net__conn_out), so output costs the heap nothing in steady state
 * and no connection keeps a buffer it is not using.
 *
 * Closing (see the diagram in net.h).  net_close queues the WebSocket
 * close frame and enters CLOSING; once everything is written the
 * connection sends FIN (uv_shutdown) and LINGERs, reading and discarding
 * until the peer's EOF, so a peer still sending does not turn our close
 * into a reset that could destroy the response or close frame it has not
 * read yet.  CLOSING and LINGER together last at most NET__CLOSE_GRACE_MS
 * (the sweep enforces it).  net__conn_close_now runs on_close, once, and
 * uv_close; the memory goes in close_cb.  Peer EOF, errors and timeouts all
 * end there too.
 *
 * The sweep (net__conn_sweep, every NET__TICK_MS from loop.c) replaces
 * per-connection timers: closing deadlines, the HTTP head timeout (and the
 * same bound on silence inside a request body), idle timeouts, and
 * releasing any buffer a connection quiet for NET__TRIM_AFTER_MS still
 * holds.
 *
 * UDP connections (udp.c) share the state field, the dirty list (to be
 * closed before the loop sleeps) and the idle timeout; they have no
 * stream, no buffers and no linger.
 *
 * Memory of an idle connection (x86-64, glibc): a net__sconn is 408
 * bytes, of which 248 are libuv's uv_tcp_t, allocated as one 416-byte
 * chunk; libuv adds an 8-byte watcher slot per fd.  Connections hold no
 * buffer they are not using, no HTTP parser between requests and no wslay
 * context between frames (httpconn.c, ws.c), so an idle WebSocket costs
 * about 424 bytes of user-space memory here, plus its IP's shared entry;
 * tests/unit/net/test_idle_mem.c measures it on a burst of 5,000.
 */
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/net_internal.h"

static atomic_uint_fast64_t next_id = 1;

/* The stream handle of an HTTP, WebSocket or TCP connection. */
static uv_tcp_t *stream_of(net_conn *c) { return &NET__CONTAINER_OF(c, net__sconn, c)->tcp; }

uint64_t net__conn_next_id(void) { return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed); }

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void close_cb(uv_handle_t *h);

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    net_conn *c = h->data;
    b->base = (char *)c->w->rbuf;
    b->len = NET__RBUF_SIZE;
}

void net__conn_read_start(net_conn *c)
{
    if (c->reading || c->eof || c->state == NET__S_CLOSED) return;
    if (uv_read_start((uv_stream_t *)stream_of(c), alloc_cb, read_cb) == 0) c->reading = 1;
}

void net__conn_read_stop(net_conn *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)stream_of(c));
    c->reading = 0;
}

static void open_failed_cb(uv_handle_t *h)
{
    net_conn *c = h->data;
    net__iptab_release(c->w->n->ips, c->ip);
    pl_free(NET__CONTAINER_OF(c, net__sconn, c));
}

void net__conn_accept(net_worker *w, int fd, net_kind kind, net__ip *ip)
{
    net *n = w->n;
    net__sconn *sc = PL_NEW(net__sconn);
    net_conn *c = &sc->c;
    c->w = w;
    c->ip = ip;
    c->kind = (uint8_t)kind;
    c->id = net__conn_next_id();
    uv_tcp_init(&w->loop, &sc->tcp);
    sc->tcp.data = c;
    if (uv_tcp_open(&sc->tcp, fd)) {
        close(fd);
        c->state = NET__S_CLOSED;
        uv_close((uv_handle_t *)&sc->tcp, open_failed_cb);
        return;
    }
    uv_tcp_nodelay(&sc->tcp, 1);

    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&w->counts[kind], 1, memory_order_relaxed);

    uint32_t now = net__now(w);
    c->last_rx = now;
    c->t_mark = now;
    if (kind == NET_TCP) {
        c->state = NET__S_OPEN;
    } else {
        c->state = NET__S_HTTP_READ;
        c->head_wait = 1;
    }
    net__conn_read_start(c);
    if (kind == NET_TCP && n->cb.on_open) n->cb.on_open(c);
}

void net__conn_set_kind(net_conn *c, net_kind kind)
{
    atomic_fetch_sub_explicit(&c->w->counts[c->kind], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->w->counts[kind], 1, memory_order_relaxed);
    c->kind = (uint8_t)kind;
}

/* ------------------------------------------------------------------ */
/* Input                                                                */
/* ------------------------------------------------------------------ */

static void read_ended(net_conn *c, int err)
{
    net__conn_read_stop(c);
    if (err != UV_EOF) {
        net__conn_close_now(c);
        return;
    }
    c->eof = 1;
    switch (c->state) {
    case NET__S_CLOSING:
        return; /* closes once flushed */
    case NET__S_HTTP_APP:
        return; /* the response is sent, then the connection closes */
    case NET__S_LINGER:
        net__conn_close_now(c);
        return;
    default:
        /* A half-closed peer may still read what is queued for it. */
        if (net__conn_queued(c)) net__conn_enter_closing(c);
        else net__conn_close_now(c);
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    net_conn *c = s->data;
    if (nread == 0) return;
    if (nread < 0) {
        read_ended(c, (int)nread);
        return;
    }
    if (c->state >= NET__S_CLOSING) return; /* input after our close is dropped */
    c->last_rx = net__now(c->w);
    metric_add(net__m.bytes_in[c->kind], (uint64_t)nread);
    const uint8_t *p = (const uint8_t *)b->base;
    switch (c->kind) {
    case NET_HTTP: net__http_input(c, p, (size_t)nread); break;
    case NET_WS: net__ws_input(c, p, (size_t)nread); break;
    case NET_TCP: net__tcp_input(c, p, (size_t)nread); break;
    }
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

void net__conn_mark_dirty(net_conn *c)
{
    if (c->dirty || c->state == NET__S_CLOSED) return;
    net_worker *w = c->w;
    c->dirty = 1;
    c->dprev = NULL;
    c->dnext = w->dirty;
    if (w->dirty) w->dirty->dprev = c;
    w->dirty = c;
}

static void dirty_unlink(net_conn *c)
{
    if (!c->dirty) return;
    if (c->dprev) c->dprev->dnext = c->dnext;
    else c->w->dirty = c->dnext;
    if (c->dnext) c->dnext->dprev = c->dprev;
    c->dprev = c->dnext = NULL;
    c->dirty = 0;
}

void net__conn_unmark_dirty(net_conn *c) { dirty_unlink(c); }

/* An emptied buffer goes to the worker's cache if it is small and there
 * is room, else back to the heap. */
static void out_recycle(net_worker *w, buf *b)
{
    if (b->cap && b->cap <= NET__OUT_CACHE_CAP && w->n_out_cache < NET__OUT_CACHE) {
        buf_reset(b);
        w->out_cache[w->n_out_cache++] = *b;
        memset(b, 0, sizeof *b);
    } else {
        buf_free(b);
    }
}

buf *net__conn_out(net_conn *c)
{
    net_worker *w = c->w;
    if (!c->out.cap && w->n_out_cache) c->out = w->out_cache[--w->n_out_cache];
    return &c->out;
}

void net__out_cache_free(net_worker *w)
{
    while (w->n_out_cache) buf_free(&w->out_cache[--w->n_out_cache]);
}

size_t net__conn_queued(const net_conn *c)
{
    return buf_size(&c->out) + (c->wreq ? buf_size(&c->wreq->b) : 0);
}

int net__conn_out_room(net_conn *c, size_t n)
{
    size_t max = c->w->n->cfg.max_outbound;
    if (net__conn_queued(c) + n <= max) return 0;
    /* A slow consumer: drop the whole frames not yet handed to the kernel
     * (the in-flight request keeps any frame already begun). */
    buf_reset(&c->out);
    metric_inc(net__m.slow[c->kind]);
    log_debug("net: closing connection %llu (%s): outbound queue over %zu bytes", (unsigned long long)c->id,
              net__ip_str(c->ip), max);
    net_close(c, NET_CLOSE_SLOW, "slow consumer");
    return -1;
}

static void write_cb(uv_write_t *req, int status)
{
    net__wreq *wr = NET__CONTAINER_OF(req, net__wreq, u.write);
    net_conn *c = req->handle->data;
    c->wreq = NULL;
    out_recycle(c->w, &wr->b);
    pl_free(wr);
    if (status < 0) {
        if (status != UV_ECANCELED) net__conn_close_now(c);
        return;
    }
    if (buf_size(&c->out) || c->state == NET__S_CLOSING) net__conn_mark_dirty(c);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    net__wreq *wr = NET__CONTAINER_OF(req, net__wreq, u.shutdown);
    net_conn *c = req->handle->data;
    c->wreq = NULL;
    pl_free(wr);
    if (status < 0 && status != UV_ECANCELED) net__conn_close_now(c);
}

/* Hand the unwritten rest of `out` to uv_write. */
static int start_write(net_conn *c)
{
    net__wreq *wr = pl_malloc(sizeof *wr);
    wr->b = c->out;
    memset(&c->out, 0, sizeof c->out);
    uv_buf_t b = uv_buf_init((char *)buf_begin(&wr->b), (unsigned)buf_size(&wr->b));
    if (uv_write(&wr->u.write, (uv_stream_t *)stream_of(c), &b, 1, write_cb)) {
        buf_free(&wr->b);
        pl_free(wr);
        net__conn_close_now(c);
        return -1;
    }
    c->wreq = wr;
    metric_add(net__m.bytes_out[c->kind], b.len);
    return 0;
}

/* Everything is written: send FIN and wait for the peer's EOF. */
static void begin_linger(net_conn *c)
{
    if (c->eof) {
        net__conn_close_now(c);
        return;
    }
    net__wreq *wr = PL_NEW(net__wreq);
    if (uv_shutdown(&wr->u.shutdown, (uv_stream_t *)stream_of(c), shutdown_cb)) {
        pl_free(wr);
        net__conn_close_now(c);
        return;
    }
    c->wreq = wr;
    c->state = NET__S_LINGER;
    net__conn_read_start(c);
}

void net__conn_flush(net_conn *c)
{
    dirty_unlink(c);
    if (c->kind == NET_UDP) {
        /* A UDP connection is on the dirty list only to be closed. */
        if (c->state == NET__S_CLOSING) net__udp_close_now(c);
        return;
    }
    if (c->state == NET__S_CLOSED) return;
    if (!c->wreq && buf_size(&c->out)) {
        uv_buf_t b = uv_buf_init((char *)buf_begin(&c->out), (unsigned)buf_size(&c->out));
        int r = uv_try_write((uv_stream_t *)stream_of(c), &b, 1);
        if (r == UV_EAGAIN) r = 0;
        if (r < 0) {
            net__conn_close_now(c);
            return;
        }
        metric_add(net__m.bytes_out[c->kind], (uint64_t)r);
        buf_consume(&c->out, (size_t)r);
        if (buf_size(&c->out)) {
            if (start_write(c)) return;
        } else {
            /* All written: the buffer serves whoever sends next. */
            out_recycle(c->w, &c->out);
        }
    }
    if (c->state == NET__S_CLOSING && !c->wreq && !buf_size(&c->out)) begin_linger(c);
}

/* ------------------------------------------------------------------ */
/* Closing                                                              */
/* ------------------------------------------------------------------ */

void net__conn_enter_closing(net_conn *c)
{
    if (c->state >= NET__S_CLOSING) return;
    c->state = NET__S_CLOSING;
    c->t_mark = net__now(c->w);
    net__conn_mark_dirty(c);
}

void net__conn_close_now(net_conn *c)
{
    if (c->kind == NET_UDP) {
        net__udp_close_now(c);
        return;
    }
    if (c->state == NET__S_CLOSED) return;
    c->state = NET__S_CLOSED;
    dirty_unlink(c);
    net__conn_read_stop(c);
    net_callbacks *cb = &c->w->n->cb;
    if (cb->on_close) cb->on_close(c);
    uv_close((uv_handle_t *)stream_of(c), close_cb);
}

static void close_cb(uv_handle_t *h)
{
    net_conn *c = h->data;
    net_worker *w = c->w;
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    atomic_fetch_sub_explicit(&w->counts[c->kind], 1, memory_order_relaxed);
    net__iptab_release(w->n->ips, c->ip);
    if (c->kind == NET_HTTP) {
        net__http_release(c);
    } else if (c->kind == NET_WS) {
        net__ws_free(c);
    }
    out_recycle(w, &c->out);
    buf_free(&c->in);
    pl_free(NET__CONTAINER_OF(c, net__sconn, c));
    net__worker_maybe_finish(w);
}

void net__conn_sweep(net_conn *c, uint32_t now, bool trim)
{
    const net_config *cfg = &c->w->n->cfg;
    if (c->kind == NET_UDP) {
        /* No buffers to trim; CLOSING ends before the loop sleeps. */
        if (c->state == NET__S_OPEN && cfg->idle_timeout_ms && now - c->last_rx >= cfg->idle_timeout_ms)
            net_close(c, NET_CLOSE_IDLE, "idle timeout");
        return;
    }
    switch (c->state) {
    case NET__S_CLOSING:
    case NET__S_LINGER:
        if (now - c->t_mark >= NET__CLOSE_GRACE_MS) net__conn_close_now(c);
        return;
    case NET__S_HTTP_READ: {
        uint32_t ht = cfg->header_timeout_ms;
        bool in_request = c->p.http && c->p.http->started;
        if (ht && c->head_wait && now - c->t_mark >= ht) {
            net__http_error(c, 408, NULL, "request head not received in time");
            return;
        }
        if (ht && !c->head_wait && in_request && now - c->last_rx >= ht) {
            /* A body that stalls: no byte for as long as a head may take. */
            net__http_error(c, 408, NULL, "request body stalled");
            return;
        }
        if (cfg->idle_timeout_ms && now - c->last_rx >= cfg->idle_timeout_ms) {
            net_close(c, 0, NULL);
            return;
        }
        break;
    }
    case NET__S_HTTP_APP:
        if (c->stop_pending && now - c->t_mark >= NET__CLOSE_GRACE_MS) {
            net__conn_close_now(c);
            return;
        }
        break;
    case NET__S_OPEN:
        if (cfg->idle_timeout_ms && now - c->last_rx >= cfg->idle_timeout_ms) {
            net_close(c, NET_CLOSE_IDLE, "idle timeout");
            return;
        }
        break;
    default:
        return;
    }
    if (trim && now - c->last_rx >= NET__TRIM_AFTER_MS) {
        if (!c->wreq && !buf_size(&c->out) && c->out.cap) out_recycle(c->w, &c->out);
        if (!buf_size(&c->in) && c->in.cap) buf_free(&c->in);
    }
}

/* ------------------------------------------------------------------ */
/* Public                                                               */
/* ------------------------------------------------------------------ */

int net_send(net_conn *c, bool binary, const void *data, size_t len)
{
    if (c->state != NET__S_OPEN) return -1;
    if (c->kind == NET_UDP) return net__udp_send(c, data, len);
    uint8_t hdr[10];
    size_t hl;
    if (c->kind == NET_WS) {
        hl = net__ws_frame_header(hdr, true, binary ? NET__WS_BINARY : NET__WS_TEXT, len);
    } else if (c->kind == NET_TCP) {
        if (len > UINT32_MAX) return -1;
        hdr[0] = (uint8_t)(len >> 24);
        hdr[1] = (uint8_t)(len >> 16);
        hdr[2] = (uint8_t)(len >> 8);
        hdr[3] = (uint8_t)len;
        hl = 4;
    } else {
        return -1;
    }
    if (net__conn_out_room(c, hl + len)) return -1;
    buf_reserve(net__conn_out(c), hl + len);
    memcpy(c->out.data + c->out.len, hdr, hl);
    if (len) memcpy(c->out.data + c->out.len + hl, data, len);
    c->out.len += hl + len;
    net__conn_mark_dirty(c);
    metric_inc(net__m.frames_out[c->kind]);
    return 0;
}

void net_close(net_conn *c, uint16_t code, const char *reason)
{
    if (c->state >= NET__S_CLOSING) return;
    if (c->kind == NET_WS && c->state == NET__S_OPEN) net__ws_close(c, code, reason);
    c->close_code = code;
    net__conn_enter_closing(c);
}

net_worker *net_conn_worker(const net_conn *c) { return c->w; }
net_kind net_conn_kind(const net_conn *c) { return (net_kind)c->kind; }
void net_conn_set_data(net_conn *c, void *data) { c->data = data; }
void *net_conn_data(const net_conn *c) { return c->data; }
const char *net_conn_remote_ip(const net_conn *c) { return net__ip_str(c->ip); }
uint64_t net_conn_id(const net_conn *c) { return c->id; }
size_t net_conn_queued(const net_conn *c) { return c->kind == NET_UDP ? 0 : net__conn_queued(c); }
