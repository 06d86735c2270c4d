"""The gate's whole use case as data in, data out: read the run (and a baseline), judge it, and leave the
JUnit/Markdown files, the CI step summary and a saved baseline. Prints nothing: `judge` returns a
GateReport and `deliver` returns the messages the command shows, so `opskit gate` and
`opskit loadtest run --gate` judge and write exactly the same way.

Raises UsageError/ConfigError (exit 2) for bad options, a malformed criterion or a baseline of another
experiment. A run that cannot be judged is not an exception here: the report carries `error` (the
command still shows it in JSON/Markdown and the files are written, so CI sees why) and means exit 3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import UsageError
from opskit.exitcodes import ExitCode
from opskit.gate.report import GateReport
from opskit.resultsfile import resolve

if TYPE_CHECKING:
    from opskit.gate.baseline import Comparison
    from opskit.gate.evaluate import Verdict
    from opskit.runmodel import RunResults
    from opskit.spec import Spec


@dataclass(frozen=True)
class GateRequest:
    """What to judge and where the verdict goes; every path as the user gave it."""

    results: Path
    criteria: tuple[str, ...] = ()
    baseline: Path | None = None
    tolerance: str | float | None = None  # as given ("10%"); None: gate.tolerance
    strict: bool = False
    save_baseline: Path | None = None
    junit: Path | None = None
    markdown: Path | None = None
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY: the command reads the environment


@dataclass(frozen=True)
class Message:
    """Something the command shows on stderr after the verdict."""

    text: str
    warning: bool = True


class _Unjudgeable(Exception):
    def __init__(self, report: GateReport) -> None:
        self.report = report


def judge(req: GateRequest, spec: Spec) -> GateReport:
    """The verdict on the run (report.error set when it cannot be judged: exit 3)."""
    from opskit.gate.criteria import CriterionError
    from opskit.gate.sources import cli_criteria, spec_criteria

    tolerance_pct = spec.gate.tolerance if req.tolerance is None else parse_tolerance(req.tolerance)
    strict = req.strict or spec.gate.strict
    try:
        chosen = cli_criteria(req.criteria) if req.criteria else None
    except CriterionError as exc:
        raise UsageError(f"--criteria {exc.expr!r}: column {exc.column}: {exc.message}",
                         details=exc.pointer()) from None
    path = resolve(req.results)
    try:
        run = _read(path, "results", GateReport("unknown", "unknown", str(path)))
        problem = unjudgeable(run)
        if problem:
            raise _Unjudgeable(GateReport(run.scenario, run.model, str(path), error=problem,
                                          started_at=run.started_at, duration_s=run.duration_s))
        sourced = chosen if chosen is not None else spec_criteria(spec.slos, spec.gate, run.scenario)
        if not sourced and req.baseline is None:
            raise UsageError(f"nothing to judge: scenario {run.scenario!r} has no criteria (add slos or gate "
                             "criteria to the spec, or pass --criteria or --baseline)")

        from opskit.gate.evaluate import evaluate

        verdicts = evaluate(sourced, run) + overload_verdicts(run)
        comparisons: list[Comparison] = []
        notes: list[str] = []
        if req.baseline is not None:
            judged = GateReport(run.scenario, run.model, str(path), verdicts, baseline=str(req.baseline),
                                started_at=run.started_at, duration_s=run.duration_s)
            comparisons, notes = _compare(run, resolve(req.baseline), tolerance_pct, judged)
    except _Unjudgeable as exc:
        return exc.report
    return GateReport(
        run.scenario, run.model, str(path), verdicts,
        baseline=str(resolve(req.baseline)) if req.baseline else None, comparisons=comparisons,
        tolerance_pct=tolerance_pct, strict=strict, aborted=run.aborted, notes=notes,
        started_at=run.started_at, duration_s=run.duration_s)


def deliver(report: GateReport, req: GateRequest) -> list[Message]:
    """Write the JUnit and Markdown files, append to the step summary and (when the gate passed) save
    the baseline; the messages say what the command should tell the user."""
    from opskit.atomicio import write_atomic
    from opskit.gate.junit import render_junit
    from opskit.gate.markdown import render_markdown

    messages = []
    if req.junit is not None:
        write_atomic(req.junit, render_junit(report))
    text = render_markdown(report)
    if req.markdown is not None:
        write_atomic(req.markdown, text)
    if req.step_summary is not None:
        try:
            with open(req.step_summary, "a", encoding="utf-8") as fh:  # GitHub collects every step's appends
                fh.write(text + "\n")
        except OSError as exc:
            messages.append(Message(f"cannot append to $GITHUB_STEP_SUMMARY ({req.step_summary}): {exc}"))
    if req.save_baseline is not None and report.error is None:
        if report.exit_code != ExitCode.OK:
            messages.append(Message(f"baseline not saved to {req.save_baseline}: the gate did not pass"))
        else:
            # the file itself, byte for byte: a baseline is just an earlier results.json
            write_atomic(resolve(req.save_baseline), Path(report.results).read_bytes())
            messages.append(Message(f"baseline saved to {req.save_baseline}", warning=False))
    return messages


def parse_tolerance(value: str | float) -> float:
    from opskit.units import parse_percent

    try:
        pct = parse_percent(value)
    except ValueError as exc:
        raise UsageError(f"--tolerance: {exc}") from None
    if not 0 <= pct <= 1000:
        raise UsageError(f"--tolerance: expected 0% to 1000%, got {value}")
    return pct


def overload_verdicts(run: RunResults) -> list[Verdict]:
    """A service-limited run (results.json run.limited_by) is a proven "no": the service did not keep up."""
    from opskit.gate.evaluate import Verdict

    if run.run.limited_by != "service":
        return []
    achieved = run.total.rps
    intended = run.intended_rate
    measured = f"{achieved:,.1f} req/s completed" if achieved is not None else "short"
    limit = f"{intended:,.1f} req/s offered" if intended is not None else "the offered load"
    return [Verdict("throughput", "run.limited_by", "fail", achieved, measured, limit,
                    run.run.limited_reason or "the service did not keep up with the offered load", "rps")]


def unjudgeable(run: RunResults) -> str | None:
    """Why a run's numbers cannot be judged at all, or None."""
    if not run.valid:
        return f"the run is marked invalid: {run.invalid_reason or 'no reason given'}"
    if run.interrupted:
        return "the run was interrupted before it finished"
    if run.total.requests == 0:
        return "the run made zero requests"
    return None


def _read(path: Path, what: str, so_far: GateReport) -> RunResults:
    """The run in a results file; one that cannot be read ends the judging with so_far's verdicts and
    the reason (the files are still written, so CI shows why)."""
    from opskit.resultsfile import UnreadableResults, load_run

    try:
        return load_run(path)
    except UnreadableResults as exc:
        message = str(exc)
    if what == "baseline":
        message = f"baseline: {message}"
    raise _Unjudgeable(dataclasses.replace(so_far, error=message))


def _compare(run: RunResults, base_path: Path, tolerance_pct: float,
             so_far: GateReport) -> tuple[list[Comparison], list[str]]:
    """The baseline comparisons and notes; an unusable baseline still leaves the criteria's verdicts
    (so_far) in the report."""
    from opskit.gate.baseline import OPEN_MODEL_NOTE, BaselineMismatch, check_comparable, compare_runs, compared_metrics

    base = _read(base_path, "baseline", so_far)
    try:
        check_comparable(run, base)
    except BaselineMismatch as exc:
        raise UsageError(f"{base_path}: {exc}") from None
    problem = unjudgeable(base)
    if problem:
        raise _Unjudgeable(dataclasses.replace(so_far, error=f"baseline: {problem}"))
    notes = []
    if run.spec_hash and base.spec_hash and run.spec_hash != base.spec_hash:
        notes.append("opskit.yaml changed since the baseline run")
    if run.target and base.target and run.target != base.target:
        notes.append(f"the baseline ran against {base.target}, this run against {run.target}")
    if base.git_sha:
        notes.append(f"baseline from commit {base.git_sha}")
    if "rps" not in compared_metrics(run.model):
        notes.append(OPEN_MODEL_NOTE)
    comparisons = compare_runs(run, base, tolerance_pct)
    notes += _too_short(comparisons, tolerance_pct)
    return comparisons, notes


def _too_short(comparisons: list[Comparison], tolerance_pct: float) -> list[str]:
    """A note when intervals straddle the tolerance: the runs are too short at this load to tell a change
    of that size from noise, and about how long they would need to be."""
    import statistics

    from opskit.gate.baseline import duration_text

    needed = [c.runs_needed_s for c in comparisons if c.status == "inconclusive" and c.runs_needed_s]
    if not needed:
        return []
    return [f"{len(needed)} comparison(s) inconclusive: the runs are too short at this load to tell a "
            f"{tolerance_pct:g}% change from noise; runs of about {duration_text(statistics.median(needed))} "
            "would decide half of them (or widen --tolerance)"]
