from __future__ import annotations

import pytest

from opskit.cost.catalog import PriceItem, builtin_names, load_catalog
from opskit.errors import ConfigError

SEED_INSTANCES = {  # every instance type the example spec's plans use
    "ec2": ["t3.medium", "m5.large", "m5.xlarge"],
    "rds/postgres": ["db.t3.large", "db.m5.large", "db.r6g.xlarge"],
    "elasticache": ["cache.t3.medium", "cache.m5.large", "cache.r6g.large"],
}


def test_builtin_catalog_prices_every_seed_instance_with_source_and_date():
    assert "aws-us-east-1" in builtin_names()
    cat = load_catalog()
    for family, names in SEED_INSTANCES.items():
        for name in names:
            priced = cat.get(f"{family}/{name}", what="instance type")
            assert priced.item.price and priced.item.unit == "hour"
    for key in ("s3/standard", "cloudfront/us-transfer", "alb/hour", "alb/lcu", "rds-storage/gp2", "ebs/gp3",
                "rds/postgres/db.m5.large/multi-az"):
        assert key in cat.items
    for p in cat.items.values():
        assert p.item.source and len(p.item.date) >= 7


def test_facts_md_prices_are_the_catalogs():
    cat = load_catalog()
    facts = {"ec2/t3.medium": 0.0416, "ec2/t3.large": 0.0832, "ec2/m5.large": 0.096,
             "rds/postgres/db.t3.medium": 0.072, "rds/postgres/db.t3.large": 0.145, "rds-storage/gp2": 0.115,
             "elasticache/cache.t3.medium": 0.068, "alb/hour": 0.0225, "alb/lcu": 0.008}
    for key, price in facts.items():
        assert cat.items[key].item.price == price, key
    assert cat.items["s3/standard"].item.tiers[0].price == 0.023
    assert cat.items["cloudfront/us-transfer"].item.tiers[0].price == 0.085


def test_multi_az_is_twice_single_az():
    cat = load_catalog()
    for key, p in cat.items.items():
        if key.endswith("/multi-az"):
            single = cat.items[key.removesuffix("/multi-az")].item.price
            assert p.item.price == pytest.approx(2 * single), key


def test_unknown_instance_names_the_closest_known_ones():
    cat = load_catalog()
    with pytest.raises(ConfigError) as exc:
        cat.get("ec2/t3.mediun", what="instance type")
    assert "'t3.mediun'" in exc.value.message and "closest known: t3.medium" in exc.value.message
    with pytest.raises(ConfigError, match="db.r6g.xlarge"):
        cat.get("rds/postgres/db.r6g.xlarg", what="postgres database instance type")


def test_tiered_price_fills_each_tier():
    cat = load_catalog()
    s3 = cat.items["s3/standard"].item
    assert s3.cost(100) == pytest.approx(2.3)
    assert s3.cost(60_000) == pytest.approx(51_200 * 0.023 + 8_800 * 0.022)
    assert s3.cost(600_000) == pytest.approx(51_200 * 0.023 + 460_800 * 0.022 + 88_000 * 0.021)
    closed = PriceItem(tiers=[{"upto": 10, "price": 1.0}, {"upto": 20, "price": 0.5}], unit="GB", source="t",
                       date="2026-01")
    assert closed.cost(30) == pytest.approx(10 + 5 + 5)  # past the last bound, the last price holds


def test_layers_and_overrides(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("name: negotiated\nitems:\n  ec2/t3.medium: {price: 0.03, unit: hour, source: contract, "
                     "date: 2026-10}\n  ec2/c7g.large: {price: 0.0725, unit: hour, source: contract, date: 2026-10}\n",
                     encoding="utf-8")
    cat = load_catalog("aws-us-east-1", ["mine.yaml"], {"alb/hour": 0.02, "ec2/x9.huge": 1.5}, base=tmp_path)
    assert cat.items["ec2/t3.medium"].item.price == 0.03 and cat.items["ec2/t3.medium"].origin == "negotiated"
    assert cat.items["ec2/c7g.large"].item.price == 0.0725
    assert cat.items["alb/hour"].item.price == 0.02 and cat.items["alb/hour"].origin == "pricing.overrides"
    assert cat.items["ec2/x9.huge"].item.unit == "hour"
    assert cat.layers == ("aws-us-east-1", "negotiated", "pricing.overrides")
    with pytest.raises(ConfigError, match="family 'gpu' is unknown"):
        load_catalog(overrides={"gpu/a100": 3.0})


def test_catalog_errors_are_located(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nitems:\n  ec2/t3.medium:\n    price: 0.04\n    unit: hour\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_catalog("bad.yaml", base=tmp_path)
    assert any("bad.yaml:3: items.ec2/t3.medium.source: required key is missing" in d for d in exc.value.details)
    both = tmp_path / "both.yaml"
    both.write_text("name: b\nitems:\n  s3/x: {price: 1, tiers: [{price: 1}], unit: GB, source: s, date: 2026-01}\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_catalog("both.yaml", base=tmp_path)
    assert any("give either price or tiers" in d for d in exc.value.details)
    with pytest.raises(ConfigError, match="did you mean 'aws-us-east-1'"):
        load_catalog("aws-us-east-2", base=tmp_path)


def test_unknown_multi_az_names_multi_az_neighbours():
    with pytest.raises(ConfigError) as exc:
        load_catalog().get("rds/postgres/db.m5.larg/multi-az", what="postgres database instance type")
    assert "'db.m5.larg' (Multi-AZ)" in exc.value.message and "closest known: db.m5.large" in exc.value.message
