"""What every generator process does while load runs (gevent side): the recorder, the open-model
driver's configuration, and the payload it reports each second (local runner or Locust worker)."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Any

import gevent
import psutil

from opskit.loadtest import context, openmodel
from opskit.loadtest.aggregate import StepWindow
from opskit.loadtest.arrivals import RateStage
from opskit.loadtest.recorder import Recorder
from opskit.runmodel import RunnerConfig

clock = time.perf_counter
LAG_PROBE_S = 0.1  # closed model: how often the loop's lateness is measured


def rate_stages(cfg: RunnerConfig) -> list[RateStage]:
    return [RateStage(s.duration_s, s.start_rate or 0.0, s.end_rate or 0.0) for s in cfg.stages]


def step_windows(cfg: RunnerConfig) -> list[StepWindow]:
    out, start = [], 0.0
    for i, s in enumerate(cfg.stages):
        rate = max(s.start_rate or 0.0, s.end_rate or 0.0) if cfg.open_model else None
        out.append(StepWindow(i, s.name, round(start, 3), s.duration_s, rate, s.users))
        start += s.duration_s
    return out


class Generator:
    """What one process does while generating load: record, report, and (open model) drive arrivals."""

    def __init__(self, cfg: RunnerConfig, index: int, n: int, classes: list[Any], worker_id: str = "local") -> None:
        self.cfg = cfg
        # who made this share of the load, for results.json's generator.workers
        self.identity = {"id": worker_id, "host": socket.gethostname(), "pid": os.getpid()}
        self.rec: Recorder | None = None
        self.proc = psutil.Process()
        self.proc.cpu_percent(None)
        self.cpu: list[tuple[float, float]] = []
        context.set_process(index, n)  # before the locustfile's on_start: it may partition its data by it
        openmodel.STATE.__init__()  # type: ignore[misc]
        st = openmodel.STATE
        st.user_classes = classes
        st.index, st.n = index, n
        st.stages = rate_stages(cfg)
        st.cap = max(1, -(-cfg.max_in_flight // n))
        st.grace_s = cfg.timeout_s + 1.0
        st.tick_s = float(cfg.tick_s) if cfg.tick_s is not None else None  # None: auto

    def start(self) -> Recorder:
        self.rec = Recorder(clock())
        openmodel.STATE.recorder = self.rec
        if not self.cfg.open_model:  # the open model times each arrival against its intended start instead
            gevent.spawn(self._probe_lag, self.rec)
        return self.rec

    def _probe_lag(self, rec: Recorder) -> None:
        """Closed model: how late this process's loop wakes (starved of CPU, or blocked), each second's worst
        in the timeline's lag_max_ms. Every user's timing waits on the same loop, so latencies measured
        while it lags include the generator's own delay (health.assess)."""
        due = clock() + LAG_PROBE_S
        while not openmodel.STATE.stopping:
            gevent.sleep(max(due - clock(), 0.0))
            now = clock()
            rec.loop_lag(now, now - due)
            due = now + LAG_PROBE_S

    def payload(self, *, final: bool = False, in_flight_gauge: int | None = None) -> dict[str, Any]:
        assert self.rec is not None
        now = clock()
        if in_flight_gauge is not None:  # closed model: the users are what is in flight
            self.rec.set_in_flight(in_flight_gauge, now)
        if not final:  # the last interval is short and all shutdown work: not the generator under load
            # out of open files (EMFILE), psutil cannot read /proc: the run goes on, this second unsampled
            with contextlib.suppress(OSError, psutil.Error):
                self.cpu.append((now - self.rec.t0, self.proc.cpu_percent(None)))
        cpu, self.cpu = self.cpu, []
        return {"proc": str(openmodel.STATE.index), "seconds": self.rec.drain(now, final=final), "cpu": cpu,
                "task_errors": openmodel.take_task_errors(), "done": openmodel.STATE.finished, "final": final,
                "worker": self.identity}
