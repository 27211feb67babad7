/*
 * rudp.h - reliable frames over UDP datagrams (SPEC section 3, "Acks and
 * QoS"): the state of one peer, as a pure state machine over bytes.
 *
 * Each datagram is one protobuf Frame.  A frame with a body carries
 * `dgram`, the sender's number for it (1, 2, 3... per direction); any
 * datagram may carry `acks`, the numbers the sender has received.  The
 * receiver acknowledges every numbered datagram, even a duplicate (its
 * first ack may have been lost), and hands each number's frame on once.
 * The sender keeps what it sent until acked and sends it again when its
 * timer runs out, with exponential backoff; after RUDP_MAX_TRIES the peer
 * is considered gone.  An ack-only datagram has no body and no number.
 *
 * No sockets, timers or threads here: the caller feeds datagrams in with
 * rudp_recv, takes datagrams out of rudp_send / rudp_ack / rudp_poll and
 * sends them, and calls rudp_poll from a timer.  Numbers a receiver has not
 * seen yet but that are further than RUDP_WINDOW ahead are dropped
 * unacknowledged, so memory per peer is bounded.
 */
#ifndef PARLEY_PROTO_RUDP_H
#define PARLEY_PROTO_RUDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"
#include "proto/parley.pb-c.h"

#define RUDP_WINDOW 1024           /* receive window, in datagram numbers */
#define RUDP_RTO_MS 200            /* first retransmission timeout */
#define RUDP_RTO_MAX_MS 3200
#define RUDP_MAX_TRIES 7           /* sends of one datagram before giving up */
#define RUDP_MAX_ACKS 64           /* acks carried by one datagram */

typedef struct rudp_pkt {
    uint64_t dgram;
    uint64_t due_ms;               /* when to send it again */
    uint32_t tries;
    size_t len;
    uint8_t *data;                 /* the encoded datagram (pl_malloc) */
} rudp_pkt;

typedef struct rudp {
    uint64_t next_dgram;           /* number of the next datagram sent */
    rudp_pkt *unacked;             /* ascending dgram; n_unacked live */
    size_t n_unacked, cap_unacked;
    size_t unacked_bytes;
    uint64_t recv_base;            /* every number <= recv_base was received */
    uint64_t recv_bits[RUDP_WINDOW / 64];   /* bit i: recv_base + 1 + i received */
    uint64_t acks[RUDP_MAX_ACKS];  /* to acknowledge, not yet sent */
    size_t n_acks;
} rudp;

void rudp_init(rudp *r);
void rudp_free(rudp *r);

/* Take one datagram.  Its acks release sent datagrams.  If it carries a
 * numbered frame not seen before, *out is that frame (free with
 * proto_free); duplicates, ack-only datagrams and numbers beyond the
 * window give PL_OK with *out NULL.  Malformed bytes, or a body without a
 * number, give PL_BAD_REQUEST and a reason in err. */
pl_status rudp_recv(rudp *r, const uint8_t *data, size_t len, Parley__Frame **out, char *err,
                    size_t errlen);

/* Number f, attach pending acks, and append the datagram to out (reset
 * first); a copy is kept until acked.  f is not modified. */
void rudp_send(rudp *r, const Parley__Frame *f, uint64_t now_ms, buf *out);

/* If acks are pending: an ack-only datagram into out (reset first), true. */
bool rudp_ack(rudp *r, buf *out);

/* Resend every datagram whose timer ran out at now_ms through emit.
 * Returns the number resent, or -1 if one has been sent RUDP_MAX_TRIES
 * times without an ack: the peer is gone. */
int rudp_poll(rudp *r, uint64_t now_ms, void (*emit)(void *ud, const uint8_t *data, size_t len),
              void *ud);

static inline size_t rudp_unacked_bytes(const rudp *r) { return r->unacked_bytes; }
static inline size_t rudp_unacked_count(const rudp *r) { return r->n_unacked; }

#endif
