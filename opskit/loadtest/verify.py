"""`loadtest verify`: the generator checked against analytic truth. A loopback server stalls STALL every
PERIOD (facts.md: coordinated omission); loaded in the open model, the measured p50/p90/p95/p99 must
match the schedule's analytic percentiles. `check` is the pure comparison; `run` starts the server and
runs the load test through the functions the command passes in. Prints nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import Interrupted, UsageError
from opskit.loadtest.driver import Outcome
from opskit.loadtest.request import HostFacts, RunParams, RunRequest, prepare
from opskit.loadtest.stallserver import StallSchedule
from opskit.runmodel import RunResults
from opskit.spec.schema import Spec

SLACK_MS = 20.0  # the burst of arrivals answered at each stall's end


@dataclass(frozen=True)
class PercentileCheck:
    percentile: str
    analytic_ms: float
    measured_ms: float | None
    ok: bool


@dataclass(frozen=True)
class VerifyReport:
    schedule: StallSchedule
    rate: float
    results: Path
    valid: bool
    invalid_reason: str | None
    percentiles: tuple[PercentileCheck, ...]

    @property
    def passed(self) -> bool:
        return all(r.ok for r in self.percentiles) and self.valid


def schedule(period: str, stall: str, service_time: str, tolerance: str) -> tuple[StallSchedule, float]:
    """The stall schedule and the tolerance (a fraction) from their texts."""
    from opskit.units import parse_duration, parse_percent

    try:
        sched = StallSchedule(parse_duration(period), parse_duration(stall), parse_duration(service_time))
        tol = parse_percent(tolerance) / 100.0
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if sched.period_s <= 0 or not 0 <= sched.stall_s < sched.period_s:
        raise UsageError("need a period above zero and a stall shorter than the period")
    return sched, tol


def check(sched: StallSchedule, latency_ms: dict[str, float | None], tol: float) -> tuple[PercentileCheck, ...]:
    rows = []
    for key, q in (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0)):
        truth = sched.analytic_percentile_ms(q)
        measured = latency_ms.get(key)
        ok = measured is not None and abs(measured - truth) <= tol * truth + SLACK_MS
        rows.append(PercentileCheck(key, round(truth, 3), measured, ok))
    return tuple(rows)


def run(spec: Spec, sched: StallSchedule, tol: float, *, rate: float, duration: str | None, processes: int,
        out_dir: Path | None, facts: Callable[[], HostFacts],
        execute: Callable[[RunRequest], tuple[Outcome, RunResults | None]],
        warn: Callable[[str], None]) -> VerifyReport:
    from opskit.loadtest.host import check_local
    from opskit.loadtest.stallserver import StallServer
    from opskit.units import format_duration

    run_for = duration or format_duration(2 * sched.period_s)
    with StallServer(sched) as server:
        req = prepare(spec, RunParams("http-get", host=server.url, rate=rate, duration=run_for, processes=processes,
                                      path="/", out_dir=out_dir), facts)
        check_local(req)
        periods = req.scenario.duration_s / sched.period_s
        if abs(periods - round(periods)) > 1e-6:
            warn("the duration is not a whole number of periods: the analytic percentiles assume it is")
        outcome, results = execute(req)
    if results is None or outcome.interrupted:
        raise Interrupted("interrupted")
    return VerifyReport(sched, rate, req.results_path, results.valid, results.invalid_reason,
                        check(sched, dict(results.total.latency_ms), tol))
