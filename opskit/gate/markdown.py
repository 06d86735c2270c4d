"""The Markdown summary: what a reviewer sees in the GitHub job summary or pastes into a PR."""

from __future__ import annotations

from pathlib import PurePath

from opskit.gate.report import (
    BASELINE_COLUMNS,
    CRITERIA_COLUMNS,
    GateReport,
    baseline_rows,
    criteria_rows,
)

_BADGE = {"pass": "✅", "fail": "❌", "error": "⚠️"}
_VERDICT = {"PASS": "✅ pass", "FAIL": "❌ fail", "ERROR": "⚠️ no data", "SKIPPED": "⏭️ skipped",
            "INCONCLUSIVE": "❔ inconclusive"}


def render_markdown(report: GateReport) -> str:
    from opskit.output import markdown_table

    lines = [f"### {_BADGE[report.status]} opskit gate: {report.status.upper()} ({report.scenario})", ""]
    about = f"Results `{PurePath(report.results).name}`, scenario **{report.scenario}** ({report.model} model)"
    if report.baseline:
        about += f", baseline `{PurePath(report.baseline).name}` (tolerance {report.tolerance_pct:g}%)"
    lines += [about + ".", ""]
    reasons = report.reasons()
    if reasons:
        lines += ["**Why:**", ""] + [f"- {r}" for r in reasons] + [""]
    if report.verdicts or report.aborted:
        rows = [[*row[:3], _VERDICT.get(row[3], row[3])] for row in criteria_rows(report)]
        lines += [markdown_table(CRITERIA_COLUMNS, rows)]
    if report.comparisons:
        rows = [[*row[:5], _VERDICT.get(row[5], row[5])] for row in baseline_rows(report)]
        lines += ["**Against the baseline** (change of the whole-run figure shown, 95% bootstrap interval over "
                  "the run's seconds; inconclusive means the interval straddles the tolerance)", "",
                  markdown_table(BASELINE_COLUMNS, rows)]
    details = [f"- {v.criterion}: {v.detail}" for v in report.verdicts if v.detail and v.status != "error"]
    if details or report.notes:
        lines += ["<details><summary>Notes</summary>", ""] + details + [f"- {n}" for n in report.notes]
        lines += ["", "</details>", ""]
    lines.append(report.summary())
    return "\n".join(lines) + "\n"
