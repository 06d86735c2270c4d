"""What the two commands that end in a gate verdict share (`opskit gate`, `opskit loadtest run --gate`):
the gate's options, the request they make, and how the report is shown. Not a command module: it
defines no command, like common.py, so neither command imports the other."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from opskit.exitcodes import ExitCode
    from opskit.gate.report import GateReport
    from opskit.gate.usecase import GateRequest, Message
    from opskit.spec import Spec

F = TypeVar("F", bound=Callable[..., Any])

_PATH = click.Path(dir_okay=True, path_type=Path)
GATE_KEYS = ("criteria", "baseline", "tolerance", "strict", "save_baseline", "junit", "markdown")


def gate_options(f: F) -> F:
    """--criteria, --baseline, --tolerance, --strict, --save-baseline, --junit, --markdown."""
    options = [
        click.option("--criteria", "criteria", multiple=True, metavar="EXPR",
                     help="A criterion like 'p95 < 200ms' or 'GET /api/assets: p99 < 1s for 30s'; "
                          "repeatable; replaces the spec's SLOs and gate criteria."),
        click.option("--baseline", type=_PATH, default=None, metavar="FILE",
                     help="An earlier results.json (or its run folder) of the same scenario to compare with."),
        click.option("--tolerance", default=None, metavar="PCT",
                     help="Change allowed against the baseline [default: gate.tolerance, 10%]."),
        click.option("--strict", is_flag=True, default=False,
                     help="An inconclusive baseline comparison exits 3 instead of passing."),
        click.option("--save-baseline", type=_PATH, default=None, metavar="PATH",
                     help="Keep these results as the baseline for later runs (only when the gate passes)."),
        click.option("--junit", type=_PATH, default=None, metavar="FILE", help="Write JUnit XML here."),
        click.option("--markdown", type=_PATH, default=None, metavar="FILE",
                     help="Write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def gate_request(results: Path, *, criteria: tuple[str, ...] = (), baseline: Path | None = None,
                 tolerance: str | None = None, strict: bool = False, save_baseline: Path | None = None,
                 junit: Path | None = None, markdown: Path | None = None) -> GateRequest:
    """The gate options as a request ($GITHUB_STEP_SUMMARY read here, not in the core)."""
    from opskit.gate.usecase import GateRequest

    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    return GateRequest(results, criteria=tuple(criteria), baseline=baseline, tolerance=tolerance, strict=strict,
                       save_baseline=save_baseline, junit=junit, markdown=markdown,
                       step_summary=Path(summary) if summary else None)


def run_gate(req: GateRequest, spec: Spec, output: str) -> ExitCode:
    """Judge, write the files, show the report; the exit code (0, 1 or 3). A run that cannot be judged
    is shown (JSON/Markdown) and then raised as RuntimeFailure (exit 3)."""
    from opskit.errors import RuntimeFailure
    from opskit.gate.usecase import deliver, judge

    report = judge(req, spec)
    if report.error is not None:
        messages = deliver(report, req)
        if output != "table":
            show(report, output)
        _say(messages)
        raise RuntimeFailure(f"the gate cannot answer: {report.error}")
    show(report, output)
    _say(deliver(report, req))
    return report.exit_code


def _say(messages: list[Message]) -> None:
    from opskit import output as out

    for m in messages:
        if m.warning:
            out.warn(m.text)
        else:
            out.echo(m.text, err=True)


def show(report: GateReport, output: str) -> None:
    from opskit import output as out
    from opskit.gate.markdown import render_markdown
    from opskit.gate.report import BASELINE_COLUMNS, CRITERIA_COLUMNS, baseline_rows, criteria_rows

    if output == "json":
        out.emit_json(report.to_json())
        return
    if output == "md":
        out.echo(render_markdown(report))
        return
    if report.verdicts or report.aborted:
        out.table(CRITERIA_COLUMNS, criteria_rows(report), title=f"gate: {report.scenario}")
    if report.comparisons:
        out.table(BASELINE_COLUMNS, baseline_rows(report),
                  title=f"against the baseline (tolerance {report.tolerance_pct:g}%, 95% bootstrap interval)")
    for v in report.verdicts:
        if v.detail and v.status != "error":  # errors are listed with the reasons below
            out.echo(f"  {v.status}: {v.criterion}: {v.detail}")
    for note in report.notes:
        out.echo(f"  note: {note}")
    out.echo(report.summary())
    for reason in report.reasons():
        out.echo(f"  - {reason}")
