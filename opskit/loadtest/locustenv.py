"""Locust plumbing for the runner (imports locust: runner subprocess only): loading a locustfile,
building the Environment, and writing Locust's own CSVs atomically."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import sys
from pathlib import Path
from typing import Any

from locust import User
from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from opskit.atomicio import write_atomic
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
