"""Stopping a running load test early, like k6's abortOnFail with delayAbortEval.

The load test hands `check` what it knows so far (results.json shape, with the timeline); the
watcher says why to stop, or None. Nothing is judged before the grace period has passed (the
warm-up would trip latency criteria), and missing data never aborts: an endpoint not hit yet or
a `for 30s` window not filled yet is "not yet", not a failure. Pure: no clock, the snapshot's
own timeline is the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opskit.gate.criteria import Criterion, parse
from opskit.gate.evaluate import Sourced, judge
from opskit.runmodel import UnreadableResults, from_snapshot


class AbortWatcher:
    def __init__(self, criteria: list[str], grace_s: float) -> None:
        """Raises CriterionError (a ValueError with the column) for a malformed criterion."""
        if grace_s < 0:
            raise ValueError(f"the grace period cannot be negative, got {grace_s:g}s")
        self.criteria: list[Criterion] = [parse(text) for text in criteria]
        self.grace_s = grace_s

    def check(self, snapshot: Mapping[str, Any]) -> str | None:
        if not self.criteria:
            return None
        elapsed = elapsed_s(snapshot)
        if elapsed < self.grace_s:
            return None
        try:
            run = from_snapshot(snapshot)
        except UnreadableResults:
            return None  # the final gate judges the finished file; a bad snapshot is no reason to stop
        for criterion in self.criteria:
            verdict = judge(Sourced(criterion, "gate.abort_on_fail"), run)
            if verdict.status == "fail":
                return (f"abort_on_fail criterion failed after {elapsed:g}s: {criterion.text} "
                        f"(measured {verdict.measured_text})")
        return None


def elapsed_s(snapshot: Mapping[str, Any]) -> float:
    """Seconds of run covered by the snapshot: run.elapsed_s or run.duration_s, else one past the last
    timeline t."""
    run = snapshot.get("run")
    if isinstance(run, dict):
        for key in ("elapsed_s", "duration_s"):
            if isinstance(run.get(key), int | float) and not isinstance(run.get(key), bool):
                return float(run[key])
    rows = snapshot.get("timeline")
    times = [row["t"] for row in rows or [] if isinstance(row, dict) and isinstance(row.get("t"), int | float)]
    return float(max(times) + 1) if times else 0.0
