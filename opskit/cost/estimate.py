"""Price a plan: resource -> cost components (unit, monthly quantity, unit price, monthly cost), as
Infracost breaks a bill down. Pure: takes the plan and a Catalog, returns data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opskit.cost.catalog import Catalog, PricedItem
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.spec.schema import Plan, PlanResource

# a hand-written figure further than this from the catalog's is flagged (seed 000's $500 vs $91.10)
STATED_TOLERANCE = 0.25


@dataclass(frozen=True)
class Component:
    name: str
    unit: str
    monthly_quantity: float
    unit_price: float | None  # None for tiered prices: see price_label
    price_label: str
    monthly_cost: float
    price_key: str | None
    source: str
    date: str


@dataclass(frozen=True)
class ResourceEstimate:
    name: str
    kind: str
    instance: str | None
    components: list[Component]
    monthly_cost: float
    stated_monthly: float | None = None
    note: str | None = None


@dataclass(frozen=True)
class Mismatch:
    """A figure written in the spec that disagrees with the catalog by more than the tolerance."""

    where: str
    stated_monthly: float
    computed_monthly: float
    ratio: float  # stated / computed
    message: str


@dataclass(frozen=True)
class UnitEconomics:
    month: float
    monthly_requests: float | None
    mau: float | None
    per_million_requests: float | None
    per_mau: float | None


@dataclass(frozen=True)
class PlanEstimate:
    plan: str
    description: str | None
    currency: str
    resources: list[ResourceEstimate]
    total_monthly: float
    stated_monthly: float | None
    mismatches: list[Mismatch] = field(default_factory=list)
    unit_economics: UnitEconomics | None = None


def estimate_plan(name: str, plan: Plan, catalog: Catalog, *, hours_per_month: float = 730) -> PlanEstimate:
    resources = [estimate_resource(r, catalog, hours_per_month=hours_per_month, where=f"plans.{name}")
                 for r in plan.resources]
    total = round(sum(r.monthly_cost for r in resources), 2)
    mismatches = [m for m in (
        [check_stated(f"plans.{name}.resources[{i}] ({r.name})", r.stated_monthly, r.monthly_cost)
         for i, r in enumerate(resources)]
        + [check_stated(f"plans.{name}", plan.stated_monthly, total)]) if m is not None]
    return PlanEstimate(name, plan.description, catalog.currency, resources, total, plan.stated_monthly, mismatches)


def check_stated(where: str, stated: float | None, computed: float) -> Mismatch | None:
    if stated is None:
        return None
    # a stated price for something the catalog says is free is always worth a look
    ratio = stated / computed if computed > 0 else (float("inf") if stated > 0 else 1.0)
    if abs(ratio - 1) <= STATED_TOLERANCE:
        return None
    how = f"{ratio:.1f}x the catalog's" if ratio >= 1 else f"{(1 - ratio) * 100:.0f}% below the catalog's"
    return Mismatch(where, stated, computed, ratio,
                    f"{where}: the spec states ${stated:,.2f}/month, {how} ${computed:,.2f}")


def estimate_resource(r: PlanResource, catalog: Catalog, *, hours_per_month: float = 730,
                      where: str = "plans") -> ResourceEstimate:
    build = _KINDS[r.kind]
    here = f"{where}.{r.name}"
    try:
        comps = build(r, catalog, hours_per_month, here)
    except ConfigError as exc:
        if exc.message.startswith(here):
            raise
        raise ConfigError(f"{here}: {exc.message}") from None  # say which resource of which plan
    comps = [c for c in comps if c.monthly_quantity > 0 or c.price_key is None]
    return ResourceEstimate(r.name, r.kind, r.instance, comps, round(sum(c.monthly_cost for c in comps), 2),
                            r.stated_monthly, r.note)


def _component(name: str, priced: PricedItem, quantity: float) -> Component:
    item = priced.item
    return Component(name=name, unit=item.unit, monthly_quantity=quantity, unit_price=item.price,
                     price_label=item.unit_price_label(), monthly_cost=round(item.cost(quantity), 4),
                     price_key=priced.key, source=item.source, date=item.date)


def _need_instance(r: PlanResource, where: str) -> str:
    if not r.instance:
        raise ConfigError(f"{where}: a {r.kind} resource needs an instance type (instance: ...)")
    return r.instance


def _compute(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    inst = _need_instance(r, where)
    out = [_component(f"Instance usage (Linux, on-demand, {inst})",
                      cat.get(f"ec2/{inst}", what="instance type"), r.count * hours)]
    if r.storage_gb:
        vol = r.storage_type or "gp3"
        out.append(_component(f"Storage (EBS {vol}, {r.storage_gb:g} GB x {r.count})",
                              cat.get(f"ebs/{vol}", what="EBS volume type"), r.storage_gb * r.count))
    return out


def _database(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    inst = _need_instance(r, where)
    engine = r.engine or "postgres"
    az = "/multi-az" if r.multi_az else ""
    label = "Multi-AZ" if r.multi_az else "single-AZ"
    vol = r.storage_type or "gp2"
    out = [_component(f"Database instance ({engine}, {inst}, {label})",
                      cat.get(f"rds/{engine}/{inst}{az}", what=f"{engine} database instance type"),
                      r.count * hours)]
    if r.storage_gb:
        out.append(_component(f"Storage ({vol}, {label})", cat.get(f"rds-storage/{vol}{az}", what="storage type"),
                              r.storage_gb * r.count))
    if r.replicas:
        # read replicas are single-AZ copies of the primary: same class, own storage
        out.append(_component(f"Read replicas ({r.replicas} x {inst}, single-AZ)",
                              cat.get(f"rds/{engine}/{inst}", what=f"{engine} database instance type"),
                              r.replicas * r.count * hours))
        if r.storage_gb:
            out.append(_component(f"Read replica storage ({vol}, {r.replicas} x {r.storage_gb:g} GB)",
                                  cat.get(f"rds-storage/{vol}", what="storage type"),
                                  r.storage_gb * r.replicas * r.count))
    return out


def _cache(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    inst = _need_instance(r, where)
    nodes = r.count + r.replicas
    return [_component(f"Cache nodes (Redis, {nodes} x {inst})", cat.get(f"elasticache/{inst}", what="cache node type"),
                       nodes * hours)]


def _storage(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    cls = r.storage_type or "standard"
    return [_component(f"Object storage (S3 {cls})", cat.get(f"s3/{cls}", what="S3 storage class"), r.storage_gb),
            _component("Data transfer out to the internet", cat.get("s3/transfer-out", what="transfer item"),
                       r.transfer_gb)]


def _cdn(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    return [_component("Data transfer out (CloudFront, US)", cat.get("cloudfront/us-transfer", what="CDN item"),
                       r.transfer_gb)]


def _load_balancer(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    return [_component(f"Application load balancer ({r.count})", cat.get("alb/hour", what="load balancer item"),
                       r.count * hours),
            _component(f"Capacity units ({r.lcu:g} LCU avg x {r.count})", cat.get("alb/lcu", what="load balancer item"),
                       r.lcu * r.count * hours)]


def _custom(r: PlanResource, cat: Catalog, hours: float, where: str) -> list[Component]:
    if r.monthly_cost is None:
        raise ConfigError(f"{where}: a custom resource needs monthly_cost")
    return [Component(name=r.note or "Fixed monthly price", unit="month", monthly_quantity=r.count,
                      unit_price=r.monthly_cost, price_label=f"{r.monthly_cost:g}",
                      monthly_cost=round(r.count * r.monthly_cost, 4), price_key=None,
                      source="opskit.yaml (monthly_cost)", date="spec")]


_KINDS = {"compute": _compute, "database": _database, "cache": _cache, "storage": _storage, "cdn": _cdn,
          "load_balancer": _load_balancer, "custom": _custom}
