"""A Locust worker process (`python -m opskit.loadtest.runner --worker`, started by `--processes N`
or `opskit loadtest worker`): the run's config and the locustfile's source arrive with Locust's
spawn message; every second it ships its per-second HDR histograms to the master.

It says what it is doing on stderr, one line per change (waiting for the master, connected, running,
done, stopped): someone starting a worker by hand on another machine has nothing else to look at."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent

from opskit.loadtest import context, locustenv, openmodel, safety
from opskit.loadtest.generator import Generator
from opskit.runmodel import RunnerConfig

log = logging.getLogger("opskit.loadtest")
REPORT_S = 1.0
JOIN_TIMEOUT_S = 300.0  # a worker may start before its master, as with Locust's own (5 min there too)
MASTER_WAIT_S = JOIN_TIMEOUT_S  # how long a worker waits for its master to listen (it is usually started first)
SAY_EVERY_S = 5.0


class WorkerStopped(Exception):
    """SIGTERM or SIGINT while the worker waits or runs: stop without a traceback."""


def say(text: str) -> None:
    """A worker's progress line on stderr (its user interface), through opskit.output."""
    from opskit import output as out

    out.echo(f"opskit worker: {text}", err=True)


def wait_for_master(master: str, port: int, wait_s: float = MASTER_WAIT_S) -> bool:
    """Until something listens at master:port (a plain TCP connect; Locust's own connect gives up with a
    ConnectionError traceback). Says so every SAY_EVERY_S; False when wait_s passed."""
    start = time.monotonic()
    next_say = start
    while True:
        try:
            with socket.create_connection((master, port), timeout=1.0):
                return True
        except OSError:
            pass
        now = time.monotonic()
        if now - start > wait_s:
            return False
        if now >= next_say:
            say(f"waiting for the master at {master}:{port} ({now - start:.0f}s; it is `opskit loadtest run "
                f"... --expect-workers N --master-bind ADDR --master-port {port}`)")
            next_say += SAY_EVERY_S
        gevent.sleep(1.0)


@dataclass
class _State:
    """The worker between Locust's test_start and test_stop."""

    gen: Generator | None = None
    open_model: bool = False
    stopped: bool = False
    leaving: bool = False  # told to stop (SIGTERM): not waiting for the master any more
    reporter: Any = None  # the greenlet shipping a payload every second


def worker_main(master: str, port: int, token: str | None = None) -> int:
    """Join a master: the run's config (and the locustfile's source) arrive with Locust's spawn message.
    With a token the channel is CURVE (channel.py) and the master must prove the token before this
    worker joins; without one only a loopback master is joined. 0 when the master ended the run, 2 when
    either side refuses, 3 when no master answered."""
    from opskit.loadtest import channel

    if token is None and not safety.is_loopback(f"http://{master}"):
        log.error("refusing to join %s without a token: a remote master's locustfile runs here "
                  "(give the run's token: --token-file F or %s)", master, channel.TOKEN_ENV)
        return 2
    if not wait_for_master(master, port):
        say(f"no master listened at {master}:{port} in {MASTER_WAIT_S:.0f}s; giving up")
        return 3
    try:
        channel.probe(master, port, token, timeout_s=JOIN_TIMEOUT_S)
    except channel.ChannelRefused as exc:
        log.error("%s", exc)
        return 2
    if token is not None:
        channel.secure(token)
    env = locustenv.environment([], "http://127.0.0.1", None)
    env.parsed_options = None  # so the worker takes the master's options from the spawn message
    try:
        runner = env.create_worker_runner(master, port)
    except ConnectionError:
        say(f"the master at {master}:{port} did not answer Locust's handshake; giving up")
        return 3
    say(f"connected to the master at {master}:{port} as {runner.client_id} (pid {os.getpid()})")
    tmp = tempfile.TemporaryDirectory(prefix="opskit-worker-")
    state = _State()

    def on_test_start(environment: Any, **kw: Any) -> None:
        cfg = RunnerConfig.from_json(json.loads(environment.parsed_options.opskit_config))
        refusal = safety.worker_refusal(cfg.host, os.environ.get("OPSKIT_ALLOWED_TARGETS"))
        if refusal:
            log.error(refusal)
            raise RuntimeError(refusal)
        context.set_params(dict(cfg.params))
        locustenv.guard_requests(cfg.host, locustenv.declared_targets())
        locustenv.keep_connections()
        lf = Path(tmp.name) / Path(cfg.locustfile).name
        lf.write_text(cfg.locustfile_source or "", encoding="utf-8")
        classes = locustenv.load_locustfile(lf, list(cfg.user_classes) if cfg.user_classes else None)
        open_model = cfg.open_model
        n = int(cfg.workers)
        locustenv.tune(classes, host=cfg.host, timeout_s=cfg.timeout_s,
                       concurrency=max(1, -(-cfg.max_in_flight // n)) if open_model else None)
        environment.user_classes[:] = [openmodel.OpenModelDriver] if open_model else classes
        gen = Generator(cfg, runner.worker_index % n, n, classes, worker_id=runner.client_id)
        gen.start()
        say(f"running {cfg.scenario} ({cfg.model} model, share {runner.worker_index % n + 1} of {n}) "
            f"against {cfg.host} for {cfg.duration_s:g}s")
        state.gen, state.open_model = gen, open_model
        openmodel.install_recording(environment)

        def report() -> None:
            while state.gen is not None and not state.stopped:
                gevent.sleep(REPORT_S)
                if state.stopped:
                    break
                runner.send_message("opskit_stats", gen.payload(
                    in_flight_gauge=None if open_model else runner.user_count))

        state.reporter = gevent.spawn(report)

    def on_test_stop(environment: Any, **kw: Any) -> None:
        gen = state.gen
        if gen is None or gen.rec is None:
            return
        state.stopped = True
        openmodel.STATE.stopping = True
        if not state.open_model:
            gen.rec.in_flight = 0  # a gauge of users there, not requests to wait for
        openmodel._wait_in_flight(gen.rec, gen.cfg.timeout_s)
        runner.send_message("opskit_stats", gen.payload(final=True, in_flight_gauge=None if state.open_model else 0))
        after = "" if state.leaving else "; waiting for the master to end the run"
        say(f"done: {gen.rec.requests} requests sent, {gen.rec.errors} failed{after}")

    env.events.test_start.add_listener(on_test_start)
    env.events.test_stop.add_listener(on_test_stop)
    try:
        runner.greenlet.join()
        say("the master ended the run; exiting")
    except WorkerStopped as exc:
        say(f"stopped ({exc}); leaving the master")
        state.leaving = True
        runner.quit()  # tells the master this worker is gone (it does not wait for a heartbeat timeout)
    finally:
        tmp.cleanup()
    return 0
