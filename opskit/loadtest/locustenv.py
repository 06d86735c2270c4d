"""Locust plumbing for the runner (imports locust: runner subprocess only): loading a locustfile,
building the Environment, checking every request against the target allowlist, and writing Locust's
own CSVs atomically."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from locust import User
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
from locust.contrib import fasthttp
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from opskit.atomicio import write_atomic
from opskit.loadtest.safety import origin
from opskit.runmodel import RunnerConfig


class LocustfileError(Exception):
    pass


def load_locustfile(path: Path, only: list[str] | None = None) -> list[type[User]]:
    if not path.is_file():
        raise LocustfileError(f"{path}: no such locustfile")
    mod_name = f"opskit_locustfile_{path.stem.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise LocustfileError(f"{path}: cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LocustfileError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from None
    from opskit.loadtest.openmodel import OpenModelDriver

    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, User) and not getattr(v, "abstract", False)
               and v is not OpenModelDriver]
    if only:
        by_name = {c.__name__: c for c in classes}
        missing = [n for n in only if n not in by_name]
        if missing:
            raise LocustfileError(f"{path}: no user class {', '.join(missing)} (has: {', '.join(by_name)})")
        classes = [by_name[n] for n in only]
    if not classes:
        raise LocustfileError(f"{path}: defines no Locust User class")
    return classes


def tune(classes: list[type[User]], *, host: str, timeout_s: float, concurrency: int | None) -> None:
    """The target, per-request timeouts and, in the open model, a connection pool as large as the
    in-flight cap (one user instance serves every concurrent arrival)."""
    for cls in classes:
        cls.host = host
        if issubclass(cls, FastHttpUser):
            cls.network_timeout = timeout_s
            cls.connection_timeout = timeout_s
            if concurrency is not None:
                cls.concurrency = concurrency


class HostNotDeclared(ConnectionError):
    """A request to an origin the run may not load: recorded as a failed request, never sent (FastHttpUser
    counts a ConnectionError as a failure; it must carry no `response`, or Locust takes it for a reply)."""

    failure_kind = "refused: host not declared"

    def __init__(self, url: str) -> None:
        super().__init__(f"{self.failure_kind} ({url}: neither the run's target nor declared under targets:)")


class RequestsHostNotDeclared(requests.exceptions.ConnectionError):
    """The same for HttpUser (requests): a RequestException is what its session counts as a failure."""

    failure_kind = HostNotDeclared.failure_kind

    def __init__(self, url: str) -> None:
        super().__init__(str(HostNotDeclared(url)))


_ALLOWED: set[tuple[str, str, int]] = set()  # the origins this process may send requests to
_PREFIXES: list[tuple[str, ...]] = [()]  # "scheme://netloc/" as given: most URLs match one, without parsing


def _check(url: str, refusal: type[Exception] = HostNotDeclared) -> None:
    # the prefix test costs ~60 ns against ~1.3 us for parsing; other spellings of an origin are parsed
    if not url.startswith(_PREFIXES[0]) and origin(url) not in _ALLOWED:
        raise refusal(url)


class _GuardedUserAgent(fasthttp.LocustUserAgent):
    """FastHttpUser's HTTP client, checking each hop: a request to an undeclared origin is refused, a
    redirect to another origin is not followed (its 3xx is the response); same-origin redirects are
    followed as geventhttpclient would (up to max_redirects, 303 and a redirected POST become GET)."""

    def urlopen(self, url: Any, method: str = "GET", max_redirects: int | None = None,  # type: ignore[override]
                **kw: Any) -> Any:
        hops = self.max_redirects if max_redirects is None else int(max_redirects)
        current = str(url)
        if kw.get("to_string"):  # the body only (Locust never asks): no redirect to look at
            hops = 0
        for hop in range(hops + 1):
            _check(current)
            resp = super().urlopen(current, method=method, max_redirects=0, **kw)
            if hop == hops:
                return resp  # out of hops (or none allowed): the last 3xx is the answer
            location = resp.headers.get("location") if resp.status_code in self.redirect_response_codes else None
            if not isinstance(location, str) or not location:
                return resp
            target = urljoin(current, location)
            if origin(target) != origin(current):
                return resp  # never follow a redirect off the origin: the 3xx is the answer
            if resp.status_code == 303 or (resp.status_code in (301, 302) and method.upper() == "POST"):
                method, kw["payload"] = "GET", None
            resp.release()
            current = target
        raise AssertionError("unreachable: the last hop returns")


def _guarded_send(self: Any, request: Any, **kw: Any) -> Any:
    _check(str(request.url), RequestsHostNotDeclared)
    return requests.Session.send(self, request, **kw)


def _same_origin_redirect(self: Any, resp: Any) -> str | None:
    target = requests.Session.get_redirect_target(self, resp)
    if target is None:
        return None
    return target if origin(urljoin(resp.url, target)) == origin(resp.url) else None


def declared_targets() -> list[str]:
    """The spec's target URLs, as the CLI (or `loadtest worker`, from its own spec) passed them."""
    raw = os.environ.get("OPSKIT_ALLOWED_TARGETS")
    return [str(u) for u in json.loads(raw)] if raw else []


def guard_requests(host: str, declared: Iterable[str]) -> None:
    """From now on every request of this process (FastHttpUser and HttpUser alike, each redirect hop
    included) goes only to the run's target or a declared target's origin (scheme, host, port)."""
    from locust.clients import HttpSession

    urls = [host, *declared]
    _ALLOWED.clear()
    _ALLOWED.update(origin(u) for u in urls)
    _PREFIXES[0] = tuple(f"{p.scheme}://{p.netloc}/" for p in map(urlsplit, urls) if p.scheme and p.netloc)
    # Locust has no per-request hook that can refuse or stop a redirect: its clients are swapped here
    fasthttp.LocustUserAgent = _GuardedUserAgent  # type: ignore[misc]  # FastHttpSession builds its client from this name
    HttpSession.send = _guarded_send  # type: ignore[method-assign]  # requests sends every hop through it
    HttpSession.get_redirect_target = _same_origin_redirect  # type: ignore[method-assign]


def keep_connections() -> None:
    """FastHttpUser's pool checks an idle connection before reusing it with select(), which cannot take a
    file descriptor above 1,023 (gevent's select tries the real one first: ValueError). The pool took
    that for a dead connection, so beyond ~1,000 users in a process every request opened a new one
    (10,000 users: 14,116 distinct client ports in 3 minutes). poll() has no such limit; the unpatched one
    answers at once (timeout 0) without yielding to other greenlets."""
    import select

    from gevent.monkey import get_original
    from geventhttpclient import connectionpool

    poll = get_original("select", "poll")
    closed_or_dirty = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL

    def alive(self: Any, sock: Any) -> bool:
        if sock is None:
            return False
        try:
            fd = sock.fileno()
            if fd < 0:
                return False
            p = poll()
            p.register(fd, closed_or_dirty)
            return not p.poll(0)  # readable while idle: the server closed it (FIN) or sent something unasked
        except (OSError, ValueError):
            return False

    connectionpool.ConnectionPool._is_socket_alive = alive  # type: ignore[method-assign]


def parsed_options(config: RunnerConfig | None = None) -> Any:
    parser = get_empty_argument_parser()
    setup_parser_arguments(parser)
    opts = parser.parse(args=[])
    opts.headless = True
    if config is not None:
        # custom options travel to every worker with Locust's spawn message
        opts.opskit_config = json.dumps(config.to_json())
    return opts


def environment(classes: list[type[User]], host: str, config: RunnerConfig | None) -> Environment:
    env = Environment(user_classes=classes, host=host, parsed_options=parsed_options(config))
    env.stop_timeout = 0.0
    return env


def write_reports(env: Environment, out_dir: Path) -> None:
    from locust import stats as lstats

    writer = lstats.StatsCSV(env, lstats.PERCENTILES_TO_REPORT)
    for suffix, fn in (("stats", writer.requests_csv), ("failures", writer.failures_csv),
                       ("exceptions", writer.exceptions_csv)):
        buf = io.StringIO()
        fn(csv.writer(buf))
        write_atomic(out_dir / f"locust_{suffix}.csv", buf.getvalue())
    # no locust_report.html: as opskit drives Locust it says "Script: None", "Number of Users 1" and charts
    # the driver's rate, not the arrivals'; opskit's own report.html (loadtest/report.py) replaces it
