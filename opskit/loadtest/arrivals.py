"""Open-model arrival schedules (pure): when each request is *intended* to start.

A schedule is a list of stages, each a constant or linearly ramping arrival rate, like k6's
constant-arrival-rate and ramping-arrival-rate executors. Arrival k (0-based) happens at the time
t where the cumulative number of arrivals N(t) reaches k, so the schedule is exact for any rate
curve and can be split across n generators by taking every n-th arrival (k = i, i+n, i+2n, ...).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RateStage:
    duration_s: float
    start_rate: float  # arrivals per second at the start of the stage
    end_rate: float  # ... and at its end (== start_rate for a constant stage)

    def count(self, tau: float) -> float:
        """Arrivals during the first tau seconds of this stage."""
        slope = (self.end_rate - self.start_rate) / self.duration_s if self.duration_s else 0.0
        return self.start_rate * tau + slope * tau * tau / 2.0

    def time_of(self, c: float) -> float:
        """The tau at which count(tau) == c (c within the stage)."""
        r0 = self.start_rate
        a = (self.end_rate - r0) / (2.0 * self.duration_s) if self.duration_s else 0.0
        if abs(a) < 1e-12:
            return c / r0
        disc = max(r0 * r0 + 4.0 * a * c, 0.0)
        return (-r0 + math.sqrt(disc)) / (2.0 * a)


def total_arrivals(stages: Sequence[RateStage]) -> int:
    """How many arrivals the whole schedule holds (arrival k happens when N(t) == k, k >= 0)."""
    total = sum(s.count(s.duration_s) for s in stages)
    return int(math.ceil(total - 1e-9))


def arrivals_until(stages: Sequence[RateStage], t: float, *, offset: int = 0, step: int = 1) -> int:
    """How many of this generator's arrivals (k = offset + j*step) fall strictly before t."""
    n = _cumulative(stages, t)
    k_total = int(math.ceil(n - 1e-9))  # arrivals with k < N(t)
    if k_total <= offset:
        return 0
    return (k_total - offset + step - 1) // step


def _cumulative(stages: Sequence[RateStage], t: float) -> float:
    done, start = 0.0, 0.0
    for stage in stages:
        if t <= start + stage.duration_s:
            return done + stage.count(max(t - start, 0.0))
        done += stage.count(stage.duration_s)
        start += stage.duration_s
    return done


def intended_times(stages: Sequence[RateStage], *, offset: int = 0, step: int = 1) -> Iterator[float]:
    """Intended start times (seconds from the schedule's start) of arrivals k = offset, offset+step, ...

    Generator i of n uses offset=i, step=n: together the n generators produce exactly the schedule.
    """
    if step < 1 or not 0 <= offset < step:
        raise ValueError(f"need 0 <= offset < step, got offset={offset} step={step}")
    k = offset
    stage_start = 0.0
    before = 0.0  # arrivals completed in earlier stages
    for stage in stages:
        in_stage = stage.count(stage.duration_s)
        while k < before + in_stage - 1e-9:
            if stage.start_rate == 0 and stage.end_rate == 0:
                break
            yield stage_start + stage.time_of(k - before)
            k += step
        before += in_stage
        stage_start += stage.duration_s


def rate_at(stages: Sequence[RateStage], t: float) -> float:
    start = 0.0
    for stage in stages:
        if t < start + stage.duration_s:
            frac = (t - start) / stage.duration_s if stage.duration_s else 0.0
            return stage.start_rate + (stage.end_rate - stage.start_rate) * frac
        start += stage.duration_s
    return 0.0


# tick: auto. Dense arrivals wake the scheduler on a grid; its step grows with this process's arrival
# rate r: TICK_MIN up to 1,000/s, r x AUTO_TICK_S2 above (2 ms at 2,000/s, 4 ms at 4,000/s), at most
# TICK_MAX. Below ~1,000/s the generator is mostly idle, so arrivals go out within 1 ms; at high rates
# each wake sends ~r^2 x AUTO_TICK_S2 arrivals (16 at 4,000/s) and their sockets are served in the same
# event-loop passes, which is what keeps the generator's CPU per request near a closed loop's.
# The price is lateness, at most one step, and it is measured: every request is timed from its
# intended start, and the scheduling lag is in the timeline (lag_max_ms).
TICK_MIN = 0.001
TICK_MAX = 0.005
AUTO_TICK_S2 = 1e-6


def auto_tick(gap_s: float) -> float:
    """The grid step for arrivals gap_s apart (one process's schedule)."""
    if gap_s <= 0:
        return TICK_MAX
    return min(max(AUTO_TICK_S2 / gap_s, TICK_MIN), TICK_MAX)
