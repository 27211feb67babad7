"""Groups end to end (issue 4, "Groups and channels"; SPEC sections 2-4):
write diffusion into members' inboxes, pushes to every device, offline
catch-up by sync, leave/remove/disband, who may read and post, roles,
group_max_members, member paging, the HTTP routes and the API key."""
import pytest

from chatkit import call_err, call_ok, kinds, no_push_of, push_of, sync_inbox
from parleytest import Server


def _group(conn, members, name="Team", **kw):
    body = {"name": name, "kind": "group", "members": members}
    body.update(kw)
    return call_ok(conn, "group_create", body)


def _send(conn, group, text, cmid=None):
    return call_ok(conn, "send", {"group": group, "text": text,
                                  "cmid": cmid or text.replace(" ", "_")})


def test_group_of_three_with_an_offline_member_who_syncs_later(server):
    """A group of three, one member offline: the online member gets every
    message pushed with its own gapless useq; the offline one logs in later
    and finds, in order and without gaps, the group_joined event and then the
    messages in its inbox."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a = server.login_ws(ta)
    b = server.login_ws(tb)
    g = _group(a, ["bob", "carol"])
    assert g["owner"] == "alice" and g["members"] == 3 and g["kind"] == "group"
    assert g["role"] == "owner" and g["group"]
    gid = g["group"]
    ev = b.push("event")
    assert ev["kind"] == "group_joined" and ev["group"] == gid and ev["conv"] == "g:" + gid
    assert ev["user"] == "alice" and ev["useq"] == 1
    sent = []
    for i in range(5):
        ok = _send(a, gid, "m%d" % i)
        assert ok["conv"] == "g:" + gid and ok["seq"] == i + 1
        sent.append(ok)
    # the sender's useqs: its own group_joined is 1, then one per message
    assert [s["useq"] for s in sent] == [2, 3, 4, 5, 6]
    for i in range(5):
        m = b.push("msg")
        assert m["conv"] == "g:" + gid and m["seq"] == i + 1 and m["from"] == "alice"
        assert m["text"] == "m%d" % i and m["useq"] == i + 2
    c = server.login_ws(tc)
    assert c.login_ok["useq"] == 6
    entries = sync_inbox(c, 0, limit=2)
    assert kinds(entries) == [("group_joined", gid)] + [("msg", "m%d" % i) for i in range(5)]
    assert entries[0]["event"]["user"] == "alice"
    assert [e["msg"]["seq"] for e in entries[1:]] == [1, 2, 3, 4, 5]
    assert all(e["msg"]["useq"] == e["useq"] for e in entries[1:])
    # history of the group: the same five, newest first
    h = call_ok(c, "history", {"conv": "g:" + gid})
    assert [m["text"] for m in h["msgs"]] == ["m4", "m3", "m2", "m1", "m0"]


def test_push_reaches_every_members_devices_with_their_own_useq(server):
    """A group message reaches every device of every online member, each
    user with its own useq, the sender's other devices too, never the sending
    device."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a_web = server.login_ws(ta, device="web")
    a_ios = server.login_ws(ta, device="ios", binary=True)
    b_web = server.login_ws(tb, device="web")
    b_tcp = server.tcp()
    assert "login_ok" in b_tcp.call({"login": {"token": tb, "device": "desktop"}})
    c_web = server.login_ws(tc, device="web")
    # give bob two more inbox entries than carol so their useqs differ
    call_ok(a_web, "send", {"to": "bob", "text": "dm1", "cmid": "d1"})
    call_ok(a_web, "send", {"to": "bob", "text": "dm2", "cmid": "d2"})
    gid = _group(a_web, ["bob", "carol"])["group"]
    ok = _send(a_web, gid, "to all")
    seq = ok["seq"]
    want = {"alice": ok["useq"], "bob": None, "carol": None}
    useq_of = {}
    for name, conn in (("alice", a_ios), ("bob", b_web), ("bob", b_tcp), ("carol", c_web)):
        m = push_of(conn, "msg", conv="g:" + gid)
        assert m["seq"] == seq and m["text"] == "to all"
        assert m["from"] == "alice"
        useq_of.setdefault(name, m["useq"])
        assert useq_of[name] == m["useq"], "two devices of one user, two useqs"
    assert useq_of["alice"] == want["alice"] == 4       # dm1, dm2, group_joined, msg
    assert useq_of["bob"] == 4 and useq_of["carol"] == 2
    assert no_push_of(a_web, "msg", conv="g:" + gid)
    # the inboxes agree with the pushes
    for conn, useq in ((b_web, 4), (c_web, 2)):
        e = sync_inbox(conn, useq - 1)
        assert len(e) == 1 and e[0]["msg"]["seq"] == seq


def test_leave_stops_delivery(server):
    """A member who leaves gets group_left in its inbox, then no more pushes
    and no new inbox entries; it can no longer post or read the history of
    the private group.  The owner cannot leave."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a, b, c = server.login_ws(ta), server.login_ws(tb), server.login_ws(tc)
    gid = _group(a, ["bob", "carol"])["group"]
    b.push("event")
    _send(a, gid, "before")
    assert b.push("msg")["text"] == "before"
    assert c.push("msg")["text"] == "before"
    assert call_ok(b, "group_leave", {"group": gid}) == {}
    ev = b.push("event")
    assert ev["kind"] == "group_left" and ev["group"] == gid and ev["user"] == "bob"
    left_useq = ev["useq"]
    assert call_ok(a, "group_info", {"group": gid})["members"] == 2
    _send(a, gid, "after")
    assert c.push("msg")["text"] == "after"
    assert b.no_push("msg")
    entries = sync_inbox(b, 0)
    assert kinds(entries)[-2:] == [("msg", "before"), ("group_left", gid)]
    assert entries[-1]["useq"] == left_useq
    assert call_err(b, "send", {"group": gid, "text": "x", "cmid": "x"}) in ("forbidden", "not_found")
    assert call_err(b, "history", {"conv": "g:" + gid}) == "not_found"
    assert call_err(b, "group_leave", {"group": gid}) == "not_found"
    assert call_err(a, "group_leave", {"group": gid}) == "forbidden"


def test_remove_stops_delivery_online_and_offline(server):
    """Removing a member: its devices get group_removed (user = who removed
    it), and nothing new reaches it after: no push, no inbox entry.  A member
    removed while offline finds the removal event as the last entry of its
    inbox, after the messages from before."""
    ta, tb, tc, td = (server.signup(u) for u in ("alice", "bob", "carol", "dave"))
    a = server.login_ws(ta)
    b1 = server.login_ws(tb, device="web")
    b2 = server.login_ws(tb, device="android")
    c = server.login_ws(tc)
    gid = _group(a, ["bob", "carol", "dave"])["group"]
    for conn in (b1, b2, c):
        conn.push("event")
    _send(a, gid, "one")
    assert call_ok(a, "group_remove", {"group": gid, "user": "bob"}) == {}
    assert call_ok(a, "group_remove", {"group": gid, "user": "dave"}) == {}   # dave is offline
    for conn in (b1, b2):
        assert conn.push("msg")["text"] == "one"
        ev = conn.push("event")
        assert ev["kind"] == "group_removed" and ev["group"] == gid and ev["user"] == "alice"
    _send(a, gid, "two")
    assert c.push("msg")["text"] == "one"
    assert c.push("msg")["text"] == "two"
    assert b1.no_push("msg") and b2.no_push("msg", 0.1)
    assert kinds(sync_inbox(b1))[-2:] == [("msg", "one"), ("group_removed", gid)]
    d = server.login_ws(td)
    entries = sync_inbox(d)
    assert kinds(entries) == [("group_joined", gid), ("msg", "one"), ("group_removed", gid)]
    assert call_err(d, "history", {"conv": "g:" + gid}) == "not_found"
    assert call_err(d, "group_info", {"group": gid}) == "not_found"
    assert call_err(a, "group_remove", {"group": gid, "user": "dave"}) == "not_found"
    members = [m["user"] for m in call_ok(a, "group_members", {"group": gid})["members"]]
    assert members == ["alice", "carol"]


def test_non_members_cannot_read_post_or_see_a_private_group(server):
    """To a user outside it a private group does not exist: history, info,
    members and join answer not_found; posting fails (forbidden or
    not_found); typing is refused; the HTTP routes say 404."""
    ta, tb, te = server.signup("alice"), server.signup("bob"), server.signup("eve")
    a = server.login_ws(ta)
    e = server.login_ws(te)
    gid = _group(a, ["bob"])["group"]
    _send(a, gid, "secret")
    assert call_err(e, "history", {"conv": "g:" + gid}) == "not_found"
    assert call_err(e, "group_info", {"group": gid}) == "not_found"
    assert call_err(e, "group_members", {"group": gid}) == "not_found"
    assert call_err(e, "group_join", {"group": gid}) == "not_found"
    assert call_err(e, "send", {"group": gid, "text": "let me in", "cmid": "e1"}) in (
        "forbidden", "not_found")
    assert call_err(e, "typing", {"conv": "g:" + gid}) == "not_found"
    assert call_err(e, "read", {"conv": "g:" + gid, "seq": 1}) == "not_found"
    assert call_err(e, "group_add", {"group": gid, "users": ["eve"]}) == "not_found"
    for method, path, body in (
            ("GET", "/v1/conversations/g:%s/messages" % gid, None),
            ("GET", "/v1/groups/%s" % gid, None),
            ("GET", "/v1/groups/%s/members" % gid, None),
            ("POST", "/v1/groups/%s/join" % gid, None),
            ("DELETE", "/v1/groups/%s" % gid, None)):
        st, r = server.http(method, path, body, token=te)
        assert st == 404 and r["error"]["code"] == "not_found", (method, path, st, r)
    st, r = server.http("POST", "/v1/messages", {"group": gid, "text": "x", "cmid": "e2"}, token=te)
    assert st in (403, 404), (st, r)
    # nothing of eve's reached the group
    h = call_ok(a, "history", {"conv": "g:" + gid})
    assert [m["text"] for m in h["msgs"]] == ["secret"]
    # a group that does not exist looks the same
    assert call_err(e, "group_info", {"group": "nosuchgroup"}) == "not_found"
    assert call_err(e, "send", {"group": "nosuchgroup", "text": "x", "cmid": "e3"}) == "not_found"


def test_roles_owner_admins_and_members(server):
    """Only the owner and admins add members, and only the owner adds
    admins; admins remove plain members only; only the owner changes roles
    and disbands; nobody removes the owner or changes its role."""
    toks = {u: server.signup(u) for u in ("alice", "bob", "carol", "dave", "erin", "frank")}
    c = {u: server.login_ws(t) for u, t in toks.items()}
    gid = _group(c["alice"], ["bob", "carol", "dave"])["group"]
    assert call_ok(c["alice"], "group_role", {"group": gid, "user": "bob", "role": "admin"}) == {}
    # a plain member adds nobody
    assert call_err(c["carol"], "group_add", {"group": gid, "users": ["erin"]}) == "forbidden"
    # an admin adds members, not admins
    ok = call_ok(c["bob"], "group_add", {"group": gid, "users": ["erin"]})
    assert ok["added"] == 1 and ok["group"]["members"] == 5
    ev = c["erin"].push("event")
    assert ev["kind"] == "group_joined" and ev["user"] == "bob" and ev["group"] == gid
    assert call_err(c["bob"], "group_add", {"group": gid, "users": ["frank"], "role": "admin"}) \
        == "forbidden"
    # adding a member twice adds nothing
    assert call_ok(c["bob"], "group_add", {"group": gid, "users": ["erin"]})["added"] == 0
    # the owner adds an admin
    assert call_ok(c["alice"], "group_add", {"group": gid, "users": ["frank"],
                                            "role": "admin"})["added"] == 1
    # admins: only the owner changes roles
    assert call_err(c["bob"], "group_role", {"group": gid, "user": "carol", "role": "admin"}) \
        == "forbidden"
    assert call_err(c["carol"], "group_role", {"group": gid, "user": "carol", "role": "admin"}) \
        == "forbidden"
    assert call_err(c["alice"], "group_role", {"group": gid, "user": "alice", "role": "member"}) \
        == "forbidden"
    assert call_err(c["alice"], "group_role", {"group": gid, "user": "nobody", "role": "admin"}) \
        == "not_found"
    # an admin removes a plain member, not another admin nor the owner
    assert call_ok(c["bob"], "group_remove", {"group": gid, "user": "dave"}) == {}
    assert call_err(c["bob"], "group_remove", {"group": gid, "user": "frank"}) == "forbidden"
    assert call_err(c["bob"], "group_remove", {"group": gid, "user": "alice"}) == "forbidden"
    assert call_err(c["carol"], "group_remove", {"group": gid, "user": "erin"}) == "forbidden"
    assert call_err(c["alice"], "group_remove", {"group": gid, "user": "alice"}) in (
        "bad_request", "forbidden")
    # the owner removes an admin, demotes one, and only the owner disbands
    assert call_ok(c["alice"], "group_remove", {"group": gid, "user": "frank"}) == {}
    assert call_ok(c["alice"], "group_role", {"group": gid, "user": "bob", "role": "member"}) == {}
    assert call_err(c["bob"], "group_add", {"group": gid, "users": ["dave"]}) == "forbidden"
    assert call_err(c["bob"], "group_disband", {"group": gid}) == "forbidden"
    roles = {m["user"]: m["role"] for m in call_ok(c["carol"], "group_members",
                                                     {"group": gid})["members"]}
    assert roles == {"alice": "owner", "bob": "member", "carol": "member", "erin": "member"}
    info = call_ok(c["erin"], "group_info", {"group": gid})
    assert info["role"] == "member" and info["members"] == 4 and info["owner"] == "alice"
    assert call_ok(c["alice"], "group_disband", {"group": gid}) == {}


def test_disband(server):
    """Disbanding: every member (online now, or later by sync) gets
    group_disbanded; afterwards sends fail, the group is gone for everyone,
    and its id cannot be taken again."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a1 = server.login_ws(ta, device="web")
    a2 = server.login_ws(ta, device="ios")
    b = server.login_ws(tb)
    g = _group(a1, ["bob", "carol"], group="team-1")
    assert g["group"] == "team-1"
    b.push("event")
    _send(a1, "team-1", "last words")
    assert call_ok(a1, "group_disband", {"group": "team-1"}) == {}
    for conn in (a2, b):
        ev = push_of(conn, "event", kind="group_disbanded")
        assert ev["kind"] == "group_disbanded" and ev["group"] == "team-1" and ev["user"] == "alice"
    assert call_err(b, "send", {"group": "team-1", "text": "hello?", "cmid": "b1"}) in (
        "not_found", "forbidden")
    assert call_err(a1, "send", {"group": "team-1", "text": "hello?", "cmid": "a1"}) in (
        "not_found", "forbidden")
    assert call_err(a1, "group_info", {"group": "team-1"}) == "not_found"
    assert call_err(b, "group_info", {"group": "team-1"}) == "not_found"
    assert call_err(a1, "group_disband", {"group": "team-1"}) == "not_found"
    c = server.login_ws(tc)
    assert kinds(sync_inbox(c)) == [("group_joined", "team-1"), ("msg", "last words"),
                                    ("group_disbanded", "team-1")]
    assert call_ok(b, "my_groups", {}).get("groups", []) == []
    assert call_err(b, "group_create", {"group": "team-1", "name": "again"}) == "conflict"


def test_group_max_members():
    """group_max_members (here 3) bounds a group on create and on add with
    too_large, and leaves channels unbounded."""
    with Server("--group-max-members", "3") as server:
        toks = {u: server.signup(u) for u in ("alice", "bob", "carol", "dave", "erin")}
        a = server.login_ws(toks["alice"])
        assert call_err(a, "group_create", {"name": "big", "members": ["bob", "carol", "dave"]}) \
            == "too_large"
        gid = _group(a, ["bob", "carol"])["group"]
        assert call_err(a, "group_add", {"group": gid, "users": ["dave"]}) == "too_large"
        assert call_ok(a, "group_info", {"group": gid})["members"] == 3
        small = _group(a, ["bob"])["group"]
        assert call_err(a, "group_add", {"group": small, "users": ["dave", "erin"]}) == "too_large"
        assert call_ok(a, "group_info", {"group": small})["members"] == 2   # nothing added
        assert call_ok(a, "group_add", {"group": small, "users": ["dave"]})["added"] == 1
        key = server.default_key()
        st, r = server.http("POST", "/v1/groups/%s/members" % small, {"users": ["erin"]}, token=key)
        assert st == 413 and r["error"]["code"] == "too_large"
        ch = call_ok(a, "group_create", {"name": "open", "kind": "channel",
                                         "members": ["bob", "carol", "dave", "erin"]})
        assert ch["members"] == 5


def test_member_list_pages(server):
    """group_members pages by user id: `after` and `limit`, `more` while
    members remain; the pages together are every member once, sorted."""
    key = server.default_key()
    users = ["m%02d" % i for i in range(11)]
    for u in ["owner"] + users:
        st, _ = server.http("POST", "/v1/users", {"user": u}, token=key)
        assert st == 200
    st, token = server.http("POST", "/v1/users", {"user": "viewer", "issue_token": True}, token=key)
    assert st == 200
    tv = token["token"]
    st, g = server.http("POST", "/v1/groups", {"name": "paged", "owner": "owner",
                                              "members": users + ["viewer"]}, token=key)
    assert st == 200, g
    gid = g["group"]
    v = server.login_ws(tv)
    everyone = sorted(["owner", "viewer"] + users)
    got, after, pages = [], "", 0
    while True:
        r = call_ok(v, "group_members", {"group": gid, "after": after, "limit": 5})
        names = [m["user"] for m in r["members"]]
        assert 1 <= len(names) <= 5
        got += names
        after = names[-1]
        pages += 1
        if not r.get("more"):
            break
    assert got == everyone and pages == 3
    roles = {m["user"]: m["role"] for m in call_ok(v, "group_members", {"group": gid,
                                                                      "limit": 100})["members"]}
    assert roles["owner"] == "owner" and roles["viewer"] == "member"
    # the same over HTTP, with the user's token and with the API key
    st, r = server.http("GET", "/v1/groups/%s/members?after=m05&limit=3" % gid, token=tv)
    assert st == 200 and [m["user"] for m in r["members"]] == ["m06", "m07", "m08"] and r["more"]
    st, r = server.http("GET", "/v1/groups/%s/members?after=m09&limit=10" % gid, token=key)
    assert st == 200 and [m["user"] for m in r["members"]] == ["m10", "owner", "viewer"]
    assert not r.get("more")


def test_http_routes_with_a_token(server):
    """The HTTP routes of groups with a user's token: create, details, my
    groups, add, members, roles, remove, leave, disband."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    st, g = server.http("POST", "/v1/groups", {"name": "Team", "members": ["bob"]}, token=ta)
    assert st == 200 and g["owner"] == "alice" and g["members"] == 2 and g["kind"] == "group"
    gid = g["group"]
    st, r = server.http("GET", "/v1/groups/" + gid, token=tb)
    assert st == 200 and r["name"] == "Team" and r["role"] == "member"
    st, r = server.http("GET", "/v1/groups", token=tb)
    assert st == 200 and [x["group"] for x in r["groups"]] == [gid]
    assert r["groups"][0]["role"] == "member"
    st, r = server.http("POST", "/v1/groups/%s/members" % gid, {"users": ["carol"]}, token=tb)
    assert st == 403 and r["error"]["code"] == "forbidden"
    st, r = server.http("POST", "/v1/groups/%s/members" % gid, {"users": ["carol"]}, token=ta)
    assert st == 200 and r["added"] == 1 and r["group"]["members"] == 3
    st, r = server.http("POST", "/v1/groups/%s/members" % gid, {"users": ["nobody"]}, token=ta)
    assert st == 404 and r["error"]["code"] == "not_found"
    st, r = server.http("POST", "/v1/groups/%s/roles" % gid, {"user": "bob", "role": "admin"},
                        token=ta)
    assert st == 200 and r == {}
    st, r = server.http("POST", "/v1/groups/%s/roles" % gid, {"user": "carol", "role": "admin"},
                        token=tb)
    assert st == 403
    st, r = server.http("POST", "/v1/groups/%s/roles" % gid, {"user": "carol", "role": "king"},
                        token=ta)
    assert st == 400
    st, r = server.http("GET", "/v1/groups/%s/members" % gid, token=tc)
    assert st == 200 and [(m["user"], m["role"]) for m in r["members"]] == [
        ("alice", "owner"), ("bob", "admin"), ("carol", "member")]
    st, r = server.http("POST", "/v1/messages", {"group": gid, "text": "via http", "cmid": "h"},
                        token=tc)
    assert st == 200 and r["conv"] == "g:" + gid and r["seq"] == 1 and r["useq"]
    st, r = server.http("GET", "/v1/conversations/g:%s/messages" % gid, token=tb)
    assert st == 200 and [m["text"] for m in r["msgs"]] == ["via http"]
    st, r = server.http("DELETE", "/v1/groups/%s/members/carol" % gid, token=tb)
    assert st == 200
    st, r = server.http("GET", "/v1/groups/" + gid, token=tc)
    assert st == 404
    st, r = server.http("POST", "/v1/groups/%s/leave" % gid, token=tb)
    assert st == 200 and r == {}
    st, r = server.http("POST", "/v1/groups/%s/join" % gid, token=tb)
    assert st == 404          # a private group, and bob is no longer in it
    st, r = server.http("GET", "/v1/sync?useq=0", token=tb)
    assert st == 200
    assert [e["event"]["kind"] for e in r["entries"] if "event" in e] == ["group_joined", "group_left"]
    st, r = server.http("DELETE", "/v1/groups/" + gid, token=ta)
    assert st == 200 and r == {}
    st, r = server.http("GET", "/v1/groups/" + gid, token=ta)
    assert st == 404
    # an unknown kind, a bad id
    st, r = server.http("POST", "/v1/groups", {"name": "x", "kind": "room"}, token=ta)
    assert st == 400
    st, r = server.http("POST", "/v1/groups", {"name": "x", "group": "bad id!"}, token=ta)
    assert st == 400


def test_http_routes_with_the_api_key(server):
    """An app backend manages groups with its tenant's API key: create one
    owned by a named user (who gets group_joined like the others), read it,
    add, set roles, remove, disband; the key cannot join or leave (it is no
    user), and a call without an owner is refused."""
    key = server.default_key()
    ta, tb = server.signup("alice"), server.signup("bob")
    server.signup("carol")
    a = server.login_ws(ta)
    st, r = server.http("POST", "/v1/groups", {"name": "Backend", "members": ["bob"]}, token=key)
    assert st == 400 and r["error"]["code"] == "bad_request"
    st, g = server.http("POST", "/v1/groups", {"name": "Backend", "owner": "alice",
                                              "members": ["bob"]}, token=key)
    assert st == 200 and g["owner"] == "alice" and g["members"] == 2, g
    gid = g["group"]
    ev = a.push("event")
    assert ev["kind"] == "group_joined" and ev["group"] == gid
    assert call_ok(a, "group_info", {"group": gid})["role"] == "owner"
    st, r = server.http("GET", "/v1/groups/" + gid, token=key)
    assert st == 200 and r["name"] == "Backend" and r["members"] == 2
    st, r = server.http("POST", "/v1/groups/%s/members" % gid, {"users": ["carol"], "role": "admin"},
                        token=key)
    assert st == 200 and r["added"] == 1
    st, r = server.http("GET", "/v1/groups/%s/members" % gid, token=key)
    assert [(m["user"], m["role"]) for m in r["members"]] == [
        ("alice", "owner"), ("bob", "member"), ("carol", "admin")]
    st, r = server.http("POST", "/v1/groups/%s/roles" % gid, {"user": "bob", "role": "admin"},
                        token=key)
    assert st == 200
    st, r = server.http("DELETE", "/v1/groups/%s/members/alice" % gid, token=key)
    assert st == 403          # never the owner
    st, r = server.http("DELETE", "/v1/groups/%s/members/bob" % gid, token=key)
    assert st == 200
    st, r = server.http("POST", "/v1/groups/%s/join" % gid, token=key)
    assert st in (401, 403)
    st, r = server.http("POST", "/v1/groups/%s/leave" % gid, token=key)
    assert st in (401, 403)
    st, r = server.http("DELETE", "/v1/groups/" + gid, token=key)
    assert st == 200
    ev = a.push("event")
    assert ev["kind"] == "group_disbanded" and ev["group"] == gid
    # another tenant's key sees nothing of this tenant's groups
    admin = server.admin_token()
    st, t = server.http("POST", "/v1/admin/tenants", {"tenant": "other"}, token=admin)
    assert st == 200
    st, g2 = server.http("POST", "/v1/groups", {"name": "Mine", "owner": "alice"}, token=key)
    assert st == 200
    st, r = server.http("GET", "/v1/groups/" + g2["group"], token=t["api_key"])
    assert st == 404


def test_typing_in_a_group_reaches_the_other_online_members(server):
    """typing in a group conversation is relayed to the other members'
    online devices (with `from`), not back to the typing device, and never
    stored."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    a, b = server.login_ws(ta), server.login_ws(tb)
    c1 = server.login_ws(tc, device="web")
    c2 = server.login_ws(tc, device="ios")
    gid = _group(a, ["bob", "carol"])["group"]
    for conn in (b, c1, c2):
        conn.push("event")
    c1.send({"typing": {"conv": "g:" + gid}})
    for conn in (a, b, c2):
        assert conn.push("typing") == {"conv": "g:" + gid, "from": "carol"}
    assert c1.no_push("typing")
    assert kinds(sync_inbox(b)) == [("group_joined", gid)]


def test_member_online_before_being_added_gets_group_pushes(server):
    """A member added while online starts receiving the group's pushes and
    typing at once (its sessions follow the group from the group_joined
    event), and one removed stops receiving typing too."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a, b = server.login_ws(ta), server.login_ws(tb)
    gid = _group(a, [])["group"]
    call_ok(a, "group_add", {"group": gid, "users": ["bob"]})
    assert b.push("event")["kind"] == "group_joined"
    a.send({"typing": {"conv": "g:" + gid}})
    assert b.push("typing")["from"] == "alice"
    _send(a, gid, "welcome")
    assert b.push("msg")["text"] == "welcome"
    call_ok(a, "group_remove", {"group": gid, "user": "bob"})
    assert b.push("event")["kind"] == "group_removed"
    a.send({"typing": {"conv": "g:" + gid}})
    assert b.no_push("typing")
    assert call_err(b, "typing", {"conv": "g:" + gid}) == "not_found"


@pytest.mark.parametrize("binary", [False, True])
def test_group_frames_in_both_encodings(server, binary):
    """The group frames work in JSON and in protobuf WebSocket frames alike."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta, binary=binary)
    g = _group(a, ["bob"], name="Ünïcode ✓")
    assert g["name"] == "Ünïcode ✓" and g["members"] == 2
    info = call_ok(a, "group_info", {"group": g["group"]})
    assert info["name"] == "Ünïcode ✓" and info["role"] == "owner"
    assert info["created_at"] == g["created_at"]
    assert call_ok(a, "my_groups", {})["groups"][0]["group"] == g["group"]
