"""opskit loadtest: run Locust scenarios with open-model arrivals and HDR latencies; list them; join
a distributed run as a worker. Heavy imports (locust, rich, pydantic models) happen inside commands;
locust itself only ever runs in the runner subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from opskit.commands.common import FiniteFloatRange, load, output_option, spec_option
from opskit.commands.gateview import GATE_KEYS, gate_options


@click.group()
def loadtest() -> None:
    """Load tests against the asset service (Locust, open-model arrivals, HDR percentiles)."""


@loadtest.command("list")
@spec_option
@output_option("table", "json")
def list_cmd(spec_file: str | None, output: str) -> None:
    """The scenarios in loadtests/, one line each (load levels resolved from opskit.yaml)."""
    from opskit import output as out
    from opskit.loadtest import scenarios

    spec = load(spec_file)
    rows = []
    for path in scenarios.list_files():
        try:
            sc = scenarios.load(path.stem, spec, target_max_rps=None)
            load_text = _load_text(sc)
            rows.append({"name": sc.name, "model": sc.model, "duration_s": round(sc.duration_s, 1),
                         "stages": len(sc.stages), "load": load_text, "description": sc.description})
        except Exception as exc:  # one broken file must not hide the others
            rows.append({"name": path.stem, "model": "?", "duration_s": None, "stages": None,
                         "load": "", "description": f"cannot be loaded: {getattr(exc, 'message', exc)}"})
    if output == "json":
        out.emit_json(rows)
        return
    out.table(["scenario", "model", "duration", "load", "description"],
              [[r["name"], r["model"], f"{r['duration_s']:g}s" if r["duration_s"] is not None else "-", r["load"],
                r["description"]] for r in rows])


def _load_text(sc: Any) -> str:
    if sc.model == "closed":
        users = sorted({s.users for s in sc.stages})
        return f"{users[0]} users" if len(users) == 1 else f"{users[0]}..{users[-1]} users"
    rates = [r for s in sc.stages for r in (s.start_rate, s.end_rate)]
    lo, hi = min(rates), max(rates)
    return f"{hi:.3g} req/s" if lo == hi else f"{lo:.3g}..{hi:.3g} req/s"


@loadtest.command()
@click.argument("scenario")
@click.option("--target", "target_name", metavar="NAME", help="A target declared under targets: in the spec.")
@click.option("--host", metavar="URL", help="Send load here (loopback, or the URL of a declared target).")
@click.option("--users", type=click.IntRange(min=1), help="Closed model: this many concurrent users.")
@click.option("--rate", type=FiniteFloatRange(min=0, min_open=True), metavar="RPS",
              help="Open model: arrivals per second (scales a multi-stage scenario so its peak is RPS).")
@click.option("--duration", metavar="DUR", help="Run length, e.g. 30s or 5m (stages scale to fit).")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Local generator processes (Locust master + N workers); results merge exactly.")
@click.option("--expect-workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Also wait for this many remote `opskit loadtest worker` processes.")
@click.option("--master-bind", default="127.0.0.1", show_default=True, metavar="HOST",
              help="Where the master listens for workers (0.0.0.0 for remote workers).")
@click.option("--master-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Master port [default: any free port; 5557 with --expect-workers].")
@click.option("--locustfile", type=click.Path(dir_okay=False, path_type=Path), metavar="PATH",
              help="Your own Locust file, run through the same pipeline (results, gate, reports).")
@click.option("--user-class", "user_classes", multiple=True, metavar="NAME",
              help="Only these User classes of the locustfile (repeatable).")
@click.option("--path", "req_path", metavar="P", help="http-get: the path to request [default: /api/assets].")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Run folder [default: runs/<timestamp>-<scenario>/].")
@click.option("--ui", is_flag=True, help="Open Locust's web UI (on loopback) while the run goes.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="Serve the run's live metrics for Prometheus on 127.0.0.1:PORT/metrics (0: any free port) "
                   "[default: off].")
@click.option("--metrics-linger", metavar="DUR",
              help="Keep /metrics up this long after the run [default: alerts.scrape_interval].")
@click.option("--confirm-production", is_flag=True, help="Required to send load to a production target.")
@click.option("--gate", "use_gate", is_flag=True, help="Judge the run with `opskit gate` when it ends.")
@gate_options
@spec_option
@output_option("table", "json")
@click.pass_context
def run(ctx: click.Context, scenario: str, target_name: str | None, host: str | None, users: int | None,
        rate: float | None, duration: str | None, processes: int, expect_workers: int, master_bind: str,
        master_port: int | None, locustfile: Path | None, user_classes: tuple[str, ...], req_path: str | None,
        out_dir: Path | None, ui: bool, metrics_port: int | None, metrics_linger: str | None,
        confirm_production: bool, use_gate: bool, spec_file: str | None,
        output: str, **gate_opts: Any) -> None:
    """Run SCENARIO (see `opskit loadtest list`) and write results.json, Locust's CSV and HTML report.

    With no --target/--host the reference asset service is started on loopback (temporary SQLite
    store, seeded, one key per tenant), loaded and stopped. Loopback is always allowed; any other
    host must be declared under targets: (checked before any request or DNS lookup).

    Exit codes: 0 done (and the gate passed); 1 the gate failed or an abort_on_fail criterion
    stopped the run; 2 usage or configuration error (undeclared target, bad scenario); 3 the run
    is invalid (generator saturated or off its rate, no requests) or broke; 130 interrupted
    (partial results are written, marked interrupted).
    """
    from opskit import output as out
    from opskit.errors import Interrupted, RuntimeFailure
    from opskit.loadtest import commandflow

    spec = load(spec_file)
    prepared = commandflow.prepare(
        spec, spec_file, scenario, target_name=target_name, host=host, users=users, rate=rate,
        duration=duration, processes=processes, expect_workers=expect_workers, master_bind=master_bind,
        master_port=master_port, locustfile=locustfile, user_classes=user_classes, req_path=req_path,
        out_dir=out_dir, ui=ui, confirm_production=confirm_production, metrics_port=metrics_port,
        metrics_linger=metrics_linger)
    for note in prepared.notes:
        out.warn(note)
    outcome, results = commandflow.execute(prepared)
    if results is None:
        raise Interrupted(f"interrupted before any results were written (log: {prepared.out_dir / 'locust.log'})")
    if not (use_gate and output == "json"):
        commandflow.show(results, outcome, prepared, output)
    if outcome.interrupted:
        raise Interrupted(f"interrupted: partial results (marked interrupted) in {prepared.out_dir}")
    if use_gate:
        from opskit.commands.gateview import run_gate

        code = run_gate(prepared.out_dir / "results.json", spec, output,
                        {k: gate_opts[k] for k in GATE_KEYS if k in gate_opts})
        ctx.exit(int(code))
    if outcome.aborted:
        from opskit.errors import Refused

        raise Refused(f"stopped early: {outcome.aborted}")
    if not results["run"]["valid"]:
        raise RuntimeFailure(f"the run is invalid: {results['run']['invalid_reason']} "
                             f"(results in {prepared.out_dir})")


@loadtest.command()
@click.option("--master", required=True, metavar="HOST", help="The machine running `opskit loadtest run`.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@spec_option
def worker(master: str, master_port: int, spec_file: str | None) -> None:
    """Join a distributed run (Locust master/worker) started elsewhere with --expect-workers.

    The worker refuses to send load to a host that is neither loopback nor declared under
    targets: in its own spec (the master's word is not enough).
    """
    from opskit.loadtest import commandflow

    commandflow.worker(load(spec_file), master, master_port)


@loadtest.command()
@click.option("--period", default="10s", show_default=True, metavar="DUR", help="A stall starts every PERIOD.")
@click.option("--stall", default="2s", show_default=True, metavar="DUR", help="How long each stall lasts.")
@click.option("--service", "service_time", default="10ms", show_default=True, metavar="DUR",
              help="Answer time outside stalls.")
@click.option("--rate", type=FiniteFloatRange(min=0, min_open=True), default=100.0, show_default=True,
              metavar="RPS")
@click.option("--duration", metavar="DUR", help="Run length [default: two periods]; use whole periods.")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--tolerance", default="5%", show_default=True, metavar="PCT",
              help="Allowed relative error per percentile (plus 20 ms for the burst at each stall's end).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR")
@spec_option
@output_option("table", "json")
def verify(period: str, stall: str, service_time: str, rate: float, duration: str | None, processes: int,
           tolerance: str, out_dir: Path | None, spec_file: str | None, output: str) -> None:
    """Check the generator against analytic truth: a loopback server that stalls STALL every PERIOD
    (facts.md: coordinated omission), loaded in the open model; p50/p90/p95/p99 must match the
    analytic percentiles. Exit 0 they do, 1 they do not, 3 the run was invalid."""
    from opskit.loadtest import commandflow

    commandflow.verify(load(spec_file), period=period, stall=stall, service_time=service_time, rate=rate,
                       duration=duration, processes=processes, tolerance=tolerance, out_dir=out_dir,
                       output=output)
