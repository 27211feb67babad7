"""Friends and presence end to end (issue 4, "People"; SPEC sections 2-4):
friend requests, acceptance, rejection, removal and the list, over frames
and HTTP with inbox events to both sides; a tenant that requires friendship
for 1:1 messages; presence states, pushes on first connect, last disconnect
and kick, automatic subscription to friends, GET /v1/presence and the bound
on subscriptions."""
import time

from chatkit import call_err, call_ok, create_users, kinds, no_push_of, push_of, sync_inbox
from parleytest import Server, http_call


def _friends(server, ta, tb, b_name, a_name):
    st, r = server.http("POST", "/v1/friends/requests", {"user": b_name}, token=ta)
    assert st == 200 and r["state"] == "requested", r
    st, r = server.http("POST", "/v1/friends/requests/%s/accept" % a_name, token=tb)
    assert st == 200 and r["state"] == "friends", r


def test_request_and_accept_over_frames(server):
    """request -> the asked user's devices get friend_request; accept ->
    both sides get friend_added; the lists show requested/pending, then
    friends with `since` and the friend's online state; the inboxes keep
    the events."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    b1 = server.login_ws(tb, device="web")
    b2 = server.login_ws(tb, device="ios")
    assert call_ok(a, "friend", {"user": "bob", "action": "request"}) == {
        "user": "bob", "state": "requested"}
    for conn in (b1, b2):
        ev = push_of(conn, "event", kind="friend_request")
        assert ev["user"] == "alice" and ev["useq"] == 1
    assert no_push_of(a, "event", 0.2)
    assert call_ok(a, "friend_list", {})["friends"][0]["state"] == "requested"
    lb = call_ok(b1, "friend_list", {})["friends"]
    assert [(f["user"], f["state"]) for f in lb] == [("alice", "pending")]
    t0 = int(time.time() * 1000)
    assert call_ok(b1, "friend", {"user": "alice", "action": "accept"}) == {
        "user": "alice", "state": "friends"}
    ev = push_of(a, "event", kind="friend_added")
    assert ev["user"] == "bob" and ev["useq"] == 1
    for conn in (b1, b2):
        ev = push_of(conn, "event", kind="friend_added")
        assert ev["user"] == "alice" and ev["useq"] == 2
    la = call_ok(a, "friend_list", {})["friends"]
    assert len(la) == 1 and la[0]["user"] == "bob" and la[0]["state"] == "friends"
    assert la[0]["online"] is True and la[0]["since"] >= t0 - 5000
    lb = call_ok(b2, "friend_list", {})["friends"]
    assert [(f["user"], f["state"], f["online"]) for f in lb] == [("alice", "friends", True)]
    assert kinds(sync_inbox(a)) == [("friend_added", "bob")]
    assert kinds(sync_inbox(b2)) == [("friend_request", "alice"), ("friend_added", "alice")]


def test_http_reject_delete_and_errors(server):
    """The HTTP routes: request, reject (friend_rejected to the asker),
    accept, delete (friend_removed to both), withdrawal of one's own
    request; and the errors: oneself, unknown users, no such request,
    already friends."""
    ta, tb = server.signup("alice"), server.signup("bob")
    st, r = server.http("POST", "/v1/friends/requests", {"user": "bob"}, token=ta)
    assert st == 200 and r == {"user": "bob", "state": "requested"}
    st, r = server.http("POST", "/v1/friends/requests/alice/reject", token=tb)
    assert st == 200 and r["user"] == "alice"
    for t in (ta, tb):
        st, r = server.http("GET", "/v1/friends", token=t)
        assert st == 200 and r.get("friends", []) == []
    st, r = server.http("GET", "/v1/sync?useq=0", token=ta)
    assert [(e["event"]["kind"], e["event"]["user"]) for e in r["entries"]] == [
        ("friend_rejected", "bob")]
    st, r = server.http("POST", "/v1/friends/requests/alice/accept", token=tb)
    assert st == 404 and r["error"]["code"] == "not_found"
    st, r = server.http("POST", "/v1/friends/requests/alice/reject", token=tb)
    assert st == 404
    # ask again, accept, delete
    _friends(server, ta, tb, "bob", "alice")
    st, r = server.http("GET", "/v1/friends", token=tb)
    assert [(f["user"], f["state"]) for f in r["friends"]] == [("alice", "friends")]
    st, r = server.http("POST", "/v1/friends/requests", {"user": "bob"}, token=ta)
    assert st == 409 and r["error"]["code"] == "conflict"
    st, r = server.http("DELETE", "/v1/friends/alice", token=tb)
    assert st == 200 and r["user"] == "alice"
    for t, other in ((ta, "bob"), (tb, "alice")):
        st, r = server.http("GET", "/v1/friends", token=t)
        assert r.get("friends", []) == []
        st, r = server.http("GET", "/v1/sync?useq=0", token=t)
        last = r["entries"][-1]["event"]
        assert last["kind"] == "friend_removed" and last["user"] == other
    st, r = server.http("DELETE", "/v1/friends/alice", token=tb)
    assert st == 404
    # withdraw one's own pending request
    st, r = server.http("POST", "/v1/friends/requests", {"user": "bob"}, token=ta)
    assert st == 200
    st, r = server.http("DELETE", "/v1/friends/bob", token=ta)
    assert st == 200
    st, r = server.http("POST", "/v1/friends/requests/alice/accept", token=tb)
    assert st == 404
    # errors
    st, r = server.http("POST", "/v1/friends/requests", {"user": "alice"}, token=ta)
    assert st == 400 and r["error"]["code"] == "bad_request"
    st, r = server.http("POST", "/v1/friends/requests", {"user": "nobody"}, token=ta)
    assert st == 404
    st, r = server.http("POST", "/v1/friends/requests", {"user": "bad id!"}, token=ta)
    assert st in (400, 404)
    st, r = server.http("GET", "/v1/friends", token=server.default_key())
    assert st in (401, 403)


def test_asking_someone_who_asked_you_accepts(server):
    """If bob asks alice while alice's request to bob is pending, they are
    friends: both get friend_added, no second request event."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a, b = server.login_ws(ta), server.login_ws(tb)
    call_ok(a, "friend", {"user": "bob", "action": "request"})
    push_of(b, "event", kind="friend_request")
    assert call_ok(b, "friend", {"user": "alice", "action": "request"})["state"] == "friends"
    assert push_of(a, "event", kind="friend_added")["user"] == "bob"
    assert push_of(b, "event", kind="friend_added")["user"] == "alice"
    assert no_push_of(a, "event", 0.3, kind="friend_request")
    assert [(f["user"], f["state"]) for f in call_ok(a, "friend_list", {})["friends"]] == [
        ("bob", "friends")]


def test_friends_only_dm_tenant(server):
    """A tenant with friends_only_dm refuses 1:1 messages between users who
    are not friends (forbidden, nothing stored, no push) and allows them
    between friends, until the friendship ends; the default tenant does
    not care."""
    admin = server.admin_token()
    st, r = server.http("POST", "/v1/admin/tenants", {
        "tenant": "closed", "settings": {"friends_only_dm": True, "open_signup": True}}, token=admin)
    assert st == 200, r
    assert r["settings"]["friends_only_dm"] is True
    ta, tb, tc = (server.signup(u, tenant="closed") for u in ("alice", "bob", "carol"))
    a, b = server.login_ws(ta), server.login_ws(tb)
    assert call_err(a, "send", {"to": "bob", "text": "hi stranger", "cmid": "s1"}) == "forbidden"
    st, r = server.http("POST", "/v1/messages", {"to": "bob", "text": "hi", "cmid": "s2"}, token=ta)
    assert st == 403 and r["error"]["code"] == "forbidden"
    assert no_push_of(b, "msg", 0.3)
    assert sync_inbox(b) == []
    # a pending request is not friendship yet
    call_ok(a, "friend", {"user": "bob", "action": "request"})
    assert call_err(a, "send", {"to": "bob", "text": "please", "cmid": "s3"}) == "forbidden"
    call_ok(b, "friend", {"user": "alice", "action": "accept"})
    ok = call_ok(a, "send", {"to": "bob", "text": "hi friend", "cmid": "s4"})
    assert ok["conv"] == "dm:alice:bob" and ok["seq"] == 1
    assert push_of(b, "msg")["text"] == "hi friend"
    assert call_ok(b, "send", {"to": "alice", "text": "hi back", "cmid": "s5"})["seq"] == 2
    assert call_err(a, "send", {"to": "carol", "text": "hi", "cmid": "s6"}) == "forbidden"
    call_ok(b, "friend", {"user": "alice", "action": "delete"})
    assert call_err(a, "send", {"to": "bob", "text": "still there?", "cmid": "s7"}) == "forbidden"
    # the default tenant lets strangers talk
    tx, ty = server.signup("xavier"), server.signup("yvonne")
    st, r = server.http("POST", "/v1/messages", {"to": "yvonne", "text": "hello", "cmid": "d1"},
                        token=tx)
    assert st == 200
    # friendships are per tenant: the default tenant's alice is nobody's friend
    tda = server.signup("alice")
    st, r = server.http("POST", "/v1/friends/requests", {"user": "carol"}, token=tda)
    assert st == 404           # no carol in the default tenant


def test_presence_sub_returns_current_states(server):
    """presence_sub answers every user's current state: online, or offline
    with last_seen (0 or absent for one never seen since start)."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    server.signup("dave")
    b = server.login_ws(tb)
    c = server.login_ws(tc)
    before = int(time.time() * 1000)
    c.close()
    a = server.login_ws(ta)
    deadline = time.time() + 5
    while True:
        r = call_ok(a, "presence_sub", {"users": ["bob", "carol", "dave"]})
        st = {p["user"]: p for p in r["presences"]}
        if not st["carol"]["online"] or time.time() > deadline:
            break
        time.sleep(0.05)
    assert [p["user"] for p in r["presences"]] == ["bob", "carol", "dave"]
    assert st["bob"]["online"] is True and "last_seen" not in st["bob"]
    assert st["carol"]["online"] is False
    assert before - 1000 <= st["carol"]["last_seen"] <= int(time.time() * 1000) + 1000
    assert st["dave"]["online"] is False and st["dave"].get("last_seen", 0) == 0
    assert call_err(a, "presence_sub", {"users": ["bad id!"]}) == "bad_request"
    b.close()


def _wait_offline(conn, user):
    p = push_of(conn, "presence", 10, user=user)
    assert p["online"] is False and p["last_seen"] > 0
    return p


def test_presence_pushes_on_first_connect_and_last_disconnect(server):
    """A subscriber gets `presence` online when the user's first device
    connects, nothing while other devices come and go, and offline with
    last_seen when the last one leaves (also over TCP)."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    r = call_ok(a, "presence_sub", {"users": ["bob"]})
    assert r["presences"][0]["online"] is False
    b_web = server.login_ws(tb, device="web")
    p = push_of(a, "presence", user="bob")
    assert p["online"] is True
    b_ios = server.login_ws(tb, device="ios")
    b_tcp = server.tcp()
    assert "login_ok" in b_tcp.call({"login": {"token": tb, "device": "desktop"}})
    assert no_push_of(a, "presence", 0.3)
    b_web.close()
    b_ios.close()
    assert no_push_of(a, "presence", 0.5)
    t0 = int(time.time() * 1000)
    b_tcp.close()
    p = _wait_offline(a, "bob")
    assert t0 - 1000 <= p["last_seen"] <= int(time.time() * 1000) + 1000
    # and back
    b2 = server.login_ws(tb, device="android")
    assert push_of(a, "presence", user="bob")["online"] is True
    # a logout is going away too
    assert "logout_ok" in b2.call({"logout": {}})
    _wait_offline(a, "bob")
    # the subscriber's own other connection has its own subscriptions
    a2 = server.login_ws(ta, device="ios")
    st, r = server.http("POST", "/v1/login", {"user": "bob", "password": "password1"})
    assert st == 200
    server.login_ws(r["token"])
    assert push_of(a, "presence", user="bob")["online"] is True
    assert no_push_of(a2, "presence", 0.3)


def test_presence_on_kick(server):
    """A new login on the same device kind kicks the older session: the
    kicked connection is closed (4001), and since the new login keeps the
    user online, subscribers get no offline push, whichever workers the two
    connections landed on.  When the survivor leaves, offline comes."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    call_ok(a, "presence_sub", {"users": ["bob"]})
    old = server.login_ws(tb, device="web")
    assert push_of(a, "presence", user="bob")["online"] is True
    spare = []
    for i in range(6):
        # Connections are dealt to the two workers in turn: an extra one
        # every other round puts the old and the new session on the same
        # worker, the other rounds on different ones.
        if i % 2:
            spare.append(server.ws())
        new = server.login_ws(tb, device="web")
        assert push_of(old, "kicked")["reason"]
        assert old.wait_close() == 4001
        assert no_push_of(a, "presence", 0.3), "an offline/online blip on a kick"
        old = new
    old.close()
    _wait_offline(a, "bob")


def test_presence_on_kick_of_the_last_device_over_tcp(server):
    """A kick between transports (TCP session kicked by a TCP login) keeps
    the user online as well."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    call_ok(a, "presence_sub", {"users": ["bob"]})
    t1 = server.tcp()
    assert "login_ok" in t1.call({"login": {"token": tb, "device": "cli"}})
    assert push_of(a, "presence", user="bob")["online"] is True
    spare = []
    for i in range(4):
        if i % 2:
            spare.append(server.tcp())      # the same worker every other round
        t2 = server.tcp()
        assert "login_ok" in t2.call({"login": {"token": tb, "device": "cli"}})
        assert t1.wait_close()
        assert no_push_of(a, "presence", 0.3)
        t1 = t2
    t1.close()
    _wait_offline(a, "bob")


def test_friends_are_followed_at_login_and_when_befriended(server):
    """Friends' presence arrives without presence_sub: for friends made
    before the login (followed at login) and for a friendship made while
    both are online; after the friendship ends, no more pushes."""
    ta, tb, tc = server.signup("alice"), server.signup("bob"), server.signup("carol")
    _friends(server, ta, tb, "bob", "alice")
    a = server.login_ws(ta)
    call_ok(a, "sync", {"useq": 0})          # what a client does after login
    b = server.login_ws(tb)
    assert push_of(a, "presence", user="bob")["online"] is True
    b.close()
    _wait_offline(a, "bob")
    # befriended while both are online
    c = server.login_ws(tc)
    assert no_push_of(a, "presence", 0.2, user="carol")
    call_ok(c, "friend", {"user": "alice", "action": "request"})
    push_of(a, "event", kind="friend_request")
    call_ok(a, "friend", {"user": "carol", "action": "accept"})
    push_of(c, "event", kind="friend_added")
    c2 = server.login_ws(tc, device="ios")
    assert no_push_of(a, "presence", 0.2)     # carol was online already
    c.close()
    c2.close()
    _wait_offline(a, "carol")
    # carol follows alice as well: alice's second device going away is no change,
    # alice's last one is
    c3 = server.login_ws(tc)
    call_ok(c3, "sync", {"useq": 0})
    assert push_of(a, "presence", user="carol")["online"] is True
    a2 = server.login_ws(ta, device="ios")
    a2.close()
    assert no_push_of(c3, "presence", 0.3)
    # no longer friends: no more pushes
    call_ok(a, "friend", {"user": "carol", "action": "delete"})
    push_of(a, "event", kind="friend_removed")
    push_of(c3, "event", kind="friend_removed")
    c3.close()
    assert no_push_of(a, "presence", 0.5, user="carol")


def test_friend_list_shows_presence(server):
    """The friend list carries each friend's online state and last_seen."""
    ta, tb = server.signup("alice"), server.signup("bob")
    _friends(server, ta, tb, "bob", "alice")
    b = server.login_ws(tb)
    st, r = server.http("GET", "/v1/friends", token=ta)
    assert r["friends"][0]["online"] is True
    b.close()
    deadline = time.time() + 5
    while time.time() < deadline:
        st, r = server.http("GET", "/v1/friends", token=ta)
        if not r["friends"][0]["online"]:
            break
        time.sleep(0.05)
    assert r["friends"][0]["online"] is False and r["friends"][0]["last_seen"] > 0


def test_get_presence_over_http(server):
    """GET /v1/presence?users=a,b answers the states, with a user's token
    or the tenant's API key, for lists as long as the bound (500)."""
    key = server.default_key()
    ta, tb = server.signup("alice"), server.signup("bob")
    b = server.login_ws(tb)
    st, r = server.http("GET", "/v1/presence?users=bob,alice,nobody", token=ta)
    assert st == 200
    assert [(p["user"], p["online"]) for p in r["presences"]] == [
        ("bob", True), ("alice", False), ("nobody", False)]
    st, r = server.http("GET", "/v1/presence?users=bob", token=key)
    assert st == 200 and r["presences"][0]["online"] is True
    st, r = server.http("GET", "/v1/presence?users=bob")
    assert st == 401
    names = ["user%03d" % i for i in range(500)]
    st, r = server.http("GET", "/v1/presence?users=" + ",".join(names), token=ta)
    assert st == 200, r
    assert [p["user"] for p in r["presences"]] == names
    st, r = server.http("GET", "/v1/presence?users=" + ",".join(names + ["one_more"]), token=ta)
    assert st == 413 and r["error"]["code"] == "too_large"
    b.close()


def test_presence_subscriptions_are_bounded(server):
    """A connection follows at most 500 users through presence_sub:
    past that, too_large (and the subscriptions it had stay)."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    names = ["u%03d" % i for i in range(499)]
    assert len(call_ok(a, "presence_sub", {"users": names})["presences"]) == 499
    assert call_err(a, "presence_sub", {"users": ["bob", "x1"]}) == "too_large"
    assert len(call_ok(a, "presence_sub", {"users": ["bob"]})["presences"]) == 1
    assert call_err(a, "presence_sub", {"users": ["x2"]}) == "too_large"
    # subscribing again to someone already followed is no new subscription
    assert len(call_ok(a, "presence_sub", {"users": ["bob"]})["presences"]) == 1
    assert call_err(a, "presence_sub", {"users": names[:501] + ["a", "b"]}) == "too_large"
    server.login_ws(tb)
    assert push_of(a, "presence", user="bob")["online"] is True
    # another connection has its own budget
    a2 = server.login_ws(ta, device="ios")
    assert len(call_ok(a2, "presence_sub", {"users": names + ["bob"]})["presences"]) == 500


def test_friends_do_not_count_against_the_subscription_bound(server):
    """Friends are followed automatically, besides the 500 users a
    connection may follow with presence_sub."""
    ta, tb = server.signup("alice"), server.signup("bob")
    _friends(server, ta, tb, "bob", "alice")
    a = server.login_ws(ta)
    call_ok(a, "sync", {"useq": 0})
    names = ["u%03d" % i for i in range(500)]
    assert len(call_ok(a, "presence_sub", {"users": names})["presences"]) == 500
    server.login_ws(tb)
    assert push_of(a, "presence", user="bob")["online"] is True


def test_asked_subscription_outlives_a_friendship(server):
    """A user followed with presence_sub stays followed when a friendship
    with it begins and ends."""
    ta, tb = server.signup("alice"), server.signup("bob")
    a = server.login_ws(ta)
    call_ok(a, "presence_sub", {"users": ["bob"]})
    _friends(server, ta, tb, "bob", "alice")
    st, r = server.http("DELETE", "/v1/friends/bob", token=ta)
    assert st == 200
    push_of(a, "event", kind="friend_removed")
    server.login_ws(tb).close()
    assert push_of(a, "presence", user="bob")["online"] is True
    _wait_offline(a, "bob")


def test_friends_are_followed_from_login_ok_on(server):
    """A friend going offline right after login_ok (before the client made
    any other request) is reported: friends are followed by the time login_ok
    is sent.  Repeated, since the window is short."""
    ta, tb = server.signup("alice"), server.signup("bob")
    _friends(server, ta, tb, "bob", "alice")
    missed = 0
    for _ in range(30):
        b = server.login_ws(tb)
        a = server.login_ws(ta)
        b.close()
        try:
            assert push_of(a, "presence", 3, user="bob")["online"] is False
        except TimeoutError:
            missed += 1
        a.close()
    assert missed == 0, "%d of 30 logins missed the friend's offline push" % missed


def test_last_seen_outlives_a_restart():
    """Last seen is stored when a user's last device goes offline: after a
    graceful restart and after kill -9, presence_sub, GET /v1/presence and
    the friend list still give that time (and a user who was online at the
    graceful stop has the time of the stop)."""
    import shutil
    import tempfile
    data = tempfile.mkdtemp(prefix="parley-e2e-seen-")
    try:
        s = Server(data=data).start()
        try:
            ta, tb = s.signup("alice"), s.signup("bob")
            _friends(s, ta, tb, "bob", "alice")
            a = s.login_ws(ta)
            b = s.login_ws(tb)
            push_of(a, "presence", 10, user="bob")
            b.close()
            seen = _wait_offline(a, "bob")["last_seen"]
            # alice writes after hearing of it, so the stored time is durable
            # once her message is acknowledged
            call_ok(a, "send", {"to": "bob", "text": "are you there?", "cmid": "c1"})
            s.kill()
            a.close()
        finally:
            s.kill()
        s = Server(data=data).start()
        try:
            st, r = s.http("GET", "/v1/presence?users=bob", token=ta)
            assert st == 200 and r["presences"] == [{"user": "bob", "online": False, "last_seen": seen}], r
            st, r = s.http("GET", "/v1/friends", token=ta)
            assert st == 200 and r["friends"][0]["last_seen"] == seen, r
            a = s.login_ws(ta)
            r = call_ok(a, "presence_sub", {"users": ["bob"]})
            assert r["presences"] == [{"user": "bob", "online": False, "last_seen": seen}], r
            before = int(time.time() * 1000)
        finally:
            s.stop()  # alice's device is still online: the stop sends her offline
        s = Server(data=data).start()
        try:
            st, r = s.http("GET", "/v1/presence?users=alice,bob", token=tb)
            assert st == 200, r
            alice, bob = r["presences"]
            assert alice["online"] is False and before <= alice["last_seen"] <= int(time.time() * 1000)
            assert bob["last_seen"] == seen
        finally:
            s.stop()
    finally:
        shutil.rmtree(data, ignore_errors=True)
