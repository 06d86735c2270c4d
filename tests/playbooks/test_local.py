"""The local provider against the real reference asset service: its supervisor really adds and
removes workers; verification reads /health and the service's own /metrics."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import httpx
import pytest

from opskit.exitcodes import ExitCode
from opskit.localservice import LocalService
from opskit.playbooks.handoff import run_for_decision
from opskit.playbooks.outcome import exit_code_for
from opskit.playbooks.report import LineReporter

pytestmark = pytest.mark.slow
REASON = "p95 above 500ms under load"


@pytest.fixture(scope="module")
def service() -> Iterator[LocalService]:
    with LocalService(workers=1) as svc:
        yield svc


def workers(svc: LocalService) -> int:
    return int(httpx.get(f"{svc.url}/health", timeout=5).json()["workers"])


@pytest.fixture
def one_worker(service: LocalService, kit) -> Iterator[LocalService]:
    assert workers(service) == 1
    yield service
    if workers(service) != 1:  # leave the shared service as found, for the next test
        kit.run("apply", "local-horizontal-scale", "-p", "workers=1", "-p", "reason=test cleanup run",
                "-p", f"target={service.url}", "--yes", "--no-dry-run")
    assert workers(service) == 1


def test_plan_reads_the_real_count_and_changes_nothing(kit, one_worker):
    res = kit.run("plan", "local-horizontal-scale", "-p", "workers=3", "-p", f"reason={REASON}",
                  "-p", f"target={one_worker.url}")
    assert res.exit_code == 0, res.output
    assert f"1 worker(s) now -> 3: 2 x SIGTTIN to supervisor pid {one_worker.pid}" in res.stdout
    assert workers(one_worker) == 1


def test_apply_scales_the_real_service_up_and_back_down(kit, one_worker):
    res = kit.run("apply", "local-horizontal-scale", "-p", "workers=2", "-p", f"reason={REASON}",
                  "-p", f"target={one_worker.url}", "--yes")
    assert res.exit_code == 0, res.output
    assert workers(one_worker) == 2
    end = kit.end()
    assert end["status"] == "succeeded"
    step = [e for e in kit.events("step_end") if e["step"] == "scale"][0]
    assert step["captures"]["previous_workers"] == 1 and step["captures"]["workers"] == 2
    checks = {e["check"]: e["result"] for e in kit.events("verify_end")}
    assert checks == {"workers-match": "pass", "workers-exported": "pass"}
    down = kit.run("apply", "local-horizontal-scale", "-p", "workers=1", "-p", "reason=load is gone again",
                   "-p", f"target={one_worker.url}", "--yes")
    assert down.exit_code == 0, down.output
    assert workers(one_worker) == 1


def test_failure_after_scaling_puts_the_real_count_back(kit, one_worker):
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: local-then-fail, description: scale then fail}}
params:
  target: {{type: string}}
lock: local-api-scale
steps:
  - id: scale
    action: local.scale
    with: {{target: "${{params.target}}", workers: 3}}
    timeout: 60s
    compensate:
      action: local.scale
      with: {{target: "${{params.target}}", workers: "${{capture.scale.previous_workers}}"}}
      timeout: 60s
  - id: broken
    action: exec
    with: {{argv: {json.dumps([sys.executable, "-c", "raise SystemExit(2)"])}}}
"""
    res = kit.run("apply", str(kit.write("fail", text)), "-p", f"target={one_worker.url}", "--yes")
    assert res.exit_code == 1
    ends = [e for e in kit.events("step_end") if e["step"] == "scale"]
    assert ends[0]["captures"]["workers"] == 3
    comp = kit.events("compensate_end")[0]
    assert comp["outcome"] == "ok" and comp["captures"]["previous_workers"] == 3
    assert workers(one_worker) == 1


def test_remote_target_is_refused(kit, tmp_path):
    text = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: remote, description: remote}
steps:
  - {id: s, action: local.scale, with: {target: "http://10.1.2.3:8000", workers: 2}}
"""
    res = kit.run("plan", str(kit.write("remote", text)))
    assert res.exit_code == 2 and "use a loopback URL" in res.stderr
    res = kit.run("plan", "local-horizontal-scale", "-p", "workers=2", "-p", f"reason={REASON}",
                  "-p", "target=http://10.1.2.3:8000")
    assert res.exit_code == 2 and "target: must match" in res.stderr


def test_unreachable_service_fails_the_plan(kit):
    res = kit.run("plan", "local-horizontal-scale", "-p", "workers=2", "-p", f"reason={REASON}",
                  "-p", "target=http://127.0.0.1:9")
    assert res.exit_code == 1 and "ConnectError" in res.stdout


def test_handoff_plans_by_default_and_applies_when_asked(kit, one_worker, capsys):
    """The hand-over prints nothing: the plan and progress reach the reporter, the result is data."""
    params: dict[str, object] = {"workers": 2, "reason": REASON, "target": one_worker.url}
    said: list[str] = []
    planned = run_for_decision("local-horizontal-scale", params, apply=False, state_dir=kit.state,
                               reporter=LineReporter(said.append))
    assert planned.status == "planned" and planned.run is None and workers(one_worker) == 1
    assert exit_code_for(planned.status) == ExitCode.OK
    assert said[0].startswith(f"plan {planned.plan_hash} for local-horizontal-scale")
    assert "plan only" in planned.lines()[0] and planned.plan_hash in planned.lines()[0]
    applied = run_for_decision("local-horizontal-scale", params, apply=True, state_dir=kit.state,
                               reporter=LineReporter(said.append))
    assert applied.status == "succeeded" and applied.run is not None and workers(one_worker) == 2
    assert any(line.startswith("==> step") for line in said)
    assert capsys.readouterr() == ("", "")
    assert '"status":"succeeded"' in applied.run.journal.read_text()
