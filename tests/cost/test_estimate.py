from __future__ import annotations

import pytest

from opskit.capacity.growth import demand_at
from opskit.cost.catalog import load_catalog
from opskit.cost.diff import diff_plans
from opskit.cost.economics import unit_economics
from opskit.cost.estimate import check_stated, estimate_plan, estimate_resource
from opskit.errors import ConfigError
from opskit.spec.schema import Growth, Plan, PlanResource, Usage

CAT = load_catalog()


def res(**kw) -> PlanResource:
    return PlanResource.model_validate({"name": "r", **kw})


def costs(r) -> dict[str, float]:
    return {c.name: c.monthly_cost for c in estimate_resource(r, CAT).components}


def test_compute_three_t3_medium_is_91_10_plus_root_volumes():
    est = estimate_resource(res(kind="compute", instance="t3.medium", count=3), CAT)
    c, root = est.components
    assert (c.unit, c.monthly_quantity, c.unit_price) == ("hour", 3 * 730, 0.0416)
    assert c.monthly_cost == pytest.approx(91.104)
    assert c.source and c.date and c.price_key == "ec2/t3.medium"
    # every instance has a root volume: 8 GB gp3 unless the spec says otherwise
    assert (root.unit, root.monthly_quantity, root.unit_price, root.price_key) == ("GB-month", 24, 0.08, "ebs/gp3")
    assert est.monthly_cost == 93.02
    assert [(a.name, a.value, a.origin) for a in est.assumptions] == [("root_volume_gb", 8, "default"),
                                                                      ("transfer_gb", 0, "resource")]
    bare = estimate_resource(res(kind="compute", instance="t3.medium", count=3, usage={"root_volume_gb": 0}), CAT)
    assert bare.monthly_cost == 91.10 and bare.assumptions[0].origin == "resource usage"


def test_compute_with_ebs_volume():
    est = estimate_resource(res(kind="compute", instance="m5.large", count=2, storage_gb="50GB"), CAT)
    assert est.monthly_cost == pytest.approx(round(2 * 730 * 0.096 + 2 * 50 * 0.08, 2))


def test_database_multi_az_with_replica_and_storage():
    est = estimate_resource(res(kind="database", instance="db.m5.large", engine="postgres", multi_az=True,
                                replicas=1, storage_gb=250), CAT)
    parts = [(c.monthly_quantity, c.unit_price) for c in est.components]
    assert parts == [(730, 0.356), (250, 0.23), (730, 0.178), (250, 0.115)]
    assert est.monthly_cost == pytest.approx(round(730 * 0.356 + 250 * 0.23 + 730 * 0.178 + 250 * 0.115, 2))


def test_database_single_az_gp3_and_unknown_engine():
    est = estimate_resource(res(kind="database", instance="db.t3.large", storage_gb=100, storage_type="gp3"), CAT)
    assert est.monthly_cost == pytest.approx(round(730 * 0.145 + 100 * 0.115, 2))
    with pytest.raises(ConfigError, match="no price for mysql database instance type"):
        estimate_resource(res(kind="database", instance="db.t3.large", engine="mysql"), CAT)


def test_cache_storage_cdn_lb_custom():
    assert estimate_resource(res(kind="cache", instance="cache.m5.large", count=2, replicas=1), CAT).monthly_cost \
        == pytest.approx(round(3 * 730 * 0.156, 2))
    storage = estimate_resource(res(kind="storage", storage_gb=100, transfer_gb=20), CAT)
    assert storage.monthly_cost == pytest.approx(100 * 0.023 + 20 * 0.09)
    cdn = estimate_resource(res(kind="cdn", transfer_gb=12_000), CAT)
    assert cdn.monthly_cost == pytest.approx(round(10_240 * 0.085 + 1_760 * 0.08, 2))
    lb = estimate_resource(res(kind="load_balancer", count=2, lcu=5), CAT)
    assert costs(res(kind="load_balancer", count=2, lcu=5)) == {
        "Application load balancer (2)": pytest.approx(2 * 730 * 0.0225),
        "Capacity units (5 LCU avg x 2)": pytest.approx(10 * 730 * 0.008)}
    assert lb.monthly_cost == pytest.approx(round(2 * 730 * 0.0225 + 10 * 730 * 0.008, 2))
    assert estimate_resource(res(kind="custom", monthly_cost=500), CAT).monthly_cost == 500


def test_resource_errors():
    with pytest.raises(ConfigError, match="plans.r: a compute resource needs an instance type"):
        estimate_resource(res(kind="compute"), CAT)
    with pytest.raises(ConfigError, match="custom resource needs monthly_cost"):
        estimate_resource(res(kind="custom"), CAT)
    with pytest.raises(ConfigError, match="closest known: t3.large"):
        estimate_resource(res(kind="compute", instance="t3.larg"), CAT)


def test_stated_figures_off_by_more_than_25_percent_are_flagged():
    m = check_stated("plans.phase-1.resources[0] (api)", 500, 91.10)
    assert m is not None and m.ratio == pytest.approx(5.49, abs=0.01)
    assert "5.5x the catalog's $91.10" in m.message
    assert check_stated("x", 90, 91.10) is None  # seed 002's $90 is right
    assert check_stated("x", 113.0, 91.10) is None  # +24%: within the tolerance
    assert check_stated("x", 114.0, 91.10) is not None  # +25.1%
    assert check_stated("x", 60, 91.10) is not None  # 34% below
    assert check_stated("x", None, 91.10) is None


def test_plan_total_mismatches_and_hours_per_month():
    plan = Plan.model_validate({"stated_monthly": 850, "resources": [
        {"name": "api", "kind": "compute", "instance": "t3.medium", "count": 3, "stated_monthly": 500}]})
    est = estimate_plan("p", plan, CAT, usage=Usage(root_volume_gb=0))
    assert est.total_monthly == 91.10
    assert [m.where for m in est.mismatches] == ["plans.p.resources[0] (api)", "plans.p"]
    assert estimate_plan("p", plan, CAT, hours_per_month=720, usage=Usage(root_volume_gb=0)).total_monthly \
        == pytest.approx(round(2160 * 0.0416, 2))


def test_unit_economics_from_growth():
    g = Growth.model_validate({"horizons_months": [0, 12], "metrics": {"daily_requests": [1_000_000, 4_000_000],
                                                                        "mau": [10_000, 40_000]}})
    ue = unit_economics(1000.0, demand_at(g, 12), 12)
    assert ue.monthly_requests == pytest.approx(4_000_000 * 730 / 24)
    assert ue.per_million_requests == pytest.approx(1000 / (4_000_000 * 730 / 24 / 1e6), rel=1e-4)
    assert ue.per_mau == pytest.approx(0.025)
    assert unit_economics(1000.0, demand_at(None, 0), 0) is None


def test_diff_per_resource_and_total():
    a = Plan.model_validate({"resources": [{"name": "api", "kind": "compute", "instance": "t3.medium", "count": 2},
                                           {"name": "old", "kind": "custom", "monthly_cost": 10}]})
    b = Plan.model_validate({"resources": [{"name": "api", "kind": "compute", "instance": "t3.medium", "count": 4},
                                           {"name": "new", "kind": "custom", "monthly_cost": 25}]})
    no_root = Usage(root_volume_gb=0)
    d = diff_plans(estimate_plan("a", a, CAT, usage=no_root), estimate_plan("b", b, CAT, usage=no_root))
    rows = {r.resource: r for r in d.rows}
    # resources are rounded to cents first: 121.47 - 60.74 (from 121.472 and 60.736)
    assert rows["api"].delta_monthly == pytest.approx(60.73)
    assert rows["api"].change_pct == pytest.approx(100.0, abs=0.05)
    assert rows["old"].b_monthly is None and rows["old"].change_pct == -100.0
    assert rows["new"].a_monthly is None and rows["new"].change_pct is None and rows["new"].delta_monthly == 25
    assert d.total.delta_monthly == pytest.approx(60.73 - 10 + 25)


def test_plan_shape_is_validated():
    with pytest.raises(ValueError, match="names must be unique within a plan, repeated: api"):
        Plan.model_validate({"resources": [{"name": "api", "kind": "custom", "monthly_cost": 1},
                                           {"name": "api", "kind": "custom", "monthly_cost": 2}]})
    with pytest.raises(ValueError, match=r"months: expected \[from, to\]"):
        Plan.model_validate({"months": [6, 0], "resources": []})
