"""Channels end to end (issue 4, "Groups and channels"; SPEC sections 2-4):
public and searchable, joined by anyone of the tenant, messages stored once
and read by channel sync (read diffusion), pushes to online members, posting
restricted to admins on request, and a channel of 100,000 members bulk-added
through the API key with 1,000 of them online."""
import time

from chatkit import (MANY_CONNS, SLOW, call_err, call_ok, connect_many, create_users, kinds,
                     no_push_of, push_of, sync_channel, sync_inbox)
from parleytest import Server, http_call


def _channel(conn, gid, name, **kw):
    body = {"group": gid, "name": name, "kind": "channel"}
    body.update(kw)
    return call_ok(conn, "group_create", body)


def test_create_search_join_post(server):
    """A channel is found by id or name prefix (frame and HTTP, user token
    and API key), private groups never are; anyone joins it, over a frame or
    HTTP; a message reaches every member's online devices and the sender's
    other devices (not the sending one), carries no useq and puts nothing in
    the inboxes; non-members may read it but not post or get pushes."""
    toks = {u: server.signup(u) for u in ("alice", "bob", "carol", "dave")}
    a_web = server.login_ws(toks["alice"], device="web")
    a_ios = server.login_ws(toks["alice"], device="ios", binary=True)
    b = server.login_ws(toks["bob"])
    c = server.login_ws(toks["carol"])
    d = server.login_ws(toks["dave"])
    ch = _channel(a_web, "news", "News Daily")
    assert ch["kind"] == "channel" and ch["members"] == 1 and ch["role"] == "owner"
    assert call_ok(a_web, "group_create", {"group": "newsroom", "name": "Newsroom",
                                           "kind": "group"})["kind"] == "group"
    _channel(a_web, "weather", "Weather")
    r = call_ok(b, "channel_search", {"q": "new"})
    assert [g["group"] for g in r["groups"]] == ["news"]
    assert r["groups"][0]["name"] == "News Daily" and r["groups"][0]["kind"] == "channel"
    r = call_ok(b, "channel_search", {"q": "news d"})       # name prefix, any case
    assert [g["group"] for g in r["groups"]] == ["news"]
    r = call_ok(b, "channel_search", {"q": "WEA"})
    assert [g["group"] for g in r["groups"]] == ["weather"]
    assert call_ok(b, "channel_search", {"q": "zzz"}).get("groups", []) == []
    st, r = server.http("GET", "/v1/channels?q=ne", token=toks["bob"])
    assert st == 200 and [g["group"] for g in r["groups"]] == ["news"]
    st, r = server.http("GET", "/v1/channels?q=", token=server.default_key())
    assert st == 200 and [g["group"] for g in r["groups"]] == ["news", "weather"]
    st, r = server.http("GET", "/v1/channels?q=w&limit=1", token=toks["bob"])
    assert st == 200 and [g["group"] for g in r["groups"]] == ["weather"]

    # anyone joins; joining twice changes nothing
    j = call_ok(b, "group_join", {"group": "news"})
    assert j["role"] == "member" and j["members"] == 2 and j["group"] == "news"
    ev = push_of(b, "event", kind="group_joined")
    assert ev["group"] == "news" and ev["user"] == "bob" and ev["conv"] == "g:news"
    assert call_ok(b, "group_join", {"group": "news"})["members"] == 2
    st, r = server.http("POST", "/v1/groups/news/join", token=toks["carol"])
    assert st == 200 and r["members"] == 3 and r["role"] == "member"
    assert push_of(c, "event", kind="group_joined")["group"] == "news"

    ok = call_ok(a_web, "send", {"group": "news", "text": "extra!", "cmid": "n1"})
    assert ok["conv"] == "g:news" and ok["seq"] == 1 and "useq" not in ok
    for conn in (a_ios, b, c):
        m = push_of(conn, "msg", conv="g:news")
        assert m["seq"] == 1 and m["from"] == "alice" and m["text"] == "extra!"
        assert m["cmid"] == "n1" and "useq" not in m
    assert no_push_of(a_web, "msg") and no_push_of(d, "msg", 0.1)
    # channel messages are not in the inbox
    assert kinds(sync_inbox(b)) == [("group_joined", "news")]
    # members post too
    call_ok(c, "send", {"group": "news", "text": "reply", "cmid": "c1"})
    assert push_of(a_web, "msg", conv="g:news")["text"] == "reply"
    assert push_of(b, "msg", conv="g:news")["text"] == "reply"

    # a non-member reads the public channel, but does not post
    info = call_ok(d, "group_info", {"group": "news"})
    assert info["members"] == 3 and info["last_seq"] == 2 and not info.get("role")
    h = call_ok(d, "history", {"conv": "g:news"})
    assert [m["text"] for m in h["msgs"]] == ["reply", "extra!"]
    assert call_err(d, "send", {"group": "news", "text": "me too", "cmid": "d1"}) == "forbidden"
    st, r = server.http("GET", "/v1/conversations/g:news/messages", token=toks["dave"])
    assert st == 200 and len(r["msgs"]) == 2

    # leaving stops the pushes
    assert call_ok(b, "group_leave", {"group": "news"}) == {}
    assert push_of(b, "event", kind="group_left")["group"] == "news"
    call_ok(a_web, "send", {"group": "news", "text": "after bob", "cmid": "n2"})
    assert push_of(c, "msg", conv="g:news")["text"] == "after bob"
    assert no_push_of(b, "msg", conv="g:news")
    assert call_ok(a_web, "group_info", {"group": "news"})["members"] == 2
    # my_groups lists what one belongs to, with the last seq
    mine = call_ok(c, "my_groups", {})["groups"]
    assert [(g["group"], g["kind"], g["role"], g["last_seq"]) for g in mine] == [
        ("news", "channel", "member", 3)]


def test_offline_members_catch_up_by_channel_sync():
    """A member who was offline syncs the channel by seq: every message in
    order with no gap, in pages (`more`), from any position; its inbox holds
    only its group_joined event.  A private group passed as a channel is not
    read."""
    with Server("--msg-burst", "1000", "--msg-rate", "1000") as server:
        ta, tb = server.signup("alice"), server.signup("bob")
        a = server.login_ws(ta)
        _channel(a, "feed", "Feed")
        call_ok(a, "group_create", {"group": "private", "name": "P", "members": ["bob"]})
        call_ok(a, "send", {"group": "private", "text": "psst", "cmid": "p"})
        st, _ = server.http("POST", "/v1/groups/feed/join", token=tb)
        assert st == 200
        for i in range(250):
            call_ok(a, "send", {"group": "feed", "text": "f%d" % i, "cmid": "f%d" % i})
        b = server.login_ws(tb)
        assert [k for k, _ in kinds(sync_inbox(b))] == ["group_joined", "msg", "group_joined"]
        msgs, pages = sync_channel(b, "feed", 0, limit=100)
        assert [m["text"] for m in msgs] == ["f%d" % i for i in range(250)]
        assert pages == 3
        assert all(m["from"] == "alice" and "useq" not in m for m in msgs)
        msgs, pages = sync_channel(b, "feed", 240, limit=100)
        assert [m["seq"] for m in msgs] == list(range(241, 251)) and pages == 1
        r = call_ok(b, "sync", {"useq": 0, "limit": 100,
                                "channels": [{"group": "feed", "seq": 0}]})
        assert r["channels"][0]["more"] and len(r["channels"][0]["msgs"]) == 100
        # up to date: nothing more
        r = call_ok(b, "sync", {"useq": 3, "channels": [{"group": "feed", "seq": 250}]})
        assert r["channels"] == [{"group": "feed", "more": False}] or \
            r["channels"] == [{"group": "feed"}]
        # a private group is not synced as a channel
        r = call_ok(b, "sync", {"useq": 3, "channels": [{"group": "private", "seq": 0}]})
        assert all(c["group"] != "private" or not c.get("msgs") for c in r.get("channels", []))
        # over HTTP the inbox sync works as well
        st, r = server.http("GET", "/v1/sync?useq=0", token=tb)
        assert st == 200 and len(r["entries"]) == 3


def test_admins_post_only():
    """A channel with admins_post_only refuses plain members' messages
    (forbidden, nothing stored) and takes the owner's and admins'."""
    with Server() as server:
        toks = {u: server.signup(u) for u in ("alice", "bob", "carol")}
        a = server.login_ws(toks["alice"])
        b = server.login_ws(toks["bob"])
        c = server.login_ws(toks["carol"])
        ch = _channel(a, "announce", "Announcements", admins_post_only=True)
        assert ch["admins_post_only"] is True
        for conn in (b, c):
            call_ok(conn, "group_join", {"group": "announce"})
        assert call_err(b, "send", {"group": "announce", "text": "hi", "cmid": "b1"}) == "forbidden"
        st, r = server.http("POST", "/v1/messages", {"group": "announce", "text": "hi", "cmid": "b2"},
                            token=toks["bob"])
        assert st == 403 and r["error"]["code"] == "forbidden"
        call_ok(a, "group_role", {"group": "announce", "user": "carol", "role": "admin"})
        assert call_ok(c, "send", {"group": "announce", "text": "from an admin",
                                   "cmid": "c1"})["seq"] == 1
        assert call_ok(a, "send", {"group": "announce", "text": "from the owner",
                                   "cmid": "a1"})["seq"] == 2
        assert push_of(b, "msg", conv="g:announce")["text"] == "from an admin"
        assert push_of(b, "msg", conv="g:announce")["text"] == "from the owner"
        h = call_ok(b, "history", {"conv": "g:announce"})
        assert [m["text"] for m in h["msgs"]] == ["from the owner", "from an admin"]
        call_ok(a, "group_role", {"group": "announce", "user": "carol", "role": "member"})
        assert call_err(c, "send", {"group": "announce", "text": "again", "cmid": "c2"}) == \
            "forbidden"
        # an open channel takes anyone who joined
        _channel(a, "open", "Open")
        call_ok(b, "group_join", {"group": "open"})
        assert call_ok(b, "send", {"group": "open", "text": "hi", "cmid": "b3"})["seq"] == 1


def test_remove_and_disband_stop_channel_pushes(server):
    """A member removed from a channel (by an admin, or by the API key)
    stops getting its pushes at once, on every device; a bulk add naming a
    user that does not exist adds nobody; disbanding a channel tells the
    online members and ends posting."""
    key = server.default_key()
    toks = {u: server.signup(u) for u in ("alice", "bob", "carol", "dave")}
    a = server.login_ws(toks["alice"])
    b1 = server.login_ws(toks["bob"], device="web")
    b2 = server.login_ws(toks["bob"], device="ios")
    c = server.login_ws(toks["carol"])
    _channel(a, "room", "Room")
    st, r = server.http("POST", "/v1/groups/room/members", {"users": ["bob", "ghost"]}, token=key)
    assert st == 404 and r["error"]["code"] == "not_found"
    assert call_ok(a, "group_info", {"group": "room"})["members"] == 1
    st, r = server.http("POST", "/v1/groups/room/members", {"users": ["bob", "carol", "dave"]},
                        token=key)
    assert st == 200 and r["added"] == 3
    for conn in (b1, b2, c):
        assert push_of(conn, "event", kind="group_joined")["group"] == "room"
    call_ok(a, "send", {"group": "room", "text": "one", "cmid": "1"})
    for conn in (b1, b2, c):
        assert push_of(conn, "msg", conv="g:room")["text"] == "one"
    call_ok(a, "group_role", {"group": "room", "user": "carol", "role": "admin"})
    assert call_ok(c, "group_remove", {"group": "room", "user": "bob"}) == {}
    for conn in (b1, b2):
        ev = push_of(conn, "event", kind="group_removed")
        assert ev["group"] == "room" and ev["user"] == "carol"
    call_ok(a, "send", {"group": "room", "text": "two", "cmid": "2"})
    assert push_of(c, "msg", conv="g:room")["text"] == "two"
    assert no_push_of(b1, "msg", conv="g:room") and no_push_of(b2, "msg", 0.1, conv="g:room")
    assert call_err(b1, "send", {"group": "room", "text": "x", "cmid": "b"}) == "forbidden"
    st, r = server.http("DELETE", "/v1/groups/room/members/carol", token=key)
    assert st == 200
    assert push_of(c, "event", kind="group_removed")["group"] == "room"
    call_ok(a, "send", {"group": "room", "text": "three", "cmid": "3"})
    assert no_push_of(c, "msg", conv="g:room")
    d = server.login_ws(toks["dave"])
    msgs, _ = sync_channel(d, "room", 0)
    assert [m["text"] for m in msgs] == ["one", "two", "three"]
    assert call_ok(a, "group_disband", {"group": "room"}) == {}
    assert push_of(d, "event", kind="group_disbanded")["group"] == "room"
    assert call_err(a, "send", {"group": "room", "text": "gone?", "cmid": "4"}) == "not_found"
    assert call_ok(d, "channel_search", {"q": "room"}).get("groups", []) == []
    assert call_err(d, "group_join", {"group": "room"}) == "not_found"
    assert call_err(d, "history", {"conv": "g:room"}) == "not_found"

def test_channel_of_100000_members_with_1000_online():
    """The big one: 100,000 users are created and added to a channel in one
    API-key call; 1,000 members are online (half connected before the bulk
    add, following the channel from their group_joined event, half after it,
    following it from login).  One message reaches every online member;
    offline members get it by channel sync.  The fan-out time is printed,
    never asserted."""
    n, online = 100000, 1000
    with Server(*MANY_CONNS) as server:
        key = server.default_key()
        ids = ["c%05d" % i for i in range(n)]
        owner, on, off = ids[0], ids[1:1 + online], ids[1 + online:1 + online + 20]
        t0 = time.time()
        toks = create_users(server, [owner] + on + off, tokens=True, conns=64)
        create_users(server, ids[1 + online + 20:], conns=64, window=16)
        t_users = time.time() - t0
        st, g = server.http("POST", "/v1/groups", {"group": "big", "name": "Big", "kind": "channel",
                                                  "owner": owner}, token=key)
        assert st == 200, g
        early = connect_many(server, [toks[u] for u in on[:online // 2]])
        t0 = time.time()
        st, r = http_call(server.http_port, "POST", "/v1/groups/big/members", {"users": ids[1:]},
                          key, timeout=120)
        t_add = time.time() - t0
        assert st == 200, r
        assert r["added"] == n - 1 and r["group"]["members"] == n
        for conn in early:
            ev = push_of(conn, "event", 30, kind="group_joined")
            assert ev["group"] == "big"
        late = connect_many(server, [toks[u] for u in on[online // 2:]],
                            then={"sync": {"channels": [{"group": "big", "seq": 0}]}})
        for conn in late:
            assert conn.login_ok["useq"] == 1     # the group_joined event
            assert not conn.then_ok["channels"][0].get("msgs")
        sender = server.login_ws(toks[owner])
        call_ok(sender, "sync", {"useq": 0})
        conns = early + late
        t0 = time.time()
        ok = call_ok(sender, "send", {"group": "big", "text": "to 100,000", "cmid": "big1"}, 30)
        t_ack = time.time() - t0
        for conn in conns:
            m = push_of(conn, "msg", 30, conv="g:big")
            assert m["seq"] == ok["seq"] == 1 and m["text"] == "to 100,000"
            assert m["from"] == owner
        t_fan = time.time() - t0
        print("\nchannel of %d members, %d online%s: users created in %.2fs, bulk add in %.2fs, "
              "send_ok after %.1f ms, every online member had the push after %.1f ms"
              % (n, online, " (sanitizer build)" if SLOW else "", t_users, t_add,
                 t_ack * 1000, t_fan * 1000))
        # offline members catch up by channel sync
        for u in off:
            c = server.login_ws(toks[u])
            assert c.login_ok["useq"] == 1
            msgs, _ = sync_channel(c, "big", 0)
            assert [(m["seq"], m["text"]) for m in msgs] == [(1, "to 100,000")]
            c.close()
        st, info = server.http("GET", "/v1/groups/big", token=key)
        assert st == 200 and info["members"] == n and info["last_seq"] == 1
        st, page = server.http("GET", "/v1/groups/big/members?after=c99990&limit=100", token=key)
        assert [m["user"] for m in page["members"]] == ["c%05d" % i for i in range(99991, 100000)]
        for conn in conns + [sender]:
            conn.close()

