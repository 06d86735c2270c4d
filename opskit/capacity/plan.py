"""Cost at measured capacity: for each horizon, the cheapest catalog instance type x count that serves the
forecast peak within the SLO at the utilization target with N+1, beside the spec's own plan for that
month and a verdict on it. Pure: the capacity, the catalog and the spec come in, typed rows go out."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from opskit.capacity.forecast import plan_for_month
from opskit.capacity.growth import DAYS_PER_MONTH, metric_at, month_label
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.cost.catalog import Catalog
    from opskit.spec.schema import Resource, Spec

EC2 = "ec2/"


@dataclass(frozen=True)
class Shape:
    vcpu: int
    memory_gib: float


def shape_of(catalog: Catalog, itype: str) -> Shape | None:
    """An instance type's vCPUs and memory, as its catalog item gives them (`cost catalog import` reads them from
    the AWS offer file; the shipped catalog has them written in); None when the catalog does not know them."""
    priced = catalog.items.get(f"{EC2}{itype}")
    if priced is None or priced.item.vcpu is None or priced.item.memory_gib is None:
        return None
    return Shape(priced.item.vcpu, priced.item.memory_gib)


@dataclass(frozen=True)
class MeasuredCapacity:
    """What one instance of the measured type serves within the SLO, and where that figure came from."""

    rps: float
    source: str  # "load test: p95 reaches 200 ms at 251.3 req/s", "resources.api.capacity_rps", a probe run
    instance_type: str  # the EC2 type the figure was measured on ("t3.medium")
    instance_source: str  # why that type: "--measured-on", "plans.phase-1.api at month 0"


@dataclass(frozen=True)
class Fleet:
    """One instance type x count, priced."""

    instance_type: str
    count: int
    vcpu: int
    capacity_rps: float  # per instance within the SLO, scaled by vCPU from the measured type
    peak_utilization_pct: float  # the forecast peak against the instances that serve it (all but the spares)
    monthly_usd: float  # on-demand, instances only
    reserved_1yr_monthly_usd: float | None  # 1-year no-upfront, where the catalog has the rate
    reserved_3yr_monthly_usd: float | None
    per_million_requests_usd: float | None


@dataclass(frozen=True)
class PlannedFleet:
    """What the spec's plan for the month provisions for the resource, and how it compares."""

    plan: str
    fleet: Fleet | None  # None when the plan's type cannot be priced or sized
    needed: int | None  # instances of the plan's type the forecast needs
    verdict: str  # "fits", "over-provisioned by 6 instances", "under-provisioned by 2 instances", or why unknown
    over_by: int | None  # positive: more than needed; negative: fewer


@dataclass(frozen=True)
class HorizonPlan:
    month: int
    label: str
    peak_rps: float
    monthly_requests: float
    cheapest: Fleet | None
    planned: PlannedFleet | None
    saving_usd: float | None  # plan's instance cost minus the cheapest's
    note: str | None = None


@dataclass(frozen=True)
class CapacityPlan:
    resource: str
    measured: MeasuredCapacity
    utilization_target_pct: float
    redundancy: int
    min_instances: int
    max_instances: int
    candidates: list[str]  # instance types considered
    horizons: list[HorizonPlan]
    assumptions: list[str] = field(default_factory=list)


def measured_type(spec: Spec, resource: str, measured_on: str | None) -> tuple[str, str]:
    """The type the capacity figure was measured on: --measured-on, else the plan covering month 0."""
    if measured_on:
        return measured_on, "--measured-on"
    res = spec.resources.get(resource)
    plan = plan_for_month(spec.plans, 0)
    if res is not None and res.plan_resource and plan is not None:
        pr = next((r for r in spec.plans[plan].resources if r.name == res.plan_resource), None)
        if pr is not None and pr.instance:
            return pr.instance, f"plans.{plan}.{pr.name} at month 0"
    raise ConfigError(f"cannot tell which instance type {resource}'s capacity was measured on: pass "
                      f"--measured-on TYPE, or give resources.{resource}.plan_resource and a plan covering month 0")


def instances_needed(peak_rps: float, capacity_rps: float, resource: Resource) -> int:
    """Like the forecast's sizing: serving instances at the utilization target, plus the spares, at least min."""
    per_instance = capacity_rps * resource.utilization_target / 100
    serving = max(1, math.ceil(peak_rps / per_instance - 1e-9))
    return max(resource.min, serving + resource.redundancy)


def candidate_types(catalog: Catalog, measured: Shape, families: list[str] | None) -> tuple[list[str], list[str]]:
    """EC2 types in the catalog with a known shape and at least the measured type's memory per vCPU (a
    type with less memory per core was not shown to hold the load); (types, notes on those left out)."""
    types, notes = [], []
    for key in sorted(catalog.items):
        if not key.startswith(EC2):
            continue
        itype = key.removeprefix(EC2)
        if families and itype.split(".")[0] not in families:
            continue
        shape = shape_of(catalog, itype)
        if shape is None:
            notes.append(f"{itype}: no vcpu/memory_gib in the catalog, not considered")
            continue
        if shape.memory_gib / shape.vcpu < measured.memory_gib / measured.vcpu - 1e-9:
            continue
        types.append(itype)
    return types, notes


def price_fleet(catalog: Catalog, itype: str, count: int, *, capacity_rps: float, peak_rps: float,
                redundancy: int, monthly_requests: float, hours_per_month: float) -> Fleet:
    item = catalog.get(f"{EC2}{itype}", what="instance type").item
    if item.price is None:
        raise ConfigError(f"catalog price {EC2}{itype} is tiered; an instance needs an hourly price")
    shape = shape_of(catalog, itype)
    reserved = item.reserved or {}
    monthly = item.price * hours_per_month * count
    serving = max(count - redundancy, 1)

    def ri(term: Literal["1yr", "3yr"]) -> float | None:
        r = reserved.get(term)
        return None if r is None else round(r.price * hours_per_month * count, 2)

    return Fleet(itype, count, shape.vcpu if shape else 0, capacity_rps,
                 round(peak_rps / (serving * capacity_rps) * 100, 1), round(monthly, 2), ri("1yr"), ri("3yr"),
                 round(monthly / (monthly_requests / 1e6), 4) if monthly_requests > 0 else None)


def horizon_months(horizons: list[float], months: int) -> list[int]:
    """The growth table's horizons within the window, plus its last month (as the report's horizons table)."""
    return sorted({int(m) for m in horizons if 0 <= m <= months} | {months})


def plan_capacity(spec: Spec, catalog: Catalog, measured: MeasuredCapacity, *, resource: str, months: int = 24,
                  families: list[str] | None = None) -> CapacityPlan:
    growth = spec.growth
    if growth is None:
        raise ConfigError("the spec has no growth: section; capacity plan sizes the fleet for its forecast")
    if "daily_requests" not in growth.metrics:
        raise ConfigError("growth.metrics has no daily_requests: capacity plan needs it for the peak req/s")
    if months < 1:
        raise ConfigError(f"--months must be at least 1, got {months}")
    res = spec.resources.get(resource)
    if res is None:
        raise ConfigError(f"no resources.{resource} in the spec: its min, max, redundancy and utilization "
                          "target size the fleet")
    base = shape_of(catalog, measured.instance_type)
    if base is None:
        known = sorted(k.removeprefix(EC2) for k in catalog.items if k.startswith(EC2)
                       and shape_of(catalog, k.removeprefix(EC2)) is not None)
        raise ConfigError(f"no vCPU figure for {measured.instance_type!r} (the type {resource}'s capacity was "
                          f"measured on, from {measured.instance_source}) in catalog {catalog.name}: give its item "
                          f"vcpu and memory_gib; known: {', '.join(known) or 'none'}")
    types, notes = candidate_types(catalog, base, families)
    if not types:
        raise ConfigError(f"no EC2 instance type in catalog {catalog.name} to plan with"
                          + (f" in families {', '.join(families)}" if families else ""))
    hours = spec.pricing.hours_per_month

    def per_instance(itype: str) -> float:
        shape = shape_of(catalog, itype)
        assert shape is not None
        return measured.rps * shape.vcpu / base.vcpu

    rows = []
    for m in horizon_months(growth.horizons_months, months):
        peak = metric_at(growth, "peak_rps", m)
        requests = metric_at(growth, "daily_requests", m) * DAYS_PER_MONTH
        fleets = []
        for itype in types:
            count = instances_needed(peak, per_instance(itype), res)
            if count > res.max:
                continue
            fleets.append(price_fleet(catalog, itype, count, capacity_rps=per_instance(itype), peak_rps=peak,
                                      redundancy=res.redundancy, monthly_requests=requests, hours_per_month=hours))
        # ties go to fewer instances (less to run), then to the measured type's family (less extrapolation)
        fleets.sort(key=lambda f: (f.monthly_usd, f.count,
                                   f.instance_type.split(".")[0] != measured.instance_type.split(".")[0]))
        cheapest = fleets[0] if fleets else None
        note = None if cheapest else f"no candidate type serves {peak:,.1f} req/s within max {res.max} instances"
        planned = _planned(spec, catalog, res, resource, m, peak, requests, hours, per_instance)
        saving = (round(planned.fleet.monthly_usd - cheapest.monthly_usd, 2)
                  if cheapest and planned and planned.fleet else None)
        rows.append(HorizonPlan(m, month_label(growth.start, m), peak, requests, cheapest, planned, saving, note))
    assumptions = [
        f"{resource}: {measured.rps:,.1f} req/s per {measured.instance_type} within the SLO ({measured.source}); "
        f"measured on {measured.instance_type} ({measured.instance_source}).",
        f"Cost at measured capacity: other instance types are scaled by vCPU from {measured.instance_type} "
        f"({base.vcpu} vCPU): a type with twice the vCPUs serves twice the req/s. Only a load test on that type "
        "can confirm it.",
        f"Candidates: EC2 types in catalog {catalog.name} with at least {measured.instance_type}'s memory per vCPU "
        f"({base.memory_gib / base.vcpu:g} GiB){' in ' + ', '.join(families) if families else ''}; "
        f"vCPU and memory from the catalog's items.",
        f"Each fleet runs at {res.utilization_target:g}% of that capacity at the forecast peak, plus "
        f"{res.redundancy} spare (N+{res.redundancy}), between {res.min} and {res.max} instances.",
        f"Cost: instances only, on-demand hourly x {hours:g} h (reserved 1-/3-year no-upfront where the catalog "
        "has them); no EBS, transfer or load balancer. Burstable types (t3) are priced without CPU-credit "
        "charges: a fleet above their baseline for long pays for surplus credits.",
    ]
    return CapacityPlan(resource, measured, res.utilization_target, res.redundancy, res.min, res.max, types, rows,
                        assumptions + notes)


def _planned(spec: Spec, catalog: Catalog, res: Resource, resource: str, month: int, peak: float,
             requests: float, hours: float, per_instance: Callable[[str], float]) -> PlannedFleet | None:
    plan = plan_for_month(spec.plans, month)
    if plan is None or not res.plan_resource:
        return None
    pr = next((r for r in spec.plans[plan].resources if r.name == res.plan_resource), None)
    if pr is None or not pr.instance or pr.kind != "compute":
        return None
    if shape_of(catalog, pr.instance) is None:
        return PlannedFleet(plan, None, None, f"unknown: no vCPU figure for {pr.instance}", None)
    cap = per_instance(pr.instance)
    fleet = price_fleet(catalog, pr.instance, pr.count, capacity_rps=cap, peak_rps=peak,
                        redundancy=res.redundancy, monthly_requests=requests, hours_per_month=hours)
    needed = instances_needed(peak, cap, res)
    return PlannedFleet(plan, fleet, needed, verdict(pr.count, needed), pr.count - needed)


def verdict(provisioned: int, needed: int) -> str:
    if provisioned == needed:
        return "fits"
    n = abs(provisioned - needed)
    word = "over" if provisioned > needed else "under"
    return f"{word}-provisioned by {n} instance{'s' if n != 1 else ''}"
