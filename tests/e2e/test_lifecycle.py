"""Shutdown, token expiry and the password-hashing bound (SPEC sections 2
Safety and 5; issue 2: graceful shutdown, tokens expiring, argon2 off the
event loop with a cap)."""
import threading
import time

from parleytest import Server, http_call


def test_sigterm_sends_goaway_then_closes_and_exits_zero():
    """SPEC 2 Scale-out and operations: graceful shutdown tells clients to
    reconnect elsewhere; new connections are refused at once."""
    s = Server("--shutdown-grace-ms", "1500")
    s.start()
    try:
        t = s.signup("alice")
        ws = s.login_ws(t)
        tcp = s.tcp()
        assert "login_ok" in tcp.call({"login": {"token": t, "device": "desktop"}})
        s.proc.send_signal(15)
        g = ws.push("goaway", timeout=5)
        assert "reason" in g
        assert tcp.push("goaway", timeout=5)
        try:
            http_call(s.http_port, "GET", "/readyz", timeout=2)
            assert False, "a draining node accepted a new connection"
        except ConnectionRefusedError:
            pass
        # connections already open are still served during the grace
        assert "pong" in ws.call({"ping": {}})
        assert ws.wait_close(5) == 1001
        assert tcp.wait_close(5)
        assert s.proc.wait(10) == 0
        s.check_log()
    finally:
        s.kill()
        s.cleanup()


def test_expired_token_is_refused():
    """Tokens are signed and expiring (SPEC 2 Safety)."""
    with Server("--token-ttl-ms", "1500") as s:
        t = s.signup("alice")
        st, r = s.http("GET", "/v1/users/alice", token=t)
        assert st == 200
        time.sleep(1.8)
        st, r = s.http("GET", "/v1/users/alice", token=t)
        assert st == 401 and r["error"]["code"] == "unauthorized"
        c = s.ws()
        r = c.call({"login": {"token": t}})
        assert r["error"]["code"] == "unauthorized"


def test_password_hashing_queue_is_bounded():
    """argon2id runs on its own threads with a cap on what waits, so a burst
    of logins cannot exhaust memory: past the cap, `unavailable`."""
    with Server("--argon2-threads", "1", "--argon2-queue", "2", "--argon2-ops", "3",
                "--argon2-mem", str(64 << 20), "--login-rate-per-ip", "1000",
                "--login-burst-per-ip", "1000", fast=False) as s:
        results = []

        def signup(i):
            st, r = http_call(s.http_port, "POST", "/v1/signup",
                              {"user": "u%d" % i, "password": "password%d" % i}, timeout=60)
            results.append((st, r))

        threads = [threading.Thread(target=signup, args=(i,)) for i in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        codes = sorted(st for st, _ in results)
        assert 200 in codes, codes
        refused = [r for st, r in results if st == 503]
        assert refused, codes
        assert all(r["error"]["code"] == "unavailable" for r in refused)
        # the server still serves once the burst is over
        st, r = http_call(s.http_port, "POST", "/v1/signup", {"user": "late", "password": "password9"},
                          timeout=60)
        assert st == 200
