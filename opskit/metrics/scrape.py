"""The scrape source: reads /metrics endpoints directly (no Prometheus needed), parsed with
prometheus_client.parser. Rates and histogram quantiles come from two scrapes `interval_s` apart;
under --watch the previous evaluation's scrape is the first of the pair."""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence

import httpx

from opskit.metrics import promexpr
from opskit.metrics.base import HttpBacked, MetricRequest, Sample, Series


class ScrapeError(Exception):
    pass


def parse_exposition(text: str, target: int = 0) -> dict[promexpr.Key, float]:
    """Every sample of a text exposition, keyed by (target, sample name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[promexpr.Key, float] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                values[(target, s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    except ValueError as exc:
        raise ScrapeError(f"not a Prometheus text exposition: {exc}") from None
    return values


class ScrapeSource(HttpBacked):
    name = "scrape"

    def __init__(
        self, urls: Sequence[str], *, interval_s: float = 5.0, timeout_s: float = 5.0,
        replica_queries: dict[str, str] | None = None, client: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError("no /metrics URL to scrape")
        self.urls = list(urls)
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.replica_queries = replica_queries or {}
        self._client = client or httpx.Client(timeout=timeout_s, trust_env=False)
        self._sleep, self._monotonic = sleep, monotonic
        self._for: dt.datetime | None = None  # the evaluation time the cached pair belongs to
        self._first: promexpr.Snapshot | None = None
        self._second: promexpr.Snapshot | None = None
        self._error: str | None = None
        self.reached = 0  # targets that answered in the latest scrape

    @property
    def location(self) -> str:
        return ",".join(self.urls)

    def scrape(self) -> promexpr.Snapshot:
        values: dict[promexpr.Key, float] = {}
        errors: list[str] = []
        self.reached = 0
        for i, url in enumerate(self.urls):
            try:
                resp = self._client.get(url, headers={"Accept": "text/plain;version=0.0.4"})
                resp.raise_for_status()
                values.update(parse_exposition(resp.text, i))
                self.reached += 1
            except httpx.TimeoutException:
                errors.append(f"{url}: timed out after {self.timeout_s:g}s")
            except httpx.HTTPStatusError as exc:
                errors.append(f"{url}: HTTP {exc.response.status_code}")
            except httpx.HTTPError as exc:
                errors.append(f"{url}: {exc}")
            except ScrapeError as exc:
                errors.append(f"{url}: {exc}")
        if errors and not self.reached:
            raise ScrapeError("; ".join(errors))
        return promexpr.Snapshot(values, self._monotonic())

    def _snapshots(self, now: dt.datetime, two: bool) -> tuple[promexpr.Snapshot | None, promexpr.Snapshot]:
        if self._for != now:  # a new evaluation: scrape again, reuse the last scrape as the first of the pair
            self._for, self._error = now, None
            previous = self._second
            try:
                self._second = self.scrape()
                self._first = previous
            except ScrapeError as exc:
                self._error, self._first, self._second = str(exc), None, None
        if self._error or self._second is None:
            raise ScrapeError(self._error or "no scrape")
        if two and (self._first is None or self._second.at - self._first.at < self.interval_s):
            # a rate over a gap shorter than interval_s is noise: wait until the first scrape of the pair
            # is interval_s old, then scrape the second again
            if self._first is None:
                self._first = self._second
            self._sleep(max(0.0, self.interval_s - (self._monotonic() - self._first.at)))
            try:
                self._second = self.scrape()
            except ScrapeError as exc:
                self._error = str(exc)
                raise
        return self._first, self._second

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        def no(error: str, query: str = "") -> Series:
            return Series(request.resource, request.metric, query=query, error=error)

        if not request.query:
            return no(f"no scrape expression for {request.resource}.{request.metric} "
                      f"(thresholds[].queries.scrape in the spec)")
        try:
            node = promexpr.parse(request.query)
        except promexpr.ExprError as exc:
            return no(f"bad scrape expression: {exc}", request.query)
        try:
            first, second = self._snapshots(now, promexpr.needs_two_scrapes(node))
            value = promexpr.evaluate(node, first, second)
        except ScrapeError as exc:
            return no(f"scrape failed: {exc}", request.query)
        except promexpr.NoData as exc:
            return no(str(exc), request.query)
        error = None if math.isfinite(value) else "the expression is NaN/Inf"
        return Series(request.resource, request.metric, (Sample(value, now),), query=request.query, error=error,
                      labels={"targets": str(self.reached)})

    def replicas(self, resource: str) -> int | None:
        query = self.replica_queries.get(resource)
        if not query or self._second is None:
            return None
        if query.strip() == "targets":
            return self.reached
        try:
            return int(round(promexpr.evaluate(promexpr.parse(query), self._first, self._second)))
        except (promexpr.ExprError, promexpr.NoData, ValueError):
            return None
