"""libparley through parley-cli's scripted and interactive modes, against a
real parleyd: send acks and exit codes, tail's JSON lines and useq, login
failures, kick, both transports and encodings, and exactly-once resends
across reconnects (a proxy that swallows the first send_ok, and a server
killed and restarted while a send is retrying)."""
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

from parleytest import ROOT, Server

BUILD = os.environ.get("PARLEY_BUILD", os.path.join(ROOT, "build"))
CLI = os.path.join(BUILD, "parley-cli")
SLOW = os.environ.get("PARLEY_E2E_SLOW") == "1"


def cli(*args, stdin=None, timeout=60, env=None):
    """Run parley-cli to completion: (exit status, stdout, stderr)."""
    p = subprocess.run([CLI] + list(args), input=stdin, capture_output=True, text=True, timeout=timeout,
                       env=env)
    assert "ERROR: AddressSanitizer" not in p.stderr and "runtime error:" not in p.stderr, p.stderr
    assert "ERROR: LeakSanitizer" not in p.stderr, p.stderr
    return p.returncode, p.stdout, p.stderr


def ws_url(server):
    return "ws://127.0.0.1:%d" % server.http_port


def history(server, token, conv):
    st, r = server.http("GET", "/v1/conversations/%s/messages" % conv, token=token)
    assert st == 200, (st, r)
    return r.get("msgs", [])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_send_exits_zero_after_send_ok_and_message_is_stored(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    rc, out, err = cli("send", "--url", ws_url(server), "--token", ta, "--to", "bob", "hello", "bob")
    assert rc == 0, err
    ack = json.loads(out)
    assert ack["conv"] == "dm:alice:bob" and ack["seq"] == 1 and ack["useq"] == 1 and ack["cmid"]
    msgs = history(server, tb, "dm:alice:bob")
    assert [(m["seq"], m["from"], m["text"], m["cmid"]) for m in msgs] == [(1, "alice", "hello bob", ack["cmid"])]


def test_send_over_tcp_and_protobuf_websocket_and_text_from_stdin(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    rc, out, err = cli("send", "--url", "tcp://127.0.0.1:%d" % server.tcp_port, "--token", ta, "--to", "bob",
                       "over tcp")
    assert rc == 0, err
    rc, out, err = cli("send", "--url", ws_url(server), "--encoding", "pb", "--token", ta, "--to", "bob",
                       "--cmid", "fixed-1", "over protobuf")
    assert rc == 0, err
    assert json.loads(out)["cmid"] == "fixed-1"
    rc, out, err = cli("send", "--url", ws_url(server), "--token", ta, "--to", "bob", stdin="from stdin\n")
    assert rc == 0, err
    texts = [m["text"] for m in reversed(history(server, tb, "dm:alice:bob"))]
    assert texts == ["over tcp", "over protobuf", "from stdin"]


def test_same_cmid_twice_stores_once(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    acks = []
    for _ in range(2):
        rc, out, err = cli("send", "--url", ws_url(server), "--token", ta, "--to", "bob", "--cmid", "once", "x")
        assert rc == 0, err
        acks.append(json.loads(out))
    assert acks[0] == acks[1]
    assert len(history(server, tb, "dm:alice:bob")) == 1


def test_password_login_and_failures_have_distinct_exit_codes(server, tmp_path):
    server.signup("alice", password="right-password")
    server.signup("bob")
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("right-password\n")
    bad.write_text("wrong-password\n")
    rc, out, err = cli("send", "--url", ws_url(server), "--user", "alice", "--password-file", str(good),
                       "--to", "bob", "hi")
    assert rc == 0, err
    rc, out, err = cli("send", "--url", ws_url(server), "--user", "alice", "--password-file", str(bad),
                       "--to", "bob", "hi")
    assert rc == 3 and "unauthorized" in err, (rc, err)
    rc, out, err = cli("tail", "--url", ws_url(server), "--user", "alice", "--password-file", str(bad))
    assert rc == 3, (rc, err)
    rc, out, err = cli("send", "--url", ws_url(server), "--token", "v1.not-a-token", "--to", "bob", "hi")
    assert rc == 3, (rc, err)
    # Refused request: no such user.
    rc, out, err = cli("send", "--url", ws_url(server), "--user", "alice", "--password-file", str(good),
                       "--to", "nobody", "hi")
    assert rc == 1 and "not_found" in err, (rc, err)
    # Usage errors.
    assert cli("send", "--to", "bob")[0] == 2
    assert cli("send", "--token", "x", "hi")[0] == 2
    assert cli("send", "--url", "http://x", "--token", "x", "--to", "b", "hi")[0] == 2
    assert cli("--bogus")[0] == 2
    rc, out, _ = cli("--help")
    assert rc == 0 and "Exit status" in out


def test_unreachable_server_exits_4_within_timeout():
    port = free_port()
    t = time.time()
    rc, out, err = cli("send", "--url", "ws://127.0.0.1:%d" % port, "--token", "v1.x", "--to", "bob",
                       "--timeout", "2", "hi")
    assert rc == 4, (rc, err)
    assert "connection refused" in err
    assert time.time() - t < 10


def test_tail_syncs_then_prints_pushes_as_json_lines(server, tmp_path):
    ta, tb = server.signup("alice"), server.signup("bob")
    for i in range(3):
        assert cli("send", "--url", ws_url(server), "--token", ta, "--to", "bob", "before %d" % i)[0] == 0
    useq_file = tmp_path / "useq"
    useq_file.write_text("1\n")
    p = subprocess.Popen([CLI, "tail", "--url", ws_url(server), "--token", tb, "--useq-file", str(useq_file),
                          "--count", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The sync from useq 1 brings messages 2 and 3.
        first = json.loads(p.stdout.readline())
        assert first["useq"] == 2 and first["text"] == "before 1"
        second = json.loads(p.stdout.readline())
        assert second["useq"] == 3
        # Then pushes.
        assert cli("send", "--url", ws_url(server), "--token", ta, "--to", "bob", "pushed 1")[0] == 0
        assert cli("send", "--url", "tcp://127.0.0.1:%d" % server.tcp_port, "--token", ta, "--to", "bob",
                   "pushed 2")[0] == 0
        rest = [json.loads(p.stdout.readline()) for _ in range(2)]
        rc = p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read()
    assert rc == 0, err
    assert [m["text"] for m in rest] == ["pushed 1", "pushed 2"]
    assert [m["useq"] for m in rest] == [4, 5]
    for m in [first, second] + rest:
        assert set(m) == {"conv", "seq", "useq", "from", "text", "ts", "cmid"}
        assert m["conv"] == "dm:alice:bob" and m["from"] == "alice"
    assert useq_file.read_text().strip() == "5"


def test_tail_is_kicked_by_a_newer_login_on_the_same_device(server):
    tb = server.signup("bob")
    p = subprocess.Popen([CLI, "tail", "--url", ws_url(server), "--token", tb, "--device", "desktop"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Wait for tail's login (the server logs each), then log in again.
        deadline = time.time() + 30
        while not [e for e in server.events("login") if e.get("user") == "bob"] and time.time() < deadline:
            time.sleep(0.05)
        c = server.login_ws(tb, device="desktop")
        rc = p.wait(20)
        c.close()
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read()
    assert rc == 5 and "kicked" in err, (rc, err)


def test_interactive_commands(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    b = server.login_ws(tb)
    script = "/msg bob hello from the terminal\nand a plain line\n/join g1\n/nope\n/quit\n"
    rc, out, err = cli("--url", ws_url(server), "--token", ta, stdin=script)
    assert rc == 0, err
    assert "logged in as alice" in err
    assert b.push("msg")["text"] == "hello from the terminal"
    assert b.push("msg")["text"] == "and a plain line"
    # No such group: the server's own error is shown.
    assert "/join g1:" in out and ("not_found" in out or "bad_request" in out)
    assert "unknown command /nope" in out
    rc, out, err = cli("--url", ws_url(server), "--token", ta, stdin="/history bob\n")
    assert rc == 0, err
    assert out.index("alice: hello from the terminal") < out.index("alice: and a plain line")
    # Incoming messages are shown.
    p = subprocess.Popen([CLI, "--url", ws_url(server), "--token", ta], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 20
        line = ""
        while "logged in" not in line and time.time() < deadline:
            line = p.stderr.readline()
        assert "logged in" in line
        assert "send_ok" in b.call({"send": {"to": "alice", "text": "hi alice", "cmid": "b1"}})
        shown = p.stdout.readline()
        assert "bob: hi alice" in shown
        p.stdin.write("/quit\n")
        p.stdin.flush()
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()


class DropFirstAckProxy:
    """A TCP proxy in front of the WebSocket port that forwards everything
    except the first server frame containing send_ok: there it closes both
    sides, so the client sees its connection drop after the server stored
    the message but before the ack reached it."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.dropped = threading.Event()
        self.connections = 0
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            u = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self.pipe_up, args=(c, u), daemon=True).start()
            threading.Thread(target=self.pipe_down, args=(u, c), daemon=True).start()

    @staticmethod
    def pipe_up(c, u):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                u.sendall(d)
        except OSError:
            pass
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def pipe_down(self, u, c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = u.recv(65536)
                if not d:
                    raise OSError
                buf += d
            head, buf = buf.split(b"\r\n\r\n", 1)
            c.sendall(head + b"\r\n\r\n")
            while True:
                while True:
                    frame = self.whole_frame(buf)
                    if frame is None:
                        break
                    n, payload = frame
                    if b'"send_ok"' in payload and not self.dropped.is_set():
                        self.dropped.set()
                        raise OSError
                    c.sendall(buf[:n])
                    buf = buf[n:]
                d = u.recv(65536)
                if not d:
                    break
                buf += d
        except OSError:
            pass
        for s in (c, u):
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    @staticmethod
    def whole_frame(b):
        if len(b) < 2:
            return None
        n = b[1] & 0x7F
        h = 2
        if n == 126:
            if len(b) < 4:
                return None
            n, h = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, h = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < h + n:
            return None
        return h + n, b[h:h + n]

    def close(self):
        self.closed = True
        self.sock.close()


def test_resend_after_lost_ack_does_not_duplicate(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    proxy = DropFirstAckProxy(server.http_port)
    try:
        rc, out, err = cli("send", "--url", "ws://127.0.0.1:%d" % proxy.port, "--token", ta, "--to", "bob",
                           "exactly once", "--timeout", "30")
    finally:
        proxy.close()
    assert rc == 0, err
    assert proxy.dropped.is_set(), "the proxy never saw a send_ok"
    assert proxy.connections >= 2, "the client did not reconnect"
    ack = json.loads(out)
    assert ack["seq"] == 1
    msgs = history(server, tb, "dm:alice:bob")
    assert [(m["seq"], m["text"]) for m in msgs] == [(1, "exactly once")]


def test_send_retries_while_the_server_is_killed_and_restarted(tmp_path):
    port = free_port()
    data = str(tmp_path / "data")
    s = Server("--http", "127.0.0.1:%d" % port, data=data).start()
    try:
        ta, tb = s.signup("alice"), s.signup("bob")
        assert cli("send", "--url", "ws://127.0.0.1:%d" % port, "--token", ta, "--to", "bob", "first")[0] == 0
        s.kill()
        p = subprocess.Popen([CLI, "send", "--url", "ws://127.0.0.1:%d" % port, "--token", ta, "--to", "bob",
                              "--cmid", "across-restart", "--timeout", "60", "second"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert p.poll() is None, "send gave up while the server was down"
        s = Server("--http", "127.0.0.1:%d" % port, data=data).start()
        rc = p.wait(60)
        out, err = p.communicate()
        assert rc == 0, err
        assert json.loads(out)["seq"] == 2
        # The same cmid again after the restart: the original ack, nothing new.
        rc, out2, err = cli("send", "--url", "ws://127.0.0.1:%d" % port, "--token", ta, "--to", "bob",
                            "--cmid", "across-restart", "second")
        assert rc == 0 and json.loads(out2)["seq"] == 2, err
        msgs = history(s, tb, "dm:alice:bob")
        assert [(m["seq"], m["text"]) for m in reversed(msgs)] == [(1, "first"), (2, "second")]
        s.stop()
    finally:
        s.kill()
        import shutil
        shutil.rmtree(data, ignore_errors=True)


def test_interactive_join_and_talk_in_a_channel(server):
    ta, tb = server.signup("alice"), server.signup("bob")
    st, r = server.http("POST", "/v1/groups", {"group": "news", "name": "News", "kind": "channel"}, token=tb)
    if st == 404:
        pytest.skip("this server does not serve groups")
    assert st == 200, (st, r)
    b = server.login_ws(tb)
    rc, out, err = cli("--url", ws_url(server), "--token", ta, stdin="/join news\nhello channel\n/quit\n")
    assert rc == 0, err
    assert "joined news" in out
    m = b.push("msg")
    assert m["conv"] == "g:news" and m["from"] == "alice" and m["text"] == "hello channel"
    rc, out, err = cli("send", "--url", ws_url(server), "--token", ta, "--group", "news", "by send")
    assert rc == 0, err
    assert json.loads(out)["conv"] == "g:news"
    assert b.push("msg")["text"] == "by send"
