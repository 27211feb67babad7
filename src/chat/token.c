/*
 * token.c - signed, expiring access tokens (see token.h).
 *
 * Issue builds the compact JSON payload with snprintf (string fields JSON
 * escaped here), encodes it base64url without padding, and appends the
 * HMAC-SHA256 of everything before the second dot.  Verify works in the
 * opposite order and trusts nothing before the MAC has been checked:
 *
 *     length <= TOKEN_MAX - 1 ─> "v1." prefix ─> exactly two dots
 *       ─> MAC part decodes to 32 bytes ─> MAC matches (sodium_memcmp)
 *       ─> payload decodes ─> JSON object with exactly the six keys,
 *          each of the right type and length ─> not expired ─> PL_OK
 *
 * Any failed arrow gives PL_UNAUTHORIZED, with no hint of which one failed.
 * Only the MAC comparison needs constant time: everything checked before it
 * is public (the shape of the token the client sent), and nothing after it
 * is reached without the secret.
 *
 * Pure functions over caller memory, safe from any thread; the only shared
 * state is libsodium's one-time initialisation.
 */
#include "chat/token.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "core/utf8.h"

#define TOKEN_PREFIX "v1."
#define TOKEN_PREFIX_LEN 3
#define TOKEN_MAC_LEN crypto_auth_hmacsha256_BYTES
/* base64url without padding of the 32-byte MAC: 43 characters. */
#define TOKEN_MAC_B64_LEN ((TOKEN_MAC_LEN * 4 + 2) / 3)
/* JSON numbers stay below 2^53 (SPEC section 7). */
#define TOKEN_MAX_EXPIRY ((UINT64_C(1) << 53) - 1)

static void token__sodium_init(void)
{
    if (sodium_init() < 0) {
        fprintf(stderr, "{\"level\":\"fatal\",\"msg\":\"libsodium failed to initialise\"}\n");
        abort();
    }
}

static void token__ensure_sodium(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, token__sodium_init);
}

/* Is the NUL-terminated field within its array of n bytes, and valid
 * UTF-8?  Returns its length, or -1. */
static long token__field_len(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    if (len == n) return -1;
    if (!utf8_valid((const uint8_t *)s, len)) return -1;
    return (long)len;
}

/* Write s as a quoted JSON string into out[0..cap); returns the length
 * written (without NUL), or 0 if it does not fit. */
static size_t token__json_quote(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (cap < 3) return 0;
    out[o++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            if (o + 2 >= cap) return 0;
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            if (o + 6 >= cap) return 0;
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = hex[ch >> 4];
            out[o + 5] = hex[ch & 15];
            o += 6;
        } else {
            if (o + 1 >= cap) return 0;
            out[o++] = (char)ch;
        }
    }
    if (o + 2 > cap) return 0;
    out[o++] = '"';
    out[o] = 0;
    return o;
}

pl_status token_issue(const uint8_t secret[TOKEN_SECRET_LEN], token_claims *c, char *out,
                      size_t outlen)
{
    token__ensure_sodium();
    long tlen = token__field_len(c->tenant, sizeof c->tenant);
    long ulen = token__field_len(c->user, sizeof c->user);
    long dlen = token__field_len(c->device, sizeof c->device);
    if (tlen < 0 || ulen < 0 || dlen < 0 || c->expires_at > TOKEN_MAX_EXPIRY)
        return PL_BAD_REQUEST;

    /* Every field escaped may grow sixfold; the sums below still fit. */
    char t[sizeof c->tenant * 6 + 3], u[sizeof c->user * 6 + 3], d[sizeof c->device * 6 + 3];
    if (!token__json_quote(t, sizeof t, c->tenant, (size_t)tlen) ||
        !token__json_quote(u, sizeof u, c->user, (size_t)ulen) ||
        !token__json_quote(d, sizeof d, c->device, (size_t)dlen))
        return PL_BAD_REQUEST;

    uint8_t jti_bin[TOKEN_JTI_LEN / 2];
    char jti[TOKEN_JTI_LEN + 1];
    randombytes_buf(jti_bin, sizeof jti_bin);
    sodium_bin2hex(jti, sizeof jti, jti_bin, sizeof jti_bin);

    char payload[sizeof t + sizeof u + sizeof d + 128];
    int plen = snprintf(payload, sizeof payload,
                        "{\"t\":%s,\"u\":%s,\"d\":%s,\"j\":\"%s\",\"e\":%" PRIu64 ",\"k\":\"user\"}",
                        t, u, d, jti, c->expires_at);
    if (plen < 0 || (size_t)plen >= sizeof payload) return PL_BAD_REQUEST;

    /* "v1." b64(payload) "." b64(mac) and a NUL must fit both the caller's
     * buffer and TOKEN_MAX. */
    size_t b64_with_nul = sodium_base64_ENCODED_LEN((size_t)plen,
                                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t need = TOKEN_PREFIX_LEN + (b64_with_nul - 1) + 1 + TOKEN_MAC_B64_LEN + 1;
    if (need > TOKEN_MAX || need > outlen) return PL_BAD_REQUEST;

    memcpy(out, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
    sodium_bin2base64(out + TOKEN_PREFIX_LEN, b64_with_nul, (const unsigned char *)payload,
                      (size_t)plen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t signed_len = TOKEN_PREFIX_LEN + b64_with_nul - 1;

    uint8_t mac[TOKEN_MAC_LEN];
    crypto_auth_hmacsha256(mac, (const unsigned char *)out, signed_len, secret);
    out[signed_len] = '.';
    sodium_bin2base64(out + signed_len + 1, TOKEN_MAC_B64_LEN + 1, mac, sizeof mac,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(mac, sizeof mac);

    memcpy(c->jti, jti, sizeof jti);
    return PL_OK;
}

/* Copy JSON string member `key` of obj into out[0..n) if it is a string
 * shorter than n bytes; false otherwise. */
static bool token__get_str(json_t *obj, const char *key, char *out, size_t n)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v)) return false;
    size_t len = json_string_length(v);
    if (len >= n) return false;
    const char *s = json_string_value(v);
    /* Loaded without JSON_ALLOW_NUL, so no NUL hides inside; check anyway. */
    if (memchr(s, 0, len)) return false;
    memcpy(out, s, len);
    out[len] = 0;
    return true;
}

static bool token__is_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* Parse the JSON payload into *c; false if it is not exactly what
 * token_issue writes (modulo key order and spacing). */
static bool token__parse_payload(const char *p, size_t len, token_claims *c)
{
    json_error_t err;
    json_t *root = json_loadb(p, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) return false;
    bool ok = json_is_object(root) && json_object_size(root) == 6 &&
              token__get_str(root, "t", c->tenant, sizeof c->tenant) &&
              token__get_str(root, "u", c->user, sizeof c->user) &&
              token__get_str(root, "d", c->device, sizeof c->device) &&
              token__get_str(root, "j", c->jti, sizeof c->jti) &&
              strlen(c->jti) == TOKEN_JTI_LEN && token__is_lower_hex(c->jti, TOKEN_JTI_LEN);
    if (ok) {
        json_t *k = json_object_get(root, "k");
        ok = json_is_string(k) && strcmp(json_string_value(k), "user") == 0 &&
             json_string_length(k) == 4;
    }
    if (ok) {
        json_t *e = json_object_get(root, "e");
        ok = json_is_integer(e) && json_integer_value(e) >= 0 &&
             (uint64_t)json_integer_value(e) <= TOKEN_MAX_EXPIRY;
        if (ok) c->expires_at = (uint64_t)json_integer_value(e);
    }
    json_decref(root);
    return ok;
}

pl_status token_verify(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, uint64_t now_ms,
                       token_claims *c)
{
    token__ensure_sodium();
    memset(c, 0, sizeof *c);
    if (!token) return PL_UNAUTHORIZED;
    size_t len = strnlen(token, TOKEN_MAX);
    if (len >= TOKEN_MAX) return PL_UNAUTHORIZED;
    if (len < TOKEN_PREFIX_LEN || memcmp(token, TOKEN_PREFIX, TOKEN_PREFIX_LEN) != 0)
        return PL_UNAUTHORIZED;

    const char *p64 = token + TOKEN_PREFIX_LEN;
    const char *dot = memchr(p64, '.', len - TOKEN_PREFIX_LEN);
    if (!dot || dot == p64) return PL_UNAUTHORIZED;
    const char *m64 = dot + 1;
    size_t m64_len = len - (size_t)(m64 - token);
    if (m64_len != TOKEN_MAC_B64_LEN) return PL_UNAUTHORIZED;
    size_t p64_len = (size_t)(dot - p64);

    /* The MAC part: exactly 32 bytes of canonical base64url, no dots. */
    uint8_t mac[TOKEN_MAC_LEN], want[TOKEN_MAC_LEN];
    size_t mac_len = 0;
    if (sodium_base642bin(mac, sizeof mac, m64, m64_len, NULL, &mac_len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        mac_len != sizeof mac)
        return PL_UNAUTHORIZED;

    crypto_auth_hmacsha256(want, (const unsigned char *)token, (size_t)(dot - token), secret);
    int mismatch = sodium_memcmp(mac, want, sizeof mac);
    sodium_memzero(want, sizeof want);
    if (mismatch) return PL_UNAUTHORIZED;

    /* From here on the payload is ours; still parse it defensively. */
    char payload[TOKEN_MAX];
    size_t plen = 0;
    if (sodium_base642bin((unsigned char *)payload, sizeof payload, p64, p64_len, NULL, &plen,
                          NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return PL_UNAUTHORIZED;

    token_claims tmp;
    memset(&tmp, 0, sizeof tmp);
    if (!token__parse_payload(payload, plen, &tmp)) return PL_UNAUTHORIZED;
    if (now_ms >= tmp.expires_at) return PL_UNAUTHORIZED;
    *c = tmp;
    return PL_OK;
}
