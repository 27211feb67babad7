/*
 * test_fdlimit.c - the server at its open-file limit: a connection it has
 * no descriptor for is refused at once (not left hanging in the backlog),
 * an HTTP client gets a 503, the refusals are logged at most once per 10 s,
 * and once connections close new ones are accepted again.
 *
 * RLIMIT_NOFILE is per process, and the clients live in this process too.
 * So the client sockets are all made first and moved to descriptor numbers
 * above the limit the test then sets (a descriptor above the limit stays
 * valid; only new ones must be below it): connecting them takes no
 * descriptor, and every slot below the limit is the server's to run out of.
 * The test runs in a process of its own (ctest runs each file apart) and
 * puts the limit back before it ends.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
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

#include "core/log.h"
#include "net/net_internal.h"

/* TCP frames are echoed; HTTP gets "ok". */
static void app_message(net_conn *c, bool binary, const uint8_t *data, size_t len) { net_send(c, true, data, len); }

static void app_http(net_conn *c, const net_http_req *req)
{
    net_http_respond(c, 200, "text/plain", NULL, "ok\n", 3);
}

static const net_callbacks app = {.on_message = app_message, .on_http = app_http};

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

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Descriptors open below `below`. */
static int fds_below(int below)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int dfd = dirfd(d), n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd != dfd && fd < below) n++;
    }
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ */

enum { HIGH = 4000, POOL = 200 };

static int pool[POOL], pool_next;

/* A client socket from the pool (above the limit), with 2 s timeouts. */
static int client_socket(void)
{
    assert_true(pool_next < POOL);
    return pool[pool_next++];
}

static void client_connect(int fd, int port)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
}

/* Send one TCP frame and wait for its echo: 1 echoed, 0 the server closed
 * the connection (EOF or reset), -1 no answer within the timeout. */
static int tcp_roundtrip(int fd, uint64_t *took_ms)
{
    uint64_t t0 = now_ms();
    uint8_t f[5] = {0, 0, 0, 1, 'x'}, in[5];
    if (send(fd, f, sizeof f, MSG_NOSIGNAL) != (ssize_t)sizeof f) {
        *took_ms = now_ms() - t0;
        return 0;
    }
    size_t got = 0;
    while (got < sizeof in) {
        ssize_t r = recv(fd, in + got, sizeof in - got, 0);
        if (r <= 0) {
            *took_ms = now_ms() - t0;
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -1;
            return 0;
        }
        got += (size_t)r;
    }
    *took_ms = now_ms() - t0;
    return !memcmp(in, f, sizeof f) ? 1 : -1;
}

/* Lines of the log containing needle, read through a descriptor opened
 * before the limit came down (the test cannot open files at the limit). */
static int log_fd = -1;

static int count_lines(const char *needle)
{
    static char text[1 << 16];
    ssize_t n = pread(log_fd, text, sizeof text - 1, 0);
    assert_true(n >= 0);
    text[n] = 0;
    int count = 0;
    for (char *line = text, *end; *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end) end = line + strlen(line) - 1;
        char save = end[1];
        end[1] = 0;
        if (strstr(line, needle)) count++;
        end[1] = save;
        if (!save) break;
    }
    return count;
}

static void test_at_fd_limit(void **state)
{
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    if (old.rlim_cur < HIGH + POOL + 16) skip();
    char logpath[] = "/tmp/parley-fdlimit-XXXXXX";
    int lfd = mkstemp(logpath);
    assert_true(lfd >= 0);
    close(lfd);
    assert_int_equal(log_open(logpath, LOG_INFO, "test"), 0);
    {
        int fd = open(logpath, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        log_fd = fcntl(fd, F_DUPFD_CLOEXEC, HIGH + POOL);
        assert_true(log_fd >= HIGH + POOL);
        close(fd);
    }


    server s = {0};
    net_config cfg = {.http_addr = "127.0.0.1:0", .tcp_addr = "127.0.0.1:0", .workers = 2};
    char err[256];
    if (net_start(&s.n, &cfg, &app, err, sizeof err)) fail_msg("net_start: %s", err);
    int http_port = net_http_port(s.n), tcp_port = net_tcp_port(s.n);
    uv_async_init(net_main_loop(s.n), &s.stop, stop_cb);
    s.stop.data = &s;
    uv_thread_create(&s.thread, run_thread, &s);

    /* The clients' sockets, moved above the limit to come. */
    for (int i = 0; i < POOL; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        pool[i] = fcntl(fd, F_DUPFD_CLOEXEC, HIGH);
        assert_true(pool[i] >= HIGH);
        close(fd);
    }
    /* Room for exactly ROOM more descriptors below the limit (descriptors
     * inherited above it stay valid and do not count). */
    enum { ROOM = 12 };
    int limit = 3;
    while (limit - fds_below(limit) < ROOM) limit++;
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)limit;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &lim), 0);

    /* Fill the server up. */
    int open_fds[ROOM + 4], n_open = 0, refused = -1;
    uint64_t took = 0;
    for (int i = 0; i < ROOM + 4; i++) {
        int fd = client_socket();
        client_connect(fd, tcp_port);
        int r = tcp_roundtrip(fd, &took);
        if (r == 1) {
            open_fds[n_open++] = fd;
            continue;
        }
        /* Closed promptly, not left waiting for the timeout. */
        assert_int_equal(r, 0);
        assert_true(took < 1000);
        refused = fd;
        break;
    }
    print_message("%d connections accepted with room for %d descriptors; the next closed after %llu ms\n", n_open,
                  ROOM, (unsigned long long)took);
    assert_true(refused >= 0);
    /* Every free slot went to a connection (a little slack for a library
     * that opens a file of its own meanwhile). */
    assert_true(n_open >= ROOM - 2 && n_open <= ROOM);
    close(refused);

    /* More refusals, on both ports: an HTTP client gets a 503. */
    for (int i = 0; i < 20; i++) {
        int fd = client_socket();
        client_connect(fd, tcp_port);
        assert_int_equal(tcp_roundtrip(fd, &took), 0);
        assert_true(took < 1000);
        close(fd);
    }
    {
        int fd = client_socket();
        client_connect(fd, http_port);
        const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
        send(fd, req, sizeof req - 1, MSG_NOSIGNAL);
        uint64_t t0 = now_ms();
        char resp[512];
        size_t got = 0;
        for (;;) {
            ssize_t r = recv(fd, resp + got, sizeof resp - 1 - got, 0);
            if (r <= 0) {
                /* EOF, or a reset if the request came after the close */
                if (r < 0) assert_true(errno == ECONNRESET);
                break;
            }
            got += (size_t)r;
        }
        resp[got] = 0;
        assert_true(now_ms() - t0 < 1000);
        if (got) assert_memory_equal(resp, "HTTP/1.1 503 ", 13);
        print_message("HTTP at the limit: %s\n", got ? "503" : "closed");
        close(fd);
    }
    /* One log line for all of them. */
    int lines = count_lines("too many open files");
    print_message("log lines about the limit: %d (for %d refusals)\n", lines, 22);
    assert_int_equal(lines, 1);
    assert_int_equal(count_lines(", 0 pauses"), 1); /* refused at once, no accept paused */

    /* Closing two makes room again. */
    close(open_fds[--n_open]);
    close(open_fds[--n_open]);
    bool ok = false;
    for (int i = 0; i < 40 && !ok; i++) {
        sleep_ms(50);
        int fd = client_socket();
        client_connect(fd, tcp_port);
        int r = tcp_roundtrip(fd, &took);
        if (r == 1) {
            ok = true;
            open_fds[n_open++] = fd;
        } else {
            close(fd);
        }
    }
    assert_true(ok);

    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    while (n_open) close(open_fds[--n_open]);
    while (pool_next < POOL) close(pool[pool_next++]);
    uv_async_send(&s.stop);
    uv_thread_join(&s.thread);
    net_free(s.n);
    log_close();
    close(log_fd);
    unlink(logpath);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_at_fd_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
