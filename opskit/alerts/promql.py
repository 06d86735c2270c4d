"""Small PromQL building blocks shared by the rules and the dashboards. Pure string work, no I/O."""

from __future__ import annotations

import math
import re

from opskit.units import format_duration

HISTOGRAM = "http_request_duration_seconds"
# the service's own endpoints: Prometheus scrapes /metrics and probes /health and /ready every few seconds,
# so on a quiet service their latency would be the only latency left in a quantile
OWN_ROUTES = ("/metrics", "/health", "/ready")


def not_own_routes() -> str:
    """The matcher that leaves the service's own endpoints out of a latency query."""
    return "route!~" + quote("|".join(OWN_ROUTES))


def quote(value: str) -> str:
    """A PromQL string literal (double-quoted, backslash and quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def matchers(*parts: str, **labels: str) -> str:
    """`{a="x",b=~"y"}` from ready-made matcher strings and label=value pairs (equality)."""
    items = [f"{k}={quote(v)}" for k, v in labels.items()] + [p for p in parts if p]
    return "{" + ",".join(items) + "}"


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """'GET /api/assets' -> ('GET', '/api/assets'); the route is the template the service labels with."""
    method, _, route = endpoint.partition(" ")
    return method, route


def window(seconds: float) -> str:
    """A Prometheus duration: 300 -> '5m', 86400 -> '1d'."""
    return format_duration(seconds)


def rate_window(scrape_interval: float, floor: float = 120) -> str:
    """The rate window for opskit's own queries: at least 4 scrapes and never under `floor` seconds,
    rounded up to whole minutes so it reads well."""
    seconds = max(floor, 4 * scrape_interval)
    return window(math.ceil(seconds / 60) * 60)


def le_values(bound_seconds: float) -> list[str]:
    """How client libraries write this bucket bound in `le`: Python and Prometheus 3 write '5.0',
    Go writes '5'. Both spellings, so a matcher works against either exporter."""
    python_style = repr(float(bound_seconds))  # the shortest round-trip form, like Go's 'g' with -1
    go_style = python_style[:-2] if python_style.endswith(".0") else python_style
    return sorted({python_style, go_style}, key=len)


def le_matcher(bound_seconds: float) -> str:
    values = le_values(bound_seconds)
    if len(values) == 1:
        return f"le={quote(values[0])}"
    return "le=~" + quote("|".join(re.escape(v) for v in values))


def camel(*words: str) -> str:
    """'api', 'cpu_utilization' -> 'ApiCpuUtilization' (alert names)."""
    parts = re.split(r"[^A-Za-z0-9]+", " ".join(words))
    return "".join(p[:1].upper() + p[1:] for p in parts if p)


_RANGE = re.compile(r"\[\s*([0-9][0-9a-z]*)\s*(?::\s*[0-9a-z]*\s*)?\]")


def range_windows(expr: str) -> list[str]:
    """Every range-vector duration in an expression ('[5m]', '[1h:1m]' -> '5m', '1h')."""
    return [m.group(1) for m in _RANGE.finditer(expr)]
