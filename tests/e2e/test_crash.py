"""Crash safety end to end (issue 2, "Crash safety", and issue 5, kill -9
under load with groups and channels; SPEC 2 Messaging:
"Every message is stored durably before the sender's ack", gapless seqs,
exactly-once retries).

Client threads send over WS JSON, WS protobuf and TCP in several
conversations, recording every send_ok; the server is killed with SIGKILL at
a random moment while they send, and restarted on the same data directory.
Then: every acknowledged message is in its conversation exactly once with
the acknowledged seq, seqs are 1..N without gaps, each user's inbox is
gapless and holds each of its messages exactly once; resending what was in
flight stores nothing twice; and sending goes on from N+1.  Twice.
"""
import os
import random
import shutil
import tempfile
import threading
import time

from parleytest import Closed, Server

FAST = ["--msg-rate", "100000", "--msg-burst", "100000"]

USERS = ["u0", "u1", "u2", "u3", "u4"]

# (sender, device, transport, recipient)
SENDERS = [
    ("u0", "web", "ws-json", "u1"),
    ("u1", "web", "ws-pb", "u0"),        # the same conversation from the other side
    ("u2", "desktop", "tcp", "u3"),
    ("u0", "desktop", "tcp", "u2"),      # u0's second device, another conversation
    ("u4", "ios", "ws-json", "u4"),      # a note to self: one inbox entry per message
    ("u3", "android", "ws-pb", "u1"),
]


def conv_of(a, b):
    a, b = sorted((a, b))
    return "dm:%s:%s" % (a, b)


def connect(server, token, device, transport):
    if transport == "tcp":
        c = server.tcp()
    else:
        c = server.ws(binary=(transport == "ws-pb"))
    r = c.call({"login": {"token": token, "device": device}})
    assert "login_ok" in r, r
    return c


class Sender(threading.Thread):
    """Sends with up to `window` requests in flight until the connection dies."""

    def __init__(self, conn, user, to, prefix, window=8):
        super().__init__(daemon=True)
        self.conn, self.user, self.to, self.prefix, self.window = conn, user, to, prefix, window
        self.acked = {}        # cmid -> seq
        self.in_flight = {}    # frame id -> cmid
        self.error = None

    def run(self):
        n = 0
        next_id = 1
        try:
            while True:
                while len(self.in_flight) < self.window:
                    cmid = "%s-%d" % (self.prefix, n)
                    n += 1
                    self.conn.send({"id": next_id, "send": {"to": self.to, "cmid": cmid,
                                                            "text": "%s says %s" % (self.user, cmid)}})
                    self.in_flight[next_id] = cmid
                    next_id += 1
                f = self.conn.recv(10)
                if not f or f.get("id") not in self.in_flight:
                    continue
                cmid = self.in_flight.pop(f["id"])
                if "send_ok" not in f:
                    self.error = f
                    return
                ok = f["send_ok"]
                assert ok["conv"] == conv_of(self.user, self.to)
                self.acked[cmid] = ok["seq"]
        except (Closed, OSError, ValueError, TimeoutError):
            return      # the server died (socket errors) or went silent


def history_all(c, conv):
    """Every message of conv, oldest first (paging backwards)."""
    msgs, before = [], 0
    while True:
        q = {"conv": conv, "limit": 1000}
        if before:
            q["before_seq"] = before
        r = c.call({"history": q})["history_ok"]
        page = r.get("msgs", [])
        msgs += page
        if not r.get("more") or not page:
            break
        before = page[-1]["seq"]
    return list(reversed(msgs))


def inbox_all(c):
    entries, useq = [], 0
    while True:
        r = c.call({"sync": {"useq": useq, "limit": 1000}})["sync_ok"]
        page = r.get("entries", [])
        entries += page
        if page:
            useq = page[-1]["useq"]
        if not r.get("more"):
            return entries, r.get("useq", 0)


def verify(server, tokens, acked, in_flight_cmids, what):
    """Check the store after a restart; returns {conv: N}."""
    convs = sorted({conv_of(s, r) for s, _, _, r in SENDERS})
    readers = {u: connect(server, tokens[u], "cli", "ws-pb") for u in USERS}
    counts = {}
    by_conv = {}
    for conv in convs:
        a = conv.split(":")[1]
        msgs = history_all(readers[a], conv)
        seqs = [m["seq"] for m in msgs]
        assert seqs == list(range(1, len(seqs) + 1)), "%s: %s seqs not gapless: %s" % (
            what, conv, seqs)
        cmids = [(m["from"], m["cmid"]) for m in msgs]
        assert len(cmids) == len(set(cmids)), "%s: %s has a duplicate cmid" % (what, conv)
        stored = {(m["from"], m["cmid"]): m for m in msgs}
        for (sender, cmid), (c, seq) in acked.items():
            if c != conv:
                continue
            m = stored.get((sender, cmid))
            assert m is not None, "%s: acked %s/%s (seq %d) lost from %s" % (
                what, sender, cmid, seq, conv)
            assert m["seq"] == seq, "%s: %s acked as seq %d, stored as %d" % (
                what, cmid, seq, m["seq"])
            assert m["text"] == "%s says %s" % (sender, cmid)
        for key in stored:
            assert key in acked or key in in_flight_cmids, "%s: %s stored but never sent" % (
                what, key)
        counts[conv] = len(msgs)
        by_conv[conv] = {(m["conv"], m["seq"]) for m in msgs}
    for u in USERS:
        entries, head = inbox_all(readers[u])
        useqs = [e["useq"] for e in entries]
        assert useqs == list(range(1, len(useqs) + 1)), "%s: inbox of %s not gapless" % (
            what, u)
        assert head == len(useqs)
        got = [(e["msg"]["conv"], e["msg"]["seq"]) for e in entries]
        assert len(got) == len(set(got)), "%s: inbox of %s has duplicates" % (what, u)
        want = set()
        for conv, keys in by_conv.items():
            if u in conv.split(":")[1:]:
                want |= keys
        assert set(got) == want, "%s: inbox of %s differs from its conversations: " \
            "missing %s, extra %s" % (what, u, sorted(want - set(got))[:5],
                                      sorted(set(got) - want)[:5])
        # per conversation the inbox order follows the seq order
        for conv in by_conv:
            seqs = [s for c, s in got if c == conv]
            assert seqs == sorted(seqs)
    for c in readers.values():
        c.close()
    return counts


def run_round(server, tokens, prefix, rng):
    conns = []
    senders = []
    for i, (user, device, transport, to) in enumerate(SENDERS):
        c = connect(server, tokens[user], device, transport)
        conns.append(c)
        senders.append(Sender(c, user, to, "%s-%d" % (prefix, i)))
    for s in senders:
        s.start()
    # let some messages through, then kill at a random moment
    deadline = time.time() + 20
    while sum(len(s.acked) for s in senders) < 60:
        assert time.time() < deadline, "senders made no progress:\n" + server.log()
        assert all(s.is_alive() or s.error for s in senders)
        time.sleep(0.01)
    time.sleep(rng.uniform(0.0, 0.4))
    server.check_log()
    server.kill()
    for s in senders:
        s.join(15)
        assert not s.is_alive(), "a sender hung after the server died"
        assert s.error is None, s.error
    acked, in_flight = {}, set()
    for (user, _, _, to), s in zip(SENDERS, senders):
        for cmid, seq in s.acked.items():
            acked[(user, cmid)] = (conv_of(user, to), seq)
        for cmid in s.in_flight.values():
            in_flight.add((user, cmid))
    for c in conns:
        try:
            c.sock.close()
        except OSError:
            pass
    return acked, in_flight


def test_kill_9_while_sending_twice():
    """Issue 2 crash safety: SIGKILL during sends, restart, nothing acked is
    lost, nothing is stored twice, seqs and inboxes gapless; twice over."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    data = tempfile.mkdtemp(prefix="parley-crash-")
    try:
        s = Server(*FAST, data=data).start()
        tokens = {u: s.signup(u) for u in USERS}
        all_acked, all_flight = {}, set()
        for rnd in range(2):
            acked, in_flight = run_round(s, tokens, "r%d" % rnd, rng)
            all_acked.update(acked)
            all_flight |= in_flight
            what = "round %d (seed %d)" % (rnd, seed)
            s = Server(*FAST, data=data).start()
            counts = verify(s, tokens, all_acked, all_flight, what)
            assert sum(counts.values()) >= len(all_acked)
            # resending what was in flight stores nothing twice
            resender = {}
            for i, (user, device, transport, to) in enumerate(SENDERS):
                prefix = "r%d-%d-" % (rnd, i)
                mine = sorted(c for u, c in in_flight if u == user and c.startswith(prefix))
                if not mine:
                    continue
                if user not in resender:
                    resender[user] = connect(s, tokens[user], "bot", "ws-json")
                c = resender[user]
                for cmid in mine:
                    r = c.call({"send": {"to": to, "cmid": cmid,
                                         "text": "%s says %s" % (user, cmid)}})
                    ok = r["send_ok"]
                    all_acked[(user, cmid)] = (ok["conv"], ok["seq"])
            for c in resender.values():
                c.close()
            counts = verify(s, tokens, all_acked, all_flight, what + " after resends")
            all_flight = set()
        # sending goes on from N+1 in every conversation
        for i, (user, device, transport, to) in enumerate(SENDERS):
            c = connect(s, tokens[user], device, transport)
            conv = conv_of(user, to)
            r = c.call({"send": {"to": to, "text": "after", "cmid": "final-%d" % i}})
            assert r["send_ok"]["seq"] == counts[conv] + 1, (conv, r, counts)
            counts[conv] += 1
            c.close()
        s.stop()
    finally:
        try:
            s.kill()
        except Exception:
            pass
        shutil.rmtree(data, ignore_errors=True)


# ---- groups and channels (issue 5: "extend the crash test to groups") ----

GROUP, CHANNEL = "crashg", "crashc"
GSENDERS = [
    # (sender, device, transport, {"to": user} or {"group": id})
    ("u0", "web", "ws-json", {"group": GROUP}),
    ("u1", "desktop", "tcp", {"group": GROUP}),
    ("u2", "ios", "ws-pb", {"group": CHANNEL}),
    ("u4", "web", "ws-json", {"group": CHANNEL}),
    ("u3", "android", "tcp", {"to": "u4"}),
]
GMEMBERS = ["u0", "u1", "u2", "u3"]       # the group (write diffusion: inboxes)
CMEMBERS = ["u0", "u1", "u2", "u4"]       # the channel (read diffusion: its own timeline)


class DestSender(Sender):
    """A Sender to a user or a group (dest is the send's target fields)."""

    def __init__(self, conn, user, dest, prefix, window=8):
        super().__init__(conn, user, None, prefix, window)
        self.dest = dest

    def run(self):
        n, next_id = 0, 1
        try:
            while True:
                while len(self.in_flight) < self.window:
                    cmid = "%s-%d" % (self.prefix, n)
                    n += 1
                    body = dict(self.dest, cmid=cmid, text="%s says %s" % (self.user, cmid))
                    self.conn.send({"id": next_id, "send": body})
                    self.in_flight[next_id] = cmid
                    next_id += 1
                f = self.conn.recv(10)
                if not f or f.get("id") not in self.in_flight:
                    continue
                cmid = self.in_flight.pop(f["id"])
                if "send_ok" not in f:
                    self.error = f
                    return
                self.acked[cmid] = (f["send_ok"]["conv"], f["send_ok"]["seq"])
        except (Closed, OSError, ValueError, TimeoutError):
            return


def _conv(user, dest):
    return "g:" + dest["group"] if "group" in dest else conv_of(user, dest["to"])


def channel_all(c, group):
    """Every message of a channel by channel sync from seq 0, oldest first."""
    msgs, seq = [], 0
    while True:
        r = c.call({"sync": {"useq": 1 << 40, "channels": [{"group": group, "seq": seq}],
                             "limit": 1000}})["sync_ok"]
        ch = [x for x in r.get("channels", []) if x["group"] == group]
        page = ch[0].get("msgs", []) if ch else []
        msgs += page
        if page:
            seq = page[-1]["seq"]
        if not ch or not ch[0].get("more") or not page:
            return msgs


def verify_groups(server, tokens, acked, in_flight, what):
    readers = {u: connect(server, tokens[u], "cli", "ws-pb") for u in USERS}
    stored_by_conv = {}
    convs = sorted({_conv(u, d) for u, _, _, d in GSENDERS})
    for conv in convs:
        reader = readers["u0"] if conv.startswith("g:") else readers["u3"]
        msgs = history_all(reader, conv)
        seqs = [m["seq"] for m in msgs]
        assert seqs == list(range(1, len(seqs) + 1)), "%s: %s seqs not gapless" % (what, conv)
        stored = {(m["from"], m["cmid"]): m for m in msgs}
        assert len(stored) == len(msgs), "%s: %s holds a message twice" % (what, conv)
        for key, (c, seq) in acked.items():
            if c == conv:
                assert key in stored, "%s: acked %s lost from %s" % (what, key, conv)
                assert stored[key]["seq"] == seq
        for key in stored:
            assert key in acked or key in in_flight, "%s: %s never sent" % (what, key)
        stored_by_conv[conv] = {(conv, m["seq"]) for m in msgs}
    # the channel as its members read it: by channel sync, gapless
    chan = channel_all(readers["u4"], CHANNEL)
    assert [m["seq"] for m in chan] == [s for _, s in sorted(stored_by_conv["g:" + CHANNEL])]
    # inboxes: gapless, every group and dm message of the user once, no
    # channel message (read diffusion)
    for u in USERS:
        entries, head = inbox_all(readers[u])
        useqs = [e["useq"] for e in entries]
        assert useqs == list(range(1, len(useqs) + 1)), "%s: inbox of %s not gapless" % (what, u)
        assert head == len(useqs)
        got = [(e["msg"]["conv"], e["msg"]["seq"]) for e in entries if "msg" in e]
        assert len(got) == len(set(got)), "%s: inbox of %s has duplicates" % (what, u)
        want = set()
        for conv, keys in stored_by_conv.items():
            if conv == "g:" + GROUP and u in GMEMBERS:
                want |= keys
            elif conv.startswith("dm:") and u in conv.split(":")[1:]:
                want |= keys
        assert set(got) == want, "%s: inbox of %s: missing %s, extra %s" % (
            what, u, sorted(want - set(got))[:5], sorted(set(got) - want)[:5])
    for c in readers.values():
        c.close()
    return {conv: len(keys) for conv, keys in stored_by_conv.items()}


def test_kill_9_with_groups_and_channels():
    """kill -9 while group, channel and 1:1 messages are sent over WS JSON,
    WS protobuf and TCP; after a restart every acknowledged message is in
    its conversation once with its acknowledged seq, seqs are gapless, the
    group members' inboxes are gapless and hold each group message once,
    the channel syncs gapless by seq, resending what was in flight stores
    nothing twice, and sending goes on from N+1."""
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    data = tempfile.mkdtemp(prefix="parley-crash-g-")
    s = None
    try:
        s = Server(*FAST, data=data).start()
        tokens = {u: s.signup(u) for u in USERS}
        owner = connect(s, tokens["u0"], "bot", "ws-json")
        r = owner.call({"group_create": {"group": GROUP, "name": "G", "kind": "group",
                                         "members": GMEMBERS[1:]}})
        assert "group_create_ok" in r, r
        r = owner.call({"group_create": {"group": CHANNEL, "name": "C", "kind": "channel",
                                         "members": ["u1", "u2"]}})
        assert "group_create_ok" in r, r
        j = connect(s, tokens["u4"], "bot", "ws-json")
        assert "group_join_ok" in j.call({"group_join": {"group": CHANNEL}})
        owner.close()
        j.close()
        senders, conns = [], []
        for i, (user, device, transport, dest) in enumerate(GSENDERS):
            c = connect(s, tokens[user], device, transport)
            conns.append(c)
            senders.append(DestSender(c, user, dest, "g-%d" % i))
        for t in senders:
            t.start()
        deadline = time.time() + 20
        while sum(len(t.acked) for t in senders) < 80:
            assert time.time() < deadline, "senders made no progress:\n" + s.log()
            assert all(t.is_alive() or t.error for t in senders)
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        s.check_log()
        s.kill()
        for t in senders:
            t.join(15)
            assert not t.is_alive() and t.error is None, t.error
        acked, in_flight = {}, set()
        for (user, _, _, dest), t in zip(GSENDERS, senders):
            for cmid, (conv, seq) in t.acked.items():
                assert conv == _conv(user, dest)
                acked[(user, cmid)] = (conv, seq)
            in_flight |= {(user, cmid) for cmid in t.in_flight.values()}
        for c in conns:
            c.sock.close()
        what = "seed %d" % seed
        s = Server(*FAST, data=data).start()
        verify_groups(s, tokens, acked, in_flight, what)
        for i, (user, device, transport, dest) in enumerate(GSENDERS):
            mine = sorted(cm for u, cm in in_flight if u == user and cm.startswith("g-%d-" % i))
            if not mine:
                continue
            c = connect(s, tokens[user], "bot", "ws-json")
            for cmid in mine:
                ok = c.call({"send": dict(dest, cmid=cmid, text="%s says %s" % (user, cmid))})
                ok = ok["send_ok"]
                acked[(user, cmid)] = (ok["conv"], ok["seq"])
            c.close()
        counts = verify_groups(s, tokens, acked, set(), what + " after resends")
        for i, (user, device, transport, dest) in enumerate(GSENDERS):
            c = connect(s, tokens[user], device, transport)
            conv = _conv(user, dest)
            ok = c.call({"send": dict(dest, cmid="final-%d" % i, text="after")})["send_ok"]
            assert ok["seq"] == counts[conv] + 1, (conv, ok, counts)
            counts[conv] += 1
            c.close()
        s.stop()
    finally:
        if s:
            s.kill()
        shutil.rmtree(data, ignore_errors=True)
