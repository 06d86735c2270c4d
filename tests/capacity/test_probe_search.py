"""The probe's search against services whose behaviour is known exactly (a model of a queue, pure): where
it stops, why, and how many steps it takes. The same search against real loopback servers of known
capacity is tested with real load elsewhere."""

from __future__ import annotations

import pytest

from opskit.capacity.probe import PASS, ProbeStep, StepMeasure, judge, search
from opskit.gate.criteria import parse


def queue(capacity: float, base_ms: float = 5.0, errors_above: float | None = None,
          generator_max: float | None = None, calls: list[float] | None = None):
    """M/M/1-like: p95 = base / (1 - rho) below capacity; at or past it completions flatten and the queue grows."""

    def run(rate: float) -> StepMeasure:
        if calls is not None:
            calls.append(rate)
        if generator_max is not None and rate > generator_max:
            return StepMeasure(rate, generator_max, 1, 2, 3, 0.0, 1, int(generator_max), generator_bound=True)
        rho = rate / capacity
        if rho >= 1:
            return StepMeasure(rate, capacity, 500, 2000, 3000, 0.0, 512, int(capacity), growing=True)
        p95 = base_ms / (1 - rho)
        err = 0.05 if errors_above is not None and rate > errors_above else 0.0
        return StepMeasure(rate, rate * (1 - err), p95 / 2, p95, p95 * 1.5, err, int(rho * 4) + 1, int(rate))

    return run


SLO = [parse("p95 < 100ms")]


def test_finds_the_slo_bound_rate_within_precision():
    # p95 = 5 / (1 - r/1000) < 100 ms  <=>  r < 950 req/s
    res = search(queue(1000), start=10, max_rate=100_000, slo=SLO, error_budget=0.01)
    assert res.limited_by in ("slo:p95", "throughput")
    lo, hi = res.interval
    assert res.max_rate_within_slo == lo and hi is not None
    assert lo < 950 <= hi * 1.0001 and hi / lo - 1 <= 0.05
    assert lo > 0.9 * 950
    assert res.saturation_rate == pytest.approx(1000)  # the failing ramp step completed the capacity
    phases = [s.phase for s in res.steps]
    assert phases[0] == "ramp" and "bisect" in phases and phases[-1] == "confirm"
    assert res.steps[-1].measure.rate == lo and res.steps[-1].verdict == PASS


def test_saturation_before_the_slo_is_throughput():
    res = search(queue(300, base_ms=1), start=50, max_rate=10_000, slo=[parse("p95 < 1s")], error_budget=0.01)
    assert res.limited_by == "throughput"
    assert res.max_rate_within_slo is not None and 285 <= res.max_rate_within_slo < 300


def test_errors_bound_the_rate():
    res = search(queue(10_000, errors_above=400), start=100, max_rate=10_000, slo=SLO, error_budget=0.01)
    assert res.limited_by == "errors" and 380 <= res.max_rate_within_slo <= 400


def test_a_starved_generator_is_a_lower_bound_never_a_knee():
    calls: list[float] = []
    res = search(queue(5000, generator_max=700, calls=calls), start=100, max_rate=10_000, slo=SLO,
                 error_budget=0.01)
    assert res.limited_by == "generator" and res.lower_bound_only
    assert res.max_rate_within_slo == 400 and res.interval == (400, None)
    assert calls == [100, 200, 400, 800]  # it stops at the first generator-bound step
    assert "generator-bound" in res.notes[0]


def test_max_rate_reached_says_at_least():
    res = search(queue(1e9), start=100, max_rate=1000, slo=SLO, error_budget=0.01)
    assert res.limited_by == "max_rate" and res.max_rate_within_slo == 1000 and res.interval == (1000, None)
    assert [s.measure.rate for s in res.steps] == [100, 200, 400, 800, 1000]


def test_first_step_failing_searches_downwards():
    res = search(queue(100), start=1000, max_rate=10_000, slo=SLO, error_budget=0.01)
    assert res.steps[1].phase == "descend"
    assert res.max_rate_within_slo is not None and 90 <= res.max_rate_within_slo < 95


def test_nothing_holds_gives_none():
    res = search(queue(0.001), start=10, max_rate=100, slo=SLO, error_budget=0.01)
    assert res.max_rate_within_slo is None and res.limited_by == "throughput"
    assert "no step held the SLO" in res.notes[0]


def test_a_boundary_that_does_not_repeat_moves_down():
    seen: dict[float, int] = {}
    inner = queue(1000)

    def flaky(rate: float) -> StepMeasure:
        seen[rate] = seen.get(rate, 0) + 1
        m = inner(rate)
        if rate > 800 and seen[rate] == 2:  # the confirm run of a high boundary breaks the SLO
            return StepMeasure(rate, rate, 50, 150, 200, 0.0, 5, int(rate))
        return m

    res = search(flaky, start=100, max_rate=10_000, slo=SLO, error_budget=0.01)
    confirm = next(s for s in res.steps if s.phase == "confirm")
    assert confirm.verdict == "slo:p95" and any("not on the repeat" in n for n in res.notes)
    # the answer falls below the rate that did not repeat; every rate above 800 fails its repeat here, so the
    # boundary keeps moving down until one repeats: 800, and the last repeat that failed bounds it
    assert res.max_rate_within_slo == 800
    failed = [s.measure.rate for s in res.steps if s.phase == "confirm" and s.verdict != PASS]
    assert res.interval[1] == failed[-1] and res.steps[-1].phase == "confirm" and res.steps[-1].verdict == PASS


def test_a_boundary_that_moved_down_is_confirmed_again():
    # one noisy moment: the first repeat of the boundary fails; the boundary it falls back to, once bisected,
    # is itself repeated before it is the answer (an answer seen passing once is not confirmed)
    inner = queue(1000)
    confirms: list[float] = []

    def noisy_once(rate: float) -> StepMeasure:
        m = inner(rate)
        if rate in calls and not confirms:
            confirms.append(rate)
            return StepMeasure(rate, rate, 50, 150, 200, 0.0, 5, int(rate))
        calls.append(rate)
        return m

    calls: list[float] = []
    res = search(noisy_once, start=100, max_rate=10_000, slo=SLO, error_budget=0.01)
    answer = res.max_rate_within_slo
    assert answer is not None and answer < confirms[0]
    assert [s.verdict for s in res.steps if s.measure.rate == answer].count(PASS) >= 2
    assert res.steps[-1].phase == "confirm" and res.steps[-1].measure.rate == answer
    lo, hi = res.interval
    assert lo == answer and hi is not None and hi / lo - 1 <= 0.05


def test_judge_order_and_words():
    m = StepMeasure(100, 90, 10, 300, 400, 0.2, 10, 900)
    assert judge(m, SLO, 0.01) == ("throughput", "completed 90.0 of 100.0 req/s offered")
    m = StepMeasure(100, 99, 10, 300, 400, 0.2, 10, 990)
    assert judge(m, SLO, 0.01)[0] == "errors"
    m = StepMeasure(100, 99, 10, 300, 400, 0.0, 10, 990)
    assert judge(m, SLO, 0.01) == ("slo:p95", "p95 300.0 ms, SLO < 100ms")
    m = StepMeasure(100, 99, None, None, None, 0.0, 10, 0)
    assert judge(m, SLO, 0.01)[0] == "slo:p95"
    assert judge(StepMeasure(100, 99, 1, 2, 3, 0.0, 1, 990), SLO, 0.01) == (PASS, "")


def test_reporter_sees_every_step_and_bad_arguments_are_refused():
    got: list[tuple[int, ProbeStep]] = []

    class R:
        def step(self, index: int, step: ProbeStep) -> None:
            got.append((index, step))

    res = search(queue(1000), start=10, max_rate=100_000, slo=SLO, error_budget=0.01, reporter=R())
    assert [i for i, _ in got] == list(range(1, len(res.steps) + 1))
    with pytest.raises(ValueError):
        search(queue(1000), start=100, max_rate=10, slo=SLO, error_budget=0.01)
