/*
 * token.h - signed, expiring access tokens.
 *
 * A token is "v1." base64url(payload) "." base64url(HMAC-SHA256(secret,
 * "v1." base64url(payload))) with no padding.  The payload is a compact
 * JSON object: {"t":tenant,"u":user,"d":device,"j":jti,"e":expires_ms,
 * "k":kind} where kind is "user" (a user's login token).  The jti is 16
 * random bytes in hex, unique per token, and names the token for
 * revocation (logout).  The secret is 32 random bytes, generated into the
 * data directory on first start (never a built-in default).
 *
 * Verification checks, in constant time where it matters, the format, the
 * MAC, and the expiry; revocation is the caller's business (the chat layer
 * keeps the revoked set).
 */
#ifndef PARLEY_CHAT_TOKEN_H
#define PARLEY_CHAT_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define TOKEN_SECRET_LEN 32
#define TOKEN_MAX 512       /* longest token we issue or accept */
#define TOKEN_JTI_LEN 32    /* hex characters */

typedef struct token_claims {
    char tenant[65];
    char user[65];
    char device[17];
    char jti[TOKEN_JTI_LEN + 1];
    uint64_t expires_at;    /* ms since the epoch */
} token_claims;

/* Issue a token for c (c->jti is filled in here with a fresh random id).
 * out must hold TOKEN_MAX bytes.  Returns PL_OK, or PL_BAD_REQUEST if a
 * field is too long to fit. */
pl_status token_issue(const uint8_t secret[TOKEN_SECRET_LEN], token_claims *c, char *out,
                      size_t outlen);

/* Verify token at time now_ms.  PL_OK and *c filled, or PL_UNAUTHORIZED
 * (malformed, bad MAC, expired). */
pl_status token_verify(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, uint64_t now_ms,
                       token_claims *c);

#endif
