"""The home screen end to end (issue 4, "People: Home"; SPEC sections 2-4):
GET /v1/home and the `home` frame list a user's dms, groups and channels,
most recent activity first, each with its last message and an unread count
computed from the user's read position; and stay quick for a user in 1,000
conversations."""
import time

from chatkit import MANY_CONNS, SLOW, bulk_ok, call_ok, create_users
from parleytest import Server


def _home(server, token):
    st, r = server.http("GET", "/v1/home", token=token)
    assert st == 200, r
    return r.get("convs", [])


def _tick():
    """Activity timestamps are in ms: keep events apart."""
    time.sleep(0.01)


def test_order_and_unread_counts(server):
    """Unread counts come from read positions (one's own messages never
    count); reading moves them; any new activity moves its conversation to
    the top; groups and channels appear with their name and role, a
    channel joined without messages by its join time; the frame and the
    HTTP route agree."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a, b, c = server.login_ws(ta), server.login_ws(tb), server.login_ws(tc)
    assert _home(server, tb) == []
    for i in range(3):
        call_ok(a, "send", {"to": "bob", "text": "hi %d" % i, "cmid": "h%d" % i})
    hb = _home(server, tb)
    assert len(hb) == 1
    d = hb[0]
    assert d["conv"] == "dm:alice:bob" and d["kind"] == "dm" and d["peer"] == "alice"
    assert d["unread"] == 3 and d.get("read_seq", 0) == 0
    assert d["last"]["seq"] == 3 and d["last"]["text"] == "hi 2" and d["last"]["from"] == "alice"
    assert d["active_ts"] == d["last"]["ts"]
    ha = _home(server, ta)
    assert len(ha) == 1 and ha[0]["peer"] == "bob" and ha[0]["unread"] == 0
    assert ha[0]["read_seq"] == 3
    assert call_ok(b, "read", {"conv": "dm:alice:bob", "seq": 2}) == {}
    d = _home(server, tb)[0]
    assert d["unread"] == 1 and d["read_seq"] == 2
    # a read position never goes down
    call_ok(b, "read", {"conv": "dm:alice:bob", "seq": 1})
    assert _home(server, tb)[0]["unread"] == 1

    # a group with a message, then a channel joined without messages
    _tick()
    g = call_ok(c, "group_create", {"name": "Trio", "members": ["alice", "bob"]})["group"]
    call_ok(c, "send", {"group": g, "text": "group hello", "cmid": "g1"})
    _tick()
    call_ok(a, "group_create", {"group": "chan", "name": "Chan", "kind": "channel"})
    call_ok(b, "group_join", {"group": "chan"})
    hb = _home(server, tb)
    assert [x["conv"] for x in hb] == ["g:chan", "g:" + g, "dm:alice:bob"]
    ch, grp = hb[0], hb[1]
    assert ch["kind"] == "channel" and ch["name"] == "Chan" and ch["role"] == "member"
    assert ch["peer"] == "chan" and "last" not in ch and ch.get("unread", 0) == 0
    assert grp["kind"] == "group" and grp["name"] == "Trio" and grp["role"] == "member"
    assert grp["unread"] == 1 and grp["last"]["text"] == "group hello" and grp["peer"] == g
    hc = _home(server, tc)
    assert [(x["conv"], x["role"], x["unread"]) for x in hc] == [("g:" + g, "owner", 0)]

    # new activity moves a conversation to the top
    _tick()
    call_ok(a, "send", {"to": "bob", "text": "again", "cmid": "h3"})
    hb = _home(server, tb)
    assert [x["conv"] for x in hb] == ["dm:alice:bob", "g:chan", "g:" + g]
    assert hb[0]["unread"] == 2 and hb[0]["last"]["text"] == "again"
    _tick()
    call_ok(a, "send", {"group": "chan", "text": "news", "cmid": "c1"})
    call_ok(a, "send", {"group": "chan", "text": "more news", "cmid": "c2"})
    hb = _home(server, tb)
    assert [x["conv"] for x in hb] == ["g:chan", "dm:alice:bob", "g:" + g]
    assert hb[0]["unread"] == 2 and hb[0]["last"]["seq"] == 2
    # reading a group and a channel
    call_ok(b, "read", {"conv": "g:chan", "seq": 1})
    call_ok(b, "read", {"conv": "g:" + g, "seq": 1})
    call_ok(b, "read", {"conv": "dm:alice:bob", "seq": 4})
    unread = {x["conv"]: (x["unread"], x["read_seq"]) for x in _home(server, tb)}
    assert unread == {"g:chan": (1, 1), "g:" + g: (0, 1), "dm:alice:bob": (0, 4)}
    # bob's own message: no unread for him, the top of both homes
    _tick()
    call_ok(b, "send", {"to": "alice", "text": "read it all", "cmid": "b1"})
    hb = _home(server, tb)
    assert hb[0]["conv"] == "dm:alice:bob" and hb[0]["unread"] == 0 and hb[0]["read_seq"] == 5
    ha = _home(server, ta)
    assert ha[0]["conv"] == "dm:alice:bob" and ha[0]["unread"] == 1

    # the frame says the same as the route; limit pages
    f = call_ok(b, "home", {})
    assert f["convs"] == hb and not f.get("more")
    f = call_ok(b, "home", {"limit": 2})
    assert f["convs"] == hb[:2] and f["more"]
    st, r = server.http("GET", "/v1/home?limit=1", token=tb)
    assert st == 200 and r["convs"] == hb[:1] and r["more"]

    # leaving a group takes it off the home screen
    call_ok(b, "group_leave", {"group": g})
    assert [x["conv"] for x in _home(server, tb)] == ["dm:alice:bob", "g:chan"]
    st, r = server.http("GET", "/v1/home", token=server.default_key())
    assert st in (401, 403)


def test_home_of_a_user_in_1000_conversations():
    """One user receives a message from each of 1,000 others: its home
    lists the 1,000 dms, newest first, each unread 1; one more message moves
    its conversation to the top.  The time to build the home is printed,
    never asserted."""
    n = 1000
    with Server(*MANY_CONNS) as server:
        senders = ["s%04d" % i for i in range(n)]
        toks = create_users(server, ["hub"] + senders, tokens=True)
        res = bulk_ok(server.http_port, [
            ("POST", "/v1/messages", {"to": "hub", "text": "hello from " + s, "cmid": "m"}, toks[s])
            for s in senders], conns=16, window=8)
        ts_of = {s: r["ts"] for s, r in zip(senders, res)}
        times = []
        for _ in range(5):
            t0 = time.time()
            convs = _home(server, toks["hub"])
            times.append(time.time() - t0)
        assert len(convs) == n
        assert sorted(x["peer"] for x in convs) == senders
        assert all(x["unread"] == 1 and x["kind"] == "dm" for x in convs)
        assert all(x["last"]["text"] == "hello from " + x["peer"] for x in convs)
        assert all(x["active_ts"] == ts_of[x["peer"]] for x in convs)
        stamps = [x["active_ts"] for x in convs]
        assert stamps == sorted(stamps, reverse=True)
        hub = server.login_ws(toks["hub"])
        t0 = time.time()
        f = call_ok(hub, "home", {}, timeout=30)
        t_frame = time.time() - t0
        assert len(f["convs"]) == n and not f.get("more")
        assert [x["conv"] for x in f["convs"]] == [x["conv"] for x in convs]
        # the oldest conversation comes to the top with a new message
        oldest = convs[-1]["peer"]
        time.sleep(0.01)
        st, _ = server.http("POST", "/v1/messages", {"to": "hub", "text": "me again", "cmid": "m2"},
                            token=toks[oldest])
        assert st == 200
        convs = _home(server, toks["hub"])
        assert convs[0]["peer"] == oldest and convs[0]["unread"] == 2 and len(convs) == n
        print("\nhome of a user in %d conversations%s: GET /v1/home best %.1f ms, median %.1f ms; "
              "home frame %.1f ms"
              % (n, " (sanitizer build)" if SLOW else "", min(times) * 1000,
                 sorted(times)[len(times) // 2] * 1000, t_frame * 1000))


def test_joining_member_has_no_unread_backlog(server):
    """A member who joins a channel (or is added to a group) after messages
    were posted starts with them read: its home shows 0 unread for that
    conversation, and counts only what comes after."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a, b = server.login_ws(ta), server.login_ws(tb)
    call_ok(a, "group_create", {"group": "news", "name": "News", "kind": "channel"})
    g = call_ok(a, "group_create", {"name": "Team"})["group"]
    for i in range(5):
        call_ok(a, "send", {"group": "news", "text": "n%d" % i, "cmid": "n%d" % i})
        call_ok(a, "send", {"group": g, "text": "t%d" % i, "cmid": "t%d" % i})
    call_ok(b, "group_join", {"group": "news"})
    call_ok(a, "group_add", {"group": g, "users": ["bob"]})
    hb = {x["conv"]: x for x in _home(server, tb)}
    assert hb["g:news"]["unread"] == 0 and hb["g:news"]["read_seq"] == 5
    assert hb["g:" + g]["unread"] == 0 and hb["g:" + g]["read_seq"] == 5
    call_ok(a, "send", {"group": "news", "text": "fresh", "cmid": "n9"})
    call_ok(a, "send", {"group": g, "text": "fresh", "cmid": "t9"})
    hb = {x["conv"]: x for x in _home(server, tb)}
    assert hb["g:news"]["unread"] == 1 and hb["g:" + g]["unread"] == 1
