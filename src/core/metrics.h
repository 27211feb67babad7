/*
 * metrics.h - the process's metrics registry: counters, gauges and
 * histograms with fixed buckets, rendered in the Prometheus text format.
 *
 * Every layer counts through this header (core is the only layer all of
 * them may include); src/server wires the registry to GET /metrics.
 *
 * Cost on the hot path.  A series is one slot (counters, gauges) or a run
 * of slots (histograms: one per bucket, one for the sum) in a table that
 * has one row per thread shard.  A thread takes a shard the first time it
 * counts and keeps it, so a worker adds to its own cache lines with a
 * relaxed atomic add: no lock, no line shared with another thread while
 * there are no more threads than shards (past that, threads share rows
 * and the atomic add keeps the sums right).  A scrape sums the rows.
 *
 * Series.  A series is a name plus a fixed label set written as
 * Prometheus label text (`transport="ws",device="ios"`), chosen when it is
 * registered; label values are never built per event.  Registering the
 * same name and labels again returns the same handle, so a layer may
 * register at every start (tests open stores many times).  Series of one
 * name are rendered together under one HELP and TYPE line and must share
 * their type (and, for histograms, their buckets).  Registration takes a
 * mutex: do it at start-up, keep the handle, and count with it.
 *
 * Gauges are the sum of the adds of every thread (so an add on one thread
 * and a subtract on another cancel), or the value of a function called at
 * scrape time (metric_fn), for values read elsewhere (process RSS, queue
 * lengths).
 *
 * Histograms observe unsigned integers in a base unit chosen by the caller
 * (nanoseconds, items); `scale` turns them into the exposed unit (1e-9
 * for seconds), bounds included.  Buckets are the upper bounds given, plus
 * +Inf; the exposition is cumulative, as Prometheus wants it.
 *
 * A NULL handle is accepted everywhere and counts nothing, so code that
 * runs before registration (unit tests) needs no special case.  When the
 * table is full, registration returns NULL and logs nothing: the table is
 * sized far above what parley registers (METRICS_SLOTS).
 */
#ifndef PARLEY_CORE_METRICS_H
#define PARLEY_CORE_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Thread shards (rows) and slots per row. */
#define METRICS_SHARDS 16
#define METRICS_SLOTS 8192
/* Most buckets a histogram may have (besides +Inf). */
#define METRICS_MAX_BUCKETS 24

typedef enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

typedef struct metric {
    metric_type type;
    uint32_t slot;                 /* first slot in a row */
    uint32_t n_bounds;             /* histograms: buckets before +Inf */
    const uint64_t *bounds;        /* histograms: ascending upper bounds, base unit */
} metric;

/* Counters and gauges.  labels: NULL or "" for none. */
metric *metric_counter(const char *name, const char *help, const char *labels);
metric *metric_gauge(const char *name, const char *help, const char *labels);
/* A histogram with bounds[0..n) (ascending, copied) in the base unit; the
 * exposition multiplies values and bounds by scale. */
metric *metric_histogram(const char *name, const char *help, const char *labels,
                         const uint64_t *bounds, size_t n, double scale);
/* A counter or gauge whose value fn(ud) returns at scrape time (fn runs
 * on the scraping thread and must be thread-safe).  Registering the same
 * name and labels again replaces fn and ud. */
void metric_fn(metric_type type, const char *name, const char *help, const char *labels,
               double (*fn)(void *ud), void *ud);
/* Forget the function of a series registered with metric_fn (its owner
 * is going away); the series disappears from the exposition. */
void metric_fn_drop(const char *name, const char *labels);

/* Bounds for durations in nanoseconds (50 us .. 10 s; scale 1e-9) and for
 * sizes in items (1 .. 4096; scale 1). */
extern const uint64_t metrics_seconds_ns[];
extern const size_t metrics_seconds_ns_n;
extern const uint64_t metrics_sizes[];
extern const size_t metrics_sizes_n;

/* The calling thread's row; internal to the inline functions below. */
extern _Thread_local _Atomic uint64_t *metrics__tl_row;
_Atomic uint64_t *metrics__row_take(void);
static inline _Atomic uint64_t *metrics__row(void)
{
    _Atomic uint64_t *r = metrics__tl_row;
    return r ? r : metrics__row_take();
}

static inline void metric_add(metric *m, uint64_t n)
{
    if (m) atomic_fetch_add_explicit(&metrics__row()[m->slot], n, memory_order_relaxed);
}

static inline void metric_inc(metric *m) { metric_add(m, 1); }

/* Gauges: subtract (the row's slot wraps; the sum over rows does not). */
static inline void metric_sub(metric *m, uint64_t n)
{
    if (m) atomic_fetch_sub_explicit(&metrics__row()[m->slot], n, memory_order_relaxed);
}

/* Histograms: one observation of v (base unit); n observations of the same
 * v at the cost of one (a fan-out's deliveries). */
void metric_observe(metric *m, uint64_t v);
void metric_observe_n(metric *m, uint64_t v, uint64_t n);

/* The current value of a counter or gauge (sum over rows), or of a
 * histogram's count; for tests and for callers that report it. */
int64_t metric_value(const metric *m);

/* Append the whole registry in the Prometheus text format 0.0.4. */
void metrics_render(buf *out);

#endif
