/**
 * An error answered by the server (`error` frame or HTTP error body), or
 * raised by the SDK itself. `code` is one of the stable codes of
 * docs/protocol.md (`bad_request`, `unauthorized`, `forbidden`,
 * `not_found`, `conflict`, `too_large`, `rate_limited`, `blocked_content`,
 * `unavailable`, `internal`) or, for failures seen only by the client,
 * `timeout`, `closed` or `network`.
 */
export class ParleyError extends Error {
  readonly code: string;
  /** HTTP status, for errors of the HTTP API. */
  readonly status?: number;
  /** For `rate_limited`: how long to wait before trying again. */
  readonly retryAfterMs?: number;

  constructor(code: string, message?: string, extra?: { status?: number; retryAfterMs?: number }) {
    super(message && message.length > 0 ? `${code}: ${message}` : code);
    this.name = "ParleyError";
    this.code = code;
    if (extra?.status !== undefined) this.status = extra.status;
    if (extra?.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}

/** Builds a ParleyError from the body of an `error` frame or HTTP answer. */
export function errorFromBody(body: unknown, status?: number): ParleyError {
  const e = (body ?? {}) as { code?: unknown; message?: unknown; retry_after_ms?: unknown };
  const code = typeof e.code === "string" ? e.code : "internal";
  const message = typeof e.message === "string" ? e.message : "";
  const extra: { status?: number; retryAfterMs?: number } = {};
  if (status !== undefined) extra.status = status;
  if (typeof e.retry_after_ms === "number") extra.retryAfterMs = e.retry_after_ms;
  return new ParleyError(code, message, extra);
}
