"""The scrape source: reads /metrics endpoints directly (no Prometheus needed), parsed with
prometheus_client.parser. Rates and histogram quantiles come from two scrapes `interval_s` apart;
under --watch the previous evaluation's scrape is the first of the pair.

Its expressions are opskit.alerts.exprmodel's PromQL subset, read in the scrape dialect:

    process_resident_memory_bytes                     instant value (summed over matching series)
    rate(asset_operations_total{status="error"})      per second between the two scrapes
    increase(http_request_duration_seconds_count)     increase between the two scrapes
    histogram_quantile(0.95, http_request_duration_seconds{route="/api/assets"})
    100 * rate(process_cpu_seconds_total)             + - * / and parentheses on numbers
    avg(x) sum(x) min(x) max(x) count(x)              aggregations over the matching series

A histogram named without `_bucket` means the quantile of the observations made between the two
scrapes. A counter series that appears only in the second scrape counts from 0 (client libraries
create labelled series on first use). Counter resets count the new value as the increase.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from opskit.alerts.exprmodel import BinOp, Call, ExprError, Labels, Num, Selector, bucket_quantile, parse, satisfies
from opskit.metrics.base import HttpBacked, MetricRequest, Sample, Series


class ScrapeError(Exception):
    pass


class NoData(Exception):
    """The scrape expression is valid but the scrapes cannot give a number."""


Key = tuple[int, str, Labels]  # (target index, sample name, sorted labels)
Vector = dict[Key, float]


@dataclass(frozen=True)
class Snapshot:
    """One scrape of every target: sample values by key, and when it was taken (monotonic seconds)."""

    values: dict[Key, float]
    at: float


def parse_exposition(text: str, target: int = 0) -> dict[Key, float]:
    """Every sample of a text exposition, keyed by (target, sample name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    values: dict[Key, float] = {}
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
        self._first: Snapshot | None = None
        self._second: Snapshot | None = None
        self._error: str | None = None
        self.reached = 0  # targets that answered in the latest scrape

    @property
    def location(self) -> str:
        return ",".join(self.urls)

    def scrape(self) -> Snapshot:
        values: dict[Key, float] = {}
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
        return Snapshot(values, self._monotonic())

    def _snapshots(self, now: dt.datetime, two: bool) -> tuple[Snapshot | None, Snapshot]:
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
            node = parse(request.query, scrape=True)
        except ExprError as exc:
            return no(f"bad scrape expression: {exc}", request.query)
        try:
            first, second = self._snapshots(now, needs_two_scrapes(node))
            value = evaluate(node, first, second)
        except ScrapeError as exc:
            return no(f"scrape failed: {exc}", request.query)
        except NoData as exc:
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
            return int(round(evaluate(parse(query, scrape=True), self._first, self._second)))
        except (ExprError, NoData, ValueError):
            return None


# ---- the expressions (opskit.alerts.exprmodel's trees) over two scrapes ----------------------------------

def needs_two_scrapes(node: object) -> bool:
    if isinstance(node, Call):
        return node.fn in ("rate", "increase", "histogram_quantile") or any(needs_two_scrapes(a) for a in node.args)
    if isinstance(node, BinOp):
        return needs_two_scrapes(node.left) or needs_two_scrapes(node.right)
    return False


def evaluate(node: object, first: Snapshot | None, second: Snapshot) -> float:
    """The expression's value; raises NoData when the scrapes cannot give one."""
    return _scalar(_eval(node, first, second), node)


def _scalar(value: float | Vector, node: object) -> float:
    if isinstance(value, dict):
        if not value:
            raise NoData(f"no series matched {_describe(node)}")
        return sum(value.values())
    return value


def _describe(node: object) -> str:
    if isinstance(node, Selector):
        return node.text()
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(_describe(a) for a in node.args)})"
    if isinstance(node, Num):
        return f"{node.value:g}"
    if isinstance(node, BinOp):
        return f"{_describe(node.left)} {node.op} {_describe(node.right)}"
    return str(node)


_AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "sum": sum, "avg": lambda v: sum(v) / len(v), "min": min, "max": max, "count": lambda v: float(len(v))}


def _eval(node: object, first: Snapshot | None, second: Snapshot) -> float | Vector:
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Selector):
        return select(second, node)
    if isinstance(node, BinOp):
        a = _scalar(_eval(node.left, first, second), node.left)
        b = _scalar(_eval(node.right, first, second), node.right)
        if node.op == "/":
            return a / b if b else math.nan
        return {"+": a + b, "-": a - b, "*": a * b}[node.op]
    assert isinstance(node, Call)
    if node.fn in ("rate", "increase"):
        assert isinstance(node.args[0], Selector)
        return _increase(node.args[0], first, second, per_second=node.fn == "rate")
    if node.fn == "histogram_quantile":
        assert isinstance(node.args[0], Num)
        return _quantile(node.args[0].value, node.args[1], first, second)
    inner = _eval(node.args[0], first, second)
    values = list(inner.values()) if isinstance(inner, dict) else [inner]
    if not values:
        raise NoData(f"no series matched {_describe(node.args[0])}")
    return _AGGREGATE[node.fn](values)


def select(snap: Snapshot, sel: Selector) -> Vector:
    return {k: v for k, v in snap.values.items() if k[1] == sel.name and satisfies(sel, dict(k[2]))}


def _increase(sel: Selector, first: Snapshot | None, second: Snapshot, *, per_second: bool) -> Vector:
    if first is None:
        raise NoData(f"{'rate' if per_second else 'increase'}({sel.text()}) needs two scrapes")
    now = select(second, sel)
    elapsed = second.at - first.at
    if per_second and elapsed <= 0:
        raise NoData("the two scrapes were taken at the same time")
    out: Vector = {}
    for key, v2 in now.items():
        v1 = first.values.get(key, 0.0)
        delta = v2 - v1 if v2 >= v1 else v2  # a reset: the process restarted and counts from 0
        out[key] = delta / elapsed if per_second else delta
    return out


def _quantile(q: float, arg: object, first: Snapshot | None, second: Snapshot) -> float:
    if isinstance(arg, Selector):
        name = arg.name if arg.name.endswith("_bucket") else f"{arg.name}_bucket"
        buckets = _increase(Selector(name, arg.matchers), first, second, per_second=False)
    else:
        value = _eval(arg, first, second)
        if not isinstance(value, dict):
            raise NoData("histogram_quantile needs bucket series")
        buckets = value
    by_le: dict[float, float] = defaultdict(float)
    for (_, _, labels), v in buckets.items():
        le = dict(labels).get("le")
        if le is not None:
            by_le[float(le)] += v
    if not by_le:
        raise NoData(f"no histogram buckets matched {_describe(arg)}")
    if not math.isinf(max(by_le)):
        raise NoData("histogram has no +Inf bucket")
    if by_le[math.inf] <= 0:
        raise NoData("no observations between the two scrapes")
    return bucket_quantile(q, by_le)
