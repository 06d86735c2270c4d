"""Unit costs: what a plan costs per million requests and per monthly active user. Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.capacity.growth import DAYS_PER_MONTH, value_at
from opskit.cost.estimate import UnitEconomics

if TYPE_CHECKING:
    from opskit.spec.schema import Growth, Plan


def plan_month(plan: Plan) -> float:
    """The month a plan is priced against: the end of the months it covers, the load it is sized for."""
    if plan.months:
        return max(plan.months)
    return 0.0


def unit_economics(total_monthly: float, growth: Growth | None, month: float) -> UnitEconomics | None:
    if growth is None:
        return None
    h = growth.horizons_months
    requests = mau = None
    if "daily_requests" in growth.metrics:
        requests = value_at(h, growth.metrics["daily_requests"].values, month) * DAYS_PER_MONTH
    if "mau" in growth.metrics:
        mau = value_at(h, growth.metrics["mau"].values, month)
    if requests is None and mau is None:
        return None
    return UnitEconomics(
        month=month,
        monthly_requests=requests,
        mau=mau,
        per_million_requests=round(total_monthly / (requests / 1e6), 4) if requests else None,
        per_mau=round(total_monthly / mau, 4) if mau else None,
    )
