"""What `opskit loadtest run|worker` does between parsing options and printing: resolve the scenario
and target (refusing before any network use), name the run folder, run, and summarise."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError, Interrupted, RuntimeFailure, UsageError
from opskit.loadtest import plan, safety, scenarios
from opskit.loadtest.driver import Outcome
from opskit.runmodel import RunMeta
from opskit.spec.schema import Spec
from opskit.units import parse_duration


@dataclass
class Prepared:
    spec: Spec
    scenario: scenarios.Scenario
    target: safety.Target
    out_dir: Path
    opts: plan.Options
    run_meta: RunMeta
    notes: list[str] = field(default_factory=list)


def prepare(spec: Spec, spec_file: str | None, name: str, *, target_name: str | None, host: str | None,
            users: int | None, rate: float | None, duration: str | None, processes: int, expect_workers: int,
            master_bind: str, master_port: int | None, locustfile: Path | None, user_classes: tuple[str, ...],
            req_path: str | None, out_dir: Path | None, ui: bool, confirm_production: bool,
            metrics_port: int | None = None, metrics_linger: str | None = None) -> Prepared:
    # safety first: nothing below may touch the network before the target is approved
    target = safety.resolve(spec, target=target_name, host=host, confirm_production=confirm_production)
    if users is not None and rate is not None:
        raise UsageError("give --users (closed model) or --rate (open model), not both")
    sc = scenarios.load(name, spec, target_max_rps=target.max_rps)
    duration_s = None
    if duration is not None:
        try:
            duration_s = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"--duration: {exc}") from None
        if duration_s <= 0:
            raise UsageError("--duration must be above zero")
    sc, notes = scenarios.adjust(sc, rate=rate, users=users, duration_s=duration_s, max_rps=target.max_rps)
    if sc.model == "closed" and target.max_rps is not None:
        raise UsageError(f"target {target.name!r} has max_rps {target.max_rps:g}: the closed model (--users) "
                         "cannot hold a rate cap; use the open model (--rate)")
    if sc.duration_s > spec.loadtest.max_duration:
        raise UsageError(f"the run would last {sc.duration_s:g}s, over loadtest.max_duration "
                         f"({spec.loadtest.max_duration:g}s); shorten it with --duration")
    if locustfile is not None and not locustfile.is_file():
        raise UsageError(f"--locustfile {locustfile}: no such file")
    if (expect_workers or processes > 1) and ui:
        raise UsageError("--ui runs a single local process; drop --processes/--expect-workers")
    linger_s = _linger(spec, metrics_port, metrics_linger)
    params: dict[str, Any] = {}
    if req_path is not None:
        if not req_path.startswith("/"):
            raise UsageError(f"--path must start with '/', got {req_path!r}")
        params["path"] = req_path
    keys = _keys_from_env()
    if keys:
        params["tenants"] = keys
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = out_dir or Path(spec.loadtest.out_dir) / f"{stamp}-{sc.name}"
    if (folder / "results.json").exists():
        raise UsageError(f"{folder} already holds a results.json; choose another --out")
    if metrics_port:
        _check_port_free(metrics_port)
    opts = plan.Options(processes=processes, expect_workers=expect_workers, master_bind=master_bind,
                        master_port=master_port if master_port is not None else (5557 if expect_workers else 0),
                        ui=ui, locustfile=locustfile, user_classes=user_classes, params=params,
                        metrics_port=metrics_port, metrics_linger_s=linger_s)
    meta = _run_meta(f"{stamp}-{sc.name}", sc, target, spec_file, locustfile)
    return Prepared(spec, sc, target, folder, opts, meta, notes)


def _check_port_free(port: int) -> None:
    """Refuse a taken --metrics-port before starting anything (the runner checks again when it binds)."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"--metrics-port {port}: cannot listen on 127.0.0.1:{port} "
                             f"({exc.strerror or exc})") from None


def _linger(spec: Spec, metrics_port: int | None, metrics_linger: str | None) -> float:
    """How long /metrics stays up after the run: one scrape interval by default, so the local Prometheus
    (which scrapes at alerts.scrape_interval) sees the final counters at least once."""
    if metrics_linger is None:
        return float(spec.alerts.scrape_interval) if metrics_port is not None else 0.0
    if metrics_port is None:
        raise UsageError("--metrics-linger needs --metrics-port")
    try:
        linger_s = parse_duration(metrics_linger)
    except ValueError as exc:
        raise UsageError(f"--metrics-linger: {exc}") from None
    if linger_s < 0 or linger_s > 600:
        raise UsageError(f"--metrics-linger must be between 0s and 10m, got {metrics_linger!r}")
    return linger_s


def _keys_from_env() -> list[dict[str, str]]:
    """OPSKIT_API_KEYS="company-1=KEY,company-2=KEY": tenant keys for a real target (kept out of argv)."""
    raw = os.environ.get("OPSKIT_API_KEYS", "").strip()
    out = []
    for item in filter(None, (p.strip() for p in raw.split(","))):
        company, sep, key = item.partition("=")
        if not sep or not key:
            raise UsageError("OPSKIT_API_KEYS: expected company=KEY pairs separated by commas")
        out.append({"company_id": company, "key": key})
    return out


def _run_meta(run_id: str, sc: scenarios.Scenario, target: safety.Target, spec_file: str | None,
              locustfile: Path | None) -> RunMeta:
    from importlib.metadata import PackageNotFoundError, version

    from opskit import __version__
    from opskit.spec import file_hash, spec_path

    try:
        locust_version = version("locust")
    except PackageNotFoundError:
        locust_version = None
    try:
        spec_hash = file_hash(spec_path(spec_file))
    except OSError:
        spec_hash = None
    return RunMeta(run_id=run_id, scenario=sc.name, target_name=target.name, environment=target.environment,
                   spec_hash=spec_hash, git_sha=_git_sha(), locustfile=str(locustfile or sc.locustfile),
                   versions={"opskit": __version__, "locust": locust_version, "python": platform.python_version()},
                   stages=plan.stages(sc), max_in_flight=sc.max_in_flight)


def _git_sha() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def execute(p: Prepared) -> tuple[Outcome, dict[str, Any] | None]:
    from opskit.loadtest import progress, session

    abort_check = None
    if p.spec.gate.abort_on_fail:
        from opskit.gate.live import AbortWatcher

        try:
            watcher = AbortWatcher(list(p.spec.gate.abort_on_fail), p.spec.gate.abort_grace)
        except ValueError as exc:
            raise ConfigError(f"gate.abort_on_fail: {exc}") from None
        abort_check = watcher.check
    title = f"loadtest {p.scenario.name} ({p.scenario.model} model) -> {p.target.url or 'embedded service'}"
    with progress.Progress(title) as prog:
        s = session.Session(p.scenario, p.target, p.out_dir, p.opts, p.run_meta, abort_check, prog)
        return session.execute(s)


def _ms(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.1f}ms"


def show(results: dict[str, Any], outcome: Outcome, p: Prepared, output: str) -> None:
    from opskit import output as out

    run, gen = results["run"], results["generator"]
    if output == "json":
        out.emit_json({"results": str(p.out_dir / "results.json"), "run": run, "aggregate": results["aggregate"],
                       "generator": gen, "failover": results.get("failover")})
        return
    rows = []
    for name, ep in [*results["endpoints"].items(), ("(all)", results["aggregate"])]:
        lat = ep["latency_ms"]
        rows.append([name, ep["requests"], ep["failures"], f"{100 * ep['error_rate']:.2f}%", f"{ep['rps']:.1f}",
                     _ms(lat["p50"]), _ms(lat["p95"]), _ms(lat["p99"]), _ms(lat["p999"]), _ms(lat["max"])])
    out.table(["endpoint", "requests", "failures", "errors", "req/s", "p50", "p95", "p99", "p99.9", "max"], rows,
              title=f"{run['scenario']}: {run['model']} model, {run['duration_s']:g}s against {run['target']}")
    if len(results["steps"]) > 1:
        out.table(["step", "rate", "users", "requests", "req/s", "p95", "p99", "errors", "concurrency"],
                  [[s["name"], f"{s['rate']:.4g}" if s["rate"] is not None else "", s["users"] or "",
                    s["requests"], f"{s['rps']:.1f}", _ms(s["latency_ms"]["p95"]), _ms(s["latency_ms"]["p99"]),
                    s["failures"], s["concurrency"]] for s in results["steps"]])
    rate = (f"intended {gen['intended_rate']:g} req/s, achieved {gen['achieved_rate']:g} req/s, "
            if gen.get("intended_rate") is not None else "closed model (latency not corrected), ")
    out.echo(f"generator: {rate}dropped {gen['dropped']}, cpu max {gen['cpu_max']}%")
    if results.get("failover"):
        f = results["failover"]
        out.echo(f"failover: worker killed at {f['killed_at_s']:g}s, {f['errors_after_kill']} errors after, "
                 f"recovery {f['recovery_s'] if f['recovery_s'] is not None else 'not seen'}s")
    verdict = "valid" if run["valid"] else f"INVALID: {run['invalid_reason']}"
    if outcome.aborted:
        verdict += f"; aborted: {outcome.aborted}"
    out.echo(f"run: {verdict}")
    out.echo(f"results: {p.out_dir / 'results.json'} (+ locust_report.html, locust_*.csv)")
    if run.get("metrics_url"):
        out.echo(f"metrics: served at {run['metrics_url']} during the run (run_id {run.get('run_id')})")


def worker(spec: Spec, master: str, port: int) -> None:
    """Run a worker process until the master ends the run (or Ctrl-C)."""
    import signal

    allowed = [t.url for t in spec.targets.values()]
    env = {**os.environ, "OPSKIT_ALLOWED_TARGETS": json.dumps(allowed)}
    argv = [sys.executable, "-m", "opskit.loadtest.runner", "--worker", "--master", master,
            "--master-port", str(port)]
    proc = subprocess.Popen(argv, env=env, start_new_session=True)
    try:
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise Interrupted("worker stopped") from None
    if code != 0:
        raise RuntimeFailure(f"the worker exited with code {code}")


def verify(spec: Spec, *, period: str, stall: str, service_time: str, rate: float, duration: str | None,
           processes: int, tolerance: str, out_dir: Path | None, output: str) -> None:
    from opskit import output as out
    from opskit.errors import Refused
    from opskit.loadtest.stallserver import StallSchedule, StallServer
    from opskit.units import format_duration, parse_percent

    try:
        schedule = StallSchedule(parse_duration(period), parse_duration(stall), parse_duration(service_time))
        tol = parse_percent(tolerance) / 100.0
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if schedule.period_s <= 0 or not 0 <= schedule.stall_s < schedule.period_s:
        raise UsageError("need a period above zero and a stall shorter than the period")
    run_for = duration or format_duration(2 * schedule.period_s)
    with StallServer(schedule) as server:
        p = prepare(spec, None, "http-get", target_name=None, host=server.url, users=None, rate=rate,
                    duration=run_for, processes=processes, expect_workers=0, master_bind="127.0.0.1",
                    master_port=None, locustfile=None, user_classes=(), req_path="/", out_dir=out_dir, ui=False,
                    confirm_production=False)
        if abs(p.scenario.duration_s / schedule.period_s - round(p.scenario.duration_s / schedule.period_s)) > 1e-6:
            out.warn("the duration is not a whole number of periods: the analytic percentiles assume it is")
        outcome, results = execute(p)
    if results is None or outcome.interrupted:
        raise Interrupted("interrupted")
    lat = results["aggregate"]["latency_ms"]
    rows = []
    for key, q in (("p50", 50.0), ("p90", 90.0), ("p95", 95.0), ("p99", 99.0)):
        truth = schedule.analytic_percentile_ms(q)
        measured = lat[key]
        ok = measured is not None and abs(measured - truth) <= tol * truth + 20.0
        rows.append({"percentile": key, "analytic_ms": round(truth, 3), "measured_ms": measured, "ok": ok})
    passed = all(r["ok"] for r in rows) and results["run"]["valid"]
    if output == "json":
        out.emit_json({"passed": passed, "valid": results["run"]["valid"], "schedule": schedule,
                       "results": str(p.out_dir / "results.json"), "percentiles": rows})
    else:
        out.table(["percentile", "analytic", "measured", "verdict"],
                  [[r["percentile"], f"{r['analytic_ms']:.1f}ms", f"{r['measured_ms']}ms",
                    "ok" if r["ok"] else "OFF"] for r in rows],
                  title=f"stall {schedule.stall_s:g}s every {schedule.period_s:g}s, {rate:g} req/s, open model")
    if not results["run"]["valid"]:
        raise RuntimeFailure(f"the run is invalid: {results['run']['invalid_reason']}")
    if not passed:
        raise Refused("the measured percentiles are off the analytic truth")
