/**
 * Ordering and de-duplication of what the server delivers, independent of
 * any connection (the client feeds it; tests drive it directly).
 *
 * Two kinds of streams, both gapless on the server:
 *   - the user's inbox, numbered by `useq`: every dm and group message and
 *     every event that concerns the user;
 *   - each joined channel, numbered by its conversation `seq`.
 * Items arrive from pushes, from `sync` pages and from this device's own
 * `send_ok`s, in any order and possibly twice. The sequencer hands them on
 * strictly in stream order, each exactly once: an item at or below the
 * stream's position is a duplicate and is dropped; an item beyond the next
 * number waits until the numbers before it arrived (the client syncs to get
 * them). The positions live in the SyncState, which the client persists.
 */
import type { InboxEvent, Message } from "./types.js";
import type { SyncState } from "./store.js";

/** One inbox entry: a message or an event, with its useq. */
export interface InboxItem {
  useq: number;
  msg?: Message;
  event?: InboxEvent;
}

export class Sequencer {
  private readonly state: SyncState;
  private readonly inboxAhead = new Map<number, InboxItem>();
  private readonly channelAhead = new Map<string, Map<number, Message>>();

  constructor(state: SyncState) {
    this.state = state;
  }

  get useq(): number | null {
    return this.state.useq;
  }

  /** The last delivered seq of a channel, or undefined if it is not tracked. */
  channelSeq(group: string): number | undefined {
    return this.state.channels[group];
  }

  trackedChannels(): string[] {
    return Object.keys(this.state.channels);
  }

  /**
   * Sets the inbox position where it has none yet (a device that starts
   * from "now") and returns what had been waiting and now follows it.
   */
  startInbox(useq: number): InboxItem[] {
    if (this.state.useq === null) this.state.useq = useq;
    return this.drainInbox();
  }

  /** Offers one inbox item; returns the items deliverable now, in order. */
  offerInbox(item: InboxItem): InboxItem[] {
    if (this.state.useq !== null && item.useq <= this.state.useq) return [];
    if (!this.inboxAhead.has(item.useq)) this.inboxAhead.set(item.useq, item);
    return this.drainInbox();
  }

  /** True when items wait for earlier numbers: a gap to sync. */
  inboxGap(): boolean {
    return this.inboxAhead.size > 0;
  }

  private drainInbox(): InboxItem[] {
    const out: InboxItem[] = [];
    if (this.state.useq === null) return out;
    for (const useq of [...this.inboxAhead.keys()]) if (useq <= this.state.useq) this.inboxAhead.delete(useq);
    for (;;) {
      const next = this.inboxAhead.get(this.state.useq + 1);
      if (!next) break;
      this.inboxAhead.delete(next.useq);
      this.state.useq = next.useq;
      out.push(next);
    }
    return out;
  }

  /**
   * Starts following a channel from `seq` (the last seq the app already
   * has) unless it is followed already; returns waiting messages that now
   * follow.
   */
  trackChannel(group: string, seq: number): Message[] {
    if (this.state.channels[group] === undefined) this.state.channels[group] = seq;
    return this.drainChannel(group);
  }

  untrackChannel(group: string): void {
    delete this.state.channels[group];
    this.channelAhead.delete(group);
  }

  /**
   * Offers one channel message. A channel not followed yet is followed
   * from just before this message (it was joined elsewhere, or the device
   * has not listed its channels yet).
   */
  offerChannel(group: string, msg: Message): Message[] {
    if (this.state.channels[group] === undefined) this.state.channels[group] = msg.seq - 1;
    if (msg.seq <= (this.state.channels[group] ?? 0)) return [];
    let ahead = this.channelAhead.get(group);
    if (!ahead) {
      ahead = new Map();
      this.channelAhead.set(group, ahead);
    }
    if (!ahead.has(msg.seq)) ahead.set(msg.seq, msg);
    return this.drainChannel(group);
  }

  /** Channels with messages waiting for earlier seqs. */
  channelGaps(): string[] {
    return [...this.channelAhead.entries()].filter(([, m]) => m.size > 0).map(([g]) => g);
  }

  private drainChannel(group: string): Message[] {
    const out: Message[] = [];
    const ahead = this.channelAhead.get(group);
    let pos = this.state.channels[group];
    if (!ahead || pos === undefined) return out;
    for (const seq of [...ahead.keys()]) if (seq <= pos) ahead.delete(seq);
    for (;;) {
      const next = ahead.get(pos + 1);
      if (!next) break;
      ahead.delete(next.seq);
      pos = next.seq;
      out.push(next);
    }
    this.state.channels[group] = pos;
    if (ahead.size === 0) this.channelAhead.delete(group);
    return out;
  }

  /** Forgets everything waiting (the next sync brings it again). */
  clearWaiting(): void {
    this.inboxAhead.clear();
    this.channelAhead.clear();
  }
}
