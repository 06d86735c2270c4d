"""Judging criteria against a run: pure, data in and verdicts out.

A plain criterion is judged on the run's (or endpoint's) aggregate, which comes from exact HDR
histograms. A `for DURATION` criterion is judged on the per-second timeline, Taurus-style: it
fails only when the condition is broken in every second of some window of DURATION consecutive
seconds, so a one-second spike does not fail `p95 < 300ms for 30s` but a half-minute plateau does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from opskit.gate.criteria import FAULT_METRICS, LATENCY_METRICS, Criterion, compare, format_value, unit_of
from opskit.runmodel import RunResults, Scope

Status = Literal["pass", "fail", "error", "skipped"]


@dataclass(frozen=True)
class Sourced:
    """A criterion and where it came from."""

    criterion: Criterion
    source: str  # "slo:list-assets", "gate.criteria", "gate.scenarios.smoke", "gate.abort_on_fail", "--criteria"
    # SLO-derived criteria apply to the endpoints a scenario exercises: one the results never mention
    # is skipped, visibly. A criterion someone wrote for an endpoint must find it (else: error).
    required: bool = True


@dataclass(frozen=True)
class Verdict:
    criterion: str
    source: str
    status: Status
    measured: float | None
    measured_text: str
    limit: str
    detail: str = ""
    unit: str = ""  # of measured (criteria.unit_of): ms, ratio, s, rps, count


@dataclass(frozen=True)
class Sustained:
    """What a timeline says about a `for` criterion."""

    level: float | None  # the worst value held through a whole window (None when no full window has data)
    longest_breach_s: int
    seconds: int  # rows in the timeline


def evaluate(criteria: Iterable[Sourced], run: RunResults) -> list[Verdict]:
    return [judge(s, run) for s in criteria]


def judge(sourced: Sourced, run: RunResults) -> Verdict:
    c = sourced.criterion

    def verdict(status: Status, measured: float | None, text: str, detail: str = "") -> Verdict:
        return Verdict(c.text, sourced.source, status, measured, text, c.limit_text, detail, unit_of(c.metric))

    if c.metric in FAULT_METRICS:
        return _judge_fault(c, run, verdict)
    if c.endpoint is None:
        scope = run.total
    else:
        found = run.endpoints.get(c.endpoint)
        if found is None:
            if not sourced.required:
                return verdict("skipped", None, "-", f"{c.endpoint} is not exercised by scenario {run.scenario}")
            known = ", ".join(sorted(run.endpoints)) or "none"
            return verdict("error", None, "no data",
                           f"{c.endpoint} was never hit in this run (endpoints in the results: {known})")
        scope = found
    if scope.requests == 0:
        return verdict("error", None, "no data", f"{scope.name} was never hit (0 requests)")
    if c.for_s is not None:
        return _judge_window(c, scope, verdict)
    measured = measure(c.metric, scope)
    if measured is None:
        return verdict("error", None, "no data", f"the results have no {c.metric} for {scope.name}")
    return verdict("pass" if c.holds(measured) else "fail", measured, format_value(c.metric, measured))


def measure(metric: str, scope: Scope) -> float | None:
    """A metric over the whole run of a scope, in canonical units."""
    if metric in LATENCY_METRICS:
        return scope.latency_ms.get(metric)
    if metric == "error_rate":
        return scope.error_rate
    if metric == "requests":
        return float(scope.requests)
    if metric == "rps":
        return scope.rps
    return scope.dropped


def series(metric: str, scope: Scope) -> list[tuple[int, float | None]]:
    """(t, value) per second; None where the second has no value (no requests for a latency)."""
    out: list[tuple[int, float | None]] = []
    for s in scope.timeline:
        value: float | None
        if metric in ("p50", "p95", "p99"):
            value = getattr(s, metric) if s.requests > 0 else None
        elif metric == "error_rate":
            value = s.errors / s.requests if s.requests else None
        elif metric == "rps":
            value = s.rps if s.rps is not None else float(s.requests)
        elif metric == "requests":
            value = float(s.requests)
        else:
            value = s.dropped
        out.append((s.t, value))
    return out


def sustained(points: list[tuple[int, float | None]], op: str, limit: float, window: int) -> Sustained:
    """The longest run of consecutive seconds breaking `op limit`, and the worst level held for a
    whole window (highest floor for < and <=, lowest ceiling for > and >=). A missing second or a gap
    in t ends a run: a breach has to be seen to be sustained."""
    longest = current = 0
    previous: int | None = None
    for t, value in points:
        if previous is not None and t != previous + 1:
            current = 0
        current = current + 1 if value is not None and not compare(op, value, limit) else 0
        longest = max(longest, current)
        previous = t
    level: float | None = None
    if op != "==":
        worst = max if op in ("<", "<=") else min
        held = min if op in ("<", "<=") else max
        for i in range(len(points) - window + 1):
            chunk = points[i:i + window]
            values = [v for _, v in chunk]
            if chunk[-1][0] - chunk[0][0] != window - 1 or any(v is None for v in values):
                continue
            floor = held(v for v in values if v is not None)
            level = floor if level is None else worst(level, floor)
    return Sustained(level, longest, len(points))


def _judge_window(c: Criterion, scope: Scope, verdict: Callable[..., Verdict]) -> Verdict:
    assert c.for_s is not None
    window = math.ceil(c.for_s)
    points = series(c.metric, scope)
    if len(points) < window:
        return verdict("error", None, "no data",
                       f"the {scope.name} timeline has {len(points)}s, shorter than the {c.for_text} window")
    if all(v is None for _, v in points):  # e.g. a timeline without per-second percentiles
        return verdict("error", None, "no data", f"the {scope.name} timeline has no per-second {c.metric}")
    result = sustained(points, c.op, c.value, window)
    status: Status = "fail" if result.longest_breach_s >= window else "pass"
    breach = f"longest breach {result.longest_breach_s}s"
    if result.level is None:
        return verdict(status, None, breach)
    return verdict(status, result.level, f"{format_value(c.metric, result.level)} held {window}s; {breach}")


def _judge_fault(c: Criterion, run: RunResults, verdict: Callable[..., Verdict]) -> Verdict:
    fault = run.fault
    if fault is None:
        return verdict("error", None, "no data", f"scenario {run.scenario} injected no fault (no fault block)")
    value = getattr(fault, c.metric)
    if value is None:
        if c.metric == "recovery_s" and fault.cleared_at_s is not None:
            return verdict("fail", None, "never recovered",
                           "errors and p95 never stayed within the SLO for 5 s after the fault was cleared")
        return verdict("error", None, "no data", f"the fault block has no {c.metric}")
    measured = float(value)
    return verdict("pass" if c.holds(measured) else "fail", measured, format_value(c.metric, measured))
