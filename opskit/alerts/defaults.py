"""Default PromQL for threshold rows that give no `queries.prometheus`, keyed by metric name, and for each
a recipe of input series that makes the query return a chosen value (for the generated promtool tests).

Host metrics come from node_exporter, picked by `alerts.resource_selectors[resource]` (default
`job="RESOURCE"`); latency and errors come from the service's own histogram. A metric not listed here
gets no alert, and the render says so.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from opskit.alerts.promql import HISTOGRAM, OWN_ROUTES, not_own_routes, quote

SeriesList = list[dict[str, str]]


@dataclass(frozen=True)
class Context:
    selector: str  # matchers for the resource's exporter metrics, without braces
    service_job: str
    window: str  # rate window, e.g. '2m'
    buckets_s: tuple[float, ...]  # the service's histogram bounds in seconds
    steps: int  # how many 1m samples a test series needs


@dataclass(frozen=True)
class Default:
    unit: str
    expr: Callable[[Context, str], str]  # (context, metric name) -> PromQL in the threshold's unit
    # (context, metric name, wanted value) -> input series, or None when no series can produce the value
    series: Callable[[Context, str, float], SeriesList | None]
    # (context, metric name, wanted value) -> the value the query returns on those series
    predict: Callable[[Context, str, float], float | None] = lambda ctx, metric, value: value


def _sel(ctx: Context, *extra: str) -> str:
    return "{" + ",".join(p for p in (ctx.selector, *extra) if p) + "}"


def _counter(name: str, per_minute: float, steps: int) -> dict[str, str]:
    return {"series": name, "values": f"0+{per_minute:g}x{steps}"}


def _gauge(name: str, value: float, steps: int) -> dict[str, str]:
    return {"series": name, "values": f"{value:g}x{steps}"}


def _cpu(ctx: Context, _: str) -> str:
    return f'100 * (1 - avg(rate(node_cpu_seconds_total{_sel(ctx, "mode=" + quote("idle"))}[{ctx.window}])))'


def _cpu_series(ctx: Context, _: str, value: float) -> SeriesList:
    idle_per_minute = 60 * (1 - value / 100)
    return [_counter(f'node_cpu_seconds_total{_sel(ctx, "cpu=" + quote("0"), "mode=" + quote("idle"))}',
                     idle_per_minute, ctx.steps)]


def _memory(ctx: Context, _: str) -> str:
    return (f"100 * (1 - sum(node_memory_MemAvailable_bytes{_sel(ctx)})"
            f" / sum(node_memory_MemTotal_bytes{_sel(ctx)}))")


def _memory_series(ctx: Context, _: str, value: float) -> SeriesList:
    total = 8e9
    return [_gauge(f"node_memory_MemTotal_bytes{_sel(ctx)}", total, ctx.steps),
            _gauge(f"node_memory_MemAvailable_bytes{_sel(ctx)}", total * (1 - value / 100), ctx.steps)]


def _iops(ctx: Context, _: str) -> str:
    return (f"sum(rate(node_disk_reads_completed_total{_sel(ctx)}[{ctx.window}]))"
            f" + sum(rate(node_disk_writes_completed_total{_sel(ctx)}[{ctx.window}]))")


def _iops_series(ctx: Context, _: str, value: float) -> SeriesList:
    dev = "device=" + quote("nvme0n1")
    return [_counter(f"node_disk_reads_completed_total{_sel(ctx, dev)}", 60 * value * 0.75, ctx.steps),
            _counter(f"node_disk_writes_completed_total{_sel(ctx, dev)}", 60 * value * 0.25, ctx.steps)]


_REAL_FS = "fstype!~" + quote("tmpfs|overlay|squashfs")


def _storage(ctx: Context, _: str) -> str:
    # the fullest real filesystem of the resource: one full disk is an outage even if the others are empty
    return (f"100 * max(1 - node_filesystem_avail_bytes{_sel(ctx, _REAL_FS)}"
            f" / node_filesystem_size_bytes{_sel(ctx, _REAL_FS)})")


def _storage_series(ctx: Context, _: str, value: float) -> SeriesList:
    fs = ("fstype=" + quote("ext4"), "mountpoint=" + quote("/var/lib/data"))
    size = 1e11
    return [_gauge(f"node_filesystem_size_bytes{_sel(ctx, *fs)}", size, ctx.steps),
            _gauge(f"node_filesystem_avail_bytes{_sel(ctx, *fs)}", size * (1 - value / 100), ctx.steps)]


_QUANTILE = re.compile(r"^(?:response_time|latency)_p(\d+)$")


def _quantile(metric: str) -> float:
    digits = _QUANTILE.match(metric).group(1)  # type: ignore[union-attr]
    return float("0." + digits)


def _latency(ctx: Context, metric: str) -> str:
    job = "job=" + quote(ctx.service_job)
    return (f"1000 * histogram_quantile({_quantile(metric):g}, sum by (le) "
            f"(rate({HISTOGRAM}_bucket{{{job},{not_own_routes()}}}[{ctx.window}])))")


def scrape_latency(metric: str) -> str:
    """The scrape source's expression for a latency row (it reads one service, so no job matcher)."""
    return f"1000 * histogram_quantile({_quantile(metric):g}, {HISTOGRAM}{{{not_own_routes()}}})"


def latency_bucket_for(buckets_s: tuple[float, ...], value_s: float) -> tuple[float, float] | None:
    """The bucket (lower, upper] that holds `value_s` strictly inside, so a histogram with every
    observation in it has its quantiles in (lower, upper]."""
    lower = 0.0
    for upper in buckets_s:
        if lower < value_s < upper or (value_s == upper and lower < value_s):
            return lower, upper
        lower = upper
    return None


def _latency_series(ctx: Context, metric: str, value: float) -> SeriesList | None:
    """All requests in one bucket: histogram_quantile interpolates inside it to lower + q x width.

    Next to them, the service's own /metrics and /health answer slower than anything (the top bucket), as
    often as the API: a query that counted them would read the top bucket, so the silent case proves the
    route filter."""
    span = latency_bucket_for(ctx.buckets_s, value / 1000)
    if span is None:
        return None
    series = _histogram(ctx, 'route="/api/assets",status_code="200"', span[1], 600)
    for route in OWN_ROUTES[:2]:
        series += _histogram(ctx, f'route={quote(route)},status_code="200"', float("inf"), 300)
    return series


def _histogram(ctx: Context, labels: str, upper: float, per_minute: float) -> SeriesList:
    """Bucket and count series of one route with every observation at or below `upper`."""
    base = f'job={quote(ctx.service_job)},method="GET",{labels}'
    series = []
    for bound in (*ctx.buckets_s, float("inf")):
        le = "+Inf" if bound == float("inf") else repr(float(bound))
        series.append(_counter(f'{HISTOGRAM}_bucket{{{base},le="{le}"}}', per_minute if bound >= upper else 0,
                               ctx.steps))
    series.append(_counter(f"{HISTOGRAM}_count{{{base}}}", per_minute, ctx.steps))
    return series


def latency_value(buckets_s: tuple[float, ...], value_ms: float, quantile: float) -> float | None:
    """What histogram_quantile returns (in ms) for the series `_latency_series` builds."""
    span = latency_bucket_for(buckets_s, value_ms / 1000)
    if span is None:
        return None
    lower, upper = span
    return 1000 * (lower + (upper - lower) * quantile)


def _latency_predict(ctx: Context, metric: str, value: float) -> float | None:
    return latency_value(ctx.buckets_s, value, _quantile(metric))


def _errors(ctx: Context, _: str) -> str:
    job = "job=" + quote(ctx.service_job)
    five = 'status_code=~"5.."'
    return (f"100 * sum(rate({HISTOGRAM}_count{{{job},{five}}}[{ctx.window}]))"
            f" / sum(rate({HISTOGRAM}_count{{{job}}}[{ctx.window}]))")


def _errors_series(ctx: Context, _: str, value: float) -> SeriesList:
    base = f'job={quote(ctx.service_job)},method="GET",route="/api/assets"'
    total = 1000
    return [_counter(f'{HISTOGRAM}_count{{{base},status_code="500"}}', total * value / 100, ctx.steps),
            _counter(f'{HISTOGRAM}_count{{{base},status_code="200"}}', total * (1 - value / 100), ctx.steps)]


DEFAULTS: dict[str, Default] = {
    "cpu_utilization": Default("percent", _cpu, _cpu_series),
    "memory_utilization": Default("percent", _memory, _memory_series),
    "iops": Default("count", _iops, _iops_series),
    "storage_utilization": Default("percent", _storage, _storage_series),
    "error_rate": Default("percent", _errors, _errors_series),
}


# ---- database and Redis rows, over the exporters of `opskit stack up` as `monitor up` scrapes them ------
# Their jobs are fixed (postgres, redis, node, process), not the resource's selector: one host-level
# exporter serves several resources. Other job names: write queries.prometheus in the row.
STACK_JOBS = {"postgres": 'job="postgres"', "redis": 'job="redis"', "node": 'job="node"', "process": 'job="process"'}


def _db_cpu(ctx: Context, _: str) -> str:
    # postgres' processes as a share of all the host's CPUs (what a managed database's CPU % means)
    group = STACK_JOBS["process"] + ',groupname="postgres"'
    return (f"100 * sum(rate(namedprocess_namegroup_cpu_seconds_total{{{group}}}[{ctx.window}]))"
            f" / count(node_cpu_seconds_total{{{STACK_JOBS['node']},mode=\"idle\"}})")


def _db_cpu_series(ctx: Context, _: str, value: float) -> SeriesList:
    group = STACK_JOBS["process"] + ',groupname="postgres"'
    return [_counter(f'namedprocess_namegroup_cpu_seconds_total{{{group},mode="user"}}', 60 * value / 100, ctx.steps),
            _counter(f'node_cpu_seconds_total{{{STACK_JOBS["node"]},cpu="0",mode="idle"}}', 60, ctx.steps)]


def _on_node(ctx: Context) -> Context:
    from dataclasses import replace

    return replace(ctx, selector=STACK_JOBS["node"])


def _db_storage(capacity_gb: float) -> Default:
    capacity = capacity_gb * 1e9

    def expr(ctx: Context, _: str) -> str:
        return f"100 * sum(pg_database_size_bytes{{{STACK_JOBS['postgres']}}}) / {capacity:g}"

    def series(ctx: Context, _: str, value: float) -> SeriesList:
        return [_gauge(f'pg_database_size_bytes{{{STACK_JOBS["postgres"]},datname="opskit"}}', capacity * value / 100,
                       ctx.steps)]

    return Default("percent", expr, series)


def _redis_memory(ctx: Context, _: str) -> str:
    job = STACK_JOBS["redis"]
    # against maxmemory; a Redis without one (0) against the host's memory: never a division by 0
    return (f"100 * sum(redis_memory_used_bytes{{{job}}}) / sum((redis_memory_max_bytes{{{job}}} > 0)"
            f" or redis_total_system_memory_bytes{{{job}}})")


def _redis_memory_series(ctx: Context, _: str, value: float) -> SeriesList:
    job, maxmemory = STACK_JOBS["redis"], 256 * 2**20
    return [_gauge(f"redis_memory_used_bytes{{{job}}}", maxmemory * value / 100, ctx.steps),
            _gauge(f"redis_memory_max_bytes{{{job}}}", maxmemory, ctx.steps),
            _gauge(f"redis_total_system_memory_bytes{{{job}}}", 16 * 2**30, ctx.steps)]


def _redis_connections(ctx: Context, _: str) -> str:
    return f"sum(redis_connected_clients{{{STACK_JOBS['redis']}}})"


def _redis_connections_series(ctx: Context, _: str, value: float) -> SeriesList:
    return [_gauge(f"redis_connected_clients{{{STACK_JOBS['redis']}}}", value, ctx.steps)]


def _stack_unless_selected(resource: str, stack: Default, host: Default | None) -> Default:
    """The stack's query while the resource has the implicit selector job="RESOURCE"; with a
    resource_selectors entry (a host of its own with node_exporter), the host default for that selector."""
    implicit = f'job="{resource}"'

    def pick(ctx: Context) -> Default:
        return stack if host is None or ctx.selector == implicit else host

    return Default(stack.unit, lambda ctx, m: pick(ctx).expr(ctx, m),
                   lambda ctx, m, v: pick(ctx).series(ctx, m, v),
                   lambda ctx, m, v: pick(ctx).predict(ctx, m, v))


RESOURCE_DEFAULTS: dict[tuple[str, str], Default] = {
    ("database", "cpu_utilization"): _stack_unless_selected(
        "database", Default("percent", _db_cpu, _db_cpu_series), DEFAULTS["cpu_utilization"]),
    ("database", "iops"): _stack_unless_selected(
        "database", Default("count", lambda ctx, m: _iops(_on_node(ctx), m),
                            lambda ctx, m, v: _iops_series(_on_node(ctx), m, v)), DEFAULTS["iops"]),
    ("redis", "memory_utilization"): Default("percent", _redis_memory, _redis_memory_series),
    ("redis", "connections"): Default("count", _redis_connections, _redis_connections_series),
}


def default_for(metric: str, resource: str | None = None, capacity_gb: float | None = None) -> Default | None:
    """The default for a row; `capacity_gb` is resources.<resource>.capacity (database storage reads
    pg_database_size_bytes against it; without it, the fullest filesystem of the resource)."""
    if _QUANTILE.match(metric):
        return Default("ms", _latency, _latency_series, _latency_predict)
    if resource == "database" and metric == "storage_utilization" and capacity_gb:
        return _stack_unless_selected("database", _db_storage(capacity_gb), DEFAULTS["storage_utilization"])
    if resource is not None and (resource, metric) in RESOURCE_DEFAULTS:
        return RESOURCE_DEFAULTS[(resource, metric)]
    return DEFAULTS.get(metric)


def known_metrics() -> list[str]:
    return sorted(DEFAULTS) + ["response_time_pNN"]
