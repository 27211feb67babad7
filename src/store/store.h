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
 * batch.  The batch's writes (at most max_batch of them, and fewer when
 * they write many keys, as group messages and bulk membership changes do;
 * a longer run is split into several batches, never inside one request)
 * are applied together in one write batch with one synced WAL write; their completions are posted after that write
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

/* A group or a channel (SPEC section 2, Groups and channels). */
typedef struct store_group {
    const char *id;
    const char *name;
    const char *kind;          /* "group" (write diffusion: members' inboxes get each
                                  message) or "channel" (read diffusion: stored once,
                                  synced by seq) */
    const char *owner;
    bool admins_post_only;     /* only the owner and admins may send */
    bool disbanded;
    uint64_t created_at;
    /* out */
    uint64_t members;          /* current member count */
    uint64_t last_seq;         /* the conversation g:<id>'s latest seq */
    const char *role;          /* USER_GROUPS: the user's role in it */
} store_group;

typedef struct store_member {
    const char *user;
    const char *role;          /* "owner", "admin" or "member" */
    uint64_t joined_at;
} store_member;

typedef struct store_friend {
    const char *user;          /* the other user */
    const char *state;         /* "friends"; "requested" (the user asked them);
                                  "pending" (they asked the user) */
    uint64_t since;
    uint64_t last_seen;        /* "friends" only: when their last device went offline,
                                  as last written by STORE_SEEN_SET (0: never) */
} store_friend;

/* One conversation of a user's home screen. */
typedef struct store_conv {
    const char *conv;          /* dm:a:b or g:<id> */
    const char *kind;          /* "dm", "group" or "channel" */
    const char *peer;          /* dm: the other user; otherwise the group id */
    const char *name;          /* groups and channels: the name */
    const char *role;          /* groups and channels: the user's role */
    store_msg *last;           /* the latest message, or NULL if none yet */
    uint64_t read_seq;         /* the user's read position */
    uint64_t unread;           /* last->seq - read_seq (0 if none) */
    uint64_t active_ts;        /* last->ts, or when the user joined / the dm began */
} store_conv;

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
                              A seq above conv's latest seq is lowered to it first
                              (written back into event->seq): a position never
                              points past the last message.  If seq is not above
                              the current position nothing is written: PL_OK with
                              useqs[0] = 0. */
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

    /* ---- groups and channels ---- */
    STORE_GROUP_CREATE,    /* in: tenant_id, group (id, name, kind, owner,
                              admins_post_only, created_at), users (the initial
                              members, users[0] = the owner, each listed once),
                              limit (most members for this kind; 0 = no bound)
                              -> PL_CONFLICT if the id exists (even disbanded),
                              PL_NOT_FOUND if a user does not exist, PL_TOO_LARGE
                              past limit.  Writes the group, the members (owner:
                              "owner", others "member") and each member's
                              index entry, and appends `event` (kind
                              "group_joined", group, conv g:<id>, user = the
                              owner) to every member's inbox; out: useqs
                              parallel to users, group->members, created_at.
                              Details: the id is at most 253 bytes (g:<id> is a
                              conversation id); kind NULL means "group"; no users
                              means the owner alone; users[0] not the owner or
                              another kind is PL_BAD_REQUEST; a user listed again
                              is a member once (the repeat's useq is 0); event
                              may be NULL (kind
                              "group_joined"); its group and conv are filled in
                              and a NULL user becomes the owner. */
    STORE_GROUP_GET,       /* in: tenant_id, group_id -> out: group (with members,
                              last_seq), or PL_NOT_FOUND (also when disbanded) */
    STORE_GROUP_UPDATE,    /* in: tenant_id, group (id; name if not NULL,
                              admins_post_only) -> PL_NOT_FOUND.  admins_post_only
                              is always written (read the group first to keep
                              it). */
    STORE_GROUP_DISBAND,   /* in: tenant_id, group_id, event (kind
                              "group_disbanded", user = who did it)
                              -> marks it disbanded, removes every membership and
                              index entry, appends the event to every former
                              member's inbox; out: users_out (the former members,
                              id only, sorted), useqs parallel to it.
                              PL_NOT_FOUND.  The id stays taken.  event may be
                              NULL (kind "group_disbanded"); group and conv are
                              filled in. */
    STORE_MEMBER_ADD,      /* in: tenant_id, group_id, users, role ("member" or
                              "admin"), limit (0 = no bound), event (kind
                              "group_joined", user = who added them; conv and
                              group are filled in) -> adds the users that are not
                              members yet and appends the event to each one's
                              inbox, and sets each new member's read position
                              to the conversation's latest seq (what came before
                              joining is not unread); out: useqs parallel to
                              users (0: was already a member, nothing written),
                              group (updated count).
                              PL_NOT_FOUND (group, or a user that does not exist),
                              PL_TOO_LARGE if the count would pass limit (nothing
                              is added).  Must take 100,000 users in one request
                              (a channel set up in seconds): it is one write
                              batch and one reply however large.  role NULL
                              means "member", "owner" is PL_BAD_REQUEST; a user
                              listed twice is added once (the repeat's useq is
                              0); event may be NULL (kind "group_joined"). */
    STORE_MEMBER_REMOVE,   /* in: tenant_id, group_id, users, event (kind
                              "group_left" or "group_removed", user = who did it)
                              -> removes those that are members, appends the
                              event to each removed user's inbox; out: useqs
                              parallel to users (0: was not a member, or listed
                              again).  Never removes the owner (its useq stays
                              0).  PL_NOT_FOUND for the group.  event may be NULL
                              (kind "group_left"); group and conv are filled
                              in. */
    STORE_MEMBER_ROLE,     /* in: tenant_id, group_id, user_id, role ("admin" or
                              "member") -> PL_NOT_FOUND if not a member; the owner's
                              role never changes (PL_FORBIDDEN); another role
                              (also "owner": no transfer) is PL_BAD_REQUEST.  No
                              inbox event. */
    STORE_MEMBER_GET,      /* in: tenant_id, group_id, user_id -> out: group (as
                              GROUP_GET) and member (the user's row), or
                              PL_NOT_FOUND for the group; member NULL if the user
                              is not a member */
    STORE_MEMBER_LIST,     /* in: tenant_id, group_id, query (list members whose id
                              is after this one; NULL or "" from the start), limit
                              -> out: members_out sorted by user id, more.
                              PL_NOT_FOUND. */
    STORE_USER_GROUPS,     /* in: tenant_id, user_id -> out: groups_out (every
                              group and channel the user belongs to, with role and
                              last_seq), sorted by id, not paged */
    STORE_GROUP_SEARCH,    /* in: tenant_id, query (prefix of id, or of name ASCII
                              case-insensitively), limit -> out: groups_out: the
                              channels (never groups, never disbanded) that match,
                              sorted by id */

    /* ---- friends ---- */
    STORE_FRIEND,          /* in: tenant_id, user_id, other, action:
                              "request": PL_BAD_REQUEST for oneself, PL_NOT_FOUND if
                                other does not exist, PL_CONFLICT if already
                                friends; if other had asked the user this accepts
                                instead; otherwise user "requested", other
                                "pending", event "friend_request" (user = user_id)
                                to other's inbox.
                              "accept": PL_NOT_FOUND unless other asked the user;
                                both become "friends", event "friend_added" to
                                both (user = the other side of each).
                              "reject": PL_NOT_FOUND unless other asked the user;
                                both rows go; event "friend_rejected" to other.
                              "delete": PL_NOT_FOUND unless friends (or user's own
                                pending request, which it withdraws); both rows
                                go; event "friend_removed" to both.
                              out: useqs[0] for user_id, useqs[1] for other (0: no
                              event for that side), query = the resulting action
                              ("request", "accept", ...).
                              A repeated "request" while the user's request is
                              open is PL_OK and writes nothing (useqs 0, 0).  A
                              request the other made is answered with "accept" or
                              "reject", not "delete" (PL_NOT_FOUND); a withdrawal
                              reports "delete".  Events carry no conv; their
                              user is the other side (friend_request to other:
                              user_id). */
    STORE_FRIEND_LIST,     /* in: tenant_id, user_id -> out: friends_out, sorted by
                              user, with requests both ways */
    STORE_SEEN_SET,        /* in: tenant_id, user_id, at: when the user's last device
                              went offline (ms).  Presence keeps it in memory too;
                              this is what outlives a restart. */
    STORE_SEEN_GET,        /* in: tenant_id, users, n_users -> out: seen_out[i] =
                              users[i]'s last STORE_SEEN_SET time (0: never) */

    /* ---- home ---- */
    STORE_HOME,            /* in: tenant_id, user_id, limit (0 = 100, at most 1,000)
                              -> out: convs_out: the user's dms (every dm that has
                              a message) and groups and channels, newest
                              active_ts first (equal ones by conv), at most
                              limit, more.  Must stay fast (milliseconds) for
                              1,000 conversations.  dms have no name or role. */

    /* ---- operations ---- */
    STORE_PROBE,           /* a write that changes nothing (rewrites the layout
                              version): PL_OK means the store takes durable
                              writes now (readiness checks).  While the disk
                              refuses writes it fails with PL_UNAVAILABLE, and
                              it drives the reopening like any write. */
    STORE_CHECKPOINT,      /* in: query = an existing directory to be the data
                              directory of the copy -> a consistent copy of the
                              whole store, taken online, placed where
                              store_open on that directory finds it (rocksdb:
                              DIR/rocksdb, a RocksDB checkpoint, hard links
                              where the file system allows, the memtable
                              flushed first), holding every write acknowledged
                              before it.  PL_CONFLICT if the directory holds a
                              store already, PL_UNAVAILABLE if it cannot be
                              made. */
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
    const char *group;         /* a group or channel message: conv must be g:<group>
                                  (else PL_BAD_REQUEST).
                                  The store checks that the group exists and is not
                                  disbanded (PL_NOT_FOUND), that `from` is a member
                                  (PL_FORBIDDEN), and admins_post_only
                                  (PL_FORBIDDEN for a plain member).  For kind
                                  "group" the recipients are all current members
                                  (rcpt is filled in as out, sender first, then the
                                  others by id; rcpt given as input is ignored); for
                                  "channel" no inbox entry is written (rcpt NULL).
                                  A dup of a group message returns rcpt = {from}
                                  with the sender's original useq only. */
    bool require_friend;       /* a dm that needs friendship: PL_FORBIDDEN unless
                                  from and must_exist are friends (PL_BAD_REQUEST
                                  without must_exist; a dm with oneself needs no
                                  friend).  Like every check, it comes after the
                                  dedup: a retry still gets its original ack. */
    /* Every successful append also raises the sender's read position in conv to
     * the new seq (one's own messages are never unread), and the first message
     * of a dm (conv "dm:...", seq 1) enters the conversation into the home lists
     * of its recipients (rcpt: the two users), each with the other as peer. */
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
    const char *group_id;
    const char *other;         /* FRIEND: the other user */
    const char *action;        /* FRIEND */
    const char *role;          /* MEMBER_ADD, MEMBER_ROLE */
    uint64_t at;               /* SEEN_SET */
    store_group *group;        /* GROUP_CREATE, GROUP_UPDATE in; GROUP_GET, MEMBER_GET,
                                  MEMBER_ADD out (a new record in the arena) */

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
    uint64_t *useqs;           /* EVENT_APPEND, READ_SET, groups, friends */
    uint64_t head;
    bool more;
    store_member *member;      /* MEMBER_GET */
    store_member *members_out;
    size_t n_members_out;
    store_group *groups_out;
    size_t n_groups_out;
    store_friend *friends_out;
    size_t n_friends_out;
    store_conv *convs_out;
    size_t n_convs_out;
    uint64_t *seen_out;        /* SEEN_GET: one per users[i] */
};

/* ---- backend table ---- */

typedef struct store_config {
    const char *data_dir;      /* the embedded store lives in DATA/rocksdb */
    const char *url;           /* postgres://... for the postgres backend, else NULL */
    bool sync;                 /* fsync the WAL on every batch (default true) */
    size_t max_batch;          /* most writes in one batch (default 1024; 0 = default) */
    size_t counter_cache;      /* conversations and users whose number and last seq
                                  or useq are kept in memory (default 262144;
                                  0 = default) */
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
 * first.  Not allowed once store_close has begun.
 * A request with neither reply_to nor done is one nobody waits for: the
 * store frees it on its own thread once executed, and logs a failure.  For
 * writes whose outcome no client hears of (STORE_SEEN_SET), which may be
 * submitted while the workers are stopping. */
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
