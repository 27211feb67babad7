/*
 * main.c - parleyd: read the settings, open the store, start chat and the
 * network, run until SIGTERM/SIGINT, then shut down gracefully.
 *
 * Start-up fails with one line on stderr and exit status 1 for a bad
 * setting, a port in use (checked before the data directory is touched),
 * an unusable data directory or one another parleyd holds (DATA/parley.pid,
 * flocked until the store is closed), or a store that cannot open (2 for
 * a command-line mistake).
 *
 * Shutdown (SIGTERM or SIGINT):
 *   draining: stop accepting, /readyz answers 503, every session gets
 *             `goaway`; after shutdown_grace_ms ...
 *   closing:  net_stop closes every connection (code 1001) and joins the
 *             workers, which wait for their calls in flight;
 *   flushed:  the store finishes what it was given, syncs and closes; exit 0.
 * SIGHUP reloads the word lists and the reloadable settings: the config
 * file, the environment and the command line are read again, and
 * log_level, msg_rate, msg_burst, login_rate_per_ip, login_burst_per_ip,
 * failed_login_max, failed_login_window_ms and the per-IP connection
 * limits (max_conns_per_ip, conn_rate_per_ip, conn_burst_per_ip) take
 * their new values at once (reload_settings).  Other settings that
 * changed are logged as waiting for a restart; a file that no longer
 * parses is logged and changes nothing.
 *
 * The data directory is versioned as a whole (ops/datadir.c) and the
 * store by its own layout version; both are migrated forward at start and
 * a newer one than this build knows is refused.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "core/clock.h"
#include "core/config.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/metrics.h"
#include "ops/ops.h"
#include "server/server.h"

static void split_origins(server *srv)
{
    const char *s = srv->cfg.allowed_origins;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        while (n && *s == ' ') s++, n--;
        while (n && s[n - 1] == ' ') n--;
        if (n == 1 && *s == '*') srv->any_origin = true;
        else if (n) {
            srv->origins = pl_realloc(srv->origins, (srv->n_origins + 1) * sizeof *srv->origins);
            srv->origins[srv->n_origins++] = pl_strndup(s, n);
        }
        s = comma ? comma + 1 : NULL;
    }
}

static int prepare_data_dir(server *srv, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0700) && errno != EEXIST) {
        snprintf(err, errlen, "cannot create data directory %s: %s", dir, strerror(errno));
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "data directory %s is not a directory", dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK)) {
        snprintf(err, errlen, "data directory %s is not writable: %s", dir, strerror(errno));
        return -1;
    }
    if ((srv->dir_lock = ops_datadir_lock(dir, err, errlen)) < 0) return -1;
    int from = 0;
    if (ops_datadir_prepare(dir, &from, err, errlen)) return -1;
    if (from < 0) {
        log_event(LOG_INFO, "data directory initialised", "data", dir, NULL);
    } else if (from != OPS_DATADIR_VERSION) {
        char f[16], t[16];
        snprintf(f, sizeof f, "%d", from);
        snprintf(t, sizeof t, "%d", OPS_DATADIR_VERSION);
        log_event(LOG_INFO, "data directory format upgraded", "data", dir, "from", f, "to", t, NULL);
    }
    char words[4096];
    snprintf(words, sizeof words, "%s/words", dir);
    mkdir(words, 0700);
    return 0;
}

/* ---- SIGHUP: reloadable settings ---- */

static const char *const reloadable[] = {"log_level", "msg_rate", "msg_burst",
                                         "login_rate_per_ip", "login_burst_per_ip",
                                         "failed_login_max", "failed_login_window_ms",
                                         "max_conns_per_ip", "conn_rate_per_ip",
                                         "conn_burst_per_ip"};

static bool is_reloadable(const char *name)
{
    for (size_t i = 0; i < sizeof reloadable / sizeof reloadable[0]; i++)
        if (!strcmp(reloadable[i], name)) return true;
    return false;
}

static bool setting_changed(const config_def *d, const settings *a, const settings *b)
{
    const char *pa = (const char *)a + d->offset, *pb = (const char *)b + d->offset;
    switch (d->type) {
    case CONFIG_STR: {
        const char *x = *(char *const *)pa, *y = *(char *const *)pb;
        return strcmp(x ? x : "", y ? y : "") != 0;
    }
    case CONFIG_INT: return *(const int64_t *)pa != *(const int64_t *)pb;
    case CONFIG_BOOL: return *(const bool *)pa != *(const bool *)pb;
    case CONFIG_DOUBLE: return *(const double *)pa != *(const double *)pb;
    }
    return false;
}

static void chat_limits_of(const settings *cfg, chat_limits *l)
{
    l->msg_rate = cfg->msg_rate;
    l->msg_burst = cfg->msg_burst;
    l->login_rate_ip = cfg->login_rate_per_ip;
    l->login_burst_ip = cfg->login_burst_per_ip;
    l->failed_login_max = (uint32_t)cfg->failed_login_max;
    l->failed_login_window_ms = (uint32_t)cfg->failed_login_window_ms;
}

static void reload_settings(server *srv)
{
    settings next;
    memset(&next, 0, sizeof next);
    char err[512];
    bool help = false;
    int lvl = -1;
    if (config_load(settings_defs, settings_count, &next, srv->argc, srv->argv, &help, err,
                    sizeof err) == 0 &&
        (lvl = log_level_parse(next.log_level)) < 0)
        snprintf(err, sizeof err, "bad setting log_level=%s", next.log_level);
    if (lvl < 0) {
        log_event(LOG_ERROR, "settings not reloaded", "error", err, NULL);
        config_free_strings(settings_defs, settings_count, &next);
        return;
    }
    buf applied = {0}, waiting = {0};
    for (size_t i = 0; i < settings_count; i++) {
        const config_def *d = &settings_defs[i];
        if (!setting_changed(d, &srv->cfg, &next)) continue;
        buf *b = is_reloadable(d->name) ? &applied : &waiting;
        if (buf_size(b)) buf_appendc(b, ',');
        buf_appends(b, d->name);
    }
    buf_appendc(&applied, 0);
    buf_appendc(&waiting, 0);
    log_set_level((log_level)lvl);
    chat_limits l;
    chat_limits_of(&next, &l);
    chat_set_limits(srv->chat, &l);
    net_set_ip_limits(srv->net, (uint32_t)next.max_conns_per_ip, next.conn_rate_per_ip,
                      next.conn_burst_per_ip);
    /* Keep the new values of what was applied; the rest stays as started. */
    for (size_t i = 0; i < settings_count; i++) {
        const config_def *d = &settings_defs[i];
        if (!is_reloadable(d->name)) continue;
        char *pa = (char *)&srv->cfg + d->offset, *pb = (char *)&next + d->offset;
        size_t size = d->type == CONFIG_STR ? sizeof(char *) : d->type == CONFIG_BOOL ? sizeof(bool) : 8;
        char tmp[8];
        memcpy(tmp, pa, size);
        memcpy(pa, pb, size);
        memcpy(pb, tmp, size);
    }
    config_free_strings(settings_defs, settings_count, &next);
    log_event(LOG_INFO, "settings reloaded", "applied", (char *)buf_begin(&applied),
              "need_restart", (char *)buf_begin(&waiting), NULL);
    buf_free(&applied);
    buf_free(&waiting);
}

/* ---- metrics of the server itself ---- */

static double m_uptime(void *ud)
{
    server *srv = ud;
    return (double)(clock_wall_ms() - srv->started_ms) / 1000.0;
}

static double m_heap(void *ud)
{
    (void)ud;
    return (double)pl_mem_used();
}

static double m_up(void *ud)
{
    server *srv = ud;
    return atomic_load(&srv->draining) ? 0 : 1;
}

static double m_draining(void *ud) { return 1 - m_up(ud); }

/* The server whose store the store counters read (one per process). */
static server *srv__current;

static double m_store(void *ud)
{
    /* ud: offset of the counter in store_stats */
    store_stats st = {0};
    if (srv__current && srv__current->st) store_get_stats(srv__current->st, &st);
    return (double)*(const uint64_t *)((const char *)&st + (size_t)ud);
}

static void server_metrics(server *srv)
{
    srv__current = srv;
    ops_process_metrics();
    metric_fn(METRIC_GAUGE, "parley_up", "1 while the node serves, 0 while it drains.", NULL, m_up,
              srv);
    metric_fn(METRIC_GAUGE, "parley_draining", "1 while the node shuts down (after SIGTERM).", NULL,
              m_draining, srv);
    metric_fn(METRIC_GAUGE, "parley_uptime_seconds", "Seconds since start.", NULL, m_uptime, srv);
    metric_fn(METRIC_GAUGE, "parley_heap_bytes", "Bytes allocated by parley's own allocations.", NULL,
              m_heap, NULL);
    metric_fn(METRIC_COUNTER, "parley_store_batches_total",
              "Write batches the store committed or failed.", NULL, m_store,
              (void *)offsetof(store_stats, batches));
    metric_fn(METRIC_COUNTER, "parley_store_failed_batches_total",
              "Write batches the disk refused (each failed every write in it with unavailable).",
              NULL, m_store, (void *)offsetof(store_stats, failed_batches));
    metric_fn(METRIC_COUNTER, "parley_store_writes_total", "Write requests the store executed.",
              NULL, m_store, (void *)offsetof(store_stats, writes));
    metric_fn(METRIC_COUNTER, "parley_store_reads_total", "Read requests the store executed.", NULL,
              m_store, (void *)offsetof(store_stats, reads));
}

static void grace_cb(uv_timer_t *t)
{
    server *srv = t->data;
    log_event(LOG_INFO, "closing connections", NULL);
    uv_close((uv_handle_t *)&srv->grace, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    net_stop(srv->net, NET_CLOSE_GOING_AWAY);
}

static void begin_shutdown(server *srv)
{
    if (atomic_exchange(&srv->draining, true)) return;
    log_event(LOG_INFO, "shutting down", NULL);
    net_stop_accepting(srv->net);
    for (size_t i = 0; i < net_worker_count(srv->net); i++) {
        srv_worker *sw = net_worker_data(net_worker_at(srv->net, i));
        if (sw) mailbox_post(net_worker_mailbox(sw->nw), &sw->goaway_mail);
    }
    uv_timer_start(&srv->grace, grace_cb, (uint64_t)srv->cfg.shutdown_grace_ms, 0);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    server *srv = h->data;
    if (signum == SIGHUP) {
        log_event(LOG_INFO, "reloading word lists and settings", NULL);
        reload_settings(srv);
        chat_reload(srv->chat);
        return;
    }
    begin_shutdown(srv);
}

static int start(server *srv, char *err, size_t errlen)
{
    settings *cfg = &srv->cfg;
    int lvl = log_level_parse(cfg->log_level);
    if (lvl < 0) {
        snprintf(err, errlen, "bad setting log_level=%s: expected debug, info, warn or error",
                 cfg->log_level);
        return -1;
    }
    if (log_open(cfg->log_file, (log_level)lvl, cfg->node_id)) {
        snprintf(err, errlen, "cannot open log file %s: %s", cfg->log_file, strerror(errno));
        return -1;
    }
    if (*cfg->redis) {
        snprintf(err, errlen, "bad setting redis=%s: cluster mode is not available in this build",
                 cfg->redis);
        return -1;
    }
    /* Before anything is written: a port in use or a data directory held
     * by another parleyd stops the start with one line, not after a fresh
     * directory was initialised or with RocksDB's lock error. */
    net_config probe = {.http_addr = cfg->http, .tcp_addr = cfg->tcp, .udp_addr = cfg->udp};
    if (net_check_addrs(&probe, err, errlen)) return -1;
    if (prepare_data_dir(srv, cfg->data, err, errlen)) return -1;
    int workers = (int)cfg->workers;
    if (workers <= 0) {
        /* One core is left to the store thread and RocksDB's flushes and
         * compactions, which are busy whenever messages are: on two cores,
         * one worker delivers more 1:1 messages and channel pushes per
         * second than two (docs/benchmarks.md). */
        unsigned n = uv_available_parallelism();
        workers = n > 1 ? (int)n - 1 : 1;
    }
    srv->n_workers = (size_t)workers;
    store_config sc = {.data_dir = cfg->data, .url = *cfg->store ? cfg->store : NULL,
                       .sync = cfg->store_sync, .max_batch = 1024};
    if (store_open(&srv->st, &sc, err, errlen)) return -1;

    chat_config cc = {
        .data_dir = cfg->data,
        .node_id = cfg->node_id,
        .workers = (size_t)workers,
        .admin_token = cfg->admin_token,
        .token_ttl_ms = (uint64_t)cfg->token_ttl_ms,
        .max_text = (uint32_t)cfg->max_text,
        .group_max_members = (uint32_t)cfg->group_max_members,
        /* A page must fit the outbound queue with room left for pushes, or
         * a reader that keeps up would be cut off as a slow consumer. */
        .max_page_bytes = (size_t)cfg->max_outbound / 4,
        .login_timeout_ms = (uint32_t)cfg->login_timeout_ms,
        .msg_rate = cfg->msg_rate,
        .msg_burst = cfg->msg_burst,
        .login_rate_ip = cfg->login_rate_per_ip,
        .login_burst_ip = cfg->login_burst_per_ip,
        .failed_login_max = (uint32_t)cfg->failed_login_max,
        .failed_login_window_ms = (uint32_t)cfg->failed_login_window_ms,
        .hasher = {.threads = (int)cfg->argon2_threads,
                   .max_queue = (size_t)cfg->argon2_queue,
                   .opslimit = (unsigned long long)cfg->argon2_ops,
                   .memlimit = (size_t)cfg->argon2_mem},
    };
    if (chat_new(&srv->chat, &cc, srv->st, err, errlen)) return -1;

    server_metrics(srv);
    split_origins(srv);
    net_config nc = {
        .http_addr = cfg->http,
        .tcp_addr = cfg->tcp,
        .udp_addr = cfg->udp,
        .workers = workers,
        .max_frame = (size_t)cfg->max_frame,
        .max_header = (size_t)cfg->max_header,
        .max_body = (size_t)cfg->max_body,
        .max_outbound = (size_t)cfg->max_outbound,
        .header_timeout_ms = (uint32_t)cfg->header_timeout_ms,
        .idle_timeout_ms = (uint32_t)cfg->idle_timeout_ms,
        .max_conns_per_ip = (uint32_t)cfg->max_conns_per_ip,
        .conn_rate_per_ip = cfg->conn_rate_per_ip,
        .conn_burst_per_ip = cfg->conn_burst_per_ip,
        .tick_ms = SRV_TICK_MS,
    };
    net_callbacks cb;
    srv_callbacks(srv, &cb);
    if (net_start(&srv->net, &nc, &cb, err, errlen)) return -1;

    srv->loop = net_main_loop(srv->net);
    uv_timer_init(srv->loop, &srv->grace);
    srv->grace.data = srv;
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    uv_signal_init(srv->loop, &srv->sighup);
    srv->sigterm.data = srv->sigint.data = srv->sighup.data = srv;
    uv_signal_start(&srv->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&srv->sigint, signal_cb, SIGINT);
    uv_signal_start(&srv->sighup, signal_cb, SIGHUP);
    char http_port[16], tcp_port[16], udp_port[16];
    snprintf(http_port, sizeof http_port, "%d", net_http_port(srv->net));
    snprintf(tcp_port, sizeof tcp_port, "%d", net_tcp_port(srv->net));
    snprintf(udp_port, sizeof udp_port, "%d", net_udp_port(srv->net));
    log_event(LOG_INFO, "parleyd started", "http", cfg->http, "http_port", http_port, "tcp",
              cfg->tcp, "tcp_port", tcp_port, "udp", cfg->udp, "udp_port", udp_port, "data", cfg->data,
              "store", *cfg->store ? "postgres" : "rocksdb", NULL);
    return 0;
}

int main(int argc, char **argv)
{
    server srv;
    memset(&srv, 0, sizeof srv);
    srv.dir_lock = -1;
    srv.started_ms = clock_wall_ms();
    char err[512];
    bool help = false;
    srv.argc = argc;
    srv.argv = argv;
    /* A file-size limit (ulimit -f) must fail a write with EFBIG, which the
     * store handles like a full disk, instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    if (config_load(settings_defs, settings_count, &srv.cfg, argc, argv, &help, err, sizeof err)) {
        fprintf(stderr, "parleyd: %s\n", err);
        config_free_strings(settings_defs, settings_count, &srv.cfg);
        return 2;
    }
    if (help) {
        config_usage(settings_defs, settings_count, "parleyd");
        config_free_strings(settings_defs, settings_count, &srv.cfg);
        return 0;
    }
    int rc = 0;
    if (start(&srv, err, sizeof err)) {
        fprintf(stderr, "parleyd: %s\n", err);
        rc = 1;
    } else {
        net_run(srv.net);
    }
    srv__current = NULL;
    if (srv.st) store_close(srv.st);
    if (srv.dir_lock >= 0) close(srv.dir_lock); /* the store is closed: the directory is free */
    if (!rc) log_event(LOG_INFO, "parleyd stopped", "store", "flushed and closed", NULL);
    chat_free(srv.chat);
    if (srv.net) net_free(srv.net);
    for (size_t i = 0; i < srv.n_origins; i++) pl_free(srv.origins[i]);
    pl_free(srv.origins);
    config_free_strings(settings_defs, settings_count, &srv.cfg);
    log_close();
    return rc;
}
