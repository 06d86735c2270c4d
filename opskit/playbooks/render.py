"""Turning playbooks, plans and runs into views: lines and tables for people, plain data for JSON.
Prints nothing; the command shows a view through opskit.output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from opskit import output as out
from opskit.playbooks.loader import LoadedPlaybook
from opskit.playbooks.planner import Plan
from opskit.playbooks.providers.base import DryRun
from opskit.playbooks.runs import RunSummary
from opskit.playbooks.schema import ParamSpec

if TYPE_CHECKING:
    from opskit.playbooks.requests import Request


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]
    title: str


View = list[str | Table]  # shown in order: a str is one line


class PlaybookRow(TypedDict, total=False):
    """One playbook of `opskit playbook list` (a file that does not load has name, path and error only)."""

    name: str
    description: str
    risk: str
    lock: str | None
    params: list[str]
    steps: list[str]
    verify: list[str]
    path: str
    error: str
    details: list[str]


def playbook_row(lp: LoadedPlaybook) -> PlaybookRow:
    pb = lp.playbook
    return {"name": pb.metadata.name, "description": pb.metadata.description, "risk": pb.metadata.risk,
            "lock": pb.lock, "params": list(pb.params), "steps": [s.id for s in pb.steps],
            "verify": [v.name for v in pb.verify], "path": str(lp.path)}


def list_view(rows: list[PlaybookRow]) -> View:
    return [Table(["name", "risk", "lock", "params", "description"],
                  [[r["name"], r.get("risk", ""), r.get("lock") or "", ", ".join(r.get("params", [])),
                    r.get("description") or r.get("error", "")] for r in rows], "playbooks")]


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


def playbook_json(lp: LoadedPlaybook) -> dict[str, object]:
    return {"path": str(lp.path), "sha": lp.sha,
            "playbook": lp.playbook.model_dump(mode="json", by_alias=True, exclude_none=True)}


def playbook_view(lp: LoadedPlaybook) -> View:
    pb = lp.playbook
    view: View = [f"{pb.metadata.name} ({lp.path}): {pb.metadata.description}",
                  f"risk {pb.metadata.risk}, lock {pb.lock or 'none'}, on failure: {pb.on_failure}",
                  Table(["param", "type", "required", "default", "description"],
                        [[n, describe_param(s), "yes" if s.is_required and not s.from_env else "no",
                          "" if s.default is None else s.default, s.description or ""]
                         for n, s in pb.params.items()], "parameters")]
    if pb.preconditions:
        view.append(Table(["precondition", "check"],
                          [[c.name, (f"window {'/'.join(c.window.days)} {c.window.start}-{c.window.end} {c.window.tz}"
                                     if c.window else f"{c.metric} {c.condition} [{c.source}]")]
                           for c in pb.preconditions], "preconditions"))
    view.append(Table(["#", "step", "action", "timeout", "retries", "compensate"],
                      [[i + 1, s.id, s.action, f"{s.timeout:g}s", s.retries.attempts,
                        s.compensate.action if s.compensate else ""] for i, s in enumerate(pb.steps)], "steps"))
    if pb.verify:
        view.append(Table(["check", "metric", "success", "readings", "failure limit"],
                          [[v.name, v.metric, v.success, f"{v.count} x {v.interval:g}s", v.failure_limit]
                           for v in pb.verify], "verification"))
    return view


def plan_json(plan: Plan, dry: Mapping[str, DryRun]) -> dict[str, object]:
    return {**out.to_jsonable(plan), "dry_runs": out.to_jsonable(dict(dry))}


def run_row(r: RunSummary) -> list[Any]:
    return [r.run_id, r.playbook, r.status, r.started, r.ended or "", r.failed_step or "", r.message]


def runs_view(runs: list[RunSummary]) -> View:
    return [Table(["run", "playbook", "status", "started", "ended", "failed step", "message"],
                  [run_row(r) for r in runs], "playbook runs")]


def pending_view(requests: Sequence[Request]) -> View:
    """Alert requests waiting for `playbook approve` / `reject`."""
    rows = [[r.run_id, r.playbook, f"{r.alert.name} ({r.alert.fingerprint})", r.created,
             " ".join(f"{k}={v}" for k, v in r.params.items() if k != "reason")] for r in requests]
    return [Table(["run", "playbook", "alert", "queued", "params"], rows, "waiting for approval")] if rows else []


def run_view(summary: RunSummary, events: list[dict[str, Any]]) -> View:
    rows = []
    for e in events:
        what = {k: v for k, v in e.items() if k not in ("seq", "ts", "event", "prev", "hash", "stdout", "stderr")}
        rows.append([e["seq"], e["ts"], e["event"], _brief(what)])
    return [f"run {summary.run_id}: {summary.playbook}, {summary.status}: {summary.message}",
            Table(["#", "time", "event", "detail"], rows, "journal")]


def _brief(fields: Mapping[str, object]) -> str:
    parts = []
    for k, v in fields.items():
        if v in (None, "", [], {}):
            continue
        text = v if isinstance(v, str) else out.dumps(v).replace("\n", "").replace("  ", "")
        parts.append(f"{k}={text}")
    line = " ".join(parts)
    return line if len(line) <= 160 else line[:157] + "..."
