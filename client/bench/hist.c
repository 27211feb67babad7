/*
 * hist.c - log-bucket latency histograms (see hist.h).  Pure.
 *
 * Index of v >= 128: with m the position of v's top bit (m >= 7) and
 * shift = m - 6, v >> shift lies in [64, 127]; the bucket is
 * 128 + (shift - 1) * 64 + ((v >> shift) - 64), and it holds the values
 * [top << shift, ((top + 1) << shift) - 1].
 */
#include "hist.h"

#include <string.h>

void hist_init(hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
    if (v < HIST_SUB) return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb >= HIST_MAX_BITS) return HIST_BUCKETS - 1;
    unsigned shift = msb - (HIST_SUB_BITS - 1);
    unsigned top = (unsigned)(v >> shift);
    return HIST_SUB + (shift - 1) * HIST_HALF + (top - HIST_HALF);
}

uint64_t hist_lower(unsigned idx)
{
    if (idx < HIST_SUB) return idx;
    unsigned k = idx - HIST_SUB;
    unsigned shift = k / HIST_HALF + 1;
    uint64_t top = k % HIST_HALF + HIST_HALF;
    return top << shift;
}

uint64_t hist_upper(unsigned idx)
{
    if (idx < HIST_SUB) return idx;
    if (idx >= HIST_BUCKETS - 1) return UINT64_MAX;
    unsigned k = idx - HIST_SUB;
    unsigned shift = k / HIST_HALF + 1;
    uint64_t top = k % HIST_HALF + HIST_HALF;
    return ((top + 1) << shift) - 1;
}

void hist_add(hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
}

void hist_merge(hist *into, const hist *from)
{
    if (!from->count) return;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min) into->min = from->min;
    if (from->max > into->max) into->max = from->max;
}

uint64_t hist_pct(const hist *h, double p)
{
    if (!h->count) return 0;
    if (p >= 100) return h->max;
    /* The smallest rank covering p percent; the epsilon keeps 99.9% of
     * 1000 at rank 999 despite binary fractions. */
    double r = p / 100.0 * (double)h->count - 1e-9;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r) rank++;
    if (rank < 1) rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t v = hist_upper(i);
            if (v > h->max) v = h->max;
            if (v < h->min) v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const hist *h) { return h->count ? h->sum / (double)h->count : 0; }
