/*
 * tenants.c - the tenant table: settings, API keys and word lists.
 *
 * Every user, group and message belongs to one tenant, and no call reaches
 * across tenants: a caller's tenant comes from its token or API key, never
 * from the request body (except sign-up and password login, which name it).
 *
 * Tenants are loaded at start and created by the admin API; they are never
 * freed while the process runs, so a chat_tenant pointer stays valid.  A
 * tenant's settings and word filter form one immutable tenant_conf,
 * replaced as a whole when either changes.  The table (and each tenant's
 * current conf pointer) is guarded by a read-write lock; workers keep their
 * own cache of conf references, flushed when the process-wide generation
 * counter moves, so the message path reads settings without any lock.
 *
 * API keys are "ak.<tenant>.<48 hex>"; only their SHA-256 is stored.  The
 * default tenant's key is written to DATA/default.key on first start.
 * Word lists are DATA/words/<tenant>.txt (one word per line), read at
 * start and on chat_reload (SIGHUP).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/codec.h"

int chat__write_owner_file(const char *dir, const char *name, const char *text);

static filter *load_words(chat *c, const char *tenant)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/words/%s.txt", c->data_dir, tenant);
    filter *f = filter_load(path);
    if (!f) {
        if (errno != ENOENT) log_event(LOG_WARN, "cannot read word list", "file", path, NULL);
        f = filter_new("", 0);
    }
    return f;
}

static tenant_conf *conf_new(const Parley__TenantSettings *s, filter *words)
{
    tenant_conf *tc = PL_NEW(tenant_conf);
    atomic_init(&tc->refs, 1);
    tc->words = words;
    if (s) {
        tc->open_signup = s->has_open_signup && s->open_signup;
        tc->friends_only_dm = s->has_friends_only_dm && s->friends_only_dm;
        tc->policy = s->filter_policy && !strcmp(s->filter_policy, "mask") ? FILTER_MASK : FILTER_REJECT;
        if (s->has_msg_rate) tc->msg_rate = s->msg_rate;
        if (s->has_msg_burst) tc->msg_burst = s->msg_burst;
    }
    buf b = {0};
    Parley__TenantSettings out = PARLEY__TENANT_SETTINGS__INIT;
    tenant_conf_to_settings(tc, &out);
    proto_encode(&out.base, PROTO_JSON, &b);
    buf_appendc(&b, 0);
    tc->settings_json = pl_strdup((char *)buf_begin(&b));
    buf_free(&b);
    return tc;
}

void tenant_conf_to_settings(const tenant_conf *tc, Parley__TenantSettings *out)
{
    out->has_open_signup = true;
    out->open_signup = tc->open_signup;
    out->has_friends_only_dm = true;
    out->friends_only_dm = tc->friends_only_dm;
    out->filter_policy = tc->policy == FILTER_MASK ? "mask" : "reject";
    if (tc->msg_rate > 0) {
        out->has_msg_rate = true;
        out->msg_rate = (uint32_t)tc->msg_rate;
    }
    if (tc->msg_burst > 0) {
        out->has_msg_burst = true;
        out->msg_burst = (uint32_t)tc->msg_burst;
    }
}

void tenant_conf_unref(tenant_conf *tc)
{
    if (!tc || atomic_fetch_sub(&tc->refs, 1) != 1) return;
    filter_unref(tc->words);
    pl_free(tc->settings_json);
    pl_free(tc);
}

static Parley__TenantSettings *parse_settings(const char *json)
{
    ProtobufCMessage *m = NULL;
    char err[128];
    if (!json || !*json) return NULL;
    if (proto_decode(&parley__tenant_settings__descriptor, PROTO_JSON, (const uint8_t *)json,
                     strlen(json), &m, err, sizeof err))
        return NULL;
    return (Parley__TenantSettings *)m;
}

static chat_tenant *add_tenant(chat *c, const char *id, const char *key_hash_hex,
                               const char *settings_json)
{
    chat_tenant *t = PL_NEW(chat_tenant);
    snprintf(t->id, sizeof t->id, "%s", id);
    size_t bin_len = 0;
    if (key_hash_hex)
        sodium_hex2bin(t->key_hash, sizeof t->key_hash, key_hash_hex, strlen(key_hash_hex), NULL,
                       &bin_len, NULL);
    Parley__TenantSettings *s = parse_settings(settings_json);
    t->conf = conf_new(s, load_words(c, id));
    proto_free(s ? &s->base : NULL);
    HASH_ADD_STR(c->tenants, id, t);
    return t;
}

/* A new API key for tenant id: the key into key (>= 120 bytes), the hex
 * SHA-256 into hash_hex (65 bytes). */
static void new_api_key(const char *id, char *key, size_t keylen, char *hash_hex)
{
    uint8_t raw[24], h[32];
    char hex[49];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
    snprintf(key, keylen, "ak.%s.%s", id, hex);
    crypto_hash_sha256(h, (const uint8_t *)key, strlen(key));
    sodium_bin2hex(hash_hex, 65, h, sizeof h);
}

int tenants_load(chat *c, char *err, size_t errlen)
{
    store_req *r = store_req_new(STORE_TENANT_LIST);
    pl_status st = store_call(c->st, r);
    if (st) {
        snprintf(err, errlen, "cannot read tenants from the store: %s", r->err);
        store_req_free(r);
        return -1;
    }
    for (size_t i = 0; i < r->n_tenants; i++)
        add_tenant(c, r->tenants[i].id, r->tenants[i].key_hash, r->tenants[i].settings);
    store_req_free(r);
    if (tenants_find(c, "default")) return 0;

    /* First start: the default tenant, open for sign-up. */
    char key[160], hash[65];
    new_api_key("default", key, sizeof key, hash);
    Parley__TenantSettings s = PARLEY__TENANT_SETTINGS__INIT;
    s.has_open_signup = true;
    s.open_signup = true;
    tenant_conf *tc = conf_new(&s, filter_new("", 0));
    r = store_req_new(STORE_TENANT_CREATE);
    r->tenant = arena_alloc(&r->arena, sizeof *r->tenant);
    r->tenant->id = "default";
    r->tenant->key_hash = hash;
    r->tenant->settings = tc->settings_json;
    r->tenant->created_at = clock_wall_ms();
    st = store_call(c->st, r);
    if (st) snprintf(err, errlen, "cannot create the default tenant: %s", r->err);
    store_req_free(r);
    if (!st) add_tenant(c, "default", hash, tc->settings_json);
    tenant_conf_unref(tc);
    if (st) return -1;
    char line[200];
    snprintf(line, sizeof line, "%s\n", key);
    if (chat__write_owner_file(c->data_dir, "default.key", line)) {
        snprintf(err, errlen, "cannot write %s/default.key: %s", c->data_dir, strerror(errno));
        return -1;
    }
    log_event(LOG_INFO, "tenant created", "tenant", "default", "key_file", "default.key", NULL);
    return 0;
}

void tenants_free(chat *c)
{
    chat_tenant *t, *tmp;
    HASH_ITER(hh, c->tenants, t, tmp)
    {
        HASH_DEL(c->tenants, t);
        tenant_conf_unref(t->conf);
        pl_free(t);
    }
}

chat_tenant *tenants_find(chat *c, const char *id)
{
    chat_tenant *t = NULL;
    if (!id) return NULL;
    pthread_rwlock_rdlock(&c->tenants_lock);
    HASH_FIND_STR(c->tenants, id, t);
    pthread_rwlock_unlock(&c->tenants_lock);
    return t;
}

chat_tenant *tenants_by_key(chat *c, const char *key)
{
    /* ak.<tenant>.<secret> */
    if (strncmp(key, "ak.", 3)) return NULL;
    const char *dot = strchr(key + 3, '.');
    if (!dot || (size_t)(dot - key - 3) > CHAT_ID_MAX) return NULL;
    char id[CHAT_ID_MAX + 1];
    memcpy(id, key + 3, (size_t)(dot - key - 3));
    id[dot - key - 3] = 0;
    chat_tenant *t = tenants_find(c, id);
    if (!t) return NULL;
    uint8_t h[32];
    crypto_hash_sha256(h, (const uint8_t *)key, strlen(key));
    return sodium_memcmp(h, t->key_hash, sizeof h) == 0 ? t : NULL;
}

const tenant_conf *tenant_conf_of(chat_worker *w, const chat_tenant *t)
{
    chat *c = w->c;
    uint64_t gen = atomic_load_explicit(&c->conf_gen, memory_order_acquire);
    conf_cache *cc = NULL, *tmp;
    if (gen != w->confs_gen) {
        HASH_ITER(hh, w->confs, cc, tmp)
        {
            HASH_DEL(w->confs, cc);
            tenant_conf_unref(cc->conf);
            pl_free(cc);
        }
        w->confs_gen = gen;
    }
    HASH_FIND_PTR(w->confs, &t, cc);
    if (cc) return cc->conf;
    cc = PL_NEW(conf_cache);
    cc->tenant = t;
    pthread_rwlock_rdlock(&c->tenants_lock);
    cc->conf = t->conf;
    atomic_fetch_add(&cc->conf->refs, 1);
    pthread_rwlock_unlock(&c->tenants_lock);
    HASH_ADD_PTR(w->confs, tenant, cc);
    return cc->conf;
}

void tenants_reload_words(chat *c)
{
    pthread_rwlock_wrlock(&c->tenants_lock);
    chat_tenant *t, *tmp;
    HASH_ITER(hh, c->tenants, t, tmp)
    {
        Parley__TenantSettings *s = parse_settings(t->conf->settings_json);
        tenant_conf *old = t->conf;
        t->conf = conf_new(s, load_words(c, t->id));
        proto_free(s ? &s->base : NULL);
        tenant_conf_unref(old);
        log_event(LOG_INFO, "word list loaded", "tenant", t->id, NULL);
    }
    atomic_fetch_add_explicit(&c->conf_gen, 1, memory_order_release);
    pthread_rwlock_unlock(&c->tenants_lock);
}

void tenants_set_conf(chat *c, chat_tenant *t, const Parley__TenantSettings *s, bool reload_words)
{
    /* The file is read before the lock is taken: a reader of the table
     * never waits for the disk. */
    filter *words = reload_words ? load_words(c, t->id) : NULL;
    pthread_rwlock_wrlock(&c->tenants_lock);
    tenant_conf *old = t->conf;
    t->conf = conf_new(s, words ? words : filter_ref(old->words));
    tenant_conf_unref(old);
    atomic_fetch_add_explicit(&c->conf_gen, 1, memory_order_release);
    pthread_rwlock_unlock(&c->tenants_lock);
}

/* ---- admin operations ---- */

static void tenant_created(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status, r->status == PL_CONFLICT ? "tenant exists" : "cannot create tenant");
        return;
    }
    chat *ch = c->c;
    pthread_rwlock_wrlock(&ch->tenants_lock);
    chat_tenant *t = NULL;
    HASH_FIND_STR(ch->tenants, r->tenant->id, t);
    if (!t) t = add_tenant(ch, r->tenant->id, r->tenant->key_hash, r->tenant->settings);
    pthread_rwlock_unlock(&ch->tenants_lock);
    log_event(LOG_INFO, "tenant created", "tenant", t->id, NULL);
    Parley__Tenant out = PARLEY__TENANT__INIT;
    Parley__TenantSettings s = PARLEY__TENANT_SETTINGS__INIT;
    tenant_conf_to_settings(tenant_conf_of(c->w, t), &s);
    out.tenant = t->id;
    out.api_key = c->text;
    out.settings = &s;
    out.has_created_at = true;
    out.created_at = r->tenant->created_at;
    call_ok(c, &out.base);
}

void h_tenant_create(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__TenantCreate *in = (const Parley__TenantCreate *)body;
    if (!chat_valid_id(in->tenant)) {
        call_err(c, PL_BAD_REQUEST, "tenant must be 1 to 64 of A-Z a-z 0-9 _ . @ -");
        return;
    }
    if (in->settings && in->settings->filter_policy && strcmp(in->settings->filter_policy, "mask") &&
        strcmp(in->settings->filter_policy, "reject")) {
        call_err(c, PL_BAD_REQUEST, "filter_policy must be reject or mask");
        return;
    }
    if (tenants_find(c->c, in->tenant)) {
        call_err(c, PL_CONFLICT, "tenant exists");
        return;
    }
    store_req *r = call_store(c, STORE_TENANT_CREATE, tenant_created);
    char key[160], hash[65];
    new_api_key(in->tenant, key, sizeof key, hash);
    tenant_conf *tc = conf_new(in->settings, filter_new("", 0));
    r->tenant = arena_alloc(&r->arena, sizeof *r->tenant);
    r->tenant->id = arena_strdup(&r->arena, in->tenant);
    r->tenant->key_hash = arena_strdup(&r->arena, hash);
    r->tenant->settings = arena_strdup(&r->arena, tc->settings_json);
    r->tenant->created_at = clock_wall_ms();
    tenant_conf_unref(tc);
    c->text = arena_strdup(&r->arena, key);
    call_submit(c, r);
}

void h_tenant_list(chat_call *c, const ProtobufCMessage *body)
{
    chat *ch = c->c;
    pthread_rwlock_rdlock(&ch->tenants_lock);
    size_t n = HASH_COUNT(ch->tenants), i = 0;
    Parley__Tenant *ts = pl_calloc(n ? n : 1, sizeof *ts);
    Parley__Tenant **tp = pl_calloc(n ? n : 1, sizeof *tp);
    Parley__TenantSettings *ss = pl_calloc(n ? n : 1, sizeof *ss);
    chat_tenant *t, *tmp;
    HASH_ITER(hh, ch->tenants, t, tmp)
    {
        parley__tenant__init(&ts[i]);
        parley__tenant_settings__init(&ss[i]);
        tenant_conf_to_settings(t->conf, &ss[i]);
        ts[i].tenant = t->id;
        ts[i].settings = &ss[i];
        tp[i] = &ts[i];
        i++;
    }
    Parley__TenantList out = PARLEY__TENANT_LIST__INIT;
    out.n_tenants = n;
    out.tenants = tp;
    call_ok(c, &out.base);
    pthread_rwlock_unlock(&ch->tenants_lock);
    pl_free(ts);
    pl_free(tp);
    pl_free(ss);
}
