"""A short smoke run of every parley-bench scenario against a real parleyd:
each completes, exits 0, and reports numbers that make sense together
(counts match, percentiles are ordered, nothing failed).  Never asserts a
speed: these run on shared machines and under sanitizers."""
import json
import os
import subprocess

import pytest

from parleytest import ROOT, Server

BUILD = os.environ.get("PARLEY_BUILD", os.path.join(ROOT, "build"))
BENCH = os.path.join(BUILD, "parley-bench")

# The limits a benchmark run lifts (scripts/bench.sh passes the same).
BENCH_ARGS = ["--msg-rate", "0", "--max-conns-per-ip", "0", "--conn-rate-per-ip", "0",
              "--login-rate-per-ip", "0"]


@pytest.fixture(scope="module")
def bench_server():
    with Server(*BENCH_ARGS) as s:
        yield s


def bench(server, scenario, tmp_path, *args, timeout=180):
    out = tmp_path / ("%s.json" % scenario)
    cmd = [BENCH, scenario, "--url", "ws://127.0.0.1:%d" % server.http_port, "--data", server.data,
           "--json", str(out), "--quiet"] + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in p.stderr, p.stderr
    assert p.returncode == 0, p.stdout + p.stderr
    assert "== %s:" % scenario in p.stdout
    doc = json.loads(out.read_text())
    assert doc["scenario"] == scenario
    assert doc["machine"]["cores"] >= 1
    return doc, p.stdout


def check_row(row, count=None):
    lat = row["latency_ms"]
    assert row["count"] > 0, row
    if count is not None:
        assert row["count"] == count, row
    assert 0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99_9"] <= lat["max"], row
    assert lat["max"] < 60000, row
    assert row["errors"] == 0, row


def test_login(bench_server, tmp_path):
    doc, _ = bench(bench_server, "login", tmp_path, "--duration", "1", "--clients", "4", "--pw-users", "2")
    rows = {r["name"]: r for r in doc["results"]["rows"]}
    check_row(rows["login by token (connect->login_ok)"])
    check_row(rows["login by password (connect->login_ok)"])
    assert doc["results"]["token_logins_per_s"] > 0
    assert doc["results"]["errors"] == 0


def test_dm(bench_server, tmp_path):
    doc, out = bench(bench_server, "dm", tmp_path, "--duration", "2", "--warmup", "0.5", "--pairs", "5",
                     "--rate", "100")
    r = doc["results"]
    assert r["errors"] == 0 and r["connect_failed"] == 0
    assert r["sent"] == r["acked"] == r["delivered"] > 0
    assert r["sent_window"] == r["acked_window"] == r["delivered_window"] > 0
    assert r["undelivered_window"] == 0
    for row in r["rows"]:
        assert row["latency_ms"]["p50"] <= row["latency_ms"]["max"]
    check_row(r["rows"][0], r["delivered_window"])
    assert "offered 100 msg/s" in out


def test_dm_over_tcp_with_json_free_encoding(bench_server, tmp_path):
    out = tmp_path / "dm.json"
    p = subprocess.run([BENCH, "dm", "--url", "tcp://127.0.0.1:%d" % bench_server.tcp_port,
                        "--http", "127.0.0.1:%d" % bench_server.http_port, "--data", bench_server.data,
                        "--duration", "1", "--warmup", "0", "--pairs", "2", "--rate", "50", "--json", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    r = json.loads(out.read_text())["results"]
    assert r["delivered_window"] == r["sent_window"] > 0


@pytest.mark.parametrize("scenario", ["group", "channel"])
def test_fanout(bench_server, tmp_path, scenario):
    doc, out = bench(bench_server, scenario, tmp_path, "--members", "10", "--offline", "5", "--messages", "3",
                     "--rate", "10", "--duration", "1")
    r = doc["results"]
    if not r["supported"]:
        # This server does not serve groups yet: the run says so, with the
        # server's own answer, and reports no figures.
        assert "server does not support groups" in out
        assert "not_found" in r["reason"]
        assert "rows" not in r
    else:
        assert r["messages_complete"] == 3
        assert r["deliveries"] == 30
        check_row(r["rows"][0], 30)


def test_catchup(bench_server, tmp_path):
    doc, _ = bench(bench_server, "catchup", tmp_path, "--messages", "100", "--convs", "5", "--reps", "2",
                   "--duration", "20")
    r = doc["results"]
    assert r["catchups"] == 2 and r["incomplete"] == 0 and r["errors"] == 0
    assert r["messages_synced"] == 200
    check_row(r["rows"][0], 2)


def test_idle(tmp_path):
    # A server of its own, so its memory is not shared with other runs.
    with Server(*BENCH_ARGS) as s:
        doc, out = bench(s, "idle", tmp_path, "--clients", "200", "--duration", "2", "--settle", "1.5",
                         "--src-ips", "2", "--procs", "2")
        r = doc["results"]
        assert r["held"] == 200 and r["failed"] == 0 and r["dropped"] == 0
        assert r["limited_by"] == "the requested count"
        assert doc["server"]["pid"] == s.proc.pid
        assert r["rss_before"] > 0 and r["rss_after"] > 0
        assert "heap_per_conn_bytes" in r
        assert "server RSS per connection" in out
