/*
 * utf8.h - UTF-8 validation and code-point counting (RFC 3629).
 *
 * Valid means: shortest-form encodings only, no surrogates (U+D800..DFFF),
 * nothing above U+10FFFF.  Used for WebSocket text frames and message text
 * (SPEC: at most 10,000 code points, valid UTF-8).
 */
#ifndef PARLEY_CORE_UTF8_H
#define PARLEY_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decode one code point at s[0..len); returns its length in bytes (1-4) and
 * stores it in *cp, or returns 0 if the sequence there is invalid or cut. */
size_t utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* Encode cp into out (4 bytes of room); returns the length, 0 if invalid. */
size_t utf8_encode(uint32_t cp, uint8_t out[4]);

bool utf8_valid(const uint8_t *s, size_t len);

/* Number of code points in valid UTF-8 s; -1 if s is not valid UTF-8. */
long utf8_count(const uint8_t *s, size_t len);

#endif
