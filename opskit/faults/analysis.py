"""The results' `fault` block from the run's per-second timeline (pure).

A second is within the SLO when its share of failed requests is at most 1 - availability and every
endpoint with a p95 objective answered that second's requests within it. Recovery is the time from the
fault's end to the first second from which RECOVERY_S such seconds follow one another; null when that never
happens before the run ends. The error budget spent is the share of the SLO window's budget (window x the
run's request rate x (1 - availability)) that the run's failures used: the figure burn-rate alerts page on
(2% of a 30-day budget in an hour)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opskit.runmodel import Fault, Second

RECOVERY_S = 5


@dataclass(frozen=True)
class Objectives:
    availability: float  # a fraction: 0.999
    p95_ms: Mapping[str, float]  # endpoint ("GET /api/assets") -> p95 objective
    window_s: float  # the SLO period the budget is counted over


@dataclass(frozen=True)
class Timing:
    """When the fault was in force (told by the CLI), and what was done."""

    kind: str
    injected_at_s: float | None
    cleared_at_s: float | None
    detail: str | None = None
    ramp_s: float | None = None  # from the injection's start until the fault was in force
    held_bytes: int | None = None  # memory-pressure: bytes resident once in force

    @property
    def in_force_at_s(self) -> float | None:
        """When the fault was in force: the seconds of "during" measurements start here."""
        return None if self.injected_at_s is None else self.injected_at_s + (self.ramp_s or 0.0)


def ok_second(row: Second, endpoint_rows: Mapping[str, Second], objectives: Objectives) -> bool:
    if row.requests and row.errors / row.requests > 1.0 - objectives.availability + 1e-12:
        return False
    for name, limit in objectives.p95_ms.items():
        ep = endpoint_rows.get(name)
        if ep is not None and ep.requests and ep.p95 is not None and ep.p95 > limit:
            return False
    return True


def recovery(timeline: Sequence[Second], endpoints: Mapping[str, Sequence[Second]], cleared_at_s: float,
             objectives: Objectives) -> float | None:
    by_t = {name: {s.t: s for s in rows} for name, rows in endpoints.items()}
    after = [s for s in sorted(timeline, key=lambda s: s.t) if s.t >= math.floor(cleared_at_s)]
    for i, row in enumerate(after):
        window = after[i:i + RECOVERY_S]
        if len(window) < RECOVERY_S or window[-1].t - window[0].t != RECOVERY_S - 1:
            continue
        if all(ok_second(s, {n: rows[s.t] for n, rows in by_t.items() if s.t in rows}, objectives)
               for s in window):
            return round(max(row.t - cleared_at_s, 0.0), 3)
    return None


def budget_spent(requests: int, failures: int, duration_s: float, objectives: Objectives) -> float | None:
    if not requests or duration_s <= 0 or objectives.availability >= 1.0:
        return None
    budget = (1.0 - objectives.availability) * requests / duration_s * objectives.window_s
    return round(failures / budget, 9)


def analyse(window: Timing, timeline: Sequence[Second], endpoints: Mapping[str, Sequence[Second]], *,
            objectives: Objectives, requests: int, failures: int, duration_s: float,
            p95_before_ms: float | None, p95_during_ms: float | None,
            writes: tuple[int, int] | None) -> Fault:
    """writes: (acknowledged, lost), None when they could not be checked."""
    start = math.floor(window.injected_at_s) if window.injected_at_s is not None else None
    end = math.floor(window.cleared_at_s) if window.cleared_at_s is not None else None
    during = after = 0
    for s in timeline:
        if start is None or s.t < start:
            continue
        if end is None or s.t < end:
            during += s.errors
        else:
            after += s.errors
    return Fault(
        kind=window.kind, injected_at_s=window.injected_at_s, cleared_at_s=window.cleared_at_s,
        errors_during=during, errors_after=after,
        error_budget_spent=budget_spent(requests, failures, duration_s, objectives),
        p95_before_ms=p95_before_ms, p95_during_ms=p95_during_ms,
        recovery_s=recovery(timeline, endpoints, window.cleared_at_s, objectives)
        if window.cleared_at_s is not None else None,
        acknowledged_writes=writes[0] if writes else None, lost_writes=writes[1] if writes else None,
        detail=window.detail, ramp_s=window.ramp_s, held_bytes=window.held_bytes)
