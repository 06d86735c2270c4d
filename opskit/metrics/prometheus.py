"""The prometheus source: instant and range queries against the Prometheus HTTP API.

Timeouts, HTTP errors, error responses, empty results and NaN all come back as no_data with the
query and the reason, never as 0. Several result series (one per instance) are averaged per
timestamp, like the HPA's mean utilization across pods."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from typing import Any, TypedDict, cast

import httpx

from opskit.metrics.base import HttpBacked, MetricRequest, Sample, Series
from opskit.metrics.timeutil import wall_now


class PrometheusError(Exception):
    """A query that could not be answered; the message says why in words."""

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable  # the server, not the query: no point asking it again right away


class PrometheusSource(HttpBacked):
    name = "prometheus"

    def __init__(self, url: str, *, timeout_s: float = 10.0, replica_queries: dict[str, str] | None = None,
                 client: httpx.Client | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.replica_queries = replica_queries or {}
        self._client = client or httpx.Client(timeout=timeout_s + 1.0, trust_env=False)
        self._down: tuple[dt.datetime, str] | None = None

    @property
    def location(self) -> str:
        return self.url

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        if not request.query:
            return Series(request.resource, request.metric,
                          error=f"no prometheus query for {request.resource}.{request.metric} "
                                f"(thresholds[].queries.prometheus in the spec)")
        if self._down is not None and self._down[0] == now:
            # the server did not answer for this evaluation already: fail fast instead of one timeout per query
            return Series(request.resource, request.metric, query=request.query, error=self._down[1])
        try:
            if request.window_s > 0:
                start = now - dt.timedelta(seconds=request.window_s)
                samples, n = self.query_range(request.query, start, now, request.step_s)
            else:
                samples, n = self.query(request.query, now)
        except PrometheusError as exc:
            if exc.unreachable:
                self._down = (now, str(exc))
            return Series(request.resource, request.metric, query=request.query, error=str(exc))
        error = None
        if not samples:
            error = "empty result (no series matched)"
        elif not any(math.isfinite(s.value) for s in samples):
            error = "the query returned only NaN/Inf"
        return Series(request.resource, request.metric, tuple(samples), query=request.query, error=error,
                      labels={"series": str(n)})

    def replicas(self, resource: str) -> int | None:
        query = self.replica_queries.get(resource)
        if not query:
            return None
        try:
            samples, _ = self.query(query, wall_now())
        except PrometheusError:
            return None
        finite = [s.value for s in samples if math.isfinite(s.value)]
        return int(round(finite[-1])) if finite else None

    # the HTTP API

    def query(self, promql: str, at: dt.datetime) -> tuple[list[Sample], int]:
        data = self._get("/api/v1/query", {"query": promql, "time": _ts(at)})
        return _samples(data)

    def query_range(self, promql: str, start: dt.datetime, end: dt.datetime, step_s: float
                    ) -> tuple[list[Sample], int]:
        params = {"query": promql, "start": _ts(start), "end": _ts(end),
                  "step": f"{max(step_s, 0.001):g}"}
        return _samples(self._get("/api/v1/query_range", params))

    def ready(self) -> bool:
        try:
            return self._client.get(f"{self.url}/-/ready", timeout=self.timeout_s).status_code == 200
        except httpx.HTTPError:
            return False

    def _get(self, path: str, params: dict[str, str]) -> QueryData:
        params = {**params, "timeout": f"{self.timeout_s:g}s"}
        try:
            resp = self._client.get(f"{self.url}{path}", params=params, timeout=self.timeout_s + 1.0)
        except httpx.TimeoutException:
            raise PrometheusError(f"timed out after {self.timeout_s:g}s ({self.url})", unreachable=True) from None
        except httpx.HTTPError as exc:
            raise PrometheusError(f"cannot reach Prometheus at {self.url}: {exc}", unreachable=True) from None
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PrometheusError(f"HTTP {resp.status_code} from {self.url}{path}: not a Prometheus API response")
        if resp.status_code >= 400 or body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {resp.status_code}")
            raise PrometheusError(f"{kind}: {body.get('error', 'query failed')}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError("response has no data")
        return cast(QueryData, data)  # a JSON object from the server; _samples checks its shape as it reads


# A point as the HTTP API writes it: [unix seconds, "value as text"]
PointDoc = list[float | str]


class SeriesDoc(TypedDict, total=False):
    """One series of a vector (`value`) or matrix (`values`) result."""

    metric: dict[str, str]
    value: PointDoc
    values: list[PointDoc]


class QueryData(TypedDict, total=False):
    """The `data` of a successful /api/v1/query or /api/v1/query_range answer, as received: a server that
    only wears Prometheus's envelope may send other shapes, so readers still check (`_samples`)."""

    resultType: str
    result: list[SeriesDoc]  # vector and matrix (a scalar's is one point: _parse_samples checks)


def _ts(at: dt.datetime) -> str:
    # rounded down to the millisecond: rounding up would put the answer after `now`, where it does not count
    return f"{math.floor(at.timestamp() * 1000) / 1000:.3f}"


def _value(text: Any) -> float:
    try:
        return float(text)  # Prometheus writes "NaN", "+Inf", "-Inf"
    except (TypeError, ValueError):
        return math.nan


def _at(ts: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(ts), dt.UTC)


def _samples(data: QueryData) -> tuple[list[Sample], int]:
    """The result as one series (the mean per timestamp across result series) and the series count."""
    try:
        return _parse_samples(data)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, OverflowError, OSError) as exc:
        # a proxy or another server answering in Prometheus's envelope with a body of another shape:
        # no data for this row (with why), never an internal error
        raise PrometheusError(f"malformed {data.get('resultType')!r} result in the response "
                              f"({type(exc).__name__}: {exc})") from None


def _parse_samples(data: QueryData) -> tuple[list[Sample], int]:
    kind, result = data.get("resultType"), data.get("result")
    point: object = result
    if kind == "scalar" and isinstance(point, list) and len(point) == 2:
        return [Sample(_value(point[1]), _at(point[0]))], 1
    if kind == "vector":
        rows = [[(r["value"][0], r["value"][1])] for r in result or []]
    elif kind == "matrix":
        rows = [[(ts, v) for ts, v in r.get("values", [])] for r in result or []]
    else:
        raise PrometheusError(f"unsupported result type {kind!r} (need a number per instance)")
    by_time: dict[float, list[float]] = defaultdict(list)
    for row in rows:
        for ts, v in row:
            value = _value(v)
            if math.isfinite(value):
                by_time[float(ts)].append(value)
            else:
                by_time.setdefault(float(ts), [])
    samples = [Sample(sum(vs) / len(vs) if vs else math.nan, _at(ts)) for ts, vs in sorted(by_time.items())]
    return samples, len(rows)
