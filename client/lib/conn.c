/*
 * conn.c - one transport connection of a client, on the client's loop.
 *
 * A client has at most one current connection; when it ends, the client
 * detaches it (k->c = NULL) and may open a new one at once, while libuv
 * closes the old handle.  A detached connection calls nothing back and is
 * freed in its close callback.
 *
 *   RESOLVE --uv_getaddrinfo done (skipped for numeric hosts)--> CONNECT
 *   CONNECT --uv_tcp_connect done--> UPGRADE (ws) | OPEN (tcp: on_open)
 *   UPGRADE --101 with the right accept key--> OPEN (on_open)
 *   OPEN --whole messages--> parley__on_frame
 *   any --error, EOF, close frame, bad bytes (conn_end)--> parley__on_end, detached
 *   any --parley__conn_close by the client--> detached, no callback
 *   detached --uv_close done (on_closed)--> freed
 *
 * Output: frames are appended to `out` and written once per loop turn:
 * the first frame of a turn starts an idle handle, whose callback (in the
 * same turn for frames sent from timers, in the next one, without waiting
 * for I/O, for frames sent from I/O callbacks) writes everything queued by
 * then with one uv_try_write, and what the kernel did not take goes out
 * with one uv_write (moved to `wbuf`), the rest following when it
 * completes.  A client that sends several frames in one turn (a bench
 * catching up with its schedule, a resend after reconnecting) pays one
 * system call for them, not one each.  Write errors are reported by
 * uv_write's callback, never from inside parley__conn_send, so the
 * client's code that sends is never re-entered by a disconnect.
 *
 * Input is read into one 64 KiB buffer per thread, shared by every
 * connection of the thread's loop (libuv calls alloc and read back to back),
 * so an idle client holds no read buffer.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "core/mem.h"
#include "internal.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

typedef enum { K_RESOLVE, K_CONNECT, K_UPGRADE, K_OPEN } k_phase;

struct parley__conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_getaddrinfo_t gai;
    uv_write_t wreq;
    uv_idle_t idle;          /* writes `out` once per loop turn (see Output) */
    int handles;             /* handles still to close before k is freed */
    parley_client *c;        /* NULL once detached */
    k_phase phase;
    bool tcp_inited;
    bool connected;          /* the TCP connection is up: output may be written */
    bool writing;
    bool closing;
    bool idle_on;            /* idle started: `out` is written this turn */
    parley__transport transport;
    buf out, wbuf, hs;
    char accept[29];
    parley__wsdec ws;
    parley__lpdec lp;
};

static _Thread_local uint8_t rbuf[64 * 1024];

static void on_closed(uv_handle_t *h)
{
    parley__conn *k = h->data;
    if (k->handles > 1) {
        k->handles--;
        return;
    }
    buf_free(&k->out);
    buf_free(&k->wbuf);
    buf_free(&k->hs);
    parley__wsdec_free(&k->ws);
    parley__lpdec_free(&k->lp);
    pl_free(k);
}

/* Write what is queued and the handle is closed; the conn frees itself. */
static void close_handle(parley__conn *k)
{
    if (k->closing) return;
    k->closing = true;
    if (k->tcp_inited) {
        if (k->connected && !k->writing && buf_size(&k->out)) {
            /* Best effort for a last close frame; never blocks. */
            uv_buf_t b = uv_buf_init((char *)buf_begin(&k->out), (unsigned)buf_size(&k->out));
            uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
        }
        k->handles = 2;
        uv_close((uv_handle_t *)&k->idle, on_closed);
        uv_close((uv_handle_t *)&k->tcp, on_closed);
    } else if (k->phase == K_RESOLVE) {
        uv_cancel((uv_req_t *)&k->gai);   /* on_resolved runs and frees k */
    } else {
        on_closed((uv_handle_t *)&k->tcp);
    }
}

/* The connection ended by itself: detach, close, tell the client. */
static void conn_end(parley__conn *k, parley_status st, uint16_t ws_code, int http_status, const char *why)
{
    parley_client *c = k->c;
    if (!c) return;
    k->c = NULL;
    if (c->conn == k) c->conn = NULL;
    close_handle(k);
    parley__end e = {.st = st, .ws_code = ws_code, .http_status = http_status};
    snprintf(e.why, sizeof e.why, "%s", why ? why : "");
    parley__on_end(c, &e);
}

void parley__conn_close(parley__conn *k, uint16_t code)
{
    if (!k) return;
    parley_client *c = k->c;
    if (c && k->transport == PARLEY__WS && k->phase == K_OPEN && code) {
        uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        uint8_t mask[4];
        parley__rng_bytes(&c->rng, mask, 4);
        parley__ws_frame(&k->out, PARLEY__WS_CLOSE, pl, 2, mask);
    }
    if (c && c->conn == k) c->conn = NULL;
    k->c = NULL;
    close_handle(k);
}

/* ------------------------------------------------------------------ */
/* Output                                                               */
/* ------------------------------------------------------------------ */

static void flush(parley__conn *k);

static void on_written(uv_write_t *req, int status)
{
    parley__conn *k = req->data;
    k->writing = false;
    buf_reset(&k->wbuf);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            char why[96];
            snprintf(why, sizeof why, "write failed: %s", uv_strerror(status));
            conn_end(k, PARLEY_CLOSED, 0, 0, why);
        }
        return;
    }
    if (k->c) flush(k);
}

static void flush(parley__conn *k)
{
    if (!k->connected || k->writing || k->closing || !buf_size(&k->out)) return;
    uv_buf_t b = uv_buf_init((char *)buf_begin(&k->out), (unsigned)buf_size(&k->out));
    if (k->c) k->c->stats.writes++;
    int r = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (r > 0) {
        buf_consume(&k->out, (size_t)r);
        if (!buf_size(&k->out)) {
            buf_reset(&k->out);
            return;
        }
    }
    /* The rest (or everything, if try_write failed: uv_write then reports
     * the error from its callback). */
    buf t = k->wbuf;
    k->wbuf = k->out;
    k->out = t;
    buf_reset(&k->out);
    b = uv_buf_init((char *)buf_begin(&k->wbuf), (unsigned)buf_size(&k->wbuf));
    k->wreq.data = k;
    k->writing = true;
    if (k->c) k->c->stats.writes++;
    int w = uv_write(&k->wreq, (uv_stream_t *)&k->tcp, &b, 1, on_written);
    if (w < 0) {
        /* Not even queued (the handle is closing): drop it; the read side
         * or the client's timers notice the dead connection. */
        k->writing = false;
        buf_reset(&k->wbuf);
    }
}

static void on_idle(uv_idle_t *h)
{
    parley__conn *k = h->data;
    uv_idle_stop(h);
    k->idle_on = false;
    flush(k);
}

void parley__conn_send(parley__conn *k, const void *data, size_t len, bool binary)
{
    if (!k || !k->c || k->closing) return;
    parley_client *c = k->c;
    size_t before = buf_size(&k->out);
    if (k->transport == PARLEY__WS) {
        uint8_t mask[4];
        parley__rng_bytes(&c->rng, mask, 4);
        parley__ws_frame(&k->out, binary ? PARLEY__WS_BINARY : PARLEY__WS_TEXT, data, len, mask);
    } else {
        parley__lp_frame(&k->out, data, len);
    }
    c->stats.bytes_out += buf_size(&k->out) - before;
    if (!k->tcp_inited) return; /* written once connected (on_connect) */
    if (!k->idle_on) {
        k->idle_on = true;
        uv_idle_start(&k->idle, on_idle);
    }
}

/* ------------------------------------------------------------------ */
/* Input                                                                */
/* ------------------------------------------------------------------ */

static int on_msg(void *arg, unsigned opcode, const uint8_t *p, size_t n)
{
    parley__conn *k = arg;
    parley_client *c = k->c;
    if (!c) return 1;
    switch (opcode) {
    case PARLEY__WS_TEXT:
    case PARLEY__WS_BINARY:
        return parley__on_frame(c, opcode == PARLEY__WS_BINARY, p, n) || k->c == NULL;
    case PARLEY__WS_PING: {
        uint8_t mask[4];
        parley__rng_bytes(&c->rng, mask, 4);
        parley__ws_frame(&k->out, PARLEY__WS_PONG, p, n, mask);
        flush(k);
        return 0;
    }
    case PARLEY__WS_PONG:
        return 0;
    case PARLEY__WS_CLOSE: {
        uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : 1005;
        char why[160];
        size_t rl = n > 2 ? n - 2 : 0;
        if (rl > sizeof why - 1) rl = sizeof why - 1;
        if (rl) memcpy(why, p + 2, rl);
        why[rl] = 0;
        for (size_t i = 0; i < rl; i++)
            if ((unsigned char)why[i] < ' ' || why[i] == 0x7f) why[i] = '?';
        /* Answer the close with the same code, then end. */
        uint8_t mask[4];
        parley__rng_bytes(&c->rng, mask, 4);
        parley__ws_frame(&k->out, PARLEY__WS_CLOSE, p, n >= 2 ? 2 : 0, mask);
        char what[240];
        snprintf(what, sizeof what, "the server closed the connection (%u%s%.150s)", code, rl ? ": " : "", why);
        conn_end(k, PARLEY_CLOSED, code, 0, what);
        return 1;
    }
    }
    return 0;
}

static void feed(parley__conn *k, const uint8_t *p, size_t n)
{
    int r;
    if (k->transport == PARLEY__WS) r = parley__wsdec_feed(&k->ws, p, n, on_msg, k);
    else r = parley__lpdec_feed(&k->lp, p, n, on_msg, k);
    if (r == PARLEY__DEC_PROTO) {
        parley__conn *kk = k;
        if (kk->c && kk->transport == PARLEY__WS) {
            uint8_t pl[2] = {1002 >> 8, 1002 & 0xff}, mask[4];
            parley__rng_bytes(&kk->c->rng, mask, 4);
            parley__ws_frame(&kk->out, PARLEY__WS_CLOSE, pl, 2, mask);
        }
        conn_end(k, PARLEY_PROTOCOL, 0, 0, "malformed frame from the server");
    } else if (r == PARLEY__DEC_TOO_BIG) {
        conn_end(k, PARLEY_PROTOCOL, 0, 0, "a message from the server is larger than max_frame");
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    (void)h;
    (void)suggested;
    *b = uv_buf_init((char *)rbuf, sizeof rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    parley__conn *k = s->data;
    if (!k->c) return;
    if (nread == 0) return;
    if (nread < 0) {
        char why[96];
        if (nread == UV_EOF) snprintf(why, sizeof why, "the server closed the connection");
        else snprintf(why, sizeof why, "read failed: %s", uv_strerror((int)nread));
        conn_end(k, PARLEY_CLOSED, 0, 0, why);
        return;
    }
    parley_client *c = k->c;
    c->stats.bytes_in += (uint64_t)nread;
    const uint8_t *p = (const uint8_t *)b->base;
    size_t n = (size_t)nread;
    if (k->phase == K_UPGRADE) {
        buf_append(&k->hs, p, n);
        size_t used = 0;
        int status = 0;
        char err[200];
        int r = parley__ws_response(buf_begin(&k->hs), buf_size(&k->hs), k->accept, &used, &status, err,
                                    sizeof err);
        if (r == PARLEY__HS_MORE) return;
        if (r == PARLEY__HS_ERROR) {
            conn_end(k, PARLEY_CONNECT, 0, status, err);
            return;
        }
        k->phase = K_OPEN;
        buf rest = k->hs;
        k->hs = (buf){0};
        parley__on_open(c);
        if (k->c && buf_size(&rest) > used) feed(k, buf_begin(&rest) + used, buf_size(&rest) - used);
        buf_free(&rest);
        return;
    }
    feed(k, p, n);
}

/* ------------------------------------------------------------------ */
/* Connecting                                                           */
/* ------------------------------------------------------------------ */

static void on_connect(uv_connect_t *req, int status)
{
    parley__conn *k = req->data;
    if (status == UV_ECANCELED || !k->c) return;
    if (status < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to %.64s:%u: %.60s", k->c->url.host, (unsigned)k->c->url.port,
                 uv_strerror(status));
        conn_end(k, PARLEY_CONNECT, 0, 0, why);
        return;
    }
    parley_client *c = k->c;
    k->connected = true;
    uv_tcp_nodelay(&k->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&k->tcp, alloc_cb, on_read);
    if (r < 0) {
        conn_end(k, PARLEY_CONNECT, 0, 0, uv_strerror(r));
        return;
    }
    if (k->transport == PARLEY__WS) {
        uint8_t raw[16];
        char key[25];
        parley__rng_bytes(&c->rng, raw, sizeof raw);
        parley__ws_key(raw, key);
        parley__ws_accept(key, k->accept);
        parley__ws_request(&k->out, &c->url, key);
        k->phase = K_UPGRADE;
        flush(k);
    } else {
        k->phase = K_OPEN;
        flush(k);
        parley__on_open(c);
    }
}

static void start_connect(parley__conn *k, const struct sockaddr *sa)
{
    parley_client *c = k->c;
    k->phase = K_CONNECT;
    int r = uv_tcp_init_ex(c->loop, &k->tcp, sa->sa_family);
    if (r < 0) {
        conn_end(k, PARLEY_CONNECT, 0, 0, uv_strerror(r));
        return;
    }
    k->tcp.data = k;
    k->tcp_inited = true;
    uv_idle_init(c->loop, &k->idle);
    k->idle.data = k;
    if (c->has_bind) {
        uv_os_fd_t fd;
        if (uv_fileno((uv_handle_t *)&k->tcp, &fd) == 0) {
            int one = 1;
            /* Let connect() pick the port, so each source address has its
             * own ~28k ports per destination. */
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        }
        r = uv_tcp_bind(&k->tcp, (const struct sockaddr *)&c->bind_addr, 0);
        if (r < 0) {
            char why[160];
            snprintf(why, sizeof why, "cannot bind to %s: %s", c->bind_ip, uv_strerror(r));
            conn_end(k, PARLEY_CONNECT, 0, 0, why);
            return;
        }
    }
    k->creq.data = k;
    r = uv_tcp_connect(&k->creq, &k->tcp, sa, on_connect);
    if (r < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot connect to %.64s:%u: %.60s", c->url.host, (unsigned)c->url.port,
                 uv_strerror(r));
        conn_end(k, PARLEY_CONNECT, 0, 0, why);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    parley__conn *k = req->data;
    if (!k->c) {
        /* Detached while resolving: nothing else references k. */
        if (res) uv_freeaddrinfo(res);
        on_closed((uv_handle_t *)&k->tcp);
        return;
    }
    if (status < 0 || !res) {
        char why[160];
        snprintf(why, sizeof why, "cannot resolve %.64s: %.60s", k->c->url.host, uv_strerror(status));
        if (res) uv_freeaddrinfo(res);
        k->phase = K_CONNECT;      /* no longer resolving: conn_end frees at once */
        conn_end(k, PARLEY_CONNECT, 0, 0, why);
        return;
    }
    struct sockaddr_storage ss;
    memcpy(&ss, res->ai_addr, res->ai_addrlen);
    uv_freeaddrinfo(res);
    start_connect(k, (struct sockaddr *)&ss);
}

parley__conn *parley__conn_open(parley_client *c)
{
    parley__conn *k = PL_NEW(parley__conn);
    k->c = c;
    k->transport = c->url.transport;
    k->tcp.data = k;
    parley__wsdec_init(&k->ws, c->o.max_frame);
    parley__lpdec_init(&k->lp, c->o.max_frame);
    c->conn = k;

    struct sockaddr_storage ss;
    const char *host = !strcmp(c->url.host, "localhost") ? "127.0.0.1" : c->url.host;
    if (uv_ip4_addr(host, c->url.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, c->url.port, (struct sockaddr_in6 *)&ss) == 0) {
        start_connect(k, (struct sockaddr *)&ss);
        return c->conn == k ? k : NULL;
    }
    k->phase = K_RESOLVE;
    k->gai.data = k;
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)c->url.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    if (c->has_bind) hints.ai_family = c->bind_addr.ss_family;
    int r = uv_getaddrinfo(c->loop, &k->gai, on_resolved, c->url.host, port, &hints);
    if (r < 0) {
        char why[160];
        snprintf(why, sizeof why, "cannot resolve %.64s: %.60s", c->url.host, uv_strerror(r));
        k->phase = K_CONNECT;
        conn_end(k, PARLEY_CONNECT, 0, 0, why);
        return NULL;
    }
    return k;
}
