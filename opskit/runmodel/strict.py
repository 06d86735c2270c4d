"""Strict, located access to a parsed results document: every problem names its key path. The per-second
rows of both schema versions are read here (version 1 kept the percentiles beside t)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from opskit.runmodel.document import UnreadableResults
from opskit.runmodel.lenient import counts, int_or_none, latencies, num_or_none
from opskit.runmodel.results import Scope, Second


class Reader:
    """Typed access to the parsed JSON; every problem names the key path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def bad(self, where: str, what: str) -> UnreadableResults:
        return UnreadableResults(f"{self.name}: {where}: {what}")

    def mapping(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.bad(key, "missing" if value is None else "expected an object")
        return value

    def text(self, data: Mapping[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise self.bad(where, "missing" if value is None else "expected a non-empty string")
        return value

    def flag(self, data: Mapping[str, Any], key: str, where: str) -> bool:
        value = data.get(key)
        if not isinstance(value, bool):
            raise self.bad(where, "missing" if value is None else "expected true or false")
        return value

    def number(self, data: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> float | None:
        value = data.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.bad(where, "missing" if value is None else f"expected a number, got {value!r}")
        if value < 0:
            raise self.bad(where, f"cannot be negative, got {value!r}")
        return float(value)

    def count(self, data: Mapping[str, Any], key: str, where: str) -> int:
        value = self.number(data, key, where)
        assert value is not None
        if not value.is_integer():
            raise self.bad(where, f"expected a whole number, got {value!r}")
        return int(value)

    def scope(self, name: str, body: Mapping[str, Any], where: str, timeline: tuple[Second, ...],
              dropped: float | None) -> Scope:
        requests = self.count(body, "requests", f"{where}.requests")
        failures = self.count(body, "failures", f"{where}.failures")
        if failures > requests:
            raise self.bad(f"{where}.failures", f"{failures} failures out of {requests} requests")
        latency = body.get("latency_ms")
        if not isinstance(latency, dict):
            raise self.bad(f"{where}.latency_ms", "missing" if latency is None else "expected an object")
        lat: dict[str, float | None] = {}
        for key, value in latency.items():
            if value is not None:
                self.number(latency, key, f"{where}.latency_ms.{key}")
            lat[key] = num_or_none(value)
        return Scope(name, requests, failures, self.number(body, "rps", f"{where}.rps", optional=True),
                     lat, timeline, dropped, counts(body.get("failures_by_kind")),
                     latencies(body.get("failure_latency_ms")))

    def timeline(self, rows: Any, where: str) -> tuple[Second, ...]:
        if rows is None:
            return ()
        if not isinstance(rows, list):
            raise self.bad(where, "expected a list of per-second rows")
        out = []
        for i, row in enumerate(rows):
            second = _fast_second(row)
            out.append(second if second is not None else self.second(row, f"{where}[{i}]"))
        out.sort(key=lambda s: s.t)
        return tuple(out)

    def second(self, row: Any, at: str) -> Second:
        """The careful reading of one row: the first problem, located."""
        if not isinstance(row, dict):
            raise self.bad(at, "expected an object")
        t = self.number(row, "t", f"{at}.t")
        assert t is not None
        lat, lat_at = row, at  # schema_version 1: the percentiles beside t
        if "latency_ms" in row:
            lat, lat_at = row["latency_ms"], f"{at}.latency_ms"
            if not isinstance(lat, dict):
                raise self.bad(lat_at, "expected an object")
        return Second(
            int(t), self.count(row, "requests", f"{at}.requests"),
            self.count(row, "errors", f"{at}.errors") if "errors" in row else 0,
            self.number(row, "rps", f"{at}.rps", optional=True),
            self.number(lat, "p50", f"{lat_at}.p50", optional=True),
            self.number(lat, "p95", f"{lat_at}.p95", optional=True),
            self.number(lat, "p99", f"{lat_at}.p99", optional=True),
            self.number(row, "dropped", f"{at}.dropped", optional=True),
            *_row_extras(row),
        )


def _fast_second(row: Any) -> Second | None:
    """A well-formed row, read without building error paths (an hour-long run has 3,600 per scope);
    None sends anything unusual to the careful reader, which says what is wrong."""
    if type(row) is not dict:
        return None
    t, requests, errors = row.get("t"), row.get("requests"), row.get("errors", 0)
    if type(t) is not int or type(requests) is not int or type(errors) is not int:
        return None
    if t < 0 or requests < 0 or errors < 0:
        return None
    lat = row.get("latency_ms", row)  # schema_version 1: the percentiles beside t
    if type(lat) is not dict:
        return None
    optional = [row.get("rps"), lat.get("p50"), lat.get("p95"), lat.get("p99"), row.get("dropped")]
    for v in optional:
        if v is not None and (type(v) not in (int, float) or not (0 <= v < math.inf)):
            return None
    rps, p50, p95, p99, dropped = (None if v is None else float(v) for v in optional)
    return Second(t, requests, errors, rps, p50, p95, p99, dropped, *_row_extras(row))


def _row_extras(row: Mapping[str, Any]) -> tuple[float | None, float | None, float | None, int | None]:
    """The run timeline's generator columns (in_flight, scheduled, lag_max_ms, step): informative, so read
    without failing the row."""
    if "in_flight" not in row and "step" not in row:
        return None, None, None, None  # an endpoint row
    return (num_or_none(row.get("in_flight")), num_or_none(row.get("scheduled")),
            num_or_none(row.get("lag_max_ms")), int_or_none(row.get("step")))
