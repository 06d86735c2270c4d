"""The metrics sources preconditions and verification read, through the MetricsSource protocol.

`json` (a numeric field of a JSON endpoint such as the service's /health) lives here; every other
kind (prometheus, scrape, host, results, file) comes from opskit.metrics' factory."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opskit.errors import ConfigError
from opskit.metrics.base import MetricRequest, MetricsSource, Sample, Series, SourceDefaults

if TYPE_CHECKING:
    from opskit.spec import Spec

SourceFactory = Callable[[str, "str | None"], MetricsSource]


@dataclass
class JsonSource(SourceDefaults):
    """GET a URL, read the number at a dotted path (the request's query, e.g. `workers`)."""

    url: str
    timeout_s: float = 5.0
    name: str = "json"

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        import httpx

        path = request.query or request.metric
        base = Series(request.resource, request.metric, query=f"GET {self.url} -> {path}")
        try:
            resp = httpx.get(self.url, timeout=self.timeout_s, trust_env=False)
            body: Any = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return _with(base, error=f"{type(exc).__name__}: {exc}")
        if resp.status_code >= 400:
            return _with(base, error=f"HTTP {resp.status_code}")
        value: Any = body
        for part in path.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            else:
                return _with(base, error=f"no field {path!r} in the response")
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        if not isinstance(value, int | float):
            return _with(base, error=f"{path} is {value!r}, not a number")
        return _with(base, samples=(Sample(float(value), now),))

    def replicas(self, resource: str) -> int | None:
        return None


def _with(series: Series, **changes: Any) -> Series:
    import dataclasses

    return dataclasses.replace(series, **changes)


def default_factory(spec: Spec | None) -> SourceFactory:
    def make(kind: str, location: str | None) -> MetricsSource:
        if kind == "json":
            if not location:
                raise ConfigError("a json source needs a location (the URL to read)")
            return JsonSource(location)
        from opskit.metrics.sources import make_source

        if spec is None:  # no opskit.yaml here: the sources need only the defaults
            from opskit.spec.schema import Service
            from opskit.spec.schema import Spec as SpecModel

            resolved_spec = SpecModel(service=Service(name="asset-service"))
        else:
            resolved_spec = spec
        try:
            source: MetricsSource = make_source(kind, location, resolved_spec)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"metrics source {kind!r} at {location!r}: {exc}") from None
        return source

    return make


def query_for(resource_metric: str, kind: str, explicit: str | None, spec: Spec | None) -> str | None:
    """The check's own query, else the one opskit.yaml's thresholds give this metric for this source."""
    if explicit:
        return explicit
    if spec is None:
        return None
    resource, _, metric = resource_metric.partition(".")
    for t in spec.thresholds:
        if t.resource == resource and t.metric == metric:
            return getattr(t.queries, kind, None)
    return None


def measure(source: MetricsSource, resource_metric: str, query: str | None, now: dt.datetime) -> tuple[
        float | None, str]:
    """One reading: the latest finite value, or None with the reason (an inconclusive result)."""
    resource, _, metric = resource_metric.partition(".")
    request = MetricRequest(resource=resource, metric=metric or resource, query=query)
    try:
        series = source.read(request, now=now)
    except Exception as exc:  # a source that raises instead of returning no_data is still no data
        return None, f"{type(exc).__name__}: {exc}"
    if series.no_data:
        return None, series.error or "no data (empty or NaN)"
    value = series.latest
    if value is None or not math.isfinite(value):
        return None, "no data (NaN)"
    return value, series.query or ""
