/*
 * rdb_upgrade.c - bringing a database of an older key layout forward to
 * STORE__LAYOUT_VERSION when the store opens it, before its thread starts.
 *
 * Each step writes in chunks of synced batches and raises the version
 * (key V) only in its last write, so an upgrade that is interrupted (a
 * crash, a full disk) simply runs again on the next open and continues
 * where it stopped: every chunk leaves the database consistent with the
 * work done so far.
 *
 *   1 -> 2  home lists: the H rows of every 1:1 conversation that has
 *           messages.
 *   2 -> 3  numbers: the M, I, D and R keys named the tenant and the
 *           conversation or user by string (M t conv seq, I t u useq,
 *           D t from cmid, R t u conv); they now name them by number
 *           (M conv# seq, I user# useq, D user# cmid, R user# conv#), the
 *           numbers given out through the id map (K) as the keys are
 *           rewritten.  Values are unchanged.
 *   3 -> 4  runs: M and I values may hold several messages or entries
 *           (records.proto Run); a layout 3 value is a run of one, so only
 *           the version changes (an older build would misread runs).
 *   4 -> 5  the dedup column family: every D key moves from "default" to
 *           STORE__CF_DEDUP, a chunk's puts and deletes in one write, so
 *           a key is in exactly one of the two at any time.  Until the
 *           version is raised the store reads and writes D keys in
 *           "default" (s->dedup_cf false), which is where the steps
 *           before this one leave them.
 *
 * A layout 2 key has the tenant's first byte (never 0) after its family
 * byte, a layout 3 key the first byte of an 8-byte big-endian number,
 * which is 0 for any number below 2^56: the two never share a key range,
 * so the old keys left to rewrite are exactly those in [F\x01, F+1).
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "store/rdb_ops.h"

/* Staged writes per chunk. */
#define UPGRADE_CHUNK 20000

static void fail_open(store__rdb *s, const store_req *r, char *err, size_t errlen)
{
    snprintf(err, errlen, "cannot open store at %s: upgrading the layout failed: %s", s->path,
             r->err[0] ? r->err : "unknown error");
}

/* Stage H t user conv -> {peer, since}. */
static void put_home(store__rdb *s, const char *t, const char *user, const char *conv,
                     const char *peer, uint64_t since)
{
    store__key k;
    store__k_home(&k, t, user, conv);
    Parley__Rec__HomeDm h = PARLEY__REC__HOME_DM__INIT;
    h.peer = (char *)peer;
    h.has_since = 1;
    h.since = since;
    store__put(s, &k, &h);
}

/* The layout 2 prefix of a conversation's messages: M t conv. */
static void old_conv_key(store__key *k, const char *t, const char *conv)
{
    store__key_init(k, STORE__K_MSG);
    store__key_str(k, t);
    store__key_str(k, conv);
}

/*
 * 1 -> 2: give every 1:1 conversation that has messages its H rows, taken
 * from its first message (whose sender is one of the two users of
 * "dm:a:b", so the other one is the rest of the id).  One seek per
 * conversation, not a scan of every message.  Runs on layout 2 keys
 * (the numbers come after it).
 */
static int upgrade_home(store__rdb *s, store_req *r, size_t *convs)
{
    store__key lo, hi;
    store__key_init(&lo, STORE__K_MSG);
    store__key_raw(&lo, "\x01", 1);
    store__key_init(&hi, STORE__K_MSG + 1);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi);
    int rc = 0;
    rocksdb_iter_seek(it.it, lo.b, lo.len);
    while (rocksdb_iter_valid(it.it)) {
        size_t klen, vlen, off = 1, tn = 0, cn = 0;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        const char *tk = store__key_next_str(key, klen, &off, &tn);
        const char *ck = tk ? store__key_next_str(key, klen, &off, &cn) : NULL;
        if (!ck || tn > STORE__ID_MAX || cn > STORE__ID_MAX) {
            rocksdb_iter_next(it.it); /* not a message key: cannot happen */
            continue;
        }
        char *t = arena_strndup(&s->scratch, tk, tn), *conv = arena_strndup(&s->scratch, ck, cn);
        Parley__Rec__Msg *m = NULL;
        if (cn > 3 && memcmp(conv, "dm:", 3) == 0) {
            ProtobufCAllocator al = store__allocator(&s->scratch);
            m = parley__rec__msg__unpack(&al, vlen, (const uint8_t *)val);
        }
        const char *from = m ? m->from : NULL;
        size_t fn = from ? strlen(from) : 0, rn = cn - 3;
        const char *rest = conv + 3;
        char peer[STORE__ID_MAX + 1] = "";
        if (fn && rn > fn && rest[fn] == ':' && memcmp(rest, from, fn) == 0) {
            memcpy(peer, rest + fn + 1, rn - fn); /* "from:peer", with the NUL */
        } else if (fn && rn > fn && rest[rn - fn - 1] == ':' &&
                   memcmp(rest + rn - fn, from, fn) == 0) {
            memcpy(peer, rest, rn - fn - 1); /* "peer:from" */
            peer[rn - fn - 1] = 0;
        }
        if (peer[0]) {
            const char *p = arena_strdup(&s->scratch, peer);
            put_home(s, t, from, conv, p, m->ts);
            if (strcmp(p, from) != 0) put_home(s, t, p, conv, from, m->ts);
            ++*convs;
        }
        store__key next, succ;
        old_conv_key(&next, t, conv);
        store__key_succ(&next, &succ);
        if (s->n_ops >= UPGRADE_CHUNK && store__rdb_write_staged(s, r)) {
            rc = -1;
            break;
        }
        rocksdb_iter_seek(it.it, succ.b, succ.len);
    }
    if (store__iter_close(&it, r)) rc = -1;
    if (rc == 0) {
        store__meta_stage(s, 2);
        rc = store__rdb_write_staged(s, r);
    }
    return rc;
}

/* The number of (t, kind, id), given out now if it has none; 0 with r
 * failed on a read error. */
static uint64_t num_of(store__rdb *s, store_req *r, const char *t, char kind, const char *id)
{
    store__ent *e = store__ent_get(s, r, t, kind, id);
    return e ? store__ent_num(s, e) : 0;
}

/*
 * The layout 3 key for the layout 2 key key[0..klen) of family f, into nk:
 * 1 if built, 0 if the key is not one of that family (cannot happen; it
 * is left alone), -1 with r failed.
 */
static int renumber_key(store__rdb *s, store_req *r, char f, const char *key, size_t klen,
                        store__key *nk)
{
    size_t off = 1, tn = 0, an = 0, bn = 0;
    const char *t = store__key_next_str(key, klen, &off, &tn);
    const char *a = t ? store__key_next_str(key, klen, &off, &an) : NULL;
    if (!a || tn > STORE__ID_MAX || an > STORE__ID_MAX) return 0;
    /* Components end with a NUL inside the key, so they are C strings. */
    uint64_t n, m;
    switch (f) {
    case STORE__K_MSG:
    case STORE__K_INBOX:
        if (off + 8 != klen) return 0;
        n = num_of(s, r, t, f == STORE__K_MSG ? STORE__NUM_CONV : STORE__NUM_USER, a);
        if (!n) return -1;
        if (f == STORE__K_MSG) store__k_msg(nk, n, store__get_u64(key + off));
        else {
            store__k_inbox(nk, n);
            store__key_u64(nk, store__get_u64(key + off));
        }
        return 1;
    case STORE__K_DEDUP:
    case STORE__K_READ: {
        const char *b = store__key_next_str(key, klen, &off, &bn);
        if (!b || bn > STORE__ID_MAX || off != klen) return 0;
        if (!(n = num_of(s, r, t, STORE__NUM_USER, a))) return -1;
        if (f == STORE__K_DEDUP) {
            store__k_dedup(nk, n, b);
            return 1;
        }
        if (!(m = num_of(s, r, t, STORE__NUM_CONV, b))) return -1;
        store__k_read(nk, n, m);
        return 1;
    }
    default:
        return 0;
    }
}

/* 2 -> 3: rewrite every M, I, D and R key with numbers. */
static int upgrade_numbers(store__rdb *s, store_req *r, size_t *moved)
{
    static const char fams[] = {STORE__K_MSG, STORE__K_INBOX, STORE__K_DEDUP, STORE__K_READ};
    int rc = 0;
    for (size_t f = 0; f < sizeof(fams) && rc == 0; f++) {
        store__key lo, hi;
        store__key_init(&lo, fams[f]);
        store__key_raw(&lo, "\x01", 1);
        store__key_init(&hi, (char)(fams[f] + 1));
        store__iter it;
        store__iter_open(s, &it, &lo, &hi);
        for (rocksdb_iter_seek(it.it, lo.b, lo.len); rocksdb_iter_valid(it.it);
             rocksdb_iter_next(it.it)) {
            size_t klen, vlen;
            const char *key = rocksdb_iter_key(it.it, &klen);
            const char *val = rocksdb_iter_value(it.it, &vlen);
            store__key nk, ok;
            int b = renumber_key(s, r, fams[f], key, klen, &nk);
            if (b < 0) {
                rc = -1;
                break;
            }
            if (b == 0 || klen > sizeof(ok.b)) continue;
            store__put_raw(s, &nk, vlen ? arena_memdup(&s->scratch, val, vlen) : "", vlen);
            store__key_init(&ok, key[0]);
            store__key_raw(&ok, key + 1, klen - 1);
            store__del(s, &ok);
            if (++*moved % 1000000 == 0)
                log_info("store: upgrading %s: %zu keys renumbered", s->path, *moved);
            if (s->n_ops >= UPGRADE_CHUNK && store__rdb_write_staged(s, r)) {
                rc = -1;
                break;
            }
        }
        if (store__iter_close(&it, r)) rc = -1;
        if (rc == 0) rc = store__rdb_write_staged(s, r);
    }
    if (rc == 0) {
        store__meta_stage(s, 3);
        rc = store__rdb_write_staged(s, r);
    }
    return rc;
}

/* Write and clear wb (synced); -1 with r failed if RocksDB refuses. */
static int write_moves(store__rdb *s, store_req *r, rocksdb_writebatch_t *wb)
{
    char *e = NULL;
    rocksdb_write(s->db, s->wo, wb, &e);
    rocksdb_writebatch_clear(wb);
    if (!e) return 0;
    store__oneline(e);
    store__fail(r, PL_UNAVAILABLE, "write: %s", e);
    rocksdb_free(e);
    return -1;
}

/*
 * 4 -> 5: move the D keys into their own column family.  The staged
 * writes (store__put, store__del) pick a key's family by its family
 * byte, and here one key is written to one family and deleted from the
 * other, so this step fills its own write batches.
 */
static int upgrade_dedup_cf(store__rdb *s, store_req *r, size_t *moved)
{
    store__key lo, hi;
    store__key_init(&lo, STORE__K_DEDUP);
    store__key_init(&hi, STORE__K_DEDUP + 1);
    store__iter it;
    store__iter_open(s, &it, &lo, &hi); /* "default": s->dedup_cf is false */
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    int rc = 0;
    for (rocksdb_iter_seek(it.it, lo.b, lo.len); rc == 0 && rocksdb_iter_valid(it.it);
         rocksdb_iter_next(it.it)) {
        size_t klen, vlen;
        const char *key = rocksdb_iter_key(it.it, &klen);
        const char *val = rocksdb_iter_value(it.it, &vlen);
        rocksdb_writebatch_put_cf(wb, s->cf_dedup, key, klen, val, vlen);
        rocksdb_writebatch_delete_cf(wb, s->cf_main, key, klen);
        if (++*moved % 1000000 == 0)
            log_info("store: upgrading %s: %zu dedup entries moved", s->path, *moved);
        if (rocksdb_writebatch_count(wb) >= 2 * UPGRADE_CHUNK) rc = write_moves(s, r, wb);
    }
    if (rc == 0 && rocksdb_writebatch_count(wb)) rc = write_moves(s, r, wb);
    rocksdb_writebatch_destroy(wb);
    if (store__iter_close(&it, r)) rc = -1;
    if (rc == 0) {
        s->dedup_cf = true;
        store__meta_stage(s, 5);
        rc = store__rdb_write_staged(s, r);
    }
    return rc;
}

int store__rdb_upgrade(store__rdb *s, uint32_t from, char *err, size_t errlen)
{
    store_req r = {0};
    size_t convs = 0, moved = 0, dedups = 0;
    int rc = 0;
    if (from < 2) rc = upgrade_home(s, &r, &convs);
    if (rc == 0 && from < 3) rc = upgrade_numbers(s, &r, &moved);
    if (rc == 0 && from < 4) {
        /* 3 -> 4: a layout 3 value under M or I is a run of one. */
        store__meta_stage(s, 4);
        rc = store__rdb_write_staged(s, &r);
    }
    if (rc == 0 && from < 5) rc = upgrade_dedup_cf(s, &r, &dedups);
    /* What the upgrade cached describes keys it moved: read afresh.  (On
     * failure what it staged is dropped with the store.) */
    store__ent_drop_all(s);
    if (rc) {
        fail_open(s, &r, err, errlen);
        return -1;
    }
    log_info("store: upgraded %s from layout %u to %d (%zu 1:1 conversations given home rows, "
             "%zu keys renumbered, %zu dedup entries moved)",
             s->path, from, STORE__LAYOUT_VERSION, convs, moved, dedups);
    return 0;
}
