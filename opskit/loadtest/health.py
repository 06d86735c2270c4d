"""Is the load generator's own measurement trustworthy? (pure)

A run is invalid, not passed, when the generator was saturated (a process above 90% of a core
for 5 consecutive one-second samples: its timers fire late and its latencies include its own
queueing) or when it missed the intended arrival rate by more than 5% (dropped arrivals, or a
schedule it could not keep up with).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

CPU_LIMIT = 90.0
CPU_SUSTAIN_SAMPLES = 5
RATE_TOLERANCE = 0.05


@dataclass(frozen=True)
class Health:
    valid: bool
    invalid_reason: str | None
    cpu_max: float | None
    cpu_mean: float | None
    intended_rate: float | None
    achieved_rate: float


def longest_run_above(samples: list[float], limit: float) -> int:
    best = cur = 0
    for pct in samples:
        cur = cur + 1 if pct > limit else 0
        best = max(best, cur)
    return best


def assess(
    *,
    cpu: Iterable[tuple[str, list[float]]],
    duration_s: float,
    intended: int | None,
    sent: int,
    cpu_limit: float = CPU_LIMIT,
    sustain: int = CPU_SUSTAIN_SAMPLES,
    tolerance: float = RATE_TOLERANCE,
) -> Health:
    """intended: arrivals the schedule held for the time the run lasted (None in the closed model);
    sent: arrivals actually started."""
    reasons: list[str] = []
    all_samples: list[float] = []
    for proc, samples in cpu:
        all_samples += samples
        run = longest_run_above(samples, cpu_limit)
        if run >= sustain:
            reasons.append(f"load generator saturated: process {proc} above {cpu_limit:g}% CPU "
                           f"for {run} s (max {max(samples):.0f}%)")
    achieved = sent / duration_s if duration_s > 0 else 0.0
    intended_rate = intended / duration_s if intended is not None and duration_s > 0 else None
    if intended and intended > 0 and sent < intended * (1 - tolerance):
        reasons.append(f"load generator missed its rate: {sent} of {intended} intended arrivals sent "
                       f"({100 * (1 - sent / intended):.1f}% short, tolerance {100 * tolerance:g}%)")
    return Health(
        valid=not reasons,
        invalid_reason="; ".join(reasons) or None,
        cpu_max=round(max(all_samples), 1) if all_samples else None,
        cpu_mean=round(sum(all_samples) / len(all_samples), 1) if all_samples else None,
        intended_rate=round(intended_rate, 3) if intended_rate is not None else None,
        achieved_rate=round(achieved, 3),
    )
