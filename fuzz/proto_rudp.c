/*
 * proto_rudp.c - libFuzzer driver: arbitrary datagrams into one peer's
 * reliable-UDP state (proto/rudp.c), as the UDP port hands them over.
 *
 * The input is a script of records, each a length byte and then that many
 * bytes of datagram (cut short at the end of the input).  Three length
 * values are commands instead: 0xff sends a frame (rudp_send), 0xfe takes
 * the pending acks (rudp_ack), 0xfd lets a second pass and resends what is
 * due (rudp_poll).  So acks from the fuzzer release datagrams actually
 * sent, and the receive window slides under duplicates and gaps.
 *
 * Checked after every step: a malformed datagram fails with a one-line
 * reason and no frame; a frame handed on has a body and a number never
 * handed on before (the same datagram fed again gives nothing); the
 * unacked bookkeeping adds up; nothing leaks.  Seeds:
 * fuzz/corpus/proto_rudp/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proto/codec.h"
#include "proto/rudp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count_emit(void *ud, const uint8_t *d, size_t len)
{
    size_t *n = ud;
    if (!d || !len) abort();
    (*n)++;
}

/* An error reason must be one non-empty line of printable ASCII. */
static void check_err(const char *err)
{
    if (!*err) abort();
    for (const char *p = err; *p; p++)
        if (*p < 0x20 || *p > 0x7e) abort();
}

static void check_books(const rudp *r)
{
    size_t bytes = 0;
    for (size_t i = 0; i < r->n_unacked; i++) {
        bytes += r->unacked[i].len;
        if (i && r->unacked[i - 1].dgram >= r->unacked[i].dgram) abort();
    }
    if (bytes != rudp_unacked_bytes(r) || r->n_acks > RUDP_MAX_ACKS) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rudp r;
    rudp_init(&r);
    buf out = {0};
    uint64_t now = 0;
    size_t off = 0;
    char err[256];
    while (off < size) {
        uint8_t len = data[off++];
        if (len == 0xff) {
            Parley__Frame f = PARLEY__FRAME__INIT;
            Parley__Ping ping = PARLEY__PING__INIT;
            f.body_case = PARLEY__FRAME__BODY_PING;
            f.ping = &ping;
            rudp_send(&r, &f, now, &out);
            if (!buf_size(&out)) abort();
        } else if (len == 0xfe) {
            bool any = r.n_acks > 0;
            if (rudp_ack(&r, &out) != any || r.n_acks) abort();
        } else if (len == 0xfd) {
            size_t emitted = 0;
            now += 1000;
            int n = rudp_poll(&r, now, count_emit, &emitted);
            if (n >= 0 && (size_t)n != emitted) abort();
        } else {
            size_t n = len <= size - off ? len : size - off;
            const uint8_t *dg = data + off;
            off += n;
            Parley__Frame *f = NULL;
            pl_status st = rudp_recv(&r, dg, n, &f, err, sizeof err);
            if (st != PL_OK) {
                if (f) abort();
                check_err(err);
            } else if (f) {
                if (!f->has_dgram || !f->dgram || f->body_case == PARLEY__FRAME__BODY__NOT_SET) abort();
                proto_free(&f->base);
                /* The same datagram again is a duplicate. */
                f = NULL;
                if (rudp_recv(&r, dg, n, &f, err, sizeof err) != PL_OK || f) abort();
            }
        }
        check_books(&r);
    }
    buf_free(&out);
    rudp_free(&r);
    return 0;
}
