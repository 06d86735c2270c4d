"""Recommendations from a measured knee: the per-instance autoscaling target, and for each threshold row
whether it fires before the SLO breaks or only after (a capacity-aware review of seed 001's table).

Pure: a probe's answer and the spec's rows in, data out. The probe measures latency for every row of the
serving fleet, and CPU/memory when the service's process could be watched; rows of other resources
(database, Redis) are not loaded by the probe and say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from opskit.capacity.probe import PASS, ProbeResult, StepMeasure

if TYPE_CHECKING:
    from opskit.spec.schema import Threshold

# a threshold row's metric -> the step figure that measures it
STEP_METRIC = {"response_time": "p95", "response_time_p95": "p95", "latency_p95": "p95",
               "cpu_utilization": "cpu_pct", "memory_utilization": "memory_pct"}

Fires = Literal["before", "after", "unknown"]


@dataclass(frozen=True)
class RowReview:
    resource: str
    metric: str
    scale_up: float | None
    unit: str
    at_knee: float | None  # the metric at the highest rate within the SLO
    at_target: float | None  # ... and at the per-instance target (the knee x utilization target)
    fires: Fires  # before the SLO breaks (the row scales in time) or only after it
    suggest: float | None  # a scale_up that fires at the target rate, when the row fires too late
    note: str


@dataclass(frozen=True)
class Recommendation:
    knee_rps: float | None  # the probe's max_rate_within_slo
    utilization_target_pct: float
    target_rps_per_instance: float | None  # what an autoscaler should hold one instance at
    lower_bound: bool  # the knee is only "at least" (generator- or max-rate-bound)
    rows: list[RowReview]


def recommend(result: ProbeResult, thresholds: Sequence[Threshold], *, resource: str,
              utilization_target_pct: float) -> Recommendation:
    knee = result.max_rate_within_slo
    target = knee * utilization_target_pct / 100 if knee else None
    passing = sorted((s.measure for s in result.steps if s.verdict == PASS), key=lambda m: m.rate)
    rows = [_review(th, passing, knee, target, resource) for th in thresholds if th.scale_up is not None]
    return Recommendation(knee, utilization_target_pct, target, result.lower_bound_only, rows)


def _review(th: Threshold, passing: list[StepMeasure], knee: float | None, target: float | None,
            resource: str) -> RowReview:
    assert th.scale_up is not None
    base = RowReview(th.resource, th.metric, th.scale_up, th.unit, None, None, "unknown", None, "")
    if th.resource != resource:
        return _with(base, note=f"{th.resource} is not loaded by the probe (it measured the {resource} fleet)")
    figure = STEP_METRIC.get(th.metric)
    if figure is None:
        return _with(base, note=f"the probe does not measure {th.metric}")
    if knee is None or target is None:
        return _with(base, note="no rate held the SLO, so there is no knee to compare with")
    at_knee = value_at(passing, figure, knee)
    at_target = value_at(passing, figure, target)
    if at_knee is None:
        return _with(base, note=f"{th.metric} was not measured in the probe's steps")
    if at_knee > th.scale_up:
        where = f"{th.metric} is {_fmt(at_knee, th.unit)} at the knee, above scale_up {_fmt(th.scale_up, th.unit)}"
        return RowReview(th.resource, th.metric, th.scale_up, th.unit, at_knee, at_target, "before", None,
                         f"fires before the SLO breaks: {where}")
    note = (f"fires only after the SLO breaks: {th.metric} is {_fmt(at_knee, th.unit)} at the knee "
            f"({knee:,.1f} req/s), under scale_up {_fmt(th.scale_up, th.unit)}")
    if at_target is not None:
        note += f"; scale_up {_fmt(at_target, th.unit)} would fire at the {target:,.1f} req/s target"
    return RowReview(th.resource, th.metric, th.scale_up, th.unit, at_knee, at_target, "after", at_target, note)


def value_at(steps: list[StepMeasure], figure: str, rate: float) -> float | None:
    """The figure at `rate`, linear between the passing steps around it (clamped to the measured range)."""
    points = sorted({(m.rate, v) for m in steps if (v := m.metric(figure)) is not None})
    if not points:
        return None
    if rate <= points[0][0]:
        return points[0][1]
    for (r0, v0), (r1, v1) in zip(points, points[1:], strict=False):
        if r0 <= rate <= r1:
            return v0 if r1 == r0 else v0 + (v1 - v0) * (rate - r0) / (r1 - r0)
    return points[-1][1]


def _with(base: RowReview, *, note: str) -> RowReview:
    from dataclasses import replace

    return replace(base, note=note)


def _fmt(v: float, unit: str) -> str:
    return f"{v:,.0f}%" if unit == "percent" else f"{v:,.0f} ms" if unit == "ms" else f"{v:,.4g}"
