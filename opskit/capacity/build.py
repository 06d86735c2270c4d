"""Assemble the capacity report and the capacity plan: pick the runs, fit, forecast, price, chart, render.
The one place they touch files (the runs and catalogs they read); everything they call is pure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.capacity import charts
from opskit.capacity.forecast import forecast, serving_resource
from opskit.capacity.growth import demand_at
from opskit.capacity.inputs import Model, build_model, newest_step_run
from opskit.capacity.plan import CapacityPlan, MeasuredCapacity, measured_type, plan_capacity
from opskit.capacity.report import render_html, render_markdown
from opskit.capacity.review import Review, build_review
from opskit.capacity.steps import Step, StepData, read_results
from opskit.capacity.usl import USLFit
from opskit.cost.plans import plan_names, price_plans, spec_catalog
from opskit.errors import ConfigError, OpskitError, RuntimeFailure

if TYPE_CHECKING:
    from opskit.spec.schema import Spec


def step_runs(spec: Spec, results: list[str], runs_dir: Path | None = None) -> list[StepData]:
    """The runs named, else the newest step run under the spec's runs folder, if any."""
    paths = list(results)
    if not paths:
        newest = newest_step_run(runs_dir or Path(spec.loadtest.out_dir))
        paths = [str(newest)] if newest else []
    return [read_results(p) for p in paths]


def measured_capacity(spec: Spec, model: Model, *, override_rps: float | None = None,
                      measured_on: str | None = None) -> MeasuredCapacity:
    """The per-instance capacity `capacity forecast` uses (--capacity-rps, a step run's SLO capacity, else
    resources.<r>.capacity_rps) and the instance type it was measured on."""
    name = serving_resource(spec.resources)
    res = spec.resources.get(name)
    if override_rps:
        rps, source = override_rps, "--capacity-rps"
    elif model.capacity_rps:
        rps, source = model.capacity_rps, model.capacity_source
    elif res is not None and res.capacity_rps:
        rps, source = res.capacity_rps, f"resources.{name}.capacity_rps"
    else:
        raise RuntimeFailure(f"no per-instance capacity for {name}: run a step load test (`opskit loadtest run "
                             f"step`), pass --capacity-rps, or set resources.{name}.capacity_rps")
    itype, why = measured_type(spec, name, measured_on)
    return MeasuredCapacity(rps, source, itype, why)


def make_plan(spec: Spec, *, spec_file: str | None, results: list[str], months: int, slo_name: str | None,
              p95_ms: float | None, instances: int, capacity_rps: float | None = None,
              measured_on: str | None = None, families: list[str] | None = None) -> CapacityPlan:
    """`capacity plan`: resolve the measured capacity and the catalog, then the pure plan."""
    from opskit.spec import spec_path

    if spec.growth is None:
        raise ConfigError("the spec has no growth: section; capacity plan sizes the fleet for its forecast")
    model = build_model(spec, step_runs(spec, results), slo_name=slo_name, p95_ms=p95_ms, instances=instances)
    measured = measured_capacity(spec, model, override_rps=capacity_rps, measured_on=measured_on)
    catalog = spec_catalog(spec, spec_path(spec_file).resolve().parent)
    return plan_capacity(spec, catalog, measured, resource=serving_resource(spec.resources), months=months,
                         families=families)


def make_report(spec: Spec, *, spec_file: str | None, results: list[str], months: int, slo_name: str | None,
                p95_ms: float | None, instances: int, now: dt.datetime,
                runs_dir: Path | None = None) -> tuple[str, str, Review]:
    """(html, markdown, the review data). Without --results, the newest step run under runs/ is used, if any."""
    from opskit.spec import spec_path

    if spec.growth is None:
        raise ConfigError("the spec has no growth: section; the capacity report forecasts from it")
    base = spec_path(spec_file).resolve().parent
    runs = step_runs(spec, results, runs_dir)
    model = build_model(spec, runs, slo_name=slo_name, p95_ms=p95_ms, instances=instances)
    catalog = spec_catalog(spec, base)
    growth = spec.growth
    estimates = (price_plans(spec, catalog, plan_names(spec, None), lambda m: demand_at(growth, m))
                 if spec.plans else [])
    costs = {e.plan: e.total_monthly for e in estimates}
    fc = forecast(spec.growth, months=months, resources=spec.resources, thresholds=spec.thresholds,
                  plans=spec.plans, plan_costs=costs, capacity_rps=model.capacity_rps,
                  capacity_source=model.capacity_source)
    plan: CapacityPlan | None = None
    try:  # the report works from the spec alone: without a capacity or a measured type it says why instead
        plan = plan_capacity(spec, catalog, measured_capacity(spec, model), resource=serving_resource(spec.resources),
                             months=months)
        plan_note = None
    except OpskitError as exc:
        plan_note = f"No cost at measured capacity: {exc.message}."
    the_fit, fit_note = model.fit, model.fit_note
    unspanned = knee_not_spanned(the_fit, model.steps) if the_fit is not None and not the_fit.unusable else None
    if unspanned:  # a confident curve about points below the knee is no answer: say why instead
        the_fit, fit_note = None, f"No USL fit shown: {unspanned}."
    probe_svg, probe_note = _probe_chart(spec, model)
    if probe_note:
        fit_note = f"{fit_note} {probe_note}" if fit_note else probe_note
    review = build_review(spec, spec_path=str(spec_path(spec_file)), forecast=fc, estimates=estimates,
                          catalog=catalog, runs=runs, fit=the_fit, fit_note=fit_note, slo=model.slo,
                          slo_name=model.slo_name, now=now,
                          capacity_plan=plan, capacity_plan_note=plan_note)
    svgs: dict[str, list[str]] = {"scalability": [probe_svg] if probe_svg else [], "forecast": [], "crossings": []}
    if the_fit is not None:
        svgs["scalability"].append(charts.usl_chart(the_fit, model.steps))
    if "peak_rps" in fc.metrics:
        svgs["forecast"].append(charts.peak_chart(fc))
    svgs["forecast"] += [charts.driver_chart(fc, i) for i in range(len(fc.drivers))]
    svgs["crossings"].append(charts.timeline_chart(fc))
    return render_html(review, svgs), render_markdown(review), review


def knee_not_spanned(fit: USLFit, steps: list[Step]) -> str | None:
    """Why the measured points do not reach the knee the fit draws (None when they do): the highest
    throughput measured must be within 10% of the fitted peak (or ceiling)."""
    if not steps:
        return "no measured steps"
    x_max = max(s.throughput for s in steps)
    if fit.peak_throughput <= 0 or x_max >= 0.9 * fit.peak_throughput:
        return None
    return (f"the steps reach {x_max:,.1f} req/s, {x_max / fit.peak_throughput:.0%} of the fitted "
            f"{'peak' if fit.peak_concurrency else 'ceiling'} ({fit.peak_throughput:,.1f} req/s), so the knee would "
            "be extrapolated, not measured; run `opskit capacity probe --model closed` (or a step run past "
            "saturation) for points on both sides of it")


def _probe_chart(spec: Spec, model: Model) -> tuple[str | None, str | None]:
    """The newest probe's latency vs throughput (the knee and the SLO line), and a line saying which probe."""
    from opskit.resultsfile import UnreadableResults, load_run, newest

    path = model.probe.path if model.probe is not None else newest(
        Path(spec.loadtest.out_dir), accept=lambda r: r.probe is not None and r.probe.model == "open")
    if path is None:
        return None, None
    try:
        run = load_run(path)
    except UnreadableResults:
        return None, None
    p = run.probe
    if p is None or not p.steps:
        return None, None
    points = [(s.achieved or 0.0, s.p95, s.verdict == "pass") for s in p.steps if s.p95]
    from opskit.capacity.probeview import p95_limit_ms

    slo_ms = p95_limit_ms(p.slo)
    svg = charts.latency_chart([(x, y, ok) for x, y, ok in points if y is not None], p.max_rate_within_slo, slo_ms,
                               p.saturation_rate)
    knee = "none" if p.max_rate_within_slo is None else f"{p.max_rate_within_slo:,.1f} req/s"
    note = (f"Capacity probe {run.run.run_id or path}: knee {knee} within {', '.join(p.slo) or 'no SLO'} "
            f"(limited by {p.limited_by}), saturation {p.saturation_rate or 0:,.1f} req/s completed.")
    return svg, note
