"""`opskit loadtest`'s options and output: the run options, the parameter names as options in errors,
and the tables for a run, the scenario list and a verify. Not a command module (it defines no
command), like common.py; the commands live in commands/loadtest.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from opskit.commands.common import FiniteFloatRange

if TYPE_CHECKING:
    from opskit.gate.usecase import GateRequest
    from opskit.loadtest.driver import Outcome
    from opskit.loadtest.request import RunRequest, ScenarioRow
    from opskit.loadtest.verify import VerifyReport
    from opskit.runmodel import Fault, RunResults
    from opskit.spec.schema import Spec

F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = {"out_dir": "--out", "user_classes": "--user-class", "target": "--target", "api_key": "--api-key"}


def option_name(param: str) -> str:
    """A request parameter as `loadtest run` spells it."""
    return _OPTIONS.get(param, "--" + param.replace("_", "-"))


@contextmanager
def option_names() -> Iterator[None]:
    """A request's parameter errors (`duration`) worded with the options of this command (--duration)."""
    from opskit.loadtest.request import ParamError

    try:
        yield
    except ParamError as exc:
        raise exc.naming(option_name) from None


def warn(notes: Iterable[str]) -> None:
    """A request's notes as warnings, its parameters (`api_key`) worded as options (--api-key)."""
    from opskit import output as out

    for note in notes:
        out.warn(re.sub(r"`([a-z_]+)`", lambda m: option_name(m.group(1)), note))


def run_options(f: F) -> F:
    """Every option of `loadtest run` that shapes the request (see loadtest.request.RunParams)."""
    options = [
        click.option("--target", "target", metavar="NAME", help="A target declared under targets: in the spec."),
        click.option("--host", metavar="URL", help="Send load here (loopback, or the URL of a declared target)."),
        click.option("--users", type=click.IntRange(min=1), help="Closed model: this many concurrent users."),
        click.option("--rate", type=FiniteFloatRange(min=0, min_open=True), metavar="RPS",
                     help="Open model: arrivals per second (scales a multi-stage scenario so its peak is RPS)."),
        click.option("--duration", metavar="DUR", help="Run length, e.g. 30s or 5m (stages scale to fit)."),
        click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
                     help="Local generator processes (Locust master + N workers); results merge exactly."),
        click.option("--expect-workers", type=click.IntRange(min=0), default=0, show_default=True,
                     help="Also wait for this many remote `opskit loadtest worker` processes."),
        click.option("--master-bind", default="127.0.0.1", show_default=True, metavar="HOST",
                     help="Where the master listens for workers (0.0.0.0 for remote workers)."),
        click.option("--master-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
                     help="Master port [default: any free port; 5557 with --expect-workers]."),
        click.option("--locustfile", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
                     help="Your own Locust file, run through the same pipeline (results, gate, reports); "
                          "SCENARIO gives the load shape."),
        click.option("--name", metavar="NAME", help="With --locustfile: the run's scenario name (results, folder, "
                     "gate.scenarios.NAME) [default: the locustfile's name]."),
        click.option("--user-class", "user_classes", multiple=True, metavar="NAME",
                     help="Only these User classes of the locustfile (repeatable)."),
        click.option("--path", "path", metavar="P", help="http-get: the path to request [default: /api/assets]."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
                     help="Run folder [default: runs/<timestamp>-<scenario>/]."),
        click.option("--ui", is_flag=True, help="Open Locust's web UI (on loopback) while the run goes."),
        click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
                     help="Serve the run's live metrics for Prometheus on 127.0.0.1:PORT/metrics (0: any free "
                          "port) [default: off]."),
        click.option("--metrics-linger", metavar="DUR",
                     help="Keep /metrics up this long after the run [default: alerts.scrape_interval]."),
        click.option("--confirm-production", is_flag=True, help="Required to send load to a production target."),
        click.option("--api-key", "api_keys", multiple=True, metavar="COMPANY=KEY|-",
                     help="A tenant's API key for a real target (repeatable); '-' reads company=KEY lines from "
                          "stdin (keep keys out of argv: '-', --keys-file or OPSKIT_API_KEYS)."),
        click.option("--keys-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
                     help="Tenant API keys, one company=KEY a line (mode 600)."),
        token_option,
    ]
    for option in reversed(options):
        f = option(f)
    return f


token_option = click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="The distributed run's shared token (one line, mode 600; or OPSKIT_LOADTEST_TOKEN): master and "
         "workers prove it to each other; required to bind the master or join a master off loopback.")


def verify_options(f: F) -> F:
    """The stall schedule and run of `loadtest verify`."""
    options = [
        click.option("--period", default="10s", show_default=True, metavar="DUR", help="A stall starts every PERIOD."),
        click.option("--stall", default="2s", show_default=True, metavar="DUR", help="How long each stall lasts."),
        click.option("--service", "service_time", default="10ms", show_default=True, metavar="DUR",
                     help="Answer time outside stalls."),
        click.option("--rate", type=FiniteFloatRange(min=0, min_open=True), default=100.0, show_default=True,
                     metavar="RPS"),
        click.option("--duration", metavar="DUR", help="Run length [default: two periods]; use whole periods."),
        click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True),
        click.option("--tolerance", default="5%", show_default=True, metavar="PCT",
                     help="Allowed relative error per percentile (plus 20 ms for the burst at each stall's end)."),
        click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def execute(req: RunRequest) -> tuple[Outcome, RunResults | None]:
    """Run the request with live progress on stderr."""
    from opskit.commands.progress import Progress
    from opskit.loadtest import host

    sc = req.scenario
    with Progress(f"loadtest {sc.name} ({sc.model} model) -> {req.target.url or 'embedded service'}") as progress:
        return host.execute(req, progress)


def warn_notes(req: RunRequest) -> None:
    from opskit import output as out

    for note in req.notes:
        out.warn(note)


def conclude(req: RunRequest, outcome: Outcome, results: RunResults | None, spec: Spec, output: str,
             gate: GateRequest | None, run_gate: Callable[[GateRequest, Spec, str], int]) -> int:
    """After the run: report.html, the table (or JSON), the gate; the exit code, or the error that ends it."""
    from opskit.errors import Interrupted, Refused, RuntimeFailure

    if results is None:
        raise Interrupted(f"interrupted before any results were written (log: {req.out_dir / 'locust.log'})")
    total = results.total
    write_report(req, results, gate, spec)
    if total.requests and total.failures == total.requests and not outcome.interrupted:
        # nothing worked: no latency, no throughput to show (a refused connection's 1 ms is not an answer)
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(total.failures_by_kind.items(), key=lambda kv: -kv[1]))
        raise RuntimeFailure(f"no request succeeded: all {total.requests} failed ({kinds or 'no kind recorded'}); "
                             f"no latency to report (results in {req.out_dir})")
    if not (gate is not None and output == "json"):
        show(results, outcome, req, output)
    if outcome.interrupted:
        raise Interrupted(f"interrupted: partial results (marked interrupted) in {req.out_dir}")
    if results.run.limited_by == "service":  # valid, but the offered load was not served: say so
        from opskit import output as out

        lower = " (percentiles leave dropped arrivals out)" if results.run.latency_lower_bound else ""
        out.warn(f"limited by the service: {results.run.limited_reason}{lower}")
    if gate is not None:
        return int(run_gate(gate, spec, output))
    if outcome.aborted:
        raise Refused(f"stopped early: {outcome.aborted}")
    if not results.valid:
        raise RuntimeFailure(f"the run is invalid: {results.invalid_reason} (results in {req.out_dir})")
    return 0


def write_report(req: RunRequest, results: RunResults, gate: GateRequest | None, spec: Spec) -> None:
    """report.html in the run folder, with the gate's verdicts when the run is gated (judged here too:
    judging reads results.json and writes nothing)."""
    from opskit.atomicio import write_atomic
    from opskit.loadtest.report import GateLine, render

    lines: list[GateLine] | None = None
    if gate is not None:
        from opskit.errors import OpskitError
        from opskit.gate.usecase import judge

        try:
            verdicts = judge(gate, spec)
        except OpskitError as exc:  # the gate itself reports it next; the page says so too
            lines = [GateLine("(the gate)", "error", "-", "-", str(exc))]
        else:
            lines = [GateLine(v.criterion, v.status, v.measured_text, v.limit, v.detail) for v in verdicts.verdicts]
            if verdicts.error:
                lines.append(GateLine("(the gate)", "error", "-", "-", verdicts.error))
    write_atomic(req.out_dir / "report.html", render(results, gate=lines))


def _ms(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.1f}ms"


def _fault_line(f: Fault) -> str:
    def at(v: float | None) -> str:
        return f"{v:g}s" if v is not None else "-"

    recovery = f"recovery {f.recovery_s:g}s" if f.recovery_s is not None else "no recovery seen"
    writes = (f", {f.lost_writes} of {f.acknowledged_writes} acknowledged writes lost"
              if f.lost_writes is not None else ", writes not checked")
    budget = f", {100 * f.error_budget_spent:.3g}% of the error budget" if f.error_budget_spent is not None else ""
    return (f"fault: {f.kind} {at(f.injected_at_s)}..{at(f.cleared_at_s)}, {f.errors_during} errors during, "
            f"{f.errors_after} after, p95 {_ms(f.p95_before_ms)} -> {_ms(f.p95_during_ms)}, {recovery}"
            f"{writes}{budget}")


def show(results: RunResults, outcome: Outcome, req: RunRequest, output: str) -> None:
    from opskit import output as out

    run, gen, doc = results.run, results.generator, results.document
    if output == "json":  # the blocks as the runner wrote them
        out.emit_json({"results": str(req.results_path), "run": doc["run"], "aggregate": doc["aggregate"],
                       "generator": doc.get("generator"), "failover": doc.get("failover"),
                       "fault": doc.get("fault")})
        return
    rows = []
    for name, ep in [*results.endpoints.items(), ("(all)", results.total)]:
        lat, error_rate = ep.latency_ms, round(ep.failures / ep.requests, 6) if ep.requests else 0.0
        rows.append([name, ep.requests, ep.failures, f"{100 * error_rate:.2f}%", f"{ep.rps or 0.0:.1f}",
                     _ms(lat.get("p50")), _ms(lat.get("p95")), _ms(lat.get("p99")), _ms(lat.get("p999")),
                     _ms(lat.get("max"))])
    out.table(["endpoint", "requests", "failures", "errors", "req/s", "p50", "p95", "p99", "p99.9", "max"], rows,
              title=f"{run.scenario}: {run.model} model, {run.duration_s or 0:g}s against {run.target}")
    steps = results.steps or ()
    if len(steps) > 1:
        out.table(["step", "rate", "users", "requests", "req/s", "p95", "p99", "errors", "concurrency"],
                  [[s.name, f"{s.rate:.4g}" if s.rate is not None else "", s.users or "", s.requests,
                    f"{s.rps:.1f}", _ms(s.latency_ms.get("p95")), _ms(s.latency_ms.get("p99")), s.failures,
                    s.concurrency] for s in steps])
    if gen is not None:
        rate = (f"intended {gen.intended_rate:g} req/s, achieved {gen.achieved_rate:g} req/s, "
                if gen.intended_rate is not None else "closed model (latency not corrected), ")
        out.echo(f"generator: {rate}dropped {gen.dropped}, cpu max {gen.cpu_max}%")
    if results.failover is not None:
        f = results.failover
        out.echo(f"failover: worker killed at {f.killed_at_s:g}s, {f.errors_after_kill} errors after, "
                 f"recovery {f.recovery_s if f.recovery_s is not None else 'not seen'}s")
    if results.fault is not None:
        out.echo(_fault_line(results.fault))
    verdict = "valid" if run.valid else f"INVALID: {run.invalid_reason}"
    if outcome.aborted:
        verdict += f"; aborted: {outcome.aborted}"
    out.echo(f"run: {verdict}")
    out.echo(f"results: {req.results_path} (report: {req.out_dir / 'report.html'}; Locust's CSVs: locust_*.csv)")
    if run.metrics_url:
        out.echo(f"metrics: served at {run.metrics_url} during the run (run_id {run.run_id})")


def show_list(rows: list[ScenarioRow], output: str) -> None:
    from opskit import output as out

    if output == "json":  # an object with a named list, like every list command (docs/guide/json.md)
        out.emit_json({"scenarios": rows})
        return
    out.table(["scenario", "model", "duration", "load", "description"],
              [[r.name, r.model, f"{r.duration_s:g}s" if r.duration_s is not None else "-", r.load, r.description]
               for r in rows])


def show_verify(report: VerifyReport, output: str) -> None:
    from opskit import output as out

    if output == "json":
        out.emit_json({"passed": report.passed, "valid": report.valid, "schedule": report.schedule,
                       "results": str(report.results), "percentiles": report.percentiles})
        return
    sched = report.schedule
    out.table(["percentile", "analytic", "measured", "verdict"],
              [[r.percentile, f"{r.analytic_ms:.1f}ms", f"{r.measured_ms}ms", "ok" if r.ok else "OFF"]
               for r in report.percentiles],
              title=f"stall {sched.stall_s:g}s every {sched.period_s:g}s, {report.rate:g} req/s, open model")
