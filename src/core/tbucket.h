/*
 * tbucket.h - a token bucket: `rate` tokens per second, at most `burst`.
 *
 * Pure arithmetic over a caller-supplied clock, so tests drive time by hand.
 * A zeroed bucket is full the first time it is used.
 */
#ifndef PARLEY_CORE_TBUCKET_H
#define PARLEY_CORE_TBUCKET_H

#include <stdint.h>

typedef struct tbucket {
    double tokens;
    uint64_t last_ms;    /* 0 = never used: starts full */
} tbucket;

/* Take one token at time now_ms.  Returns 0 if taken, else the number of
 * milliseconds (>= 1) until one will be available; nothing is taken then.
 * rate <= 0 means no limit (always 0, the bucket untouched).  A burst
 * below 1 counts as 1.  A clock that goes backwards refills nothing. */
uint64_t tbucket_take(tbucket *b, uint64_t now_ms, double rate, double burst);

#endif
