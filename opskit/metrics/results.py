"""The results source: a load test's results.json (docs/results-schema.md). The threshold's
`queries.results` is a path into the file, optionally scaled:

    aggregate.latency_ms.p95             the run's p95, taken as holding from start to end of the run
    100 * aggregate.error_rate           error_rate is a fraction; thresholds in % scale it
    endpoints[GET /api/assets].latency_ms.p99
    timeline.latency_ms.p95              one sample per second of the run (for `for:` windows); `timeline.p95`
                                         names the same figure (as schema_version 1 wrote it)

Its clock is the run's end. An invalid run (run.valid false) answers nothing: every reading is no_data.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opskit.errors import RuntimeFailure
from opskit.metrics.base import MetricRequest, Sample, Series
from opskit.metrics.timeutil import parse_time

_SCALED = re.compile(r"^\s*(?:([0-9.eE+-]+)\s*\*\s*)?(.+?)(?:\s*\*\s*([0-9.eE+-]+))?\s*$")
_PART = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


def parse_path(text: str) -> tuple[float, list[str]]:
    m = _SCALED.match(text)
    if not m:
        raise ValueError(f"bad results path {text!r}")
    factor = float(m.group(1) or 1.0) * float(m.group(3) or 1.0)
    parts = [a or b for a, b in _PART.findall(m.group(2))]
    if not parts:
        raise ValueError(f"bad results path {text!r}")
    return factor, parts


def _row_value(row: Mapping[str, Any], path: list[str]) -> Any:
    """One per-second row's figure: `latency_ms.p95`, or a bare `p95` (schema_version 1 rows held it so)."""
    if len(path) == 1 and path[0] not in row and isinstance(row.get("latency_ms"), dict):
        return row["latency_ms"].get(path[0])
    node: Any = row
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


class ResultsSource:
    name = "results"

    def __init__(self, data: Mapping[str, Any], *, location: str = "") -> None:
        self.data = data
        self.location = location
        raw_run = data.get("run")
        run: Mapping[str, Any] = raw_run if isinstance(raw_run, dict) else {}
        try:
            self.started = parse_time(run["started_at"])
            self.ended = parse_time(run["ended_at"])
        except (KeyError, TypeError, ValueError):
            raise RuntimeFailure(f"{location}: run.started_at and run.ended_at must be ISO-8601 times "
                                 f"(docs/results-schema.md)") from None
        valid = run.get("valid", True)
        if not isinstance(valid, bool):  # "yes" or 0 is not a verdict on the run: fail closed, as the gate does
            raise RuntimeFailure(f"{location}: run.valid: expected true or false, got {valid!r}")
        self.invalid = None if valid else (run.get("invalid_reason") or "run.valid is false")

    @classmethod
    def from_path(cls, path: str | Path) -> ResultsSource:
        from opskit.resultsfile import UnreadableResults, load

        try:
            p, data = load(path)
        except UnreadableResults as exc:
            # as for the gate and capacity: --from naming nothing is a usage error (exit 2); a file that is
            # there but empty, truncated, corrupt or of another schema cannot answer (exit 3)
            raise RuntimeFailure(str(exc)) from None
        return cls(data, location=str(p))

    @property
    def recorded_now(self) -> dt.datetime:
        return self.ended

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        def no(error: str) -> Series:
            return Series(request.resource, request.metric, query=request.query or "", error=error)

        if not request.query:
            return no(f"no results path for {request.resource}.{request.metric} "
                      f"(thresholds[].queries.results in the spec)")
        if self.invalid:
            return no(f"the run is invalid: {self.invalid}")
        try:
            factor, parts = parse_path(request.query)
        except ValueError as exc:
            return no(str(exc))
        if parts[0] == "timeline" and len(parts) in (2, 3):
            rows = self.data.get("timeline") or []
            samples = tuple(
                Sample(float(v) * factor, self.started + dt.timedelta(seconds=float(r.get("t", 0))))
                for r in rows if isinstance(r, dict)
                for v in [_row_value(r, parts[1:])] if isinstance(v, int | float) and not isinstance(v, bool))
            return Series(request.resource, request.metric, samples, query=request.query,
                          error=None if samples else f"no timeline rows with {'.'.join(parts[1:])!r}")
        node: Any = self.data
        for part in parts:
            if not isinstance(node, dict) or part not in node:
                return no(f"{'.'.join(parts)} is not in {self.location or 'results.json'} (no {part!r})")
            node = node[part]
        if node is None:
            return no(f"{'.'.join(parts)} is null in the results")
        if not isinstance(node, int | float) or isinstance(node, bool):
            return no(f"{'.'.join(parts)} is not a number")
        value = float(node) * factor
        # a whole-run figure describes the whole run: it held from the start to the end
        samples = (Sample(value, self.started), Sample(value, self.ended))
        return Series(request.resource, request.metric, samples, query=request.query)

    def replicas(self, resource: str) -> int | None:
        return None

    @property
    def measured_target(self) -> str | None:
        # the embedded service stopped with the run; any other target may still be there to act on
        run = self.data.get("run")
        if not isinstance(run, dict) or run.get("target_name") == "embedded":
            return None
        return str(run.get("target") or "") or None

    def sample_times(self) -> list[dt.datetime]:
        return []  # whole-run figures: no earlier evaluation to replay

    def history(self) -> list[tuple[str, int, dt.datetime]]:
        return []

    def close(self) -> None:
        pass
