/*
 * store.h - the durable store, as the chat layer sees it.
 *
 * The interface speaks the domain (append a message with its inbox entries,
 * read an inbox range, create a user), never SQL or keys.  Backends:
 * `rocksdb` (embedded default, src/store/rocksdb.c) and later `postgres`.
 *
 * Threading and ownership.  A backend owns its own thread(s).  Callers on
 * any thread fill a store_req (allocated with store_req_new), set `done` and
 * `reply_to`, and call store_submit; the request then belongs to the store
 * until the backend posts it back to `reply_to`, where `done` runs on the
 * consumer's thread and owns the request again (free it with
 * store_req_free, or resubmit it).  Every string and array of a request,
 * inputs and results alike, lives in the request's arena.
 *
 * Group commit.  The store thread takes everything submitted so far as one
 * batch.  The batch's writes (at most max_batch of them; a longer run is
 * split into several batches) are applied together in one write batch with
 * one synced WAL write; their completions are posted after that write
 * returned, so a `done` that reports PL_OK means durable.  If a batch fails
 * to write (disk full, read-only), every write in it fails with
 * PL_UNAVAILABLE (except those already rejected as PL_BAD_REQUEST) and
 * nothing of it is applied; cached counters are dropped and reloaded from
 * disk.  The embedded backend then reopens its database by itself once the
 * disk takes writes again (it tries at most once a second); until then
 * requests fail with PL_UNAVAILABLE.
 *
 * Completions.  All completions of a batch that go to the same `reply_to`
 * mailbox are posted to it in one chain, in submission order: one wake-up
 * per batch per consumer.
 *
 * Ordering and visibility.  Writes are executed in the order they were
 * submitted (for one submitting thread, its order), and completions arrive
 * on a mailbox in submission order too.  Writes of a batch see each other:
 * a write sees every write submitted before it (two appends to one
 * conversation in one batch get consecutive seqs; a repeated cmid in the
 * same batch is a dup; a user created earlier in the batch exists).  Reads
 * of a batch run after its writes are durable, so a read sees every write
 * submitted before it; it may also see writes submitted after it in the
 * same batch, never a write that later fails.  Per-conversation `seq` and
 * per-user `useq` are assigned by the store, gapless, strictly increasing,
 * in the same batch as the data they number.
 *
 * Limits.  Ids, conversation ids and cmids are at most 255 bytes (longer or
 * empty ones get PL_BAD_REQUEST).  Read limits of 0 mean 100; above 1,000
 * mean 1,000.  `ts` and `created_at` left 0 are set to the store's wall
 * clock in ms, never earlier than a ts it assigned before.
 */
#ifndef PARLEY_STORE_STORE_H
#define PARLEY_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/mailbox.h"
#include "core/status.h"

typedef struct store store;

/* ---- domain records (all strings in the owning request's arena) ---- */

typedef struct store_msg {
    const char *conv;   /* dm:a:b or g:<id> */
    uint64_t seq;
    uint64_t useq;      /* inbox seq of the user the message was read for, or 0 */
    const char *from;
    const char *text;
    const char *cmid;
    uint64_t ts;        /* ms since the epoch, assigned by the store */
} store_msg;

typedef struct store_event {
    const char *kind;   /* "read", later "group_joined", "friend_request"... */
    const char *conv;
    uint64_t seq;
    const char *user;
    const char *group;
    uint64_t ts;
} store_event;

/* One inbox entry: exactly one of msg and event is set. */
typedef struct store_entry {
    uint64_t useq;
    store_msg *msg;
    store_event *event;
} store_entry;

typedef struct store_user {
    const char *id;
    const char *name;
    const char *pwhash;   /* argon2id string, or NULL for token-only users */
    uint64_t created_at;
    bool banned;
} store_user;

typedef struct store_tenant {
    const char *id;
    const char *key_hash;      /* hex of a hash of the tenant's API key */
    const char *settings;      /* opaque to the store (JSON written by chat) */
    uint64_t created_at;
} store_tenant;

typedef struct store_revoked {
    const char *jti;           /* token id */
    uint64_t expires_at;       /* ms; the entry may be dropped after this (0: never) */
} store_revoked;

/* ---- requests ---- */

typedef enum store_op {
    STORE_TENANT_CREATE,   /* in: tenant              -> PL_CONFLICT if it exists;
                              created_at (set if 0) is written back into tenant */
    STORE_TENANT_UPDATE,   /* in: tenant (key_hash, settings; NULL keeps the stored
                              value)                  -> PL_NOT_FOUND */
    STORE_TENANT_LIST,     /* out: tenants, n_tenants, sorted by id */
    STORE_USER_CREATE,     /* in: tenant_id, user     -> PL_CONFLICT; created_at (set
                              if 0) is written back into user */
    STORE_USER_UPDATE,     /* in: tenant_id, user (name, pwhash, banned) -> PL_NOT_FOUND.
                              NULL name or pwhash keeps the stored value; banned is
                              always written (read the user first to keep it). */
    STORE_USER_GET,        /* in: tenant_id, user_id  -> out: user (a new record in
                              the arena), or PL_NOT_FOUND */
    STORE_USER_SEARCH,     /* in: tenant_id, query, limit -> out: users_out, n_users_out:
                              users whose id starts with query (bytewise) or whose
                              name starts with it (ASCII case-insensitive), sorted
                              by id, at most limit.  Of name matches only the first
                              10,000 in name order are considered. */
    STORE_MSG_APPEND,      /* see store_append below */
    STORE_EVENT_APPEND,    /* in: tenant_id, users, n_users, event (ts set if 0)
                              -> out: useqs (parallel to users) */
    STORE_READ_SET,        /* in: tenant_id, user_id, event (kind "read", conv, seq)
                              -> raises the user's read position in conv to seq and
                              appends the event to the user's inbox; out: useqs[0].
                              If seq is not above the current position nothing is
                              written: PL_OK with useqs[0] = 0. */
    STORE_INBOX_READ,      /* in: tenant_id, user_id, after, limit
                              -> out: entries (useq > after, ascending), more, head.
                              Message entries carry the full message with useq set. */
    STORE_INBOX_HEAD,      /* in: tenant_id, user_id -> out: head (latest useq, 0 if none) */
    STORE_HISTORY,         /* in: tenant_id, conv, before (0 = newest), limit
                              -> out: msgs (seq < before) newest first, more */
    STORE_TOKEN_REVOKE,    /* in: revoked (one) */
    STORE_TOKEN_LIST,      /* out: revoked_out, n_revoked (unexpired; expired entries
                              are purged) */
    STORE_READ_GET,        /* in: tenant_id, user_id, conv -> out: head = the user's
                              read position in conv (0 if never read) */
    STORE_CONV_READ,       /* in: tenant_id, conv, after, limit -> out: msgs (seq >
                              after) oldest first, more, head (the conversation's
                              latest seq, 0 if none): channel sync, unread counts */
    STORE_OP_COUNT
} store_op;

typedef struct store_append {
    /* in */
    const char *conv;
    const char *from;
    const char *text;
    const char *cmid;          /* dedup key, scoped to (tenant, from); may be NULL */
    const char **rcpt;         /* users whose inboxes get an entry (sender included);
                                  none for a channel message; list each user once */
    size_t n_rcpt;
    const char *must_exist;    /* a user that must exist, else PL_NOT_FOUND; may be NULL */
    /* out */
    uint64_t seq;
    uint64_t ts;
    uint64_t *useqs;           /* parallel to rcpt */
    bool dup;                  /* cmid seen before: seq/ts/useqs are the original's and
                                  nothing is written (useqs beyond the original's
                                  recipients are 0) */
} store_append;

typedef struct store_req store_req;
typedef void (*store_done_fn)(store_req *r);

struct store_req {
    mail mail;                 /* used to post the request back */
    store_op op;
    pl_status status;          /* result */
    char err[96];              /* detail for logs when status != PL_OK */
    mailbox *reply_to;
    store_done_fn done;
    void *udata;               /* the caller's */
    uint64_t udata2;           /* the caller's */
    arena arena;

    /* inputs (by op, see store_op) */
    const char *tenant_id;
    const char *user_id;
    const char *conv;
    const char *query;
    uint64_t after, before;
    uint32_t limit;
    const char **users;
    size_t n_users;
    store_tenant *tenant;
    store_user *user;
    store_event *event;
    store_revoked *revoked;
    store_append append;

    /* outputs */
    store_tenant *tenants;
    size_t n_tenants;
    store_user *users_out;
    size_t n_users_out;
    store_entry *entries;
    size_t n_entries;
    store_msg *msgs;
    size_t n_msgs;
    store_revoked *revoked_out;
    size_t n_revoked;
    uint64_t *useqs;           /* EVENT_APPEND and READ_SET */
    uint64_t head;
    bool more;
};

/* ---- backend table ---- */

typedef struct store_config {
    const char *data_dir;      /* the embedded store lives in DATA/rocksdb */
    const char *url;           /* postgres://... for the postgres backend, else NULL */
    bool sync;                 /* fsync the WAL on every batch (default true) */
    size_t max_batch;          /* most writes in one batch (default 1024; 0 = default) */
    size_t counter_cache;      /* conversations and inboxes whose last number is kept
                                  in memory (default 262144; 0 = default) */
} store_config;

/* Fill cfg with the defaults (sync on, max_batch 1024, counter_cache
 * 262144, no url). */
void store_config_init(store_config *cfg, const char *data_dir);

/* Counters since open, for metrics; read with relaxed atomics. */
typedef struct store_stats {
    uint64_t batches;          /* write batches committed or failed */
    uint64_t writes;           /* write requests executed */
    uint64_t reads;            /* read requests executed */
    uint64_t failed_batches;   /* write batches the disk refused */
} store_stats;

typedef struct store_backend {
    const char *name;
    /* Open and start the backend's thread; on failure write a one-line
     * reason into err and return non-zero. */
    int (*open)(store **out, const store_config *cfg, char *err, size_t errlen);
    void (*submit)(store *s, store_req *r);
    /* Finish everything submitted, flush, stop the thread, free. */
    void (*close)(store *s);
    void (*stats)(store *s, store_stats *out);
} store_backend;

extern const store_backend store_rocksdb;

/* Pick a backend by config (rocksdb unless cfg->url is a postgres URL).
 * On failure writes a one-line reason into err and returns non-zero. */
int store_open(store **out, const store_config *cfg, char *err, size_t errlen);

/* Hand r to the store (r->reply_to and r->done must be set; done runs on
 * the thread that drains reply_to).  Resets r's status, err and outputs
 * first.  Not allowed once store_close has begun. */
void store_submit(store *s, store_req *r);

/* Finish everything submitted, stop, free.  NULL is a no-op. */
void store_close(store *s);

void store_get_stats(store *s, store_stats *out);

/* Synchronous call for start-up code and tests: submits r and waits for
 * it on the calling thread; r->reply_to and r->done are left as they were
 * and done is not called.  Returns r->status. */
pl_status store_call(store *s, store_req *r);

/* A zeroed request for op; free it (and everything in its arena) with
 * store_req_free. */
store_req *store_req_new(store_op op);
void store_req_free(store_req *r);

#endif
