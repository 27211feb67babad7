/*
 * backoff.c - the client's random numbers and reconnect delays (pure).
 *
 * The generator is xorshift128+, seeded once per client from getrandom(2).
 * It feeds WebSocket masking keys, Sec-WebSocket-Key, generated cmids and
 * jitter: none of these needs a cryptographic generator (masking exists to
 * stop cache poisoning by scripts in browsers, which a native client cannot
 * be), and one system call per frame would cost more than the frame.
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "internal.h"

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void parley__rng_seed_with(parley__rng *r, uint64_t seed)
{
    r->s[0] = splitmix(&seed);
    r->s[1] = splitmix(&seed);
    if (!r->s[0] && !r->s[1]) r->s[1] = 1;
}

void parley__rng_seed(parley__rng *r)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)r;
    }
    parley__rng_seed_with(r, seed);
}

uint64_t parley__rng_next(parley__rng *r)
{
    uint64_t a = r->s[0];
    const uint64_t b = r->s[1];
    r->s[0] = b;
    a ^= a << 23;
    r->s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return r->s[1] + b;
}

void parley__rng_bytes(parley__rng *r, uint8_t *out, size_t n)
{
    while (n) {
        uint64_t v = parley__rng_next(r);
        size_t k = n < 8 ? n : 8;
        memcpy(out, &v, k);
        out += k;
        n -= k;
    }
}

uint32_t parley__backoff(unsigned attempt, uint32_t min_ms, uint32_t max_ms, uint64_t rnd)
{
    if (min_ms < 1) min_ms = 1;
    if (max_ms < min_ms) max_ms = min_ms;
    uint64_t base = min_ms;
    for (unsigned i = 0; i < attempt && base < max_ms; i++) base *= 2;
    if (base > max_ms) base = max_ms;
    uint64_t half = base / 2;
    return (uint32_t)(base - half + rnd % (half + 1));
}
