"""How a playbook run tells the outside world what it is doing, without printing: the executor and the
hand-over call a Reporter the command supplies. LineReporter turns events into the lines a person
reads and hands each to a `write` callable (the command passes opskit.output.echo); NullReporter
is for tests and callers that only want the returned data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from opskit.playbooks.planner import Plan
from opskit.playbooks.providers.base import DryRun
from opskit.playbooks.verify import Sampled


class Reporter(Protocol):
    """Progress of a run. Every text handed over is already masked (no secret reaches a reporter)."""

    def plan(self, plan: Plan, dry: Mapping[str, DryRun]) -> None: ...

    def note(self, text: str) -> None: ...

    def precondition(self, name: str, verdict: str, detail: str) -> None: ...

    def step_started(self, kind: str, step: str, action: str, attempt: int, attempts: int, command: str) -> None: ...

    def step_done(self, kind: str, step: str, outcome: str, summary: str, seconds: float | None) -> None: ...

    def verify_started(self, check: str, metric: str, condition: str, count: int) -> None: ...

    def verify_sample(self, check: str, sample: Sampled) -> None: ...


class NullReporter:
    """Says nothing."""

    def plan(self, plan: Plan, dry: Mapping[str, DryRun]) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def precondition(self, name: str, verdict: str, detail: str) -> None:
        pass

    def step_started(self, kind: str, step: str, action: str, attempt: int, attempts: int, command: str) -> None:
        pass

    def step_done(self, kind: str, step: str, outcome: str, summary: str, seconds: float | None) -> None:
        pass

    def verify_started(self, check: str, metric: str, condition: str, count: int) -> None:
        pass

    def verify_sample(self, check: str, sample: Sampled) -> None:
        pass


class LineReporter:
    """One line per event, for a terminal or a CI log."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def plan(self, plan: Plan, dry: Mapping[str, DryRun]) -> None:
        for line in plan_lines(plan, dry):
            self.write(line)

    def note(self, text: str) -> None:
        self.write(text)

    def precondition(self, name: str, verdict: str, detail: str) -> None:
        self.write(f"precondition {name}: {verdict} ({detail})")

    def step_started(self, kind: str, step: str, action: str, attempt: int, attempts: int, command: str) -> None:
        tries = f" attempt {attempt}/{attempts}" if attempts > 1 else ""
        self.write(f"==> {kind} {step} ({action}){tries}: {command}")

    def step_done(self, kind: str, step: str, outcome: str, summary: str, seconds: float | None) -> None:
        if seconds is None:  # refused before it ran (bad arguments)
            self.write(f"    {kind} {step}: {summary}")
        else:
            self.write(f"    {outcome}: {summary} ({seconds:.1f}s)")

    def verify_started(self, check: str, metric: str, condition: str, count: int) -> None:
        self.write(f"==> verify {check}: {metric} {condition}, {count} reading(s)")

    def verify_sample(self, check: str, sample: Sampled) -> None:
        value = "no data" if sample.value is None else f"{sample.value:g}"
        self.write(f"    #{sample.n}: {value} -> {sample.verdict}")


def plan_lines(plan: Plan, dry: Mapping[str, DryRun]) -> list[str]:
    """The plan for a person: what each step runs and undoes, and what the dry runs said."""
    lines = [f"plan {plan.hash} for {plan.playbook} ({plan.path}), risk {plan.risk}, lock {plan.lock or 'none'}",
             "params: " + ", ".join(f"{k}={v!r}" for k, v in plan.params.items())]
    lines += [f"  precondition {c.name}: {c.text}" for c in plan.preconditions]
    for i, s in enumerate(plan.steps, 1):
        lines.append(f"  {i}. {s.id} [{s.action}] timeout {s.timeout_s:g}s"
                     + (f", {s.attempts} attempts" if s.attempts > 1 else ""))
        lines.append(f"       run: {s.command}")
        if s.compensate:
            lines.append(f"       undo: {s.compensate}")
        d = dry.get(s.id)
        if d is not None and d.ran:
            lines.append(f"       dry run {'ok' if d.ok else 'FAILED'}: {d.command}".rstrip(": "))
            lines += [f"         | {line}" for line in d.output.splitlines()[:8]]
        elif d is not None and d.command:  # a dry-run command that was not run (plan without --dry-run-commands)
            lines.append(f"       dry run not run: {d.command} ({d.output})")
    lines += [f"  verify {c.name}: {c.text}" for c in plan.verify]
    lines.append(f"on failure: {plan.on_failure}. Apply exactly this plan with: "
                 f"opskit playbook apply {plan.playbook} ... --plan-hash {plan.hash}")
    return lines
