/*
 * hist.h - latency histograms with logarithmic buckets, HDR style.
 *
 * Values are nanoseconds.  Values below 128 have a bucket each; above,
 * every power of two is split into 64 buckets, so a bucket's width is at
 * most 1/64 (1.6%) of its values; the range ends at 2^40 ns (18 minutes),
 * larger values land in the last bucket.  A percentile is the upper bound
 * of the bucket holding that rank (never above the exact maximum), so it
 * over-reports by at most 1.6%, never under-reports.
 *
 * A hist is plain data (no pointers): worker processes write theirs to
 * the parent through a pipe as bytes, and the parent merges them.
 */
#ifndef PARLEY_BENCH_HIST_H
#define PARLEY_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_HALF (HIST_SUB / 2)
#define HIST_MAX_BITS 40
#define HIST_BUCKETS (HIST_SUB + (HIST_MAX_BITS - HIST_SUB_BITS) * HIST_HALF)

typedef struct hist {
    uint64_t count;
    uint64_t min, max;      /* exact; min is UINT64_MAX while empty */
    double sum;
    uint64_t b[HIST_BUCKETS];
} hist;

void hist_init(hist *h);
void hist_add(hist *h, uint64_t v);
void hist_merge(hist *into, const hist *from);
/* The value at percentile p (0 < p <= 100); 0 when empty. */
uint64_t hist_pct(const hist *h, double p);
double hist_mean(const hist *h);

/* Bucket arithmetic, exposed for tests. */
unsigned hist_index(uint64_t v);
uint64_t hist_upper(unsigned idx);
uint64_t hist_lower(unsigned idx);

#endif
