"""Read AWS Price List bulk offer files (AmazonEC2, AmazonRDS, AmazonElastiCache, AmazonS3, AmazonCloudFront,
AWSDataTransfer) into catalog items whose every price names its SKU, offer version and publication date.
Pure: takes the parsed JSON documents, returns a CatalogFile.

Each product is classified into a catalog key (ec2/t3.medium, rds/postgres/db.t3.large/multi-az, ...) by
the attributes AWS publishes; its price is the on-demand term's price dimension(s), and for instances the
1- and 3-year no-upfront reserved rates when the file has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from opskit.cost.catalog import CatalogFile, PriceItem, ReservedPrice, Tier, Unit, catalog_yaml
from opskit.errors import ConfigError

OFFER_CODES = ("AmazonEC2", "AmazonRDS", "AmazonElastiCache", "AmazonS3", "AmazonCloudFront", "AWSDataTransfer")
# the `location` attribute older offer files carry instead of regionCode
LOCATIONS = {
    "us-east-1": "US East (N. Virginia)", "us-east-2": "US East (Ohio)", "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)", "eu-west-1": "EU (Ireland)", "eu-west-2": "EU (London)",
    "eu-central-1": "EU (Frankfurt)", "ap-southeast-1": "Asia Pacific (Singapore)",
    "ap-southeast-2": "Asia Pacific (Sydney)", "ap-northeast-1": "Asia Pacific (Tokyo)",
}
RDS_ENGINES = {"PostgreSQL": "postgres", "MySQL": "mysql", "MariaDB": "mariadb"}
RDS_VOLUMES = {"General Purpose": "gp2", "General Purpose-GP3": "gp3", "Provisioned IOPS": "io1"}
DEPLOYMENTS = {"Single-AZ": "", "Multi-AZ": "/multi-az"}
UNITS: dict[str, Unit] = {"Hrs": "hour", "GB-Mo": "GB-month", "GB": "GB", "Requests": "request",
                          "LCU-Hrs": "LCU-hour"}


@dataclass(frozen=True)
class Offer:
    """The parts of one offer file opskit reads."""

    path: str
    offer_code: str
    version: str
    publication_date: str
    products: Mapping[str, Any]
    on_demand: Mapping[str, Any]
    reserved: Mapping[str, Any]


@dataclass(frozen=True)
class ImportResult:
    catalog: CatalogFile
    imported: list[str]  # keys priced from an offer file
    kept: list[str]  # keys of the template kept as they were (no offer file given for them, or not found)

    @property
    def text(self) -> str:
        return catalog_yaml(self.catalog, "# written by `opskit cost catalog import`: prices with a sku come from the\n"
                                          "# AWS offer file named in their source; the others are the built-in ones\n")


def read_json_offer(path: str) -> Offer:
    """Read one offer file (the adapter: the rest of this module is pure)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
    return read_offer(doc, path)


def read_offer(doc: Any, path: str) -> Offer:
    """Check the top-level shape AWS documents and keep what pricing needs."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not an AWS offer file (expected a JSON object)")
    missing = [k for k in ("formatVersion", "offerCode", "version", "publicationDate", "products", "terms")
               if k not in doc]
    if missing:
        raise ConfigError(f"{path}: not an AWS offer file: missing {', '.join(missing)}")
    code = doc["offerCode"]
    if code not in OFFER_CODES:
        raise ConfigError(f"{path}: offer {code!r} is not one opskit prices; supported: {', '.join(OFFER_CODES)}")
    terms = doc["terms"]
    if not isinstance(doc["products"], dict) or not isinstance(terms, dict) or \
            not isinstance(terms.get("OnDemand", {}), dict):
        raise ConfigError(f"{path}: products and terms.OnDemand must be objects")
    return Offer(path, code, str(doc["version"]), str(doc["publicationDate"]), doc["products"],
                 terms.get("OnDemand") or {}, terms.get("Reserved") or {})


def _in_region(a: Mapping[str, Any], region: str, prefix: str = "") -> bool:
    code_key, loc_key = (f"{prefix}RegionCode", f"{prefix}Location") if prefix else ("regionCode", "location")
    # the region itself, not a Local Zone, Wavelength Zone or Outpost that some files list under it
    if a.get(f"{prefix}LocationType" if prefix else "locationType", "AWS Region") != "AWS Region":
        return False
    if code_key in a:
        return bool(a[code_key] == region)
    return a.get(loc_key) == LOCATIONS.get(region)


def _ends(a: Mapping[str, Any], suffix: str) -> bool:
    return str(a.get("usagetype", "")).endswith(suffix)


def classify(offer_code: str, product: Mapping[str, Any], region: str) -> list[str]:
    """The catalog keys a product prices in a region (usually one, none for products opskit does not use)."""
    family = product.get("productFamily", "")
    a = product.get("attributes") or {}
    internet_out = (family == "Data Transfer" and a.get("transferType") == "AWS Outbound"
                    and a.get("toLocation") == "External" and _in_region(a, region, "from"))
    if offer_code == "AmazonCloudFront":  # priced by edge location, not by region
        if family == "Data Transfer" and a.get("usagetype") == "US-DataTransfer-Out-Bytes":
            return ["cloudfront/us-transfer"]
        if a.get("usagetype") == "US-Requests-Tier2-HTTPS":
            return ["cloudfront/us-requests-https"]
        return []
    if offer_code == "AWSDataTransfer":  # newer files moved internet egress of EC2 and S3 here
        return ["ec2-transfer/internet", "s3/transfer-out"] if internet_out else []
    if offer_code == "AmazonEC2" and internet_out:
        return ["ec2-transfer/internet"]
    if offer_code == "AmazonS3" and internet_out:
        return ["s3/transfer-out"]
    if not _in_region(a, region):
        return []
    if offer_code == "AmazonEC2":
        return _ec2(family, a)
    if offer_code == "AmazonRDS":
        return _rds(family, a)
    if offer_code == "AmazonElastiCache":
        if family == "Cache Instance" and a.get("cacheEngine") == "Redis" and a.get("instanceType"):
            return [f"elasticache/{a['instanceType']}"]
        return []
    if family == "Storage" and a.get("storageClass") == "General Purpose" and _ends(a, "TimedStorage-ByteHrs"):
        return ["s3/standard"]
    if family == "API Request":
        return {"S3-API-Tier1": ["s3/requests-put"], "S3-API-Tier2": ["s3/requests-get"]}.get(a.get("group", ""), [])
    return []


def _ec2(family: str, a: Mapping[str, Any]) -> list[str]:
    if family == "Compute Instance":
        wanted = {"operatingSystem": "Linux", "tenancy": "Shared", "capacitystatus": "Used", "preInstalledSw": "NA"}
        optional = {"licenseModel": "No License required", "marketoption": "OnDemand"}  # not in every file
        if all(a.get(k) == v for k, v in wanted.items()) and all(a.get(k, v) == v for k, v in optional.items()):
            return [f"ec2/{a['instanceType']}"] if a.get("instanceType") else []
        return []
    if family == "Storage" and a.get("volumeApiName"):
        return [f"ebs/{a['volumeApiName']}"]
    if family == "NAT Gateway":
        return ["nat/hour"] if _ends(a, "NatGateway-Hours") else ["nat/gb"] if _ends(a, "NatGateway-Bytes") else []
    if family == "Load Balancer-Application":
        return ["alb/hour"] if _ends(a, "LoadBalancerUsage") else ["alb/lcu"] if _ends(a, "LCUUsage") else []
    return []


def _rds(family: str, a: Mapping[str, Any]) -> list[str]:
    az = DEPLOYMENTS.get(a.get("deploymentOption", ""))
    if family == "Database Instance":
        engine = RDS_ENGINES.get(a.get("databaseEngine", ""))
        if engine and az is not None and a.get("instanceType"):
            return [f"rds/{engine}/{a['instanceType']}{az}"]
        return []
    if family == "Database Storage":
        vol = RDS_VOLUMES.get(a.get("volumeType", ""))
        # gp2/gp3 storage is priced alike for the open-source engines; "Any" is how AWS lists it for some
        if vol and az is not None and a.get("databaseEngine", "Any") in ("Any", "PostgreSQL"):
            return [f"rds-storage/{vol}{az}"]
        return []
    if family == "Storage Snapshot" and _ends(a, "RDS:ChargedBackupUsage"):
        return ["rds-backup/gb"]
    return []


def _one_term(terms: Any, sku: str, where: str) -> Mapping[str, Any]:
    if not isinstance(terms, dict) or not terms:
        raise ConfigError(f"{where}: SKU {sku} has no on-demand term")
    if len(terms) > 1:
        raise ConfigError(f"{where}: SKU {sku} has {len(terms)} on-demand terms ({', '.join(sorted(terms))}); "
                          f"expected one")
    term = next(iter(terms.values()))
    if not isinstance(term, dict) or not isinstance(term.get("priceDimensions"), dict):
        raise ConfigError(f"{where}: SKU {sku}: term without priceDimensions")
    return term


def _usd(dim: Mapping[str, Any], sku: str, where: str) -> float:
    try:
        return float(dim["pricePerUnit"]["USD"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{where}: SKU {sku}: price dimension {dim.get('rateCode', '?')} has no USD price") \
            from None


def _price(term: Mapping[str, Any], sku: str, where: str) -> tuple[Unit, float | None, list[Tier] | None]:
    """A single price, or tiers from the dimensions' beginRange/endRange ("Inf" ends the last)."""
    dims = list(term["priceDimensions"].values())
    units = {d.get("unit") for d in dims}
    if len(units) != 1 or next(iter(units)) not in UNITS:
        raise ConfigError(f"{where}: SKU {sku}: unit {', '.join(sorted(map(str, units)))} is not one opskit prices "
                          f"({', '.join(UNITS)})")
    unit = UNITS[str(next(iter(units)))]
    if len(dims) == 1 and str(dims[0].get("endRange", "Inf")) == "Inf" and float(dims[0].get("beginRange", 0)) == 0:
        return unit, _usd(dims[0], sku, where), None
    dims.sort(key=lambda d: float(d.get("beginRange", 0)))
    tiers = []
    for d in dims:
        end = str(d.get("endRange", "Inf"))
        tiers.append(Tier(upto=None if end == "Inf" else float(end), price=_usd(d, sku, where)))
    return unit, None, tiers


def _reserved(offer: Offer, sku: str) -> dict[str, ReservedPrice] | None:
    out: dict[str, ReservedPrice] = {}
    for code, term in (offer.reserved.get(sku) or {}).items():
        attrs = term.get("termAttributes") or {}
        lease = attrs.get("LeaseContractLength")
        if attrs.get("PurchaseOption") != "No Upfront" or lease not in ("1yr", "3yr") or \
                attrs.get("OfferingClass", "standard") != "standard":
            continue
        hourly = [d for d in (term.get("priceDimensions") or {}).values() if d.get("unit") == "Hrs"]
        if len(hourly) == 1:
            out[lease] = ReservedPrice(price=_usd(hourly[0], sku, offer.path),
                                       offer_term_code=str(term.get("offerTermCode") or code),
                                       offering_class=attrs.get("OfferingClass"))
    return out or None


def import_offers(offers: list[Offer], template: CatalogFile, *, region: str, name: str) -> ImportResult:
    """Price every product the offers hold for the region; the template's other items are kept as they were."""
    found: dict[str, tuple[PriceItem, Offer, str]] = {}
    for offer in offers:
        for sku in sorted(offer.products):
            product = offer.products[sku]
            keys = classify(offer.offer_code, product if isinstance(product, dict) else {}, region)
            if not keys:
                continue
            term = _one_term(offer.on_demand.get(sku), sku, offer.path)
            unit, price, tiers = _price(term, sku, offer.path)
            for key in keys:
                known = template.items.get(key)
                if known is not None and known.unit != unit:
                    raise ConfigError(f"{offer.path}: SKU {sku} prices {key} per {unit}, the catalog per {known.unit}")
                free = known.free_tier if known is not None else None
                if tiers and tiers[0].price == 0:
                    free = None  # the offer's own free first tier is the allowance: do not take it twice
                item = _item(offer.path, price=price, tiers=tiers, unit=unit,
                                 source=f"AWS Price List {offer.offer_code} {offer.version}, SKU {sku}",
                                 date=offer.publication_date[:10], sku=sku, offer_code=offer.offer_code,
                                 offer_version=offer.version, publication_date=offer.publication_date,
                                 reserved=_reserved(offer, sku) if key.split("/")[0] in ("ec2", "rds", "elasticache")
                                 else None, free_tier=free, **_shape(key, product, known))
                if key in found and _same_price(found[key][0], item):
                    continue  # the same price under two SKUs (one per engine, say): the first one is kept
                if key in found:
                    raise ConfigError(f"{offer.path}: {key} matches SKU {found[key][2]} and SKU {sku} at different "
                                      f"prices; the offer file has a product opskit cannot tell apart")
                found[key] = (item, offer, sku)
    if not found:
        codes = ", ".join(o.offer_code for o in offers)
        raise ConfigError(f"no price for region {region} in the offer file(s) ({codes}); check --region")
    # the template's other prices only hold in its own region
    items = dict(template.items) if template.region == region else {}
    items.update({k: v[0] for k, v in sorted(found.items())})
    kept = sorted(k for k in items if k not in found)
    desc = (f"imported from AWS Price List offers "
            f"{', '.join(f'{o.offer_code} {o.version} ({o.publication_date})' for o in offers)}; "
            f"items not in them are {template.name}'s")
    return ImportResult(CatalogFile(name=name, description=desc, currency="USD", region=region, items=items),
                        sorted(found), kept)


def _shape(key: str, product: Any, known: PriceItem | None) -> dict[str, Any]:
    """An EC2 type's vCPUs and memory from the offer's attributes ("2", "4 GiB"), else the template's."""
    if not key.startswith("ec2/") or not isinstance(product, dict):
        return {}
    a = product.get("attributes") or {}
    vcpu = _number(a.get("vcpu"))
    memory = _number(str(a.get("memory", "")).removesuffix("GiB").replace(",", "").strip() or None)
    return {"vcpu": int(vcpu) if vcpu else known.vcpu if known else None,
            "memory_gib": memory or (known.memory_gib if known else None)}


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def _item(path: str, **fields: Any) -> PriceItem:
    try:
        return PriceItem(**fields)
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{path}: SKU {fields['sku']}: {problem}") from None


def _same_price(a: PriceItem, b: PriceItem) -> bool:
    return (a.price, a.tiers, a.unit) == (b.price, b.tiers, b.unit)
