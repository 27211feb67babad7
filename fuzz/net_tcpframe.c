/*
 * net_tcpframe.c - libFuzzer driver for inbound frame reassembly
 * (src/net/frames.c) with the TCP port's 4-byte length prefix
 * (src/net/tcpframe.c).
 *
 * The first input byte says how the rest is cut into reads.  Every frame
 * handed out must be whole (its length prefix matches its size and is
 * within the limit), and the bytes handed out plus the bytes kept must be
 * exactly the bytes fed, in order, until an error.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "net/net_internal.h"

#define MAX_FRAME 1024

static int check_frame(void *arg, const uint8_t *frame, size_t len)
{
    buf *seen = arg;
    if (len < 4) abort();
    size_t plen = (size_t)frame[0] << 24 | (size_t)frame[1] << 16 | (size_t)frame[2] << 8 | frame[3];
    if (plen > MAX_FRAME || plen + 4 != len) abort();
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
        r = net__frames_feed(&in, data + off, n, net__tcpframe_scan, MAX_FRAME, check_frame, &seen);
        off += n;
    }
    if (r == NET__FEED_OK) {
        /* Nothing lost, nothing invented. */
        if (buf_size(&seen) + buf_size(&in) != size) abort();
        if (buf_size(&seen) && memcmp(buf_begin(&seen), data, buf_size(&seen))) abort();
        if (buf_size(&in) && memcmp(buf_begin(&in), data + buf_size(&seen), buf_size(&in))) abort();
    } else if (r != NET__SCAN_TOO_BIG || buf_size(&in)) {
        abort();
    }
    buf_free(&in);
    buf_free(&seen);
    return 0;
}
