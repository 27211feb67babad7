/*
 * rocksdb.c - the embedded store: RocksDB behind one thread, with group
 * commit.
 *
 * Threads.  Submitters (any thread) post requests to the store's mailbox;
 * its wake function signals the store thread (mutex + condition variable).
 * The store thread alone touches the database and the caches below.  One
 * loop iteration takes everything posted so far and executes it in batches
 * (store__rdb_batch):
 *
 *     take ──> dedup keys of the batch's appends read in one MultiGet
 *              (store__prefetch)
 *          ──> writes: validate, read through the batch, stage into ONE
 *              write batch; later writes of the batch see earlier ones
 *              (numbers and consecutive seqs from the id cache; dedup
 *              entries, users, tenants, read positions from the batch
 *              overlay) (and membership changes per group, for the member
 *              cache)
 *          ──> one rocksdb write, WAL synced (cfg->sync)
 *          ──> reads: against the committed state
 *          ──> completions: one chain per reply_to mailbox
 *
 * A batch holds at most max_batch writes; reads ride along with the writes
 * around them.  A batch also stops taking requests once its writes staged
 * STORE__BATCH_KEYS keys (a group message stages one inbox entry per
 * member), but one request is never split: adding 100,000 members is one
 * write batch, one synced write and one reply.  Staged writes are handed
 * to RocksDB sorted by key; the memtable finds each insert's place from
 * the last insert with the same 9-byte prefix (store__fill_batch,
 * store__rdb_options).
 *
 * Failures.  If the batch write fails, every write of the batch fails with
 * PL_UNAVAILABLE, nothing is applied (RocksDB writes a batch atomically)
 * and the id cache is dropped, so numbers are reloaded from what is on
 * disk; the overlay only ever lives for one batch.  RocksDB then
 * refuses writes until reopened, so the next batches reopen it, at most
 * once a second, until that succeeds (store__rdb_reopen):
 *
 *     healthy ──a batch write fails──> failing (writes fail, reads work)
 *        ^                                  │ next batch, 1 s after the
 *        │ rocksdb_open succeeds            v last attempt
 *        └──────────────────────────── reopening ──open fails──> closed
 *                                           ^                      │
 *                                           └─── next batch, 1 s ──┘
 *
 *     closed: no database handle; every request gets PL_UNAVAILABLE.
 *
 * RocksDB's own info LOG goes to /dev/shm, not the data disk (see
 * store__rdb_options for why).
 *
 * Key layout.  Keys are a family byte and components: strings end with a
 * NUL (a C string cannot contain one, so components never run into each
 * other and one id's range never overlaps another's), numbers are 8 bytes
 * big-endian so ranges sort numerically (keys.h).  Values are the
 * protobuf records of records.proto.
 *
 *   V                          Meta    layout version (STORE__LAYOUT_VERSION)
 *   T tenant                   Tenant
 *   U tenant user              User
 *   N tenant lname user        (empty) name index: lname is the user's name,
 *                              ASCII-lowercased, cut to 64 bytes; exists
 *                              exactly while U has that name
 *   K tenant kind id           Num     the id map: the number of a user
 *                              (kind "u") or a conversation (kind "c") of
 *                              the tenant, given out the first time one
 *                              of its M, I, D or R keys is written
 *   K                          Num     the last number given out
 *   M conv# seq                Run of Msg: the messages seq - n + 1 ..
 *                              seq; seqs are 1, 2, 3... gapless per conv
 *   I user# useq               Run of Entry: useqs likewise, gapless per
 *                              user; a message entry points at an
 *                              existing message (conversation id, seq)
 *   D from# cmid               Dedup   the result of the first append with
 *                              this cmid; written in the same batch as it
 *   R user# conv#              ReadPos only ever raised; a message append
 *                              raises the sender's to the message's seq
 *   X jti                      Revoked purged after expires_at
 *   G tenant group             Group   a group or channel, with its member
 *                              count; kept, marked disbanded, after a
 *                              disband, so the id is never reused
 *   P tenant group user        Member  role, joined_at: the member list
 *   J tenant user group        Joined  kind, role, joined_at: the user's
 *                              groups; exists exactly while P does
 *   C tenant group             (empty) channel index: exists while the
 *                              group is a channel and not disbanded
 *   L tenant lname group       (empty) channel name index (lname as for N),
 *                              exists exactly while C does
 *   F tenant user other        Friend  state from user's side, since; the
 *                              rows (user, other) and (other, user) exist
 *                              together or not at all
 *   H tenant user conv         HomeDm  peer, since: a 1:1 conversation of
 *                              the user's home list, written in the batch
 *                              of the conversation's first message (seq 1)
 *   S tenant user              Seen    when the user's last device went
 *                              offline (presence's last seen)
 *
 * A group's conversation is "g:" + id (its messages under M), a 1:1's is
 * "dm:a:b"; the chat layer builds both.
 *
 * Column families (layout 5).  The D keys are in a column family of their
 * own (STORE__CF_DEDUP), everything else in RocksDB's "default"; one
 * write batch spans both, so a message and its dedup entry are still
 * written atomically.  Every append reads its dedup key, and that read
 * almost always misses; a miss checks the filter of every level-0 file
 * and of one file per level that could hold the key.  With all five keys
 * of a message in one family, those files multiply with the data (over a
 * minute at 100,000 msg/s the dedup read grew to 18% of the server's
 * CPU); in a family of their own a miss checks only the D keys' files
 * (after 30 s at 100,000 msg/s: 2 files against 3 for everything else;
 * docs/benchmarks.md).
 * store__cf picks the family of a key.
 *
 * Numbers (conv#, user#; layout 3).  Every message writes about five keys
 * (M, two I, D, R), and inserting them into the memtable's skip list is
 * most of the store thread's work: each insert compares its key with
 * others a few dozen times (more in Debian's build of RocksDB, which keeps
 * its assertions).  With strings, keys of one tenant share long prefixes
 * ("M default\0dm:b1a2b3c_"), so every comparison reads far into both
 * keys; and a range's prefix has no fixed length, so RocksDB cannot keep
 * an insert position per conversation or inbox.  So the hot families name
 * the conversation or user by an 8-byte number from the id map: their keys
 * are short, differ early, and the family byte and number (9 bytes, keys.h
 * STORE__NUM_PREFIX) are the prefix RocksDB keeps an insert position for.
 * Numbers are global (not per tenant), start at 1 and are never reused;
 * a user or conversation gets one the first time it needs a key, in the
 * batch that writes that key.  A number's K row, the last number given
 * out (K alone) and the keys it numbers are all staged in one batch.
 *
 * Runs (layout 4).  What one batch appends to one conversation or one
 * inbox is written as one value, a run, under the number of its last
 * element (records.proto Run; at most STORE__RUN_ELEMS elements or
 * STORE__RUN_BYTES bytes, else several).  A group message to 2,000
 * members was 2,000 memtable inserts; a batch of 200 such messages is
 * now 2,000 in all, one per inbox, and a busy 1:1 conversation's messages
 * of a batch are one insert too.  Runs are written once and never
 * changed, so no write reads one.  A range's runs cover its numbers
 * without gaps or overlaps: the last key's number is the last seq or
 * useq, and the run holding number k is the first whose key is k or
 * more (one seek).  A run of one is the record itself.
 *
 * The id cache.  For each (tenant, user) and (tenant, conversation) the
 * store thread touched recently it keeps the number (0: none yet, so no
 * numbered key of it exists: a sender without one has no dedup entries),
 * the last seq or useq of its M or I range (found by one reverse seek when
 * first needed: there are no counter keys), and for users whether the U
 * record is known to exist (users are never deleted, so a dm's recipient
 * is checked once, not per message).  uthash keyed by the K key, least
 * recently used entries evicted between batches beyond cfg->counter_cache
 * entries.  Because numbers and seqs are given out from the cache and the
 * keys they number are staged in the same batch, the cache is always
 * "what is on disk plus what the current batch staged".  Eviction happens
 * only between batches, when the two agree.
 *
 * Member cache.  A group message (kind "group") goes to every member's
 * inbox, so its recipients are read per message; rdb_groups.c keeps the
 * member lists of recently used groups in memory (bounded by
 * STORE__MCACHE_ROWS rows, least recently used dropped).  A cached list is
 * always "disk plus what the current batch staged": a membership change
 * drops the group's entry, and a list loaded during a batch is the rows on
 * disk merged with the batch's changes to that group (s->mdelta).  A
 * failed batch drops the whole cache, like the id cache.
 */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "store/pack.h"
#include "store/rdb.h"
#include "store/records.pb-c.h"

#define uthash_malloc(sz) pl_malloc(sz)
#define uthash_free(ptr, sz) pl_free(ptr)
#include <uthash.h>

#define STORE__BLOCK_CACHE (64u << 20)

/* Commit metrics (core/metrics.h), registered by store__rdb_open. */
static metric *m_commit_seconds, *m_batch_writes;

/* An entry of the id cache: the public part, and its K key. */
struct store__entx {
    store__ent e;
    UT_hash_handle hh;
    store__entx *prev, *next;  /* LRU list, most recent first */
    store__run *run;           /* the run the batch is building for it, if any */
    size_t klen;
    char key[];
};

/* A run being built (scratch): its elements, packed, in order. */
typedef struct store__piece {
    struct store__piece *next;
    const uint8_t *v;
    size_t n;
} store__piece;

struct store__run {
    store__run *next;          /* s->runs */
    store__entx *owner;
    char family;               /* STORE__K_MSG or STORE__K_INBOX */
    bool staged;
    uint64_t last;             /* the number of the last element */
    size_t count, bytes;       /* elements; size of the value with its tags */
    store__piece *first, *tail;
};

/* The tag of Run.elems: field 15, length-delimited. */
#define STORE__RUN_TAG 0x7a

/*
 * The batch overlay: the latest value the batch being built staged for
 * each key of a family that writes read back (tenants, users, dedup
 * entries, read positions, groups, members, friends), so later writes of
 * the batch see it, and the staged write it is, so a second write of the
 * key in the batch replaces the first instead of adding a memtable entry
 * (a sender's read position, raised by each of its messages).  Entries
 * live in the scratch arena; the table is cleared after every batch.
 * Messages and inbox entries are never read back: their numbers come from
 * the id cache.
 */
struct store__ov {
    UT_hash_handle hh;
    const char *val;           /* NULL: deleted */
    size_t vlen;
    size_t op;                 /* index of its write in s->ops */
    size_t klen;
    char key[];
};

static bool store__readback(const store__key *k)
{
    switch (k->b[0]) {
    case STORE__K_TENANT:
    case STORE__K_USER:
    case STORE__K_DEDUP:
    case STORE__K_READ:
    case STORE__K_GROUP:
    case STORE__K_MEMBER:
    case STORE__K_FRIEND:
        return true;
    default:
        return false;
    }
}

/* ---- small helpers ---- */

void store__fail(store_req *r, pl_status st, const char *fmt, ...)
{
    r->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
}

/* RocksDB messages may span lines; our reasons never do. */
void store__oneline(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

static void *store__arena_alloc(void *data, size_t n) { return arena_alloc(data, n); }
static void store__arena_nofree(void *data, void *p) { (void)data, (void)p; }

ProtobufCAllocator store__allocator(arena *a)
{
    return (ProtobufCAllocator){store__arena_alloc, store__arena_nofree, a};
}

/* ---- reads and staged writes ---- */

void *store__decode(store_req *r, const ProtobufCMessageDescriptor *d, arena *a, const char *v,
                    size_t n)
{
    ProtobufCAllocator al = store__allocator(a);
    void *m = protobuf_c_message_unpack(d, &al, n, (const uint8_t *)v);
    if (!m) store__fail(r, PL_INTERNAL, "corrupt %s record", d->short_name);
    return m;
}

/* Keys are built from validated ids and always fit; a key that did not
 * would alias a shorter one, so it is a bug worth stopping for. */
static void store__key_check(const store__key *k)
{
    if (k->overflow) {
        log_error("store: key of family %c overflowed", k->b[0]);
        abort();
    }
}

/* The column family of a key: D keys have their own since layout 5. */
static rocksdb_column_family_handle_t *store__cf(const store__rdb *s, const char *key)
{
    return s->dedup_cf && key[0] == STORE__K_DEDUP ? s->cf_dedup : s->cf_main;
}

int store__get(store__rdb *s, store_req *r, bool through_batch, const store__key *k,
               const ProtobufCMessageDescriptor *d, arena *a, void **out)
{
    store__key_check(k);
    if (through_batch) {
        /* What the batch staged, else what was read ahead for it. */
        store__ov *o = NULL;
        if (s->overlay) HASH_FIND(hh, s->overlay, k->b, k->len, o);
        if (!o && s->prefetched) HASH_FIND(hh, s->prefetched, k->b, k->len, o);
        if (o) {
            if (!o->val) return 0;
            return (*out = store__decode(r, d, a, o->val, o->vlen)) ? 1 : -1;
        }
    }
    char *err = NULL;
    size_t n = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, store__cf(s, k->b), k->b, k->len, &n, &err);
    if (err) {
        store__oneline(err);
        store__fail(r, PL_UNAVAILABLE, "read: %s", err);
        rocksdb_free(err);
        return -1;
    }
    if (!v) return 0;
    *out = store__decode(r, d, a, v, n);
    rocksdb_free(v);
    return *out ? 1 : -1;
}

/* The overlay's entry for a key: 1 with *v (NULL: deleted) and *n if the
 * batch staged it, else 0. */
static int store__ov_find(store__rdb *s, const char *key, size_t klen, const char **v, size_t *n)
{
    if (!s->overlay) return 0;
    store__ov *o = NULL;
    HASH_FIND(hh, s->overlay, key, klen, o);
    if (!o) return 0;
    *v = o->val;
    *n = o->vlen;
    return 1;
}

/* Keys per MultiGet call: bounds the arrays RocksDB fills at once. */
#define STORE__MULTIGET_CHUNK 1024

int store__get_many(store__rdb *s, store_req *r, bool through_batch, const char *const *keys,
                    const size_t *klens, size_t n, arena *a, const char **vals, size_t *vlens)
{
    static const char present[] = "";
    const char *ck[STORE__MULTIGET_CHUNK];
    const rocksdb_column_family_handle_t *ccf[STORE__MULTIGET_CHUNK];
    size_t ckl[STORE__MULTIGET_CHUNK], idx[STORE__MULTIGET_CHUNK];
    char *cv[STORE__MULTIGET_CHUNK], *ce[STORE__MULTIGET_CHUNK];
    size_t cvl[STORE__MULTIGET_CHUNK];
    int rc = 0;
    size_t i = 0;
    while (i < n) {
        size_t m = 0;
        for (; i < n && m < STORE__MULTIGET_CHUNK; i++) {
            const char *v;
            size_t vn;
            vals[i] = NULL;
            vlens[i] = 0;
            if (through_batch && store__ov_find(s, keys[i], klens[i], &v, &vn)) {
                if (v) {
                    vals[i] = !a ? present : vn ? arena_memdup(a, v, vn) : arena_alloc(a, 1);
                    vlens[i] = vn;
                }
                continue;
            }
            ck[m] = keys[i];
            ccf[m] = store__cf(s, keys[i]);
            ckl[m] = klens[i];
            idx[m++] = i;
        }
        if (!m) continue;
        rocksdb_multi_get_cf(s->db, s->ro, ccf, m, ck, ckl, cv, cvl, ce);
        for (size_t j = 0; j < m; j++) {
            if (ce[j]) {
                if (rc == 0) {
                    store__oneline(ce[j]);
                    store__fail(r, PL_UNAVAILABLE, "read: %s", ce[j]);
                }
                rc = -1;
                rocksdb_free(ce[j]);
            }
            if (cv[j]) {
                vals[idx[j]] = !a       ? present
                               : cvl[j] ? arena_memdup(a, cv[j], cvl[j])
                                        : arena_alloc(a, 1);
                vlens[idx[j]] = cvl[j];
                rocksdb_free(cv[j]);
            }
        }
    }
    return rc;
}

const uint8_t *store__pack(store__rdb *s, const void *msg, size_t *n)
{
    const ProtobufCMessage *m = msg;
    const uint8_t *fast = store__pack_fast(m, &s->scratch, n);
    if (fast) return fast;
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *v = arena_alloc(&s->scratch, *n ? *n : 1);
    protobuf_c_message_pack(m, v);
    return v;
}

void store__put(store__rdb *s, const store__key *k, const void *msg)
{
    size_t n;
    const uint8_t *v = store__pack(s, msg, &n);
    store__put_raw(s, k, (const char *)v, n);
}

/*
 * Staged writes are kept as a list and handed to RocksDB sorted by key
 * (stable on the staging order, so of two writes to one key the later
 * still wins; for the read-back families the second write replaces the
 * first in place, see the overlay).  The memtable keeps an insert
 * position per 9-byte key prefix (store__rdb_options) and starts each
 * insert from the last one with the same prefix; in key order every
 * position it starts from lies before the key and was placed after
 * everything the batch inserted before it, so it stays close.  Out of
 * order (a run staged after keys that sort before it, say) a position
 * can be far behind the new key, and the memtable then walks every node
 * in between: a 100,000-member disband took seconds instead of half of
 * one.
 */
static void store__stage(store__rdb *s, const store__key *k, const char *v, size_t n, bool del)
{
    store__key_check(k);
    store__ov *o = NULL;
    if (store__readback(k)) {
        HASH_FIND(hh, s->overlay, k->b, k->len, o);
        if (o) {
            store__op *op = &s->ops[o->op];
            op->val = v;
            op->vlen = n;
            op->del = del;
            o->val = v;
            o->vlen = n;
            return;
        }
        o = arena_alloc(&s->scratch, sizeof(*o) + k->len);
        memcpy(o->key, k->b, k->len);
        o->klen = k->len;
        o->val = v;
        o->vlen = n;
        o->op = s->n_ops;
        HASH_ADD_KEYPTR(hh, s->overlay, o->key, o->klen, o);
    }
    if (s->n_ops == s->ops_cap) {
        s->ops_cap = s->ops_cap ? 2 * s->ops_cap : 1024;
        s->ops = pl_realloc(s->ops, s->ops_cap * sizeof(*s->ops));
    }
    store__op *op = &s->ops[s->n_ops];
    op->order = s->n_ops++;
    op->key = o ? o->key : arena_memdup(&s->scratch, k->b, k->len);
    op->klen = k->len;
    op->val = v;
    op->vlen = n;
    op->del = del;
}

/* Fill the write batch from the staged writes, in key order. */
static int store__op_cmp(const void *a, const void *b)
{
    const store__op *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    if (c) return c;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return x->order < y->order ? -1 : 1;
}

static void store__fill_batch(store__rdb *s)
{
    rocksdb_writebatch_clear(s->wb);
    if (s->n_ops > 1) qsort(s->ops, s->n_ops, sizeof(*s->ops), store__op_cmp);
    for (size_t i = 0; i < s->n_ops; i++) {
        store__op *op = &s->ops[i];
        rocksdb_column_family_handle_t *cf = store__cf(s, op->key);
        if (op->del) rocksdb_writebatch_delete_cf(s->wb, cf, op->key, op->klen);
        else rocksdb_writebatch_put_cf(s->wb, cf, op->key, op->klen, op->val, op->vlen);
    }
}

void store__put_raw(store__rdb *s, const store__key *k, const char *v, size_t n)
{
    store__stage(s, k, v ? v : "", n, false);
}

void store__del(store__rdb *s, const store__key *k) { store__stage(s, k, NULL, 0, true); }

void store__iter_open(store__rdb *s, store__iter *it, const store__key *lo, const store__key *hi)
{
    store__key_check(lo);
    store__key_check(hi);
    it->ro = rocksdb_readoptions_create();
    rocksdb_readoptions_set_iterate_lower_bound(it->ro, lo->b, lo->len);
    rocksdb_readoptions_set_iterate_upper_bound(it->ro, hi->b, hi->len);
    it->it = rocksdb_create_iterator_cf(s->db, it->ro, store__cf(s, lo->b));
}

int store__iter_close(store__iter *it, store_req *r)
{
    char *err = NULL;
    rocksdb_iter_get_error(it->it, &err);
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ro);
    if (!err) return 0;
    store__oneline(err);
    store__fail(r, PL_UNAVAILABLE, "scan: %s", err);
    rocksdb_free(err);
    return -1;
}

/* ---- the id cache ---- */

static store__entx *store__entx_of(store__ent *e)
{
    return (store__entx *)((char *)e - offsetof(store__entx, e));
}

static void store__lru_unlink(store__rdb *s, store__entx *c)
{
    if (c->prev) c->prev->next = c->next; else s->lru_first = c->next;
    if (c->next) c->next->prev = c->prev; else s->lru_last = c->prev;
    c->prev = c->next = NULL;
}

static void store__lru_front(store__rdb *s, store__entx *c)
{
    c->next = s->lru_first;
    c->prev = NULL;
    if (s->lru_first) s->lru_first->prev = c; else s->lru_last = c;
    s->lru_first = c;
}

static void store__ent_remove(store__rdb *s, store__entx *c)
{
    HASH_DEL(s->ents, c);
    store__lru_unlink(s, c);
    pl_free(c);
    s->n_ents--;
}

void store__ent_drop_all(store__rdb *s)
{
    while (s->lru_first) store__ent_remove(s, s->lru_first);
}

static void store__ent_evict(store__rdb *s)
{
    while (s->n_ents > s->ent_max) store__ent_remove(s, s->lru_last);
}

static store__entx *store__ent_find(store__rdb *s, const store__key *k)
{
    store__entx *c = NULL;
    HASH_FIND(hh, s->ents, k->b, k->len, c);
    if (c && c != s->lru_first) {
        store__lru_unlink(s, c);
        store__lru_front(s, c);
    }
    return c;
}

static store__entx *store__ent_add(store__rdb *s, const store__key *k, uint64_t num)
{
    store__entx *c = pl_calloc(1, sizeof(*c) + k->len);
    memcpy(c->key, k->b, k->len);
    c->klen = k->len;
    c->e.num = num;
    HASH_ADD_KEYPTR(hh, s->ents, c->key, c->klen, c);
    store__lru_front(s, c);
    s->n_ents++;
    return c;
}

/* The number in a K record (0 if it holds none). */
static uint64_t store__num_decode(const char *v, size_t n)
{
    Parley__Rec__Num *rec = parley__rec__num__unpack(NULL, n, (const uint8_t *)v);
    uint64_t num = rec ? rec->num : 0;
    if (rec) parley__rec__num__free_unpacked(rec, NULL);
    return num;
}

/* Build the id map key of (t, kind, id) in k; its cache entry, if any. */
static store__entx *store__ent_lookup(store__rdb *s, store__key *k, const char *t, char kind, const char *id)
{
    store__k_num(k, t, kind, id);
    store__key_check(k);
    return store__ent_find(s, k);
}

store__ent *store__ent_cached(store__rdb *s, const char *t, char kind, const char *id)
{
    store__key k;
    store__entx *c = store__ent_lookup(s, &k, t, kind, id);
    return c ? &c->e : NULL;
}

store__ent *store__ent_get(store__rdb *s, store_req *r, const char *t, char kind, const char *id)
{
    store__key k;
    store__entx *c = store__ent_lookup(s, &k, t, kind, id);
    if (c) return &c->e;
    char *err = NULL;
    size_t n = 0;
    char *v = rocksdb_get_cf(s->db, s->ro, store__cf(s, k.b), k.b, k.len, &n, &err);
    if (err) {
        store__oneline(err);
        store__fail(r, PL_UNAVAILABLE, "read: %s", err);
        rocksdb_free(err);
        return NULL;
    }
    uint64_t num = v ? store__num_decode(v, n) : 0;
    rocksdb_free(v);
    return &store__ent_add(s, &k, num)->e;
}

int store__ents_get(store__rdb *s, store_req *r, const char *t, char kind, const char *const *ids,
                    size_t n, store__ent **out)
{
    if (!n) return 0;
    const char **keys = arena_alloc(&s->scratch, n * sizeof(*keys));
    size_t *klens = arena_alloc(&s->scratch, n * sizeof(*klens));
    size_t *idx = arena_alloc(&s->scratch, n * sizeof(*idx));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        store__key k;
        store__k_num(&k, t, kind, ids[i]);
        store__key_check(&k);
        store__entx *c = store__ent_find(s, &k);
        out[i] = c ? &c->e : NULL;
        if (c) continue;
        keys[m] = arena_memdup(&s->scratch, k.b, k.len);
        klens[m] = k.len;
        idx[m++] = i;
    }
    if (!m) return 0;
    const char **vals = arena_alloc(&s->scratch, m * sizeof(*vals));
    size_t *vlens = arena_alloc(&s->scratch, m * sizeof(*vlens));
    /* Not through the batch: numbers given out by it are in the cache. */
    if (store__get_many(s, r, false, keys, klens, m, &s->scratch, vals, vlens)) return -1;
    for (size_t j = 0; j < m; j++) {
        store__key k = {.len = klens[j]};
        memcpy(k.b, keys[j], klens[j]);
        /* An id listed twice was added by its first occurrence. */
        store__entx *c = NULL;
        HASH_FIND(hh, s->ents, k.b, k.len, c);
        if (!c) c = store__ent_add(s, &k, vals[j] ? store__num_decode(vals[j], vlens[j]) : 0);
        out[idx[j]] = &c->e;
    }
    return 0;
}

uint64_t *store__ent_last(store__rdb *s, store_req *r, store__ent *e, char family)
{
    if (e->has_last) return &e->last;
    e->last = 0;
    if (e->num) {
        store__key prefix, hi;
        store__key_init(&prefix, family);
        store__key_u64(&prefix, e->num);
        store__key_succ(&prefix, &hi);
        store__iter it;
        store__iter_open(s, &it, &prefix, &hi);
        rocksdb_iter_seek_to_last(it.it);
        if (rocksdb_iter_valid(it.it)) {
            size_t klen = 0;
            const char *k = rocksdb_iter_key(it.it, &klen);
            if (klen == prefix.len + 8) e->last = store__get_u64(k + prefix.len);
        }
        if (store__iter_close(&it, r)) return NULL;
    }
    e->has_last = true;
    return &e->last;
}

uint64_t store__ent_num(store__rdb *s, store__ent *e)
{
    if (e->num) return e->num;
    e->num = ++s->num_last;
    if (!e->has_last) { /* a new number has no keys yet */
        e->has_last = true;
        e->last = 0;
    }
    store__entx *c = store__entx_of(e);
    store__key k = {.len = c->klen};
    memcpy(k.b, c->key, c->klen);
    Parley__Rec__Num rec = PARLEY__REC__NUM__INIT;
    rec.has_num = 1;
    rec.num = e->num;
    store__put(s, &k, &rec);
    return e->num;
}

/* Stage the last number given out, if the batch gave out any. */
static void store__num_last_stage(store__rdb *s)
{
    if (s->num_last == s->num_last_disk) return;
    store__key k;
    store__k_num_last(&k);
    Parley__Rec__Num rec = PARLEY__REC__NUM__INIT;
    rec.has_num = 1;
    rec.num = s->num_last;
    store__put(s, &k, &rec);
}

/* Read the last number given out (0 for none) into s->num_last. */
static int store__num_last_load(store__rdb *s, store_req *r)
{
    store__key k;
    store__k_num_last(&k);
    Parley__Rec__Num *rec = NULL;
    int f = store__get(s, r, false, &k, &parley__rec__num__descriptor, &s->scratch, (void **)&rec);
    if (f < 0) return -1;
    s->num_last = s->num_last_disk = f > 0 ? rec->num : 0;
    return 0;
}

/* ---- runs ---- */

/* Stage a run: its key is the number of its last element.  A run of one
 * is the element itself (a record never begins with the run's tag). */
static void store__run_stage(store__rdb *s, store__run *run)
{
    const uint8_t *v;
    size_t n;
    if (run->count == 1) {
        v = run->first->v;
        n = run->first->n;
    } else {
        uint8_t *buf = arena_alloc(&s->scratch, run->bytes), *p = buf;
        for (store__piece *pc = run->first; pc; pc = pc->next) {
            *p++ = STORE__RUN_TAG;
            p = store__varint_put(p, pc->n);
            memcpy(p, pc->v, pc->n);
            p += pc->n;
        }
        v = buf;
        n = (size_t)(p - buf);
    }
    store__key k;
    store__key_init(&k, run->family);
    store__key_u64(&k, run->owner->e.num);
    store__key_u64(&k, run->last);
    store__put_raw(s, &k, (const char *)v, n);
    run->staged = true;
    run->owner->run = NULL;
    s->run_elems -= run->count;
}

void store__run_add(store__rdb *s, store__ent *e, char family, uint64_t num, const uint8_t *v,
                    size_t n)
{
    store__entx *c = store__entx_of(e);
    store__run *run = c->run;
    size_t add = 1 + store__varint_len(n) + n;
    if (run && (run->count >= STORE__RUN_ELEMS || run->bytes + add > STORE__RUN_BYTES)) {
        store__run_stage(s, run);
        run = NULL;
    }
    if (!run) {
        run = arena_alloc(&s->scratch, sizeof(*run));
        memset(run, 0, sizeof(*run));
        run->owner = c;
        run->family = family;
        run->next = s->runs;
        s->runs = run;
        c->run = run;
    }
    store__piece *pc = arena_alloc(&s->scratch, sizeof(*pc));
    pc->next = NULL;
    pc->v = v;
    pc->n = n;
    if (run->tail) run->tail->next = pc;
    else run->first = pc;
    run->tail = pc;
    run->last = num;
    run->count++;
    run->bytes += add;
    s->run_elems++;
}

/* Stage every run the batch is still building. */
static void store__runs_stage(store__rdb *s)
{
    for (store__run *run = s->runs; run; run = run->next)
        if (!run->staged) store__run_stage(s, run);
    s->runs = NULL;
}

/* The length-delimited element at *p (after its tag): 0 with *e, *en and
 * *p advanced, or -1 if it runs past end. */
static int store__run_elem(const uint8_t **p, const uint8_t *end, const char **e, size_t *en)
{
    uint64_t len = 0;
    for (int shift = 0;; shift += 7) {
        if (*p == end || shift > 63) return -1;
        uint8_t b = *(*p)++;
        len |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
    }
    if (len > (uint64_t)(end - *p)) return -1;
    *e = (const char *)*p;
    *en = (size_t)len;
    *p += len;
    return 0;
}

int store__run_split(arena *a, const char *v, size_t n, const char ***elems, size_t **lens,
                     size_t *count)
{
    const uint8_t *beg = (const uint8_t *)v, *end = beg + n;
    if (n == 0 || beg[0] != STORE__RUN_TAG) {
        *elems = arena_alloc(a, sizeof(**elems));
        *lens = arena_alloc(a, sizeof(**lens));
        (*elems)[0] = v;
        (*lens)[0] = n;
        *count = 1;
        return 0;
    }
    size_t c = 0;
    const char *e;
    size_t en;
    for (const uint8_t *p = beg; p < end; c++)
        if (*p++ != STORE__RUN_TAG || store__run_elem(&p, end, &e, &en)) return -1;
    *elems = arena_alloc(a, c * sizeof(**elems));
    *lens = arena_alloc(a, c * sizeof(**lens));
    const uint8_t *p = beg;
    for (size_t i = 0; i < c; i++) {
        p++;
        store__run_elem(&p, end, &(*elems)[i], &(*lens)[i]);
    }
    *count = c;
    return 0;
}

/* ---- batches ---- */

static void store__group_add(store__rdb *s, store_req *r)
{
    if (!r->reply_to) { /* nobody waits for it (store_submit) */
        if (r->status != PL_OK) log_warn("store: op %d failed: %s", (int)r->op, r->err);
        store_req_free(r);
        return;
    }
    size_t i = 0;
    while (i < s->n_groups && s->groups[i].mb != r->reply_to) i++;
    if (i == s->n_groups) {
        if (s->n_groups == s->groups_cap) {
            s->groups_cap = s->groups_cap ? 2 * s->groups_cap : 16;
            s->groups = pl_realloc(s->groups, s->groups_cap * sizeof(*s->groups));
        }
        s->groups[i].mb = r->reply_to;
        s->groups[i].chain.first = s->groups[i].chain.last = NULL;
        s->n_groups++;
    }
    mail_chain_add(&s->groups[i].chain, &r->mail);
}

/*
 * Open the database with both column families (creating the dedup one in
 * a database of an older layout, which rdb_upgrade.c then fills), and
 * close it.  Everything but the D keys lives in "default".
 */
static rocksdb_t *store__db_open(store__rdb *s, char **e)
{
    const char *names[2] = {"default", STORE__CF_DEDUP};
    const rocksdb_options_t *cfo[2] = {s->opts, s->opts};
    rocksdb_column_family_handle_t *cf[2] = {NULL, NULL};
    rocksdb_t *db = rocksdb_open_column_families(s->opts, s->path, 2, names, cfo, cf, e);
    if (db) {
        s->cf_main = cf[0];
        s->cf_dedup = cf[1];
    }
    return db;
}

static void store__db_close(store__rdb *s)
{
    if (s->cf_main) rocksdb_column_family_handle_destroy(s->cf_main);
    if (s->cf_dedup) rocksdb_column_family_handle_destroy(s->cf_dedup);
    s->cf_main = s->cf_dedup = NULL;
    rocksdb_close(s->db);
    s->db = NULL;
}

/*
 * After a failed write RocksDB refuses all writes until the database is
 * reopened (its C API has no Resume).  So while failing, each batch first
 * tries, at most once a second, to close and reopen it.  While the disk
 * still refuses writes the open fails too, and the store answers every
 * request with PL_UNAVAILABLE until an attempt succeeds.
 */
static void store__rdb_reopen(store__rdb *s)
{
    uint64_t now = clock_mono_ms();
    if (s->reopen_at && now - s->reopen_at < 1000) return;
    s->reopen_at = now;
    if (s->db) store__db_close(s);
    store__ent_drop_all(s);
    store__mcache_drop_all(s);
    char *e = NULL;
    s->db = store__db_open(s, &e);
    if (e) {
        store__oneline(e);
        log_error("store: reopening %s failed: %s", s->path, e);
        rocksdb_free(e);
        s->db = NULL;
        return;
    }
    s->failing = false;
    log_info("store: reopened %s after a failed write", s->path);
}

static void store__rdb_fail_all(store_req **reqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        store__fail(reqs[i], PL_UNAVAILABLE, "store unavailable after a failed write");
}

/* Remember the answer for a key read ahead (v NULL: not found), once. */
static void store__prefetch_keep(store__rdb *s, const char *key, size_t klen,
                                 const rocksdb_pinnableslice_t *v)
{
    store__ov *o = NULL;
    HASH_FIND(hh, s->prefetched, key, klen, o);
    if (o) return; /* a cmid twice in the batch: one answer serves both */
    o = arena_alloc(&s->scratch, sizeof(*o) + klen);
    memcpy(o->key, key, klen);
    o->klen = klen;
    o->val = NULL;
    o->vlen = 0;
    o->op = 0;
    if (v) {
        size_t vn;
        const char *vb = rocksdb_pinnableslice_value(v, &vn);
        o->val = vn ? arena_memdup(&s->scratch, vb, vn) : arena_alloc(&s->scratch, 1);
        o->vlen = vn;
    }
    HASH_ADD_KEYPTR(hh, s->prefetched, o->key, o->klen, o);
}

/*
 * Dedup read-ahead.  Every message append reads its dedup key, and that
 * read almost always misses; a miss walks the dedup family's memtables
 * and files and checks the filter of each file that could hold the key.
 * RocksDB's batched MultiGet makes that walk once for many keys and
 * probes each filter for all of them together.  So before a batch's
 * writes run, the D keys of the appends it may take (up to max_batch
 * writes) are read in one MultiGet, and store__get answers a read through
 * the batch from there when the overlay (what the batch itself staged)
 * has nothing.  The answers hold until the batch's write: this thread is
 * the only writer; they are dropped before the batch's reads run.  An
 * append whose sender's number is not cached, or a key whose read fails,
 * is left to the ordinary read.
 */
static void store__prefetch(store__rdb *s, store_req **reqs, size_t n)
{
    const char *keys[STORE__MULTIGET_CHUNK];
    size_t klens[STORE__MULTIGET_CHUNK];
    size_t m = 0, nw = 0;
    if (!s->dedup_cf) return;
    for (size_t i = 0; i < n && nw < s->max_batch && m < STORE__MULTIGET_CHUNK; i++) {
        if (!store__is_write(reqs[i]->op)) continue;
        nw++;
        store__key k;
        if (!store__append_dedup_key(s, reqs[i], &k)) continue;
        keys[m] = arena_memdup(&s->scratch, k.b, k.len);
        klens[m++] = k.len;
    }
    if (m < 2) return; /* one key: the ordinary read costs the same */
    rocksdb_pinnableslice_t *vals[STORE__MULTIGET_CHUNK];
    char *errs[STORE__MULTIGET_CHUNK];
    rocksdb_batched_multi_get_cf(s->db, s->ro, s->cf_dedup, m, keys, klens, vals, errs, false);
    for (size_t j = 0; j < m; j++) {
        if (errs[j]) rocksdb_free(errs[j]); /* left to the ordinary read */
        else store__prefetch_keep(s, keys[j], klens[j], vals[j]);
        if (vals[j]) rocksdb_pinnableslice_destroy(vals[j]);
    }
}

/*
 * Execute a batch taken from the front of reqs[0..n) and post its
 * completions; returns how many requests it took.  The batch takes writes
 * in order until max_batch of them ran or they staged STORE__BATCH_KEYS
 * keys, and the reads up to the next write it did not take.
 */
static size_t store__rdb_batch(store__rdb *s, store_req **reqs, size_t n)
{
    uint64_t now = clock_wall_ms();
    s->now = now > s->last_ts ? now : s->last_ts;
    s->last_ts = s->now;

    size_t nw = 0, nr = 0;
    if (s->failing) store__rdb_reopen(s);
    if (!s->db) {
        store__rdb_fail_all(reqs, n);
        goto post;
    }
    s->n_ops = 0;
    store__prefetch(s, reqs, n);
    for (size_t i = 0; i < n; i++) {
        if (!store__is_write(reqs[i]->op)) continue;
        if (nw == s->max_batch || s->n_ops + s->run_elems >= STORE__BATCH_KEYS) {
            n = i;
            break;
        }
        store__exec_write(s, reqs[i]);
        nw++;
    }
    if (nw) {
        char *err = NULL;
        store__runs_stage(s);
        store__num_last_stage(s);
        if (s->n_ops > 0) {
            store__fill_batch(s);
            uint64_t t0 = clock_mono_ns();
            rocksdb_write(s->db, s->wo, s->wb, &err);
            metric_observe(m_commit_seconds, clock_mono_ns() - t0);
        }
        metric_observe(m_batch_writes, nw);
        atomic_fetch_add_explicit(&s->st_batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->st_writes, nw, memory_order_relaxed);
        if (err) {
            store__oneline(err);
            uint64_t mono = clock_mono_ms();
            if (!s->failing || mono - s->err_logged_at >= 1000) {
                log_error("store: batch write failed: %s", err);
                s->err_logged_at = mono;
            }
            s->failing = true;
            for (size_t i = 0; i < n; i++) {
                store_req *r = reqs[i];
                if (!store__is_write(r->op) || r->status == PL_BAD_REQUEST) continue;
                store__fail(r, PL_UNAVAILABLE, "store write failed: %s", err);
                r->append.seq = r->append.ts = 0;
                r->append.useqs = NULL;
                r->append.dup = false;
                if (r->op == STORE_MSG_APPEND && r->append.group) {
                    r->append.rcpt = NULL; /* an output for group messages */
                    r->append.n_rcpt = 0;
                }
                r->useqs = NULL;
                r->users_out = NULL;
                r->n_users_out = 0;
            }
            rocksdb_free(err);
            store__ent_drop_all(s);
            store__mcache_drop_all(s);
            s->num_last = s->num_last_disk;
            atomic_fetch_add_explicit(&s->st_failed, 1, memory_order_relaxed);
        } else {
            s->num_last_disk = s->num_last;
        }
    }
    HASH_CLEAR(hh, s->prefetched);
    for (size_t i = 0; i < n; i++) {
        if (store__is_write(reqs[i]->op)) continue;
        store__exec_read(s, reqs[i]);
        nr++;
    }
    atomic_fetch_add_explicit(&s->st_reads, nr, memory_order_relaxed);
    store__ent_evict(s);
    HASH_CLEAR(hh, s->overlay);
    store__mdelta_clear(s);
    arena_free(&s->scratch);

post:
    /* Group by destination; from here on a posted request is not ours. */
    s->n_groups = 0;
    for (size_t i = 0; i < n; i++) store__group_add(s, reqs[i]);
    for (size_t i = 0; i < s->n_groups; i++) mail_chain_post(&s->groups[i].chain, s->groups[i].mb);
    return n;
}

/* Execute everything taken from the mailbox, batch after batch. */
static void store__rdb_run(store__rdb *s, mail *m)
{
    size_t n = 0;
    for (; m; m = m->next) {
        if (n == s->reqs_cap) {
            s->reqs_cap = s->reqs_cap ? 2 * s->reqs_cap : 256;
            s->reqs = pl_realloc(s->reqs, s->reqs_cap * sizeof(*s->reqs));
        }
        s->reqs[n++] = (store_req *)((char *)m - offsetof(store_req, mail));
    }
    for (size_t i = 0; i < n;) i += store__rdb_batch(s, s->reqs + i, n - i);
}

static void *store__rdb_main(void *arg)
{
    store__rdb *s = arg;
    pthread_setname_np(pthread_self(), "parley-store"); /* for top -H, perf and gdb */
    /* RocksDB counts key comparisons and the like in a thread-local perf
     * context by default; on this thread, which does every memtable insert,
     * that costs about a tenth of a group message's time.  Nothing reads
     * the counts. */
    rocksdb_set_perf_level(rocksdb_disable);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while ((!s->pending || s->held) && !s->stopping) pthread_cond_wait(&s->cv, &s->mu);
        bool stopping = s->stopping;
        s->pending = false;
        pthread_mutex_unlock(&s->mu);
        mail *m = mailbox_take(&s->in);
        if (m) store__rdb_run(s, m);
        else if (stopping) break;
    }
    return NULL;
}

static void store__rdb_wake(void *arg)
{
    store__rdb *s = arg;
    pthread_mutex_lock(&s->mu);
    s->pending = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void store__rdb_hold(store *base, bool hold)
{
    store__rdb *s = (store__rdb *)base;
    pthread_mutex_lock(&s->mu);
    s->held = hold;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- open and close ---- */

/*
 * Remove the LOG files RocksDB kept in /dev/shm for this database, once it
 * is closed, so temporary data directories (tests, benchmarks) leave no
 * memory behind.  RocksDB names them after the absolute database path,
 * keeping [A-Za-z0-9._-] and turning every other byte but a leading one
 * into '_'; if this flattening ever differs from RocksDB's, the files are
 * merely left in place.
 */
static void store__rdb_drop_logs(const store__rdb *s)
{
    char abs[PATH_MAX], name[PATH_MAX + 64];
    if (!s->shm_log || !realpath(s->path, abs)) return;
    size_t n = 0;
    for (size_t i = 0; abs[i] && n < 400; i++) {
        char c = abs[i];
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
        if (keep) name[n++] = c;
        else if (i > 0) name[n++] = '_';
    }
    name[n] = 0;
    char pat[PATH_MAX + 96];
    snprintf(pat, sizeof(pat), "/dev/shm/%s_LOG", name);
    unlink(pat);
    snprintf(pat, sizeof(pat), "/dev/shm/%s_LOG.old.*", name);
    glob_t g;
    if (glob(pat, GLOB_NOESCAPE, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

static void store__rdb_free(store__rdb *s)
{
    if (s->db) {
        store__db_close(s);
        store__rdb_drop_logs(s);
    }
    if (s->wb) rocksdb_writebatch_destroy(s->wb);
    if (s->wo) rocksdb_writeoptions_destroy(s->wo);
    if (s->wo_lazy) rocksdb_writeoptions_destroy(s->wo_lazy);
    if (s->ro) rocksdb_readoptions_destroy(s->ro);
    if (s->opts) rocksdb_options_destroy(s->opts);
    if (s->cache) rocksdb_cache_destroy(s->cache);
    store__ent_drop_all(s);
    store__mcache_drop_all(s);
    arena_free(&s->scratch);
    pl_free(s->reqs);
    pl_free(s->ops);
    pl_free(s->groups);
    pl_free(s->path);
    pl_free(s);
}

static rocksdb_options_t *store__rdb_options(store__rdb *s)
{
    /*
     * Every message inserts its keys into the memtable's skip list; that
     * is most of the store thread's work.  RocksDB can keep an insert
     * position per key prefix and start the next insert with that prefix
     * from there instead of from the top of the list.  The numbered keys
     * (M, I, D, R) begin with a family byte and an 8-byte number, the
     * conversation or the user, and each such range grows at its end, so
     * with the prefix set to those 9 bytes an insert starts near its place
     * (with Debian's build of RocksDB, whose assertions compare keys again,
     * 33 key comparisons per insert instead of 58: "Where the 50,000/s
     * tail comes from" in docs/benchmarks.md).  The option has no setter
     * in the C API, only its name in an options string (RocksDB's own
     * fixed-prefix transform); should that ever fail to parse, the store
     * works without it, only slower.
     */
    rocksdb_options_t *base = rocksdb_options_create();
    rocksdb_options_t *o = rocksdb_options_create();
    char hint[96], *e = NULL;
    snprintf(hint, sizeof(hint), "memtable_insert_with_hint_prefix_extractor=rocksdb.FixedPrefix.%d",
             STORE__NUM_PREFIX);
    rocksdb_get_options_from_string(base, hint, o, &e);
    rocksdb_options_destroy(base);
    if (e) {
        log_warn("store: RocksDB refused %s: %s", hint, e);
        rocksdb_free(e);
    }
    /* A bloom filter of the memtable's keys: a point read of a key that is
     * not there (the dedup check of every message) skips the skip list. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(o, 1);
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    rocksdb_options_increase_parallelism(o, 2);
    /*
     * RocksDB's flushes run at the lowest CPU priority (nice 19; the
     * process-wide default environment's high-priority pool).  A flush is
     * a burst of a core's worth of work every few seconds under load; at
     * normal priority each one took a core from the workers and the store
     * thread and set the 1:1 latency tail (docs/benchmarks.md: p99 23-29
     * ms at 50,000 msg/s against 15-17 ms).  A memtable that cannot be
     * flushed in time stops the store's writes, which frees the CPU for
     * the flush, so it cannot starve.  Compactions keep normal priority:
     * behind them level-0 files pile up, and every read that misses (the
     * dedup check of each message) checks one more file's filter; over a
     * minute at 100,000 msg/s that cost more than the bursts did.
     */
    rocksdb_env_t *env = rocksdb_create_default_env();
    rocksdb_env_lower_high_priority_thread_pool_cpu_priority(env);
    rocksdb_env_destroy(env);
    rocksdb_options_set_max_background_jobs(o, 2);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    rocksdb_options_set_compression(o, rocksdb_lz4_compression);
    rocksdb_options_set_write_buffer_size(o, 64u << 20);
    /* Room for three full memtables waiting to be flushed: under a burst
     * that keeps both cores busy the flush thread runs late, and with
     * RocksDB's default of two, a second full memtable stops every write
     * until the flush ends.  Costs up to 256 MiB of memtables at the peak. */
    rocksdb_options_set_max_write_buffer_number(o, 4);
    /* Leave file descriptors to the connections (SPEC section 6). */
    rocksdb_options_set_max_open_files(o, 512);
    /* RocksDB's info LOG must not share the database's disk.  Debian's
     * librocksdb is built with assertions, and its logger asserts when it
     * writes again after a failed write: on a full disk the LOG (even the
     * header every open writes) would abort the process where the store
     * should fail writes with PL_UNAVAILABLE and reopen later.  RocksDB
     * cannot run without a LOG, so it goes to /dev/shm (memory), kept
     * small: warnings and errors only, two files of at most 1 MiB, removed
     * when the store is closed (store__rdb_drop_logs).
     * Without /dev/shm it stays in the database directory with fatal
     * messages only, which leaves just the header of each open. */
    s->shm_log = access("/dev/shm", W_OK) == 0;
    if (s->shm_log) {
        rocksdb_options_set_db_log_dir(o, "/dev/shm");
        rocksdb_options_set_info_log_level(o, 2 /* WARN_LEVEL */);
    } else {
        rocksdb_options_set_info_log_level(o, 4 /* FATAL_LEVEL */);
    }
    rocksdb_options_set_max_log_file_size(o, 1u << 20);
    rocksdb_options_set_keep_log_file_num(o, 2);

    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    s->cache = rocksdb_cache_create_lru(STORE__BLOCK_CACHE);
    rocksdb_block_based_options_set_block_cache(t, s->cache);
    /* Dedup and existence checks are mostly misses: a bloom filter answers
     * them without reading data blocks (the options take ownership of the
     * policy).  Filters and indexes are partitioned and cached in the block
     * cache with priority: a whole-file filter of a large table outgrows a
     * cache shard, is evicted as soon as it is used and then read from
     * disk on every lookup, which at about a million messages cut appends
     * to a few thousand a second. */
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_index_type(
        t, rocksdb_block_based_table_index_type_two_level_index_search);
    rocksdb_block_based_options_set_partition_filters(t, 1);
    rocksdb_block_based_options_set_metadata_block_size(t, 4096);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(t, 1);
    rocksdb_block_based_options_set_pin_top_level_index_and_filter(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    rocksdb_options_set_block_based_table_factory(o, t);
    rocksdb_block_based_options_destroy(t);
    return o;
}

void store__meta_stage(store__rdb *s, uint32_t version)
{
    store__key k;
    store__key_init(&k, STORE__K_META);
    Parley__Rec__Meta m = PARLEY__REC__META__INIT;
    m.has_version = 1;
    m.version = version;
    store__put(s, &k, &m);
}

int store__rdb_write_staged(store__rdb *s, store_req *r)
{
    store__runs_stage(s);
    store__num_last_stage(s);
    int rc = 0;
    if (s->n_ops) {
        store__fill_batch(s);
        char *e = NULL;
        rocksdb_write(s->db, s->wo, s->wb, &e);
        if (e) {
            store__oneline(e);
            store__fail(r, PL_UNAVAILABLE, "write: %s", e);
            rocksdb_free(e);
            rc = -1;
        }
    }
    if (rc == 0) {
        s->num_last_disk = s->num_last;
    } else {
        s->num_last = s->num_last_disk;
        store__ent_drop_all(s);
    }
    s->n_ops = 0;
    HASH_CLEAR(hh, s->overlay);
    store__ent_evict(s);
    arena_free(&s->scratch);
    return rc;
}

/* Write the layout version into a new database, check an old one's, and
 * upgrade an older layout. */
static int store__rdb_check_version(store__rdb *s, char *err, size_t errlen)
{
    store_req r = {0};
    store__key k;
    store__key_init(&k, STORE__K_META);
    Parley__Rec__Meta *meta = NULL;
    int found = store__get(s, &r, false, &k, &parley__rec__meta__descriptor, &s->scratch,
                           (void **)&meta);
    uint32_t version = found > 0 ? meta->version : 0;
    int rc = 0;
    if (found < 0 || store__num_last_load(s, &r)) {
        snprintf(err, errlen, "cannot open store at %s: %s", s->path, r.err);
        rc = -1;
    } else if (found == 0) {
        s->dedup_cf = true;
        store__meta_stage(s, STORE__LAYOUT_VERSION);
        if (store__rdb_write_staged(s, &r)) {
            snprintf(err, errlen, "cannot open store at %s: %s", s->path, r.err);
            rc = -1;
        }
    } else if (version > STORE__LAYOUT_VERSION) {
        snprintf(err, errlen,
                 "store at %s has layout version %u, newer than this build (%u): open it with "
                 "the newer parleyd that wrote it",
                 s->path, version, STORE__LAYOUT_VERSION);
        rc = -1;
    } else if (version < STORE__LAYOUT_VERSION) {
        rc = store__rdb_upgrade(s, version, err, errlen);
    } else {
        s->dedup_cf = true;
    }
    arena_free(&s->scratch);
    return rc;
}

static int store__rdb_open(store **out, const store_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->data_dir || !*cfg->data_dir) {
        snprintf(err, errlen, "cannot open store: no data directory");
        return -1;
    }
    store__rdb *s = PL_NEW(store__rdb);
    size_t plen = strlen(cfg->data_dir) + sizeof("/rocksdb");
    s->path = pl_malloc(plen);
    snprintf(s->path, plen, "%s/rocksdb", cfg->data_dir);
    s->max_batch = cfg->max_batch ? cfg->max_batch : 1024;
    m_commit_seconds = metric_histogram(
        "parley_store_commit_seconds",
        "Time of one group commit: the write batch and its WAL sync.", NULL, metrics_seconds_ns,
        metrics_seconds_ns_n, 1e-9);
    m_batch_writes = metric_histogram("parley_store_commit_batch_size",
                                      "Write requests committed together in one batch.", NULL,
                                      metrics_sizes, metrics_sizes_n, 1);
    s->ent_max = cfg->counter_cache ? cfg->counter_cache : 262144;

    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "cannot open store at %s: cannot create %s: %s", s->path,
                 cfg->data_dir, strerror(errno));
        store__rdb_free(s);
        return -1;
    }
    s->opts = store__rdb_options(s);
    char *e = NULL;
    s->db = store__db_open(s, &e);
    if (e) {
        store__oneline(e);
        snprintf(err, errlen, "cannot open store at %s: %s", s->path, e);
        rocksdb_free(e);
        s->db = NULL;
        store__rdb_free(s);
        return -1;
    }
    s->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(s->wo, cfg->sync ? 1 : 0);
    s->wo_lazy = rocksdb_writeoptions_create();
    s->ro = rocksdb_readoptions_create();
    s->wb = rocksdb_writebatch_create();
    if (store__rdb_check_version(s, err, errlen)) {
        store__rdb_free(s);
        return -1;
    }

    mailbox_init(&s->in, store__rdb_wake, s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = pthread_create(&s->thread, NULL, store__rdb_main, s);
    if (rc) {
        snprintf(err, errlen, "cannot open store at %s: cannot start thread: %s", s->path,
                 strerror(rc));
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        store__rdb_free(s);
        return -1;
    }
    *out = &s->base;
    return 0;
}

void store__op_probe(store__rdb *s, store_req *r)
{
    (void)r;
    store__meta_stage(s, STORE__LAYOUT_VERSION);
}

void store__op_checkpoint(store__rdb *s, store_req *r)
{
    struct stat st;
    if (!r->query || !*r->query) {
        store__fail(r, PL_BAD_REQUEST, "checkpoint: no directory");
        return;
    }
    /* Where store__rdb_open looks in a data directory. */
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s/rocksdb", r->query) >= (int)sizeof dir) {
        store__fail(r, PL_BAD_REQUEST, "checkpoint: directory name too long");
        return;
    }
    if (stat(dir, &st) == 0) {
        store__fail(r, PL_CONFLICT, "checkpoint: %s exists", dir);
        return;
    }
    char *e = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(s->db, &e);
    /* log_size_for_flush 0: always flush the memtable, so the copy needs
     * no WAL replay to hold every acknowledged write. */
    if (!e) rocksdb_checkpoint_create(cp, dir, 0, &e);
    if (cp) rocksdb_checkpoint_object_destroy(cp);
    if (e) {
        store__oneline(e);
        store__fail(r, PL_UNAVAILABLE, "checkpoint: %s", e);
        rocksdb_free(e);
        return;
    }
    log_info("store: checkpoint of %s written to %s", s->path, dir);
}

static void store__rdb_submit(store *base, store_req *r)
{
    store__rdb *s = (store__rdb *)base;
    mailbox_post(&s->in, &r->mail);
}

static void store__rdb_close(store *base)
{
    store__rdb *s = (store__rdb *)base;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    store__rdb_free(s);
}

static void store__rdb_stats(store *base, store_stats *out)
{
    store__rdb *s = (store__rdb *)base;
    out->batches = atomic_load_explicit(&s->st_batches, memory_order_relaxed);
    out->writes = atomic_load_explicit(&s->st_writes, memory_order_relaxed);
    out->reads = atomic_load_explicit(&s->st_reads, memory_order_relaxed);
    out->failed_batches = atomic_load_explicit(&s->st_failed, memory_order_relaxed);
}

const store_backend store_rocksdb = {
    .name = "rocksdb",
    .open = store__rdb_open,
    .submit = store__rdb_submit,
    .close = store__rdb_close,
    .stats = store__rdb_stats,
};
