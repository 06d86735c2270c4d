"""Which query reads a threshold row from a metrics source: the one rule alerts, dashboards and
`scale check` share, so an alert never watches a row that `scale check --source prometheus` calls unreadable
(or the other way round). Pure: the spec and the row in, the query and where it came from out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opskit.alerts import promql
from opskit.alerts.defaults import Context, default_for, scrape_latency

if TYPE_CHECKING:
    from opskit.spec.schema import Spec, Threshold

DEFAULTED = ("prometheus", "scrape")  # sources opskit knows default queries for


@dataclass(frozen=True)
class ResolvedQuery:
    expr: str | None  # None: the row cannot be read from this source
    default: bool = False  # opskit wrote it (so the unit tests can drive it with the default's own series)
    note: str = ""  # what was defaulted, or why there is no query


def context(spec: Spec, row: Threshold, steps: int = 0) -> Context:
    """What the default query of a row is built from: the resource's selector, the service's job and buckets."""
    selector = spec.alerts.resource_selectors.get(row.resource, f"job={promql.quote(row.resource)}")
    return Context(selector, spec.service.job, promql.rate_window(spec.alerts.scrape_interval),
                   tuple(b / 1000 for b in spec.service.latency_buckets_ms), steps)


def resolve(spec: Spec, row: Threshold, source: str) -> ResolvedQuery:
    """The row's own `queries.<source>`, else opskit's default for the metric (prometheus and scrape only,
    and only when the default's unit is the row's), else no query with the reason."""
    explicit = getattr(row.queries, source, None)
    if explicit and explicit.strip():
        return ResolvedQuery(explicit.strip())
    key = f"queries.{source}"
    if source not in DEFAULTED:
        return ResolvedQuery(None, note=f"no {key}")
    resource = spec.resources.get(row.resource)
    recipe = default_for(row.metric, row.resource, resource.capacity if resource is not None else None)
    if recipe is None:
        return ResolvedQuery(None, note=f"no {key} and no default for this metric")
    if recipe.unit != row.unit:
        return ResolvedQuery(None, note=f"no {key}; the default query returns {recipe.unit}, the row is in "
                                        f"{row.unit}")
    if source == "scrape":
        if recipe.unit != "ms":  # the scrape source reads the service alone: only its histogram has a default
            return ResolvedQuery(None, note=f"no {key} and no scrape default for this metric")
        return ResolvedQuery(scrape_latency(row.metric), default=True, note=f"no {key}: default for {row.metric}")
    return ResolvedQuery(recipe.expr(context(spec, row), row.metric).strip(), default=True,
                         note=f"no {key}: default query for {row.metric}")
