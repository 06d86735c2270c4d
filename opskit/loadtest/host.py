"""The load test's adapters to this machine: the facts a request needs (clock, tenant keys and the channel
token from their files, stdin or environment, git, versions, the spec's hash), the checks before anything
starts (paths, the metrics port, the keys against the target), running a prepared request, and the
`loadtest worker` process. The command layer calls these; the cores
(request.py, plan.py) stay free of them. Nothing here prints: progress goes to the reporter passed in."""

from __future__ import annotations

import json
import os
import platform
import signal
import stat
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Protocol

from opskit.errors import ConfigError, Interrupted, RuntimeFailure, UsageError
from opskit.loadtest.driver import Outcome, ProgressReport
from opskit.loadtest.request import HostFacts, ParamError, RunParams, RunRequest, TenantKey, parse_api_keys
from opskit.runmodel import RunResults
from opskit.spec.schema import Spec


class Reporter(Protocol):
    """Where a running load test reports: a line of news, and each progress message from the runner."""

    def note(self, text: str) -> None: ...

    def update(self, report: ProgressReport) -> None: ...


TOKEN_ENV = "OPSKIT_LOADTEST_TOKEN"  # the channel's token by environment (channel.TOKEN_ENV, without zmq)
MIN_TOKEN_CHARS = 16


def facts(spec_file: str | None, params: RunParams | None = None, environ: Mapping[str, str] | None = None,
          stdin: IO[str] | None = None) -> HostFacts:
    """params: where the request's secrets come from (`api_key` values, `keys_file`, `token_file`)."""
    from importlib.metadata import PackageNotFoundError, version

    from opskit import __version__
    from opskit.spec import file_hash, spec_path

    env = os.environ if environ is None else environ
    keys, notes = tenant_keys(params or RunParams(""), env, stdin)
    try:
        locust_version: str | None = version("locust")
    except PackageNotFoundError:
        locust_version = None
    try:
        spec_hash = file_hash(spec_path(spec_file))
    except OSError:
        spec_hash = None
    token, token_notes = read_token(params.token_file if params else None, env)
    return HostFacts(now=datetime.now(UTC), tenant_keys=keys, token=token, notes=(*notes, *token_notes),
                     spec_hash=spec_hash, git_sha=_git_sha(),
                     versions={"opskit": __version__, "locust": locust_version, "python": platform.python_version()})


def tenant_keys(p: RunParams, env: Mapping[str, str], stdin: IO[str] | None) -> tuple[tuple[TenantKey, ...],
                                                                                     list[str]]:
    """The tenant keys from OPSKIT_API_KEYS, `keys_file` and each `api_key` ("-": stdin), in that order;
    with warnings for keys written where others can read them."""
    keys = list(parse_api_keys(env.get("OPSKIT_API_KEYS", "")))
    notes = []
    if p.keys_file is not None:
        text, note = _read_secret_file(p.keys_file, "`keys_file`")
        keys += parse_api_keys(text, f"`keys_file` {p.keys_file}")
        notes += note
    for i, value in enumerate(p.api_keys, 1):
        if value == "-":
            keys += parse_api_keys((stdin or sys.stdin).read(), "`api_key` - (stdin)")
            continue
        keys += parse_api_keys(value, f"`api_key` #{i}")
        notes.append(f"`api_key` #{i}: a key on the command line is visible to every user of this machine (ps); "
                     "prefer `api_key` - (stdin), `keys_file` or OPSKIT_API_KEYS")
    unique = {(k.company_id, k.key): k for k in keys}  # one key given twice is one tenant
    return tuple(unique.values()), notes


def read_token(path: Path | None, env: Mapping[str, str]) -> tuple[str | None, list[str]]:
    """The channel token: the file's content (one line) when given, else OPSKIT_LOADTEST_TOKEN."""
    if path is not None:
        text, notes = _read_secret_file(path, "`token_file`")
        token = text.strip()
        where = f"`token_file` {path}"
    else:
        token, notes, where = env.get(TOKEN_ENV, "").strip(), [], TOKEN_ENV
        if not token:
            return None, []
    if len(token) < MIN_TOKEN_CHARS or "\n" in token:
        raise ParamError(f"{where}: the token must be one line of at least {MIN_TOKEN_CHARS} characters (make one "
                         "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return token, notes


def _read_secret_file(path: Path, name: str) -> tuple[str, list[str]]:
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ParamError(f"{name} {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return text, [f"{name} {path} can be read by others (mode {stat.S_IMODE(mode):o}); `chmod 600 {path}`"]
    return text, []


def check_keys(req: RunRequest, timeout_s: float = 5.0) -> None:
    """Each tenant key against the target before anything starts: one request to its company's stats
    (redirects are not followed: the key goes to the target only). A 401 or 403 refuses the run (exit 2,
    naming the key's company and where it was given); an unreachable or failing target is exit 3."""
    import http.client
    from urllib.parse import quote, urlsplit

    if req.target.url is None:
        return
    parts = urlsplit(req.target.url)
    base = parts.path.rstrip("/")
    conn_type = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    for k in req.tenant_keys:
        conn = conn_type(parts.netloc, timeout=timeout_s)
        try:
            conn.request("GET", f"{base}/api/companies/{quote(k.company_id, safe='')}/stats",
                         headers={"Authorization": f"Bearer {k.key}", "Accept": "application/json"})
            resp = conn.getresponse()
            body = resp.read(2000)
        except OSError as exc:
            raise RuntimeFailure(f"cannot check the API keys: {req.target.url} did not answer "
                                 f"({getattr(exc, 'strerror', None) or exc})") from None
        finally:
            conn.close()
        if resp.status in (401, 403):
            raise ParamError(f"the target refused the API key for {k.company_id} (from {k.source}): HTTP "
                             f"{resp.status} {_reason(body, resp.reason)}; create one with `opskit service keys "
                             f"create --company {k.company_id} --tier internal`")
        if resp.status >= 500:
            raise RuntimeFailure(f"cannot check the API keys: {req.target.url} answered HTTP {resp.status}")


def _reason(body: bytes, default: str) -> str:
    try:
        doc = json.loads(body)
        return str(doc.get("error") or doc.get("detail") or default) if isinstance(doc, dict) else default
    except ValueError:
        return default


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
    _check_open_files(req)


def _check_open_files(req: RunRequest) -> None:
    """Every connection is an open file: 10,000 users in one process need ~10,050 (fdlimit.py)."""
    from opskit.loadtest import fdlimit

    sc, opts = req.scenario, req.opts
    distributed = opts.processes > 1 or opts.expect_workers  # then Locust shares the users among workers
    processes = opts.processes + opts.expect_workers if distributed else 1
    if sc.model == "closed":
        users = max((s.users or 0) for s in sc.stages)
        problem = fdlimit.shortfall(f"{users:,} users", users, processes, fdlimit.hard_limit())
    else:
        problem = fdlimit.shortfall(f"max_in_flight {sc.max_in_flight:,}", sc.max_in_flight, processes,
                                    fdlimit.hard_limit())
    if problem:
        raise ParamError(problem)


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
    # the runner's own environment: the channel token (never argv), the spec's targets (the allowlist every
    # request is checked against, in the runner and its local workers)
    env = {"OPSKIT_ALLOWED_TARGETS": json.dumps([t.url for t in req.spec.targets.values()])}
    if req.token:
        env[TOKEN_ENV] = req.token
    s = session.Session(req.scenario, req.target, req.out_dir, req.opts, req.run_meta, abort_check, reporter,
                        child_env=env, slos=tuple(req.spec.slos))
    return session.execute(s)


def worker(spec: Spec, master: str, port: int, token_file: Path | None = None,
           warn: Callable[[str], None] = lambda text: None) -> None:
    """Run a worker process until the master ends the run (or Ctrl-C). A remote master is joined only
    with the run's token, which both sides prove before the worker sees anything of the run."""
    from opskit import children
    from opskit.loadtest.safety import is_loopback

    try:
        token, notes = read_token(token_file, os.environ)
    except ParamError as exc:
        raise exc.naming(lambda name: "--" + name.replace("_", "-")) from None
    for note in notes:
        warn(note.replace("`token_file`", "--token-file"))
    if token is None and not is_loopback(f"http://{master}"):
        raise UsageError(f"--master {master}: a worker joins a remote master only with the run's token "
                         f"(--token-file F or {TOKEN_ENV}): the master's locustfile runs on this machine")
    allowed = [t.url for t in spec.targets.values()]
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    env["OPSKIT_ALLOWED_TARGETS"] = json.dumps(allowed)
    if token is not None:
        env[TOKEN_ENV] = token
    argv = [sys.executable, "-m", "opskit.loadtest.runner", "--worker", "--master", master,
            "--master-port", str(port)]
    proc = children.start(argv, env=env, log=None)  # its output (progress lines on stderr) is this command's

    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # handled below: the worker process is stopped, not left behind

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.stop(timeout_s=15)  # SIGTERM: the worker leaves the master and says so
        raise Interrupted("worker stopped") from None
    finally:
        proc.stop(timeout_s=15)
        signal.signal(signal.SIGTERM, previous)
    if code == 2:  # it said why on stderr: the master did not prove the token, or refused this worker's
        raise ConfigError("the worker did not join the run (see the line above)")
    if code == 3:
        raise RuntimeFailure(f"no master answered at {master}:{port}")
    if code != 0:
        raise RuntimeFailure(f"the worker exited with code {code}")
