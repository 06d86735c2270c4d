"""opskit capacity: USL fit of step load tests, growth forecast with threshold crossings, review report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from opskit import atomicio
from opskit import output as out
from opskit.commands.common import FiniteFloatRange, load, output_option, spec_option
from opskit.errors import Refused, UsageError


@click.group()
def capacity() -> None:
    """Capacity models: how far one instance scales, when growth crosses a threshold, what it costs."""


def _slo_options(f: Any) -> Any:
    f = click.option("--slo", "slo_name", metavar="NAME", help="SLO whose p95 bounds per-instance capacity "
                     "[default: the first SLO with a p95].")(f)
    f = click.option("--p95", "p95", metavar="LATENCY", help="p95 limit instead of an SLO's, e.g. 200ms.")(f)
    return click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
                        help="Instances the load test hit (capacity is divided by it).")(f)


def _capacity_options(f: Any) -> Any:
    """Where the per-instance capacity comes from, for the commands that size a fleet with it."""
    f = click.option("--capacity-rps", type=FiniteFloatRange(min=0, min_open=True), default=None,
                     help="Per-instance req/s within the SLO (overrides runs and the spec).")(f)
    return click.option("--results", "results", multiple=True, metavar="RUN",
                        help="Step run(s) that set per-instance capacity, unless the spec's capacity_rps is "
                             "{from: probe} [default: the newest runs/*/results.json with 2+ steps, else "
                             "resources.api.capacity_rps].")(f)


def _p95(p95: str | None) -> float | None:
    from opskit.units import parse_latency_ms

    if p95 is None:
        return None
    try:
        return parse_latency_ms(p95)
    except ValueError as exc:
        raise UsageError(f"--p95: {exc}") from None


@capacity.command("fit")
@spec_option
@click.argument("results", required=False, metavar="[RESULTS.json | RUN_DIR]")
@click.option("--data", "data", metavar="CSV", help="A CSV of concurrency,throughput[,p95_ms,error_rate].")
@_slo_options
@output_option("table", "json")
def fit_cmd(spec_file: str | None, results: str | None, data: str | None, slo_name: str | None, p95: str | None,
            instances: int, output: str) -> None:
    """Fit the Universal Scalability Law to a step run's throughput vs concurrency.

    Prints sigma (contention), kappa (coherency), lambda (throughput at N=1) with 95% intervals, the
    peak, R² and residuals, and the highest throughput per instance that still meets the p95 SLO.
    """
    from opskit.capacity.inputs import build_model
    from opskit.capacity.steps import read_csv, read_results

    if (results is None) == (data is None):
        raise UsageError("give a RESULTS.json (or run folder) or --data CSV, one of them")
    run = read_results(results) if results else read_csv(data)  # type: ignore[arg-type]
    spec = _maybe_spec(spec_file)
    model = build_model(spec, [run], slo_name=slo_name, p95_ms=_p95(p95), instances=instances, strict=True,
                        use_probe=False)
    f = model.fit
    assert f is not None
    if output == "json":
        out.emit_json({**f.as_dict(), "source": run.source,
                       "measured": [{"concurrency": s.concurrency, "throughput": s.throughput, "p95_ms": s.p95_ms}
                                    for s in run.steps],
                       "slo_capacity": model.slo, "slo": model.slo_name})
    else:
        _fit_table(f, model)
    for w in f.warnings:
        out.warn(w)
    if f.unusable:
        raise Refused(f"not fit: {f.unusable}")


def _maybe_spec(spec_file: str | None) -> Any:
    """The spec names the SLO; `capacity fit --data` works without one (CSV from elsewhere)."""
    from opskit.spec import spec_path
    from opskit.spec.schema import Service, Spec

    if spec_file is None and not spec_path(None).exists():
        return Spec(service=Service(name="unknown"))
    return load(spec_file)


def _fit_table(f: Any, model: Any) -> None:
    def iv(key: str) -> str:
        i = f.intervals[key]
        return "-" if i.low is None else f"{i.low:.4g} .. {i.high:.4g}"

    peak_n = "none (kappa = 0)" if f.peak_concurrency is None else f"{f.peak_concurrency:,.1f}"
    peak_x = f"{f.peak_throughput:,.1f}"
    if f.unusable:
        peak_n = peak_x = "not determined (see below)"
    out.table(("", "value", "95% interval"), [
        ("sigma (contention)", f"{f.sigma:.6g}", iv("sigma")),
        ("kappa (coherency)", f"{f.kappa:.6g}", iv("kappa")),
        ("lambda (req/s at N=1)", f"{f.lambda_:.6g}", iv("lambda")),
        ("peak concurrency", peak_n, ""),
        ("peak throughput" if f.peak_concurrency else "throughput ceiling", peak_x, ""),
        ("R²", f"{f.r_squared:.4f}", ""),
        ("points", str(f.points), ""),
    ], title="Universal Scalability Law fit")
    out.table(("concurrency", "measured req/s", "fitted req/s", "residual", "p95 ms"),
              [(f"{s.concurrency:g}", f"{s.throughput:,.1f}", f"{f.throughput(s.concurrency):,.1f}",
                f"{r:+,.1f}", "-" if s.p95_ms is None else f"{s.p95_ms:,.1f}")
               for s, r in zip(model.steps, f.residuals, strict=True)], title="Measured steps")
    s = model.slo
    if s is not None:
        if s.limited_by == "slo":
            msg = f"~{s.estimated_rps:,.1f} req/s per instance (highest step within: {s.measured_rps:,.1f})"
        elif s.limited_by == "not reached":
            msg = f">= {s.measured_rps:,.1f} req/s per instance (every step held the SLO)"
        else:
            msg = {"first step": "the first step already broke the SLO",
                   "no latency data": "no p95 per step in the data"}[s.limited_by]
        out.echo(f"Within p95 <= {s.p95_limit_ms:g} ms{f' (SLO {model.slo_name})' if model.slo_name else ''}: {msg}")


@capacity.command("forecast")
@spec_option
@click.option("--months", type=click.IntRange(1, 120), default=24, show_default=True, help="Months to forecast.")
@_capacity_options
@_slo_options
@output_option("table", "json", "md")
def forecast_cmd(spec_file: str | None, months: int, results: tuple[str, ...], capacity_rps: float | None,
                 slo_name: str | None, p95: str | None, instances: int, output: str) -> None:
    """Month by month from growth: peak req/s, instances needed, and when each threshold is crossed."""
    from opskit.capacity.forecast import forecast
    from opskit.capacity.inputs import build_model, newest_step_run
    from opskit.capacity.steps import read_results
    from opskit.cost.plans import plan_names, price_plans, spec_catalog
    from opskit.spec import spec_path

    spec = load(spec_file)
    if spec.growth is None:
        raise UsageError("the spec has no growth: section to forecast from")
    paths = list(results)
    if not paths:  # like the report: a fresh step run under runs/ sets the per-instance capacity
        newest = newest_step_run(Path(spec.loadtest.out_dir))
        paths = [str(newest)] if newest else []
    model = build_model(spec, [read_results(r) for r in paths], slo_name=slo_name, p95_ms=_p95(p95),
                        instances=instances)
    costs: dict[str, float] = {}
    if spec.plans:
        catalog = spec_catalog(spec, spec_path(spec_file).resolve().parent)
        costs = {e.plan: e.total_monthly for e in price_plans(spec, catalog, plan_names(spec, None))}
    cap = capacity_rps or model.capacity_rps
    src = "--capacity-rps" if capacity_rps else model.capacity_source
    if not capacity_rps:
        _probe_provenance(model.probe)
    fc = forecast(spec.growth, months=months, resources=spec.resources, thresholds=spec.thresholds,
                  plans=spec.plans, plan_costs=costs, capacity_rps=cap, capacity_source=src)
    _show_forecast(fc, output)


def _show_forecast(fc: Any, output: str) -> None:
    from opskit.capacity.report import crossing_table, forecast_table, plain

    cols, raw_rows = forecast_table(fc)
    ccols, raw_crossings = crossing_table(fc)
    rows, crows = plain(raw_rows), plain(raw_crossings)
    if output == "json":
        out.emit_json({"months": fc.months, "labels": fc.labels, "metrics": fc.metrics, "rates": fc.rates,
                       "peak_to_mean": fc.peak_to_mean, "sizing": fc.sizing, "drivers": fc.drivers,
                       "crossings": fc.crossings, "plan_by_month": fc.plan_by_month, "notes": fc.notes})
    elif output == "md":
        out.echo("### Forecast\n")
        out.echo(out.markdown_table(cols, rows))
        out.echo("### Threshold crossings\n")
        out.echo(out.markdown_table(ccols, crows) if crows else "_none_\n")
    else:
        out.table(cols, rows, title="Forecast")
        if crows:
            out.table(ccols, crows, title="Threshold crossings")
        else:
            out.echo(f"No threshold is crossed within {fc.months[-1]} months.")
    for n in fc.notes:
        out.warn(n)


@capacity.command("plan")
@spec_option
@click.option("--months", type=click.IntRange(1, 120), default=24, show_default=True, help="Months to plan.")
@_capacity_options
@click.option("--measured-on", metavar="TYPE", default=None,
              help="Instance type the capacity was measured on [default: the plan's type at month 0].")
@click.option("--family", "families", multiple=True, metavar="FAMILY",
              help="Only these instance families, e.g. --family m5 (repeatable) [default: every EC2 type "
                   "in the catalog with enough memory per vCPU].")
@_slo_options
@output_option("table", "json", "md")
def plan_cmd(spec_file: str | None, months: int, results: tuple[str, ...], capacity_rps: float | None,
             measured_on: str | None, families: tuple[str, ...], slo_name: str | None, p95: str | None,
             instances: int, output: str) -> None:
    """Cheapest instance type x count per horizon at the measured capacity, beside the spec's plan.

    Serves the forecast peak within the SLO at the utilization target with N+1; other instance types
    are scaled by vCPU from the type the capacity was measured on.
    """
    from opskit.capacity.build import make_plan
    from opskit.capacity.inputs import measured_probe
    from opskit.capacity.report import plain, plan_table

    spec = load(spec_file)
    if capacity_rps is None:
        _probe_provenance(measured_probe(spec))
    plan = make_plan(spec, spec_file=spec_file, results=list(results), months=months, slo_name=slo_name,
                     p95_ms=_p95(p95), instances=instances, capacity_rps=capacity_rps, measured_on=measured_on,
                     families=list(families) or None)
    if output == "json":
        out.emit_json(plan)
        return
    cols, rows = plan_table(plan, compact=output == "table")
    if output == "md":
        out.echo(f"### Cost at measured capacity ({plan.resource})\n")
        out.echo(out.markdown_table(cols, plain(rows)))
        out.echo("\n".join(f"- {a}" for a in plan.assumptions))
    else:
        out.table(cols, plain(rows), title=f"Cost at measured capacity ({plan.resource})")
        for a in plan.assumptions:
            out.echo(f"* {a}")


@capacity.command("report")
@spec_option
@click.option("--results", "results", multiple=True, metavar="RUN",
              help="Step run(s) (results.json or run folder) [default: the newest runs/*/results.json "
                   "with 2+ steps].")
@click.option("--out", "out_file", default="capacity-report.html", show_default=True, metavar="FILE",
              help="The HTML report; its Markdown twin is written beside it (.md).")
@click.option("--months", type=click.IntRange(1, 120), default=24, show_default=True, help="Months to forecast.")
@_slo_options
@output_option("table", "json")
def report_cmd(spec_file: str | None, results: tuple[str, ...], out_file: str, months: int,
               slo_name: str | None, p95: str | None, instances: int, output: str) -> None:
    """A self-contained HTML capacity review (inline SVG charts) and its Markdown twin.

    With no arguments it works from the spec alone, using the newest step run under runs/ if there is one.
    """
    import datetime as dt

    from opskit.capacity.build import make_report
    from opskit.capacity.inputs import measured_probe

    spec = load(spec_file)
    _probe_provenance(measured_probe(spec))
    html_path = Path(out_file)
    md_path = html_path.with_suffix(".md")
    html, md, review = make_report(spec, spec_file=spec_file, results=list(results), months=months,
                                   slo_name=slo_name, p95_ms=_p95(p95), instances=instances,
                                   now=dt.datetime.now(dt.UTC))
    atomicio.write_atomic(html_path, html)
    atomicio.write_atomic(md_path, md)
    used = [r.source for r in review.steps]
    if output == "json":
        out.emit_json({"html": html_path, "markdown": md_path, "runs": used, "headlines": review.headlines,
                       "crossings": review.forecast.crossings, "warnings": review.warnings})
        return
    for h in review.headlines:
        out.echo(f"{h.question}: {h.answer}")
    out.echo(f"wrote {html_path} and {md_path}" + (f" (runs: {', '.join(used)})" if used else " (no run used)"))


def _probe_provenance(probe: Any) -> None:
    """Say where a {from: probe} capacity came from, and flag it when it may no longer hold."""
    if probe is None:
        return
    from opskit.capacity.inputs import stale_warning

    out.echo(f"capacity: {probe.provenance} ({probe.path})", err=True)
    if probe.stale:
        out.warn(stale_warning(probe.stale))


@capacity.command("probe")
@spec_option
@click.option("--target", metavar="NAME", help="A target declared under targets: [default: one worker of the "
              "embedded service, so the answer is per instance].")
@click.option("--host", metavar="URL", help="A loopback URL (or a declared target's).")
@click.option("--scenario", default="http-get", show_default=True, metavar="NAME",
              help="The scenario whose requests each step sends (its shape is replaced by one constant rate).")
@click.option("--path", metavar="PATH", help="http-get: the path to request [default: /api/assets].")
@click.option("--slo", "slos", multiple=True, metavar="EXPR",
              help='A step passes only if it holds, e.g. "p95 < 200ms" (repeatable; p50, p95, p99, error_rate, '
              "rps) [default: the spec's SLOs' latency limits].")
@click.option("--error-budget", default="1%", show_default=True, metavar="PCT", help="Errors a step may have.")
@click.option("--start", type=FiniteFloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="First rate (req/s); users with --model closed.")
@click.option("--max-rate", type=FiniteFloatRange(min=0, min_open=True), default=5000.0, show_default=True,
              help="Highest rate tried (req/s); users with --model closed.")
@click.option("--step", "step", default="15s", show_default=True, metavar="DURATION", help="Each step's length.")
@click.option("--workers", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Embedded service workers.")
@click.option("--model", type=click.Choice(["open", "closed"]), default="open", show_default=True,
              help="open: search the arrival rate; closed: sweep users (USL points across the knee).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="The probe's folder [default: loadtest.out_dir/STAMP-probe].")
@click.option("--confirm-production", is_flag=True, help="Allow a production target.")
@output_option("table", "json")
def probe_cmd(spec_file: str | None, target: str | None, host: str | None, scenario: str, path: str | None,
              slos: tuple[str, ...], error_budget: str, start: float, max_rate: float, step: str, workers: int,
              model: str, out_dir: Path | None, confirm_production: bool, output: str) -> None:
    """Find the highest arrival rate held within the SLO: a geometric ramp until a step fails, bisection
    to 5%, the boundary confirmed by a repeat. Writes the probe's results.json (its `probe` block).

    Exit 0 with an answer; 1 when not even the lowest rate tried held the SLO; 2 bad input; 3 the
    target cannot be reached or a step broke.
    """
    import datetime as dt

    from opskit.capacity import proberun, probeview
    from opskit.loadtest import host as lt_host

    spec = load(spec_file)
    slo, texts = probeview.probe_slo(spec, slos)
    budget = probeview.fraction("--error-budget", error_budget)
    if max_rate < start:
        raise UsageError(f"--max-rate {max_rate:g} is below --start {start:g}")
    if path is not None and scenario != proberun.DEFAULT_SCENARIO:
        raise UsageError(f"--path is for --scenario {proberun.DEFAULT_SCENARIO}; {scenario!r} names its own requests")
    if path is not None and not path.startswith("/"):
        raise UsageError(f"--path must start with '/', got {path!r}")
    step_s = probeview.step_seconds("--step", step)
    folder = out_dir or Path(spec.loadtest.out_dir) / f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-probe"
    req = proberun.ProbeRequest(slo, texts, budget, start, max_rate, step_s, folder, target=target, host=host,
                                scenario=scenario, path=path, workers=workers, model=model,
                                confirm_production=confirm_production)
    result, results = proberun.probe(spec, req, lambda: lt_host.facts(spec_file), _ProbeProgress(model))
    steps = [{"rate": r.rate, "achieved": r.achieved, "latency_ms": r.latency_ms,
              "error_rate": r.error_rate, "in_flight_max": r.in_flight_max, "verdict": r.verdict}
             for r in proberun.step_rows(result)]
    if output == "json":
        out.emit_json({"max_rate_within_slo": result.max_rate_within_slo, "saturation_rate": result.saturation_rate,
                       "limited_by": result.limited_by, "interval": list(result.interval), "steps": steps,
                       "results": str(results)})
    else:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:,.1f}"

        out.table(("#", "phase", "users" if model == "closed" else "offered req/s", "completed", "p50 ms", "p95 ms",
                   "p99 ms", "errors", "in flight", "verdict"),
                  [(str(i), s.phase, f"{s.measure.rate:,.1f}" if s.measure.users is None else str(s.measure.users),
                    f"{s.measure.achieved:,.1f}", ms(s.measure.p50_ms),
                    ms(s.measure.p95_ms), ms(s.measure.p99_ms), f"{s.measure.error_rate:.2%}",
                    str(s.measure.in_flight_max), s.verdict) for i, s in enumerate(result.steps, 1)],
                  title="Capacity probe steps")
        out.echo(probeview.answer_text(result, texts))
        out.echo(f"results: {results}")
    for n in result.notes:
        out.warn(n)
    if result.max_rate_within_slo is None:
        raise Refused("no rate tried held the SLO")


class _ProbeProgress:
    """One line per step on stderr as the probe goes."""

    def __init__(self, model: str) -> None:
        self.model = model

    def note(self, text: str) -> None:
        out.echo(text, err=True)

    def step(self, index: int, step: Any) -> None:
        m = step.measure
        p95 = "-" if m.p95_ms is None else f"{m.p95_ms:,.1f} ms"
        level = f"{m.rate:,.1f} req/s offered" if m.users is None else f"{m.users} users"
        verdict = "pass" if step.verdict == "pass" else f"{step.verdict.upper()} ({step.why})"
        out.echo(f"step {index} [{step.phase}] {level}: {m.achieved:,.1f} completed, p95 {p95}, "
                 f"errors {m.error_rate:.2%}, in flight <= {m.in_flight_max}: {verdict}", err=True)


@capacity.command("recommend")
@spec_option
@click.option("--results", "results", metavar="PROBE", default=None,
              help="A probe's results.json or folder [default: the newest probe under loadtest.out_dir].")
@output_option("table", "json")
def recommend_cmd(spec_file: str | None, results: str | None, output: str) -> None:
    """From a probe's knee: the per-instance autoscaling target (req/s per replica at the spec's utilization
    target), and for each threshold row whether it fires before the SLO breaks or only after."""
    from opskit.capacity.forecast import serving_resource
    from opskit.capacity.proberun import from_block
    from opskit.capacity.recommend import recommend
    from opskit.resultsfile import UnreadableResults, load_run, newest

    spec = load(spec_file)
    path = Path(results) if results else newest(Path(spec.loadtest.out_dir),
                                                 accept=lambda r: r.probe is not None and r.probe.model == "open")
    if path is None:
        raise UsageError(f"no capacity probe under {spec.loadtest.out_dir}/: run `opskit capacity probe` or "
                         "pass --results")
    try:
        run = load_run(path)
    except UnreadableResults as exc:
        raise UsageError(f"--results: {exc}") from None
    if run.probe is None:
        raise UsageError(f"--results {path}: not a capacity probe's results (no probe block)")
    name = serving_resource(spec.resources)
    res = spec.resources.get(name)
    rec = recommend(from_block(run.probe), spec.thresholds, resource=name,
                    utilization_target_pct=res.utilization_target if res is not None else 70.0)
    if output == "json":
        out.emit_json(rec)
        return
    if rec.target_rps_per_instance is None:
        out.echo("no knee: no rate held the SLO in this probe, so there is no per-instance target")
    else:
        bound = " (the knee is a lower bound)" if rec.lower_bound else ""
        out.echo(f"{name}: knee {rec.knee_rps:,.1f} req/s per instance{bound}; autoscaling target at "
                 f"{rec.utilization_target_pct:g}%: {rec.target_rps_per_instance:,.1f} req/s per replica")
    out.table(("resource", "metric", "scale_up", "fires", "suggest", "why"),
              [(r.resource, r.metric, "-" if r.scale_up is None else f"{r.scale_up:g}", r.fires,
                "-" if r.suggest is None else f"{r.suggest:,.4g}", r.note) for r in rec.rows],
              title="Threshold rows against the measured knee")
