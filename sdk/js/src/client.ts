/**
 * ParleyClient: one logged-in WebSocket connection to parleyd, kept alive.
 *
 * Connection states (the `state` event reports each change):
 *
 *     idle --connect()--> connecting --login_ok--> syncing --sync done--> online
 *                           ^    |                    |                     |
 *                           |    +--- socket closed, heartbeat lost, goaway +
 *                           |                         |
 *                           +--- timer (backoff) -- waiting
 *
 *     any --kicked (4001), token refused (4003), protocol error (1002,
 *           1007, 1009), close()--> closed    (no reconnect; connect() again)
 *
 *   - open(): resolves the WebSocket class, URL and token, opens a socket
 *     and sends `login`; onLoginOk() starts the heartbeat, resends the
 *     outbox, re-subscribes presence, lists the joined channels and syncs.
 *   - onClose(): decides from the close code (docs/protocol.md) whether to
 *     reconnect; scheduleRetry() waits backoffDelay(attempt) first.
 *   - goaway: the node is going down; the client closes and reconnects
 *     after a short random delay (to `url` if the server named one).
 *
 * Delivery: every message and inbox event goes through the Sequencer, so
 * the app sees each exactly once and in order (inbox by useq, channels by
 * seq) whether it came from a push, a sync page or this device's own
 * send_ok. A push that leaves a gap triggers a sync; so does every login.
 * The positions and the outbox live in the SyncStore.
 *
 * Sends: send() puts the message in the outbox (persisted) and resolves
 * with its send_ok. Unacknowledged sends are sent again with the same cmid
 * after every reconnect; the server stores a cmid once, so a retry never
 * duplicates a message, and the app sees the message once (from the ack,
 * or from a sync that found it first).
 */
import { backoffDelay, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { errorFromBody, ParleyError } from "./errors.js";
import { Sequencer, type InboxItem } from "./sequencer.js";
import { MemoryStore, emptyState, type OutboxEntry, type SyncState, type SyncStore } from "./store.js";
import type {
  Conversation,
  DeviceKind,
  Friend,
  Frame,
  Goaway,
  Group,
  HistoryPage,
  InboxEvent,
  Kicked,
  LoginOk,
  Member,
  Message,
  Presence,
  Receipt,
  SendAck,
  SyncOk,
  Typing,
} from "./types.js";
import { messageText, resolveWebSocket, type WebSocketConstructor, type WebSocketLike } from "./websocket.js";

export type ConnectionState = "idle" | "connecting" | "syncing" | "online" | "waiting" | "closed";

export interface StateChange {
  state: ConnectionState;
  /** closed: `kicked`, `unauthorized`, `protocol` or `closed` (by close()); waiting: why the last connection ended. */
  reason?: string;
  /** The close code of the connection that just ended, if known. */
  code?: number;
  /** waiting: milliseconds until the next attempt, and its number (1 = first retry). */
  retryInMs?: number;
  attempt?: number;
}

export interface ClientEvents {
  /** A message of any conversation, in order per conversation, once each (own sends included). */
  message: Message;
  /** An inbox event: read by another device of yours, group joined/left/removed/disbanded, friend changes. */
  event: InboxEvent;
  /** A dm peer read up to a seq. */
  receipt: Receipt;
  typing: Typing;
  presence: Presence;
  /** Another login took this device slot; the client stops (state `closed`, reason `kicked`). */
  kicked: Kicked;
  /** The server is shutting down; the client reconnects by itself. */
  goaway: Goaway;
  state: StateChange;
  /** Errors that belong to no call: a frame the server could not decode, a failed background sync. */
  error: ParleyError;
}

type Awaitable<T> = T | Promise<T>;

export interface ClientOptions {
  /** WebSocket URL, e.g. `ws://127.0.0.1:8080/v1/ws`, or a function giving it for each attempt. */
  url: string | (() => Awaitable<string>);
  /** Token (from signup/login over HTTP), or a function giving a fresh one for each attempt. */
  token: string | (() => Awaitable<string>);
  /** Device kind (default `web`): a new login of the same kind kicks the older one. */
  device?: DeviceKind;
  deviceId?: string;
  /** Where positions and unsent messages are kept (default: a MemoryStore). */
  store?: SyncStore;
  /**
   * Where a device without saved state starts: `latest` (default) takes the
   * position of login_ok and loads nothing older (the app shows history on
   * demand); `all` delivers the whole inbox from the first entry.
   */
  start?: "latest" | "all";
  /** The WebSocket class (default: the host's, else the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Heartbeat period (default 25 s; the server closes after 90 s of silence). */
  pingIntervalMs?: number;
  /** A connection that answers nothing this long after a ping is given up (default 10 s). */
  pongTimeoutMs?: number;
  /** Requests fail with `timeout` after this long, waiting for a connection included (default 15 s). */
  requestTimeoutMs?: number;
  backoff?: BackoffOptions;
  /** Entries asked per sync page (default 200; the server caps it at 1,000). */
  syncLimit?: number;
  /** At most one `typing` per conversation per this period (default 2 s). */
  typingIntervalMs?: number;
  /** In a browser, reconnect at once when the network comes back (default true). */
  reconnectOnOnline?: boolean;
}

export interface SendOptions {
  /** A user id (1:1 message) ... */
  to?: string;
  /** ... or a group or channel id. */
  group?: string;
  text: string;
  /** Client message id (default: a random one); a retry with the same cmid is stored once. */
  cmid?: string;
}

interface Call {
  resolve: (body: unknown) => void;
  reject: (err: ParleyError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (err: ParleyError) => void;
  timer?: ReturnType<typeof setTimeout>;
}

const RETRYABLE_SEND = new Set(["rate_limited", "unavailable", "timeout"]);
const NO_RECONNECT_PROTOCOL = new Set([1002, 1003, 1007, 1008, 1009]);
const MAX_PRESENCE = 500;
const MAX_SYNC_CHANNELS = 100;

/** A random client message id (at most 64 printable bytes, as the server requires). */
export function newCmid(): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (c?.randomUUID) return c.randomUUID();
  return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2);
}

async function valueOf<T>(v: T | (() => Awaitable<T>)): Promise<T> {
  return typeof v === "function" ? await (v as () => Awaitable<T>)() : v;
}

function bodyName(frame: Frame): string | undefined {
  for (const key of Object.keys(frame)) if (key !== "id") return key;
  return undefined;
}

export class ParleyClient extends Emitter<ClientEvents> {
  private readonly opts: ClientOptions;
  private readonly store: SyncStore;
  private readonly st: SyncState;
  private readonly seq: Sequencer;

  private current: ConnectionState = "idle";
  private stopped = true;
  private ws: WebSocketLike | null = null;
  /** Bumped for every socket; events of older sockets are ignored. */
  private gen = 0;
  private loggedIn = false;
  private me: LoginOk | undefined;
  private attempt = 0;
  private kickedNow = false;
  private goawayNow = false;
  private nextUrl: string | undefined;
  private retryAfterMs = 0;

  private nextId = 1;
  private readonly calls = new Map<number, Call>();
  private readonly loginWaiters: Waiter<LoginOk>[] = [];
  private readonly sendWaiters = new Map<string, Waiter<SendAck>[]>();
  private readonly sendsInFlight = new Set<string>();
  private readonly presenceUsers = new Set<string>();
  private readonly typingSent = new Map<string, number>();

  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pongTimer: ReturnType<typeof setTimeout> | undefined;
  private lastRx = 0;
  private syncRunning = false;
  private syncAgain = false;
  private syncRetry: ReturnType<typeof setTimeout> | undefined;
  private channelsRefresh: ReturnType<typeof setTimeout> | undefined;
  private saveQueued = false;
  private onlineListener: (() => void) | undefined;
  private offlineListener: (() => void) | undefined;

  constructor(options: ClientOptions) {
    super();
    this.opts = options;
    this.store = options.store ?? new MemoryStore();
    this.st = this.store.load() ?? emptyState();
    this.seq = new Sequencer(this.st);
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.current;
  }

  /** The logged-in user (from the last login_ok), if any. */
  get user(): string | undefined {
    return this.me?.user;
  }

  /** The tenant of the logged-in user, if known. */
  get tenant(): string | undefined {
    return this.me?.tenant;
  }

  /** The last inbox useq delivered to the app (null before the first login). */
  get useq(): number | null {
    return this.seq.useq;
  }

  /** The last seq delivered of each followed channel. */
  channelPositions(): Record<string, number> {
    return { ...this.st.channels };
  }

  /** Sends not acknowledged yet, oldest first (they survive reconnects, and reloads with a persistent store). */
  pending(): OutboxEntry[] {
    return this.st.outbox.map((e) => ({ ...e }));
  }

  // ---- connection ----

  /**
   * Starts connecting (and reconnecting, until close()); resolves with the
   * first login_ok, rejects if the client stops for good before one.
   */
  connect(): Promise<LoginOk> {
    const p = new Promise<LoginOk>((resolve, reject) => this.loginWaiters.push({ resolve, reject }));
    if (this.stopped) {
      this.stopped = false;
      this.attempt = 0;
      this.kickedNow = false;
      this.listenNetwork(true);
      void this.open();
    } else if (this.loggedIn && this.me) {
      this.settleLogin(this.me);
    }
    return p;
  }

  /** Closes the connection and stops reconnecting. Pending calls fail with `closed`; the outbox is kept in the store. */
  close(): void {
    if (this.stopped && this.current === "closed") return;
    this.stop("closed");
  }

  private listenNetwork(on: boolean): void {
    const g = globalThis as {
      addEventListener?: (type: string, f: () => void) => void;
      removeEventListener?: (type: string, f: () => void) => void;
    };
    if (typeof g.addEventListener !== "function" || this.opts.reconnectOnOnline === false) return;
    if (on && !this.onlineListener) {
      this.onlineListener = () => {
        if (this.stopped || this.current !== "waiting") return;
        clearTimeout(this.retryTimer);
        this.attempt = 0;
        void this.open();
      };
      this.offlineListener = () => {
        // The socket is most likely dead; find out now rather than at the next heartbeat.
        if (this.ws) this.dropSocket(1006, "network offline");
      };
      g.addEventListener("online", this.onlineListener);
      g.addEventListener("offline", this.offlineListener);
    } else if (!on && this.onlineListener && this.offlineListener) {
      g.removeEventListener?.("online", this.onlineListener);
      g.removeEventListener?.("offline", this.offlineListener);
      this.onlineListener = this.offlineListener = undefined;
    }
  }

  private setState(state: ConnectionState, extra: Omit<StateChange, "state"> = {}): void {
    this.current = state;
    this.emit("state", { state, ...extra });
  }

  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.setState("connecting", { attempt: this.attempt });
    let ws: WebSocketLike;
    let token: string;
    try {
      const Ctor = await resolveWebSocket(this.opts.WebSocket);
      const url = this.nextUrl ?? (await valueOf(this.opts.url));
      this.nextUrl = undefined;
      token = await valueOf(this.opts.token);
      if (gen !== this.gen || this.stopped) return;
      ws = new Ctor(url);
    } catch (err) {
      if (gen !== this.gen || this.stopped) return;
      this.emit("error", err instanceof ParleyError ? err : new ParleyError("network", String(err)));
      this.scheduleRetry(undefined, "connect failed");
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (gen !== this.gen) return;
      this.lastRx = Date.now();
      const login: Record<string, unknown> = { token, device: this.opts.device ?? "web" };
      if (this.opts.deviceId) login.device_id = this.opts.deviceId;
      this.call("login", login, this.opts.requestTimeoutMs ?? 15_000).then(
        (ok) => {
          if (gen === this.gen) this.onLoginOk(ok as LoginOk);
        },
        (err: ParleyError) => {
          if (gen === this.gen) this.onLoginError(err);
        },
      );
    };
    ws.onmessage = (ev) => {
      if (gen !== this.gen) return;
      const text = messageText(ev.data);
      if (text !== null) this.onText(text);
    };
    ws.onclose = (ev) => {
      if (gen !== this.gen) return;
      this.onClose(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // A close event follows.
    };
  }

  private onLoginError(err: ParleyError): void {
    if (err.code === "unauthorized" || err.code === "forbidden") {
      this.stop("unauthorized", 4003);
      return;
    }
    if (err.code === "rate_limited" && err.retryAfterMs) this.retryAfterMs = err.retryAfterMs;
    this.dropSocket(1000, "login failed: " + err.code);
  }

  private onLoginOk(ok: LoginOk): void {
    this.me = ok;
    this.loggedIn = true;
    this.attempt = 0;
    this.retryAfterMs = 0;
    const owner = `${ok.tenant ?? "default"}/${ok.user}`;
    if (this.st.user !== owner) {
      if (this.st.user !== undefined) {
        // The saved state is another user's: start afresh.
        this.st.useq = null;
        this.st.channels = {};
        this.st.outbox = [];
        this.seq.clearWaiting();
      }
      this.st.user = owner;
      this.saveSoon();
    }
    this.setState("syncing");
    this.startHeartbeat();
    this.settleLogin(ok);
    this.flushOutbox();
    void this.afterLogin(ok);
  }

  private settleLogin(ok: LoginOk): void {
    for (const w of this.loginWaiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(ok);
    }
  }

  private async afterLogin(ok: LoginOk): Promise<void> {
    const gen = this.gen;
    if (this.presenceUsers.size > 0) {
      this.call("presence_sub", { users: [...this.presenceUsers].slice(0, MAX_PRESENCE) })
        .then((res) => {
          for (const p of (res as { presences?: Presence[] }).presences ?? []) this.emit("presence", p);
        })
        .catch(() => undefined);
    }
    try {
      await this.refreshChannels();
    } catch (err) {
      if (gen === this.gen && err instanceof ParleyError && err.code !== "closed") this.emit("error", err);
    }
    if (gen !== this.gen || !this.loggedIn) return;
    if (this.seq.useq === null) {
      const from = this.opts.start === "all" ? 0 : (ok.useq ?? 0);
      this.deliverInbox(this.seq.startInbox(from));
    }
    await this.runSync();
  }

  private onClose(code: number, reason: string): void {
    this.ws = null;
    this.endConnection();
    if (this.stopped) return;
    if (this.kickedNow || code === 4001) {
      this.stop("kicked", code);
    } else if (code === 4003) {
      this.stop("unauthorized", code);
    } else if (NO_RECONNECT_PROTOCOL.has(code)) {
      this.stop("protocol", code);
    } else {
      this.scheduleRetry(code, reason || (this.goawayNow ? "goaway" : "connection closed"));
    }
  }

  /** Forgets the current socket now (it may be dead) and goes on as if it had closed. */
  private dropSocket(code: number, reason: string): void {
    const ws = this.ws;
    this.gen++;
    this.ws = null;
    try {
      ws?.close(1000, reason.slice(0, 100));
    } catch {
      // Already closing.
    }
    this.onClose(code, reason);
  }

  /** What every end of a connection does: stop the heartbeat, fail the calls in flight. */
  private endConnection(): void {
    this.loggedIn = false;
    this.stopHeartbeat();
    this.sendsInFlight.clear();
    clearTimeout(this.syncRetry);
    for (const [id, call] of this.calls) {
      clearTimeout(call.timer);
      this.calls.delete(id);
      call.reject(new ParleyError("closed", "connection lost"));
    }
  }

  private scheduleRetry(code: number | undefined, reason: string): void {
    let delay: number;
    if (this.goawayNow) {
      this.goawayNow = false;
      delay = 100 + Math.round(Math.random() * 900);
    } else {
      delay = backoffDelay(this.attempt, this.opts.backoff);
    }
    delay = Math.max(delay, this.retryAfterMs);
    if (code === 4029) delay = Math.max(delay, 5_000);
    this.retryAfterMs = 0;
    this.attempt++;
    const extra: Omit<StateChange, "state"> = { reason, retryInMs: delay, attempt: this.attempt };
    if (code !== undefined) extra.code = code;
    this.setState("waiting", extra);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (!this.stopped) void this.open();
    }, delay);
  }

  private stop(reason: string, code?: number): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.channelsRefresh);
    this.listenNetwork(false);
    const ws = this.ws;
    this.gen++;
    this.ws = null;
    if (ws) {
      try {
        ws.close(1000, "bye");
      } catch {
        // Already closed.
      }
    }
    this.endConnection();
    const err = new ParleyError(reason === "closed" ? "closed" : reason, "client stopped");
    for (const w of this.loginWaiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(err);
    }
    if (reason === "closed") {
      for (const [cmid, waiters] of this.sendWaiters) {
        this.sendWaiters.delete(cmid);
        for (const w of waiters) w.reject(new ParleyError("closed", "client closed before the send was acknowledged"));
      }
    }
    const extra: Omit<StateChange, "state"> = { reason };
    if (code !== undefined) extra.code = code;
    this.setState("closed", extra);
    this.flushSave();
  }

  // ---- heartbeat ----

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const every = this.opts.pingIntervalMs ?? 25_000;
    const grace = this.opts.pongTimeoutMs ?? 10_000;
    this.pingTimer = setInterval(() => {
      if (!this.ws || !this.loggedIn) return;
      const sentAt = Date.now();
      this.raw({ id: this.nextId++, ping: {} });
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        if (this.lastRx < sentAt && this.ws) this.dropSocket(1006, "heartbeat lost");
      }, grace);
    }, every);
  }

  private stopHeartbeat(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = this.pongTimer = undefined;
  }

  // ---- frames ----

  private raw(frame: Frame): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch {
      return false;
    }
  }

  /** Sends a request on the current socket and waits for its answer. */
  private call(name: string, body: object, timeoutMs = this.opts.requestTimeoutMs ?? 15_000): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new ParleyError("timeout", `no answer to ${name}`));
      }, timeoutMs);
      this.calls.set(id, { resolve, reject, timer });
      if (!this.raw({ id, [name]: body })) {
        clearTimeout(timer);
        this.calls.delete(id);
        reject(new ParleyError("closed", "not connected"));
      }
    });
  }

  private onText(text: string): void {
    this.lastRx = Date.now();
    let frame: Frame;
    try {
      frame = JSON.parse(text) as Frame;
    } catch {
      this.emit("error", new ParleyError("bad_request", "the server sent a frame that is not JSON"));
      return;
    }
    if (!frame || typeof frame !== "object") return;
    const name = bodyName(frame);
    if (!name) return;
    const body = frame[name];
    if (typeof frame.id === "number") {
      const call = this.calls.get(frame.id);
      if (call) {
        this.calls.delete(frame.id);
        clearTimeout(call.timer);
        if (name === "error") call.reject(errorFromBody(body));
        else call.resolve(body ?? {});
      }
      return;
    }
    this.onPush(name, body);
  }

  private onPush(name: string, body: unknown): void {
    switch (name) {
      case "msg":
        this.deliverMessage(body as Message);
        break;
      case "event": {
        const ev = body as InboxEvent;
        if (typeof ev.useq === "number" && ev.useq > 0) {
          this.deliverInbox(this.seq.offerInbox({ useq: ev.useq, event: ev }));
          if (this.seq.inboxGap()) this.requestSync();
        } else {
          this.onInboxEvent(ev);
        }
        break;
      }
      case "receipt":
        this.emit("receipt", body as Receipt);
        break;
      case "typing":
        if ((body as Typing).from !== this.me?.user) this.emit("typing", body as Typing);
        break;
      case "presence":
        this.emit("presence", body as Presence);
        break;
      case "kicked":
        this.kickedNow = true;
        this.emit("kicked", (body ?? {}) as Kicked);
        break;
      case "goaway": {
        const g = (body ?? {}) as Goaway;
        this.emit("goaway", g);
        if (g.url) this.nextUrl = g.url;
        this.goawayNow = true;
        if (this.ws) this.dropSocket(1001, "goaway");
        break;
      }
      case "error":
        this.emit("error", errorFromBody(body));
        break;
      default:
        break;
    }
  }

  // ---- delivery (through the sequencer) ----

  private deliverMessage(m: Message): void {
    if (typeof m.useq === "number" && m.useq > 0) {
      this.deliverInbox(this.seq.offerInbox({ useq: m.useq, msg: m }));
      if (this.seq.inboxGap()) this.requestSync();
    } else if (m.conv?.startsWith("g:")) {
      const group = m.conv.slice(2);
      this.deliverChannel(this.seq.offerChannel(group, m));
      if (this.seq.channelGaps().length > 0) this.requestSync();
    } else {
      this.emit("message", m);
    }
  }

  private deliverInbox(items: InboxItem[]): void {
    for (const item of items) {
      if (item.msg) this.emit("message", { ...item.msg, useq: item.useq });
      else if (item.event) this.onInboxEvent({ ...item.event, useq: item.useq });
    }
    if (items.length > 0) this.saveSoon();
  }

  private deliverChannel(msgs: Message[]): void {
    for (const m of msgs) this.emit("message", m);
    if (msgs.length > 0) this.saveSoon();
  }

  private onInboxEvent(ev: InboxEvent): void {
    if (ev.kind.startsWith("group_")) this.refreshChannelsSoon();
    this.emit("event", ev);
  }

  // ---- sync ----

  /** Syncs now (the client does it by itself after each login and on gaps). */
  requestSync(): void {
    if (!this.loggedIn || this.seq.useq === null) return;
    if (this.syncRunning) {
      this.syncAgain = true;
      return;
    }
    void this.runSync();
  }

  private async runSync(): Promise<void> {
    if (this.syncRunning) {
      this.syncAgain = true;
      return;
    }
    const gen = this.gen;
    this.syncRunning = true;
    let failed = false;
    try {
      do {
        this.syncAgain = false;
        await this.syncOnce(gen);
      } while (this.syncAgain && gen === this.gen);
    } catch (err) {
      failed = true;
      if (gen === this.gen && err instanceof ParleyError && err.code !== "closed") {
        this.emit("error", err);
        clearTimeout(this.syncRetry);
        this.syncRetry = setTimeout(() => this.requestSync(), 1_000);
      }
    } finally {
      this.syncRunning = false;
    }
    if (gen !== this.gen || !this.loggedIn) return;
    if (!failed && (this.seq.inboxGap() || this.seq.channelGaps().length > 0)) {
      // What waits is not in the store yet (a push overtook the write): try again shortly.
      clearTimeout(this.syncRetry);
      this.syncRetry = setTimeout(() => this.requestSync(), 200);
    }
    if (this.current === "syncing") this.setState("online");
  }

  private async syncOnce(gen: number): Promise<void> {
    const limit = this.opts.syncLimit ?? 200;
    let inboxDone = false;
    let channels = this.seq.trackedChannels();
    for (let round = 0; (!inboxDone || channels.length > 0) && round < 10_000; round++) {
      if (gen !== this.gen) return;
      const batch = channels.slice(0, MAX_SYNC_CHANNELS);
      const rest = channels.slice(MAX_SYNC_CHANNELS);
      const body: Record<string, unknown> = { useq: this.seq.useq ?? 0, limit };
      if (batch.length > 0) {
        body.channels = batch.map((group) => ({ group, seq: this.seq.channelSeq(group) ?? 0 }));
      }
      const res = (await this.call("sync", body)) as SyncOk;
      if (gen !== this.gen) return;
      const entries = res.entries ?? [];
      if (!inboxDone) {
        for (const e of entries) {
          const item: InboxItem = { useq: e.useq };
          if (e.msg) item.msg = e.msg;
          if (e.event) item.event = e.event;
          this.deliverInbox(this.seq.offerInbox(item));
        }
        inboxDone = !res.more || entries.length === 0;
      }
      const again: string[] = [];
      for (const ch of res.channels ?? []) {
        const msgs = ch.msgs ?? [];
        for (const m of msgs) this.deliverChannel(this.seq.offerChannel(ch.group, m));
        if (ch.more && msgs.length > 0 && this.seq.channelSeq(ch.group) !== undefined) again.push(ch.group);
      }
      channels = [...again, ...rest];
    }
  }

  private refreshChannelsSoon(): void {
    clearTimeout(this.channelsRefresh);
    this.channelsRefresh = setTimeout(() => {
      if (this.loggedIn) this.refreshChannels().catch(() => undefined);
    }, 50);
  }

  /** Follows the channels the user belongs to (new ones from their latest seq), forgets the others. */
  private async refreshChannels(): Promise<void> {
    const res = (await this.call("my_groups", {})) as { groups?: Group[] };
    const channels = (res.groups ?? []).filter((g) => g.kind === "channel");
    const member = new Set(channels.map((g) => g.group));
    for (const group of this.seq.trackedChannels()) if (!member.has(group)) this.seq.untrackChannel(group);
    for (const g of channels) this.deliverChannel(this.seq.trackChannel(g.group, g.last_seq ?? 0));
    this.saveSoon();
  }

  // ---- persistence ----

  private saveSoon(): void {
    if (this.saveQueued) return;
    this.saveQueued = true;
    queueMicrotask(() => this.flushSave());
  }

  private flushSave(): void {
    this.saveQueued = false;
    this.store.save(this.st);
  }

  // ---- sending ----

  /**
   * Sends a message; resolves with its send_ok. While disconnected the
   * message waits in the outbox and goes out after the next login, with
   * the same cmid. Fails only on a permanent refusal (not_found, too_large,
   * blocked_content, forbidden, bad_request...) or close().
   */
  send(options: SendOptions): Promise<SendAck> {
    const hasTo = typeof options.to === "string" && options.to.length > 0;
    const hasGroup = typeof options.group === "string" && options.group.length > 0;
    if (hasTo === hasGroup) return Promise.reject(new ParleyError("bad_request", "send needs either to or group"));
    if (typeof options.text !== "string" || options.text.length === 0) {
      return Promise.reject(new ParleyError("bad_request", "send needs a text"));
    }
    const cmid = options.cmid ?? newCmid();
    let entry = this.st.outbox.find((e) => e.cmid === cmid);
    if (!entry) {
      entry = { cmid, text: options.text, created: Date.now() };
      if (hasTo) entry.to = options.to as string;
      else entry.group = options.group as string;
      this.st.outbox.push(entry);
      this.saveSoon();
    }
    const p = new Promise<SendAck>((resolve, reject) => {
      const list = this.sendWaiters.get(cmid) ?? [];
      list.push({ resolve, reject });
      this.sendWaiters.set(cmid, list);
    });
    if (this.loggedIn) this.transmitSend(entry);
    return p;
  }

  private flushOutbox(): void {
    for (const entry of this.st.outbox) this.transmitSend(entry);
  }

  private transmitSend(entry: OutboxEntry): void {
    if (!this.loggedIn || this.sendsInFlight.has(entry.cmid)) return;
    this.sendsInFlight.add(entry.cmid);
    const body: Record<string, unknown> = { text: entry.text, cmid: entry.cmid };
    if (entry.to !== undefined) body.to = entry.to;
    else body.group = entry.group;
    const gen = this.gen;
    this.call("send", body).then(
      (ack) => this.onSendOk(entry.cmid, ack as SendAck),
      (err: ParleyError) => {
        if (gen === this.gen) this.sendsInFlight.delete(entry.cmid);
        this.onSendError(entry, err, gen);
      },
    );
  }

  private onSendOk(cmid: string, ack: SendAck): void {
    this.sendsInFlight.delete(cmid);
    const i = this.st.outbox.findIndex((e) => e.cmid === cmid);
    if (i < 0) return;
    const [entry] = this.st.outbox.splice(i, 1);
    this.saveSoon();
    const full: SendAck = { ...ack, cmid };
    const msg: Message = {
      conv: ack.conv,
      seq: ack.seq,
      ts: ack.ts,
      from: this.me?.user ?? "",
      text: entry?.text ?? "",
      cmid,
    };
    if (typeof ack.useq === "number" && ack.useq > 0) msg.useq = ack.useq;
    this.deliverMessage(msg);
    const waiters = this.sendWaiters.get(cmid) ?? [];
    this.sendWaiters.delete(cmid);
    for (const w of waiters) w.resolve(full);
  }

  private onSendError(entry: OutboxEntry, err: ParleyError, gen: number): void {
    if (err.code === "closed") return; // resent after the next login
    if (RETRYABLE_SEND.has(err.code)) {
      const delay = err.retryAfterMs ?? backoffDelay(1, this.opts.backoff);
      setTimeout(() => {
        if (gen === this.gen && this.st.outbox.includes(entry)) this.transmitSend(entry);
      }, delay);
      return;
    }
    const i = this.st.outbox.indexOf(entry);
    if (i >= 0) {
      this.st.outbox.splice(i, 1);
      this.saveSoon();
    }
    const waiters = this.sendWaiters.get(entry.cmid) ?? [];
    this.sendWaiters.delete(entry.cmid);
    for (const w of waiters) w.reject(err);
  }

  // ---- requests ----

  private whenLoggedIn(timeoutMs: number): Promise<void> {
    if (this.loggedIn) return Promise.resolve();
    if (this.stopped) return Promise.reject(new ParleyError("closed", "client is not connected; call connect()"));
    return new Promise((resolve, reject) => {
      const w: Waiter<LoginOk> = { resolve: () => resolve(), reject };
      w.timer = setTimeout(() => {
        const i = this.loginWaiters.indexOf(w);
        if (i >= 0) this.loginWaiters.splice(i, 1);
        reject(new ParleyError("timeout", "not connected"));
      }, timeoutMs);
      this.loginWaiters.push(w);
    });
  }

  /**
   * Any request of the protocol by body name (`group_info`, `home`...):
   * waits for the connection (up to requestTimeoutMs), sends it, and
   * resolves with the `<name>_ok` body or rejects with the ParleyError.
   */
  async request<T = unknown>(name: string, body: object = {}): Promise<T> {
    const timeout = this.opts.requestTimeoutMs ?? 15_000;
    const started = Date.now();
    await this.whenLoggedIn(timeout);
    return (await this.call(name, body, Math.max(1, timeout - (Date.now() - started)))) as T;
  }

  /** Tells the peers of a conversation that the user is typing (at most once per typingIntervalMs). */
  typing(conv: string): void {
    if (!this.loggedIn) return;
    const now = Date.now();
    const last = this.typingSent.get(conv) ?? 0;
    if (now - last < (this.opts.typingIntervalMs ?? 2_000)) return;
    this.typingSent.set(conv, now);
    this.raw({ typing: { conv } });
  }

  /** Marks a conversation read up to seq (the dm peer gets a receipt). */
  async read(conv: string, seq: number): Promise<void> {
    await this.request("read", { conv, seq });
  }

  /** A page of older messages, newest first (before_seq 0 or absent: from the newest). */
  async history(conv: string, options: { beforeSeq?: number; limit?: number } = {}): Promise<HistoryPage> {
    const body: Record<string, unknown> = { conv };
    if (options.beforeSeq) body.before_seq = options.beforeSeq;
    if (options.limit) body.limit = options.limit;
    const res = await this.request<{ msgs?: Message[]; more?: boolean }>("history", body);
    return { msgs: res.msgs ?? [], more: res.more ?? false };
  }

  /** The conversation list with last message and unread counts. */
  async home(limit?: number): Promise<Conversation[]> {
    const res = await this.request<{ convs?: Conversation[] }>("home", limit ? { limit } : {});
    return res.convs ?? [];
  }

  /** Follows the presence of users (also after reconnects); resolves with their current states. */
  async subscribePresence(users: string[]): Promise<Presence[]> {
    for (const u of users) this.presenceUsers.add(u);
    const res = await this.request<{ presences?: Presence[] }>("presence_sub", { users });
    return res.presences ?? [];
  }

  async createGroup(options: {
    name: string;
    kind?: "group" | "channel";
    members?: string[];
    group?: string;
    adminsPostOnly?: boolean;
  }): Promise<Group> {
    const body: Record<string, unknown> = { name: options.name, kind: options.kind ?? "group" };
    if (options.members && options.members.length > 0) body.members = options.members;
    if (options.group) body.group = options.group;
    if (options.adminsPostOnly) body.admins_post_only = true;
    const g = await this.request<Group>("group_create", body);
    if (g.kind === "channel") this.deliverChannel(this.seq.trackChannel(g.group, g.last_seq ?? 0));
    return g;
  }

  async groupInfo(group: string): Promise<Group> {
    return this.request<Group>("group_info", { group });
  }

  /** Joins a channel (public) and follows it from its latest message. */
  async joinGroup(group: string): Promise<Group> {
    const g = await this.request<Group>("group_join", { group });
    if (g.kind === "channel") this.deliverChannel(this.seq.trackChannel(group, g.last_seq ?? 0));
    this.saveSoon();
    return g;
  }

  async leaveGroup(group: string): Promise<void> {
    await this.request("group_leave", { group });
    this.seq.untrackChannel(group);
    this.saveSoon();
  }

  async groupMembers(group: string, options: { after?: string; limit?: number } = {}): Promise<{ members: Member[]; more: boolean }> {
    const body: Record<string, unknown> = { group };
    if (options.after) body.after = options.after;
    if (options.limit) body.limit = options.limit;
    const res = await this.request<{ members?: Member[]; more?: boolean }>("group_members", body);
    return { members: res.members ?? [], more: res.more ?? false };
  }

  async myGroups(): Promise<Group[]> {
    const res = await this.request<{ groups?: Group[] }>("my_groups", {});
    return res.groups ?? [];
  }

  async searchChannels(q: string, limit?: number): Promise<Group[]> {
    const body: Record<string, unknown> = { q };
    if (limit) body.limit = limit;
    const res = await this.request<{ groups?: Group[] }>("channel_search", body);
    return res.groups ?? [];
  }

  async friends(): Promise<Friend[]> {
    const res = await this.request<{ friends?: Friend[] }>("friend_list", {});
    return res.friends ?? [];
  }

  /** request, accept, reject or delete a friendship; resolves with the new state. */
  async friend(user: string, action: "request" | "accept" | "reject" | "delete"): Promise<Friend> {
    return this.request<Friend>("friend", { user, action });
  }
}
