/*
 * tbucket.c - token bucket arithmetic (see tbucket.h).
 *
 * A bucket holds a fractional number of tokens.  On every take it is first
 * refilled by the time elapsed since the last take (rate tokens a second,
 * capped at burst), then one token is taken if there is one.  When there is
 * not, the wait is the time the missing fraction takes to refill, rounded
 * up to a whole millisecond, so a caller that retries exactly after
 * retry_after_ms succeeds (barring other takers of the same bucket).
 *
 * Invariants after any take with a limit: 0 <= tokens <= burst, and
 * last_ms != 0 (a bucket first used at time 0 records time 1, and a clock
 * that goes backwards refills nothing rather than wrapping around).
 *
 * No locking here: the caller owns the bucket (limits.c holds a shard lock).
 */
#include "core/tbucket.h"

/* Floating-point slack, in milliseconds.  The wait reported is rounded up
 * from (missing tokens / rate) less this slack, and a take counts a bucket
 * short of a whole token by no more than what the slack refills (plus a
 * little) as full, so rounding errors never turn an exact 1 ms wait into
 * 2 ms, nor an exact retry into a refusal. */
#define TBUCKET_SLACK_MS 1e-6

/* Longest wait reported, about 31 years: keeps the conversion to an integer
 * defined for absurdly small rates. */
#define TBUCKET_MAX_WAIT_MS 1e12

uint64_t tbucket_take(tbucket *b, uint64_t now_ms, double rate, double burst)
{
    /* Written so that NaN counts as "no limit" for rate and as 1 for burst. */
    if (!(rate > 0)) return 0;
    if (!(burst >= 1)) burst = 1;

    if (b->last_ms == 0) {
        b->tokens = burst;
        b->last_ms = now_ms ? now_ms : 1;
    } else if (now_ms > b->last_ms) {
        double refill = (double)(now_ms - b->last_ms) * rate / 1000.0;
        b->tokens += refill;
        b->last_ms = now_ms;
    }
    /* A burst lowered since the last take (a tenant setting) applies at
     * once; a negative or NaN count (never written here) is repaired. */
    if (!(b->tokens <= burst)) b->tokens = burst;
    if (!(b->tokens >= 0)) b->tokens = 0;

    double slack = 1e-9 + TBUCKET_SLACK_MS * rate / 1000.0;
    if (b->tokens >= 1.0 - slack) {
        b->tokens -= 1.0;
        if (b->tokens < 0) b->tokens = 0;
        return 0;
    }
    double wait = (1.0 - b->tokens) * 1000.0 / rate - TBUCKET_SLACK_MS;
    if (!(wait <= TBUCKET_MAX_WAIT_MS)) wait = TBUCKET_MAX_WAIT_MS;
    /* Round up by hand rather than with ceil(): core links no libm. */
    uint64_t ms = (uint64_t)wait;
    if ((double)ms < wait) ms++;
    return ms ? ms : 1;
}
