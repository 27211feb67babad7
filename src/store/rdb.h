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
 * 2: groups, channels, friends and home lists (G P J C L F H); a version 1
 * database gets the home rows of its existing 1:1 conversations when it
 * is first opened (store__rdb_upgrade). */
#define STORE__LAYOUT_VERSION 2

/* A batch stops taking further requests once its writes staged this many
 * keys (a single request is never split, however many it stages). */
#define STORE__BATCH_KEYS (1u << 18)

/* Member rows kept by the member cache in all (rdb_groups.c). */
#define STORE__MCACHE_ROWS (1u << 19)

typedef struct store__ctr store__ctr;
typedef struct store__ov store__ov;
typedef struct store__mc store__mc;
typedef struct store__md store__md;

/* A staged write: key and value live in the scratch arena. */
typedef struct store__op {
    const char *key, *val;
    size_t klen, vlen;
    size_t order;                  /* staging order, to keep the sort stable */
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
    size_t ctr_max;                /* counter cache entries kept between batches */
    bool shm_log;                  /* RocksDB's LOG is in /dev/shm */

    rocksdb_t *db;
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
    store__op *ops;                /* the batch's staged writes */
    size_t n_ops, ops_cap;
    uint64_t now;                  /* ts of the batch being executed */
    uint64_t last_ts;
    bool failing;                  /* the last batch write failed */
    uint64_t reopen_at;            /* monotonic ms of the last reopen attempt */
    uint64_t err_logged_at;        /* monotonic ms of the last failed-batch log */
    store__ctr *ctrs;              /* counter cache (uthash) */
    store__ctr *lru_first, *lru_last;
    size_t n_ctrs;
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
 * The last number assigned in the range of keys `prefix` + 8-byte number
 * (a conversation's messages, a user's inbox), from the cache or loaded
 * by a reverse seek.  The caller stores the new last number through the
 * pointer, which stays valid until the batch ends.  NULL with r failed on
 * a read error.
 */
uint64_t *store__counter(store__rdb *s, store_req *r, const store__key *prefix);

/* The counter's cached value if it is in the cache (without loading it or
 * touching the LRU order), else NULL. */
const uint64_t *store__counter_peek(store__rdb *s, const store__key *prefix);
/* Enter a counter found by the caller's own read of the committed state
 * (reads only, never while a batch is being built); kept if cached. */
void store__counter_prime(store__rdb *s, const store__key *prefix, uint64_t last);

/* ---- rdb_groups.c, called by rocksdb.c ---- */

/* Drop the whole member cache (a failed batch, a reopen, close). */
void store__mcache_drop_all(store__rdb *s);
/* Forget the batch's membership changes (its scratch arena goes next). */
void store__mdelta_clear(store__rdb *s);

/* ---- rdb_ops.c ---- */

bool store__is_write(store_op op);
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
