/** Reconnection delays: exponential growth with "equal jitter". */
export interface BackoffOptions {
  /** Delay before the first retry, before jitter (default 500 ms). */
  baseMs?: number;
  /** Upper bound of the delay (default 30 s). */
  maxMs?: number;
  /** Random source in [0, 1) (tests pass their own). */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (0 for the first): the
 * exponential step min(max, base * 2^attempt), of which a random half is
 * kept. The random half spreads the reconnections of many clients after a
 * server restart; the fixed half keeps the growth exponential.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 30_000;
  const random = options.random ?? Math.random;
  const step = Math.min(max, base * 2 ** Math.min(Math.max(attempt, 0), 30));
  return Math.round(step / 2 + (random() * step) / 2);
}
