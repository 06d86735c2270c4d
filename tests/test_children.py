"""The child-process lifecycle helper, with real child processes: a server that listens on a port, one that
ignores SIGTERM, a grandchild that must die with its group, and a stop from another interpreter that must
not touch a process whose start time differs (what a reused pid looks like)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from opskit import children
from opskit.children import Identity
from opskit.errors import RuntimeFailure

LISTENER = textwrap.dedent("""
    import socket, sys
    s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
    open(sys.argv[1], "w").write(str(s.getsockname()[1]))
    while True:
        s.accept()[0].close()
""")

STUBBORN = textwrap.dedent("""
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    while True:
        time.sleep(1)
""")

PARENT_OF_GRANDCHILD = textwrap.dedent("""
    import subprocess, sys, time
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    g = subprocess.Popen([sys.executable, "-c", stubborn])
    print(f"grandchild {g.pid}", flush=True)
    time.sleep(600)
""")


def env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}


def port_answers(port_file: Path) -> bool:
    if not port_file.exists() or not port_file.read_text():
        return False
    try:
        with socket.create_connection(("127.0.0.1", int(port_file.read_text())), timeout=1):
            return True
    except OSError:
        return False


def log_has(path: Path, text: str) -> bool:
    return path.exists() and text in path.read_text()


def test_a_listener_is_ready_when_its_port_answers_and_stop_terminates_it(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    with children.start([sys.executable, "-c", LISTENER, str(port_file)], env=env(), log=tmp_path / "l.log") as child:
        assert child.identity == Identity(child.pid, psutil.Process(child.pid).create_time())
        child.wait_ready(lambda: port_answers(port_file), timeout_s=30, what="the listener")
        assert child.running and os.getpgid(child.pid) == child.pid  # its own process group
    assert child.returncode == -signal.SIGTERM
    assert not port_answers(port_file)
    assert not child.identity.alive()


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    child = children.start([sys.executable, "-c", STUBBORN], env=env(), log=log)
    child.wait_ready(lambda: log_has(log, "ready"), timeout_s=30, what="the stubborn child")
    assert child.stop(timeout_s=0.3) == -signal.SIGKILL
    assert child.stop() == -signal.SIGKILL  # idempotent


def test_a_grandchild_dies_with_the_group(tmp_path: Path) -> None:
    log = tmp_path / "g.log"
    child = children.start([sys.executable, "-c", PARENT_OF_GRANDCHILD], env=env(), log=log)
    try:
        child.wait_ready(lambda: log_has(log, "grandchild"), timeout_s=30, what="the parent")
        grandchild = psutil.Process(int(log.read_text().split()[1]))
        assert grandchild.is_running()
    finally:
        child.stop(timeout_s=10)  # the parent dies of SIGTERM; the grandchild ignores it
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    assert gone and not alive


def test_a_child_that_exits_while_starting_is_an_error_with_its_log(tmp_path: Path) -> None:
    child = children.start([sys.executable, "-c", "import sys; print('boom: no config', file=sys.stderr); sys.exit(3)"],
                           env=env(), log=tmp_path / "e.log")
    with pytest.raises(RuntimeFailure, match=r"^the thing exited with status 3 while starting: boom: no config$"):
        child.wait_ready(lambda: False, timeout_s=30, what="the thing")
    assert child.returncode == 3


def test_a_child_that_never_answers_is_stopped_after_the_readiness_timeout(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    child = children.start([sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(600)"],
                           env=env(), log=log)
    with pytest.raises(RuntimeFailure, match=r"the sleeper did not become ready within 0.5s"):
        child.wait_ready(lambda: False, timeout_s=0.5, what="the sleeper")
    assert child.returncode == -signal.SIGTERM and not child.identity.alive()


def test_the_environment_is_exactly_the_one_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSKIT_TEST_LEAK", "from-the-caller")
    log = tmp_path / "env.log"
    with children.start([sys.executable, "-c", "import json, os; print(json.dumps(dict(os.environ)))"],
                        env={**env(), "GIVEN": "yes"}, log=log) as child:
        assert child.wait(30) == 0
    seen = json.loads(log.read_text())
    assert seen["GIVEN"] == "yes" and "OPSKIT_TEST_LEAK" not in seen


def test_stdout_can_be_a_pipe(tmp_path: Path) -> None:
    with children.start([sys.executable, "-c", "print('hello')"], env=env(), log=tmp_path / "p.log",
                        stdout="pipe") as child:
        assert child.stdout is not None and child.stdout.read() == b"hello\n"
        assert child.wait(30) == 0


def stop_from_another_interpreter(identity: Identity) -> bool:
    code = ("import sys; from opskit.children import Identity, stop_identity; "
            f"print(stop_identity(Identity({identity.pid}, {identity.create_time!r}), timeout_s=1))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip() == "True"


def test_a_stop_from_another_invocation_spares_a_process_with_another_start_time(tmp_path: Path) -> None:
    log = tmp_path / "s.log"
    child = children.start([sys.executable, "-c", STUBBORN], env=env(), log=log)
    try:
        child.wait_ready(lambda: log_has(log, "ready"), timeout_s=30, what="the child")
        # what a state file holds after the pid was reused: the same pid, another start time
        reused = Identity(child.pid, child.identity.create_time - 30)
        assert not reused.alive()
        assert stop_from_another_interpreter(reused) is False
        assert child.running
        # the true identity: SIGTERM is ignored, so the group is killed after the timeout
        assert stop_from_another_interpreter(child.identity) is True
        assert child.wait(30) == -signal.SIGKILL
    finally:
        child.stop()


def test_stop_identity_in_the_same_interpreter_stops_and_reaps_the_child(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    child = children.start([sys.executable, "-c", LISTENER, str(port_file)], env=env(), log=tmp_path / "l.log")
    child.wait_ready(lambda: port_answers(port_file), timeout_s=30, what="the listener")
    assert children.stop_identity(child.identity) is True
    assert child.returncode == -signal.SIGTERM
    assert children.stop_identity(child.identity) is False  # nothing left to stop


def test_argv_must_be_a_list_and_a_missing_binary_is_a_runtime_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="argv must be a non-empty list"):
        children.start("python -c pass", env=env())  # type: ignore[arg-type]
    with pytest.raises(RuntimeFailure, match="cannot start .*no-such-binary"):
        children.start([str(tmp_path / "no-such-binary")], env=env())


def test_stop_can_ask_with_another_signal_and_kill_takes_the_group_at_once(tmp_path: Path) -> None:
    log = tmp_path / "i.log"
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGINT, lambda *a: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "time.sleep(600)\n")
    child = children.start([sys.executable, "-c", code], env=env(), log=log)
    child.wait_ready(lambda: log_has(log, "ready"), timeout_s=30, what="the child")
    assert child.stop(sig=signal.SIGINT, timeout_s=30) == 7  # its own answer to SIGINT, not a kill

    log = tmp_path / "g.log"
    parent = children.start([sys.executable, "-c", PARENT_OF_GRANDCHILD], env=env(), log=log)
    parent.wait_ready(lambda: log_has(log, "grandchild"), timeout_s=30, what="the parent")
    grandchild = psutil.Process(int(log.read_text().split()[1]))
    assert parent.kill() == -signal.SIGKILL
    gone, alive = psutil.wait_procs([grandchild], timeout=10)
    assert gone and not alive
