"""Price a plan: resource -> cost components (unit, monthly quantity, unit price, monthly cost), as
Infracost breaks a bill down. Pure: takes the plan and a Catalog, returns data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opskit.cost.catalog import Catalog, PricedItem
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.spec.schema import Plan, PlanResource, Usage

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
    sku: str | None = None  # set when the price comes from an AWS offer file
    free_quantity: float = 0.0  # the part of monthly_quantity an always-free allowance covers
    reserved_1yr_monthly_cost: float | None = None  # 1-year, no upfront, where the catalog has it
    reserved_3yr_monthly_cost: float | None = None
    component_id: str = ""  # stable within a resource (instance, storage, ...): what a diff matches on


@dataclass(frozen=True)
class Assumption:
    """A usage figure a component's quantity rests on, and where it was set."""

    name: str
    value: float
    origin: str  # "default", "pricing.usage", "resource usage" or "resource"


@dataclass(frozen=True)
class ResourceEstimate:
    name: str
    kind: str
    instance: str | None
    components: list[Component]
    monthly_cost: float
    stated_monthly: float | None = None
    note: str | None = None
    assumptions: list[Assumption] = field(default_factory=list)
    reserved_1yr_monthly: float | None = None  # the resource at reserved rates (on-demand where none)
    reserved_3yr_monthly: float | None = None


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
    reserved_1yr_monthly: float | None = None
    reserved_3yr_monthly: float | None = None


def estimate_plan(name: str, plan: Plan, catalog: Catalog, *, hours_per_month: float = 730,
                  usage: Usage | None = None, free_tier: bool = True) -> PlanEstimate:
    # one plan is one account's bill: an always-free allowance is used once, by the resources in order
    free: dict[str, float] | None = {} if free_tier else None
    resources = [estimate_resource(r, catalog, hours_per_month=hours_per_month, where=f"plans.{name}",
                                   usage=usage, free=free)
                 for r in plan.resources]
    total = round(sum(r.monthly_cost for r in resources), 2)
    mismatches = [m for m in (
        [check_stated(f"plans.{name}.resources[{i}] ({r.name})", r.stated_monthly, r.monthly_cost)
         for i, r in enumerate(resources)]
        + [check_stated(f"plans.{name}", plan.stated_monthly, total)]) if m is not None]
    return PlanEstimate(name, plan.description, catalog.currency, resources, total, plan.stated_monthly, mismatches,
                        reserved_1yr_monthly=_reserved_total(resources, "1yr"),
                        reserved_3yr_monthly=_reserved_total(resources, "3yr"))


def _reserved_total(resources: list[ResourceEstimate], term: str) -> float | None:
    values = [r.reserved_1yr_monthly if term == "1yr" else r.reserved_3yr_monthly for r in resources]
    if all(v is None for v in values):
        return None
    return round(sum(v if v is not None else r.monthly_cost for v, r in zip(values, resources, strict=True)), 2)


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


# usage assumptions when neither pricing.usage nor the resource sets them: an 8 GB root volume (the
# Amazon Linux AMI's), backups as large as the database (all inside RDS's free allocation), no requests
DEFAULT_USAGE: dict[str, float] = {"root_volume_gb": 8, "backup_ratio": 1.0, "get_requests": 0, "put_requests": 0,
                                   "requests": 0, "processed_gb": 0}
_USAGE_KEYS = {"compute": ("root_volume_gb",), "database": ("backup_ratio",),
               "storage": ("get_requests", "put_requests"), "cdn": ("requests",), "nat_gateway": ("processed_gb",)}
_TRANSFER_KINDS = ("compute", "storage", "cdn")


@dataclass
class _Ctx:
    cat: Catalog
    hours: float
    where: str
    usage: dict[str, float]
    free: dict[str, float] | None  # pool -> free quantity already used in this plan; None: no free tier

    def component(self, cid: str, name: str, priced: PricedItem, quantity: float) -> Component:
        item = priced.item
        free = 0.0
        if self.free is not None and item.free_tier is not None:
            pool = item.free_tier.pool
            free = max(0.0, min(quantity, item.free_tier.monthly - self.free.get(pool, 0.0)))
            self.free[pool] = self.free.get(pool, 0.0) + free
            amount = f"{free:,.0f}" if free == int(free) else f"{free:,.2f}"
            name = f"{name} ({amount} {item.unit} free tier)" if free else name
        billed = quantity - free
        reserved = item.reserved or {}
        return Component(name=name, unit=item.unit, monthly_quantity=quantity, unit_price=item.price,
                         price_label=item.unit_price_label(), monthly_cost=round(item.cost(billed), 4),
                         price_key=priced.key, source=item.source, date=item.date, sku=item.sku,
                         free_quantity=free,
                         reserved_1yr_monthly_cost=round(billed * reserved["1yr"].price, 4) if "1yr" in reserved
                         else None,
                         reserved_3yr_monthly_cost=round(billed * reserved["3yr"].price, 4) if "3yr" in reserved
                         else None, component_id=cid)


def resolve_usage(r: PlanResource, defaults: Usage | None) -> tuple[dict[str, float], list[Assumption]]:
    """The usage figures a resource is priced with, each with where it was set."""
    values, shown = {}, []
    applies = _USAGE_KEYS.get(r.kind, ())
    stray = sorted(k for k in (r.usage.model_fields_set if r.usage is not None else ()) if k not in applies)
    if stray:
        known = ", ".join(applies) or "none"
        raise ConfigError(f"usage.{stray[0]} does not apply to a {r.kind} resource (its usage keys: {known})")
    for key in applies:
        own = getattr(r.usage, key) if r.usage is not None else None
        spec = getattr(defaults, key) if defaults is not None else None
        value, origin = ((own, "resource usage") if own is not None else (spec, "pricing.usage") if spec is not None
                         else (DEFAULT_USAGE[key], "default"))
        values[key] = float(value)
        if key == "root_volume_gb" and r.storage_gb:
            continue  # the resource states its volume: no assumption
        shown.append(Assumption(key, float(value), origin))
    if r.kind in _TRANSFER_KINDS:
        shown.append(Assumption("transfer_gb", r.transfer_gb, "resource"))
    return values, shown


def estimate_resource(r: PlanResource, catalog: Catalog, *, hours_per_month: float = 730,
                      where: str = "plans", usage: Usage | None = None,
                      free: dict[str, float] | None = None) -> ResourceEstimate:
    build = _KINDS[r.kind]
    here = f"{where}.{r.name}"
    try:
        values, assumptions = resolve_usage(r, usage)
        comps = build(r, _Ctx(catalog, hours_per_month, here, values, free))
    except ConfigError as exc:
        if exc.message.startswith(here):
            raise
        raise ConfigError(f"{here}: {exc.message}") from None  # say which resource of which plan
    comps = [c for c in comps if c.monthly_quantity > 0 or c.price_key is None]

    def reserved(term: str) -> float | None:
        got = [c.reserved_1yr_monthly_cost if term == "1yr" else c.reserved_3yr_monthly_cost for c in comps]
        if all(v is None for v in got):
            return None
        return round(sum(v if v is not None else c.monthly_cost for v, c in zip(got, comps, strict=True)), 2)

    return ResourceEstimate(r.name, r.kind, r.instance, comps, round(sum(c.monthly_cost for c in comps), 2),
                            r.stated_monthly, r.note, assumptions, reserved("1yr"), reserved("3yr"))


def _need_instance(r: PlanResource, where: str) -> str:
    if not r.instance:
        raise ConfigError(f"{where}: a {r.kind} resource needs an instance type (instance: ...)")
    return r.instance


def _compute(r: PlanResource, x: _Ctx) -> list[Component]:
    inst = _need_instance(r, x.where)
    out = [x.component("instance", f"Instance usage (Linux, on-demand, {inst})",
                       x.cat.get(f"ec2/{inst}", what="instance type"), r.count * x.hours)]
    vol = r.storage_type or "gp3"
    size = r.storage_gb or x.usage["root_volume_gb"]
    if size:
        what = "" if r.storage_gb else "root "
        out.append(x.component("volume", f"Storage (EBS {vol} {what}volume, {size:g} GB x {r.count})",
                               x.cat.get(f"ebs/{vol}", what="EBS volume type"), size * r.count))
    if r.transfer_gb:
        out.append(x.component("transfer_out", "Data transfer out to the internet",
                               x.cat.get("ec2-transfer/internet", what="transfer item"), r.transfer_gb))
    return out


def _database(r: PlanResource, x: _Ctx) -> list[Component]:
    inst = _need_instance(r, x.where)
    cat, hours = x.cat, x.hours
    engine = r.engine or "postgres"
    az = "/multi-az" if r.multi_az else ""
    label = "Multi-AZ" if r.multi_az else "single-AZ"
    vol = r.storage_type or "gp2"
    out = [x.component("instance", f"Database instance ({engine}, {inst}, {label})",
                       cat.get(f"rds/{engine}/{inst}{az}", what=f"{engine} database instance type"),
                       r.count * hours)]
    if r.storage_gb:
        out.append(x.component("storage", f"Storage ({vol}, {label})",
                               cat.get(f"rds-storage/{vol}{az}", what="storage type"),
                               r.storage_gb * r.count))
        # RDS gives backup storage free up to the provisioned storage; only the excess is billed
        excess = max(0.0, x.usage["backup_ratio"] - 1.0) * r.storage_gb * r.count
        if excess:
            out.append(x.component("backup", f"Backup storage beyond the free allocation (backup_ratio "
                                   f"{x.usage['backup_ratio']:g})",
                                   cat.get("rds-backup/gb", what="backup storage item"), excess))
    if r.replicas:
        # read replicas are single-AZ copies of the primary: same class, own storage
        out.append(x.component("replicas", f"Read replicas ({r.replicas} x {inst}, single-AZ)",
                               cat.get(f"rds/{engine}/{inst}", what=f"{engine} database instance type"),
                               r.replicas * r.count * hours))
        if r.storage_gb:
            out.append(x.component("replica_storage",
                                   f"Read replica storage ({vol}, {r.replicas} x {r.storage_gb:g} GB)",
                                   cat.get(f"rds-storage/{vol}", what="storage type"),
                                   r.storage_gb * r.replicas * r.count))
    return out


def _cache(r: PlanResource, x: _Ctx) -> list[Component]:
    inst = _need_instance(r, x.where)
    nodes = r.count + r.replicas
    return [x.component("nodes", f"Cache nodes (Redis, {nodes} x {inst})",
                        x.cat.get(f"elasticache/{inst}", what="cache node type"), nodes * x.hours)]


def _storage(r: PlanResource, x: _Ctx) -> list[Component]:
    cls = r.storage_type or "standard"
    out = [x.component("storage", f"Object storage (S3 {cls})", x.cat.get(f"s3/{cls}", what="S3 storage class"),
                       r.storage_gb),
           x.component("transfer_out", "Data transfer out to the internet",
                       x.cat.get("s3/transfer-out", what="transfer item"),
                       r.transfer_gb)]
    if x.usage["put_requests"]:
        out.append(x.component("put_requests", "PUT, COPY, POST, LIST requests",
                               x.cat.get("s3/requests-put", what="S3 request item"),
                               x.usage["put_requests"]))
    if x.usage["get_requests"]:
        out.append(x.component("get_requests", "GET, SELECT and other requests",
                               x.cat.get("s3/requests-get", what="S3 request item"), x.usage["get_requests"]))
    return out


def _cdn(r: PlanResource, x: _Ctx) -> list[Component]:
    out = [x.component("transfer_out", "Data transfer out (CloudFront, US)",
                       x.cat.get("cloudfront/us-transfer", what="CDN item"),
                       r.transfer_gb)]
    if x.usage["requests"]:
        out.append(x.component("requests", "HTTPS requests (CloudFront, US)",
                               x.cat.get("cloudfront/us-requests-https", what="CDN item"), x.usage["requests"]))
    return out


def _load_balancer(r: PlanResource, x: _Ctx) -> list[Component]:
    return [x.component("hours", f"Application load balancer ({r.count})",
                        x.cat.get("alb/hour", what="load balancer item"),
                        r.count * x.hours),
            x.component("lcu", f"Capacity units ({r.lcu:g} LCU avg x {r.count})",
                        x.cat.get("alb/lcu", what="load balancer item"), r.lcu * r.count * x.hours)]


def _nat_gateway(r: PlanResource, x: _Ctx) -> list[Component]:
    return [x.component("hours", f"NAT gateway ({r.count})", x.cat.get("nat/hour", what="NAT gateway item"),
                        r.count * x.hours),
            x.component("processed", "Data processed", x.cat.get("nat/gb", what="NAT gateway item"),
                        x.usage["processed_gb"])]


def _custom(r: PlanResource, x: _Ctx) -> list[Component]:
    if r.monthly_cost is None:
        raise ConfigError(f"{x.where}: a custom resource needs monthly_cost")
    return [Component(name=r.note or "Fixed monthly price", unit="month", monthly_quantity=r.count,
                      unit_price=r.monthly_cost, price_label=f"{r.monthly_cost:g}",
                      monthly_cost=round(r.count * r.monthly_cost, 4), price_key=None,
                      source="opskit.yaml (monthly_cost)", date="spec", component_id="fixed")]


_KINDS = {"compute": _compute, "database": _database, "cache": _cache, "storage": _storage, "cdn": _cdn,
          "load_balancer": _load_balancer, "nat_gateway": _nat_gateway, "custom": _custom}
