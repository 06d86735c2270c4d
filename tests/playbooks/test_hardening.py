"""Issue 17's playbook hardening: failed steps compensated unless proven unchanged, children with a
minimal environment, locks that appear whole; and issue 11's rule that playbook cores print nothing."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.playbooks import engine
from opskit.playbooks.executor import Runtime
from opskit.playbooks.report import LineReporter

from .conftest import Steady

PY = sys.executable
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def one_step(log: Path, argv: list[str], *, timeout: str = "20s", extra: str = "") -> str:
    undo = [PY, "-c", APPEND, str(log), "undo:s"]
    first = [PY, "-c", APPEND, str(log), "do:first"]
    first_undo = [PY, "-c", APPEND, str(log), "undo:first"]
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: hardening, description: hardening tests, risk: low}}
steps:
  - id: first
    action: exec
    with: {{argv: {json.dumps(first)}}}
    compensate: {{action: exec, with: {{argv: {json.dumps(first_undo)}}}}}
  - id: s
    action: exec
    with: {{argv: {json.dumps(argv)}}}
    timeout: {timeout}
{extra}    compensate: {{action: exec, with: {{argv: {json.dumps(undo)}}}}}
on_failure: compensate
"""


def test_a_timed_out_step_is_compensated(kit):
    log = kit.tmp / "log"
    slow = [PY, "-c", f"import time; open({str(log)!r}, 'a').write('do:s' + chr(10)); time.sleep(30)"]
    res = kit.run("apply", str(kit.write("pb", one_step(log, slow, timeout="1s"))), "--yes")
    assert res.exit_code == 1, res.output
    assert lines(log) == ["do:first", "do:s", "undo:s", "undo:first"]
    assert kit.end()["compensated"] == ["s", "first"]


def test_a_step_whose_program_never_started_is_not_compensated(kit):
    """exec proves it changed nothing when its program could not be started."""
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("pb", one_step(log, [str(kit.tmp / "no-such-program")]))), "--yes")
    assert res.exit_code == 1, res.output
    assert lines(log) == ["do:first", "undo:first"]
    assert not kit.events("step_in_doubt")
    assert [e["changed"] for e in kit.events("step_end") if e["step"] == "s"] == [False]


SCALE = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: k8s-scale, description: scale, risk: low}
steps:
  - id: scale
    action: kubernetes.scale
    with: {resource: deployment/api, replicas: 5}
    compensate:
      action: kubernetes.scale
      with: {resource: deployment/api, replicas: "${capture.scale.previous_replicas}"}
on_failure: compensate
"""


def _deploy(replicas: int) -> str:
    return json.dumps({"spec": {"replicas": replicas}})


def test_kubectl_failure_with_the_state_read_back_unchanged_is_not_compensated(kit, standin):
    standin.rules([{"match": ["get deployment/api"], "stdout": _deploy(2)},
                   {"match": ["scale", "--replicas=5"], "exit": 1,
                    "stderr": "error: Expected replicas to be 2, was 3"}])
    res = kit.run("apply", str(kit.write("pb", SCALE)), "--yes", "--no-dry-run")
    assert res.exit_code == 1, res.output
    calls = standin.calls("kubectl")
    assert calls == [["get", "deployment/api", "-o", "json"],
                     ["scale", "deployment/api", "--current-replicas=2", "--replicas=5"],
                     ["get", "deployment/api", "-o", "json"]]  # the read-back that proves nothing changed
    assert kit.end()["compensated"] == []


def test_kubectl_scale_that_failed_after_taking_effect_is_in_effect_not_compensated(kit, standin):
    """kubectl failed, but the count read back is the one asked for: the step is done."""
    standin.rules([{"match": ["get deployment/api"], "stdout": _deploy(2), "once": True},
                   {"match": ["get deployment/api"], "stdout": _deploy(5)},
                   {"match": ["scale", "--replicas=5"], "exit": 1, "stderr": "error: the server was unable to"}])
    res = kit.run("apply", str(kit.write("pb", SCALE)), "--yes", "--no-dry-run")
    assert res.exit_code == 0, res.output
    assert [c for c in standin.calls("kubectl") if "scale" in c] == [
        ["scale", "deployment/api", "--current-replicas=2", "--replicas=5"]]
    assert kit.events("step_end")[0]["summary"].startswith("already in effect")


HPA_KUBECTL = """#!{py}
import json, os, sys
state_path = {state!r}
argv = sys.argv[1:]
with open(os.environ["STANDIN_LOG"], "a") as fh:
    fh.write(json.dumps({{"tool": "kubectl", "argv": argv}}) + chr(10))
state = json.load(open(state_path))
if "get" in argv:
    print(json.dumps({{"spec": state["spec"]}}))
elif "patch" in argv:
    state["spec"].update(json.loads(argv[argv.index("-p") + 1])["spec"])
    fails = state["fail_patches"]
    state["fail_patches"] = max(0, fails - 1)
    json.dump(state, open(state_path, "w"))
    if fails:  # the change is made, then the answer is lost
        sys.exit("error: the server was unable to return a response in the time allotted")
"""


def hpa_cluster(kit, standin, fail_patches: int) -> Path:
    """A stand-in kubectl with state: an HPA (min 2, max 10) in a file; a patch takes effect, and the
    first `fail_patches` of them still fail."""
    state = kit.tmp / "hpa.json"
    state.write_text(json.dumps({"spec": {"minReplicas": 2, "maxReplicas": 10}, "fail_patches": fail_patches}))
    (standin.bindir / "kubectl").write_text(HPA_KUBECTL.format(py=PY, state=str(state)))
    return state


def hpa_playbook(*, attempts: int = 1, then_fail: bool = False, on_failure: str = "compensate") -> str:
    after = f"""
  - id: after
    action: exec
    with: {{argv: {json.dumps([PY, "-c", "raise SystemExit(1)"])}}}""" if then_fail else ""
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: hpa, description: hpa, risk: low}}
steps:
  - id: hpa
    action: kubernetes.patch_hpa
    with: {{hpa: api, min_replicas: 6}}
    retries: {{attempts: {attempts}, backoff: 0s}}
    compensate:
      action: kubernetes.patch_hpa
      with: {{hpa: api, min_replicas: "${{capture.hpa.previous_min_replicas}}",
              max_replicas: "${{capture.hpa.previous_max_replicas}}"}}{after}
on_failure: {on_failure}
"""


def spec(state: Path) -> dict[str, int]:
    return json.loads(state.read_text())["spec"]


def test_a_retried_step_keeps_the_first_snapshot_for_its_compensation(kit, standin):
    """Attempt 1 takes effect (min 2 -> 6) but fails; attempt 2 succeeds; a later step fails. The
    compensation puts back min 2, read before the first attempt, not the 6 attempt 2 would read."""
    state = hpa_cluster(kit, standin, fail_patches=1)
    res = kit.run("apply", str(kit.write("pb", hpa_playbook(attempts=2, then_fail=True))), "--yes", "--no-dry-run")
    assert res.exit_code == 1, res.output
    assert [e["outcome"] for e in kit.events("step_end") if e["step"] == "hpa"] == ["failed", "ok"]
    assert spec(state) == {"minReplicas": 2, "maxReplicas": 10}
    assert kit.end()["compensated"] == ["hpa"]
    assert [c for c in standin.calls("kubectl") if "get" in c] == [["get", "hpa/api", "-o", "json"]] * 3
    # once for the snapshot, once to read back after attempt 1 failed, once by the compensation


def test_a_failed_step_that_changed_something_is_compensated_to_its_snapshot(kit, standin):
    state = hpa_cluster(kit, standin, fail_patches=1)
    res = kit.run("apply", str(kit.write("pb", hpa_playbook())), "--yes", "--no-dry-run")
    assert res.exit_code == 1, res.output
    assert spec(state) == {"minReplicas": 2, "maxReplicas": 10}
    end = kit.end()
    assert end["status"] == "compensated" and end["failed_step"] == "hpa" and end["compensated"] == ["hpa"]
    assert kit.events("step_in_doubt")[0]["captures"]["previous_min_replicas"] == 2


HTTP = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: http-create, description: create, risk: low}
params:
  url: {type: string}
steps:
  - id: create
    action: http.request
    with: {method: POST, url: "${params.url}/things", expect_status: [201]}
    compensate:
      action: http.request
      with: {method: DELETE, url: "${params.url}/things/new", expect_status: [200, 204, 404]}
on_failure: compensate
"""


@pytest.mark.parametrize("status, undone", [(409, False), (502, True)])
def test_http_4xx_proves_nothing_changed_5xx_does_not(kit, recorder, status, undone):
    recorder.route("POST", "/things", (status, {"error": "no"}))
    recorder.route("DELETE", "/things/new", (204, ""))
    res = kit.run("apply", str(kit.write("pb", HTTP)), "--yes", "-p", f"url={recorder.url}")
    assert res.exit_code == 1, res.output
    seen = [(r["method"], r["path"]) for r in recorder.requests]
    assert seen == [("POST", "/things")] + ([("DELETE", "/things/new")] if undone else [])


def test_exec_children_get_a_minimal_environment_plus_what_the_step_declares(kit, monkeypatch):
    monkeypatch.setenv("OPSKIT_TEST_DB_PASSWORD", "hunter2-not-for-children")
    monkeypatch.setenv("OPSKIT_TEST_PROFILE", "staging")
    monkeypatch.setenv("LANG", "C.UTF-8")
    dump = kit.tmp / "env.json"
    argv = [PY, "-c", "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))", str(dump)]
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: env, description: env, risk: low}}
steps:
  - id: s
    action: exec
    with: {{argv: {json.dumps(argv)}, env: {{STEP_VALUE: "42"}}, pass_env: [OPSKIT_TEST_PROFILE, NOT_SET_ANYWHERE]}}
"""
    res = kit.run("apply", str(kit.write("pb", text)), "--yes")
    assert res.exit_code == 0, res.output
    seen = json.loads(dump.read_text())
    assert "OPSKIT_TEST_DB_PASSWORD" not in seen and "hunter2" not in json.dumps(seen)
    assert seen["STEP_VALUE"] == "42" and seen["OPSKIT_TEST_PROFILE"] == "staging"
    assert seen["PATH"] == os.environ["PATH"] and seen["HOME"] == os.environ["HOME"] and seen["LANG"] == "C.UTF-8"
    # nothing else of opskit's environment (Python itself may add a variable or two, e.g. LC_CTYPE)
    assert set(seen) - {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "STEP_VALUE", "OPSKIT_TEST_PROFILE",
                        "LC_CTYPE"} == set()


def test_a_lock_whose_write_fails_leaves_no_lock_behind(tmp_path):
    """The disk fills up while the holder record is written: no empty lock file is left to block (or,
    worse, be taken over) later. Run with a 0-byte file size limit in a child process."""
    code = f"""
import resource, signal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
from pathlib import Path
from opskit.playbooks import lock
try:
    lock.acquire(Path({str(tmp_path)!r}), "k", run_id="r", playbook="p", started="now")
except OSError as exc:
    print("write failed:", exc.errno)
"""
    done = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert "write failed" in done.stdout, done.stdout + done.stderr
    assert list((tmp_path / "locks").iterdir()) == []


def test_executor_reports_through_the_reporter_and_prints_nothing(kit, capfd):
    log = kit.tmp / "log"
    prep = engine.prepare(str(kit.write("pb", one_step(log, [PY, "-c", APPEND, str(log), "do:s"]))), {})
    said: list[str] = []
    outcome = engine.apply(prep, Runtime(state_dir=kit.state, sources=lambda kind, loc: Steady(1.0),
                                         reporter=LineReporter(said.append)))
    assert outcome.status == "succeeded" and outcome.compensated == ()
    assert [line for line in said if line.startswith("==>")] == [
        f"==> step first (exec): {PY} -c {_q(APPEND)} {log} do:first",
        f"==> step s (exec): {PY} -c {_q(APPEND)} {log} do:s"]
    assert capfd.readouterr() == ("", "")


def _q(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_no_module_under_opskit_playbooks_prints():
    root = Path(__file__).parents[2] / "opskit" / "playbooks"
    banned = re.compile(r"\bprint\(|click\.echo|click\.secho|sys\.stdout|sys\.stderr"
                        r"|from opskit\.output import (echo|table|emit_json)|\bout\.(echo|table|emit_json|write)")
    offenders = [f"{p.relative_to(root)}:{n}" for p in sorted(root.rglob("*.py"))
                 for n, line in enumerate(p.read_text().splitlines(), 1) if banned.search(line)]
    assert offenders == []


def test_a_resumed_step_keeps_the_snapshot_from_before_its_first_run(kit, standin):
    """The patch took effect (min 2 -> 6) but failed and the run halted; resumed, the step runs again
    with the snapshot from the journal: its compensation values are still min 2, not 6."""
    hpa_cluster(kit, standin, fail_patches=1)
    path = kit.write("pb", hpa_playbook(on_failure="halt"))
    assert kit.run("apply", str(path), "--yes", "--no-dry-run").exit_code == 1
    rid = kit.run_ids()[-1]
    assert kit.end(rid)["status"] == "halted"
    res = kit.run("resume", rid, "--yes")
    assert res.exit_code == 0, res.output
    ends = [e for e in kit.events("step_end", rid) if e["step"] == "hpa"]
    assert [e["outcome"] for e in ends] == ["failed", "ok"]
    assert ends[-1]["captures"]["previous_min_replicas"] == 2
    assert len(kit.events("step_snapshot", rid)) == 1  # the resumed attempt did not take a new one
    summary = json.loads(kit.run("runs", rid, "-o", "json").stdout)["run"]
    assert summary["captures"]["hpa"]["previous_min_replicas"] == 2


def test_kubectl_keeps_its_environment_but_not_the_playbooks_secrets(kit, standin, monkeypatch):
    """kubectl needs KUBECONFIG and its credential plugins' variables; it never needs the playbook's
    secrets: neither the variable a secret is read from nor another variable holding the same value."""
    token = "tok-7f3a9c-not-for-kubectl"
    monkeypatch.setenv("OPSKIT_TEST_TOKEN", token)
    monkeypatch.setenv("SOME_COPY_OF_IT", token)
    monkeypatch.setenv("KUBECONFIG", str(kit.tmp / "kubeconfig"))
    dump = kit.tmp / "kubectl-env.jsonl"
    (standin.bindir / "kubectl").write_text(f"""#!{PY}
import json, os, sys
with open({str(dump)!r}, "a") as fh:
    fh.write(json.dumps(dict(os.environ)) + chr(10))
if "get" in sys.argv:
    print(json.dumps({{"spec": {{"replicas": 2}}}}))
""")
    marker = kit.tmp / "used"
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: k8s-secret, description: secret elsewhere, risk: low}}
params:
  token: {{type: string, secret: true, from_env: OPSKIT_TEST_TOKEN}}
steps:
  - id: scale
    action: kubernetes.scale
    with: {{resource: deployment/api, replicas: 3}}
  - id: notify
    action: exec
    with: {{argv: {json.dumps([PY, "-c", APPEND, str(marker), "used"])}, env: {{TOKEN: "${{params.token}}"}}}}
"""
    path = kit.write("pb", text)
    assert kit.run("plan", str(path)).exit_code == 0  # the server dry run
    res = kit.run("apply", str(path), "--yes")
    assert res.exit_code == 0, res.output
    seen = [json.loads(line) for line in dump.read_text().splitlines()]
    assert len(seen) == 6  # plan: get + dry run; apply: get + dry run, then get + scale
    for env in seen:
        assert env["KUBECONFIG"] == str(kit.tmp / "kubeconfig") and env["PATH"] == os.environ["PATH"]
        assert "OPSKIT_TEST_TOKEN" not in env and token not in env.values()
    assert lines(marker) == ["used"]
