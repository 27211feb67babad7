/*
 * limits.h - rate limits keyed by a string (a user, an IP address).
 *
 * A limiter is a set of token buckets (core/tbucket.h) keyed by string,
 * shared by every worker thread.  It is split into 64 shards, each with its
 * own mutex, so two workers contend only when they touch keys of the same
 * shard, and never on a lock held across any I/O.  Buckets idle for longer
 * than it takes them to refill are dropped by limits_sweep, so memory is
 * bounded by the keys active within that window.
 *
 * Used for: messages per user (key "tenant/user"), logins per IP, failed
 * logins per user.  Rate and burst are passed per call, so a per-tenant
 * setting applies at once without rebuilding anything.
 */
#ifndef PARLEY_CHAT_LIMITS_H
#define PARLEY_CHAT_LIMITS_H

#include <stddef.h>
#include <stdint.h>

typedef struct limits limits;

limits *limits_new(void);
void limits_free(limits *l);

/* Take one token from key's bucket at now_ms.  0 = allowed, else the
 * milliseconds to wait (the retry_after_ms of a rate_limited error).
 * rate <= 0 means unlimited. */
uint64_t limits_take(limits *l, const char *key, uint64_t now_ms, double rate, double burst);

/* Drop buckets untouched for max_idle_ms. Returns the number dropped. */
size_t limits_sweep(limits *l, uint64_t now_ms, uint64_t max_idle_ms);

/* Would a take succeed now?  0 if key has a whole token, else the
 * milliseconds until it will; takes nothing.  An unknown key is full. */
uint64_t limits_peek(limits *l, const char *key, uint64_t now_ms, double rate, double burst);

/* Number of buckets held (for tests and metrics). */
size_t limits_count(limits *l);

#endif
