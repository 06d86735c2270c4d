"""Gathering what the capacity commands need: which runs, which SLO, the fit and the per-instance capacity.
The file reading lives here; fit, forecast and report stay pure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.capacity.steps import SloCapacity, Step, StepData, slo_capacity
from opskit.capacity.usl import USLFit, fit
from opskit.errors import ConfigError, RuntimeFailure

if TYPE_CHECKING:
    from opskit.runmodel import RunResults
    from opskit.spec.schema import Spec


def newest_step_run(runs_dir: Path, min_steps: int = 2) -> Path | None:
    """The newest valid runs/*/results.json with at least min_steps load levels (a `step` run), if any."""
    from opskit.resultsfile import newest

    def is_step_run(run: RunResults) -> bool:
        return run.valid and len([s for s in run.steps or () if s.requests]) >= min_steps

    return newest(runs_dir, accept=is_step_run)


def pick_slo(spec: Spec, name: str | None, p95_ms: float | None) -> tuple[str | None, float | None]:
    """The p95 limit for SLO capacity: --p95, else --slo NAME, else the first SLO with a p95."""
    if p95_ms is not None:
        return None, p95_ms
    if name is not None:
        slo = next((s for s in spec.slos if s.name == name), None)
        if slo is None:
            raise ConfigError(f"no SLO named {name!r}; SLOs: {', '.join(s.name for s in spec.slos) or 'none'}")
        if slo.latency is None or slo.latency.p95 is None:
            raise ConfigError(f"SLO {name} has no p95 latency")
        return slo.name, slo.latency.p95
    for s in spec.slos:
        if s.latency and s.latency.p95:
            return s.name, s.latency.p95
    return None, None


@dataclass(frozen=True)
class Model:
    runs: list[StepData]
    steps: list[Step]
    fit: USLFit | None
    fit_note: str | None
    slo: SloCapacity | None
    slo_name: str | None
    capacity_rps: float | None
    capacity_source: str


def build_model(spec: Spec, runs: list[StepData], *, slo_name: str | None = None, p95_ms: float | None = None,
                instances: int = 1, strict: bool = False) -> Model:
    """Fit the USL to the runs' steps and find the per-instance throughput that holds the p95 SLO.
    strict: a fit that cannot be made is an error (capacity fit) rather than a note (capacity report)."""
    steps = [s for r in runs for s in r.steps]
    the_fit, note = None, None
    if runs:
        try:
            the_fit = fit([s.concurrency for s in steps], [s.throughput for s in steps])
        except ValueError as exc:
            if strict:
                raise RuntimeFailure(f"cannot fit the USL: {exc}") from None
            note = f"No USL fit: {exc}."
    else:
        note = ("No load-test run with steps was found (runs/*/results.json with 2 or more steps): run "
                "`opskit loadtest run step`, or pass --results. Per-instance capacity comes from the spec.")
    name, limit = pick_slo(spec, slo_name, p95_ms)
    slo = slo_capacity(steps, limit) if steps and limit is not None else None
    cap, source = None, ""
    if slo is not None and slo.estimated_rps:
        per = slo.estimated_rps / max(instances, 1)
        if slo.limited_by == "slo":
            cap, source = per, f"load test: p95 reaches {limit:g} ms at {slo.estimated_rps:,.1f} req/s"
        elif slo.limited_by == "not reached":
            api = spec.resources.get("api")
            if api is None or api.capacity_rps is None:
                cap, source = per, (f"load test: every step held the SLO, so {per:,.1f} req/s is a lower bound")
    return Model(runs, steps, the_fit, note, slo, name, cap, source)
