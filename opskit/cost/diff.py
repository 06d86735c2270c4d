"""Compare two priced plans resource by resource. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from opskit.cost.estimate import PlanEstimate


@dataclass(frozen=True)
class DiffRow:
    resource: str
    a_monthly: float | None  # None: the resource is not in that plan
    b_monthly: float | None
    delta: float
    percent: float | None  # None when A is 0 or absent


@dataclass(frozen=True)
class PlanDiff:
    a: str
    b: str
    currency: str
    rows: list[DiffRow]
    total: DiffRow


def _row(name: str, a: float | None, b: float | None) -> DiffRow:
    delta = round((b or 0.0) - (a or 0.0), 2)
    percent = round(delta / a * 100, 1) if a else None
    return DiffRow(name, a, b, delta, percent)


def diff_plans(a: PlanEstimate, b: PlanEstimate) -> PlanDiff:
    a_costs = {r.name: r.monthly_cost for r in a.resources}
    b_costs = {r.name: r.monthly_cost for r in b.resources}
    names = list(a_costs) + [n for n in b_costs if n not in a_costs]
    rows = [_row(n, a_costs.get(n), b_costs.get(n)) for n in names]
    return PlanDiff(a.plan, b.plan, a.currency, rows, _row("total", a.total_monthly, b.total_monthly))
