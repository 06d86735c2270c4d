"""Unit costs: what a plan costs per million requests and per monthly active user. Pure.

The demand a plan serves comes in as numbers (the caller reads the growth table), so cost never imports
capacity: capacity's report prices plans, and the import goes one way only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opskit.cost.estimate import UnitEconomics

if TYPE_CHECKING:
    from opskit.spec.schema import Plan


@dataclass(frozen=True)
class Demand:
    """Traffic at one month of the growth table."""

    monthly_requests: float | None
    mau: float | None


DemandAt = Callable[[float], Demand | None]


def plan_month(plan: Plan) -> float:
    """The month a plan is priced against: the end of the months it covers, the load it is sized for."""
    if plan.months:
        return max(plan.months)
    return 0.0


def unit_economics(total_monthly: float, demand: Demand | None, month: float) -> UnitEconomics | None:
    if demand is None or (demand.monthly_requests is None and demand.mau is None):
        return None
    requests, mau = demand.monthly_requests, demand.mau
    return UnitEconomics(
        month=month,
        monthly_requests=requests,
        mau=mau,
        per_million_requests=round(total_monthly / (requests / 1e6), 4) if requests else None,
        per_mau=round(total_monthly / mau, 4) if mau else None,
    )
