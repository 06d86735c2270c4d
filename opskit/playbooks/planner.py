"""The plan: exactly what each step would run, with parameters resolved and secrets masked, plus a
hash so CI can apply exactly what was reviewed. Pure: data in, data out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opskit.errors import ConfigError, UsageError
from opskit.playbooks.loader import LoadedPlaybook
from opskit.playbooks.params import ParamValue, ParamValues
from opskit.playbooks.providers import get_action
from opskit.playbooks.providers.base import Action, ArgError
from opskit.playbooks.refs import REF, Deferred, RefError, Resolver, has_deferred
from opskit.spec.loader import format_loc


@dataclass(frozen=True)
class PlannedStep:
    id: str
    action: str
    command: str  # what will run, secrets masked, <capture.x.y> where known only later
    args: dict[str, Any]  # resolved arguments (masked), for JSON output
    timeout_s: float
    attempts: int
    backoff_s: float
    compensate: str | None  # what compensation would run
    compensate_action: str | None = None


@dataclass(frozen=True)
class PlannedCheck:
    name: str
    kind: str  # window | metric
    text: str  # "api.response_time_p95 > 500 (scrape http://...)"


@dataclass(frozen=True)
class Plan:
    playbook: str
    path: str
    playbook_sha: str
    description: str
    risk: str
    lock: str | None
    on_failure: str
    params: dict[str, ParamValue]
    preconditions: list[PlannedCheck]
    steps: list[PlannedStep]
    verify: list[PlannedCheck]
    hash: str = ""


def build_plan(loaded: LoadedPlaybook, values: ParamValues) -> Plan:
    pb = loaded.playbook
    shown = Resolver(values.values, values.secret_names, mask=True, defer_captures=True)
    steps: list[PlannedStep] = []
    for i, step in enumerate(pb.steps):
        action = _action(step.action)
        args = resolve_args(action, step.with_, shown, where=(loaded, ("steps", i, "with")))
        # the unmasked resolution is checked too: a '-' test on *** would miss the real value
        resolve_args(action, step.with_, _unmasked(shown), where=(loaded, ("steps", i, "with")))
        comp_text = comp_action = None
        if step.compensate is not None:
            comp = _action(step.compensate.action)
            comp_args = resolve_args(comp, step.compensate.with_, shown,
                                     where=(loaded, ("steps", i, "compensate", "with")))
            comp_text, comp_action = comp.describe(comp_args), step.compensate.action
        steps.append(PlannedStep(step.id, step.action, action.describe(args), _plain(args), step.timeout,
                                 step.retries.attempts, step.retries.backoff, comp_text, comp_action))
    pre = [_planned_pre(loaded, i, shown) for i in range(len(pb.preconditions))]
    ver = [_planned_verify(loaded, i, shown) for i in range(len(pb.verify))]
    plan = Plan(pb.metadata.name, str(loaded.path), loaded.sha, pb.metadata.description, pb.metadata.risk,
                pb.lock, pb.on_failure, values.public(), pre, steps, ver)
    return _with_hash(plan)


def resolve_args(action: Action, raw: Mapping[str, Any], resolver: Resolver,
                 where: tuple[LoadedPlaybook, tuple[str | int, ...]] | None = None) -> dict[str, Any]:
    """Resolve references, refuse values that would turn into options, check the arguments."""
    try:
        resolved = resolver.resolve(dict(raw))
        _refuse_dashes(action, raw, resolved)
        return action.check(resolved)
    except (RefError, ArgError) as exc:
        if where is None:
            raise
        loaded, loc = where
        full = (*loc, *exc.path)
        line = loaded.located.line_of(full)
        raise UsageError(f"{loaded.path}:{line}: {format_loc(full)}: {exc}") from None


def _refuse_dashes(action: Action, raw: Any, resolved: Any, path: tuple[str | int, ...] = ()) -> None:
    """A value that comes from a parameter or capture and starts with '-' would be read as an option
    by the program it reaches (`--all`, `--kubeconfig=...`): refuse it. Text the author wrote is theirs."""
    if path and path[0] in action.DASH_OK:
        return
    if isinstance(raw, dict) and isinstance(resolved, dict):
        for k in raw:
            _refuse_dashes(action, raw[k], resolved.get(k), (*path, k))
    elif isinstance(raw, list) and isinstance(resolved, list):
        for i, (r, v) in enumerate(zip(raw, resolved, strict=False)):
            _refuse_dashes(action, r, v, (*path, i))
    elif isinstance(raw, str) and REF.match(raw) and not isinstance(resolved, Deferred):
        text = str(resolved)
        if text.startswith("-") and text != "***":
            raise ArgError(path, f"the value {text!r} (from {raw}) starts with '-' and would be read as an option")


def _unmasked(r: Resolver) -> Resolver:
    return Resolver(r.params, r.secret_names, r.captures, mask=False, defer_captures=True)


def _action(name: str) -> Action:
    action = get_action(name)
    if action is None:  # the loader already reported it; kept for plans built from unchecked data
        raise ConfigError(f"unknown action {name!r}")
    return action


def _planned_pre(loaded: LoadedPlaybook, i: int, r: Resolver) -> PlannedCheck:
    pb = loaded.playbook
    c = pb.preconditions[i]
    if c.window is not None:
        w = c.window
        return PlannedCheck(c.name, "window", f"now within {'/'.join(w.days)} {w.start}-{w.end} {w.tz}")
    src = pb.sources[c.source or ""]
    loc = _text(r, src.location, loaded, ("sources", c.source or "", "location"))
    cond = _text(r, c.condition, loaded, ("preconditions", i, "condition"))
    return PlannedCheck(c.name, "metric", f"{c.metric} {cond}  [{src.kind} {loc or ''}]".rstrip())


def _planned_verify(loaded: LoadedPlaybook, i: int, r: Resolver) -> PlannedCheck:
    pb = loaded.playbook
    v = pb.verify[i]
    src = pb.sources[v.source]
    loc = _text(r, src.location, loaded, ("sources", v.source, "location"))
    cond = _text(r, v.success, loaded, ("verify", i, "success"))
    return PlannedCheck(v.name, "metric", f"{v.metric} {cond}, {v.count} x every {v.interval:g}s, "
                                          f"failure_limit {v.failure_limit}  [{src.kind} {loc or ''}]")


def _text(r: Resolver, value: str | None, loaded: LoadedPlaybook, loc: tuple[str | int, ...]) -> str:
    if value is None:
        return ""
    try:
        resolved = r.resolve(value)
        return "(default)" if resolved is None else str(resolved)
    except RefError as exc:
        line = loaded.located.line_of(loc)
        raise UsageError(f"{loaded.path}:{line}: {format_loc(loc)}: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Deferred):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _with_hash(plan: Plan) -> Plan:
    """The hash covers the playbook file, the (public) parameters and every command: what was reviewed."""
    import dataclasses

    body = {"playbook_sha": plan.playbook_sha, "params": plan.params,
            "steps": [[s.id, s.action, s.command, s.compensate, s.timeout_s, s.attempts] for s in plan.steps],
            "pre": [c.text for c in plan.preconditions], "verify": [c.text for c in plan.verify]}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return dataclasses.replace(plan, hash=digest[:16])


def any_deferred(args: Mapping[str, Any]) -> bool:
    return has_deferred(dict(args))
