"""Operations end to end (issue 5; SPEC 2 "Scale-out and operations" and
4 "/v1/admin/..."): GET /metrics with the metrics docs/operations.md
lists, /healthz and /readyz, the admin API (tenant settings applied at
once, ban and unban, kick, online counts, word lists, backups), business
events in the JSON log, SIGHUP reloading settings, and the data
directory's format version."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from parleytest import Closed, Server, http_call

FAST = ["--msg-rate", "1000", "--msg-burst", "1000"]

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def scrape(s):
    """{(name, labels): value} of a live /metrics, labels as a sorted tuple."""
    st, text = http_call(s.http_port, "GET", "/metrics")
    assert st == 200
    text = text.decode() if isinstance(text, bytes) else text
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample: %r" % line
        labels = ()
        if m.group(2):
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2))))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples, name, **labels):
    """Sum of the samples of name whose labels include the given ones."""
    want = set(labels.items())
    return sum(v for (n, l), v in samples.items() if n == name and want <= set(l))


def names(samples):
    return {n for n, _ in samples}


def wait_for(pred, what, timeout=5):
    deadline = time.time() + timeout
    while not pred():
        assert time.time() < deadline, what
        time.sleep(0.05)


def test_health_and_readiness(shared_server):
    """/healthz answers while the process runs; /readyz only after a probe
    write went through the store."""
    s = shared_server
    st, r = s.http("GET", "/healthz")
    assert st == 200 and r["status"] == "ok"
    st, r = s.http("GET", "/readyz")
    assert st == 200 and r["status"] == "ready"


def test_metrics_count_what_happens():
    """Issue 5 Observability: every metric family of the issue is exposed
    and moves with what clients do (logins ok and failed, kicks, frames and
    bytes by transport, sessions by transport and device, online users,
    messages sent and delivered by kind, push latency, request durations,
    store commits, rate limits, filter hits, process figures)."""
    with Server(*FAST, "--msg-burst", "3", "--msg-rate", "1") as s:
        adm = s.admin_token()
        ta, tb = s.signup("alice"), s.signup("bob")
        st, _ = s.http("POST", "/v1/login", {"user": "alice", "password": "wrong-password"})
        assert st == 401
        a = s.login_ws(ta, device="ios")
        b = s.login_ws(tb, device="web", binary=True)
        bt = s.tcp()
        assert "login_ok" in bt.call({"login": {"token": tb, "device": "desktop"}})
        assert "send_ok" in a.call({"send": {"to": "bob", "text": "hi", "cmid": "m1"}})
        b.push("msg")
        bt.push("msg")
        g = a.call({"group_create": {"name": "G", "kind": "group", "members": ["bob"]}})
        gid = g["group_create_ok"]["group"]
        assert "send_ok" in a.call({"send": {"group": gid, "text": "to the group", "cmid": "g1"}})
        b.push("msg")
        r = a.call({"send": {"to": "bob", "text": "over the rate", "cmid": "m2"}})
        r = a.call({"send": {"to": "bob", "text": "over the rate", "cmid": "m3"}})
        assert r.get("error", {}).get("code") == "rate_limited", r
        # a kick: a second ios login of alice
        a2 = s.login_ws(ta, device="ios")
        assert a.push("kicked")
        st, r = s.http("PUT", "/v1/admin/tenants/default/words", raw=b"badword\n", token=adm)
        assert st == 200
        r = b.call({"send": {"to": "alice", "text": "a badword here", "cmid": "f1"}})
        assert r["error"]["code"] == "blocked_content"

        m = scrape(s)
        need = ["parley_connections", "parley_sessions", "parley_online_users",
                "parley_logins_total", "parley_kicks_total", "parley_frames_received_total",
                "parley_frames_sent_total", "parley_received_bytes_total", "parley_sent_bytes_total",
                "parley_messages_sent_total", "parley_messages_delivered_total",
                "parley_push_latency_seconds_bucket", "parley_request_duration_seconds_bucket",
                "parley_store_commit_seconds_bucket", "parley_store_commit_batch_size_bucket",
                "parley_outbound_dropped_total", "parley_slow_consumer_disconnects_total",
                "parley_rate_limited_total", "parley_filter_hits_total",
                "process_resident_memory_bytes", "process_open_fds", "process_threads",
                "process_cpu_seconds_total", "parley_up", "parley_request_errors_total"]
        missing = [n for n in need if n not in names(m)]
        assert not missing, missing
        assert value(m, "parley_logins_total", result="ok") >= 4
        assert value(m, "parley_logins_total", result="failed") >= 1
        assert value(m, "parley_kicks_total", reason="new_login") == 1
        assert value(m, "parley_sessions", transport="ws", device="ios") == 1
        assert value(m, "parley_sessions", transport="ws", device="web") == 1
        assert value(m, "parley_sessions", transport="tcp", device="desktop") == 1
        assert value(m, "parley_online_users") == 2
        assert value(m, "parley_connections", transport="ws") >= 3
        assert value(m, "parley_connections", transport="tcp") == 1
        assert value(m, "parley_frames_received_total", transport="ws") >= 5
        assert value(m, "parley_frames_received_total", transport="tcp") >= 1
        assert value(m, "parley_sent_bytes_total", transport="tcp") > 0
        assert value(m, "parley_messages_sent_total", kind="dm") == 2
        assert value(m, "parley_messages_sent_total", kind="group") == 1
        assert value(m, "parley_messages_delivered_total", kind="dm") >= 2
        assert value(m, "parley_messages_delivered_total", kind="group") >= 1
        assert value(m, "parley_push_latency_seconds_count", kind="dm") >= 2
        assert value(m, "parley_request_duration_seconds_count", op="send", api="frame") >= 4
        assert value(m, "parley_request_duration_seconds_count", op="signup", api="http") == 2
        assert value(m, "parley_rate_limited_total", limit="messages") >= 1
        assert value(m, "parley_filter_hits_total", policy="reject") == 1
        assert value(m, "parley_request_errors_total", code="blocked_content") == 1
        assert value(m, "parley_store_commit_seconds_count") >= 5
        assert value(m, "process_resident_memory_bytes") > 1e6
        assert value(m, "process_open_fds") > 5
        assert value(m, "process_threads") >= 4
        assert value(m, "parley_up") == 1
        # the exposition parses for Prometheus itself
        promtool = shutil.which("promtool")
        assert promtool, "promtool is not installed (scripts/deps.sh installs it)"
        st, text = http_call(s.http_port, "GET", "/metrics")
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True)
        assert p.returncode == 0, p.stdout + p.stderr
        # histograms are cumulative and end with +Inf == _count
        inf = value(m, "parley_push_latency_seconds_bucket", kind="dm", le="+Inf")
        assert inf == value(m, "parley_push_latency_seconds_count", kind="dm")
        for c in (a, a2, b, bt):
            c.close()
        wait_for(lambda: value(scrape(s), "parley_online_users") == 0, "users still online")


# ---- the admin API ----

def _admin(s, method, path, body=None, raw=None):
    return s.http(method, path, body, token=s.admin_token(), raw=raw)


def test_admin_needs_the_admin_token(shared_server):
    s = shared_server
    tok = s.signup("adm.nobody")
    for method, path in (("GET", "/v1/admin/online"), ("POST", "/v1/admin/backup"),
                         ("PATCH", "/v1/admin/tenants/default/settings"),
                         ("POST", "/v1/admin/tenants/default/users/x/ban"),
                         ("PUT", "/v1/admin/tenants/default/words")):
        assert s.http(method, path, {} if method != "PUT" else None)[0] == 401
        assert s.http(method, path, {} if method != "PUT" else None, token=tok)[0] == 403
        assert s.http(method, path, {} if method != "PUT" else None,
                      token=s.default_key())[0] == 403


def test_tenant_settings_apply_at_once(shared_server):
    """Open sign-up, friends-only DMs, filter policy and the message rate
    change with one call and hold for the next request; unknown tenant 404,
    bad policy 400; PATCH and POST both work; GET lists the new settings."""
    s = shared_server
    st, r = _admin(s, "POST", "/v1/admin/tenants", {"tenant": "ts-t", "settings": {"open_signup": True}})
    assert st == 200
    a = s.login_ws(s.signup("alice", tenant="ts-t"))
    s.signup("bob", tenant="ts-t")
    st, r = _admin(s, "PATCH", "/v1/admin/tenants/ts-t/settings", {"open_signup": False})
    assert st == 200 and r["settings"]["open_signup"] is False and r["tenant"] == "ts-t"
    st, r = s.http("POST", "/v1/signup", {"tenant": "ts-t", "user": "carl", "password": "password1"})
    assert st == 403
    st, r = _admin(s, "POST", "/v1/admin/tenants/ts-t/settings", {"friends_only_dm": True})
    assert st == 200 and r["settings"]["friends_only_dm"] is True
    assert r["settings"]["open_signup"] is False, "other fields keep their value"
    r = a.call({"send": {"to": "bob", "text": "hi", "cmid": "f1"}})
    assert r["error"]["code"] == "forbidden"
    st, r = _admin(s, "PATCH", "/v1/admin/tenants/ts-t/settings",
                   {"friends_only_dm": False, "msg_rate": 1, "msg_burst": 1})
    assert st == 200 and r["settings"]["msg_rate"] == 1
    assert "send_ok" in a.call({"send": {"to": "bob", "text": "one", "cmid": "r1"}})
    r = a.call({"send": {"to": "bob", "text": "two", "cmid": "r2"}})
    assert r["error"]["code"] == "rate_limited"
    st, r = _admin(s, "PATCH", "/v1/admin/tenants/ts-t/settings", {"msg_rate": 0, "msg_burst": 0})
    assert "msg_rate" not in r["settings"], "0 goes back to the server default"
    time.sleep(0.1)     # the emptied bucket refills at the default rate
    assert "send_ok" in a.call({"send": {"to": "bob", "text": "three", "cmid": "r3"}})
    st, r = _admin(s, "GET", "/v1/admin/tenants")
    mine = [t for t in r["tenants"] if t["tenant"] == "ts-t"][0]
    assert mine["settings"]["open_signup"] is False
    assert _admin(s, "PATCH", "/v1/admin/tenants/nope/settings", {"open_signup": True})[0] == 404
    st, r = _admin(s, "PATCH", "/v1/admin/tenants/ts-t/settings", {"filter_policy": "drop"})
    assert st == 400
    st, r = _admin(s, "PATCH", "/v1/admin/tenants/ts-t/settings", {"filter_policy": "mask"})
    assert st == 200 and r["settings"]["filter_policy"] == "mask"
    a.close()


def test_ban_kicks_refuses_and_survives_restart():
    """A ban kicks every session of the user at once (kicked, close 4003),
    refuses password and token logins (403) and HTTP calls with tokens
    issued before it, survives a restart; an unban lets the user back."""
    data = tempfile.mkdtemp(prefix="parley-ban-")
    try:
        with Server(data=data) as s:
            tm = s.signup("mallory")
            tb = s.signup("bob")
            ws = s.login_ws(tm, device="ios")
            tcp = s.tcp()
            assert "login_ok" in tcp.call({"login": {"token": tm, "device": "desktop"}})
            bob = s.login_ws(tb)
            st, r = _admin(s, "POST", "/v1/admin/tenants/default/users/mallory/ban",
                           {"reason": "spam"})
            assert st == 200 and r["banned"] is True and r["user"] == "mallory"
            assert ws.push("kicked")["reason"]
            assert ws.wait_close(5) == 4003
            assert tcp.push("kicked")
            assert tcp.wait_close(5)
            assert "pong" in bob.call({"ping": {}}), "others are untouched"
            assert s.http("GET", "/v1/users/bob", token=tm)[0] == 403
            st, r = s.http("POST", "/v1/login", {"user": "mallory", "password": "password1"})
            assert st == 403 and r["error"]["code"] == "forbidden"
            r = s.ws().call({"login": {"token": tm}})
            assert r["error"]["code"] == "forbidden"
            assert _admin(s, "POST", "/v1/admin/tenants/default/users/nobody/ban")[0] == 404
            assert _admin(s, "POST", "/v1/admin/tenants/nope/users/mallory/ban")[0] == 404
            ev = s.events("ban")
            assert ev and ev[0]["user"] == "mallory" and ev[0]["tenant"] == "default"
            assert ev[0]["remote"] == "127.0.0.1" and ev[0]["reason"] == "spam"
            kicks = [e for e in s.events("kick") if e.get("reason") == "ban"]
            assert len(kicks) == 2
            bob.close()
        with Server(data=data) as s:
            assert s.http("GET", "/v1/users/bob", token=tm)[0] == 403, "the ban held a restart"
            st, r = s.http("POST", "/v1/login", {"user": "mallory", "password": "password1"})
            assert st == 403
            st, r = _admin(s, "POST", "/v1/admin/tenants/default/users/mallory/unban")
            assert st == 200 and r["banned"] is False
            assert s.http("GET", "/v1/users/bob", token=tm)[0] == 200
            assert s.login_ws(tm).login_ok["user"] == "mallory"
        with Server(data=data) as s:
            assert s.http("GET", "/v1/users/bob", token=tm)[0] == 200, "the unban held a restart"
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_kick_and_online_counts(server):
    """Kick ends a user's sessions (all, or one device kind) with kicked and
    4001; they may log in again.  Online counts per tenant and in total
    follow logins, kicks and disconnects."""
    s = server
    st, r = _admin(s, "POST", "/v1/admin/tenants", {"tenant": "oc", "settings": {"open_signup": True}})
    ta, tb = s.signup("alice"), s.signup("bob")
    tc = s.signup("carol", tenant="oc")
    a_web, a_ios = s.login_ws(ta, device="web"), s.login_ws(ta, device="ios")
    b = s.login_ws(tb)
    c = s.login_ws(tc)
    st, r = _admin(s, "GET", "/v1/admin/online")
    assert st == 200 and r["users"] == 3 and r["sessions"] == 4
    per = {t["tenant"]: t for t in r["tenants"]}
    assert per["default"]["users"] == 2 and per["default"]["sessions"] == 3
    assert per["oc"]["users"] == 1 and per["oc"]["sessions"] == 1
    st, r = _admin(s, "GET", "/v1/admin/tenants/oc/online")
    assert st == 200 and r["users"] == 1 and r["sessions"] == 1 and len(r["tenants"]) == 1
    assert _admin(s, "GET", "/v1/admin/tenants/nope/online")[0] == 404

    st, r = _admin(s, "POST", "/v1/admin/tenants/default/users/alice/kick", {"device": "ios"})
    assert st == 200
    assert a_ios.push("kicked")["reason"]
    assert a_ios.wait_close(5) == 4001
    assert "pong" in a_web.call({"ping": {}})
    st, r = _admin(s, "POST", "/v1/admin/tenants/default/users/alice/kick",
                   {"reason": "maintenance"})
    assert a_web.push("kicked")["reason"] == "maintenance"
    assert a_web.wait_close(5) == 4001
    assert _admin(s, "POST", "/v1/admin/tenants/default/users/alice/kick",
                  {"device": "toaster"})[0] == 400
    wait_for(lambda: _admin(s, "GET", "/v1/admin/online")[1]["users"] == 2, "kicked still online")
    assert s.login_ws(ta).login_ok["user"] == "alice", "a kicked user may come back"
    c.close()
    wait_for(lambda: _admin(s, "GET", "/v1/admin/tenants/oc/online")[1]["users"] == 0,
             "disconnect not counted")
    ev = [e for e in s.events("kick") if e.get("reason") == "admin"]
    assert len(ev) == 2 and all(e["user"] == "alice" and e["device"] for e in ev)
    b.close()


def test_word_list_replaced_at_run_time(server):
    """PUT the list as the request body: written to DATA/words/<tenant>.txt
    and in force for the next message; an empty body clears it."""
    s = server
    ta = s.signup("alice")
    s.signup("bob")
    a = s.login_ws(ta)
    st, r = _admin(s, "PUT", "/v1/admin/tenants/default/words", raw="# list\nbadword\nworse\n".encode())
    assert st == 200 and r["words"] == 2 and r["tenant"] == "default"
    with open(os.path.join(s.data, "words", "default.txt")) as f:
        assert f.read() == "# list\nbadword\nworse\n"
    r = a.call({"send": {"to": "bob", "text": "so WORSE", "cmid": "w1"}})
    assert r["error"]["code"] == "blocked_content"
    st, r = _admin(s, "PUT", "/v1/admin/tenants/default/words", raw=b"")
    assert st == 200 and r.get("words", 0) == 0
    assert "send_ok" in a.call({"send": {"to": "bob", "text": "so WORSE", "cmid": "w2"}})
    st, r = _admin(s, "PUT", "/v1/admin/tenants/default/words", raw=b"\xff\xfe")
    assert st == 400
    assert _admin(s, "PUT", "/v1/admin/tenants/nope/words", raw=b"x")[0] == 404
    assert s.events("words_replaced")[0]["remote"] == "127.0.0.1"


def test_backup_is_a_data_directory(server):
    """POST /v1/admin/backup takes a RocksDB checkpoint online into
    DATA/backups/<name>, with the small files of the data directory; a
    parleyd started on that directory has every message acknowledged
    before the backup, the same tenants and secrets (old tokens work)."""
    s = server
    ta, tb = s.signup("alice"), s.signup("bob")
    a = s.login_ws(ta)
    for i in range(20):
        assert "send_ok" in a.call({"send": {"to": "bob", "text": "m%d" % i, "cmid": "b%d" % i}})
    st, r = _admin(s, "POST", "/v1/admin/backup", {"name": "nightly"})
    assert st == 200 and r["name"] == "nightly", r
    bdir = os.path.join(s.data, "backups", "nightly")
    assert r["path"].endswith("backups/nightly")
    assert "send_ok" in a.call({"send": {"to": "bob", "text": "after", "cmid": "late"}})
    assert _admin(s, "POST", "/v1/admin/backup", {"name": "nightly"})[0] == 409
    assert _admin(s, "POST", "/v1/admin/backup", {"name": "../x"})[0] == 400
    st, r = _admin(s, "POST", "/v1/admin/backup", {})
    assert st == 200 and r["name"].startswith("backup-")
    copy = tempfile.mkdtemp(prefix="parley-restore-")
    try:
        shutil.rmtree(copy)
        shutil.copytree(bdir, copy)
        with Server(data=copy) as r2:
            st, h = r2.http("GET", "/v1/conversations/dm:alice:bob/messages?limit=100", token=tb)
            assert st == 200
            assert [m["text"] for m in h["msgs"]] == ["m%d" % i for i in reversed(range(20))]
            assert r2.admin_token() == s.admin_token()
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    a.close()


# ---- logs ----

def test_business_events_carry_who_and_where():
    """Issue 5 Logs: login, logout, kick, signup, group changes and bans are
    JSON lines with tenant, user, device, node and remote address."""
    with Server("--node-id", "edge-7") as s:
        ta = s.signup("alice")
        s.signup("bob")
        a = s.login_ws(ta, device="android")
        g = a.call({"group_create": {"name": "G", "members": ["bob"]}})["group_create_ok"]["group"]
        a.call({"group_remove": {"group": g, "user": "bob"}})
        a2 = s.login_ws(ta, device="android")
        a.push("kicked")
        a2.call({"logout": {}})
        _admin(s, "POST", "/v1/admin/tenants/default/users/bob/ban")
        deadline = time.time() + 5
        kinds = ("signup", "login", "logout", "kick", "group_created", "group_removed", "ban")
        while not all(s.events(k) for k in kinds):
            assert time.time() < deadline, "missing events:\n" + s.log()
            time.sleep(0.05)
        for k in kinds:
            for e in s.events(k):
                assert e["node"] == "edge-7", e
                assert e["tenant"] == "default", e
                assert e["remote"] == "127.0.0.1", e
                assert e.get("user"), e
        for k in ("login", "logout", "kick", "group_created", "group_removed"):
            assert all(e.get("device") for e in s.events(k)), k
        assert [e for e in s.events("login") if e.get("device") == "android"]


# ---- SIGHUP and the data directory ----

def test_sighup_reloads_settings():
    """SIGHUP reads the config file again: msg_rate and log_level apply at
    once; a setting that needs a restart is reported as such; a broken file
    changes nothing and the server goes on."""
    d = tempfile.mkdtemp(prefix="parley-hup-")
    conf = os.path.join(d, "parley.conf")
    try:
        with open(conf, "w") as f:
            f.write("msg_rate = 1000\nmsg_burst = 1000\nlog_level = info\n")
        with Server("--config", conf) as s:
            a = s.login_ws(s.signup("alice"))
            s.signup("bob")
            for i in range(5):
                assert "send_ok" in a.call({"send": {"to": "bob", "text": "x", "cmid": "a%d" % i}})
            with open(conf, "w") as f:
                f.write("msg_rate = 1\nmsg_burst = 1\nlog_level = debug\nmax_text = 5\n")
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: s.events("settings reloaded"), "no reload:\n" + s.log())
            ev = s.events("settings reloaded")[-1]
            assert set(ev["applied"].split(",")) == {"msg_rate", "msg_burst", "log_level"}
            assert ev["need_restart"] == "max_text"
            assert "send_ok" in a.call({"send": {"to": "bob", "text": "x", "cmid": "b1"}})
            r = a.call({"send": {"to": "bob", "text": "x", "cmid": "b2"}})
            assert r["error"]["code"] == "rate_limited"
            with open(conf, "w") as f:
                f.write("msg_rate = nonsense\n")
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: s.events("settings not reloaded"), "no error logged")
            assert "pong" in a.call({"ping": {}})
            a.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _conn_admitted(port):
    """Open a connection from 127.0.0.1 and ask for /healthz: the open
    socket if it was answered, None if the server closed it at once (the
    per-IP limits refuse a connection by closing it)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    if _healthz_on(c):
        return c
    c.close()
    return None


def _healthz_on(c):
    """GET /healthz on an open connection: True once the whole answer is
    read, False if the connection was closed instead."""
    c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while not data.endswith(b"}"):
        try:
            more = c.recv(4096)
        except OSError:
            more = b""
        if not more:
            return False
        data += more
    return data.startswith(b"HTTP/1.1 200")


def test_sighup_reloads_ip_limits():
    """max_conns_per_ip and conn_rate_per_ip reload on SIGHUP: connections
    already open stay, a new one over the lowered limit is refused, and one
    is admitted again once the address is under it."""
    d = tempfile.mkdtemp(prefix="parley-hup-")
    conf = os.path.join(d, "parley.conf")
    held = []
    try:
        with open(conf, "w") as f:
            f.write("max_conns_per_ip = 0\nconn_rate_per_ip = 0\n")
        with Server("--config", conf) as s:
            for _ in range(5):
                c = _conn_admitted(s.http_port)
                assert c, "refused before any limit"
                held.append(c)
            with open(conf, "w") as f:
                f.write("max_conns_per_ip = 3\nconn_rate_per_ip = 0\n")
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: s.events("settings reloaded"), "no reload:\n" + s.log())
            ev = s.events("settings reloaded")[-1]
            assert "max_conns_per_ip" in ev["applied"].split(","), ev
            assert _conn_admitted(s.http_port) is None
            # the five stay served
            for c in held:
                assert _healthz_on(c)
            for c in held[:3]:
                c.close()
            del held[:3]
            # two open: the server sees the closes soon after
            wait_for(lambda: _keep(held, _conn_admitted(s.http_port)), "not admitted under the limit")

            # a rate of one a second with a burst of one: the second refused
            with open(conf, "w") as f:
                f.write("max_conns_per_ip = 0\nconn_rate_per_ip = 1\nconn_burst_per_ip = 1\n")
            s.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: len(s.events("settings reloaded")) >= 2, "no second reload")
            results = [_conn_admitted(s.http_port) for _ in range(3)]
            assert None in results, results
            held += [c for c in results if c]
    finally:
        for c in held:
            c.close()
        shutil.rmtree(d, ignore_errors=True)


def _keep(held, c):
    if c:
        held.append(c)
    return c is not None


def _start_fails(data):
    p = subprocess.run([os.environ.get("PARLEYD", "build/parleyd"), "--data", data, "--http",
                        "127.0.0.1:0", "--tcp", "", "--udp", ""], capture_output=True, text=True,
                       timeout=30)
    return p.returncode, p.stderr


def test_data_directory_versions():
    """A fresh data directory gets the current version; one from before
    versions (no file) is migrated forward and keeps its data; a newer
    version than the binary knows is refused with one line and exit 1."""
    d = tempfile.mkdtemp(prefix="parley-ver-")
    try:
        with Server(data=d) as s:
            tok = s.signup("alice")
        with open(os.path.join(d, "parley.version")) as f:
            assert f.read() == "1\n"
        os.unlink(os.path.join(d, "parley.version"))        # as made before versions
        with Server(data=d) as s:
            assert s.http("GET", "/v1/users/alice", token=tok)[0] == 200
            assert s.events("data directory format upgraded")[0]["from"] == "0"
        with open(os.path.join(d, "parley.version")) as f:
            assert f.read() == "1\n"
        with open(os.path.join(d, "parley.version"), "w") as f:
            f.write("2\n")
        rc, err = _start_fails(d)
        assert rc == 1, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "newer" in lines[0] and "version 2" in lines[0], err
        with open(os.path.join(d, "parley.version"), "w") as f:
            f.write("garbage\n")
        rc, err = _start_fails(d)
        assert rc == 1 and "version" in err
    finally:
        shutil.rmtree(d, ignore_errors=True)
