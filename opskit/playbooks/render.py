"""Turning playbooks, plans and runs into tables and JSON (through opskit.output, the only printing)."""

from __future__ import annotations

from typing import Any

from opskit import output as out
from opskit.playbooks.loader import LoadedPlaybook
from opskit.playbooks.planner import Plan
from opskit.playbooks.providers.base import DryRun
from opskit.playbooks.runs import RunSummary
from opskit.playbooks.schema import ParamSpec


def playbook_row(lp: LoadedPlaybook) -> dict[str, Any]:
    pb = lp.playbook
    return {"name": pb.metadata.name, "description": pb.metadata.description, "risk": pb.metadata.risk,
            "lock": pb.lock, "params": list(pb.params), "steps": [s.id for s in pb.steps],
            "verify": [v.name for v in pb.verify], "path": str(lp.path)}


def show_list(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        out.emit_json({"playbooks": rows})
        return
    out.table(["name", "risk", "lock", "params", "description"],
              [[r["name"], r.get("risk", ""), r.get("lock") or "", ", ".join(r.get("params", [])),
                r.get("description") or r.get("error", "")] for r in rows], title="playbooks")


def describe_param(spec: ParamSpec) -> str:
    bits: list[str] = [spec.type]
    if spec.minimum is not None or spec.maximum is not None:
        lo = "" if spec.minimum is None else f"{spec.minimum:g}"
        hi = "" if spec.maximum is None else f"{spec.maximum:g}"
        bits.append(f"{lo}..{hi}")
    if spec.min_length is not None:
        bits.append(f"min length {spec.min_length}")
    if spec.pattern:
        bits.append(f"pattern {spec.pattern}")
    if spec.enum:
        bits.append("one of " + "/".join(map(str, spec.enum)))
    if spec.secret:
        bits.append("SECRET")
    if spec.from_env:
        bits.append(f"from ${spec.from_env}")
    if spec.from_file:
        bits.append(f"from file {spec.from_file}")
    return ", ".join(bits)


def show_playbook(lp: LoadedPlaybook, fmt: str) -> None:
    pb = lp.playbook
    if fmt == "json":
        out.emit_json({"path": str(lp.path), "sha": lp.sha,
                       "playbook": pb.model_dump(mode="json", by_alias=True, exclude_none=True)})
        return
    out.echo(f"{pb.metadata.name} ({lp.path}): {pb.metadata.description}")
    out.echo(f"risk {pb.metadata.risk}, lock {pb.lock or 'none'}, on failure: {pb.on_failure}")
    out.table(["param", "type", "required", "default", "description"],
              [[n, describe_param(s), "yes" if s.is_required and not s.from_env else "no",
                "" if s.default is None else s.default, s.description or ""] for n, s in pb.params.items()],
              title="parameters")
    if pb.preconditions:
        out.table(["precondition", "check"],
                  [[c.name, (f"window {'/'.join(c.window.days)} {c.window.start}-{c.window.end} {c.window.tz}"
                             if c.window else f"{c.metric} {c.condition} [{c.source}]")] for c in pb.preconditions],
                  title="preconditions")
    out.table(["#", "step", "action", "timeout", "retries", "compensate"],
              [[i + 1, s.id, s.action, f"{s.timeout:g}s", s.retries.attempts,
                s.compensate.action if s.compensate else ""] for i, s in enumerate(pb.steps)], title="steps")
    if pb.verify:
        out.table(["check", "metric", "success", "readings", "failure limit"],
                  [[v.name, v.metric, v.success, f"{v.count} x {v.interval:g}s", v.failure_limit]
                   for v in pb.verify], title="verification")


def show_plan(plan: Plan, dry: dict[str, DryRun], fmt: str, *, err: bool = False) -> None:
    """The plan for a person (on stderr when stdout carries a JSON outcome)."""
    if fmt == "json":
        out.emit_json({**out.to_jsonable(plan), "dry_runs": out.to_jsonable(dry)})
        return
    _echo(err, f"plan {plan.hash} for {plan.playbook} ({plan.path}), risk {plan.risk}, lock {plan.lock or 'none'}")
    _echo(err, "params: " + ", ".join(f"{k}={v!r}" for k, v in plan.params.items()))
    for c in plan.preconditions:
        _echo(err, f"  precondition {c.name}: {c.text}")
    for i, s in enumerate(plan.steps, 1):
        _echo(err, f"  {i}. {s.id} [{s.action}] timeout {s.timeout_s:g}s"
                 + (f", {s.attempts} attempts" if s.attempts > 1 else ""))
        _echo(err, f"       run: {s.command}")
        if s.compensate:
            _echo(err, f"       undo: {s.compensate}")
        d = dry.get(s.id)
        if d is not None and d.ran:
            status = "ok" if d.ok else "FAILED"
            _echo(err, f"       dry run {status}: {d.command}".rstrip(": "))
            for line in d.output.splitlines()[:8]:
                _echo(err, f"         | {line}")
    for c in plan.verify:
        _echo(err, f"  verify {c.name}: {c.text}")
    _echo(err, f"on failure: {plan.on_failure}. Apply exactly this plan with: "
             f"opskit playbook apply {plan.playbook} ... --plan-hash {plan.hash}")


def _echo(err: bool, text: str) -> None:
    out.echo(text, err=err)


def run_row(r: RunSummary) -> list[Any]:
    return [r.run_id, r.playbook, r.status, r.started, r.ended or "", r.failed_step or "", r.message]


def show_runs(runs: list[RunSummary], fmt: str) -> None:
    if fmt == "json":
        out.emit_json({"runs": out.to_jsonable(runs)})
        return
    out.table(["run", "playbook", "status", "started", "ended", "failed step", "message"],
              [run_row(r) for r in runs], title="playbook runs")


def show_run(summary: RunSummary, events: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        out.emit_json({"run": out.to_jsonable(summary), "events": events})
        return
    out.echo(f"run {summary.run_id}: {summary.playbook}, {summary.status}: {summary.message}")
    rows = []
    for e in events:
        what = {k: v for k, v in e.items() if k not in ("seq", "ts", "event", "prev", "hash", "stdout", "stderr")}
        rows.append([e["seq"], e["ts"], e["event"], _brief(what)])
    out.table(["#", "time", "event", "detail"], rows, title="journal")


def _brief(fields: dict[str, Any]) -> str:
    parts = []
    for k, v in fields.items():
        if v in (None, "", [], {}):
            continue
        text = v if isinstance(v, str) else out.dumps(v).replace("\n", "").replace("  ", "")
        parts.append(f"{k}={text}")
    line = " ".join(parts)
    return line if len(line) <= 160 else line[:157] + "..."
