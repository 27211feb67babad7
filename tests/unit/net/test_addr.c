/*
 * test_addr.c - listen addresses (src/net/addr.c) and per-IP connection
 * accounting (src/net/iplimit.c).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "net/net_internal.h"

static void check_v4(const char *s, const char *ip, int port)
{
    struct sockaddr_storage ss;
    char err[128];
    if (net__addr_parse(s, &ss, err, sizeof err)) fail_msg("%s: %s", s, err);
    assert_int_equal(ss.ss_family, AF_INET);
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    char txt[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &s4->sin_addr, txt, sizeof txt);
    assert_string_equal(txt, ip);
    assert_int_equal(ntohs(s4->sin_port), port);
}

static void test_parse(void **state)
{
    check_v4("127.0.0.1:8080", "127.0.0.1", 8080);
    check_v4("0.0.0.0:0", "0.0.0.0", 0);
    check_v4(":9000", "0.0.0.0", 9000);
    check_v4("localhost:65535", "127.0.0.1", 65535);

    struct sockaddr_storage ss;
    char err[128];
    assert_int_equal(net__addr_parse("[::1]:8080", &ss, err, sizeof err), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8080);
    assert_int_equal(net__addr_parse("[::]:0", &ss, err, sizeof err), 0);

    const char *bad[] = {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:80x", "::1:80",
                         "[::1]80", "[::1", "example.com:80", "300.1.1.1:80", "[zz]:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = 0;
        if (!net__addr_parse(bad[i], &ss, err, sizeof err)) fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(strstr(err, "listen address"));
        assert_null(strchr(err, '\n'));
    }
}

/* Port 0 gets a port from the kernel; a port in use gives the one-line
 * reason parleyd prints. */
static void test_listen(void **state)
{
    int fd, port, fd2, port2;
    char err[128];
    assert_int_equal(net__listen("127.0.0.1:0", &fd, &port, err, sizeof err), 0);
    assert_true(port > 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    assert_int_equal(net__listen(addr, &fd2, &port2, err, sizeof err), -1);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on %s: address already in use", addr);
    assert_string_equal(err, want);
    close(fd);
    assert_int_equal(net__listen("bogus", &fd2, &port2, err, sizeof err), -1);
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in s = {0};
    s.sin_family = AF_INET;
    inet_pton(AF_INET, ip, &s.sin_addr);
    return s;
}

static void test_max_conns(void **state)
{
    net__iptab *t = net__iptab_new(2, 0, 0);
    struct sockaddr_in a = v4("10.0.0.1"), b = v4("10.0.0.2");
    net__ip *a1 = net__iptab_admit(t, (struct sockaddr *)&a, 1000);
    net__ip *a2 = net__iptab_admit(t, (struct sockaddr *)&a, 1000);
    assert_non_null(a1);
    assert_ptr_equal(a1, a2);
    assert_null(net__iptab_admit(t, (struct sockaddr *)&a, 1000));
    net__ip *b1 = net__iptab_admit(t, (struct sockaddr *)&b, 1000);
    assert_non_null(b1);
    assert_string_equal(net__ip_str(a1), "10.0.0.1");
    assert_string_equal(net__ip_str(b1), "10.0.0.2");
    /* Closing one makes room for one. */
    net__iptab_release(t, a1);
    assert_non_null(net__iptab_admit(t, (struct sockaddr *)&a, 1000));
    assert_null(net__iptab_admit(t, (struct sockaddr *)&a, 1000));
    /* Entries with open connections survive the sweep. */
    assert_int_equal(net__iptab_sweep(t, 99999), 2);
    net__iptab_release(t, a1);
    net__iptab_release(t, a1);
    net__iptab_release(t, b1);
    assert_int_equal(net__iptab_sweep(t, 99999), 0);
    net__iptab_free(t);
}

static void test_rate(void **state)
{
    net__iptab *t = net__iptab_new(0, 2, 3); /* 2 a second, bursts of 3 */
    struct sockaddr_in a = v4("10.0.0.1");
    net__ip *ips[3];
    for (int i = 0; i < 3; i++) assert_non_null(ips[i] = net__iptab_admit(t, (struct sockaddr *)&a, 1000));
    assert_null(net__iptab_admit(t, (struct sockaddr *)&a, 1000));
    assert_null(net__iptab_admit(t, (struct sockaddr *)&a, 1499));
    net__ip *late = net__iptab_admit(t, (struct sockaddr *)&a, 1500);
    assert_non_null(late);
    for (int i = 0; i < 3; i++) net__iptab_release(t, ips[i]);
    net__iptab_release(t, late);
    /* The entry is kept until its bucket has refilled (1.5 s for 3). */
    assert_int_equal(net__iptab_sweep(t, 2000), 1);
    assert_int_equal(net__iptab_sweep(t, 3000), 0);
    net__iptab_free(t);
}

/* An IPv4-mapped IPv6 peer counts as its IPv4 address. */
static void test_v4_mapped(void **state)
{
    net__iptab *t = net__iptab_new(1, 0, 0);
    struct sockaddr_in a = v4("192.0.2.7");
    struct sockaddr_in6 m = {0};
    m.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &m.sin6_addr);
    net__ip *e = net__iptab_admit(t, (struct sockaddr *)&m, 5);
    assert_non_null(e);
    assert_string_equal(net__ip_str(e), "192.0.2.7");
    assert_null(net__iptab_admit(t, (struct sockaddr *)&a, 5));
    net__iptab_release(t, e);
    net__iptab_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse), cmocka_unit_test(test_listen),    cmocka_unit_test(test_max_conns),
        cmocka_unit_test(test_rate),  cmocka_unit_test(test_v4_mapped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
