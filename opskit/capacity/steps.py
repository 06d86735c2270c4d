"""Load levels for the capacity model: the `steps` of a results.json (docs/results-schema.md) or a CSV of
concurrency,throughput[,p95_ms]. Parsing is separate from reading so the core stays testable on data."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import ConfigError, RuntimeFailure


@dataclass(frozen=True)
class Step:
    concurrency: float
    throughput: float
    p95_ms: float | None = None
    error_rate: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class StepData:
    source: str
    steps: list[Step]
    run: dict[str, object]  # the results file's run block (scenario, started_at, git_sha...), {} for a CSV


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def parse_results(doc: object, source: str) -> StepData:
    from opskit.resultsfile import UnreadableResults, check
    from opskit.runmodel import read_steps

    try:
        data = check(doc, source)
        if not isinstance(data.get("steps"), list):
            raise UnreadableResults(f"{source}: no steps list (see docs/results-schema.md)")
        run = data.get("run") if isinstance(data.get("run"), dict) else {}
        if run and not isinstance(run.get("valid", True), bool):
            raise UnreadableResults(f"{source}: run.valid: expected true or false, got {run.get('valid')!r}")
        if run and run.get("valid") is False:
            # an invalid run (generator saturated, target unreachable...) measured the wrong thing
            reason = run.get("invalid_reason") or "no reason given"
            raise UnreadableResults(f"{source}: the run is marked invalid ({reason}): its steps cannot size capacity")
        levels = read_steps(data, source)
    except UnreadableResults as exc:
        raise RuntimeFailure(str(exc)) from None
    steps = [Step(concurrency=float(s.concurrency), throughput=float(s.rps), p95_ms=_float(s.latency_ms.get("p95")),
                  error_rate=_float(s.error_rate), name=s.name)
             for s in levels if s.requests]  # a step that sent nothing says nothing about capacity
    return StepData(source, steps, dict(run or {}))


def read_results(path: str | Path) -> StepData:
    """Exit 2 when the path names no readable file, 3 when the file is not a usable results file."""
    from opskit.resultsfile import UnreadableResults, load

    try:
        p, data = load(path)
    except UnreadableResults as exc:
        raise RuntimeFailure(str(exc)) from None
    return parse_results(data, str(p))


_N_NAMES = ("concurrency", "n", "users", "processors", "clients", "load", "vus")
_X_NAMES = ("throughput", "rps", "x", "tput", "req_per_s")


def parse_csv(text: str, source: str) -> StepData:
    """A header naming concurrency (or n, users, processors, load) and throughput (or rps, x), optional p95_ms
    and error_rate; a file of bare number pairs is read as concurrency,throughput."""
    rows = [r for r in csv.reader(io.StringIO(text))]
    numbered = [(i + 1, r) for i, r in enumerate(rows) if any(c.strip() for c in r)]
    if not numbered:
        raise ConfigError(f"{source}:1: no data")
    header = [c.strip().lower() for c in numbered[0][1]]
    if _is_number(header[0]):
        cols = {"n": 0, "x": 1}
        body = numbered
    else:
        n_col = next((header.index(n) for n in _N_NAMES if n in header), None)
        x_col = next((header.index(x) for x in _X_NAMES if x in header), None)
        if n_col is None or x_col is None:
            raise ConfigError(f"{source}:1: expected a header with concurrency and throughput (or rps) columns, "
                              f"got {', '.join(header) or 'nothing'}")
        cols = {"n": n_col, "x": x_col}
        for opt in ("p95_ms", "error_rate"):
            if opt in header:
                cols[opt] = header.index(opt)
        body = numbered[1:]
    steps = []
    for line, row in body:
        try:
            vals = {k: row[i].strip() for k, i in cols.items()}
            p95 = float(vals["p95_ms"]) if vals.get("p95_ms") else None
            err = float(vals["error_rate"]) if vals.get("error_rate") else None
            step = Step(float(vals["n"]), float(vals["x"]), p95, err)
        except (IndexError, ValueError):
            raise ConfigError(f"{source}:{line}: expected numbers, got {','.join(row)}") from None
        problem = _row_problem(step)
        if problem:
            raise ConfigError(f"{source}:{line}: {problem}, got {','.join(row)}")
        steps.append(step)
    return StepData(source, steps, {})


def _row_problem(step: Step) -> str | None:
    """What is wrong with one measured load level (nan, inf, negatives), said with the file's line."""
    values = {"concurrency": step.concurrency, "throughput": step.throughput, "p95_ms": step.p95_ms,
              "error_rate": step.error_rate}
    for name, value in values.items():
        if value is not None and not math.isfinite(value):
            return f"{name} must be a finite number"
    if step.concurrency <= 0:
        return "concurrency must be above 0"
    if step.throughput < 0 or (step.p95_ms is not None and step.p95_ms < 0):
        return "throughput and p95_ms cannot be negative"
    if step.error_rate is not None and not 0 <= step.error_rate <= 1:
        return "error_rate is a fraction between 0 and 1"
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(path: str | Path) -> StepData:
    from opskit.spec.loader import read_text

    return parse_csv(read_text(path), str(path))


@dataclass(frozen=True)
class SloCapacity:
    p95_limit_ms: float
    max_error_rate: float
    measured_rps: float | None  # the highest step throughput that still met the SLO
    estimated_rps: float | None  # interpolated to where p95 reaches the limit, between the last good step and the next
    limited_by: str  # "slo" (a later step broke it), "not reached" (every step held), "first step" (none held)


def slo_capacity(steps: list[Step], p95_limit_ms: float, max_error_rate: float = 0.01) -> SloCapacity:
    """Highest throughput at which p95 <= limit and errors <= max, walking the steps in load order."""
    ordered = sorted((s for s in steps if s.p95_ms is not None), key=lambda s: s.concurrency)
    best: Step | None = None
    breaking: Step | None = None
    for s in ordered:
        assert s.p95_ms is not None
        ok = s.p95_ms <= p95_limit_ms and (s.error_rate or 0.0) <= max_error_rate
        if ok and breaking is None:
            if best is None or s.throughput > best.throughput:
                best = s
        elif not ok and breaking is None:
            breaking = s
    if best is None:
        return SloCapacity(p95_limit_ms, max_error_rate, None, None, "first step" if ordered else "no latency data")
    if breaking is None:
        return SloCapacity(p95_limit_ms, max_error_rate, best.throughput, best.throughput, "not reached")
    estimated = best.throughput
    assert best.p95_ms is not None and breaking.p95_ms is not None
    if breaking.p95_ms > best.p95_ms and breaking.throughput > best.throughput and breaking.p95_ms > p95_limit_ms:
        frac = (p95_limit_ms - best.p95_ms) / (breaking.p95_ms - best.p95_ms)
        estimated = best.throughput + frac * (breaking.throughput - best.throughput)
    return SloCapacity(p95_limit_ms, max_error_rate, best.throughput, estimated, "slo")
