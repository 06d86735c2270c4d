"""Turning a scenario, a target and the options into the runner's config (pure, typed: runmodel.RunnerConfig)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.loadtest.scenarios import Scenario
from opskit.runmodel import RunMeta, RunnerConfig, Stage


@dataclass(frozen=True)
class Options:
    processes: int = 1
    expect_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    ui: bool = False
    locustfile: Path | None = None
    user_classes: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    metrics_port: int | None = None  # serve /metrics on 127.0.0.1 (0: any free port); None: off
    metrics_linger_s: float = 0.0  # keep /metrics up this long after the run (Prometheus' last scrape)


def config(sc: Scenario, *, host: str, out_dir: Path, opts: Options, run_meta: RunMeta) -> RunnerConfig:
    local_workers = opts.processes if (opts.processes > 1 or opts.expect_workers) else 0
    return RunnerConfig(
        scenario=sc.name,
        model=sc.model,
        host=host,
        locustfile=str((opts.locustfile or sc.locustfile).resolve()),
        user_classes=tuple(opts.user_classes) or None,
        stages=stages(sc),
        max_in_flight=sc.max_in_flight,
        timeout_s=sc.timeout_s,
        tick_s=sc.tick_s,
        spawn_rate=sc.spawn_rate,
        workers=local_workers + opts.expect_workers,
        local_workers=local_workers,
        master_bind=opts.master_bind,
        master_port=opts.master_port,
        out_dir=str(out_dir),
        ui=opts.ui,
        metrics_port=opts.metrics_port,
        metrics_linger_s=opts.metrics_linger_s if opts.metrics_port is not None else 0.0,
        params={**sc.params, **opts.params},
        run=run_meta,
    )


def stages(sc: Scenario) -> tuple[Stage, ...]:
    return tuple(Stage(s.name, s.duration_s, s.start_rate, s.end_rate, s.users) for s in sc.stages)


def hard_limit_s(sc: Scenario) -> float:
    """The CLI's own bound on a run: the schedule, the last requests' timeout, start-up and shutdown."""
    return sc.duration_s + sc.timeout_s + 90.0
