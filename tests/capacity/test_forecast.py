from __future__ import annotations

import math

import pytest

from opskit.capacity.forecast import forecast, plan_for_month
from opskit.capacity.growth import month_label, peak_rps, segments, value_at
from opskit.errors import ConfigError
from opskit.spec.schema import Growth, Plan, Resource, Threshold


def test_compound_interpolation_between_horizons():
    h, v = [0, 6, 12], [10.0, 50.0, 200.0]
    assert value_at(h, v, 3) == pytest.approx(10 * math.sqrt(5))  # half way in a x5 segment: x sqrt(5)
    assert value_at(h, v, 6) == 50.0
    assert value_at(h, v, 9) == pytest.approx(100.0)  # x4 over 6 months, x2 after 3
    assert value_at(h, v, 18) == pytest.approx(800.0)  # beyond the table the last rate continues
    assert segments(h, v)[0].monthly_rate == pytest.approx(5 ** (1 / 6) - 1)
    assert value_at([0, 10], [0.0, 100.0], 5) == 50.0  # no rate from zero: a straight line


def test_peak_rps_and_labels():
    assert peak_rps(86_400 * 10, 1.7) == pytest.approx(17.0)
    assert month_label("2026-12", 0) == "2026-12"
    assert month_label("2026-12", 14) == "2028-02"
    assert month_label(None, 3) == "M+3"


def _growth(**extra):
    return Growth.model_validate({
        "horizons_months": [0, 6, 12, 24], "peak_to_mean": 2.0, "start": "2027-01",
        "metrics": {"daily_requests": [864_000, 4_320_000, 17_280_000, 86_400_000],
                    "db_size_gb": [10, 50, 200, 1000], "concurrent_users": [500, 2000, 5000, 15000]},
        **extra})


THRESHOLDS = [
    Threshold.model_validate({"resource": "database", "metric": "storage_utilization", "scale_up": "80%",
                              "playbook": "db-increase-size"}),
    Threshold.model_validate({"resource": "redis", "metric": "connections", "scale_up": 500}),
    Threshold.model_validate({"resource": "api", "metric": "cpu_utilization", "scale_up": "70%",
                              "playbook": "api-horizontal-scale"}),
]
PLANS = {
    "small": Plan.model_validate({"months": [0, 6], "resources": [
        {"name": "db", "kind": "database", "instance": "db.t3.large", "storage_gb": 100}]}),
    "big": Plan.model_validate({"months": [6, 24], "resources": [
        {"name": "db", "kind": "database", "instance": "db.m5.large", "storage_gb": 250}]}),
}


def test_month_of_crossing_hand_computed():
    g = _growth(drivers={
        "database.storage_utilization": {"metric": "db_size_gb", "of_capacity": True},
        "redis.connections": {"metric": "concurrent_users", "factor": 0.1}})
    res = {"database": Resource(capacity=100, plan_resource="db")}
    fc = forecast(g, months=24, resources=res, thresholds=THRESHOLDS, plans=PLANS, plan_costs={"big": 1234.5})
    by_key = {c.key: c for c in fc.crossings}
    # 50 GB at month 6, x4 by month 12: month 8 = 50*4^(2/6) = 79.4 GB < 80; month 9 = 100 GB: crossed in month 9
    db = by_key["database.storage_utilization"]
    assert db.month == 9 and db.label == "2027-10" and db.value == pytest.approx(100.0)
    assert db.playbook == "db-increase-size" and db.plan == "big" and db.plan_monthly == 1234.5
    assert db.plan_note == "big provisions 250 GB: 40% used then, under 80%, so moving to big by that month relieves it"
    # 5000 concurrent users at month 12 x 0.1 = 500 connections: equal to the threshold is not above it (the
    # rule scaling and the rendered alert use), so the crossing is month 13
    assert by_key["redis.connections"].month == 13
    assert "goes above 500" in by_key["redis.connections"].what
    assert [c.key for c in fc.crossings] == ["database.storage_utilization", "redis.connections"]


def test_instances_needed_with_target_redundancy_and_bounds():
    g = _growth()
    api = Resource(min=2, max=6, utilization_target=70, redundancy=1)
    fc = forecast(g, months=24, resources={"api": api}, thresholds=THRESHOLDS, capacity_rps=100,
                  capacity_source="test")
    s = fc.sizing
    assert s is not None
    # month 0: 864,000/day = 10 req/s mean, x2 peak = 20 req/s; 70 req/s per instance -> 1 + 1 spare, min 2
    assert fc.metrics["peak_rps"][0] == pytest.approx(20.0)
    assert (s.needed[0], s.instances[0]) == (2, 2)
    # month 12: 400 req/s -> ceil(400/70) = 6, +1 = 7 > max 6: clamped, and reported as a crossing
    assert fc.metrics["peak_rps"][12] == pytest.approx(400.0)
    assert (s.needed[12], s.instances[12]) == (7, 6)
    over = next(c for c in fc.crossings if c.key == "api.instances")
    first = next(m for m in fc.months if s.needed[m] > 6)
    assert over.month == first and over.playbook == "api-horizontal-scale"
    assert s.needed[first - 1] <= 6


def test_without_capacity_the_forecast_says_why():
    fc = forecast(_growth(), resources={"api": Resource()}, thresholds=THRESHOLDS)
    assert fc.sizing is None and "capacity_rps" in fc.notes[0]


def test_driver_errors():
    with pytest.raises(ConfigError, match="no threshold for database.iops"):
        forecast(_growth(drivers={"database.iops": {"metric": "db_size_gb"}}), thresholds=THRESHOLDS)
    with pytest.raises(ConfigError, match="needs resources.database.capacity"):
        forecast(_growth(drivers={"database.storage_utilization": {"metric": "db_size_gb", "of_capacity": True}}),
                 thresholds=THRESHOLDS, resources={"database": Resource()})
    with pytest.raises(ValueError, match="unknown growth metric 'dbsize'"):
        _growth(drivers={"database.storage_utilization": {"metric": "dbsize"}})


def test_plan_for_month_boundaries():
    assert plan_for_month(PLANS, 0) == "small"
    assert plan_for_month(PLANS, 5.5) == "small"
    assert plan_for_month(PLANS, 6) == "big"
    assert plan_for_month(PLANS, 24) == "big"  # the last plan holds its own end
    assert plan_for_month(PLANS, 25) is None


def test_the_serving_fleet_need_not_be_called_api():
    fc = forecast(_growth(), resources={"web": Resource(min=1, max=4, redundancy=0, capacity_rps=100)},
                  thresholds=THRESHOLDS)
    assert fc.sizing is not None and fc.sizing.resource == "web"
    assert fc.sizing.needed[0] == 1  # 20 req/s against 70 per instance
