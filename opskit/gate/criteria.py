"""The criteria grammar: `[ENDPOINT:] METRIC OP VALUE [for DURATION]`, k6-like and readable.

    p95 < 200ms                     GET /api/assets: p99 < 1s
    error_rate < 1%                 rps >= 500
    dropped == 0                    p95 < 300ms for 30s
    recovery_s < 30s                lost_writes == 0          fault.error_budget_spent < 2%

Values come out canonical: latencies in milliseconds, error_rate and error_budget_spent as fractions
(1% -> 0.01), recovery_s in seconds, everything else a plain number. The fault metrics read a failure
scenario's `fault` block. A malformed expression raises CriterionError with the 1-based
column of the problem, so the command can point at it.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from opskit.units import parse_duration

LATENCY_METRICS = ("p50", "p90", "p95", "p99", "p999", "max", "mean")
# a failure scenario's fault block (results.json "fault"); written bare or as fault.NAME
FAULT_METRICS = ("recovery_s", "lost_writes", "error_budget_spent", "errors_during", "errors_after")
METRICS = (*LATENCY_METRICS, "rps", "error_rate", "requests", "dropped", *FAULT_METRICS)
# metrics with a per-second column in the results timeline, so `for DURATION` can be judged
TIMELINE_METRICS = ("p50", "p95", "p99", "rps", "error_rate", "requests", "dropped")
OPERATORS = ("<=", ">=", "==", "<", ">")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT = re.compile(r"[A-Za-z%]+")
_ENDPOINT_START = re.compile(r"([A-Za-z]+)[ \t]+/")


class CriterionError(ValueError):
    """A malformed criterion; `column` is 1-based."""

    def __init__(self, expr: str, column: int, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.expr = expr
        self.column = column
        self.message = message

    def pointer(self) -> list[str]:
        """The expression with a caret under the column, for error details."""
        return [self.expr, " " * (self.column - 1) + "^"]


@dataclass(frozen=True)
class Criterion:
    endpoint: str | None  # None: the whole run
    metric: str
    op: str
    value: float  # canonical: ms for latencies, a fraction for error_rate
    value_text: str  # as written, for display ("200ms", "1%")
    for_s: float | None = None  # sustained over this many seconds of the timeline
    for_text: str | None = None

    @property
    def text(self) -> str:
        head = f"{self.endpoint}: " if self.endpoint else ""
        tail = f" for {self.for_text}" if self.for_text else ""
        return f"{head}{self.metric} {self.op} {self.value_text}{tail}"

    @property
    def limit_text(self) -> str:
        tail = f" for {self.for_text}" if self.for_text else ""
        return f"{self.op} {self.value_text}{tail}"

    def holds(self, measured: float) -> bool:
        return compare(self.op, measured, self.value)


def compare(op: str, left: float, right: float) -> bool:
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-12)


def unit_of(metric: str) -> str:
    """The unit of a metric's measured value in JSON (docs/guide/json.md): ms, ratio, s, rps or count."""
    if metric in LATENCY_METRICS:
        return "ms"
    if metric in ("error_rate", "error_budget_spent"):
        return "ratio"
    if metric == "recovery_s":
        return "s"
    return "rps" if metric == "rps" else "count"


def format_value(metric: str, value: float) -> str:
    """A measured value in the criterion's terms: 212.4ms, 0.35%, 498.2 rps."""
    if metric in LATENCY_METRICS:
        return f"{value / 1000:.3g}s" if value >= 10_000 else f"{value:.4g}ms"
    if metric in ("error_rate", "error_budget_spent"):
        return f"{value * 100:.3g}%"
    if metric == "recovery_s":
        return f"{value:.3g}s"
    if metric == "rps":
        return f"{value:.4g} rps"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.4g}"


def parse(expr: str) -> Criterion:
    """Parse one criterion or raise CriterionError pointing at the column."""
    return _Parser(expr).criterion()


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.pos = 0

    def fail(self, message: str, pos: int | None = None) -> CriterionError:
        return CriterionError(self.expr, (self.pos if pos is None else pos) + 1, message)

    def skip_ws(self) -> None:
        while self.pos < len(self.expr) and self.expr[self.pos] in " \t":
            self.pos += 1

    def rest(self) -> str:
        return self.expr[self.pos:]

    def criterion(self) -> Criterion:
        self.skip_ws()
        if not self.rest().strip():
            raise self.fail("empty criterion: expected METRIC OP VALUE, like 'p95 < 200ms'")
        endpoint = self.endpoint()
        metric_pos = self.pos
        metric = self.metric()
        op = self.operator()
        value, value_text = self.value(metric)
        for_s, for_text = self.window(metric, metric_pos)
        self.skip_ws()
        if self.pos < len(self.expr):
            raise self.fail(f"unexpected {self.rest()!r}: expected 'for DURATION' or the end")
        if endpoint and metric == "dropped":
            raise self.fail("dropped is counted for the whole run, not per endpoint", metric_pos)
        if endpoint and metric in FAULT_METRICS:
            raise self.fail(f"{metric} is a figure of the run's fault, not of an endpoint", metric_pos)
        return Criterion(endpoint, metric, op, value, value_text, for_s, for_text)

    def endpoint(self) -> str | None:
        match = _ENDPOINT_START.match(self.expr, self.pos)
        if not match:
            if ":" in self.rest():
                head = self.rest().split(":", 1)[0].strip()
                raise self.fail(f'expected an endpoint like "GET /api/assets" before \':\', got {head!r}')
            return None
        method = match.group(1)
        if method not in METHODS:
            if method.upper() in METHODS:
                raise self.fail(f"write the HTTP method in capitals, as results.json names endpoints: "
                                f"{method.upper()!r}")
            raise self.fail(f"unknown HTTP method {method!r} (expected one of {', '.join(METHODS)})")
        path_start = match.end() - 1
        end = path_start
        while end < len(self.expr) and not self.expr[end].isspace() and self.expr[end] != ":":
            end += 1
        path = self.expr[path_start:end]
        self.pos = end
        self.skip_ws()
        if self.pos >= len(self.expr) or self.expr[self.pos] != ":":
            raise self.fail("expected ':' after the endpoint")
        self.pos += 1
        self.skip_ws()
        return f"{method} {path}"

    def metric(self) -> str:
        match = _WORD.match(self.expr, self.pos)
        if not match:
            got = self.rest()[:1] or "the end"
            raise self.fail(f"expected a metric ({', '.join(METRICS)}), got {got!r}")
        word = match.group(0)
        if word == "fault" and self.expr.startswith(".", match.end()):
            inner = _WORD.match(self.expr, match.end() + 1)
            if not inner or inner.group(0) not in FAULT_METRICS:
                raise self.fail(f"unknown fault metric (expected fault. and one of {', '.join(FAULT_METRICS)})")
            self.pos = inner.end()
            self.skip_ws()
            return inner.group(0)
        if word not in METRICS:
            close = difflib.get_close_matches(word.lower(), METRICS, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(METRICS)})"
            raise self.fail(f"unknown metric {word!r}{hint}")
        self.pos = match.end()
        self.skip_ws()
        return word

    def operator(self) -> str:
        for op in OPERATORS:
            if self.expr.startswith(op, self.pos):
                self.pos += len(op)
                self.skip_ws()
                return op
        got = self.rest()[:2] or "the end"
        raise self.fail(f"expected an operator (<, <=, >, >=, ==), got {got!r}")

    def value(self, metric: str) -> tuple[float, str]:
        start = self.pos
        match = _NUMBER.match(self.expr, self.pos)
        if not match:
            got = self.rest().split()[0] if self.rest().split() else "the end"
            raise self.fail(f"expected a number, got {got!r}")
        number = float(match.group(0))
        if not math.isfinite(number):  # 1e400 reads as inf: a limit nothing can cross
            raise self.fail(f"{match.group(0)!r} is too large to be a limit")
        self.pos = match.end()
        unit_pos = self.pos
        while unit_pos < len(self.expr) and self.expr[unit_pos] in " \t":
            unit_pos += 1  # "200 ms" reads as well as "200ms"
        unit_match = _UNIT.match(self.expr, unit_pos)
        if unit_match and unit_match.group(0) == "for":
            unit_match = None
        unit_pos = unit_match.start() if unit_match else self.pos
        unit = unit_match.group(0) if unit_match else ""
        if unit:
            self.pos = unit_match.end()  # type: ignore[union-attr]
        text = self.expr[start:self.pos]
        if unit and unit not in ("ms", "s", "%"):
            raise self.fail(f"unknown unit {unit!r} (expected ms, s or %)", unit_pos)
        if metric in LATENCY_METRICS:
            if unit == "%":
                raise self.fail(f"{metric} is a latency: write it in ms or s", unit_pos)
            return (number * 1000 if unit == "s" else number), text
        if metric == "recovery_s":
            if unit == "%":
                raise self.fail("recovery_s is a time: write it in s or ms", unit_pos)
            return (number / 1000 if unit == "ms" else number), text
        if metric == "error_budget_spent":
            if unit in ("ms", "s"):
                raise self.fail("error_budget_spent is a share of the error budget: write it as 2% or 0.02",
                                unit_pos)
            return (number / 100 if unit == "%" else number), text
        if metric == "error_rate":
            if unit in ("ms", "s"):
                raise self.fail("error_rate is a share of requests: write it as 1% or 0.01", unit_pos)
            if unit == "%":
                if number > 100:
                    raise self.fail("error_rate cannot be above 100%", start)
                return number / 100, text
            if number > 1:
                raise self.fail(f"error_rate without % is a fraction (0.01 = 1%); did you mean {text}%?",
                                start)
            return number, text
        if unit:
            raise self.fail(f"{metric} is a plain number: drop the unit {unit!r}", unit_pos)
        return number, text

    def window(self, metric: str, metric_pos: int) -> tuple[float | None, str | None]:
        self.skip_ws()
        match = _WORD.match(self.expr, self.pos)
        if not match or match.group(0) != "for":
            return None, None
        if metric not in TIMELINE_METRICS:
            raise self.fail(f"{metric} has no per-second timeline; 'for' works with "
                            f"{', '.join(TIMELINE_METRICS)}", metric_pos)
        self.pos = match.end()
        self.skip_ws()
        start = self.pos
        token = self.rest().split()[0] if self.rest().split() else ""
        if not token:
            raise self.fail("expected a duration after 'for', like 30s or 1m")
        try:
            seconds = parse_duration(token)
        except ValueError:
            raise self.fail(f"expected a duration like 30s or 1m, got {token!r}") from None
        if seconds < 1:
            raise self.fail("the timeline has one row per second: use 'for' with 1s or more", start)
        self.pos = start + len(token)
        return seconds, token
