/*
 * chat.h - the chat domain as the server layer sees it.
 *
 * The chat layer decides everything (who may do what, what is stored, who
 * gets which push) and touches no socket: the server gives each session a
 * `chat_io` table through which chat queues frames and closes the
 * connection, and reaches storage only through store/store.h.
 *
 * Objects and threads:
 *   chat          one per process: settings, the store, the hasher, tenants,
 *                 rate limits, the token secret, the revoked-token set.
 *   chat_worker   one per worker thread, created on that thread; owns the
 *                 registry of the sessions on it.  Everything below runs on
 *                 the worker's thread unless said otherwise.
 *   chat_session  one per WebSocket/TCP connection, on the connection's
 *                 worker.
 *
 * Requests arrive in two shapes that end in the same handlers: a frame on
 * a session (chat_session_frame), or an HTTP call (chat_http) with a body
 * message and a reply callback.  Each operation is one row of the table in
 * chat/ops.c: its name, body type, handler and the credentials it needs.
 */
#ifndef PARLEY_CHAT_CHAT_H
#define PARLEY_CHAT_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat/hasher.h"
#include "core/mailbox.h"
#include "core/status.h"
#include "proto/parley.pb-c.h"
#include "store/store.h"

typedef struct chat chat;
typedef struct chat_worker chat_worker;
typedef struct chat_session chat_session;

typedef struct chat_config {
    const char *data_dir;          /* secret, admin.token, default.key, words/ */
    const char *node_id;
    size_t workers;                /* number of worker threads */
    const char *admin_token;       /* NULL or "": generated into DATA/admin.token */
    uint64_t token_ttl_ms;         /* lifetime of issued tokens */
    uint32_t max_text;             /* code points per message (10,000) */
    uint32_t group_max_members;    /* members of a group (2,000); channels are unbounded */
    size_t max_page_bytes;         /* sync/history replies stop near this size
                                      (at least one entry; 0: no bound) */
    uint32_t login_timeout_ms;     /* a connection must log in within this */
    double msg_rate, msg_burst;    /* per user, unless the tenant sets its own */
    double login_rate_ip, login_burst_ip;    /* login attempts per IP */
    uint32_t failed_login_max;     /* wrong passwords per user per window ... */
    uint32_t failed_login_window_ms;   /* ... before logins are refused for it */
    hasher_config hasher;
} chat_config;

/* Open the domain on an open store: load or create the token secret, the
 * admin token, the tenants (creating `default` with open sign-up and its
 * API key on first start) and the revoked tokens.  Runs on the main thread
 * before the workers start.  0, or -1 with a one-line reason in err. */
int chat_new(chat **out, const chat_config *cfg, store *st, char *err, size_t errlen);
/* After every worker is gone. */
void chat_free(chat *c);

/* Reload the reloadable state (word lists); any thread. */
void chat_reload(chat *c);

/* The limits that may change while running (SIGHUP): they apply to the
 * next request that checks them.  Any thread. */
typedef struct chat_limits {
    double msg_rate, msg_burst;
    double login_rate_ip, login_burst_ip;
    uint32_t failed_login_max, failed_login_window_ms;
} chat_limits;
void chat_set_limits(chat *c, const chat_limits *l);

/* ---- workers ---- */

/* On worker thread `index` (0..cfg.workers-1), with the mailbox that
 * thread drains: store completions, hash results and other workers'
 * deliveries come back through it. */
chat_worker *chat_worker_new(chat *c, size_t index, size_t n_workers, mailbox *mb);
/* On the worker's thread, after its sessions are closed: waits for the
 * calls still in flight; the memory is released by chat_free. */
void chat_worker_free(chat_worker *w);
/* About once a second on the worker's thread: login timeouts, sweeps. */
void chat_worker_tick(chat_worker *w, uint64_t now_ms);

/* Tell every session on this worker to reconnect elsewhere (goaway, with
 * url if not NULL); the server closes the connections after a grace. */
void chat_worker_goaway(chat_worker *w, const char *url);

/* ---- sessions (WebSocket and TCP connections) ---- */

/* A push reaches many sessions with the same frame: chat passes a memo
 * through every send of one push, so the server can encode the frame once
 * per encoding and reuse the bytes.  Chat zeroes it before the push and
 * calls `release` (if set) after; what the slots hold is the server's
 * business. */
typedef struct chat_memo {
    void *slot[2];
    void (*release)(struct chat_memo *m);
} chat_memo;

typedef struct chat_io {
    /* Queue a frame on the connection (encoded as the connection speaks).
     * memo: NULL, or the memo of a push that sends this same frame to
     * other sessions too. */
    void (*send)(void *conn, const Parley__Frame *f, chat_memo *memo);
    /* Close the connection after what is queued (WebSocket close code). */
    void (*close)(void *conn, uint16_t code, const char *reason);
} chat_io;

/* Close codes chat asks for (documented in docs/protocol.md). */
enum {
    CHAT_CLOSE_NORMAL = 1000,
    CHAT_CLOSE_GOING_AWAY = 1001,
    CHAT_CLOSE_KICKED = 4001,
    CHAT_CLOSE_UNAUTHORIZED = 4003,
    CHAT_CLOSE_LOGIN_TIMEOUT = 4004,
};

/* A new connection.  transport: "ws" or "tcp".  remote_ip is copied. */
chat_session *chat_session_new(chat_worker *w, const chat_io *io, void *conn, const char *transport,
                               const char *remote_ip);
/* One decoded frame from the client (borrowed for the call). */
void chat_session_frame(chat_session *s, const Parley__Frame *f);
/* The frame could not be decoded: answer an error with the frame's id if
 * known (0 = none). */
void chat_session_bad_frame(chat_session *s, uint64_t id, pl_status st, const char *why);
/* The connection is gone: the session is detached and freed once nothing
 * pending refers to it.  `conn` must not be used by chat afterwards. */
void chat_session_closed(chat_session *s);

/* ---- HTTP calls ---- */

typedef enum chat_op {
    CHAT_OP_SIGNUP,          /* Signup -> TokenOk */
    CHAT_OP_LOGIN,           /* HttpLogin -> TokenOk */
    CHAT_OP_LOGOUT,          /* Empty -> Empty */
    CHAT_OP_USER_CREATE,     /* UserCreate (API key) -> User */
    CHAT_OP_USER_GET,        /* UserQuery.user -> User */
    CHAT_OP_USER_SEARCH,     /* UserQuery.q, limit -> UserList */
    CHAT_OP_SEND,            /* Send -> SendOk */
    CHAT_OP_HISTORY,         /* History -> HistoryOk */
    CHAT_OP_SYNC,            /* Sync -> SyncOk */
    CHAT_OP_READ,            /* Read -> Empty */
    CHAT_OP_TENANT_CREATE,   /* TenantCreate (admin) -> Tenant */
    CHAT_OP_TENANT_LIST,     /* Empty (admin) -> TenantList */
    CHAT_OP_GROUP_CREATE,    /* GroupCreate -> Group */
    CHAT_OP_GROUP_INFO,      /* GroupRef -> Group */
    CHAT_OP_GROUP_JOIN,      /* GroupRef -> Group */
    CHAT_OP_GROUP_LEAVE,     /* GroupRef -> Empty */
    CHAT_OP_GROUP_MEMBERS,   /* GroupMembers -> GroupMembersOk */
    CHAT_OP_GROUP_ADD,       /* GroupAdd -> GroupAddOk */
    CHAT_OP_GROUP_REMOVE,    /* GroupRemove -> Empty */
    CHAT_OP_GROUP_ROLE,      /* GroupRole -> Empty */
    CHAT_OP_GROUP_DISBAND,   /* GroupRef -> Empty */
    CHAT_OP_CHANNEL_SEARCH,  /* ChannelSearch -> GroupList */
    CHAT_OP_MY_GROUPS,       /* Empty -> GroupList */
    CHAT_OP_FRIEND,          /* FriendOp -> FriendOk */
    CHAT_OP_FRIEND_LIST,     /* Empty -> FriendList */
    CHAT_OP_PRESENCE,        /* PresenceSub (users) -> PresenceSubOk */
    CHAT_OP_HOME,            /* Home -> HomeOk */
    CHAT_OP_TENANT_SETTINGS, /* TenantSettingsUpdate (admin) -> Tenant */
    CHAT_OP_USER_BAN,        /* AdminUser (admin) -> AdminUserOk */
    CHAT_OP_USER_UNBAN,      /* AdminUser (admin) -> AdminUserOk */
    CHAT_OP_USER_KICK,       /* AdminUser (admin) -> AdminUserOk */
    CHAT_OP_ONLINE,          /* OnlineQuery (admin) -> OnlineOk */
    CHAT_OP_WORDS_PUT,       /* WordList (admin) -> WordListOk */
    CHAT_OP_BACKUP,          /* Backup (admin) -> BackupOk */
    CHAT_OP_COUNT
} chat_op;

/* The reply of an HTTP call: status PL_OK and body (borrowed for the
 * call), or an error status with a message and, for rate_limited, the
 * milliseconds to wait. */
typedef void (*chat_reply_fn)(void *ud, pl_status st, const char *message,
                              uint64_t retry_after_ms, const ProtobufCMessage *body);

/* The body type an op expects. */
const ProtobufCMessageDescriptor *chat_op_body(chat_op op);

/* Run op for an HTTP caller.  bearer: the token of an Authorization:
 * Bearer header, or NULL.  body is borrowed for the call.  reply runs
 * exactly once, now or later, on this worker's thread. */
void chat_http(chat_worker *w, chat_op op, const char *bearer, const char *remote_ip,
               const ProtobufCMessage *body, chat_reply_fn reply, void *ud);

/* ---- state for health and metrics ---- */

size_t chat_worker_sessions(const chat_worker *w);   /* authenticated, on this worker */
bool chat_ready(const chat *c);

#endif
