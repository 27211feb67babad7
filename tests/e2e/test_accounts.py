"""Accounts end to end: sign-up, logins, logout, secrets on disk, the admin
and app-backend APIs, mutual kick, tenant isolation, login rate limits and
lockout, and what the log may never contain (SPEC sections 2, 3 and 4;
issue 2, "Accounts")."""
import os
import stat
import time

from parleytest import Server


def _login_pw(server, user, password, tenant=None, device="web", binary=False):
    """A socket password login; returns (connection, reply frame)."""
    c = server.ws(binary=binary)
    body = {"user": user, "password": password, "device": device}
    if tenant:
        body["tenant"] = tenant
    return c, c.call({"login": body})


def _new_tenant(server, tenant, **settings):
    st, r = server.http("POST", "/v1/admin/tenants", {"tenant": tenant, "settings": settings},
                        token=server.admin_token())
    assert st == 200, (st, r)
    return r["api_key"]


def _err(reply):
    assert "error" in reply, reply
    return reply["error"]


# ---- sign-up and HTTP login ----

def test_signup_rules(shared_server):
    """SPEC 4 POST /v1/signup: open tenant signs up; duplicate 409 conflict;
    bad user id and short password 400 bad_request."""
    s = shared_server
    st, r = s.http("POST", "/v1/signup", {"user": "su.alice", "password": "password1",
                                          "name": "Alice A"})
    assert st == 200 and r["token"].startswith("v1.") and r["user"] == "su.alice"
    assert r["tenant"] == "default" and r["expires_at"] > time.time() * 1000
    st, r = s.http("POST", "/v1/signup", {"user": "su.alice", "password": "otherpass1"})
    assert st == 409 and r["error"]["code"] == "conflict"
    for bad in ("", "has space", "a/b", "dm:x", "x" * 65, "é"):
        st, r = s.http("POST", "/v1/signup", {"user": bad, "password": "password1"})
        assert st == 400 and r["error"]["code"] == "bad_request", (bad, st, r)
    st, r = s.http("POST", "/v1/signup", {"user": "x" * 64, "password": "password1"})
    assert st == 200, "a 64-character id is valid"
    st, r = s.http("POST", "/v1/signup", {"user": "su.short", "password": "1234567"})
    assert st == 400 and r["error"]["code"] == "bad_request"
    st, r = s.http("POST", "/v1/signup", {"user": "su.nopw"})
    assert st == 400 and r["error"]["code"] == "bad_request"
    # the refused ones were not created
    tok = s.signup("su.reader")
    for user in ("su.short", "su.nopw"):
        st, r = s.http("GET", "/v1/users/" + user, token=tok)
        assert st == 404 and r["error"]["code"] == "not_found"
    # the duplicate did not replace the first password
    st, r = s.http("POST", "/v1/login", {"user": "su.alice", "password": "otherpass1"})
    assert st == 401
    st, r = s.http("POST", "/v1/login", {"user": "su.alice", "password": "password1"})
    assert st == 200


def test_http_login_right_and_wrong(shared_server):
    """SPEC 4 POST /v1/login: right password -> token; wrong password, unknown
    user or unknown tenant -> 401 unauthorized (the same answer)."""
    s = shared_server
    s.signup("hl.alice", "password1")
    st, r = s.http("POST", "/v1/login", {"user": "hl.alice", "password": "password1",
                                         "device": "ios"})
    assert st == 200 and r["token"].startswith("v1.") and r["user"] == "hl.alice"
    assert r["expires_at"] > time.time() * 1000
    st, me = s.http("GET", "/v1/users/hl.alice", token=r["token"])
    assert st == 200 and me["user"] == "hl.alice"
    answers = []
    for body in ({"user": "hl.alice", "password": "password2"},
                 {"user": "hl.nobody", "password": "password1"},
                 {"user": "hl.alice", "password": "password1", "tenant": "no-such-tenant"},
                 {"user": "hl.alice", "password": ""}):
        st, r = s.http("POST", "/v1/login", body)
        assert st == 401 and r["error"]["code"] == "unauthorized", (body, st, r)
        answers.append(r["error"]["message"])
    assert len(set(answers)) == 1, "errors must not tell whether the user exists: %r" % answers


# ---- logout ----

def test_logout_revokes_token_everywhere(shared_server):
    """SPEC 2 Access / 4 POST /v1/logout: the token stops working for HTTP
    and socket logins, and a WebSocket session logged in with it is closed
    (4003)."""
    s = shared_server
    tok = s.signup("lo.alice")
    other = s.http("POST", "/v1/login", {"user": "lo.alice", "password": "password1"})[1]["token"]
    ws = s.login_ws(tok, device="web")
    ws_other = s.login_ws(other, device="ios")
    st, r = s.http("POST", "/v1/logout", token=tok)
    assert st == 200
    assert ws.wait_close(5) == 4003
    st, r = s.http("GET", "/v1/users/lo.alice", token=tok)
    assert st == 401 and r["error"]["code"] == "unauthorized"
    st, r = s.http("POST", "/v1/logout", token=tok)
    assert st == 401
    c = s.ws()
    r = c.call({"login": {"token": tok}})
    assert _err(r)["code"] == "unauthorized"
    t = s.tcp()
    r = t.call({"login": {"token": tok}})
    assert _err(r)["code"] == "unauthorized"
    # another token of the same user is untouched, and so is its session
    assert ws_other.call({"ping": {}})["pong"]["server_ts"] > 0
    st, r = s.http("GET", "/v1/users/lo.alice", token=other)
    assert st == 200


def test_socket_logout(shared_server):
    """SPEC 3 logout: logout_ok, the token is revoked (its other sessions are
    closed with 4003), the connection stays open but logged out."""
    s = shared_server
    s.signup("sl.alice")
    a, r = _login_pw(s, "sl.alice", "password1")
    tok = r["login_ok"]["token"]
    a2 = s.login_ws(tok, device="android")
    assert "logout_ok" in a.call({"logout": {}})
    assert a2.wait_close(5) == 4003
    r = a.call({"send": {"to": "sl.alice", "text": "x", "cmid": "1"}})
    assert _err(r)["code"] == "unauthorized"
    assert s.http("GET", "/v1/users/sl.alice", token=tok)[0] == 401
    # the same connection may log in again, with a password
    r = a.call({"login": {"user": "sl.alice", "password": "password1"}})
    assert r["login_ok"]["user"] == "sl.alice"


# ---- socket login ----

def test_socket_login_by_password_then_token(shared_server):
    """SPEC 3 login: by password (login_ok has a token and expires_at), and
    that token logs in later, over WS JSON, WS protobuf and TCP."""
    s = shared_server
    s.signup("sk.alice")
    c, r = _login_pw(s, "sk.alice", "password1", device="desktop")
    ok = r["login_ok"]
    assert ok["user"] == "sk.alice" and ok["tenant"] == "default"
    assert ok["session"] and ok["useq"] == 0 and ok["server_ts"] > 0
    assert ok["token"].startswith("v1.") and ok["expires_at"] > time.time() * 1000
    tok = ok["token"]
    c.close()
    for conn in (s.ws(), s.ws(binary=True), s.tcp()):
        r = conn.call({"login": {"token": tok, "device": "cli", "device_id": "box-1"}})
        assert r["login_ok"]["user"] == "sk.alice", r
        assert "token" not in r["login_ok"], "a token login does not mint a new token"
        conn.close()
    # a wrong password and a tampered token are refused
    c, r = _login_pw(s, "sk.alice", "password2")
    assert _err(r)["code"] == "unauthorized"
    r = s.ws().call({"login": {"token": tok[:-2] + ("AA" if not tok.endswith("AA") else "BB")}})
    assert _err(r)["code"] == "unauthorized"
    r = s.ws().call({"login": {"token": tok, "device": "toaster"}})
    assert _err(r)["code"] == "bad_request"
    # login twice on one connection
    c = s.login_ws(tok)
    assert _err(c.call({"login": {"token": tok}}))["code"] == "bad_request"


def test_secret_files_are_owner_only(shared_server):
    """SPEC 4: DATA/admin.token and DATA/default.key exist, mode 0600, and
    work (the token for the admin API, the key for the app API); the token
    signing secret is owner-only too (docs/architecture.md)."""
    s = shared_server
    for name in ("admin.token", "default.key", "secret"):
        st = os.stat(os.path.join(s.data, name))
        assert stat.S_ISREG(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, (name, oct(st.st_mode))
    assert len(s.admin_token()) >= 16
    assert s.default_key().startswith("ak.default.")
    st, r = s.http("POST", "/v1/users", {"user": "sf.bot"}, token=s.default_key())
    assert st == 200 and r["user"] == "sf.bot"


def test_admin_tenants_and_app_users(shared_server):
    """SPEC 4 POST /v1/admin/tenants (admin token -> api_key; wrong or missing
    token 401, a user token or API key 403), POST /v1/users with the tenant's
    key (issue_token -> a token that logs in), GET /v1/users/{id},
    GET /v1/users?q=prefix by id and by name, closed sign-up -> 403."""
    s = shared_server
    admin = s.admin_token()
    st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "acme-adm"}, token="x" * 48)
    assert st == 401 and r["error"]["code"] == "unauthorized"
    st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "acme-adm"})
    assert st == 401 and r["error"]["code"] == "unauthorized"
    user_tok = s.signup("at.user")
    st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "acme-adm"}, token=user_tok)
    assert st == 403 and r["error"]["code"] == "forbidden"
    st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "acme-adm"}, token=s.default_key())
    assert st == 403 and r["error"]["code"] == "forbidden"

    st, r = s.http("POST", "/v1/admin/tenants",
                   {"tenant": "acme-adm", "settings": {"open_signup": False}}, token=admin)
    assert st == 200 and r["tenant"] == "acme-adm"
    key = r["api_key"]
    assert key and key != s.default_key()
    assert r["settings"]["open_signup"] is False
    st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "acme-adm"}, token=admin)
    assert st == 409 and r["error"]["code"] == "conflict"
    st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "bad tenant"}, token=admin)
    assert st == 400

    # closed sign-up
    st, r = s.http("POST", "/v1/signup", {"tenant": "acme-adm", "user": "walkin",
                                          "password": "password1"})
    assert st == 403 and r["error"]["code"] == "forbidden"

    # the app backend creates users
    st, r = s.http("POST", "/v1/users", {"user": "carol", "name": "Zed Carol",
                                         "issue_token": True}, token=key)
    assert st == 200 and r["user"] == "carol" and r["name"] == "Zed Carol"
    assert r["token"].startswith("v1.") and r["expires_at"] > time.time() * 1000
    carol_tok = r["token"]
    st, r = s.http("POST", "/v1/users", {"user": "cathy", "password": "password9"}, token=key)
    assert st == 200 and "token" not in r
    st, r = s.http("POST", "/v1/users", {"user": "carol"}, token=key)
    assert st == 409 and r["error"]["code"] == "conflict"
    st, r = s.http("POST", "/v1/users", {"user": "dan"}, token=user_tok)
    assert st == 403, "a user token may not create users"
    st, r = s.http("POST", "/v1/users", {"user": "dan"}, token="ak.acme-adm." + "0" * 48)
    assert st == 401, "a forged API key"

    c = s.login_ws(carol_tok)
    assert c.login_ok["user"] == "carol" and c.login_ok["tenant"] == "acme-adm"
    c2, r = _login_pw(s, "cathy", "password9", tenant="acme-adm")
    assert r["login_ok"]["tenant"] == "acme-adm"

    for cred in (key, carol_tok):
        st, r = s.http("GET", "/v1/users/cathy", token=cred)
        assert st == 200 and r["user"] == "cathy" and r["name"] == "cathy"
        assert r["created_at"] > 0 and "token" not in r
        st, r = s.http("GET", "/v1/users/nobody", token=cred)
        assert st == 404 and r["error"]["code"] == "not_found"
    st, r = s.http("GET", "/v1/users/cathy")
    assert st == 401

    st, r = s.http("GET", "/v1/users?q=ca", token=key)
    assert st == 200 and sorted(u["user"] for u in r["users"]) == ["carol", "cathy"]
    st, r = s.http("GET", "/v1/users?q=car", token=carol_tok)
    assert st == 200 and [u["user"] for u in r["users"]] == ["carol"]
    st, r = s.http("GET", "/v1/users?q=zed", token=key)
    assert st == 200 and [u["user"] for u in r["users"]] == ["carol"], "name prefix"
    st, r = s.http("GET", "/v1/users?q=zzz", token=key)
    assert st == 200 and not r.get("users")


# ---- mutual kick ----

def test_mutual_kick_same_device_kind(server):
    """SPEC 2 Access, mutual kick: the old connection of the same user and
    device kind gets `kicked`, then close 4001; the new one works."""
    tok = server.signup("alice")
    server.signup("bob")
    old = server.login_ws(tok, device="ios")
    old_tcp = server.tcp()
    assert "login_ok" in old_tcp.call({"login": {"token": tok, "device": "desktop"}})
    new = server.login_ws(tok, device="ios", binary=True)
    k = old.push("kicked", 5)
    assert k.get("reason")
    assert old.wait_close(5) == 4001
    # the TCP desktop session is another kind: untouched until a desktop login
    assert old_tcp.call({"ping": {}})["pong"]["server_ts"] > 0
    new_tcp = server.tcp()
    assert "login_ok" in new_tcp.call({"login": {"token": tok, "device": "desktop"}})
    assert old_tcp.push("kicked", 5).get("reason")
    assert old_tcp.wait_close(5)
    assert "send_ok" in new.call({"send": {"to": "bob", "text": "still here", "cmid": "k1"}})
    assert new_tcp.push("msg")["text"] == "still here"


def test_many_kinds_online_together(server):
    """SPEC 2 multi-device: different device kinds of one user stay online
    together and every one of them gets the pushes."""
    ta, tb = server.signup("alice"), server.signup("bob")
    devs = [server.login_ws(tb, device=d, binary=(i % 2 == 1))
            for i, d in enumerate(("web", "ios", "android", "desktop", "cli"))]
    t = server.tcp()
    assert "login_ok" in t.call({"login": {"token": tb, "device": "bot"}})
    devs.append(t)
    a = server.login_ws(ta)
    seq = a.call({"send": {"to": "bob", "text": "to all six", "cmid": "m"}})["send_ok"]["seq"]
    for d in devs:
        m = d.push("msg")
        assert m["seq"] == seq and m["text"] == "to all six"
        assert d.no_push("kicked", 0.05)


def test_kick_race_keeps_newest(server):
    """Mutual kick with concurrent logins on several workers: exactly one
    session of the device kind survives, the newest."""
    tok = server.signup("alice")
    conns = [server.ws() for _ in range(6)]
    for c in conns:
        c.send({"id": 1, "login": {"token": tok, "device": "web"}})
    survivors = []
    for c in conns:
        r = c.wait(lambda f: f.get("id") == 1, 5)
        assert "login_ok" in r
    for c in conns:
        try:
            c.push("kicked", 1.5)
            assert c.wait_close(5) == 4001
        except TimeoutError:
            survivors.append(c)
    assert len(survivors) == 1, "%d sessions left of one device kind" % len(survivors)
    assert "pong" in survivors[0].call({"ping": {}})


# ---- tenant isolation ----

def test_tenant_isolation(server):
    """SPEC 2 Safety, multi-tenancy: same user ids in two tenants are
    different users; no message, history, user lookup or token reaches
    across tenants."""
    s = server
    key_b = _new_tenant(s, "acme", open_signup=True)
    ta_alice = s.signup("alice", "password-A")
    ta_bob = s.signup("bob", "password-A")
    s.signup("carol", "password-A")                   # only in default
    tb_alice = s.signup("alice", "password-B", tenant="acme")
    tb_bob = s.signup("bob", "password-B", tenant="acme")
    a_bob = s.login_ws(ta_bob)
    b_bob = s.login_ws(tb_bob)
    b_alice = s.login_ws(tb_alice)
    assert b_bob.login_ok["tenant"] == "acme"

    a_alice = s.login_ws(ta_alice)
    ok = a_alice.call({"send": {"to": "bob", "text": "secret of A", "cmid": "iso1"}})["send_ok"]
    assert ok["conv"] == "dm:alice:bob" and ok["seq"] == 1
    assert a_bob.push("msg")["text"] == "secret of A"
    assert b_bob.no_push("msg", 0.5) and b_alice.no_push("msg", 0.1)

    # tenant B's bob has a dm with the same name, but it is B's: empty
    h = b_bob.call({"history": {"conv": "dm:alice:bob"}})["history_ok"]
    assert not h.get("msgs")
    st, r = s.http("GET", "/v1/conversations/dm:alice:bob/messages", token=tb_bob)
    assert st == 200 and not r.get("msgs")
    r = b_bob.call({"sync": {"useq": 0}})["sync_ok"]
    assert not r.get("entries")
    # B's messages number their own conversation
    ok_b = b_alice.call({"send": {"to": "bob", "text": "hello in B", "cmid": "iso1"}})["send_ok"]
    assert ok_b["seq"] == 1, "the same cmid in another tenant is another message"
    assert b_bob.push("msg")["text"] == "hello in B"
    assert a_bob.no_push("msg", 0.3)
    h = a_alice.call({"history": {"conv": "dm:alice:bob"}})["history_ok"]
    assert [m["text"] for m in h["msgs"]] == ["secret of A"]

    # users: carol exists only in default
    st, r = s.http("GET", "/v1/users/carol", token=tb_bob)
    assert st == 404
    st, r = s.http("GET", "/v1/users?q=car", token=key_b)
    assert st == 200 and not r.get("users")
    r = b_alice.call({"send": {"to": "carol", "text": "hi", "cmid": "c"}})
    assert _err(r)["code"] == "not_found"

    # an API key of B creates users in B only
    st, r = s.http("POST", "/v1/users", {"user": "dave"}, token=key_b)
    assert st == 200
    st, r = s.http("GET", "/v1/users/dave", token=ta_alice)
    assert st == 404
    st, r = s.http("GET", "/v1/users/dave", token=s.default_key())
    assert st == 404
    st, r = s.http("POST", "/v1/users", {"user": "erin", "tenant": "default"}, token=key_b)
    assert st == 400, "a tenant named in the body is not a way across"
    st, r = s.http("GET", "/v1/users/erin", token=s.default_key())
    assert st == 404

    # passwords are per tenant
    st, r = s.http("POST", "/v1/login", {"user": "alice", "password": "password-A",
                                         "tenant": "acme"})
    assert st == 401
    st, r = s.http("POST", "/v1/login", {"user": "alice", "password": "password-B",
                                         "tenant": "acme"})
    assert st == 200 and r["tenant"] == "acme"

    # a token of A names its tenant: a `tenant` in the login does not move it
    c = s.ws()
    r = c.call({"login": {"token": ta_alice, "tenant": "acme", "device": "ios"}})
    assert "error" in r or r["login_ok"]["tenant"] == "default", r
    if "login_ok" in r:
        c.call({"send": {"to": "bob", "text": "via A token", "cmid": "iso2"}})
        assert a_bob.push("msg")["text"] == "via A token"
        assert b_bob.no_push("msg", 0.3)
    # A's token over HTTP acts in A only
    st, r = s.http("POST", "/v1/messages", {"to": "dave", "text": "x", "cmid": "iso3"},
                   token=ta_alice)
    assert st == 404, "dave lives in acme"
    st, r = s.http("GET", "/v1/conversations/dm:alice:bob/messages", token=tb_alice)
    assert [m["text"] for m in r["msgs"]] == ["hello in B"]


# ---- login rate limits and lockout ----

def test_login_rate_limit_per_ip():
    """SPEC 2 Safety, rate limits: password logins per IP (burst 3, 1/s);
    the 4th quick one gets rate_limited with retry_after_ms (HTTP 429 with
    Retry-After); token logins are not password logins."""
    with Server("--login-rate-per-ip", "1", "--login-burst-per-ip", "3") as s:
        key = s.default_key()
        for u in ("rl1", "rl2"):
            st, r = s.http("POST", "/v1/users", {"user": u, "password": "password1",
                                                 "issue_token": True}, token=key)
            assert st == 200
        tok = r["token"]
        for body in ({"user": "rl1", "password": "password1"},
                     {"user": "rl2", "password": "password1"},
                     {"user": "rl1", "password": "wrongpass"}):
            st, r = s.http("POST", "/v1/login", body)
            assert st in (200, 401), (st, r)
        from parleytest import http_call
        st, r = s.http("POST", "/v1/login", {"user": "rl1", "password": "password1"})
        assert st == 429 and r["error"]["code"] == "rate_limited", (st, r)
        assert r["error"]["retry_after_ms"] > 0
        retry = http_call.last_headers.get("Retry-After")
        assert retry is not None and int(retry) >= 1
        c, r = _login_pw(s, "rl2", "password1")
        e = _err(r)
        assert e["code"] == "rate_limited" and e["retry_after_ms"] > 0
        st, r = s.http("POST", "/v1/signup", {"user": "rl3", "password": "password1"})
        assert st == 429, "sign-ups count as password logins"
        # a token login is not limited
        assert s.login_ws(tok).login_ok["user"] == "rl2"
        time.sleep(e["retry_after_ms"] / 1000.0 + 0.05)
        c, r = _login_pw(s, "rl2", "password1")
        assert "login_ok" in r, r


def test_lockout_after_failed_logins():
    """Issue 2 Accounts / SPEC 2 Safety: after failed_login_max wrong
    passwords a user's password logins are refused (rate_limited), even with
    the right password, until the window lets one through; a login_failed
    log line with reason locked_out; other users are not affected."""
    with Server("--failed-login-max", "3", "--failed-login-window-ms", "2000") as s:
        s.signup("victim")
        s.signup("bystander")
        for _ in range(3):
            st, r = s.http("POST", "/v1/login", {"user": "victim", "password": "guess-1234"})
            assert st == 401
        st, r = s.http("POST", "/v1/login", {"user": "victim", "password": "password1"})
        assert st == 429 and r["error"]["code"] == "rate_limited", (st, r)
        assert r["error"]["retry_after_ms"] > 0
        c, r = _login_pw(s, "victim", "password1")
        e = _err(r)
        assert e["code"] == "rate_limited" and e["retry_after_ms"] > 0
        st, r = s.http("POST", "/v1/login", {"user": "bystander", "password": "password1"})
        assert st == 200
        deadline = time.time() + 3
        while not [e for e in s.events("login_failed") if e.get("reason") == "locked_out"]:
            assert time.time() < deadline, "no locked_out log line:\n" + s.log()
            time.sleep(0.05)
        ev = [e for e in s.events("login_failed") if e.get("reason") == "locked_out"][0]
        assert ev["user"] == "victim" and ev["tenant"] == "default"
        assert ev["level"] == "warn"
        wrong = [e for e in s.events("login_failed") if e.get("reason") == "wrong_password"]
        assert len(wrong) == 3
        time.sleep(e["retry_after_ms"] / 1000.0 + 0.05)
        st, r = s.http("POST", "/v1/login", {"user": "victim", "password": "password1"})
        assert st == 200, (st, r)


# ---- what the log never holds ----

def test_no_secrets_in_log():
    """SPEC 2 Safety: no password, token, API key or admin token appears in
    the server's log, whatever succeeded or failed."""
    pw = {"pw-signup-%s" % os.urandom(4).hex(), "pw-wrong-%s" % os.urandom(4).hex(),
          "pw-created-%s" % os.urandom(4).hex()}
    pw_signup, pw_wrong, pw_created = sorted(pw)
    secrets = set(pw)
    with Server("--log-level", "debug") as s:
        secrets.add(s.admin_token())
        secrets.add(s.default_key())
        st, r = s.http("POST", "/v1/signup", {"user": "logu", "password": pw_signup})
        secrets.add(r["token"])
        st, r = s.http("POST", "/v1/login", {"user": "logu", "password": pw_signup})
        secrets.add(r["token"])
        s.http("POST", "/v1/login", {"user": "logu", "password": pw_wrong})
        s.http("POST", "/v1/login", {"user": "nouser", "password": pw_wrong})
        c, r = _login_pw(s, "logu", pw_signup)
        secrets.add(r["login_ok"]["token"])
        c2, r = _login_pw(s, "logu", pw_wrong, device="ios")
        assert "error" in r
        c3 = s.ws()
        assert "error" in c3.call({"login": {"token": "v1.bogus." + pw_wrong}})
        st, r = s.http("POST", "/v1/users", {"user": "logbot", "password": pw_created,
                                             "issue_token": True}, token=s.default_key())
        secrets.add(r["token"])
        st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "logt"}, token=s.admin_token())
        secrets.add(r["api_key"])
        s.http("GET", "/v1/users/logu", token="v1.forged-" + pw_wrong)
        tok = s.signup("logv", pw_created)
        secrets.add(tok)
        s.http("POST", "/v1/logout", token=tok)
        c.call({"logout": {}})
        c.close()
        # the admin API's events (issue 5): settings, ban, kick, words, backup
        adm = s.admin_token()
        victim = s.login_ws(s.signup("logw", pw_created))
        st, r = s.http("PATCH", "/v1/admin/tenants/logt/settings", {"open_signup": True}, token=adm)
        assert st == 200
        assert s.http("POST", "/v1/admin/tenants/default/users/logw/kick", {}, token=adm)[0] == 200
        assert s.http("POST", "/v1/admin/tenants/default/users/logw/ban", {}, token=adm)[0] == 200
        assert s.http("POST", "/v1/admin/tenants/default/users/logw/unban", {}, token=adm)[0] == 200
        assert s.http("PUT", "/v1/admin/tenants/default/words", raw=b"x\n", token=adm)[0] == 200
        assert s.http("POST", "/v1/admin/backup", {"name": "b1"}, token=adm)[0] == 200
        s.http("GET", "/v1/admin/online", token="wrong-" + pw_wrong)
        victim.close()
        s.stop()
        text = s.log()
        assert '"login"' in text and '"logout"' in text, "business events are logged"
        for ev in ("tenant_settings", "ban", "unban", "user_kick", "words_replaced", "backup"):
            assert '"msg":"%s"' % ev in text, "no %s event" % ev
        for secret in secrets:
            assert secret not in text, "a secret in the log: %s" % secret
        # also no long token-ish fragment (a signature or a key's random part)
        for secret in secrets:
            for part in secret.split("."):
                if len(part) >= 24:
                    assert part not in text


def test_second_login_while_first_in_flight(server):
    """SPEC 3 login: one login per connection; a second login sent before
    the first is answered is refused (bad_request), the first succeeds."""
    server.signup("alice")
    tok = server.signup("bob")
    c = server.ws()
    c.send({"id": 1, "login": {"user": "alice", "password": "password1"}})
    c.send({"id": 2, "login": {"token": tok}})
    r2 = c.wait(lambda f: f.get("id") == 2)
    r1 = c.wait(lambda f: f.get("id") == 1)
    assert r2["error"]["code"] == "bad_request"
    assert r1["login_ok"]["user"] == "alice"
    r = c.call({"send": {"to": "bob", "text": "I am alice", "cmid": "x"}})
    assert r["send_ok"]["conv"] == "dm:alice:bob"


def test_revocation_survives_restart():
    """SPEC 2 Safety: tokens are revocable; a logout holds after a restart on
    the same data directory, while other tokens keep working."""
    import shutil
    import tempfile
    data = tempfile.mkdtemp(prefix="parley-revoke-")
    try:
        with Server(data=data) as s:
            tok = s.signup("alice")
            keep = s.http("POST", "/v1/login", {"user": "alice", "password": "password1"})[1]
            assert s.http("POST", "/v1/logout", token=tok)[0] == 200
        with Server(data=data) as s:
            st, r = s.http("GET", "/v1/users/alice", token=tok)
            assert st == 401, "a revoked token works again after a restart"
            c = s.ws()
            assert c.call({"login": {"token": tok}})["error"]["code"] == "unauthorized"
            c.close()
            assert s.http("GET", "/v1/users/alice", token=keep["token"])[0] == 200
    finally:
        shutil.rmtree(data, ignore_errors=True)
