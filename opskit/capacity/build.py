"""Assemble the capacity report: pick the runs, fit, forecast, price, chart, render. The one place the
report touches files (the runs it reads); everything it calls is pure."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.capacity import charts
from opskit.capacity.forecast import forecast
from opskit.capacity.growth import demand_at
from opskit.capacity.inputs import build_model, newest_step_run
from opskit.capacity.report import render_html, render_markdown
from opskit.capacity.review import Review, build_review
from opskit.capacity.steps import read_results
from opskit.cost.plans import plan_names, price_plans, spec_catalog
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.spec.schema import Spec


def make_report(spec: Spec, *, spec_file: str | None, results: list[str], months: int, slo_name: str | None,
                p95_ms: float | None, instances: int, now: dt.datetime,
                runs_dir: Path | None = None) -> tuple[str, str, Review]:
    """(html, markdown, the review data). Without --results, the newest step run under runs/ is used, if any."""
    from opskit.spec import spec_path

    if spec.growth is None:
        raise ConfigError("the spec has no growth: section; the capacity report forecasts from it")
    base = spec_path(spec_file).resolve().parent
    paths = list(results)
    if not paths:
        newest = newest_step_run(runs_dir or Path(spec.loadtest.out_dir))
        paths = [str(newest)] if newest else []
    runs = [read_results(p) for p in paths]
    model = build_model(spec, runs, slo_name=slo_name, p95_ms=p95_ms, instances=instances)
    catalog = spec_catalog(spec, base)
    growth = spec.growth
    estimates = (price_plans(spec, catalog, plan_names(spec, None), lambda m: demand_at(growth, m))
                 if spec.plans else [])
    costs = {e.plan: e.total_monthly for e in estimates}
    fc = forecast(spec.growth, months=months, resources=spec.resources, thresholds=spec.thresholds,
                  plans=spec.plans, plan_costs=costs, capacity_rps=model.capacity_rps,
                  capacity_source=model.capacity_source)
    review = build_review(spec, spec_path=str(spec_path(spec_file)), forecast=fc, estimates=estimates,
                          catalog=catalog, runs=runs, fit=model.fit, fit_note=model.fit_note, slo=model.slo,
                          slo_name=model.slo_name, now=now)
    svgs: dict[str, list[str]] = {"scalability": [], "forecast": [], "crossings": []}
    if model.fit is not None:
        svgs["scalability"].append(charts.usl_chart(model.fit, model.steps))
    if "peak_rps" in fc.metrics:
        svgs["forecast"].append(charts.peak_chart(fc))
    svgs["forecast"] += [charts.driver_chart(fc, i) for i in range(len(fc.drivers))]
    svgs["crossings"].append(charts.timeline_chart(fc))
    return render_html(review, svgs), render_markdown(review), review
