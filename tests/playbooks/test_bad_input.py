"""Playbook files and parameters that are wrong in ways people (or scripts) get them wrong: exit 2, located."""

from __future__ import annotations

import pytest

PLAYBOOK = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: t, description: test, risk: low}
params:
  n: {type: integer, minimum: 1}
steps:
  - id: s
    action: exec
    with: {argv: [echo, "${params.n}"]}
    timeout: TIMEOUT
"""


@pytest.mark.parametrize("timeout, words", [
    ('"1e400s"', "steps[0].timeout: expected a finite duration, got '1e400s'"),
    (".inf", "steps[0].timeout: expected a finite duration, got inf"),
    (".nan", "steps[0].timeout: expected a finite duration, got nan"),
])
def test_an_infinite_timeout_is_refused_with_its_line(kit, timeout, words):
    path = kit.write("t", PLAYBOOK.replace("TIMEOUT", timeout))
    res = kit.run("plan", str(path), "-p", "n=2")
    assert res.exit_code == 2, res.output
    assert f"{path}:10: {words}" in res.stderr


@pytest.mark.parametrize("digits", [19, 5000])
def test_an_integer_parameter_too_large_is_a_parameter_problem(kit, digits):
    path = kit.write("t", PLAYBOOK.replace("TIMEOUT", "5s"))
    res = kit.run("apply", str(path), "--yes", "-p", "n=" + "9" * digits)
    assert res.exit_code == 2, res.output
    assert f"n: integer too large ({digits} digits)" in res.stderr
    assert "internal error" not in res.stderr
    assert kit.run_ids() == []


def test_a_recursive_alias_in_a_playbook_is_located(kit):
    path = kit.write("loop", "apiVersion: opskit/v1\nkind: Playbook\nsteps: &s [*s]\n")
    res = kit.run("show", str(path))
    assert res.exit_code == 2, res.output
    assert f"{path}:3: a YAML alias refers to the node that contains it" in res.stderr


LOCKED = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: lk, description: test, risk: low}
lock: mylock
steps:
  - {id: s, action: exec, with: {argv: [echo, hi]}}
"""


@pytest.mark.parametrize("tail, words", [
    (b"\x00\xff garbage\n", "not a JSON line; the journal is damaged"),
    (b"[1]\n", "not a journal event (a JSON object); the journal is damaged"),
])
def test_a_damaged_journal_names_the_line(kit, tail, words):
    assert kit.run("apply", str(kit.write("lk", LOCKED)), "--yes").exit_code == 0
    run_id = kit.run_ids()[-1]
    journal = kit.state / "runs" / run_id / "journal.jsonl"
    lines = len(journal.read_text().splitlines())
    with journal.open("ab") as fh:
        fh.write(tail)
    res = kit.run("runs", run_id)
    assert res.exit_code == 3, res.output
    assert f"journal.jsonl:{lines + 1}: {words}" in res.stderr
    assert "internal error" not in res.stderr


@pytest.mark.parametrize("content", [b"", b"[1]", b'{"run_id": "20261205T", "pi', b"\x00\xff", b'{"pid": 1}'],
                         ids=["empty", "not-an-object", "half-written", "not-utf8", "no-token"])
def test_a_lock_file_opskit_did_not_write_whole_is_held_by_an_unknown_holder(kit, content):
    """Locks appear whole (written aside, then linked), so an empty or half-written one is not a dead
    run's leftover: it is refused with how to clear it, never taken over (two runs could hold it)."""
    lockfile = kit.state / "locks" / "mylock.lock"
    lockfile.parent.mkdir(parents=True)
    lockfile.write_bytes(content)
    res = kit.run("apply", str(kit.write("lk", LOCKED)), "--yes")
    assert res.exit_code == 3, res.output
    assert "held by an unknown holder" in res.stderr and f"clear it with: rm {lockfile}" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert lockfile.read_bytes() == content  # kept as it was
    assert kit.end()["status"] == "locked" and not kit.events("step_start")
    lockfile.unlink()
    assert kit.run("apply", str(kit.write("lk", LOCKED)), "--yes").exit_code == 0


def test_a_folder_where_the_lock_file_goes_is_refused_and_kept(kit):
    folder = kit.state / "locks" / "mylock.lock"
    folder.mkdir(parents=True)
    res = kit.run("apply", str(kit.write("lk", LOCKED)), "--yes")
    assert res.exit_code == 3, res.output
    assert f"{folder} is a folder, not a lock file" in res.stderr
    assert folder.is_dir()


def test_a_folder_named_like_a_playbook_says_so(kit):
    folder = kit.tmp / "scale.yaml"
    folder.mkdir()
    res = kit.run("show", str(folder))
    assert res.exit_code == 2 and f"{folder}: is a folder, not a playbook file" in res.stderr
