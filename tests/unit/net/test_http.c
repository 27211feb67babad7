/*
 * test_http.c - the HTTP/1.1 request parser (src/net/http.c) and the
 * request helpers of net.h.
 *
 * Requests are tables of raw bytes.  Every request is parsed whole, split in
 * two at every byte position, and fed one byte at a time; the outcome
 * (request fields, or error status) must be the same every way, since a
 * client's bytes may arrive in any number of reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mem.h"
#include "net/net_internal.h"

#define MAX_HEADER 1024
#define MAX_BODY 64

/* Feed len bytes in pieces: split at `at`, or one byte at a time when
 * at == (size_t)-1.  Returns the last result; *consumed the bytes used. */
static int feed_pieces(net__http_parser *p, const char *s, size_t len, size_t at, size_t *consumed)
{
    size_t total = 0, used;
    int r = NET__HTTP_MORE;
    if (at == (size_t)-1) {
        for (size_t i = 0; i < len && r == NET__HTTP_MORE; i++) {
            r = net__http_feed(p, (const uint8_t *)s + i, 1, &used);
            total += used;
        }
    } else {
        if (at > 0) {
            r = net__http_feed(p, (const uint8_t *)s, at, &used);
            total += used;
        }
        if (r == NET__HTTP_MORE && at < len) {
            r = net__http_feed(p, (const uint8_t *)s + at, len - at, &used);
            total += used;
        }
    }
    *consumed = total;
    return r;
}

typedef struct good_case {
    const char *name;
    const char *raw;
    const char *method, *path, *query;
    const char *hname, *hvalue; /* one header to check, or NULL */
    size_t n_headers;
    const char *body;
    bool keep_alive, upgrade, expect_continue;
} good_case;

static const good_case goods[] = {
    {"simple GET", "GET /v1/users/bob HTTP/1.1\r\nHost: example\r\n\r\n", "GET", "/v1/users/bob", "", "host",
     "example", 1, "", true, false, false},
    {"POST with body and query", "POST /v1/messages?to=bob&x=%20 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
     "Content-Length: 10\r\n\r\n{\"a\":\"bc\"}",
     "POST", "/v1/messages", "to=bob&x=%20", "CONTENT-TYPE", "application/json", 3, "{\"a\":\"bc\"}", true, false,
     false},
    {"percent-decoded path", "GET /v1/users/al%20ice%2Fx HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/v1/users/al ice/x", "", NULL,
     NULL, 1, "", true, false, false},
    {"chunked body", "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
     "POST", "/c", "", "transfer-encoding", "chunked", 2, "hello world", true, false, false},
    {"chunked body with trailer", "POST /t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
     "POST", "/t", "", NULL, NULL, 2, "ok", true, false, false},
    {"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\n", "GET", "/", "", NULL, NULL, 0, "", false, false, false},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "GET", "/", "", NULL, NULL, 1, "",
     true, false, false},
    {"Connection: close", "GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "GET", "/x", "", "connection", "close", 2,
     "", false, false, false},
    {"empty and padded values", "GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-B:   b  \r\nX-C: c\r\n\r\n", "GET", "/", "", "x-b",
     "b", 4, "", true, false, false},
    {"absolute target", "GET http://example.com/p/q?q=1 HTTP/1.1\r\nHost: x\r\n\r\n", "GET", "/p/q", "q=1", NULL, NULL, 1, "",
     true, false, false},
    {"WebSocket upgrade", "GET /v1/ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     "GET", "/v1/ws", "", "sec-websocket-version", "13", 5, "", true, true, false},
    {"Expect: 100-continue", "PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc", "PUT", "/e",
     "", "expect", "100-continue", 3, "abc", true, false, true},
    {"HEAD", "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n", "HEAD", "/h", "", NULL, NULL, 1, "", true, false, false},
    {"body exactly max_body", "POST /m HTTP/1.1\r\nHost: x\r\nContent-Length: 64\r\n\r\n"
     "0123456789012345678901234567890123456789012345678901234567890123",
     "POST", "/m", "", NULL, NULL, 2, "0123456789012345678901234567890123456789012345678901234567890123", true, false,
     false},
};

static void check_good(const good_case *g, size_t at)
{
    net__http_parser p;
    net__http_init(&p, MAX_HEADER, MAX_BODY);
    size_t len = strlen(g->raw), used;
    int r = feed_pieces(&p, g->raw, len, at, &used);
    if (r != NET__HTTP_DONE) fail_msg("%s (split %zu): result %d status %d %s", g->name, at, r, p.status, p.error);
    assert_int_equal(used, len);
    assert_string_equal(p.req.method, g->method);
    assert_string_equal(p.req.path, g->path);
    assert_string_equal(p.req.query, g->query);
    assert_int_equal(p.req.n_headers, g->n_headers);
    if (g->hname) {
        const char *v = net_http_header(&p.req, g->hname);
        assert_non_null(v);
        assert_string_equal(v, g->hvalue);
    }
    assert_int_equal(p.req.body_len, strlen(g->body));
    assert_memory_equal(p.req.body, g->body, p.req.body_len);
    assert_int_equal(p.req.body[p.req.body_len], 0);
    assert_int_equal(p.keep_alive, g->keep_alive);
    assert_int_equal(p.upgrade, g->upgrade);
    assert_int_equal(p.expect_continue, g->expect_continue);
    net__http_free(&p);
}

static void test_good_requests(void **state)
{
    for (size_t i = 0; i < sizeof goods / sizeof goods[0]; i++) {
        size_t len = strlen(goods[i].raw);
        for (size_t at = 0; at <= len; at++) check_good(&goods[i], at);
        check_good(&goods[i], (size_t)-1);
    }
}

static void test_empty_header_value(void **state)
{
    net__http_parser p;
    net__http_init(&p, MAX_HEADER, MAX_BODY);
    const char *raw = "GET / HTTP/1.1\r\nX-Empty:\r\nX-B: b\r\nHost: x\r\n\r\n";
    size_t used;
    assert_int_equal(net__http_feed(&p, (const uint8_t *)raw, strlen(raw), &used), NET__HTTP_DONE);
    assert_string_equal(net_http_header(&p.req, "x-empty"), "");
    assert_string_equal(p.req.headers[0].name, "X-Empty");
    assert_string_equal(p.req.headers[1].name, "X-B");
    assert_null(net_http_header(&p.req, "x-missing"));
    net__http_free(&p);
}

typedef struct bad_case {
    const char *name;
    const char *raw;
    int status;
} bad_case;

static const bad_case bads[] = {
    {"garbage", "GARBAGE\r\n\r\n", 400},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: a\r\n\r\n", 400},
    {"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},
    {"header without colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400},
    {"bad escape in path", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"cut escape in path", "GET /a%4 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"NUL in path", "GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", 505},
    {"CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", 405},
    {"bad Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400},
    {"Content-Length over max_body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65\r\n\r\n", 413},
    {"chunked body over max_body", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     "30\r\n012345678901234567890123456789012345678901234567\r\n"
     "30\r\n012345678901234567890123456789012345678901234567\r\n0\r\n\r\n",
     413},
    {"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
    {"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"asterisk target", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"target not starting with a slash", "GET *a HTTP/1.1\r\nHost: x\r\n\r\n", 400},
};

static void check_bad(const bad_case *b, size_t at)
{
    net__http_parser p;
    net__http_init(&p, MAX_HEADER, MAX_BODY);
    size_t used;
    int r = feed_pieces(&p, b->raw, strlen(b->raw), at, &used);
    if (r != NET__HTTP_ERROR) fail_msg("%s (split %zu): result %d", b->name, at, r);
    if (p.status != b->status) fail_msg("%s (split %zu): status %d, want %d", b->name, at, p.status, b->status);
    assert_non_null(p.error);
    net__http_free(&p);
}

static void test_bad_requests(void **state)
{
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        size_t len = strlen(bads[i].raw);
        for (size_t at = 0; at <= len; at++) check_bad(&bads[i], at);
        check_bad(&bads[i], (size_t)-1);
    }
}

/* A head of exactly max_header bytes passes; one byte more is 431, at any
 * split, and the parser never consumes more than max_header of a head. */
static void test_header_limit(void **state)
{
    char raw[600];
    for (size_t pad = 0; pad < 3; pad++) {
        int n = snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: %.*s\r\n\r\n", (int)(400 + pad),
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        size_t len = (size_t)n;
        for (size_t at = 0; at <= len; at += 7) {
            net__http_parser p;
            size_t used;
            net__http_init(&p, len, MAX_BODY);
            assert_int_equal(feed_pieces(&p, raw, len, at, &used), NET__HTTP_DONE);
            net__http_free(&p);
            net__http_init(&p, len - 1, MAX_BODY);
            assert_int_equal(feed_pieces(&p, raw, len, at, &used), NET__HTTP_ERROR);
            assert_int_equal(p.status, 431);
            assert_true(used <= len - 1);
            net__http_free(&p);
        }
    }
}

/* An endless header line stops at max_header. */
static void test_endless_head(void **state)
{
    net__http_parser p;
    net__http_init(&p, 256, MAX_BODY);
    size_t used, total = 0;
    const char *start = "GET / HTTP/1.1\r\nHost: x\r\nX: ";
    int r = net__http_feed(&p, (const uint8_t *)start, strlen(start), &used);
    total += used;
    char chunk[100];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 10 && r == NET__HTTP_MORE; i++) {
        r = net__http_feed(&p, (const uint8_t *)chunk, sizeof chunk, &used);
        total += used;
    }
    assert_int_equal(r, NET__HTTP_ERROR);
    assert_int_equal(p.status, 431);
    assert_true(total <= 256);
    net__http_free(&p);
}

static void test_too_many_headers(void **state)
{
    char raw[4096];
    size_t n = (size_t)snprintf(raw, sizeof raw, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < NET__HTTP_MAX_HEADERS + 1; i++) n += (size_t)snprintf(raw + n, sizeof raw - n, "H%d: v\r\n", i);
    n += (size_t)snprintf(raw + n, sizeof raw - n, "\r\n");
    net__http_parser p;
    size_t used;
    net__http_init(&p, sizeof raw, MAX_BODY);
    assert_int_equal(net__http_feed(&p, (const uint8_t *)raw, n, &used), NET__HTTP_ERROR);
    assert_int_equal(p.status, 431);
    net__http_free(&p);
}

/* Pipelined requests: each DONE stops right after its request; a reset
 * parser takes the next one. */
static void test_pipelined(void **state)
{
    const char *raw = "GET /one HTTP/1.1\r\nHost: x\r\n\r\nPOST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhiGET /three HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *paths[] = {"/one", "/two", "/three"};
    size_t len = strlen(raw), off = 0, used;
    net__http_parser p;
    net__http_init(&p, MAX_HEADER, MAX_BODY);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(net__http_feed(&p, (const uint8_t *)raw + off, len - off, &used), NET__HTTP_DONE);
        assert_string_equal(p.req.path, paths[i]);
        off += used;
        net__http_reset(&p);
    }
    assert_int_equal(off, len);
    net__http_free(&p);
}

/* After an upgrade request, the bytes that follow are not HTTP and are
 * left to the caller. */
static void test_upgrade_leaves_rest(void **state)
{
    const char *raw = "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x85xyzw";
    size_t len = strlen(raw), used;
    net__http_parser p;
    net__http_init(&p, MAX_HEADER, MAX_BODY);
    assert_int_equal(net__http_feed(&p, (const uint8_t *)raw, len, &used), NET__HTTP_DONE);
    assert_true(p.upgrade);
    assert_int_equal(len - used, 6);
    net__http_free(&p);
}

static void test_query_get(void **state)
{
    const char *q = "a=1&b=hello+world&c=%41%42&d&e=&k%20x=v&long=0123456789";
    char out[8];
    assert_true(net_query_get(q, "a", out, sizeof out));
    assert_string_equal(out, "1");
    char big[32];
    assert_true(net_query_get(q, "b", big, sizeof big));
    assert_string_equal(big, "hello world");
    assert_true(net_query_get(q, "c", out, sizeof out));
    assert_string_equal(out, "AB");
    assert_true(net_query_get(q, "d", out, sizeof out));
    assert_string_equal(out, "");
    assert_true(net_query_get(q, "e", out, sizeof out));
    assert_string_equal(out, "");
    assert_true(net_query_get(q, "k x", out, sizeof out));
    assert_string_equal(out, "v");
    assert_false(net_query_get(q, "missing", out, sizeof out));
    assert_false(net_query_get(q, "long", out, sizeof out)); /* 10 bytes do not fit in 8 */
    assert_true(net_query_get(q, "long", big, sizeof big));
    assert_false(net_query_get("x=%zz", "x", out, sizeof out));
    assert_false(net_query_get("", "x", out, sizeof out));
    assert_true(net_query_get("x=1&x=2", "x", out, sizeof out));
    assert_string_equal(out, "1");
}

static void test_has_token(void **state)
{
    assert_true(net__http_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(net__http_has_token("Upgrade", "upgrade"));
    assert_true(net__http_has_token(" websocket ", "websocket"));
    assert_false(net__http_has_token("upgraded", "upgrade"));
    assert_false(net__http_has_token("", "upgrade"));
    assert_false(net__http_has_token(NULL, "upgrade"));
}

static void test_pct_decode(void **state)
{
    char out[32];
    assert_int_equal(net__pct_decode("a%2Fb+c", 7, out, false), 5);
    assert_string_equal(out, "a/b+c");
    assert_int_equal(net__pct_decode("a%2Fb+c", 7, out, true), 5);
    assert_string_equal(out, "a/b c");
    assert_int_equal(net__pct_decode("%", 1, out, false), -1);
    assert_int_equal(net__pct_decode("%0", 2, out, false), -1);
    assert_int_equal(net__pct_decode("%00", 3, out, false), -1);
    assert_int_equal(net__pct_decode("", 0, out, false), 0);
}

static void test_reason(void **state)
{
    assert_string_equal(net__http_reason(200), "OK");
    assert_string_equal(net__http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(net__http_reason(499), "Client Error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_requests),  cmocka_unit_test(test_empty_header_value),
        cmocka_unit_test(test_bad_requests),   cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_endless_head),   cmocka_unit_test(test_too_many_headers),
        cmocka_unit_test(test_pipelined),      cmocka_unit_test(test_upgrade_leaves_rest),
        cmocka_unit_test(test_query_get),      cmocka_unit_test(test_has_token),
        cmocka_unit_test(test_pct_decode),     cmocka_unit_test(test_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
