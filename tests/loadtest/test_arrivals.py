from __future__ import annotations

import pytest

from opskit.loadtest.arrivals import (
    TICK_MAX,
    TICK_MIN,
    RateStage,
    arrivals_until,
    auto_tick,
    intended_times,
    rate_at,
    total_arrivals,
)


def test_constant_rate_is_evenly_spaced() -> None:
    times = list(intended_times([RateStage(2.0, 10.0, 10.0)]))
    assert len(times) == 20
    assert times[:3] == pytest.approx([0.0, 0.1, 0.2])
    assert times[-1] == pytest.approx(1.9)


def test_ramp_follows_the_integral_of_the_rate() -> None:
    stages = [RateStage(10.0, 0.0, 100.0)]  # N(t) = 5 t^2, 500 arrivals
    times = list(intended_times(stages))
    assert len(times) == total_arrivals(stages) == 500
    assert times[125] == pytest.approx(5.0)  # N(5) = 125
    assert arrivals_until(stages, 5.0) == 125
    assert rate_at(stages, 2.5) == pytest.approx(25.0)


def test_split_across_generators_is_exactly_the_whole_schedule() -> None:
    stages = [RateStage(3.0, 7.0, 7.0), RateStage(2.0, 7.0, 40.0), RateStage(1.0, 0.0, 0.0), RateStage(2.0, 5.0, 5.0)]
    whole = list(intended_times(stages))
    parts = [list(intended_times(stages, offset=i, step=3)) for i in range(3)]
    assert sorted(t for p in parts for t in p) == pytest.approx(whole)
    assert [arrivals_until(stages, 4.0, offset=i, step=3) for i in range(3)] == [
        sum(1 for t in p if t < 4.0) for p in parts]
    assert not any(5.0 <= t < 6.0 for t in whole)  # the zero-rate stage is a pause


def test_bad_split_is_refused() -> None:
    with pytest.raises(ValueError):
        list(intended_times([RateStage(1, 1, 1)], offset=2, step=2))


@pytest.mark.parametrize(("rate", "tick_ms"), [
    (50, 1.0), (1000, 1.0), (1500, 1.5), (2000, 2.0), (4000, 4.0), (5000, 5.0), (50_000, 5.0)])
def test_auto_tick_grows_with_the_rate_between_its_bounds(rate: float, tick_ms: float) -> None:
    assert auto_tick(1.0 / rate) * 1000 == pytest.approx(tick_ms)
    assert TICK_MIN <= auto_tick(1.0 / rate) <= TICK_MAX
    assert auto_tick(0.0) == TICK_MAX  # arrivals due at the same instant
