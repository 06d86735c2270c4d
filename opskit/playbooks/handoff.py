"""What `opskit scale check --act` calls with a breached threshold's bound playbook: plan by default,
apply (no further prompt: --yes was given there) when asked."""

from __future__ import annotations

from pathlib import Path

from opskit import output as out
from opskit.exitcodes import ExitCode


def run_for_decision(name: str, params: dict[str, object], *, apply: bool, state_dir: Path,
                     spec: object | None = None) -> ExitCode:
    """Plan (or apply) playbook `name` with typed params; prints through opskit.output; returns the
    exit code. Bad playbooks/params raise ConfigError/UsageError like everywhere else."""
    from opskit.playbooks import engine

    prep = engine.prepare(name, params)
    dry = engine.dry_runs(prep)
    from opskit.playbooks.render import show_plan

    show_plan(prep.plan, dry, "table")
    if any(d.ran and not d.ok for d in dry.values()):
        out.echo(f"opskit: dry run failed; {name} not applied", err=True)
        return ExitCode.NO
    if not apply:
        out.echo(f"plan only; apply with --yes (or: opskit playbook apply {name} --plan-hash {prep.plan.hash})")
        return ExitCode.OK
    outcome = engine.apply(prep, engine.runtime(state_dir, spec, out.echo))  # type: ignore[arg-type]
    out.echo(f"run {outcome.run_id}: {outcome.status}: {outcome.message}")
    out.echo(f"journal: {outcome.journal}")
    return outcome.exit_code
