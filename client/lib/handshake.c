/*
 * handshake.c - the WebSocket opening handshake, client side (RFC 6455
 * section 4.1), as pure functions over bytes.
 *
 * The request carries a fresh Sec-WebSocket-Key; the answer must be
 * "HTTP/1.1 101" with Upgrade: websocket, Connection: Upgrade and
 * Sec-WebSocket-Accept = base64(SHA-1(key + GUID)).  Anything else is an
 * error that names the status (a 403 for a refused Origin, a 404 for a
 * wrong path) so the application can tell the user what happened.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

void parley__ws_key(const uint8_t raw[16], char key[25])
{
    EVP_EncodeBlock((unsigned char *)key, raw, 16);
    key[24] = 0;
}

void parley__ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char in[64 + sizeof guid];
    size_t kl = strlen(key);
    if (kl > 64) kl = 64;
    memcpy(in, key, kl);
    memcpy(in + kl, guid, sizeof guid - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)in, kl + sizeof guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    out[28] = 0;
}

void parley__ws_request(buf *out, const parley__url *u, const char *key)
{
    bool v6 = strchr(u->host, ':') != NULL;
    buf_printf(out,
               "GET %s HTTP/1.1\r\n"
               "Host: %s%s%s:%u\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n"
               "User-Agent: libparley\r\n"
               "\r\n",
               u->path, v6 ? "[" : "", u->host, v6 ? "]" : "", (unsigned)u->port, key);
}

/* Does the comma-separated header value contain token (any case)? */
static bool has_token(const char *v, size_t n, const char *token)
{
    size_t tl = strlen(token);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e - s == tl && !strncasecmp(v + s, token, tl)) return true;
    }
    return false;
}

static int hs_fail(char *err, size_t errlen, const char *fmt, const char *a)
{
    snprintf(err, errlen, fmt, a);
    /* One safe line whatever the server sent. */
    for (char *q = err; *q; q++)
        if ((unsigned char)*q < ' ' || (unsigned char)*q > '~') *q = '?';
    return PARLEY__HS_ERROR;
}

int parley__ws_response(const uint8_t *p, size_t n, const char *accept, size_t *used, int *status,
                        char *err, size_t errlen)
{
    *status = 0;
    if (n >= 5 && memcmp(p, "HTTP/", 5)) return hs_fail(err, errlen, "%s", "the server did not answer in HTTP");
    /* Find the end of the head. */
    size_t end = 0;
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = i + 1;
            break;
        }
    if (!end) {
        if (n > PARLEY__HS_MAX_HEAD) return hs_fail(err, errlen, "%s", "the server's answer head is too long");
        return PARLEY__HS_MORE;
    }
    const char *s = (const char *)p;
    /* Status line: HTTP/1.x SP 3DIGIT SP reason CRLF */
    if (end < 14 || memcmp(s, "HTTP/1.", 7) || s[7] < '0' || s[7] > '9' || s[8] != ' ' || s[9] < '1' ||
        s[9] > '5' || s[10] < '0' || s[10] > '9' || s[11] < '0' || s[11] > '9' || (s[12] != ' ' && s[12] != '\r'))
        return hs_fail(err, errlen, "%s", "malformed status line from the server");
    const char *line_end = memchr(s + 12, '\r', end - 12);
    if (!line_end || line_end[1] != '\n') return hs_fail(err, errlen, "%s", "malformed status line from the server");
    *status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    if (*status != 101) {
        char reason[96];
        size_t rl = (size_t)(line_end - (s + 12));   /* line_end >= s + 12 */
        if (rl > sizeof reason - 1) rl = sizeof reason - 1;
        memcpy(reason, s + 12, rl);
        reason[rl] = 0;
        char what[160];
        snprintf(what, sizeof what, "the server refused the WebSocket upgrade: %d%s", *status, reason);
        return hs_fail(err, errlen, "%s", what);
    }
    bool upgrade = false, connection = false, acc_ok = false;
    const char *q = line_end + 2;
    const char *stop = s + end - 2;
    while (q < stop) {
        const char *le = memchr(q, '\r', (size_t)(stop - q) + 1);
        if (!le) break;
        const char *colon = memchr(q, ':', (size_t)(le - q));
        if (colon) {
            size_t nl = (size_t)(colon - q);
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t')) v++;
            size_t vl = (size_t)(le - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            if (nl == 7 && !strncasecmp(q, "Upgrade", 7)) upgrade = has_token(v, vl, "websocket");
            else if (nl == 10 && !strncasecmp(q, "Connection", 10)) connection = has_token(v, vl, "upgrade");
            else if (nl == 20 && !strncasecmp(q, "Sec-WebSocket-Accept", 20))
                acc_ok = vl == strlen(accept) && !memcmp(v, accept, vl);
        }
        q = le + 2;
    }
    if (!upgrade) return hs_fail(err, errlen, "%s", "101 without Upgrade: websocket");
    if (!connection) return hs_fail(err, errlen, "%s", "101 without Connection: Upgrade");
    if (!acc_ok) return hs_fail(err, errlen, "%s", "wrong or missing Sec-WebSocket-Accept");
    *used = end;
    return PARLEY__HS_OK;
}
