/*
 * client_frames.c - libFuzzer driver for libparley's inbound parsers
 * (client/lib/frames.c, handshake.c): the WebSocket frame decoder, the TCP
 * length-prefix decoder and the check of the upgrade answer.
 *
 * Input: byte 0 picks the parser, byte 1 where to split the rest in two
 * feeds (decoders must give the same messages however input is cut); the
 * rest is what a server would send.  Checked besides memory safety:
 * messages never exceed the decoder's limit, control frames never exceed
 * 125 bytes, and the split and unsplit runs agree.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"
#include "core/mem.h"

#define FUZZ_MAX 4096

typedef struct sink {
    uint64_t hash;
    size_t count;
} sink;

static int collect(void *arg, unsigned op, const uint8_t *p, size_t n)
{
    sink *s = arg;
    if (!p) abort();
    if ((op & 0x8) && n > 125) abort();
    if (!(op & 0x8) && n > FUZZ_MAX) abort();
    s->hash = s->hash * 1099511628211ull ^ (op + 1);
    for (size_t i = 0; i < n; i++) s->hash = (s->hash ^ p[i]) * 1099511628211ull;
    s->count++;
    return 0;
}

static int run_ws(const uint8_t *p, size_t n, size_t cut, sink *s)
{
    parley__wsdec d;
    parley__wsdec_init(&d, FUZZ_MAX);
    int r = parley__wsdec_feed(&d, p, cut, collect, s);
    if (!r) r = parley__wsdec_feed(&d, p + cut, n - cut, collect, s);
    parley__wsdec_free(&d);
    return r;
}

static int run_lp(const uint8_t *p, size_t n, size_t cut, sink *s)
{
    parley__lpdec d;
    parley__lpdec_init(&d, FUZZ_MAX);
    int r = parley__lpdec_feed(&d, p, cut, collect, s);
    if (!r) r = parley__lpdec_feed(&d, p + cut, n - cut, collect, s);
    parley__lpdec_free(&d);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    unsigned which = data[0] % 3;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    size_t cut = n ? data[1] % (n + 1) : 0;
    if (which == 2) {
        size_t used = 0;
        int status = 0;
        char err[200];
        int r = parley__ws_response(p, n, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", &used, &status, err, sizeof err);
        if (r == PARLEY__HS_OK && (used > n || status != 101)) abort();
        if (r == PARLEY__HS_ERROR)
            for (const char *q = err; *q; q++)
                if (*q < ' ' || *q > '~') abort();
        return 0;
    }
    sink a = {0}, b = {0};
    int ra = which ? run_lp(p, n, cut, &a) : run_ws(p, n, cut, &a);
    int rb = which ? run_lp(p, n, n, &b) : run_ws(p, n, n, &b);
    if (ra != rb || a.count != b.count || a.hash != b.hash) abort();
    if (pl_mem_used()) abort();
    return 0;
}
