"""monitor up / down / status as functions returning data; the command module only renders them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from opskit.monitor import alertmanager as am
from opskit.monitor import config as cfg
from opskit.monitor import process as proc


@dataclass(frozen=True)
class UpResult:
    state: proc.State
    started: bool  # False: it was running already (targets/rules updated and reloaded)
    warnings: list[str] = field(default_factory=list)


def up(
    state_dir: Path, *, job: str, targets: list[str], port: int | None, scrape_interval_s: float,
    rule_paths: list[Path], retention: str = "7d", loadtest: list[str] | None = None,
    alertmanager: str | None = None,
) -> UpResult:
    from opskit.atomicio import write_atomic

    scrape_targets = [cfg.parse_target(t) for t in targets]
    loadtest_targets = [cfg.parse_target(t) for t in loadtest or []]
    rule_files, warnings = proc.check_rules(rule_paths)
    root = proc.home(state_dir).resolve()
    current = proc.read_state(state_dir)
    if current is not None and not proc.is_ours(current):
        proc.stop(state_dir, current)  # stale state: that process is gone (or the pid was reused)
        current = None
    chosen = current.port if current else proc.pick_port(port)
    if current and port not in (None, 0, current.port):
        warnings.append(f"already running on port {current.port}; --port {port} ignored (run down first)")
    text = cfg.render_config(job=job, port=chosen, targets_path=str(root / "targets.json"),
                             rule_files=rule_files, scrape_interval_s=scrape_interval_s,
                             loadtest_targets_path=str(root / "loadtest-targets.json"),
                             static_jobs=_stack_jobs(state_dir), alertmanager=alertmanager)
    write_atomic(root / "loadtest-targets.json", cfg.targets_file(loadtest_targets))
    urls = [t.url for t in scrape_targets]
    if current is not None:
        proc.write_files(state_dir, text, cfg.targets_file(scrape_targets))
        proc.reload(current)
        state = proc.State(**{**current.__dict__, "targets": urls, "rule_files": rule_files})
        proc.write_state(state_dir, state)
        return UpResult(state, started=False, warnings=warnings)
    state = proc.start(state_dir, port=chosen, config_text=text, targets_text=cfg.targets_file(scrape_targets),
                       targets=urls, rule_files=rule_files, retention=retention)
    return UpResult(state, started=True, warnings=warnings)


def _stack_jobs(state_dir: Path) -> dict[str, cfg.ScrapeTarget]:
    """The exporters of a stack `opskit stack up` runs under the same state dir."""
    from opskit.stack.runtime import scrape_jobs

    return {job: cfg.parse_target(url) for job, url in scrape_jobs(state_dir).items()}


@dataclass(frozen=True)
class DownResult:
    stopped: bool
    pid: int | None
    purged: bool
    state_error: str | None  # why a state file that exists could not be read
    alertmanager_pid: int | None = None  # the Alertmanager stopped too, if one ran


@dataclass(frozen=True)
class Target:
    job: str | None
    url: str | None
    health: str | None
    last_error: str | None
    last_scrape: str | None


@dataclass(frozen=True)
class NotRunning:
    running: bool  # always False
    stale_state: bool
    state_dir: str
    state_error: str | None
    alertmanager: am.Status | None = None


@dataclass(frozen=True)
class Running:
    running: bool  # always True
    pid: int
    url: str
    ready: bool
    uptime_s: float
    config: str
    rule_files: list[str]
    targets: list[Target]
    rules: int | None  # loaded rules; None when the API did not answer
    alertmanager: am.Status | None = None


Status = Running | NotRunning


def down(state_dir: Path, *, purge: bool = False) -> DownResult:
    import shutil

    state = proc.read_state(state_dir)
    stopped = proc.stop(state_dir, state) if state else False
    am_stopped, am_pid = am.down(state_dir)
    if purge:
        shutil.rmtree(proc.home(state_dir), ignore_errors=True)
        shutil.rmtree(am.home(state_dir), ignore_errors=True)
    return DownResult(stopped=stopped, pid=state.pid if state else None, purged=purge,
                      state_error=None if state else proc.state_problem(state_dir),
                      alertmanager_pid=am_pid if am_stopped else None)


def status(state_dir: Path) -> Status:
    state = proc.read_state(state_dir)
    if state is None or not proc.is_ours(state):
        return NotRunning(running=False, stale_state=state is not None, state_dir=str(proc.home(state_dir)),
                          state_error=None if state else proc.state_problem(state_dir),
                          alertmanager=_am_status(state_dir))
    targets, rules = _api_status(state.url)
    return Running(running=True, pid=state.pid, url=state.url, ready=proc.ready(state.url),
                   uptime_s=round(time.time() - state.started_at, 1), config=state.config,
                   rule_files=state.rule_files, targets=targets, rules=rules, alertmanager=_am_status(state_dir))


def _am_status(state_dir: Path) -> am.Status | None:
    info = am.status(state_dir)
    return info if info.running else None


def _api_status(url: str) -> tuple[list[Target], int | None]:
    import httpx

    targets: list[Target] = []
    rules: int | None = None
    try:
        with httpx.Client(timeout=5, trust_env=False) as client:
            data = client.get(f"{url}/api/v1/targets").json().get("data", {})
            for t in data.get("activeTargets", []):
                targets.append(Target(job=t.get("labels", {}).get("job"), url=t.get("scrapeUrl"),
                                      health=t.get("health"), last_error=t.get("lastError") or None,
                                      last_scrape=t.get("lastScrape")))
            groups = client.get(f"{url}/api/v1/rules").json().get("data", {}).get("groups", [])
            rules = sum(len(g.get("rules", [])) for g in groups)
    except (httpx.HTTPError, ValueError, AttributeError):
        pass  # a Prometheus that is up but not answering its API yet: status shows what it has
    return targets, rules
