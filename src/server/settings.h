/*
 * settings.h - every setting of parleyd, in one table (settings.c).
 *
 * Each is a config-file key, a PARLEY_<NAME> environment variable and a
 * --name flag (core/config.h); docs/configuration in the README lists
 * them.  Durations are in milliseconds, sizes in bytes.
 */
#ifndef PARLEY_SERVER_SETTINGS_H
#define PARLEY_SERVER_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

typedef struct settings {
    char *http, *tcp, *udp, *data, *store, *redis, *node_id;
    int64_t workers;
    char *admin_token;
    char *allowed_origins;
    char *web_root;
    char *log_file, *log_level;
    int64_t max_frame, max_header, max_body, max_outbound;
    int64_t header_timeout_ms, idle_timeout_ms, login_timeout_ms, shutdown_grace_ms;
    int64_t max_conns_per_ip;
    double conn_rate_per_ip, conn_burst_per_ip;
    double login_rate_per_ip, login_burst_per_ip;
    double msg_rate, msg_burst;
    int64_t failed_login_max, failed_login_window_ms;
    int64_t max_text;
    int64_t group_max_members;
    int64_t token_ttl_ms;
    int64_t argon2_threads, argon2_ops, argon2_mem, argon2_queue;
    bool store_sync;
} settings;

extern const config_def settings_defs[];
extern const size_t settings_count;

#endif
