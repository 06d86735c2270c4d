"""`opskit gate RESULTS`: judge a load-test run against its criteria and, optionally, a baseline run.

`gate_options` and `run_gate` are shared with `opskit loadtest run SCENARIO --gate`, so both judge
the same way. Heavy modules (numpy for the bootstrap) are imported only when a command runs.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from opskit.commands.common import load, output_option, spec_option
from opskit.exitcodes import ExitCode
from opskit.resultsfile import resolve

if TYPE_CHECKING:
    from opskit.gate.report import GateReport
    from opskit.gate.results import RunData
    from opskit.spec import Spec

F = TypeVar("F", bound=Callable[..., Any])

_PATH = click.Path(dir_okay=True, path_type=Path)


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


@click.command()
@click.argument("results", type=_PATH)
@spec_option
@gate_options
@output_option("table", "json", "md")
@click.pass_context
def gate(ctx: click.Context, results: Path, spec_file: str | None, output: str, **options: Any) -> None:
    """Judge a load-test run: SLOs and gate criteria from opskit.yaml (or --criteria), and a baseline.

    RESULTS is a results.json or the run folder holding one.

    Exit codes: 0 pass; 1 a criterion or baseline comparison failed, or the run was aborted by an
    abort_on_fail criterion; 2 usage or configuration error, or a baseline of another scenario, model
    or load level, or nothing to judge; 3 the results cannot answer (missing, empty, truncated or
    corrupt file, a run marked invalid or interrupted, zero requests, a criterion on an endpoint never
    hit, a `for` window longer than the run, --strict with an inconclusive comparison).
    """
    code = run_gate(results, load(spec_file), output=output, **options)
    ctx.exit(int(code))


def run_gate(results_path: Path, spec: Spec, *, output: str = "table", criteria: Sequence[str] = (),
             baseline: Path | None = None, tolerance: str | float | None = None, strict: bool = False,
             save_baseline: Path | None = None, junit: Path | None = None, markdown: Path | None = None,
             ) -> ExitCode:
    """Judge, print, write the JUnit/Markdown files and return the exit code (0, 1 or 3).

    Raises UsageError/ConfigError (exit 2) for bad options, a malformed criterion or a baseline of
    another experiment, and RuntimeFailure (exit 3, after writing the requested files) when the
    results cannot be judged at all.
    """
    from opskit.errors import UsageError
    from opskit.gate.criteria import CriterionError
    from opskit.gate.report import GateReport
    from opskit.gate.sources import cli_criteria, spec_criteria

    tolerance_pct = spec.gate.tolerance if tolerance is None else _tolerance(tolerance)
    strict = strict or spec.gate.strict
    try:
        chosen = cli_criteria(criteria) if criteria else None
    except CriterionError as exc:
        raise UsageError(f"--criteria {exc.expr!r}: column {exc.column}: {exc.message}",
                         details=exc.pointer()) from None
    path = resolve(results_path)
    files = {"output": output, "junit": junit, "markdown": markdown}

    run = _read_or_report(path, "results", files)
    problem = _unjudgeable(run)
    if problem:
        _fail_unjudgeable(GateReport(run.scenario, run.model, str(path), error=problem,
                                     started_at=run.started_at, duration_s=run.duration_s), files)
    sourced = chosen if chosen is not None else spec_criteria(spec.slos, spec.gate, run.scenario)
    if not sourced and baseline is None:
        raise UsageError(f"nothing to judge: scenario {run.scenario!r} has no criteria (add slos or gate "
                         "criteria to the spec, or pass --criteria or --baseline)")

    from opskit.gate.evaluate import evaluate

    verdicts = evaluate(sourced, run)
    comparisons: list[Any] = []
    notes: list[str] = []
    if baseline is not None:
        judged = GateReport(run.scenario, run.model, str(path), verdicts, baseline=str(baseline),
                            started_at=run.started_at, duration_s=run.duration_s)
        comparisons, notes = _compare(run, resolve(baseline), tolerance_pct, files, judged)
    report = GateReport(
        run.scenario, run.model, str(path), verdicts,
        baseline=str(resolve(baseline)) if baseline else None, comparisons=comparisons,
        tolerance_pct=tolerance_pct, strict=strict, aborted=run.aborted, notes=notes,
        started_at=run.started_at, duration_s=run.duration_s)
    _show(report, output)
    _write_files(report, junit, markdown)
    if save_baseline is not None:
        _save_baseline(report, path, save_baseline)
    return report.exit_code


def _tolerance(value: str | float) -> float:
    from opskit.errors import UsageError
    from opskit.units import parse_percent

    try:
        pct = parse_percent(value)
    except ValueError as exc:
        raise UsageError(f"--tolerance: {exc}") from None
    if not 0 <= pct <= 1000:
        raise UsageError(f"--tolerance: expected 0% to 1000%, got {value}")
    return pct


def _read_or_report(path: Path, what: str, files: dict[str, Any], so_far: GateReport | None = None) -> RunData:
    """The run in a results file; when it cannot be read the gate still leaves its JUnit and
    Markdown files (one errored test), so CI shows why, then stops with exit 3."""
    from opskit.errors import RuntimeFailure
    from opskit.gate.report import GateReport
    from opskit.gate.results import from_data
    from opskit.resultsfile import UnreadableResults, load

    try:
        found, data = load(path)
        return from_data(data, str(found))
    except UnreadableResults as exc:
        message = str(exc)
    if what == "baseline":
        message = f"baseline: {message}"
    report = GateReport("unknown", "unknown", str(path)) if so_far is None else so_far
    _fail_unjudgeable(dataclasses.replace(report, error=message), files)
    raise RuntimeFailure(message)  # not reached: _fail_unjudgeable raises


def _unjudgeable(run: RunData) -> str | None:
    if not run.valid:
        return f"the run is marked invalid: {run.invalid_reason or 'no reason given'}"
    if run.interrupted:
        return "the run was interrupted before it finished"
    if run.total.requests == 0:
        return "the run made zero requests"
    return None


def _fail_unjudgeable(report: GateReport, files: dict[str, Any]) -> None:
    from opskit import output as out
    from opskit.errors import RuntimeFailure
    from opskit.gate.markdown import render_markdown

    _write_files(report, files["junit"], files["markdown"])
    if files["output"] == "json":
        out.emit_json(report.to_json())
    elif files["output"] == "md":
        out.echo(render_markdown(report))
    raise RuntimeFailure(f"the gate cannot answer: {report.error}")


def _compare(run: RunData, base_path: Path, tolerance_pct: float, files: dict[str, Any],
             so_far: GateReport) -> tuple[list[Any], list[str]]:
    """The baseline comparisons and notes; an unusable baseline still leaves the criteria's verdicts
    (so_far) in the JUnit and Markdown files it writes before stopping with exit 3."""
    from opskit.errors import RuntimeFailure, UsageError
    from opskit.gate.baseline import BaselineMismatch, check_comparable, compare_runs

    base = _read_or_report(base_path, "baseline", files, so_far)
    try:
        check_comparable(run, base)
    except BaselineMismatch as exc:
        raise UsageError(f"{base_path}: {exc}") from None
    problem = _unjudgeable(base)
    if problem:
        _fail_unjudgeable(dataclasses.replace(so_far, error=f"baseline: {problem}"), files)
        raise RuntimeFailure(problem)  # not reached
    notes = []
    if run.spec_hash and base.spec_hash and run.spec_hash != base.spec_hash:
        notes.append("opskit.yaml changed since the baseline run")
    if run.target and base.target and run.target != base.target:
        notes.append(f"the baseline ran against {base.target}, this run against {run.target}")
    if base.git_sha:
        notes.append(f"baseline from commit {base.git_sha}")
    return compare_runs(run, base, tolerance_pct), notes


def _show(report: GateReport, output: str) -> None:
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


def _write_files(report: GateReport, junit: Path | None, markdown: Path | None) -> None:
    from opskit import output as out
    from opskit.atomicio import write_atomic
    from opskit.gate.junit import render_junit
    from opskit.gate.markdown import render_markdown

    if junit is not None:
        write_atomic(junit, render_junit(report))
    text = render_markdown(report)
    if markdown is not None:
        write_atomic(markdown, text)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:  # GitHub collects every step's appends
                fh.write(text + "\n")
        except OSError as exc:
            out.warn(f"cannot append to $GITHUB_STEP_SUMMARY ({summary}): {exc}")


def _save_baseline(report: GateReport, results: Path, target: Path) -> None:
    from opskit import output as out
    from opskit.atomicio import write_atomic

    if report.exit_code != ExitCode.OK:
        out.warn(f"baseline not saved to {target}: the gate did not pass")
        return
    # the file itself, byte for byte: a baseline is just an earlier results.json
    write_atomic(resolve(target), results.read_bytes())
    out.echo(f"baseline saved to {target}", err=True)
