"""Threshold mode (hysteresis band, `for` windows) and target mode per row, on synthetic series."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from opskit.metrics.base import Sample, Series
from opskit.scaling.rows import evaluate_row

from .conftest import NOW, series, th

BAND = {"scale_up": "70%", "scale_down": "20%"}


def test_in_band_holds_with_the_value_and_limits_in_the_reason():
    d = evaluate_row(th(**BAND), series([50]), now=NOW, current=3)
    assert (d.decision, d.value, d.proposed, d.pending) == ("hold", 50.0, 3, False)
    assert "50%" in d.reason and "20%" in d.reason and "70%" in d.reason


def test_above_without_window_scales_up_now():
    d = evaluate_row(th(**BAND), series([95]), now=NOW, current=4)
    assert d.decision == "scale_up"
    assert d.proposed == math.ceil(4 * 95 / 45)


def test_above_for_the_whole_window_scales_up():
    # 5m window, samples every 15s from -5m to now, all above 70%
    d = evaluate_row(th(**BAND, **{"for": "5m"}), series([80] * 21), now=NOW, current=3)
    assert d.decision == "scale_up"
    assert d.observed_s == 300
    assert "5m" in d.reason


def test_above_for_part_of_the_window_is_pending_hold():
    # above only for the last 2 minutes (9 samples = 120s)
    d = evaluate_row(th(**BAND, **{"for": "5m"}), series([50] * 12 + [80] * 9), now=NOW, current=3)
    assert (d.decision, d.pending, d.observed_s) == ("hold", True, 120)
    assert "2m" in d.reason and "5m" in d.reason
    assert d.proposed == 3


def test_one_dip_inside_the_window_restarts_it():
    values = [80] * 10 + [65] + [80] * 10
    d = evaluate_row(th(**BAND, **{"for": "5m"}), series(values), now=NOW, current=3)
    assert d.decision == "hold" and d.pending


def test_a_single_instant_reading_cannot_satisfy_a_window():
    d = evaluate_row(th(**BAND, **{"for": "1m"}), series([99]), now=NOW, current=3)
    assert (d.decision, d.pending) == ("hold", True)


def test_hysteresis_band_between_limits_holds_both_ways():
    t = th(**BAND, **{"for": "1m"})
    # coming down from high load to 40%: not below scale_down, so no scale-down
    assert evaluate_row(t, series([90, 80, 60, 40, 40]), now=NOW, current=5).decision == "hold"
    # coming up from idle to 60%: not above scale_up
    assert evaluate_row(t, series([10, 10, 30, 60, 60]), now=NOW, current=5).decision == "hold"


def test_below_for_the_window_scales_down_towards_the_midpoint():
    d = evaluate_row(th(**BAND, **{"for": "1m"}), series([10] * 5), now=NOW, current=6)
    assert d.decision == "scale_down"
    assert d.proposed == 2  # ceil(6 x 10 / 45)


def test_below_only_briefly_is_pending():
    d = evaluate_row(th(**BAND, **{"for": "10m"}), series([10] * 5), now=NOW, current=6)
    assert (d.decision, d.pending) == ("hold", True)


def test_strict_inequalities_at_the_limits():
    assert evaluate_row(th(**BAND), series([70]), now=NOW, current=3).decision == "hold"
    assert evaluate_row(th(**BAND), series([20]), now=NOW, current=3).decision == "hold"
    assert evaluate_row(th(**BAND), series([70.01]), now=NOW, current=3).decision == "scale_up"


def test_no_scale_down_limit_means_only_up():
    d = evaluate_row(th(scale_up="500ms"), series([1]), now=NOW, current=3)
    assert d.decision == "hold" and d.unit == "ms"


def test_gap_longer_than_staleness_breaks_the_run():
    t = th(**BAND, **{"for": "10m"})
    old = [Sample(90.0, NOW - dt.timedelta(minutes=m)) for m in (15, 14, 13, 12, 11, 10)]
    recent = [Sample(90.0, NOW - dt.timedelta(minutes=m)) for m in (4, 3, 2, 1, 0)]
    d = evaluate_row(t, Series("api", "cpu_utilization", tuple(old + recent)), now=NOW, current=3)
    assert d.pending and d.observed_s == 240


@pytest.mark.parametrize(("s", "why"), [
    (Series("api", "cpu_utilization", error="timed out after 10s", query="up"), "timed out"),
    (Series("api", "cpu_utilization", query="up"), "no samples"),
    (Series("api", "cpu_utilization", (Sample(math.nan, NOW),), query="up"), "NaN"),
])
def test_no_data_is_never_a_zero(s, why):
    d = evaluate_row(th(**BAND), s, now=NOW, current=3)
    assert d.decision == "no_data" and d.value is None
    assert why in d.reason and "query: up" in d.reason


def test_stale_latest_sample_is_no_data():
    d = evaluate_row(th(**BAND), series([90], end=NOW - dt.timedelta(minutes=6)), now=NOW, current=3)
    assert d.decision == "no_data" and "old" in d.reason


def test_samples_after_now_are_ignored():
    s = Series("api", "cpu_utilization", (Sample(50.0, NOW), Sample(99.0, NOW + dt.timedelta(seconds=5))))
    assert evaluate_row(th(**BAND), s, now=NOW, current=3).value == 50.0


def test_target_mode_rows():
    up = evaluate_row(th(target="30%"), series([50]), now=NOW, current=3)
    assert (up.mode, up.decision, up.proposed) == ("target", "scale_up", 5)
    down = evaluate_row(th(target="50%"), series([28]), now=NOW, current=5)
    assert (down.decision, down.proposed) == ("scale_down", 3)
    keep = evaluate_row(th(target="100%"), series([102]), now=NOW, current=4)
    assert (keep.decision, keep.proposed) == ("hold", 4)
    assert "tolerance" in keep.reason


def test_target_mode_with_zero_replicas_is_off():
    d = evaluate_row(th(target="30%"), series([90]), now=NOW, current=0)
    assert (d.decision, d.proposed) == ("hold", 0)


def test_target_mode_unknown_replicas_still_decides_direction():
    d = evaluate_row(th(target="30%"), series([90]), now=NOW, current=None)
    assert (d.decision, d.proposed) == ("scale_up", None)
