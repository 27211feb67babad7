/*
 * test_udp.c - the net layer's UDP port end to end: net_start with a UDP
 * address on port 0, a small application, and plain POSIX UDP sockets as
 * peers, each bound to its own port on 127.0.0.1.
 *
 * The application answers each datagram: "id?" with the connection's id,
 * its worker, the datagrams it has seen and its remote IP; "close" closes
 * the connection; "big" tries a datagram one byte over the limit and one
 * at the limit; "burst N" sends N numbered datagrams in one turn; anything
 * else is echoed.  It counts opens, closes, ticks and flushes.
 *
 * The server runs net_run on a thread of its own and is stopped through an
 * async handle on its main loop.  Every receive has a timeout, so a broken
 * server fails a test instead of hanging it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/mem.h"
#include "net/net_internal.h"

/* ------------------------------------------------------------------ */
/* The application                                                      */
/* ------------------------------------------------------------------ */

static atomic_int n_opens, n_closes, n_ticks, n_flushes, n_bad;

typedef struct peer_state {
    uint64_t msgs;
} peer_state;

static uint8_t big_msg[NET_UDP_MAX + 1];

static void app_open(net_conn *c)
{
    if (net_conn_kind(c) != NET_UDP || strcmp(net_conn_remote_ip(c), "127.0.0.1")) atomic_fetch_add(&n_bad, 1);
    net_conn_set_data(c, calloc(1, sizeof(peer_state)));
    atomic_fetch_add(&n_opens, 1);
}

static void reply(net_conn *c, const char *fmt, ...)
{
    char out[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, sizeof out, fmt, ap);
    va_end(ap);
    net_send(c, true, out, (size_t)n);
}

static void app_message(net_conn *c, bool binary, const uint8_t *data, size_t len)
{
    peer_state *ps = net_conn_data(c);
    ps->msgs++;
    if (!binary || net_conn_queued(c) != 0) atomic_fetch_add(&n_bad, 1);
    char text[64] = "";
    if (len < sizeof text) memcpy(text, data, len);
    if (!strcmp(text, "id?")) {
        reply(c, "id=%llu w=%zu n=%llu ip=%s", (unsigned long long)net_conn_id(c),
              net_worker_index(net_conn_worker(c)), (unsigned long long)ps->msgs, net_conn_remote_ip(c));
    } else if (!strcmp(text, "close")) {
        net_close(c, NET_CLOSE_NORMAL, "bye");
        /* Closed, not yet gone: nothing more may be sent. */
        if (net_send(c, true, "late", 4) != -1) atomic_fetch_add(&n_bad, 1);
    } else if (!strcmp(text, "big")) {
        size_t max = net_conn_worker(c)->n->udp_max;
        int over = net_send(c, true, big_msg, max + 1);
        int at = net_send(c, true, big_msg, max);
        reply(c, "big:%d,%d", over, at);
    } else if (!strncmp(text, "burst ", 6)) {
        int k = atoi(text + 6);
        for (int i = 0; i < k; i++) reply(c, "b%d", i);
    } else {
        net_send(c, true, data, len);
    }
}

static void app_close(net_conn *c)
{
    free(net_conn_data(c));
    net_conn_set_data(c, NULL);
    atomic_fetch_add(&n_closes, 1);
}

static void app_tick(net_worker *w, void *wdata, uint64_t now_ms)
{
    if (wdata != (void *)(uintptr_t)(0x1000 + net_worker_index(w))) atomic_fetch_add(&n_bad, 1);
    atomic_fetch_add(&n_ticks, 1);
}

static void app_flush(net_worker *w, void *wdata) { atomic_fetch_add(&n_flushes, 1); }

static void *app_worker_start(net_worker *w, void *ud) { return (void *)(uintptr_t)(0x1000 + net_worker_index(w)); }

static const net_callbacks app = {
    .worker_start = app_worker_start,
    .on_open = app_open,
    .on_message = app_message,
    .on_close = app_close,
    .on_tick = app_tick,
    .on_flush = app_flush,
};

/* ------------------------------------------------------------------ */
/* Running a server                                                     */
/* ------------------------------------------------------------------ */

typedef struct server {
    net *n;
    uv_thread_t thread;
    uv_async_t stop, stop_accepting;
    int udp_port;
} server;

static void stop_cb(uv_async_t *a)
{
    server *s = a->data;
    net_stop(s->n, NET_CLOSE_GOING_AWAY);
    uv_close((uv_handle_t *)a, NULL);
    uv_close((uv_handle_t *)&s->stop_accepting, NULL);
}

static void stop_accepting_cb(uv_async_t *a)
{
    server *s = a->data;
    net_stop_accepting(s->n);
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
        .udp_addr = "127.0.0.1:0",
        .workers = 2,
        .max_frame = 4096,
        .max_outbound = 256 * 1024,
    };
    return cfg;
}

static void server_start(server *s, const net_config *cfg)
{
    char err[256];
    memset(s, 0, sizeof *s);
    if (net_start(&s->n, cfg, &app, err, sizeof err)) fail_msg("net_start: %s", err);
    s->udp_port = net_udp_port(s->n);
    assert_true(s->udp_port > 0);
    uv_async_init(net_main_loop(s->n), &s->stop, stop_cb);
    uv_async_init(net_main_loop(s->n), &s->stop_accepting, stop_accepting_cb);
    s->stop.data = s->stop_accepting.data = s;
    uv_thread_create(&s->thread, run_thread, s);
}

static void server_stop(server *s)
{
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    net_free(s->n);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static size_t udp_conns(server *s)
{
    size_t total = 0;
    for (size_t i = 0; i < net_worker_count(s->n); i++) total += net_worker_conns(net_worker_at(s->n, i), NET_UDP);
    return total;
}

/* Wait up to 3 s for a counter to reach a value. */
static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 300 && atomic_load(v) < want; i++) sleep_ms(10);
    assert_true(atomic_load(v) >= want);
}

/* ------------------------------------------------------------------ */
/* A peer                                                               */
/* ------------------------------------------------------------------ */

typedef struct peer {
    int fd;
    struct sockaddr_in to;
} peer;

static void peer_open(peer *p, int port)
{
    p->fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(p->fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &me.sin_addr);
    assert_int_equal(bind(p->fd, (struct sockaddr *)&me, sizeof me), 0);
    int rcv = 1 << 20;
    setsockopt(p->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    memset(&p->to, 0, sizeof p->to);
    p->to.sin_family = AF_INET;
    p->to.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &p->to.sin_addr);
}

static void peer_close(peer *p)
{
    close(p->fd);
    p->fd = -1;
}

static void peer_send(peer *p, const void *data, size_t len)
{
    ssize_t r = sendto(p->fd, data, len, 0, (struct sockaddr *)&p->to, sizeof p->to);
    assert_int_equal(r, (ssize_t)len);
}

static void peer_sends(peer *p, const char *s) { peer_send(p, s, strlen(s)); }

/* One datagram into out (NUL-terminated when it fits); its length, or -1
 * after timeout_ms without one.  Only datagrams from the server count. */
static ssize_t peer_recv(peer *p, char *out, size_t outlen, int timeout_ms)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t r = recvfrom(p->fd, out, outlen, 0, (struct sockaddr *)&from, &fl);
    if (r < 0) return -1;
    assert_int_equal(from.sin_port, p->to.sin_port);
    if ((size_t)r < outlen) out[r] = 0;
    return r;
}

static void peer_expect(peer *p, const char *want)
{
    char got[8192];
    ssize_t r = peer_recv(p, got, sizeof got, 3000);
    if (r < 0) fail_msg("no datagram; expected \"%s\"", want);
    assert_string_equal(got, want);
}

static bool peer_silent(peer *p, int ms)
{
    char got[8192];
    return peer_recv(p, got, sizeof got, ms) < 0;
}

typedef struct ident {
    unsigned long long id, n;
    size_t w;
} ident;

static ident peer_ident(peer *p)
{
    char got[256], ip[64];
    peer_sends(p, "id?");
    ssize_t r = peer_recv(p, got, sizeof got, 3000);
    if (r < 0) fail_msg("no answer to id?");
    ident d;
    assert_int_equal(sscanf(got, "id=%llu w=%zu n=%llu ip=%63s", &d.id, &d.w, &d.n, ip), 4);
    assert_string_equal(ip, "127.0.0.1");
    return d;
}

/* ------------------------------------------------------------------ */
/* Tests                                                                */
/* ------------------------------------------------------------------ */

/* Two peers get two connections; each datagram is one on_message, in
 * order, and answers reach the peer that asked and no other. */
static void test_two_peers(void **state)
{
    server s;
    net_config cfg = test_config();
    int opens = atomic_load(&n_opens), closes = atomic_load(&n_closes);
    server_start(&s, &cfg);
    peer a, b;
    peer_open(&a, s.udp_port);
    peer_open(&b, s.udp_port);
    ident ia = peer_ident(&a), ib = peer_ident(&b);
    assert_int_not_equal(ia.id, ib.id);
    assert_int_equal(ia.n, 1);
    assert_int_equal(ib.n, 1);
    assert_int_equal(atomic_load(&n_opens), opens + 2);
    assert_int_equal(udp_conns(&s), 2);

    peer_sends(&a, "a1");
    peer_sends(&a, "a2");
    peer_sends(&a, "a3");
    peer_expect(&a, "a1");
    peer_expect(&a, "a2");
    peer_expect(&a, "a3");
    assert_true(peer_silent(&b, 200));
    peer_sends(&b, "b1");
    peer_expect(&b, "b1");
    assert_true(peer_silent(&a, 200));

    ident again = peer_ident(&a);
    assert_int_equal(again.id, ia.id);
    assert_int_equal(again.w, ia.w);
    assert_int_equal(again.n, 5);
    /* An empty datagram is a message too. */
    peer_send(&a, "", 0);
    char got[16];
    assert_int_equal(peer_recv(&a, got, sizeof got, 3000), 0);

    peer_close(&a);
    peer_close(&b);
    server_stop(&s);
    assert_int_equal(atomic_load(&n_closes), closes + 2);
    assert_int_equal(atomic_load(&n_bad), 0);
}

/* Datagrams above min(max_frame, NET_UDP_MAX) are dropped inbound and
 * refused outbound; one at the limit goes both ways. */
static void test_sizes(void **state)
{
    server s;
    net_config cfg = test_config();
    server_start(&s, &cfg);
    peer a;
    peer_open(&a, s.udp_port);
    peer_sends(&a, "big");
    char got[8192];
    assert_int_equal(peer_recv(&a, got, sizeof got, 3000), 4096); /* queued before the reply */
    peer_expect(&a, "big:-1,0");
    peer_send(&a, big_msg, 4097);
    assert_true(peer_silent(&a, 200));
    peer_send(&a, big_msg, 4096);
    assert_int_equal(peer_recv(&a, got, sizeof got, 3000), 4096);
    ident ia = peer_ident(&a);
    assert_int_equal(ia.n, 3); /* big, the 4096-byte one, id? (not the dropped one) */
    peer_close(&a);
    server_stop(&s);

    /* With a large max_frame the limit is NET_UDP_MAX. */
    cfg.max_frame = 1 << 20;
    server_start(&s, &cfg);
    assert_int_equal(s.n->udp_max, NET_UDP_MAX);
    peer_open(&a, s.udp_port);
    peer_sends(&a, "big");
    static char huge[NET_UDP_MAX + 16];
    assert_int_equal(peer_recv(&a, huge, sizeof huge, 3000), NET_UDP_MAX);
    peer_expect(&a, "big:-1,0");
    peer_close(&a);
    server_stop(&s);
    assert_int_equal(atomic_load(&n_bad), 0);
}

/* net_close ends the connection (on_close) before the loop sleeps; the
 * next datagram from the same address opens a new one. */
static void test_close_and_reopen(void **state)
{
    server s;
    net_config cfg = test_config();
    server_start(&s, &cfg);
    int closes = atomic_load(&n_closes);
    peer a;
    peer_open(&a, s.udp_port);
    ident first = peer_ident(&a);
    peer_sends(&a, "close");
    wait_for(&n_closes, closes + 1);
    assert_true(peer_silent(&a, 100)); /* "late" was refused */
    assert_int_equal(udp_conns(&s), 0);
    ident second = peer_ident(&a);
    assert_int_not_equal(second.id, first.id);
    assert_int_equal(second.n, 1);
    peer_close(&a);
    server_stop(&s);
    assert_int_equal(atomic_load(&n_bad), 0);
}

/* No datagram for idle_timeout_ms closes a connection; traffic keeps one. */
static void test_idle(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.idle_timeout_ms = 400;
    server_start(&s, &cfg);
    int closes = atomic_load(&n_closes);
    peer a, b;
    peer_open(&a, s.udp_port);
    peer_open(&b, s.udp_port);
    ident ia = peer_ident(&a), ib = peer_ident(&b);
    for (int i = 0; i < 8; i++) {
        sleep_ms(150);
        peer_sends(&a, "hb");
        peer_expect(&a, "hb");
    }
    /* 1.2 s: b was silent, a was not. */
    assert_int_equal(atomic_load(&n_closes), closes + 1);
    ident ia2 = peer_ident(&a), ib2 = peer_ident(&b);
    assert_int_equal(ia2.id, ia.id);
    assert_int_not_equal(ib2.id, ib.id);
    assert_int_equal(ib2.n, 1);
    peer_close(&a);
    peer_close(&b);
    server_stop(&s);
}

/* Per-IP limits apply to UDP peers as to TCP connections: open count and
 * rate of new ones.  A refused datagram gets no answer. */
static void test_ip_limits(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.max_conns_per_ip = 2;
    server_start(&s, &cfg);
    int closes = atomic_load(&n_closes);
    peer a, b, c;
    peer_open(&a, s.udp_port);
    peer_open(&b, s.udp_port);
    peer_open(&c, s.udp_port);
    peer_ident(&a);
    peer_ident(&b);
    peer_sends(&c, "id?");
    assert_true(peer_silent(&c, 300));
    assert_int_equal(udp_conns(&s), 2);
    peer_sends(&a, "close");
    wait_for(&n_closes, closes + 1);
    ident ic = peer_ident(&c);
    assert_int_equal(ic.n, 1);
    peer_close(&a);
    peer_close(&b);
    peer_close(&c);
    server_stop(&s);

    cfg = test_config();
    cfg.conn_rate_per_ip = 0.5;
    cfg.conn_burst_per_ip = 2;
    server_start(&s, &cfg);
    peer_open(&a, s.udp_port);
    peer_open(&b, s.udp_port);
    peer_open(&c, s.udp_port);
    peer_ident(&a);
    peer_ident(&b);
    peer_sends(&c, "id?");
    assert_true(peer_silent(&c, 300));
    /* Known peers are not new connections: they go on. */
    peer_sends(&a, "x");
    peer_expect(&a, "x");
    peer_close(&a);
    peer_close(&b);
    peer_close(&c);
    server_stop(&s);
}

/* The kernel keeps each peer on one worker's socket, and spreads peers
 * over the workers. */
static void test_spread(void **state)
{
    enum { N = 32 };
    server s;
    net_config cfg = test_config();
    cfg.workers = 4;
    server_start(&s, &cfg);
    peer ps[N];
    size_t per_worker[4] = {0};
    for (int i = 0; i < N; i++) {
        peer_open(&ps[i], s.udp_port);
        ident d = peer_ident(&ps[i]);
        assert_true(d.w < 4);
        per_worker[d.w]++;
        for (int k = 0; k < 3; k++) assert_int_equal(peer_ident(&ps[i]).w, d.w);
    }
    int used = 0;
    for (int k = 0; k < 4; k++) used += per_worker[k] > 0;
    assert_true(used >= 2);
    assert_int_equal(udp_conns(&s), N);
    for (int i = 0; i < N; i++) peer_close(&ps[i]);
    server_stop(&s);
}

/* Many datagrams queued in one turn all go out (several sendmmsg
 * batches), in order. */
static void test_burst(void **state)
{
    server s;
    net_config cfg = test_config();
    server_start(&s, &cfg);
    peer a;
    peer_open(&a, s.udp_port);
    peer_sends(&a, "burst 300");
    char want[16];
    for (int i = 0; i < 300; i++) {
        snprintf(want, sizeof want, "b%d", i);
        peer_expect(&a, want);
    }
    peer_close(&a);
    server_stop(&s);
}

/* on_tick runs every tick_ms on each worker, on_flush once per loop
 * iteration; without a UDP address there is no UDP port. */
static void test_tick_and_flush(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.tick_ms = 20;
    int ticks = atomic_load(&n_ticks);
    server_start(&s, &cfg);
    int flushes = atomic_load(&n_flushes);
    sleep_ms(400);
    int got = atomic_load(&n_ticks) - ticks;
    assert_true(got >= 2 * 10 && got <= 2 * 25);
    peer a;
    peer_open(&a, s.udp_port);
    peer_ident(&a);
    assert_true(atomic_load(&n_flushes) > flushes);
    peer_close(&a);
    server_stop(&s);
    int after = atomic_load(&n_ticks);
    sleep_ms(100);
    assert_int_equal(atomic_load(&n_ticks), after);

    cfg = test_config();
    cfg.udp_addr = "";
    char err[256];
    net *n;
    assert_int_equal(net_start(&n, &cfg, &app, err, sizeof err), 0);
    assert_int_equal(net_udp_port(n), 0);
    net_free(n);
    assert_int_equal(atomic_load(&n_bad), 0);
}

/* A UDP port held by anyone, with SO_REUSEPORT or without, is in use. */
static void test_port_in_use(void **state)
{
    for (int reuse = 0; reuse < 2; reuse++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        int one = 1;
        if (reuse) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        socklen_t sl = sizeof sa;
        getsockname(fd, (struct sockaddr *)&sa, &sl);
        char addr[64], err[256], want[128];
        snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(sa.sin_port));
        net_config cfg = test_config();
        cfg.udp_addr = addr;
        net *n = NULL;
        assert_int_not_equal(net_start(&n, &cfg, &app, err, sizeof err), 0);
        snprintf(want, sizeof want, "cannot listen on %s (UDP): address already in use", addr);
        assert_string_equal(err, want);
        assert_null(n);
        close(fd);
    }
    net_config cfg = test_config();
    cfg.udp_addr = "nonsense";
    char err[256];
    net *n = NULL;
    assert_int_not_equal(net_start(&n, &cfg, &app, err, sizeof err), 0);
    assert_non_null(strstr(err, "nonsense"));
}

/* After net_stop_accepting new peers are ignored and known ones served;
 * net_stop closes every UDP connection and frees the port. */
static void test_stop(void **state)
{
    server s;
    net_config cfg = test_config();
    cfg.workers = 3;
    int closes = atomic_load(&n_closes);
    server_start(&s, &cfg);
    int port = s.udp_port;
    peer a, b, c;
    peer_open(&a, port);
    peer_open(&b, port);
    peer_open(&c, port);
    peer_ident(&a);
    peer_ident(&b);
    uv_async_send(&s.stop_accepting);
    sleep_ms(100);
    peer_sends(&c, "id?");
    assert_true(peer_silent(&c, 300));
    peer_sends(&a, "still");
    peer_expect(&a, "still");
    server_stop(&s);
    assert_int_equal(atomic_load(&n_closes), closes + 2);
    /* The port is free again, even for a socket without SO_REUSEPORT. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd);
    peer_close(&a);
    peer_close(&b);
    peer_close(&c);
}

/* What an idle UDP connection costs the net layer: no buffer, a small
 * struct and a slot in the worker's table. */
static void test_memory(void **state)
{
    enum { N = 100 };
    server s;
    net_config cfg = test_config();
    cfg.workers = 1;
    server_start(&s, &cfg);
    static peer ps[N];
    peer_open(&ps[0], s.udp_port);
    peer_ident(&ps[0]);
    sleep_ms(100);
    size_t before = pl_mem_used();
    for (int i = 1; i < N; i++) {
        peer_open(&ps[i], s.udp_port);
        peer_ident(&ps[i]);
    }
    sleep_ms(100);
    size_t after = pl_mem_used();
    double per = ((double)after - (double)before) / (N - 1);
    print_message("sizeof(net__uconn) = %zu; counted memory per idle UDP connection: %.0f bytes\n",
                  sizeof(net__uconn), per);
    assert_true(per < 512);
    for (int i = 0; i < N; i++) peer_close(&ps[i]);
    server_stop(&s);
}

int main(void)
{
    memset(big_msg, 'u', sizeof big_msg);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_peers),  cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_close_and_reopen), cmocka_unit_test(test_idle),
        cmocka_unit_test(test_ip_limits),  cmocka_unit_test(test_spread),
        cmocka_unit_test(test_burst),      cmocka_unit_test(test_tick_and_flush),
        cmocka_unit_test(test_port_in_use), cmocka_unit_test(test_stop),
        cmocka_unit_test(test_memory),
    };
    return cmocka_run_group_tests_name("udp", tests, NULL, NULL);
}
