/*
 * chat_token.c - libFuzzer driver for token verification.
 *
 * Arbitrary strings are verified against a fixed secret at time 0, when
 * any correctly signed token with a later expiry would pass: the verifier
 * must never crash and never accept one (the fuzzer cannot forge an
 * HMAC-SHA256).
 *
 * To reach the payload parser, which forged tokens never do, the input is
 * also signed as a payload with the secret and verified: that must not
 * crash, and what it accepts must be well-formed claims.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "chat/token.h"

static const uint8_t secret[TOKEN_SECRET_LEN] = "parley fuzz secret, 32 bytes ..";

static void check_claims(const token_claims *c)
{
    if (strnlen(c->tenant, sizeof c->tenant) == sizeof c->tenant ||
        strnlen(c->user, sizeof c->user) == sizeof c->user ||
        strnlen(c->device, sizeof c->device) == sizeof c->device ||
        strlen(c->jti) != TOKEN_JTI_LEN || c->expires_at == 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = 0;

    token_claims c;
    if (token_verify(secret, s, 0, &c) == PL_OK) abort();

    /* Sign the input as a payload: "v1." b64(input) "." b64(mac). */
    if (size <= TOKEN_MAX) {
        char tok[TOKEN_MAX * 2 + 64];
        memcpy(tok, "v1.", 3);
        sodium_bin2base64(tok + 3, sizeof tok - 3, data, size,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        size_t signed_len = strlen(tok);
        uint8_t mac[crypto_auth_hmacsha256_BYTES];
        crypto_auth_hmacsha256(mac, (const unsigned char *)tok, signed_len, secret);
        tok[signed_len] = '.';
        sodium_bin2base64(tok + signed_len + 1, sizeof tok - signed_len - 1, mac, sizeof mac,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        if (token_verify(secret, tok, 0, &c) == PL_OK) check_claims(&c);
    }
    free(s);
    return 0;
}
