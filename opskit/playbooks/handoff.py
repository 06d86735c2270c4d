"""What `opskit scale check --act` calls with a breached threshold's bound playbook: plan by default,
apply (no further prompt: --yes was given there) when asked. Prints nothing: the plan and progress go
to the reporter, the result comes back as data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opskit.playbooks.outcome import RunOutcome
from opskit.playbooks.report import NullReporter, Reporter


@dataclass(frozen=True)
class HandoffResult:
    playbook: str
    plan_hash: str
    status: str  # planned | dry_run_failed | a run's status (see outcome.EXIT_CODES)
    dry_run_failed: tuple[str, ...] = ()  # the steps whose dry run said no
    run: RunOutcome | None = None  # set when the playbook was applied

    def lines(self) -> list[str]:
        """What a person should read after the plan and progress."""
        if self.dry_run_failed:
            return [f"dry run failed for step(s) {', '.join(self.dry_run_failed)}; {self.playbook} not applied"]
        if self.run is None:
            return [f"plan only; apply with --yes (or: opskit playbook apply {self.playbook} "
                    f"--plan-hash {self.plan_hash})"]
        return [f"run {self.run.run_id}: {self.run.status}: {self.run.message}", f"journal: {self.run.journal}"]


def run_for_decision(name: str, params: dict[str, object], *, apply: bool, state_dir: Path,
                     spec: object | None = None, reporter: Reporter | None = None) -> HandoffResult:
    """Plan (or apply) playbook `name` with typed params. Bad playbooks/params raise ConfigError/UsageError
    like everywhere else; a lock held by another run raises LockHeld."""
    from opskit.playbooks import engine

    reporter = reporter or NullReporter()
    prep = engine.prepare(name, params)
    # planning only runs no playbook-written command, as `playbook plan` does not
    dry = engine.dry_runs(prep, commands=apply)
    reporter.plan(prep.plan, dry)
    failed = tuple(sid for sid, d in dry.items() if d.ran and not d.ok)
    if failed:
        return HandoffResult(name, prep.plan.hash, "dry_run_failed", failed)
    if not apply:
        return HandoffResult(name, prep.plan.hash, "planned")
    outcome = engine.apply(prep, engine.runtime(state_dir, spec, reporter))  # type: ignore[arg-type]
    return HandoffResult(name, prep.plan.hash, outcome.status, run=outcome)
