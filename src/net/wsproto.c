/*
 * wsproto.c - WebSocket bytes (RFC 6455), pure functions.
 *
 * wslay parses frames and runs the protocol (ws.c); what is here surrounds
 * it:
 *   - net__ws_frame_scan reads a client frame header so frames.c can hand
 *     wslay whole frames only (then wslay never holds a partial frame and
 *     its context can be released between messages, see ws.c), and so a
 *     frame above max_frame is refused from its header, before its payload
 *     is buffered.  It also rejects what wslay would answer with a close
 *     frame without a status, or accept: a control frame that is
 *     fragmented or longer than 125 bytes, a close frame with a 1-byte
 *     body, and a 64-bit length with the top bit set.
 *   - net__ws_frame_header writes the header of a server frame, so data
 *     frames are encoded straight into the outbound buffer.
 *   - the close payload, and the handshake's key check and accept key.
 */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <string.h>

#include "net/net_internal.h"

int net__ws_frame_scan(const uint8_t *p, size_t n, size_t max, size_t *total)
{
    if (n < 2) return NET__SCAN_MORE;
    bool fin = p[0] & 0x80;
    unsigned opcode = p[0] & 0x0f;
    bool masked = p[1] & 0x80;
    unsigned len7 = p[1] & 0x7f;
    bool control = opcode & 0x8;
    if (control && (!fin || len7 > 125)) return NET__SCAN_PROTO;
    /* A close body is empty or starts with a 2-byte code (RFC 6455 5.5.1);
     * wslay would take a 1-byte body as "no code" and close cleanly. */
    if (opcode == NET__WS_CLOSE && len7 == 1) return NET__SCAN_PROTO;

    size_t hlen = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (masked ? 4 : 0);
    if (n < hlen) return NET__SCAN_MORE;
    uint64_t len = len7;
    if (len7 == 126) {
        len = (uint64_t)p[2] << 8 | p[3];
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
        if (len >> 63) return NET__SCAN_PROTO;
    }
    if (!control && len > max) return NET__SCAN_TOO_BIG;
    *total = hlen + (size_t)len;
    return NET__SCAN_FRAME;
}

size_t net__ws_frame_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

size_t net__ws_close_payload(uint8_t out[125], uint16_t code, const char *reason)
{
    if (!code) return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason ? strlen(reason) : 0;
    if (n > 123) {
        n = 123;
        /* Do not cut a UTF-8 sequence: back up over continuation bytes. */
        while (n && ((uint8_t)reason[n] & 0xc0) == 0x80) n--;
    }
    if (n) memcpy(out + 2, reason, n);
    return 2 + n;
}

static bool is_b64(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

bool net__ws_key_valid(const char *key)
{
    /* 16 bytes in base64: 22 characters and "==". */
    if (!key || strlen(key) != 24) return false;
    for (int i = 0; i < 22; i++)
        if (!is_b64((unsigned char)key[i])) return false;
    return key[22] == '=' && key[23] == '=';
}

void net__ws_accept_key(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char in[128];
    size_t kl = strlen(key);
    if (kl > sizeof in - sizeof guid) kl = sizeof in - sizeof guid;
    memcpy(in, key, kl);
    memcpy(in + kl, guid, sizeof guid - 1);
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)in, kl + sizeof guid - 1, digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
    out[28] = 0;
}
