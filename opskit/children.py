"""The one way opskit owns a long-lived child process (a server, a runner, a worker): start it in its own
process group with an explicit environment and its output in a log file, wait until it answers, and stop
exactly what was started: terminate -> wait -> kill, the whole group, on every path.

    with children.start(argv, env=env, log=run_dir / "server.log") as child:
        child.wait_ready(lambda: port_answers(port), timeout_s=30, what="the server")
        ...                                    # leaving the block stops the group

A child that another opskit invocation must stop (the local Prometheus: `monitor up` starts it, `monitor
down` stops it) is named by its Identity, pid + start time, kept in a state file: a pid alone could by
then belong to an unrelated process, and stop_identity() never signals a process whose start time differs.

The leader is reaped only by stop() or kill(): until then its pid (and so its process-group id) cannot be
reused, so the final SIGKILL to the group can only reach what we started (a grandchild that lingers).
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
from types import TracebackType
from typing import IO, TYPE_CHECKING, Literal, overload

from opskit.errors import RuntimeFailure

if TYPE_CHECKING:
    import psutil

STOP_TIMEOUT_S = 15.0
KILL_TIMEOUT_S = 5.0
READY_POLL_S = 0.05
START_TIME_TOLERANCE_S = 0.05  # psutil derives it from boot time + clock ticks: the same process reads the same

Stdout = Literal["log", "pipe", "null"]


@dataclass(frozen=True)
class Identity:
    """A process as it was when started: the pid and its start time (psutil's create_time)."""

    pid: int
    create_time: float

    @classmethod
    def of(cls, pid: int) -> Identity:
        import psutil

        return cls(pid, psutil.Process(pid).create_time())

    def process(self, matches: Callable[[psutil.Process], bool] | None = None) -> psutil.Process | None:
        """The live process with this identity (optionally also passing `matches`, e.g. its argv), else
        None: it exited, is a zombie, or its pid now belongs to another process."""
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
    """A child process started by start(); use it as a context manager or call stop() yourself."""

    def __init__(self, popen: subprocess.Popen[bytes], identity: Identity, log: Path | None, group: bool) -> None:
        self._popen = popen
        self.identity = identity
        self.log = log
        self.group = group  # the child leads its own process group (the usual case)
        self._code: int | None = None
        self._reaped = False

    @property
    def pid(self) -> int:
        return self.identity.pid

    @property
    def stdout(self) -> IO[bytes] | None:
        """The child's stdout when started with stdout="pipe"."""
        return self._popen.stdout

    @property
    def running(self) -> bool:
        return self.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.poll()

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal) if it has exited, else None; never reaps."""
        return self._peek(block=False)

    @overload
    def wait(self) -> int: ...
    @overload
    def wait(self, timeout: float) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the exit code; None if still running after `timeout` seconds. Never reaps."""
        if timeout is None:
            code = self._peek(block=True)
            assert code is not None
            return code
        deadline = time.monotonic() + timeout
        pause = 0.005
        while (code := self._peek(block=False)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        return code

    def send_signal(self, sig: int) -> None:
        """Send sig to the child itself (not its group), if it still runs."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def signal_group(self, sig: int) -> None:
        """Send sig to the child's whole process group (the child only if it shares ours)."""
        if self._reaped:
            return
        if not self.group:
            self.send_signal(sig)
            return
        # the leader is not reaped yet, so its pid still names our group even if it exited
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    def wait_ready(self, ready: Callable[[], bool], *, timeout_s: float, what: str, tail_lines: int = 10) -> None:
        """Poll `ready` until it answers True. If the child exits first, or the time runs out, stop it and
        raise RuntimeFailure naming `what` with the tail of its log."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.poll()
            if code is not None:
                tail = self.log_tail(tail_lines)
                self.stop()
                raise RuntimeFailure(f"{what} exited with status {code} while starting: {tail}")
            if ready():
                return
            if time.monotonic() > deadline:
                tail = self.log_tail(tail_lines)
                self.stop()
                raise RuntimeFailure(f"{what} did not become ready within {timeout_s:g}s: {tail}")
            time.sleep(READY_POLL_S)

    def stop(self, *, timeout_s: float = STOP_TIMEOUT_S, sig: int = signal.SIGTERM) -> int:
        """Ask the child to stop (sig to it: a supervisor drains its own workers), wait up to timeout_s, then
        SIGKILL the group; whatever of the group is left (a grandchild) is killed too. Returns the exit
        code. Idempotent."""
        if not self._reaped:
            try:
                if self.poll() is None:
                    self.send_signal(sig)
                    if self.wait(timeout_s) is None:
                        self.signal_group(signal.SIGKILL)
            finally:
                self._finish()
        return self._popen.returncode

    def kill(self) -> int:
        """SIGKILL the whole group at once (a crash test, a second Ctrl-C) and reap the child."""
        if not self._reaped:
            try:
                self.signal_group(signal.SIGKILL)
            finally:
                self._finish()
        return self._popen.returncode

    def log_tail(self, lines: int = 10) -> str:
        """The last non-blank lines of the log, joined by " | " (for an error message)."""
        try:
            text = self.log.read_text(errors="replace") if self.log else ""
        except OSError:
            text = ""
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
        return " | ".join(tail) or "(no output)"

    def __enter__(self) -> Child:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _finish(self) -> None:
        """Kill what is left of the group, then reap the leader (which frees its pid)."""
        if self.group:  # the group may outlive the leader; its pid cannot be reused until the reap below
            self.signal_group(signal.SIGKILL)
        try:
            self._popen.wait(KILL_TIMEOUT_S)
        except subprocess.TimeoutExpired:  # not in our group (group=False): kill it alone
            with contextlib.suppress(ProcessLookupError):
                self._popen.kill()
            self._popen.wait()
        self._reaped = True
        _REGISTRY.pop(self.identity, None)
        if self._popen.stdout is not None:
            self._popen.stdout.close()

    def _peek(self, *, block: bool) -> int | None:
        if self._reaped:
            return self._popen.returncode
        if self._code is not None:
            return self._code
        try:
            info = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | (0 if block else os.WNOHANG))
        except ChildProcessError:
            # reaped elsewhere (gevent's SIGCHLD watcher in the load runner): Popen has the status
            code = self._popen.wait() if block else self._popen.poll()
        else:
            if info is None:
                return None
            code = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        self._code = code
        return code


# Children this interpreter started, by identity: stop_identity() on one of them also reaps it
_REGISTRY: dict[Identity, Child] = {}


def start(argv: Sequence[str], *, env: Mapping[str, str], log: Path | None = None, stdout: Stdout = "log",
          cwd: str | Path | None = None, group: bool = True) -> Child:
    """Start argv (no shell) with exactly `env`. Its stderr goes to `log` (appended; None: the caller's
    stderr), its stdout to the log too, to a pipe (`child.stdout`) or nowhere. `group=False` keeps it in
    the caller's process group, for a helper that must die when the caller's group is killed."""
    if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
    out: int | IO[bytes] | None
    with contextlib.ExitStack() as stack:
        err: IO[bytes] | None = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            err = stack.enter_context(open(log, "ab"))  # the child keeps its own copy of the descriptor
        out = {"log": err, "pipe": subprocess.PIPE, "null": subprocess.DEVNULL}[stdout]
        try:
            popen = subprocess.Popen(  # noqa: S603 - argv list, never a shell
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=dict(env), cwd=cwd,
                start_new_session=group, close_fds=True)
        except OSError as exc:
            raise RuntimeFailure(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    try:
        identity = Identity.of(popen.pid)
    except Exception:
        # it is already gone (exit before we looked): its identity is the pid with no start time
        identity = Identity(popen.pid, 0.0)
    child = Child(popen, identity, log, group)
    _REGISTRY[identity] = child
    return child


def stop_identity(identity: Identity, *, timeout_s: float = STOP_TIMEOUT_S,
                  matches: Callable[[psutil.Process], bool] | None = None) -> bool:
    """Stop the process `identity` names, started by this or another opskit invocation: SIGTERM, wait,
    then SIGKILL its group (when it leads one). False, and nothing is signalled, when no live process has
    that pid and start time (and passes `matches`)."""
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
        leads_group = os.getpgid(identity.pid) == identity.pid
        proc.terminate()  # psutil re-checks the start time before signalling
    except (psutil.NoSuchProcess, ProcessLookupError):
        return True
    if not _gone(identity, timeout_s):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if identity.alive():
                if leads_group:
                    os.killpg(identity.pid, signal.SIGKILL)
                else:
                    proc.kill()
        _gone(identity, KILL_TIMEOUT_S)
    return True


def _gone(identity: Identity, timeout_s: float) -> bool:
    """Wait until no live process has this identity; a zombie counts as gone (its parent reaps it)."""
    deadline = time.monotonic() + timeout_s
    pause = 0.005
    while identity.alive():
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.1)
    return True
