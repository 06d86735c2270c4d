"""Edges: a torn journal tail, Ctrl-C while verification waits, the subprocess wrapper's timeout,
the hand-off's errors, run listings."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sys
import time

import pytest

from opskit.errors import UsageError
from opskit.exitcodes import ExitCode
from opskit.metrics.base import MetricRequest, Sample, Series
from opskit.playbooks import engine
from opskit.playbooks.executor import Runtime
from opskit.playbooks.handoff import run_for_decision
from opskit.playbooks.outcome import exit_code_for
from opskit.proc import run_argv

PY = sys.executable
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"


def one_step(log, *, verify: str = "") -> str:
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: edge, description: edges}}
sources:
  s: {{kind: json, location: "http://127.0.0.1:9/x"}}
steps:
  - id: a
    action: exec
    with: {{argv: {json.dumps([PY, "-c", APPEND, str(log), "do:a"])}}}
    compensate: {{action: exec, with: {{argv: {json.dumps([PY, "-c", APPEND, str(log), "undo:a"])}}}}}
{verify}"""


class CtrlCSource:
    """Reads a good value, and the user presses Ctrl-C while verification waits for the next reading."""

    name = "ctrl-c"

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        os.kill(os.getpid(), signal.SIGINT)
        return Series(request.resource, request.metric, (Sample(1.0, now),))

    def replicas(self, resource: str) -> int | None:
        return None


def test_ctrl_c_during_verification_wait_compensates_and_is_130(kit):
    log = kit.tmp / "log"
    verify = """verify:
  - {name: slow, source: s, metric: api.x, success: "== 1", interval: 60s, count: 5}
"""
    prep = engine.prepare(str(kit.write("e", one_step(log, verify=verify))), {})
    started = time.monotonic()
    out = engine.apply(prep, Runtime(state_dir=kit.state, sources=lambda kind, loc: CtrlCSource()))
    assert exit_code_for(out.status) == ExitCode.INTERRUPTED and out.status == "interrupted"
    assert time.monotonic() - started < 30  # did not sit out the 60 s interval
    assert log.read_text().split() == ["do:a", "undo:a"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_torn_last_line_is_tolerated_and_dropped_before_appending(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: torn, description: torn}}
steps:
  - {{id: a, action: exec, with: {{argv: {json.dumps([PY, "-c", APPEND, str(log), "a"])}}}}}
  - id: b
    action: exec
    with: {{argv: {json.dumps([PY, "-c", "import os, sys; sys.exit(0 if os.path.exists(sys.argv[1]) else 1)",
                                str(flag)])}}}
on_failure: halt
"""
    assert kit.run("apply", str(kit.write("t", text)), "--yes").exit_code == 1
    rid = kit.run_ids()[-1]
    path = kit.state / "runs" / rid / "journal.jsonl"
    with open(path, "a") as fh:
        fh.write('{"seq": 99, "event": "step_st')  # the crash happened mid-write
    assert kit.run("runs", rid).exit_code == 0
    flag.touch()
    assert kit.run("resume", rid, "--yes").exit_code == 0
    assert kit.run("runs", rid, "-o", "json").exit_code == 0  # the chain still verifies


def test_wrapper_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "grandchild-alive"
    grandchild = f"import time; time.sleep(2); open({str(marker)!r}, 'w')"
    code = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(30)"
    started = time.monotonic()
    res = run_argv([PY, "-c", code], timeout=0.5)
    assert res.timed_out and res.returncode is None and not res.ok
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not marker.exists():
        time.sleep(0.1)
    assert not marker.exists()


def test_wrapper_reports_a_missing_program():
    res = run_argv(["definitely-not-a-program-xyz"], timeout=5)
    assert res.error and "cannot run" in res.error and not res.ok


def test_wrapper_refuses_a_string_command():
    with pytest.raises(ValueError):
        run_argv("echo hi", timeout=5)  # type: ignore[arg-type]


def test_handoff_rejects_bad_parameters_before_anything_runs(kit):
    with pytest.raises(UsageError) as err:
        run_for_decision("local-horizontal-scale", {"workers": 0, "reason": "too short"}, apply=True,
                         state_dir=kit.state)
    assert any("workers: must be at least 1" in d for d in err.value.details)
    assert kit.run_ids() == []


def test_runs_lists_and_shows_a_run_by_id(kit):
    log = kit.tmp / "log"
    kit.run("apply", str(kit.write("e", one_step(log))), "--yes")
    rid = kit.run_ids()[-1]
    listing = kit.run("runs")
    assert listing.exit_code == 0 and "edge" in listing.stdout and "succeeded" in listing.stdout
    shown = kit.run("show", rid)
    assert shown.exit_code == 0 and "step_end" in shown.stdout
    data = json.loads(kit.run("runs", rid, "-o", "json").stdout)
    assert data["run"]["status"] == "succeeded" and data["events"][0]["event"] == "run_start"


def test_empty_state_dir_lists_no_runs(kit):
    res = kit.run("runs", "-o", "json")
    assert res.exit_code == 0 and json.loads(res.stdout) == {"runs": [], "pending": []}
