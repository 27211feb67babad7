/*
 * settings.c - the table of parleyd's settings: name, type, default, help.
 * The defaults are those of SPEC section 5 and of docs in the README.
 */
#include "server/settings.h"

#include <stddef.h>

#include "core/config.h"

/* The web page's built files: CMake passes its build directory's web/. */
#ifndef PARLEY_WEB_ROOT_DEFAULT
#define PARLEY_WEB_ROOT_DEFAULT "./build/web"
#endif

#define S(name, type, def, min, max, help) \
    {#name, CONFIG_##type, def, min, max, help, offsetof(settings, name)}

const config_def settings_defs[] = {
    S(http, STR, "127.0.0.1:8080", 0, 0, "HTTP and WebSocket listen address"),
    S(tcp, STR, "127.0.0.1:9000", 0, 0, "TCP listen address (\"\" for none)"),
    S(udp, STR, "127.0.0.1:9000", 0, 0, "UDP listen address (\"\" for none)"),
    S(data, STR, "./data", 0, 0, "data directory (embedded store, secrets, word lists)"),
    S(store, STR, "", 0, 0, "postgres://... to use PostgreSQL instead of the embedded store"),
    S(redis, STR, "", 0, 0, "redis://... to join a cluster (none: single node)"),
    S(node_id, STR, "node1", 0, 0, "this node's name in logs and in a cluster"),
    S(workers, INT, "0", 0, 256, "worker threads (0: one per core but one, at least one)"),
    S(admin_token, STR, "", 0, 0, "admin API token (none: generated into DATA/admin.token)"),
    S(allowed_origins, STR, "", 0, 0,
      "comma-separated Origins allowed to open WebSockets, * for any (same host is always allowed)"),
    S(web_root, STR, PARLEY_WEB_ROOT_DEFAULT, 0, 0,
      "directory of the web chat page served at / (\"\" for none); read once, at the first request"),
    S(log_file, STR, "", 0, 0, "log file (none: stderr)"),
    S(log_level, STR, "info", 0, 0, "debug, info, warn or error"),
    S(max_frame, INT, "65536", 64, 16777216, "largest WebSocket message or TCP frame, bytes"),
    S(max_header, INT, "16384", 1024, 1048576, "largest HTTP request head, bytes"),
    S(max_body, INT, "1048576", 1024, 67108864, "largest HTTP request body, bytes"),
    S(max_outbound, INT, "4194304", 65536, 1073741824,
      "outbound bytes queued per connection before it is closed as a slow consumer"),
    S(header_timeout_ms, INT, "10000", 100, 3600000, "time to send a whole HTTP request head"),
    S(idle_timeout_ms, INT, "90000", 100, 86400000,
      "close a connection that sent nothing (not even a ping) for this long"),
    S(login_timeout_ms, INT, "15000", 100, 3600000, "time for a new connection to log in"),
    S(shutdown_grace_ms, INT, "3000", 0, 600000,
      "on SIGTERM: time between goaway and closing connections"),
    S(max_conns_per_ip, INT, "10000", 0, 10000000, "open connections per client IP (0: no limit)"),
    S(conn_rate_per_ip, DOUBLE, "200", 0, 0, "new connections per second per IP (0: no limit)"),
    S(conn_burst_per_ip, DOUBLE, "1000", 0, 0, "burst of new connections per IP"),
    S(login_rate_per_ip, DOUBLE, "20", 0, 0, "password logins and sign-ups per second per IP"),
    S(login_burst_per_ip, DOUBLE, "100", 0, 0, "burst of logins per IP"),
    S(msg_rate, DOUBLE, "50", 0, 0, "messages per second per user (a tenant may set its own)"),
    S(msg_burst, DOUBLE, "200", 0, 0, "burst of messages per user"),
    S(failed_login_max, INT, "10", 1, 1000000, "wrong passwords per user per window before lockout"),
    S(failed_login_window_ms, INT, "300000", 1000, 86400000, "the lockout window"),
    S(group_max_members, INT, "2000", 2, 1000000, "members of a group (channels are unbounded)"),
    S(max_text, INT, "10000", 1, 1000000, "longest message, in Unicode code points"),
    S(token_ttl_ms, INT, "2592000000", 1000, 31536000000, "lifetime of issued tokens (30 days)"),
    S(argon2_threads, INT, "2", 1, 64, "threads hashing passwords (argon2id)"),
    S(argon2_ops, INT, "2", 1, 10, "argon2id passes"),
    S(argon2_mem, INT, "19922944", 8192, 1073741824, "argon2id memory per hash, bytes"),
    S(argon2_queue, INT, "256", 1, 1000000, "password hashes queued at most; past it logins get unavailable"),
    S(store_sync, BOOL, "true", 0, 0, "fsync the store's log on every commit (false loses durability)"),
};

const size_t settings_count = sizeof settings_defs / sizeof settings_defs[0];
