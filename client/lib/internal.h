/*
 * internal.h - what the files of libparley share; nothing here is public.
 *
 * Names are prefixed `parley__`.  The library is split by purpose:
 *
 *   status.c     status and state names, protocol error codes
 *   url.c        ws:// and tcp:// URLs (pure)
 *   frames.c     WebSocket client frames (masked out, unmasked in) and the
 *                TCP 4-byte length prefix: encoders and resumable decoders
 *                (pure)
 *   handshake.c  the WebSocket upgrade request and the check of its
 *                answer (pure)
 *   backoff.c    the random generator, reconnect delays with jitter (pure)
 *   conn.c       one transport connection on libuv: resolve, connect,
 *                upgrade, read and decode, write
 *   client.c     the client: states, login, heartbeat, reconnect, frames
 *                in and out, pushes, requests
 *   send.c       the send queue: cmids, resend until send_ok, retries
 *   sync.c       inbox tracking: useq order, duplicates, gaps, sync pages
 *
 * Pure parts touch no socket and no global; the unit tests in
 * tests/unit/client/ call them directly.
 */
#ifndef PARLEY_CLIENT_INTERNAL_H
#define PARLEY_CLIENT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "core/buf.h"
#include "parley.h"
#include "proto/codec.h"

#define PARLEY__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ------------------------------------------------------------------ */
/* URLs (url.c)                                                         */
/* ------------------------------------------------------------------ */

typedef enum parley__transport { PARLEY__WS, PARLEY__TCP } parley__transport;

typedef struct parley__url {
    parley__transport transport;
    char host[256];          /* without brackets for IPv6 */
    uint16_t port;
    char path[1024];         /* WebSocket request target ("/v1/ws" by default) */
} parley__url;

/* Parse "ws://host[:port][/path[?query]]" or "tcp://host[:port][/]".  The
 * scheme is case-insensitive; an IPv6 host is in brackets; a ws URL
 * without a path (or with "/" alone) gets /v1/ws.  Returns 0, or -1 with
 * a one-line reason in err. */
int parley__url_parse(const char *s, parley__url *out, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Frames (frames.c)                                                    */
/* ------------------------------------------------------------------ */

enum {
    PARLEY__WS_CONT = 0x0,
    PARLEY__WS_TEXT = 0x1,
    PARLEY__WS_BINARY = 0x2,
    PARLEY__WS_CLOSE = 0x8,
    PARLEY__WS_PING = 0x9,
    PARLEY__WS_PONG = 0xA,
};

/* Decoder results besides 0 (all consumed, any incomplete tail kept). */
enum {
    PARLEY__DEC_STOPPED = 1,     /* the callback asked to stop */
    PARLEY__DEC_PROTO = -1,      /* malformed frame */
    PARLEY__DEC_TOO_BIG = -2,    /* a message above the decoder's max */
};

/* Write a WebSocket frame header into out (room for 14 bytes): FIN,
 * opcode, payload length, and the masking key if mask is not NULL (client
 * frames are masked; NULL builds server frames, for tests).  Returns its
 * length. */
size_t parley__ws_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len, const uint8_t *mask);

/* XOR p[0..n) with the 4-byte key, starting at key position `phase`. */
void parley__ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], size_t phase);

/* Append one whole, final, masked frame (header and masked payload). */
void parley__ws_frame(buf *out, unsigned opcode, const void *payload, size_t len, const uint8_t mask[4]);

/* One whole message (text or binary, fragments joined) or control frame
 * (close, ping, pong); p is valid only during the call (never NULL).
 * Non-zero stops the decoder. */
typedef int (*parley__msg_fn)(void *arg, unsigned opcode, const uint8_t *p, size_t n);

/*
 * Server-to-client WebSocket frames, decoded a chunk at a time: input may
 * be split anywhere.  Checks: frames are unmasked, RSV bits are 0, opcodes
 * are known, control frames are final and at most 125 bytes, continuation
 * frames continue a message and data frames do not interrupt one, lengths
 * fit 63 bits, and a message (all its fragments) is at most max bytes.
 * A whole unfragmented frame inside one chunk is handed on without a copy.
 */
typedef struct parley__wsdec {
    size_t max;
    uint8_t hdr[14];
    uint8_t hlen;            /* header bytes collected (0: between frames) */
    bool in_payload;         /* header complete, payload bytes pending */
    bool fin;
    uint8_t opcode;
    uint64_t plen, pgot;     /* this frame's payload length, bytes received */
    uint8_t msg_op;          /* opcode of the message being reassembled, 0: none */
    buf msg;                 /* data payload so far (this frame and earlier fragments) */
    uint8_t ctl[125];        /* a control frame's payload */
} parley__wsdec;

void parley__wsdec_init(parley__wsdec *d, size_t max);
void parley__wsdec_free(parley__wsdec *d);
/* 0 (everything consumed), PARLEY__DEC_STOPPED (the rest is not consumed,
 * and the decoder must not be fed again), or a negative error. */
int parley__wsdec_feed(parley__wsdec *d, const uint8_t *p, size_t n, parley__msg_fn fn, void *arg);

/* TCP: each frame is a 4-byte big-endian length and that many bytes; the
 * callback gets opcode PARLEY__WS_BINARY and the payload. */
typedef struct parley__lpdec {
    size_t max;
    uint8_t hdr[4];
    uint8_t hlen;
    uint32_t plen;
    buf payload;
} parley__lpdec;

void parley__lpdec_init(parley__lpdec *d, size_t max);
void parley__lpdec_free(parley__lpdec *d);
int parley__lpdec_feed(parley__lpdec *d, const uint8_t *p, size_t n, parley__msg_fn fn, void *arg);

/* Append a 4-byte length prefix and payload. */
void parley__lp_frame(buf *out, const void *payload, size_t len);

/* ------------------------------------------------------------------ */
/* WebSocket upgrade (handshake.c)                                      */
/* ------------------------------------------------------------------ */

/* Sec-WebSocket-Key from 16 random bytes: 24 characters and a NUL. */
void parley__ws_key(const uint8_t raw[16], char key[25]);

/* The Sec-WebSocket-Accept a server must answer key with. */
void parley__ws_accept(const char *key, char out[29]);

/* Append the upgrade request for u with key. */
void parley__ws_request(buf *out, const parley__url *u, const char *key);

enum { PARLEY__HS_MORE = 0, PARLEY__HS_OK = 1, PARLEY__HS_ERROR = -1 };

#define PARLEY__HS_MAX_HEAD 16384

/*
 * Look at the start of the server's answer p[0..n).  PARLEY__HS_MORE: the
 * head is not complete yet; PARLEY__HS_OK: a 101 with Upgrade: websocket,
 * Connection: upgrade and the expected Sec-WebSocket-Accept, and *used is
 * the head's length (bytes after it are WebSocket frames);
 * PARLEY__HS_ERROR: anything else, with *status (the HTTP status, or 0
 * if the answer is not HTTP) and a one-line reason in err.
 */
int parley__ws_response(const uint8_t *p, size_t n, const char *accept, size_t *used, int *status,
                        char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Randomness and backoff (backoff.c)                                   */
/* ------------------------------------------------------------------ */

typedef struct parley__rng {
    uint64_t s[2];
} parley__rng;

/* Seed from the kernel (getrandom), falling back to time and address. */
void parley__rng_seed(parley__rng *r);
void parley__rng_seed_with(parley__rng *r, uint64_t seed);
uint64_t parley__rng_next(parley__rng *r);
void parley__rng_bytes(parley__rng *r, uint8_t *out, size_t n);

/*
 * The delay before reconnect attempt `attempt` (0 for the first after a
 * loss): base = min(max_ms, min_ms * 2^attempt), and the delay is drawn
 * uniformly from [base/2, base] with rnd ("equal jitter": never a burst of
 * immediate retries, yet clients spread out).  Pure.
 */
uint32_t parley__backoff(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint64_t rnd);

/* ------------------------------------------------------------------ */
/* Connections (conn.c)                                                 */
/* ------------------------------------------------------------------ */

typedef struct parley__conn parley__conn;

/* How a connection ended, for the client's decision. */
typedef struct parley__end {
    parley_status st;
    uint16_t ws_code;        /* the server's close code, 0 if none */
    int http_status;         /* a refused upgrade: its HTTP status */
    char why[160];
} parley__end;

/* Open a connection for c to c->url: resolve, connect (from bind_ip),
 * upgrade; client.c's parley__on_open / parley__on_frame / parley__on_end
 * follow. */
parley__conn *parley__conn_open(parley_client *c);

/* Queue one frame's bytes (a whole WebSocket message or TCP frame body,
 * framed here) and write as soon as possible.  No-op on a closing conn. */
void parley__conn_send(parley__conn *k, const void *data, size_t len, bool binary);

/* Send a WebSocket close (if open) and close; no callback follows. */
void parley__conn_close(parley__conn *k, uint16_t code);

/* ------------------------------------------------------------------ */
/* The client (client.c, send.c, sync.c)                                */
/* ------------------------------------------------------------------ */

typedef enum parley__req_kind {
    PARLEY__REQ_LOGIN,
    PARLEY__REQ_PING,
    PARLEY__REQ_SEND,
    PARLEY__REQ_SYNC,
    PARLEY__REQ_HISTORY,
    PARLEY__REQ_READ,
    PARLEY__REQ_RAW,
} parley__req_kind;

typedef struct parley__send parley__send;

/* A request in flight on the current connection, in id order. */
typedef struct parley__req {
    struct parley__req *prev, *next;
    uint64_t id;
    parley__req_kind kind;
    uint64_t sent_ms;        /* loop time */
    parley__send *send;      /* REQ_SEND */
    bool unknown_body;       /* REQ_RAW sent as raw JSON: may be answered without an id */
    union {
        parley_history_cb history;
        parley_reply_cb reply;
    } cb;
    void *arg;
} parley__req;

struct parley__send {
    parley__send *prev, *next;
    char *to, *group, *text, *cmid;
    parley_send_cb cb;
    void *arg;
    parley__req *req;        /* in flight, or NULL */
    uint64_t not_before;     /* loop ms: waiting for a retry until then */
    uint64_t deadline;       /* loop ms; 0: none */
    unsigned tries;          /* transmissions */
    unsigned errors;         /* retryable errors in a row (backoff) */
    bool waiting;            /* not_before is in force */
    bool timed;              /* counted in n_timed */
};

struct parley_client {
    uv_loop_t *loop;
    parley_options o;        /* strings below are owned copies */
    char *url_s, *token, *user, *password, *tenant, *device, *device_id, *bind_ip;
    struct sockaddr_storage bind_addr;
    bool has_bind;
    parley__url url;
    parley_state state;
    bool started;            /* parley_client_start was called */
    bool freed;              /* parley_client_free was called */
    bool final;              /* no more reconnects (CLOSED reached or pending) */
    int open_handles;        /* timers not yet closed after free */
    parley__conn *conn;      /* the current connection, or NULL */
    bool conn_open;          /* upgraded (WS) / connected (TCP): frames may flow */
    bool logged_in;          /* login_ok received on this connection */
    uv_timer_t t_conn;       /* connect timeout, or the reconnect delay */
    uv_timer_t t_beat;       /* heartbeat and request timeouts */
    uv_timer_t t_retry;      /* sends waiting for a retry or a deadline */
    bool retry_armed;
    unsigned attempt;        /* reconnects since the last login */
    parley__rng rng;
    uint64_t next_id;
    parley__req *reqs, *reqs_tail;
    parley__send *sends, *sends_tail;
    size_t n_sends;
    size_t n_timed;          /* sends with a deadline or waiting for a retry */
    /* Login. */
    char *issued;            /* token from a password login */
    bool use_password;       /* the next login uses the password */
    char me[72];
    char tenant_now[72];
    /* Inbox tracking (sync.c). */
    bool tracking;
    bool first_login_done;
    uint64_t useq;           /* delivered up to here */
    uint64_t latest;         /* the highest useq the server told of */
    bool syncing;
    uint64_t sync_from;      /* the useq the sync in flight asked from */
    bool sync_discard;       /* parley_sync moved useq: drop the page in flight */
    char why[200];           /* why the last connection ended */
    /* Heartbeat. */
    uint64_t last_rx, last_tx;
    /* Scratch for encoding frames. */
    buf scratch;
    char cmid_prefix[24];
    uint64_t cmid_n;
    parley_stats stats;
};

/* From conn.c, into client.c. */
void parley__on_open(parley_client *c);
/* One whole inbound message; returns non-zero to stop reading (the
 * client was freed or the connection dropped). */
int parley__on_frame(parley_client *c, bool binary, const uint8_t *data, size_t len);
void parley__on_end(parley_client *c, const parley__end *e);

/* NULL or valid UTF-8 (what every string of a frame must be). */
bool parley__str_ok(const char *s);

/* client.c, for send.c and sync.c */
uint64_t parley__now(const parley_client *c);
parley__req *parley__req_new(parley_client *c, parley__req_kind kind);
void parley__req_free(parley_client *c, parley__req *r);
/* Encode f in the connection's encoding and send it. */
void parley__send_frame(parley_client *c, Parley__Frame *f);
bool parley__ready(const parley_client *c);
void parley__msg_view(const Parley__Msg *m, parley_msg *out, bool synced);
/* Hand a message or event to the application's callback. */
void parley__deliver_msg(parley_client *c, const Parley__Msg *m, bool synced);
void parley__deliver_event(parley_client *c, const Parley__Event *e, bool synced);

/* send.c */
void parley__sends_pump(parley_client *c);               /* transmit what may go now */
void parley__send_reply(parley_client *c, parley__req *r, const Parley__Frame *f);
void parley__sends_disconnected(parley_client *c);       /* in flight -> queued */
void parley__sends_fail_all(parley_client *c, parley_status st);
void parley__retry_arm(parley_client *c);
void parley__retry_tick(parley_client *c);

/* sync.c */
void parley__sync_login(parley_client *c, uint64_t login_useq);
void parley__sync_start(parley_client *c);
void parley__sync_reply(parley_client *c, const Parley__Frame *f);
/* An inbox item (pushed msg or event) with useq u: deliver it if it is the
 * next one; drop it if seen; start a sync if there is a gap. */
void parley__inbox_push(parley_client *c, const Parley__Frame *f);
/* Our own send landed at useq u in our inbox. */
void parley__inbox_own(parley_client *c, uint64_t u);

#endif
