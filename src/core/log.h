/*
 * log.h - JSON-lines logging.
 *
 * One line per record: {"ts":"...","level":"info","msg":"...", fields...}.
 * Fields are given as key/value string pairs ended by NULL, so business
 * events (login, kick, signup...) carry tenant, user, device, remote:
 *
 *     log_event(LOG_INFO, "login", "tenant", t, "user", u, NULL);
 *
 * Never pass a password or token as a field.  Thread-safe: each record is
 * formatted into a local buffer and written with one write(2).
 */
#ifndef PARLEY_CORE_LOG_H
#define PARLEY_CORE_LOG_H

typedef enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Level by name ("debug", "info", "warn", "error"); -1 if unknown. */
int log_level_parse(const char *name);

/* Where logs go: a file path, or NULL for stderr.  0 on success. */
int log_open(const char *path, log_level min, const char *node_id);
void log_close(void);
/* Change the lowest level written (SIGHUP); any thread. */
void log_set_level(log_level min);

void log_event(log_level lvl, const char *msg, ...) __attribute__((sentinel));
void log_msgf(log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_info(...) log_msgf(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msgf(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msgf(LOG_ERROR, __VA_ARGS__)
#define log_debug(...) log_msgf(LOG_DEBUG, __VA_ARGS__)

#endif
