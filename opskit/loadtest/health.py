"""Is the load generator's own measurement trustworthy, and what limited the run? (pure)

A run is invalid, not passed, when the generator was saturated (a process above 90% of a core
for 5 consecutive one-second samples: its timers fire late and its latencies include its own
queueing) or when its loop fell behind the arrival schedule (more than 5% of the arrivals never reached,
or one sent more than a second late; in the closed model, its loop woke more than a second late),
or when requests failed for want of open files in the generator itself: `limited_by` is then
"generator". Arrivals dropped at the in-flight cap, or requests piling up in flight while the
generator is healthy, are the service's doing: the run is valid, `limited_by` is "service" (the
gate's answer is then "no"), and the percentiles leave the dropped arrivals out (a lower bound).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CPU_LIMIT = 90.0
CPU_SUSTAIN_SAMPLES = 5
RATE_TOLERANCE = 0.05
LAG_LIMIT_MS = 1000.0  # an arrival sent this late: the generator's loop, not the service, is behind
OUT_OF_FILES = "generator: too many open files"  # a failure kind: EMFILE in the generator, not the service


@dataclass(frozen=True)
class Health:
    valid: bool
    invalid_reason: str | None
    cpu_max: float | None
    cpu_mean: float | None
    intended_rate: float | None
    achieved_rate: float
    limited_by: str = "none"  # none | service | generator
    limited_reason: str | None = None  # why the service limited the run (the generator's is invalid_reason)


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
    dropped: int = 0,
    in_flight: Sequence[float] = (),
    scheduled_each: Sequence[float] | None = None,
    lag_max_ms: float | None = None,
    lag_limit_ms: float = LAG_LIMIT_MS,
    out_of_files: int = 0,
) -> Health:
    """intended: arrivals the schedule held for the time the run lasted (None in the closed model);
    sent: arrivals actually started; dropped: arrivals that found max_in_flight requests in flight;
    in_flight / scheduled_each: the most in flight, and the arrivals scheduled, in each second of the load
    (to see a queue still growing); lag_max_ms: the latest an arrival went out (open model) or the
    generator's loop woke (closed model); out_of_files: requests the generator failed itself (EMFILE)."""
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
    scheduled = sent + dropped
    if intended and intended > 0 and scheduled < intended * (1 - tolerance):
        # the loop itself did not reach its arrivals in time: the generator's limit, not the service's
        reasons.append(f"load generator missed its rate: {scheduled} of {intended} intended arrivals sent "
                       f"({100 * (1 - scheduled / intended):.1f}% short, tolerance {100 * tolerance:g}%)")
    if lag_max_ms is not None and lag_max_ms > lag_limit_ms and intended:
        reasons.append(f"load generator lagged: an arrival went out {lag_max_ms / 1000:,.1f} s after its intended "
                       f"time (limit {lag_limit_ms / 1000:g} s): its loop could not keep the schedule")
    elif lag_max_ms is not None and lag_max_ms > lag_limit_ms and intended is None:
        # closed model: users' requests, waits and timings all ran late with the loop (CPU starved or
        # blocked), so the latencies include the generator's own delay
        reasons.append(f"load generator lagged: its loop woke {lag_max_ms / 1000:,.1f} s late (limit "
                       f"{lag_limit_ms / 1000:g} s): the users' timings include the generator's own delay")
    if out_of_files:
        reasons.append(f"load generator out of open files: {out_of_files} requests failed with EMFILE in the "
                       f"generator itself (its per-process limit; more --processes share the connections)")
    limited, why = ("generator", None) if reasons else ("none", None)
    if not reasons and intended:
        if dropped > intended * tolerance:
            limited, why = "service", (f"the service did not keep up: {dropped} of {intended} arrivals found the "
                                       f"in-flight cap reached and were dropped")
        elif queue_growing(in_flight, scheduled_each):
            limited, why = "service", "the service did not keep up: requests in flight kept growing to the end"
    return Health(
        valid=not reasons,
        invalid_reason="; ".join(reasons) or None,
        cpu_max=round(max(all_samples), 1) if all_samples else None,
        cpu_mean=round(sum(all_samples) / len(all_samples), 1) if all_samples else None,
        intended_rate=round(intended_rate, 3) if intended_rate is not None else None,
        achieved_rate=round(achieved, 3),
        limited_by=limited,
        limited_reason=why,
    )


def queue_growing(in_flight: Sequence[float], scheduled: Sequence[float] | None = None, *, factor: float = 1.5,
                  floor: float = 4.0) -> bool:
    """Requests in flight still rising at the end of the load: the last third's mean well above the middle
    third's, by more than a few requests and (with the arrivals scheduled each second) by more than a
    quarter second of arrivals, in flight taken per arrival so a rising rate served in time is no queue.
    Two rows a third at least: one second against another is noise on a busy machine."""
    n = len(in_flight) // 3
    if n < 2:
        return False

    def third(values: Sequence[float], k: int) -> float:
        return sum(values[k * n:(k + 1) * n] if k < 2 else values[-n:]) / n

    middle, last = third(in_flight, 1), third(in_flight, 2)
    if last - middle < floor:
        return False
    if scheduled is not None and len(scheduled) == len(in_flight):
        if last - middle < 0.25 * third(scheduled, 2):
            return False
        per = [f / s if s > 0 else 0.0 for f, s in zip(in_flight, scheduled, strict=True)]
        return third(per, 2) > factor * third(per, 1)
    return last > factor * middle
