/*
 * rudp.c - reliable frames over UDP datagrams (see rudp.h).
 *
 * Receive side: recv_base plus a bitmap of the RUDP_WINDOW numbers after
 * it; a number is new if it is above recv_base and its bit is clear.  When
 * recv_base + 1 arrives the base slides over every consecutive set bit.
 * Send side: the unacked datagrams in ascending number order, so an ack is
 * a binary search and a removal.  Both sides are O(window) memory at most.
 */
#include "proto/rudp.h"

#include <stdio.h>
#include <string.h>

#include "core/mem.h"
#include "proto/codec.h"

void rudp_init(rudp *r)
{
    memset(r, 0, sizeof *r);
    r->next_dgram = 1;
}

void rudp_free(rudp *r)
{
    for (size_t i = 0; i < r->n_unacked; i++) pl_free(r->unacked[i].data);
    pl_free(r->unacked);
    memset(r, 0, sizeof *r);
}

static bool bit_get(const rudp *r, uint64_t off) { return r->recv_bits[off / 64] >> (off % 64) & 1; }

/* Shift the bitmap down by n positions. */
static void bits_shift(rudp *r, uint64_t n)
{
    const size_t words = RUDP_WINDOW / 64;
    if (n >= RUDP_WINDOW) {
        memset(r->recv_bits, 0, sizeof r->recv_bits);
        return;
    }
    size_t w = (size_t)(n / 64), b = (size_t)(n % 64);
    for (size_t i = 0; i < words; i++) {
        uint64_t lo = i + w < words ? r->recv_bits[i + w] : 0;
        uint64_t hi = i + w + 1 < words ? r->recv_bits[i + w + 1] : 0;
        r->recv_bits[i] = b ? (lo >> b) | (hi << (64 - b)) : lo;
    }
}

/* Record number d as received; true if it is new. */
static bool mark_received(rudp *r, uint64_t d)
{
    if (d <= r->recv_base) return false;
    uint64_t off = d - r->recv_base - 1;
    if (bit_get(r, off)) return false;
    r->recv_bits[off / 64] |= (uint64_t)1 << (off % 64);
    uint64_t slide = 0;
    while (slide < RUDP_WINDOW && bit_get(r, slide)) slide++;
    if (slide) {
        bits_shift(r, slide);
        r->recv_base += slide;
    }
    return true;
}

static void queue_ack(rudp *r, uint64_t d)
{
    for (size_t i = 0; i < r->n_acks; i++)
        if (r->acks[i] == d) return;
    if (r->n_acks == RUDP_MAX_ACKS) {      /* oldest first out: the peer will resend */
        memmove(r->acks, r->acks + 1, (RUDP_MAX_ACKS - 1) * sizeof r->acks[0]);
        r->n_acks--;
    }
    r->acks[r->n_acks++] = d;
}

static void release(rudp *r, uint64_t d)
{
    size_t lo = 0, hi = r->n_unacked;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->unacked[mid].dgram < d) lo = mid + 1;
        else hi = mid;
    }
    if (lo == r->n_unacked || r->unacked[lo].dgram != d) return;
    r->unacked_bytes -= r->unacked[lo].len;
    pl_free(r->unacked[lo].data);
    memmove(&r->unacked[lo], &r->unacked[lo + 1], (r->n_unacked - lo - 1) * sizeof r->unacked[0]);
    r->n_unacked--;
}

pl_status rudp_recv(rudp *r, const uint8_t *data, size_t len, Parley__Frame **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    ProtobufCMessage *m = NULL;
    pl_status st = proto_decode(&parley__frame__descriptor, PROTO_PB, data, len, &m, err, errlen);
    if (st) return st;
    Parley__Frame *f = (Parley__Frame *)m;
    for (size_t i = 0; i < f->n_acks; i++) release(r, f->acks[i]);
    if (f->body_case == PARLEY__FRAME__BODY__NOT_SET) {
        proto_free(m);
        return PL_OK;
    }
    if (!f->has_dgram || !f->dgram) {
        proto_free(m);
        snprintf(err, errlen, "a UDP frame with a body needs a dgram number");
        return PL_BAD_REQUEST;
    }
    uint64_t d = f->dgram;
    if (d > r->recv_base + RUDP_WINDOW) {    /* too far ahead: let it come again */
        proto_free(m);
        return PL_OK;
    }
    queue_ack(r, d);
    if (!mark_received(r, d)) {
        proto_free(m);
        return PL_OK;
    }
    *out = f;
    return PL_OK;
}

static void encode(rudp *r, const Parley__Frame *f, bool numbered, buf *out)
{
    Parley__Frame copy = *f;
    copy.has_dgram = numbered;
    copy.dgram = numbered ? r->next_dgram : 0;
    copy.n_acks = r->n_acks;
    copy.acks = r->acks;
    buf_reset(out);
    proto_frame_encode(&copy, PROTO_PB, out);
    r->n_acks = 0;
}

void rudp_send(rudp *r, const Parley__Frame *f, uint64_t now_ms, buf *out)
{
    encode(r, f, true, out);
    if (r->n_unacked == r->cap_unacked) {
        r->cap_unacked = r->cap_unacked ? 2 * r->cap_unacked : 8;
        r->unacked = pl_realloc(r->unacked, r->cap_unacked * sizeof *r->unacked);
    }
    rudp_pkt *p = &r->unacked[r->n_unacked++];
    p->dgram = r->next_dgram++;
    p->tries = 1;
    p->due_ms = now_ms + RUDP_RTO_MS;
    p->len = buf_size(out);
    p->data = pl_malloc(p->len);
    memcpy(p->data, buf_begin(out), p->len);
    r->unacked_bytes += p->len;
}

bool rudp_ack(rudp *r, buf *out)
{
    if (!r->n_acks) return false;
    Parley__Frame f = PARLEY__FRAME__INIT;
    encode(r, &f, false, out);
    return true;
}

int rudp_poll(rudp *r, uint64_t now_ms, void (*emit)(void *ud, const uint8_t *data, size_t len),
              void *ud)
{
    int resent = 0;
    for (size_t i = 0; i < r->n_unacked; i++) {
        rudp_pkt *p = &r->unacked[i];
        if (p->due_ms > now_ms) continue;
        if (p->tries >= RUDP_MAX_TRIES) return -1;
        uint64_t rto = (uint64_t)RUDP_RTO_MS << p->tries;
        p->tries++;
        p->due_ms = now_ms + (rto > RUDP_RTO_MAX_MS ? RUDP_RTO_MAX_MS : rto);
        emit(ud, p->data, p->len);
        resent++;
    }
    return resent;
}
