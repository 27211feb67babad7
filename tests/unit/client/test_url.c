/*
 * test_url.c - the URLs libparley connects to (client/lib/url.c): a table
 * of inputs with the transport, host, port and path they must give, or
 * the refusal they must get.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client/lib/internal.h"

typedef struct url_case {
    const char *in;
    int ok;
    parley__transport t;
    const char *host;
    unsigned port;
    const char *path;
    const char *err;      /* a part of the reason, when refused */
} url_case;

static const url_case cases[] = {
    {"ws://127.0.0.1:8080", 1, PARLEY__WS, "127.0.0.1", 8080, "/v1/ws", NULL},
    {"ws://127.0.0.1:8080/", 1, PARLEY__WS, "127.0.0.1", 8080, "/v1/ws", NULL},
    {"WS://Example.COM:1/chat", 1, PARLEY__WS, "Example.COM", 1, "/chat", NULL},
    {"ws://localhost", 1, PARLEY__WS, "localhost", 80, "/v1/ws", NULL},
    {"ws://h:9/v1/ws?x=1&y=2", 1, PARLEY__WS, "h", 9, "/v1/ws?x=1&y=2", NULL},
    {"ws://h:9?x=1", 1, PARLEY__WS, "h", 9, "/v1/ws?x=1", NULL},
    {"ws://[::1]:8080", 1, PARLEY__WS, "::1", 8080, "/v1/ws", NULL},
    {"ws://[fe80::1%eth0]:8080/p", 1, PARLEY__WS, "fe80::1%eth0", 8080, "/p", NULL},
    {"tcp://127.0.0.1:9000", 1, PARLEY__TCP, "127.0.0.1", 9000, "", NULL},
    {"tcp://node-2.internal", 1, PARLEY__TCP, "node-2.internal", 9000, "", NULL},
    {"tcp://h:65535/", 1, PARLEY__TCP, "h", 65535, "", NULL},
    {"", 0, 0, NULL, 0, NULL, "empty"},
    {"127.0.0.1:8080", 0, 0, NULL, 0, NULL, "expected"},
    {"http://h:1", 0, 0, NULL, 0, NULL, "scheme"},
    {"wss://h:1", 0, 0, NULL, 0, NULL, "TLS"},
    {"ws://:8080", 0, 0, NULL, 0, NULL, "no host"},
    {"ws://h:", 0, 0, NULL, 0, NULL, "missing port"},
    {"ws://h:0", 0, 0, NULL, 0, NULL, "port 0"},
    {"ws://h:65536", 0, 0, NULL, 0, NULL, "out of range"},
    {"ws://h:80x", 0, 0, NULL, 0, NULL, "unexpected"},
    {"ws://user@h:80", 0, 0, NULL, 0, NULL, "user info"},
    {"ws://[::1:80", 0, 0, NULL, 0, NULL, "IPv6"},
    {"ws://h:80/a#frag", 0, 0, NULL, 0, NULL, "fragment"},
    {"ws://h:80/a b", 0, 0, NULL, 0, NULL, "spaces"},
    {"tcp://h:9000/path", 0, 0, NULL, 0, NULL, "no path"},
};

static void test_table(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const url_case *k = &cases[i];
        parley__url u;
        char err[256] = "";
        int r = parley__url_parse(k->in, &u, err, sizeof err);
        if (k->ok) {
            if (r) fail_msg("%s: refused: %s", k->in, err);
            assert_int_equal(u.transport, k->t);
            assert_string_equal(u.host, k->host);
            assert_int_equal(u.port, k->port);
            if (k->t == PARLEY__WS) assert_string_equal(u.path, k->path);
        } else {
            if (!r) fail_msg("%s: accepted", k->in);
            if (!strstr(err, k->err)) fail_msg("%s: reason \"%s\" lacks \"%s\"", k->in, err, k->err);
        }
    }
}

static void test_long_host(void **state)
{
    char in[600];
    memset(in, 0, sizeof in);
    strcpy(in, "ws://");
    memset(in + 5, 'a', 300);
    parley__url u;
    char err[128];
    assert_int_equal(parley__url_parse(in, &u, err, sizeof err), -1);
    assert_non_null(strstr(err, "too long"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_long_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
