"""Reading runs back from their journals: the list, one run's story, and where a resume starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import RuntimeFailure, UsageError
from opskit.playbooks.journal import read_journal
from opskit.playbooks.params import ParamValue

# every ending but these can be continued: steps still in effect are skipped, the rest run again
NOT_RESUMABLE = {"succeeded", "compensation_failed", "damaged"}


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    playbook: str
    status: str
    started: str
    ended: str | None
    message: str
    failed_step: str | None
    path: str
    playbook_sha: str
    params: dict[str, ParamValue]
    completed: list[str] = field(default_factory=list)
    captures: dict[str, dict[str, object]] = field(default_factory=dict)  # step id -> what it captured
    compensated: list[str] = field(default_factory=list)
    # the first snapshot of each step not put back since: a resumed step compensates to what was
    # there before it first ran, not to what its failed attempt left
    snapshots: dict[str, dict[str, object]] = field(default_factory=dict)


def run_dir(state_dir: Path, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise UsageError(f"{run_id!r} is not a run id (see `opskit playbook runs`)")
    return state_dir / "runs" / run_id


def has_run(state_dir: Path, name: str) -> bool:
    """Whether a run of that id has a journal in state_dir."""
    return (state_dir / "runs" / name / "journal.jsonl").exists()


def summarize(state_dir: Path, run_id: str) -> tuple[RunSummary, list[dict[str, Any]]]:
    path = run_dir(state_dir, run_id) / "journal.jsonl"
    if not path.exists():
        raise UsageError(f"no run {run_id!r} under {state_dir}/runs (see `opskit playbook runs`)")
    events = read_journal(path)
    if not events or events[0].get("event") != "run_start":
        raise RuntimeFailure(f"{path}: does not start with run_start; not a run journal")
    start = events[0]
    status, ended, message, failed = "running", None, "", None
    completed: list[str] = []
    captures: dict[str, dict[str, object]] = {}
    compensated: list[str] = []
    snapshots: dict[str, dict[str, object]] = {}
    for e in events:
        kind = e.get("event")
        if kind == "step_snapshot" and e["step"] not in snapshots:
            snapshots[e["step"]] = e.get("captures") or {}
        if kind == "step_end" and e.get("outcome") == "ok":
            if e["step"] not in completed:
                completed.append(e["step"])
            captures[e["step"]] = e.get("captures") or {}
        elif kind == "compensate_end" and e.get("outcome") == "ok":
            compensated.append(e["step"])
            snapshots.pop(e["step"], None)  # put back: a new run of it starts from the state now
            if e["step"] in completed:  # undone: no longer in effect
                completed.remove(e["step"])
        elif kind == "run_resume":
            status, ended, message, failed = "running", None, "", None
        elif kind == "run_end":
            status, ended, message, failed = e["status"], e["ts"], e.get("message", ""), e.get("failed_step")
    summary = RunSummary(run_id, start.get("playbook", "?"), status, start["ts"], ended, message, failed,
                         start.get("path", ""), start.get("playbook_sha", ""), start.get("params") or {},
                         completed, captures, compensated, snapshots)
    return summary, events


def list_runs(state_dir: Path) -> list[RunSummary]:
    root = state_dir / "runs"
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if (d / "journal.jsonl").exists():
            try:
                out.append(summarize(state_dir, d.name)[0])
            except RuntimeFailure as exc:
                out.append(RunSummary(d.name, "?", "damaged", "", None, exc.message, None, "", "", {}))
    return sorted(out, key=lambda r: r.started)


def resume_point(summary: RunSummary, step_ids: list[str]) -> int:
    """Index of the first step not in effect (never completed, or compensated since): a halted run
    continues at its failed step, a compensated one starts again where its effects begin."""
    if summary.status in NOT_RESUMABLE:
        why = {"succeeded": "it succeeded",
               "compensation_failed": "its compensation failed; the system needs a person first",
               "damaged": "its journal is damaged"}[summary.status]
        raise UsageError(f"run {summary.run_id} cannot be resumed: {why}")
    for i, sid in enumerate(step_ids):
        if sid not in summary.completed:
            return i
    return len(step_ids)
