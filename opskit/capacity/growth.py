"""Compound growth between the horizons of the spec's growth table, month by month. Pure."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opskit.cost.economics import Demand

if TYPE_CHECKING:
    from opskit.spec.schema import Growth

SECONDS_PER_DAY = 86_400
DAYS_PER_MONTH = 730 / 24  # the same month the prices use (730 hours)


@dataclass(frozen=True)
class Segment:
    start_month: float
    end_month: float
    start_value: float
    end_value: float
    monthly_rate: float  # compound monthly growth rate, 0.26 = +26% a month


def segments(horizons: list[float], values: list[float]) -> list[Segment]:
    out = []
    for (m0, v0), (m1, v1) in zip(zip(horizons, values, strict=True), zip(horizons[1:], values[1:], strict=True),
                                  strict=False):
        rate = (v1 / v0) ** (1 / (m1 - m0)) - 1 if v0 > 0 and v1 > 0 else 0.0
        out.append(Segment(m0, m1, v0, v1, rate))
    return out


def value_at(horizons: list[float], values: list[float], month: float) -> float:
    """Compound (geometric) interpolation between horizons; beyond the table, the nearest segment's rate
    continues. A zero at either end of a segment falls back to a straight line (no growth rate exists)."""
    for m, v in zip(horizons, values, strict=True):
        if month == m:
            return v  # exact at the table's own columns, so hand-checked crossings are not off by rounding
    segs = segments(horizons, values)
    seg = segs[0] if month < horizons[0] else segs[-1]
    for s in segs:
        if s.start_month <= month <= s.end_month:
            seg = s
            break
    span = seg.end_month - seg.start_month
    frac = (month - seg.start_month) / span
    if seg.start_value > 0 and seg.end_value > 0:
        return seg.start_value * math.exp(frac * math.log(seg.end_value / seg.start_value))
    return seg.start_value + frac * (seg.end_value - seg.start_value)


def metric_at(growth: Growth, metric: str, month: float) -> float:
    """A growth metric at a month; peak_rps is derived from daily_requests and the peak-to-mean factor."""
    if metric == "peak_rps":
        return peak_rps(value_at(growth.horizons_months, growth.metrics["daily_requests"].values, month),
                        growth.peak_to_mean)
    return value_at(growth.horizons_months, growth.metrics[metric].values, month)


def demand_at(growth: Growth | None, month: float) -> Demand | None:
    """Monthly requests and MAU at a month, for the unit costs of a plan (None without a growth table)."""
    if growth is None:
        return None
    h = growth.horizons_months
    requests = mau = None
    if "daily_requests" in growth.metrics:
        requests = value_at(h, growth.metrics["daily_requests"].values, month) * DAYS_PER_MONTH
    if "mau" in growth.metrics:
        mau = value_at(h, growth.metrics["mau"].values, month)
    return Demand(requests, mau)


def peak_rps(daily_requests: float, peak_to_mean: float) -> float:
    return daily_requests / SECONDS_PER_DAY * peak_to_mean


def month_label(start: str | None, month: int) -> str:
    """'2027-03' for month 4 of a table starting 2026-11; 'M+4' without a start."""
    if not start:
        return f"M+{month}"
    year, mon = (int(x) for x in start.split("-"))
    index = year * 12 + (mon - 1) + month
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
