"""Month-by-month forecast from the growth table: peak RPS, instances needed, and the month each
threshold is crossed, with the plan that covers that month and its cost. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opskit.capacity.growth import Segment, metric_at, month_label, segments
from opskit.errors import ConfigError
from opskit.scaling.rows import beyond

if TYPE_CHECKING:
    from opskit.spec.schema import Growth, Plan, Resource, Threshold


@dataclass(frozen=True)
class Sizing:
    resource: str
    capacity_rps: float  # one instance, within the SLO
    capacity_source: str
    utilization_target_pct: float
    redundancy: int
    min: int
    max: int
    needed: list[int]  # per month, before min/max
    instances: list[int]  # per month, clamped to min/max


@dataclass(frozen=True)
class DriverSeries:
    key: str  # "database.storage_utilization"
    growth_metric: str
    unit: str
    threshold: float
    values: list[float]  # per month, in the threshold's unit
    crossing_month: int | None
    note: str | None
    # the same in the demand's own unit (GB of data, connections), with the demand at which the threshold
    # fires each month: a percent of capacity is plotted as demand against capacity, never past 100%
    demand: list[float] = field(default_factory=list)
    demand_unit: str = ""
    limit_now: list[float] = field(default_factory=list)  # against today's capacity
    limit_planned: list[float | None] = field(default_factory=list)  # against what the month's plan provisions


@dataclass(frozen=True)
class Crossing:
    key: str
    month: int
    label: str  # "2027-08" or "M+8"
    value: float
    threshold: float
    unit: str
    what: str
    playbook: str | None
    action: str | None
    plan: str | None  # the plan whose months cover the crossing
    plan_monthly: float | None
    plan_note: str | None = None  # does that plan relieve it?


@dataclass(frozen=True)
class Forecast:
    months: list[int]
    labels: list[str]
    metrics: dict[str, list[float]]
    rates: dict[str, list[Segment]]
    peak_to_mean: float
    sizing: Sizing | None
    drivers: list[DriverSeries]
    crossings: list[Crossing]
    plan_by_month: list[str | None]
    notes: list[str] = field(default_factory=list)


def plan_for_month(plans: dict[str, Plan], month: float) -> str | None:
    """The plan whose months [from, to) hold the month; the last plan also holds its end month."""
    covering = [(name, p.months) for name, p in plans.items() if p.months and len(p.months) == 2]
    for name, (lo, hi) in covering:
        if lo <= month < hi:
            return name
    for name, (_lo, hi) in covering:
        if month == hi:
            return name
    return None


def serving_resource(resources: dict[str, Resource]) -> str:
    """The request-serving fleet: "api", else the first resource with a per-instance req/s capacity."""
    return "api" if "api" in resources else next(
        (k for k, r in resources.items() if r.capacity_rps or r.capacity_probe), "api")


def size(peak: list[float], capacity_rps: float, resource: Resource, name: str, source: str) -> Sizing:
    per_instance = capacity_rps * resource.utilization_target / 100
    needed = [max(1, math.ceil(p / per_instance - 1e-9)) + resource.redundancy for p in peak]
    instances = [min(resource.max, max(resource.min, n)) for n in needed]
    return Sizing(name, capacity_rps, source, resource.utilization_target, resource.redundancy, resource.min,
                  resource.max, needed, instances)


def forecast(
    growth: Growth,
    *,
    months: int = 24,
    resources: dict[str, Resource] | None = None,
    thresholds: list[Threshold] | None = None,
    plans: dict[str, Plan] | None = None,
    plan_costs: dict[str, float] | None = None,
    capacity_rps: float | None = None,
    capacity_source: str = "",
    api_resource: str | None = None,
) -> Forecast:
    if months < 1:
        raise ConfigError(f"--months must be at least 1, got {months}")
    resources, thresholds, plans, plan_costs = resources or {}, thresholds or [], plans or {}, plan_costs or {}
    month_list = list(range(months + 1))
    labels = [month_label(growth.start, m) for m in month_list]
    metrics = {name: [metric_at(growth, name, m) for m in month_list] for name in growth.metrics}
    if "daily_requests" in growth.metrics:
        metrics["peak_rps"] = [metric_at(growth, "peak_rps", m) for m in month_list]
    rates = {name: segments(growth.horizons_months, gm.values) for name, gm in growth.metrics.items()}
    plan_by_month = [plan_for_month(plans, m) for m in month_list]
    notes: list[str] = []

    def crossing(key: str, m: int, value: float, limit: float, unit: str, what: str,
                 th: Threshold | None, plan_note: str | None = None) -> Crossing:
        plan = plan_by_month[m]
        return Crossing(key, m, labels[m], value, limit, unit, what, th.playbook if th else None,
                        th.action if th else None, plan, plan_costs.get(plan) if plan else None, plan_note)

    crossings: list[Crossing] = []
    sizing = None
    api_resource = api_resource or serving_resource(resources)
    api = resources.get(api_resource)
    if "peak_rps" in metrics and api is not None:
        cap = capacity_rps or api.capacity_rps
        if cap is None:
            notes.append(f"no per-instance capacity for {api_resource}: run a step load test "
                         f"(opskit capacity fit) or set resources.{api_resource}.capacity_rps")
        else:
            source = capacity_source if capacity_rps else f"resources.{api_resource}.capacity_rps"
            sizing = size(metrics["peak_rps"], cap, api, api_resource, source)
            over = next((m for m in month_list if sizing.needed[m] > api.max), None)
            if over is not None:
                th = next((t for t in thresholds if t.resource == api_resource and t.playbook), None)
                crossings.append(crossing(
                    f"{api_resource}.instances", over, sizing.needed[over], api.max, "instances",
                    f"{api_resource} needs {sizing.needed[over]} instances, above its max of {api.max}", th))

    drivers = []
    for key, drv in growth.drivers.items():
        res_name, metric_name = key.split(".")
        th = next((t for t in thresholds if t.key == key), None)
        if th is None:
            raise ConfigError(f"growth.drivers.{key}: no threshold for {key} in thresholds:")
        limit = th.scale_up if th.scale_up is not None else th.target
        assert limit is not None
        base = metrics.get(drv.metric)
        if base is None:
            raise ConfigError(f"growth.drivers.{key}.metric: {drv.metric} needs growth.metrics.daily_requests")
        demand = [v * drv.factor for v in base]
        gm = growth.metrics.get(drv.metric)
        # of_capacity compares with resources.<r>.capacity and a plan's storage_gb: gigabytes
        demand_unit = ((gm.unit if gm is not None and gm.unit else "GB") if drv.of_capacity else th.unit)
        values, unit = demand, th.unit
        limit_now = [limit] * len(month_list)
        limit_planned: list[float | None] = [None] * len(month_list)
        res = resources.get(res_name)
        if drv.of_capacity:
            if res is None or res.capacity is None:
                raise ConfigError(f"growth.drivers.{key}: of_capacity needs resources.{res_name}.capacity")
            values = [v / res.capacity * 100 for v in demand]
            unit = "percent"
            limit_now = [res.capacity * limit / 100] * len(month_list)
            limit_planned = [None if (gb := _provisioned_gb(plans, plan_by_month[m], res)) is None
                             else gb * limit / 100 for m in month_list]
        crossed = next((m for m in month_list if beyond(values[m], limit)), None)
        drivers.append(DriverSeries(key, drv.metric, unit, limit, values, crossed, drv.note, demand, demand_unit,
                                    limit_now, limit_planned))
        if crossed is not None:
            plan_note = _plan_relief(plan_by_month[crossed], demand[crossed], limit_planned[crossed], limit,
                                     demand_unit)
            crossings.append(crossing(key, crossed, values[crossed], limit, unit,
                                      f"{key} goes above {_fmt(limit, unit)} ({_fmt(values[crossed], unit)})",
                                      th, plan_note))
    crossings.sort(key=lambda c: (c.month, c.key))
    return Forecast(month_list, labels, metrics, rates, growth.peak_to_mean, sizing, drivers, crossings,
                    plan_by_month, notes)


def _provisioned_gb(plans: dict[str, Plan], plan: str | None, res: Resource) -> float | None:
    """The storage the month's plan provisions for the resource (its plan_resource), if the plan says."""
    if not (plan and res.plan_resource):
        return None
    pr = next((r for r in plans[plan].resources if r.name == res.plan_resource), None)
    return pr.storage_gb if pr is not None and pr.storage_gb else None


def _plan_relief(plan: str | None, demand: float, fires_at: float | None, limit: float, unit: str) -> str | None:
    """For a capacity threshold: is the size the covering plan provisions enough at the crossing month?"""
    if plan is None or fires_at is None:
        return None
    provisioned = fires_at / limit * 100
    used = demand / provisioned * 100
    if not beyond(used, limit):
        return (f"{plan} provisions {provisioned:,.0f} {unit}: {used:.0f}% used then, under {limit:g}%, "
                f"so moving to {plan} by that month relieves it")
    return (f"{plan} provisions {provisioned:,.0f} {unit}: {used:.0f}% used then, above {limit:g}%: "
            f"{plan} is too small (needs more than {demand / limit * 100:,.0f} {unit})")


def _fmt(v: float, unit: str) -> str:
    if unit == "percent":
        return f"{v:.0f}%"
    if unit == "ms":
        return f"{v:,.0f} ms"
    return f"{v:,.0f}"
