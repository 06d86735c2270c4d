"""Owning the stack's daemons: start one in its own session with its output in a log, wait until it
answers, and stop exactly what was started (pid + start time, never a pid alone).

This is a stand-in with the same names and signatures as the project's child-process helper
(`opskit.children`: Identity, Child, start, stop_identity) for the parts the stack uses; when that module
lands, `from opskit.stack import lifecycle as children` in opskit/stack/daemons.py becomes
`from opskit import children` and this file goes. Running a daemon as an unprivileged user is not its job:
the argv is prefixed with setpriv (which execs, so the pid is the daemon's own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import RuntimeFailure

if TYPE_CHECKING:
    import psutil

STOP_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 5.0
READY_POLL_S = 0.05
START_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Identity:
    """A process as it was when started: its pid and start time."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> Identity:
        import psutil

        return cls(pid, psutil.Process(pid).create_time())

    def process(self, matches: Callable[[psutil.Process], bool] | None = None) -> psutil.Process | None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if abs(proc.create_time() - self.create_time) > START_TIME_TOLERANCE_S:
                return None
            if matches is not None and not matches(proc):
                return None
        except psutil.Error:
            return None
        return proc

    def alive(self, matches: Callable[[psutil.Process], bool] | None = None) -> bool:
        return self.process(matches) is not None


class Child:
    """A daemon started by start()."""

    def __init__(self, popen: subprocess.Popen[bytes], identity: Identity, log: Path | None) -> None:
        self._popen = popen
        self.identity = identity
        self.log = log

    @property
    def pid(self) -> int:
        return self.identity.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def wait_ready(self, ready: Callable[[], bool], *, timeout_s: float, what: str) -> None:
        """Poll `ready` until True; if the daemon exits first or time runs out, stop it and raise."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.poll()
            if code is not None:
                tail = self.log_tail()
                self.stop()
                raise RuntimeFailure(f"{what} exited with code {code} while starting: {tail}")
            if ready():
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise RuntimeFailure(f"{what} did not become ready within {timeout_s:g}s: {tail}")
            time.sleep(READY_POLL_S)

    def stop(self, *, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait, then SIGKILL the group; reaps the child. Idempotent."""
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGTERM)
            try:
                self._popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)
                self._popen.wait(KILL_TIMEOUT_S)
        _REGISTRY.pop(self.identity, None)
        return self._popen.returncode

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace") if self.log else ""
        except OSError:
            text = ""
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
        return " | ".join(tail) or "(no output)"


# daemons this interpreter started: stopping one by identity also reaps it (no zombie in a test process)
_REGISTRY: dict[Identity, Child] = {}


def start(argv: Sequence[str], *, env: Mapping[str, str], log: Path | None = None,
          cwd: str | Path | None = None) -> Child:
    """Start argv (no shell) with exactly `env`, stdout and stderr appended to `log`, in its own session."""
    if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
    with contextlib.ExitStack() as stack:
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(open(log, "ab"))
        try:
            popen = subprocess.Popen(  # noqa: S603 - argv list, never a shell
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=dict(env), cwd=cwd,
                start_new_session=True, close_fds=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        identity = Identity.of(popen.pid)
    except Exception:  # gone before we looked
        identity = Identity(popen.pid, 0.0)
    child = Child(popen, identity, log)
    _REGISTRY[identity] = child
    return child


def stop_identity(identity: Identity, *, timeout_s: float = STOP_TIMEOUT_S,
                  matches: Callable[[psutil.Process], bool] | None = None) -> bool:
    """Stop the process `identity` names (started by this or another opskit run). False, and nothing is
    signalled, when no live process has that pid, start time (and passes `matches`)."""
    import psutil

    own = _REGISTRY.get(identity)
    proc = identity.process(matches)
    if proc is None:
        if own is not None:
            own.stop(timeout_s=timeout_s)  # exited: reap it
        return False
    if own is not None:
        own.stop(timeout_s=timeout_s)
        return True
    try:
        proc.terminate()  # psutil re-checks the start time before signalling
        proc.wait(timeout_s)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.Error):
            proc.kill()
            proc.wait(KILL_TIMEOUT_S)
    except psutil.NoSuchProcess:
        pass
    return True
