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
from opskit.capacity.steps import StepData, read_results
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
    review = build_review(spec, spec_path=str(spec_path(spec_file)), forecast=fc, estimates=estimates,
                          catalog=catalog, runs=runs, fit=model.fit, fit_note=model.fit_note, slo=model.slo,
                          slo_name=model.slo_name, now=now,
                          capacity_plan=plan, capacity_plan_note=plan_note)
    svgs: dict[str, list[str]] = {"scalability": [], "forecast": [], "crossings": []}
    if model.fit is not None:
        svgs["scalability"].append(charts.usl_chart(model.fit, model.steps))
    if "peak_rps" in fc.metrics:
        svgs["forecast"].append(charts.peak_chart(fc))
    svgs["forecast"] += [charts.driver_chart(fc, i) for i in range(len(fc.drivers))]
    svgs["crossings"].append(charts.timeline_chart(fc))
    return render_html(review, svgs), render_markdown(review), review
