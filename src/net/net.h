/*
 * net.h - event loops, worker threads and connections: bytes in, bytes out.
 *
 * The net layer knows sockets, HTTP/1.1, WebSocket (RFC 6455, via wslay),
 * length-prefixed TCP frames and UDP datagrams.  It knows nothing of chat:
 * it hands whole HTTP requests and whole messages (a WebSocket message, a
 * TCP frame or a datagram) to the callbacks below and sends what it is
 * given.
 *
 * Threads.  net_start binds the listeners on the calling (main) thread's
 * loop, which accepts connections and hands each one to a worker, round
 * robin.  Each worker thread runs its own libuv loop and owns every
 * connection it was handed: all callbacks for a connection run on its
 * worker's thread, and every net_conn_* / net_send / net_http_respond call
 * for a connection must be made on that thread.  Other threads reach a
 * worker through its mailbox (net_worker_mailbox), which the worker drains
 * once per wake-up.
 *
 * UDP.  There is no accept: each worker has its own UDP socket, all bound
 * to the same address with SO_REUSEPORT, and the kernel keeps the
 * datagrams of one peer address on one socket.  A worker turns each peer
 * address it hears from into a "virtual connection" (NET_UDP): the first
 * datagram from an unknown address opens one (per-IP limits as for TCP;
 * over them the datagram is dropped), on_open runs, then on_message once
 * per datagram.  net_send sends one datagram to the peer.  The net layer
 * adds no reliability: that is the application's (proto/rudp.h).
 *
 * Output.  net_send and net_http_respond append to the connection's
 * outbound queue; the worker writes every queued connection once per loop
 * iteration (one writev per connection per iteration).  The queue is
 * bounded (max_outbound): a connection past the bound is closed as a slow
 * consumer (WebSocket close code 4008) and net_send returns -1.  (One HTTP
 * response may be larger than the bound on its own.)
 *
 * Connection states (the function behind each arrow):
 *
 *   main thread: accept4, per-IP limits --mail--> worker: net__conn_accept
 *
 *   HTTP port:
 *   READ --whole request--> APP: on_http; reading paused
 *   APP --net_http_respond, keep-alive--> READ (next, possibly pipelined, request)
 *   READ --GET + Upgrade: websocket, on_ws_upgrade == 0: 101--> OPEN (NET_WS), on_open
 *   TCP port:
 *   accepted --> OPEN (NET_TCP), on_open
 *   UDP port (net__udp_input):
 *   datagram from an unknown address, within the per-IP limits
 *         --> OPEN (NET_UDP), on_open, then on_message for that datagram
 *
 *   OPEN --whole message / datagram--> on_message
 *   any --net_close / idle or head timeout / protocol error / response with
 *         Connection: close / slow consumer / peer EOF with output queued--> CLOSING
 *   CLOSING --queue written, WS close frame last (net__conn_flush)--> LINGER:
 *         FIN sent, input discarded until the peer closes
 *   LINGER --peer EOF--> CLOSED
 *   CLOSING, LINGER --1 s after entering CLOSING (the worker's sweep)--> CLOSED
 *   any --peer reset, I/O error, peer EOF with nothing queued--> CLOSED
 *   CLOSED (net__conn_close_now): on_close, then the conn is freed
 *
 *   NET_UDP has no handshake and no linger: OPEN --net_close / idle
 *   timeout / net_stop--> CLOSING, and before the worker's loop sleeps
 *   (net__udp_close_now) --> CLOSED: on_close, freed.  Datagrams queued
 *   before net_close still go out; those received while CLOSING are
 *   dropped, and one arriving after CLOSED opens a new connection.
 *
 * on_close runs exactly once for every connection, HTTP ones included, even
 * one that never reached on_http or on_open.  A connection is freed only
 * after on_close returned; the app must drop its pointer there.
 *
 * Limits.  Size limits of 0 in net_config take defaults (max_frame 1 MiB,
 * max_header 16 KiB, max_body 1 MiB, max_outbound 4 MiB); timeouts of 0 and
 * max_conns_per_ip 0 disable the check; conn_rate_per_ip <= 0 means no
 * rate limit.  Connections refused by the per-IP limits are closed as soon
 * as they are accepted, on either port; on the UDP port the datagram that
 * would have opened one is dropped.  A datagram is at most
 * min(max_frame, NET_UDP_MAX) bytes either way: a longer one received is
 * dropped, a longer one sent is refused.
 *
 * Memory.  An idle stream connection holds about 340 bytes here (its
 * struct with libuv's poll handle) and nothing else: each worker lends one
 * HTTP parser and one wslay context to whichever of its connections is
 * being fed (a connection in the middle of a fragmented WebSocket message keeps
 * a context of its own until the message ends), outbound buffers go back
 * to a small per-worker cache as soon as they are written, and an inbound
 * buffer exists only while a frame is incomplete (see conn.c, httpconn.c
 * and ws.c).  So a crowd of connections logging in at once leaves no
 * per-connection garbage between the objects that outlive it.  A UDP
 * connection is a 192-byte struct plus its slot in the worker's address
 * table (about 220 bytes counted in all) and never holds a buffer:
 * datagrams are read into, and sent from, buffers of the worker (udp.c).
 */
#ifndef PARLEY_NET_NET_H
#define PARLEY_NET_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mailbox.h"

typedef struct net net;
typedef struct net_worker net_worker;
typedef struct net_conn net_conn;

typedef enum net_kind { NET_HTTP, NET_WS, NET_TCP, NET_UDP } net_kind;

/* The largest UDP payload over IPv4 (65,535 - 20 - 8). */
#define NET_UDP_MAX 65507u

/* WebSocket close codes parley uses (documented in docs/protocol.md). */
enum {
    NET_CLOSE_NORMAL = 1000,
    NET_CLOSE_GOING_AWAY = 1001,    /* server shutting down: reconnect (elsewhere) */
    NET_CLOSE_PROTOCOL = 1002,      /* protocol violation: fix the client */
    NET_CLOSE_BAD_DATA = 1007,      /* invalid UTF-8 in a text frame */
    NET_CLOSE_POLICY = 1008,
    NET_CLOSE_TOO_BIG = 1009,       /* message above max_frame */
    NET_CLOSE_INTERNAL = 1011,      /* server error: reconnect with backoff */
    NET_CLOSE_KICKED = 4001,        /* another login took this device slot: do not reconnect */
    NET_CLOSE_UNAUTHORIZED = 4003,  /* login failed or token revoked: do not reconnect as is */
    NET_CLOSE_IDLE = 4004,          /* no heartbeat within the idle timeout: reconnect */
    NET_CLOSE_SLOW = 4008,          /* outbound queue overflow: reconnect and sync */
    NET_CLOSE_RATE = 4029,          /* too many connections: reconnect after a backoff */
};

typedef struct net_header {
    const char *name;   /* as received; compare case-insensitively */
    const char *value;
} net_header;

/* A parsed HTTP request; everything is valid only during the callback. */
typedef struct net_http_req {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* decoded path without the query, e.g. "/v1/users/bob" */
    const char *query;           /* raw query string without '?', or "" */
    const net_header *headers;
    size_t n_headers;
    const uint8_t *body;
    size_t body_len;
} net_http_req;

/* Case-insensitive header lookup; NULL if absent. */
const char *net_http_header(const net_http_req *req, const char *name);

/* Decoded value of `key` in an application/x-www-form-urlencoded query,
 * copied into out (NUL-terminated); returns false if absent or too long. */
bool net_query_get(const char *query, const char *key, char *out, size_t outlen);

typedef struct net_callbacks {
    void *ud;
    /* On each worker's thread, before it accepts anything / after its last
     * connection closed during net_stop.  worker_start returns the worker's
     * app data (net_worker_data); net_start returns after every worker ran
     * it.  Mails posted to a worker after worker_stop still run: on the
     * worker's thread, or in net_free (on its caller's thread) once the
     * worker's thread has ended. */
    void *(*worker_start)(net_worker *w, void *ud);
    void (*worker_stop)(net_worker *w, void *wdata);
    /* A complete HTTP request that is not a WebSocket upgrade.  Reading from
     * the connection pauses until net_http_respond is called (now or later). */
    void (*on_http)(net_conn *c, const net_http_req *req);
    /* A WebSocket upgrade request: return 0 to accept it (the net layer
     * answers 101 and the connection becomes NET_WS, then on_open), or an
     * HTTP status (403, 404...) to refuse it with. */
    int (*on_ws_upgrade)(net_conn *c, const net_http_req *req);
    /* A WebSocket (after the handshake), TCP or UDP connection is open. */
    void (*on_open)(net_conn *c);
    /* One whole message: a WebSocket text (binary=false) or binary message,
     * one TCP frame or one UDP datagram (binary=true).  Text is valid UTF-8
     * (checked).  data is valid only during the callback (never NULL, even
     * when len is 0). */
    void (*on_message)(net_conn *c, bool binary, const uint8_t *data, size_t len);
    /* The connection is closed (once per connection, whatever ended it);
     * it is freed when this returns.  net_send returns -1 from here on. */
    void (*on_close)(net_conn *c);
    /* Every net_config.tick_ms on each worker's thread, from worker_start's
     * return until just before worker_stop; now_ms is clock_mono_ms().  For
     * the application's timers (retransmissions, timeouts), one per worker
     * instead of one per connection.  Optional. */
    void (*on_tick)(net_worker *w, void *wdata, uint64_t now_ms);
    /* Once per loop iteration on each worker, just before it writes what is
     * queued: the last chance to add to this turn's output (the server
     * sends UDP acks that no reply carried here).  Optional; keep it cheap,
     * it runs on every wake-up. */
    void (*on_flush)(net_worker *w, void *wdata);
} net_callbacks;

typedef struct net_config {
    const char *http_addr;       /* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080" */
    const char *tcp_addr;        /* NULL or "" for none */
    const char *udp_addr;        /* NULL or "" for none */
    int workers;                 /* >= 1 */
    size_t max_frame;            /* largest WebSocket message / TCP frame */
    size_t max_header;           /* largest HTTP request head */
    size_t max_body;             /* largest HTTP request body */
    size_t max_outbound;         /* outbound queue bound per connection */
    uint32_t header_timeout_ms;  /* to receive a whole HTTP request head */
    uint32_t idle_timeout_ms;    /* WS/TCP: nothing received for this long; HTTP keep-alive idle */
    uint32_t max_conns_per_ip;   /* 0 = unlimited */
    double conn_rate_per_ip;     /* new connections per second per IP (token bucket) */
    double conn_burst_per_ip;
    uint32_t tick_ms;            /* period of on_tick; 0 = never */
} net_config;

/* Bind the listeners and start the workers.  On failure (bad address, port
 * in use...) writes a one-line reason into err and returns non-zero.  The
 * UDP port counts as in use if any socket holds it, even one that allows
 * SO_REUSEPORT (a second parleyd must not silently share the traffic).
 * SIGPIPE, if it still has its default action, is set to be ignored: a
 * write to a peer that went away must fail, not end the process. */
int net_start(net **out, const net_config *cfg, const net_callbacks *cb, char *err, size_t errlen);

/* Bind each listen address of cfg that names a port (not 0) and close it
 * again: the same one-line errors as net_start ("cannot listen on
 * 127.0.0.1:8080: address already in use"), for a caller to stop before
 * it prepares anything else.  The ports can still be taken before
 * net_start binds them; net_start reports that. */
int net_check_addrs(const net_config *cfg, char *err, size_t errlen);

/* The bound ports (useful with port 0, where the kernel picks one); 0 for
 * the TCP or UDP port when there is no such listener. */
int net_http_port(const net *n);
int net_tcp_port(const net *n);
int net_udp_port(const net *n);

/* The main thread's libuv loop (uv_loop_t *), for signals and timers.
 * Close your own handles on it before net_free. */
void *net_main_loop(net *n);

/* Run the main loop until net_stop has been called and all is closed. */
void net_run(net *n);

/* Change the per-IP connection limits (max_conns_per_ip, conn_rate_per_ip,
 * conn_burst_per_ip of net_config) from now on, e.g. on a settings reload.
 * Connections already open stay; an IP over a lowered max keeps them but
 * opens no more until under it.  Any thread. */
void net_set_ip_limits(net *n, uint32_t max_conns_per_ip, double conn_rate_per_ip,
                       double conn_burst_per_ip);

/* Stop accepting new connections (listeners closed; datagrams from UDP
 * addresses without a connection are dropped); existing ones stay. */
void net_stop_accepting(net *n);

/* From the main thread: close every connection (WebSocket code `code`),
 * UDP connections and sockets included,
 * stop the workers, join them, and let net_run return.  An HTTP request
 * still with on_http gets up to 1 s to be answered (with Connection:
 * close).  Returns at once; the rest happens while net_run runs.
 * Idempotent. */
void net_stop(net *n, uint16_t code);

/* Free what net_start allocated, after net_run returned (if net_stop was
 * not called, net_free stops the workers first). */
void net_free(net *n);

/* These worker functions may be called from any thread. */
size_t net_worker_count(const net *n);
net_worker *net_worker_at(net *n, size_t i);
size_t net_worker_index(const net_worker *w);
void *net_worker_data(const net_worker *w);
mailbox *net_worker_mailbox(net_worker *w);

/* Number of open connections of each kind on this worker. */
size_t net_worker_conns(const net_worker *w, net_kind kind);

net_worker *net_conn_worker(const net_conn *c);
net_kind net_conn_kind(const net_conn *c);
void net_conn_set_data(net_conn *c, void *data);
void *net_conn_data(const net_conn *c);
const char *net_conn_remote_ip(const net_conn *c);   /* "127.0.0.1" */
uint64_t net_conn_id(const net_conn *c);             /* unique per process */
size_t net_conn_queued(const net_conn *c);           /* outbound bytes not yet written (UDP: 0) */

/* Queue one message (WS frame of the given type / TCP frame / UDP
 * datagram).  Returns 0, or -1 if the connection is closing or was just
 * closed as a slow consumer (the bytes are then dropped).  UDP: binary is
 * ignored; a datagram longer than min(max_frame, NET_UDP_MAX) is refused
 * with -1 and nothing else happens; datagrams are queued per worker and
 * sent in batches (sendmmsg) before the loop sleeps; when the kernel will
 * take no more and the worker's queue is full, the datagram is dropped as
 * the network might drop it (0 is returned; the application's
 * retransmission covers it). */
int net_send(net_conn *c, bool binary, const void *data, size_t len);

/* Queue an HTTP response and resume reading the next request.
 * extra_headers: NULL or "Name: value\r\n..." lines. */
void net_http_respond(net_conn *c, int status, const char *content_type,
                      const char *extra_headers, const void *body, size_t len);

/* Close after the queued output is written and the peer saw our FIN (at
 * most 1 s later). WS sends a close frame with code and reason (cut to 123
 * bytes) first; a code that may not be sent on the wire (0, 1005, 1006...)
 * sends a close frame without a code.  UDP: nothing goes on the wire; the
 * connection is closed (on_close) before the loop sleeps, never from
 * inside net_close.  Idempotent. */
void net_close(net_conn *c, uint16_t code, const char *reason);

#endif
