"""Gathering what the capacity commands need: which runs, which SLO, the fit and the per-instance capacity.
The file reading lives here; fit, forecast and report stay pure."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.capacity.steps import SloCapacity, Step, StepData, slo_capacity
from opskit.capacity.usl import USLFit, fit
from opskit.errors import ConfigError, RuntimeFailure

if TYPE_CHECKING:
    from opskit.runmodel import RunResults
    from opskit.scaling.model import Capacity
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
    probe: MeasuredProbe | None = None  # where capacity_rps came from, with capacity_rps: {from: probe}


def build_model(spec: Spec, runs: list[StepData], *, slo_name: str | None = None, p95_ms: float | None = None,
                instances: int = 1, strict: bool = False, use_probe: bool = True) -> Model:
    """Fit the USL to the runs' steps and find the per-instance throughput that holds the p95 SLO.
    strict: a fit that cannot be made is an error (capacity fit) rather than a note (capacity report);
    use_probe: resources.<r>.capacity_rps: {from: probe} sets the capacity (not for `capacity fit`)."""
    steps = [s for r in runs for s in r.steps]
    the_fit, note = None, None
    probe = measured_probe(spec) if use_probe else None
    if runs:
        try:
            the_fit = fit([s.concurrency for s in steps], [s.throughput for s in steps])
        except ValueError as exc:
            if strict:
                raise RuntimeFailure(f"cannot fit the USL: {exc}") from None
            note = f"No USL fit: {exc}."
    else:
        note = ("No load-test run with steps was found (runs/*/results.json with 2 or more steps): run "
                "`opskit capacity probe --model closed` (USL points on both sides of the knee) or `opskit loadtest "
                "run step`, or pass --results. Per-instance capacity comes from the "
                + ("probe." if probe is not None else "spec."))
    name, limit = pick_slo(spec, slo_name, p95_ms)
    slo = slo_capacity(steps, limit) if steps and limit is not None else None
    cap, source = None, ""
    if probe is not None:  # the spec asks for the probe's answer: it outranks a step run's estimate
        return Model(runs, steps, the_fit, note, slo, name, probe.rps / max(instances, 1), probe.text, probe)
    if slo is not None and slo.estimated_rps:
        per = slo.estimated_rps / max(instances, 1)
        if slo.limited_by == "slo":
            cap, source = per, f"load test: p95 reaches {limit:g} ms at {slo.estimated_rps:,.1f} req/s"
        elif slo.limited_by == "not reached":
            api = spec.resources.get("api")
            if api is None or api.capacity_rps is None:
                cap, source = per, (f"load test: every step held the SLO, so {per:,.1f} req/s is a lower bound")
    return Model(runs, steps, the_fit, note, slo, name, cap, source)


@dataclass(frozen=True)
class MeasuredProbe:
    """The capacity probe's answer that resources.<r>.capacity_rps: {from: probe} names, and its provenance."""

    resource: str
    rps: float
    path: Path
    run_id: str | None
    started_at: str | None
    git_sha: str | None
    target: str | None
    limited_by: str
    stale: str | None  # why it may no longer hold (too old, another commit), or None

    @property
    def provenance(self) -> str:
        """Which probe, when, at which commit, against what, and its answer."""
        when = (self.started_at or "?")[:10]
        sha = (self.git_sha or "unknown")[:12]
        bound = " (a lower bound: " + self.limited_by + ")" if self.limited_by in ("generator", "max_rate") else ""
        return (f"probe {self.run_id or self.path} ({when}, commit {sha}, target {self.target or '?'}): "
                f"{self.rps:,.1f} req/s within the SLO{bound}")

    @property
    def text(self) -> str:
        return self.provenance + (f"; STALE: {self.stale}" if self.stale else "")


def stale_warning(why: str) -> str:
    """The one warning every command gives for a stale probe."""
    return f"the capacity probe is stale: {why}; run `opskit capacity probe` again"


def scaling_capacity(spec: Spec, *, now: dt.datetime | None = None, head: str | None = None) -> dict[str, Capacity]:
    """The serving resource's per-instance capacity for the scale check's instance math: the probe's answer
    with its provenance ({from: probe}), or the number typed into the spec; {} when it has neither. A
    probe that cannot be read is a capacity with an error (the check shows that row as no data)."""
    from opskit.capacity.forecast import serving_resource
    from opskit.errors import OpskitError
    from opskit.scaling.model import Capacity, CapacitySource

    name = serving_resource(spec.resources)
    res = spec.resources.get(name)
    if res is None or (res.capacity_probe is None and res.capacity_rps is None):
        return {}
    if res.capacity_probe is None:
        return {name: Capacity(name, res.capacity_rps, res.utilization_target, CapacitySource("spec"))}
    try:
        probe = measured_probe(spec, now=now, head=head)
    except OpskitError as exc:
        return {name: Capacity(name, None, res.utilization_target, CapacitySource("probe"), error=exc.message)}
    assert probe is not None
    source = CapacitySource("probe", run_id=probe.run_id, date=probe.started_at, commit=probe.git_sha,
                            target=probe.target, path=str(probe.path), stale=probe.stale is not None,
                            stale_reason=probe.stale)
    return {name: Capacity(name, probe.rps, res.utilization_target, source)}


def measured_probe(spec: Spec, *, now: dt.datetime | None = None, head: str | None = None) -> MeasuredProbe | None:
    """The probe for the serving resource's capacity_rps: {from: probe} (None when it has a number):
    the run it names, else the newest probe under loadtest.out_dir; flagged stale when older than max_age
    or measured at another git commit than HEAD."""
    from opskit.capacity.forecast import serving_resource
    from opskit.resultsfile import UnreadableResults, load_run, newest, resolve

    name = serving_resource(spec.resources)
    res = spec.resources.get(name)
    if res is None or res.capacity_probe is None:
        return None
    src = res.capacity_probe
    where = f"resources.{name}.capacity_rps"
    if src.run:
        path = resolve(src.run)
    else:
        found = newest(Path(spec.loadtest.out_dir), accept=lambda r: r.probe is not None and r.probe.model == "open")
        if found is None:
            raise RuntimeFailure(f"{where} is {{from: probe}} but {spec.loadtest.out_dir}/ holds no capacity probe: "
                                 "run `opskit capacity probe`, or name one with run:")
        path = found
    try:
        run = load_run(path)
    except UnreadableResults as exc:
        raise RuntimeFailure(f"{where}: {exc}") from None
    p = run.probe
    if p is None:
        raise RuntimeFailure(f"{where}: {path} is not a capacity probe's results (no probe block)")
    if not p.max_rate_within_slo:
        raise RuntimeFailure(f"{where}: the probe {path} found no rate within the SLO ({p.limited_by})")
    now = now or dt.datetime.now(dt.UTC)
    stale = []
    started = _when(run.started_at)
    if started is not None and (now - started).total_seconds() > src.max_age:
        stale.append(f"measured {(now - started).days} days ago, over max_age {src.max_age / 86400:g}d")
    head = head if head is not None else _head_sha()
    if head and run.git_sha and head != run.git_sha:
        stale.append(f"measured at commit {run.git_sha[:12]}, the checkout is at {head[:12]}")
    return MeasuredProbe(name, p.max_rate_within_slo, path, run.run.run_id, run.started_at, run.git_sha,
                         run.run.target_name or run.target, p.limited_by, "; ".join(stale) or None)


def _when(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _head_sha() -> str | None:
    from opskit.proc import run_argv

    done = run_argv(["git", "rev-parse", "HEAD"], timeout=5)
    return (done.stdout.strip() or None) if done.ok else None
