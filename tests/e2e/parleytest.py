"""Helpers for the end-to-end tests: start a real parleyd, and talk to it.

Everything here speaks over real sockets to a real server process:
- Server: starts build/parleyd (or $PARLEYD) on free ports with a temporary
  data directory, reads the bound ports from its JSON start-up log line,
  and on stop checks it exited cleanly with no sanitizer report.
- WS: a minimal RFC 6455 client written for tests, so tests can also send
  what a well-behaved library never would (bad masks, bad UTF-8, huge
  frames, broken fragmentation).
- TCP: length-prefixed protobuf frames.
- UDP: one protobuf frame per datagram, made reliable as docs/protocol.md
  describes (numbers, acks, retransmission), with switches to lose or
  duplicate datagrams on purpose.
- http(): one HTTP/1.1 request with JSON in and out.
"""
import base64
import collections
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN = os.path.join(os.environ.get("PARLEY_BUILD", os.path.join(ROOT, "build")), "gen", "py")


def _load_pb():
    os.makedirs(GEN, exist_ok=True)
    proto = os.path.join(ROOT, "src", "proto", "parley.proto")
    out = os.path.join(GEN, "parley_pb2.py")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(proto):
        subprocess.check_call(["protoc", "--proto_path=" + os.path.dirname(proto),
                               "--python_out=" + GEN, proto])
    sys.path.insert(0, GEN)
    import parley_pb2  # noqa: E402
    return parley_pb2


pb = _load_pb()

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "UndefinedBehaviorSanitizer")

# Cheap password hashing in tests: argon2id at libsodium's minimum cost.
FAST_ARGS = ["--argon2-ops", "1", "--argon2-mem", "8192"]


class Server:
    """A parleyd process on free ports with its own data directory."""

    def __init__(self, *args, data=None, env=None, workers=2, fast=True):
        self.binary = os.environ.get("PARLEYD", os.path.join(ROOT, "build", "parleyd"))
        self.own_data = data is None
        self.data = data or tempfile.mkdtemp(prefix="parley-e2e-")
        self.args = list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.workers = workers
        self.fast = fast
        self.proc = None
        self.lines = []
        self.http_port = self.tcp_port = None

    def start(self, timeout=15):
        cmd = [self.binary, "--data", self.data, "--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0",
               "--udp", "127.0.0.1:0", "--workers", str(self.workers), "--shutdown-grace-ms", "100"]
        if self.fast:
            cmd += FAST_ARGS
        cmd += self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=self.env, text=True)
        started = threading.Event()

        def reader():
            for line in self.proc.stderr:
                self.lines.append(line)
                if '"parleyd started"' in line:
                    rec = json.loads(line)
                    self.http_port = int(rec["http_port"])
                    self.tcp_port = int(rec.get("tcp_port", 0) or 0)
                    self.udp_port = int(rec.get("udp_port", 0) or 0)
                    started.set()
            started.set()

        self.reader = threading.Thread(target=reader, daemon=True)
        self.reader.start()
        if not started.wait(timeout) or self.http_port is None:
            self.kill()
            raise RuntimeError("parleyd did not start:\n" + "".join(self.lines))
        return self

    # -- lifecycle --

    def stop(self, timeout=20):
        """SIGTERM, expect exit 0 and a clean sanitizer report."""
        if not self.proc:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("parleyd did not stop within %ds after SIGTERM" % timeout)
        self.reader.join(5)
        self.proc = None
        self.check_log()
        assert rc == 0, "parleyd exited with %d:\n%s" % (rc, self.log())

    def kill(self):
        """kill -9: no chance to flush anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.reader.join(5)
        self.proc = None

    def check_log(self):
        text = self.log()
        for mark in SANITIZER_MARKS:
            assert mark not in text, "sanitizer report:\n" + text

    def log(self):
        return "".join(self.lines)

    def events(self, msg):
        out = []
        for line in list(self.lines):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("msg") == msg:
                out.append(rec)
        return out

    def cleanup(self):
        if self.own_data:
            shutil.rmtree(self.data, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.stop()
            else:
                self.kill()
        finally:
            self.cleanup()

    # -- files the server writes --

    def admin_token(self):
        with open(os.path.join(self.data, "admin.token")) as f:
            return f.read().strip()

    def default_key(self):
        with open(os.path.join(self.data, "default.key")) as f:
            return f.read().strip()

    # -- clients --

    def http(self, method, path, body=None, token=None, headers=None, raw=None):
        return http_call(self.http_port, method, path, body, token, headers, raw)

    def ws(self, **kw):
        return WS(self.http_port, **kw)

    def tcp(self):
        return TCP(self.tcp_port)

    def udp(self, **kw):
        return UDP(self.udp_port, **kw)

    def signup(self, user, password="password1", tenant=None):
        body = {"user": user, "password": password}
        if tenant:
            body["tenant"] = tenant
        st, r = self.http("POST", "/v1/signup", body)
        assert st == 200, (st, r)
        return r["token"]

    def login_ws(self, token, device="web", binary=False, **kw):
        c = self.ws(binary=binary, **kw)
        r = c.call({"login": {"token": token, "device": device}})
        assert "login_ok" in r, r
        c.login_ok = r["login_ok"]
        return c

    def login_udp(self, token, device="web", **kw):
        c = self.udp(**kw)
        r = c.call({"login": {"token": token, "device": device}})
        assert "login_ok" in r, r
        c.login_ok = r["login_ok"]
        return c


def http_call(port, method, path, body=None, token=None, headers=None, raw=None, timeout=10):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    if token:
        h["Authorization"] = "Bearer " + token
    conn.request(method, path, body=data, headers=h)
    resp = conn.getresponse()
    payload = resp.read()
    conn.close()
    try:
        parsed = json.loads(payload) if payload else None
    except ValueError:
        parsed = payload
    http_call.last_headers = dict(resp.getheaders())
    return resp.status, parsed


class Closed(Exception):
    def __init__(self, code, reason):
        super().__init__("connection closed: %s %s" % (code, reason))
        self.code = code
        self.reason = reason


def frame_to_pb(obj):
    """A JSON-shaped frame dict to protobuf bytes (same field names)."""
    from google.protobuf import json_format
    return json_format.ParseDict(obj, pb.Frame(), ignore_unknown_fields=False).SerializeToString()


def pb_to_frame(data):
    from google.protobuf import json_format
    f = pb.Frame()
    f.ParseFromString(data)
    return json_format.MessageToDict(f, preserving_proto_field_name=True,
                                     including_default_value_fields=False)


def _norm(obj):
    """protobuf's JSON mapping writes 64-bit integers as strings: undo that."""
    if isinstance(obj, dict):
        return {k: _norm(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_norm(v) for v in obj]
    if isinstance(obj, str) and obj.isdigit() and len(obj) < 17:
        return int(obj)
    return obj


class FrameConn:
    """Common request/response logic over a frame transport."""
    next_id = 1

    def __init__(self):
        self.pending = []      # frames received but not yet consumed

    def call(self, body, timeout=10):
        fid = FrameConn.next_id
        FrameConn.next_id += 1
        frame = dict(body)
        frame["id"] = fid
        self.send(frame)
        return self.wait(lambda f: f.get("id") == fid, timeout)

    def wait(self, pred, timeout=10):
        for i, f in enumerate(self.pending):
            if pred(f):
                return self.pending.pop(i)
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no matching frame; pending: %r" % self.pending)
            f = self.recv(left)
            if f is None:
                continue
            if pred(f):
                return f
            self.pending.append(f)

    def push(self, kind, timeout=10):
        return self.wait(lambda f: kind in f and "id" not in f, timeout)[kind]

    def no_push(self, kind, wait=0.5):
        try:
            self.push(kind, wait)
        except TimeoutError:
            return True
        return False


class WS(FrameConn):
    def __init__(self, port, path="/v1/ws", binary=False, origin=None, connect=True):
        super().__init__()
        self.port = port
        self.binary = binary
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.close_code = None
        if connect:
            st, hdrs = self.handshake(path, origin)
            if st != 101:
                raise ConnectionError("upgrade refused: %d" % st)

    def handshake(self, path="/v1/ws", origin=None, extra=""):
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               % (path, self.port, key))
        if origin:
            req += "Origin: %s\r\n" % origin
        req += extra + "\r\n"
        self.sock.sendall(req.encode())
        while b"\r\n\r\n" not in self.buf:
            d = self.sock.recv(4096)
            if not d:
                raise ConnectionError("closed during handshake")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        return status, hdrs

    # -- raw frames --

    @staticmethod
    def encode(opcode, payload, fin=True, mask=True, rsv=0):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        mbit = 0x80 if mask else 0
        if n < 126:
            hdr = struct.pack("!BB", b0, mbit | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, mbit | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, mbit | 127, n)
        if not mask:
            return hdr + payload
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return hdr + key + masked

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload, **kw):
        self.sock.sendall(self.encode(opcode, payload, **kw))

    def _read(self, n, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise Closed(self.close_code, "eof")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self, timeout=10):
        """(opcode, payload) of one whole message; handles ping, raises Closed."""
        msg, msg_op = b"", None
        while True:
            b0, b1 = self._read(2, timeout)
            op, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            if b1 & 0x80:
                raise AssertionError("server frames must not be masked")
            if n == 126:
                n = struct.unpack("!H", self._read(2, timeout))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8, timeout))[0]
            payload = self._read(n, timeout) if n else b""
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self.close_code = code
                try:
                    self.send_frame(8, payload[:2])
                except OSError:
                    pass
                raise Closed(code, payload[2:].decode(errors="replace"))
            if op == 9:
                self.send_frame(10, payload)
                continue
            if op == 10:
                return op, payload
            if op != 0:
                msg_op = op
            msg += payload
            if fin:
                return msg_op, msg

    # -- frames --

    def send(self, frame):
        if self.binary:
            self.send_frame(2, frame_to_pb(frame))
        else:
            self.send_frame(1, json.dumps(frame).encode())

    def recv(self, timeout=10):
        op, payload = self.recv_frame(timeout)
        if op == 1:
            return json.loads(payload)
        if op == 2:
            return _norm(pb_to_frame(payload))
        return None

    def wait_close(self, timeout=10):
        """Read until the server closes; return the close code (None: no close frame)."""
        try:
            while True:
                self.recv_frame(timeout)
        except Closed as e:
            return e.code
        except (ConnectionResetError, BrokenPipeError):
            return self.close_code

    def close(self):
        try:
            self.send_frame(8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class TCP(FrameConn):
    def __init__(self, port):
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, frame):
        data = frame_to_pb(frame)
        self.sock.sendall(struct.pack("!I", len(data)) + data)

    def _read(self, n, timeout):
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise Closed(None, "eof")
            self.buf += d
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=10):
        n = struct.unpack("!I", self._read(4, timeout))[0]
        return _norm(pb_to_frame(self._read(n, timeout)))

    def wait_close(self, timeout=10):
        try:
            while True:
                self.recv(timeout)
        except Closed:
            return True
        except ConnectionResetError:
            return True

    def close(self):
        self.sock.close()


class UDP(FrameConn):
    """A client of the UDP port (docs/protocol.md, "UDP"): every frame it
    sends carries a new `dgram` number and is sent again with backoff until
    the server acks it; every numbered datagram from the server is acked at
    once (ack-only datagram) and handed on once, duplicates dropped.

    Faults on purpose: drop_first ignores the first copy of every server
    datagram (as if the network lost it: no ack, not delivered), so only
    the server's retransmission gets through; duplicate sends every
    datagram twice; ack=False never acks; retransmit=False sends once.
    `copies[d]` counts the copies of server datagram d that arrived, and
    `acked` holds the numbers of our datagrams the server acknowledged."""

    RTO = 0.2
    MAX_TRIES = 7

    def __init__(self, port, drop_first=False, duplicate=False, ack=True, retransmit=True):
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.connect(("127.0.0.1", port))
        self.drop_first, self.duplicate = drop_first, duplicate
        self.ack, self.retransmit = ack, retransmit
        self.next_dgram = 1
        self.unacked = {}                 # our dgram -> [bytes, due time, sends]
        self.acked = set()
        self.seen = set()                 # server dgrams handed on
        self.copies = collections.Counter()
        self.gave_up = False              # a datagram of ours was never acked

    def _out(self, data):
        try:
            self.sock.send(data)
            if self.duplicate:
                self.sock.send(data)
        except OSError:
            pass

    def send(self, frame, dgram=None):
        """Send a frame under a new number (or the given one); returns it."""
        d = dgram if dgram is not None else self.next_dgram
        self.next_dgram = max(self.next_dgram, d + 1)
        f = dict(frame)
        f["dgram"] = d
        data = frame_to_pb(f)
        self.unacked[d] = [data, time.time() + self.RTO, 1]
        self._out(data)
        return d

    def send_raw(self, data):
        self._out(data)

    def _resend(self):
        if not self.retransmit:
            return
        now = time.time()
        for d, entry in list(self.unacked.items()):
            data, due, sends = entry
            if due > now:
                continue
            if sends >= self.MAX_TRIES:
                del self.unacked[d]
                self.gave_up = True
                continue
            entry[1] = now + min(self.RTO * (2 ** sends), 3.2)
            entry[2] = sends + 1
            self._out(data)

    def _pump(self, timeout):
        """Take one datagram (or time out), do the protocol's chores, and
        return a new frame, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, ConnectionRefusedError):
            data = None
        self._resend()
        if data is None:
            return None
        f = pb.Frame()
        f.ParseFromString(data)
        for a in f.acks:
            self.acked.add(a)
            self.unacked.pop(a, None)
        if f.WhichOneof("body") is None:
            return None
        d = f.dgram
        assert d > 0, "a server frame without a number: %r" % f
        self.copies[d] += 1
        if self.drop_first and self.copies[d] == 1:
            return None
        if self.ack:
            self._out(frame_to_pb({"acks": [d]}))
        if d in self.seen:
            return None
        self.seen.add(d)
        out = _norm(pb_to_frame(data))
        out.pop("acks", None)
        return out

    def recv(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None
            f = self._pump(min(left, 0.05))
            if f is not None:
                return f

    def pump(self, seconds):
        """Run the protocol for a while, keeping what arrives in pending."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            f = self._pump(min(deadline - time.time(), 0.05))
            if f is not None:
                self.pending.append(f)

    def close(self):
        self.sock.close()
