"""Comparing a run with a baseline run of the same scenario: a real regression or noise?

For each endpoint and metric (p95, p99, error_rate, rps) a statistic is computed from the
per-second timeline of both runs, and a bootstrap gives a confidence interval on the change:

- p95/p99: the request-weighted mean of the per-second percentile; change is relative (+12%).
- error_rate: errors / requests; change is absolute, and allowed to grow by tolerance x baseline
  or ERROR_RATE_FLOOR (0.1 percentage point), whichever is larger, so 0 -> 1 error is not a regression.
- rps: mean per-second throughput; a drop is the regression.

Verdict: fail when the whole interval is beyond the tolerance (a regression proven at the
confidence level), pass when the whole interval is within it, inconclusive otherwise.

Seconds of a load test are autocorrelated (a GC pause or a compaction spans several), so the
resampling is a circular block bootstrap rather than an i.i.d. one, which would make the interval
too narrow and call noise a regression. The RNG is seeded from the endpoint and metric: the same
two files always give the same answer.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from opskit.runmodel import RunResults, Scope

METRICS = ("p95", "p99", "error_rate", "rps")
ERROR_RATE_FLOOR = 0.001
MIN_SECONDS = 5
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


def compare_runs(current: RunResults, base: RunResults, tolerance_pct: float, *,
                 resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> list[Comparison]:
    """Every endpoint of either run, then the whole run ("(all)"), x METRICS."""
    check_comparable(current, base)
    tol = tolerance_pct / 100
    pairs: list[tuple[str, Scope | None, Scope | None]] = [
        (name, current.endpoints.get(name), base.endpoints.get(name))
        for name in sorted(set(current.endpoints) | set(base.endpoints))]
    pairs.append(("(all)", current.total, base.total))
    out = []
    for name, cur, old in pairs:
        for metric in METRICS:
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
    """One endpoint and metric. `block` overrides the resampling block length (1 = i.i.d. bootstrap,
    for comparison in benchmarks/bench_gate.py)."""
    a, b = _columns(metric, cur), _columns(metric, old)
    shown_cur, shown_old = _aggregate(metric, cur), _aggregate(metric, old)
    point_old = _stat(metric, *b) if len(b[0]) else math.nan
    allowed = _allowed(metric, tol, point_old if math.isfinite(point_old) else 0.0)
    if metric in ("p95", "p99") and cur.requests and old.requests and not (len(a[0]) and len(b[0])):
        side = "this run" if not len(a[0]) else "the baseline"
        return Comparison(name, metric, "inconclusive", shown_old, shown_cur, None, None, None, allowed,
                          f"the per-second timeline of {side} has no {metric} column to compare")
    if len(a[0]) < MIN_SECONDS or len(b[0]) < MIN_SECONDS:
        return Comparison(name, metric, "inconclusive", shown_old, shown_cur, None, None, None, allowed,
                          f"too few seconds with traffic to tell noise from change "
                          f"({len(a[0])} now, {len(b[0])} in the baseline; need {MIN_SECONDS})")
    rng = np.random.default_rng(zlib.crc32(f"{name}|{metric}".encode()))
    boot_cur = _bootstrap(metric, a, rng, resamples, block)
    boot_old = _bootstrap(metric, b, rng, resamples, block)
    point_cur = _stat(metric, *a)
    change = _change(metric, point_cur, point_old)
    changes = _change(metric, boot_cur, boot_old)
    changes = changes[np.isfinite(changes)]
    if point_old == 0 and metric != "error_rate":
        return Comparison(name, metric, "inconclusive", shown_old, shown_cur, None, None, None, allowed,
                          f"the baseline's {metric} is 0: no relative change to measure")
    if len(changes) < resamples // 2:
        return Comparison(name, metric, "inconclusive", shown_old, shown_cur, float(change), None, None,
                          allowed, "the timeline is too sparse to resample")
    alpha = (1 - confidence) / 2
    low, high = (float(x) for x in np.quantile(changes, [alpha, 1 - alpha]))
    status: ComparisonStatus
    if metric == "rps":  # lower is worse
        status = "fail" if high < allowed else "pass" if low >= allowed else "inconclusive"
    else:
        status = "fail" if low > allowed else "pass" if high <= allowed else "inconclusive"
    return Comparison(name, metric, status, shown_old, shown_cur, float(change), low, high, allowed)


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


def _columns(metric: str, scope: Scope) -> tuple[np.ndarray, np.ndarray]:
    """(values, weights) per second: (percentile, requests), (errors, requests) or (rps, 1)."""
    if metric in ("p95", "p99"):
        rows = [(getattr(s, metric), s.requests) for s in scope.timeline
                if s.requests > 0 and getattr(s, metric) is not None]
    elif metric == "error_rate":
        rows = [(s.errors, s.requests) for s in scope.timeline if s.requests > 0]
    else:
        rows = [(s.rps if s.rps is not None else s.requests, 1) for s in scope.timeline]
    if not rows:
        return np.zeros(0), np.zeros(0)
    arr = np.asarray(rows, dtype=float)
    return arr[:, 0], arr[:, 1]


def _stat(metric: str, values: np.ndarray, weights: np.ndarray) -> float:
    if metric == "error_rate":  # values are error counts, weights request counts
        return float(values.sum() / weights.sum())
    return float((values * weights).sum() / weights.sum())


def _bootstrap(metric: str, cols: tuple[np.ndarray, np.ndarray], rng: np.random.Generator,
               resamples: int, block: int | None = None) -> np.ndarray:
    """The statistic of `resamples` circular-block resamples. Every statistic is a ratio of sums, so
    each resample only needs the sums over its blocks: precompute the sum of every circular block
    once, then draw block starts (an hour-long timeline costs blocks, not seconds, per resample)."""
    values, weights = cols
    n = len(values)
    block = block or max(1, round(n ** (1 / 3)))  # the usual n^(1/3) rule for block length
    blocks = -(-n // block)
    top = values if metric == "error_rate" else values * weights  # errors, or percentile x requests
    ring = np.arange(n)[:, None] + np.arange(block)
    top_sums = top[ring % n].sum(axis=1)
    weight_sums = weights[ring % n].sum(axis=1)
    starts = rng.integers(0, n, size=(resamples, blocks))
    with np.errstate(invalid="ignore", divide="ignore"):
        return top_sums[starts].sum(axis=1) / weight_sums[starts].sum(axis=1)


def _change(metric: str, cur: np.ndarray | float, old: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        if metric == "error_rate":
            return np.asarray(cur) - np.asarray(old)
        return np.asarray(cur) / np.asarray(old) - 1
