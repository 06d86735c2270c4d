"""Metric-gated checks (Argo Rollouts analysis style) and preconditions, read through metrics sources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opskit.metrics.base import MetricsSource
from opskit.playbooks.checks import Comparison, Verdict
from opskit.playbooks.schema import VerifyCheck
from opskit.playbooks.sources import measure


@dataclass(frozen=True)
class Sampled:
    n: int
    value: float | None
    verdict: Verdict
    detail: str


def run_check(
    check: VerifyCheck,
    source: MetricsSource,
    comparison: Comparison,
    query: str | None,
    *,
    clock: Callable[[], dt.datetime],
    wait: Callable[[float], bool],
    record: Callable[[Sampled], None],
) -> tuple[Verdict | None, str]:
    """Measure `count` times `interval` apart. fail: more than failure_limit failures; inconclusive:
    more than inconclusive_limit empty/NaN readings; pass otherwise. None: interrupted while waiting."""
    if check.initial_delay and wait(check.initial_delay):
        return None, "interrupted"
    failures = inconclusive = 0
    for n in range(1, check.count + 1):
        value, detail = measure(source, check.metric, query, clock())
        verdict = comparison.judge(value)
        record(Sampled(n, value, verdict, detail))
        if verdict == "fail":
            failures += 1
            if failures > check.failure_limit:
                return "fail", f"{_show(value)} is not {comparison.text} ({failures} failed of {n})"
        elif verdict == "inconclusive":
            inconclusive += 1
            if inconclusive > check.inconclusive_limit:
                return "inconclusive", f"no usable reading ({detail}); inconclusive never passes"
        if n < check.count and wait(check.interval):
            return None, "interrupted"
    return "pass", f"{check.count - failures - inconclusive}/{check.count} readings {comparison.text}"


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
