"""The capacity probe's search for the highest arrival rate a service sustains within its SLO.

A geometric ramp until a step fails, then bisection (geometric midpoints) until the passing and the failing
rate are within `precision` of each other, then the boundary is run once more to confirm it. Pure: the step
runner that really loads the service, and the reporter that shows progress, are passed in.

A step fails, in this order of cause:
  generator   the load generator itself fell short (CPU, loop lag): the search stops there, and the answer is
              a lower bound ("capacity >= X, generator-bound"), never a knee;
  throughput  completions < 95% of the offered rate, or in-flight requests / latency still growing at the
              step's end: the service is saturated (its queue builds), whatever the latency says yet;
  errors      the error rate is above the error budget;
  slo:<m>     an SLO criterion (p95 < 200ms, ...) does not hold.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from opskit.gate.criteria import Criterion

Phase = Literal["ramp", "descend", "bisect", "confirm"]
PASS = "pass"
COMPLETION_MIN = 0.95


@dataclass(frozen=True)
class StepMeasure:
    """What one step at one offered rate measured (latencies of successful requests, from intended start)."""

    rate: float  # offered req/s
    achieved: float  # completed req/s
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    error_rate: float  # a fraction
    in_flight_max: int
    requests: int
    growing: bool = False  # in-flight or latency still rising at the step's end
    generator_bound: bool = False  # the generator, not the service, fell short
    results: str | None = None  # where the step's results.json is, if the runner keeps one
    cpu_pct: float | None = None  # the service's CPU over the step, percent of its cores, if measured
    memory_pct: float | None = None  # the service's memory, percent of the host's, if measured
    users: int | None = None  # closed model: the step's concurrent users

    def metric(self, name: str) -> float | None:
        return {"p50": self.p50_ms, "p95": self.p95_ms, "p99": self.p99_ms, "error_rate": self.error_rate,
                "rps": self.achieved, "cpu_pct": self.cpu_pct, "memory_pct": self.memory_pct}.get(name)


@dataclass(frozen=True)
class ProbeStep:
    measure: StepMeasure
    verdict: str  # "pass", or why the step failed: generator | throughput | errors | slo:<metric>
    phase: Phase
    why: str = ""  # the failing figure, for people


@dataclass(frozen=True)
class ProbeResult:
    max_rate_within_slo: float | None  # None: not even the lowest rate tried held the SLO
    saturation_rate: float  # the highest completed req/s seen in any step
    limited_by: str  # slo:<metric> | errors | throughput | generator | max_rate
    interval: tuple[float, float | None]  # (highest passing, lowest failing) offered rate
    steps: list[ProbeStep]
    notes: list[str] = field(default_factory=list)

    @property
    def lower_bound_only(self) -> bool:
        """The answer is "at least this much": the generator or --max-rate stopped the search first."""
        return self.limited_by in ("generator", "max_rate")


class ProbeReporter(Protocol):
    def step(self, index: int, step: ProbeStep) -> None: ...


def judge(m: StepMeasure, slo: Sequence[Criterion], error_budget: float) -> tuple[str, str]:
    """(verdict, why) for one step."""
    if m.generator_bound:
        return "generator", "the load generator could not offer the rate"
    if m.rate > 0 and m.achieved < COMPLETION_MIN * m.rate:
        return "throughput", f"completed {m.achieved:,.1f} of {m.rate:,.1f} req/s offered"
    if m.growing:
        return "throughput", "in-flight requests were still growing at the step's end"
    if m.error_rate > error_budget:
        return "errors", f"error rate {m.error_rate:.2%} above the {error_budget:.2%} budget"
    for c in slo:
        value = m.metric(c.metric)
        if value is None or not math.isfinite(value):
            return f"slo:{c.metric}", f"no {c.metric} measured (no successful request)"
        if not c.holds(value):
            shown = f"{value:.2%}" if c.metric == "error_rate" else f"{value:,.1f} ms"
            return f"slo:{c.metric}", f"{c.metric} {shown}, SLO {c.limit_text}"
    return PASS, ""


def search(
    run_step: Callable[[float], StepMeasure],
    *,
    start: float,
    max_rate: float,
    slo: Sequence[Criterion],
    error_budget: float,
    growth: float = 2.0,
    precision: float = 0.05,
    max_steps: int = 24,
    min_rate: float | None = None,
    reporter: ProbeReporter | None = None,
) -> ProbeResult:
    """Find the highest offered rate whose step passes. `run_step(rate)` loads the service for one step."""
    if not (0 < start <= max_rate) or growth <= 1 or precision <= 0:
        raise ValueError("need 0 < start <= max_rate, growth > 1 and precision > 0")
    state = _Search(run_step, slo, error_budget, reporter, max_steps)
    try:
        return state.find(start, max_rate, growth, precision,
                          min_rate if min_rate is not None else start / growth**5)
    except _GeneratorBound:
        state.notes.append(f"capacity >= {state.lo or 0:,.1f} req/s (generator-bound): the load generator could "
                           "not offer more, so this is a lower bound, not the service's knee")
        state.hi = None
        return state.done("generator")


class _GeneratorBound(Exception):
    """A step the generator could not offer: the search ends there with a lower bound."""


@dataclass
class _Search:
    """The search's state: every step run, the highest passing (lo) and lowest failing (hi) rate."""

    run_step: Callable[[float], StepMeasure]
    slo: Sequence[Criterion]
    error_budget: float
    reporter: ProbeReporter | None
    max_steps: int
    steps: list[ProbeStep] = field(default_factory=list)
    passed: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lo: float | None = None
    hi: float | None = None
    reason: str = "max_rate"

    @property
    def spent(self) -> bool:
        return len(self.steps) >= self.max_steps

    def at(self, rate: float, phase: Phase) -> ProbeStep:
        """Run one step; a pass raises lo to it, a failure lowers hi to it (a generator-bound one ends the search)."""
        m = self.run_step(rate)
        verdict, why = judge(m, self.slo, self.error_budget)
        st = ProbeStep(m, verdict, phase, why)
        self.steps.append(st)
        if self.reporter is not None:
            self.reporter.step(len(self.steps), st)
        if verdict == "generator":
            raise _GeneratorBound
        if verdict == PASS:
            self.passed.append(rate)
            self.lo = rate
        else:
            self.hi, self.reason = rate, verdict
        return st

    def done(self, limited_by: str) -> ProbeResult:
        saturation = max((s.measure.achieved for s in self.steps), default=0.0)
        return ProbeResult(self.lo, saturation, limited_by, (self.lo or 0.0, self.hi), self.steps, self.notes)

    def find(self, start: float, max_rate: float, growth: float, precision: float, floor: float) -> ProbeResult:
        rate = start
        # ramp up geometrically until a step fails or --max-rate passes
        while self.at(rate, "ramp").verdict == PASS:
            if rate >= max_rate or self.spent:
                self.notes.append(f"every step up to {rate:,.1f} req/s held the SLO: capacity >= {rate:,.1f} req/s "
                                  "(raise --max-rate to search further)")
                return self.done("max_rate")
            rate = min(rate * growth, max_rate)
        # the first step failed: come down until one passes
        while self.lo is None:
            rate /= growth
            if rate < floor or self.spent:
                self.notes.append(f"no step held the SLO, down to {self.hi:,.3g} req/s")
                return self.done(self.reason)
            self.at(rate, "descend")
        # bisect between the highest pass and the lowest failure, then repeat the boundary: one that fails its
        # repeat moves down to the next passing rate, and is bisected and repeated again
        confirmed = False
        while not self.spent:
            lo, hi = self.lo, self.hi
            assert lo is not None and hi is not None
            if hi / lo - 1 > precision:
                self.at(math.sqrt(lo * hi), "bisect")
                continue
            st = self.at(lo, "confirm")
            if st.verdict == PASS:
                confirmed = True
                break
            self.notes.append(f"{lo:,.1f} req/s passed once but not on the repeat ({st.why}): the boundary moved down")
            below = [r for r in self.passed if r < lo]
            self.lo = max(below) if below else None
            if self.lo is None:
                return self.done(self.reason)
        assert self.lo is not None and self.hi is not None
        if self.hi / self.lo - 1 > precision:
            self.notes.append(f"stopped after {len(self.steps)} steps with the boundary between {self.lo:,.1f} and "
                              f"{self.hi:,.1f} req/s")
        elif not confirmed:
            self.notes.append(f"stopped after {len(self.steps)} steps before {self.lo:,.1f} req/s was confirmed by "
                              "a repeat")
        return self.done(self.reason)
