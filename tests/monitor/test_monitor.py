"""`opskit monitor up | status | down` with Debian's real prometheus binary, on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from opskit.exitcodes import ExitCode
from opskit.monitor import config as cfg
from opskit.monitor import process as proc

pytestmark = pytest.mark.slow

SPEC = """
service: {name: asset-service, job: asset-service, url: "http://127.0.0.1:9"}
alerts: {scrape_interval: 1s}
"""

GOOD_RULES = """
groups:
  - name: opskit-test
    rules:
      - alert: AlwaysFiring
        expr: vector(1) > 0
        labels: {severity: info}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "opskit.yaml"
    p.write_text(SPEC)
    return p


@pytest.fixture
def state(tmp_path: Path, invoke):
    d = tmp_path / "state"
    yield d
    invoke("monitor", "down", "--state-dir", str(d))  # whatever a test left running
    assert proc.read_state(d) is None


def up(invoke, spec: Path, state: Path, *extra: str):
    return invoke("monitor", "up", "--spec", str(spec), "--port", "0", "--state-dir", str(state),
                  "--output", "json", *extra)


def wait_for(fn, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    while not (value := fn()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)
    return value


def test_up_status_down_lifecycle(invoke, spec, state):
    result = up(invoke, spec, state)
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["started"] and info["url"].startswith("http://127.0.0.1:")
    assert not info["url"].endswith(":9090")
    pid = info["pid"]
    p = psutil.Process(pid)
    assert "prometheus" in p.name()
    assert f"--web.listen-address=127.0.0.1:{info['url'].rsplit(':', 1)[1]}" in p.cmdline()
    assert (state / "prometheus" / "data").is_dir() and (state / "prometheus" / "prometheus.yml").is_file()

    def self_scraped():
        st = json.loads(invoke("monitor", "status", "--state-dir", str(state), "--output", "json").stdout)
        return st if any(t["job"] == "prometheus" and t["health"] == "up" for t in st["targets"]) else None

    st = wait_for(self_scraped)
    assert st["running"] and st["ready"] and st["pid"] == pid
    jobs = {t["job"]: t for t in st["targets"]}
    assert jobs["asset-service"]["url"] == "http://127.0.0.1:9/metrics"  # the spec's service.url

    down = invoke("monitor", "down", "--state-dir", str(state))
    assert down.exit_code == 0 and f"pid {pid}" in down.stdout
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    gone = invoke("monitor", "status", "--state-dir", str(state))
    assert gone.exit_code == ExitCode.NO and "not running" in gone.stdout
    again = invoke("monitor", "down", "--state-dir", str(state))
    assert again.exit_code == 0 and "not running" in again.stdout


def test_up_again_updates_targets_without_a_restart(invoke, spec, state):
    first = json.loads(up(invoke, spec, state).stdout)
    result = up(invoke, spec, state, "--target", "http://127.0.0.1:7/custom/metrics", "--target", "127.0.0.1:8")
    assert result.exit_code == 0, result.stderr
    second = json.loads(result.stdout)
    assert (second["pid"], second["started"]) == (first["pid"], False)
    groups = json.loads((state / "prometheus" / "targets.json").read_text())
    assert [(g["targets"], g["labels"]["__metrics_path__"]) for g in groups] == [
        (["127.0.0.1:7"], "/custom/metrics"), (["127.0.0.1:8"], "/metrics")]

    def scraping_new_targets():
        st = json.loads(invoke("monitor", "status", "--state-dir", str(state), "--output", "json").stdout)
        urls = {t["url"] for t in st["targets"]}
        return {"http://127.0.0.1:7/custom/metrics", "http://127.0.0.1:8/metrics"} <= urls

    wait_for(scraping_new_targets)


def test_rules_beside_the_spec_are_loaded_and_broken_ones_skipped(invoke, spec, state, tmp_path):
    alerts = tmp_path / "alerts"
    alerts.mkdir()
    (alerts / "good.rules.yml").write_text(GOOD_RULES)
    (alerts / "broken.rules.yml").write_text("groups:\n  - name: x\n    rules:\n      - alert: X\n        expr: sum(\n")
    result = up(invoke, spec, state)
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["rule_files"] == [str((alerts / "good.rules.yml").resolve())]
    assert "broken.rules.yml" in result.stderr and "not loaded" in result.stderr
    st = wait_for(lambda: (s := json.loads(invoke("monitor", "status", "--state-dir", str(state), "--output",
                                                   "json").stdout))["rules"] and s)
    assert st["rules"] == 1


def test_down_never_stops_a_process_it_did_not_start(invoke, state):
    # state that names a live process which is not our Prometheus (a pid reused by something else)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        fake = proc.State(pid=other.pid, port=1, create_time=psutil.Process(other.pid).create_time(),
                          config="/nonexistent/prometheus.yml", argv=[], started_at=time.time(), targets=[],
                          rule_files=[])
        proc.write_state(state, fake)
        result = invoke("monitor", "down", "--state-dir", str(state))
        assert result.exit_code == 0 and "not running" in result.stdout
        assert other.poll() is None  # still alive
        assert proc.read_state(state) is None  # the stale state is gone
    finally:
        other.kill()
        other.wait()


def test_busy_port_is_a_usage_error(invoke, spec, state):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = invoke("monitor", "up", "--spec", str(spec), "--port", str(port), "--state-dir", str(state))
    assert result.exit_code == ExitCode.USAGE
    assert f"127.0.0.1:{port} is in use" in result.stderr


def test_missing_binary_is_a_runtime_error(invoke, spec, state, monkeypatch):
    monkeypatch.setenv(proc.BINARY_ENV, "/nonexistent/prometheus")
    result = up(invoke, spec, state)
    assert result.exit_code == ExitCode.RUNTIME and "prometheus not found on PATH" in result.stderr


def test_a_prometheus_that_fails_at_start_is_reported_with_its_log(invoke, spec, state, tmp_path):
    # a stand-in binary that writes an error and exits, as prometheus does with a bad flag or config
    fake = tmp_path / "bin" / "prometheus"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'level=error msg=\"Error loading config\"' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = invoke("monitor", "up", "--spec", str(spec), "--port", "0", "--state-dir", str(state),
                    env={proc.BINARY_ENV: str(fake)})
    assert result.exit_code == ExitCode.RUNTIME
    assert "exited with status 1" in result.stderr and "Error loading config" in result.stderr
    assert proc.read_state(state) is None


def test_bad_options(invoke, spec, state):
    assert invoke("monitor", "up", "--spec", str(spec), "--target", "ftp://x", "--state-dir",
                  str(state)).exit_code == ExitCode.USAGE
    assert invoke("monitor", "up", "--spec", str(spec), "--scrape-interval", "soon", "--state-dir",
                  str(state)).exit_code == ExitCode.USAGE


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8000", ("http", "127.0.0.1:8000", "/metrics")),
    ("http://127.0.0.1:8000/", ("http", "127.0.0.1:8000", "/metrics")),
    ("127.0.0.1:9100", ("http", "127.0.0.1:9100", "/metrics")),
    ("https://api.example.com/internal/metrics", ("https", "api.example.com:443", "/internal/metrics")),
    ("http://[::1]:8000", ("http", "[::1]:8000", "/metrics")),
])
def test_parse_target(url, expected):
    t = cfg.parse_target(url)
    assert (t.scheme, t.address, t.path) == expected


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is part of Debian's prometheus package")
def test_generated_config_passes_promtool(tmp_path):
    targets = tmp_path / "targets.json"
    targets.write_text(cfg.targets_file([cfg.parse_target("http://127.0.0.1:8000")]))
    rules = tmp_path / "r.rules.yml"
    rules.write_text(GOOD_RULES)
    conf = tmp_path / "prometheus.yml"
    conf.write_text(cfg.render_config(job="asset-service", port=19090, targets_path=str(targets),
                                      rule_files=[str(rules)], scrape_interval_s=15))
    done = subprocess.run(["promtool", "check", "config", str(conf)], capture_output=True, text=True,
                          check=False, env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rules found" in done.stdout
