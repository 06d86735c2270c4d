"""The load test's adapters to this machine: the facts a request needs (clock, OPSKIT_API_KEYS, git,
versions, the spec's hash), the local checks before anything starts (paths, the metrics port), running
a prepared request, and the `loadtest worker` process. The command layer calls these; the cores
(request.py, plan.py) stay free of them. Nothing here prints: progress goes to the reporter passed in."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from opskit.errors import ConfigError, Interrupted, RuntimeFailure
from opskit.loadtest.driver import Outcome, ProgressReport
from opskit.loadtest.request import HostFacts, ParamError, RunRequest, parse_api_keys
from opskit.runmodel import RunResults
from opskit.spec.schema import Spec


class Reporter(Protocol):
    """Where a running load test reports: a line of news, and each progress message from the runner."""

    def note(self, text: str) -> None: ...

    def update(self, report: ProgressReport) -> None: ...


def facts(spec_file: str | None, environ: Mapping[str, str] | None = None) -> HostFacts:
    from importlib.metadata import PackageNotFoundError, version

    from opskit import __version__
    from opskit.spec import file_hash, spec_path

    env = os.environ if environ is None else environ
    try:
        locust_version: str | None = version("locust")
    except PackageNotFoundError:
        locust_version = None
    try:
        spec_hash = file_hash(spec_path(spec_file))
    except OSError:
        spec_hash = None
    return HostFacts(now=datetime.now(UTC), tenant_keys=parse_api_keys(env.get("OPSKIT_API_KEYS", "")),
                     spec_hash=spec_hash, git_sha=_git_sha(),
                     versions={"opskit": __version__, "locust": locust_version, "python": platform.python_version()})


def _git_sha() -> str | None:
    from opskit.proc import run_argv

    done = run_argv(["git", "rev-parse", "HEAD"], timeout=5)
    return (done.stdout.strip() or None) if done.ok else None


def check_local(req: RunRequest) -> None:
    """What the request names on this machine: the locustfile is there, the run folder is new, the
    metrics port is free (the runner checks again when it binds)."""
    locustfile = req.opts.locustfile
    if locustfile is not None and not locustfile.is_file():
        raise ParamError(f"`locustfile` {locustfile}: no such file")
    if req.results_path.exists():
        raise ParamError(f"{req.out_dir} already holds a results.json; choose another `out_dir`")
    if req.opts.metrics_port:
        _check_port_free(req.opts.metrics_port)


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise ParamError(f"`metrics_port` {port}: cannot listen on 127.0.0.1:{port} "
                             f"({exc.strerror or exc})") from None


def execute(req: RunRequest, reporter: Reporter | None) -> tuple[Outcome, RunResults | None]:
    """Run the request (the embedded service when it needs one); the results as the runner wrote them, or
    None when interrupted before any were written."""
    from opskit.loadtest import session

    abort_check = None
    if req.spec.gate.abort_on_fail:
        from opskit.gate.live import AbortWatcher

        try:
            watcher = AbortWatcher(list(req.spec.gate.abort_on_fail), req.spec.gate.abort_grace)
        except ValueError as exc:
            raise ConfigError(f"gate.abort_on_fail: {exc}") from None
        abort_check = watcher.check
    s = session.Session(req.scenario, req.target, req.out_dir, req.opts, req.run_meta, abort_check, reporter,
                        slos=tuple(req.spec.slos))
    return session.execute(s)


def worker(spec: Spec, master: str, port: int) -> None:
    """Run a worker process until the master ends the run (or Ctrl-C)."""
    from opskit import children

    allowed = [t.url for t in spec.targets.values()]
    env = {**os.environ, "OPSKIT_ALLOWED_TARGETS": json.dumps(allowed)}
    argv = [sys.executable, "-m", "opskit.loadtest.runner", "--worker", "--master", master,
            "--master-port", str(port)]
    proc = children.start(argv, env=env, log=None)  # its output is this command's
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.stop(timeout_s=15)
        raise Interrupted("worker stopped") from None
    finally:
        proc.stop(timeout_s=15)
    if code != 0:
        raise RuntimeFailure(f"the worker exited with code {code}")
