/*
 * frames.c - inbound reassembly of length-delimited frames (pure).
 *
 * WebSocket and the TCP port both carry frames whose header says how long
 * they are.  A read may hold several whole frames, a piece of one, or both;
 * this file turns reads into whole frames with one rule:
 *
 *   Bytes are parsed straight from the read when nothing is kept; only the
 *   incomplete frame at the end of a read is copied into the connection's
 *   `in` buffer, and once its header is known the buffer is sized for the
 *   whole frame at once.
 *
 * So an idle connection keeps no inbound memory, and a connection keeps at
 * most one frame (bounded by the scanner's `max`) between reads.  The
 * scanner decides what a header looks like (tcpframe.c, wsproto.c).
 */
#include "net/net_internal.h"

int net__frames_feed(buf *in, const uint8_t *data, size_t len, net__scan_fn scan, size_t max,
                     net__frame_fn fn, void *arg)
{
    const uint8_t *p = data;
    size_t n = len;
    bool kept = buf_size(in) > 0;

    if (kept) {
        /* Complete the kept frame first, copying no more than it needs when
         * its length is known, then go on from the new bytes. */
        size_t total;
        for (;;) {
            int r = scan(buf_begin(in), buf_size(in), max, &total);
            if (r < 0) {
                buf_reset(in);
                return r;
            }
            if (r == NET__SCAN_FRAME) break;
            if (!n) return NET__FEED_OK;
            /* Header still incomplete: take one more byte (headers are short). */
            buf_append(in, p, 1);
            p++;
            n--;
        }
        size_t have = buf_size(in);
        size_t need = total - have;
        if (need > n) {
            buf_reserve(in, need);
            buf_append(in, p, n);
            return NET__FEED_OK;
        }
        buf_append(in, p, need);
        p += need;
        n -= need;
        int stop = fn(arg, buf_begin(in), total);
        buf_reset(in);
        if (stop) return NET__FEED_STOPPED;
    }

    while (n) {
        size_t total;
        int r = scan(p, n, max, &total);
        if (r < 0) return r;
        if (r == NET__SCAN_MORE || total > n) {
            if (r == NET__SCAN_FRAME) buf_reserve(in, total);
            buf_append(in, p, n);
            return NET__FEED_OK;
        }
        if (fn(arg, p, total)) return NET__FEED_STOPPED;
        p += total;
        n -= total;
    }
    return NET__FEED_OK;
}
