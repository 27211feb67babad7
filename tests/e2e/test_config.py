"""Running parleyd: flags, config file, PARLEY_* environment, and the one-line
failures for a bad setting, a port in use and an unusable data directory
(SPEC section 5; issue 2, "Server").  Most tests start the binary directly."""
import json
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from parleytest import ROOT, Server

BINARY = os.environ.get("PARLEYD", os.path.join(ROOT, "build", "parleyd"))
PORTS = ["--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"]


@pytest.fixture
def tmpdir_():
    d = tempfile.mkdtemp(prefix="parley-cfg-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_") or
           k in ("PARLEY_BUILD",)}
    env.update(extra)
    return env


def run(args, env=None, timeout=30):
    """Run parleyd to completion (for the cases that must fail or print)."""
    p = subprocess.run([BINARY] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=env or _env(), timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def _is_log_record(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return False
    return isinstance(rec, dict) and "msg" in rec and "level" in rec


def one_line(stderr):
    """The reason: exactly one line on stderr besides JSON log records (a
    first start logs what it created before it finds a port in use), and it
    is the last line; no sanitizer report."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    reasons = [l for l in lines if not _is_log_record(l)]
    assert len(reasons) == 1, "expected a one-line reason on stderr, got:\n" + stderr
    assert lines[-1] == reasons[0], "the reason is not the last line:\n" + stderr
    assert reasons[0].startswith("parleyd: "), reasons[0]
    assert "Sanitizer" not in stderr and "runtime error" not in stderr
    return reasons[0]


# ---- bad settings ----

BAD_FLAGS = [
    (["--workers", "abc"], "workers"),
    (["--workers", "-1"], "workers"),
    (["--workers", "100000"], "workers"),
    (["--max-frame", "12x"], "max_frame"),
    (["--max-frame", "1"], "max_frame"),
    (["--msg-rate", "fast"], "msg_rate"),
    (["--msg-rate", "-5"], "msg_rate"),
    (["--msg-rate", "nan"], "msg_rate"),
    (["--store-sync", "maybe"], "store_sync"),
    (["--idle-timeout-ms", ""], "idle_timeout_ms"),
    (["--max-text", "99999999999999999999999"], "max_text"),
    (["--workers"], "--workers"),
    (["--frobnicate", "1"], "--frobnicate"),
    (["--frobnicate=1"], "--frobnicate"),
    (["stray-argument"], "stray-argument"),
    (["-w", "2"], "-w"),
    (["--config"], "--config"),
]


@pytest.mark.parametrize("args,names", BAD_FLAGS, ids=[" ".join(a) for a, _ in BAD_FLAGS])
def test_bad_flag(tmpdir_, args, names):
    """SPEC 5: a bad setting or unknown flag -> non-zero exit and one line on
    stderr naming the setting (nothing started, nothing written)."""
    data = os.path.join(tmpdir_, "data")
    rc, out, err = run(["--data", data] + PORTS + args)
    assert rc != 0
    line = one_line(err)
    assert names in line, line
    assert not os.path.exists(data), "a failed start wrote the data directory"


BAD_AT_START = [
    (["--log-level", "verbose"], "log_level"),
    (["--admin-token", "short"], "admin_token"),
    (["--http", "nonsense"], "nonsense"),
    (["--http", "127.0.0.1:99999"], "127.0.0.1:99999"),
    (["--tcp", "256.1.1.1:0"], "256.1.1.1:0"),
]


@pytest.mark.parametrize("args,names", BAD_AT_START, ids=[" ".join(a) for a, _ in BAD_AT_START])
def test_bad_setting_at_start(tmpdir_, args, names):
    """SPEC 5: settings found bad when the server starts (a level, a token,
    an address) -> non-zero exit and one line naming them."""
    rc, out, err = run(["--data", os.path.join(tmpdir_, "data")] + PORTS + args)
    assert rc != 0
    assert names in one_line(err)


def test_help(tmpdir_):
    """SPEC 5: --help prints every setting and exits 0 without starting."""
    rc, out, err = run(["--help"])
    assert rc == 0 and not err.strip()
    for flag in ("--http", "--tcp", "--udp", "--data", "--config", "--workers", "--max-text",
                 "--admin-token", "--allowed-origins", "--msg-rate", "--idle-timeout-ms"):
        assert flag in out, flag
    assert "PARLEY_" in out
    rc, out2, err = run(["--data", os.path.join(tmpdir_, "d"), "-h"])
    assert rc == 0 and out2 == out
    assert not os.path.exists(os.path.join(tmpdir_, "d"))


# ---- config file and environment ----

def _sends(s, n_ok, n_bad):
    """Text of n_ok code points is accepted and n_bad refused as too_large."""
    ta = s.signup("alice")
    s.signup("bob")
    a = s.login_ws(ta)
    r = a.call({"send": {"to": "bob", "text": "é" * n_ok, "cmid": "ok"}})
    assert "send_ok" in r, r
    r = a.call({"send": {"to": "bob", "text": "é" * n_bad, "cmid": "bad"}})
    assert r["error"]["code"] == "too_large", r


def test_config_file_is_honoured(tmpdir_):
    """SPEC 5: a config file of `key = value` lines (comments, blank lines,
    quotes, spaces) sets the settings."""
    path = os.path.join(tmpdir_, "parley.conf")
    with open(path, "w") as f:
        f.write("# parley settings\n\n   max_text = 5  \nnode_id=\"cfg node\"\n"
                "msg_burst = 300\n# max_text = 9999\n")
    with Server("--config", path) as s:
        _sends(s, 5, 6)
        rec = [r for r in s.events("parleyd started")][0]
        assert rec["node"] == "cfg node"
    # also named by PARLEY_CONFIG
    with Server(env={"PARLEY_CONFIG": path}) as s:
        _sends(s, 5, 6)


@pytest.mark.parametrize("text,names", [
    ("max_text = 5\nfrobnicate = 1\n", ["frobnicate", ":2"]),
    ("max_text = five\n", ["max_text", ":1"]),
    ("just words\n", [":1"]),
    ("workers = 0\nmax_frame = 10\n", ["max_frame", ":2"]),
], ids=["unknown key", "bad value", "no equals", "out of range"])
def test_config_file_errors(tmpdir_, text, names):
    """SPEC 5: an unknown key or a bad value in the config file -> non-zero,
    one line naming the key and the file's line."""
    path = os.path.join(tmpdir_, "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    rc, out, err = run(["--config", path, "--data", os.path.join(tmpdir_, "d")] + PORTS)
    assert rc != 0
    line = one_line(err)
    assert "bad.conf" in line
    for n in names:
        assert n in line, line


def test_missing_config_file(tmpdir_):
    """SPEC 5: a config file that cannot be read is a one-line error."""
    path = os.path.join(tmpdir_, "nope.conf")
    rc, out, err = run(["--config", path] + PORTS)
    assert rc != 0 and "nope.conf" in one_line(err)
    rc, out, err = run(PORTS, env=_env(PARLEY_CONFIG=path))
    assert rc != 0 and "nope.conf" in one_line(err)


def test_environment_and_precedence(tmpdir_):
    """SPEC 5: every setting has a PARLEY_* variable; the environment
    overrides the config file, a flag overrides the environment."""
    with Server(env={"PARLEY_MAX_TEXT": "5"}) as s:
        _sends(s, 5, 6)
    with Server("--max-text", "7", env={"PARLEY_MAX_TEXT": "5"}) as s:
        _sends(s, 7, 8)
    path = os.path.join(tmpdir_, "p.conf")
    with open(path, "w") as f:
        f.write("max_text = 3\n")
    with Server("--config", path, env={"PARLEY_MAX_TEXT": "4"}) as s:
        _sends(s, 4, 5)
    rc, out, err = run(PORTS, env=_env(PARLEY_WORKERS="abc"))
    assert rc != 0
    line = one_line(err)
    assert "workers" in line and "PARLEY_WORKERS" in line, line


def test_environment_secrets(tmpdir_):
    """SPEC 4: the admin token may come from PARLEY_ADMIN_TOKEN; then it works
    and no admin.token file is generated."""
    token = "env-admin-token-0123456789"
    with Server(env={"PARLEY_ADMIN_TOKEN": token}) as s:
        st, r = s.http("POST", "/v1/admin/tenants", {"tenant": "envt"}, token=token)
        assert st == 200 and r["api_key"]
        assert not os.path.exists(os.path.join(s.data, "admin.token"))


# ---- ports ----

def _busy_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock, sock.getsockname()[1]


def test_port_in_use(tmpdir_):
    """SPEC 5: a port in use -> non-zero with a one-line reason that names
    the address; for the HTTP, the TCP and the UDP port.  The ports are
    checked before anything is written: the data directory is not even
    created."""
    sock, port = _busy_port()
    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.bind(("127.0.0.1", 0))
    uaddr = "127.0.0.1:%d" % usock.getsockname()[1]
    data = os.path.join(tmpdir_, "d")
    try:
        addr = "127.0.0.1:%d" % port
        for args, busy in ((["--http", addr, "--tcp", "127.0.0.1:0", "--udp", "127.0.0.1:0"], addr),
                           (["--http", "127.0.0.1:0", "--tcp", addr, "--udp", "127.0.0.1:0"], addr),
                           (["--http", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--udp", uaddr], uaddr)):
            rc, out, err = run(["--data", data] + args)
            assert rc != 0
            line = one_line(err)
            assert busy in line, line
            assert "in use" in line.lower(), line
            assert not os.path.exists(data), "data directory created before the port check"
    finally:
        sock.close()
        usock.close()


def test_data_directory_in_use(tmpdir_):
    """A second parleyd on a data directory a running one holds stops with
    one line naming the directory and the holder's pid, whatever its ports;
    once the first has stopped the directory starts again."""
    data = os.path.join(tmpdir_, "d")
    with Server(data=data) as s:
        rc, out, err = run(["--data", data] + PORTS)
        assert rc == 1
        line = one_line(err)
        assert data in line and "in use by another parleyd" in line, line
        assert "(pid %d)" % s.proc.pid in line, line
        with open(os.path.join(data, "parley.pid")) as f:
            assert f.read() == "%d\n" % s.proc.pid
    with Server(data=data) as s:
        assert s.http("GET", "/healthz")[0] == 200


# ---- data directory ----

def test_unusable_data_directory(tmpdir_):
    """SPEC 5: an unusable data directory -> non-zero with one line naming
    it: a regular file in its place; a path under a regular file (ENOTDIR,
    fails even for root); a directory the process may not write (chmod 0500
    for a normal user; the tests usually run as root, which writes anywhere
    on a writable file system, so there sysfs stands in: a directory that
    refuses new entries even to root)."""
    f = os.path.join(tmpdir_, "plain-file")
    with open(f, "w") as fh:
        fh.write("x")
    cases = [f, os.path.join(f, "data")]
    if os.geteuid() != 0:
        ro = os.path.join(tmpdir_, "ro")
        os.mkdir(ro, 0o500)
        cases.append(ro)
    else:
        cases.append("/sys/kernel")
    for data in cases:
        rc, out, err = run(["--data", data] + PORTS)
        assert rc != 0, data
        line = one_line(err)
        assert data in line, line
    # a data directory whose token secret is damaged is unusable too
    d = os.path.join(tmpdir_, "damaged")
    os.mkdir(d)
    with open(os.path.join(d, "secret"), "wb") as fh:
        fh.write(b"short")
    rc, out, err = run(["--data", d] + PORTS)
    assert rc != 0 and "secret" in one_line(err)


def test_data_directory_created_and_reused(tmpdir_):
    """SPEC 5 / issue 2: a missing data directory is created (owner-only);
    a restart on it keeps users, secrets and messages."""
    data = os.path.join(tmpdir_, "new", "data")
    os.makedirs(os.path.dirname(data))
    with Server(data=data) as s:
        tok = s.signup("alice")
        s.signup("bob")
        a = s.login_ws(tok)
        assert "send_ok" in a.call({"send": {"to": "bob", "text": "kept", "cmid": "k"}})
        a.close()
        admin, key = s.admin_token(), s.default_key()
    assert (os.stat(data).st_mode & 0o777) == 0o700
    with Server(data=data) as s:
        assert s.admin_token() == admin and s.default_key() == key
        a = s.login_ws(tok)            # the same secret: the old token still works
        h = a.call({"history": {"conv": "dm:alice:bob"}})["history_ok"]
        assert [m["text"] for m in h["msgs"]] == ["kept"]
        a.close()
