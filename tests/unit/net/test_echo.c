/*
 * test_echo.c - the net layer end to end: net_start on port 0 with a tiny
 * echo application, driven over real sockets from the test thread with
 * plain POSIX calls.
 *
 * The application echoes every WebSocket and TCP message, answers HTTP
 * with a fixed body ("/echo" echoes the body, "/defer" answers later from a
 * mail to its own worker), accepts WebSocket upgrades on /v1/ws only and
 * refuses a bad Origin, and on the text "flood" sends far more than its
 * client reads.  The server runs net_run on a thread of its own; the test
 * stops it through an async handle on its main loop, as parleyd's signal
 * handler would.
 *
 * Every socket read has a 3 s timeout, so a broken server fails a test
 * instead of hanging it.
 */
#define _GNU_SOURCE /* memmem, strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/mem.h"
#include "net/net_internal.h"

/* ------------------------------------------------------------------ */
/* The echo application                                                 */
/* ------------------------------------------------------------------ */

static atomic_int n_opens, n_closes, n_slow, n_worker_starts, n_worker_stops, n_bad_ip;

typedef struct defer {
    mail m;
    net_conn *c;
} defer;

static void *app_worker_start(net_worker *w, void *ud)
{
    atomic_fetch_add(&n_worker_starts, 1);
    return (void *)(uintptr_t)(0x1000 + net_worker_index(w));
}

static void app_worker_stop(net_worker *w, void *wdata)
{
    if (wdata == (void *)(uintptr_t)(0x1000 + net_worker_index(w))) atomic_fetch_add(&n_worker_stops, 1);
}

static void defer_fn(mail *m)
{
    defer *d = (defer *)m;
    if (d->c) {
        net_conn_set_data(d->c, NULL);
        net_http_respond(d->c, 200, "text/plain", NULL, "deferred\n", 9);
    }
    free(d);
}

static void app_http(net_conn *c, const net_http_req *req)
{
    if (strcmp(net_conn_remote_ip(c), "127.0.0.1")) atomic_fetch_add(&n_bad_ip, 1);
    if (!strcmp(req->path, "/echo")) {
        net_http_respond(c, 200, "application/octet-stream", "X-Echo: yes\r\n", req->body, req->body_len);
    } else if (!strcmp(req->path, "/defer")) {
        defer *d = calloc(1, sizeof *d);
        d->m.fn = defer_fn;
        d->c = c;
        net_conn_set_data(c, d);
        mailbox_post(net_worker_mailbox(net_conn_worker(c)), &d->m);
    } else if (!strcmp(req->path, "/hang")) {
        /* never answered */
    } else if (!strcmp(req->path, "/info")) {
        char body[256];
        int n = snprintf(body, sizeof body, "%s %s ?%s", req->method, req->path, req->query);
        net_http_respond(c, 200, "text/plain", NULL, body, (size_t)n);
    } else {
        net_http_respond(c, 200, "text/plain", NULL, "hello\n", 6);
    }
}

static int app_ws_upgrade(net_conn *c, const net_http_req *req)
{
    if (strcmp(req->path, "/v1/ws")) return 404;
    const char *origin = net_http_header(req, "Origin");
    if (origin && !strcmp(origin, "http://evil.example")) return 403;
    return 0;
}

static void app_open(net_conn *c)
{
    if (strcmp(net_conn_remote_ip(c), "127.0.0.1")) atomic_fetch_add(&n_bad_ip, 1);
    atomic_fetch_add(&n_opens, 1);
}

static uint8_t flood_msg[60000];

static void app_message(net_conn *c, bool binary, const uint8_t *data, size_t len)
{
    if (!binary && len == 5 && !memcmp(data, "flood", 5)) {
        for (int i = 0; i < 2; i++)
            if (net_send(c, true, flood_msg, sizeof flood_msg)) {
                atomic_fetch_add(&n_slow, 1);
                break;
            }
        return;
    }
    if (!binary && len == 5 && !memcmp(data, "close", 5)) {
        net_close(c, NET_CLOSE_KICKED, "bye");
        return;
    }
    net_send(c, binary, data, len);
}

static void app_close(net_conn *c)
{
    defer *d = net_conn_data(c);
    if (d) d->c = NULL;
    atomic_fetch_add(&n_closes, 1);
}

static const net_callbacks app = {
    .worker_start = app_worker_start,
    .worker_stop = app_worker_stop,
    .on_http = app_http,
    .on_ws_upgrade = app_ws_upgrade,
    .on_open = app_open,
    .on_message = app_message,
    .on_close = app_close,
};

/* ------------------------------------------------------------------ */
/* Running a server                                                     */
/* ------------------------------------------------------------------ */

typedef struct server {
    net *n;
    uv_thread_t thread;
    uv_async_t stop;
    uint16_t code;
    int http_port, tcp_port;
} server;

static void stop_cb(uv_async_t *a)
{
    server *s = a->data;
    net_stop(s->n, s->code);
    uv_close((uv_handle_t *)a, NULL);
}

static void run_thread(void *arg)
{
    server *s = arg;
    net_run(s->n);
}

static net_config test_config(void)
{
    net_config cfg = {
        .http_addr = "127.0.0.1:0",
        .tcp_addr = "127.0.0.1:0",
        .workers = 2,
        .max_frame = 4096,
        .max_header = 1024,
        .max_body = 4096,
        .max_outbound = 256 * 1024,
        .header_timeout_ms = 600,
        .idle_timeout_ms = 0,
    };
    return cfg;
}

static void server_start(server *s, const net_config *cfg)
{
    char err[256];
    memset(s, 0, sizeof *s);
    if (net_start(&s->n, cfg, &app, err, sizeof err)) fail_msg("net_start: %s", err);
    s->http_port = net_http_port(s->n);
    s->tcp_port = net_tcp_port(s->n);
    assert_true(s->http_port > 0);
    uv_async_init(net_main_loop(s->n), &s->stop, stop_cb);
    s->stop.data = s;
    uv_thread_create(&s->thread, run_thread, s);
}

static void server_stop(server *s, uint16_t code)
{
    s->code = code;
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    net_free(s->n);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ */
/* A blocking client                                                    */
/* ------------------------------------------------------------------ */

typedef struct client {
    int fd;
    buf in;
} client;

static void client_open(client *c, int port, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    struct timeval tv = {3, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

static void client_close(client *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
}

static void client_send(client *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t r = send(c->fd, s, n, MSG_NOSIGNAL);
        if (r <= 0) fail_msg("send: %s", strerror(errno));
        s += r;
        n -= (size_t)r;
    }
}

static void client_sends(client *c, const char *s) { client_send(c, s, strlen(s)); }

/* Read more into c->in: > 0 bytes read, 0 EOF, -1 reset, -2 timeout. */
static int client_fill(client *c)
{
    buf_reserve(&c->in, 65536);
    ssize_t r = recv(c->fd, c->in.data + c->in.len, 65536, 0);
    if (r > 0) {
        c->in.len += (size_t)r;
        return (int)r;
    }
    if (r == 0) return 0;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -2;
    return -1;
}

static int client_need(client *c, size_t n)
{
    while (buf_size(&c->in) < n) {
        int r = client_fill(c);
        if (r <= 0) return r == 0 ? -1 : r;
    }
    return 0;
}

/* True when the server closed the connection (EOF or reset) within the
 * read timeout; data received meanwhile is dropped. */
static bool client_closed(client *c)
{
    for (;;) {
        buf_reset(&c->in);
        int r = client_fill(c);
        if (r == 0 || r == -1) return true;
        if (r == -2) return false;
    }
}

/* One HTTP response: status, head (NUL-terminated) and body. */
static int http_response(client *c, char *head, size_t headlen, buf *body)
{
    uint8_t *end;
    for (;;) {
        end = buf_size(&c->in) ? memmem(buf_begin(&c->in), buf_size(&c->in), "\r\n\r\n", 4) : NULL;
        if (end) break;
        if (client_fill(c) <= 0) return -1;
    }
    size_t hl = (size_t)(end - buf_begin(&c->in)) + 4;
    size_t copy = hl < headlen ? hl : headlen - 1;
    memcpy(head, buf_begin(&c->in), copy);
    head[copy] = 0;
    int status = atoi(head + 9);
    size_t clen = 0;
    const char *cl = strcasestr(head, "\r\nContent-Length:");
    if (cl) clen = (size_t)strtoul(cl + 17, NULL, 10);
    buf_consume(&c->in, hl);
    if (status == 100) return http_response(c, head, headlen, body);
    if (client_need(c, clen)) return -1;
    buf_reset(body);
    buf_append(body, buf_begin(&c->in), clen);
    buf_consume(&c->in, clen);
    return status;
}

/* WebSocket: masked client frames, unmasked server frames. */
static void ws_send(client *c, bool fin, unsigned op, const void *p, size_t n)
{
    uint8_t h[14];
    size_t hl = net__ws_frame_header(h, fin, op, n);
    h[1] |= 0x80;
    const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    memcpy(h + hl, key, 4);
    hl += 4;
    uint8_t *f = malloc(hl + n + 1);
    memcpy(f, h, hl);
    for (size_t i = 0; i < n; i++) f[hl + i] = ((const uint8_t *)p)[i] ^ key[i % 4];
    client_send(c, f, hl + n);
    free(f);
}

static void ws_send_unmasked(client *c, unsigned op, const void *p, size_t n)
{
    uint8_t h[10];
    size_t hl = net__ws_frame_header(h, true, op, n);
    client_send(c, h, hl);
    client_send(c, p, n);
}

/* Read one server frame; 0 or -1 (closed, timeout or a masked frame). */
static int ws_recv(client *c, unsigned *op, buf *payload)
{
    if (client_need(c, 2)) return -1;
    const uint8_t *p = buf_begin(&c->in);
    if (p[1] & 0x80) return -1;
    size_t len = p[1] & 0x7f, hl = 2;
    if (len == 126) hl = 4;
    else if (len == 127) hl = 10;
    if (client_need(c, hl)) return -1;
    p = buf_begin(&c->in);
    if (len == 126) len = (size_t)p[2] << 8 | p[3];
    else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
    }
    if (client_need(c, hl + len)) return -1;
    p = buf_begin(&c->in);
    *op = p[0] & 0x0f;
    buf_reset(payload);
    buf_append(payload, p + hl, len);
    buf_consume(&c->in, hl + len);
    return 0;
}

static uint16_t close_code(const buf *payload)
{
    if (buf_size(payload) < 2) return 0;
    return (uint16_t)(buf_begin(payload)[0] << 8 | buf_begin(payload)[1]);
}

/* Expect a close frame with `code`, then the connection closed. */
static void ws_expect_close(client *c, uint16_t code)
{
    unsigned op;
    buf p = {0};
    assert_int_equal(ws_recv(c, &op, &p), 0);
    assert_int_equal(op, NET__WS_CLOSE);
    assert_int_equal(close_code(&p), code);
    buf_free(&p);
    assert_true(client_closed(c));
}

static const char *ws_key = "dGhlIHNhbXBsZSBub25jZQ==";

static int ws_handshake(client *c, int port, const char *path, const char *extra)
{
    client_open(c, port, 0);
    char req[512];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
             path, ws_key, extra ? extra : "");
    client_sends(c, req);
    char head[1024];
    buf body = {0};
    int status = http_response(c, head, sizeof head, &body);
    buf_free(&body);
    if (status == 101) {
        assert_non_null(strcasestr(head, "\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert_non_null(strcasestr(head, "\r\nUpgrade: websocket\r\n"));
    }
    return status;
}

static void ws_open(client *c, int port)
{
    assert_int_equal(ws_handshake(c, port, "/v1/ws", NULL), 101);
}

static void ws_expect(client *c, unsigned want_op, const void *data, size_t len)
{
    unsigned op;
    buf p = {0};
    assert_int_equal(ws_recv(c, &op, &p), 0);
    assert_int_equal(op, want_op);
    assert_int_equal(buf_size(&p), len);
    if (len) assert_memory_equal(buf_begin(&p), data, len);
    buf_free(&p);
}

/* TCP frames. */
static void tcp_send(client *c, const void *p, size_t n)
{
    uint8_t h[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    client_send(c, h, 4);
    client_send(c, p, n);
}

static int tcp_recv(client *c, buf *payload)
{
    if (client_need(c, 4)) return -1;
    const uint8_t *p = buf_begin(&c->in);
    size_t len = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    if (client_need(c, 4 + len)) return -1;
    buf_reset(payload);
    buf_append(payload, buf_begin(&c->in) + 4, len);
    buf_consume(&c->in, 4 + len);
    return 0;
}

static void tcp_expect(client *c, const void *data, size_t len)
{
    buf p = {0};
    assert_int_equal(tcp_recv(c, &p), 0);
    assert_int_equal(buf_size(&p), len);
    if (len) assert_memory_equal(buf_begin(&p), data, len);
    buf_free(&p);
}

/* ------------------------------------------------------------------ */
/* Fixture                                                              */
/* ------------------------------------------------------------------ */

static server srv;

static int setup(void **state)
{
    net_config cfg = test_config();
    server_start(&srv, &cfg);
    return 0;
}

static int teardown(void **state)
{
    server_stop(&srv, NET_CLOSE_GOING_AWAY);
    return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP                                                                 */
/* ------------------------------------------------------------------ */

static void test_http_keepalive(void **state)
{
    client c;
    char head[1024];
    buf body = {0};
    client_open(&c, srv.http_port, 0);
    client_sends(&c, "GET /info?a=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
    assert_non_null(strstr(head, "Content-Type: text/plain\r\n"));
    assert_null(strcasestr(head, "Connection:"));
    assert_int_equal(buf_size(&body), strlen("GET /info ?a=1"));
    assert_memory_equal(buf_begin(&body), "GET /info ?a=1", buf_size(&body));
    /* Same connection, second request. */
    client_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde");
    assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
    assert_non_null(strstr(head, "X-Echo: yes\r\n"));
    assert_int_equal(buf_size(&body), 5);
    assert_memory_equal(buf_begin(&body), "abcde", 5);
    /* Connection: close is honoured. */
    client_sends(&c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
    assert_non_null(strstr(head, "Connection: close\r\n"));
    assert_true(client_closed(&c));
    client_close(&c);

    /* HTTP/1.0 closes by default, stays open with keep-alive. */
    client_open(&c, srv.http_port, 0);
    client_sends(&c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
    assert_non_null(strstr(head, "Connection: keep-alive\r\n"));
    /* HEAD: the head of a GET, no body; HTTP/1.0 without keep-alive
     * closes after it. */
    client_sends(&c, "HEAD / HTTP/1.0\r\n\r\n");
    while (client_fill(&c) > 0) continue;
    buf_appendc(&c.in, 0);
    const char *raw = (const char *)buf_begin(&c.in);
    assert_non_null(strstr(raw, "Content-Length: 6\r\n"));
    assert_non_null(strstr(raw, "Connection: close\r\n"));
    assert_int_equal(strlen(strstr(raw, "\r\n\r\n")), 4);
    client_close(&c);
    buf_free(&body);
    assert_int_equal(atomic_load(&n_bad_ip), 0);
}

/* Pipelined requests are answered in order, even when one in the middle
 * is answered later from a mail. */
static void test_http_pipelined(void **state)
{
    client c;
    char head[1024];
    buf body = {0};
    client_open(&c, srv.http_port, 0);
    client_sends(&c, "GET /info?n=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /defer HTTP/1.1\r\nHost: x\r\n\r\n"
                     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyzGET /info?n=4 HTTP/1.1\r\nHost: x\r\n\r\n");
    const char *want[] = {"GET /info ?n=1", "deferred\n", "xyz", "GET /info ?n=4"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
        assert_int_equal(buf_size(&body), strlen(want[i]));
        assert_memory_equal(buf_begin(&body), want[i], buf_size(&body));
    }
    /* A request sent a byte at a time. */
    const char *slow = "GET /info?slow HTTP/1.1\r\nHost: x\r\n\r\n";
    for (const char *p = slow; *p; p++) client_send(&c, p, 1);
    assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
    assert_memory_equal(buf_begin(&body), "GET /info ?slow", 15);
    client_close(&c);
    buf_free(&body);
}

static void test_http_errors(void **state)
{
    struct {
        const char *req;
        int status;
    } cases[] = {
        {"BLAH\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: x\r\nX-Big: "
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "\r\n\r\n",
         431},
        {"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413},
        {"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client c;
        char head[1024];
        buf body = {0};
        client_open(&c, srv.http_port, 0);
        client_sends(&c, cases[i].req);
        assert_int_equal(http_response(&c, head, sizeof head, &body), cases[i].status);
        assert_non_null(strstr(head, "Connection: close\r\n"));
        assert_true(client_closed(&c));
        client_close(&c);
        buf_free(&body);
    }
}

/* A client that trickles its head is cut off after header_timeout_ms. */
static void test_http_slowloris(void **state)
{
    client c;
    client_open(&c, srv.http_port, 0);
    client_sends(&c, "GET / HTTP/1.1\r\nHost: x\r\n");
    uint64_t start = now_ms();
    bool closed = false;
    for (int i = 0; i < 20 && !closed; i++) {
        sleep_ms(150);
        char line[32];
        snprintf(line, sizeof line, "X-%d: y\r\n", i);
        if (send(c.fd, line, strlen(line), MSG_NOSIGNAL) < 0) closed = true;
        struct timeval tv = {0, 1000};
        setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int r = client_fill(&c);
        if (r == 0 || r == -1) closed = true;
        if (r > 0) { /* a 408 response, then the close */
            assert_non_null(memmem(buf_begin(&c.in), buf_size(&c.in), " 408 ", 5));
            tv.tv_sec = 3;
            setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            closed = client_closed(&c);
        }
    }
    assert_true(closed);
    uint64_t took = now_ms() - start;
    assert_true(took >= 500 && took < 2500);
    client_close(&c);

    /* A body that stalls is cut off the same way. */
    client_open(&c, srv.http_port, 0);
    client_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
    start = now_ms();
    {
        char h408[512];
        buf b408 = {0};
        assert_int_equal(http_response(&c, h408, sizeof h408, &b408), 408);
        buf_free(&b408);
    }
    assert_true(client_closed(&c));
    took = now_ms() - start;
    assert_true(took >= 500 && took < 2500);
    client_close(&c);

    /* Expect: 100-continue gets an interim response, then the answer. */
    client_open(&c, srv.http_port, 0);
    client_sends(&c, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    assert_int_equal(client_need(&c, 25), 0);
    assert_memory_equal(buf_begin(&c.in), "HTTP/1.1 100 Continue\r\n\r\n", 25);
    client_sends(&c, "ok");
    char head[512];
    buf body = {0};
    assert_int_equal(http_response(&c, head, sizeof head, &body), 200);
    assert_memory_equal(buf_begin(&body), "ok", 2);
    buf_free(&body);
    client_close(&c);
}

/* ------------------------------------------------------------------ */
/* WebSocket                                                            */
/* ------------------------------------------------------------------ */

static void test_ws_echo(void **state)
{
    client c;
    ws_open(&c, srv.http_port);
    ws_send(&c, true, NET__WS_TEXT, "hello", 5);
    ws_expect(&c, NET__WS_TEXT, "hello", 5);
    ws_send(&c, true, NET__WS_TEXT, "", 0);
    ws_expect(&c, NET__WS_TEXT, "", 0);
    uint8_t bin[3000];
    for (size_t i = 0; i < sizeof bin; i++) bin[i] = (uint8_t)(i * 7);
    ws_send(&c, true, NET__WS_BINARY, bin, sizeof bin);
    ws_expect(&c, NET__WS_BINARY, bin, sizeof bin);
    /* The largest message allowed, in one frame. */
    uint8_t max[4096];
    memset(max, 'm', sizeof max);
    ws_send(&c, true, NET__WS_TEXT, max, sizeof max);
    ws_expect(&c, NET__WS_TEXT, max, sizeof max);

    /* A fragmented message with a ping between its fragments: the pong
     * comes first, then the whole message once. */
    ws_send(&c, false, NET__WS_TEXT, "Hel", 3);
    ws_send(&c, true, NET__WS_PING, "p1", 2);
    ws_send(&c, false, NET__WS_CONT, "lo", 2);
    ws_send(&c, true, NET__WS_CONT, " world", 6);
    ws_expect(&c, NET__WS_PONG, "p1", 2);
    ws_expect(&c, NET__WS_TEXT, "Hello world", 11);

    /* Several frames in one write, one frame split over writes. */
    uint8_t h[14];
    size_t hl = net__ws_frame_header(h, true, NET__WS_TEXT, 4);
    h[1] |= 0x80;
    memset(h + hl, 0, 4); /* a zero mask */
    hl += 4;
    buf many = {0};
    for (int i = 0; i < 3; i++) {
        buf_append(&many, h, hl);
        buf_append(&many, "abcd", 4);
    }
    client_send(&c, buf_begin(&many), 5);
    sleep_ms(20);
    client_send(&c, buf_begin(&many) + 5, buf_size(&many) - 5);
    for (int i = 0; i < 3; i++) ws_expect(&c, NET__WS_TEXT, "abcd", 4);
    buf_free(&many);

    /* Close handshake started by the client. */
    ws_send(&c, true, NET__WS_CLOSE, "\x03\xe8" "done", 6);
    unsigned op;
    buf p = {0};
    assert_int_equal(ws_recv(&c, &op, &p), 0);
    assert_int_equal(op, NET__WS_CLOSE);
    assert_int_equal(close_code(&p), 1000);
    buf_free(&p);
    assert_true(client_closed(&c));
    client_close(&c);

    /* Close started by the application. */
    ws_open(&c, srv.http_port);
    ws_send(&c, true, NET__WS_TEXT, "close", 5);
    ws_expect_close(&c, NET_CLOSE_KICKED);
    client_close(&c);
}

static void test_ws_violations(void **state)
{
    client c;
    /* Invalid UTF-8 in a text message. */
    ws_open(&c, srv.http_port);
    ws_send(&c, true, NET__WS_TEXT, "ok\xff\xfe", 4);
    ws_expect_close(&c, NET_CLOSE_BAD_DATA);
    client_close(&c);
    /* UTF-8 cut between fragments is fine once whole... */
    ws_open(&c, srv.http_port);
    ws_send(&c, false, NET__WS_TEXT, "\xc3", 1);
    ws_send(&c, true, NET__WS_CONT, "\xa9", 1);
    ws_expect(&c, NET__WS_TEXT, "\xc3\xa9", 2);
    /* ...but not when the message ends inside a sequence. */
    ws_send(&c, true, NET__WS_TEXT, "\xc3", 1);
    ws_expect_close(&c, NET_CLOSE_BAD_DATA);
    client_close(&c);
    /* One frame above max_frame. */
    uint8_t big[5000];
    memset(big, 'b', sizeof big);
    ws_open(&c, srv.http_port);
    ws_send(&c, true, NET__WS_BINARY, big, sizeof big);
    ws_expect_close(&c, NET_CLOSE_TOO_BIG);
    client_close(&c);
    /* A fragmented message above max_frame in total. */
    ws_open(&c, srv.http_port);
    ws_send(&c, false, NET__WS_BINARY, big, 2000);
    ws_send(&c, false, NET__WS_CONT, big, 2000);
    ws_send(&c, true, NET__WS_CONT, big, 2000);
    ws_expect_close(&c, NET_CLOSE_TOO_BIG);
    client_close(&c);
    /* An unmasked client frame. */
    ws_open(&c, srv.http_port);
    ws_send_unmasked(&c, NET__WS_TEXT, "hi", 2);
    ws_expect_close(&c, NET_CLOSE_PROTOCOL);
    client_close(&c);
    /* A continuation with no message to continue; a reserved opcode; a
     * ping longer than 125 bytes. */
    unsigned bad_ops[] = {NET__WS_CONT, 0x3, NET__WS_PING};
    size_t bad_lens[] = {2, 2, 126};
    for (int i = 0; i < 3; i++) {
        ws_open(&c, srv.http_port);
        ws_send(&c, true, bad_ops[i], big, bad_lens[i]);
        ws_expect_close(&c, NET_CLOSE_PROTOCOL);
        client_close(&c);
    }
}

static void test_ws_refused(void **state)
{
    client c;
    assert_int_equal(ws_handshake(&c, srv.http_port, "/nope", NULL), 404);
    assert_true(client_closed(&c));
    client_close(&c);
    assert_int_equal(ws_handshake(&c, srv.http_port, "/v1/ws", "Origin: http://evil.example\r\n"), 403);
    client_close(&c);
    assert_int_equal(ws_handshake(&c, srv.http_port, "/v1/ws", "Origin: http://good.example\r\n"), 101);
    client_close(&c);

    const char *bad[] = {
        /* version 8 */
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
        /* no key */
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        /* a key that is not 16 bytes of base64 */
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n",
        /* no Connection: Upgrade */
        "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char head[1024];
        buf body = {0};
        client_open(&c, srv.http_port, 0);
        client_sends(&c, bad[i]);
        assert_int_equal(http_response(&c, head, sizeof head, &body), 400);
        if (i == 0) assert_non_null(strstr(head, "Sec-WebSocket-Version: 13\r\n"));
        assert_true(client_closed(&c));
        client_close(&c);
        buf_free(&body);
    }
}

/* A client that never reads while the server keeps sending is closed as a
 * slow consumer with 4008; what it does read stays frame-aligned. */
static void test_ws_slow_consumer(void **state)
{
    client c;
    int before = atomic_load(&n_slow);
    client_open(&c, srv.http_port, 4096);
    char req[512];
    snprintf(req, sizeof req,
             "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
             ws_key);
    client_sends(&c, req);
    char head[512];
    buf body = {0};
    assert_int_equal(http_response(&c, head, sizeof head, &body), 101);
    buf_free(&body);
    for (int i = 0; i < 400 && atomic_load(&n_slow) == before; i++) {
        ws_send(&c, true, NET__WS_TEXT, "flood", 5);
        sleep_ms(5);
    }
    assert_true(atomic_load(&n_slow) > before);
    /* Drain: whole binary frames, then the close frame, then EOF. */
    unsigned op;
    buf p = {0};
    size_t frames = 0;
    for (;;) {
        assert_int_equal(ws_recv(&c, &op, &p), 0);
        if (op != NET__WS_BINARY) break;
        assert_int_equal(buf_size(&p), sizeof flood_msg);
        frames++;
    }
    assert_int_equal(op, NET__WS_CLOSE);
    assert_int_equal(close_code(&p), NET_CLOSE_SLOW);
    assert_true(frames > 2);
    print_message("slow consumer: %zu frames of %zu bytes before the close\n", frames, sizeof flood_msg);
    buf_free(&p);
    assert_true(client_closed(&c));
    client_close(&c);
}

/* Pongs count against the bound too: a client that pings without reading
 * is closed as a slow consumer. */
static void test_ws_ping_flood(void **state)
{
    client c;
    client_open(&c, srv.http_port, 4096);
    char req[512];
    snprintf(req, sizeof req,
             "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
             ws_key);
    client_sends(&c, req);
    char head[512];
    buf body = {0};
    assert_int_equal(http_response(&c, head, sizeof head, &body), 101);
    buf_free(&body);
    /* 500 pings of 125 bytes (mask 0) per write, 8 MB in all. */
    enum { PINGS = 500, FRAME = 2 + 4 + 125 };
    uint8_t *batch = calloc(PINGS, FRAME);
    for (int i = 0; i < PINGS; i++) {
        batch[i * FRAME] = 0x89;
        batch[i * FRAME + 1] = 0x80 | 125;
    }
    for (int i = 0; i < 122; i++) client_send(&c, batch, (size_t)PINGS * FRAME);
    free(batch);
    unsigned op;
    buf p = {0};
    size_t pongs = 0;
    for (;;) {
        assert_int_equal(ws_recv(&c, &op, &p), 0);
        if (op != NET__WS_PONG) break;
        assert_int_equal(buf_size(&p), 125);
        pongs++;
    }
    assert_int_equal(op, NET__WS_CLOSE);
    assert_int_equal(close_code(&p), NET_CLOSE_SLOW);
    assert_true(pongs < 122 * PINGS);
    buf_free(&p);
    assert_true(client_closed(&c));
    client_close(&c);
}

/* ------------------------------------------------------------------ */
/* TCP                                                                  */
/* ------------------------------------------------------------------ */

static void test_tcp_echo(void **state)
{
    client c;
    client_open(&c, srv.tcp_port, 0);
    tcp_send(&c, "hello", 5);
    tcp_expect(&c, "hello", 5);
    tcp_send(&c, "", 0);
    tcp_expect(&c, "", 0);
    uint8_t max[4096];
    memset(max, 7, sizeof max);
    tcp_send(&c, max, sizeof max);
    tcp_expect(&c, max, sizeof max);
    /* Three frames in one write, split anywhere. */
    buf many = {0};
    for (int i = 0; i < 3; i++) {
        uint8_t h[4] = {0, 0, 0, 3};
        buf_append(&many, h, 4);
        buf_append(&many, "xyz", 3);
    }
    client_send(&c, buf_begin(&many), 2);
    sleep_ms(20);
    client_send(&c, buf_begin(&many) + 2, 7);
    sleep_ms(20);
    client_send(&c, buf_begin(&many) + 9, buf_size(&many) - 9);
    for (int i = 0; i < 3; i++) tcp_expect(&c, "xyz", 3);
    buf_free(&many);
    /* A frame above max_frame closes the connection. */
    uint8_t h[4] = {0, 0, 0x10, 0x01}; /* 4097 */
    client_send(&c, h, 4);
    assert_true(client_closed(&c));
    client_close(&c);
}

/* ------------------------------------------------------------------ */
/* Servers of their own                                                 */
/* ------------------------------------------------------------------ */

/* Writes to vanished peers must not kill the process. */
static void test_sigpipe_ignored(void **state)
{
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
}

static void test_bind_error(void **state)
{
    net_config cfg = test_config();
    char addr[64], err[256], want[128];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", srv.http_port);
    cfg.http_addr = addr;
    net *n = NULL;
    assert_int_not_equal(net_start(&n, &cfg, &app, err, sizeof err), 0);
    snprintf(want, sizeof want, "cannot listen on %s: address already in use", addr);
    assert_string_equal(err, want);
    assert_null(n);
    cfg = test_config();
    cfg.tcp_addr = "nonsense";
    assert_int_not_equal(net_start(&n, &cfg, &app, err, sizeof err), 0);
    assert_non_null(strstr(err, "nonsense"));
}

static bool tcp_accepted(client *c)
{
    tcp_send(c, "?", 1);
    buf p = {0};
    int r = tcp_recv(c, &p);
    buf_free(&p);
    return r == 0;
}

static void test_ip_limits(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.max_conns_per_ip = 2;
    server_start(&s, &cfg);
    client a, b, x;
    client_open(&a, s.tcp_port, 0);
    client_open(&b, s.http_port, 0);
    assert_true(tcp_accepted(&a));
    client_sends(&b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    char head[512];
    buf body = {0};
    assert_int_equal(http_response(&b, head, sizeof head, &body), 200);
    /* A third, on either port, is closed at once. */
    client_open(&x, s.tcp_port, 0);
    assert_true(client_closed(&x));
    client_close(&x);
    client_open(&x, s.http_port, 0);
    assert_true(client_closed(&x));
    client_close(&x);
    /* When one closes (on its worker), there is room again. */
    client_close(&a);
    bool ok = false;
    for (int i = 0; i < 40 && !ok; i++) {
        sleep_ms(50);
        client_open(&x, s.tcp_port, 0);
        ok = tcp_accepted(&x);
        client_close(&x);
    }
    assert_true(ok);
    client_close(&b);
    buf_free(&body);
    server_stop(&s, NET_CLOSE_GOING_AWAY);

    /* The rate: bursts of 2, then 1 a second. */
    cfg = test_config();
    cfg.conn_rate_per_ip = 1;
    cfg.conn_burst_per_ip = 2;
    server_start(&s, &cfg);
    client_open(&a, s.tcp_port, 0);
    client_open(&b, s.tcp_port, 0);
    client_open(&x, s.tcp_port, 0);
    assert_true(tcp_accepted(&a));
    assert_true(tcp_accepted(&b));
    assert_true(client_closed(&x));
    client_close(&a);
    client_close(&b);
    client_close(&x);
    server_stop(&s, NET_CLOSE_GOING_AWAY);
}

static void test_idle_timeout(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.idle_timeout_ms = 600;
    server_start(&s, &cfg);
    client w, t, h;
    ws_open(&w, s.http_port);
    client_open(&t, s.tcp_port, 0);
    assert_true(tcp_accepted(&t));
    client_open(&h, s.http_port, 0);
    client_sends(&h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    char head[512];
    buf body = {0};
    assert_int_equal(http_response(&h, head, sizeof head, &body), 200);
    uint64_t start = now_ms();
    /* Traffic keeps a WebSocket open past the timeout... */
    for (int i = 0; i < 5; i++) {
        sleep_ms(200);
        ws_send(&w, true, NET__WS_PING, "", 0);
        ws_expect(&w, NET__WS_PONG, "", 0);
    }
    /* ...and silence closes it with 4004. */
    ws_expect_close(&w, NET_CLOSE_IDLE);
    assert_true(now_ms() - start >= 1000 + 500);
    assert_true(client_closed(&t));
    assert_true(client_closed(&h));
    client_close(&w);
    client_close(&t);
    client_close(&h);
    buf_free(&body);
    server_stop(&s, NET_CLOSE_GOING_AWAY);
}

/* What each worker holds for its connections, counted on its thread. */
typedef struct census {
    mail m;
    net_worker *w;
    atomic_int *done;
    size_t conns, ws_ctx, spare_ctx, buffers, parsers;
} census;

static void census_fn(mail *m)
{
    census *c = (census *)m;
    for (net_conn *x = c->w->conns; x; x = x->next) {
        c->conns++;
        if (x->kind == NET_WS && x->p.ws) c->ws_ctx++;
        if (x->kind == NET_HTTP && x->p.http) c->parsers++;
        c->buffers += x->in.cap + x->out.cap;
    }
    if (c->w->ws_spare) c->spare_ctx++;
    atomic_fetch_add(c->done, 1);
}

static void take_census(server *s, census *total)
{
    size_t nw = net_worker_count(s->n);
    census cs[8];
    atomic_int done = 0;
    memset(total, 0, sizeof *total);
    for (size_t i = 0; i < nw; i++) {
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].m.fn = census_fn;
        cs[i].w = net_worker_at(s->n, i);
        cs[i].done = &done;
        mailbox_post(net_worker_mailbox(cs[i].w), &cs[i].m);
    }
    while (atomic_load(&done) < (int)nw) sleep_ms(5);
    for (size_t i = 0; i < nw; i++) {
        total->conns += cs[i].conns;
        total->ws_ctx += cs[i].ws_ctx;
        total->spare_ctx += cs[i].spare_ctx;
        total->buffers += cs[i].buffers;
        total->parsers += cs[i].parsers;
    }
}

/* WebSocket connections hold no wslay context between frames (the worker
 * lends its one spare), idle ones keep no buffer either, and they cost the
 * net layer well under the 2 KiB budget of SPEC section 6. */
static void test_idle_memory(void **state)
{
    enum { N = 40 };
    server s;
    net_config cfg = test_config();
    server_start(&s, &cfg);
    client cs[N];
    ws_open(&cs[0], s.http_port); /* the IP entry and first-use allocations */
    buf_free(&cs[0].in);           /* the test's own buffers count too */
    sleep_ms(1500);
    size_t before = pl_mem_used();
    for (int i = 1; i < N; i++) ws_open(&cs[i], s.http_port);
    for (int i = 0; i < N; i++) {
        ws_send(&cs[i], true, NET__WS_TEXT, "login", 5);
        ws_expect(&cs[i], NET__WS_TEXT, "login", 5);
        buf_free(&cs[i].in);
    }
    census busy, idle;
    take_census(&s, &busy);
    assert_int_equal(busy.conns, N);
    assert_int_equal(busy.ws_ctx, 0);
    assert_true(busy.spare_ctx >= 1 && busy.spare_ctx <= net_worker_count(s.n));
    sleep_ms(2300);
    take_census(&s, &idle);
    size_t after = pl_mem_used();
    assert_int_equal(idle.conns, N);
    assert_int_equal(idle.ws_ctx, 0);
    assert_int_equal(idle.buffers, 0);
    double per = ((double)after - (double)before) / (N - 1);
    print_message("sizeof(net_conn) = %zu; counted memory per idle WebSocket: %.0f bytes\n", sizeof(net_conn), per);
    assert_true(per < 1024);
    /* They still work. */
    ws_send(&cs[3], true, NET__WS_TEXT, "again", 5);
    ws_expect(&cs[3], NET__WS_TEXT, "again", 5);
    for (int i = 0; i < N; i++) client_close(&cs[i]);
    server_stop(&s, NET_CLOSE_GOING_AWAY);
}

/* The worker's one wslay context: connections in the middle of a
 * fragmented message keep their own until its last frame, the others share
 * the spare; a context that saw a close or a violation is not reused. */
static void test_ws_shared_context(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.workers = 1;
    server_start(&s, &cfg);
    client a, b, c;
    census cs;
    ws_open(&a, s.http_port);
    ws_open(&b, s.http_port);
    ws_open(&c, s.http_port);
    /* A starts a message: it keeps the context (a ping answered means the
     * fragment before it was fed). */
    ws_send(&a, false, NET__WS_TEXT, "Hel", 3);
    ws_send(&a, true, NET__WS_PING, "a", 1);
    ws_expect(&a, NET__WS_PONG, "a", 1);
    take_census(&s, &cs);
    assert_int_equal(cs.ws_ctx, 1);
    assert_int_equal(cs.spare_ctx, 0);
    /* B starts one with a UTF-8 sequence cut between fragments. */
    ws_send(&b, false, NET__WS_TEXT, "\xc3", 1);
    ws_send(&b, true, NET__WS_PING, "b", 1);
    ws_expect(&b, NET__WS_PONG, "b", 1);
    take_census(&s, &cs);
    assert_int_equal(cs.ws_ctx, 2);
    /* C's whole messages go through a fresh spare, which stays. */
    ws_send(&c, true, NET__WS_TEXT, "ccc", 3);
    ws_expect(&c, NET__WS_TEXT, "ccc", 3);
    take_census(&s, &cs);
    assert_int_equal(cs.ws_ctx, 2);
    assert_int_equal(cs.spare_ctx, 1);
    /* A and B finish, interleaved with control frames. */
    ws_send(&a, false, NET__WS_CONT, "lo", 2);
    ws_send(&b, true, NET__WS_PING, "p", 1);
    ws_expect(&b, NET__WS_PONG, "p", 1);
    ws_send(&a, true, NET__WS_CONT, " world", 6);
    ws_expect(&a, NET__WS_TEXT, "Hello world", 11);
    ws_send(&b, true, NET__WS_CONT, "\xa9", 1);
    ws_expect(&b, NET__WS_TEXT, "\xc3\xa9", 2);
    take_census(&s, &cs);
    assert_int_equal(cs.ws_ctx, 0);
    assert_int_equal(cs.spare_ctx, 1);
    /* A violation on C: its context is dropped, not lent again. */
    ws_send(&c, true, NET__WS_TEXT, "\xff", 1);
    ws_expect_close(&c, NET_CLOSE_BAD_DATA);
    take_census(&s, &cs);
    assert_int_equal(cs.ws_ctx, 0);
    assert_int_equal(cs.spare_ctx, 0);
    /* A and B go on with a new one; B closes cleanly, A still works. */
    ws_send(&a, true, NET__WS_BINARY, "x", 1);
    ws_expect(&a, NET__WS_BINARY, "x", 1);
    ws_send(&b, true, NET__WS_CLOSE, "\x03\xe8", 2);
    ws_expect_close(&b, 1000);
    ws_send(&a, false, NET__WS_BINARY, "1", 1);
    ws_send(&a, true, NET__WS_CONT, "2", 1);
    ws_expect(&a, NET__WS_BINARY, "12", 2);
    take_census(&s, &cs);
    assert_int_equal(cs.ws_ctx, 0);
    assert_int_equal(cs.spare_ctx, 1);
    client_close(&a);
    client_close(&b);
    client_close(&c);
    server_stop(&s, NET_CLOSE_GOING_AWAY);
}

/* net_stop closes every connection (WebSocket with the given code), runs
 * worker_stop on each worker, and lets net_run return; every open has its
 * close and nothing leaks (LeakSanitizer checks at exit). */
static void test_stop(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.workers = 3;
    int starts = atomic_load(&n_worker_starts), stops = atomic_load(&n_worker_stops);
    int closes = atomic_load(&n_closes);
    server_start(&s, &cfg);
    assert_int_equal(atomic_load(&n_worker_starts), starts + 3);
    client w1, w2, t, h, d;
    ws_open(&w1, s.http_port);
    ws_open(&w2, s.http_port);
    client_open(&t, s.tcp_port, 0);
    assert_true(tcp_accepted(&t));
    client_open(&h, s.http_port, 0);
    client_sends(&h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    char head[512];
    buf body = {0};
    assert_int_equal(http_response(&h, head, sizeof head, &body), 200);
    ws_send(&w1, true, NET__WS_TEXT, "x", 1);
    ws_expect(&w1, NET__WS_TEXT, "x", 1);
    ws_send(&w2, true, NET__WS_TEXT, "x", 1);
    ws_expect(&w2, NET__WS_TEXT, "x", 1);
    size_t counts[3] = {0};
    for (size_t i = 0; i < net_worker_count(s.n); i++)
        for (int k = 0; k < 3; k++) counts[k] += net_worker_conns(net_worker_at(s.n, i), (net_kind)k);
    assert_int_equal(counts[NET_HTTP], 1);
    assert_int_equal(counts[NET_WS], 2);
    assert_int_equal(counts[NET_TCP], 1);
    /* A request the application never answers: the stop waits for it a
     * grace period, then closes it. */
    client_open(&d, s.http_port, 0);
    client_sends(&d, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
    sleep_ms(50);

    server_stop(&s, NET_CLOSE_GOING_AWAY);
    ws_expect_close(&w1, NET_CLOSE_GOING_AWAY);
    ws_expect_close(&w2, NET_CLOSE_GOING_AWAY);
    assert_true(client_closed(&t));
    assert_true(client_closed(&h));
    assert_true(client_closed(&d));
    assert_int_equal(atomic_load(&n_worker_stops), stops + 3);
    assert_int_equal(atomic_load(&n_closes), closes + 5);
    client_close(&w1);
    client_close(&w2);
    client_close(&t);
    client_close(&h);
    client_close(&d);
    buf_free(&body);
}

int main(void)
{
    memset(flood_msg, 'f', sizeof flood_msg);
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_http_keepalive), cmocka_unit_test(test_http_pipelined),
        cmocka_unit_test(test_http_errors),    cmocka_unit_test(test_http_slowloris),
        cmocka_unit_test(test_ws_echo),        cmocka_unit_test(test_ws_violations),
        cmocka_unit_test(test_ws_refused),     cmocka_unit_test(test_ws_slow_consumer),
        cmocka_unit_test(test_ws_ping_flood),
        cmocka_unit_test(test_tcp_echo),       cmocka_unit_test(test_bind_error),
        cmocka_unit_test(test_sigpipe_ignored),
    };
    const struct CMUnitTest own[] = {
        cmocka_unit_test(test_ip_limits),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_idle_memory),
        cmocka_unit_test(test_ws_shared_context),
        cmocka_unit_test(test_stop),
    };
    int failed = cmocka_run_group_tests_name("shared server", shared, setup, teardown);
    failed += cmocka_run_group_tests_name("servers of their own", own, NULL, NULL);
    return failed;
}
