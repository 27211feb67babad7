// The client's connection rules against a scripted WebSocket (no server):
// which close codes reconnect and which stop it (docs/protocol.md, "close
// codes"), goaway's url, login errors, heartbeat loss, and the `offline` /
// `online` events of browsers.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ParleyClient, type ClientOptions, type StateChange } from "../src/client.js";
import type { ParleyError } from "../src/errors.js";
import type { WebSocketConstructor, WebSocketLike } from "../src/websocket.js";
import { sleep, waitFor } from "./parleyd.js";

type Frame = Record<string, unknown> & { id?: number };

/** A scripted server end: answers login, my_groups, sync and ping unless told otherwise. */
class FakeSocket implements WebSocketLike {
  static all: FakeSocket[] = [];
  static loginReply: (id: number) => Frame = (id) => ({ id, login_ok: { user: "u", useq: 0, tenant: "t" } });
  readyState = 0;
  sent: Frame[] = [];
  closedByClient: number | undefined;
  silent = false;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.all.push(this);
    setTimeout(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
    }, 1);
  }

  send(data: string): void {
    const f = JSON.parse(data) as Frame;
    this.sent.push(f);
    if (this.silent || f.id === undefined) return;
    const id = f.id;
    let reply: Frame | undefined;
    if ("login" in f) reply = FakeSocket.loginReply(id);
    else if ("my_groups" in f) reply = { id, my_groups_ok: {} };
    else if ("sync" in f) reply = { id, sync_ok: { entries: [], more: false } };
    else if ("ping" in f) reply = { id, pong: {} };
    if (reply) setTimeout(() => this.push(reply as Frame), 1);
  }

  push(f: Frame): void {
    if (this.readyState === 1) this.onmessage?.({ data: JSON.stringify(f) });
  }

  close(code?: number): void {
    this.closedByClient = code ?? 1005;
    this.readyState = 3;
  }

  /** The server closes with a code. */
  drop(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }
}

function client(extra: Partial<ClientOptions> = {}): { c: ParleyClient; states: StateChange[] } {
  FakeSocket.all = [];
  const c = new ParleyClient({
    url: "ws://fake/v1/ws",
    token: "tok",
    WebSocket: FakeSocket as unknown as WebSocketConstructor,
    backoff: { baseMs: 20, maxMs: 40 },
    reconnectOnOnline: false,
    ...extra,
  });
  const states: StateChange[] = [];
  c.on("state", (s) => states.push(s));
  return { c, states };
}

const last = <T>(a: T[]): T | undefined => a[a.length - 1];

test("close codes that mean 'reconnect' reconnect with backoff", async () => {
  for (const code of [1000, 1001, 1006, 1011, 4004, 4008]) {
    const { c, states } = client();
    await c.connect();
    FakeSocket.all[0]?.drop(code);
    assert.equal(c.state, "waiting", `code ${code}`);
    assert.equal(last(states)?.code, code);
    await waitFor(() => c.state === "online" && FakeSocket.all.length === 2, () => `code ${code}: ${c.state}`);
    c.close();
  }
});

test("4029 (too many connections) waits at least 5 s", async () => {
  const { c, states } = client();
  await c.connect();
  FakeSocket.all[0]?.drop(4029);
  assert.equal(c.state, "waiting");
  assert.ok((last(states)?.retryInMs ?? 0) >= 5000);
  c.close();
});

test("kicked, refused token and protocol errors stop the client", async () => {
  const cases: [number, string][] = [
    [4001, "kicked"],
    [4003, "unauthorized"],
    [1002, "protocol"],
    [1007, "protocol"],
    [1009, "protocol"],
  ];
  for (const [code, reason] of cases) {
    const { c, states } = client();
    await c.connect();
    FakeSocket.all[0]?.drop(code);
    assert.equal(c.state, "closed", `code ${code}`);
    assert.equal(last(states)?.reason, reason);
    await sleep(100);
    assert.equal(FakeSocket.all.length, 1, `no reconnect after ${code}`);
  }
  // A kicked frame before the close stops the client whatever the code.
  const { c } = client();
  let kicked = 0;
  c.on("kicked", () => kicked++);
  await c.connect();
  FakeSocket.all[0]?.push({ kicked: { reason: "another login" } });
  FakeSocket.all[0]?.drop(1006);
  assert.equal(kicked, 1);
  assert.equal(c.state, "closed");
});

test("goaway: reconnect soon, to the url the server names", async () => {
  const { c } = client();
  await c.connect();
  FakeSocket.all[0]?.push({ goaway: { url: "ws://elsewhere/v1/ws", reason: "shutdown" } });
  assert.ok(FakeSocket.all[0]?.closedByClient !== undefined, "the client closed the old socket");
  await waitFor(() => FakeSocket.all.length === 2, () => "second socket", 3000);
  assert.equal(FakeSocket.all[1]?.url, "ws://elsewhere/v1/ws");
  await waitFor(() => c.state === "online", () => c.state);
  c.close();
});

test("login refused: unauthorized stops; rate_limited retries after retry_after_ms", async () => {
  FakeSocket.loginReply = (id) => ({ id, error: { code: "unauthorized", message: "bad token" } });
  try {
    const { c } = client();
    await assert.rejects(c.connect(), (e: ParleyError) => e.code === "unauthorized");
    assert.equal(c.state, "closed");

    let n = 0;
    FakeSocket.loginReply = (id) =>
      n++ === 0
        ? { id, error: { code: "rate_limited", message: "slow", retry_after_ms: 300 } }
        : { id, login_ok: { user: "u", useq: 0 } };
    const r = client();
    const started = Date.now();
    await r.c.connect();
    assert.ok(Date.now() - started >= 280, "waited for retry_after_ms");
    assert.ok(r.states.some((s) => s.state === "waiting" && (s.retryInMs ?? 0) >= 300));
    r.c.close();
  } finally {
    FakeSocket.loginReply = (id) => ({ id, login_ok: { user: "u", useq: 0, tenant: "t" } });
  }
});

test("a connection that stops answering is dropped after the pong timeout", async () => {
  const { c, states } = client({ pingIntervalMs: 50, pongTimeoutMs: 50 });
  await c.connect();
  await waitFor(() => c.state === "online", () => c.state);
  const first = FakeSocket.all[0] as FakeSocket;
  first.silent = true;
  await waitFor(() => FakeSocket.all.length >= 2, () => JSON.stringify(states), 3000);
  assert.ok(states.some((s) => s.state === "waiting" && s.reason === "heartbeat lost"));
  assert.ok(first.sent.some((f) => "ping" in f));
  c.close();
});

test("close() fails what waits and stops for good", async () => {
  const { c } = client();
  const sent = c.send({ to: "bob", text: "never acked" });
  const req = c.request("home");
  c.connect().catch(() => undefined);
  c.close();
  await assert.rejects(sent, (e: ParleyError) => e.code === "closed");
  await assert.rejects(req, (e: ParleyError) => e.code === "closed" || e.code === "timeout");
  assert.equal(c.state, "closed");
  assert.equal(c.pending().length, 1, "the outbox is kept for the next connect()");
  await assert.rejects(c.send({ text: "x" }), (e: ParleyError) => e.code === "bad_request");
});

test("in a browser, offline drops the socket and online reconnects at once", async () => {
  const target = new EventTarget();
  const g = globalThis as unknown as { addEventListener?: unknown; removeEventListener?: unknown };
  g.addEventListener = target.addEventListener.bind(target);
  g.removeEventListener = target.removeEventListener.bind(target);
  try {
    const { c, states } = client({ reconnectOnOnline: true, backoff: { baseMs: 60_000, maxMs: 60_000 } });
    await c.connect();
    await waitFor(() => c.state === "online", () => c.state);
    target.dispatchEvent(new Event("offline"));
    assert.equal(c.state, "waiting");
    assert.equal(last(states)?.reason, "network offline");
    target.dispatchEvent(new Event("online"));
    await waitFor(() => c.state === "online" && FakeSocket.all.length === 2, () => c.state, 2000);
    c.close();
  } finally {
    delete g.addEventListener;
    delete g.removeEventListener;
  }
});
