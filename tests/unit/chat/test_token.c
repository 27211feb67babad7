/*
 * test_token.c - signed, expiring tokens (chat/token.h).
 *
 * Besides tokens from token_issue, the tests sign hand-written payloads
 * with the real secret (sign_payload below), so the checks that run after
 * the MAC (types, lengths, keys, expiry) are exercised with tokens an
 * attacker could not make, but a bug in token_issue could.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "chat/token.h"

static uint8_t secret[TOKEN_SECRET_LEN];
static uint8_t other_secret[TOKEN_SECRET_LEN];

#define NOW 1763800000000ull

static int group_setup(void **state)
{
    if (sodium_init() < 0) return -1;
    for (int i = 0; i < TOKEN_SECRET_LEN; i++) {
        secret[i] = (uint8_t)(i * 7 + 1);
        other_secret[i] = (uint8_t)(i * 7 + 2);
    }
    return 0;
}

static token_claims claims(const char *tenant, const char *user, const char *device,
                           uint64_t expires)
{
    token_claims c;
    memset(&c, 0, sizeof c);
    snprintf(c.tenant, sizeof c.tenant, "%s", tenant);
    snprintf(c.user, sizeof c.user, "%s", user);
    snprintf(c.device, sizeof c.device, "%s", device);
    c.expires_at = expires;
    return c;
}

/* Build "v1." b64(payload) "." b64(HMAC) by hand with key k. */
static void sign_payload(const uint8_t *k, const char *payload, char *out, size_t outlen)
{
    size_t plen = strlen(payload);
    size_t b64 = sodium_base64_ENCODED_LEN(plen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_true(3 + b64 + 1 + 44 <= outlen);
    memcpy(out, "v1.", 3);
    sodium_bin2base64(out + 3, b64, (const unsigned char *)payload, plen,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t signed_len = strlen(out);
    uint8_t mac[32];
    crypto_auth_hmacsha256(mac, (const unsigned char *)out, signed_len, k);
    out[signed_len] = '.';
    sodium_bin2base64(out + signed_len + 1, outlen - signed_len - 1, mac, sizeof mac,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static pl_status verify(const char *tok)
{
    token_claims c;
    memset(&c, 0x5a, sizeof c);
    pl_status st = token_verify(secret, tok, NOW, &c);
    if (st != PL_OK) {
        /* A refused token leaves nothing behind in the claims. */
        token_claims zero;
        memset(&zero, 0, sizeof zero);
        assert_memory_equal(&c, &zero, sizeof c);
    }
    return st;
}

static void test_roundtrip(void **state)
{
    token_claims c = claims("acme", "alice", "web", NOW + 3600000);
    char tok[TOKEN_MAX];
    assert_int_equal(token_issue(secret, &c, tok, sizeof tok), PL_OK);
    assert_int_equal(strncmp(tok, "v1.", 3), 0);
    assert_true(strlen(tok) < TOKEN_MAX);
    /* base64url without padding: no '+', '/', '=' and exactly two dots. */
    assert_null(strpbrk(tok, "+/= "));
    assert_non_null(strchr(tok + 3, '.'));
    assert_null(strchr(strchr(tok + 3, '.') + 1, '.'));
    assert_int_equal(strlen(c.jti), TOKEN_JTI_LEN);
    assert_int_equal(strspn(c.jti, "0123456789abcdef"), TOKEN_JTI_LEN);

    token_claims v;
    assert_int_equal(token_verify(secret, tok, NOW, &v), PL_OK);
    assert_string_equal(v.tenant, "acme");
    assert_string_equal(v.user, "alice");
    assert_string_equal(v.device, "web");
    assert_string_equal(v.jti, c.jti);
    assert_int_equal(v.expires_at, NOW + 3600000);

    /* Every token gets a fresh jti. */
    token_claims c2 = claims("acme", "alice", "web", NOW + 3600000);
    char tok2[TOKEN_MAX];
    assert_int_equal(token_issue(secret, &c2, tok2, sizeof tok2), PL_OK);
    assert_string_not_equal(c.jti, c2.jti);
    assert_string_not_equal(tok, tok2);
}

/* Fields at their longest, and characters JSON must escape, survive. */
static void test_roundtrip_edges(void **state)
{
    token_claims c;
    memset(&c, 0, sizeof c);
    memset(c.tenant, 'T', sizeof c.tenant - 1);
    memset(c.user, 'U', sizeof c.user - 1);
    memset(c.device, 'D', sizeof c.device - 1);
    c.expires_at = (UINT64_C(1) << 53) - 1;
    char tok[TOKEN_MAX];
    assert_int_equal(token_issue(secret, &c, tok, sizeof tok), PL_OK);
    token_claims v;
    assert_int_equal(token_verify(secret, tok, NOW, &v), PL_OK);
    assert_string_equal(v.tenant, c.tenant);
    assert_string_equal(v.user, c.user);
    assert_string_equal(v.device, c.device);
    assert_int_equal(v.expires_at, c.expires_at);

    token_claims q = claims("a\"b\\c", "line\nbreak\x01", "", NOW + 1);
    assert_int_equal(token_issue(secret, &q, tok, sizeof tok), PL_OK);
    assert_int_equal(token_verify(secret, tok, NOW, &v), PL_OK);
    assert_string_equal(v.tenant, "a\"b\\c");
    assert_string_equal(v.user, "line\nbreak\x01");
    assert_string_equal(v.device, "");

    token_claims u = claims("テナント", "用户😀", "ios", NOW + 1);
    assert_int_equal(token_issue(secret, &u, tok, sizeof tok), PL_OK);
    assert_int_equal(token_verify(secret, tok, NOW, &v), PL_OK);
    assert_string_equal(v.user, "用户😀");
}

static void test_expired(void **state)
{
    token_claims c = claims("t", "u", "cli", NOW + 1000);
    char tok[TOKEN_MAX];
    token_claims v;
    assert_int_equal(token_issue(secret, &c, tok, sizeof tok), PL_OK);
    assert_int_equal(token_verify(secret, tok, NOW + 999, &v), PL_OK);
    assert_int_equal(token_verify(secret, tok, NOW + 1000, &v), PL_UNAUTHORIZED);
    assert_int_equal(token_verify(secret, tok, NOW + 100000000, &v), PL_UNAUTHORIZED);

    token_claims zero = claims("t", "u", "cli", 0);
    assert_int_equal(token_issue(secret, &zero, tok, sizeof tok), PL_OK);
    assert_int_equal(token_verify(secret, tok, 0, &v), PL_UNAUTHORIZED);
}

/* Change one character of the payload part (to another base64url
 * character): the MAC no longer matches. */
static void test_tampered_payload(void **state)
{
    token_claims c = claims("acme", "alice", "web", NOW + 3600000);
    char tok[TOKEN_MAX];
    assert_int_equal(token_issue(secret, &c, tok, sizeof tok), PL_OK);
    size_t dot = (size_t)(strchr(tok + 3, '.') - tok);
    for (size_t i = 3; i < dot; i++) {
        char t[TOKEN_MAX];
        strcpy(t, tok);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t), PL_UNAUTHORIZED);
    }
    /* A payload naming another user, signed with another key. */
    char forged[TOKEN_MAX];
    char payload[256];
    snprintf(payload, sizeof payload,
             "{\"t\":\"acme\",\"u\":\"mallory\",\"d\":\"web\",\"j\":\"%s\",\"e\":%llu,\"k\":\"user\"}",
             c.jti, (unsigned long long)(NOW + 3600000));
    sign_payload(other_secret, payload, forged, sizeof forged);
    assert_int_equal(verify(forged), PL_UNAUTHORIZED);
    /* The same payload with the right key is accepted (checks the helper). */
    sign_payload(secret, payload, forged, sizeof forged);
    assert_int_equal(verify(forged), PL_OK);
}

static void test_tampered_mac(void **state)
{
    token_claims c = claims("acme", "alice", "web", NOW + 3600000);
    char tok[TOKEN_MAX];
    assert_int_equal(token_issue(secret, &c, tok, sizeof tok), PL_OK);
    size_t dot = (size_t)(strchr(tok + 3, '.') - tok);
    for (size_t i = dot + 1; tok[i]; i++) {
        char t[TOKEN_MAX];
        strcpy(t, tok);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(t), PL_UNAUTHORIZED);
    }
    /* Truncated, extended, padded, or with the MAC dropped. */
    char t[TOKEN_MAX + 8];
    strcpy(t, tok);
    t[strlen(t) - 1] = 0;
    assert_int_equal(verify(t), PL_UNAUTHORIZED);
    snprintf(t, sizeof t, "%sA", tok);
    assert_int_equal(verify(t), PL_UNAUTHORIZED);
    snprintf(t, sizeof t, "%s=", tok);
    assert_int_equal(verify(t), PL_UNAUTHORIZED);
    snprintf(t, sizeof t, "%s ", tok);
    assert_int_equal(verify(t), PL_UNAUTHORIZED);
    memcpy(t, tok, dot + 1);
    t[dot + 1] = 0;
    assert_int_equal(verify(t), PL_UNAUTHORIZED);
    /* The last MAC character carries two unused bits: setting them gives a
     * non-canonical encoding of the same bytes, which is refused too. */
    strcpy(t, tok);
    char *last = t + strlen(t) - 1;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int idx = (int)(strchr(b64, *last) - b64);
    *last = b64[idx | 1];
    if (*last != tok[strlen(tok) - 1]) assert_int_equal(verify(t), PL_UNAUTHORIZED);
}

static void test_wrong_secret(void **state)
{
    token_claims c = claims("acme", "alice", "web", NOW + 3600000);
    char tok[TOKEN_MAX];
    token_claims v;
    assert_int_equal(token_issue(other_secret, &c, tok, sizeof tok), PL_OK);
    assert_int_equal(token_verify(secret, tok, NOW, &v), PL_UNAUTHORIZED);
    assert_int_equal(token_verify(other_secret, tok, NOW, &v), PL_OK);
}

static void test_garbage(void **state)
{
    static const char *bad[] = {
        "", "v", "v1", "v1.", "v1..", "v1...", "v2.e30.AAAA", "V1.e30.AAAA",
        "v1.e30", "v1.e30.", "v1..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.x",
        "v1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "v1.e3+0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "v1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/A",
        "Bearer v1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        " v1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "\xff\xfe\xfd", "{\"t\":\"a\"}", "null",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(verify(bad[i]), PL_UNAUTHORIZED);
    token_claims c;
    assert_int_equal(token_verify(secret, NULL, NOW, &c), PL_UNAUTHORIZED);
}

/* Inputs of TOKEN_MAX characters or more are refused before any work. */
static void test_too_long(void **state)
{
    static char huge[100000];
    memset(huge, 'A', sizeof huge - 1);
    memcpy(huge, "v1.", 3);
    assert_int_equal(verify(huge), PL_UNAUTHORIZED);

    /* A well-signed token just over the limit is refused too. */
    char payload[TOKEN_MAX];
    char tok[TOKEN_MAX * 2];
    snprintf(payload, sizeof payload,
             "{\"t\":\"t\",\"u\":\"u\",\"d\":\"d\",\"j\":\"%032d\",\"e\":%llu,\"k\":\"user\"%*s}", 0,
             (unsigned long long)(NOW + 1000), 300, "");
    sign_payload(secret, payload, tok, sizeof tok);
    assert_true(strlen(tok) >= TOKEN_MAX);
    assert_int_equal(verify(tok), PL_UNAUTHORIZED);
}

/* token_issue refuses fields that do not fit and leaves c untouched. */
static void test_issue_refuses(void **state)
{
    char tok[TOKEN_MAX];
    token_claims c = claims("t", "u", "d", NOW + 1);

    token_claims t = c;
    memset(t.tenant, 'a', sizeof t.tenant);     /* no NUL within the array */
    assert_int_equal(token_issue(secret, &t, tok, sizeof tok), PL_BAD_REQUEST);
    token_claims u = c;
    memset(u.user, 'a', sizeof u.user);
    assert_int_equal(token_issue(secret, &u, tok, sizeof tok), PL_BAD_REQUEST);
    token_claims d = c;
    memset(d.device, 'a', sizeof d.device);
    assert_int_equal(token_issue(secret, &d, tok, sizeof tok), PL_BAD_REQUEST);

    /* Fits its array, but escaped it would push the token past TOKEN_MAX. */
    token_claims e = c;
    memset(e.tenant, 0x01, sizeof e.tenant - 1);
    memset(e.user, 0x02, sizeof e.user - 1);
    assert_int_equal(token_issue(secret, &e, tok, sizeof tok), PL_BAD_REQUEST);
    assert_string_equal(e.jti, "");

    token_claims x = claims("\xc3\x28", "u", "d", NOW + 1);
    assert_int_equal(token_issue(secret, &x, tok, sizeof tok), PL_BAD_REQUEST);

    token_claims big = claims("t", "u", "d", UINT64_C(1) << 53);
    assert_int_equal(token_issue(secret, &big, tok, sizeof tok), PL_BAD_REQUEST);

    /* A buffer too small for the token is refused, not overrun. */
    char small[64];
    assert_int_equal(token_issue(secret, &c, small, sizeof small), PL_BAD_REQUEST);
    assert_string_equal(c.jti, "");
}

/* Well-signed payloads that token_issue would never write are refused. */
static void test_bad_payloads(void **state)
{
    static const char *jti = "0123456789abcdef0123456789abcdef";
    char long_user[80];
    memset(long_user, 'u', 65);
    long_user[65] = 0;
    char long_dev[20];
    memset(long_dev, 'd', 17);
    long_dev[17] = 0;

    char p[TOKEN_MAX];
    char tok[TOKEN_MAX * 2];
#define FIELDS(t, u, d, j, e, k) \
    "{\"t\":" t ",\"u\":" u ",\"d\":" d ",\"j\":" j ",\"e\":" e ",\"k\":" k "}"
    struct {
        const char *fmt;
        const char *arg;
    } cases[] = {
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "99999999999999", "\"user\""), jti},  /* ok */
        {FIELDS("\"t\"", "\"%s\"", "\"d\"", "\"0123456789abcdef0123456789abcdef\"",
                "99999999999999", "\"user\""), long_user},
        {FIELDS("\"t\"", "\"u\"", "\"%s\"", "\"0123456789abcdef0123456789abcdef\"",
                "99999999999999", "\"user\""), long_dev},
        {FIELDS("\"%s\"", "\"u\"", "\"d\"", "\"0123456789abcdef0123456789abcdef\"",
                "99999999999999", "\"user\""), long_user},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s0\"", "99999999999999", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%.31s\"", "99999999999999", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%.31sG\"", "99999999999999", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "-1", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "99999999999999.0", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "\"99999999999999\"", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "9007199254740992", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "99999999999999", "\"admin\""), jti},
        {FIELDS("\"t\"", "\"u\"", "\"d\"", "\"%s\"", "99999999999999", "null"), jti},
        {FIELDS("1", "\"u\"", "\"d\"", "\"%s\"", "99999999999999", "\"user\""), jti},
        {FIELDS("\"t\"", "[]", "\"d\"", "\"%s\"", "99999999999999", "\"user\""), jti},
        {FIELDS("\"t\"", "\"u\\u0000x\"", "\"d\"", "\"%s\"", "99999999999999", "\"user\""), jti},
        {"{\"t\":\"t\",\"u\":\"u\",\"d\":\"d\",\"j\":\"%s\",\"e\":99999999999999}", jti},
        {"{\"t\":\"t\",\"u\":\"u\",\"d\":\"d\",\"j\":\"%s\",\"e\":99999999999999,"
         "\"k\":\"user\",\"x\":1}", jti},
        {"{\"t\":\"t\",\"u\":\"u\",\"u\":\"v\",\"d\":\"d\",\"j\":\"%s\",\"e\":99999999999999,"
         "\"k\":\"user\"}", jti},
        {"[\"%s\"]", jti},
        {"\"%s\"", jti},
        {"{\"t\":\"t\",\"u\":\"u\",\"d\":\"d\",\"j\":\"%s\",\"e\":99999999999999,\"k\":\"user\"}x",
         jti},
        {"{\"t\":\"t\",\"u\":\"u\",\"d\":\"d\",\"j\":\"%s\",\"e\":99999999999999,\"k\":\"user\"",
         jti},
        {"%s", ""},
    };
#undef FIELDS
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(p, sizeof p, cases[i].fmt, cases[i].arg);
        if (!p[0]) {
            /* An empty payload has an empty base64 part. */
            sign_payload(secret, "", tok, sizeof tok);
        } else {
            sign_payload(secret, p, tok, sizeof tok);
        }
        pl_status want = i == 0 ? PL_OK : PL_UNAUTHORIZED;
        if (verify(tok) != want) fail_msg("case %zu: %s", i, p);
    }
}

/* Whitespace and key order are free in JSON; the MAC is what matters. */
static void test_payload_key_order(void **state)
{
    char tok[TOKEN_MAX];
    sign_payload(secret,
                 "{ \"k\" : \"user\", \"e\": 99999999999999, \"j\": "
                 "\"0123456789abcdef0123456789abcdef\", \"d\":\"\", \"u\":\"bob\", \"t\":\"x\" }",
                 tok, sizeof tok);
    token_claims v;
    assert_int_equal(token_verify(secret, tok, NOW, &v), PL_OK);
    assert_string_equal(v.user, "bob");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_roundtrip_edges),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_tampered_payload),
        cmocka_unit_test(test_tampered_mac),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_issue_refuses),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_payload_key_order),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
