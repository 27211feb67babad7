/*
 * net_internal.h - what the files of the net layer share with each other.
 *
 * Nothing here is part of the public interface (net.h).  Names are prefixed
 * `net__`.  The layer is split by purpose:
 *
 *   loop.c       net_start/run/stop/free, worker threads, accepting and
 *                handing sockets to workers, the per-worker sweep and flush
 *   addr.c       "host:port" parsing and listening sockets (pure + socket)
 *   iplimit.c    per-IP open-connection counts and connection-rate buckets
 *   conn.c       connection lifecycle: reads, outbound queue, flush, close
 *   frames.c     inbound reassembly of length-delimited frames (pure)
 *   tcpframe.c   the TCP port's 4-byte length prefix (pure scanner + input)
 *   udp.c        the UDP port: per-worker sockets, virtual connections by
 *                peer address, batched datagram input and output
 *   http.c       the HTTP/1.1 request parser over bytes (pure) and helpers
 *   httpconn.c   HTTP connections: requests to on_http, responses, errors
 *   wsproto.c    WebSocket bytes: frame scan, frame headers, accept key (pure)
 *   ws.c         WebSocket connections: the upgrade, wslay glue, send, close
 *   metrics.c    what the layer counts, by transport (core/metrics.h)
 *
 * Pure parsers (frames.c, tcpframe.c's scanner, http.c, wsproto.c, addr.c's
 * parser) touch no socket and no global; unit tests and fuzz drivers call
 * them directly.
 */
#ifndef PARLEY_NET_NET_INTERNAL_H
#define PARLEY_NET_NET_INTERNAL_H

#include <http_parser.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>
#include <wslay/wslay.h>

#include "core/buf.h"
#include "core/mailbox.h"
#include "core/metrics.h"
#include "net/net.h"

#define NET__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Size of the one read buffer each worker lends to all its connections,
 * and how many times a connection reads it full per readiness event. */
#define NET__RBUF_SIZE (64u * 1024u)
#define NET__READS_PER_EVENT 16
/* How long a closing connection may take to flush and linger. */
#define NET__CLOSE_GRACE_MS 1000u
/* Period of the worker's sweep over its connections (timeouts). */
#define NET__TICK_MS 250u
/* Buffers of connections quiet for this long are released by the sweep. */
#define NET__TRIM_AFTER_MS 1000u
/* Emptied outbound buffers a worker keeps for the next connection that
 * sends, and the largest capacity it keeps (conn.c). */
#define NET__OUT_CACHE 32u
#define NET__OUT_CACHE_CAP (8u << 10)
/* A worker's spare HTTP parser keeps buffers of at most this capacity. */
#define NET__HTTP_SPARE_KEEP (16u << 10)
/* Datagrams read with one recvmmsg, and read at most per readiness event
 * (so one busy socket cannot starve the rest of the loop). */
#define NET__UDP_RX_BATCH 16u
#define NET__UDP_RX_BUDGET 256u
/* Datagrams handed to one sendmmsg. */
#define NET__UDP_TX_BATCH 64u
/* Bytes a worker queues for its UDP socket beyond what the kernel took;
 * past this, datagrams are dropped (UDP's own failure mode). */
#define NET__UDP_QUEUE_MAX (8u << 20)
/* A quiet worker keeps at most this much of its UDP send queue's memory. */
#define NET__UDP_QUEUE_KEEP (64u << 10)

/* ------------------------------------------------------------------ */
/* Addresses and listening sockets (addr.c)                             */
/* ------------------------------------------------------------------ */

/* Parse "host:port", "[v6]:port", ":port" (any IPv4 address) or
 * "localhost:port" into *out.  Port 0 is allowed.  Returns 0, or -1 with a
 * one-line reason in err.  Pure. */
int net__addr_parse(const char *s, struct sockaddr_storage *out, char *err, size_t errlen);

/* A non-blocking listening socket on addr.  Returns 0 and the fd and bound
 * port, or -1 with "cannot listen on ADDR: REASON" in err. */
int net__listen(const char *addr, int *fd_out, int *port_out, char *err, size_t errlen);

/* n non-blocking UDP sockets bound to addr with SO_REUSEPORT (port 0: one
 * the kernel picks, the same for all).  The port must be free of any other
 * socket, SO_REUSEPORT or not.  Returns 0 with fds[0..n) and the port, or
 * -1 with "cannot listen on ADDR (UDP): REASON" in err and nothing open. */
int net__udp_bind(const char *addr, size_t n, int *fds, int *port_out, char *err, size_t errlen);

/* ------------------------------------------------------------------ */
/* Per-IP accounting (iplimit.c); thread-safe                           */
/* ------------------------------------------------------------------ */

typedef struct net__ip net__ip;
typedef struct net__iptab net__iptab;

net__iptab *net__iptab_new(uint32_t max_conns, double rate, double burst);
void net__iptab_free(net__iptab *t);
/* New limits for every IP, applied from the next admission on. */
void net__iptab_set_limits(net__iptab *t, uint32_t max_conns, double rate, double burst);

/* Count a new connection from sa at now_ms.  Returns its IP's entry (to be
 * released with net__iptab_release when the connection is gone), or NULL
 * if the IP is over its limits. */
net__ip *net__iptab_admit(net__iptab *t, const struct sockaddr *sa, uint64_t now_ms);
void net__iptab_release(net__iptab *t, net__ip *ip);

/* The IP as text ("127.0.0.1", "::1"); valid while the entry is held. */
const char *net__ip_str(const net__ip *ip);

/* Forget entries with no open connection and a full bucket.  Returns the
 * number of entries left. */
size_t net__iptab_sweep(net__iptab *t, uint64_t now_ms);

/* ------------------------------------------------------------------ */
/* Inbound frame reassembly (frames.c, tcpframe.c, wsproto.c)           */
/* ------------------------------------------------------------------ */

/* Scanner results: the header is incomplete; the header is complete and
 * *total (header + payload) is set; or an error. */
enum {
    NET__SCAN_MORE = 0,
    NET__SCAN_FRAME = 1,
    NET__SCAN_PROTO = -1,   /* malformed header */
    NET__SCAN_TOO_BIG = -2, /* payload above the limit */
};

/* Looks at the header at p[0..n) of a frame whose payload may be at most
 * max bytes. */
typedef int (*net__scan_fn)(const uint8_t *p, size_t n, size_t max, size_t *total);

/* Called with each whole frame (header included); non-zero stops. */
typedef int (*net__frame_fn)(void *arg, const uint8_t *frame, size_t len);

/* Results of net__frames_feed besides the scanner's errors. */
enum { NET__FEED_OK = 0, NET__FEED_STOPPED = 1 };

/*
 * Split an inbound byte stream into whole frames.  `in` holds the bytes of
 * an incomplete frame kept from earlier calls; data[0..len) are new bytes.
 * Calls fn for each whole frame in order.  Returns NET__FEED_OK with the
 * incomplete tail kept in `in`; NET__FEED_STOPPED when fn returned
 * non-zero; or a negative NET__SCAN_* error.  After STOPPED or an error the
 * unparsed bytes are dropped and `in` is empty.  fn must not touch `in`.
 * Allocates only through `in` (core/buf.h).
 */
int net__frames_feed(buf *in, const uint8_t *data, size_t len, net__scan_fn scan, size_t max,
                     net__frame_fn fn, void *arg);

/* TCP port frames: 4-byte big-endian payload length, then the payload. */
int net__tcpframe_scan(const uint8_t *p, size_t n, size_t max, size_t *total);

/* ------------------------------------------------------------------ */
/* HTTP request parser (http.c); pure                                   */
/* ------------------------------------------------------------------ */

enum { NET__HTTP_MORE = 0, NET__HTTP_DONE = 1, NET__HTTP_ERROR = -1 };

#define NET__HTTP_MAX_HEADERS 64

typedef struct net__http_parser {
    http_parser hp;
    size_t max_header, max_body;
    size_t head_bytes;       /* bytes of the head consumed so far */
    buf data;                /* url, header names and values, body, decoded path */
    buf offs;                /* uint32_t pairs: offsets of each header's name and value */
    buf hdrs;                /* net_header array, built when the request is done */
    size_t url_len;
    size_t body_off, body_len;
    uint8_t last;            /* the kind of string the last callback appended to */
    bool started;            /* the first byte of a request was seen */
    bool head_done;
    bool done;
    bool keep_alive;
    bool upgrade;            /* http-parser saw Connection: upgrade + Upgrade */
    bool is_head;            /* a HEAD request: respond without a body */
    bool expect_continue;    /* "Expect: 100-continue" on a request with a body */
    int status;              /* on error: the status to answer (400, 413, 431, 505) */
    const char *error;       /* on error: what was wrong */
    net_http_req req;        /* when done: the request; points into data */
} net__http_parser;

void net__http_init(net__http_parser *p, size_t max_header, size_t max_body);

/*
 * Feed bytes of a request.  Sets *used to the bytes consumed and returns
 * NET__HTTP_MORE (all consumed, the request is not complete yet),
 * NET__HTTP_DONE (p->req is the request; bytes after *used belong to what
 * follows it: the next request or, after an upgrade, another protocol) or
 * NET__HTTP_ERROR (p->status and p->error say why).  After DONE or ERROR,
 * call net__http_reset before feeding again.
 */
int net__http_feed(net__http_parser *p, const uint8_t *data, size_t len, size_t *used);

/* Ready for the next request on the same connection; keeps memory. */
void net__http_reset(net__http_parser *p);
void net__http_free(net__http_parser *p);

/* Percent-decode src[0..n) into out (room for n + 1 bytes), NUL-terminated.
 * plus_space: '+' means ' ' (query strings).  Returns the decoded length,
 * or -1 for a bad escape or a decoded NUL. */
long net__pct_decode(const char *src, size_t n, char *out, bool plus_space);

/* The reason phrase of an HTTP status ("OK", "Not Found"...). */
const char *net__http_reason(int status);

/* True if the comma-separated header value contains token (any case). */
bool net__http_has_token(const char *value, const char *token);

/* ------------------------------------------------------------------ */
/* WebSocket bytes (wsproto.c); pure                                    */
/* ------------------------------------------------------------------ */

enum {
    NET__WS_CONT = 0x0,
    NET__WS_TEXT = 0x1,
    NET__WS_BINARY = 0x2,
    NET__WS_CLOSE = 0x8,
    NET__WS_PING = 0x9,
    NET__WS_PONG = 0xA,
};

/* A client frame header: control frames must be final and at most 125
 * bytes; data frames at most max; lengths use at most 63 bits. */
int net__ws_frame_scan(const uint8_t *p, size_t n, size_t max, size_t *total);

/* Write an unmasked (server) frame header into out (room for 10 bytes);
 * returns its length. */
size_t net__ws_frame_header(uint8_t *out, bool fin, unsigned opcode, uint64_t len);

/* Close frame payload: 2-byte code then reason cut to fit 125 bytes at a
 * UTF-8 boundary.  Code 0 gives an empty payload.  Returns its length. */
size_t net__ws_close_payload(uint8_t out[125], uint16_t code, const char *reason);

/* True if key is a valid Sec-WebSocket-Key (base64 of 16 bytes). */
bool net__ws_key_valid(const char *key);

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + GUID)), 28 characters
 * and a NUL in out. */
void net__ws_accept_key(const char *key, char out[29]);

/* ------------------------------------------------------------------ */
/* Threads, connections                                                 */
/* ------------------------------------------------------------------ */

/* Connection states; see the diagram in net.h. */
typedef enum net__state {
    NET__S_HTTP_READ,   /* reading a request */
    NET__S_HTTP_APP,    /* a request is with on_http; reading paused */
    NET__S_OPEN,        /* WebSocket, TCP or UDP: messages flow */
    NET__S_CLOSING,     /* writing what is queued (a WS close frame last);
                           UDP: closed before the loop sleeps */
    NET__S_LINGER,      /* FIN sent; discarding input until the peer's EOF */
    NET__S_CLOSED,      /* on_close ran; freed when libuv closed the handle */
} net__state;

/* A pending write: the bytes moved out of conn->out that the kernel has
 * not taken yet. */
typedef struct net__wreq {
    buf b;
} net__wreq;

typedef struct net__listener {
    uv_poll_t poll;
    struct net *n;
    int fd;
    int port;
    net_kind kind;
    bool open;
} net__listener;

/*
 * A connection.  Stream connections (HTTP, WebSocket, TCP) are allocated as
 * a net__sconn, with libuv's handle after this struct; UDP connections as a
 * net__uconn, with the peer's address.  The fields from `out` to `ws_frag`
 * are unused by UDP.
 */
struct net_conn {
    net_worker *w;
    net_conn *prev, *next;       /* the worker's connections */
    net_conn *dprev, *dnext;     /* the worker's dirty list */
    void *data;                  /* the application's */
    uint64_t id;
    net__ip *ip;
    buf out;                     /* whole frames not yet handed to the kernel */
    buf in;                      /* an incomplete inbound frame, or unparsed HTTP */
    union {
        net__http_parser *http;  /* NET_HTTP: only while a request is in progress */
        wslay_event_context_ptr ws; /* NET_WS: only while a frame is being fed or a
                                       fragmented message is in progress (ws.c) */
    } p;
    net__wreq *wreq;             /* a write waiting for room, or NULL */
    uint32_t last_rx;            /* loop ms (wrapping) of the last input or response */
    uint32_t t_mark;             /* head wait start (HTTP) or closing start */
    uint16_t close_code;
    uint8_t kind;                /* net_kind */
    uint8_t state;               /* net__state */
    unsigned dirty : 1;          /* on the worker's dirty list */
    unsigned head_wait : 1;      /* HTTP: waiting for a request head (t_mark) */
    unsigned in_pump : 1;        /* HTTP: inside the request loop */
    unsigned stop_pending : 1;   /* HTTP: net_stop came while the app had a request */
    unsigned eof : 1;            /* the peer's EOF was read */
    unsigned reading : 1;        /* input is wanted (polled for) */
    unsigned polled : 2;         /* the UV_READABLE | UV_WRITABLE being polled for */
    unsigned ws_frag : 1;        /* WS: a fragmented message is being received */
};

typedef struct net__sconn {
    net_conn c;
    uv_poll_t poll;              /* poll.data == &c */
    int fd;                      /* the socket, closed in close_cb */
} net__sconn;

/* A UDP peer address: what a datagram came from and goes to. */
typedef union net__peer {
    struct sockaddr sa;
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
} net__peer;

typedef struct net__uconn {
    net_conn c;
    net__peer peer;
    uint32_t hash;               /* of peer, with the worker's seed */
} net__uconn;

/* A datagram in a worker's send queue: bytes at uq.data[off, off + len). */
typedef struct net__dgram {
    net__peer to;
    uint32_t off, len;
} net__dgram;

struct net_worker {
    struct net *n;
    size_t index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t async;            /* the mailbox's wake-up */
    uv_prepare_t prepare;        /* flushes dirty connections before the loop sleeps */
    uv_timer_t tick;             /* the sweep */
    uv_timer_t app_tick;         /* on_tick, if configured */
    bool app_tick_on;
    uv_sem_t started;
    mailbox mb;
    mail stop_mail;
    void *wdata;
    net_conn *conns;
    net_conn *dirty;
    uint8_t *rbuf;               /* NET__RBUF_SIZE */
    /* WebSocket (ws.c): the context lent to whichever connection is fed a
     * frame, the connection being fed, and the frame's bytes. */
    wslay_event_context_ptr ws_spare;
    net_conn *ws_cur;
    const uint8_t *ws_rx;
    size_t ws_rx_len;
    /* Outbound buffers emptied by a flush, for the next sender (conn.c). */
    buf out_cache[NET__OUT_CACHE];
    unsigned n_out_cache;
    /* HTTP (httpconn.c): the parser lent to whichever connection starts a
     * request; its buffers are kept, up to NET__HTTP_SPARE_KEEP. */
    net__http_parser *http_spare;
    unsigned ticks;
    uint16_t stop_code;
    bool stopping;
    bool finished;
    atomic_bool wake_off;
    atomic_size_t counts[4];     /* open connections by net_kind */

    /* UDP (udp.c); udp_fd < 0 when there is no UDP port. */
    int udp_fd;
    uv_poll_t udp_poll;
    bool udp_open;               /* udp_poll is initialised and not closing */
    bool udp_wait_out;           /* the socket was full: polling for writable */
    uint8_t *urx;                /* NET__UDP_RX_BATCH slots of udp_max bytes */
    struct mmsghdr *urx_msgs;
    struct iovec *urx_iov;
    struct sockaddr_storage *urx_from;
    struct mmsghdr *utx_msgs;    /* NET__UDP_TX_BATCH */
    struct iovec *utx_iov;
    net__uconn **ptab;           /* peer address -> connection, linear probing */
    size_t ptab_cap, ptab_n;
    uint64_t ptab_seed;
    buf uq;                      /* the send queue's bytes ... */
    net__dgram *uq_d;            /* ... and datagrams: [uq_head, uq_n) unsent */
    size_t uq_n, uq_head, uq_cap;
    uint64_t udp_dropped;        /* datagrams dropped on a full send queue */
};

struct net {
    net_config cfg;
    net_callbacks cb;
    uv_loop_t loop;
    net__listener http, tcp;
    int udp_port;
    int *udp_fds;                /* one per worker, until handed to it */
    size_t udp_max;              /* min(max_frame, NET_UDP_MAX) */
    atomic_bool udp_accepting;
    uv_timer_t accept_pause;     /* back-off when accept cannot go on */
    int spare_fd;                /* held in reserve to refuse at the fd limit */
    uint64_t fd_refused, fd_pauses; /* at the fd limit, since the last log line */
    uint64_t fd_log_ms;          /* clock_mono_ms of that line (0: none yet) */
    uv_timer_t ip_sweep;
    uv_async_t done_async;       /* a worker thread finished */
    net_worker *workers;
    size_t n_workers;
    size_t rr;
    mail_chain *chains;          /* per worker, while accepting a batch */
    net__iptab *ips;
    atomic_size_t n_done;
    bool stopping;
    bool joined;
    bool freed_handles;
};

/* Loop time in milliseconds, truncated (compare with wrapping subtraction). */
static inline uint32_t net__now(net_worker *w) { return (uint32_t)uv_now(&w->loop); }

/* loop.c */
void net__worker_maybe_finish(net_worker *w);

/* metrics.c: counters by net_kind (core/metrics.h); registered by
 * net__metrics_init (net_start), the connection gauges dropped by
 * net__metrics_drop (net_free). */
typedef struct net__metrics {
    metric *frames_in[4], *frames_out[4], *bytes_in[4], *bytes_out[4], *slow[4];
    metric *udp_dropped, *refused, *refused_fd, *accepted;
} net__metrics;
extern net__metrics net__m;
void net__metrics_init(struct net *n);
void net__metrics_drop(struct net *n);

/* conn.c */
uint64_t net__conn_next_id(void);
void net__conn_accept(net_worker *w, int fd, net_kind kind, net__ip *ip);
void net__conn_mark_dirty(net_conn *c);
void net__conn_unmark_dirty(net_conn *c);
void net__conn_flush(net_conn *c);
void net__conn_enter_closing(net_conn *c);
void net__conn_close_now(net_conn *c);
void net__conn_sweep(net_conn *c, uint32_t now, bool trim);
void net__conn_read_start(net_conn *c);
void net__conn_read_stop(net_conn *c);
void net__conn_set_kind(net_conn *c, net_kind kind);
/* Outbound bytes queued or in flight. */
size_t net__conn_queued(const net_conn *c);
/* The connection's outbound buffer to append to: with a buffer from the
 * worker's cache if it had none. */
buf *net__conn_out(net_conn *c);
/* Release the worker's cached buffers (after its loop ended). */
void net__out_cache_free(net_worker *w);
/* Room for n more outbound bytes, else the connection is closed as a slow
 * consumer and -1 returned. */
int net__conn_out_room(net_conn *c, size_t n);

/* httpconn.c */
void net__http_input(net_conn *c, const uint8_t *p, size_t n);
/* Answer status (with extra header lines, or NULL) and a one-line text
 * body, then close. */
void net__http_error(net_conn *c, int status, const char *extra_headers, const char *why);
/* The connection's parser, taken from the worker's spare (or made), and
 * given back once no request is in progress. */
net__http_parser *net__http_take(net_conn *c);
void net__http_release(net_conn *c);
/* Free the worker's spare (after its loop ended). */
void net__http_worker_free(net_worker *w);

/* ws.c */
void net__ws_upgrade(net_conn *c, net__http_parser *hp);
void net__ws_input(net_conn *c, const uint8_t *p, size_t n);
void net__ws_close(net_conn *c, uint16_t code, const char *reason);
void net__ws_free(net_conn *c);
/* Free the worker's spare context (after its loop ended). */
void net__ws_worker_free(net_worker *w);
bool net__ws_is_upgrade(const net_http_req *req);

/* tcpframe.c */
void net__tcp_input(net_conn *c, const uint8_t *p, size_t n);

/* udp.c (all on the worker's thread, except net__udp_worker_init, which
 * runs on the main thread before the worker's thread starts) */
void net__udp_worker_init(net_worker *w, int fd);
/* Close the socket (after one last flush); the fd goes in the close
 * callback. */
void net__udp_worker_close(net_worker *w);
/* Release the buffers once the worker's loop has ended. */
void net__udp_worker_free(net_worker *w);
/* Send what is queued, as far as the kernel takes it. */
void net__udp_flush(net_worker *w);
int net__udp_send(net_conn *c, const void *data, size_t len);
/* on_close, forget the peer and free the connection: only where nothing
 * else of the net layer still holds it (the worker's flush, the sweep). */
void net__udp_close_now(net_conn *c);
/* The sweep's share: release a quiet worker's send queue memory. */
void net__udp_trim(net_worker *w);

#endif
