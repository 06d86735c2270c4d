"""Replica arithmetic with the Kubernetes HPA controller's semantics (pkg/controller/podautoscaler):
the usage ratio with a tolerance, stabilization windows over past recommendations, rate policies,
and the min/max bounds. Pure functions of numbers and timestamps."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from opskit.spec.schema import Resource, ScalingPolicy

TOLERANCE = 0.1
_EPS = 1e-9  # 3 x (50 / 30) must be 5, not 5.000000000000001 -> 6


def ceil(x: float) -> int:
    return math.ceil(x - _EPS)


def target_proposal(current: int, value: float, target: float, tolerance: float = TOLERANCE) -> int:
    """desired = ceil(current x value / target), unless the ratio is within the tolerance of 1."""
    ratio = value / target
    if within_tolerance(ratio, tolerance):
        return current
    return ceil(ratio * current)


def within_tolerance(ratio: float, tolerance: float = TOLERANCE) -> bool:
    """|1 - ratio| <= tolerance, with the edge inclusive as written: 110% of target keeps the count
    (in plain float arithmetic 1 - 1.1 is -0.10000000000000009 and would scale)."""
    return abs(1.0 - ratio) <= tolerance + _EPS


def band_proposal(current: int, value: float, decision: str, scale_up: float, scale_down: float | None) -> int:
    """Threshold-mode rows: the count that brings the value back to the middle of the band
    (assuming load spreads evenly), at least one step in the decided direction."""
    mid = (scale_up + scale_down) / 2 if scale_down is not None else scale_up
    if decision == "scale_up":
        return max(current + 1, ceil(current * value / mid))
    if decision == "scale_down":
        return max(0, min(current - 1, ceil(current * value / mid)))
    return current


@dataclass(frozen=True)
class Normalized:
    replicas: int
    limited_by: str | None
    note: str


def stabilize(
    current: int, desired: int, history: Iterable[tuple[dt.datetime, int]], now: dt.datetime,
    *, up_window_s: float, down_window_s: float,
) -> int:
    """HPA stabilizeRecommendationWithBehaviors: scale up no further than the lowest recommendation of the
    up window, scale down no further than the highest recommendation of the down window."""
    up_rec = down_rec = desired
    up_cut = now - dt.timedelta(seconds=up_window_s)
    down_cut = now - dt.timedelta(seconds=down_window_s)
    for at, replicas in history:
        if at > now:
            continue  # a recommendation from the future of this clock (replayed data): not part of the past
        if at > up_cut:
            up_rec = min(up_rec, replicas)
        if at > down_cut:
            down_rec = max(down_rec, replicas)
    recommendation = current
    if recommendation < up_rec:
        recommendation = up_rec
    if recommendation > down_rec:
        recommendation = down_rec
    return recommendation


def scale_up_limit(current: int, policies: Sequence[ScalingPolicy], select: str = "max") -> int:
    """The most replicas the scale-up policies allow from `current` in one period."""
    if select == "disabled" or not policies:
        return current if select == "disabled" else 2**31 - 1
    limits = [current + int(p.value) if p.type == "pods" else ceil(current * (1 + p.value / 100))
              for p in policies]
    return max(limits) if select == "max" else min(limits)


def scale_down_limit(current: int, policies: Sequence[ScalingPolicy], select: str = "max") -> int:
    """The fewest replicas the scale-down policies allow from `current` in one period."""
    if select == "disabled" or not policies:
        return current if select == "disabled" else 0
    # HPA truncates for scale-down: 100% of 5 -> 0, 50% of 5 -> int(2.5) = 2
    limits = [current - int(p.value) if p.type == "pods" else int(current * (1 - p.value / 100))
              for p in policies]
    return min(limits) if select == "max" else max(limits)


def normalize(
    current: int, desired: int, resource: Resource, history: Iterable[tuple[dt.datetime, int]],
    now: dt.datetime,
) -> Normalized:
    """Stabilize, apply the rate policies, clamp to [min, max] (HPA normalizeDesiredReplicasWithBehaviors)."""
    lo, hi = resource.min, resource.max
    if current > hi:
        return Normalized(hi, "max", f"current {current} is above max {hi}")
    if current < lo:
        return Normalized(lo, "min", f"current {current} is below min {lo}")
    stabilized = stabilize(current, desired, history, now,
                           up_window_s=resource.scale_up_stabilization,
                           down_window_s=resource.scale_down_stabilization)
    limited_by: str | None = None
    note = ""
    if stabilized != desired:
        limited_by = "stabilization"
        window = resource.scale_down_stabilization if desired < current else resource.scale_up_stabilization
        note = (f"held at {stabilized} by the {_fmt_s(window)} "
                f"{'scale-down' if desired < current else 'scale-up'} stabilization window")
    result = stabilized
    if stabilized > current:
        up = max(current, scale_up_limit(current, resource.scale_up_policies, resource.scale_up_select_policy))
        ceiling = min(hi, up)
        if stabilized > ceiling:
            result = ceiling
            limited_by, note = ("max", f"at max {hi}") if ceiling == hi else (
                "scale_up_policy", f"limited to {up} by the scale-up policies")
    elif stabilized < current:
        down = min(current, scale_down_limit(current, resource.scale_down_policies,
                                             resource.scale_down_select_policy))
        floor = max(lo, down)
        if stabilized < floor:
            result = floor
            limited_by, note = ("min", f"at min {lo}") if floor == lo else (
                "scale_down_policy", f"limited to {down} by the scale-down policies")
    return Normalized(result, limited_by, note)


def _fmt_s(seconds: float) -> str:
    from opskit.units import format_duration

    return format_duration(seconds)
