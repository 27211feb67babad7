/*
 * chat.c - the process-wide chat object: start-up, secrets, revoked tokens
 * and the worker table.
 *
 * On first start the data directory receives, each readable by the owner
 * only: `secret` (32 random bytes that sign tokens), `admin.token` (unless
 * the admin_token setting is given) and `default.key` (the API key of the
 * `default` tenant, written by tenants.c).  Later starts read them back.
 *
 * Threads: chat_new and chat_free run on the main thread while no worker
 * runs; the revoked set is shared by all workers behind a read-write lock
 * (taken on logins and HTTP calls, never per message).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "chat/chat_internal.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"

void chat__worker_free_calls(chat_worker *w);
void chat__worker_free_wmails(chat_worker *w);
static void chat__bans_free(chat *c);
static void worker_release(chat_worker *w);

/* Read exactly len bytes of path into out; 1 if absent, 0 read, -1 error. */
static int read_secret_file(const char *path, void *out, size_t len, size_t *got)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT ? 1 : -1;
    ssize_t n = read(fd, out, len);
    close(fd);
    if (n < 0) return -1;
    *got = (size_t)n;
    return 0;
}

/* Create path with mode 0600 holding data; fails if it exists. */
static int write_secret_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -1;
    ssize_t n = write(fd, data, len);
    int rc = (n == (ssize_t)len && fsync(fd) == 0) ? 0 : -1;
    close(fd);
    return rc;
}

int chat__write_owner_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    return write_secret_file(path, text, strlen(text));
}

static int load_secret(chat *c, char *err, size_t errlen)
{
    char path[4096];
    size_t got = 0;
    snprintf(path, sizeof path, "%s/secret", c->data_dir);
    int rc = read_secret_file(path, c->secret, sizeof c->secret, &got);
    if (rc == 0 && got == sizeof c->secret) return 0;
    if (rc == 0 || rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 rc < 0 ? strerror(errno) : "wrong length (expected 32 bytes)");
        return -1;
    }
    randombytes_buf(c->secret, sizeof c->secret);
    if (write_secret_file(path, c->secret, sizeof c->secret)) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int load_admin_token(chat *c, char *err, size_t errlen)
{
    if (c->cfg.admin_token && *c->cfg.admin_token) {
        if (strlen(c->cfg.admin_token) < 16 || strlen(c->cfg.admin_token) >= sizeof c->admin_token) {
            snprintf(err, errlen, "bad setting admin_token: must be 16 to 79 characters");
            return -1;
        }
        snprintf(c->admin_token, sizeof c->admin_token, "%s", c->cfg.admin_token);
        return 0;
    }
    char path[4096];
    size_t got = 0;
    snprintf(path, sizeof path, "%s/admin.token", c->data_dir);
    int rc = read_secret_file(path, c->admin_token, sizeof c->admin_token - 1, &got);
    if (rc == 0) {
        c->admin_token[got] = 0;
        c->admin_token[strcspn(c->admin_token, "\r\n")] = 0;
        if (strlen(c->admin_token) >= 16) return 0;
        snprintf(err, errlen, "%s is too short (16 characters at least)", path);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t raw[24];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(c->admin_token, sizeof c->admin_token, raw, sizeof raw);
    char line[sizeof c->admin_token + 1];
    snprintf(line, sizeof line, "%s\n", c->admin_token);
    if (write_secret_file(path, line, strlen(line))) {
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    log_event(LOG_INFO, "admin token generated", "file", path, NULL);
    return 0;
}

static void load_revoked(chat *c)
{
    store_req *r = store_req_new(STORE_TOKEN_LIST);
    size_t pl = strlen(CHAT_BAN_PREFIX);
    uint64_t now = clock_wall_ms();
    if (store_call(c->st, r) == PL_OK)
        for (size_t i = 0; i < r->n_revoked; i++) {
            const store_revoked *rv = &r->revoked_out[i];
            if (strncmp(rv->jti, CHAT_BAN_PREFIX, pl)) {
                chat_revoke_local(c, rv->jti, rv->expires_at);
                continue;
            }
            /* "ban:<tenant>/<user>"; an unban is the same id, expired */
            const char *slash = strchr(rv->jti + pl, '/');
            if (!slash || (rv->expires_at && rv->expires_at <= now)) continue;
            char tenant[CHAT_ID_MAX + 1];
            snprintf(tenant, sizeof tenant, "%.*s", (int)(slash - rv->jti - pl), rv->jti + pl);
            chat_ban_local(c, tenant, slash + 1, true);
        }
    store_req_free(r);
}

void chat_set_limits(chat *c, const chat_limits *l)
{
    atomic_store(&c->msg_rate, l->msg_rate);
    atomic_store(&c->msg_burst, l->msg_burst);
    atomic_store(&c->login_rate_ip, l->login_rate_ip);
    atomic_store(&c->login_burst_ip, l->login_burst_ip);
    atomic_store(&c->failed_login_max, l->failed_login_max);
    atomic_store(&c->failed_login_window_ms, l->failed_login_window_ms);
}

int chat_new(chat **out, const chat_config *cfg, store *st, char *err, size_t errlen)
{
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        return -1;
    }
    chat *c = PL_NEW(chat);
    c->cfg = *cfg;
    c->data_dir = pl_strdup(cfg->data_dir);
    c->node_id = pl_strdup(cfg->node_id ? cfg->node_id : "");
    c->cfg.data_dir = c->data_dir;
    c->cfg.node_id = c->node_id;
    c->cfg.admin_token = NULL;
    c->st = st;
    c->n_workers = cfg->workers < 1 ? 1 : cfg->workers > CHAT_MAX_WORKERS ? CHAT_MAX_WORKERS : cfg->workers;
    pthread_rwlock_init(&c->tenants_lock, NULL);
    pthread_rwlock_init(&c->revoked_lock, NULL);
    c->limits = limits_new();
    chat_limits lim = {cfg->msg_rate, cfg->msg_burst, cfg->login_rate_ip, cfg->login_burst_ip,
                       cfg->failed_login_max, cfg->failed_login_window_ms};
    chat_set_limits(c, &lim);
    stats_init();
    call_metrics_init();
    presence_init(c);
    if (load_secret(c, err, errlen) || (c->cfg.admin_token = cfg->admin_token, 0) ||
        load_admin_token(c, err, errlen) || tenants_load(c, err, errlen)) {
        c->cfg.admin_token = NULL;
        chat_free(c);
        return -1;
    }
    c->cfg.admin_token = NULL;
    load_revoked(c);
    c->hasher = hasher_new(&cfg->hasher);
    *out = c;
    return 0;
}

void chat_free(chat *c)
{
    if (!c) return;
    /* Mail other workers posted before they stopped, everywhere first: it
     * can hand worker mail back to any worker. */
    for (size_t i = 0; i < CHAT_MAX_WORKERS; i++)
        if (c->stopped[i]) mailbox_run(c->stopped[i]->mb);
    for (size_t i = 0; i < CHAT_MAX_WORKERS; i++)
        if (c->stopped[i]) worker_release(c->stopped[i]);
    if (c->hasher) hasher_free(c->hasher);
    tenants_free(c);
    revoked *r, *tmp;
    HASH_ITER(hh, c->revoked, r, tmp)
    {
        HASH_DEL(c->revoked, r);
        pl_free(r);
    }
    chat__bans_free(c);
    limits_free(c->limits);
    presence_free(c);
    pthread_rwlock_destroy(&c->tenants_lock);
    pthread_rwlock_destroy(&c->revoked_lock);
    sodium_memzero(c->secret, sizeof c->secret);
    pl_free(c->data_dir);
    pl_free(c->node_id);
    pl_free(c);
}

void chat_reload(chat *c) { tenants_reload_words(c); }

bool chat_ready(const chat *c) { return c != NULL; }

/* ---- revoked tokens ---- */

bool chat_is_revoked(chat *c, const char *jti)
{
    revoked *r = NULL;
    pthread_rwlock_rdlock(&c->revoked_lock);
    HASH_FIND_STR(c->revoked, jti, r);
    pthread_rwlock_unlock(&c->revoked_lock);
    return r != NULL;
}

void chat_revoke_local(chat *c, const char *jti, uint64_t expires_at)
{
    uint64_t now = clock_wall_ms();
    pthread_rwlock_wrlock(&c->revoked_lock);
    revoked *r = NULL, *tmp;
    HASH_FIND_STR(c->revoked, jti, r);
    if (!r) {
        r = PL_NEW(revoked);
        snprintf(r->jti, sizeof r->jti, "%s", jti);
        HASH_ADD_STR(c->revoked, jti, r);
    }
    r->expires_at = expires_at;
    /* Expired tokens fail verification anyway: drop them from the set. */
    revoked *e;
    HASH_ITER(hh, c->revoked, e, tmp)
    {
        if (e->expires_at && e->expires_at < now) {
            HASH_DEL(c->revoked, e);
            pl_free(e);
        }
    }
    pthread_rwlock_unlock(&c->revoked_lock);
}

/* ---- bans ---- */

typedef struct banned_user {
    char key[2 * CHAT_ID_MAX + 2];     /* tenant/user */
    UT_hash_handle hh;
} banned_user;

bool chat_is_banned(chat *c, const chat_tenant *t, const char *user)
{
    char key[2 * CHAT_ID_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", t->id, user);
    banned_user *r = NULL;
    pthread_rwlock_rdlock(&c->revoked_lock);
    HASH_FIND_STR(c->banned, key, r);
    pthread_rwlock_unlock(&c->revoked_lock);
    return r != NULL;
}

void chat_ban_local(chat *c, const char *tenant, const char *user, bool banned)
{
    char key[2 * CHAT_ID_MAX + 2];
    snprintf(key, sizeof key, "%s/%s", tenant, user);
    pthread_rwlock_wrlock(&c->revoked_lock);
    banned_user *r = NULL;
    HASH_FIND_STR(c->banned, key, r);
    if (banned && !r) {
        r = PL_NEW(banned_user);
        memcpy(r->key, key, sizeof key);
        HASH_ADD_STR(c->banned, key, r);
    } else if (!banned && r) {
        HASH_DEL(c->banned, r);
        pl_free(r);
    }
    pthread_rwlock_unlock(&c->revoked_lock);
}

static void chat__bans_free(chat *c)
{
    banned_user *b, *tmp;
    HASH_ITER(hh, c->banned, b, tmp)
    {
        HASH_DEL(c->banned, b);
        pl_free(b);
    }
}

/* ---- workers ---- */

chat_worker *chat_worker_new(chat *c, size_t index, size_t n_workers, mailbox *mb)
{
    (void)n_workers;
    if (index >= c->n_workers) return NULL;
    chat_worker *w = PL_NEW(chat_worker);
    w->c = c;
    w->index = index;
    w->mb = mb;
    mailbox_init(&w->wmail_back, NULL, NULL);
    c->stopped[index] = NULL;
    atomic_store_explicit(&c->workers[index], w, memory_order_release);
    return w;
}

void chat_worker_free(chat_worker *w)
{
    if (!w) return;
    chat *c = w->c;
    atomic_store(&c->workers[w->index], NULL);
    /* Wait for the calls still in flight (store and hasher steps) so their
     * completions do not arrive after this loop has gone. */
    for (int i = 0; w->n_calls > 0 && i < 10000; i++) {
        if (!mailbox_run(w->mb)) usleep(1000);
    }
    c->stopped[w->index] = w;      /* freed by chat_free, once every worker stopped */
}

static void worker_release(chat_worker *w)
{
    conf_cache *cc, *tmp;
    HASH_ITER(hh, w->confs, cc, tmp)
    {
        HASH_DEL(w->confs, cc);
        tenant_conf_unref(cc->conf);
        pl_free(cc);
    }
    chat__worker_free_calls(w);
    chat__worker_free_wmails(w);
    topics_free(w);
    pl_free(w);
}
