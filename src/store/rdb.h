/*
 * rdb.h - internals of the RocksDB backend, shared by rocksdb.c (thread,
 * batches, caches, open/close) and the op files (rdb_ops.c: accounts and
 * messages; rdb_groups.c: groups, channels and the member cache;
 * rdb_people.c: friends and the home list; helpers they share are in
 * rdb_ops.h).  Private to src/store; tests may use store__rdb_hold.
 *
 * Everything here except store__rdb_hold runs on the store thread.
 */
#ifndef PARLEY_STORE_RDB_H
#define PARLEY_STORE_RDB_H

#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "core/arena.h"
#include "core/mailbox.h"
#include "store/keys.h"
#include "store/store_int.h"

/* The layout version written under key "V"; bump when keys change.
 * 2: groups, channels, friends and home lists (G P J C L F H).
 * 3: M, I, D and R name conversations and users by number (the id map K).
 * 4: M and I values are runs of messages or entries (records.proto Run);
 *    a layout 3 value is a run of one, so 3 -> 4 rewrites nothing.
 * 5: D keys live in a column family of their own ("dedup").
 * An older database is brought forward when it is opened
 * (store__rdb_upgrade, rdb_upgrade.c); a newer one is refused. */
#define STORE__LAYOUT_VERSION 5

/* The column family of the dedup entries (D keys) since layout 5. */
#define STORE__CF_DEDUP "dedup"

/* A batch stops taking further requests once its writes staged this many
 * keys (a single request is never split, however many it stages). */
#define STORE__BATCH_KEYS (1u << 18)

/* Member rows kept by the member cache in all (rdb_groups.c). */
#define STORE__MCACHE_ROWS (1u << 19)

typedef struct store__entx store__entx;
typedef struct store__run store__run;
typedef struct store__ov store__ov;
typedef struct store__mc store__mc;
typedef struct store__md store__md;

/* A staged write: key and value live in the scratch arena. */
typedef struct store__op {
    const char *key, *val;
    size_t klen, vlen;
    size_t order;                  /* staging order */
    bool del;
} store__op;

typedef struct store__group {
    mailbox *mb;
    mail_chain chain;
} store__group;

typedef struct store__rdb {
    store base;
    char *path;                    /* DATA/rocksdb */
    size_t max_batch;
    size_t ent_max;                /* id cache entries kept between batches */
    bool shm_log;                  /* RocksDB's LOG is in /dev/shm */

    rocksdb_t *db;
    rocksdb_column_family_handle_t *cf_main;  /* "default": every family but D */
    rocksdb_column_family_handle_t *cf_dedup; /* STORE__CF_DEDUP */
    bool dedup_cf;                 /* D keys are in cf_dedup (layout >= 5);
                                      false while an older layout upgrades */
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_writeoptions_t *wo;    /* batches: synced if cfg->sync */
    rocksdb_writeoptions_t *wo_lazy; /* housekeeping (purges): not synced */
    rocksdb_readoptions_t *ro;     /* point reads */
    rocksdb_writebatch_t *wb;      /* the batch handed to RocksDB */

    /* Hand-over from submitters: guarded by mu. */
    mailbox in;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool pending, stopping, held;

    /* Store thread only. */
    arena scratch;                 /* keys, values, decodes of one batch */
    store__ov *overlay;            /* what the batch staged, by key (uthash) */
    store__ov *prefetched;         /* dedup answers read ahead of the batch's
                                      writes (store__prefetch), by key */
    store__op *ops;                /* the batch's staged writes */
    size_t n_ops, ops_cap;
    uint64_t now;                  /* ts of the batch being executed */
    uint64_t last_ts;
    bool failing;                  /* the last batch write failed */
    uint64_t reopen_at;            /* monotonic ms of the last reopen attempt */
    uint64_t err_logged_at;        /* monotonic ms of the last failed-batch log */
    store__entx *ents;             /* id cache (uthash) */
    store__entx *lru_first, *lru_last;
    size_t n_ents;
    store__run *runs;              /* the runs (M, I) the batch is building */
    size_t run_elems;              /* elements in them */
    uint64_t num_last;             /* the last number the id map gave out */
    uint64_t num_last_disk;        /* ... as stored (num_last before the batch) */
    store__mc *mcache;             /* member cache of groups (uthash, rdb_groups.c) */
    store__mc *mc_first, *mc_last; /* its LRU list, most recent first */
    size_t mc_rows;                /* member rows it holds */
    store__md *mdelta;             /* membership changes staged by this batch, by
                                      group (uthash in scratch, rdb_groups.c) */
    store_req **reqs;              /* the requests taken from `in` */
    size_t reqs_cap;
    store__group *groups;          /* completions per reply_to mailbox */
    size_t n_groups, groups_cap;

    _Atomic uint64_t st_batches, st_writes, st_reads, st_failed;
} store__rdb;

/* Tests: while held, the store thread takes nothing from its mailbox, so
 * requests submitted meanwhile are executed as one batch on release. */
void store__rdb_hold(store *s, bool hold);

/* ---- helpers of rocksdb.c used by the ops ---- */

/* Set r's status and a formatted detail. */
void store__fail(store_req *r, pl_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Replace the line breaks of a RocksDB message with spaces, in place. */
void store__oneline(char *s);

/* A protobuf-c allocator that allocates from a (no frees). */
ProtobufCAllocator store__allocator(arena *a);

/*
 * Point read of a record, decoded into arena a.  through_batch also sees
 * what the batch being built staged (for the families rocksdb.c keeps in
 * its batch overlay: tenants, users, dedup entries, read positions,
 * groups, members and friends).  Returns 1 and *out if found, 0 if not,
 * -1 with r failed (PL_UNAVAILABLE or PL_INTERNAL) on error.
 */
int store__get(store__rdb *s, store_req *r, bool through_batch, const store__key *k,
               const ProtobufCMessageDescriptor *d, arena *a, void **out);

/* Decode a record from bytes into arena a; NULL with r failed
 * (PL_INTERNAL) if they are not one. */
void *store__decode(store_req *r, const ProtobufCMessageDescriptor *d, arena *a, const char *v,
                    size_t n);

/*
 * Point reads of n keys (keys[i], klens[i]) with RocksDB's MultiGet, in
 * chunks; through_batch also sees the batch overlay.  For each key
 * vals[i] is its value copied into arena a (vlens[i] its length), or NULL
 * if the key does not exist.  With a NULL arena values are not copied:
 * vals[i] is then a non-NULL dummy for keys that exist.  Returns 0, or -1
 * with r failed (PL_UNAVAILABLE) on a read error.
 */
int store__get_many(store__rdb *s, store_req *r, bool through_batch, const char *const *keys,
                    const size_t *klens, size_t n, arena *a, const char **vals, size_t *vlens);

/* A record packed into the scratch arena (*n bytes). */
const uint8_t *store__pack(store__rdb *s, const void *msg, size_t *n);

/* Stage a put of a record, of raw bytes, or a delete in the batch.  Raw
 * bytes must stay valid until the batch ends (scratch arena or static). */
void store__put(store__rdb *s, const store__key *k, const void *msg);
void store__put_raw(store__rdb *s, const store__key *k, const char *v, size_t n);
void store__del(store__rdb *s, const store__key *k);

/* An iterator over keys in [lo, hi); free with store__iter_free. */
typedef struct store__iter {
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ro;
} store__iter;
void store__iter_open(store__rdb *s, store__iter *it, const store__key *lo, const store__key *hi);
/* Close; returns -1 with r failed if the iteration hit an error. */
int store__iter_close(store__iter *it, store_req *r);

/*
 * The id cache (rocksdb.c): for a (tenant, user) or (tenant,
 * conversation) its number in the id map (K) and the last number of its
 * key range.  An entry is always "disk plus what the current batch
 * staged", like everything the store thread caches: numbers and counters
 * are given out from it, the keys they number are staged in the same
 * batch, entries are evicted only between batches and a failed batch
 * drops them all.  Pointers to entries stay valid until the batch ends.
 */
typedef struct store__ent {
    uint64_t num;                  /* 0: none given out yet, so no M, I, D or R
                                      key of it exists */
    uint64_t last;                 /* the last seq (conversation, M) or useq
                                      (user, I) numbered; valid if has_last */
    bool has_last;
    bool exists;                   /* users: its U record is known to exist (users
                                      are never deleted) */
} store__ent;

/* The entry of user (kind STORE__NUM_USER) or conversation
 * (STORE__NUM_CONV) id of tenant t, loaded if needed; NULL with r failed
 * on a read error. */
store__ent *store__ent_get(store__rdb *s, store_req *r, const char *t, char kind, const char *id);
/* The same for n ids at once (one MultiGet for those not cached): out[i]
 * for ids[i].  Returns 0, or -1 with r failed. */
int store__ents_get(store__rdb *s, store_req *r, const char *t, char kind, const char *const *ids,
                    size_t n, store__ent **out);
/* The last number of e's range in family STORE__K_MSG (a conversation's
 * seq) or STORE__K_INBOX (a user's useq), loaded by a reverse seek if not
 * known; the caller stores a new last number through the pointer.  NULL
 * with r failed on a read error. */
uint64_t *store__ent_last(store__rdb *s, store_req *r, store__ent *e, char family);
/*
 * Runs.  A batch does not write one M key per message or one I key per
 * inbox entry: what it appends to one conversation or one inbox becomes
 * one run (records.proto Run), keyed by the number of its last element,
 * written when the batch is (or earlier, once it holds STORE__RUN_ELEMS
 * elements or STORE__RUN_BYTES bytes).  Runs are written once and never
 * changed; a conversation's or inbox's runs cover its numbers without gaps
 * or overlaps, so the key of the last run is the last number.
 *
 * Add element v (a packed Msg for STORE__K_MSG, Entry for STORE__K_INBOX)
 * numbered num to the run of e, whose number is given out; num must follow
 * the run's last element (the caller takes it from e->last).  v must stay
 * valid until the batch ends.
 */
#define STORE__RUN_ELEMS 128
#define STORE__RUN_BYTES (32u << 10)
void store__run_add(store__rdb *s, store__ent *e, char family, uint64_t num, const uint8_t *v,
                    size_t n);

/* The elements of a run value v[0..n): *count of them, elems[i] and
 * lens[i] in arena a (pointing into v).  0, or -1 if v is malformed. */
int store__run_split(arena *a, const char *v, size_t n, const char ***elems, size_t **lens,
                     size_t *count);

/* Forget every entry (a failed batch, a reopen, an upgrade). */
void store__ent_drop_all(store__rdb *s);
/* The id cache's entry for (kind, id) of tenant t, or NULL if it is not
 * cached; never reads. */
store__ent *store__ent_cached(store__rdb *s, const char *t, char kind, const char *id);

/* e's number, given out now (staging its K record) if it has none: write
 * ops only, once nothing can fail any more. */
uint64_t store__ent_num(store__rdb *s, store__ent *e);

/* ---- rocksdb.c, for the layout upgrades ---- */

/* Stage the layout version (key V). */
void store__meta_stage(store__rdb *s, uint32_t version);
/* Write everything staged so far as one synced batch (with the last
 * number given out), then start afresh (overlay, scratch).  Returns 0, or
 * -1 with r failed. */
int store__rdb_write_staged(store__rdb *s, store_req *r);

/* ---- rdb_upgrade.c ---- */

/* Bring a database of layout `from` (older than STORE__LAYOUT_VERSION)
 * forward, at open, before the store thread starts; on failure writes a
 * one-line reason into err and returns -1. */
int store__rdb_upgrade(store__rdb *s, uint32_t from, char *err, size_t errlen);

/* ---- rdb_groups.c, called by rocksdb.c ---- */

/* Drop the whole member cache (a failed batch, a reopen, close). */
void store__mcache_drop_all(store__rdb *s);
/* Forget the batch's membership changes (its scratch arena goes next). */
void store__mdelta_clear(store__rdb *s);

/* ---- rdb_ops.c ---- */

bool store__is_write(store_op op);
/* The dedup key a write will read: true with *k if r is a message append
 * with a cmid whose sender's number is in the id cache. */
bool store__append_dedup_key(store__rdb *s, const store_req *r, store__key *k);
/* Validate, read what is needed, stage the writes and set the outputs. */
void store__exec_write(store__rdb *s, store_req *r);
/* Run a read op against the committed state. */
void store__exec_read(store__rdb *s, store_req *r);

/* ---- rocksdb.c: operations ops ---- */

/* STORE_PROBE: stage the layout version again. */
void store__op_probe(store__rdb *s, store_req *r);
/* STORE_CHECKPOINT: a RocksDB checkpoint into r->query. */
void store__op_checkpoint(store__rdb *s, store_req *r);

#endif
