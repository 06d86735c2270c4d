"""Alerts that act, end to end, every part real (issue 15): one asset-service worker under open-model load
-> the rendered response-time rule fires in Debian's Prometheus -> Debian's Alertmanager routes it (playbook
label) -> `opskit playbook serve --approve auto` -> local-horizontal-scale gives the service a second worker
and verifies it -> the alert resolves and the receiver journals that.

The load ramps from 1.0x to 1.6x what one worker serves (measured just before, as in test_closed_loop.py;
examples/closed-loop/alert-load.yaml says why a ramp): once it passes one worker's capacity, the queue and the
clients' p95 (the load runner's live /metrics, which Prometheus scrapes) pass 500 ms; two workers drain the
queue and the 10s-window p95 falls back. The load is bounded (30 s); if the machine is too busy for two
workers to keep up, the alert still resolves when the load ends. Timings: examples/closed-loop/opskit.yaml
(scrape 1s, for 5s, group_wait 1s, group_interval 2s).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "closed-loop"
SPEC = EXAMPLE / "opskit.yaml"
LOAD = EXAMPLE / "load.yaml"
ALERT_LOAD = EXAMPLE / "alert-load.yaml"
OPSKIT = str(Path(sys.executable).parent / "opskit")
ALERT = "ApiResponseTimeP95High"
PEAK = 1.6  # x one worker's measured capacity: the top of alert-load.yaml's ramp (why: that file)


def _until(what: str, done: Callable[[], object], timeout_s: float, state: Path) -> object:
    """Poll `done` until it returns something truthy (a condition, not a sleep for timing)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"{what}: not within {timeout_s:g}s\n{_diagnosis(state)}")


def _diagnosis(state: Path) -> str:
    """What each part saw: the p95 and alerts in Prometheus, the alerts in Alertmanager, the logs' tails."""
    from opskit.monitor import alertmanager, process

    lines = []
    prom, am = process.read_state(state), alertmanager.read_state(state)
    try:
        if prom:
            lines.append("prometheus alerts: " + httpx.get(f"{prom.url}/api/v1/alerts", trust_env=False).text[:800])
            p95 = "histogram_quantile(0.95, sum by (le) (rate(opskit_loadtest_response_time_seconds_bucket[10s])))"
            q = {"query": p95}
            lines.append("p95 now: " + httpx.get(f"{prom.url}/api/v1/query", params=q, trust_env=False).text[:300])
        if am:
            lines.append("alertmanager alerts: " + httpx.get(f"{am.url}/api/v2/alerts", trust_env=False).text[:800])
    except httpx.HTTPError as exc:
        lines.append(f"(API: {exc})")
    for name in ("alertmanager/alertmanager.log", "prometheus/prometheus.log"):
        path = state / name
        if path.exists():
            lines.append(f"{name}: " + path.read_text(errors="replace")[-1500:])
    serve_log = state.parent / "serve.log"
    if serve_log.exists():
        lines.append("serve.log: " + serve_log.read_text(errors="replace")[-2000:])
    return "\n".join(lines)


def _journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _requests(state: Path) -> list[dict]:
    folder = state / "receiver" / "requests"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def test_a_firing_alert_scales_the_service_through_alertmanager_and_resolves(invoke, tmp_path):
    from opskit import children
    from opskit.localservice import LocalService
    from opskit.monitor.process import free_port

    alerts = tmp_path / "alerts"
    rendered = invoke("alerts", "render", "--spec", str(SPEC), "--out", str(alerts))
    assert rendered.exit_code == 0, rendered.stdout + rendered.stderr
    state = tmp_path / "state"
    env = {**os.environ, "OPSKIT_STATE_DIR": str(state)}
    env.pop("OPSKIT_SPEC", None)

    with LocalService(workers=1, seed_assets=2000, tenants=1, extra_args=["--no-page-cache"], spec=SPEC) as svc:
        keys = {"OPSKIT_API_KEYS": f"company-1={svc.key}"}
        load = ["loadtest", "run", str(LOAD), "--spec", str(SPEC), "--host", svc.url]
        measured = invoke(*load, "--users", "4", "--duration", "4s", "--out", str(tmp_path / "capacity"), env=keys)
        assert measured.exit_code == 0, measured.stdout + measured.stderr
        one = json.loads((tmp_path / "capacity" / "results.json").read_text())["aggregate"]["rps"]
        assert one > 20, f"one worker served only {one:.0f} req/s"

        port, metrics_port = free_port(), free_port()
        serve_argv = [OPSKIT, "playbook", "serve", "--port", str(port), "--approve", "auto", "--spec", str(SPEC),
                      "--service", svc.url, "--state-dir", str(state)]
        with children.start(serve_argv, env=env, log=tmp_path / "serve.log") as serve:
            serve.wait_ready(lambda: _answers(f"http://127.0.0.1:{port}/health"), timeout_s=30, what="serve")
            up = invoke("monitor", "up", "--spec", str(SPEC), "--port", "0", "--target", svc.url,
                        "--loadtest", f"http://127.0.0.1:{metrics_port}",
                        "--rules", str(alerts / "*.rules.yml"), "--alertmanager", "--alertmanager-port", "0",
                        "--receiver", f"http://127.0.0.1:{port}/alerts", "--state-dir", str(state))
            try:
                assert up.exit_code == 0, up.stdout + up.stderr
                ramp = ["loadtest", "run", str(ALERT_LOAD), "--spec", str(SPEC), "--host", svc.url]
                loader = children.start([OPSKIT, *ramp, "--rate", str(round(PEAK * one)), "--duration", "30s",
                                         "--metrics-port", str(metrics_port),
                                         "--out", str(tmp_path / "load")], env={**env, **keys},
                                        log=tmp_path / "load.log", stdout="null")
                with loader:
                    # 1. the alert fires, Alertmanager delivers it, serve auto-approves and runs the playbook
                    request = _until("a request for the alert", lambda: _requests(state), 60, state)
                    [req] = request  # type: ignore[misc]
                    assert req["alert"]["name"] == ALERT and req["playbook"] == "local-horizontal-scale"
                    assert req["params"]["workers"] == 2 and req["params"]["target"] == svc.url
                    done = _until("the run to finish", lambda: [r for r in _requests(state)
                                                                if r["state"] == "finished"], 60,
                                  state)
                    [req] = done  # type: ignore[misc]
                    assert req["outcome"] == "succeeded", req
                    assert int(httpx.get(f"{svc.url}/health", trust_env=False).json()["workers"]) == 2

                    # 2. the alert resolves (two workers drain the queue; at the latest, the load ends)
                    receiver_journal = state / "receiver" / "journal.jsonl"
                    resolved = _until("the resolved notification", lambda: [
                        e for e in _journal(receiver_journal)
                        if e.get("action") == "resolved" and e["fingerprint"] == req["alert"]["fingerprint"]],
                        75, state)
            finally:
                invoke("monitor", "down", "--state-dir", str(state))

        # 3. the run's journal names the alert, its fingerprint and the approval; the resolution names the run
        [run_dir] = (state / "runs").iterdir()
        events = _journal(run_dir / "journal.jsonl")
        trigger = events[0]["trigger"]
        assert trigger["alert"]["name"] == ALERT
        assert trigger["alert"]["fingerprint"] == req["alert"]["fingerprint"]
        assert trigger["approval"]["mode"] == "auto" and trigger["approval"]["at"]
        assert events[-1]["event"] == "run_end" and events[-1]["status"] == "succeeded"
        assert resolved[0]["run_id"] == req["run_id"]  # type: ignore[index]
        started = [e for e in _journal(state / "receiver" / "journal.jsonl") if e.get("action") == "run"]
        assert len(started) == 1, started  # re-notifications while it ran or cooled down started nothing


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
