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
 * out must hold TOKEN_MAX bytes (outlen says how many it holds); the token
 * written is NUL-terminated and shorter than TOKEN_MAX.  Returns PL_OK, or
 * PL_BAD_REQUEST if a field is too long to fit (not NUL-terminated within
 * its array, or, JSON-escaped, too long for TOKEN_MAX or outlen), is not
 * valid UTF-8, or expires_at is 2^53 or more; c and out are then
 * unchanged. */
pl_status token_issue(const uint8_t secret[TOKEN_SECRET_LEN], token_claims *c, char *out,
                      size_t outlen);

/* Verify the NUL-terminated token at time now_ms.  PL_OK and *c filled,
 * or PL_UNAUTHORIZED (NULL, TOKEN_MAX characters or longer, malformed, a
 * field too long for token_claims, bad MAC, or expired: now_ms >=
 * expires_at) with *c zeroed. */
pl_status token_verify(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, uint64_t now_ms,
                       token_claims *c);

#endif
