"""`opskit cost catalog import` on trimmed AWS Price List offer files (tests/cost/offers/*.json, the bulk JSON
format AWS documents: formatVersion, offerCode, version, publicationDate, products, terms.OnDemand/Reserved).
Each file keeps the product opskit must pick beside the look-alikes it must pass over (Windows, dedicated
tenancy, unused capacity reservations, pre-installed SQL, another region, readable-standby Multi-AZ,
Memcached/Valkey, partial-upfront and convertible reservations)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from opskit.cli import cli
from opskit.cost.catalog import builtin_catalog
from opskit.cost.offers import classify, import_offers, read_offer
from opskit.errors import ConfigError

OFFERS = Path(__file__).parent / "offers"
ALL = sorted(str(p) for p in OFFERS.glob("*.json"))
SPEC = Path(__file__).resolve().parents[2] / "opskit.yaml"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def imported(tmp_path) -> dict:
    out = tmp_path / "aws-offers.yaml"
    r = run("cost", "catalog", "import", *ALL, "--name", "aws-offers", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    assert "21 prices from" in r.stdout and "kept from the built-in catalog (unverified)" in r.stdout
    return yaml.safe_load(out.read_text(encoding="utf-8"))["items"]


def test_every_imported_price_carries_sku_offer_version_and_date(imported):
    t3 = imported["ec2/t3.medium"]
    # Linux, shared tenancy, capacity used, no pre-installed software, us-east-1: not the look-alikes
    assert (t3["price"], t3["sku"], t3["unit"]) == (0.0416, "W4WKU8ESPBTVTHJU", "hour")
    assert (t3["offer_code"], t3["offer_version"], t3["publication_date"]) == \
        ("AmazonEC2", "20261105120000", "2026-11-05T12:00:00Z")
    assert t3["date"] == "2026-11-05" and "SKU W4WKU8ESPBTVTHJU" in t3["source"]
    # 1 and 3 years, standard, no upfront: not partial upfront (0.0125) nor convertible (0.0301)
    assert {k: v["price"] for k, v in t3["reserved"].items()} == {"1yr": 0.0262, "3yr": 0.018}
    assert t3["reserved"]["1yr"]["offer_term_code"] == "4NA7Y494T4"
    assert imported["ec2/m5.large"]["sku"] == "YYTW3WQH8C5WKV7R"  # an older file's `location`, no regionCode
    assert imported["ebs/gp3"]["price"] == 0.08
    assert (imported["nat/hour"]["price"], imported["nat/gb"]["price"]) == (0.045, 0.045)
    assert (imported["alb/hour"]["price"], imported["alb/lcu"]["unit"]) == (0.0225, "LCU-hour")
    assert [t.get("upto") for t in imported["ec2-transfer/internet"]["tiers"]] == [10240, 51200, 153600, None]


def test_rds_engine_and_deployment_elasticache_s3_cloudfront(imported):
    assert imported["rds/postgres/db.t3.large"]["price"] == 0.145
    assert imported["rds/postgres/db.t3.large/multi-az"]["price"] == 0.29  # not "Multi-AZ (readable standbys)"
    assert imported["rds/mysql/db.t3.large"]["price"] == 0.136
    # RDS reservation: 1 year no upfront only (the 3-year one is all upfront)
    assert set(imported["rds/postgres/db.t3.large"]["reserved"]) == {"1yr"}
    assert imported["rds-storage/gp2/multi-az"]["price"] == 0.23  # the Oracle storage (0.138) is passed over
    assert imported["rds-backup/gb"]["price"] == 0.095
    assert imported["elasticache/cache.t3.medium"]["sku"] == "E9ZBKF2M8UFQ4RG2"  # Redis, not Memcached/Valkey
    s3 = imported["s3/standard"]
    assert [(t.get("upto"), t["price"]) for t in s3["tiers"]] == [(51200, 0.023), (512000, 0.022), (None, 0.021)]
    assert imported["s3/requests-put"]["price"] == 0.000005 and imported["s3/requests-get"]["unit"] == "request"
    cf = imported["cloudfront/us-transfer"]
    assert cf["tiers"][0]["price"] == 0.085 and cf["sku"] == "ZCDSHNQBXHCZB3YQ"  # the US edge, not Europe
    assert cf["free_tier"]["monthly"] == 1024  # the always-free allowance is kept from the built-in entry
    assert imported["cloudfront/us-requests-https"]["price"] == 0.000001
    # prices no offer file was given for stay the built-in ones, still marked unverified, with no sku
    kept = imported["rds/postgres/db.m5.large"]
    assert "sku" not in kept and "unverified" in kept["source"]


def test_other_region_keeps_nothing_from_the_us_east_1_catalog(tmp_path):
    out = tmp_path / "west.yaml"
    r = run("cost", "catalog", "import", str(OFFERS / "AmazonEC2.json"), "--region", "us-west-2", "--out", str(out))
    assert r.exit_code == 0, r.stderr
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert doc["name"] == "aws-us-west-2-offers" and doc["region"] == "us-west-2"
    assert set(doc["items"]) == {"ec2/t3.medium"} and doc["items"]["ec2/t3.medium"]["sku"] == "JZ2F6SHRX4HKZ6GA"
    r = run("cost", "catalog", "import", str(OFFERS / "AmazonEC2.json"), "--region", "eu-west-3",
            "--out", str(tmp_path / "none.yaml"))
    assert r.exit_code == 2 and "no price for region eu-west-3" in r.stderr
    assert not (tmp_path / "none.yaml").exists()


def _spec_with(tmp_path: Path, catalog_ref: str) -> Path:
    text = SPEC.read_text(encoding="utf-8").replace("  catalog: aws-us-east-1 ", f"  catalog: {catalog_ref} ")
    assert f"catalog: {catalog_ref}" in text
    spec = tmp_path / "opskit.yaml"
    spec.write_text(text, encoding="utf-8")
    return spec


def test_estimate_from_an_imported_catalog_by_name_with_reserved_column(tmp_path):
    r = run("cost", "catalog", "import", *ALL, "--name", "aws-offers", "--out", str(tmp_path / "aws-offers.yaml"))
    assert r.exit_code == 0
    spec = _spec_with(tmp_path, "aws-offers")  # by name: <name>.yaml next to the spec
    r = run("cost", "estimate", "--spec", str(spec), "--plan", "phase-1", "-o", "json")
    assert r.exit_code == 0, r.stderr
    plan = json.loads(r.stdout)["plans"][0]
    api = plan["resources"][0]
    assert api["components"][0]["sku"] == "W4WKU8ESPBTVTHJU"
    assert api["components"][0]["reserved_1yr_monthly_cost"] == pytest.approx(3 * 730 * 0.0262)
    # the plan at reserved rates: instances that have one (api, db, cache), on-demand for the rest
    on_demand_rest = plan["total_monthly"] - sum(
        r["components"][0]["monthly_cost"] for r in plan["resources"] if r["name"] in ("api", "db", "cache"))
    want_1yr = 3 * 730 * 0.0262 + 730 * 0.1 + 730 * 0.047 + on_demand_rest
    assert plan["reserved_1yr_monthly"] == pytest.approx(want_1yr, abs=0.02)
    want_3yr = 3 * 730 * 0.018 + 730 * 0.145 + 730 * 0.032 + on_demand_rest  # no 3-year no-upfront RDS rate
    assert plan["reserved_3yr_monthly"] == pytest.approx(want_3yr, abs=0.02)
    table = run("cost", "estimate", "--spec", str(spec), "--plan", "phase-1")
    assert "Reserved alternative: reserved, no upfront" in table.stdout and "1-year $" in table.stdout


def test_strict_accepts_offer_prices_and_names_the_first_unverified_one(tmp_path):
    out = tmp_path / "offers.yaml"
    assert run("cost", "catalog", "import", *ALL, "--out", str(out)).exit_code == 0
    spec = _spec_with(tmp_path, "offers.yaml")  # by path
    # phase-1 is priced from offer files only: --strict goes on to the stated figures (seed 000's $500: exit 1)
    r = run("cost", "estimate", "--spec", str(spec), "--plan", "phase-1", "--strict", "-o", "json")
    assert r.exit_code == 1 and "disagree with the catalog" in r.stderr
    assert json.loads(r.stdout)["total_monthly"] > 0  # the answer is still printed
    # phase-2's database class is not in the trimmed RDS file: refused, one line naming the entry
    r = run("cost", "estimate", "--spec", str(spec), "--plan", "phase-2", "--strict")
    assert r.exit_code == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "--strict: plans.phase-2.db: price rds/postgres/db.m5.large/multi-az has no verifiable source" in r.stderr


def test_offer_file_errors_are_one_line(tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{\"formatVersion\": ", encoding="utf-8")
    not_offer = tmp_path / "other.json"
    not_offer.write_text(json.dumps({"offers": {}}), encoding="utf-8")
    lambda_offer = tmp_path / "lambda.json"
    doc = json.loads((OFFERS / "AmazonS3.json").read_text(encoding="utf-8"))
    lambda_offer.write_text(json.dumps({**doc, "offerCode": "AWSLambda"}), encoding="utf-8")
    for path, message in ((bad_json, "bad.json:1: not JSON"),
                          (not_offer, "not an AWS offer file: missing formatVersion, offerCode"),
                          (lambda_offer, "offer 'AWSLambda' is not one opskit prices"),
                          (tmp_path / "missing.json", "missing.json: no such file")):
        r = run("cost", "catalog", "import", str(path), "--out", str(tmp_path / "x.yaml"))
        assert r.exit_code == 2, (path, r.stderr)
        assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "x.yaml").exists()


def _ec2_doc() -> dict:
    return json.loads((OFFERS / "AmazonEC2.json").read_text(encoding="utf-8"))


def test_two_products_at_different_prices_for_one_key_are_refused():
    doc = _ec2_doc()
    twin = copy.deepcopy(doc["products"]["W4WKU8ESPBTVTHJU"])
    twin["sku"] = "AAAATWINSKU00000"
    doc["products"]["AAAATWINSKU00000"] = twin
    doc["terms"]["OnDemand"]["AAAATWINSKU00000"] = {"AAAATWINSKU00000.JRTCKXETXF": {
        "offerTermCode": "JRTCKXETXF", "sku": "AAAATWINSKU00000", "termAttributes": {},
        "priceDimensions": {"r": {"unit": "Hrs", "pricePerUnit": {"USD": "0.0500000000"}}}}}
    with pytest.raises(ConfigError, match="ec2/t3.medium matches SKU AAAATWINSKU00000 and SKU W4WKU8ESPBTVTHJU"):
        import_offers([read_offer(doc, "ec2.json")], builtin_catalog("aws-us-east-1"), region="us-east-1", name="x")


def test_a_free_first_tier_in_the_offer_replaces_the_built_in_allowance():
    doc = _ec2_doc()
    dims = doc["terms"]["OnDemand"]["25KK9VY72V4RDJBD"]["25KK9VY72V4RDJBD.JRTCKXETXF"]["priceDimensions"]
    first = next(iter(dims.values()))
    dims["free"] = {"rateCode": "free", "beginRange": "0", "endRange": "100", "unit": "GB",
                    "pricePerUnit": {"USD": "0.0000000000"}}
    first["beginRange"] = "100"
    cat = import_offers([read_offer(doc, "ec2.json")], builtin_catalog("aws-us-east-1"), region="us-east-1",
                        name="x").catalog
    item = cat.items["ec2-transfer/internet"]
    assert item.tiers is not None and item.tiers[0].price == 0 and item.tiers[0].upto == 100
    assert item.free_tier is None  # not taken twice
    assert builtin_catalog("aws-us-east-1").items["ec2-transfer/internet"].free_tier is not None


def test_a_sku_with_two_on_demand_terms_is_refused():
    doc = _ec2_doc()
    terms = doc["terms"]["OnDemand"]["W4WKU8ESPBTVTHJU"]
    terms["W4WKU8ESPBTVTHJU.OTHERTERM"] = next(iter(terms.values()))
    with pytest.raises(ConfigError, match="SKU W4WKU8ESPBTVTHJU has 2 on-demand terms"):
        import_offers([read_offer(doc, "ec2.json")], builtin_catalog("aws-us-east-1"), region="us-east-1", name="x")


def test_zones_and_outposts_listed_under_the_region_are_passed_over():
    doc = _ec2_doc()
    product = doc["products"]["W4WKU8ESPBTVTHJU"]
    assert classify("AmazonEC2", product, "us-east-1") == ["ec2/t3.medium"]
    outpost = copy.deepcopy(product)
    outpost["attributes"]["locationType"] = "AWS Outposts"
    assert classify("AmazonEC2", outpost, "us-east-1") == []
    assert classify("AmazonEC2", product, "us-west-2") == []


def test_reserved_columns_add_up_to_the_plan_total(tmp_path):
    assert run("cost", "catalog", "import", *ALL, "--out", str(tmp_path / "offers.yaml")).exit_code == 0
    spec = _spec_with(tmp_path, "offers.yaml")
    md = run("cost", "estimate", "--spec", str(spec), "--plan", "phase-1", "-o", "md").stdout
    assert "| monthly cost | 1-yr reserved | 3-yr reserved |" in md
    rows = [ln.split("|")[1:-1] for ln in md.splitlines() if ln.startswith("| ") and "(" in ln.split("|")[1]
            and not ln.split("|")[1].startswith("  ")]
    resources = [r for r in rows if not r[0].strip().startswith(("├", "└"))]
    total = next(ln.split("|")[1:-1] for ln in md.splitlines() if ln.startswith("| TOTAL"))
    for col in (5, 6):
        assert sum(float(r[col].strip(" $").replace(",", "")) for r in resources) == \
            pytest.approx(float(total[col].strip(" $").replace(",", "")), abs=0.02)
    # the built-in catalog has no reserved rates: no such columns
    plain = run("cost", "estimate", "--spec", str(SPEC), "--plan", "phase-1", "-o", "md").stdout
    assert "reserved" not in plain
