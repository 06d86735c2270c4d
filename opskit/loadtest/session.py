"""One `opskit loadtest run`: the embedded service if needed, the runner, the failover kill. The runner
writes results.json (with the abort reason and failover kill the driver tells it); the run is read
back through the run model for the command to show."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import RuntimeFailure, UsageError
from opskit.loadtest import driver, plan
from opskit.loadtest.safety import Target
from opskit.loadtest.scenarios import Scenario
from opskit.runmodel import RunMeta, RunResults
from opskit.spec.schema import SLO


@dataclass
class Session:
    scenario: Scenario
    target: Target
    out_dir: Path
    opts: plan.Options
    run_meta: RunMeta
    abort_check: Callable[[Mapping[str, Any]], str | None] | None = None
    progress: Any = None  # a progress.Progress
    child_env: Mapping[str, str] = dataclasses.field(default_factory=dict)  # added to the runner's environment
    slos: tuple[SLO, ...] = ()  # the spec's SLOs: what a failure scenario's fault is judged against


def execute(s: Session) -> tuple[driver.Outcome, RunResults | None]:
    if s.scenario.failover_at is not None and not s.target.embedded:
        raise UsageError("the failover scenario kills a worker of the embedded service; run it without "
                         "--target/--host (against another target, kill a node yourself during `peak`)")
    with ExitStack() as stack:
        params = dict(s.opts.params)
        host = s.target.url
        service = None
        fault = None
        if s.scenario.fault is not None:  # a failure scenario: on the local stack only (else exit 2)
            from opskit.faults.setup import FaultRun

            fault = FaultRun.open(stack, s.scenario.fault, scenario=s.scenario.name, embedded=s.target.embedded,
                                  slos=s.slos, out_dir=s.out_dir)
            params["writes_dir"] = str(fault.writes_dir)
        if s.target.embedded:
            from opskit.localservice import LocalService

            setup = s.scenario.service
            if s.progress is not None:
                s.progress.note(f"starting the embedded asset service ({setup.workers} worker(s), "
                                f"{setup.seed_assets} assets, {setup.tenants} tenants"
                                f"{', on the stack' if fault else ''})")
            service = stack.enter_context(LocalService(workers=setup.workers, seed_assets=setup.seed_assets,
                                                       tenants=setup.tenants, tier=setup.tier,
                                                       db=fault.db_url if fault else None,
                                                       cache=fault.cache_url if fault else None,
                                                       extra_env=fault.env if fault else None))
            host = service.url
            # the embedded service's own keys (OPSKIT_API_KEYS is for real targets)
            params["tenants"] = [{"key": k["key"], "company_id": k["company_id"]} for k in service.keys]
        assert host is not None
        opts = plan.Options(**{**s.opts.__dict__, "params": params})
        meta = dataclasses.replace(s.run_meta, target=host)
        cfg = plan.config(s.scenario, host=host, out_dir=s.out_dir, opts=opts, run_meta=meta)
        hooks = driver.Hooks(abort_check=s.abort_check)
        if fault is not None and service is not None:
            from opskit.faults.setup import service_pids

            cfg = dataclasses.replace(cfg, fault=fault.setup)
            hooks.fault = fault.arm(service_pids(service.pid), s.progress.note if s.progress is not None
                                    else lambda text: None)
        if s.progress is not None:
            hooks.on_progress = s.progress.update
            hooks.on_ui = lambda url: s.progress.note(f"Locust web UI: {url}")
        if service is not None and s.scenario.failover_at is not None:
            hooks.failover = (s.scenario.failover_at, lambda: _kill_worker(service.pid, s.progress))
        if s.progress is not None:
            hooks.on_note = s.progress.note
            hooks.on_metrics = lambda url: s.progress.note(f"metrics: {url} (Prometheus job opskit-loadtest)")
        limit = plan.hard_limit_s(s.scenario) + cfg.metrics_linger_s
        outcome = driver.run(cfg, s.out_dir, hooks, hard_limit_s=limit, env=s.child_env)
    if outcome.results is None or not outcome.results.is_file():
        if outcome.interrupted:
            return outcome, None
        if outcome.error and outcome.error_code == 2:
            raise UsageError(outcome.error)
        raise RuntimeFailure(f"the load test failed: {outcome.error or 'the runner exited without results'} "
                             f"(log: {s.out_dir / 'locust.log'})")
    from opskit.resultsfile import UnreadableResults, load_run

    try:
        return outcome, load_run(outcome.results)
    except UnreadableResults as exc:  # the runner wrote something this opskit cannot read: a bug
        raise RuntimeFailure(f"the load test wrote unreadable results: {exc}") from None


def _kill_worker(supervisor_pid: int, progress: Any) -> int | None:
    import psutil

    try:
        children = psutil.Process(supervisor_pid).children()
    except psutil.Error:
        children = []
    if not children:
        return None
    victim = children[0]
    os.kill(victim.pid, signal.SIGKILL)
    if progress is not None:
        progress.note(f"failover: killed service worker pid {victim.pid}")
    return int(victim.pid)
