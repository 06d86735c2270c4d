"""`monitor up --alertmanager`: Debian's real alertmanager beside the real Prometheus, its rendered config
checked by amtool, Prometheus's alerts delivered to the playbook receiver with the state dir's token."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import yaml

from opskit.monitor import alertmanager as am
from opskit.monitor import process as proc

pytestmark = pytest.mark.slow

SPEC = """
service: {name: asset-service, job: asset-service, url: "http://127.0.0.1:9"}
thresholds:
  - {resource: api, metric: cpu_utilization, scale_up: 70%, scale_down: 20%, playbook: local-horizontal-scale}
alerts:
  scrape_interval: 1s
  routing: {group_wait: 1s, group_interval: 2s, repeat_interval: 1m}
"""

# stands in for a rendered threshold rule that is firing: the labels the playbook route matches on. Its
# for: outlasts Prometheus's discovery of the Alertmanager (batched every 5s): an alert that fires before
# Prometheus knows where to send it is dropped and only re-sent a minute later (resend delay)
FIRING = """
groups:
  - name: opskit-test
    rules:
      - alert: ApiCpuUtilizationHigh
        expr: vector(91) > 70
        for: 6s
        labels: {severity: warning, resource: api, metric: cpu_utilization, playbook: local-horizontal-scale}
        annotations: {summary: "api cpu utilization 91% > 70%"}
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "opskit.yaml"
    p.write_text(SPEC)
    (tmp_path / "rules.yml").write_text(FIRING)
    return p


@pytest.fixture
def state(tmp_path: Path, invoke) -> Iterator[Path]:
    d = tmp_path / "state"
    yield d
    invoke("monitor", "down", "--state-dir", str(d))
    assert proc.read_state(d) is None and am.read_state(d) is None


@pytest.fixture
def hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback webhook that records what Alertmanager sends (headers and body)."""
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": json.loads(body)})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alerts", seen
    finally:
        server.shutdown()
        server.server_close()


def wait_for(fn, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while not (value := fn()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout_s}s")
        time.sleep(0.1)
    return value


def test_alerts_reach_the_playbook_receiver_with_the_state_dirs_token(invoke, spec, state, hook, tmp_path):
    url, seen = hook
    res = invoke("monitor", "up", "--spec", str(spec), "--port", "0", "--rules", str(tmp_path / "rules.yml"),
                 "--alertmanager", "--alertmanager-port", "0", "--receiver", url, "--state-dir", str(state),
                 "--output", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    info = json.loads(res.stdout)["alertmanager"]
    assert info["receiver"] == url and info["url"].startswith("http://127.0.0.1:")

    # the config amtool accepts; the token is in a file it names, never in the config or the argv
    token_file = state / "receiver" / "token"
    token = token_file.read_text().strip()
    config_path = am.home(state) / "alertmanager.yml"
    check = subprocess.run(["amtool", "check-config", str(config_path)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    config = yaml.safe_load(config_path.read_text())
    [receiver] = [r for r in config["receivers"] if r["name"] == "opskit-playbooks"]
    hook_cfg = receiver["webhook_configs"][0]
    assert hook_cfg["url"] == url
    assert hook_cfg["http_config"]["authorization"]["credentials_file"] == str(token_file.resolve())
    assert token not in config_path.read_text()
    state_doc = am.read_state(state)
    assert state_doc is not None and not any(token in a for a in state_doc.argv)
    assert "--cluster.listen-address=" in state_doc.argv  # no gossip port on any interface
    assert all(c.laddr.ip == "127.0.0.1" for c in psutil.Process(state_doc.pid).net_connections("inet")
               if c.status == psutil.CONN_LISTEN)

    # Prometheus is wired to it, and the firing rule arrives as a v4 webhook with the bearer token
    prom_cfg = yaml.safe_load((proc.home(state) / "prometheus.yml").read_text())
    assert prom_cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [state_doc.address]
    first = wait_for(lambda: seen)[0]
    assert first["auth"] == f"Bearer {token}"
    body = first["body"]
    assert body["version"] == "4" and body["receiver"] == "opskit-playbooks" and body["status"] == "firing"
    assert body["alerts"][0]["labels"]["playbook"] == "local-horizontal-scale"

    status = invoke("monitor", "status", "--state-dir", str(state), "--output", "json")
    assert status.exit_code == 0 and json.loads(status.stdout)["alertmanager"]["running"] is True
    text = invoke("monitor", "status", "--state-dir", str(state))
    assert f"alertmanager running: {state_doc.url}" in text.stdout

    # up again with another receiver: the running Alertmanager (same pid) reloads the new route
    other = url.replace("/alerts", "/other")
    again = invoke("monitor", "up", "--spec", str(spec), "--port", "0", "--rules", str(tmp_path / "rules.yml"),
                   "--alertmanager", "--receiver", other, "--state-dir", str(state), "--output", "json")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["alertmanager"]["receiver"] == other
    live = httpx.get(f"{state_doc.url}/api/v2/status", timeout=5, trust_env=False).json()["config"]["original"]
    reloaded = am.read_state(state)
    assert other in live and reloaded is not None and reloaded.pid == state_doc.pid

    down = invoke("monitor", "down", "--state-dir", str(state))
    assert down.exit_code == 0 and f"alertmanager stopped (pid {state_doc.pid})" in down.stdout
    assert not psutil.pid_exists(state_doc.pid) or psutil.Process(state_doc.pid).status() == psutil.STATUS_ZOMBIE


def test_the_default_route_is_playbook_serves_address(spec, state):
    from opskit.spec import load_spec

    text, url = am.render(load_spec(str(spec)), state, receiver=None, token_file=None)
    assert url == "http://127.0.0.1:19095/alerts"
    assert (state / "receiver" / "token").is_file()
    config = yaml.safe_load(text)
    assert config["route"]["group_wait"] == "1s" and config["route"]["group_interval"] == "2s"
    [first, *_] = config["route"]["routes"]
    assert first == {"receiver": "opskit-playbooks", "matchers": ['playbook=~".+"'], "continue": True}


def test_receiver_options_need_alertmanager(invoke, spec, state):
    res = invoke("monitor", "up", "--spec", str(spec), "--receiver", "http://127.0.0.1:1/alerts",
                 "--state-dir", str(state))
    assert res.exit_code == 2 and "need --alertmanager" in res.stderr
    assert proc.read_state(state) is None
