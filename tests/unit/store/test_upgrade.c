/*
 * test_upgrade.c - opening databases of older key layouts: a layout 2
 * database (M, I, D and R keys naming tenant, conversation and user by
 * string) is renumbered, a layout 1 database (no home rows) also gets its
 * home rows, an upgrade interrupted half way is finished, and a database
 * of a newer layout is refused.  The old databases are written here key
 * by key, as the builds of those layouts wrote them.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "store/records.pb-c.h"
#include "store_test.h"

/* ---- writing an old database by hand ---- */

typedef struct olddb {
    rocksdb_t *db;
    rocksdb_options_t *o;
    rocksdb_writeoptions_t *wo;
} olddb;

static void old_open(olddb *d, const char *dir)
{
    char path[512], *err = NULL;
    snprintf(path, sizeof(path), "%s/rocksdb", dir);
    d->o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(d->o, 1);
    d->db = rocksdb_open(d->o, path, &err);
    assert_null(err);
    d->wo = rocksdb_writeoptions_create();
}

static void old_close(olddb *d)
{
    rocksdb_writeoptions_destroy(d->wo);
    rocksdb_close(d->db);
    rocksdb_options_destroy(d->o);
}

static void put(olddb *d, const store__key *k, const ProtobufCMessage *m)
{
    uint8_t v[1024];
    size_t n = m ? protobuf_c_message_pack(m, v) : 0;
    char *err = NULL;
    rocksdb_put(d->db, d->wo, k->b, k->len, (const char *)v, n, &err);
    assert_null(err);
}

static void key(store__key *k, char family, const char *a, const char *b, const char *c)
{
    store__key_init(k, family);
    store__key_str(k, a);
    if (b) store__key_str(k, b);
    if (c) store__key_str(k, c);
}

static void put_version(olddb *d, uint32_t version)
{
    store__key k;
    store__key_init(&k, STORE__K_META);
    Parley__Rec__Meta m = PARLEY__REC__META__INIT;
    m.has_version = 1;
    m.version = version;
    put(d, &k, &m.base);
}

static void put_user(olddb *d, const char *t, const char *u)
{
    store__key k;
    key(&k, STORE__K_USER, t, u, NULL);
    Parley__Rec__User m = PARLEY__REC__USER__INIT;
    m.has_created_at = 1;
    m.created_at = 1000;
    put(d, &k, &m.base);
}

/* M t conv seq */
static void put_msg(olddb *d, const char *t, const char *conv, uint64_t seq, const char *from,
                    const char *text, const char *cmid)
{
    store__key k;
    key(&k, STORE__K_MSG, t, conv, NULL);
    store__key_u64(&k, seq);
    Parley__Rec__Msg m = PARLEY__REC__MSG__INIT;
    m.from = (char *)from;
    m.text = (char *)text;
    m.cmid = (char *)cmid;
    m.has_ts = 1;
    m.ts = 2000 + seq;
    put(d, &k, &m.base);
}

/* I t u useq -> a message entry */
static void put_entry(olddb *d, const char *t, const char *u, uint64_t useq, const char *conv,
                      uint64_t seq)
{
    store__key k;
    key(&k, STORE__K_INBOX, t, u, NULL);
    store__key_u64(&k, useq);
    Parley__Rec__Entry m = PARLEY__REC__ENTRY__INIT;
    m.conv = (char *)conv;
    m.has_seq = 1;
    m.seq = seq;
    put(d, &k, &m.base);
}

/* I t u useq -> a read event */
static void put_event(olddb *d, const char *t, const char *u, uint64_t useq, const char *conv,
                      uint64_t seq)
{
    store__key k;
    key(&k, STORE__K_INBOX, t, u, NULL);
    store__key_u64(&k, useq);
    Parley__Rec__Event e = PARLEY__REC__EVENT__INIT;
    e.kind = "read";
    e.conv = (char *)conv;
    e.has_seq = 1;
    e.seq = seq;
    Parley__Rec__Entry m = PARLEY__REC__ENTRY__INIT;
    m.event = &e;
    put(d, &k, &m.base);
}

/* D t from cmid */
static void put_dedup(olddb *d, const char *t, const char *from, const char *cmid,
                      const char *conv, uint64_t seq, uint64_t u0, uint64_t u1)
{
    store__key k;
    key(&k, STORE__K_DEDUP, t, from, cmid);
    uint64_t useqs[2] = {u0, u1};
    Parley__Rec__Dedup m = PARLEY__REC__DEDUP__INIT;
    m.conv = (char *)conv;
    m.has_seq = m.has_ts = 1;
    m.seq = seq;
    m.ts = 2000 + seq;
    m.n_useqs = 2;
    m.useqs = useqs;
    put(d, &k, &m.base);
}

/* R t u conv */
static void put_read(olddb *d, const char *t, const char *u, const char *conv, uint64_t seq)
{
    store__key k;
    key(&k, STORE__K_READ, t, u, conv);
    Parley__Rec__ReadPos m = PARLEY__REC__READ_POS__INIT;
    m.has_seq = 1;
    m.seq = seq;
    put(d, &k, &m.base);
}

/* H t u conv */
static void put_home(olddb *d, const char *t, const char *u, const char *conv, const char *peer)
{
    store__key k;
    key(&k, STORE__K_HOME, t, u, conv);
    Parley__Rec__HomeDm m = PARLEY__REC__HOME_DM__INIT;
    m.peer = (char *)peer;
    m.has_since = 1;
    m.since = 2001;
    put(d, &k, &m.base);
}

/*
 * The database of the scenario, in the old layout (1 without home rows,
 * 2 with).  Tenant t: ann and bob wrote three messages in dm:ann:bob with
 * cmids c1..c3 (each in both inboxes, bob's inbox also has a read event),
 * ann read up to 3 and bob up to 2; ann wrote one message to g:x (no
 * group record: the messages alone).  Tenant u has the same names with
 * one message of its own.
 */
static void write_old(const char *dir, uint32_t version, bool messages_done)
{
    olddb d;
    old_open(&d, dir);
    put_version(&d, version);
    const char *conv = "dm:ann:bob";
    put_user(&d, "t", "ann");
    put_user(&d, "t", "bob");
    put_user(&d, "u", "ann");
    put_user(&d, "u", "bob");
    if (!messages_done) {
        put_msg(&d, "t", conv, 1, "ann", "one", "c1");
        put_msg(&d, "t", conv, 2, "bob", "two", "c2");
        put_msg(&d, "t", conv, 3, "ann", "three", "c3");
    }
    for (uint64_t i = 1; i <= 3; i++) {
        put_entry(&d, "t", "ann", i, conv, i);
        put_entry(&d, "t", "bob", i, conv, i);
    }
    put_event(&d, "t", "bob", 4, conv, 2);
    put_dedup(&d, "t", "ann", "c1", conv, 1, 1, 1);
    put_dedup(&d, "t", "bob", "c2", conv, 2, 2, 2);
    put_dedup(&d, "t", "ann", "c3", conv, 3, 3, 3);
    put_read(&d, "t", "ann", conv, 3);
    put_read(&d, "t", "bob", conv, 2);
    put_msg(&d, "t", "g:x", 1, "ann", "to the group", NULL);
    put_msg(&d, "u", conv, 1, "bob", "elsewhere", "c1");
    put_entry(&d, "u", "ann", 1, conv, 1);
    put_entry(&d, "u", "bob", 1, conv, 1);
    if (version >= 2) {
        put_home(&d, "t", "ann", conv, "bob");
        put_home(&d, "t", "bob", conv, "ann");
        put_home(&d, "u", "ann", conv, "bob");
        put_home(&d, "u", "bob", conv, "ann");
    }
    old_close(&d);
}

/* ---- checks through the store ---- */

static store_req *call(store *s, store_req *r)
{
    assert_int_equal(store_call(s, r), PL_OK);
    return r;
}

static store_req *history(store *s, const char *t, const char *conv)
{
    store_req *r = store_req_new(STORE_HISTORY);
    r->tenant_id = t;
    r->conv = conv;
    return call(s, r);
}

static store_req *inbox(store *s, const char *t, const char *u)
{
    store_req *r = store_req_new(STORE_INBOX_READ);
    r->tenant_id = t;
    r->user_id = u;
    return call(s, r);
}

static uint64_t read_pos(store *s, const char *t, const char *u, const char *conv)
{
    store_req *r = store_req_new(STORE_READ_GET);
    r->tenant_id = t;
    r->user_id = u;
    r->conv = conv;
    uint64_t h = call(s, r)->head;
    store_req_free(r);
    return h;
}

/* Every key of families M, I, D, R is in the numbered form, the D keys
 * are in the dedup column family and no longer in "default", and V is the
 * current layout. */
static size_t count_numbered(rocksdb_t *db, rocksdb_column_family_handle_t *cf, rocksdb_readoptions_t *ro,
                             size_t *dedups)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, cf);
    size_t numbered = 0;
    *dedups = 0;
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen;
        const char *k = rocksdb_iter_key(it, &klen);
        if (k[0] == 'M' || k[0] == 'I' || k[0] == 'D' || k[0] == 'R') {
            assert_true(klen >= 9);
            assert_int_equal(k[1], 0);
            numbered++;
            if (k[0] == 'D') ++*dedups;
        }
    }
    rocksdb_iter_destroy(it);
    return numbered;
}

static void check_no_old_keys(const char *dir)
{
    st_raw d;
    st_raw_open(&d, dir);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    size_t dedups;
    /* 5 M, 9 I (3 + 4 in t, 2 in u), 2 R in "default"; 3 D in dedup */
    assert_int_equal(count_numbered(d.db, d.cf[0], ro, &dedups), 16);
    assert_int_equal(dedups, 0);
    assert_int_equal(count_numbered(d.db, d.cf[1], ro, &dedups), 3);
    assert_int_equal(dedups, 3);
    size_t n = 0;
    char *err = NULL;
    char *v = rocksdb_get_cf(d.db, ro, d.cf[0], "V", 1, &n, &err);
    assert_null(err);
    Parley__Rec__Meta *m = parley__rec__meta__unpack(NULL, n, (const uint8_t *)v);
    assert_non_null(m);
    assert_int_equal(m->version, STORE__LAYOUT_VERSION);
    parley__rec__meta__free_unpacked(m, NULL);
    rocksdb_free(v);
    rocksdb_readoptions_destroy(ro);
    st_raw_close(&d);
}

/* The scenario of write_old, as the store now answers it. */
static void check_scenario(store *s)
{
    const char *conv = "dm:ann:bob";
    store_req *r = history(s, "t", conv);
    assert_int_equal(r->n_msgs, 3);
    assert_string_equal(r->msgs[0].text, "three");
    assert_int_equal(r->msgs[0].seq, 3);
    assert_string_equal(r->msgs[2].text, "one");
    assert_string_equal(r->msgs[2].cmid, "c1");
    store_req_free(r);

    r = history(s, "t", "g:x");
    assert_int_equal(r->n_msgs, 1);
    assert_string_equal(r->msgs[0].text, "to the group");
    store_req_free(r);

    r = history(s, "u", conv);
    assert_int_equal(r->n_msgs, 1);
    assert_string_equal(r->msgs[0].text, "elsewhere");
    store_req_free(r);

    r = inbox(s, "t", "bob");
    assert_int_equal(r->head, 4);
    assert_int_equal(r->n_entries, 4);
    assert_non_null(r->entries[1].msg);
    assert_string_equal(r->entries[1].msg->text, "two");
    assert_string_equal(r->entries[1].msg->from, "bob");
    assert_non_null(r->entries[3].event);
    assert_string_equal(r->entries[3].event->kind, "read");
    store_req_free(r);

    r = inbox(s, "u", "ann");
    assert_int_equal(r->n_entries, 1);
    assert_string_equal(r->entries[0].msg->text, "elsewhere");
    store_req_free(r);

    assert_int_equal(read_pos(s, "t", "ann", conv), 3);
    assert_int_equal(read_pos(s, "t", "bob", conv), 2);
    assert_int_equal(read_pos(s, "u", "bob", conv), 0);
}

static void test_from_layout_2(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    write_old(dir, 2, false);
    store *s = st_open(dir);
    check_scenario(s);

    /* A retry of c1 is still a dup with its first answer. */
    const char *rcpt[] = {"ann", "bob", NULL};
    store_req *r = st_append(s, "t", "dm:ann:bob", "ann", "again", "c1", rcpt);
    assert_int_equal(r->status, PL_OK);
    assert_true(r->append.dup);
    assert_int_equal(r->append.seq, 1);
    assert_int_equal(r->append.useqs[0], 1);
    assert_int_equal(r->append.useqs[1], 1);
    store_req_free(r);

    /* Numbers go on from the old ones. */
    r = st_append(s, "t", "dm:ann:bob", "bob", "four", "c4", rcpt);
    assert_int_equal(r->status, PL_OK);
    assert_false(r->append.dup);
    assert_int_equal(r->append.seq, 4);
    assert_int_equal(r->append.useqs[0], 4);
    assert_int_equal(r->append.useqs[1], 5);
    store_req_free(r);
    assert_int_equal(read_pos(s, "t", "bob", "dm:ann:bob"), 4);
    r = st_append(s, "u", "dm:ann:bob", "ann", "more", NULL, rcpt);
    assert_int_equal(r->append.seq, 2);
    assert_int_equal(r->append.useqs[0], 2);
    assert_int_equal(r->append.useqs[1], 2);
    store_req_free(r);
    store_close(s);

    /* Opening again changes nothing. */
    s = st_open(dir);
    r = history(s, "t", "dm:ann:bob");
    assert_int_equal(r->n_msgs, 4);
    store_req_free(r);
    r = inbox(s, "t", "ann");
    assert_int_equal(r->head, 4);
    assert_string_equal(r->entries[3].msg->text, "four");
    store_req_free(r);
    store_close(s);
    st_dir_free(dir);
}

static void test_keys_after_upgrade(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    write_old(dir, 2, false);
    store *s = st_open(dir);
    store_close(s);
    check_no_old_keys(dir);
    st_dir_free(dir);
}

static void test_from_layout_1(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    write_old(dir, 1, false);
    store *s = st_open(dir);
    check_scenario(s);
    store_req *r = store_req_new(STORE_HOME);
    r->tenant_id = "t";
    r->user_id = "bob";
    call(s, r);
    assert_int_equal(r->n_convs_out, 1);
    assert_string_equal(r->convs_out[0].conv, "dm:ann:bob");
    assert_string_equal(r->convs_out[0].peer, "ann");
    assert_non_null(r->convs_out[0].last);
    assert_string_equal(r->convs_out[0].last->text, "three");
    assert_int_equal(r->convs_out[0].unread, 1);
    store_req_free(r);
    store_close(s);
    check_no_old_keys(dir);
    st_dir_free(dir);
}

/* An upgrade that stopped after renumbering the messages (their id map
 * entry and new keys written, everything else still old) is finished,
 * keeping the numbers it gave out. */
static void test_interrupted(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    write_old(dir, 2, true);
    olddb d;
    old_open(&d, dir);
    store__key k;
    Parley__Rec__Num num = PARLEY__REC__NUM__INIT;
    num.has_num = 1;
    num.num = 7;
    store__k_num(&k, "t", STORE__NUM_CONV, "dm:ann:bob");
    put(&d, &k, &num.base);
    store__k_num_last(&k);
    put(&d, &k, &num.base);
    const char *texts[] = {"one", "two", "three"}, *from[] = {"ann", "bob", "ann"};
    const char *cmids[] = {"c1", "c2", "c3"};
    for (uint64_t i = 1; i <= 3; i++) {
        store__k_msg(&k, 7, i);
        Parley__Rec__Msg m = PARLEY__REC__MSG__INIT;
        m.from = (char *)from[i - 1];
        m.text = (char *)texts[i - 1];
        m.cmid = (char *)cmids[i - 1];
        m.has_ts = 1;
        m.ts = 2000 + i;
        put(&d, &k, &m.base);
    }
    old_close(&d);
    store *s = st_open(dir);
    check_scenario(s);
    const char *rcpt[] = {"ann", "bob", NULL};
    store_req *r = st_append(s, "t", "dm:ann:bob", "ann", "four", "c4", rcpt);
    assert_int_equal(r->append.seq, 4);
    store_req_free(r);
    store_close(s);
    st_dir_free(dir);
}

static void test_newer_refused(void **state)
{
    (void)state;
    char *dir = st_dir_new();
    olddb d;
    old_open(&d, dir);
    put_version(&d, STORE__LAYOUT_VERSION + 1);
    old_close(&d);
    store_config cfg;
    store_config_init(&cfg, dir);
    store *s = NULL;
    char err[256] = "";
    assert_int_not_equal(store_open(&s, &cfg, err, sizeof(err)), 0);
    assert_null(s);
    assert_non_null(strstr(err, "newer than this build"));
    st_dir_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_from_layout_2),
        cmocka_unit_test(test_keys_after_upgrade),
        cmocka_unit_test(test_from_layout_1),
        cmocka_unit_test(test_interrupted),
        cmocka_unit_test(test_newer_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
