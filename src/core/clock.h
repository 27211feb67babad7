/* clock.h - wall-clock and monotonic time in milliseconds and nanoseconds. */
#ifndef PARLEY_CORE_CLOCK_H
#define PARLEY_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t clock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline uint64_t clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t clock_mono_ms(void) { return clock_mono_ns() / 1000000u; }

#endif
