"""The scale check's instance math from a measured per-instance capacity: the fleet's request rate (demand)
against `resources.<r>.capacity_rps` (a probe's answer or a number) at the resource's utilization target,
HPA-style: desired = ceil(demand / (capacity_rps x utilization_target)). Pure: data in, a Decision out."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from opskit.metrics.base import MetricRequest, Series
from opskit.scaling import hpa
from opskit.scaling.model import Capacity, Decision, DecisionKind
from opskit.scaling.rows import STALENESS_S, fmt_value, no_data, usable

METRIC = "request_rate"  # the row's metric name; a samples file gives demand under it
UNIT = "rps"


def demand_request(source: str, *, resource: str, service_job: str, window: str) -> MetricRequest | None:
    """How a source reads the fleet's completed req/s (the service's own routes left out); None when it cannot.
    The file source matches samples of METRIC; a results file gives the run's whole-run rate."""
    from opskit.alerts.promql import HISTOGRAM, not_own_routes, quote

    queries = {
        "prometheus": f"sum(rate({HISTOGRAM}_count{{job={quote(service_job)},{not_own_routes()}}}[{window}]))",
        "scrape": f"sum(rate({HISTOGRAM}_count{{{not_own_routes()}}}))",
        "results": "aggregate.rps",
        "file": None,
    }
    if source not in queries:
        return None
    return MetricRequest(resource, METRIC, query=queries[source])


def shown(source: str, demand: Series) -> bool:
    """Whether the capacity row belongs in this check: always where opskit has a demand query; from a
    samples file only when it records demand (a file of CPU samples says nothing about req/s)."""
    return source != "file" or bool(demand.samples)


def capacity_row(cap: Capacity, demand: Series, *, now: dt.datetime, current: int | None,
                 playbook: str | None = None, tolerance: float = hpa.TOLERANCE,
                 staleness_s: float = STALENESS_S) -> Decision:
    """The capacity row of a resource: the instances its demand needs at the measured capacity."""
    points = usable(demand, now)
    target = cap.target_rps
    base = Decision(resource=cap.resource, metric=METRIC, mode="capacity", decision="no_data", value=None,
                    unit=UNIT, reason="", target=target, playbook=playbook, query=demand.query, samples=len(points))
    if cap.error is not None or target is None:
        return replace(base, reason=f"no per-instance capacity: {cap.error or 'none given'}")
    missing = no_data(base, demand, points, now, staleness_s)
    if missing is not None:
        return missing
    total = points[-1].value
    need = hpa.ceil(total / target)
    basis = (f"{fmt_value(total, UNIT)} vs {fmt_value(target, UNIT)} per instance ({cap.capacity_rps:.4g} x "
             f"{cap.utilization_target_pct:g}%{', STALE probe' if cap.source.stale else ''})")
    if current is None:
        return replace(base, decision="hold", value=total,
                       reason=f"{basis}: needs {need}; replicas now unknown, so no decision")
    if current == 0:
        return replace(base, decision="hold", value=total, proposed=0,
                       reason=f"{basis}; 0 replicas: scaling is off (as the HPA does)")
    ratio = total / (current * target)
    if hpa.within_tolerance(ratio, tolerance):
        return replace(base, decision="hold", value=total, proposed=current,
                       reason=f"{basis}: {current} instances at ratio {ratio:.3g}, within the tolerance {tolerance:g}")
    proposed = hpa.target_proposal(current, total / current, target, tolerance)
    kind: DecisionKind = "scale_up" if proposed > current else "scale_down" if proposed < current else "hold"
    return replace(base, decision=kind, value=total, proposed=proposed,
                   reason=f"{basis}: ceil({total:.4g} / {target:.4g}) = {proposed}")
