// Unit tests of the parts of the SDK that need no server.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay } from "../src/backoff.js";
import { errorFromBody } from "../src/errors.js";
import { Sequencer } from "../src/sequencer.js";
import { LocalStorageStore, MemoryStore, emptyState, type StorageLike } from "../src/store.js";
import type { Message } from "../src/types.js";

const msg = (conv: string, seq: number, useq?: number): Message => {
  const m: Message = { conv, seq, from: "x", text: `m${seq}`, ts: 0 };
  if (useq !== undefined) m.useq = useq;
  return m;
};

test("sequencer: inbox items come out in useq order, once each", () => {
  const st = emptyState();
  const s = new Sequencer(st);
  // Before the position is known, everything waits.
  assert.deepEqual(s.offerInbox({ useq: 6, msg: msg("dm:a:b", 3, 6) }), []);
  assert.deepEqual(s.startInbox(5).map((i) => i.useq), [6]);
  assert.equal(st.useq, 6);
  assert.deepEqual(s.offerInbox({ useq: 6, msg: msg("dm:a:b", 3, 6) }), [], "a duplicate is dropped");
  assert.deepEqual(s.offerInbox({ useq: 8, msg: msg("dm:a:b", 5, 8) }), [], "a gap waits");
  assert.equal(s.inboxGap(), true);
  assert.deepEqual(s.offerInbox({ useq: 8, msg: msg("dm:a:b", 5, 8) }), [], "a waiting duplicate is kept once");
  assert.deepEqual(s.offerInbox({ useq: 7, event: { kind: "read", useq: 7 } }).map((i) => i.useq), [7, 8]);
  assert.equal(s.inboxGap(), false);
  assert.equal(st.useq, 8);
  assert.deepEqual(s.offerInbox({ useq: 3 }), [], "old numbers are dropped");
});

test("sequencer: channels in seq order; a new channel starts at its first message", () => {
  const st = emptyState();
  const s = new Sequencer(st);
  assert.deepEqual(s.offerChannel("news", msg("g:news", 10)).map((m) => m.seq), [10]);
  assert.equal(st.channels.news, 10);
  assert.deepEqual(s.offerChannel("news", msg("g:news", 12)), []);
  assert.deepEqual(s.channelGaps(), ["news"]);
  assert.deepEqual(s.offerChannel("news", msg("g:news", 11)).map((m) => m.seq), [11, 12]);
  assert.deepEqual(s.channelGaps(), []);
  assert.deepEqual(s.offerChannel("news", msg("g:news", 12)), []);
  // trackChannel keeps an existing position.
  assert.deepEqual(s.trackChannel("news", 100), []);
  assert.equal(st.channels.news, 12);
  assert.deepEqual(s.trackChannel("other", 4), []);
  assert.equal(st.channels.other, 4);
  s.untrackChannel("other");
  assert.equal(st.channels.other, undefined);
});

test("backoff: exponential, bounded, jittered within the upper half", () => {
  const lo = { random: () => 0 };
  const hi = { random: () => 0.999999 };
  assert.equal(backoffDelay(0, lo), 250);
  assert.equal(backoffDelay(0, hi), 500);
  assert.equal(backoffDelay(3, lo), 2000);
  assert.equal(backoffDelay(3, hi), 4000);
  assert.equal(backoffDelay(50, hi), 30000);
  assert.equal(backoffDelay(50, { ...lo, maxMs: 1000 }), 500);
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(2, { baseMs: 100 });
    assert.ok(d >= 200 && d <= 400, `delay ${d}`);
  }
});

test("stores: memory and localStorage keep the state; garbage is dropped", () => {
  const mem = new MemoryStore();
  const st = emptyState();
  st.useq = 4;
  st.channels.news = 9;
  st.outbox.push({ cmid: "c1", to: "bob", text: "hi", created: 1 });
  mem.save(st);
  st.useq = 5; // the store keeps its own copy
  assert.equal(mem.load().useq, 4);

  const data = new Map<string, string>();
  const storage: StorageLike = {
    getItem: (k) => data.get(k) ?? null,
    setItem: (k, v) => void data.set(k, v),
    removeItem: (k) => void data.delete(k),
  };
  const ls = new LocalStorageStore("parley:t:alice", storage);
  assert.deepEqual(ls.load(), emptyState());
  ls.save(st);
  const back = ls.load();
  assert.equal(back.useq, 5);
  assert.equal(back.channels.news, 9);
  assert.deepEqual(back.outbox, [{ cmid: "c1", to: "bob", text: "hi", created: 1 }]);

  data.set("parley:t:alice", '{"useq":-3,"channels":{"a":"x","b":2},"outbox":[{"cmid":1},{"cmid":"c","text":"t"}],"user":7}');
  assert.deepEqual(ls.load(), { useq: null, channels: { b: 2 }, outbox: [] });
  data.set("parley:t:alice", "not json");
  assert.deepEqual(ls.load(), emptyState());
  ls.clear();
  assert.equal(data.size, 0);

  const full = new LocalStorageStore("k", {
    getItem: () => null,
    setItem: () => {
      throw new Error("quota");
    },
    removeItem: () => undefined,
  });
  full.save(st); // does not throw
});

test("errors: codes, statuses and retry-after from error bodies", () => {
  const e = errorFromBody({ code: "rate_limited", message: "slow down", retry_after_ms: 800 }, 429);
  assert.equal(e.code, "rate_limited");
  assert.equal(e.status, 429);
  assert.equal(e.retryAfterMs, 800);
  assert.match(e.message, /slow down/);
  assert.equal(errorFromBody(undefined).code, "internal");
});
