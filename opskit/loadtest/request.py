"""Preparing a load test as a core: the spec and the request's parameters in, a typed RunRequest out,
refusing before any network use. What the machine knows (clock, tenant keys, git, versions) comes in as
HostFacts from the adapter (loadtest/host.py), asked for once the request is approved; nothing here reads
the environment or prints.

Errors name the request's parameters (`duration`) and spec keys (loadtest.max_duration); a command
turns the parameter names into its own option names with ParamError.naming.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from opskit.errors import UsageError
from opskit.loadtest import plan, scenarios
from opskit.loadtest.safety import ParamError, Target
from opskit.runmodel import RunMeta
from opskit.spec.schema import Spec
from opskit.units import parse_duration


@dataclass(frozen=True)
class RunParams:
    """What the user asks for; None leaves it to the scenario, the spec or the default."""

    scenario: str
    target: str | None = None
    host: str | None = None
    users: int | None = None
    rate: float | None = None
    duration: str | None = None
    processes: int = 1
    expect_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int | None = None
    locustfile: Path | None = None
    name: str | None = None  # a locustfile run's own scenario name (default: the file's stem)
    user_classes: tuple[str, ...] = ()
    path: str | None = None  # http-get: the path to request
    out_dir: Path | None = None
    ui: bool = False
    metrics_port: int | None = None
    metrics_linger: str | None = None
    confirm_production: bool = False
    api_keys: tuple[str, ...] = ()  # company=KEY values, or "-": read them from stdin (host.py)
    keys_file: Path | None = None  # company=KEY lines
    token_file: Path | None = None  # the distributed channel's shared secret


@dataclass(frozen=True)
class TenantKey:
    company_id: str
    key: str = field(repr=False)
    source: str = field(default="", compare=False)  # where it was given, for messages: "--keys-file F line 2"


@dataclass(frozen=True)
class HostFacts:
    """What the machine says about this run, gathered by the adapter."""

    now: datetime
    tenant_keys: tuple[TenantKey, ...] = ()  # for a real target (--api-key, --keys-file, OPSKIT_API_KEYS)
    token: str | None = field(default=None, repr=False)  # --token-file or OPSKIT_LOADTEST_TOKEN
    notes: tuple[str, ...] = ()  # warnings about how the secrets were given
    spec_hash: str | None = None
    git_sha: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class RunRequest:
    """A load test ready to start: the scenario adjusted to the request, the approved target, the folder."""

    spec: Spec
    scenario: scenarios.Scenario
    target: Target
    out_dir: Path
    opts: plan.Options
    run_meta: RunMeta
    notes: tuple[str, ...] = ()
    tenant_keys: tuple[TenantKey, ...] = ()  # checked against a real target before the run (host.check_keys)
    token: str | None = field(default=None, repr=False)  # handed to the runner by environment, never argv

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.json"


def prepare(spec: Spec, p: RunParams, gather: Callable[[], HostFacts]) -> RunRequest:
    """gather: the machine's facts, asked for only once the request is approved (it runs git)."""
    from opskit.loadtest import safety

    # safety first: nothing below may touch the network before the target is approved
    target = safety.resolve(spec, target=p.target, host=p.host, confirm_production=p.confirm_production)
    if p.users is not None and p.rate is not None:
        raise ParamError("give `users` (closed model) or `rate` (open model), not both")
    sc = scenarios.load(p.scenario, spec, target_max_rps=target.max_rps)
    if sc.fault is not None and not target.embedded:
        from opskit.faults.spec import LOCAL_ONLY

        raise UsageError(LOCAL_ONLY.format(name=sc.name))
    duration_s = None
    if p.duration is not None:
        try:
            duration_s = parse_duration(p.duration)
        except ValueError as exc:
            raise ParamError(f"`duration`: {exc}") from None
        if duration_s <= 0:
            raise ParamError("`duration` must be above zero")
    sc, notes = scenarios.adjust(sc, rate=p.rate, users=p.users, duration_s=duration_s, max_rps=target.max_rps)
    sc = _own_name(sc, p)
    if sc.model == "closed" and target.max_rps is not None:
        raise ParamError(f"target {target.name!r} has max_rps {target.max_rps:g}: the closed model (`users`) "
                         "cannot hold a rate cap; use the open model (`rate`)")
    if sc.duration_s > spec.loadtest.max_duration:
        raise ParamError(f"the run would last {sc.duration_s:g}s, over loadtest.max_duration "
                         f"({spec.loadtest.max_duration:g}s); shorten it with `duration`")
    if (p.expect_workers or p.processes > 1) and p.ui:
        raise ParamError("`ui` runs a single local process; drop `processes`/`expect_workers`")
    linger_s = linger(spec, p.metrics_port, p.metrics_linger)
    host = gather()
    if not safety.is_loopback(f"http://{p.master_bind}") and not host.token:
        raise ParamError(f"`master_bind` {p.master_bind}: remote workers join only with a token; give one with "
                         "`token_file` F or OPSKIT_LOADTEST_TOKEN (and the same to every worker)")
    if sc.needs_keys and p.locustfile is None and not target.embedded and not host.tenant_keys:
        raise ParamError(f"scenario {sc.name!r} needs tenant API keys for {target.url}: create one per company with "
                         "`opskit service keys create --company C --tier internal` and pass them with "
                         "`api_key` - (company=KEY lines on stdin), `keys_file` F or OPSKIT_API_KEYS")
    params: dict[str, Any] = {}
    if p.path is not None:
        if not p.path.startswith("/"):
            raise ParamError(f"`path` must start with '/', got {p.path!r}")
        params["path"] = p.path
    if host.tenant_keys:
        params["tenants"] = [{"company_id": k.company_id, "key": k.key} for k in host.tenant_keys]
    stamp = host.now.strftime("%Y%m%dT%H%M%SZ")
    folder = p.out_dir or Path(spec.loadtest.out_dir) / f"{stamp}-{sc.name}"
    opts = plan.Options(processes=p.processes, expect_workers=p.expect_workers, master_bind=p.master_bind,
                        master_port=p.master_port if p.master_port is not None else (5557 if p.expect_workers else 0),
                        ui=p.ui, locustfile=p.locustfile, user_classes=p.user_classes, params=params,
                        metrics_port=p.metrics_port, metrics_linger_s=linger_s)
    meta = RunMeta(run_id=f"{stamp}-{sc.name}", scenario=sc.name, target_name=target.name,
                   environment=target.environment, spec_hash=host.spec_hash, git_sha=host.git_sha,
                   locustfile=str(p.locustfile or sc.locustfile), versions=dict(host.versions),
                   stages=plan.stages(sc), max_in_flight=sc.max_in_flight)
    return RunRequest(spec, sc, target, folder, opts, meta, (*notes, *host.notes),
                      tenant_keys=host.tenant_keys if not target.embedded else (), token=host.token)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _own_name(sc: scenarios.Scenario, p: RunParams) -> scenarios.Scenario:
    """A --locustfile run is its own scenario: named `name` (default the file's stem), so its results,
    folder, run id and gate criteria (gate.scenarios.NAME) are not the borrowed shape's."""
    if p.locustfile is None:
        if p.name is not None:
            raise ParamError("`name` names a `locustfile` run; a scenario from loadtests/ has its own name")
        return sc
    name = p.name if p.name is not None else p.locustfile.stem
    if not _NAME.fullmatch(name):
        raise ParamError(f"`name` {name!r}: use letters, digits, '.', '_' or '-' (it names the run folder)")
    return dataclasses.replace(sc, name=name, description=f"{p.locustfile.name} with the load shape of {sc.name}")


def linger(spec: Spec, metrics_port: int | None, metrics_linger: str | None) -> float:
    """How long /metrics stays up after the run: one scrape interval by default, so the local Prometheus
    (which scrapes at alerts.scrape_interval) sees the final counters at least once."""
    if metrics_linger is None:
        return float(spec.alerts.scrape_interval) if metrics_port is not None else 0.0
    if metrics_port is None:
        raise ParamError("`metrics_linger` needs `metrics_port`")
    try:
        linger_s = parse_duration(metrics_linger)
    except ValueError as exc:
        raise ParamError(f"`metrics_linger`: {exc}") from None
    if linger_s < 0 or linger_s > 600:
        raise ParamError(f"`metrics_linger` must be between 0s and 10m, got {metrics_linger!r}")
    return linger_s


def parse_api_keys(raw: str, where: str = "OPSKIT_API_KEYS") -> tuple[TenantKey, ...]:
    """"company-1=KEY,company-2=KEY" (or one pair a line; blank lines and # comments skipped): tenant keys
    for a real target. Errors name the place and the line, never the text (it holds keys)."""
    out = []
    lines = raw.splitlines()
    for n, line in enumerate(lines, 1):
        if line.strip().startswith("#"):
            continue
        at = f"{where} line {n}" if len(lines) > 1 else where
        for item in filter(None, (p.strip() for p in line.split(","))):
            company, sep, key = item.partition("=")
            if not sep or not key.strip() or not company.strip():
                raise UsageError(f"{at}: expected company=KEY pairs (one a line, or separated by commas)")
            out.append(TenantKey(company.strip(), key.strip(), at))
    return tuple(out)


@dataclass(frozen=True)
class ScenarioRow:
    """One line of `loadtest list`."""

    name: str
    model: str
    duration_s: float | None
    stages: int | None
    load: str
    description: str
    peak_rate_rps: float | None = None  # the open model's highest stage rate
    peak_users: int | None = None  # the closed model's highest user count


def catalogue(spec: Spec) -> list[ScenarioRow]:
    """Every scenario in loadtests/, load levels resolved from the spec; a broken file is a row saying so."""
    rows = []
    for path in scenarios.list_files():
        try:
            sc = scenarios.load(path.stem, spec, target_max_rps=None)
            rows.append(ScenarioRow(sc.name, sc.model, round(sc.duration_s, 1), len(sc.stages), _load_text(sc),
                                    sc.description, sc.peak_rate,
                                    max((s.users or 0 for s in sc.stages), default=0) or None))
        except Exception as exc:  # one broken file must not hide the others
            rows.append(ScenarioRow(path.stem, "?", None, None, "",
                                    f"cannot be loaded: {getattr(exc, 'message', exc)}"))
    return rows


def _load_text(sc: scenarios.Scenario) -> str:
    if sc.model == "closed":
        users = sorted({s.users or 0 for s in sc.stages})
        return f"{users[0]} users" if len(users) == 1 else f"{users[0]}..{users[-1]} users"
    rates = [r for s in sc.stages for r in (s.start_rate, s.end_rate) if r is not None]
    lo, hi = min(rates), max(rates)
    return f"{hi:.4g} req/s" if lo == hi else f"{lo:.4g}..{hi:.4g} req/s"
