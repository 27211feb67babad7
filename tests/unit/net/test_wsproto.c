/*
 * test_wsproto.c - WebSocket bytes (src/net/wsproto.c): the handshake's
 * accept key (RFC 6455 section 1.3 example), key validation, server frame
 * headers and close payloads.
 *
 * The RFC's example key dGhlIHNhbXBsZSBub25jZQ== gives
 * s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (base64 of the SHA-1 of the key and the
 * GUID 258EAFA5-E914-47DA-95CA-C5AB0DC85B11; any SHA-1 tool confirms it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/net_internal.h"

static void test_accept_key(void **state)
{
    char out[29];
    net__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    net__ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

static void test_key_valid(void **state)
{
    assert_true(net__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="));
    assert_false(net__ws_key_valid(NULL));
    assert_false(net__ws_key_valid(""));
    assert_false(net__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ="));   /* 23 characters */
    assert_false(net__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=a"));  /* padding */
    assert_false(net__ws_key_valid("dGhlIHNhbXBsZSBub25j*Q=="));  /* alphabet */
    assert_false(net__ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==x")); /* 25 characters */
}

static void test_frame_header(void **state)
{
    uint8_t h[10];
    assert_int_equal(net__ws_frame_header(h, true, NET__WS_TEXT, 0), 2);
    assert_memory_equal(h, "\x81\x00", 2);
    assert_int_equal(net__ws_frame_header(h, true, NET__WS_BINARY, 125), 2);
    assert_memory_equal(h, "\x82\x7d", 2);
    assert_int_equal(net__ws_frame_header(h, true, NET__WS_TEXT, 126), 4);
    assert_memory_equal(h, "\x81\x7e\x00\x7e", 4);
    assert_int_equal(net__ws_frame_header(h, false, NET__WS_TEXT, 65535), 4);
    assert_memory_equal(h, "\x01\x7e\xff\xff", 4);
    assert_int_equal(net__ws_frame_header(h, true, NET__WS_CLOSE, 65536), 10);
    assert_memory_equal(h, "\x88\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    /* A header written here is read back the same by the scanner (as a
     * masked client frame would be). */
    size_t total;
    assert_int_equal(net__ws_frame_header(h, true, NET__WS_BINARY, 70000), 10);
    assert_int_equal(net__ws_frame_scan(h, 10, 70000, &total), NET__SCAN_FRAME);
    assert_int_equal(total, 10 + 70000);
}

static void test_close_payload(void **state)
{
    uint8_t p[125];
    assert_int_equal(net__ws_close_payload(p, 0, "ignored"), 0);
    assert_int_equal(net__ws_close_payload(p, 4008, "slow consumer"), 2 + 13);
    assert_memory_equal(p, "\x0f\xa8slow consumer", 15);
    assert_int_equal(net__ws_close_payload(p, 1000, NULL), 2);
    /* A long reason is cut at 123 bytes, never inside a UTF-8 sequence:
     * 122 ASCII bytes then "é" (2 bytes) would end at 124. */
    char reason[200];
    memset(reason, 'a', 122);
    strcpy(reason + 122, "\xc3\xa9tail");
    assert_int_equal(net__ws_close_payload(p, 1000, reason), 2 + 122);
    memset(reason, 'b', 150);
    reason[150] = 0;
    assert_int_equal(net__ws_close_payload(p, 1000, reason), 125);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_frame_header),
        cmocka_unit_test(test_close_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
