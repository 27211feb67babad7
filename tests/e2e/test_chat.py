"""1:1 chat end to end: sign-up, login, send/ack/push, dedup, sync, history,
read receipts, typing (SPEC sections 2 and 3)."""
import time

from parleytest import Server


def test_signup_login_and_first_message(server):
    ta = server.signup("alice")
    tb = server.signup("bob")
    a = server.login_ws(ta)
    b = server.login_ws(tb)
    assert a.login_ok["user"] == "alice"
    assert a.login_ok["useq"] == 0
    r = a.call({"send": {"to": "bob", "text": "hi bob", "cmid": "c1"}})
    ok = r["send_ok"]
    assert ok["conv"] == "dm:alice:bob"
    assert ok["seq"] == 1
    assert ok["ts"] > 1700000000000
    m = b.push("msg")
    assert m["conv"] == "dm:alice:bob" and m["seq"] == 1 and m["from"] == "alice"
    assert m["text"] == "hi bob" and m["cmid"] == "c1" and m["useq"] == 1
    r = b.call({"send": {"to": "alice", "text": "hi alice", "cmid": "c2"}})
    assert r["send_ok"]["seq"] == 2
    m = a.push("msg")
    assert m["seq"] == 2 and m["text"] == "hi alice" and m["useq"] == 2


def test_push_reaches_every_device_and_senders_other_devices(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    a_web = server.login_ws(ta, device="web")
    a_ios = server.login_ws(ta, device="ios", binary=True)
    b_web = server.login_ws(tb, device="web")
    b_tcp = server.tcp()
    assert "login_ok" in b_tcp.call({"login": {"token": tb, "device": "desktop"}})
    r = a_web.call({"send": {"to": "bob", "text": "to all of you", "cmid": "x"}})
    seq = r["send_ok"]["seq"]
    for c in (b_web, b_tcp):
        m = c.push("msg")
        assert m["seq"] == seq and m["text"] == "to all of you"
    m = a_ios.push("msg")          # the sender's other device
    assert m["seq"] == seq and m["from"] == "alice"
    assert a_web.no_push("msg")    # not echoed to the sending device


def test_resend_with_same_cmid_is_stored_once(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    b = server.login_ws(tb)
    first = a.call({"send": {"to": "bob", "text": "once", "cmid": "same"}})["send_ok"]
    again = a.call({"send": {"to": "bob", "text": "once", "cmid": "same"}})["send_ok"]
    assert first == again
    assert b.push("msg")["seq"] == first["seq"]
    assert b.no_push("msg")
    h = a.call({"history": {"conv": "dm:alice:bob"}})["history_ok"]
    assert [m["seq"] for m in h["msgs"]] == [1]


def test_offline_recipient_syncs_in_order_without_gaps():
    with Server("--msg-burst", "1000") as server:
        ta, tb = server.signup("alice"), server.signup("bob")
        a = server.login_ws(ta)
        for i in range(250):
            assert "send_ok" in a.call({"send": {"to": "bob", "text": "m%d" % i, "cmid": "k%d" % i}})
        b = server.login_ws(tb, binary=True)
        assert b.login_ok["useq"] == 250
        got, useq = [], 0
        while True:
            r = b.call({"sync": {"useq": useq, "limit": 100}})["sync_ok"]
            for e in r["entries"]:
                assert e["useq"] == useq + 1
                useq = e["useq"]
                got.append(e["msg"]["text"])
            if not r.get("more"):
                break
        assert got == ["m%d" % i for i in range(250)]
        assert r["useq"] == 250


def test_history_pages_backwards(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    for i in range(30):
        a.call({"send": {"to": "bob", "text": str(i), "cmid": str(i)}})
    h = a.call({"history": {"conv": "dm:alice:bob", "limit": 10}})["history_ok"]
    assert [m["seq"] for m in h["msgs"]] == list(range(30, 20, -1)) and h["more"]
    h = a.call({"history": {"conv": "dm:alice:bob", "before_seq": 5}})["history_ok"]
    assert [m["seq"] for m in h["msgs"]] == [4, 3, 2, 1] and not h.get("more")
    st, r = server.http("GET", "/v1/conversations/dm:alice:bob/messages?limit=2", token=tb)
    assert st == 200 and [m["seq"] for m in r["msgs"]] == [30, 29]


def test_read_receipt_and_typing(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    b1 = server.login_ws(tb, device="web")
    b2 = server.login_ws(tb, device="android")
    a.call({"send": {"to": "bob", "text": "read me", "cmid": "r"}})
    b1.push("msg")
    b2.push("msg")
    assert "read_ok" in b1.call({"read": {"conv": "dm:alice:bob", "seq": 1}})
    rc = a.push("receipt")
    assert rc == {"conv": "dm:alice:bob", "user": "bob", "seq": 1, "ts": rc["ts"]}
    ev = b2.push("event")
    assert ev["kind"] == "read" and ev["conv"] == "dm:alice:bob" and ev["seq"] == 1
    assert ev["useq"] == 2
    b1.send({"typing": {"conv": "dm:alice:bob"}})
    t = a.push("typing")
    assert t == {"conv": "dm:alice:bob", "from": "bob"}
    # typing is never stored: the inbox holds the message and the read event only
    r = a.call({"sync": {"useq": 0}})["sync_ok"]
    assert [("msg" in e) for e in r["entries"]] == [True]


def test_http_send_and_history(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    b = server.login_ws(tb)
    st, r = server.http("POST", "/v1/messages", {"to": "bob", "text": "over http", "cmid": "h1"},
                        token=ta)
    assert st == 200 and r["conv"] == "dm:alice:bob" and r["seq"] == 1
    assert b.push("msg")["text"] == "over http"
    st, r = server.http("GET", "/v1/conversations/dm:alice:bob/messages", token=ta)
    assert st == 200 and r["msgs"][0]["text"] == "over http"
