"""results.json (docs/results-schema.md) read into the few facts a gate needs, checked strictly:
the gate fails closed, so anything it cannot read is an UnreadableResults, never a guess.

`parse_results` is for a finished run's file; `from_snapshot` is for the partial dict a running
load test hands the AbortWatcher, where missing pieces are derived from the timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from opskit.resultsfile import UnreadableResults, check, parse

__all__ = ["RunData", "Scope", "Second", "UnreadableResults", "from_data", "from_snapshot", "parse_results"]


@dataclass(frozen=True)
class Second:
    """One row of a per-second timeline."""

    t: int
    requests: int
    errors: int
    rps: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    dropped: float | None = None


@dataclass(frozen=True)
class Scope:
    """The whole run or one endpoint."""

    name: str
    requests: int
    failures: int
    rps: float | None
    latency_ms: dict[str, float | None]
    timeline: tuple[Second, ...]
    dropped: float | None = None  # whole run only

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None


@dataclass(frozen=True)
class RunData:
    scenario: str
    model: str
    total: Scope
    endpoints: dict[str, Scope]
    valid: bool = True
    invalid_reason: str | None = None
    interrupted: bool = False
    aborted: str | None = None
    duration_s: float | None = None
    intended_rate: float | None = None
    users: float | None = None
    target: str | None = None
    started_at: str | None = None
    spec_hash: str | None = None
    git_sha: str | None = None


def parse_results(text: str, name: str = "results.json") -> RunData:
    """A finished run's results file, or UnreadableResults saying where and what."""
    return from_data(parse(text, name), name)


def from_data(doc: object, name: str = "results.json") -> RunData:
    """A finished run's parsed results document, read strictly."""
    data = check(doc, name)
    r = _Reader(name)
    run = r.mapping(data, "run")
    aggregate = r.mapping(data, "aggregate")
    generator = _obj(data.get("generator"))
    timeline = r.timeline(data.get("timeline"), "timeline")
    dropped = r.number(generator, "dropped", "generator.dropped", optional=True)
    if dropped is None and timeline and all(s.dropped is not None for s in timeline):
        dropped = sum(s.dropped or 0 for s in timeline)
    total = r.scope("(all)", aggregate, "aggregate", timeline, dropped)
    endpoints_raw = data.get("endpoints", {})
    if not isinstance(endpoints_raw, dict):
        raise UnreadableResults(f"{name}: endpoints: expected an object")
    endpoints = {}
    for ep, body in endpoints_raw.items():
        where = f"endpoints.{ep}"
        if not isinstance(body, dict):
            raise UnreadableResults(f"{name}: {where}: expected an object")
        rows = dense(r.timeline(body.get("timeline"), f"{where}.timeline"), timeline)
        endpoints[ep] = r.scope(ep, body, where, rows, None)
    return RunData(
        scenario=r.text(run, "scenario", "run.scenario"),
        model=r.text(run, "model", "run.model"),
        total=total,
        endpoints=endpoints,
        valid=r.flag(run, "valid", "run.valid"),
        invalid_reason=run.get("invalid_reason"),
        interrupted=bool(run.get("interrupted") or False),
        aborted=_aborted(run.get("aborted")),
        duration_s=r.number(run, "duration_s", "run.duration_s", optional=True),
        intended_rate=r.number(run, "intended_rate", "run.intended_rate", optional=True),
        users=r.number(run, "users", "run.users", optional=True),
        target=run.get("target"),
        started_at=run.get("started_at"),
        spec_hash=run.get("spec_hash"),
        git_sha=run.get("git_sha"),
    )


def from_snapshot(data: dict[str, Any]) -> RunData:
    """A partial results dict from a running test: aggregates are taken when present and otherwise
    summed from the timeline (percentiles are then unknown, not guessed)."""
    r = _Reader("snapshot")
    run = _obj(data.get("run"))
    timeline = r.timeline(data.get("timeline") or [], "timeline")

    def scope(name: str, body: dict[str, Any], rows: tuple[Second, ...], dropped: float | None) -> Scope:
        latency = _obj(body.get("latency_ms"))
        requests = body.get("requests")
        failures = body.get("failures")
        if not isinstance(requests, int) or not isinstance(failures, int):
            requests, failures = sum(s.requests for s in rows), sum(s.errors for s in rows)
        rps = body.get("rps")
        if not isinstance(rps, int | float) and rows:
            rps = requests / len(rows)
        return Scope(name, requests, failures, rps, {k: _num_or_none(v) for k, v in latency.items()},
                     rows, dropped)

    dropped = sum(s.dropped or 0 for s in timeline) if timeline else None
    generator = data.get("generator")
    if isinstance(generator, dict) and isinstance(generator.get("dropped"), int | float):
        dropped = float(generator["dropped"])
    aggregate = _obj(data.get("aggregate"))
    endpoints = {}
    for ep, body in _obj(data.get("endpoints")).items():
        if isinstance(body, dict):
            rows = dense(r.timeline(body.get("timeline") or [], f"endpoints.{ep}"), timeline)
            endpoints[ep] = scope(ep, body, rows, None)
    return RunData(scenario=str(run.get("scenario", "")), model=str(run.get("model", "")),
                   total=scope("(all)", aggregate, timeline, dropped), endpoints=endpoints)


def dense(rows: tuple[Second, ...], run_rows: tuple[Second, ...]) -> tuple[Second, ...]:
    """An endpoint's timeline with a zero row for every second of the run it has no row for: a writer
    may leave out the seconds an endpoint got no request, and a throughput collapse must read as
    0 req/s, not as a gap that ends a breach. A missing timeline stays missing (no data is not zero)."""
    if not rows or not run_rows:
        return rows
    have = {s.t for s in rows}
    filled = list(rows) + [Second(t=s.t, requests=0, errors=0, rps=0.0) for s in run_rows if s.t not in have]
    return tuple(sorted(filled, key=lambda s: s.t))


def _aborted(value: Any) -> str | None:
    """run.aborted: the reason (a string), or true when the load test only knows that it was stopped."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.strip():
        return value
    return "stopped early by an abort_on_fail criterion"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class _Reader:
    """Typed access to the parsed JSON; every problem names the key path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def bad(self, where: str, what: str) -> UnreadableResults:
        return UnreadableResults(f"{self.name}: {where}: {what}")

    def mapping(self, data: dict[str, Any], key: str) -> dict[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.bad(key, "missing" if value is None else "expected an object")
        return value

    def text(self, data: dict[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise self.bad(where, "missing" if value is None else "expected a non-empty string")
        return value

    def flag(self, data: dict[str, Any], key: str, where: str) -> bool:
        value = data.get(key)
        if not isinstance(value, bool):
            raise self.bad(where, "missing" if value is None else "expected true or false")
        return value

    def number(self, data: dict[str, Any], key: str, where: str, *, optional: bool = False) -> float | None:
        value = data.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.bad(where, "missing" if value is None else f"expected a number, got {value!r}")
        if value < 0:
            raise self.bad(where, f"cannot be negative, got {value!r}")
        return float(value)

    def count(self, data: dict[str, Any], key: str, where: str) -> int:
        value = self.number(data, key, where)
        assert value is not None
        if not value.is_integer():
            raise self.bad(where, f"expected a whole number, got {value!r}")
        return int(value)

    def scope(self, name: str, body: dict[str, Any], where: str, timeline: tuple[Second, ...],
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
            lat[key] = _num_or_none(value)
        return Scope(name, requests, failures, self.number(body, "rps", f"{where}.rps", optional=True),
                     lat, timeline, dropped)

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
        return Second(
            t=int(t), requests=self.count(row, "requests", f"{at}.requests"),
            errors=self.count(row, "errors", f"{at}.errors") if "errors" in row else 0,
            rps=self.number(row, "rps", f"{at}.rps", optional=True),
            p50=self.number(row, "p50", f"{at}.p50", optional=True),
            p95=self.number(row, "p95", f"{at}.p95", optional=True),
            p99=self.number(row, "p99", f"{at}.p99", optional=True),
            dropped=self.number(row, "dropped", f"{at}.dropped", optional=True),
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
    optional = [row.get(k) for k in ("rps", "p50", "p95", "p99", "dropped")]
    for v in optional:
        if v is not None and (type(v) not in (int, float) or not (0 <= v < math.inf)):
            return None
    rps, p50, p95, p99, dropped = (None if v is None else float(v) for v in optional)
    return Second(t, requests, errors, rps, p50, p95, p99, dropped)
