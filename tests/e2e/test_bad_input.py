"""Bad input end to end (SPEC section 3: "Malformed input gets an error or a
closed connection, never a crash, a hang, or a lost message of another
user"; issue 2, "Bad input").

Each table row is one case: a name, the bytes a client sends, and the
outcome the server must produce.  Every case runs on a fresh connection to
one server while two other users keep chatting; after each batch they must
still get send_ok and pushes, and at the end the server must stop cleanly
(exit 0, no sanitizer report: the fixture's stop()).
"""
import base64
import json
import os
import re
import socket
import struct
import time

import pytest

from parleytest import Server, WS, frame_to_pb


@pytest.fixture(scope="module")
def srv():
    with Server("--header-timeout-ms", "1000", "--allowed-origins", "https://app.example.com",
                "--max-frame", "65536", "--msg-burst", "10000") as s:
        s.tokens = {u: s.signup(u) for u in ("alice", "bob", "mallory")}
        s.alice = s.login_ws(s.tokens["alice"])
        s.bob = s.login_ws(s.tokens["bob"], binary=True)
        s.n_alive = 0
        yield s


def check_alive(s):
    """The bystanders still chat: send_ok and the push, in order."""
    s.n_alive += 1
    cmid = "alive-%d" % s.n_alive
    r = s.alice.call({"send": {"to": "bob", "text": "still here %d" % s.n_alive, "cmid": cmid}},
                     timeout=5)
    assert "send_ok" in r, r
    m = s.bob.push("msg", 5)
    assert m["cmid"] == cmid and m["seq"] == r["send_ok"]["seq"]
    assert s.http("GET", "/healthz")[0] == 200


# ---- protobuf by hand (to build what a protobuf library refuses to) ----

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, payload):
    """A length-delimited field."""
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def vfield(num, value):
    return varint(num << 3) + varint(value)


PB_SEND_BAD_UTF8 = vfield(1, 5) + field(16, field(1, b"bob") + field(3, b"ok \xff\xfe") +
                                         field(4, b"c1"))
PB_SEND_OVERLONG = vfield(1, 5) + field(16, field(1, b"bob") + field(3, b"\xc0\xaf") +
                                        field(4, b"c2"))
PB_LOGIN_BAD_UTF8 = vfield(1, 5) + field(10, field(2, b"\xed\xa0\x80") + field(3, b"password1"))
PB_PING = frame_to_pb({"id": 5, "ping": {}})
PB_SEND = frame_to_pb({"id": 5, "send": {"to": "bob", "text": "hello there", "cmid": "c3"}})


# ---- WebSocket cases ----
#
# (name, logged in?, what to send: list of (opcode, payload, options) or raw
# bytes, expected: ("error", code) / ("close", code))

def T(s):
    return [(1, s.encode() if isinstance(s, str) else s, {})]


def B(b):
    return [(2, b, {})]


WS_CASES = [
    # JSON that is not a frame
    ("malformed json", True, T('{"id":1,"ping":'), ("error", "bad_request")),
    ("not json at all", True, T("hello"), ("error", "bad_request")),
    ("json array", True, T('[{"id":1,"ping":{}}]'), ("error", "bad_request")),
    ("json string", True, T('"ping"'), ("error", "bad_request")),
    ("json number", True, T("42"), ("error", "bad_request")),
    ("json null", True, T("null"), ("error", "bad_request")),
    ("empty text", True, T(""), ("error", "bad_request")),
    ("trailing garbage", True, T('{"id":1,"ping":{}} x'), ("error", "bad_request")),
    ("two objects", True, T('{"id":1,"ping":{}}{"id":2,"ping":{}}'), ("error", "bad_request")),
    ("unknown body", True, T('{"id":1,"frobnicate":{}}'), ("error", "bad_request")),
    ("unknown field in body", True, T('{"id":1,"ping":{"x":1}}'), ("error", "bad_request")),
    ("unknown top-level key", True, T('{"id":1,"ping":{},"extra":true}'),
     ("error", "bad_request")),
    ("two bodies", True, T('{"id":1,"ping":{},"sync":{}}'), ("error", "bad_request")),
    ("no body", True, T('{"id":1}'), ("error", "bad_request")),
    ("empty object", True, T("{}"), ("error", "bad_request")),
    ("body is not an object", True, T('{"id":1,"ping":[]}'), ("error", "bad_request")),
    ("body is null", True, T('{"id":1,"send":null}'), ("error", "bad_request")),
    # wrong types
    ("id as string", True, T('{"id":"1","ping":{}}'), ("error", "bad_request")),
    ("negative id", True, T('{"id":-1,"ping":{}}'), ("error", "bad_request")),
    ("fractional id", True, T('{"id":1.5,"ping":{}}'), ("error", "bad_request")),
    ("to as number", True, T('{"id":1,"send":{"to":5,"text":"x","cmid":"a"}}'),
     ("error", "bad_request")),
    ("text as object", True, T('{"id":1,"send":{"to":"bob","text":{},"cmid":"a"}}'),
     ("error", "bad_request")),
    ("text as bool", True, T('{"id":1,"send":{"to":"bob","text":true,"cmid":"a"}}'),
     ("error", "bad_request")),
    ("useq as string", True, T('{"id":1,"sync":{"useq":"abc"}}'), ("error", "bad_request")),
    ("useq negative", True, T('{"id":1,"sync":{"useq":-1}}'), ("error", "bad_request")),
    ("useq float", True, T('{"id":1,"sync":{"useq":1.5}}'), ("error", "bad_request")),
    ("repeated as object", True, T('{"id":1,"presence_sub":{"users":{"a":1}}}'),
     ("error", "bad_request")),
    ("limit above uint32", True, T('{"id":1,"sync":{"limit":4294967296}}'),
     ("error", "bad_request")),
    # numbers at and above 2^53
    ("id 2^53", True, T('{"id":9007199254740992,"ping":{}}'), ("error", "bad_request")),
    ("id 2^64", True, T('{"id":18446744073709551616,"ping":{}}'), ("error", "bad_request")),
    ("id 1e300", True, T('{"id":1e300,"ping":{}}'), ("error", "bad_request")),
    ("useq 2^53", True, T('{"id":1,"sync":{"useq":9007199254740992}}'),
     ("error", "bad_request")),
    ("before_seq huge", True,
     T('{"id":1,"history":{"conv":"dm:alice:bob","before_seq":99999999999999999999}}'),
     ("error", "bad_request")),
    # strings
    ("nul in text", True, T('{"id":1,"send":{"to":"bob","text":"a\\u0000b","cmid":"n1"}}'),
     ("error", "bad_request")),
    ("lone surrogate", True, T('{"id":1,"send":{"to":"bob","text":"\\ud800","cmid":"n2"}}'),
     ("error", "bad_request")),
    ("cmid too long", True, T(json.dumps({"id": 1, "send": {"to": "bob", "text": "x",
                                                            "cmid": "c" * 65}})),
     ("error", "bad_request")),
    ("cmid with control", True, T('{"id":1,"send":{"to":"bob","text":"x","cmid":"a\\tb"}}'),
     ("error", "bad_request")),
    ("bad recipient id", True, T('{"id":1,"send":{"to":"bo b","text":"x","cmid":"a"}}'),
     ("error", "not_found")),
    ("recipient unknown", True, T('{"id":1,"send":{"to":"nobody","text":"x","cmid":"a"}}'),
     ("error", "not_found")),
    ("send without to", True, T('{"id":1,"send":{"text":"x","cmid":"a"}}'),
     ("error", "bad_request")),
    ("conv of others", True, T('{"id":1,"history":{"conv":"dm:alice:bob"}}'),
     ("error", "not_found")),
    ("conv wrong order", True, T('{"id":1,"history":{"conv":"dm:mallory:alice"}}'),
     ("error", "not_found")),
    ("conv garbage", True, T('{"id":1,"history":{"conv":"dm::"}}'), ("error", "not_found")),
    ("conv too long", True, T(json.dumps({"id": 1, "history": {"conv": "dm:a:" + "m" * 5000}})),
     ("error", "not_found")),
    ("deep json", True, T('{"id":1,"ping":' + "[" * 30000 + "]" * 30000 + "}"),
     ("error", "bad_request")),
    ("deep object", True, T('{"id":1,"ping":' + '{"a":' * 10000 + "1" + "}" * 10001),
     ("error", "bad_request")),
    # login misuse
    ("login bad device", False, T('{"id":1,"login":{"user":"alice","password":"password1",'
                                  '"device":"fridge"}}'), ("error", "bad_request")),
    ("login nothing", False, T('{"id":1,"login":{}}'), ("error", "bad_request")),
    ("login huge password", False, T(json.dumps({"id": 1, "login": {
        "user": "alice", "password": "p" * 40000}})), ("error", "unauthorized")),
    ("login bad device_id", False, T('{"id":1,"login":{"user":"alice","password":"password1",'
                                     '"device_id":"a b"}}'), ("error", "bad_request")),
    # requests before login
    ("send before login", False, T('{"id":1,"send":{"to":"bob","text":"x","cmid":"a"}}'),
     ("error", "unauthorized")),
    ("sync before login", False, T('{"id":1,"sync":{}}'), ("error", "unauthorized")),
    ("history before login", False, T('{"id":1,"history":{"conv":"dm:alice:bob"}}'),
     ("error", "unauthorized")),
    ("read before login", False, T('{"id":1,"read":{"conv":"dm:alice:bob","seq":1}}'),
     ("error", "unauthorized")),
    ("typing before login", False, T('{"id":1,"typing":{"conv":"dm:alice:bob"}}'),
     ("error", "unauthorized")),
    ("logout before login", False, T('{"id":1,"logout":{}}'), ("error", "unauthorized")),
    ("pb send before login", False, B(PB_SEND), ("error", "unauthorized")),
    # bodies only the server sends
    ("msg push from client", True, T('{"msg":{}}'), ("error", "bad_request")),
    ("msg push with fields", True, T('{"id":1,"msg":{"conv":"dm:alice:bob","from":"alice",'
                                     '"text":"forged","seq":1}}'), ("error", "bad_request")),
    ("send_ok from client", True, T('{"id":1,"send_ok":{}}'), ("error", "bad_request")),
    ("login_ok from client", False, T('{"id":1,"login_ok":{"user":"alice"}}'),
     ("error", "bad_request")),
    ("kicked from client", True, T('{"kicked":{}}'), ("error", "bad_request")),
    ("error from client", True, T('{"id":1,"error":{"code":"x"}}'), ("error", "bad_request")),
    ("goaway from client", True, T('{"goaway":{}}'), ("error", "bad_request")),
    ("pong from client", True, T('{"id":1,"pong":{}}'), ("error", "bad_request")),
    # protobuf
    ("binary not protobuf", True, B(b"\xff\xff\xff\xff\xff"), ("error", "bad_request")),
    ("binary json", True, B(b'{"id":1,"ping":{}}'), ("error", "bad_request")),
    ("truncated protobuf", True, B(PB_SEND[:len(PB_SEND) - 4]), ("error", "bad_request")),
    ("pb length past end", True, B(vfield(1, 5) + varint(16 << 3 | 2) + varint(1000) + b"ab"),
     ("error", "bad_request")),
    ("pb huge varint", True, B(b"\x08" + b"\xff" * 11), ("error", "bad_request")),
    ("pb start group", True, B(vfield(1, 5) + varint(1000 << 3 | 3)), ("error", "bad_request")),
    ("pb invalid utf-8 in send.text", True, B(PB_SEND_BAD_UTF8), ("error", "bad_request")),
    ("pb overlong utf-8 in send.text", True, B(PB_SEND_OVERLONG), ("error", "bad_request")),
    ("pb surrogate in login.user", False, B(PB_LOGIN_BAD_UTF8), ("error", "bad_request")),
    # protobuf's rule for a oneof seen twice on the wire is "the last wins":
    # either that or an error is fine, as long as exactly one answer comes
    ("pb two bodies", True, B(vfield(1, 5) + field(14, b"") + field(18, b"")),
     ("reply", ("error", "sync_ok"))),
    ("pb empty frame", True, B(b""), ("error", "bad_request")),
    ("pb id 2^53", True, B(vfield(1, 1 << 53) + field(14, b"")), ("error", "bad_request")),
    # WebSocket protocol violations
    ("invalid utf-8 text frame", True, T(b'{"id":1,"ping":{},"x":"\xff"}'), ("close", 1007)),
    ("utf-8 cut across fragments", True,
     [(1, b'{"id":1,"send":{"to":"bob","cmid":"u","text":"\xe4', {"fin": False}),
      (0, b'"}}', {})], ("close", 1007)),
    ("unmasked frame", True, [(1, b'{"id":1,"ping":{}}', {"mask": False})], ("close", 1002)),
    ("reserved data opcode", True, [(3, b"x", {})], ("close", 1002)),
    ("reserved control opcode", True, [(0xB, b"", {})], ("close", 1002)),
    ("rsv1 set", True, [(1, b'{"id":1,"ping":{}}', {"rsv": 4})], ("close", 1002)),
    ("rsv3 set", True, [(2, PB_PING, {"rsv": 1})], ("close", 1002)),
    ("continuation first", True, [(0, b"x", {})], ("close", 1002)),
    ("interleaved data frame", True,
     [(1, b'{"id":1,', {"fin": False}), (1, b'{"id":2,"ping":{}}', {})], ("close", 1002)),
    ("ping too long", True, [(9, b"p" * 126, {})], ("close", 1002)),
    ("fragmented ping", True, [(9, b"p", {"fin": False})], ("close", 1002)),
    ("close code 999", True, [(8, struct.pack("!H", 999), {})], ("close", 1002)),
    ("close code 1005", True, [(8, struct.pack("!H", 1005), {})], ("close", 1002)),
    ("close code 1006", True, [(8, struct.pack("!H", 1006), {})], ("close", 1002)),
    ("close code 2000", True, [(8, struct.pack("!H", 2000), {})], ("close", 1002)),
    ("close code 5000", True, [(8, struct.pack("!H", 5000), {})], ("close", 1002)),
    ("close one byte", True, [(8, b"\x03", {})], ("close", 1002)),
    ("close bad utf-8 reason", True, [(8, struct.pack("!H", 1000) + b"\xff", {})],
     ("close", (1002, 1007))),
    ("length with top bit", True, [b"\x81\xff" + b"\x80" + b"\x00" * 7 + os.urandom(4)],
     ("close", 1002)),
    ("oversized frame header", True, [b"\x82\xff" + struct.pack("!Q", 1 << 40) + os.urandom(4)],
     ("close", 1009)),
]


def _send_case(c, frames):
    for f in frames:
        if isinstance(f, bytes):
            c.send_raw(f)
        else:
            op, payload, opts = f
            c.send_frame(op, payload, **opts)


def _open(s, authed):
    c = s.ws()
    if authed:
        r = c.call({"login": {"token": s.tokens["mallory"], "device": "bot"}})
        assert "login_ok" in r
    return c


@pytest.mark.parametrize("name,authed,frames,expect", WS_CASES, ids=[c[0] for c in WS_CASES])
def test_ws_case(srv, name, authed, frames, expect):
    """SPEC 3 malformed input over WebSocket: each case gets its error (and
    the connection keeps serving) or its close code; others are unharmed."""
    c = _open(srv, authed)
    _send_case(c, frames)
    kind, want = expect
    if kind == "error":
        f = c.wait(lambda f: "error" in f, 5)
        assert f["error"]["code"] == want, (name, f)
        assert f["error"].get("message")
        # the connection still serves
        r = c.call({"ping": {}}, timeout=5)
        assert "pong" in r, (name, r)
    elif kind == "reply":
        f = c.wait(lambda f: f.get("id") == 5 or "error" in f, 5)
        assert [k for k in want if k in f], (name, f)
        if "error" in f:
            assert f["error"]["code"] == "bad_request"
        assert "pong" in c.call({"ping": {}}, timeout=5)
        extra = None
        try:
            extra = c.wait(lambda f: f.get("id") == 5 or "error" in f, 0.3)
        except TimeoutError:
            pass
        assert extra is None, ("two answers", name, f, extra)
    else:
        code = c.wait_close(5)
        wants = want if isinstance(want, tuple) else (want,)
        assert code in wants, (name, code)
    c.close()
    check_alive(srv)


def test_ws_valid_edge_cases(srv):
    """SPEC 3 and RFC 6455: what is valid must keep working: id 2^53-1
    echoed, a fragmented message with a ping between its fragments, an empty
    ping, a close with a reason, a binary frame answered in protobuf."""
    c = _open(srv, True)
    c.send_frame(1, b'{"id":9007199254740991,"ping":{}}')
    f = c.wait(lambda f: "pong" in f, 5)
    assert f["id"] == 9007199254740991
    c.send_frame(1, b'{"id":41,', fin=False)
    c.send_frame(9, b"between")
    c.send_frame(0, b'"ping":', fin=False)
    c.send_frame(0, b"{}}")
    got_pong = False
    while True:
        op, payload = c.recv_frame(5)
        if op == 10:
            assert payload == b"between"
            got_pong = True
            continue
        f = json.loads(payload)
        assert f.get("id") == 41 and "pong" in f
        break
    assert got_pong
    c.send_frame(9, b"")
    op, payload = c.recv_frame(5)
    assert op == 10 and payload == b""
    c.send_frame(2, PB_PING)
    op, payload = c.recv_frame(5)
    assert op == 2
    c.send_frame(8, struct.pack("!H", 1000) + "bye ✓".encode())
    assert c.wait_close(5) == 1000
    check_alive(srv)


def test_many_bad_frames_in_a_row(srv):
    """SPEC 3: a client sending a stream of undecodable frames gets an
    error for each and never takes the server down."""
    c = _open(srv, True)
    for i in range(200):
        if i % 2:
            c.send_frame(1, b"{" * (i + 1))
        else:
            c.send_frame(2, b"\xff" * (i % 50 + 1))
    n = 0
    while n < 200:
        assert c.wait(lambda f: "error" in f, 5)["error"]["code"] == "bad_request"
        n += 1
    assert "pong" in c.call({"ping": {}})
    check_alive(srv)


# ---- TCP cases ----

TCP_CASES = [
    ("length above max_frame", struct.pack("!I", 65537) + b"x" * 100, "closed"),
    ("length 4 GiB", struct.pack("!I", 0xFFFFFFFF), "closed"),
    ("not protobuf", struct.pack("!I", 5) + b"\xff\xff\xff\xff\xff", "bad_request"),
    ("json over tcp", struct.pack("!I", 18) + b'{"id":1,"ping":{}}', "bad_request"),
    ("empty frame", struct.pack("!I", 0), "bad_request"),
    ("truncated protobuf", struct.pack("!I", len(PB_SEND) - 3) + PB_SEND[:-3], "bad_request"),
    ("invalid utf-8 in send.text", struct.pack("!I", len(PB_SEND_BAD_UTF8)) + PB_SEND_BAD_UTF8,
     "bad_request"),
    ("send before login", struct.pack("!I", len(PB_SEND)) + PB_SEND, "unauthorized"),
]


@pytest.mark.parametrize("name,data,expect", TCP_CASES, ids=[c[0] for c in TCP_CASES])
def test_tcp_case(srv, name, data, expect):
    """SPEC 3 malformed input over TCP: an error frame (the connection keeps
    serving), or the connection is closed."""
    t = srv.tcp()
    t.send_raw(data)
    if expect == "closed":
        assert t.wait_close(5)
    else:
        f = t.wait(lambda f: "error" in f, 5)
        assert f["error"]["code"] == expect, (name, f)
        assert "pong" in t.call({"ping": {}}, timeout=5)
    t.close()
    check_alive(srv)


def test_tcp_truncated_frames_then_close(srv):
    """SPEC 3: frames cut off by the client closing (in the length prefix,
    in the payload, after a huge announced length) harm nobody."""
    for data in (b"\x00\x00", struct.pack("!I", 100) + b"0123456789",
                 struct.pack("!I", 60000) + b"x" * 30000, PB_SEND):
        sock = socket.create_connection(("127.0.0.1", srv.tcp_port), timeout=5)
        sock.sendall(data)
        sock.close()
    # one that half-closes and waits for what the server says
    sock = socket.create_connection(("127.0.0.1", srv.tcp_port), timeout=5)
    sock.sendall(struct.pack("!I", len(PB_PING)) + PB_PING + struct.pack("!I", 50) + b"abc")
    sock.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = sock.recv(4096)
        if not d:
            break
        got += d
    sock.close()
    assert len(got) >= 4 and struct.unpack("!I", got[:4])[0] == len(got) - 4, got
    check_alive(srv)


# ---- HTTP cases ----

def raw_http(port, data, timeout=5, until_close=False):
    """Send raw bytes; return (status or None, bytes read until the server
    closed or answered fully)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        sock.sendall(data)
        while True:
            try:
                d = sock.recv(65536)
            except ConnectionResetError:
                break
            if not d:
                break
            got += d
            if b"\r\n\r\n" in got:
                head, rest = got.split(b"\r\n\r\n", 1)
                if b"content-length:" in head.lower() and not until_close:
                    n = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n")[0])
                    if len(rest) >= n:
                        break
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None
    return status, got


def body_json(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1])


def P(path, body, extra=b""):
    """A POST with a correct Content-Length."""
    return (b"POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n"
            % (path, extra, len(body)) + body)


HTTP_CASES = [
    ("garbage request line", b"HELLO\r\n\r\n", (400,)),
    ("binary garbage", b"\x00\xff\x13\x37" * 50 + b"\r\n\r\n", (400, None)),
    ("bad http version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n", (400, 505)),
    ("http/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 505)),
    ("space in target", b"GET /v1/users /x HTTP/1.1\r\nHost: x\r\n\r\n", (400, 404)),
    ("bad percent escape", b"GET /v1/users/%zz HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("percent-encoded nul", b"GET /v1/users/a%00b HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", (400,)),
    ("negative content-length",
     b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", (400,)),
    ("two content-lengths",
     b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
     (400,)),
    ("length and chunked",
     b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n0\r\n\r\n", (400,)),
    ("bad chunk size",
     b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", (400,)),
    ("unknown path", b"GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    ("unknown v1 path", b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    ("wrong method", b"DELETE /v1/signup HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
    ("get on post route", b"GET /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n", (400, 405)),
    ("invalid json body", P(b"/v1/signup", b'{"user":'), (400,)),
    ("json array body", P(b"/v1/signup", b"[]"), (400,)),
    ("json string body", P(b"/v1/signup", b'"user"'), (400,)),
    ("unknown key in body", P(b"/v1/signup", b'{"zzz":123}'), (400,)),
    ("wrong type in body", P(b"/v1/signup", b'{"user":123,"password":"password1"}'), (400,)),
    ("number 2^53 in body", P(b"/v1/conversations/dm:a:b/read", b'{"seq":9007199254740993}'),
     (400,)),
    ("duplicate keys in body", P(b"/v1/login", b'{"user":"a","user":"bbbb","password":"x"}'),
     (400,)),
    ("invalid utf-8 in body", P(b"/v1/signup", b'{"user":"a\xff","password":"password1"}'),
     (400,)),
    ("nul in body", P(b"/v1/signup", b'{"user":"a\\u0000b","password":"password1"}'), (400,)),
    ("bad query type", b"GET /v1/users?q=a&limit=abc HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("path param too long",
     b"GET /v1/users/" + b"u" * 300 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (401, 404)),
    ("bearer garbage",
     b"GET /v1/users/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"v1." + b"A" * 5000 +
     b"\r\n\r\n", (401,)),
    ("bearer empty",
     b"GET /v1/users/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r\n\r\n", (401,)),
    ("api key of no tenant",
     b"GET /v1/users/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ak.nope.1234\r\n\r\n",
     (401,)),
]


@pytest.mark.parametrize("name,data,statuses", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_http_case(srv, name, data, statuses):
    """SPEC 4: protocol and API misuse over HTTP gets a fitting 4xx status
    (JSON errors for the API) or a closed connection; never a crash."""
    st, raw = raw_http(srv.http_port, data)
    assert st in statuses, (name, st, raw[:300])
    if st is not None and st >= 400 and b"application/json" in raw.split(b"\r\n\r\n")[0]:
        e = body_json(raw)["error"]
        assert e["code"] in ("bad_request", "not_found", "unauthorized", "forbidden"), e
        assert e["message"]
    if name in ("unknown path", "unknown v1 path", "wrong method", "invalid json body"):
        assert b"application/json" in raw, "API errors are JSON: %r" % raw[:300]
    check_alive(srv)


def test_http_missing_host(srv):
    """RFC 9112 section 3.2: HTTP/1.1 without Host, or with two, is a 400;
    HTTP/1.0 may omit it."""
    st, raw = raw_http(srv.http_port, b"GET /healthz HTTP/1.1\r\n\r\n")
    assert st == 400 and b"missing Host header" in raw, raw
    st, raw = raw_http(srv.http_port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert st == 400 and b"more than one Host header" in raw, raw
    st, raw = raw_http(srv.http_port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert st == 200
    check_alive(srv)


def test_http_body_shorter_than_content_length(srv):
    """SPEC 3: a body cut short (the client closes, or just stops) does not
    hang a worker; the request is never run with half a body."""
    for _ in range(3):
        sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=5)
        sock.sendall(b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
                     b'{"user":"halfbody","password":"password1"}')
        sock.close()
    # one that half-closes: the server must not wait forever for the rest
    sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=5)
    sock.sendall(b"POST /v1/signup HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
                 b'{"user":"halfbody","password":"password1"}')
    sock.shutdown(socket.SHUT_WR)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    sock.close()
    st, r = srv.http("GET", "/v1/users/halfbody", token=srv.tokens["alice"])
    assert st == 404, "a request with half its body was run"
    check_alive(srv)


def test_http_slowloris(srv):
    """Issue 2 Limits: a request head trickled one byte per 200 ms is cut off
    after header_timeout_ms (1 s here): 408 or a plain close, in time."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 40 + b"\r\n\r\n"
    sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=5)
    started = time.time()
    closed = False
    try:
        for i in range(len(head)):
            sock.sendall(head[i:i + 1])
            sock.settimeout(0.2)
            try:
                d = sock.recv(4096)
                if not d or d.startswith(b"HTTP/1.1 408"):
                    closed = True
                    break
                raise AssertionError("served a trickled request: %r" % d)
            except socket.timeout:
                pass
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    took = time.time() - started
    sock.close()
    assert closed, "the trickling client was never cut off"
    assert took < 2.5, took
    check_alive(srv)


def _upgrade(port, path="/v1/ws", key=None, version="13", origin=None, extra=b""):
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           % (path, port))
    if key != "-":
        req += "Sec-WebSocket-Key: %s\r\n" % key
    if version is not None:
        req += "Sec-WebSocket-Version: %s\r\n" % version
    if origin:
        req += "Origin: %s\r\n" % origin
    return raw_http(port, req.encode() + extra + b"\r\n")


UPGRADE_CASES = [
    ("key too short", dict(key="c2hvcnQ="), 400),
    ("key not base64", dict(key="!!!!!!!!!!!!!!!!!!!!!!=="), 400),
    ("key of 15 bytes", dict(key=base64.b64encode(b"x" * 15).decode()), 400),
    ("no key", dict(key="-"), 400),
    ("version 8", dict(version="8"), 400),
    ("no version", dict(version=None), 400),
    ("wrong path", dict(path="/v1/wss"), 404),
    ("root path", dict(path="/"), 404),
    ("foreign origin", dict(origin="https://evil.example.com"), 403),
    ("origin lookalike", dict(origin="https://app.example.com.evil.net"), 403),
    ("null origin", dict(origin="null"), 403),
    ("same host origin", dict(origin="http://127.0.0.1:{port}"), 101),
    ("allowed origin", dict(origin="https://app.example.com"), 101),
    ("no origin", dict(), 101),
]


@pytest.mark.parametrize("name,kw,status", UPGRADE_CASES, ids=[c[0] for c in UPGRADE_CASES])
def test_ws_upgrade_case(srv, name, kw, status):
    """SPEC 2 Safety (allowed origins) and RFC 6455 handshake checks: a bad
    key or version -> 400, another path -> 404, a disallowed Origin -> 403."""
    kw = dict(kw)
    if "origin" in kw:
        kw["origin"] = kw["origin"].replace("{port}", str(srv.http_port))
    if status == 101:
        c = WS(srv.http_port, connect=False)
        st, hdrs = c.handshake(kw.get("path", "/v1/ws"), kw.get("origin"))
        assert st == 101
        assert "pong" in c.call({"ping": {}})
        c.close()
    else:
        st, raw = _upgrade(srv.http_port, **kw)
        assert st == status, (name, st, raw[:200])
    check_alive(srv)


def test_http_then_garbage_on_keepalive(srv):
    """A good request followed by garbage on the same connection: the first
    is answered, the garbage gets 400, nothing else breaks."""
    st, raw = raw_http(srv.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                                      b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,
                       until_close=True)
    assert st == 200
    assert raw.count(b"HTTP/1.1 200 ") == 1 and raw.count(b"HTTP/1.1 400 ") == 1, raw
    check_alive(srv)


def test_abandoned_requests(srv):
    """SPEC 3: a client that sends a request and disconnects at once (a
    password login on the hasher, a send on the store, a sync, an HTTP call)
    leaves no dangling work behind: the server keeps serving, and at the end
    stops cleanly with no sanitizer report."""
    bodies = [
        {"id": 1, "login": {"user": "alice", "password": "password1", "device": "cli"}},
        {"id": 1, "login": {"user": "alice", "password": "wrong-password", "device": "cli"}},
        {"id": 1, "login": {"token": srv.tokens["mallory"], "device": "desktop"}},
    ]
    for rnd in range(10):
        for i, body in enumerate(bodies):
            c = srv.ws(binary=(rnd % 2 == 1))
            c.send(body)
            c.sock.close()
        c = srv.ws()
        r = c.call({"login": {"user": "mallory", "password": "password1", "device": "web"}})
        assert "login_ok" in r, r      # a token of its own: the logout below revokes it
        c.send({"id": 2, "send": {"to": "alice", "text": "bye %d" % rnd, "cmid": "ab%d" % rnd}})
        c.send({"id": 3, "sync": {"useq": 0}})
        c.send({"id": 4, "history": {"conv": "dm:alice:mallory"}})
        c.send({"id": 5, "logout": {}})
        c.sock.close()
        t = srv.tcp()
        t.send({"id": 1, "login": {"user": "bob", "password": "password1", "device": "cli"}})
        t.sock.close()
        sock = socket.create_connection(("127.0.0.1", srv.http_port), timeout=5)
        sock.sendall(P(b"/v1/login", b'{"user":"alice","password":"password1"}') +
                     P(b"/v1/signup", b'{"user":"ab-%d","password":"password1"}' % rnd))
        sock.close()
    # the messages sent before each close were stored exactly once
    alice_tok = srv.tokens["alice"]
    c = srv.login_ws(alice_tok, device="ios")
    deadline = time.time() + 5
    while True:
        h = c.call({"history": {"conv": "dm:alice:mallory", "limit": 100}})["history_ok"]
        cmids = [m["cmid"] for m in h.get("msgs", [])]
        assert len(cmids) == len(set(cmids))
        if len(cmids) == 10 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert sorted(cmids) == sorted("ab%d" % i for i in range(10))
    c.close()
    check_alive(srv)


def test_framing_edges_are_served(srv):
    """RFC 6455 / SPEC 3 framing that is unusual but valid must be served:
    a message in 1-byte fragments, a frame dripped one byte per write, many
    frames in one write (WS and TCP), pipelined HTTP requests answered in
    order."""
    c = _open(srv, True)
    data = b'{"id":61,"ping":{}}'
    for i in range(len(data)):
        c.send_frame(1 if i == 0 else 0, data[i:i + 1], fin=(i == len(data) - 1))
    assert c.wait(lambda f: f.get("id") == 61, 5)["pong"]
    raw = WS.encode(1, b'{"id":62,"ping":{}}')
    for i in range(len(raw)):
        c.send_raw(raw[i:i + 1])
        time.sleep(0.002)
    assert "pong" in c.wait(lambda f: f.get("id") == 62, 5)
    c.send_raw(b"".join(WS.encode(1, b'{"id":%d,"ping":{}}' % i) for i in range(100, 150)))
    for i in range(100, 150):
        assert "pong" in c.wait(lambda f, i=i: f.get("id") == i, 5)
    c.close()
    t = srv.tcp()
    frame = frame_to_pb({"id": 70, "ping": {}})
    raw = struct.pack("!I", len(frame)) + frame
    for i in range(len(raw)):
        t.send_raw(raw[i:i + 1])
        time.sleep(0.002)
    assert "pong" in t.wait(lambda f: f.get("id") == 70, 5)
    t.send_raw(b"".join(struct.pack("!I", len(f)) + f for f in
                        (frame_to_pb({"id": i, "ping": {}}) for i in range(200, 260))))
    for i in range(200, 260):
        assert "pong" in t.wait(lambda f, i=i: f.get("id") == i, 5)
    t.close()
    tok = srv.tokens["bob"].encode()
    reqs = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
            b"GET /v1/users/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
            b"\r\n\r\n" +
            b"GET /v1/users/nobody HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
            b"\r\n\r\n" +
            b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    st, raw = raw_http(srv.http_port, reqs, until_close=True)
    statuses = [int(x) for x in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]
    assert statuses == [200, 200, 404, 200], raw
    assert raw.index(b'"user":"alice"') < raw.index(b"not_found")
    check_alive(srv)


def _upgrade_status(port, headers):
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(("GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                      % (port, headers)).encode())
        got = b""
        while b"\r\n\r\n" not in got:
            d = sock.recv(4096)
            if not d:
                break
            got += d
        return int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.1 ") else None
    finally:
        sock.close()


def test_ws_upgrade_header_variants(srv):
    """RFC 6455 4.2.1: header names and the Upgrade token are
    case-insensitive and Connection is a list (browsers send "keep-alive,
    Upgrade"): those upgrade; without Upgrade or Connection: upgrade it is
    no WebSocket handshake."""
    b64 = base64.b64encode(os.urandom(16)).decode()
    key = "Sec-WebSocket-Key: %s\r\n" % b64
    ok = [
        "Upgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n" + key +
        "Sec-WebSocket-Version: 13\r\n",
        "upgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-key: %s\r\n"
        "sec-websocket-version: 13\r\n" % b64,
        "Upgrade: websocket\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Extensions: "
        "permessage-deflate\r\n",
    ]
    for h in ok:
        assert _upgrade_status(srv.http_port, h) == 101, h
    bad = [
        "Connection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n",
        "Upgrade: websocket\r\n" + key + "Sec-WebSocket-Version: 13\r\n",
        "Upgrade: h2c\r\nConnection: Upgrade\r\n" + key + "Sec-WebSocket-Version: 13\r\n",
    ]
    for h in bad:
        st = _upgrade_status(srv.http_port, h)
        assert st is not None and st != 101 and 400 <= st < 500, (h, st)
    check_alive(srv)


def test_undecodable_frame_error_carries_its_id(server):
    """SPEC 3: a request with an `id` gets its answer with that id, even
    when the frame itself is refused, so a client knows which request
    failed."""
    c = server.ws()
    c.send_frame(1, b'{"id":41,"frobnicate":{}}')
    r = c.recv()
    assert r["id"] == 41 and r["error"]["code"] == "bad_request"
    c.send_frame(1, b'{"id":43,"send":{"to":5}}')
    r = c.recv()
    assert r["id"] == 43 and r["error"]["code"] == "bad_request"
    # protobuf: id 42, then only an unknown field: no body
    c.send_frame(2, b"\x08\x2a\x9a\x06\x00")
    r = c.recv()
    assert r["id"] == 42 and r["error"]["code"] == "bad_request"
    # unreadable bytes: an error without an id
    c.send_frame(1, b'{"id":')
    r = c.recv()
    assert "id" not in r and r["error"]["code"] == "bad_request"
