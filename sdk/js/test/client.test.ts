// The SDK against a real parleyd: HTTP helpers, live chat, reconnects
// after a server restart, resends without duplicates, gap-triggered sync,
// mutual kick. PARLEYD names the binary (default build/parleyd).
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, before, describe, test } from "node:test";

import WS from "ws";

import { ParleyClient, type ClientOptions, type StateChange } from "../src/client.js";
import { ParleyError } from "../src/errors.js";
import { ParleyHttp } from "../src/http.js";
import { LocalStorageStore, MemoryStore, type StorageLike } from "../src/store.js";
import type { InboxEvent, Message, Presence, Receipt, Typing } from "../src/types.js";
import type { WebSocketConstructor, WebSocketLike } from "../src/websocket.js";
import { Parleyd, freePort, sleep, uid, waitFor } from "./parleyd.js";

const PASSWORD = "correct horse battery";
const FAST = { backoff: { baseMs: 100, maxMs: 800 }, requestTimeoutMs: 10_000 };

/** A client with everything it receives recorded. */
class Rec {
  readonly client: ParleyClient;
  readonly msgs: Message[] = [];
  readonly events: InboxEvent[] = [];
  readonly receipts: Receipt[] = [];
  readonly typing: Typing[] = [];
  readonly presence: Presence[] = [];
  readonly states: StateChange[] = [];
  kicked = 0;

  constructor(opts: ClientOptions) {
    this.client = new ParleyClient(opts);
    this.client.on("message", (m) => this.msgs.push(m));
    this.client.on("event", (e) => this.events.push(e));
    this.client.on("receipt", (r) => this.receipts.push(r));
    this.client.on("typing", (t) => this.typing.push(t));
    this.client.on("presence", (p) => this.presence.push(p));
    this.client.on("state", (s) => this.states.push(s));
    this.client.on("kicked", () => this.kicked++);
  }

  texts(conv?: string): string[] {
    return this.msgs.filter((m) => conv === undefined || m.conv === conv).map((m) => m.text);
  }

  /** Fails if any conversation's messages repeat or go backwards. */
  assertOrderedOnce(): void {
    const last = new Map<string, number>();
    for (const m of this.msgs) {
      const prev = last.get(m.conv) ?? 0;
      assert.ok(m.seq > prev, `${m.conv}: seq ${m.seq} after ${prev} (${this.texts(m.conv).join(",")})`);
      last.set(m.conv, m.seq);
    }
  }
}

async function account(server: Parleyd, prefix: string): Promise<{ user: string; token: string; http: ParleyHttp }> {
  const http = new ParleyHttp({ baseUrl: server.httpUrl });
  const user = uid(prefix);
  const ok = await http.signup({ user, password: PASSWORD });
  return { user, token: ok.token, http };
}

function dm(a: string, b: string): string {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

/**
 * A WebSocket class over `ws` whose incoming frames pass through a hook
 * that may drop them or cut the connection (as a network would).
 */
function faultyWebSocket(hook: (text: string) => "pass" | "drop" | "cut"): WebSocketConstructor {
  return class implements WebSocketLike {
    private readonly inner: WS;
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onclose: ((ev: { code: number; reason: string }) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;

    constructor(url: string) {
      this.inner = new WS(url);
      this.inner.onopen = (e) => this.onopen?.(e);
      this.inner.onerror = (e) => this.onerror?.(e);
      this.inner.onclose = (e) => this.onclose?.({ code: e.code, reason: e.reason });
      this.inner.onmessage = (e) => {
        const text = String(e.data);
        const verdict = hook(text);
        if (verdict === "drop") return;
        if (verdict === "cut") {
          this.inner.terminate();
          return;
        }
        this.onmessage?.({ data: text });
      };
    }

    get readyState(): number {
      return this.inner.readyState;
    }

    send(data: string): void {
      this.inner.send(data);
    }

    close(code?: number, reason?: string): void {
      this.inner.close(code, reason);
    }
  };
}

describe("against one parleyd", () => {
  let server: Parleyd;
  const clients: ParleyClient[] = [];
  const open = (opts: ClientOptions): Rec => {
    const r = new Rec({ ...FAST, ...opts });
    clients.push(r.client);
    return r;
  };

  before(async () => {
    server = await Parleyd.start();
  });

  after(async () => {
    for (const c of clients) c.close();
    await server.cleanup();
  });

  test("HTTP helpers: accounts, users, groups, channels, friends, presence, messages, home", async () => {
    const a = await account(server, "ha");
    const b = await account(server, "hb");
    const again = await new ParleyHttp({ baseUrl: server.httpUrl }).login({ user: a.user, password: PASSWORD });
    assert.equal(again.user, a.user);
    await assert.rejects(
      new ParleyHttp({ baseUrl: server.httpUrl }).login({ user: a.user, password: "wrong password" }),
      (e: ParleyError) => e.code === "unauthorized" && e.status === 401,
    );
    assert.equal((await a.http.getUser(b.user)).user, b.user);
    assert.ok((await a.http.searchUsers(b.user.slice(0, 4))).some((u) => u.user === b.user));

    const ack = await a.http.send({ to: b.user, text: "over http", cmid: "h1" });
    assert.equal(ack.conv, dm(a.user, b.user));
    const again2 = await a.http.send({ to: b.user, text: "over http", cmid: "h1" });
    assert.equal(again2.seq, ack.seq, "a retry with the same cmid is stored once");
    const page = await b.http.history(ack.conv);
    assert.deepEqual(page.msgs.map((m) => m.text), ["over http"]);
    const home = await b.http.home();
    assert.equal(home[0]?.conv, ack.conv);
    assert.equal(home[0]?.unread, 1);
    await b.http.read(ack.conv, ack.seq);
    assert.equal((await b.http.home())[0]?.unread ?? 0, 0);
    const sync = await b.http.sync(0);
    assert.ok((sync.entries ?? []).some((e) => e.msg?.cmid === "h1"));

    const g = await a.http.createGroup({ name: "Team", members: [b.user] });
    assert.equal(g.kind, "group");
    assert.equal((await b.http.getGroup(g.group)).name, "Team");
    const members = await a.http.groupMembers(g.group);
    assert.deepEqual(members.members.map((m) => m.user).sort(), [a.user, b.user].sort());
    const chName = uid("chan");
    const ch = await a.http.createGroup({ name: chName, kind: "channel" });
    assert.ok((await b.http.searchChannels(chName)).some((x) => x.group === ch.group));
    assert.equal((await b.http.joinGroup(ch.group)).role, "member");
    assert.ok((await b.http.myGroups()).some((x) => x.group === ch.group));
    await b.http.leaveGroup(ch.group);
    await a.http.disbandGroup(g.group);

    assert.equal((await a.http.friendRequest(b.user)).state, "requested");
    assert.equal((await b.http.friendAccept(a.user)).state, "friends");
    assert.equal((await a.http.friends())[0]?.user, b.user);
    const pres = await a.http.presence([b.user]);
    assert.equal(pres[0]?.user, b.user);
    await a.http.friendDelete(b.user);

    await a.http.logout();
    await assert.rejects(new ParleyHttp({ baseUrl: server.httpUrl, token: a.token }).home(), (e: ParleyError) => e.status === 401);
  });

  test("live chat: messages both ways, typing, receipts, presence, exactly once and in order", async () => {
    const a = await account(server, "la");
    const b = await account(server, "lb");
    const ra = open({ url: server.wsUrl, token: a.token });
    const rb = open({ url: server.wsUrl, token: b.token });
    const okA = await ra.client.connect();
    assert.equal(okA.user, a.user);
    await rb.client.connect();
    await waitFor(() => ra.client.state === "online" && rb.client.state === "online", () => "online");

    const p = await ra.client.subscribePresence([b.user]);
    assert.equal(p[0]?.online, true);

    const conv = dm(a.user, b.user);
    const acks = [];
    for (let i = 1; i <= 5; i++) acks.push(ra.client.send({ to: b.user, text: `a${i}` }));
    const done = await Promise.all(acks);
    assert.deepEqual(done.map((x) => x.seq), [1, 2, 3, 4, 5]);
    await rb.client.send({ to: a.user, text: "b1" });
    await waitFor(() => rb.texts(conv).length === 6 && ra.texts(conv).length === 6, () => `b ${rb.texts(conv)} a ${ra.texts(conv)}`);
    assert.deepEqual(rb.texts(conv), ["a1", "a2", "a3", "a4", "a5", "b1"]);
    assert.deepEqual(ra.texts(conv), ["a1", "a2", "a3", "a4", "a5", "b1"], "own sends come back as messages once");

    ra.client.typing(conv);
    ra.client.typing(conv); // throttled
    await waitFor(() => rb.typing.length > 0, () => "typing");
    assert.deepEqual(rb.typing[0], { conv, from: a.user });

    // b's own message moved b's read position to 6; a's next one is unread.
    await ra.client.send({ to: b.user, text: "a6" });
    await waitFor(() => rb.texts(conv).length === 7, () => "a6");
    await rb.client.read(conv, 7);
    await waitFor(() => ra.receipts.length > 0, () => "receipt");
    assert.equal(ra.receipts[0]?.seq, 7);
    assert.equal(ra.receipts[0]?.user, b.user);

    const page = await ra.client.history(conv, { limit: 2 });
    assert.deepEqual(page.msgs.map((m) => m.seq), [7, 6]);
    assert.equal(page.more, true);
    const home = await rb.client.home();
    assert.equal(home[0]?.conv, conv);

    rb.client.close();
    await waitFor(() => ra.presence.some((x) => x.user === b.user && x.online === false), () => "offline presence");
    await sleep(200);
    ra.assertOrderedOnce();
    rb.assertOrderedOnce();

    await assert.rejects(ra.client.send({ to: "no_such_user_" + uid("x"), text: "hi" }), (e: ParleyError) => e.code === "not_found");
    assert.equal(ra.client.pending().length, 0);
  });

  test("a device that was away catches up by sync, in order, once (localStorage store)", async () => {
    const a = await account(server, "sa");
    const b = await account(server, "sb");
    const data = new Map<string, string>();
    const storage: StorageLike = {
      getItem: (k) => data.get(k) ?? null,
      setItem: (k, v) => void data.set(k, v),
      removeItem: (k) => void data.delete(k),
    };
    const ra = open({ url: server.wsUrl, token: a.token });
    await ra.client.connect();
    const conv = dm(a.user, b.user);
    await ra.client.send({ to: b.user, text: "before b ever connected" });

    const store = () => new LocalStorageStore(`parley:default:${b.user}`, storage);
    const rb1 = open({ url: server.wsUrl, token: b.token, store: store() });
    await rb1.client.connect();
    await waitFor(() => rb1.client.state === "online", () => "online");
    assert.deepEqual(rb1.texts(), [], "a new device starts from now by default");
    await ra.client.send({ to: b.user, text: "x1" });
    await waitFor(() => rb1.texts().length === 1, () => "x1");
    rb1.client.close();

    // The group and channel keep going while b is away.
    const g = await ra.client.createGroup({ name: "g", members: [b.user] });
    for (let i = 2; i <= 30; i++) await ra.client.send({ to: b.user, text: `x${i}` });
    await ra.client.send({ group: g.group, text: "in group" });

    const rb2 = open({ url: server.wsUrl, token: b.token, store: store(), syncLimit: 7 });
    await rb2.client.connect();
    await waitFor(() => rb2.texts().length === 30, () => `got ${rb2.texts().join(",")}`);
    const expect = Array.from({ length: 29 }, (_, i) => `x${i + 2}`);
    assert.deepEqual(rb2.texts(conv), expect);
    assert.deepEqual(rb2.texts(`g:${g.group}`), ["in group"]);
    assert.ok(rb2.events.some((e) => e.kind === "group_joined" && e.group === g.group));
    await sleep(200);
    rb2.assertOrderedOnce();
  });

  test("an unacknowledged send is resent with the same cmid after a reconnect, shown once", async () => {
    const a = await account(server, "ra");
    const b = await account(server, "rb");
    const rb = open({ url: server.wsUrl, token: b.token });
    await rb.client.connect();
    let cuts = 0;
    // The first send_ok never arrives: the connection dies right after the server stored the message.
    const Faulty = faultyWebSocket((text) => {
      if (cuts === 0 && text.includes('"send_ok"')) {
        cuts++;
        return "cut";
      }
      return "pass";
    });
    const ra = open({ url: server.wsUrl, token: a.token, WebSocket: Faulty });
    await ra.client.connect();
    const ack = await ra.client.send({ to: b.user, text: "exactly once", cmid: "once-1" });
    assert.equal(cuts, 1, "the first ack was lost");
    assert.equal(ack.cmid, "once-1");
    assert.ok(ra.states.filter((s) => s.state === "waiting").length >= 1, "the client reconnected");
    const conv = dm(a.user, b.user);
    await waitFor(() => rb.texts(conv).length >= 1, () => "b got it");
    await ra.client.send({ to: b.user, text: "next" });
    await waitFor(() => rb.texts(conv).length >= 2, () => "b got next");
    await sleep(300);
    assert.deepEqual(rb.texts(conv), ["exactly once", "next"]);
    assert.deepEqual(ra.texts(conv), ["exactly once", "next"]);
    const hist = await ra.client.history(conv);
    assert.deepEqual(hist.msgs.map((m) => m.text), ["next", "exactly once"], "stored once");
    assert.equal(ra.client.pending().length, 0);
  });

  test("sends made while offline wait in the outbox and go out after connecting", async () => {
    const a = await account(server, "oa");
    const b = await account(server, "ob");
    const store = new MemoryStore();
    const ra = open({ url: server.wsUrl, token: a.token, store });
    const p1 = ra.client.send({ to: b.user, text: "queued 1" });
    const p2 = ra.client.send({ to: b.user, text: "queued 2" });
    assert.equal(ra.client.pending().length, 2);
    await sleep(0); // saves are coalesced to one per task
    assert.equal(store.load().outbox.length, 2, "the outbox is persisted");
    await ra.client.connect();
    const [k1, k2] = await Promise.all([p1, p2]);
    assert.deepEqual([k1.seq, k2.seq], [1, 2]);
    assert.equal(ra.client.pending().length, 0);
    const hist = await b.http.history(dm(a.user, b.user));
    assert.deepEqual(hist.msgs.map((m) => m.text), ["queued 2", "queued 1"]);
  });

  test("a gap in useq or in a channel's seq triggers a sync; nothing is lost or repeated", async () => {
    const a = await account(server, "ga");
    const b = await account(server, "gb");
    const ra = open({ url: server.wsUrl, token: a.token });
    await ra.client.connect();
    const chan = await ra.client.createGroup({ name: uid("gapchan"), kind: "channel" });
    let dropped: string[] = [];
    // Drop the pushes of "lost" messages, as a slow network or a reordering would.
    const Faulty = faultyWebSocket((text) => {
      const frame = JSON.parse(text) as { id?: number; msg?: Message };
      if (frame.id === undefined && frame.msg?.text.includes("lost")) {
        dropped.push(text);
        return "drop";
      }
      return "pass";
    });
    const rb = open({ url: server.wsUrl, token: b.token, WebSocket: Faulty });
    await rb.client.connect();
    await rb.client.joinGroup(chan.group);
    await waitFor(() => rb.client.state === "online", () => "online");
    let syncs = 0;
    const origCall = (rb.client as unknown as { call: (n: string, b: object) => Promise<unknown> }).call.bind(rb.client);
    (rb.client as unknown as { call: (n: string, b: object) => Promise<unknown> }).call = (n: string, body: object) => {
      if (n === "sync") syncs++;
      return origCall(n, body);
    };

    const conv = dm(a.user, b.user);
    await ra.client.send({ to: b.user, text: "lost 1" });
    await ra.client.send({ to: b.user, text: "lost 2" });
    await sleep(200);
    assert.equal(dropped.length, 2);
    assert.deepEqual(rb.texts(conv), [], "nothing seen yet");
    assert.equal(syncs, 0);
    await ra.client.send({ to: b.user, text: "seen 3" });
    await waitFor(() => rb.texts(conv).length === 3, () => `dm: ${rb.texts(conv)}`);
    assert.deepEqual(rb.texts(conv), ["lost 1", "lost 2", "seen 3"]);
    assert.ok(syncs >= 1, "the gap made the client sync");

    dropped = [];
    const cconv = `g:${chan.group}`;
    await ra.client.send({ group: chan.group, text: "c lost 1" });
    await sleep(150);
    assert.equal(dropped.length, 1);
    await ra.client.send({ group: chan.group, text: "c seen 2" });
    await waitFor(() => rb.texts(cconv).length === 2, () => `channel: ${rb.texts(cconv)}`);
    assert.deepEqual(rb.texts(cconv), ["c lost 1", "c seen 2"]);
    await sleep(200);
    rb.assertOrderedOnce();
    assert.equal(rb.client.channelPositions()[chan.group], 2);
  });

  test("kick: a second login on the same device kind ends the first, which does not reconnect", async () => {
    const a = await account(server, "ka");
    const b = await account(server, "kb");
    const first = open({ url: server.wsUrl, token: a.token, device: "web" });
    await first.client.connect();
    const desktop = open({ url: server.wsUrl, token: a.token, device: "desktop" });
    await desktop.client.connect();
    const second = open({ url: server.wsUrl, token: a.token, device: "web" });
    await second.client.connect();
    await waitFor(() => first.client.state === "closed", () => `first: ${JSON.stringify(first.states)}`);
    assert.equal(first.kicked, 1);
    const last = first.states[first.states.length - 1];
    assert.equal(last?.reason, "kicked");
    await sleep(1200);
    assert.equal(first.client.state, "closed", "no reconnect after a kick");
    assert.equal(first.states.filter((s) => s.state === "connecting").length, 1);
    assert.equal(desktop.client.state, "online", "another device kind stays");
    await b.http.send({ to: a.user, text: "to the survivors", cmid: "k1" });
    await waitFor(() => second.texts().length === 1 && desktop.texts().length === 1, () => "delivered");
    assert.deepEqual(first.texts(), []);
    await assert.rejects(first.client.request("home"), (e: ParleyError) => e.code === "closed");
  });

  test("a refused token stops the client with reason unauthorized", async () => {
    const r = open({ url: server.wsUrl, token: "v1.not-a-token" });
    await assert.rejects(r.client.connect(), (e: ParleyError) => e.code === "unauthorized");
    assert.equal(r.client.state, "closed");
    assert.equal(r.states[r.states.length - 1]?.reason, "unauthorized");
  });
});

test("reconnect after the server restarts: goaway, backoff, resend, sync", async () => {
  const port = await freePort();
  let server = await Parleyd.start({ port });
  const data = server.data;
  const clients: ParleyClient[] = [];
  try {
    const a = await account(server, "xa");
    const b = await account(server, "xb");
    const ra = new Rec({ ...FAST, url: server.wsUrl, token: a.token });
    const rb = new Rec({ ...FAST, url: server.wsUrl, token: b.token });
    clients.push(ra.client, rb.client);
    let goaways = 0;
    ra.client.on("goaway", () => goaways++);
    await ra.client.connect();
    await rb.client.connect();
    const conv = dm(a.user, b.user);
    await ra.client.send({ to: b.user, text: "before" });
    await waitFor(() => rb.texts(conv).length === 1, () => "before");

    await server.stop();
    assert.equal(goaways, 1, "the server said goaway");
    await waitFor(() => ra.client.state === "waiting" || ra.client.state === "connecting", () => ra.client.state);
    const sent = ra.client.send({ to: b.user, text: "while down" });
    // Stay down until the client has tried and failed at least once.
    await waitFor(() => ra.states.filter((s) => s.state === "waiting").length >= 2, () => JSON.stringify(ra.states));
    assert.equal(ra.client.pending().length, 1);

    server = await Parleyd.start({ port, data });
    const ack = await sent;
    assert.equal(ack.seq, 2);
    await waitFor(() => rb.texts(conv).length === 2, () => `b: ${rb.texts(conv)}`);
    await waitFor(() => rb.client.state === "online", () => rb.client.state);
    await rb.client.send({ to: a.user, text: "after" });
    await waitFor(() => ra.texts(conv).length === 3, () => `a: ${ra.texts(conv)}`);
    assert.deepEqual(rb.texts(conv), ["before", "while down", "after"]);
    assert.deepEqual(ra.texts(conv), ["before", "while down", "after"]);
    const waits = ra.states.filter((s) => s.state === "waiting");
    assert.ok(waits.length >= 2, "retried with backoff");
    assert.ok(waits.every((s) => (s.retryInMs ?? 0) <= 1000), "bounded by maxMs (or goaway's short delay)");
    ra.assertOrderedOnce();
    rb.assertOrderedOnce();
  } finally {
    for (const c of clients) c.close();
    await server.cleanup();
    rmSync(data, { recursive: true, force: true });
  }
});
