"""The one subprocess wrapper (playbook providers, promtool/amtool, the local Prometheus's rule check):
argv lists only, never a shell, a hard timeout, output captured, the environment given explicitly.
Long-lived children (the local Prometheus, the asset service) are started by their owners: they
outlive the call, so they are not "run a command and take its answer".

Children start in their own session so a Ctrl-C in the terminal reaches opskit (which stops at a
safe point and compensates) and not the half-finished `kubectl` it is waiting for; on timeout (or
a second Ctrl-C) the whole process group is killed so a wrapper script cannot leave its own
children behind. Pipes are served by threads, so a command that ignores its stdin, or floods its
stdout, can neither block the wait nor the timeout."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

POLL_S = 0.1
OUTPUT_LIMIT = 64 * 1024  # what a step keeps of stdout/stderr (the tail); enough for any CLI's JSON
PIPE_GRACE_S = 2.0  # after exit, how long to wait for the pipes to drain
# what a child started with inherit_env=False sees of opskit's environment (secrets live in the rest)
MINIMAL_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


@dataclass(frozen=True)
class ProcResult:
    argv: tuple[str, ...]
    returncode: int | None  # None: killed (timeout, cancel) or could not start
    stdout: str
    stderr: str
    duration_s: float
    timed_out: bool = False
    error: str | None = None  # could not start (no such binary, permission denied), or cancelled
    cancelled: bool = False  # stopped by a second Ctrl-C

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and self.error is None and not self.cancelled

    @property
    def output(self) -> str:
        """stdout then stderr, as a person reading the tool's answer wants them; else why it did not run."""
        return (self.stdout + self.stderr).strip() or (self.error or "")


def run_argv(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    cwd: str | Path | None = None,
    cancel: Callable[[], bool] | None = None,
    inherit_env: bool = True,
) -> ProcResult:
    """Run argv (no shell) with env = os.environ + env (inherit_env=False: only MINIMAL_ENV of it);
    stdin text is how secrets reach a command.
    `cancel` is polled while the command runs (a second Ctrl-C): when it says so the command is killed."""
    if isinstance(argv, str | bytes) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
    full_env = dict(os.environ) if inherit_env else {k: os.environ[k] for k in MINIMAL_ENV if k in os.environ}
    full_env.update(env or {})
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # noqa: S603 - argv list, shell=False, by design the only call site
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
            cwd=cwd,
            shell=False,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        return ProcResult(tuple(argv), None, "", "", time.monotonic() - started,
                          error=f"cannot run {argv[0]!r}: {exc.strerror or exc}")
    out: list[str] = []
    err: list[str] = []
    threads = [_thread(_drain, proc.stdout, out), _thread(_drain, proc.stderr, err)]
    if stdin is not None:
        threads.append(_thread(_feed, proc.stdin, stdin))
    timed_out = cancelled = False
    try:
        while True:
            try:
                proc.wait(timeout=max(0.0, min(POLL_S, started + timeout - time.monotonic())))
                break
            except subprocess.TimeoutExpired:
                if time.monotonic() >= started + timeout:
                    timed_out = True
                elif cancel is not None and cancel():
                    cancelled = True
                else:
                    continue
                _kill_group(proc)
                proc.wait()
                break
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    finally:
        for t in threads:
            t.join(PIPE_GRACE_S)
    took = time.monotonic() - started
    stdout, stderr = _tail("".join(out)), _tail("".join(err))
    if timed_out:
        return ProcResult(tuple(argv), None, stdout, stderr, took, timed_out=True)
    if cancelled:
        return ProcResult(tuple(argv), None, stdout, stderr, took, error="stopped by a second interrupt",
                          cancelled=True)
    return ProcResult(tuple(argv), proc.returncode, stdout, stderr, took)


def find_binary(name: str, install_hint: str) -> str:
    """The full path of a tool on PATH (or of an explicit path), else a RuntimeFailure saying how to get it."""
    found = shutil.which(name)
    if found is None:
        from opskit.errors import RuntimeFailure

        raise RuntimeFailure(f"{name} not found on PATH (is it installed? {install_hint})")
    return found


def run_tool(argv: Sequence[str], *, timeout: float, cwd: str | Path | None = None) -> ProcResult:
    """run_argv for a tool whose exit status is the answer (promtool, amtool): a tool that cannot start or
    does not finish is opskit's failure (exit 3), not an answer."""
    done = run_argv(argv, timeout=timeout, cwd=cwd)
    if done.timed_out or done.error:
        from opskit.errors import RuntimeFailure

        raise RuntimeFailure(f"{Path(argv[0]).name} did not finish within {timeout:g}s: {' '.join(argv)}"
                             if done.timed_out else str(done.error))
    return done


def _thread(target: Callable[..., None], *args: object) -> threading.Thread:
    t = threading.Thread(target=target, args=args, daemon=True)
    t.start()
    return t


def _drain(stream: IO[str] | None, sink: list[str]) -> None:
    if stream is None:
        return
    with contextlib.suppress(OSError, ValueError):
        for chunk in iter(lambda: stream.read(8192), ""):
            sink.append(chunk)
            if len(sink) > 64:  # keep memory bounded: only the tail is kept anyway
                joined = "".join(sink)[-OUTPUT_LIMIT:]
                sink[:] = [joined]
    with contextlib.suppress(OSError):
        stream.close()


def _feed(stream: IO[str] | None, text: str) -> None:
    if stream is None:
        return
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        stream.write(text)  # a command that exits without reading its stdin is not an error
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        stream.close()


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


def _tail(text: str) -> str:
    return text[-OUTPUT_LIMIT:]
