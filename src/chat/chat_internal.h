/*
 * chat_internal.h - the structures the files of src/chat/ share.
 *
 * Nothing outside src/chat/ includes this.  The files:
 *   chat.c      the process-wide object: secret, admin token, bootstrap,
 *               revoked tokens, cross-worker mail (push, kick, retire)
 *   tenants.c   tenant table, settings snapshots, API keys, word lists
 *   session.c   sessions, the per-worker registry, mutual kick, pushes
 *   call.c      a request in flight: replies, the ops table, dispatch
 *   auth.c      sign-up, login, logout, tokens, users
 *   message.c   send, sync, history, read receipts, typing
 *   ids.c       validation of ids and conversation names
 *   admin.c     the admin API: tenant settings, bans, kicks, online counts,
 *               word lists, backups
 *   stats.c     what chat counts for /metrics (core/metrics.h)
 */
#ifndef PARLEY_CHAT_INTERNAL_H
#define PARLEY_CHAT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <uthash.h>

#include "chat/chat.h"
#include "chat/filter.h"
#include "chat/hasher.h"
#include "chat/limits.h"
#include "chat/token.h"
#include "core/arena.h"

#define CHAT_ID_MAX 64          /* user, tenant and group ids */
#define CHAT_MAX_WORKERS 256
#define CHAT_CMID_MAX 64
#define CHAT_NAME_MAX 128       /* display names, in code points */
#define CHAT_PW_MIN 8

/* ---- tenants (tenants.c) ---- */

/* Immutable once published; replaced as a whole when settings or the word
 * list change.  Reference counted: the tenant table holds one reference,
 * each worker's cache one. */
typedef struct tenant_conf {
    _Atomic int refs;
    bool open_signup;
    bool friends_only_dm;
    filter_policy policy;
    double msg_rate, msg_burst;    /* 0: the server default */
    filter *words;                 /* never NULL */
    char *settings_json;           /* as stored */
} tenant_conf;

typedef struct chat_tenant {
    char id[CHAT_ID_MAX + 1];
    uint8_t key_hash[32];          /* SHA-256 of the API key */
    tenant_conf *conf;             /* current; guarded by the table lock */
    _Atomic int64_t n_sessions;    /* logged-in sessions (stats.c) */
    _Atomic int64_t n_users;       /* users with at least one of them */
    UT_hash_handle hh;
} chat_tenant;

/* A worker's cached snapshot of one tenant's conf. */
typedef struct conf_cache {
    const chat_tenant *tenant;
    tenant_conf *conf;             /* one reference */
    UT_hash_handle hh;             /* keyed by the tenant pointer */
} conf_cache;

int tenants_load(chat *c, char *err, size_t errlen);
void tenants_free(chat *c);
/* Tenants are never freed while the process runs: the pointer stays valid. */
chat_tenant *tenants_find(chat *c, const char *id);
/* The tenant whose API key this is, or NULL (constant-time compare). */
chat_tenant *tenants_by_key(chat *c, const char *key);
/* The current conf of t as this worker sees it (no lock on a cache hit). */
const tenant_conf *tenant_conf_of(chat_worker *w, const chat_tenant *t);
void tenant_conf_unref(tenant_conf *tc);
void tenants_reload_words(chat *c);
/* Replace t's conf by one with settings s and t's word list read again
 * from its file (reload_words) or kept (!reload_words).  Any thread. */
void tenants_set_conf(chat *c, chat_tenant *t, const Parley__TenantSettings *s, bool reload_words);
/* Fill a TenantSettings from a conf (strings borrowed from it). */
void tenant_conf_to_settings(const tenant_conf *tc, Parley__TenantSettings *out);

/* ---- the process (chat.c) ---- */

typedef struct revoked {
    char jti[TOKEN_JTI_LEN + 1];
    uint64_t expires_at;
    UT_hash_handle hh;
} revoked;

struct chat {
    chat_config cfg;
    char *data_dir, *node_id;
    store *st;
    hasher *hasher;
    limits *limits;
    uint8_t secret[TOKEN_SECRET_LEN];
    char admin_token[80];

    pthread_rwlock_t tenants_lock;
    chat_tenant *tenants;          /* uthash by id */
    _Atomic uint64_t conf_gen;     /* bumped on every tenant conf change */

    pthread_rwlock_t revoked_lock;
    revoked *revoked;              /* uthash by jti */
    struct banned_user *banned;    /* uthash by "tenant/user"; same lock (chat.c) */

    /* Settings SIGHUP may change (chat_set_limits); read per call. */
    _Atomic double msg_rate, msg_burst, login_rate_ip, login_burst_ip;
    _Atomic uint32_t failed_login_max, failed_login_window_ms;

    _Atomic(chat_worker *) workers[CHAT_MAX_WORKERS];
    chat_worker *stopped[CHAT_MAX_WORKERS];   /* freed by chat_free */
    size_t n_workers;
    _Atomic uint64_t next_session_id;
    struct presence_shard *presence;   /* presence.c */
};

bool chat_is_revoked(chat *c, const char *jti);
void chat_revoke_local(chat *c, const char *jti, uint64_t expires_at);

/* Bans (admin.c).  A ban is kept in the user's record (logins check it)
 * and, so that tokens issued before it stop working for HTTP calls too,
 * in the revocation list under the id "ban:<tenant>/<user>" (expires_at
 * 0: for ever); an unban writes the same id already expired, which the
 * next start purges.  In memory, the banned set mirrors those entries. */
#define CHAT_BAN_PREFIX "ban:"
bool chat_is_banned(chat *c, const chat_tenant *t, const char *user);
void chat_ban_local(chat *c, const char *tenant, const char *user, bool banned);

/* ---- workers and sessions (session.c) ---- */

typedef struct user_sessions user_sessions;
typedef struct topic topic;
/* One subscription of a session: the topic, and whether the client asked
 * for it (presence_sub) rather than following it by membership or
 * friendship; only those asked for count against the bound. */
typedef struct session_topic {
    topic *t;
    bool asked;
} session_topic;
typedef struct chat_call chat_call;

struct chat_session {
    chat_worker *w;
    const chat_io *io;
    void *conn;                    /* NULL once the connection is gone */
    int refs;                      /* 1 for the connection + one per call in flight */
    uint64_t id;                   /* process-wide, assigned at login; 0 before */
    uint64_t opened_ms;
    char transport[4];
    char ip[46];
    bool authed;
    bool logging_in;               /* a login is in flight */
    const chat_tenant *tenant;
    char user[CHAT_ID_MAX + 1];
    char device[17];
    char device_id[CHAT_ID_MAX + 1];
    char jti[TOKEN_JTI_LEN + 1];
    uint64_t token_expires;
    user_sessions *us;             /* registry entry while authed */
    chat_session *next, *prev;     /* in us->list, or in w->anon */
    session_topic *topics;         /* what the session is subscribed to (topic.c) */
    size_t n_topics, cap_topics;
    size_t n_presence_subs;        /* of those, asked for with presence_sub */
};

struct user_sessions {
    char key[2 * CHAT_ID_MAX + 2];     /* tenant/user */
    chat_session *list;
    UT_hash_handle hh;
};

struct chat_worker {
    chat *c;
    size_t index;
    mailbox *mb;
    user_sessions *users;          /* uthash by "tenant/user" */
    chat_session *anon;            /* not (yet) logged in, for the login timeout */
    conf_cache *confs;             /* uthash by tenant pointer */
    uint64_t confs_gen;            /* conf_gen the cache was filled at */
    topic *topics;                 /* uthash by key: local subscribers (topic.c) */
    size_t n_calls;                /* calls in flight */
    chat_call *free_calls;         /* recycled calls: none allocated per message */
    size_t n_free_calls;
    struct wmail *free_wmails;     /* recycled worker mail (session.c) */
    size_t n_free_wmails;
    mailbox wmail_back;            /* worker mail other workers finished, back to be recycled */
    size_t n_authed;
    uint64_t last_sweep_ms;
    uint64_t cur_t0;               /* clock_mono_ns when the request being run
                                      began (0: none); see stats.c */
};

void session_ref(chat_session *s);
void session_unref(chat_session *s);
bool session_open(const chat_session *s);
/* Queue a frame on s if its connection is still there. */
void session_send(chat_session *s, const Parley__Frame *f);
/* The same, as part of a push sending f to several sessions (chat.h). */
void session_send_memo(chat_session *s, const Parley__Frame *f, chat_memo *memo);
static inline void memo_done(chat_memo *m)
{
    if (m->release) m->release(m);
}
void session_close(chat_session *s, uint16_t code, const char *reason);
/* Move s into the registry as tenant/user (after a successful login) and
 * kick older sessions of the same device kind on every worker. */
void session_login(chat_session *s);
/* Back to anonymous (logout). */
void session_logout(chat_session *s);
/* Close every session (on every worker) logged in with token jti, except
 * the session with id except_sid. */
void sessions_revoke(chat_worker *w, const chat_tenant *t, const char *user, const char *jti,
                     uint64_t except_sid);
/* End every session of tenant/user on every worker (of one device kind if
 * device is not NULL or ""): `kicked` with reason, then close with code.
 * kind: STATS_KICK_ADMIN or STATS_KICK_BAN. */
void sessions_kick(chat_worker *w, const chat_tenant *t, const char *user, const char *device,
                   const char *reason, uint16_t code, int kind);

/* ---- pushes across workers (session.c) ---- */

typedef struct push_target {
    const char *user;
    uint64_t useq;                 /* set into the Msg/Event pushed to this user; 0 = leave */
} push_target;

/* Send body (a Frame body of case `body_case`) to every session of the
 * given users of tenant t on every worker, except the session with id
 * except_sid.  body is deep-copied; useqs are applied per user when body is
 * a Msg or an Event. */
void push_to_users(chat_worker *w, const chat_tenant *t, const push_target *to, size_t n,
                   Parley__Frame__BodyCase body_case, const ProtobufCMessage *body,
                   uint64_t except_sid);

/* ---- topics: per-worker subscriber sets (topic.c) ----
 *
 * A topic is a key naming something sessions want pushes about: the
 * members of a group or channel ("g/<tenant>/<group>") and the subscribers
 * of a user's presence ("p/<tenant>/<user>").  Each worker keeps its own
 * sessions' subscriptions, so a push to a topic is one mail per worker and
 * each worker walks only its own subscribers. */

#define TOPIC_KEY_MAX (2 * CHAT_ID_MAX + 8)

void topic_group_key(const chat_tenant *t, const char *group, char *out, size_t outlen);
void topic_presence_key(const chat_tenant *t, const char *user, char *out, size_t outlen);
/* Follow key because of a membership or a friendship. */
void topic_sub(chat_session *s, const char *key);
/* Follow key because the client asked (presence_sub); true if it was not
 * asked for before (it then counts in s->n_presence_subs). */
bool topic_sub_asked(chat_session *s, const char *key);
/* Stop following key because the membership or friendship ended; a
 * subscription the client asked for stays. */
void topic_unsub(chat_session *s, const char *key);
bool topic_has(const chat_session *s, const char *key);
/* Did the client ask for key with presence_sub? */
bool topic_asked(const chat_session *s, const char *key);
void topic_unsub_all(chat_session *s);
void topics_free(chat_worker *w);
/* Push body to every session on every worker subscribed to key, except
 * the session with id except_sid. */
void push_to_topic(chat_worker *w, const char *key, Parley__Frame__BodyCase body_case,
                   const ProtobufCMessage *body, uint64_t except_sid);
/* Topic bookkeeping an inbox event implies for the session it reaches
 * (group_joined subscribes to the group, friend_added to the friend's
 * presence...). */
void topic_follow_event(chat_session *s, const Parley__Event *e);

/* ---- presence (presence.c) ---- */

void presence_init(chat *c);
void presence_free(chat *c);
/* Add delta to the online count of key ("tenant/user") at now_ms (wall
 * clock); true if it crossed zero.  *last_seen: when the user last went
 * offline, 0 if not since this process started. */
bool presence_update(chat *c, const char *key, int delta, uint64_t now_ms, uint64_t *last_seen);
/* How long an offline user stays in the table (the tick sweeps once a
 * minute). */
#define PRESENCE_LINGER_MS 600000
/* Forget the users offline for max_offline_ms or longer (their last seen
 * is in the store); the number forgotten. */
size_t presence_sweep(chat *c, uint64_t now_ms, uint64_t max_offline_ms);
/* Users in the table: those online and those offline for a short while. */
size_t presence_count(chat *c);
/* A device of the session's user came online / went away. */
void presence_session_up(chat_session *s);
void presence_session_down(chat_session *s);
void presence_get(chat *c, const chat_tenant *t, const char *user, bool *online,
                  uint64_t *last_seen);
/* A user's presence as pushed: online, or offline with last seen (from this
 * process's table, else stored_seen, what the store had). */
void presence_fill(chat *c, const chat_tenant *t, const char *user, uint64_t stored_seen,
                   Parley__Presence *p);

/* ---- calls (call.c) ---- */

enum {
    AUTH_NONE = 0,       /* anyone */
    AUTH_USER = 1,       /* a user's token (HTTP) or a logged-in session */
    AUTH_APIKEY = 2,     /* a tenant's API key */
    AUTH_ADMIN = 4,      /* the admin token */
};

typedef void (*chat_handler)(chat_call *c, const ProtobufCMessage *body);

typedef struct chat_opdef {
    const char *name;
    Parley__Frame__BodyCase frame_case;   /* request body on sockets, NOT_SET: HTTP only */
    Parley__Frame__BodyCase reply_case;   /* its answer on sockets */
    const ProtobufCMessageDescriptor *body;
    unsigned auth;                        /* AUTH_* accepted */
    bool http;                            /* reachable through chat_http */
    chat_handler handler;
} chat_opdef;

struct chat_call {
    chat_worker *w;
    chat *c;
    const chat_opdef *op;
    chat_session *s;               /* the socket caller (referenced), or NULL */
    uint64_t id;                   /* frame id; 0 = none */
    chat_reply_fn reply;           /* the HTTP caller */
    void *ud;
    /* who calls */
    unsigned auth;                 /* the AUTH_* bit the credentials matched */
    const chat_tenant *tenant;
    char user[CHAT_ID_MAX + 1];
    char device[17];
    char jti[TOKEN_JTI_LEN + 1];
    uint64_t token_expires;
    char ip[46];
    /* what the handler keeps across asynchronous steps */
    void (*store_fn)(chat_call *c, store_req *r);
    void (*hash_fn)(chat_call *c, hasher_job *j);
    chat_call *next_free;          /* on the worker's free list */
    void (*next)(chat_call *c);    /* continuation of a shared sub-flow */
    void (*next_r)(chat_call *c, store_req *r);   /* the same, given the last result */
    store_req *req;
    hasher_job *job;
    char token[TOKEN_MAX];         /* a token being issued */
    char group[CHAT_ID_MAX + 1];   /* group calls: the group, its kind, the caller's role */
    char kind[8];
    char role[8];
    char target[CHAT_ID_MAX + 1];  /* the user a group or friend call is about */
    const char **users;            /* a list kept across steps, in `arena` */
    uint64_t *seqs;                /* parallel to users when needed */
    size_t n_users;
    uint64_t n2;
    void *saved;                   /* a message kept across steps, in `arena` */
    arena arena;                   /* what a reply gathers over several steps */
    uint64_t n1;
    bool flag;
    char *text;                    /* in req's arena when set */
    uint64_t t0;                   /* clock_mono_ns at the start */
};

/* Register the per-operation request histograms (chat_new). */
void call_metrics_init(void);

/* Answer the call and free it.  body is borrowed. */
void call_ok(chat_call *c, const ProtobufCMessage *body);
void call_err(chat_call *c, pl_status st, const char *message);
void call_limited(chat_call *c, uint64_t retry_after_ms);
/* A store request whose completion runs fn with the call (on this worker). */
store_req *call_store(chat_call *c, store_op op, void (*fn)(chat_call *c, store_req *r));
void call_submit(chat_call *c, store_req *r);
/* Hash or verify a password off the loop; fn runs on this worker. */
bool call_hash(chat_call *c, hasher_op op, const char *password, const char *hash,
               void (*fn)(chat_call *c, hasher_job *j));

/* Handlers (auth.c, message.c) */
void h_login(chat_call *c, const ProtobufCMessage *body);
void h_logout(chat_call *c, const ProtobufCMessage *body);
void h_ping(chat_call *c, const ProtobufCMessage *body);
void h_signup(chat_call *c, const ProtobufCMessage *body);
void h_http_login(chat_call *c, const ProtobufCMessage *body);
void h_user_create(chat_call *c, const ProtobufCMessage *body);
void h_user_get(chat_call *c, const ProtobufCMessage *body);
void h_user_search(chat_call *c, const ProtobufCMessage *body);
void h_tenant_create(chat_call *c, const ProtobufCMessage *body);
void h_tenant_list(chat_call *c, const ProtobufCMessage *body);
void h_send(chat_call *c, const ProtobufCMessage *body);
void h_sync(chat_call *c, const ProtobufCMessage *body);
void h_history(chat_call *c, const ProtobufCMessage *body);
void h_read(chat_call *c, const ProtobufCMessage *body);
void h_typing(chat_call *c, const ProtobufCMessage *body);
void h_presence_sub(chat_call *c, const ProtobufCMessage *body);
void h_presence_get(chat_call *c, const ProtobufCMessage *body);
void h_group_create(chat_call *c, const ProtobufCMessage *body);
void h_group_info(chat_call *c, const ProtobufCMessage *body);
void h_group_join(chat_call *c, const ProtobufCMessage *body);
void h_group_leave(chat_call *c, const ProtobufCMessage *body);
void h_group_members(chat_call *c, const ProtobufCMessage *body);
void h_group_add(chat_call *c, const ProtobufCMessage *body);
void h_group_remove(chat_call *c, const ProtobufCMessage *body);
void h_group_role(chat_call *c, const ProtobufCMessage *body);
void h_group_disband(chat_call *c, const ProtobufCMessage *body);
void h_channel_search(chat_call *c, const ProtobufCMessage *body);
void h_my_groups(chat_call *c, const ProtobufCMessage *body);
void h_friend(chat_call *c, const ProtobufCMessage *body);
void h_friend_list(chat_call *c, const ProtobufCMessage *body);
void h_home(chat_call *c, const ProtobufCMessage *body);
/* admin.c */
void h_tenant_settings(chat_call *c, const ProtobufCMessage *body);
void h_user_ban(chat_call *c, const ProtobufCMessage *body);
void h_user_unban(chat_call *c, const ProtobufCMessage *body);
void h_user_kick(chat_call *c, const ProtobufCMessage *body);
void h_online(chat_call *c, const ProtobufCMessage *body);
void h_words_put(chat_call *c, const ProtobufCMessage *body);
void h_backup(chat_call *c, const ProtobufCMessage *body);

/* ---- metrics (stats.c) ---- */

enum { STATS_KICK_NEW_LOGIN, STATS_KICK_ADMIN, STATS_KICK_BAN };
void stats_init(void);
/* A session logged in (+1) or went away (-1); keeps its tenant's count. */
void stats_session(const chat_session *s, int delta);
/* A user of t came online (+1) or went offline (-1). */
void stats_user_online(const chat_tenant *t, int delta);
void stats_login(bool ok);
void stats_lockout(void);
void stats_signup(void);
void stats_kick(int kind);
void stats_sent(const char *conv, bool channel);
/* n pushes of body queued (counted when it is a Msg), t0_ns: when the
 * request that sent it began (0: unknown). */
void stats_delivered(Parley__Frame__BodyCase body_case, const ProtobufCMessage *body, bool channel,
                     uint64_t t0_ns, size_t n);
void stats_limited(const char *op);
void stats_filter_hit(bool mask);
void stats_error(pl_status st);
/* After a login: subscribe the session to its groups and friends. */
void chat_after_login(chat_session *s);

/* ---- ids (ids.c) ---- */

bool chat_valid_id(const char *s);
bool chat_valid_device(const char *kind);
/* "dm:<a>:<b>" with a <= b, into out (2*CHAT_ID_MAX+5 bytes). */
void chat_dm_conv(const char *a, const char *b, char *out, size_t outlen);
/* If conv is a well-formed dm with `user` as one side, the other side into
 * peer and true. */
bool chat_dm_peer(const char *conv, const char *user, char *peer, size_t peerlen);

/* Frame helpers (call.c): set a frame's body generically. */
void frame_set_body(Parley__Frame *f, Parley__Frame__BodyCase body_case, const void *msg);

#endif
