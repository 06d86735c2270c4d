"""Steps in order, retries, timeouts, failure at every point with compensation in reverse (or a halt),
verification (pass, fail, inconclusive), Ctrl-C; each checked in the exit code and the journal."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

PY = sys.executable
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"
FAIL = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10)); sys.exit(3)"
SLEEP = "import time; time.sleep(30)"


def step(sid: str, log: Path, *, fail: bool = False, sleep: bool = False, compensate: bool = True,
         extra: str = "") -> str:
    code = SLEEP if sleep else (FAIL if fail else APPEND)
    argv = [PY, "-c", code, str(log), f"do:{sid}"] if not sleep else [PY, "-c", code]
    text = f"""
  - id: {sid}
    action: exec
    with: {{argv: {json.dumps(argv)}}}
    timeout: {"1s" if sleep else "20s"}
{extra}"""
    if compensate:
        undo = [PY, "-c", APPEND, str(log), f"undo:{sid}"]
        text += f"""    compensate: {{action: exec, with: {{argv: {json.dumps(undo)}}}}}
"""
    return text


def playbook(steps: str, *, on_failure: str = "compensate", verify: str = "", pre: str = "",
             sources: str = "") -> str:
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: test-steps, description: steps for tests, risk: low}}
params:
  reason: {{type: string, default: testing the engine}}
lock: test-lock
{sources}
{pre}
steps:{steps}
{verify}
on_failure: {on_failure}
"""


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_all_steps_run_in_order_and_journal_records_each(kit):
    log = kit.tmp / "log"
    path = kit.write("pb", playbook(step("a", log) + step("b", log) + step("c", log)))
    res = kit.run("apply", str(path), "--yes")
    assert res.exit_code == 0, res.output
    assert lines(log) == ["do:a", "do:b", "do:c"]
    kinds = [e["event"] for e in kit.journal()]
    assert kinds[0] == "run_start" and kinds[-1] == "run_end"
    ends = kit.events("step_end")
    assert [e["step"] for e in ends] == ["a", "b", "c"]
    assert all(e["outcome"] == "ok" and e["duration_s"] >= 0 for e in ends)
    assert kit.end()["status"] == "succeeded"
    # the lock is released after the run
    assert not (kit.state / "locks" / "test-lock.lock").exists()


@pytest.mark.parametrize("failing", ["a", "b", "c"])
def test_failure_at_each_step_compensates_it_then_completed_steps_in_reverse(kit, failing):
    """The failing command ran (and wrote its line before exiting 3): an exec step cannot prove it
    changed nothing, so it is undone first, then the completed steps in reverse."""
    log = kit.tmp / "log"
    steps = "".join(step(s, log, fail=(s == failing)) for s in "abc")
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 1, res.output
    done = "abc"[: "abc".index(failing)]
    undone = [failing, *reversed(done)]
    assert lines(log) == [f"do:{s}" for s in done] + [f"do:{failing}"] + [f"undo:{s}" for s in undone]
    end = kit.end()
    assert end["status"] == "compensated" and end["failed_step"] == failing and end["exit_code"] == 1
    assert end["compensated"] == undone
    assert [e["step"] for e in kit.events("compensate_end")] == undone
    assert kit.events("step_in_doubt")[0]["step"] == failing
    assert f"step {failing} failed" in res.stderr


def test_halt_leaves_completed_steps_alone(kit):
    log = kit.tmp / "log"
    steps = step("a", log) + step("b", log, fail=True) + step("c", log)
    res = kit.run("apply", str(kit.write("pb", playbook(steps, on_failure="halt"))), "--yes")
    assert res.exit_code == 1
    assert lines(log) == ["do:a", "do:b"]
    assert kit.end()["status"] == "halted" and kit.end()["failed_step"] == "b"
    assert kit.events("compensate_start") == []


def test_retries_attempt_the_step_again_then_compensate(kit):
    log = kit.tmp / "log"
    extra = "    retries: {attempts: 3, backoff: 0s}\n"
    steps = step("a", log) + step("b", log, fail=True, extra=extra)
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 1
    assert lines(log) == ["do:a", "do:b", "do:b", "do:b", "undo:b", "undo:a"]
    assert [e["attempt"] for e in kit.events("step_end") if e["step"] == "b"] == [1, 2, 3]


def test_retry_that_succeeds_later_continues(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    # fails the first time (creates the flag), succeeds the second
    code = ("import os, sys; f = sys.argv[1]; "
            "ok = os.path.exists(f); open(f, 'a').close(); sys.exit(0 if ok else 4)")
    steps = step("a", log) + f"""
  - id: flaky
    action: exec
    with: {{argv: {json.dumps([PY, "-c", code, str(flag)])}}}
    retries: {{attempts: 2, backoff: 0s}}
"""
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 0, res.output
    assert [e["outcome"] for e in kit.events("step_end") if e["step"] == "flaky"] == ["failed", "ok"]


def test_timeout_kills_the_step_and_compensates(kit):
    log = kit.tmp / "log"
    steps = step("a", log) + step("slow", log, sleep=True, compensate=False)
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 1
    slow = [e for e in kit.events("step_end") if e["step"] == "slow"][0]
    assert slow["outcome"] == "timeout" and slow["duration_s"] < 10
    assert lines(log) == ["do:a", "undo:a"]
    assert kit.end()["status"] == "compensated"


def test_failing_compensation_is_exit_3_and_recorded(kit):
    log = kit.tmp / "log"
    bad_undo = [PY, "-c", "import sys; sys.exit(9)"]
    steps = f"""
  - id: a
    action: exec
    with: {{argv: {json.dumps([PY, "-c", APPEND, str(log), "do:a"])}}}
    compensate: {{action: exec, with: {{argv: {json.dumps(bad_undo)}}}}}
""" + step("b", log, fail=True)
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 3
    assert kit.end()["status"] == "compensation_failed"
    assert [(e["step"], e["outcome"]) for e in kit.events("compensate_end")] == [("b", "ok"), ("a", "failed")]


def test_interrupt_stops_at_a_safe_point_compensates_and_exits_130(kit):
    """The second step sends SIGINT to opskit itself (as a Ctrl-C would): the step in flight finishes,
    the third never starts, both completed steps are compensated."""
    log = kit.tmp / "log"
    ctrl_c = [PY, "-c", "import os, signal, sys; open(sys.argv[1], 'a').write('do:b' + chr(10)); "
              "os.kill(os.getppid(), signal.SIGINT)", str(log)]
    steps = step("a", log) + f"""
  - id: b
    action: exec
    with: {{argv: {json.dumps(ctrl_c)}}}
    compensate: {{action: exec, with: {{argv: {json.dumps([PY, "-c", APPEND, str(log), "undo:b"])}}}}}
""" + step("c", log)
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 130, res.output
    assert lines(log) == ["do:a", "do:b", "undo:b", "undo:a"]
    assert kit.events("interrupted")[0]["completed"] == ["a", "b"]
    assert kit.end()["status"] == "interrupted"


def test_confirmation_declined_runs_nothing(kit):
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("pb", playbook(step("a", log)))), input="n\n")
    assert res.exit_code == 1
    assert not log.exists() and kit.run_ids() == []


def test_confirmation_accepted_runs(kit):
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("pb", playbook(step("a", log)))), input="y\n")
    assert res.exit_code == 0 and lines(log) == ["do:a"]


def test_plan_hash_must_match_what_was_reviewed(kit):
    log = kit.tmp / "log"
    path = kit.write("pb", playbook(step("a", log)))
    plan = kit.run("plan", str(path), "-o", "json")
    assert plan.exit_code == 0, plan.output
    h = json.loads(plan.stdout)["hash"]
    wrong = kit.run("apply", str(path), "--yes", "--plan-hash", "0" * 16)
    assert wrong.exit_code == 1 and "nothing was run" in wrong.stderr and not log.exists()
    # a different parameter is a different plan
    other = kit.run("apply", str(path), "--yes", "--plan-hash", h, "-p", "reason=something else entirely")
    assert other.exit_code == 1 and not log.exists()
    ok = kit.run("apply", str(path), "--yes", "--plan-hash", h)
    assert ok.exit_code == 0 and lines(log) == ["do:a"]


def test_plan_runs_nothing_and_shows_the_exact_commands(kit):
    log = kit.tmp / "log"
    path = kit.write("pb", playbook(step("a", log) + step("b", log)))
    res = kit.run("plan", str(path))
    assert res.exit_code == 0
    assert not log.exists() and kit.run_ids() == []
    assert "do:a" in res.stdout and "undo:b" in res.stdout
    data = json.loads(kit.run("plan", str(path), "-o", "json").stdout)
    assert [s["id"] for s in data["steps"]] == ["a", "b"]
    assert data["steps"][0]["args"]["argv"] == [PY, "-c", APPEND, str(log), "do:a"]


def test_second_interrupt_stops_the_running_step_then_compensates(kit):
    """Ctrl-C twice: the step in flight (a 30 s command) is killed, completed steps are compensated."""
    log = kit.tmp / "log"
    twice = [PY, "-c", "import os, signal, time; p = os.getppid(); os.kill(p, signal.SIGINT); time.sleep(0.5); "
             "os.kill(p, signal.SIGINT); time.sleep(30)"]
    steps = step("a", log) + f"""
  - id: long
    action: exec
    with: {{argv: {json.dumps(twice)}}}
    timeout: 60s
""" + step("c", log)
    import time

    started = time.monotonic()
    res = kit.run("apply", str(kit.write("pb", playbook(steps))), "--yes")
    assert res.exit_code == 130, res.output
    assert time.monotonic() - started < 20
    long_end = [e for e in kit.events("step_end") if e["step"] == "long"][0]
    assert long_end["outcome"] == "failed" and "second interrupt" in long_end["summary"]
    assert lines(log) == ["do:a", "undo:a"]
    assert kit.end()["status"] == "interrupted"


def test_apply_json_output_is_one_document_on_stdout(kit):
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("pb", playbook(step("a", log) + step("b", log, fail=True)))), "--yes",
                  "-o", "json")
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["status"] == "compensated" and doc["failed_step"] == "b" and doc["exit_code"] == 1
    assert Path(doc["journal"]).exists()
    assert "==> step a" in res.stderr  # progress went to stderr


@pytest.mark.parametrize("code, rc", [(0, 0), (4, 1)])
def test_exec_dry_run_argv_runs_with_dry_run_commands_and_gates_apply(kit, code, rc):
    log = kit.tmp / "log"
    check = [PY, "-c", f"print('would change 3 things'); raise SystemExit({code})"]
    text = playbook(step("a", log).replace("with: {argv:", f"with: {{dry_run_argv: {json.dumps(check)}, argv:"))
    path = kit.write("pb", text)
    res = kit.run("plan", str(path), "--dry-run-commands")
    assert res.exit_code == rc
    assert "would change 3 things" in res.stdout and not log.exists()
    applied = kit.run("apply", str(path), "--yes")
    assert applied.exit_code == rc and log.exists() == (rc == 0)


def test_plan_runs_no_command_without_dry_run_commands(kit):
    """dry_run_argv is a command the playbook's author wrote: `plan` shows it and runs it only when asked."""
    log, ran = kit.tmp / "log", kit.tmp / "ran"
    check = [PY, "-c", APPEND, str(ran), "dry-run"]
    text = playbook(step("a", log).replace("with: {argv:", f"with: {{dry_run_argv: {json.dumps(check)}, argv:"))
    path = kit.write("pb", text)
    res = kit.run("plan", str(path))
    assert res.exit_code == 0, res.output
    assert not ran.exists() and not log.exists()
    assert "dry run not run" in res.stdout and "--dry-run-commands" in res.stdout
    doc = json.loads(kit.run("plan", str(path), "-o", "json").stdout)
    assert doc["dry_runs"]["a"]["ran"] is False and not ran.exists()
    assert kit.run("plan", str(path), "--dry-run-commands").exit_code == 0
    assert lines(ran) == ["dry-run"]

