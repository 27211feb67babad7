/*
 * parley.h - libparley, the C client library of the parley chat server.
 *
 * One client object is one device of one user, connected to parleyd over a
 * WebSocket (JSON or protobuf frames) or raw TCP (length-prefixed protobuf),
 * as docs/protocol.md describes.  The library logs in, keeps the connection
 * alive (heartbeat ping), reconnects with exponential backoff and jitter,
 * resends every unacknowledged `send` with the same client message id until
 * the server's `send_ok`, tracks the user's inbox sequence (`useq`) and syncs
 * what the device missed, and hands pushes to callbacks.
 *
 * Threads and loops.  A client runs on a libuv loop the caller owns and
 * runs; the library starts no thread.  Every function of a client must be
 * called on its loop's thread, and every callback runs there.  One loop
 * can drive thousands of clients.  A host name in the URL that is neither
 * numeric nor "localhost" is resolved with uv_getaddrinfo, which uses
 * libuv's own thread pool.
 *
 * Lifecycle.
 *
 *   parley_client_new --> IDLE
 *   IDLE --parley_client_start--> CONNECTING
 *   CONNECTING --TCP connect, WebSocket upgrade, login_ok--> READY
 *   CONNECTING, READY --connection lost, timeout, goaway--> WAITING
 *   WAITING --backoff delay elapsed--> CONNECTING
 *   any --kicked, credentials refused, protocol violation, or any loss
 *         with `no_reconnect`--> CLOSED (final; the reason is on_state's)
 *   any --parley_client_free--> (freed once the loop has closed its handles)
 *
 * Ownership.  Every string passed in is copied, and may be freed when the
 * call returns.  Every pointer a callback receives (messages, results,
 * strings) is borrowed: valid only during the callback.  A callback may
 * call any function of its client, parley_client_free included.
 *
 * parley_client_free ends the client at once (no callback of its client is
 * called afterwards, except the cancellations below) and closes its libuv
 * handles; its memory is released once the loop has run their close
 * callbacks, so keep running the loop.  Sends and requests not yet answered
 * are then completed with PARLEY_CANCELLED, from the loop, so that their
 * callers can free what they passed as `arg`.
 *
 * Memory is allocated through parley's core/mem.h wrappers, which abort the
 * process with a message when memory runs out.
 */
#ifndef PARLEY_H
#define PARLEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct parley_client parley_client;

/* ------------------------------------------------------------------ */
/* Status                                                               */
/* ------------------------------------------------------------------ */

typedef enum parley_status {
    PARLEY_OK = 0,
    /* The server's error codes (an `error` frame, docs/protocol.md). */
    PARLEY_BAD_REQUEST,
    PARLEY_UNAUTHORIZED,
    PARLEY_FORBIDDEN,
    PARLEY_NOT_FOUND,
    PARLEY_CONFLICT,
    PARLEY_TOO_LARGE,
    PARLEY_RATE_LIMITED,
    PARLEY_BLOCKED_CONTENT,
    PARLEY_UNAVAILABLE,
    PARLEY_INTERNAL,       /* also: an error code this library does not know */
    /* The library's own. */
    PARLEY_INVALID,        /* a bad argument or option (a malformed URL...) */
    PARLEY_NOT_READY,      /* not logged in yet (only sends are queued) */
    PARLEY_CLOSED,         /* the connection ended before the answer came */
    PARLEY_TIMEOUT,        /* no answer, or no connection, in time */
    PARLEY_KICKED,         /* another login took this device slot */
    PARLEY_PROTOCOL,       /* the server broke the protocol, or refused ours */
    PARLEY_CANCELLED,      /* the client was freed */
    PARLEY_UNSUPPORTED,    /* the protocol this library speaks has no such frame */
    PARLEY_CONNECT,        /* cannot connect: refused, unreachable, upgrade refused */
    PARLEY_STATUS_COUNT
} parley_status;

/* A stable lower-case name: "ok", "not_found", ... "timeout", "connect".
 * For the server's codes it is the protocol's code itself. */
const char *parley_status_str(parley_status st);

/* The status of a protocol error code ("rate_limited"...); PARLEY_INTERNAL
 * for an unknown one. */
parley_status parley_status_from_code(const char *code);

typedef enum parley_state {
    PARLEY_STATE_IDLE,         /* created, not started */
    PARLEY_STATE_CONNECTING,   /* connecting, upgrading or logging in */
    PARLEY_STATE_READY,        /* logged in: frames flow */
    PARLEY_STATE_WAITING,      /* disconnected; reconnecting after a delay */
    PARLEY_STATE_CLOSED,       /* for good */
} parley_state;

const char *parley_state_str(parley_state st);   /* "idle", "connecting"... */

/* ------------------------------------------------------------------ */
/* What callbacks receive (borrowed for the duration of the callback)   */
/* ------------------------------------------------------------------ */

typedef struct parley_msg {
    const char *conv;      /* "dm:alice:bob", "g:<group>" */
    uint64_t seq;          /* in the conversation */
    uint64_t useq;         /* in the receiving user's inbox; 0 for channel messages */
    const char *from;
    const char *text;
    uint64_t ts;           /* ms since the epoch, assigned by the server */
    const char *cmid;      /* the sender's client message id ("" if none) */
    bool synced;           /* came from a sync (or history), not a push */
} parley_msg;

typedef struct parley_event {
    const char *kind;      /* "read", "group_joined", ... */
    const char *conv, *user, *group;   /* "" when absent */
    uint64_t seq, ts, useq;
    bool synced;
} parley_event;

typedef struct parley_receipt {
    const char *conv, *user;   /* user read conv up to seq */
    uint64_t seq, ts;
} parley_receipt;

typedef struct parley_login_info {
    const char *user, *tenant, *session;
    uint64_t useq;         /* the user's latest inbox seq */
    uint64_t server_ts;
    const char *token;     /* after a password login: the token issued for reconnects, else "" */
    uint64_t expires_at;
} parley_login_info;

/* Every callback is optional (NULL). */
typedef struct parley_callbacks {
    /* The client entered state st; why says what ended the last connection
     * (WAITING), or why the client stopped (CLOSED); PARLEY_OK otherwise. */
    void (*on_state)(parley_client *c, parley_state st, parley_status why, void *ud);
    /* Each successful login (after every reconnect), before on_state(READY). */
    void (*on_login)(parley_client *c, const parley_login_info *li, void *ud);
    /* A message pushed or synced.  With inbox tracking on (parley_options.sync)
     * each inbox message arrives once, in useq order. */
    void (*on_msg)(parley_client *c, const parley_msg *m, void *ud);
    void (*on_event)(parley_client *c, const parley_event *e, void *ud);
    void (*on_receipt)(parley_client *c, const parley_receipt *r, void *ud);
    void (*on_typing)(parley_client *c, const char *conv, const char *from, void *ud);
    void (*on_presence)(parley_client *c, const char *user, bool online, uint64_t last_seen,
                        void *ud);
    /* Another login took this device slot; the client then closes for good
     * (on_state CLOSED, PARLEY_KICKED). */
    void (*on_kicked)(parley_client *c, const char *reason, void *ud);
    /* The node is shutting down; the client reconnects (to url if not ""). */
    void (*on_goaway)(parley_client *c, const char *url, const char *reason, void *ud);
    /* Inbox tracking: the device now has every inbox entry up to useq.
     * Store it; pass it as parley_options.useq next time. */
    void (*on_useq)(parley_client *c, uint64_t useq, void *ud);
    /* Inbox tracking: a sync finished and the device is current (it has
     * every entry up to the inbox's latest useq as of that sync). */
    void (*on_synced)(parley_client *c, uint64_t useq, void *ud);
    /* An `error` frame that answers no request of ours (the server could
     * not decode a frame, say). */
    void (*on_error)(parley_client *c, parley_status st, const char *message, void *ud);
} parley_callbacks;

/* ------------------------------------------------------------------ */
/* Options                                                              */
/* ------------------------------------------------------------------ */

typedef enum parley_encoding {
    PARLEY_ENC_JSON = 0,       /* WebSocket text frames (the default) */
    PARLEY_ENC_PROTOBUF = 1,   /* WebSocket binary frames; TCP always uses it */
} parley_encoding;

typedef enum parley_sync_mode {
    PARLEY_SYNC_OFF = 0,       /* no inbox tracking: pushes are handed on as they come */
    PARLEY_SYNC_FROM = 1,      /* track from `useq`: sync what follows it now and after
                                  every reconnect, drop duplicates, fill gaps */
    PARLEY_SYNC_LATEST = 2,    /* like FROM, starting at the inbox's latest useq at the
                                  first login: only what arrives from then on */
} parley_sync_mode;

typedef struct parley_options {
    /* "ws://host:port[/path]" (path default /v1/ws; port default 80) or
     * "tcp://host:port" (port default 9000).  Required. */
    const char *url;
    parley_encoding encoding;
    /* Credentials: a token, or user + password (tenant default "default").
     * After a password login the client reconnects with the token the
     * server issued, and falls back to the password if that is refused. */
    const char *token;
    const char *user;
    const char *password;
    const char *tenant;
    const char *device;        /* web, ios, android, desktop, cli, bot (default: the server's, web) */
    const char *device_id;
    /* Inbox tracking and sync. */
    parley_sync_mode sync;
    uint64_t useq;             /* PARLEY_SYNC_FROM: the last useq the device has */
    uint32_t sync_limit;       /* entries per sync page (0: the server's default) */
    /* Timing, in milliseconds (0: the default in brackets). */
    uint32_t connect_timeout_ms;   /* connect + upgrade + login [10000] */
    uint32_t request_timeout_ms;   /* an unanswered request means a dead connection [15000] */
    uint32_t ping_interval_ms;     /* heartbeat when nothing else was sent [30000] */
    uint32_t backoff_min_ms;       /* first reconnect delay [250] */
    uint32_t backoff_max_ms;       /* longest reconnect delay [30000] */
    bool no_reconnect;             /* any lost connection closes the client for good */
    /* Local address to connect from ("127.0.0.2"), or NULL for any. */
    const char *bind_ip;
    uint32_t max_frame;            /* largest inbound message, bytes [4 MiB] */
    parley_callbacks cb;
    void *ud;                      /* passed to every callback of cb */
} parley_options;

/* ------------------------------------------------------------------ */
/* Client                                                               */
/* ------------------------------------------------------------------ */

/* A new client in state IDLE, or NULL with a one-line reason in err (a bad
 * URL, no credentials...).  Nothing happens until parley_client_start. */
parley_client *parley_client_new(uv_loop_t *loop, const parley_options *opts, char *err,
                                 size_t errlen);

/* Connect, log in, and stay connected.  Only from IDLE; else a no-op. */
void parley_client_start(parley_client *c);

/* See the top of this file.  NULL is ok. */
void parley_client_free(parley_client *c);

parley_state parley_client_state(const parley_client *c);
uv_loop_t *parley_client_loop(const parley_client *c);
void *parley_client_ud(const parley_client *c);
/* After the first login, else "". */
const char *parley_client_user(const parley_client *c);
/* The token the client logs in with ("" before a password login). */
const char *parley_client_token(const parley_client *c);
/* Why the last connection ended, or why the client closed ("" if it did
 * not): a line for people, e.g. "login refused: unauthorized: ...". */
const char *parley_client_error(const parley_client *c);
/* Inbox tracking: the last useq the device has. */
uint64_t parley_client_useq(const parley_client *c);

typedef struct parley_stats {
    uint64_t connects;         /* connection attempts */
    uint64_t logins;           /* login_ok received */
    uint64_t disconnects;      /* connections lost after the attempt began */
    uint64_t frames_out, frames_in;
    uint64_t bytes_out, bytes_in;
    uint64_t writes;           /* write system calls: frames queued in one loop turn share one */
    uint64_t sends;            /* parley_send calls */
    uint64_t resends;          /* send frames transmitted again (reconnect, retry) */
    uint64_t send_ok;
    uint64_t send_failed;
    uint64_t rate_limited;     /* rate_limited answers (to any request) */
    uint64_t pushes;           /* msg/event/receipt/typing/presence pushes */
    uint64_t duplicates;       /* inbox entries dropped as already seen */
    uint64_t syncs;            /* sync requests */
} parley_stats;

void parley_client_stats(const parley_client *c, parley_stats *out);

/* ------------------------------------------------------------------ */
/* Sending                                                              */
/* ------------------------------------------------------------------ */

typedef struct parley_send_req {
    const char *to;            /* a user, or */
    const char *group;         /* a group or channel */
    const char *text;          /* 1 to 10,000 code points of UTF-8 */
    const char *cmid;          /* NULL: generated, unique for this client */
    uint32_t timeout_ms;       /* give up after this long (PARLEY_TIMEOUT); 0: never */
} parley_send_req;

typedef struct parley_send_result {
    const char *conv;
    uint64_t seq, ts, useq;    /* of the stored message; 0 on error */
    const char *cmid;
    const char *error;         /* the server's message on error, else "" */
} parley_send_result;

typedef void (*parley_send_cb)(parley_client *c, parley_status st, const parley_send_result *r,
                               void *arg);

/*
 * Send a message.  The send is queued (even before the first login) and
 * transmitted when the client is READY; it is sent again with the same
 * cmid after every reconnect, after `rate_limited` (once retry_after_ms
 * has passed) and after `unavailable` or `internal` (with backoff), until
 * the server answers `send_ok` or another error, the timeout passes, or
 * the client closes.  The server stores a cmid once, so the message is
 * stored exactly once.  cb (may be NULL) runs once with the outcome.
 * Returns PARLEY_OK, or without calling cb: PARLEY_INVALID (no text, both
 * or neither of to and group, an empty cmid or one over 64 bytes, a string
 * that is not UTF-8), PARLEY_CLOSED (closed for good) or PARLEY_CANCELLED
 * (freed).
 *
 * Sends are transmitted in the order they were made; one that has to be
 * retried after a rate limit may land after later ones.
 */
parley_status parley_send(parley_client *c, const parley_send_req *req, parley_send_cb cb, void *arg);

/* Number of sends not yet completed. */
size_t parley_client_pending_sends(const parley_client *c);

/* ------------------------------------------------------------------ */
/* Requests (only while READY; a lost connection fails them with        */
/* PARLEY_CLOSED)                                                       */
/* ------------------------------------------------------------------ */

typedef void (*parley_history_cb)(parley_client *c, parley_status st, const parley_msg *msgs,
                                  size_t n, bool more, void *arg);

/* A page of conv's history: messages with seq below before_seq (0: from
 * the newest), newest first, at most limit (0: the server's default). */
parley_status parley_history(parley_client *c, const char *conv, uint64_t before_seq,
                             uint32_t limit, parley_history_cb cb, void *arg);

/* Inbox tracking: (re)start from useq and sync now (also works while
 * tracking was off: it turns it on). */
parley_status parley_sync(parley_client *c, uint64_t useq);

/* Mark conv read up to seq; typing indicator for conv.  Fire and forget:
 * errors go to on_error. */
parley_status parley_read(parley_client *c, const char *conv, uint64_t seq);
parley_status parley_typing(parley_client *c, const char *conv);

typedef struct parley_reply {
    const char *body;          /* the reply's body name: "group_join_ok", "error" */
    const char *json;          /* the reply's body as JSON ("{}" if empty) */
    const char *code;          /* for an error: the server's code, else "" */
    const char *message;       /* for an error: the server's message, else "" */
    uint64_t retry_after_ms;
} parley_reply;

typedef void (*parley_reply_cb)(parley_client *c, parley_status st, const parley_reply *r, void *arg);

/*
 * Any request by its body name and a JSON object for the body, e.g.
 * ("group_join", "{\"group\":\"g1\"}").  Sent in the connection's encoding
 * when the protocol this library knows has that body; on a JSON WebSocket
 * a body it does not know is sent as is (so a newer server may still
 * serve it, or answer with its error), elsewhere PARLEY_UNSUPPORTED.
 * A JSON body that does not decode is PARLEY_INVALID.  cb gets the reply,
 * PARLEY_OK for `<name>_ok`, or the error's status with r->code/message.
 * A server that cannot read the frame at all answers with an error that
 * carries no id; the library gives it to the oldest request of this kind
 * still waiting (preferring one sent as is).
 */
parley_status parley_request_json(parley_client *c, const char *body, const char *json,
                                  parley_reply_cb cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif
