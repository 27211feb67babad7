// The parley web chat page: sign up / log in, then the home list, 1:1
// chats, groups and channels, on the SDK (sdk/js). Served by parleyd at /.
//
// State lives in one App object; rendering rebuilds the small parts that
// changed (the conversation list, the open conversation) from it. The
// session (user, token) is kept in localStorage so a reload stays logged
// in; the SDK keeps its sync positions and unsent messages there too.
import {
  LocalStorageStore,
  ParleyClient,
  ParleyError,
  ParleyHttp,
  newCmid,
  type Conversation,
  type Group,
  type InboxEvent,
  type Message,
  type StateChange,
} from "../../sdk/js/src/index.js";
import { field, h, replace, timeOf } from "./dom.js";

const SESSION_KEY = "parley.session";
const DEVICE_KEY = "parley.device";
const ID_PATTERN = "[A-Za-z0-9_.@\\-]{1,64}";
const TYPING_SHOWN_MS = 4000;

interface Session {
  user: string;
  token: string;
  tenant: string;
}

function loadSession(): Session | null {
  try {
    const s = JSON.parse(localStorage.getItem(SESSION_KEY) ?? "null") as Session | null;
    return s && typeof s.user === "string" && typeof s.token === "string" ? s : null;
  } catch {
    return null;
  }
}

function saveSession(s: Session | null): void {
  try {
    if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // Private mode: the session lasts as long as the page.
  }
}

function deviceId(): string {
  try {
    let id = localStorage.getItem(DEVICE_KEY);
    if (!id) {
      id = "web-" + newCmid().slice(0, 8);
      localStorage.setItem(DEVICE_KEY, id);
    }
    return id;
  } catch {
    return "web";
  }
}

/** A sentence for a person, from any error. */
function describe(err: unknown): string {
  if (err instanceof ParleyError) {
    switch (err.code) {
      case "unauthorized":
        return "Wrong user id or password.";
      case "conflict":
        return "That user id is taken.";
      case "not_found":
        return "Not found.";
      case "forbidden":
        return "Not allowed.";
      case "rate_limited":
        return `Too many attempts; try again in ${Math.ceil((err.retryAfterMs ?? 1000) / 1000)} s.`;
      case "network":
      case "closed":
      case "timeout":
      case "unavailable":
        return "Cannot reach the server right now.";
      case "too_large":
        return "Too long.";
      case "blocked_content":
        return "Refused by the word filter.";
      default: {
        const m = err.message.replace(/^[a-z_]+: /, "");
        return m.charAt(0).toUpperCase() + m.slice(1) + (m.endsWith(".") ? "" : ".");
      }
    }
  }
  return String(err);
}

function dmConv(a: string, b: string): string {
  return a < b ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

const root = document.getElementById("root") as HTMLElement;
const http = new ParleyHttp();

// ---------------------------------------------------------------------------
// Sign up / log in
// ---------------------------------------------------------------------------

function showAuth(note = ""): void {
  document.title = "parley";
  const user = h("input", {
    name: "user",
    autocomplete: "username",
    autocapitalize: "none",
    spellcheck: "false",
    required: true,
    pattern: ID_PATTERN,
    title: "1 to 64 letters, digits or _ . @ -",
  });
  const pass = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true, minlength: 8 });
  const error = h("p", { class: "error", role: "alert" }, note);
  const login = h("button", { type: "submit" }, "Log in");
  const signup = h("button", { type: "button", class: "secondary" }, "Sign up");
  const form = h(
    "form",
    { class: "auth", "aria-labelledby": "auth-title" },
    h("h1", { id: "auth-title" }, "parley"),
    h("p", { class: "muted" }, "Log in, or sign up with a new user id."),
    field("User id", user),
    field("Password", pass),
    h("div", { class: "row" }, login, signup),
    error,
  );
  const go = async (mode: "login" | "signup"): Promise<void> => {
    if (!form.reportValidity()) return;
    login.disabled = signup.disabled = true;
    error.textContent = "";
    try {
      const p = { user: user.value.trim(), password: pass.value };
      const ok = mode === "login" ? await http.login({ ...p, device: "web" }) : await http.signup(p);
      const session = { user: ok.user, token: ok.token, tenant: ok.tenant ?? "default" };
      saveSession(session);
      new App(session).start();
    } catch (err) {
      error.textContent = describe(err);
      login.disabled = signup.disabled = false;
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    void go("login");
  });
  signup.addEventListener("click", () => void go("signup"));
  replace(root, h("main", { class: "auth-page" }, form));
  user.focus();
}

// ---------------------------------------------------------------------------
// The chat
// ---------------------------------------------------------------------------

interface Pending {
  text: string;
  failed?: string;
}

interface Conv {
  id: string;
  kind: "dm" | "group" | "channel";
  /** dm: the other user; otherwise the group id. */
  peer: string;
  name: string;
  last?: Message;
  unread: number;
  readSeq: number;
  activeTs: number;
  msgs: Map<number, Message>;
  pending: Map<string, Pending>;
  historyLoaded: boolean;
  more: boolean;
  loading: boolean;
  peerRead: number;
  typing: Map<string, number>;
}

class App {
  private readonly me: string;
  private readonly session: Session;
  private readonly api: ParleyHttp;
  private readonly client: ParleyClient;
  private readonly convs = new Map<string, Conv>();
  private readonly presence = new Map<string, { online: boolean; lastSeen?: number }>();
  private active: string | null = null;
  private connected = false;
  private searchTimer: ReturnType<typeof setTimeout> | undefined;
  private typingTimer: ReturnType<typeof setTimeout> | undefined;

  // Elements that are updated.
  private readonly shell = h("div", { class: "app" });
  private readonly status = h("span", { class: "status", role: "status" }, "Connecting…");
  private readonly banner = h("div", { class: "banner", hidden: true, role: "alert" });
  private readonly list = h("ul", { class: "convs", "aria-label": "Conversations" });
  private readonly sideNote = h("p", { class: "side-note", role: "alert" });
  private readonly results = h("ul", { class: "results", "aria-label": "Channels found" });
  private readonly searchInput = h("input", { type: "search", name: "q", autocomplete: "off", placeholder: "Find channels" });
  private readonly chat = h("section", { class: "chat", "aria-label": "Conversation" });
  private readonly log = h("ol", { class: "msgs" });
  private readonly logBox = h("div", { class: "log", role: "log", "aria-label": "Conversation history", tabindex: 0 });
  private readonly typingLine = h("p", { class: "typing", "aria-live": "polite" });
  private readonly chatTitle = h("h2", { class: "chat-title" });
  private readonly chatSub = h("span", { class: "chat-sub" });
  private readonly olderButton = h("button", { type: "button", class: "older secondary" }, "Load older messages");
  private readonly input = h("textarea", { rows: 2, autocomplete: "off", maxlength: 10000, placeholder: "Write a message" }) as HTMLTextAreaElement;

  constructor(session: Session) {
    this.session = session;
    this.me = session.user;
    this.api = new ParleyHttp({ token: session.token });
    this.client = new ParleyClient({
      url: this.api.wsUrl(),
      token: session.token,
      device: "web",
      deviceId: deviceId(),
      store: new LocalStorageStore(`parley:${session.tenant}:${session.user}`),
    });
  }

  start(): void {
    document.title = `parley — ${this.me}`;
    this.renderShell();
    const c = this.client;
    c.on("message", (m) => this.onMessage(m));
    c.on("receipt", (r) => {
      const conv = this.convs.get(r.conv);
      if (!conv || r.user === this.me) return;
      conv.peerRead = Math.max(conv.peerRead, r.seq);
      if (this.active === conv.id) this.renderMessages(false);
    });
    c.on("typing", (t) => {
      const conv = this.convs.get(t.conv);
      if (!conv) return;
      conv.typing.set(t.from, Date.now() + TYPING_SHOWN_MS);
      if (this.active === conv.id) this.renderTyping();
    });
    c.on("presence", (p) => {
      const entry: { online: boolean; lastSeen?: number } = { online: p.online === true };
      if (p.last_seen) entry.lastSeen = p.last_seen;
      this.presence.set(p.user, entry);
      this.renderList();
      this.renderChatHeader();
    });
    c.on("event", (e) => this.onEvent(e));
    c.on("state", (s) => this.onState(s));
    for (const p of c.pending()) {
      const id = p.to ? dmConv(this.me, p.to) : `g:${p.group ?? ""}`;
      const conv = this.ensureConv(id);
      conv.pending.set(p.cmid, { text: p.text });
    }
    c.connect().catch((err: ParleyError) => {
      if (err.code === "unauthorized") this.logout("Your session has ended; please log in again.");
    });
    void this.loadHome();
    document.addEventListener("visibilitychange", () => {
      const conv = this.active ? this.convs.get(this.active) : undefined;
      if (conv && document.visibilityState === "visible") this.markRead(conv);
    });
  }

  // ---- layout ----

  private renderShell(): void {
    const newUser = h("input", { name: "peer", autocomplete: "off", autocapitalize: "none", spellcheck: "false", required: true, pattern: ID_PATTERN });
    const newChat = h(
      "form",
      { class: "inline", "aria-label": "Start a chat" },
      field("User id", newUser),
      h("button", { type: "submit" }, "New chat"),
    );
    newChat.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.startChat(newUser.value.trim()).then((ok) => {
        if (ok) newUser.value = "";
      });
    });

    const groupName = h("input", { name: "group-name", autocomplete: "off", required: true, maxlength: 100 });
    const groupMembers = h("input", { name: "members", autocomplete: "off", placeholder: "bob, carol" });
    const channel = h("input", { type: "checkbox", name: "channel" });
    const newGroup = h(
      "form",
      { class: "stack", "aria-label": "Create a group" },
      field("Group name", groupName),
      field("Members", groupMembers),
      h("label", { class: "check" }, channel, " Public channel"),
      h("button", { type: "submit" }, "New group"),
    );
    newGroup.addEventListener("submit", (e) => {
      e.preventDefault();
      const members = groupMembers.value.split(/[\s,]+/).filter((s) => s.length > 0);
      void this.createGroup(groupName.value.trim(), channel.checked ? "channel" : "group", members).then((ok) => {
        if (ok) {
          groupName.value = groupMembers.value = "";
          channel.checked = false;
        }
      });
    });

    const search = this.searchInput;
    search.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => void this.search(search.value.trim()), 200);
    });
    const searchForm = h("form", { role: "search", class: "stack", "aria-label": "Channels" }, field("Search", search), this.results);
    searchForm.addEventListener("submit", (e) => {
      e.preventDefault();
      void this.search(search.value.trim());
    });

    const logout = h("button", { type: "button", class: "secondary small" }, "Log out");
    logout.addEventListener("click", () => void this.logout());

    const side = h(
      "nav",
      { class: "side", "aria-label": "Chats" },
      h("h2", { class: "section" }, "Chats"),
      this.list,
      h("details", { class: "tools", open: true }, h("summary", {}, "Start something"), newChat, newGroup, this.sideNote),
      searchForm,
    );

    this.olderButton.addEventListener("click", () => {
      const conv = this.active ? this.convs.get(this.active) : undefined;
      if (conv) void this.loadOlder(conv);
    });
    this.logBox.addEventListener("scroll", () => {
      const conv = this.active ? this.convs.get(this.active) : undefined;
      if (conv && this.logBox.scrollTop < 40 && conv.more && !conv.loading) void this.loadOlder(conv);
    });
    this.input.addEventListener("input", () => {
      if (this.active && this.input.value.trim()) this.client.typing(this.active);
    });
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        composer.requestSubmit();
      }
    });
    const composer = h(
      "form",
      { class: "composer", "aria-label": "Compose" },
      field("Message", this.input, "grow quiet"),
      h("button", { type: "submit" }, "Send"),
    );
    composer.addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendCurrent();
    });
    const back = h("button", { type: "button", class: "back secondary small", "aria-label": "Back to chats" }, "‹ Chats");
    back.addEventListener("click", () => {
      this.active = null;
      this.shell.classList.remove("show-chat");
      this.renderList();
      this.renderChat();
    });
    replace(
      this.chat,
      h("header", { class: "chat-head" }, back, h("div", { class: "chat-names" }, this.chatTitle, this.chatSub)),
      h("div", { class: "chat-body" }, this.logBox, this.typingLine, composer),
      h("p", { class: "empty" }, "Pick a conversation, or start a new chat."),
    );
    replace(this.logBox, this.olderButton, this.log);

    replace(
      this.shell,
      h("header", { class: "top" }, h("strong", { class: "brand" }, "parley"), h("span", { class: "who" }, this.me), this.status, logout),
      this.banner,
      h("div", { class: "panes" }, side, this.chat),
    );
    replace(root, this.shell);
    this.renderList();
    this.renderChat();
  }

  private note(text: string): void {
    this.sideNote.textContent = text;
  }

  // ---- data ----

  private ensureConv(id: string, info?: Partial<Conversation>): Conv {
    let conv = this.convs.get(id);
    if (!conv) {
      const dm = id.startsWith("dm:");
      const parts = id.split(":");
      const peer = dm ? (parts[1] === this.me ? (parts[2] ?? "") : (parts[1] ?? "")) : id.slice(2);
      conv = {
        id,
        kind: dm ? "dm" : "group",
        peer,
        name: peer,
        unread: 0,
        readSeq: 0,
        activeTs: 0,
        msgs: new Map(),
        pending: new Map(),
        historyLoaded: false,
        more: true,
        loading: false,
        peerRead: 0,
        typing: new Map(),
      };
      this.convs.set(id, conv);
      if (!dm && !info?.name) void this.loadGroupInfo(conv);
      if (dm) queueMicrotask(() => void this.followPresence());
    }
    if (info) {
      if (info.kind === "dm" || info.kind === "group" || info.kind === "channel") conv.kind = info.kind;
      if (info.name) conv.name = info.name;
      if (info.last && (!conv.last || info.last.seq >= conv.last.seq)) conv.last = info.last;
      if (info.read_seq !== undefined) conv.readSeq = Math.max(conv.readSeq, info.read_seq);
      if (info.unread !== undefined) conv.unread = info.unread;
      if (info.active_ts) conv.activeTs = Math.max(conv.activeTs, info.active_ts);
    }
    return conv;
  }

  private async loadGroupInfo(conv: Conv): Promise<void> {
    try {
      const g = await this.api.getGroup(conv.peer);
      conv.name = g.name || g.group;
      if (g.kind === "channel" || g.kind === "group") conv.kind = g.kind;
      this.renderList();
      if (this.active === conv.id) this.renderChatHeader();
    } catch {
      // Keep the id as its name.
    }
  }

  private async loadHome(): Promise<void> {
    try {
      const convs = await this.api.home();
      for (const c of convs) this.ensureConv(c.conv, c);
      const active = this.active ? this.convs.get(this.active) : undefined;
      if (active && document.visibilityState === "visible") this.markRead(active);
      this.renderList();
      void this.followPresence();
    } catch (err) {
      if (err instanceof ParleyError && err.code === "unauthorized") this.logout("Your session has ended; please log in again.");
    }
  }

  private async followPresence(): Promise<void> {
    const peers = [...this.convs.values()].filter((c) => c.kind === "dm" && !this.presence.has(c.peer)).map((c) => c.peer);
    if (peers.length === 0) return;
    try {
      const states = await this.client.subscribePresence(peers.slice(0, 500));
      for (const p of states) {
        const entry: { online: boolean; lastSeen?: number } = { online: p.online === true };
        if (p.last_seen) entry.lastSeen = p.last_seen;
        this.presence.set(p.user, entry);
      }
      this.renderList();
      this.renderChatHeader();
    } catch {
      // Retried on the next home load.
    }
  }

  private onMessage(m: Message): void {
    const conv = this.ensureConv(m.conv);
    conv.msgs.set(m.seq, m);
    if (m.cmid) conv.pending.delete(m.cmid);
    if (!conv.last || m.seq >= conv.last.seq) conv.last = m;
    conv.activeTs = Math.max(conv.activeTs, m.ts);
    if (m.from === this.me) {
      conv.readSeq = Math.max(conv.readSeq, m.seq);
    } else {
      conv.typing.delete(m.from);
      if (this.active === conv.id && document.visibilityState === "visible") this.markRead(conv);
      else if (m.seq > conv.readSeq) conv.unread++;
    }
    this.renderList();
    if (this.active === conv.id) {
      this.renderMessages(m.from === this.me);
      this.renderTyping();
    }
  }

  private onEvent(e: InboxEvent): void {
    if (e.kind === "read" && e.conv) {
      const conv = this.convs.get(e.conv);
      if (conv && e.seq !== undefined) {
        conv.readSeq = Math.max(conv.readSeq, e.seq);
        if (!conv.last || e.seq >= conv.last.seq) conv.unread = 0;
        this.renderList();
      }
    } else if (e.kind.startsWith("group_")) {
      if ((e.kind === "group_removed" || e.kind === "group_disbanded" || e.kind === "group_left") && e.conv) {
        const conv = this.convs.get(e.conv);
        if (conv && e.kind !== "group_left") this.note(`You are no longer in ${conv.name}.`);
      }
      void this.loadHome();
    }
  }

  private onState(s: StateChange): void {
    this.connected = s.state === "online" || s.state === "syncing";
    switch (s.state) {
      case "connecting":
        this.status.textContent = "Connecting…";
        break;
      case "syncing":
        this.status.textContent = "Syncing…";
        break;
      case "online":
        this.status.textContent = "Online";
        this.banner.hidden = true;
        void this.loadHome(); // unread counts may have moved while away
        break;
      case "waiting":
        this.status.textContent = "Offline, reconnecting…";
        break;
      case "closed":
        this.status.textContent = "Disconnected";
        if (s.reason === "kicked") {
          const again = h("button", { type: "button", class: "small" }, "Reconnect");
          again.addEventListener("click", () => {
            this.banner.hidden = true;
            this.client.connect().catch(() => undefined);
          });
          replace(this.banner, "You signed in on another web page, so this one was disconnected. ", again);
          this.banner.hidden = false;
        } else if (s.reason === "unauthorized") {
          this.logout("Your session has ended; please log in again.");
        }
        break;
      default:
        break;
    }
    this.shell.classList.toggle("offline", !this.connected);
  }

  private markRead(conv: Conv): void {
    const seq = conv.last?.seq ?? 0;
    conv.unread = 0;
    if (seq > conv.readSeq) {
      conv.readSeq = seq;
      this.client.read(conv.id, seq).catch(() => undefined);
    }
    this.renderList();
  }

  // ---- actions ----

  private async startChat(peer: string): Promise<boolean> {
    if (!peer) return false;
    if (peer === this.me) {
      this.note("That is you. Pick someone else.");
      return false;
    }
    try {
      await this.api.getUser(peer);
    } catch (err) {
      this.note(err instanceof ParleyError && err.code === "not_found" ? `No user ${peer}.` : describe(err));
      return false;
    }
    this.note("");
    const conv = this.ensureConv(dmConv(this.me, peer));
    void this.followPresence();
    this.open(conv.id);
    return true;
  }

  private async createGroup(name: string, kind: "group" | "channel", members: string[]): Promise<boolean> {
    if (!name) return false;
    try {
      const g = await this.client.createGroup({ name, kind, members });
      this.note("");
      const conv = this.ensureConv(`g:${g.group}`, { kind, name: g.name ?? name });
      conv.historyLoaded = true;
      conv.more = false;
      this.open(conv.id);
      return true;
    } catch (err) {
      this.note(describe(err));
      return false;
    }
  }

  private async search(q: string): Promise<void> {
    if (!q) {
      replace(this.results);
      return;
    }
    let found: Group[];
    try {
      found = await this.api.searchChannels(q, 20);
    } catch (err) {
      replace(this.results, h("li", { class: "muted" }, describe(err)));
      return;
    }
    if (found.length === 0) {
      replace(this.results, h("li", { class: "muted" }, "No channel found."));
      return;
    }
    replace(
      this.results,
      ...found.map((g) => {
        const id = `g:${g.group}`;
        const nameId = `found-${g.group}`;
        const member = this.convs.has(id);
        const button = h("button", { type: "button", class: "small", "aria-describedby": nameId }, member ? "Open" : "Join");
        button.addEventListener("click", () => void this.join(g, member));
        return h(
          "li",
          {},
          h("span", { id: nameId, class: "found-name" }, `#${g.name || g.group}`),
          h("span", { class: "muted" }, ` ${g.members ?? 0} ${g.members === 1 ? "member" : "members"}`),
          button,
        );
      }),
    );
  }

  private async join(g: Group, member: boolean): Promise<void> {
    try {
      if (!member) await this.client.joinGroup(g.group);
      const conv = this.ensureConv(`g:${g.group}`, { kind: "channel", name: g.name ?? g.group });
      replace(this.results);
      this.searchInput.value = "";
      this.open(conv.id);
    } catch (err) {
      this.note(describe(err));
    }
  }

  private sendCurrent(): void {
    const conv = this.active ? this.convs.get(this.active) : undefined;
    const text = this.input.value.trim();
    if (!conv || !text) return;
    const cmid = newCmid();
    const pending: Pending = { text };
    conv.pending.set(cmid, pending);
    this.input.value = "";
    this.renderMessages(true);
    const target = conv.kind === "dm" ? { to: conv.peer } : { group: conv.peer };
    this.client.send({ ...target, text, cmid }).catch((err: unknown) => {
      pending.failed = describe(err);
      if (this.active === conv.id) this.renderMessages(false);
    });
  }

  private async logout(note = ""): Promise<void> {
    const token = this.session.token;
    this.client.close();
    saveSession(null);
    showAuth(note);
    if (!note) await new ParleyHttp({ token }).logout().catch(() => undefined);
  }

  private open(id: string): void {
    this.active = id;
    const conv = this.convs.get(id);
    this.shell.classList.add("show-chat");
    this.renderList();
    this.renderChat();
    if (!conv) return;
    if (!conv.historyLoaded) void this.loadOlder(conv);
    this.markRead(conv);
    this.input.focus();
  }

  private async loadOlder(conv: Conv): Promise<void> {
    if (conv.loading || (conv.historyLoaded && !conv.more)) return;
    conv.loading = true;
    const seqs = [...conv.msgs.keys()];
    const before = seqs.length > 0 ? Math.min(...seqs) : 0;
    try {
      const page = await this.api.history(conv.id, before > 0 ? { beforeSeq: before, limit: 30 } : { limit: 30 });
      for (const m of page.msgs) conv.msgs.set(m.seq, m);
      conv.more = page.more;
      conv.historyLoaded = true;
      const newest = page.msgs[0];
      if (newest && (!conv.last || newest.seq > conv.last.seq)) conv.last = newest;
    } catch {
      // Try again on the next scroll or click.
    } finally {
      conv.loading = false;
    }
    if (this.active === conv.id) {
      const fromBottom = this.logBox.scrollHeight - this.logBox.scrollTop;
      this.renderMessages(false);
      if (before > 0) this.logBox.scrollTop = this.logBox.scrollHeight - fromBottom;
      else this.logBox.scrollTop = this.logBox.scrollHeight;
      if (this.active === conv.id && document.visibilityState === "visible") this.markRead(conv);
    }
  }

  // ---- rendering ----

  private presenceDot(user: string): HTMLElement {
    const p = this.presence.get(user);
    const label = p?.online ? "online" : "offline";
    return h("span", { class: `dot ${p?.online ? "on" : "off"}`, role: "img", "aria-label": label, title: label });
  }

  private renderList(): void {
    const convs = [...this.convs.values()].sort((a, b) => b.activeTs - a.activeTs || a.name.localeCompare(b.name));
    if (convs.length === 0) {
      replace(this.list, h("li", { class: "muted empty-list" }, "No chats yet."));
      return;
    }
    replace(
      this.list,
      ...convs.map((c) => {
        const title = c.kind === "channel" ? `#${c.name}` : c.name;
        const preview = c.last ? `${c.last.from === this.me ? "You" : c.kind === "dm" ? "" : c.last.from}${c.last.from === this.me || c.kind !== "dm" ? ": " : ""}${c.last.text}` : "";
        const label = `${title}${c.unread > 0 ? `, ${c.unread} unread` : ""}`;
        const icon =
          c.kind === "dm"
            ? this.presenceDot(c.peer)
            : h("span", { class: `gicon ${c.kind}`, "aria-hidden": "true" }, c.kind === "channel" ? "#" : (c.name.charAt(0) || "G").toUpperCase());
        const b = h(
          "button",
          { type: "button", class: "conv", "aria-label": label, "aria-current": this.active === c.id ? "true" : undefined },
          icon,
          h("span", { class: "conv-main" }, h("span", { class: "conv-title" }, title), h("span", { class: "conv-preview" }, preview)),
          c.unread > 0 ? h("span", { class: "badge", "aria-hidden": "true" }, c.unread > 99 ? "99+" : c.unread) : null,
        );
        b.addEventListener("click", () => this.open(c.id));
        return h("li", {}, b);
      }),
    );
  }

  private renderChat(): void {
    const conv = this.active ? this.convs.get(this.active) : undefined;
    this.chat.classList.toggle("none", !conv);
    if (!conv) return;
    this.chat.setAttribute("aria-label", `Conversation: ${conv.name}`);
    this.renderChatHeader();
    this.renderMessages(true);
    this.renderTyping();
  }

  private renderChatHeader(): void {
    const conv = this.active ? this.convs.get(this.active) : undefined;
    if (!conv) return;
    if (conv.kind === "dm") {
      replace(this.chatTitle, this.presenceDot(conv.peer), " ", conv.name);
      const p = this.presence.get(conv.peer);
      this.chatSub.textContent = p?.online ? "online" : p?.lastSeen ? `last seen ${timeOf(p.lastSeen)}` : "offline";
    } else {
      replace(this.chatTitle, conv.kind === "channel" ? `#${conv.name}` : conv.name);
      this.chatSub.textContent = conv.kind === "channel" ? "public channel" : "group";
    }
  }

  private renderMessages(stickToBottom: boolean): void {
    const conv = this.active ? this.convs.get(this.active) : undefined;
    if (!conv) return;
    const nearBottom = this.logBox.scrollHeight - this.logBox.scrollTop - this.logBox.clientHeight < 80;
    const msgs = [...conv.msgs.values()].sort((a, b) => a.seq - b.seq);
    const lastMine = [...msgs].reverse().find((m) => m.from === this.me);
    const items: HTMLElement[] = msgs.map((m) => {
      const mine = m.from === this.me;
      let status = "";
      if (mine && m === lastMine && conv.kind === "dm") status = m.seq <= conv.peerRead ? "Read" : "Sent";
      return h(
        "li",
        { class: `msg ${mine ? "mine" : "theirs"}`, "data-seq": m.seq },
        h(
          "div",
          { class: "bubble" },
          !mine && conv.kind !== "dm" ? h("span", { class: "from" }, m.from) : null,
          h("p", { class: "text" }, m.text),
          h("span", { class: "meta" }, h("time", { datetime: new Date(m.ts).toISOString() }, timeOf(m.ts)), status ? ` · ${status}` : ""),
        ),
      );
    });
    for (const [cmid, p] of conv.pending) {
      if (msgs.some((m) => m.cmid === cmid)) continue;
      items.push(
        h(
          "li",
          { class: `msg mine pending${p.failed ? " failed" : ""}` },
          h("div", { class: "bubble" }, h("p", { class: "text" }, p.text), h("span", { class: "meta" }, p.failed ? `Not sent: ${p.failed}` : "Sending…")),
        ),
      );
    }
    this.olderButton.hidden = !conv.more || (!conv.historyLoaded && msgs.length === 0);
    this.olderButton.disabled = conv.loading;
    if (items.length === 0) items.push(h("li", { class: "muted none-yet" }, conv.loading || !conv.historyLoaded ? "Loading…" : "No messages yet. Say hello."));
    replace(this.log, ...items);
    if (stickToBottom || nearBottom) this.logBox.scrollTop = this.logBox.scrollHeight;
  }

  private renderTyping(): void {
    const conv = this.active ? this.convs.get(this.active) : undefined;
    clearTimeout(this.typingTimer);
    if (!conv) {
      this.typingLine.textContent = "";
      return;
    }
    const now = Date.now();
    const who = [...conv.typing.entries()].filter(([, until]) => until > now).map(([u]) => u);
    this.typingLine.textContent = who.length === 0 ? "" : `${who.join(", ")} ${who.length === 1 ? "is" : "are"} typing…`;
    if (who.length > 0) this.typingTimer = setTimeout(() => this.renderTyping(), 1000);
  }
}

const session = loadSession();
if (session) new App(session).start();
else showAuth();
