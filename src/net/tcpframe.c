/*
 * tcpframe.c - the TCP port's framing: each frame is a 4-byte big-endian
 * length followed by that many bytes (SPEC section 3).
 *
 * net__tcpframe_scan is the pure scanner that frames.c drives; a length
 * above max_frame is an error and closes the connection (there is no way to
 * tell a raw TCP client why).  A zero length is a valid, empty frame.
 * net__tcp_input runs on the connection's worker for each read of an open
 * TCP connection and hands every whole frame's payload to on_message.
 */
#include "net/net_internal.h"

int net__tcpframe_scan(const uint8_t *p, size_t n, size_t max, size_t *total)
{
    if (n < 4) return NET__SCAN_MORE;
    uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    if (len > max) return NET__SCAN_TOO_BIG;
    *total = 4 + (size_t)len;
    return NET__SCAN_FRAME;
}

static int deliver(void *arg, const uint8_t *frame, size_t len)
{
    net_conn *c = arg;
    metric_inc(net__m.frames_in[NET_TCP]);
    if (c->w->n->cb.on_message) c->w->n->cb.on_message(c, true, frame + 4, len - 4);
    return c->state != NET__S_OPEN;
}

void net__tcp_input(net_conn *c, const uint8_t *p, size_t n)
{
    int r = net__frames_feed(&c->in, p, n, net__tcpframe_scan, c->w->n->cfg.max_frame, deliver, c);
    if (!buf_size(&c->in) && c->in.cap) buf_free(&c->in); /* kept only for an incomplete frame */
    if (r < 0) net_close(c, NET_CLOSE_TOO_BIG, "frame too large");
}
