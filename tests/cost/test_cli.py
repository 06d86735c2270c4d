from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.cli import cli

SPEC = str(Path(__file__).resolve().parents[2] / "opskit.yaml")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_estimate_all_json_has_plans_and_their_sum():
    r = run("cost", "estimate", "--spec", SPEC, "--all", "--output", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [p["plan"] for p in doc["plans"]] == ["phase-1", "phase-2", "phase-3"]
    assert doc["total_monthly"] == pytest.approx(sum(p["total_monthly"] for p in doc["plans"]), abs=0.01)
    first = doc["plans"][0]
    assert first["total_monthly"] == pytest.approx(sum(r["monthly_cost"] for r in first["resources"]), abs=0.01)
    api = first["resources"][0]
    # 3 x t3.medium ($91.10, facts.md) plus their 8 GB gp3 root volumes (3 x 8 x $0.08)
    assert api["components"][0]["monthly_cost"] == pytest.approx(91.104)
    assert api["components"][1]["monthly_quantity"] == 24 and api["monthly_cost"] == 93.02
    assert set(api["components"][0]) >= {"unit", "monthly_quantity", "unit_price", "monthly_cost", "source", "date"}
    assert api["assumptions"][0] == {"name": "root_volume_gb", "value": 8, "origin": "pricing.usage"}
    assert first["unit_economics"]["per_million_requests"] > 0 and first["unit_economics"]["per_mau"] > 0
    assert any("$500.00/month, 5.4x the catalog's $93.02" in w for w in doc["warnings"])
    assert "5.4x the catalog's $93.02" in r.stderr


def test_estimate_one_plan_table_and_markdown():
    r = run("cost", "estimate", "--spec", SPEC, "--plan", "phase-1")
    assert r.exit_code == 0
    assert "TOTAL" in r.stdout and "$93.02" in r.stdout and "phase-2" not in r.stdout
    assert "Usage assumptions (phase-1)" in r.stdout and "root_volume_gb" in r.stdout
    md = run("cost", "estimate", "--spec", SPEC, "--plan", "phase-2", "-o", "md")
    assert md.exit_code == 0 and md.stdout.startswith("### Plan `phase-2`")
    assert "| resource / component |" in md.stdout
    one = json.loads(run("cost", "estimate", "--spec", SPEC, "--plan", "phase-1", "-o", "json").stdout)
    assert one["total_monthly"] == one["plans"][0]["total_monthly"]


def test_estimate_usage_errors():
    r = run("cost", "estimate", "--spec", SPEC, "--plan", "phase-4")
    assert r.exit_code == 2 and "no plan named 'phase-4'" in r.stderr and "Traceback" not in r.stderr
    r = run("cost", "estimate", "--spec", SPEC, "--plan", "phase-1", "--all")
    assert r.exit_code == 2 and "not both" in r.stderr


def test_strict_refuses_prices_no_offer_file_backs():
    r = run("cost", "estimate", "--spec", SPEC, "--strict", "-o", "json")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1  # one line, naming the first entry
    assert r.stderr.startswith("opskit: error: --strict: plans.phase-1.api: price ec2/t3.medium has no verifiable "
                               "source (Infracost golden test (facts.md))")
    assert "more; import an offer file" in r.stderr


def test_unknown_instance_in_spec_is_a_config_error(tmp_path):
    spec = tmp_path / "opskit.yaml"
    spec.write_text(Path(SPEC).read_text(encoding="utf-8").replace("instance: m5.xlarge", "instance: m5.xlarg"),
                    encoding="utf-8")
    r = run("cost", "estimate", "--spec", str(spec), "--plan", "phase-3")
    assert r.exit_code == 2
    assert "plans.phase-3.api: no price for instance type 'm5.xlarg'" in r.stderr
    assert "closest known: m5.xlarge" in r.stderr


def test_spec_catalog_layers_are_relative_to_the_spec(tmp_path):
    (tmp_path / "prices.yaml").write_text(
        "name: discount\nitems:\n  ec2/t3.medium: {price: 0.02, unit: hour, source: contract, date: 2026-10}\n",
        encoding="utf-8")
    text = Path(SPEC).read_text(encoding="utf-8").replace(
        "pricing:\n  catalog: aws-us-east-1 ",
        "pricing:\n  catalogs: [prices.yaml]\n  overrides: {alb/lcu: 0.01}\n  catalog: aws-us-east-1 ")
    assert "catalogs: [prices.yaml]" in text
    (tmp_path / "opskit.yaml").write_text(text, encoding="utf-8")
    doc = json.loads(run("cost", "estimate", "--spec", str(tmp_path / "opskit.yaml"), "--plan", "phase-1",
                         "-o", "json").stdout)
    api, lb = doc["plans"][0]["resources"][0], doc["plans"][0]["resources"][4]
    assert api["components"][0]["monthly_cost"] == pytest.approx(round(3 * 730 * 0.02, 2))
    assert lb["components"][1]["unit_price"] == 0.01
    assert doc["catalog"]["layers"] == ["aws-us-east-1", "discount", "pricing.overrides"]


def test_diff_json_table_and_md():
    r = run("cost", "diff", "--spec", SPEC, "phase-1", "phase-2", "-o", "json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    est = json.loads(run("cost", "estimate", "--spec", SPEC, "-o", "json").stdout)
    totals = {p["plan"]: p["total_monthly"] for p in est["plans"]}
    assert "percent" not in d["total"] and d["total"]["change_pct"] > 0  # named as cost diff --base names it
    assert d["total"]["delta_monthly"] == pytest.approx(totals["phase-2"] - totals["phase-1"], abs=0.01)
    cdn = next(x for x in d["rows"] if x["resource"] == "cdn")
    assert cdn["a_monthly"] is None and cdn["change_pct"] is None
    t = run("cost", "diff", "--spec", SPEC, "phase-1", "phase-2")
    assert "total" in t.stdout and "new" in t.stdout
    md = run("cost", "diff", "--spec", SPEC, "phase-1", "phase-2", "-o", "md")
    assert "| resource | A monthly |" in md.stdout
    bad = run("cost", "diff", "--spec", SPEC, "phase-1", "phase-9")
    assert bad.exit_code == 2 and "phase-9" in bad.stderr


def test_catalog_listing():
    r = run("cost", "catalog", "--spec", SPEC, "--grep", "t3.medium", "-o", "json")
    assert r.exit_code == 0
    items = json.loads(r.stdout)["items"]
    assert set(items) == {"ec2/t3.medium", "rds/postgres/db.t3.medium", "rds/postgres/db.t3.medium/multi-az",
                          "elasticache/cache.t3.medium"}
    assert items["ec2/t3.medium"]["source"].startswith("Infracost")


def test_spec_without_plans_or_with_bad_pricing(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("service: {name: x}\n", encoding="utf-8")
    r = run("cost", "estimate", "--spec", str(bare), "-o", "json")
    assert r.exit_code == 2 and "the spec has no plans" in r.stderr and r.stdout == ""
    bad = tmp_path / "bad.yaml"
    bad.write_text("service: {name: x}\npricing:\n  overrides: {ec2/t3.medium: -1}\n", encoding="utf-8")
    r = run("cost", "estimate", "--spec", str(bad))
    assert r.exit_code == 2 and "bad.yaml:3: pricing.overrides.ec2/t3.medium" in r.stderr
