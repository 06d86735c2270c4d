"""The operations the CLI (and `scale check --act`) call: prepare a plan, run the providers' dry runs,
apply, resume. Glue between the pure planner and the executor's I/O."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import Refused, UsageError
from opskit.playbooks.checks import parse_comparison
from opskit.playbooks.executor import Executor, Runtime
from opskit.playbooks.loader import LoadedPlaybook, find_playbook, load_playbook
from opskit.playbooks.outcome import RunOutcome
from opskit.playbooks.params import ParamValue, ParamValues, resolve_params, secret_env_names
from opskit.playbooks.planner import Plan, build_plan, resolve_args
from opskit.playbooks.providers import get_action
from opskit.playbooks.providers.base import Context, DryRun, scrubbed_run
from opskit.playbooks.providers.local import LocalScale
from opskit.playbooks.refs import Resolver, find_refs, has_deferred
from opskit.playbooks.report import Reporter
from opskit.playbooks.runs import resume_point, summarize
from opskit.playbooks.sources import default_factory
from opskit.spec.loader import file_hash, format_loc

if TYPE_CHECKING:
    from opskit.spec import Spec

DRY_RUN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Prepared:
    loaded: LoadedPlaybook
    values: ParamValues
    plan: Plan


def prepare(name: str, given: Mapping[str, object], env: Mapping[str, str] | None = None) -> Prepared:
    """Load, type and check the parameters, build the plan: nothing runs before all of this passed."""
    loaded = load_playbook(name)
    values = resolve_params(loaded.playbook, given, os.environ if env is None else env,
                            where=f"playbook {loaded.name}")
    plan = build_plan(loaded, values)
    _check_conditions(loaded, values)
    return Prepared(loaded, values, plan)


def _check_conditions(loaded: LoadedPlaybook, values: ParamValues) -> None:
    """Conditions that depend on parameters only are checked now, not halfway through a run."""
    r = Resolver(values.values, values.secret_names)
    pb = loaded.playbook
    items = [("preconditions", i, "condition", c.condition) for i, c in enumerate(pb.preconditions)]
    items += [("verify", i, "success", v.success) for i, v in enumerate(pb.verify)]
    for section, i, key, text in items:
        if not text or any(scope == "capture" for _, scope, _ in find_refs(text)):
            continue
        try:
            parse_comparison(text, r)
        except ValueError as exc:
            loc = (section, i, key)
            line = loaded.located.line_of(loc)
            raise UsageError(f"{loaded.path}:{line}: {format_loc(loc)}: {exc}") from None


def check_reviewed(prep: Prepared, plan_hash: str | None) -> None:
    """--plan-hash: apply only the plan that was reviewed."""
    if plan_hash is not None and plan_hash.strip().lower() != prep.plan.hash:
        raise Refused(f"the plan is {prep.plan.hash}, not the reviewed {plan_hash}: the playbook or its "
                      "parameters changed; nothing was run")


def failed_dry_runs(dry: Mapping[str, DryRun]) -> list[str]:
    """The steps whose provider dry run ran and failed."""
    return [sid for sid, d in dry.items() if d.ran and not d.ok]


def dry_runs(prep: Prepared, env: Mapping[str, str] | None = None, *, commands: bool = True) -> dict[str, DryRun]:
    """Each step's provider dry run (kubectl --dry-run=server, compose --dry-run, /health...). Steps
    whose arguments depend on an earlier step's capture are checked as far as they can be. With
    commands=False a dry run that is a playbook-written command (exec's dry_run_argv) is not run."""
    from opskit.playbooks.journal import Masker

    masker = Masker(prep.values.secrets)
    ctx = Context(env=dict(env or {}), dry_run_commands=commands,
                  run=scrubbed_run(secret_env_names(prep.loaded.playbook), prep.values.secrets))
    resolver = Resolver(prep.values.values, prep.values.secret_names, defer_captures=True)
    out: dict[str, DryRun] = {}
    for step in prep.loaded.playbook.steps:
        action = get_action(step.action)
        assert action is not None
        args = resolve_args(action, step.with_, resolver)
        if has_deferred(args) and not isinstance(action, LocalScale):
            # its arguments come from an earlier step's capture: nothing honest to dry-run yet
            out[step.id] = DryRun(False, True, "", "depends on an earlier step's result; checked when it runs")
            continue
        try:
            result = action.dry_run(args, ctx, min(step.timeout, DRY_RUN_TIMEOUT_S))
        except Exception as exc:  # a dry run that breaks is reported, the plan still shown
            result = DryRun(True, False, "", f"{type(exc).__name__}: {exc}")
        out[step.id] = replace(result, command=masker.text(result.command), output=masker.text(result.output))
    return out


def apply(prep: Prepared, rt: Runtime, run_id: str | None = None) -> RunOutcome:
    return Executor(prep.loaded, prep.values, prep.plan, rt).start(run_id)


def resume(state_dir: Path, run_id: str, rt_factory: Callable[[], Runtime],
           env: Mapping[str, str] | None = None) -> RunOutcome:
    summary, _ = summarize(state_dir, run_id)
    path = find_playbook(summary.path or summary.playbook)
    now_sha = file_hash(path)
    if now_sha != summary.playbook_sha:
        raise UsageError(f"run {run_id} cannot be resumed: the playbook {path} changed since the run "
                         f"started ({summary.playbook_sha[7:19]}... -> {now_sha[7:19]}...); start a new run")
    loaded = load_playbook(path)
    given: dict[str, ParamValue] = {k: v for k, v in summary.params.items()
                             if not loaded.playbook.params.get(k) or not loaded.playbook.params[k].secret}
    given = {k: v for k, v in given.items() if v is not None}
    values = resolve_params(loaded.playbook, given, os.environ if env is None else env,
                            where=f"run {run_id}")
    plan = build_plan(loaded, values)
    step_ids = [s.id for s in loaded.playbook.steps]
    index = resume_point(summary, step_ids)
    done = [sid for sid in step_ids[:index]]
    return Executor(loaded, values, plan, rt_factory()).resume(run_id, summary.captures, done, index,
                                                               summary.snapshots)


def runtime(state_dir: Path, spec: Spec | None, reporter: Reporter) -> Runtime:
    return Runtime(state_dir=state_dir, sources=default_factory(spec), spec=spec, reporter=reporter)
