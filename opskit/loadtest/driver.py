"""The CLI side of a run (no gevent here): start the runner subprocess, read its JSON lines, show
progress, forward Ctrl-C, fire the failover kill, stop early for abort_on_fail, bound the time."""

from __future__ import annotations

import json
import os
import queue
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opskit.runmodel import RunnerControl

if TYPE_CHECKING:
    from opskit.runmodel import RunnerConfig

from opskit import children

STOP_GRACE_S = 30.0  # after Ctrl-C, how long the runner gets to write partial results


@dataclass
class Outcome:
    code: int  # the runner's exit code (0, 2, 3, 130)
    results: Path | None
    error: str | None = None
    error_code: int = 3
    interrupted: bool = False
    aborted: str | None = None
    failover_at_s: float | None = None  # when the failover kill fired...
    killed_pid: int | None = None  # ...and the service worker it killed
    metrics_url: str | None = None
    fault: FaultWindow | None = None  # the fault window last told to the runner


@dataclass(frozen=True)
class ProgressReport:
    """The runner's progress line, once a second."""

    elapsed: float = 0.0
    duration: float = 0.0
    requests: int = 0
    errors: int = 0
    dropped: int = 0
    step: str | None = None
    rps: float = 0.0  # the last settled second's
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    in_flight: int = 0
    # what the run measured so far, shaped like results.json (runmodel.from_snapshot reads it)
    snapshot: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_message(cls, msg: Mapping[str, Any]) -> ProgressReport:
        def num(key: str, default: float | None = 0.0) -> Any:
            value = msg.get(key)
            return value if isinstance(value, int | float) and not isinstance(value, bool) else default

        snapshot = msg.get("snapshot")
        return cls(elapsed=float(num("elapsed")), duration=float(num("duration")), requests=int(num("requests")),
                   errors=int(num("errors")), dropped=int(num("dropped")),
                   step=str(msg["step"]) if msg.get("step") is not None else None, rps=num("rps"),
                   p50=num("p50", None), p95=num("p95", None), p99=num("p99", None), in_flight=num("in_flight"),
                   snapshot=snapshot if isinstance(snapshot, dict) else {})


class FaultWindow(Protocol):
    """A failure scenario's fault on the run's clock (opskit.faults.schedule.Window)."""

    injected_at_s: float | None
    cleared_at_s: float | None
    detail: str | None
    ramp_s: float | None
    held_bytes: int | None

    def tick(self, elapsed: float) -> bool: ...

    def stop(self) -> bool: ...


@dataclass
class Hooks:
    on_progress: Callable[[ProgressReport], None] = lambda report: None
    on_ui: Callable[[str], None] = lambda url: None
    on_metrics: Callable[[str], None] = lambda url: None
    on_note: Callable[[str], None] = lambda text: None
    abort_check: Callable[[Mapping[str, Any]], str | None] | None = None
    # the failover scenario: (seconds into the run, kill) fired once when progress passes it; kill returns
    # the pid it killed (None: nothing to kill)
    failover: tuple[float, Callable[[], int | None]] | None = None
    # a failure scenario's fault window (faults.schedule.Window): ticked with each progress line's elapsed
    # seconds, ended at once on Ctrl-C; what it did is told to the runner for results.json
    fault: FaultWindow | None = None


def runner_argv(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "opskit.loadtest.runner", str(config_path)]


def run(config: RunnerConfig, out_dir: Path, hooks: Hooks, *, hard_limit_s: float,
        env: Mapping[str, str] | None = None) -> Outcome:
    """env: added to the runner's environment (the channel token, the declared targets)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="opskit-loadtest-") as tmp:
        # the config can hold API keys: a private temporary file, never argv, never the run folder
        cfg_path, control = Path(tmp) / "config.json", Path(tmp) / "control.json"
        config = replace(config, control_path=str(control))
        fd = os.open(cfg_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(config.to_json(), fh)
        proc = children.start(runner_argv(cfg_path), env={**os.environ, **(env or {})}, log=out_dir / "locust.log",
                              stdout="pipe")
        try:
            return _watch(proc, hooks, hard_limit_s, control)
        finally:
            proc.stop(timeout_s=STOP_GRACE_S)  # nothing outlives the run: its local workers go with its group


def _reader(stream: Any, q: queue.Queue[Mapping[str, Any] | None]) -> None:
    for raw in iter(stream.readline, b""):
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if isinstance(msg, dict):
            q.put(msg)
    q.put(None)


def _watch(proc: children.Child, hooks: Hooks, hard_limit_s: float, control: Path) -> Outcome:
    q: queue.Queue[Mapping[str, Any] | None] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
    start = time.monotonic()
    outcome = Outcome(code=3, results=None)
    stop_deadline: float | None = None
    while True:
        try:
            try:
                msg: Mapping[str, Any] | None | bool = q.get(timeout=0.2)
            except queue.Empty:
                msg = False
            if msg is None:  # the runner closed its stdout: it is exiting
                break
            if msg:
                _handle(msg, outcome, hooks, proc, control)  # type: ignore[arg-type]
            now = time.monotonic()
            if msg and msg.get("type") == "progress" and hooks.failover is not None:  # type: ignore[union-attr]
                elapsed = float(msg.get("elapsed", 0.0))  # type: ignore[union-attr]
                at_s, kill = hooks.failover
                if elapsed >= at_s and not outcome.interrupted:
                    hooks.failover = None  # once
                    outcome.failover_at_s, outcome.killed_pid = elapsed, kill()
                    _tell(control, outcome)
            if msg and msg.get("type") == "progress" and hooks.fault is not None:  # type: ignore[union-attr]
                changed = hooks.fault.tick(float(msg.get("elapsed", 0.0)))  # type: ignore[union-attr]
                if changed and not outcome.interrupted:
                    _tell(control, outcome, hooks.fault)
            if stop_deadline is not None and now > stop_deadline:
                _kill(proc)
            elif stop_deadline is None and now - start > hard_limit_s:
                outcome.error = f"the run exceeded its time bound ({hard_limit_s:.0f} s) and was stopped"
                if hooks.fault is not None and hooks.fault.stop():
                    _tell(control, outcome, hooks.fault)
                _signal(proc, signal.SIGTERM)
                stop_deadline = now + STOP_GRACE_S
        except KeyboardInterrupt:
            if outcome.results is not None and not outcome.interrupted:
                # the results are written; the runner only lingers to serve /metrics: end that, not the run
                _signal(proc, signal.SIGINT)
                stop_deadline = time.monotonic() + STOP_GRACE_S
                continue
            if outcome.interrupted:  # a second Ctrl-C: stop now
                _kill(proc)
            outcome.interrupted = True
            if hooks.fault is not None and hooks.fault.stop():  # nothing stays broken while the run winds down
                _tell(control, outcome, hooks.fault)
            _signal(proc, signal.SIGINT)
            stop_deadline = time.monotonic() + STOP_GRACE_S
    outcome.code = proc.wait()
    if outcome.code == 130:
        outcome.interrupted = True
    return outcome


def _tell(control: Path, outcome: Outcome, fault: FaultWindow | None = None) -> None:
    """Leave the runner what it puts in results.json: why the run was aborted, which worker was killed when,
    the fault's window."""
    window = fault if fault is not None else outcome.fault
    outcome.fault = window
    told = RunnerControl(outcome.aborted, outcome.failover_at_s, outcome.killed_pid,
                         *((window.injected_at_s, window.cleared_at_s, window.detail, window.ramp_s, window.held_bytes)
                           if window is not None else ()))
    part = control.with_suffix(".part")
    part.write_text(json.dumps(asdict(told)), encoding="utf-8")
    os.replace(part, control)  # the runner never reads half of it


def _handle(msg: Mapping[str, Any], outcome: Outcome, hooks: Hooks, proc: children.Child,
            control: Path) -> None:
    kind = msg.get("type")
    if kind == "progress":
        report = ProgressReport.from_message(msg)
        hooks.on_progress(report)
        if hooks.abort_check is not None and outcome.aborted is None:
            reason = hooks.abort_check(report.snapshot)
            if reason:
                outcome.aborted = reason
                _tell(control, outcome)
                _signal(proc, signal.SIGUSR1)
    elif kind == "ui":
        hooks.on_ui(str(msg.get("url")))
    elif kind == "metrics":
        outcome.metrics_url = str(msg.get("url"))
        hooks.on_metrics(str(msg.get("url")))
    elif kind == "note":
        hooks.on_note(str(msg.get("text")))
    elif kind == "done":
        outcome.results = Path(msg["results"])
    elif kind == "error":
        outcome.error = str(msg.get("message"))
        outcome.error_code = int(msg.get("exit_code", 3))


def _signal(proc: children.Child, sig: int) -> None:
    proc.send_signal(sig)


def _kill(proc: children.Child) -> None:
    if proc.poll() is None:
        proc.signal_group(signal.SIGKILL)  # the runner and any local workers it started
