"""The load-generating process: `python -m opskit.loadtest.runner CONFIG.json` (local or master) and
`python -m opskit.loadtest.runner --worker --master HOST --master-port P` (a worker).

It runs in its own process because Locust monkey-patches the interpreter (gevent). It talks to the
CLI through JSON lines on stdout ({"type": "progress"|"done"|"error", ...}) and signals: SIGINT or
SIGTERM stop the run and write partial results (exit 130), SIGUSR1 aborts it (gate abort_on_fail).
"""

from __future__ import annotations

import gevent.monkey

gevent.monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import numpy  # noqa: E402,F401 - imported now, not at the first percentile mid-run (it stalls the loop)

from opskit.loadtest import context, fdlimit, locustenv, openmodel  # noqa: E402
from opskit.loadtest import results as results_mod  # noqa: E402
from opskit.loadtest.aggregate import Aggregator  # noqa: E402
from opskit.loadtest.arrivals import arrivals_until, rate_at  # noqa: E402
from opskit.loadtest.generator import Generator, rate_stages, step_windows  # noqa: E402
from opskit.loadtest.worker import worker_main  # noqa: E402
from opskit.runmodel import RunnerConfig, RunnerControl  # noqa: E402

clock = time.perf_counter
log = logging.getLogger("opskit.loadtest")
REPORT_S = 1.0
WORKER_WAIT_S = 60.0  # how long a master waits for its workers
WORKER_NOTE_S = 5.0  # and how often it says what is missing


class WorkersMissing(RuntimeError):
    """The workers a run needs did not connect in time: said in one line, no traceback."""


def emit(kind: str, **data: Any) -> None:
    """One JSON line on stdout: the runner's message channel to the driver (opskit.output writes it)."""
    from opskit import output as out

    out.echo(json.dumps({"type": kind, **data}))


class Run:
    """The local or master side: starts the load, merges payloads, reports progress, writes results."""

    def __init__(self, cfg: RunnerConfig) -> None:
        self.cfg = cfg
        self.out = Path(cfg.out_dir)
        self.agg = Aggregator(step_windows(cfg))
        self.interrupted = False
        self.aborted = False
        self.duration = cfg.duration_s
        self.workers = int(cfg.workers)
        self.done_procs: set[str] = set()
        self.failures: list[str] = []
        self.children: list[Any] = []
        self.metrics: Any = None  # exporter.Endpoint while /metrics is served
        self.runner: Any = None
        self.t_start: float | None = None
        self.t_end: float | None = None  # the load is over: gauges settle to their final values

    def stop_children(self) -> None:
        for child in self.children:
            stop_child(child)
        self.children = []

    def ingest(self, payload: dict[str, Any]) -> None:
        self.agg.ingest(payload)
        if payload.get("done"):
            self.done_procs.add(str(payload.get("proc")))

    def main(self) -> int:
        cfg = self.cfg
        context.set_params(cfg.params)
        classes = locustenv.load_locustfile(Path(cfg.locustfile), list(cfg.user_classes) if cfg.user_classes else None)
        open_model = cfg.open_model
        if open_model:
            openmodel.check_open_compatible(classes)
        locustenv.tune(classes, host=cfg.host, timeout_s=cfg.timeout_s, concurrency=max(1, cfg.max_in_flight)
                       if open_model else None)
        run_classes: list[Any] = [openmodel.OpenModelDriver] if open_model else classes
        if self.workers:  # workers get the locustfile itself with the config (remote machines have no copy)
            cfg = self.cfg = replace(cfg, locustfile_source=Path(cfg.locustfile).read_text(encoding="utf-8"))
        env = locustenv.environment(run_classes, cfg.host, cfg if self.workers else None)
        locustenv.guard_requests(cfg.host, locustenv.declared_targets())
        locustenv.keep_connections()
        token = self.channel_token()
        if cfg.metrics_port is not None:  # before any worker starts: a taken port fails fast
            self.start_metrics(int(cfg.metrics_port))
        local_gen: Generator | None = None
        runner: Any
        if self.workers:
            runner = env.create_master_runner(cfg.master_bind, cfg.master_port)
            runner.register_message("opskit_stats", lambda environment, msg, **kw: self.ingest(msg.data))
            self.children = spawn_local_workers(cfg, runner.server.port, token)
            self.wait_for_workers(runner)
        else:
            runner = env.create_local_runner()
            local_gen = Generator(cfg, 0, 1, classes)
        self.runner = runner
        openmodel.install_recording(env)
        if open_model:
            env.events.user_error.add_listener(self._on_user_error)
        if cfg.ui:
            port = int(cfg.web_port or free_port())
            env.create_web_ui("127.0.0.1", port)
            emit("ui", url=f"http://127.0.0.1:{port}")
        from locust import stats as lstats

        gevent.spawn(lstats.stats_history, runner)
        started_at = datetime.now(UTC)
        t_start = self.t_start = clock()
        if local_gen is not None:
            local_gen.start()
        try:
            self.drive(runner, local_gen, t_start)
        finally:
            elapsed = clock() - t_start
            self.finish(runner, local_gen)
            self.t_end = t_start + elapsed
            self.stop_children()
        ended_at = datetime.now(UTC)
        run_time = min(elapsed, self.duration)
        intended = arrivals_until(rate_stages(cfg), run_time) if open_model else None
        told = told_by_cli(cfg.control_path)
        meta = {**asdict(cfg.run), "model": cfg.model, "target": cfg.host,
                "started_at": started_at.isoformat().replace("+00:00", "Z"),
                "ended_at": ended_at.isoformat().replace("+00:00", "Z"),
                "interrupted": self.interrupted,
                "aborted": told.aborted or (True if self.aborted else None),
                "intended_rate": max(max(s.start_rate or 0, s.end_rate or 0) for s in cfg.stages)
                if open_model else None,  # the peak; generator.intended_rate is the run's mean
                "users": max((s.users or 0) for s in cfg.stages) if not open_model else None}
        if self.metrics is not None:
            meta["metrics_url"] = self.metrics.url
        res = results_mod.build(self.agg, meta, duration_s=run_time, intended=intended,
                                processes=max(self.workers, 1),
                                failover=(told.failover_at_s, told.killed_pid)
                                if told.killed_pid and told.failover_at_s is not None else None,
                                fault=fault_input(cfg, told))
        self.out.mkdir(parents=True, exist_ok=True)
        path = results_mod.write(self.out, res)
        locustenv.write_reports(env, self.out)
        emit("done", results=str(path), valid=res["run"]["valid"], interrupted=self.interrupted)
        code = 130 if self.interrupted else 0
        self.linger()
        return code

    def channel_token(self) -> str | None:
        from opskit.loadtest import channel

        cfg = self.cfg
        return channel.master_token(cfg.master_bind, workers=self.workers, remote=cfg.workers > cfg.local_workers)

    # ---- /metrics ----------------------------------------------------------------------------

    def start_metrics(self, port: int) -> None:
        from opskit.loadtest import exporter

        try:
            self.metrics = exporter.serve(self.view, port)
        except OSError as exc:
            reason = exc.strerror or exc
            raise ValueError(f"--metrics-port {port}: cannot listen on 127.0.0.1:{port} ({reason})") from None
        emit("metrics", url=self.metrics.url)

    def view(self) -> Any:
        """The exporter's snapshot, taken at scrape time (a greenlet: nothing else runs meanwhile)."""
        from opskit.loadtest.exporter import EndpointView, RunView

        cfg, agg = self.cfg, self.agg
        now = self.t_end if self.t_end is not None else clock()
        elapsed = max(now - self.t_start, 0.0) if self.t_start is not None else 0.0
        running = self.t_start is not None and self.t_end is None
        open_model = cfg.open_model
        in_flight = agg.in_flight_now() if running else 0
        users = (int(getattr(self.runner, "user_count", 0)) if not open_model else in_flight) if running else 0
        step = agg.steps[agg.step_of(int(min(elapsed, max(self.duration - 1e-9, 0.0))))] if agg.steps else None
        return RunView(
            run_id=str(cfg.run.run_id or "adhoc"), scenario=str(cfg.scenario),
            model=cfg.model, running=running, elapsed_s=elapsed, duration_s=self.duration,
            target_rps=rate_at(rate_stages(cfg), elapsed) if open_model and running else 0.0,
            users=users, in_flight=in_flight, scheduled=agg.scheduled, dropped=agg.dropped,
            step_index=step.index if step else None, step_name=step.name if step else None,
            endpoints={n: EndpointView(t.hist, t.errors) for n, t in agg.endpoints.items()},
            cpu=agg.latest_cpu() if running else {})

    def linger(self) -> None:
        """Keep /metrics up a little after the run so Prometheus scrapes the final counters."""
        if self.metrics is None:
            return
        linger_s = float(self.cfg.metrics_linger_s)
        if linger_s > 0 and not self.interrupted:
            emit("note", text=f"serving the final metrics at {self.metrics.url} for {linger_s:g}s "
                              "(for Prometheus' last scrape; Ctrl-C ends it)")
            deadline = clock() + linger_s
            while clock() < deadline and not self.interrupted:
                gevent.sleep(min(0.1, max(deadline - clock(), 0.0)))
        self.close_metrics()

    def close_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def _on_user_error(self, user_instance: Any, exception: BaseException, tb: Any, **kw: Any) -> None:
        if isinstance(user_instance, openmodel.OpenModelDriver):  # the generator itself broke
            self.failures.append(f"{type(exception).__name__}: {exception}")

    def wait_for_workers(self, runner: Any) -> None:
        """Until every worker is ready; what is missing is said every 5 s (remote workers are started by hand)."""
        start = clock()
        deadline, next_note = start + WORKER_WAIT_S, start
        remote = self.workers - int(self.cfg.local_workers)
        where = f"{self.cfg.master_bind}:{runner.server.port}"
        while len(runner.clients.ready) < self.workers:
            ready = len(runner.clients.ready)
            if clock() > deadline or self.interrupted:
                if remote:
                    raise WorkersMissing(f"--expect-workers {remote}: {max(ready - int(self.cfg.local_workers), 0)} "
                                       f"remote worker(s) joined at {where} in {WORKER_WAIT_S:.0f} s")
                raise WorkersMissing(f"only {ready} of {self.workers} local generator processes started in "
                                   f"{WORKER_WAIT_S:.0f} s (see {self.out / 'workers.log'})")
            if remote and clock() >= next_note:
                emit("note", text=f"waiting for workers at {where}: {ready} of {self.workers} connected "
                                  f"({int(self.cfg.local_workers)} local, {remote} remote: `opskit loadtest worker "
                                  f"--master HOST --master-port {runner.server.port}`)")
                next_note += WORKER_NOTE_S
            gevent.sleep(0.1)

    def drive(self, runner: Any, gen: Generator | None, t_start: float) -> None:
        cfg = self.cfg
        open_model = cfg.open_model
        hard_limit = self.duration + cfg.timeout_s + 15.0
        if open_model:
            runner.start(max(self.workers, 1), spawn_rate=max(self.workers, 1))
        stage_ends, acc = [], 0.0
        for s in cfg.stages:
            acc += s.duration_s
            stage_ends.append(acc)
        stage = -1
        next_report = t_start + REPORT_S
        while not (self.interrupted or self.aborted):
            elapsed = clock() - t_start
            if not open_model:
                want = next((i for i, end in enumerate(stage_ends) if elapsed < end), None)
                if want is None:
                    break
                if want != stage:
                    stage = want
                    runner.start(int(cfg.stages[stage].users or 0), spawn_rate=cfg.spawn_rate)
            elif elapsed >= self.duration and self._all_done(gen):
                break
            if runner.state == "stopped" or self.failures:
                raise RuntimeError("the load generator stopped: " + ("; ".join(self.failures) or "see locust.log"))
            if self.workers and elapsed > 10 and not self.agg.procs:
                raise RuntimeError(f"the workers sent no statistics in 10 s (see {self.out / 'workers.log'})")
            if elapsed > hard_limit:
                log.warning("run exceeded its bound (%.0f s); stopping", hard_limit)
                break
            if gen is not None and clock() >= next_report:
                self.ingest(gen.payload(in_flight_gauge=None if open_model else runner.user_count))
            if clock() >= next_report:
                next_report += REPORT_S
                self.progress(elapsed)
            gevent.sleep(min(0.1, max(next_report - clock(), 0.0)))

    def _all_done(self, gen: Generator | None) -> bool:
        if gen is not None:
            return openmodel.STATE.finished
        return len(self.done_procs) >= self.workers

    def finish(self, runner: Any, gen: Generator | None) -> None:
        openmodel.STATE.stopping = True
        if gen is not None:
            assert gen.rec is not None
            if not self.cfg.open_model:
                gen.rec.in_flight = 0  # a gauge of users there, not requests to wait for
            openmodel._wait_in_flight(gen.rec, 2.0 if self.interrupted else self.cfg.timeout_s)
            runner.stop()
            self.ingest(gen.payload(final=True, in_flight_gauge=None if self.cfg.open_model else 0))
            runner.quit()
            return
        runner.stop()
        deadline = clock() + self.cfg.timeout_s + 5.0
        while len(self.agg.finals) < self.workers and clock() < deadline:
            gevent.sleep(0.1)
        runner.quit()

    def progress(self, elapsed: float) -> None:
        agg = self.agg
        requests, errors = agg.totals()
        live = agg.live_row()
        step = agg.steps[agg.step_of(int(elapsed))].name if agg.steps else None
        emit("progress", elapsed=round(elapsed, 2), duration=self.duration, requests=requests, errors=errors,
             dropped=agg.dropped, step=step, **asdict(live), snapshot=self.snapshot(elapsed))

    def snapshot(self, elapsed: float) -> dict[str, Any]:
        from opskit.loadtest.aggregate import stats_block

        d = max(min(elapsed, self.duration), 1e-9)
        kinds: dict[str, int] = {}
        for t in agg_endpoints(self.agg):
            for k, v in t.kinds.items():
                kinds[k] = kinds.get(k, 0) + v
        requests, errors = self.agg.totals()
        return {
            "run": {"scenario": self.cfg.run.scenario, "model": self.cfg.model,
                    "elapsed_s": round(elapsed, 2)},
            "aggregate": stats_block(self.agg.aggregate_hist(), errors, kinds, d),
            "endpoints": {n: stats_block(t.hist, t.errors, t.kinds, d) for n, t in self.agg.endpoints.items()},
            "generator": {"dropped": self.agg.dropped, "scheduled": self.agg.scheduled},
            # settled seconds only (they lag a few seconds), the last two minutes: enough for "for 30s"
            "timeline": [{k: v for k, v in self.agg.rows[t].items() if not k.startswith("_")}
                         for t in sorted(self.agg.rows)[-120:]],
        }


def told_by_cli(path: str | None) -> RunnerControl:
    """What the CLI left for results.json (driver._tell): the abort reason, the failover kill."""
    if path is None:
        return RunnerControl()
    try:
        return RunnerControl.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return RunnerControl()  # nothing told


def fault_input(cfg: RunnerConfig, told: RunnerControl) -> results_mod.FaultInput | None:
    """A failure scenario's window (told by the CLI) and its acknowledged writes checked in the database."""
    if cfg.fault is None:
        return None
    from opskit.faults import analysis, writes

    checked: tuple[int, int] | None = None
    if cfg.fault.writes_dir and cfg.fault.db_url:
        try:
            checked = writes.check(Path(cfg.fault.writes_dir), cfg.fault.db_url, cfg.fault.password_file)
        except Exception as exc:  # the run's figures still count; lost_writes stays null, said in the log
            log.error("checking the acknowledged writes failed: %s", exc)
    window = analysis.Timing(cfg.fault.kind, told.fault_injected_at_s, told.fault_cleared_at_s, told.fault_detail,
                             told.fault_ramp_s, told.fault_held_bytes)
    return results_mod.FaultInput(cfg.fault, window, checked)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agg_endpoints(agg: Aggregator) -> list[Any]:
    return list(agg.endpoints.values())


def spawn_local_workers(cfg: RunnerConfig, port: int, token: str | None) -> list[Any]:
    from opskit import children
    from opskit.loadtest.channel import TOKEN_ENV

    log_path = Path(cfg.out_dir) / "workers.log"
    argv = [sys.executable, "-m", "opskit.loadtest.runner", "--worker", "--master", "127.0.0.1",
            "--master-port", str(port)]
    # in the runner's process group, not their own: when the CLI kills that group, the workers go too
    env = {**os.environ, **({TOKEN_ENV: token} if token else {})}  # the token by environment, never argv
    return [children.start(argv, env=env, log=log_path, group=False)
            for _ in range(int(cfg.local_workers))]


def stop_child(child: Any) -> None:
    if child.wait(10) is None:  # a worker quits when the master ends the run; give it that chance first
        child.stop(timeout_s=5)
    child.stop()  # reap



def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m opskit.loadtest.runner")
    ap.add_argument("config", nargs="?")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--master", default="127.0.0.1")
    ap.add_argument("--master-port", type=int, default=5557)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    fdlimit.lift()  # one open file per user's connection: a soft limit of 1,024 would fail at ~1,000 users
    if args.worker:
        from greenlet import getcurrent

        from opskit.loadtest.channel import TOKEN_ENV
        from opskit.loadtest.worker import WorkerStopped, say

        main_greenlet = getcurrent()
        gevent.signal_handler(signal.SIGINT, lambda: None)  # the master decides when a worker stops...
        # ...unless it is told to stop: raised in the main greenlet, so worker_main says so and exits 0
        gevent.signal_handler(signal.SIGTERM, lambda: main_greenlet.throw(WorkerStopped("SIGTERM")))
        try:
            return worker_main(args.master, args.master_port, os.environ.pop(TOKEN_ENV, None) or None)
        except WorkerStopped as exc:  # while waiting for the master
            say(f"stopped ({exc}) before the master answered")
            return 0
    cfg = RunnerConfig.from_json(json.loads(Path(args.config).read_text(encoding="utf-8")))
    run = Run(cfg)

    def interrupt() -> None:
        run.interrupted = True

    def abort() -> None:
        run.aborted = True

    gevent.signal_handler(signal.SIGINT, interrupt)
    gevent.signal_handler(signal.SIGTERM, interrupt)
    gevent.signal_handler(signal.SIGUSR1, abort)
    try:
        return run.main()
    except KeyboardInterrupt:
        emit("error", message="interrupted before the run started", exit_code=130)
        return 130
    except (locustenv.LocustfileError, ValueError) as exc:
        emit("error", message=str(exc), exit_code=2)
        return 2
    except WorkersMissing as exc:
        emit("error", message=str(exc), exit_code=3)
        return 3
    except Exception as exc:
        log.exception("runner failed")
        emit("error", message=f"{type(exc).__name__}: {exc}", exit_code=3)
        return 3
    finally:
        run.stop_children()
        run.close_metrics()


if __name__ == "__main__":
    sys.exit(main())
