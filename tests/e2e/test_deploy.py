"""The deployment files of deploy/ (issue 5, "Deployment files, each
checked by a test or a tool"):

- deploy/systemd/parleyd.service: `systemd-analyze verify` (on a copy whose
  ExecStart is the binary under test, since verify wants it to exist), and
  the hardening settings it must keep;
- deploy/prometheus/: `promtool check config`, `promtool check rules` and
  `promtool test rules` (Debian's prometheus package, installed by
  scripts/deps.sh);
- deploy/grafana/: the dashboard is valid JSON with a Prometheus query in
  every panel;
- deploy/filebeat/: valid YAML reading JSON lines with the fields parleyd
  writes;
- every metric named by the dashboard and the alert rules exists in the
  /metrics of a live parleyd.

A tool that is missing fails the test: `make test` installs them."""
import json
import os
import re
import shutil
import subprocess
import tempfile

import yaml

from parleytest import ROOT, Server, http_call

DEPLOY = os.path.join(ROOT, "deploy")
PROM = os.path.join(DEPLOY, "prometheus")
DASHBOARD = os.path.join(DEPLOY, "grafana", "parley-dashboard.json")
RULES = os.path.join(PROM, "parley-rules.yml")


def tool(name):
    path = shutil.which(name)
    assert path, "%s is not installed (scripts/deps.sh installs it)" % name
    return path


def run(cmd, cwd=None):
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "%s failed:\n%s%s" % (" ".join(cmd), p.stdout, p.stderr)
    return p.stdout + p.stderr


def test_systemd_unit_verifies_and_is_hardened():
    unit = os.path.join(DEPLOY, "systemd", "parleyd.service")
    with open(unit) as f:
        text = f.read()
    for line in ("User=parley", "NoNewPrivileges=yes", "ProtectSystem=strict",
                 "ReadWritePaths=/var/lib/parley", "ProtectHome=yes", "PrivateTmp=yes",
                 "CapabilityBoundingSet=", "LimitNOFILE=", "KillSignal=SIGTERM",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert "\n" + line in text, "the unit lost " + line
    binary = os.path.abspath(os.environ.get("PARLEYD", os.path.join(ROOT, "build", "parleyd")))
    d = tempfile.mkdtemp(prefix="parley-unit-")
    try:
        copy = os.path.join(d, "parleyd.service")
        with open(copy, "w") as f:
            f.write(text.replace("/usr/local/bin/parleyd", binary))
        out = run([tool("systemd-analyze"), "verify", copy])
        assert "parleyd.service" not in out, "warnings about the unit:\n" + out
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_prometheus_config_and_rules():
    promtool = tool("promtool")
    run([promtool, "check", "config", "prometheus.yml"], cwd=PROM)
    run([promtool, "check", "rules", "parley-rules.yml"], cwd=PROM)
    run([promtool, "test", "rules", "parley-rules.test.yml"], cwd=PROM)
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    # the four: down node, error rates, slow consumers, commit latency
    for a in ("ParleyNodeDown", "ParleyHighErrorRate", "ParleySlowConsumers",
              "ParleyCommitLatencyHigh"):
        assert a in alerts


def test_grafana_dashboard_is_valid_json():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    assert dash["title"] and dash["uid"]
    graphs = [p for p in dash["panels"] if p["type"] != "row"]
    assert len(graphs) >= 20
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in graphs:
        assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]


def test_filebeat_config():
    with open(os.path.join(DEPLOY, "filebeat", "filebeat.yml")) as f:
        fb = yaml.safe_load(f)
    inputs = [i for i in fb["filebeat.inputs"] if i.get("enabled", True)]
    assert len(inputs) == 1 and inputs[0]["type"] == "filestream"
    assert any("ndjson" in p for p in inputs[0]["parsers"])
    fields = json.dumps(fb["processors"])
    for field in ("parley.ts", "parley.msg", "parley.level", "parley.node", "parley.remote"):
        assert field in fields


def _metric_names(text):
    return set(re.findall(r"\b((?:parley|process)_[a-z0-9_]+)\b", text))


def test_every_metric_named_exists_in_a_live_metrics():
    with open(DASHBOARD) as f:
        dash = json.load(f)
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    exprs += " " + json.dumps(dash.get("templating", {}))
    with open(RULES) as f:
        rules = yaml.safe_load(f)
    exprs += " " + " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    named = _metric_names(exprs)
    assert len(named) >= 25, named
    with Server() as s:
        st, text = http_call(s.http_port, "GET", "/metrics")
        assert st == 200
        text = text.decode() if isinstance(text, bytes) else text
        live = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                if line and not line.startswith("#")}
    missing = sorted(named - live)
    assert not missing, "named by deploy/ but not in /metrics: %s" % missing
