"""The UDP transport end to end (SPEC section 3: "UDP: one protobuf Frame
per datagram"; "Acks and QoS": the receiver acks, the sender retransmits
with backoff until acked, duplicates are dropped by id, and a heartbeat
keeps the session alive).  The client is parleytest.UDP; docs/protocol.md,
section "UDP", is the protocol it speaks."""
import random
import signal
import socket
import time

from parleytest import Server, frame_to_pb


def raw_socket(server):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", server.udp_port))
    return s


def silent(sock, seconds):
    """True if nothing arrives on a raw socket for that long."""
    sock.settimeout(seconds)
    try:
        sock.recv(65536)
    except socket.timeout:
        return True
    except ConnectionRefusedError:
        return True
    return False


def ignored(client, frame, seconds=1.0):
    """True if the server neither acks nor answers a frame: what a client
    gets that still numbers datagrams in a session the server has ended."""
    d = client.send(frame)
    client.pump(seconds)
    return d not in client.acked and not client.pending


def disconnects(server, user, transport="udp"):
    return [e for e in server.events("disconnect")
            if e.get("user") == user and e.get("transport") == transport]


def test_login_send_and_pushes_both_ways(server):
    """SPEC 3: login with a token over UDP, send/send_ok, a WebSocket peer
    gets the push and replies, and the UDP client gets that push as a
    numbered datagram which it acks (so the server never resends it)."""
    assert server.udp_port
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_udp(ta, device="ios")
    assert a.login_ok["user"] == "alice"
    b = server.login_ws(tb)
    ok = a.call({"send": {"to": "bob", "text": "hi over udp", "cmid": "u1"}})["send_ok"]
    assert ok["conv"] == "dm:alice:bob" and ok["seq"] == 1
    m = b.push("msg")
    assert m["from"] == "alice" and m["text"] == "hi over udp" and m["cmid"] == "u1"
    b.call({"send": {"to": "alice", "text": "hi back", "cmid": "w1"}})
    f = a.wait(lambda f: "msg" in f and "id" not in f)
    assert f["dgram"] > 0
    assert f["msg"]["seq"] == 2 and f["msg"]["from"] == "bob" and f["msg"]["text"] == "hi back"
    a.pump(0.8)                          # past the server's first retransmission timeout
    assert not a.unacked                 # the server acked everything we sent
    assert set(a.copies.values()) == {1}, a.copies   # and resent nothing we acked
    logins = [e for e in server.events("login") if e.get("user") == "alice"]
    assert logins and logins[-1]["transport"] == "udp"
    h = a.call({"history": {"conv": "dm:alice:bob"}})["history_ok"]
    assert [x["text"] for x in h["msgs"]] == ["hi back", "hi over udp"]


def test_lost_datagrams_are_resent_and_delivered_once(server):
    """SPEC 3: a client that loses the first copy of every server datagram
    still gets every frame, exactly once, through retransmission."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_udp(ta, drop_first=True)
    b = server.login_ws(tb)
    for i in range(5):
        b.call({"send": {"to": "alice", "text": "m%d" % i, "cmid": "c%d" % i}})
    got = [a.push("msg")["text"] for _ in range(5)]
    assert got == ["m%d" % i for i in range(5)]
    assert a.no_push("msg", 1.0)         # nothing twice
    r = a.call({"send": {"to": "bob", "text": "through loss", "cmid": "x"}})
    assert r["send_ok"]["seq"] == 6
    a.pump(0.5)
    assert a.copies and all(n >= 2 for n in a.copies.values()), a.copies
    assert not a.unacked


def test_duplicate_datagrams_are_acted_on_once(server):
    """SPEC 3: duplicates are dropped by number: a datagram sent twice is
    acted on once and answered once; a second datagram under a number
    already seen is not acted on, even with other content, but is acked."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_udp(ta, duplicate=True)
    b = server.login_ws(tb)
    r = a.call({"send": {"to": "bob", "text": "twice on the wire", "cmid": "d1"}})
    assert r["send_ok"]["seq"] == 1
    a.pump(0.5)
    assert not [f for f in a.pending if f.get("id") == r["id"]]   # one answer
    assert b.push("msg")["text"] == "twice on the wire"
    assert b.no_push("msg")

    a.duplicate = False
    d = a.send({"id": 900, "send": {"to": "bob", "text": "first", "cmid": "k1"}})
    assert a.wait(lambda f: f.get("id") == 900)["send_ok"]["seq"] == 2
    a.acked.clear()
    a.send({"id": 901, "send": {"to": "bob", "text": "same number", "cmid": "k2"}}, dgram=d)
    a.pump(0.6)
    assert d in a.acked                  # the duplicate is acked again...
    assert not [f for f in a.pending if f.get("id") == 901]   # ...and not acted on
    h = a.call({"history": {"conv": "dm:alice:bob"}})["history_ok"]
    assert [m["text"] for m in h["msgs"]] == ["first", "twice on the wire"]


def test_heartbeat_keeps_a_session_and_silence_ends_one():
    """SPEC 3: ping/pong keeps a UDP session past idle_timeout_ms; a silent
    one is closed (its next frame finds no session)."""
    with Server("--idle-timeout-ms", "2000") as s:
        ta, tb = s.signup("alice"), s.signup("bob")
        a = s.login_udp(ta)
        b = s.login_udp(tb)
        # pings every 0.3 s leave a wide margin below the 2 s idle timeout,
        # even on a loaded machine; bob stays silent for over twice as long
        deadline = time.time() + 5
        while time.time() < deadline:
            assert "pong" in a.call({"ping": {}})
            time.sleep(0.3)
        assert "send_ok" in a.call({"send": {"to": "bob", "text": "alive", "cmid": "h1"}})
        assert disconnects(s, "bob") and not disconnects(s, "alice")
        # bob's session is gone: its next numbers belong to no session
        assert ignored(b, {"id": 77, "send": {"to": "alice", "text": "too late", "cmid": "h2"}})
        b.close()
        # a new session (new socket, numbers from 1) works
        b = s.login_udp(tb)
        assert "send_ok" in b.call({"send": {"to": "alice", "text": "back", "cmid": "h3"}})
        assert a.push("msg")["text"] == "back"


def test_a_client_that_never_acks_is_dropped():
    """SPEC 3: the server retransmits with backoff until acked, and gives up
    on a peer that never acks (RUDP_MAX_TRIES = 7 sends, about 9.4 s), even
    one that keeps sending."""
    with Server("--idle-timeout-ms", "60000") as s:
        ta = s.signup("alice")
        a = s.login_udp(ta, ack=False)
        start = time.time()
        while not disconnects(s, "alice") and time.time() - start < 20:
            a.send({"ping": {}})
            a.pump(0.5)
        assert disconnects(s, "alice"), "never dropped"
        took = time.time() - start
        assert 8 <= took <= 16, took
        assert max(a.copies.values()) == 7, a.copies
        a.ack = True
        a.pending.clear()
        assert ignored(a, {"id": 78, "send": {"to": "alice", "text": "x", "cmid": "n1"}})


def test_garbage_datagrams():
    """SPEC 3: malformed input gets an error or silence, never a crash: a
    stranger's garbage gets no answer at all (no reflection), a session's
    garbage an error frame (sent reliably), a datagram above max_frame is
    dropped; the server keeps serving everyone."""
    with Server("--max-frame", "1024") as s:
        ta = s.signup("alice")
        rnd = random.Random(7)
        strangers = [raw_socket(s) for _ in range(4)]
        for i, sock in enumerate(strangers):
            for n in (0, 1, 7, 100, 1000, 1024, 1500):
                sock.send(bytes(rnd.getrandbits(8) for _ in range(n)))
            sock.send(b"\xff" * 64)
            sock.send(frame_to_pb({"ping": {}}))          # a body without a number
            sock.send(frame_to_pb({"dgram": 1})[:1])      # cut short
        for sock in strangers:
            assert silent(sock, 0.3)
        a = s.login_udp(ta)
        a.send_raw(b"\x0a\xff\xff\xff")
        e = a.wait(lambda f: "error" in f)["error"]
        assert e["code"] == "bad_request"
        a.send_raw(frame_to_pb({"id": 5, "ping": {}}))      # no dgram
        e = a.wait(lambda f: "error" in f)["error"]
        assert e["code"] == "bad_request" and "dgram" in e["message"]
        a.send_raw(b"\x00" * 2000)                          # above max_frame: dropped
        assert a.no_push("error", 0.5)
        assert "pong" in a.call({"ping": {}})
        a.pump(0.5)
        assert not a.unacked
        b = s.login_udp(s.signup("bob"))
        assert "send_ok" in b.call({"send": {"to": "alice", "text": "still here", "cmid": "g"}})
        assert a.push("msg")["text"] == "still here"
        st, _ = s.http("GET", "/healthz")
        assert st == 200
        for sock in strangers:
            sock.close()


def test_a_reply_that_does_not_fit_a_datagram():
    """docs/protocol.md: a reply larger than a datagram becomes a too_large
    error with the request's id; a smaller limit fits."""
    with Server("--max-frame", "1024", "--msg-burst", "100") as s:
        ta, tb = s.signup("alice"), s.signup("bob")
        a = s.login_udp(ta)
        b = s.login_ws(tb)
        for i in range(10):
            b.call({"send": {"to": "alice", "text": "%02d " % i + "y" * 150, "cmid": "c%d" % i}})
        for _ in range(10):
            a.push("msg")
        r = a.call({"sync": {"useq": 0, "limit": 100}})
        assert r["error"]["code"] == "too_large", r
        r = a.call({"sync": {"useq": 0, "limit": 2}})
        entries = r["sync_ok"]["entries"]
        assert [e["useq"] for e in entries] == [1, 2] and r["sync_ok"]["more"]


def test_kick_reaches_a_udp_session(server):
    """SPEC 2: mutual kick over UDP: the older session gets `kicked`
    (delivered reliably, even through loss), then it is closed."""
    ta = server.signup("alice")
    a = server.login_udp(ta, device="ios", drop_first=True)
    server.login_ws(ta, device="ios")
    assert a.push("kicked")
    a.pump(0.5)
    assert ignored(a, {"id": 79, "send": {"to": "alice", "text": "x", "cmid": "k"}})


def test_goaway_on_shutdown():
    """SPEC 2: graceful shutdown tells UDP clients to reconnect elsewhere."""
    s = Server("--shutdown-grace-ms", "1000")
    s.start()
    try:
        a = s.login_udp(s.signup("alice"))
        s.proc.send_signal(signal.SIGTERM)
        assert a.push("goaway", 5)
        s.stop()
    finally:
        s.kill()
        s.cleanup()


def test_udp_can_be_turned_off():
    """SPEC 5: `--udp ""` runs without a UDP port."""
    with Server("--udp", "") as s:
        assert s.udp_port == 0
        st, _ = s.http("GET", "/healthz")
        assert st == 200
