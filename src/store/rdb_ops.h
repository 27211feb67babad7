/*
 * rdb_ops.h - helpers shared by the op files of the RocksDB backend
 * (rdb_ops.c, rdb_groups.c, rdb_people.c), and the ops they export to the
 * dispatch in rdb_ops.c.  Store thread only, like everything in rdb.h.
 */
#ifndef PARLEY_STORE_RDB_OPS_H
#define PARLEY_STORE_RDB_OPS_H

#include <string.h>

#include "core/mem.h"
#include "store/rdb.h"
#include "store/records.pb-c.h"

/* True if s is a usable id; otherwise fails r with PL_BAD_REQUEST. */
bool store__need_id(store_req *r, const char *what, const char *s);

/* A growable array on the heap, moved into an arena when complete. */
typedef struct store__vec {
    char *p;
    size_t n, cap, size;
} store__vec;

/* A new zeroed element at the end. */
static inline void *store__vec_push(store__vec *v)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->p = pl_realloc(v->p, v->cap * v->size);
    }
    void *slot = v->p + v->n++ * v->size;
    memset(slot, 0, v->size);
    return slot;
}

/* Move the elements into arena a (NULL if none), count in *n; v is empty
 * afterwards. */
static inline void *store__vec_finish(store__vec *v, arena *a, size_t *n)
{
    *n = v->n;
    void *out = v->n ? arena_memdup(a, v->p, v->n * v->size) : NULL;
    pl_free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
    return out;
}

static inline void store__vec_free(store__vec *v)
{
    pl_free(v->p);
    v->p = NULL;
    v->n = v->cap = 0;
}

/*
 * The run (M or I) at the iterator's position in a range whose prefix has
 * plen bytes: 1 with its first number and its elements (scratch), 0 if
 * the entry there is not a run of that range (damaged: skip it).
 */
int store__run_at(store__rdb *s, rocksdb_iterator_t *it, size_t plen, uint64_t *first,
                  const char ***elems, size_t **lens, size_t *count);

/* Events between the request form and the record. */
void store__event_rec(Parley__Rec__Event *e, const store_event *ev, uint64_t now);
store_event *store__event_from_rec(arena *a, const Parley__Rec__Event *e);

/*
 * The id cache entries of users[0..n) (es[i]) with their inbox counters
 * loaded, so staging inbox entries for them cannot fail.  Returns 0, or
 * -1 with r failed.
 */
int store__inboxes_load(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                        size_t n, store__ent **es);
/* Stage the next inbox entry (value v) of the user of e, loaded by
 * store__inboxes_load; returns its useq. */
uint64_t store__inbox_put(store__rdb *s, store__ent *e, const char *v, size_t vlen);

/*
 * Stage an inbox entry holding ev for each of users[0..n) and set
 * useqs[i] to its number.  Every counter is loaded before anything is
 * staged, so on a read error (-1, r failed) nothing was.
 */
int store__stage_events(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                        size_t n, const store_event *ev, uint64_t *useqs);

/*
 * Check that each of users[0..n) exists (seeing the batch) with one
 * MultiGet.  Returns 0 if all do; 1 with r failed PL_NOT_FOUND naming the
 * first that does not; -1 with r failed on a read error.
 */
int store__users_exist(store__rdb *s, store_req *r, const char *tenant, const char *const *users,
                       size_t n);

/* True if name starts with q, ASCII case-insensitively (NULL name: no). */
bool store__name_prefix(const char *name, const char *q);

/* "g:" + group id, in arena a. */
char *store__group_conv(arena *a, const char *group);

/* Role and kind names: the strings of store.h, and back (-1: unknown). */
const char *store__role_str(int role);
int store__role_parse(const char *s);
const char *store__kind_str(int kind);

/* The group record (seeing the batch): 1 and *g if it exists and is not
 * disbanded, 0 if not, -1 with r failed on error. */
int store__group_load(store__rdb *s, store_req *r, bool through_batch, const char *tenant,
                      const char *group, Parley__Rec__Group **g);

/* ---- rdb_groups.c ---- */

/*
 * The group part of a message append (a->group set), after dedup: checks
 * that the group exists and the sender may post, and for kind "group"
 * sets a->rcpt / a->n_rcpt to the members, sender first (in r's arena);
 * for a channel to none.  Returns 0, or -1 with r failed.
 */
int store__group_append_check(store__rdb *s, store_req *r);

void store__op_group_create(store__rdb *s, store_req *r);
void store__op_group_update(store__rdb *s, store_req *r);
void store__op_group_disband(store__rdb *s, store_req *r);
void store__op_member_add(store__rdb *s, store_req *r);
void store__op_member_remove(store__rdb *s, store_req *r);
void store__op_member_role(store__rdb *s, store_req *r);
void store__op_group_get(store__rdb *s, store_req *r);
void store__op_member_get(store__rdb *s, store_req *r);
void store__op_member_list(store__rdb *s, store_req *r);
void store__op_user_groups(store__rdb *s, store_req *r);
void store__op_group_search(store__rdb *s, store_req *r);

/* ---- rdb_people.c ---- */

/* 1 if a and b are friends (seeing the batch), 0 if not, -1 with r
 * failed on error. */
int store__are_friends(store__rdb *s, store_req *r, const char *tenant, const char *a,
                       const char *b);

void store__op_friend(store__rdb *s, store_req *r);
void store__op_friend_list(store__rdb *s, store_req *r);
void store__op_seen_set(store__rdb *s, store_req *r);
void store__op_seen_get(store__rdb *s, store_req *r);
void store__op_home(store__rdb *s, store_req *r);

#endif
