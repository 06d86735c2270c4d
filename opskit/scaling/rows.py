"""One threshold row against its series: threshold mode (band with hysteresis and `for` windows) or
target mode (HPA usage ratio). Pure: the clock is an argument."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import replace

from opskit.metrics.base import Sample, Series
from opskit.scaling import hpa
from opskit.scaling.model import Decision, DecisionKind
from opskit.spec.schema import Threshold
from opskit.units import format_duration

# Like Prometheus' lookback delta: a sample older than this is not "now", and a gap longer than
# this breaks a run of samples that were beyond a limit.
STALENESS_S = 300.0


def beyond(value: float, limit: float) -> bool:
    """The one rule for "reaches the threshold", used by scaling, the forecast and (as `>`) the rendered
    alerts: strictly above the limit. The relative epsilon keeps interpolated figures that equal the limit
    (4,999.999 x 0.1 rounding up to 500.0000001) from counting as a crossing."""
    return value > limit + 1e-9 * max(1.0, abs(limit))


def fmt_value(value: float | None, unit: str) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if unit == "percent":
        return f"{value:.4g}%"
    if unit == "ms":
        return f"{value:.4g}ms"
    if unit == "bytes":
        return f"{value / 1e9:.4g}GB"
    if unit == "rps":
        return f"{value:.4g} req/s"
    return f"{value:.4g}"


def evaluate_row(
    th: Threshold, series: Series, *, now: dt.datetime, current: int | None,
    tolerance: float = hpa.TOLERANCE, staleness_s: float = STALENESS_S,
) -> Decision:
    points = usable(series, now)
    base = Decision(
        resource=th.resource, metric=th.metric, mode="target" if th.target is not None else "threshold",
        decision="no_data", value=None, reason="", unit=th.unit, scale_up=th.scale_up, scale_down=th.scale_down,
        target=th.target, window_s=th.for_, playbook=th.playbook, action=th.action, severity=th.severity,
        query=series.query, samples=len(points),
    )
    missing = no_data(base, series, points, now, staleness_s)
    if missing is not None:
        return missing
    if th.target is not None:
        return _target(th, points[-1].value, current, tolerance, base)
    return _band(th, points, now, current, staleness_s, base)


def usable(series: Series, now: dt.datetime) -> list[Sample]:
    """The finite samples at or before `now`, oldest first."""
    return sorted((s for s in series.samples if math.isfinite(s.value) and s.at <= now), key=lambda s: s.at)


def no_data(base: Decision, series: Series, points: list[Sample], now: dt.datetime,
            staleness_s: float) -> Decision | None:
    """`base` as no_data with the reason when the series cannot answer now (failed, empty, stale), else None."""
    if series.error is not None or not points:
        future = any(math.isfinite(s.value) and s.at > now for s in series.samples)
        why = series.error or ("every sample is after the evaluation time" if future else
                               "only NaN values" if series.samples else "no samples")
        return replace(base, decision="no_data", value=None, reason=_with_query(why, series.query))
    latest = points[-1]
    age = (now - latest.at).total_seconds()
    if age > staleness_s:
        return replace(base, decision="no_data", value=latest.value,
                       reason=f"latest sample is {format_duration(age)} old (stale after "
                              f"{format_duration(staleness_s)})")
    return None


def _target(th: Threshold, value: float, current: int | None, tolerance: float, base: Decision) -> Decision:
    assert th.target is not None
    ratio = value / th.target
    shown = f"{fmt_value(value, th.unit)} vs target {fmt_value(th.target, th.unit)} (ratio {ratio:.3g})"
    if hpa.within_tolerance(ratio, tolerance):
        return replace(base, decision="hold", value=value, proposed=current,
                       reason=f"{shown} is within the tolerance {tolerance:g}")
    if current is None:
        kind: DecisionKind = "scale_up" if ratio > 1 else "scale_down"
        return replace(base, decision=kind, value=value,
                       reason=f"{shown}; current replicas unknown, so no count")
    if current == 0:
        return replace(base, decision="hold", value=value, proposed=0,
                       reason=f"{shown}; 0 replicas: scaling is off (as the HPA does)")
    proposed = hpa.target_proposal(current, value, th.target, tolerance)
    kind = "scale_up" if proposed > current else "scale_down" if proposed < current else "hold"
    return replace(base, decision=kind, value=value, proposed=proposed,
                   reason=f"{shown}: ceil({current} x {ratio:.3g}) = {proposed}")


def _band(th: Threshold, points: list[Sample], now: dt.datetime, current: int | None, staleness_s: float,
          base: Decision) -> Decision:
    assert th.scale_up is not None
    value = points[-1].value
    window = th.for_ or 0.0
    unit = th.unit
    if beyond(value, th.scale_up):
        kind: DecisionKind = "scale_up"
        up = th.scale_up
        since = _run_start(points, lambda v: beyond(v, up), staleness_s)
        words = f"above scale_up {fmt_value(th.scale_up, unit)}"
    elif th.scale_down is not None and value < th.scale_down:
        kind = "scale_down"
        down = th.scale_down
        since = _run_start(points, lambda v: v < down, staleness_s)
        words = f"below scale_down {fmt_value(th.scale_down, unit)}"
    else:
        band = (f"between {fmt_value(th.scale_down, unit)} and {fmt_value(th.scale_up, unit)}"
                if th.scale_down is not None else f"not above {fmt_value(th.scale_up, unit)}")
        return replace(base, decision="hold", value=value, proposed=current,
                       reason=f"{fmt_value(value, unit)} is {band}")
    observed = (now - since).total_seconds()
    shown = fmt_value(value, unit)
    if observed < window:
        so_far = format_duration(round(observed)) if observed >= 1 else "less than 1s"
        return replace(base, decision="hold", value=value, proposed=current, pending=True, observed_s=observed,
                       reason=f"{shown} is {words}, but only for {so_far} of the {format_duration(window)} window")
    proposed = None if current is None else hpa.band_proposal(current, value, kind, th.scale_up, th.scale_down)
    held = f" for {format_duration(round(observed))} (window {format_duration(window)})" if window else ""
    return replace(base, decision=kind, value=value, proposed=proposed, observed_s=observed,
                   reason=f"{shown} is {words}{held}")


def _run_start(points: list[Sample], beyond: Callable[[float], bool], staleness_s: float) -> dt.datetime:
    """When the trailing run of samples beyond the limit began (Prometheus' `activeAt` for `for:`)."""
    start = points[-1].at
    for prev in reversed(points[:-1]):
        if not beyond(prev.value) or (start - prev.at).total_seconds() > staleness_s:
            break
        start = prev.at
    return start


def _with_query(why: str, query: str) -> str:
    return f"{why} (query: {query})" if query else why
