/*
 * conn.c - the life of a connection on its worker: reads, the outbound
 * queue and its flush, closing, the sweep's timeouts.
 *
 * Thread: everything here runs on the connection's worker thread.
 *
 * Sockets.  A stream connection is a socket watched with a uv_poll_t
 * (160 bytes, where a uv_tcp_t takes 248 and brings a write queue parley
 * does not need); the reads, writes and shutdown are plain system calls
 * here.  The poll watches for input while `reading` and for room while a
 * write is pending (poll_update), and changes only when that changes.
 *
 * Reading.  Every connection of a worker reads into the worker's one 64 KiB
 * buffer (read_some); the protocol code (httpconn.c, ws.c, tcpframe.c)
 * parses straight from it and copies only an incomplete frame or an
 * unanswered pipelined request into the connection's `in` buffer.
 *
 * Output.  net_send and net_http_respond append whole frames/responses to
 * `out` and put the connection on the worker's dirty list; the worker's
 * prepare hook (loop.c) calls net__conn_flush for each dirty connection
 * once per loop iteration, just before the loop sleeps.  A flush is one
 * send of everything queued; what the kernel does not take moves, buffer
 * and all, into the pending write (net__wreq), sent as the socket has room
 * (write_pending), and `out` starts afresh.  While a write is pending, new
 * frames wait in `out` for the next flush.  Invariant: `out` holds only
 * whole frames; a frame cut by a partial write lives on in the pending
 * write.  That is what lets a slow consumer's queue be
 * dropped (net__conn_out_room) without corrupting the stream: the close
 * frame that follows still lands on a frame boundary.  A buffer that has
 * been written out goes to the worker's cache (up to NET__OUT_CACHE of at
 * most NET__OUT_CACHE_CAP bytes) for the next connection with something to
 * send (net__conn_out), so output costs the heap nothing in steady state
 * and no connection keeps a buffer it is not using.
 *
 * Closing (see the diagram in net.h).  net_close queues the WebSocket
 * close frame and enters CLOSING; once everything is written the
 * connection sends FIN (shutdown) and LINGERs, reading and discarding
 * until the peer's EOF, so a peer still sending does not turn our close
 * into a reset that could destroy the response or close frame it has not
 * read yet.  CLOSING and LINGER together last at most NET__CLOSE_GRACE_MS
 * (the sweep enforces it).  net__conn_close_now runs on_close, once, and
 * uv_close; the socket and the memory go in close_cb.  Peer EOF, errors and timeouts all
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
 * Memory of an idle connection (x86-64, glibc): a net__sconn is 328
 * bytes, of which 160 are libuv's uv_poll_t, allocated as one 336-byte
 * chunk; libuv adds an 8-byte watcher slot per fd.  Connections hold no
 * buffer they are not using, no HTTP parser between requests and no wslay
 * context between frames (httpconn.c, ws.c), so an idle WebSocket costs
 * about 344 bytes of user-space memory here, plus its IP's shared entry;
 * tests/unit/net/test_idle_mem.c measures it on a burst of 5,000.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/net_internal.h"

static atomic_uint_fast64_t next_id = 1;

static net__sconn *sconn_of(net_conn *c) { return NET__CONTAINER_OF(c, net__sconn, c); }

uint64_t net__conn_next_id(void) { return atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed); }

static void poll_cb(uv_poll_t *h, int status, int events);
static void close_cb(uv_handle_t *h);

/* Watch for input while reading and for room while a write is pending. */
static void poll_update(net_conn *c)
{
    if (c->state == NET__S_CLOSED) return;
    unsigned ev = (c->reading ? UV_READABLE : 0) | (c->wreq ? UV_WRITABLE : 0);
    if (ev == c->polled) return;
    c->polled = ev & 3u;
    net__sconn *sc = sconn_of(c);
    if (ev) uv_poll_start(&sc->poll, (int)ev, poll_cb);
    else uv_poll_stop(&sc->poll);
}

void net__conn_read_start(net_conn *c)
{
    if (c->reading || c->eof || c->state == NET__S_CLOSED) return;
    c->reading = 1;
    poll_update(c);
}

void net__conn_read_stop(net_conn *c)
{
    if (!c->reading) return;
    c->reading = 0;
    poll_update(c);
}

void net__conn_accept(net_worker *w, int fd, net_kind kind, net__ip *ip)
{
    net *n = w->n;
    net__sconn *sc = PL_NEW(net__sconn);
    net_conn *c = &sc->c;
    if (uv_poll_init(&w->loop, &sc->poll, fd)) {
        close(fd);
        net__iptab_release(n->ips, ip);
        pl_free(sc);
        return;
    }
    sc->poll.data = c;
    sc->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->w = w;
    c->ip = ip;
    c->kind = (uint8_t)kind;
    c->id = net__conn_next_id();

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

static void input(net_conn *c, const uint8_t *p, size_t n)
{
    if (c->state >= NET__S_CLOSING) return; /* input after our close is dropped */
    c->last_rx = net__now(c->w);
    metric_add(net__m.bytes_in[c->kind], (uint64_t)n);
    switch (c->kind) {
    case NET_HTTP: net__http_input(c, p, n); break;
    case NET_WS: net__ws_input(c, p, n); break;
    case NET_TCP: net__tcp_input(c, p, n); break;
    }
}

/* Read while there is input and the connection still reads: a full
 * buffer is read again at once (up to NET__READS_PER_EVENT times), a short
 * read waits for the next readiness. */
static void read_some(net_conn *c)
{
    net_worker *w = c->w;
    int fd = sconn_of(c)->fd;
    for (int i = 0; i < NET__READS_PER_EVENT && c->reading; i++) {
        ssize_t r = recv(fd, w->rbuf, NET__RBUF_SIZE, 0);
        if (r > 0) {
            input(c, w->rbuf, (size_t)r);
            if ((size_t)r < NET__RBUF_SIZE) return;
        } else if (r == 0) {
            read_ended(c, UV_EOF);
            return;
        } else if (errno != EINTR) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) read_ended(c, -errno);
            return;
        }
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

/* Send what b holds, as far as the kernel takes it.  Returns 0, or -1 if
 * the connection failed (it is closed then). */
static int write_some(net_conn *c, buf *b)
{
    ssize_t r;
    do {
        r = send(sconn_of(c)->fd, buf_begin(b), buf_size(b), MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        net__conn_close_now(c);
        return -1;
    }
    metric_add(net__m.bytes_out[c->kind], (uint64_t)r);
    buf_consume(b, (size_t)r);
    return 0;
}

/* The socket has room for the pending write. */
static void write_pending(net_conn *c)
{
    net__wreq *wr = c->wreq;
    if (write_some(c, &wr->b) || buf_size(&wr->b)) return;
    c->wreq = NULL;
    out_recycle(c->w, &wr->b);
    pl_free(wr);
    poll_update(c);
    if (buf_size(&c->out) || c->state == NET__S_CLOSING) net__conn_mark_dirty(c);
}

/* The unwritten rest of `out` becomes the pending write. */
static void start_pending(net_conn *c)
{
    net__wreq *wr = pl_malloc(sizeof *wr);
    wr->b = c->out;
    memset(&c->out, 0, sizeof c->out);
    c->wreq = wr;
    poll_update(c);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    net_conn *c = h->data;
    if (status < 0) { /* libuv reports a socket error (POLLERR) so */
        net__conn_close_now(c);
        return;
    }
    if ((events & UV_WRITABLE) && c->wreq) write_pending(c);
    if ((events & UV_READABLE) && c->reading) read_some(c);
}

/* Everything is written: send FIN and wait for the peer's EOF. */
static void begin_linger(net_conn *c)
{
    if (c->eof || shutdown(sconn_of(c)->fd, SHUT_WR)) {
        net__conn_close_now(c);
        return;
    }
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
        if (write_some(c, &c->out)) return;
        if (buf_size(&c->out)) {
            start_pending(c);
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
    uv_close((uv_handle_t *)&sconn_of(c)->poll, close_cb);
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
    if (c->wreq) {
        buf_free(&c->wreq->b);
        pl_free(c->wreq);
    }
    out_recycle(w, &c->out);
    buf_free(&c->in);
    close(sconn_of(c)->fd);
    pl_free(sconn_of(c));
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
