"""The journal (append-only, hash-chained), resume from the failed step, and the lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

PY = sys.executable
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10)); print(sys.argv[2].upper())"
NEEDS = ("import os, sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10)); "
         "sys.exit(0 if os.path.exists(sys.argv[3]) else 3)")
WAIT_FOR = ("import os, sys, time; d = time.time() + 60\n"
            "while not os.path.exists(sys.argv[1]) and time.time() < d: time.sleep(0.05)")


def resumable(log: Path, flag: Path, on_failure: str = "halt") -> str:
    a = [PY, "-c", APPEND, str(log), "do:a"]
    b = [PY, "-c", NEEDS, str(log), "do:b", str(flag)]
    c = [PY, "-c", APPEND, str(log), "${capture.a.stdout}"]
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: resumable, description: resume tests}}
lock: resumable
steps:
  - {{id: a, action: exec, with: {{argv: {json.dumps(a)}}}}}
  - {{id: b, action: exec, with: {{argv: {json.dumps(b)}}}}}
  - {{id: c, action: exec, with: {{argv: {json.dumps(c)}}}}}
on_failure: {on_failure}
"""


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_journal_is_hash_chained_and_tampering_is_detected(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    flag.touch()
    assert kit.run("apply", str(kit.write("r", resumable(log, flag))), "--yes").exit_code == 0
    events = kit.journal()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert all(e["prev"] == p["hash"] for p, e in zip(events, events[1:], strict=False))
    rid = kit.run_ids()[-1]
    assert kit.run("runs", rid).exit_code == 0
    path = kit.state / "runs" / rid / "journal.jsonl"
    text = path.read_text().splitlines()
    doctored = json.loads(text[3])
    doctored["outcome"] = "failed" if doctored.get("outcome") == "ok" else "ok"
    text[3] = json.dumps(doctored, separators=(",", ":"))
    path.write_text("\n".join(text) + "\n")
    res = kit.run("runs", rid)
    assert res.exit_code == 3 and "hash chain broken" in res.stderr and ":4:" in res.stderr


def test_journal_records_the_story_of_a_run(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    flag.touch()
    kit.run("apply", str(kit.write("r", resumable(log, flag))), "--yes")
    kinds = [e["event"] for e in kit.journal()]
    assert kinds == ["run_start", "lock", "step_start", "step_end", "step_start", "step_end", "step_start",
                     "step_end", "run_end"]
    start = kit.journal()[0]
    assert start["playbook_sha"].startswith("sha256:") and start["plan_hash"]
    assert kit.events("step_start")[2]["command"].endswith("DO:A")  # capture resolved into c's argv
    listing = json.loads(kit.run("runs", "-o", "json").stdout)["runs"]
    assert listing[0]["status"] == "succeeded" and listing[0]["playbook"] == "resumable"


def test_resume_continues_from_the_failed_step_with_captures_from_the_journal(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    path = kit.write("r", resumable(log, flag))
    res = kit.run("apply", str(path), "--yes")
    assert res.exit_code == 1 and kit.end()["status"] == "halted" and kit.end()["failed_step"] == "b"
    rid = kit.run_ids()[-1]
    flag.touch()  # the operator fixes what made b fail
    res = kit.run("resume", rid, "--yes")
    assert res.exit_code == 0, res.output
    assert lines(log) == ["do:a", "do:b", "do:b", "DO:A"]  # a not run again; c used a's capture
    assert kit.events("run_resume", rid)[0]["from_step"] == "b"
    assert kit.end(rid)["status"] == "succeeded"
    again = kit.run("resume", rid, "--yes")
    assert again.exit_code == 2 and "it succeeded" in again.stderr


def test_resume_refuses_when_the_playbook_changed(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    path = kit.write("r", resumable(log, flag))
    kit.run("apply", str(path), "--yes")
    path.write_text(path.read_text().replace("resume tests", "resume tests, edited"))
    flag.touch()
    res = kit.run("resume", kit.run_ids()[-1], "--yes")
    assert res.exit_code == 2 and "changed since the run started" in res.stderr
    assert lines(log) == ["do:a", "do:b"]


def test_resume_of_a_compensated_run_redoes_the_undone_steps(kit):
    """Compensation undid a: a is no longer in effect, so the resumed run starts there again."""
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    text = resumable(log, flag, on_failure="compensate").replace(
        "  - {id: a, action: exec, with: {argv: ", "  - {id: a, compensate: {action: exec, with: {argv: "
        + json.dumps([PY, "-c", APPEND, str(log), "undo:a"]) + "}}, action: exec, with: {argv: ")
    kit.run("apply", str(kit.write("r", text)), "--yes")
    rid = kit.run_ids()[-1]
    assert kit.end(rid)["status"] == "compensated"
    assert lines(log) == ["do:a", "do:b", "undo:a"]
    flag.touch()
    res = kit.run("resume", rid, "--yes")
    assert res.exit_code == 0, res.output
    assert lines(log) == ["do:a", "do:b", "undo:a", "do:a", "do:b", "DO:A"]
    assert kit.events("run_resume", rid)[0]["from_step"] == "a"


def test_resume_refuses_after_a_failed_compensation(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    text = resumable(log, flag, on_failure="compensate").replace(
        "  - {id: a, action: exec, with: {argv: ", "  - {id: a, compensate: {action: exec, with: {argv: "
        + json.dumps([PY, "-c", "raise SystemExit(1)"]) + "}}, action: exec, with: {argv: ")
    assert kit.run("apply", str(kit.write("r", text)), "--yes").exit_code == 3
    res = kit.run("resume", kit.run_ids()[-1], "--yes")
    assert res.exit_code == 2 and "needs a person" in res.stderr


def test_resume_a_run_stopped_by_its_maintenance_window_later(kit):
    """Nothing ran (outside the window); resuming re-checks the window and the preconditions."""
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    flag.touch()
    import datetime as dt

    other_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(dt.datetime.now(dt.UTC).weekday() + 3) % 7]
    text = resumable(log, flag).replace("lock: resumable", "lock: resumable\npreconditions:\n"
                                        f"  - {{name: never, window: {{days: [{other_day}], start: '00:00', "
                                        "end: '00:01'}}")
    path = kit.write("r", text)
    res = kit.run("apply", str(path), "--yes")
    assert res.exit_code == 1 and kit.end()["status"] == "precondition_failed" and not log.exists()
    again = kit.run("resume", kit.run_ids()[-1], "--yes")
    assert again.exit_code == 1 and not log.exists()  # still outside: refused again, nothing ran


def test_resume_of_an_unknown_run(kit):
    res = kit.run("resume", "nope", "--yes")
    assert res.exit_code == 2 and "no run 'nope'" in res.stderr


def test_resume_after_a_crash_mid_run(kit):
    """opskit is killed (SIGKILL) while step b runs: no run_end, a lock left by a dead pid, a journal and
    index that agree. The run resumes at b and finishes."""
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    a = [PY, "-c", APPEND, str(log), "do:a"]
    b = [PY, "-c", WAIT_FOR, str(flag)]
    c = [PY, "-c", APPEND, str(log), "${capture.a.stdout}"]
    path = kit.write("r", f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: resumable, description: resume tests}}
lock: resumable
steps:
  - {{id: a, action: exec, with: {{argv: {json.dumps(a)}}}}}
  - {{id: b, action: exec, with: {{argv: {json.dumps(b)}}}, timeout: 90s}}
  - {{id: c, action: exec, with: {{argv: {json.dumps(c)}}}}}
on_failure: halt
""")
    opskit = str(Path(sys.executable).parent / "opskit")
    first = subprocess.Popen([opskit, "playbook", "apply", str(path), "--yes", "--state-dir", str(kit.state)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = psutil.Process(first.pid).children(recursive=True)
            try:
                started_b = any(e["event"] == "step_start" and e["step"] == "b" for e in kit.journal())
            except (IndexError, OSError, ValueError):  # no run yet, or a line being written
                started_b = False
            if children and started_b:
                break
            time.sleep(0.05)
        assert children, "step b never started"
        first.kill()
        first.wait(timeout=30)
    finally:
        for child in children:  # b runs in its own session: stop it by its pid
            child.kill()
        if first.poll() is None:
            first.kill()
            first.wait()
    rid = kit.run_ids()[-1]
    assert not kit.events("run_end", rid)
    flag.touch()
    res = kit.run("resume", rid, "--yes")
    assert res.exit_code == 0, res.output
    assert lines(log) == ["do:a", "DO:A"]  # a was not run again; c got a's capture from the journal
    assert kit.events("lock_stale", rid)[0]["previous"]["pid"] == first.pid


def test_deleting_the_journals_last_line_fails_verification(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    flag.touch()
    assert kit.run("apply", str(kit.write("r", resumable(log, flag))), "--yes").exit_code == 0
    rid = kit.run_ids()[-1]
    jpath = kit.state / "runs" / rid / "journal.jsonl"
    text = jpath.read_text().splitlines()
    assert json.loads(text[-1])["event"] == "run_end"
    jpath.write_text("\n".join(text[:-1]) + "\n")  # the chain of what is left is intact
    res = kit.run("runs", rid)
    assert res.exit_code == 3, res.output
    assert "truncated" in res.stderr and f"counts {len(text)} record(s), the journal has {len(text) - 1}" in res.stderr
    assert kit.run("resume", rid, "--yes").exit_code == 3  # and it cannot be resumed as if it had crashed
    listed = json.loads(kit.run("runs", "-o", "json").stdout)["runs"]
    assert [r["status"] for r in listed] == ["damaged"]
    (jpath.parent / "index.json").unlink()  # removing the index as well does not hide it
    res = kit.run("runs", rid)
    assert res.exit_code == 3 and "no run index" in res.stderr


def test_lock_held_by_a_live_run_refuses_a_second_one_naming_the_holder(kit):
    release = kit.tmp / "release"
    holder_log = kit.tmp / "holder-log"
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: holder, description: holds the lock}}
lock: shared
steps:
  - {{id: wait, action: exec, with: {{argv: {json.dumps([PY, "-c", WAIT_FOR, str(release)])}}}}}
"""
    path = kit.write("holder", text)
    opskit = str(Path(sys.executable).parent / "opskit")
    with open(holder_log, "w") as sink:
        first = subprocess.Popen([opskit, "playbook", "apply", str(path), "--yes", "--state-dir", str(kit.state)],
                                 stdout=sink, stderr=subprocess.STDOUT)
    try:
        lockfile = kit.state / "locks" / "shared.lock"
        deadline = time.monotonic() + 30
        while not lockfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lockfile.exists(), holder_log.read_text()
        holder = json.loads(lockfile.read_text())
        second = kit.run("apply", str(path), "--yes")
        assert second.exit_code == 3
        assert f"held by run {holder['run_id']}" in second.stderr and f"pid {first.pid}" in second.stderr
    finally:
        release.touch()
        first.wait(timeout=60)
    assert first.returncode == 0
    assert not lockfile.exists()
    assert kit.run("apply", str(path), "--yes").exit_code == 0  # free again


def test_lock_on_another_host_is_refused_with_a_way_out(kit):
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    (kit.state / "locks").mkdir(parents=True)
    (kit.state / "locks" / "resumable.lock").write_text(json.dumps(
        {"run_id": "other-run", "pid": 1234, "host": "elsewhere.example", "playbook": "resumable", "token": "x"}))
    res = kit.run("apply", str(kit.write("r", resumable(log, flag))), "--yes")
    assert res.exit_code == 3 and "other-run" in res.stderr and "another host" in res.stderr
    assert not log.exists()


def test_lock_with_a_reused_pid_is_stale(kit):
    """The pid is alive but belongs to a process that started after the lock was taken."""
    log, flag = kit.tmp / "log", kit.tmp / "flag"
    flag.touch()
    (kit.state / "locks").mkdir(parents=True)
    me = psutil.Process(os.getpid())
    (kit.state / "locks" / "resumable.lock").write_text(json.dumps(
        {"run_id": "old", "pid": me.pid, "pid_started": me.create_time() - 1000, "host": socket.gethostname(),
         "token": "x"}))
    res = kit.run("apply", str(kit.write("r", resumable(log, flag))), "--yes")
    assert res.exit_code == 0, res.output
    assert kit.events("lock_stale")[0]["previous"]["run_id"] == "old"


@pytest.mark.parametrize("bad", ["../x", ".hidden", "a/b"])
def test_run_ids_cannot_escape_the_state_dir(kit, bad):
    assert kit.run("runs", bad).exit_code == 2
