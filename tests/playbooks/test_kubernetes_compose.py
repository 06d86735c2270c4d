"""kubectl and docker compose argv, exact, against recording stand-ins on PATH (no cluster here):
plans use the tools' own dry runs, apply reads state first, compensation puts it back."""

from __future__ import annotations

import json

from opskit.exitcodes import ExitCode
from opskit.playbooks import engine
from opskit.playbooks.executor import Runtime
from opskit.playbooks.outcome import exit_code_for

from .conftest import Steady

NS = "--namespace=default"
DEPLOY = json.dumps({"spec": {"replicas": 3, "template": {"spec": {"containers": [
    {"name": "api", "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "512Mi"}}}]}}}})
HPA = json.dumps({"spec": {"minReplicas": 2, "maxReplicas": 10}})
REASON = "p95 above 500ms for 5m"


def k8s_rules(standin, *, fail_rollout: bool = False) -> None:
    standin.rules([
        {"match": ["get deployment/api"], "stdout": DEPLOY, "once": True},
        {"match": ["get deployment/api"], "stdout": DEPLOY.replace('"replicas": 3', '"replicas": 6')},
        {"match": ["get hpa/api"], "stdout": HPA},
        {"match": ["rollout status"], "exit": 1 if fail_rollout else 0,
         "stderr": "error: deployment \"api\" exceeded its progress deadline" if fail_rollout else ""},
    ])


def test_plan_runs_kubectl_server_dry_runs_with_exact_argv(kit, standin):
    k8s_rules(standin)
    res = kit.run("plan", "api-horizontal-scale", "-p", "replicas=6", "-p", f"reason={REASON}")
    assert res.exit_code == 0, res.output
    assert standin.calls("kubectl") == [
        [NS, "get", "hpa/api", "-o", "json"],
        [NS, "patch", "hpa", "api", "--type=merge", "-p", '{"spec":{"minReplicas":6,"maxReplicas":10}}',
         "--dry-run=server"],
        [NS, "get", "deployment/api", "-o", "json"],
        [NS, "scale", "deployment/api", "--current-replicas=3", "--replicas=6", "--dry-run=server"],
    ]
    assert "kubectl --namespace=default scale deployment/api '--current-replicas=<current>' --replicas=6" \
        in res.stdout
    assert "kubectl --namespace=default rollout status deployment/api --timeout=5m" in res.stdout


def test_plan_reports_a_failing_server_dry_run(kit, standin):
    standin.rules([{"match": ["get hpa/api"], "stdout": HPA},
                   {"match": ["patch", "--dry-run=server"], "exit": 1,
                    "stderr": "Error from server (Forbidden): horizontalpodautoscalers is forbidden"},
                   {"match": ["get deployment/api"], "stdout": DEPLOY}])
    res = kit.run("plan", "api-horizontal-scale", "-p", "replicas=6", "-p", f"reason={REASON}")
    assert res.exit_code == 1
    assert "Forbidden" in res.stdout and "dry run failed for step(s) hpa" in res.stderr


def _apply(kit, name: str, params: dict[str, object], value: float = 1.0):
    prep = engine.prepare(name, params)
    waited: list[float] = []
    rt = Runtime(state_dir=kit.state, sources=lambda kind, loc: Steady(value),
                 wait=lambda s: waited.append(s) is not None)  # verification intervals pass at once
    return engine.apply(prep, rt)


def test_apply_horizontal_scale_runs_exact_argv_and_verifies(kit, standin):
    k8s_rules(standin)
    out = _apply(kit, "api-horizontal-scale", {"replicas": 6, "reason": REASON, "context": "prod-eu"}, 6)
    assert exit_code_for(out.status) == ExitCode.OK, out.message
    ctx = ["--context=prod-eu", NS]
    assert standin.calls("kubectl") == [
        [*ctx, "get", "hpa/api", "-o", "json"],
        [*ctx, "patch", "hpa", "api", "--type=merge", "-p", '{"spec":{"minReplicas":6,"maxReplicas":10}}'],
        [*ctx, "get", "deployment/api", "-o", "json"],
        [*ctx, "scale", "deployment/api", "--current-replicas=3", "--replicas=6"],
        [*ctx, "rollout", "status", "deployment/api", "--timeout=5m"],
    ]


def test_failed_rollout_compensates_scale_then_hpa_in_reverse(kit, standin):
    k8s_rules(standin, fail_rollout=True)
    out = _apply(kit, "api-horizontal-scale", {"replicas": 6, "reason": REASON}, 6)
    assert exit_code_for(out.status) == ExitCode.NO and out.status == "compensated" and out.failed_step == "rollout"
    assert standin.calls("kubectl")[5:] == [
        [NS, "get", "deployment/api", "-o", "json"],
        [NS, "scale", "deployment/api", "--current-replicas=6", "--replicas=3"],
        [NS, "get", "hpa/api", "-o", "json"],
        [NS, "patch", "hpa", "api", "--type=merge", "-p", '{"spec":{"minReplicas":2,"maxReplicas":10}}'],
    ]
    ends = [e for e in kit.journal() if e["event"] == "compensate_end"]
    assert [e["step"] for e in ends] == ["scale", "hpa"] and all(e["outcome"] == "ok" for e in ends)


def test_optimistic_scale_conflict_fails_the_step(kit, standin):
    """--current-replicas makes kubectl refuse when someone else changed the count in between."""
    standin.rules([{"match": ["get hpa/api"], "stdout": HPA}, {"match": ["get deployment/api"], "stdout": DEPLOY},
                   {"match": ["scale", "--current-replicas=3"], "exit": 1,
                    "stderr": "error: Expected replicas to be 3, was 4"}])
    out = _apply(kit, "api-horizontal-scale", {"replicas": 6, "reason": REASON}, 6)
    assert out.status == "compensated" and out.failed_step == "scale" and "was 4" in out.message


def test_vertical_scale_sets_resources_and_restores_them(kit, standin):
    standin.rules([{"match": ["get deployment/api"], "stdout": DEPLOY},
                   {"match": ["rollout status"], "exit": 1, "stderr": "timed out"}])
    out = _apply(kit, "api-vertical-scale", {"cpu": "500m", "memory": "1Gi", "reason": REASON}, 1)
    assert out.status == "compensated"
    calls = standin.calls("kubectl")
    assert calls[1] == [NS, "set", "resources", "deployment", "api", "-c=api", "--requests=cpu=500m,memory=1Gi",
                        "--limits=memory=1Gi"]
    assert calls[2] == [NS, "rollout", "status", "deployment/api", "--timeout=10m"]
    assert calls[-1] == [NS, "set", "resources", "deployment", "api", "-c=api",
                         "--requests=cpu=250m,memory=512Mi", "--limits=memory=512Mi"]


def test_rejected_kubernetes_quantity_never_reaches_kubectl(kit, standin):
    res = kit.run("plan", "api-vertical-scale", "-p", "cpu=500m --all", "-p", "memory=1Gi", "-p", f"reason={REASON}")
    assert res.exit_code == 2 and standin.calls() == []


COMPOSE = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: compose-scale, description: scale a compose service}
params:
  replicas: {type: integer, minimum: 0, maximum: 20}
steps:
  - id: scale
    action: compose.scale
    with: {service: api, replicas: "${params.replicas}", files: [compose.yaml], project_name: shop}
    compensate:
      action: compose.scale
      with: {service: api, replicas: "${capture.scale.previous_replicas}", files: [compose.yaml], project_name: shop}
  - id: fail
    action: exec
    with: {argv: ["false"]}
"""


def test_compose_scale_argv_dry_run_and_compensation(kit, standin):
    standin.rules([{"match": ["ps --quiet api"], "stdout": "c1\nc2\n"}])
    path = kit.write("compose", COMPOSE)
    base = ["compose", "-f", "compose.yaml", "--project-name=shop"]
    plan = kit.run("plan", str(path), "-p", "replicas=4")
    assert plan.exit_code == 0, plan.output
    assert standin.calls("docker") == [[*base, "--dry-run", "up", "-d", "--no-recreate", "--scale", "api=4", "--wait"]]
    res = kit.run("apply", str(path), "-p", "replicas=4", "--yes", "--no-dry-run")
    assert res.exit_code == 1
    assert standin.calls("docker")[1:] == [
        [*base, "ps", "--quiet", "api"],
        [*base, "up", "-d", "--no-recreate", "--scale", "api=4", "--wait"],
        [*base, "ps", "--quiet", "api"],
        [*base, "up", "-d", "--no-recreate", "--scale", "api=2", "--wait"],
    ]
