/*
 * test_idle_mem.c - what an idle WebSocket connection costs the net layer,
 * measured on a burst of PARLEY_IDLE_N (default 5,000) connections.
 *
 * A small application stands in for parleyd: on open it allocates a
 * 64-byte per-connection record, on the first message a 256-byte one (as a
 * login would leave a session behind), and it echoes every message.  The
 * clients are bare file descriptors driven from the test thread, so the
 * only heap the process gains per connection is the server's.
 *
 * The burst is shaped like a crowd logging in: every connection's upgrade
 * request is sent before any response is read, then every connection
 * sends one message before any echo is read, so the server holds all the
 * upgrades (and all the first messages) at once.  Then, after the sweep's
 * quiet second, it reports per connection:
 *   - pl_mem_used(): what the net layer and the application allocated
 *     through core/mem.h (asserted below 1 KiB);
 *   - VmRSS of the process, before and after malloc_trim(0): the second
 *     figure is what is live, the difference is what the burst's freed
 *     memory left behind in glibc's heap;
 * and the same after a heartbeat round (a ping on every connection), which
 * must not bring per-connection memory back.
 *
 * The VmRSS figures are printed, not asserted: they depend on the
 * allocator (under AddressSanitizer they mean nothing).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/mem.h"
#include "net/net_internal.h"

/* ------------------------------------------------------------------ */
/* The application                                                      */
/* ------------------------------------------------------------------ */

typedef struct app_conn {
    void *session; /* allocated by the first message, as a login would */
    uint8_t pad[48];
} app_conn;

static void app_open(net_conn *c) { net_conn_set_data(c, PL_NEW(app_conn)); }

static void app_message(net_conn *c, bool binary, const uint8_t *data, size_t len)
{
    app_conn *a = net_conn_data(c);
    if (a && !a->session) a->session = pl_calloc(1, 256);
    net_send(c, binary, data, len);
}

static void app_close(net_conn *c)
{
    app_conn *a = net_conn_data(c);
    if (!a) return;
    pl_free(a->session);
    pl_free(a);
}

static int app_upgrade(net_conn *c, const net_http_req *req) { return 0; }

static const net_callbacks app = {
    .on_ws_upgrade = app_upgrade,
    .on_open = app_open,
    .on_message = app_message,
    .on_close = app_close,
};

/* ------------------------------------------------------------------ */
/* Server and measurements                                              */
/* ------------------------------------------------------------------ */

typedef struct server {
    net *n;
    uv_thread_t thread;
    uv_async_t stop;
} server;

static void stop_cb(uv_async_t *a)
{
    server *s = a->data;
    net_stop(s->n, NET_CLOSE_GOING_AWAY);
    uv_close((uv_handle_t *)a, NULL);
}

static void run_thread(void *arg) { net_run(((server *)arg)->n); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long vm_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* What the workers hold, counted on their threads. */
typedef struct census {
    mail m;
    net_worker *w;
    atomic_int *done;
    size_t conns, ws_ctx, spare_ctx, parsers, buffers;
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
        total->parsers += cs[i].parsers;
        total->buffers += cs[i].buffers;
    }
}

/* ------------------------------------------------------------------ */
/* Bare clients                                                         */
/* ------------------------------------------------------------------ */

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t r = send(fd, s, n, MSG_NOSIGNAL);
        if (r <= 0) fail_msg("send: %s", strerror(errno));
        s += r;
        n -= (size_t)r;
    }
}

static void recv_exact(int fd, void *p, size_t n)
{
    char *d = p;
    while (n) {
        ssize_t r = recv(fd, d, n, 0);
        if (r <= 0) fail_msg("recv: %s", r == 0 ? "EOF" : strerror(errno));
        d += r;
        n -= (size_t)r;
    }
}

static const char upgrade_req[] = "GET /v1/ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Sec-WebSocket-Version: 13\r\nUser-Agent: parley-test/1.0\r\n"
                                  "Origin: http://localhost\r\n\r\n";

/* Read the 101 response head, byte by byte up to its blank line, so that
 * nothing of what follows is consumed. */
static void read_101(int fd)
{
    char head[512];
    size_t n = 0;
    while (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4)) {
        assert_true(n < sizeof head);
        recv_exact(fd, head + n, 1);
        n++;
    }
    assert_memory_equal(head, "HTTP/1.1 101 ", 13);
}

/* A masked client frame (zero mask: the payload goes as is). */
static void ws_send(int fd, unsigned op, const void *p, size_t n)
{
    uint8_t f[2 + 4 + 125];
    assert_true(n <= 125);
    f[0] = (uint8_t)(0x80 | op);
    f[1] = (uint8_t)(0x80 | n);
    memset(f + 2, 0, 4);
    memcpy(f + 6, p, n);
    send_all(fd, f, 6 + n);
}

static void ws_expect(int fd, unsigned op, const void *p, size_t n)
{
    uint8_t h[2], d[125];
    recv_exact(fd, h, 2);
    assert_int_equal(h[0], 0x80 | op);
    assert_int_equal(h[1], n);
    recv_exact(fd, d, n);
    assert_memory_equal(d, p, n);
}

/* ------------------------------------------------------------------ */

static void test_idle_burst(void **state)
{
    const char *env = getenv("PARLEY_IDLE_N");
    int n = env ? atoi(env) : 5000;
    if (n < 10) n = 10;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if ((rlim_t)(2 * n + 64) > rl.rlim_cur) {
        n = (int)((rl.rlim_cur - 64) / 2);
        print_message("open-file limit %llu: %d connections\n", (unsigned long long)rl.rlim_cur, n);
    }

    server s = {0};
    net_config cfg = {.http_addr = "127.0.0.1:0", .workers = 2, .max_frame = 65536};
    char err[256];
    if (net_start(&s.n, &cfg, &app, err, sizeof err)) fail_msg("net_start: %s", err);
    int port = net_http_port(s.n);
    uv_async_init(net_main_loop(s.n), &s.stop, stop_cb);
    s.stop.data = &s;
    uv_thread_create(&s.thread, run_thread, &s);

    int *fds = calloc((size_t)n, sizeof *fds);
    /* One connection first: the IP entry and what the first use of each
     * code path allocates once. */
    for (int i = 0; i < 2; i++) {
        int fd = connect_to(port);
        send_all(fd, upgrade_req, sizeof upgrade_req - 1);
        read_101(fd);
        ws_send(fd, 0x1, "login", 5);
        ws_expect(fd, 0x1, "login", 5);
        close(fd);
    }
    sleep_ms(1600);
    size_t mem0 = pl_mem_used();
    long rss0 = vm_rss_kb();

    /* The upgrades, in batches of 500 sent before any answer is read. */
    enum { BATCH = 500 };
    for (int b = 0; b < n; b += BATCH) {
        int e = b + BATCH < n ? b + BATCH : n;
        for (int i = b; i < e; i++) {
            fds[i] = connect_to(port);
            send_all(fds[i], upgrade_req, sizeof upgrade_req - 1);
        }
        for (int i = b; i < e; i++) read_101(fds[i]);
    }
    /* Every connection's first message ("login") before any echo is read. */
    for (int i = 0; i < n; i++) ws_send(fds[i], 0x1, "login", 5);
    for (int i = 0; i < n; i++) ws_expect(fds[i], 0x1, "login", 5);
    long rss_burst = vm_rss_kb();
    census busy;
    take_census(&s, &busy);
    sleep_ms(2600); /* the sweep releases what quiet connections do not need */

    census idle;
    take_census(&s, &idle);
    assert_int_equal(idle.conns, n);
    size_t mem1 = pl_mem_used();
    long rss1 = vm_rss_kb();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    malloc_trim(0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long rss1t = vm_rss_kb();
    double trim_ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;

    /* A heartbeat round: a ping on every connection. */
    for (int i = 0; i < n; i++) ws_send(fds[i], 0x9, "hb", 2);
    for (int i = 0; i < n; i++) ws_expect(fds[i], 0xA, "hb", 2);
    sleep_ms(2600);
    size_t mem2 = pl_mem_used();
    long rss2 = vm_rss_kb();
    malloc_trim(0);
    long rss2t = vm_rss_kb();

    double per_mem = ((double)mem1 - (double)mem0) / n;
    print_message("%d idle WebSocket connections, %zu workers\n", n, net_worker_count(s.n));
    print_message("  right after the burst: %zu wslay contexts held by connections, %zu spare; VmRSS +%.0f B/conn\n",
                  busy.ws_ctx, busy.spare_ctx, (double)(rss_burst - rss0) * 1024.0 / n);
    print_message("  settled: contexts %zu (+%zu spare), HTTP parsers %zu, buffer bytes %zu\n", idle.ws_ctx,
                  idle.spare_ctx, idle.parsers, idle.buffers);
    print_message("  pl_mem_used per connection: %.0f B\n", per_mem);
    print_message("  VmRSS per connection: %.0f B; after malloc_trim(0): %.0f B (the trim took %.2f ms)\n",
                  (double)(rss1 - rss0) * 1024.0 / n, (double)(rss1t - rss0) * 1024.0 / n, trim_ms);
    print_message("  after a heartbeat round: pl_mem_used %.0f B, VmRSS %.0f B, after malloc_trim(0) %.0f B\n",
                  ((double)mem2 - (double)mem0) / n, (double)(rss2 - rss0) * 1024.0 / n,
                  (double)(rss2t - rss0) * 1024.0 / n);
    assert_int_equal(idle.parsers, 0);
    assert_int_equal(idle.buffers, 0);
    assert_int_equal(idle.ws_ctx, 0);
    assert_true(per_mem < 1024);
    assert_true(((double)mem2 - (double)mem0) / n < 1024);

    for (int i = 0; i < n; i++) close(fds[i]);
    free(fds);
    uv_async_send(&s.stop);
    uv_thread_join(&s.thread);
    net_free(s.n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
