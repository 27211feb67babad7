/*
 * frames.c - the client side of parley's two framings (pure).
 *
 * WebSocket (RFC 6455 section 5): a client masks every frame it sends and
 * receives unmasked frames.  The decoder is a byte-at-a-time state machine
 * that resumes across reads:
 *
 *   HEADER --2..14 bytes collected, checked--> PAYLOAD (or straight to
 *            delivery for an empty payload)
 *   PAYLOAD --plen bytes collected--> deliver: a control frame at once; a
 *            data frame when FIN (fragments are joined in `msg`)
 *            --> HEADER
 *
 * When a whole unfragmented data frame or control frame sits in the chunk
 * being fed and nothing is half-read, it is handed on from the chunk itself
 * (no copy): the common case of a server that writes whole frames.
 *
 * TCP: a 4-byte big-endian length, then the payload; the same shape of
 * decoder with a 4-byte header.
 *
 * Allocation only through core/buf.h (message reassembly).
 */
#include <string.h>

#include "core/mem.h"
#include "internal.h"

static const uint8_t empty[1];

size_t parley__ws_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len, const uint8_t *mask)
{
    size_t n;
    uint8_t mbit = mask ? 0x80 : 0;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
        n = 2;
    } else if (len <= 0xffff) {
        out[1] = mbit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = mbit | 127;
        for (int i = 0; i < 8; i++) out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void parley__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t phase)
{
    size_t i = 0;
    /* Byte-wise until the key lines up, then 8 bytes at a time. */
    while (i < n && ((phase + i) & 3)) {
        p[i] ^= mask[(phase + i) & 3];
        i++;
    }
    uint8_t k8[8];
    for (int j = 0; j < 8; j++) k8[j] = mask[j & 3];
    uint64_t k;
    memcpy(&k, k8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= k;
        memcpy(p + i, &v, 8);
    }
    for (; i < n; i++) p[i] ^= mask[(phase + i) & 3];
}

void parley__ws_frame(buf *out, unsigned opcode, const void *payload, size_t len, const uint8_t mask[4])
{
    uint8_t h[14];
    size_t hl = parley__ws_header(h, true, opcode, len, mask);
    buf_reserve(out, hl + len);
    buf_append(out, h, hl);
    size_t at = out->len;
    if (len) buf_append(out, payload, len);
    parley__ws_mask(out->data + at, len, mask, 0);
}

void parley__lp_frame(buf *out, const void *payload, size_t len)
{
    uint8_t h[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
    buf_reserve(out, 4 + len);
    buf_append(out, h, 4);
    if (len) buf_append(out, payload, len);
}

/* ------------------------------------------------------------------ */
/* WebSocket decoder                                                    */
/* ------------------------------------------------------------------ */

void parley__wsdec_init(parley__wsdec *d, size_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max;
}

void parley__wsdec_free(parley__wsdec *d) { buf_free(&d->msg); }

/* Header length once its first two bytes are known. */
static size_t ws_hlen(const uint8_t *h)
{
    unsigned l7 = h[1] & 0x7f;
    return 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* Check a complete header and load it into d. */
static int ws_take_header(parley__wsdec *d, const uint8_t *h)
{
    if (h[0] & 0x70) return PARLEY__DEC_PROTO;          /* RSV bits: no extension was negotiated */
    if (h[1] & 0x80) return PARLEY__DEC_PROTO;          /* a server must not mask */
    unsigned op = h[0] & 0x0f;
    bool fin = h[0] & 0x80;
    unsigned l7 = h[1] & 0x7f;
    uint64_t len = l7;
    if (l7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
    } else if (l7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | h[2 + i];
        if (len >> 63) return PARLEY__DEC_PROTO;
    }
    switch (op) {
    case PARLEY__WS_CLOSE:
    case PARLEY__WS_PING:
    case PARLEY__WS_PONG:
        if (!fin || len > 125) return PARLEY__DEC_PROTO;
        break;
    case PARLEY__WS_TEXT:
    case PARLEY__WS_BINARY:
        if (d->msg_op) return PARLEY__DEC_PROTO;        /* a new message inside a fragmented one */
        if (len > d->max) return PARLEY__DEC_TOO_BIG;
        break;
    case PARLEY__WS_CONT:
        if (!d->msg_op) return PARLEY__DEC_PROTO;       /* nothing to continue */
        if (len > d->max - buf_size(&d->msg)) return PARLEY__DEC_TOO_BIG;
        break;
    default:
        return PARLEY__DEC_PROTO;
    }
    d->opcode = (uint8_t)op;
    d->fin = fin;
    d->plen = len;
    d->pgot = 0;
    if (op == PARLEY__WS_TEXT || op == PARLEY__WS_BINARY) d->msg_op = (uint8_t)op;
    return 0;
}

/* The current frame's payload is complete: deliver what is due. */
static int ws_frame_done(parley__wsdec *d, parley__msg_fn fn, void *arg)
{
    d->hlen = 0;
    d->in_payload = false;
    if (d->opcode & 0x8) return fn(arg, d->opcode, d->ctl, (size_t)d->plen) ? PARLEY__DEC_STOPPED : 0;
    if (!d->fin) return 0;
    unsigned op = d->msg_op;
    d->msg_op = 0;
    const uint8_t *m = d->msg.data ? buf_begin(&d->msg) : empty;
    int stop = fn(arg, op, m, buf_size(&d->msg));
    buf_reset(&d->msg);
    return stop ? PARLEY__DEC_STOPPED : 0;
}

int parley__wsdec_feed(parley__wsdec *d, const uint8_t *p, size_t n, parley__msg_fn fn, void *arg)
{
    while (n) {
        if (!d->in_payload) {
            /* Fast path: a whole frame that is a message by itself. */
            if (d->hlen == 0 && n >= 2 && n >= ws_hlen(p)) {
                size_t hl = ws_hlen(p);
                int r = ws_take_header(d, p);
                if (r) return r;
                if (d->plen <= n - hl && (d->opcode & 0x8 || (d->fin && d->opcode != PARLEY__WS_CONT))) {
                    size_t pl = (size_t)d->plen;
                    if (!(d->opcode & 0x8)) d->msg_op = 0;
                    const uint8_t *m = pl ? p + hl : empty;
                    p += hl + pl;
                    n -= hl + pl;
                    if (fn(arg, d->opcode, m, pl)) return PARLEY__DEC_STOPPED;
                    continue;
                }
                p += hl;
                n -= hl;
                d->in_payload = true;
            } else {
                /* Collect the header a byte at a time. */
                d->hdr[d->hlen++] = *p++;
                n--;
                if (d->hlen < 2 || d->hlen < ws_hlen(d->hdr)) continue;
                int r = ws_take_header(d, d->hdr);
                if (r) return r;
                d->in_payload = true;
            }
            if (!(d->opcode & 0x8)) buf_reserve(&d->msg, (size_t)d->plen);
            if (d->plen == 0) {
                int r = ws_frame_done(d, fn, arg);
                if (r) return r;
                continue;
            }
            if (!n) break;
        }
        size_t want = (size_t)(d->plen - d->pgot);
        size_t k = want < n ? want : n;
        if (d->opcode & 0x8) memcpy(d->ctl + d->pgot, p, k);
        else buf_append(&d->msg, p, k);
        d->pgot += k;
        p += k;
        n -= k;
        if (d->pgot == d->plen) {
            int r = ws_frame_done(d, fn, arg);
            if (r) return r;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* TCP length-prefix decoder                                            */
/* ------------------------------------------------------------------ */

void parley__lpdec_init(parley__lpdec *d, size_t max)
{
    memset(d, 0, sizeof *d);
    d->max = max;
}

void parley__lpdec_free(parley__lpdec *d) { buf_free(&d->payload); }

static uint32_t be32(const uint8_t *h)
{
    return (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
}

int parley__lpdec_feed(parley__lpdec *d, const uint8_t *p, size_t n, parley__msg_fn fn, void *arg)
{
    while (n) {
        if (d->hlen < 4) {
            if (d->hlen == 0 && n >= 4) {
                uint32_t len = be32(p);
                if (len > d->max) return PARLEY__DEC_TOO_BIG;
                if (len <= n - 4) {
                    const uint8_t *m = len ? p + 4 : empty;
                    p += 4 + len;
                    n -= 4 + (size_t)len;
                    if (fn(arg, PARLEY__WS_BINARY, m, len)) return PARLEY__DEC_STOPPED;
                    continue;
                }
                memcpy(d->hdr, p, 4);
                d->hlen = 4;
                p += 4;
                n -= 4;
            } else {
                d->hdr[d->hlen++] = *p++;
                n--;
                if (d->hlen < 4) continue;
            }
            d->plen = be32(d->hdr);
            if (d->plen > d->max) return PARLEY__DEC_TOO_BIG;
            buf_reserve(&d->payload, d->plen);
        }
        size_t want = d->plen - buf_size(&d->payload);
        size_t k = want < n ? want : n;
        buf_append(&d->payload, p, k);
        p += k;
        n -= k;
        if (buf_size(&d->payload) == d->plen) {
            d->hlen = 0;
            const uint8_t *m = d->payload.data ? buf_begin(&d->payload) : empty;
            int stop = fn(arg, PARLEY__WS_BINARY, m, d->plen);
            buf_reset(&d->payload);
            if (stop) return PARLEY__DEC_STOPPED;
        }
    }
    return 0;
}
