"""Comparing a run with a baseline run of the same scenario: a real regression or noise?

For each endpoint and metric (p95, p99, error_rate, rps) the change is computed on the whole-run figure
the gate table shows in both columns (the run's own p95, error rate, throughput), and a bootstrap gives
a confidence interval on the change of that same figure (opskit.gate.resample):

- p95/p99: relative change (+12%).
- error_rate: errors / requests; change is absolute, and allowed to grow by tolerance x baseline
  or ERROR_RATE_FLOOR (0.1 percentage point), whichever is larger, so 0 -> 1 error is not a regression.
- rps: throughput; a drop is the regression. Closed model only: in the open model the generator
  sets the rate, so it is not compared (OPEN_MODEL_NOTE).

Verdict: fail when the whole interval is beyond the tolerance (a regression proven at the
confidence level), pass when the whole interval is within it, inconclusive otherwise.

Seconds of a load test can be autocorrelated (a GC pause or a compaction spans several), so the
resampling is a circular block bootstrap with the block length chosen from the timeline's own
autocorrelation; an i.i.d. bootstrap of correlated seconds would make the interval too narrow and
call noise a regression. The RNG is seeded from the endpoint and metric: the same two files always
give the same answer.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from opskit.gate.resample import MIN_SECONDS
from opskit.runmodel import RunResults, Scope

METRICS = ("p95", "p99", "error_rate", "rps")
ERROR_RATE_FLOOR = 0.001
RESAMPLES = 2000
CONFIDENCE = 0.95
RATE_MISMATCH = 0.01  # load levels differing by more than 1% are different experiments

ComparisonStatus = Literal["pass", "fail", "inconclusive"]


class BaselineMismatch(ValueError):
    """The two runs are not the same experiment (exit 2)."""


@dataclass(frozen=True)
class Comparison:
    endpoint: str
    metric: str
    status: ComparisonStatus
    baseline: float | None  # the runs' own aggregate figures, for people
    current: float | None
    change: float | None  # relative for p95/p99/rps, absolute (fraction) for error_rate
    ci_low: float | None
    ci_high: float | None
    allowed: float  # the change that is still fine (negative for rps: the drop allowed)
    detail: str = ""
    # inconclusive on an interval: about how long both runs would need to be (at this load) for the
    # interval to clear the tolerance, the interval narrowing as 1/sqrt(duration)
    runs_needed_s: float | None = None

    @property
    def name(self) -> str:
        return f"{self.endpoint}: {self.metric} vs baseline"


def check_comparable(current: RunResults, base: RunResults) -> None:
    if current.scenario != base.scenario:
        raise BaselineMismatch(f"the baseline is a run of scenario {base.scenario!r}, this is "
                               f"{current.scenario!r}: compare runs of the same scenario")
    if current.model != base.model:
        raise BaselineMismatch(f"the baseline ran the {base.model} model, this run the {current.model} "
                               "model: an open and a closed workload are not comparable")
    for what, a, b in (("intended rate", current.intended_rate, base.intended_rate),
                       ("user count", current.users, base.users)):
        if a is not None and b is not None and abs(a - b) > RATE_MISMATCH * max(abs(a), abs(b)):
            raise BaselineMismatch(f"the baseline ran at {what} {b:g}, this run at {a:g}: "
                                   "a different load level is a different experiment")


def compared_metrics(model: str) -> tuple[str, ...]:
    """The metrics a baseline comparison judges. In the open model the generator sets the request rate, so
    throughput is the offered load, not a measurement of the service: not compared (`OPEN_MODEL_NOTE`)."""
    return tuple(m for m in METRICS if not (m == "rps" and model == "open"))


OPEN_MODEL_NOTE = ("rps is not compared with the baseline: in the open model the generator sets the request "
                   "rate (dropped requests and the error rate say when the service could not keep up)")


def compare_runs(current: RunResults, base: RunResults, tolerance_pct: float, *,
                 resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> list[Comparison]:
    """Every endpoint of either run, then the whole run ("(all)"), x the compared metrics."""
    check_comparable(current, base)
    tol = tolerance_pct / 100
    pairs: list[tuple[str, Scope | None, Scope | None]] = [
        (name, current.endpoints.get(name), base.endpoints.get(name))
        for name in sorted(set(current.endpoints) | set(base.endpoints))]
    pairs.append(("(all)", current.total, base.total))
    out = []
    for name, cur, old in pairs:
        for metric in compared_metrics(current.model):
            if cur is None or old is None:
                missing = "this run" if cur is None else "the baseline"
                out.append(Comparison(name, metric, "inconclusive", None, None, None, None, None,
                                      _allowed(metric, tol, 0.0), f"{name} is not in {missing}"))
            else:
                out.append(compare_metric(name, metric, cur, old, tol, resamples=resamples,
                                          confidence=confidence))
    return out


def compare_metric(name: str, metric: str, cur: Scope, old: Scope, tol: float, *,
                   resamples: int = RESAMPLES, confidence: float = CONFIDENCE,
                   block: int | None = None) -> Comparison:
    """One endpoint and metric: the change of the whole-run figure both columns show, with a bootstrap
    interval on that same figure. `block` overrides the resampling block length (1 = i.i.d. bootstrap,
    for comparison in benchmarks/bench_gate.py)."""
    from opskit.gate.resample import CannotResample, replicates

    shown_cur, shown_old = _aggregate(metric, cur), _aggregate(metric, old)
    allowed = _allowed(metric, tol, shown_old if shown_old is not None else 0.0)

    def inconclusive(detail: str, change: float | None = None) -> Comparison:
        return Comparison(name, metric, "inconclusive", shown_old, shown_cur, change, None, None, allowed, detail)

    if metric in ("p95", "p99") and cur.requests and old.requests:
        for side, scope in (("this run", cur), ("the baseline", old)):
            if not any(getattr(s, metric) is not None for s in scope.timeline if s.requests):
                return inconclusive(f"the per-second timeline of {side} has no {metric} column to compare")
    if shown_cur is None or shown_old is None:
        return inconclusive(f"{'this run' if shown_cur is None else 'the baseline'} reports no {metric}")
    if shown_old == 0 and metric != "error_rate":
        return inconclusive(f"the baseline's {metric} is 0: no relative change to measure")
    change = float(_change(metric, shown_cur, shown_old))
    rng = np.random.default_rng(zlib.crc32(f"{name}|{metric}".encode()))
    try:
        est_cur, boot_cur = replicates(metric, cur.timeline, rng, resamples, block)
        est_old, boot_old = replicates(metric, old.timeline, rng, resamples, block)
    except CannotResample as exc:
        side_counts = (_seconds(metric, cur), _seconds(metric, old))
        return inconclusive(f"too few seconds with traffic to tell noise from change ({side_counts[0]} now, "
                            f"{side_counts[1]} in the baseline; need {MIN_SECONDS})" if min(side_counts) < MIN_SECONDS
                            else str(exc))
    changes = _change(metric, _onto(metric, shown_cur, est_cur, boot_cur), _onto(metric, shown_old, est_old, boot_old))
    changes = changes[np.isfinite(changes)]
    if len(changes) < resamples // 2:
        return inconclusive("the timeline is too sparse to resample", change)
    alpha = (1 - confidence) / 2
    low, high = (float(x) for x in np.quantile(changes, [alpha, 1 - alpha]))
    status: ComparisonStatus
    if metric == "rps":  # lower is worse
        status = "fail" if high < allowed else "pass" if low >= allowed else "inconclusive"
    else:
        status = "fail" if low > allowed else "pass" if high <= allowed else "inconclusive"
    if status != "inconclusive":
        return Comparison(name, metric, status, shown_old, shown_cur, change, low, high, allowed)
    needed = _needed_s(change, low, high, allowed, max(len(cur.timeline), len(old.timeline)))
    words = "the interval straddles the tolerance" + (
        f"; runs of about {duration_text(needed)} at this load would decide it" if needed is not None else "")
    return Comparison(name, metric, status, shown_old, shown_cur, change, low, high, allowed, words, needed)


def _needed_s(change: float, low: float, high: float, allowed: float, seconds: int) -> float | None:
    gap = abs(change - allowed)
    if gap <= 0 or seconds <= 0:
        return None
    toward = high - change if change < allowed else change - low  # the side that crosses the tolerance
    return seconds * (toward / gap) ** 2


def duration_text(seconds: float) -> str:
    from opskit.units import format_duration

    if seconds > 86400:
        return "more than a day"
    return format_duration(60 * math.ceil(seconds / 60) if seconds > 120 else 10 * math.ceil(seconds / 10))


def _onto(metric: str, shown: float, estimate: float, boot: np.ndarray) -> np.ndarray:
    """The resampled estimates moved onto the figure the run reports: an error rate by the same
    difference, the others by the same ratio (a percentile or a rate scales, it does not shift)."""
    if metric == "error_rate":
        return shown + (boot - estimate)
    with np.errstate(invalid="ignore", divide="ignore"):
        return shown * (boot / estimate)


def _seconds(metric: str, scope: Scope) -> int:
    if metric in ("p95", "p99"):
        return sum(1 for s in scope.timeline if s.requests > 0 and getattr(s, metric) is not None)
    if metric == "error_rate":
        return sum(1 for s in scope.timeline if s.requests > 0)
    return len(scope.timeline)


def _allowed(metric: str, tol: float, base_value: float) -> float:
    if metric == "error_rate":
        return max(tol * base_value, ERROR_RATE_FLOOR)
    return -tol if metric == "rps" else tol


def _aggregate(metric: str, scope: Scope) -> float | None:
    if metric == "error_rate":
        return scope.error_rate
    if metric == "rps":
        return scope.rps
    return scope.latency_ms.get(metric)


def _change(metric: str, cur: np.ndarray | float, old: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "error_rate":
            return np.asarray(cur) - np.asarray(old)
        return np.asarray(cur) / np.asarray(old) - 1
