"""Running a plan: lock, preconditions, steps in order (timeouts, retries), verification, and on
failure the completed steps compensated in reverse (or a halt). Ctrl-C (or SIGTERM) is noted and
acted on at the next safe point: the step in flight finishes, then completed steps are compensated.
Everything goes to the journal as it happens."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.errors import OpskitError
from opskit.exitcodes import ExitCode
from opskit.metrics.base import MetricsSource
from opskit.playbooks import lock as locks
from opskit.playbooks.checks import in_window, parse_comparison
from opskit.playbooks.journal import Journal, Masker
from opskit.playbooks.loader import LoadedPlaybook
from opskit.playbooks.outcome import RunOutcome, exit_code_for
from opskit.playbooks.params import ParamValues, secret_env_names
from opskit.playbooks.planner import Plan, resolve_args
from opskit.playbooks.providers import get_action
from opskit.playbooks.providers.base import ArgError, Context, StepResult, scrubbed_run
from opskit.playbooks.refs import RefError, Resolver
from opskit.playbooks.report import NullReporter, Reporter
from opskit.playbooks.schema import Compensate, Retries, Step
from opskit.playbooks.sources import SourceFactory, query_for
from opskit.playbooks.verify import Sampled, run_check

if TYPE_CHECKING:
    from opskit.spec import Spec


@dataclass
class Runtime:
    state_dir: Path
    sources: SourceFactory
    spec: Spec | None = None
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    monotonic: Callable[[], float] = time.monotonic
    reporter: Reporter = field(default_factory=NullReporter)
    interrupt: threading.Event = field(default_factory=threading.Event)
    # a second Ctrl-C: the step in flight is stopped too (its command killed), then compensation
    hard_interrupt: threading.Event = field(default_factory=threading.Event)
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment for commands
    # how waits (backoff, verification intervals) pass; injected so tests need not sleep
    wait: Callable[[float], bool] | None = None
    # what started the run when it was not a person at a terminal (an alert: its name, fingerprint and
    # the approval), written into run_start
    trigger: Mapping[str, object] | None = None


@dataclass
class _State:
    captures: dict[str, dict[str, object]] = field(default_factory=dict)
    completed: list[Step] = field(default_factory=list)
    # the step that failed but may have changed something: compensated first, before the completed ones
    in_doubt: Step | None = None
    # snapshots from the journal for steps a resumed run runs again (see runs.RunSummary.snapshots)
    snapshots: dict[str, dict[str, object]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Attempted:
    result: StepResult
    # the provider's captures with the snapshot taken before the first attempt laid over them: a retry
    # must not replace "what was there" with what the failed attempt left behind
    captures: dict[str, object]
    interrupted: bool = False  # stopped between attempts


def new_run_id(name: str, now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{name}-{secrets.token_hex(3)}"


class Executor:
    def __init__(self, loaded: LoadedPlaybook, values: ParamValues, plan: Plan, rt: Runtime) -> None:
        self.loaded, self.pb, self.values, self.plan, self.rt = loaded, loaded.playbook, values, plan, rt
        self.masker = Masker(values.secrets)
        self._sources: dict[str, MetricsSource] = {}
        self.ctx = Context(env=dict(rt.env), monotonic=rt.monotonic, wait=self._wait,
                           interrupted=rt.interrupt.is_set, cancelled=rt.hard_interrupt.is_set,
                           run=scrubbed_run(secret_env_names(self.pb), values.secrets, rt.hard_interrupt.is_set))

    # -- entry points ---------------------------------------------------------------------------

    def start(self, run_id: str | None = None) -> RunOutcome:
        run_id = run_id or new_run_id(self.pb.metadata.name, self.rt.clock())
        journal = self._journal(run_id)
        journal.write("run_start", run_id=run_id, playbook=self.pb.metadata.name, path=str(self.loaded.path),
                      playbook_sha=self.loaded.sha, plan_hash=self.plan.hash, params=self.values.public(),
                      lock=self.pb.lock, user=os.environ.get("USER", ""), pid=os.getpid(),
                      **({"trigger": dict(self.rt.trigger)} if self.rt.trigger else {}))
        return self._locked(run_id, journal, lambda: self._from(run_id, journal, _State(), 0, True), True)

    def resume(self, run_id: str, state: dict[str, dict[str, object]], done: list[str], from_index: int,
               snapshots: Mapping[str, dict[str, object]] | None = None) -> RunOutcome:
        journal = self._journal(run_id)
        st = _State(captures=dict(state), completed=[s for s in self.pb.steps if s.id in done],
                    snapshots=dict(snapshots or {}))
        journal.write("run_resume", from_step=self.pb.steps[from_index].id if from_index < len(self.pb.steps)
                      else "(verify)", playbook_sha=self.loaded.sha, skipped=done)
        self.rt.reporter.note(f"resuming run {run_id} at "
                              f"{self.pb.steps[from_index].id if from_index < len(self.pb.steps) else 'verification'}")
        # metric preconditions describe the moment before the first step; a window still applies
        return self._locked(run_id, journal, lambda: self._from(run_id, journal, st, from_index, not done),
                            False)

    # -- the run ---------------------------------------------------------------------------------

    def _journal(self, run_id: str) -> Journal:
        return Journal(self.rt.state_dir / "runs" / run_id / "journal.jsonl", self.masker, self.rt.clock)

    def _locked(self, run_id: str, journal: Journal, body: Callable[[], RunOutcome], new: bool) -> RunOutcome:
        held = None
        if self.pb.lock:
            try:
                held = locks.acquire(self.rt.state_dir, self.pb.lock, run_id=run_id,
                                     playbook=self.pb.metadata.name, started=self.rt.clock().isoformat())
            except locks.LockHeld as exc:
                if new:
                    journal.write("run_end", status="locked", exit_code=int(exit_code_for("locked")),
                                  message=exc.message)
                else:  # a resume that must wait leaves the run resumable
                    journal.write("lock_busy", message=exc.message)
                raise
            if held.taken_over:
                journal.write("lock_stale", previous=held.taken_over)
                self.rt.reporter.note(f"lock {self.pb.lock!r}: took over a stale lock of run "
                                      f"{held.taken_over.run_id} (pid {held.taken_over.pid} is gone)")
            journal.write("lock", key=self.pb.lock, path=str(held.path))
        try:
            with _signals(self.rt.interrupt, self.rt.hard_interrupt, self.rt.reporter.note):
                try:
                    return body()
                except KeyboardInterrupt:  # raised where no handler could be installed
                    self.rt.interrupt.set()
                    return self._end(run_id, journal, "interrupted", "interrupted")
        finally:
            if held:
                held.release()

    def _from(self, run_id: str, journal: Journal, st: _State, index: int, metric_pre: bool) -> RunOutcome:
        # every metrics source is built before anything runs: a bad one must not surface after step 3
        try:
            self._build_sources()
        except OpskitError as exc:
            status = "invalid" if exc.exit_code == ExitCode.USAGE else "error"
            return self._end(run_id, journal, status, f"metrics source: {exc.message}")
        try:
            return self._steps_and_verify(run_id, journal, st, index, metric_pre)
        finally:
            for source in self._sources.values():
                close = getattr(source, "close", None)
                if callable(close):
                    close()

    def _build_sources(self) -> None:
        resolver = Resolver(self.values.values, self.values.secret_names)
        for name, ref in self.pb.sources.items():
            location = resolver.resolve(ref.location) if ref.location else None
            self._sources[name] = self.rt.sources(ref.kind, location)

    def _steps_and_verify(self, run_id: str, journal: Journal, st: _State, index: int,
                          metric_pre: bool) -> RunOutcome:
        verdict = self._preconditions(journal, metric_pre)
        if verdict is not None:
            status, message = verdict
            return self._end(run_id, journal, status, message)
        for step in self.pb.steps[index:]:
            if self.rt.interrupt.is_set():
                return self._interrupted(run_id, journal, st)
            done = self._attempts(journal, "step", step.id, step.action, step.with_, step.timeout, step.retries,
                                  st.captures, st.snapshots.get(step.id))
            result = done.result
            if result.ok:
                st.completed.append(step)
                st.captures[step.id] = done.captures
            elif result.changed is not False:
                # failed or timed out part-way: unless the provider proves nothing changed, undo it too
                st.in_doubt = step
                st.captures[step.id] = done.captures
                journal.write("step_in_doubt", step=step.id, captures=done.captures,
                              why="failed, and the provider cannot prove it changed nothing")
            if done.interrupted or self.rt.interrupt.is_set():
                return self._interrupted(run_id, journal, st)
            if not result.ok:
                return self._failed(run_id, journal, st, f"step {step.id} failed: {result.summary}", step.id)
        return self._verify(run_id, journal, st)

    def _attempts(self, journal: Journal, kind: str, step_id: str, action_name: str, raw: Mapping[str, Any],
                  timeout: float, retries: Retries, captures: Mapping[str, Any],
                  snapshot: dict[str, object] | None = None) -> _Attempted:
        action = get_action(action_name)
        assert action is not None  # the loader checked every action name
        delay = retries.backoff
        result = StepResult(False, "not run", changed=False)
        before = snapshot  # taken once, before the first attempt that gets that far (or by the resumed run)
        for attempt in range(1, retries.attempts + 1):
            resolver = Resolver(self.values.values, self.values.secret_names, captures)
            shown = Resolver(self.values.values, self.values.secret_names, captures, mask=True)
            try:
                args = resolve_args(action, raw, resolver)
                command = action.describe(resolve_args(action, raw, shown))
            except (RefError, ArgError) as exc:
                result = StepResult(False, f"{'.'.join(map(str, exc.path))}: {exc}", changed=False)
                journal.write(f"{kind}_end", step=step_id, attempt=attempt, outcome="invalid",
                              error=result.summary, duration_s=0)
                self.rt.reporter.step_done(kind, step_id, "invalid", self.masker.text(result.summary), None)
                return _Attempted(result, {})  # retrying cannot fix arguments
            journal.write(f"{kind}_start", step=step_id, action=action_name, attempt=attempt,
                          attempts=retries.attempts, command=command, timeout_s=timeout)
            self.rt.reporter.step_started(kind, step_id, action_name, attempt, retries.attempts,
                                          self.masker.text(command))
            began = self.rt.monotonic()
            try:
                if before is None:
                    snap = action.snapshot(args, self.ctx, timeout)
                    if snap.error is None:
                        before = dict(snap.values)
                        if before:
                            journal.write(f"{kind}_snapshot", step=step_id, captures=before)
                if before is None:
                    result = StepResult(False, f"cannot read the current state: {snap.error}", command,
                                        changed=False)
                else:
                    left = max(1.0, timeout - (self.rt.monotonic() - began))
                    result = action.run(args, self.ctx, left, before)
            except Exception as exc:  # a provider bug is this step's failure, not a crash mid-run
                result = StepResult(False, f"{type(exc).__name__}: {exc}", command)
            took = self.rt.monotonic() - began
            outcome = "ok" if result.ok else ("timeout" if result.timed_out else "failed")
            journal.write(f"{kind}_end", step=step_id, attempt=attempt, outcome=outcome, duration_s=round(took, 3),
                          summary=result.summary, returncode=result.returncode,
                          captures={**result.captures, **(before or {})}, changed=result.changed,
                          stdout=result.stdout[-4000:], stderr=result.stderr[-4000:])
            self.rt.reporter.step_done(kind, step_id, outcome, self.masker.text(result.summary), took)
            if result.ok or attempt == retries.attempts:
                break
            if self.rt.interrupt.is_set() or self._wait(delay):
                return _Attempted(result, {**result.captures, **(before or {})}, interrupted=True)
            delay *= retries.factor
        return _Attempted(result, {**result.captures, **(before or {})})

    def _preconditions(self, journal: Journal, metric_pre: bool) -> tuple[str, str] | None:
        resolver = Resolver(self.values.values, self.values.secret_names)
        for pre in self.pb.preconditions:
            if pre.window is not None:
                ok, detail = in_window(pre.window, self.rt.clock())
                journal.write("precondition", name=pre.name, kind="window", result="pass" if ok else "fail",
                              detail=detail)
                self.rt.reporter.precondition(pre.name, "pass" if ok else "fail", detail)
                if not ok:
                    return "precondition_failed", f"precondition {pre.name}: outside the maintenance window ({detail})"
                continue
            if not metric_pre:
                continue
            source, query = self._source(pre.source or "", pre.metric or "", pre.query, resolver)
            comparison = parse_comparison(pre.condition or "", resolver)
            from opskit.playbooks.sources import measure

            value, detail = measure(source, pre.metric or "", query, self.rt.clock())
            verdict = comparison.judge(value)
            journal.write("precondition", name=pre.name, kind="metric", metric=pre.metric, query=query,
                          value=value, condition=comparison.text, result=verdict, detail=detail)
            self.rt.reporter.precondition(pre.name, verdict, f"{pre.metric} = "
                                          f"{'no data' if value is None else f'{value:g}'}, wanted {comparison.text}")
            if verdict == "fail":
                return ("precondition_failed",
                        f"precondition {pre.name}: {pre.metric} = {value:g}, not {comparison.text}")
            if verdict == "inconclusive":
                return "inconclusive", f"precondition {pre.name}: no usable reading ({detail}); nothing was run"
        return None

    def _source(self, name: str, metric: str, query: str | None, resolver: Resolver) -> tuple[Any, str | None]:
        ref = self.pb.sources[name]
        q = resolver.resolve(query) if query else None
        return self._sources[name], query_for(metric, ref.kind, q, self.rt.spec)

    def _verify(self, run_id: str, journal: Journal, st: _State) -> RunOutcome:
        resolver = Resolver(self.values.values, self.values.secret_names, st.captures)
        for check in self.pb.verify:
            source, query = self._source(check.source, check.metric, check.query, resolver)
            try:
                comparison = parse_comparison(check.success, resolver)
            except ValueError as exc:  # e.g. a capture that is not a number
                return self._end(run_id, journal, "inconclusive",
                                 f"verification {check.name}: {exc}; halted without compensating")
            journal.write("verify_start", check=check.name, metric=check.metric, query=query,
                          success=comparison.text, count=check.count, interval_s=check.interval)
            self.rt.reporter.verify_started(check.name, check.metric, comparison.text, check.count)

            def record(s: Sampled, name: str = check.name) -> None:
                journal.write("verify_sample", check=name, n=s.n, value=s.value, result=s.verdict, detail=s.detail)
                self.rt.reporter.verify_sample(name, s)

            verdict, detail = run_check(check, source, comparison, query, clock=self.rt.clock,
                                        wait=self._wait, record=record)
            journal.write("verify_end", check=check.name, result=verdict or "interrupted", detail=detail)
            if verdict is None:
                return self._interrupted(run_id, journal, st)
            if verdict == "inconclusive":
                # not known to be bad, not known to be good: stop and leave it for a person (or resume)
                return self._end(run_id, journal, "inconclusive",
                                 f"verification {check.name} inconclusive: {detail}; halted without compensating")
            if verdict == "fail":
                return self._failed(run_id, journal, st, f"verification {check.name} failed: {detail}", None)
        return self._end(run_id, journal, "succeeded", "applied and verified")

    # -- endings ---------------------------------------------------------------------------------

    def _failed(self, run_id: str, journal: Journal, st: _State, why: str, step_id: str | None) -> RunOutcome:
        if self.pb.on_failure == "halt":
            return self._end(run_id, journal, "halted", f"{why}; halted (on_failure: halt)", step_id)
        ok, undone = self._compensate(journal, st)
        if not ok:
            return self._end(run_id, journal, "compensation_failed",
                             f"{why}; compensation FAILED too: check the system by hand", step_id, undone)
        return self._end(run_id, journal, "compensated", f"{why}; {len(undone)} step(s) compensated",
                         step_id, undone)

    def _interrupted(self, run_id: str, journal: Journal, st: _State) -> RunOutcome:
        journal.write("interrupted", completed=[s.id for s in st.completed])
        self.rt.reporter.note("interrupted: compensating the completed steps")
        ok, undone = self._compensate(journal, st)
        msg = "interrupted; completed steps compensated" if ok else "interrupted; compensation FAILED"
        return self._end(run_id, journal, "interrupted", msg, None, undone)

    def _compensate(self, journal: Journal, st: _State) -> tuple[bool, tuple[str, ...]]:
        """The step in doubt first, then the completed steps in reverse. (all ok, the steps undone)"""
        ok, undone = True, []
        for step in ([st.in_doubt] if st.in_doubt else []) + list(reversed(st.completed)):
            comp: Compensate | None = step.compensate
            if comp is None:
                journal.write("compensate_skip", step=step.id, why="no compensate: given")
                continue
            done = self._attempts(journal, "compensate", step.id, comp.action, comp.with_, comp.timeout,
                                  comp.retries, st.captures)
            ok = ok and done.result.ok and not done.interrupted
            if done.result.ok:
                undone.append(step.id)
        return ok, tuple(undone)

    def _end(self, run_id: str, journal: Journal, status: str, message: str, failed_step: str | None = None,
             compensated: tuple[str, ...] = ()) -> RunOutcome:
        message = self.masker.text(message)
        journal.write("run_end", status=status, exit_code=int(exit_code_for(status)), message=message,
                      failed_step=failed_step, compensated=list(compensated))
        return RunOutcome(run_id, status, message, journal.path, failed_step, compensated)

    def _wait(self, seconds: float) -> bool:
        """Sleep, unless interrupted; True when interrupted."""
        if self.rt.wait is not None:
            return self.rt.wait(seconds) or self.rt.interrupt.is_set()
        return self.rt.interrupt.wait(seconds) if seconds > 0 else self.rt.interrupt.is_set()


class _signals:
    """SIGINT/SIGTERM set the interrupt flag instead of raising mid-step (main thread only); a second
    one also stops the step in flight."""

    def __init__(self, flag: threading.Event, hard: threading.Event, emit: Callable[[str], None]) -> None:
        self.flag, self.hard, self.emit = flag, hard, emit
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handler(signum: int, frame: object) -> None:
            if self.flag.is_set():
                self.hard.set()
                self.emit("second interrupt: stopping the running step now, then compensating")
                return
            self.flag.set()
            self.emit("interrupt: stopping at the next safe point (interrupt again to stop the running step)")

        for sig in (signal.SIGINT, signal.SIGTERM):
            self.saved[sig] = signal.signal(sig, handler)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)
