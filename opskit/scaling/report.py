"""Turning an Evaluation into the JSON document and the table rows of `opskit scale check` (pure)."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from opskit.jsontypes import JSONObject
from opskit.scaling.collect import Readings
from opskit.scaling.model import Capacity, Decision, Evaluation, ResourceDecision
from opskit.scaling.rows import fmt_value
from opskit.units import format_duration

COLUMNS = ("resource", "metric", "value", "limits", "window", "decision", "replicas", "playbook", "why")


# `opskit scale check -o json` (docs/guide/scaling.md); functional form: "from" is a keyword
CheckDocument = TypedDict("CheckDocument", {
    "source": str,
    "from": str | None,
    "now": str,
    "decisions": list[JSONObject],  # each Decision's fields
    "resources": dict[str, JSONObject],  # each ResourceDecision's fields, replicas_from, capacity_rps, capacity_source
    "should_scale": bool,
    "handoffs": NotRequired[list[JSONObject]],  # with --act: one entry per resource
})


def document(ev: Evaluation, readings: Readings, *, source: str, location: str | None) -> CheckDocument:
    from opskit.output import to_jsonable

    return {
        "source": source,
        "from": location,
        "now": ev.now.isoformat(),
        "decisions": [to_jsonable(d) for d in ev.decisions],
        "resources": {name: {**to_jsonable(r), "replicas_from": readings.replicas_from.get(name),
                             **_capacity(ev.capacities.get(name))}
                      for name, r in ev.resources.items()},
        "should_scale": ev.should_scale,
    }


def _capacity(cap: Capacity | None) -> JSONObject:
    """The per-instance capacity a resource's instance math used, and where it came from (null: none)."""
    from opskit.output import to_jsonable

    if cap is None:
        return {"capacity_rps": None, "capacity_source": None}
    return {"capacity_rps": cap.capacity_rps, "capacity_source": {**to_jsonable(cap.source), "error": cap.error}}


def limits(d: Decision) -> str:
    if d.mode == "capacity":
        return f"target {fmt_value(d.target, d.unit)}/instance"
    if d.mode == "target":
        return f"target {fmt_value(d.target, d.unit)}"
    down = fmt_value(d.scale_down, d.unit) if d.scale_down is not None else "-"
    return f"{down} .. {fmt_value(d.scale_up, d.unit)}"


def counts(r: ResourceDecision) -> str:
    if r.current is None:
        return "?"
    return f"{r.current} -> {r.recommended}" if r.recommended != r.current else f"{r.current}"


def table_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for d in ev.decisions:
        r = ev.resources[d.resource]
        label = d.decision + (" (pending)" if d.pending else "")
        act = d.playbook or (f"({d.action})" if d.action else "-")
        rows.append((d.resource, d.metric, fmt_value(d.value, d.unit), limits(d),
                     format_duration(d.window_s) if d.window_s else "-", label, counts(r), act, d.reason))
    return rows


def resource_lines(ev: Evaluation) -> list[str]:
    lines = []
    for name, r in ev.resources.items():
        bound = f" via playbook {r.playbook}" if r.playbook and r.decision in ("scale_up", "scale_down") else ""
        lines.append(f"{name}: {r.decision} {counts(r)} [min {r.min}, max {r.max}]{bound}: {r.reason}")
        cap = ev.capacities.get(name)
        if cap is not None:
            lines.append(f"{name} capacity: " + (f"none ({cap.error})" if cap.capacity_rps is None else
                         f"{cap.capacity_rps:,.1f} req/s per instance, target {cap.target_rps:,.1f} at "
                         f"{cap.utilization_target_pct:g}% ({cap.source.text})"))
    return lines


def changes(before: Evaluation | None, after: Evaluation) -> list[str]:
    """What differs between two evaluations, one line each (for --watch)."""
    if before is None:
        return []
    out = []
    old = {(d.resource, d.metric, i): d for i, d in enumerate(before.decisions)}
    for i, d in enumerate(after.decisions):
        prev = old.get((d.resource, d.metric, i))
        if prev is None or prev.decision != d.decision or prev.pending != d.pending:
            was = prev.decision + (" (pending)" if prev.pending else "") if prev else "-"
            now = d.decision + (" (pending)" if d.pending else "")
            out.append(f"{d.resource}.{d.metric}: {was} -> {now} ({fmt_value(d.value, d.unit)}; {d.reason})")
    for name, r in after.resources.items():
        prev_r = before.resources.get(name)
        if prev_r is None or (prev_r.decision, prev_r.recommended, prev_r.current) != (
                r.decision, r.recommended, r.current):
            out.append(f"{name}: {r.decision} {counts(r)}: {r.reason}")
    return out
