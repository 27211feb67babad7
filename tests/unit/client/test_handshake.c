/*
 * test_handshake.c - the WebSocket upgrade, client side
 * (client/lib/handshake.c): the request, the accept key of RFC 6455's
 * example, and the server's answer judged whole, split at every position,
 * and in its refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/lib/internal.h"
#include "core/mem.h"

static void test_accept_key(void **state)
{
    /* RFC 6455 section 1.3. */
    char out[29];
    parley__ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    uint8_t raw[16] = "the sample nonce";
    char key[25];
    parley__ws_key(raw, key);
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
}

static void test_request(void **state)
{
    parley__url u;
    char err[128];
    assert_int_equal(parley__url_parse("ws://[::1]:8080/v1/ws?a=b", &u, err, sizeof err), 0);
    buf b = {0};
    parley__ws_request(&b, &u, "dGhlIHNhbXBsZSBub25jZQ==");
    buf_appendc(&b, 0);
    const char *s = (const char *)buf_begin(&b);
    assert_true(!strncmp(s, "GET /v1/ws?a=b HTTP/1.1\r\n", 25));
    assert_non_null(strstr(s, "\r\nHost: [::1]:8080\r\n"));
    assert_non_null(strstr(s, "\r\nUpgrade: websocket\r\n"));
    assert_non_null(strstr(s, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strstr(s, "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
    assert_non_null(strstr(s, "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_int_equal(strcmp(s + strlen(s) - 4, "\r\n\r\n"), 0);
    buf_free(&b);
}

static const char *good =
    "HTTP/1.1 101 Switching Protocols\r\n"
    "upgrade: WebSocket\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Sec-WebSocket-Accept:   s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  \r\n"
    "\r\n"
    "\x81\x02{}";

static void test_answer_split(void **state)
{
    const char *acc = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    size_t n = strlen(good), head = (size_t)(strstr(good, "\r\n\r\n") - good) + 4;
    for (size_t cut = 0; cut <= n; cut++) {
        size_t used = 0;
        int status = -1;
        char err[128];
        int r = parley__ws_response((const uint8_t *)good, cut, acc, &used, &status, err, sizeof err);
        if (cut < head) {
            assert_int_equal(r, PARLEY__HS_MORE);
        } else {
            assert_int_equal(r, PARLEY__HS_OK);
            assert_int_equal(used, head);
            assert_int_equal(status, 101);
        }
    }
}

static void expect_refused(const char *answer, int want_status, const char *want_err)
{
    size_t used;
    int status;
    char err[200];
    int r = parley__ws_response((const uint8_t *)answer, strlen(answer), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &used,
                                &status, err, sizeof err);
    assert_int_equal(r, PARLEY__HS_ERROR);
    assert_int_equal(status, want_status);
    if (!strstr(err, want_err)) fail_msg("reason \"%s\" lacks \"%s\"", err, want_err);
    for (const char *p = err; *p; p++) assert_true(*p >= ' ' && *p <= '~');
}

static void test_refusals(void **state)
{
    expect_refused("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", 403, "403 Forbidden");
    expect_refused("HTTP/1.1 404 Not Found\r\n\r\n", 404, "404");
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                   101, "Upgrade");
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                   101, "Connection");
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
                   101, "Accept");
    expect_refused("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 101,
                   "Accept");
    expect_refused("SSH-2.0-OpenSSH\r\n\r\n", 0, "HTTP");
    expect_refused("HTTP/1.1 9x1 What\r\n\r\n", 0, "status line");
    /* Not HTTP, before the head is complete. */
    expect_refused("\x81\x05hello", 0, "HTTP");
    /* A head that never ends. */
    char *big = pl_malloc(PARLEY__HS_MAX_HEAD + 100);
    strcpy(big, "HTTP/1.1 101 OK\r\n");
    size_t n = strlen(big);
    while (n < PARLEY__HS_MAX_HEAD + 50) big[n++] = 'a';
    big[n] = 0;
    expect_refused(big, 0, "too long");
    pl_free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_request),
        cmocka_unit_test(test_answer_split),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
