/*
 * admin.c - the admin API (the admin token's calls, HTTP only): tenant
 * settings, bans, kicks, online counts, word lists and backups.
 * Creating and listing tenants lives with the tenant table (tenants.c).
 *
 * Every handler runs on the worker of the HTTP connection, like any call,
 * and logs what it did as a business event with the caller's address.
 * What changes takes effect at once:
 *
 *   settings  a new immutable tenant_conf is swapped in under the table
 *             lock and the conf generation moves; each worker drops its
 *             cached confs at its next request (tenants.c).
 *   ban       the user's record says banned (logins refuse it), the ban is
 *             added to the revocation list (HTTP calls with older tokens
 *             refuse it: chat_is_banned) and every session of the user is
 *             kicked on every worker by mail (sessions_kick, close 4003).
 *   kick      the same mail, close 4001; the user may log in again.
 *   words     DATA/words/<tenant>.txt is replaced atomically (written
 *             beside it, synced, renamed), then read back into a new conf.
 *   backup    the store's online copy, taken on the store thread between
 *             two batches (STORE_CHECKPOINT), plus copies of the small files
 *             of the data directory: DATA/backups/<name> is itself a data
 *             directory that parleyd can start on.
 *
 * File writes (word lists, backups' small files) happen on the worker:
 * they are rare, small and made by an operator.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chat/chat_internal.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/file.h"
#include "core/log.h"
#include "core/mem.h"
#include "proto/codec.h"

/* The tenant named in an admin call, or an error reply (NULL). */
static chat_tenant *admin_tenant(chat_call *c, const char *id)
{
    chat_tenant *t = chat_valid_id(id) ? tenants_find(c->c, id) : NULL;
    if (!t) call_err(c, PL_NOT_FOUND, "no such tenant");
    return t;
}

/* ---- tenant settings ---- */

static void settings_stored(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status == PL_NOT_FOUND ? PL_NOT_FOUND : PL_UNAVAILABLE,
                 "cannot store the settings, retry later");
        return;
    }
    Parley__TenantSettings *s = c->saved;
    chat_tenant *t = (chat_tenant *)c->tenant;
    tenants_set_conf(c->c, t, s, false);
    log_event(LOG_INFO, "tenant_settings", "tenant", t->id, "settings", r->tenant->settings,
              "remote", c->ip, NULL);
    Parley__Tenant out = PARLEY__TENANT__INIT;
    out.tenant = t->id;
    out.settings = s;
    call_ok(c, &out.base);
}

void h_tenant_settings(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__TenantSettingsUpdate *in = (const Parley__TenantSettingsUpdate *)body;
    chat_tenant *t = admin_tenant(c, in->tenant);
    if (!t) return;
    if (in->filter_policy && strcmp(in->filter_policy, "mask") &&
        strcmp(in->filter_policy, "reject")) {
        call_err(c, PL_BAD_REQUEST, "filter_policy must be reject or mask");
        return;
    }
    c->tenant = t;
    /* The current settings with the fields given replaced. */
    Parley__TenantSettings *s = arena_alloc(&c->arena, sizeof *s);
    parley__tenant_settings__init(s);
    tenant_conf_to_settings(tenant_conf_of(c->w, t), s);
    if (in->has_open_signup) s->open_signup = in->open_signup;
    if (in->has_friends_only_dm) s->friends_only_dm = in->friends_only_dm;
    if (in->filter_policy) s->filter_policy = !strcmp(in->filter_policy, "mask") ? "mask" : "reject";
    if (in->has_msg_rate) {
        s->has_msg_rate = in->msg_rate > 0;
        s->msg_rate = in->msg_rate;
    }
    if (in->has_msg_burst) {
        s->has_msg_burst = in->msg_burst > 0;
        s->msg_burst = in->msg_burst;
    }
    c->saved = s;
    buf json = {0};
    proto_encode(&s->base, PROTO_JSON, &json);
    store_req *r = call_store(c, STORE_TENANT_UPDATE, settings_stored);
    r->tenant = arena_alloc(&r->arena, sizeof *r->tenant);
    r->tenant->id = arena_strdup(&r->arena, t->id);
    r->tenant->settings = arena_strndup(&r->arena, (const char *)buf_begin(&json), buf_size(&json));
    buf_free(&json);
    call_submit(c, r);
}

/* ---- ban, unban, kick ---- */

static void reply_user(chat_call *c, bool banned)
{
    Parley__AdminUserOk out = PARLEY__ADMIN_USER_OK__INIT;
    out.tenant = (char *)c->tenant->id;
    out.user = c->user;
    out.has_banned = true;
    out.banned = banned;
    call_ok(c, &out.base);
}

static void ban_listed(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, PL_UNAVAILABLE, "cannot store the ban, retry later");
        return;
    }
    bool ban = c->flag;
    chat_ban_local(c->c, c->tenant->id, c->user, ban);
    log_event(LOG_INFO, ban ? "ban" : "unban", "tenant", c->tenant->id, "user", c->user, "reason",
              c->text ? c->text : "", "remote", c->ip, NULL);
    if (ban)
        sessions_kick(c->w, c->tenant, c->user, NULL, "this user is banned",
                      CHAT_CLOSE_UNAUTHORIZED, STATS_KICK_BAN);
    reply_user(c, ban);
}

static void ban_written(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status == PL_NOT_FOUND ? PL_NOT_FOUND : PL_UNAVAILABLE,
                 r->status == PL_NOT_FOUND ? "no such user" : "cannot store the ban, retry later");
        return;
    }
    store_req *nr = call_store(c, STORE_TOKEN_REVOKE, ban_listed);
    char id[sizeof CHAT_BAN_PREFIX + 2 * CHAT_ID_MAX + 2];
    snprintf(id, sizeof id, CHAT_BAN_PREFIX "%s/%s", c->tenant->id, c->user);
    nr->revoked = arena_alloc(&nr->arena, sizeof *nr->revoked);
    nr->revoked->jti = arena_strdup(&nr->arena, id);
    /* A ban never expires; an unban is the same entry, expired at once. */
    nr->revoked->expires_at = c->flag ? 0 : 1;
    call_submit(c, nr);
}

static void ban_user_got(chat_call *c, store_req *r)
{
    if (r->status) {
        call_err(c, r->status, r->status == PL_NOT_FOUND ? "no such user" : "store unavailable");
        return;
    }
    store_req *nr = call_store(c, STORE_USER_UPDATE, ban_written);
    nr->user = arena_alloc(&nr->arena, sizeof *nr->user);
    nr->user->id = arena_strdup(&nr->arena, c->user);
    nr->user->banned = c->flag;
    call_submit(c, nr);
}

static void ban(chat_call *c, const Parley__AdminUser *in, bool banned)
{
    chat_tenant *t = admin_tenant(c, in->tenant);
    if (!t) return;
    if (!chat_valid_id(in->user)) {
        call_err(c, PL_NOT_FOUND, "no such user");
        return;
    }
    c->tenant = t;
    c->flag = banned;
    snprintf(c->user, sizeof c->user, "%s", in->user);
    store_req *r = call_store(c, STORE_USER_GET, ban_user_got);
    r->user_id = arena_strdup(&r->arena, in->user);
    if (in->reason) c->text = arena_strdup(&c->arena, in->reason);
    call_submit(c, r);
}

void h_user_ban(chat_call *c, const ProtobufCMessage *body)
{
    ban(c, (const Parley__AdminUser *)body, true);
}

void h_user_unban(chat_call *c, const ProtobufCMessage *body)
{
    ban(c, (const Parley__AdminUser *)body, false);
}

void h_user_kick(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__AdminUser *in = (const Parley__AdminUser *)body;
    chat_tenant *t = admin_tenant(c, in->tenant);
    if (!t) return;
    if (!chat_valid_id(in->user)) {
        call_err(c, PL_NOT_FOUND, "no such user");
        return;
    }
    const char *device = in->device && *in->device ? in->device : NULL;
    if (device && !chat_valid_device(device)) {
        call_err(c, PL_BAD_REQUEST, "device must be one of web, ios, android, desktop, cli, bot");
        return;
    }
    char reason[128];
    snprintf(reason, sizeof reason, "%s",
             in->reason && *in->reason ? in->reason : "ended by an administrator");
    c->tenant = t;
    snprintf(c->user, sizeof c->user, "%s", in->user);
    log_event(LOG_INFO, "user_kick", "tenant", t->id, "user", in->user, "device",
              device ? device : "", "reason", reason, "remote", c->ip, NULL);
    sessions_kick(c->w, t, in->user, device, reason, CHAT_CLOSE_KICKED, STATS_KICK_ADMIN);
    reply_user(c, chat_is_banned(c->c, t, in->user));
}

/* ---- online counts ---- */

static void count_of(const chat_tenant *t, Parley__OnlineCount *out)
{
    int64_t users = atomic_load_explicit(&((chat_tenant *)t)->n_users, memory_order_relaxed);
    int64_t sessions = atomic_load_explicit(&((chat_tenant *)t)->n_sessions, memory_order_relaxed);
    out->tenant = (char *)t->id;
    out->has_users = out->has_sessions = true;
    out->users = users > 0 ? (uint64_t)users : 0;
    out->sessions = sessions > 0 ? (uint64_t)sessions : 0;
}

void h_online(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__OnlineQuery *in = (const Parley__OnlineQuery *)body;
    chat *ch = c->c;
    Parley__OnlineOk out = PARLEY__ONLINE_OK__INIT;
    out.has_users = out.has_sessions = true;
    if (in->tenant && *in->tenant) {
        chat_tenant *t = admin_tenant(c, in->tenant);
        if (!t) return;
        Parley__OnlineCount *one = arena_alloc(&c->arena, sizeof *one);
        parley__online_count__init(one);
        count_of(t, one);
        out.users = one->users;
        out.sessions = one->sessions;
        out.n_tenants = 1;
        out.tenants = arena_alloc(&c->arena, sizeof *out.tenants);
        out.tenants[0] = one;
        call_ok(c, &out.base);
        return;
    }
    pthread_rwlock_rdlock(&ch->tenants_lock);
    size_t n = HASH_COUNT(ch->tenants), i = 0;
    out.tenants = arena_alloc(&c->arena, (n + 1) * sizeof *out.tenants);
    chat_tenant *t, *tmp;
    HASH_ITER(hh, ch->tenants, t, tmp)
    {
        Parley__OnlineCount *one = arena_alloc(&c->arena, sizeof *one);
        parley__online_count__init(one);
        count_of(t, one);
        out.users += one->users;
        out.sessions += one->sessions;
        out.tenants[i++] = one;
    }
    pthread_rwlock_unlock(&ch->tenants_lock);
    out.n_tenants = i;
    call_ok(c, &out.base);
}

/* ---- word lists ---- */

void h_words_put(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__WordList *in = (const Parley__WordList *)body;
    chat_tenant *t = admin_tenant(c, in->tenant);
    if (!t) return;
    chat *ch = c->c;
    const char *text = in->words ? in->words : "";
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/words", ch->data_dir);
    snprintf(path, sizeof path, "%s/%s.txt", dir, t->id);
    mkdir(dir, 0700);
    if (pl_write_file_atomic(dir, path, text, strlen(text))) {
        char why[160];
        snprintf(why, sizeof why, "cannot write the word list: %s", strerror(errno));
        log_event(LOG_ERROR, "words_write_failed", "tenant", t->id, "file", path, "error",
                  strerror(errno), "remote", c->ip, NULL);
        call_err(c, PL_UNAVAILABLE, why);
        return;
    }
    Parley__TenantSettings s = PARLEY__TENANT_SETTINGS__INIT;
    tenant_conf_to_settings(tenant_conf_of(c->w, t), &s);
    tenants_set_conf(ch, t, &s, true);
    size_t words = filter_word_count(tenant_conf_of(c->w, t)->words);
    char n[24];
    snprintf(n, sizeof n, "%zu", words);
    log_event(LOG_INFO, "words_replaced", "tenant", t->id, "words", n, "remote", c->ip, NULL);
    Parley__WordListOk out = PARLEY__WORD_LIST_OK__INIT;
    out.tenant = t->id;
    out.has_words = true;
    out.words = (uint32_t)words;
    call_ok(c, &out.base);
}

/* ---- backups ---- */

#define BACKUP_SMALL_FILE (1u << 20)

/* Copy src to dst (created 0600); 0 or -1. */
static int copy_file(const char *src, const char *dst)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return -1;
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        close(in);
        return -1;
    }
    char b[16384];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, b, sizeof b)) > 0)
        if (write(out, b, (size_t)n) != n) {
            rc = -1;
            break;
        }
    if (n < 0 || fsync(out)) rc = -1;
    close(in);
    close(out);
    return rc;
}

/* Copy the regular files of src (at most BACKUP_SMALL_FILE bytes each)
 * into dst; returns how many could not be copied. */
static int copy_small_files(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (!d) return errno == ENOENT ? 0 : 1;
    int failed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char from[4200], to[4200];
        snprintf(from, sizeof from, "%s/%s", src, e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || lstat(from, &st) || !S_ISREG(st.st_mode) ||
            st.st_size > BACKUP_SMALL_FILE)
            continue;
        snprintf(to, sizeof to, "%s/%s", dst, e->d_name);
        if (copy_file(from, to)) failed++;
    }
    closedir(d);
    return failed;
}

static void checkpoint_done(chat_call *c, store_req *r)
{
    chat *ch = c->c;
    const char *bdir = c->text;
    if (r->status) {
        log_event(LOG_ERROR, "backup_failed", "backup", c->target, "error", r->err, "remote", c->ip,
                  NULL);
        rmdir(bdir);
        call_err(c, r->status == PL_CONFLICT ? PL_CONFLICT : PL_UNAVAILABLE,
                 "cannot take the checkpoint (see the log)");
        return;
    }
    char src[4200], dst[4200];
    int failed = copy_small_files(ch->data_dir, bdir);
    snprintf(src, sizeof src, "%s/words", ch->data_dir);
    snprintf(dst, sizeof dst, "%s/words", bdir);
    if (mkdir(dst, 0700) == 0) failed += copy_small_files(src, dst);
    if (failed) {
        log_event(LOG_ERROR, "backup_failed", "backup", c->target, "error",
                  "cannot copy the small files of the data directory", "remote", c->ip, NULL);
        call_err(c, PL_UNAVAILABLE, "the checkpoint was taken, but copying the data directory's files failed");
        return;
    }
    log_event(LOG_INFO, "backup", "backup", c->target, "path", bdir, "remote", c->ip, NULL);
    Parley__BackupOk out = PARLEY__BACKUP_OK__INIT;
    out.name = c->target;
    out.path = (char *)bdir;
    out.has_created_at = true;
    out.created_at = c->n1;
    call_ok(c, &out.base);
}

void h_backup(chat_call *c, const ProtobufCMessage *body)
{
    const Parley__Backup *in = (const Parley__Backup *)body;
    chat *ch = c->c;
    c->n1 = clock_wall_ms();
    if (in->name && *in->name) {
        if (!chat_valid_id(in->name) || in->name[0] == '.') {
            call_err(c, PL_BAD_REQUEST, "name must be 1 to 64 of A-Z a-z 0-9 _ . @ - (not starting with .)");
            return;
        }
        snprintf(c->target, sizeof c->target, "%s", in->name);
    } else {
        time_t now = (time_t)(c->n1 / 1000);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(c->target, sizeof c->target, "backup-%Y%m%dT%H%M%SZ", &tm);
    }
    char dir[4200], bdir[4300];
    snprintf(dir, sizeof dir, "%s/backups", ch->data_dir);
    snprintf(bdir, sizeof bdir, "%s/%s", dir, c->target);
    if (mkdir(dir, 0700) && errno != EEXIST) {
        call_err(c, PL_UNAVAILABLE, "cannot create DATA/backups");
        return;
    }
    if (mkdir(bdir, 0700)) {
        if (errno == EEXIST) call_err(c, PL_CONFLICT, "a backup of this name exists");
        else call_err(c, PL_UNAVAILABLE, "cannot create the backup directory");
        return;
    }
    store_req *r = call_store(c, STORE_CHECKPOINT, checkpoint_done);
    r->query = arena_strdup(&r->arena, bdir);
    c->text = arena_strdup(&c->arena, bdir);
    call_submit(c, r);
}
