"""Helpers for the end-to-end tests of groups, channels, friends, presence
and the home screen (issue 4): many users and many connections quickly.

- bulk(): many HTTP requests over a few keep-alive connections, each
  pipelining a window of requests, driven from one thread with a selector.
  This is how the tests create 100,000 users in seconds: one request at a
  time would spend most of its time waiting for the store's group commit,
  while many requests in flight let each commit carry many of them.
- create_users(): users of a tenant through its API key (POST /v1/users),
  optionally with a token each.
- connect_many(): many logged-in WebSockets, their handshakes and logins
  overlapped.
- sync_inbox() / sync_channel(): read a whole inbox or channel, checking
  that the numbers have no gaps.
"""
import json
import os
import re
import selectors
import socket
import time

from parleytest import WS

SLOW = os.environ.get("PARLEY_E2E_SLOW") == "1"

# A server for tests that open many connections from 127.0.0.1.
MANY_CONNS = ["--max-conns-per-ip", "0", "--conn-rate-per-ip", "0"]


class HttpError(AssertionError):
    pass


def bulk(port, reqs, conns=32, window=16, timeout=120):
    """Run reqs, a list of (method, path, body or None, token), over `conns`
    keep-alive connections with up to `window` pipelined requests on each.
    Returns [(status, parsed body)] in the order of reqs."""
    results = [None] * len(reqs)
    if not reqs:
        return results
    todo = list(range(len(reqs) - 1, -1, -1))
    sel = selectors.DefaultSelector()
    conns_state = []
    for _ in range(min(conns, len(reqs))):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setblocking(False)
        st = {"sock": s, "inflight": [], "rbuf": b"", "wbuf": b""}
        conns_state.append(st)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)

    def fill(st):
        while todo and len(st["inflight"]) < window:
            i = todo.pop()
            method, path, body, token = reqs[i]
            data = json.dumps(body).encode() if body is not None else b""
            head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
            if token:
                head += "Authorization: Bearer %s\r\n" % token
            if body is not None:
                head += "Content-Type: application/json\r\n"
            head += "Content-Length: %d\r\n\r\n" % len(data)
            st["wbuf"] += head.encode() + data
            st["inflight"].append(i)

    for st in conns_state:
        fill(st)
    done = 0
    deadline = time.time() + timeout
    while done < len(reqs):
        if time.time() > deadline:
            raise TimeoutError("bulk: %d of %d answered" % (done, len(reqs)))
        for key, ev in sel.select(1):
            st = key.data
            s = st["sock"]
            if ev & selectors.EVENT_WRITE and st["wbuf"]:
                n = s.send(st["wbuf"])
                st["wbuf"] = st["wbuf"][n:]
            if ev & selectors.EVENT_READ:
                d = s.recv(1 << 20)
                if not d:
                    raise ConnectionError("bulk: the server closed a connection with %d requests "
                                          "in flight" % len(st["inflight"]))
                st["rbuf"] += d
                while True:
                    h = st["rbuf"].find(b"\r\n\r\n")
                    if h < 0:
                        break
                    head = st["rbuf"][:h].decode("latin-1")
                    m = re.search(r"(?im)^content-length:\s*(\d+)", head)
                    n = int(m.group(1)) if m else 0
                    if len(st["rbuf"]) < h + 4 + n:
                        break
                    payload = st["rbuf"][h + 4:h + 4 + n]
                    st["rbuf"] = st["rbuf"][h + 4 + n:]
                    i = st["inflight"].pop(0)
                    results[i] = (int(head.split(" ", 2)[1]),
                                  json.loads(payload) if payload else None)
                    done += 1
                fill(st)
            sel.modify(s, selectors.EVENT_READ | (selectors.EVENT_WRITE if st["wbuf"] else 0), st)
    for st in conns_state:
        sel.unregister(st["sock"])
        st["sock"].close()
    return results


def bulk_ok(port, reqs, **kw):
    """bulk(), asserting every answer is 200; returns the bodies."""
    res = bulk(port, reqs, **kw)
    bad = [(reqs[i][1], r) for i, r in enumerate(res) if r[0] != 200]
    if bad:
        raise HttpError("%d of %d requests failed, first: %r" % (len(bad), len(reqs), bad[:3]))
    return [r[1] for r in res]


def create_users(server, ids, tokens=False, key=None, **kw):
    """Create users through the tenant's API key (default: the default
    tenant's).  Returns {id: token} when tokens is set."""
    key = key or server.default_key()
    body = (lambda u: {"user": u, "issue_token": True}) if tokens else (lambda u: {"user": u})
    out = bulk_ok(server.http_port, [("POST", "/v1/users", body(u), key) for u in ids], **kw)
    if tokens:
        return {u: r["token"] for u, r in zip(ids, out)}
    return None


def connect_many(server, tokens, device="web", binary=False, then=None):
    """One logged-in WebSocket per token, handshakes and logins overlapped
    in rounds of 200.  Each connection gets .login_ok.  `then`, if given,
    is a request body (such as a sync) each connection makes right after
    its login, as a client does; its answer must be `<name>_ok` and is kept
    in .then_ok."""
    out = []
    tokens = list(tokens)

    def overlapped(conns, body_of):
        ids = []
        for c in conns:
            fid = WS.next_id
            WS.next_id += 1
            frame = dict(body_of(c))
            frame["id"] = fid
            c.send(frame)
            ids.append(fid)
        replies = []
        for c, fid in zip(conns, ids):
            replies.append(c.wait(lambda f, fid=fid: f.get("id") == fid, 60))
        return replies

    for start in range(0, len(tokens), 200):
        chunk = tokens[start:start + 200]
        conns = [WS(server.http_port, binary=binary) for _ in chunk]
        toks = dict(zip(map(id, conns), chunk))
        for c, r in zip(conns, overlapped(conns, lambda c: {
                "login": {"token": toks[id(c)], "device": device}})):
            assert "login_ok" in r, r
            c.login_ok = r["login_ok"]
        if then:
            name = next(iter(then))
            for c, r in zip(conns, overlapped(conns, lambda c: then)):
                assert name + "_ok" in r, r
                c.then_ok = r[name + "_ok"]
        out += conns
    return out


def call_ok(conn, name, body, timeout=10):
    """A request that must succeed: returns its `<name>_ok` body."""
    r = conn.call({name: body}, timeout)
    assert name + "_ok" in r, r
    return r[name + "_ok"]


def call_err(conn, name, body, timeout=10):
    """A request that must fail: returns the error code."""
    r = conn.call({name: body}, timeout)
    assert "error" in r, r
    return r["error"]["code"]


def sync_inbox(conn, useq=0, limit=100):
    """Every inbox entry after useq, by pages; asserts they are numbered
    useq+1, useq+2, ... with no gap.  Returns the entries."""
    out = []
    while True:
        r = call_ok(conn, "sync", {"useq": useq, "limit": limit})
        for e in r.get("entries", []):
            assert e["useq"] == useq + 1, (useq, e)
            useq = e["useq"]
            out.append(e)
        if not r.get("more"):
            assert r["useq"] == useq, r
            return out


def sync_channel(conn, group, seq=0, limit=100, pages=None):
    """Every message of a channel after seq by channel sync; asserts the
    seqs follow each other without gaps.  Returns (msgs, number of pages)."""
    out, n = [], 0
    while True:
        r = call_ok(conn, "sync", {"useq": conn.login_ok["useq"], "channels": [
            {"group": group, "seq": seq}], "limit": limit})
        n += 1
        chans = r.get("channels", [])
        assert len(chans) == 1 and chans[0]["group"] == group, r
        for m in chans[0].get("msgs", []):
            assert m["seq"] == seq + 1, (seq, m)
            assert m["conv"] == "g:" + group
            seq = m["seq"]
            out.append(m)
        if not chans[0].get("more"):
            return out, n


def kinds(entries):
    """(kind, detail) of inbox entries: ("msg", text) or (event kind, group or user)."""
    out = []
    for e in entries:
        if "msg" in e:
            out.append(("msg", e["msg"]["text"]))
        else:
            ev = e["event"]
            out.append((ev["kind"], ev.get("group") or ev.get("user")))
    return out


def round_trip(conn, n=2):
    """n requests that go through the store, one after the other: after
    them, whatever the server started for this session before (such as
    following its groups and friends at login) has finished."""
    for _ in range(n):
        call_ok(conn, "my_groups", {})


def push_of(conn, body, timeout=10, **fields):
    """The next push with this body whose fields match; other frames stay
    pending for later calls."""
    def match(f):
        if body not in f or "id" in f:
            return False
        return all(f[body].get(k) == v for k, v in fields.items())
    return conn.wait(match, timeout)[body]


def no_push_of(conn, body, wait=0.5, **fields):
    try:
        push_of(conn, body, wait, **fields)
    except TimeoutError:
        return True
    return False
