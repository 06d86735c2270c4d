"""capacity plan: the cheapest instance type x count per horizon at the measured capacity, hand-checked, and
its verdict on the spec's own plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from opskit.capacity.plan import MeasuredCapacity, plan_capacity
from opskit.cost.catalog import Catalog, PricedItem, PriceItem, ReservedPrice
from opskit.errors import ConfigError
from opskit.spec.schema import Spec

from .conftest import synthetic_levels

HOURS = 730
# 240 req/s at the peak: daily requests x peak-to-mean (1) / 86,400
DAILY = 240 * 86_400


# the sizes AWS publishes for the types these tests price (vCPU, GiB)
SIZES = {"m5.large": (2, 8), "m5.xlarge": (4, 16), "c5.large": (2, 4), "t3.small": (2, 2), "r5.large": (2, 16)}


def catalog(prices: dict[str, float], reserved: dict[str, float] | None = None) -> Catalog:
    items = {}
    for itype, price in prices.items():
        ri = ({"1yr": ReservedPrice(price=reserved[itype], offer_term_code="4NA7Y494T4")}
              if reserved and itype in reserved else None)
        vcpu, memory = SIZES.get(itype, (None, None))
        item = PriceItem(price=price, unit="hour", source="test", date="2026-12", reserved=ri, vcpu=vcpu,
                         memory_gib=memory)
        items[f"ec2/{itype}"] = PricedItem(f"ec2/{itype}", item, "test")
    return Catalog("test", "USD", items, ("test",))


def spec(max_instances: int = 10) -> Spec:
    return Spec.model_validate({
        "service": {"name": "svc"},
        "resources": {"api": {"min": 2, "max": max_instances, "utilization_target": "50%", "redundancy": 1,
                              "plan_resource": "api"}},
        "growth": {"horizons_months": [0, 12], "peak_to_mean": 1,
                   "metrics": {"daily_requests": [DAILY, DAILY]}},
        "plans": {"now": {"months": [0, 12], "resources": [
            {"name": "api", "kind": "compute", "instance": "m5.large", "count": 4}]}},
    })


MEASURED = MeasuredCapacity(100.0, "test figure", "m5.large", "--measured-on")


def test_cheapest_type_and_count_by_hand():
    # m5.large serves 100 req/s, 50 at the 50% target: 240 needs 5, plus one spare = 6 x $0.10 x 730 = $438.
    # m5.xlarge (4 vCPU) serves 200, 100 at target: 3 + 1 = 4 x $0.16 x 730 = $467.20, dearer.
    # c5.large (2 GiB per vCPU, less than m5.large's 4) and t3.small are not candidates however cheap.
    cat = catalog({"m5.large": 0.10, "m5.xlarge": 0.16, "c5.large": 0.01, "t3.small": 0.001},
                  reserved={"m5.large": 0.06})
    plan = plan_capacity(spec(), cat, MEASURED, resource="api", months=12)
    assert plan.candidates == ["m5.large", "m5.xlarge"]
    assert [h.month for h in plan.horizons] == [0, 12]
    h = plan.horizons[-1]
    assert h.peak_rps == pytest.approx(240)
    c = h.cheapest
    assert c is not None
    assert (c.instance_type, c.count, c.capacity_rps) == ("m5.large", 6, 100.0)
    assert c.monthly_usd == pytest.approx(438.0)
    assert c.reserved_1yr_monthly_usd == pytest.approx(6 * 0.06 * HOURS)
    assert c.reserved_3yr_monthly_usd is None
    # 240 req/s x 86,400 s x 730/24 days = 630.72M requests a month
    assert h.monthly_requests == pytest.approx(630.72e6)
    assert c.per_million_requests_usd == pytest.approx(438.0 / 630.72, abs=1e-4)
    assert c.peak_utilization_pct == pytest.approx(48.0)  # 240 of the 5 serving x 100
    # the plan's 4 x m5.large against the 6 needed
    assert h.planned is not None and h.planned.needed == 6
    assert h.planned.verdict == "under-provisioned by 2 instances" and h.planned.over_by == -2
    assert h.saving_usd == pytest.approx(4 * 0.10 * HOURS - 438.0)


def test_equal_cost_goes_to_fewer_instances_and_max_bounds_the_count():
    # m5.xlarge at $0.15: 4 x 0.15 = 6 x 0.10, the same $438: fewer instances win the tie
    plan = plan_capacity(spec(), catalog({"m5.large": 0.10, "m5.xlarge": 0.15}), MEASURED, resource="api", months=12)
    c = plan.horizons[-1].cheapest
    assert c is not None and (c.instance_type, c.count) == ("m5.xlarge", 4)
    # with max 5 instances the 6 x m5.large fleet is not allowed; nothing fits under max 3
    plan = plan_capacity(spec(5), catalog({"m5.large": 0.01, "m5.xlarge": 0.16}), MEASURED, resource="api", months=12)
    c = plan.horizons[-1].cheapest
    assert c is not None and (c.instance_type, c.count) == ("m5.xlarge", 4)
    plan = plan_capacity(spec(3), catalog({"m5.large": 0.01, "m5.xlarge": 0.16}), MEASURED, resource="api", months=12)
    h = plan.horizons[-1]
    assert h.cheapest is None and h.note == "no candidate type serves 240.0 req/s within max 3 instances"


def test_families_restrict_the_candidates():
    cat = catalog({"m5.large": 0.10, "m5.xlarge": 0.15, "r5.large": 0.05})
    plan = plan_capacity(spec(), cat, MEASURED, resource="api", months=12)
    assert plan.horizons[-1].cheapest.instance_type == "r5.large"  # type: ignore[union-attr]
    plan = plan_capacity(spec(), cat, MEASURED, resource="api", months=12, families=["m5"])
    assert plan.candidates == ["m5.large", "m5.xlarge"]


def test_an_unknown_measured_type_is_a_config_error():
    with pytest.raises(ConfigError, match="no vCPU figure for 'x9.huge'"):
        plan_capacity(spec(), catalog({"m5.large": 0.1}), MeasuredCapacity(100, "t", "x9.huge", "--measured-on"),
                      resource="api")


def test_sizes_come_from_the_catalog_and_a_repriced_type_keeps_its_size(tmp_path):
    from opskit.cost.catalog import load_catalog

    # a type opskit never heard of, sized in its catalog item, is planned with that size: 8 vCPU serve 4 x 100
    cat = catalog({"m5.large": 0.10})
    big = PriceItem(price=0.15, unit="hour", source="test", date="2026-12", vcpu=8, memory_gib=64)
    cat.items["ec2/z9.metal"] = PricedItem("ec2/z9.metal", big, "test")
    plan = plan_capacity(spec(), cat, MEASURED, resource="api", months=12)
    c = plan.horizons[-1].cheapest
    assert c is not None and (c.instance_type, c.vcpu, c.capacity_rps, c.count) == ("z9.metal", 8, 400.0, 3)
    # a layer and an override that re-price t3.medium keep the size the shipped catalog gives it
    layer = tmp_path / "layer.yaml"
    layer.write_text(yaml.safe_dump({"name": "layer", "items": {"ec2/t3.medium": {
        "price": 0.05, "unit": "hour", "source": "test", "date": "2026-12"}}}))
    merged = load_catalog("aws-us-east-1", [str(layer)], {"ec2/t3.large": 0.09})
    assert (merged.items["ec2/t3.medium"].item.vcpu, merged.items["ec2/t3.medium"].item.memory_gib) == (2, 4)
    assert (merged.items["ec2/t3.large"].item.price, merged.items["ec2/t3.large"].item.memory_gib) == (0.09, 8)


def plan_json(invoke, *args: str) -> dict:
    result = invoke("capacity", "plan", *args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def in_tmp(spec_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example spec in an empty folder: no runs/ of the repository's sets the capacity."""
    monkeypatch.chdir(spec_copy.parent)
    return spec_copy


def test_example_spec_phase_3_is_over_provisioned(invoke, in_tmp):
    # 250 req/s per t3.medium (resources.api.capacity_rps; phase-1's type at month 0). Month 24 peaks at
    # 10M / 86,400 x 1.7 = 196.8 req/s: 2 serving t3.medium at 70% (175 each) + 1 spare = 3 x $0.0416 x 730.
    # phase-3's m5.xlarge has 4 vCPU, so 500 req/s: 1 serving + 1 spare = 2, against the 8 provisioned.
    doc = plan_json(invoke, "--spec", str(in_tmp))
    assert doc["measured"] == {"rps": 250.0, "source": "resources.api.capacity_rps", "instance_type": "t3.medium",
                               "instance_source": "plans.phase-1.api at month 0"}
    by_month = {h["month"]: h for h in doc["horizons"]}
    assert sorted(by_month) == [0, 6, 12, 24]
    last = by_month[24]
    assert last["cheapest"]["instance_type"] == "t3.medium" and last["cheapest"]["count"] == 3
    assert last["cheapest"]["monthly_usd"] == pytest.approx(3 * 0.0416 * 730, abs=0.01)
    assert last["cheapest"]["per_million_requests_usd"] == pytest.approx(91.10 / 304.1667, abs=1e-3)
    planned = last["planned"]
    assert planned["plan"] == "phase-3" and planned["fleet"]["instance_type"] == "m5.xlarge"
    assert planned["fleet"]["count"] == 8 and planned["fleet"]["monthly_usd"] == pytest.approx(1121.28)
    assert planned["needed"] == 2 and planned["verdict"] == "over-provisioned by 6 instances"
    assert by_month[12]["planned"]["verdict"] == "over-provisioned by 6 instances"
    assert by_month[0]["planned"]["verdict"] == "over-provisioned by 1 instance"  # phase-1: 3 where 2 do
    assert any("scaled by vCPU" in a for a in doc["assumptions"])


def test_a_small_capacity_makes_phase_3_short_and_max_rules_out_small_types(invoke, in_tmp):
    # 20 req/s per t3.medium: m5.xlarge serves 40, 28 at target, so 196.8 needs 8 + 1 = 9 (one more than
    # phase-3); t3.medium would need 16 (above max 10); t3.xlarge (4 vCPU) needs 9 at $0.1664 = $1,093.25,
    # cheaper than 5 x t3.2xlarge ($1,214.72) and 9 x m5.xlarge ($1,261.44)
    doc = plan_json(invoke, "--spec", str(in_tmp), "--capacity-rps", "20")
    last = doc["horizons"][-1]
    assert doc["measured"]["source"] == "--capacity-rps"
    assert last["planned"]["verdict"] == "under-provisioned by 1 instance"
    assert (last["cheapest"]["instance_type"], last["cheapest"]["count"]) == ("t3.xlarge", 9)
    assert last["cheapest"]["monthly_usd"] == pytest.approx(1093.25, abs=0.01)


def test_months_and_measured_on_and_family(invoke, in_tmp):
    doc = plan_json(invoke, "--spec", str(in_tmp), "--months", "9", "--measured-on", "m5.large", "--family", "m5",
                    "--family", "t3")
    assert [h["month"] for h in doc["horizons"]] == [0, 6, 9]
    # m5.large has 4 GiB per vCPU: t3.medium (2) is left out, t3.large (4) stays
    assert "t3.medium" not in doc["candidates"] and "t3.large" in doc["candidates"]
    assert doc["measured"]["instance_source"] == "--measured-on"


def test_a_step_run_sets_the_capacity(invoke, in_tmp, write_run):
    write_run(synthetic_levels(0.03, 0.0004, 40.0, [1, 2, 4, 8, 16, 24, 32, 48, 64]), root=in_tmp.parent / "runs")
    doc = plan_json(invoke, "--spec", str(in_tmp), "--p95", "100ms")
    assert doc["measured"]["source"].startswith("load test: p95 reaches 100 ms")
    assert doc["measured"]["rps"] != 250.0


def test_reserved_columns_where_the_catalog_has_them(invoke, in_tmp):
    layer = in_tmp.parent / "reserved.yaml"
    layer.write_text(yaml.safe_dump({"name": "reserved", "items": {"ec2/t3.medium": {
        "price": 0.0416, "unit": "hour", "source": "test", "date": "2026-12",
        "reserved": {"1yr": {"price": 0.026, "offer_term_code": "4NA7Y494T4"},
                     "3yr": {"price": 0.018, "offer_term_code": "BPH4J8HBKS"}}}}}))
    doc = yaml.safe_load(in_tmp.read_text())
    doc["pricing"]["catalogs"] = ["reserved.yaml"]
    in_tmp.write_text(yaml.safe_dump(doc))
    result = invoke("capacity", "plan", "--spec", str(in_tmp), "-o", "md")
    assert result.exit_code == 0, result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("| month"))
    assert "| 1-yr reserved | 3-yr reserved |" in header
    assert "| 3 x t3.medium | 250 | 39% | $91.10 | $56.94 | $39.42 |" in result.stdout  # 3 x rate x 730


def test_no_growth_section_exits_2(invoke, in_tmp):
    doc = yaml.safe_load(in_tmp.read_text())
    del doc["growth"]
    in_tmp.write_text(yaml.safe_dump(doc))
    result = invoke("capacity", "plan", "--spec", str(in_tmp))
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "opskit: error: the spec has no growth: section; capacity plan sizes the fleet for its forecast"]


def test_no_capacity_anywhere_exits_3_saying_how_to_get_one(invoke, in_tmp):
    doc = yaml.safe_load(in_tmp.read_text())
    del doc["resources"]["api"]["capacity_rps"]
    in_tmp.write_text(yaml.safe_dump(doc))
    result = invoke("capacity", "plan", "--spec", str(in_tmp))
    assert result.exit_code == 3 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "opskit: error: no per-instance capacity for api: run a step load test (`opskit loadtest run step`), "
        "pass --capacity-rps, or set resources.api.capacity_rps"]


def test_no_type_to_scale_from_exits_2(invoke, in_tmp):
    doc = yaml.safe_load(in_tmp.read_text())
    del doc["resources"]["api"]["plan_resource"]
    in_tmp.write_text(yaml.safe_dump(doc))
    result = invoke("capacity", "plan", "--spec", str(in_tmp))
    assert result.exit_code == 2
    assert "cannot tell which instance type api's capacity was measured on: pass --measured-on TYPE" in result.stderr
    result = invoke("capacity", "plan", "--spec", str(in_tmp), "--measured-on", "t3.huge")
    assert result.exit_code == 2 and "no vCPU figure for 't3.huge'" in result.stderr
    assert "Traceback" not in result.stderr


def report_md(invoke, spec_file: Path) -> str:
    out = spec_file.parent / "review" / "report.html"
    result = invoke("capacity", "report", "--spec", str(spec_file), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    horizons = html.split('<section id="horizons">', 1)[1].split("</section>", 1)[0]
    assert "cheapest fleet at measured capacity" in horizons
    return out.with_suffix(".md").read_text(encoding="utf-8")


def test_the_report_shows_the_cheapest_fleet_beside_each_plan(invoke, in_tmp):
    md = report_md(invoke, in_tmp)
    section = md.split("## Instances and cost per horizon", 1)[1].split("## Plan costs", 1)[0]
    assert "250.0 req/s per t3.medium (resources.api.capacity_rps)" in section
    row = next(line for line in section.splitlines() if line.startswith("| 24 | 2028-12 | 197 | 3 x t3.medium"))
    assert "| phase-3: 8 x m5.xlarge | $1,121.28 | over-provisioned by 6 instances | $1,030.18 |" in row
    assert "other instance types are scaled by vCPU from t3.medium" in md.split("## Assumptions", 1)[1]


def test_the_report_says_why_without_a_capacity(invoke, in_tmp):
    doc = yaml.safe_load(in_tmp.read_text())
    del doc["resources"]["api"]["capacity_rps"]
    in_tmp.write_text(yaml.safe_dump(doc))
    out = in_tmp.parent / "r.html"
    result = invoke("capacity", "report", "--spec", str(in_tmp), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    section = md.split("## Instances and cost per horizon", 1)[1].split("## Plan costs", 1)[0]
    assert "No cost at measured capacity: no per-instance capacity for api: run a step load test" in section
    assert "| cheapest |" not in section


def test_reserved_rates_from_an_imported_offer_file(invoke, in_tmp):
    # the cost helper's trimmed AmazonEC2 offer file, in AWS's own format, imported as `cost catalog import` does
    offer = Path(__file__).resolve().parents[1] / "cost" / "offers" / "AmazonEC2.json"
    imported = invoke("cost", "catalog", "import", str(offer), "--out", str(in_tmp.parent / "ec2.yaml"))
    assert imported.exit_code == 0, imported.stderr
    doc = yaml.safe_load(in_tmp.read_text())
    doc["pricing"]["catalog"] = "ec2.yaml"
    in_tmp.write_text(yaml.safe_dump(doc))
    cheapest = plan_json(invoke, "--spec", str(in_tmp))["horizons"][-1]["cheapest"]
    assert (cheapest["instance_type"], cheapest["count"]) == ("t3.medium", 3)
    # the offer's no-upfront t3.medium rates: 1 year $0.0262/h, 3 years $0.018/h
    assert cheapest["reserved_1yr_monthly_usd"] == pytest.approx(3 * 0.0262 * 730, abs=0.01)
    assert cheapest["reserved_3yr_monthly_usd"] == pytest.approx(3 * 0.018 * 730, abs=0.01)


def test_table_output_states_the_vcpu_assumption(invoke, in_tmp):
    result = invoke("capacity", "plan", "--spec", str(in_tmp))
    assert result.exit_code == 0, result.stderr
    assert "3 x t3.medium" in result.stdout and "$1,121.28" in result.stdout
    assert "* Cost at measured capacity: other instance types are scaled by vCPU from t3.medium" in result.stdout


def test_an_imported_offer_gives_the_sizes_it_publishes(invoke, tmp_path):
    # the offer's own attributes win over the template's (a type AWS resized, or one the template lacks)
    offer = json.loads((Path(__file__).resolve().parents[1] / "cost" / "offers" / "AmazonEC2.json").read_text())
    for product in offer["products"].values():
        if product["attributes"].get("instanceType") == "t3.medium":
            product["attributes"].update(vcpu="4", memory="6 GiB")
    path = tmp_path / "AmazonEC2.json"
    path.write_text(json.dumps(offer))
    imported = invoke("cost", "catalog", "import", str(path), "--out", str(tmp_path / "ec2.yaml"))
    assert imported.exit_code == 0, imported.stderr
    item = yaml.safe_load((tmp_path / "ec2.yaml").read_text())["items"]["ec2/t3.medium"]
    assert (item["vcpu"], item["memory_gib"]) == (4, 6.0)
