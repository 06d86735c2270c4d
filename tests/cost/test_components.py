"""The components a complete bill has: EBS root volumes, data transfer out, NAT gateways, RDS backups beyond the
free allocation, S3 and CloudFront requests, always-free allowances; each usage assumption visible and set
in the spec (pricing.usage, or a resource's usage:)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.cli import cli
from opskit.cost.catalog import load_catalog
from opskit.cost.estimate import estimate_plan, estimate_resource
from opskit.spec.schema import Plan, PlanResource, Usage

CAT = load_catalog()


def res(**kw) -> PlanResource:
    return PlanResource.model_validate({"name": "r", **kw})


def by_key(est) -> dict[str, object]:
    return {c.price_key: c for c in est.components}


def test_nat_gateway_hours_and_data_processed():
    est = estimate_resource(res(kind="nat_gateway", count=2, usage={"processed_gb": "500GB"}), CAT)
    c = by_key(est)
    assert c["nat/hour"].monthly_quantity == 2 * 730 and c["nat/gb"].monthly_quantity == 500
    assert est.monthly_cost == pytest.approx(round(2 * 730 * 0.045 + 500 * 0.045, 2))
    assert [(a.name, a.value, a.origin) for a in est.assumptions] == [("processed_gb", 500, "resource usage")]
    idle = estimate_resource(res(kind="nat_gateway"), CAT)
    assert [c.price_key for c in idle.components] == ["nat/hour"]  # no data processed by default
    assert idle.assumptions[0].origin == "default"


def test_rds_backup_is_billed_beyond_the_provisioned_storage_only():
    base = {"kind": "database", "instance": "db.t3.large", "storage_gb": 100}
    assert "rds-backup/gb" not in by_key(estimate_resource(res(**base), CAT))  # ratio 1.0: free allocation
    est = estimate_resource(res(**base, usage={"backup_ratio": 2.5}), CAT)
    backup = by_key(est)["rds-backup/gb"]
    assert backup.monthly_quantity == pytest.approx(150) and backup.monthly_cost == pytest.approx(150 * 0.095)
    # pricing.usage is the default every resource inherits; the resource's own usage wins
    est = estimate_resource(res(**base), CAT, usage=Usage(backup_ratio=1.5))
    assert by_key(est)["rds-backup/gb"].monthly_quantity == pytest.approx(50)
    assert est.assumptions[0].origin == "pricing.usage"


def test_s3_and_cloudfront_requests_and_compute_transfer_out():
    s3 = by_key(estimate_resource(res(kind="storage", storage_gb=10, usage={"put_requests": "1M",
                                                                            "get_requests": "10M"}), CAT))
    assert s3["s3/requests-put"].monthly_cost == pytest.approx(5.0)  # $0.005 per 1,000
    assert s3["s3/requests-get"].monthly_cost == pytest.approx(4.0)  # $0.0004 per 1,000
    ec2 = by_key(estimate_resource(res(kind="compute", instance="t3.medium", transfer_gb=1100), CAT, free={}))
    out = ec2["ec2-transfer/internet"]
    assert out.free_quantity == 100 and out.monthly_cost == pytest.approx(1000 * 0.09)


def test_free_tiers_are_used_once_per_plan_and_can_be_turned_off():
    plan = Plan.model_validate({"resources": [
        {"name": "api", "kind": "compute", "instance": "t3.medium", "transfer_gb": 60},
        {"name": "files", "kind": "storage", "transfer_gb": 60},
        {"name": "cdn", "kind": "cdn", "transfer_gb": 2048, "usage": {"requests": "25M"}}]})
    est = estimate_plan("p", plan, CAT)
    api, files, cdn = ({c.price_key: c for c in r.components} for r in est.resources)
    # 100 GB out to the internet is free per account: the api uses 60, the files the other 40
    assert api["ec2-transfer/internet"].free_quantity == 60 and api["ec2-transfer/internet"].monthly_cost == 0
    assert files["s3/transfer-out"].free_quantity == 40
    assert files["s3/transfer-out"].monthly_cost == pytest.approx(20 * 0.09)
    assert "40 GB free tier" in files["s3/transfer-out"].name
    assert "(10,000,000 request free tier)" in cdn["cloudfront/us-requests-https"].name
    # CloudFront: 1 TB and 10M requests a month
    assert cdn["cloudfront/us-transfer"].monthly_cost == pytest.approx(1024 * 0.085)
    assert cdn["cloudfront/us-requests-https"].monthly_cost == pytest.approx(15e6 * 0.000001)
    paid = estimate_plan("p", plan, CAT, free_tier=False)
    saved = paid.total_monthly - est.total_monthly
    assert saved == pytest.approx(100 * 0.09 + 1024 * 0.085 + 10e6 * 0.000001, abs=0.02)


def test_usage_assumptions_come_from_the_spec_and_are_shown(tmp_path):
    spec = Path(__file__).resolve().parents[2] / "opskit.yaml"
    text = spec.read_text(encoding="utf-8").replace("    root_volume_gb: 8 ", "    root_volume_gb: 30 ")
    text = text.replace("{name: db, kind: database, instance: db.t3.large, engine: postgres, storage_gb: 100,",
                        "{name: db, kind: database, instance: db.t3.large, engine: postgres, storage_gb: 100, "
                        "usage: {backup_ratio: 3},")
    assert "root_volume_gb: 30" in text and "backup_ratio: 3}" in text
    (tmp_path / "opskit.yaml").write_text(text, encoding="utf-8")
    r = CliRunner().invoke(cli, ["cost", "estimate", "--spec", str(tmp_path / "opskit.yaml"), "--plan", "phase-1",
                                 "-o", "json"])
    assert r.exit_code == 0, r.stderr
    api, db = json.loads(r.stdout)["plans"][0]["resources"][:2]
    assert api["components"][1]["monthly_quantity"] == 90  # 3 x 30 GB
    assert api["assumptions"][0] == {"name": "root_volume_gb", "value": 30, "origin": "pricing.usage"}
    assert db["assumptions"] == [{"name": "backup_ratio", "value": 3, "origin": "resource usage"}]
    assert db["components"][2]["monthly_quantity"] == 200
    md = CliRunner().invoke(cli, ["cost", "estimate", "--spec", str(tmp_path / "opskit.yaml"), "--plan", "phase-1",
                                  "-o", "md"])
    assert "| db | backup_ratio | 3 | resource usage |" in md.stdout


def test_bad_usage_is_a_config_error_at_the_spot(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("service: {name: x}\nplans:\n  a:\n    resources:\n      - {name: n, kind: nat_gateway, "
                    "usage: {processed: 5}}\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["cost", "estimate", "--spec", str(spec)])
    assert r.exit_code == 2 and "s.yaml:5: plans.a.resources[0].usage.processed" in r.stderr


def test_cost_never_imports_capacity():
    """capacity prices plans through cost; cost must not import capacity back (an import cycle, issue 11)."""
    folder = Path(__file__).resolve().parents[2] / "opskit" / "cost"
    found = []
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.name}: {n}" for n in names if n.startswith("opskit.capacity")]
    assert found == []


def test_usage_that_does_not_apply_to_the_kind_is_an_error():
    from opskit.errors import ConfigError

    with pytest.raises(ConfigError, match=r"plans.r: usage.requests does not apply to a compute resource "
                                          r"\(its usage keys: root_volume_gb\)"):
        estimate_resource(res(kind="compute", instance="t3.medium", usage={"requests": 5}), CAT)
    with pytest.raises(ConfigError, match="its usage keys: none"):
        estimate_resource(res(kind="cache", instance="cache.t3.medium", usage={"processed_gb": 5}), CAT)
