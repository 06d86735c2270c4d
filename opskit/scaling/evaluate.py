"""The scaling core: thresholds + series + replica counts + past recommendations -> decisions.

evaluate(...) takes data and returns data; the clock is an argument. The HPA pipeline per resource:
a proposal per metric, the max of them, no scale-down while a metric is missing, stabilization,
rate policies, [min, max]."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TypedDict

from opskit.metrics.base import Series
from opskit.scaling import hpa
from opskit.scaling.capacity import capacity_row
from opskit.scaling.model import Capacity, Decision, DecisionKind, Evaluation, Recommendation, ResourceDecision
from opskit.scaling.rows import STALENESS_S, evaluate_row
from opskit.spec.schema import Resource, Threshold


def evaluate(
    thresholds: Sequence[Threshold],
    series: Sequence[Series],
    *,
    now: dt.datetime,
    resources: Mapping[str, Resource],
    replicas: Mapping[str, int | None],
    history: Sequence[Recommendation] = (),
    tolerance: float = hpa.TOLERANCE,
    staleness_s: float = STALENESS_S,
    capacities: Mapping[str, Capacity] | None = None,
    demand: Mapping[str, Series] | None = None,
) -> Evaluation:
    """`series[i]` is what was read for `thresholds[i]`; `replicas` is the count now per resource.
    `demand[r]` is resource r's request rate, weighed against `capacities[r]` as one more row of r."""
    if len(series) != len(thresholds):
        raise ValueError(f"{len(series)} series for {len(thresholds)} thresholds")
    made = [
        evaluate_row(th, s, now=now, current=replicas.get(th.resource), tolerance=tolerance,
                     staleness_s=staleness_s)
        for th, s in zip(thresholds, series, strict=True)
    ]
    used = {name: cap for name, cap in (capacities or {}).items() if name in (demand or {})}
    for name, cap in used.items():
        # a count the capacity asks for goes through the playbook of the resource's first bound row
        bound = next((th.playbook for th in thresholds if th.resource == name and th.playbook), None)
        row = capacity_row(cap, (demand or {})[name], now=now, current=replicas.get(name), playbook=bound,
                           tolerance=tolerance, staleness_s=staleness_s)
        after = max((i for i, d in enumerate(made) if d.resource == name), default=len(made) - 1)
        made.insert(after + 1, row)  # beside the resource's threshold rows
    decisions = tuple(made)
    out: dict[str, ResourceDecision] = {}
    recs: list[Recommendation] = []
    for name in dict.fromkeys([*(th.resource for th in thresholds), *used]):
        rows = [d for d in decisions if d.resource == name]
        res = resources.get(name) or Resource()
        past = [(r.at, r.replicas) for r in history if r.resource == name]
        decision, rec = _resource(name, rows, res, replicas.get(name), past, now)
        out[name] = decision
        if rec is not None:
            recs.append(rec)
    return Evaluation(now=now, decisions=decisions, resources=out, recommendations=tuple(recs), capacities=used)


def _resource(
    name: str, rows: list[Decision], res: Resource, current: int | None,
    past: list[tuple[dt.datetime, int]], now: dt.datetime,
) -> tuple[ResourceDecision, Recommendation | None]:
    common = ResourceDecision(resource=name, decision="no_data", current=current, recommended=current, desired=None,
                              reason="", min=res.min, max=res.max, metrics=tuple(d.metric for d in rows))
    with_data = [d for d in rows if d.decision != "no_data"]
    missing = [d.metric for d in rows if d.decision == "no_data"]
    if not with_data:
        return replace(common, decision="no_data", recommended=current, desired=None,
                       reason="no metric has data"), None
    ups = [d for d in with_data if d.decision == "scale_up"]
    downs = [d for d in with_data if d.decision == "scale_down"]
    if current is None:
        kind: DecisionKind = "scale_up" if ups else "scale_down" if downs and not missing and \
            len(downs) == len(with_data) else "hold"
        lead = (ups or downs or with_data)[0]
        return replace(common, decision=kind, recommended=None, desired=None,
                       reason=f"{lead.metric}: {lead.reason}; replicas now unknown (set "
                              f"resources.{name}.current)", **_binding(kind, rows)), None
    proposals = [(d.proposed if d.proposed is not None else current, d) for d in with_data]
    desired, leader = max(proposals, key=lambda p: p[0])
    notes: list[str] = []
    if len(proposals) > 1:
        notes.append(f"max of {len(proposals)} metrics")
    if missing and desired < current:
        notes.append(f"no scale-down while {', '.join(missing)} has no data")
        desired = current
    norm = hpa.normalize(current, desired, res, past, now)
    recommended = norm.replicas
    if norm.note:
        notes.append(norm.note)
    if recommended > current or (recommended == current and ups and norm.limited_by == "max"):
        kind = "scale_up"
    elif recommended < current or (
            recommended == current and norm.limited_by == "min" and len(downs) == len(with_data) and not missing):
        # at the bound with every metric below its band: the remaining move is a smaller instance
        kind = "scale_down"
    else:
        kind = "hold"
    if ups and kind == "scale_up" and recommended == current:
        notes.append("count cannot rise; " + (ups[0].action or "scale vertically"))
    pending = [d for d in with_data if d.pending]
    if kind == "hold" and all(n.startswith("max of") for n in notes):
        reason = (f"{pending[0].metric} pending: {pending[0].reason}" if pending
                  else "every metric with data is within its limits")
        if missing:
            reason += f"; no data: {', '.join(missing)}"

    else:
        asked = leader.proposed if leader.proposed is not None else current
        reason = "; ".join([f"{leader.metric} asks for {asked}", *notes])
    return (
        replace(common, decision=kind, recommended=recommended, desired=desired, reason=reason,
                limited_by=norm.limited_by, **_binding(kind, rows)),
        Recommendation(resource=name, replicas=desired, at=now),
    )


def _binding(kind: DecisionKind, rows: list[Decision]) -> Binding:
    """The playbook and action of the first row that voted for the resource's decision."""
    for d in rows:
        if d.decision == kind and (d.playbook or d.action):
            return Binding(playbook=d.playbook, action=d.action)
    return Binding(playbook=None, action=None)


class Binding(TypedDict):
    playbook: str | None
    action: str | None
