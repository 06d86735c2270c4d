"""Everything a capacity review needs, gathered into one data structure: the headline answers, the USL
fit, the forecast, the crossings, instances and cost per horizon, playbooks, assumptions and provenance.
Pure: the caller passes what was loaded (spec, runs, prices) and the clock."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opskit.capacity.forecast import Crossing, Forecast, plan_for_month
from opskit.capacity.steps import SloCapacity, StepData
from opskit.capacity.usl import USLFit

if TYPE_CHECKING:
    from opskit.capacity.plan import CapacityPlan
    from opskit.cost.catalog import Catalog
    from opskit.cost.estimate import PlanEstimate
    from opskit.spec.schema import Spec


@dataclass(frozen=True)
class Headline:
    question: str
    answer: str


@dataclass(frozen=True)
class HorizonRow:
    month: int
    label: str
    peak_rps: float | None
    instances: int | None
    needed: int | None
    plan: str | None
    plan_monthly: float | None
    plan_instances: int | None = None  # what the plan provisions for the sized resource
    verdict: str = ""  # the plan's count against the forecast need: "fits", "over by 5", "under by 2"


@dataclass(frozen=True)
class PlaybookRow:
    playbook: str
    why: str
    by: str  # month label it is needed by


@dataclass(frozen=True)
class Review:
    title: str
    generated_at: str
    spec_path: str
    headlines: list[Headline]
    fit: USLFit | None
    fit_note: str | None
    steps: list[StepData]
    slo: SloCapacity | None
    slo_name: str | None
    forecast: Forecast
    horizons: list[HorizonRow]
    estimates: list[PlanEstimate]
    playbooks: list[PlaybookRow]
    assumptions: list[str]
    provenance: list[tuple[str, str]]
    warnings: list[str] = field(default_factory=list)
    capacity_plan: CapacityPlan | None = None  # the cheapest fleet per horizon at the measured capacity
    capacity_plan_note: str | None = None  # why there is none


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.0f}"


def headlines(spec: Spec, fc: Forecast, costs: dict[str, float]) -> list[Headline]:
    out = []
    s = fc.sizing
    if s is not None and "peak_rps" in fc.metrics:
        res = spec.resources[s.resource]
        current = res.current if res.current is not None else s.instances[0]
        serving = max(current - s.redundancy, 1)
        peak = fc.metrics["peak_rps"][0]
        cap = s.capacity_rps * serving
        headroom = 1 - peak / cap
        out.append(Headline("Headroom today", f"{headroom:.1%}: peak {peak:,.1f} req/s against {cap:,.0f} req/s "
                            f"that {serving} of {current} {s.resource} instances serve within the SLO "
                            f"(one held spare for N+{s.redundancy})"
                            + (f"; capacity from the {s.capacity_source}" if s.capacity_source.startswith("probe ")
                               else "")))
    else:
        out.append(Headline("Headroom today", "unknown: no per-instance capacity (run a step load test, or set "
                            "resources.api.capacity_rps)"))
    first: Crossing | None = fc.crossings[0] if fc.crossings else None
    if first is None:
        out.append(Headline("Months until the first threshold",
                            f"none within {fc.months[-1]} months"))
    else:
        when = "already crossed" if first.month == 0 else f"{first.month} months ({first.label})"
        out.append(Headline("Months until the first threshold", f"{when}: {first.what}"))
        act = first.playbook or first.action or "review"
        relief = ""
        if first.plan_note and "relieves it" in first.plan_note:
            relief = f", to {first.plan}'s size (which keeps it under the threshold)"
        elif first.plan_note:
            relief = f" ({first.plan}'s size alone is too small)"
        plan = first.plan
        now_plan = fc.plan_by_month[0]
        cost = ""
        if plan and plan in costs:
            cost = f"; {plan} covers that month at {_money(costs[plan])}/month"
            if now_plan and now_plan in costs and now_plan != plan:
                cost += f" ({'+' if costs[plan] >= costs[now_plan] else '-'}"\
                        f"{_money(abs(costs[plan] - costs[now_plan]))} vs {now_plan})"
        out.append(Headline("Next action", f"{act} by {first.label}{relief}{cost}"))
    return out


def horizon_rows(spec: Spec, fc: Forecast, costs: dict[str, float]) -> list[HorizonRow]:
    assert spec.growth is not None
    months = sorted({int(m) for m in spec.growth.horizons_months if 0 <= m <= fc.months[-1]} | {fc.months[-1]})
    rows = []
    for m in months:
        plan = plan_for_month(spec.plans, m)
        provisioned = None
        res = spec.resources.get(fc.sizing.resource) if fc.sizing else None
        if plan and res is not None and res.plan_resource:
            provisioned = next((r.count for r in spec.plans[plan].resources if r.name == res.plan_resource), None)
        instances = fc.sizing.instances[m] if fc.sizing else None
        rows.append(HorizonRow(
            m, fc.labels[m], fc.metrics["peak_rps"][m] if "peak_rps" in fc.metrics else None,
            instances, fc.sizing.needed[m] if fc.sizing else None,
            plan, costs.get(plan) if plan else None, provisioned, _verdict(provisioned, instances)))
    return rows


def _verdict(provisioned: int | None, needed: int | None) -> str:
    if provisioned is None or needed is None:
        return ""
    if provisioned == needed:
        return "fits"
    return f"over by {provisioned - needed}" if provisioned > needed else f"under by {needed - provisioned}"


def plan_mismatches(spec: Spec, fc: Forecast) -> list[str]:
    """Each plan's count of the sized fleet against what the forecast needs in the months the plan covers:
    a plan that provisions far more (or fewer) instances than the measured capacity calls for is flagged."""
    s = fc.sizing
    if s is None:
        return []
    res = spec.resources.get(s.resource)
    if res is None or not res.plan_resource:
        return []
    out = []
    for name, plan in spec.plans.items():
        if not plan.months or len(plan.months) != 2:
            continue
        pr = next((r for r in plan.resources if r.name == res.plan_resource), None)
        months = [m for m in fc.months if fc.plan_by_month[m] == name]
        if pr is None or pr.count is None or not months:
            continue
        need_max = max(s.instances[m] for m in months)
        need_min = min(s.instances[m] for m in months)
        span = f"{fc.labels[months[0]]}..{fc.labels[months[-1]]}"
        basis = (f"at {s.capacity_rps:,.1f} req/s per instance ({s.capacity_source}), {s.utilization_target_pct:g}% "
                 f"target, N+{s.redundancy}")
        what = f"{name} provisions {pr.count} {s.resource} instances" + (f" ({pr.instance})" if pr.instance else "")
        if pr.count > need_max:
            out.append(f"{what} for {span}; the forecast needs at most {need_max} {basis}: "
                       f"over-provisioned by {pr.count - need_max}")
        elif pr.count < need_min or pr.count < need_max:
            short_from = next(fc.labels[m] for m in months if s.instances[m] > pr.count)
            out.append(f"{what} for {span}; the forecast needs up to {need_max} {basis}: "
                       f"under-provisioned by {need_max - pr.count} from {short_from}")
    return out


def playbook_rows(fc: Forecast) -> list[PlaybookRow]:
    seen: dict[str, PlaybookRow] = {}
    for c in fc.crossings:
        if c.playbook and c.playbook not in seen:
            seen[c.playbook] = PlaybookRow(c.playbook, c.what, c.label)
    return list(seen.values())


def assumptions(spec: Spec, fc: Forecast, catalog: Catalog) -> list[str]:
    out = ["Growth between the growth table's horizons is compound (a constant monthly rate per segment); "
           "beyond the last horizon the last segment's rate continues."]
    for name, segs in fc.rates.items():
        rates = ", ".join(f"{s.monthly_rate:+.1%}/month (M{s.start_month:g}-{s.end_month:g})" for s in segs)
        out.append(f"{name}: {rates}")
    out.append(f"Peak RPS = daily requests / 86,400 x {fc.peak_to_mean:g} (peak-to-mean factor from the spec).")
    if fc.sizing:
        s = fc.sizing
        out.append(f"{s.resource}: {s.capacity_rps:,.1f} req/s per instance ({s.capacity_source}), run at "
                   f"{s.utilization_target_pct:g}% of that, plus {s.redundancy} spare (N+{s.redundancy}), "
                   f"between {s.min} and {s.max} instances. Every plan's instance type is taken to serve "
                   "that much (a probe on each type would say otherwise).")
    for d in fc.drivers:
        out.append(f"{d.key} follows {d.growth_metric}" + (f": {d.note}" if d.note else ""))
    out.append(f"Prices: {catalog.name} on-demand list prices, monthly = hourly x {spec.pricing.hours_per_month:g};"
               " no reserved instances, savings plans, taxes or support plans.")
    out.extend(fc.notes)
    return out


def provenance(spec_path: str, runs: list[StepData], catalog: Catalog) -> list[tuple[str, str]]:
    rows = [("spec", spec_path)]
    for r in runs:
        run = r.run
        bits = [str(run.get(k)) for k in ("scenario", "started_at", "git_sha") if run.get(k)]
        rows.append(("load-test run", f"{r.source} ({len(r.steps)} steps{'; ' + ', '.join(bits) if bits else ''})"))
    if not runs:
        rows.append(("load-test run", "none used"))
    dates: dict[str, int] = {}
    for p in catalog.items.values():
        dates[p.item.date] = dates.get(p.item.date, 0) + 1
    rows.append(("price catalog", f"{catalog.name} (layers: {', '.join(catalog.layers)})"))
    rows.append(("price dates", ", ".join(f"{d} ({n} items)" for d, n in sorted(dates.items()))))
    unverified = sum(1 for p in catalog.items.values() if "unverified" in p.item.source)
    if unverified:
        rows.append(("unverified prices", f"{unverified} of {len(catalog.items)} catalog items are recalled list "
                     "prices, not checked against the AWS price list"))
    return rows


def build_review(spec: Spec, *, spec_path: str, forecast: Forecast, estimates: list[PlanEstimate],
                 catalog: Catalog, runs: list[StepData], fit: USLFit | None, fit_note: str | None,
                 slo: SloCapacity | None, slo_name: str | None, now: dt.datetime,
                 capacity_plan: CapacityPlan | None = None, capacity_plan_note: str | None = None) -> Review:
    costs = {e.plan: e.total_monthly for e in estimates}
    warnings = list(fit.warnings) if fit else []
    warnings += [m.message for e in estimates for m in e.mismatches]
    warnings += plan_mismatches(spec, forecast)
    if fit is not None and fit.unusable:
        warnings.insert(0, f"The USL fit is not usable: {fit.unusable}")
    return Review(
        title=f"Capacity review: {spec.service.name}",
        generated_at=now.strftime("%Y-%m-%d %H:%M UTC"),
        spec_path=spec_path,
        headlines=headlines(spec, forecast, costs),
        fit=fit, fit_note=fit_note, steps=runs, slo=slo, slo_name=slo_name,
        forecast=forecast,
        horizons=horizon_rows(spec, forecast, costs),
        estimates=estimates,
        playbooks=playbook_rows(forecast),
        assumptions=assumptions(spec, forecast, catalog) + (capacity_plan.assumptions if capacity_plan else []),
        provenance=provenance(spec_path, runs, catalog),
        warnings=warnings,
        capacity_plan=capacity_plan,
        capacity_plan_note=capacity_plan_note,
    )
