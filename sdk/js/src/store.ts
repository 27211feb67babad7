/**
 * Where a client keeps what must outlive a connection (and, with
 * LocalStorageStore, a page reload): the last inbox `useq` it delivered,
 * the last `seq` of each joined channel, and the sends not yet acknowledged.
 *
 * The client loads the state once, when it starts, and saves the whole
 * state after every change (coalesced to one save per task). A store is
 * per user: the client starts afresh when the state belongs to another one.
 */

/** A send waiting for its `send_ok`; resent with the same cmid after a reconnect. */
export interface OutboxEntry {
  cmid: string;
  to?: string;
  group?: string;
  text: string;
  /** When the app called send (ms since the epoch). */
  created: number;
}

export interface SyncState {
  /** The user (tenant/user) this state belongs to, once known. */
  user?: string;
  /** The last inbox useq delivered to the app; null: never synced. */
  useq: number | null;
  /** Joined channels: group id -> last seq delivered. */
  channels: Record<string, number>;
  outbox: OutboxEntry[];
}

export interface SyncStore {
  load(): SyncState;
  save(state: SyncState): void;
}

export function emptyState(): SyncState {
  return { useq: null, channels: {}, outbox: [] };
}

function copy(state: SyncState): SyncState {
  const out: SyncState = {
    useq: state.useq,
    channels: { ...state.channels },
    outbox: state.outbox.map((e) => ({ ...e })),
  };
  if (state.user !== undefined) out.user = state.user;
  return out;
}

/** Keeps the state in memory: it lasts as long as the object. */
export class MemoryStore implements SyncStore {
  private state: SyncState = emptyState();

  load(): SyncState {
    return copy(this.state);
  }

  save(state: SyncState): void {
    this.state = copy(state);
  }
}

/** The part of the Web Storage API this store needs. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/** Checks a parsed value field by field; anything malformed is dropped. */
function sanitize(raw: unknown): SyncState {
  const state = emptyState();
  if (!raw || typeof raw !== "object") return state;
  const r = raw as Record<string, unknown>;
  if (typeof r.user === "string") state.user = r.user;
  if (typeof r.useq === "number" && Number.isSafeInteger(r.useq) && r.useq >= 0) state.useq = r.useq;
  if (r.channels && typeof r.channels === "object") {
    for (const [group, seq] of Object.entries(r.channels as Record<string, unknown>)) {
      if (typeof seq === "number" && Number.isSafeInteger(seq) && seq >= 0) state.channels[group] = seq;
    }
  }
  if (Array.isArray(r.outbox)) {
    for (const e of r.outbox as unknown[]) {
      if (!e || typeof e !== "object") continue;
      const o = e as Record<string, unknown>;
      if (typeof o.cmid !== "string" || typeof o.text !== "string") continue;
      const entry: OutboxEntry = { cmid: o.cmid, text: o.text, created: typeof o.created === "number" ? o.created : 0 };
      if (typeof o.to === "string") entry.to = o.to;
      if (typeof o.group === "string") entry.group = o.group;
      if (entry.to === undefined && entry.group === undefined) continue;
      state.outbox.push(entry);
    }
  }
  return state;
}

/**
 * Keeps the state in `localStorage` (or any StorageLike) under one key, so
 * that a reloaded page resumes where it stopped: it syncs only what it
 * missed and resends what was never acknowledged. Use one key per user,
 * e.g. `parley:<tenant>:<user>`. Write failures (quota, private mode) are
 * ignored: the client then behaves as with a MemoryStore.
 */
export class LocalStorageStore implements SyncStore {
  private readonly key: string;
  private readonly storage: StorageLike | undefined;

  constructor(key: string, storage?: StorageLike) {
    this.key = key;
    this.storage = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
  }

  load(): SyncState {
    try {
      const text = this.storage?.getItem(this.key);
      return text ? sanitize(JSON.parse(text)) : emptyState();
    } catch {
      return emptyState();
    }
  }

  save(state: SyncState): void {
    try {
      this.storage?.setItem(this.key, JSON.stringify(state));
    } catch {
      // Full or unavailable storage: keep going without persistence.
    }
  }

  /** Forgets the saved state (e.g. on logout). */
  clear(): void {
    try {
      this.storage?.removeItem(this.key);
    } catch {
      // Nothing to do.
    }
  }
}
