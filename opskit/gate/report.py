"""A gate's whole answer as data, the exit code it means, and the wording every renderer shares.

Exit code, in order: 1 if anything failed (a criterion, a baseline comparison, or the run was
aborted by an abort_on_fail criterion): a proven "no" is the strongest answer and stands even when
another criterion could not be judged. Else 3 if a criterion could not be judged, if nothing at all
could be judged, or (with strict) a baseline comparison was inconclusive. Else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypedDict

from opskit.exitcodes import ExitCode
from opskit.gate.baseline import Comparison
from opskit.gate.criteria import format_value
from opskit.gate.evaluate import Verdict
from opskit.jsontypes import JSONObject

GateStatus = Literal["pass", "fail", "error"]


class GateJSON(TypedDict):
    """`opskit gate -o json`: the report as a document (criteria and comparisons as their JSON forms)."""

    status: GateStatus
    exit_code: int
    scenario: str
    model: str
    results: str
    baseline: str | None
    tolerance_pct: float
    strict: bool
    aborted: str | None
    error: str | None
    counts: dict[str, int]
    reasons: list[str]
    criteria: list[JSONObject]  # each Verdict's fields
    comparisons: list[JSONObject]  # comparison_json of each
    notes: list[str]


@dataclass(frozen=True)
class GateReport:
    scenario: str
    model: str
    results: str
    verdicts: list[Verdict] = field(default_factory=list)
    baseline: str | None = None
    comparisons: list[Comparison] = field(default_factory=list)
    tolerance_pct: float = 10.0
    strict: bool = False
    aborted: str | None = None  # the run was stopped early by an abort_on_fail criterion
    error: str | None = None  # the results could not be judged at all
    notes: list[str] = field(default_factory=list)
    started_at: str | None = None
    duration_s: float | None = None

    @property
    def exit_code(self) -> ExitCode:
        if self.error:
            return ExitCode.RUNTIME
        if self.aborted or any(v.status == "fail" for v in self.verdicts) or any(
                c.status == "fail" for c in self.comparisons):
            return ExitCode.NO
        if any(v.status == "error" for v in self.verdicts):
            return ExitCode.RUNTIME
        if self.strict and any(c.status == "inconclusive" for c in self.comparisons):
            return ExitCode.RUNTIME
        judged = [v for v in self.verdicts if v.status == "pass"] + [
            c for c in self.comparisons if c.status == "pass"]
        if not judged:
            return ExitCode.RUNTIME  # all skipped or inconclusive: passing would be passing on no data
        return ExitCode.OK

    @property
    def status(self) -> GateStatus:
        code = self.exit_code
        return "pass" if code == ExitCode.OK else "fail" if code == ExitCode.NO else "error"

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "fail": 0, "error": 0, "skipped": 0, "inconclusive": 0}
        for v in self.verdicts:
            out[v.status] += 1
        for c in self.comparisons:
            out[c.status] += 1
        if self.aborted:
            out["fail"] += 1
        return out

    def reasons(self) -> list[str]:
        """Why the gate did not pass, one line each (empty when it passed)."""
        out = []
        if self.error:
            out.append(self.error)
        if self.aborted:
            out.append(f"the run was aborted early: {self.aborted}")
        out += [f"{v.criterion}: measured {v.measured_text}, limit {v.limit}" for v in self.verdicts
                if v.status == "fail"]
        out += [f"{v.criterion}: {v.detail}" for v in self.verdicts if v.status == "error"]
        out += [f"{c.name}: {change_text(c)}, allowed {allowed_text(c)}" for c in self.comparisons
                if c.status == "fail"]
        if self.strict:
            out += [f"{c.name}: inconclusive (--strict)" for c in self.comparisons if c.status == "inconclusive"]
        if not out and self.exit_code == ExitCode.RUNTIME:
            out.append("nothing could be judged: every criterion was skipped and no baseline comparison "
                       "passed")
        return out

    def summary(self) -> str:
        n = self.counts()
        parts = [f"{n['pass']} passed", f"{n['fail']} failed"]
        if n["error"]:
            parts.append(f"{n['error']} could not be judged")
        if n["skipped"]:
            parts.append(f"{n['skipped']} skipped")
        if n["inconclusive"]:
            parts.append(f"{n['inconclusive']} inconclusive")
        return f"gate {self.status.upper()} ({self.scenario}): " + ", ".join(parts)

    def to_json(self) -> GateJSON:
        from opskit.output import to_jsonable

        return {
            "status": self.status, "exit_code": int(self.exit_code), "scenario": self.scenario,
            "model": self.model, "results": self.results, "baseline": self.baseline,
            "tolerance_pct": self.tolerance_pct, "strict": self.strict, "aborted": self.aborted,
            "error": self.error, "counts": self.counts(), "reasons": self.reasons(),
            "criteria": to_jsonable(self.verdicts),
            "comparisons": [comparison_json(c) for c in self.comparisons],
            "notes": self.notes,
        }


# the unit of a compared metric's baseline and current figures (docs/guide/json.md)
COMPARED_UNITS = {"p95": "ms", "p99": "ms", "error_rate": "ratio", "rps": "rps"}


def comparison_json(c: Comparison) -> JSONObject:
    """A baseline comparison as JSON: the changes on the scale tolerance_pct has (percent), named so.
    error_rate changes are absolute (percentage points of the failed share), the others relative to the
    baseline; change_basis says which."""

    def pct(x: float | None) -> float | None:
        return None if x is None else x * 100

    return {"name": c.name, "endpoint": c.endpoint, "metric": c.metric, "status": c.status,
            "unit": COMPARED_UNITS.get(c.metric, ""), "baseline": c.baseline, "current": c.current,
            "change_basis": "absolute" if c.metric == "error_rate" else "relative",
            "change_pct": pct(c.change), "ci_low_pct": pct(c.ci_low), "ci_high_pct": pct(c.ci_high),
            "allowed_pct": pct(c.allowed), "detail": c.detail, "runs_needed_s": c.runs_needed_s}


def criteria_rows(report: GateReport) -> list[list[str]]:
    rows = [[v.criterion, v.measured_text, v.limit, v.status.upper()] for v in report.verdicts]
    if report.aborted:
        rows.append(["abort_on_fail", report.aborted, "no abort", "FAIL"])
    return rows


def baseline_rows(report: GateReport) -> list[list[str]]:
    return [[c.name, value_text(c.metric, c.baseline), value_text(c.metric, c.current), change_text(c),
             allowed_text(c), c.status.upper()] for c in report.comparisons]


CRITERIA_COLUMNS = ("criterion", "measured", "limit", "verdict")
BASELINE_COLUMNS = ("comparison", "baseline", "current", "change (95% CI)", "allowed", "verdict")


def value_text(metric: str, value: float | None) -> str:
    return "-" if value is None else format_value(metric, value)


def _signed(metric: str, x: float) -> str:
    if metric == "error_rate":
        return f"{x * 100:+.2f}pp"
    return f"{x * 100:+.1f}%"


def change_text(c: Comparison) -> str:
    if c.change is None:
        return c.detail or "-"
    text = _signed(c.metric, c.change)
    if c.ci_low is not None and c.ci_high is not None:
        text += f" ({_signed(c.metric, c.ci_low)} .. {_signed(c.metric, c.ci_high)})"
    return text


def allowed_text(c: Comparison) -> str:
    return (">= " if c.metric == "rps" else "<= ") + _signed(c.metric, c.allowed)
