"""A failure scenario put together (the adapter between the load-test session and the faults): the local
stack found and checked, the service's way to PostgreSQL (through the delay proxy for the latency spike),
the SLO objectives the fault is judged against, and the fault window the driver ticks.

Faults go only into the local stack that `opskit stack up` started (its state directory:
$OPSKIT_STATE_DIR, default ./.opskit); anything else is refused before any process starts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import UsageError
from opskit.faults import injectors
from opskit.faults.registry import Injector, Registry
from opskit.faults.schedule import Window
from opskit.faults.spec import LOCAL_ONLY, FaultSpec
from opskit.runmodel import FaultSetup
from opskit.spec.schema import SLO

DEFAULT_AVAILABILITY = 0.999  # when no SLO names one
DEFAULT_WINDOW_S = 30 * 86400.0
STATE_DIR_ENV = "OPSKIT_STATE_DIR"


def state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_ENV) or ".opskit")


def objectives(slos: Sequence[SLO]) -> tuple[float, dict[str, float], float]:
    """(availability as a fraction, endpoint -> p95 objective in ms, SLO window in s) from the spec's SLOs:
    the strictest availability, every p95 objective, the longest window."""
    avail = [s.availability / 100.0 for s in slos if s.availability is not None]
    p95 = {s.endpoint: float(s.latency.p95) for s in slos if s.latency is not None and s.latency.p95 is not None}
    windows = [float(s.window) for s in slos if s.window]
    return (min(avail) if avail else DEFAULT_AVAILABILITY), p95, (max(windows) if windows else DEFAULT_WINDOW_S)


@dataclass
class FaultRun:
    spec: FaultSpec
    scenario: str
    state: Path
    out_dir: Path
    db_url: str  # what the service connects to
    password: str
    direct_url: str  # the stack's PostgreSQL itself (the write check, the admin connection)
    password_file: str
    setup: FaultSetup
    registry: Registry
    proxy: object | None = None
    window: Window | None = None
    cache_url: str | None = None  # the stack's Redis: the service caches pages and shares limits there

    @property
    def env(self) -> dict[str, str]:
        # the service's libpq and its Redis client read them (one stack password); never in argv
        return {"PGPASSWORD": self.password, "REDIS_PASSWORD": self.password}

    @property
    def writes_dir(self) -> Path:
        return self.out_dir / "writes"

    @classmethod
    def open(cls, stack: ExitStack, fault: FaultSpec, *, scenario: str, embedded: bool, slos: Sequence[SLO],
             out_dir: Path) -> FaultRun:
        if not embedded:
            raise UsageError(LOCAL_ONLY.format(name=scenario))
        from opskit.stack import runtime

        where = state_dir()
        info = runtime.status(where)
        if not info.running or info.endpoints is None:
            raise UsageError(f"the failure scenarios run on the local stack, and none is running in "
                             f"{runtime.home(where)}: run `opskit stack up` first (or set {STATE_DIR_ENV})")
        password = Path(info.endpoints.password_file).read_text().strip()
        direct = info.endpoints.postgresql
        availability, p95, window_s = objectives(slos)
        writes = out_dir / "writes"
        shutil.rmtree(writes, ignore_errors=True)  # a run again into the same folder starts a new record
        writes.mkdir(parents=True)
        setup = FaultSetup(fault.kind, availability, p95, window_s, str(writes), direct,
                           info.endpoints.password_file)
        # entered first, so left last: every fault is cleared after the service and the load have stopped,
        # and before that on every way out of the run
        registry = stack.enter_context(Registry())
        run = cls(fault, scenario, where, out_dir, direct, password, direct, info.endpoints.password_file, setup,
                  registry, cache_url=info.endpoints.redis)
        if fault.kind == "network-latency-spike":
            from opskit.stack.proxy import DelayProxy

            pg_port = next(p.port for p in info.parts if p.name == "postgresql")
            proxy = stack.enter_context(DelayProxy(pg_port))
            run.proxy = proxy
            run.db_url = direct.replace(f"127.0.0.1:{pg_port}", f"127.0.0.1:{proxy.port}")
        return run

    def arm(self, service_pids: Sequence[int], note: Callable[[str], None]) -> Window:
        """The fault window, once the service runs (the CPU hogs go on its cores)."""
        self.window = Window(self.injector(service_pids), self.spec.at, self.spec.clear, self.registry, note)
        return self.window

    def injector(self, service_pids: Sequence[int]) -> Injector:
        f = self.spec
        bound_s = f.clear - f.at + injectors.STRESS_SLACK_S
        log = self.out_dir / "fault.log"
        if f.kind == "database-connection-failure":
            if f.mode == "terminate":
                from opskit.stack import config as cfg

                admin = self.direct_url.rsplit("/", 1)[0] + "/postgres"
                return injectors.RefuseDatabase(admin, self.password, cfg.DATABASE)
            return injectors.StopDatabase(self.state)
        if f.kind == "redis-cache-failure":
            return injectors.KillRedis(self.state)
        if f.kind == "high-cpu-load":
            return injectors.CpuHogs(service_pids, load_pct=f.cpu_load, hogs=f.hogs, log=log, bound_s=bound_s)
        if f.kind == "memory-pressure":
            return injectors.HoldMemory(until_pct=f.memory_until, max_bytes=f.memory_max, log=log, bound_s=bound_s,
                                        ramp_bound_s=injectors.ramp_bound(f.clear - f.at))
        from opskit.stack.proxy import DelayProxy

        assert isinstance(self.proxy, DelayProxy)
        return injectors.SlowDatabase(self.proxy, f.delay)


def service_pids(supervisor_pid: int) -> list[int]:
    """The service's supervisor and its workers."""
    import psutil

    try:
        return [supervisor_pid, *(c.pid for c in psutil.Process(supervisor_pid).children(recursive=True))]
    except psutil.Error:
        return [supervisor_pid]
