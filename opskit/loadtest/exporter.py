"""A run's live metrics in Prometheus text format, for the load-test dashboard (job `opskit-loadtest`).

The names are the contract in `opskit.alerts.loadtest_metrics`. Everything is computed at scrape time
from what the master already merged (the aggregator's exact HDR histograms, the generator counters),
so the exporter adds no work per request and its counters equal results.json at the end of the run:
requests and failures per endpoint are the same numbers, and the histogram's `_count` is requests
minus failures (latencies are of successful requests, failures are timed apart); the quantile summaries'
quantiles are the same HDR percentiles (latencies from the intended start in the open model).

`families()` is pure (a `RunView` in, metric families out); `serve()` is the small I/O part: its own
CollectorRegistry (never the process-global one) on a loopback port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opskit.alerts import loadtest_metrics as m

# the asset service's own buckets, so client and service histograms line up in the dashboard
from opskit.assetsvc.config import DEFAULT_BUCKETS as BUCKETS_S
from opskit.loadtest import hdr

QUANTILES = ((0.5, 50.0), (0.95, 95.0), (0.99, 99.0))


@dataclass(frozen=True)
class EndpointView:
    hist: Any  # HdrHistogram of the run so far (microseconds)
    errors: int


@dataclass(frozen=True)
class RunView:
    """What the exporter shows at one scrape; built by the runner from its live state."""

    run_id: str
    scenario: str
    model: str  # open | closed
    running: bool
    elapsed_s: float
    duration_s: float
    target_rps: float  # offered arrival rate now (0 in the closed model)
    users: int
    in_flight: int
    scheduled: int
    dropped: int
    step_index: int | None
    step_name: str | None
    endpoints: dict[str, EndpointView] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # proc -> last sample (% of one core)


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """'GET /api/assets/{id}' -> ('GET', '/api/assets/{id}'); a name without a method keeps method ''."""
    method, sep, rest = endpoint.partition(" ")
    if sep and rest and method.isalpha() and method.isupper():
        return method, rest
    return "", endpoint


@dataclass(frozen=True)
class _Stats:
    """One histogram's numbers for a scrape, from a single numpy pass over its counts (a scrape runs on
    the master's event loop, which in a one-process run is also the generator's: keep it short)."""

    count: int
    sum_s: float
    buckets: list[int]  # cumulative, one per BUCKETS_S bound
    quantiles_s: list[float]  # one per QUANTILES; empty when count == 0


class _Layout:
    """Per-index facts shared by every histogram (they all have hdr.new()'s parameters), computed once."""

    def __init__(self, hist: Any) -> None:
        import numpy as np

        self.hist = hist  # a template for index <-> value conversions
        n = hist.counts_len
        # the median equivalent value of each index, as HdrHistogram's mean counts it (hdr._mean)
        self.medians = hdr.median_values(hist, np.arange(n, dtype=np.int64)).astype(np.float64)
        last = n - 1
        # index of each bucket bound: HDR buckets are < 0.1% wide, so a value within 0.1% above a bound
        # may count under it, far below what any dashboard shows
        self.bound_index = [min(hist.get_counts_array_index(min(int(round(b * 1e6)), hdr.HIGHEST_US)), last)
                            for b in BUCKETS_S]

    def stats(self, counts: Any) -> _Stats:
        import numpy as np

        cumulative = np.cumsum(counts)
        total = int(cumulative[-1])
        buckets = [int(cumulative[i]) for i in self.bound_index]
        if not total:
            return _Stats(0, 0.0, buckets, [])
        # HdrHistogram's get_value_at_percentile, as hdr.values_at does it (one searchsorted for all three)
        targets = np.array([max(int(pct * total / 100 + 0.5), 1) for _, pct in QUANTILES], dtype=cumulative.dtype)
        quantiles = []
        for index in np.searchsorted(cumulative, targets, side="left"):
            value = self.hist.get_highest_equivalent_value(self.hist.get_value_from_index(
                min(int(index), len(cumulative) - 1)))
            quantiles.append(value / 1_000_000)
        sum_s = float((counts.astype(np.float64) * self.medians).sum()) / 1_000_000  # np.dot: BLAS, ms
        return _Stats(total, sum_s, buckets, quantiles)


_LAYOUT: _Layout | None = None


def _layout() -> _Layout:
    global _LAYOUT
    if _LAYOUT is None:
        _LAYOUT = _Layout(hdr.new())
    return _LAYOUT


def _counts(hist: Any) -> Any:
    import numpy as np

    return np.ctypeslib.as_array(hist.counts, shape=(hist.counts_len,))


def families(view: RunView) -> list[Any]:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        SummaryMetricFamily,
    )

    base = ["run_id", "scenario"]
    base_values = [view.run_id, view.scenario]
    ep_labels = [*base, "name", "method"]

    def metric(cls: Any, name: str, doc: str, labels: Sequence[str] = ()) -> Any:
        # counters are named without _total here; prometheus_client adds it on exposition
        short = name.removesuffix("_total") if cls is CounterMetricFamily else name
        return cls(short, doc, labels=[*base, *labels])

    requests = metric(CounterMetricFamily, m.REQUESTS, "Requests completed (success or failure).",
                      ["name", "method"])
    failures = metric(CounterMetricFamily, m.FAILURES, "Requests that failed.", ["name", "method"])
    latency = HistogramMetricFamily(m.RESPONSE_TIME, "Client-side response time of successful requests (from "
                                    "the intended start in the open model), from the run's HDR histograms.",
                                    labels=ep_labels)
    quantiles = SummaryMetricFamily(m.LATENCY_SUMMARY, "HDR percentiles of the run so far, per request "
                                    "(the numbers results.json reports).", labels=ep_labels)
    aggregate_q = SummaryMetricFamily(m.AGGREGATE_LATENCY_SUMMARY, "HDR percentiles of the run so far, all "
                                      "requests.", labels=base)
    layout = _layout()
    merged: Any = None
    for endpoint in sorted(view.endpoints):
        ep = view.endpoints[endpoint]
        method, name = split_endpoint(endpoint)
        values = [*base_values, name, method]
        counts = _counts(ep.hist)
        st = layout.stats(counts)
        requests.add_metric(values, st.count + ep.errors)  # the histogram holds the successes only
        failures.add_metric(values, ep.errors)
        buckets = [(_le(b), float(c)) for b, c in zip(BUCKETS_S, st.buckets, strict=True)]
        buckets.append(("+Inf", float(st.count)))
        latency.add_metric(values, buckets, sum_value=st.sum_s)
        if st.count:
            merged = counts.astype("int64") if merged is None else merged + counts
            _summary(quantiles, ep_labels, values, st)
    if merged is not None:  # exact: HDR merging is adding the counts
        _summary(aggregate_q, base, base_values, layout.stats(merged))

    def gauge(name: str, doc: str, value: float) -> Any:
        g = metric(GaugeMetricFamily, name, doc)
        g.add_metric(base_values, value)
        return g

    dropped = metric(CounterMetricFamily, m.DROPPED, "Arrivals dropped: max_in_flight requests were in flight.")
    dropped.add_metric(base_values, view.dropped)
    scheduled = metric(CounterMetricFamily, m.SCHEDULED, "Arrivals the open-model schedule reached "
                       "(sent + dropped).")
    scheduled.add_metric(base_values, view.scheduled)
    cpu = metric(GaugeMetricFamily, m.GENERATOR_CPU, "Generator process CPU, % of one core (1 s sample).",
                 ["proc"])
    for proc in sorted(view.cpu):
        cpu.add_metric([*base_values, proc], view.cpu[proc])
    step = metric(GaugeMetricFamily, m.STEP, "Index of the current step (the name is the step label).", ["step"])
    if view.step_index is not None:
        step.add_metric([*base_values, view.step_name or ""], view.step_index)
    return [
        requests, failures, latency, quantiles, aggregate_q, dropped, scheduled,
        gauge(m.USERS, "Running users (closed model); requests in flight (open model).", view.users),
        gauge(m.TARGET_RPS, "Offered arrival rate now (open model; 0 in the closed model).", view.target_rps),
        gauge(m.IN_FLIGHT, "Most requests in flight during the last complete second.", view.in_flight),
        cpu, step,
        gauge(m.ELAPSED, "Seconds since the load started.", round(view.elapsed_s, 3)),
        gauge(m.DURATION, "The schedule's length in seconds.", view.duration_s),
        gauge(m.RUNNING, "1 while load is generated, 0 once the run is over.", 1.0 if view.running else 0.0),
    ]


def _summary(family: Any, names: Sequence[str], values: Sequence[str], st: _Stats) -> None:
    """A summary's quantile samples (SummaryMetricFamily.add_metric only writes _count and _sum)."""
    from prometheus_client.samples import Sample

    labels = dict(zip(names, values, strict=True))
    for (q, _), v in zip(QUANTILES, st.quantiles_s, strict=True):
        family.samples.append(Sample(family.name, {**labels, "quantile": _le(q)}, v, None))
    family.add_metric(list(values), st.count, st.sum_s)


def _le(v: float) -> str:
    return repr(float(v))  # Prometheus' own float formatting: 0.005, 0.95, 1.0


class _Collector:
    def __init__(self, view: Callable[[], RunView]) -> None:
        self._view = view

    def collect(self) -> Iterator[Any]:
        yield from families(self._view())

    def describe(self) -> list[Any]:
        return []  # nothing to describe up front: registering must not call the view before the run


@dataclass
class Endpoint:
    url: str
    _server: Any

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def serve(view: Callable[[], RunView], port: int, host: str = "127.0.0.1") -> Endpoint:
    """Serve /metrics on host:port (0: any free port) until close(). Raises OSError if the port is taken."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import start_wsgi_server

    _layout()  # built now, not at the first scrape in the middle of the load (it takes tens of ms)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(view))
    server, _thread = start_wsgi_server(port, addr=host, registry=registry)
    return Endpoint(f"http://{host}:{server.server_port}/metrics", server)
