/**
 * The WebSocket the client uses: the one passed in the options, else the
 * host's (browsers; Node 22+, or Node 20 with --experimental-websocket),
 * else the `ws` package, an optional peer dependency for older Node.
 */
import { ParleyError } from "./errors.js";

/** The part of the WHATWG WebSocket interface the client uses. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export async function resolveWebSocket(given?: WebSocketConstructor): Promise<WebSocketConstructor> {
  if (given) return given;
  const host = (globalThis as { WebSocket?: unknown }).WebSocket;
  if (typeof host === "function") return host as WebSocketConstructor;
  try {
    // A variable keeps bundlers and tsc from resolving the optional module.
    const name = "ws";
    const mod = (await import(name)) as { default?: unknown; WebSocket?: unknown };
    const ctor = mod.WebSocket ?? mod.default;
    if (typeof ctor === "function") return ctor as WebSocketConstructor;
  } catch {
    // Not installed: fall through.
  }
  throw new ParleyError(
    "unavailable",
    "no WebSocket implementation: run on a host that has one, install the ws package, or pass options.WebSocket",
  );
}

const decoder = typeof TextDecoder === "function" ? new TextDecoder() : undefined;

/** The text of a message event's data (a string, or bytes from `ws`). */
export function messageText(data: unknown): string | null {
  if (typeof data === "string") return data;
  if (decoder && (data instanceof ArrayBuffer || ArrayBuffer.isView(data))) {
    return decoder.decode(data as ArrayBuffer | ArrayBufferView);
  }
  return null;
}
