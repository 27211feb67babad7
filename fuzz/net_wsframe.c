/*
 * net_wsframe.c - libFuzzer driver for inbound WebSocket frame reassembly:
 * frames.c with the client frame scanner of src/net/wsproto.c.
 *
 * The first input byte says how the rest is cut into reads.  Every frame
 * handed out must scan again as one whole frame of exactly its size, with
 * a data payload within the limit; the bytes handed out plus the bytes kept
 * must be the bytes fed, until an error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "net/net_internal.h"

#define MAX_FRAME 2048

static int check_frame(void *arg, const uint8_t *frame, size_t len)
{
    buf *seen = arg;
    size_t total = 0;
    if (net__ws_frame_scan(frame, len, MAX_FRAME, &total) != NET__SCAN_FRAME || total != len) abort();
    if ((frame[0] & 0x08) && (!(frame[0] & 0x80) || (frame[1] & 0x7f) > 125)) abort();
    buf_append(seen, frame, len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = data[0] ? data[0] : size;
    data++;
    size--;

    buf in = {0}, seen = {0};
    size_t off = 0;
    int r = NET__FEED_OK;
    while (off < size && r == NET__FEED_OK) {
        size_t n = size - off < step ? size - off : step;
        r = net__frames_feed(&in, data + off, n, net__ws_frame_scan, MAX_FRAME, check_frame, &seen);
        off += n;
    }
    if (r == NET__FEED_OK) {
        if (buf_size(&seen) + buf_size(&in) != size) abort();
        if (buf_size(&seen) && memcmp(buf_begin(&seen), data, buf_size(&seen))) abort();
        if (buf_size(&in) && memcmp(buf_begin(&in), data + buf_size(&seen), buf_size(&in))) abort();
    } else if ((r != NET__SCAN_TOO_BIG && r != NET__SCAN_PROTO) || buf_size(&in)) {
        abort();
    }
    buf_free(&in);
    buf_free(&seen);
    return 0;
}
