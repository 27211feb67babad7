/**
 * ParleyHttp: the HTTP JSON API of SPEC section 4 (docs/protocol.md, "HTTP
 * API"), one method per route. Uses the host's `fetch` (browsers, Node 18+)
 * or the one passed in. Every failure is a ParleyError with the server's
 * `code`, the HTTP `status` and, for `rate_limited`, `retryAfterMs`.
 */
import { errorFromBody, ParleyError } from "./errors.js";
import type {
  Conversation,
  Friend,
  Group,
  HistoryPage,
  Member,
  Message,
  Presence,
  SendAck,
  SyncOk,
  TokenOk,
  User,
} from "./types.js";

type FetchLike = (
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
) => Promise<{ status: number; ok: boolean; text(): Promise<string>; headers: { get(name: string): string | null } }>;

export interface HttpOptions {
  /** e.g. `http://127.0.0.1:8080` (default in a browser: the page's origin). */
  baseUrl?: string;
  /** A user's token, a tenant's API key or the admin token. */
  token?: string;
  fetch?: FetchLike;
}

const enc = encodeURIComponent;

function query(params: Record<string, string | number | undefined>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") parts.push(`${enc(k)}=${enc(String(v))}`);
  return parts.length > 0 ? "?" + parts.join("&") : "";
}

export class ParleyHttp {
  readonly baseUrl: string;
  token: string | undefined;
  private readonly fetchFn: FetchLike;

  constructor(options: HttpOptions = {}) {
    const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
    const base = options.baseUrl ?? origin;
    if (!base) throw new ParleyError("bad_request", "ParleyHttp needs a baseUrl outside a browser");
    this.baseUrl = base.replace(/\/+$/, "");
    this.token = options.token;
    const f = options.fetch ?? (globalThis as { fetch?: FetchLike }).fetch;
    if (!f) throw new ParleyError("unavailable", "no fetch: pass options.fetch");
    this.fetchFn = f.bind(globalThis) as FetchLike;
  }

  /** The WebSocket URL of the same server (`ws://host/v1/ws` or `wss://`). */
  wsUrl(): string {
    return this.baseUrl.replace(/^http/, "ws") + "/v1/ws";
  }

  /** One call: JSON in, JSON out; rejects with a ParleyError. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const init: { method: string; headers: Record<string, string>; body?: string } = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await this.fetchFn(this.baseUrl + path, init);
    } catch (err) {
      throw new ParleyError("network", String(err));
    }
    const text = await res.text();
    let json: unknown = undefined;
    if (text.length > 0) {
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
    }
    if (!res.ok) {
      const e = (json as { error?: unknown } | undefined)?.error;
      if (e) throw errorFromBody(e, res.status);
      const retry = res.headers.get("Retry-After");
      const extra: { status: number; retryAfterMs?: number } = { status: res.status };
      if (retry) extra.retryAfterMs = Number(retry) * 1000;
      throw new ParleyError(res.status === 404 ? "not_found" : "internal", `HTTP ${res.status}`, extra);
    }
    return (json ?? {}) as T;
  }

  // ---- accounts ----

  /** Creates an account where the tenant allows open sign-up; keeps the token for later calls. */
  async signup(p: { user: string; password: string; name?: string; tenant?: string }): Promise<TokenOk> {
    const ok = await this.call<TokenOk>("POST", "/v1/signup", p);
    this.token = ok.token;
    return ok;
  }

  /** Password login; keeps the token for later calls. */
  async login(p: { user: string; password: string; tenant?: string; device?: string }): Promise<TokenOk> {
    const ok = await this.call<TokenOk>("POST", "/v1/login", p);
    this.token = ok.token;
    return ok;
  }

  /** Revokes the token (connections that use it are closed). */
  async logout(): Promise<void> {
    await this.call("POST", "/v1/logout", {});
    this.token = undefined;
  }

  /** (API key) Creates a user; with issueToken, also a token for it. */
  async createUser(p: { user: string; password?: string; name?: string; issueToken?: boolean }): Promise<User> {
    const body: Record<string, unknown> = { user: p.user };
    if (p.password !== undefined) body.password = p.password;
    if (p.name !== undefined) body.name = p.name;
    if (p.issueToken) body.issue_token = true;
    return this.call<User>("POST", "/v1/users", body);
  }

  async getUser(user: string): Promise<User> {
    return this.call<User>("GET", `/v1/users/${enc(user)}`);
  }

  /** Users whose id or name starts with q. */
  async searchUsers(q: string, limit?: number): Promise<User[]> {
    const res = await this.call<{ users?: User[] }>("GET", "/v1/users" + query({ q, limit }));
    return res.users ?? [];
  }

  // ---- messages ----

  async home(limit?: number): Promise<Conversation[]> {
    const res = await this.call<{ convs?: Conversation[] }>("GET", "/v1/home" + query({ limit }));
    return res.convs ?? [];
  }

  /** Sends as the caller (exactly once per cmid). */
  async send(p: { to?: string; group?: string; text: string; cmid: string }): Promise<SendAck> {
    const ack = await this.call<Omit<SendAck, "cmid">>("POST", "/v1/messages", p);
    return { ...ack, cmid: p.cmid };
  }

  /** A page of a conversation's messages, newest first. */
  async history(conv: string, options: { beforeSeq?: number; limit?: number } = {}): Promise<HistoryPage> {
    const q = query({ before_seq: options.beforeSeq, limit: options.limit });
    const res = await this.call<{ msgs?: Message[]; more?: boolean }>("GET", `/v1/conversations/${enc(conv)}/messages${q}`);
    return { msgs: res.msgs ?? [], more: res.more ?? false };
  }

  async read(conv: string, seq: number): Promise<void> {
    await this.call("POST", `/v1/conversations/${enc(conv)}/read`, { seq });
  }

  /** Inbox entries after useq (a device without a socket can poll this). */
  async sync(useq: number, limit?: number): Promise<SyncOk> {
    return this.call<SyncOk>("GET", "/v1/sync" + query({ useq, limit }));
  }

  // ---- groups and channels ----

  async createGroup(p: {
    name: string;
    kind?: "group" | "channel";
    members?: string[];
    group?: string;
    adminsPostOnly?: boolean;
    owner?: string;
  }): Promise<Group> {
    const body: Record<string, unknown> = { name: p.name, kind: p.kind ?? "group" };
    if (p.members && p.members.length > 0) body.members = p.members;
    if (p.group) body.group = p.group;
    if (p.adminsPostOnly) body.admins_post_only = true;
    if (p.owner) body.owner = p.owner;
    return this.call<Group>("POST", "/v1/groups", body);
  }

  async myGroups(): Promise<Group[]> {
    const res = await this.call<{ groups?: Group[] }>("GET", "/v1/groups");
    return res.groups ?? [];
  }

  async getGroup(group: string): Promise<Group> {
    return this.call<Group>("GET", `/v1/groups/${enc(group)}`);
  }

  async disbandGroup(group: string): Promise<void> {
    await this.call("DELETE", `/v1/groups/${enc(group)}`);
  }

  async joinGroup(group: string): Promise<Group> {
    return this.call<Group>("POST", `/v1/groups/${enc(group)}/join`, {});
  }

  async leaveGroup(group: string): Promise<void> {
    await this.call("POST", `/v1/groups/${enc(group)}/leave`, {});
  }

  async groupMembers(group: string, options: { after?: string; limit?: number } = {}): Promise<{ members: Member[]; more: boolean }> {
    const res = await this.call<{ members?: Member[]; more?: boolean }>(
      "GET",
      `/v1/groups/${enc(group)}/members` + query({ after: options.after, limit: options.limit }),
    );
    return { members: res.members ?? [], more: res.more ?? false };
  }

  async addMembers(group: string, users: string[], role?: "member" | "admin"): Promise<{ added: number; group?: Group }> {
    const body: Record<string, unknown> = { users };
    if (role) body.role = role;
    const res = await this.call<{ added?: number; group?: Group }>("POST", `/v1/groups/${enc(group)}/members`, body);
    const out: { added: number; group?: Group } = { added: res.added ?? 0 };
    if (res.group) out.group = res.group;
    return out;
  }

  async removeMember(group: string, user: string): Promise<void> {
    await this.call("DELETE", `/v1/groups/${enc(group)}/members/${enc(user)}`);
  }

  async setRole(group: string, user: string, role: "member" | "admin"): Promise<void> {
    await this.call("POST", `/v1/groups/${enc(group)}/roles`, { user, role });
  }

  /** Public channels whose id or name starts with q. */
  async searchChannels(q: string, limit?: number): Promise<Group[]> {
    const res = await this.call<{ groups?: Group[] }>("GET", "/v1/channels" + query({ q, limit }));
    return res.groups ?? [];
  }

  // ---- friends and presence ----

  async friends(): Promise<Friend[]> {
    const res = await this.call<{ friends?: Friend[] }>("GET", "/v1/friends");
    return res.friends ?? [];
  }

  async friendRequest(user: string): Promise<Friend> {
    return this.call<Friend>("POST", "/v1/friends/requests", { user });
  }

  async friendAccept(user: string): Promise<Friend> {
    return this.call<Friend>("POST", `/v1/friends/requests/${enc(user)}/accept`, {});
  }

  async friendReject(user: string): Promise<Friend> {
    return this.call<Friend>("POST", `/v1/friends/requests/${enc(user)}/reject`, {});
  }

  async friendDelete(user: string): Promise<Friend> {
    return this.call<Friend>("DELETE", `/v1/friends/${enc(user)}`);
  }

  async presence(users: string[]): Promise<Presence[]> {
    const res = await this.call<{ presences?: Presence[] }>("GET", "/v1/presence" + query({ users: users.join(",") }));
    return res.presences ?? [];
  }
}
