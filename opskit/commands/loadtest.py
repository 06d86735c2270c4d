"""opskit loadtest: run Locust scenarios with open-model arrivals and HDR latencies; list them; join
a distributed run as a worker; verify the generator. Heavy imports (locust, rich, pydantic models) happen
inside commands; locust itself only ever runs in the runner subprocess."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from opskit.commands import loadtestview as view
from opskit.commands.common import load, output_option, spec_option
from opskit.commands.gateview import GATE_KEYS, gate_options, gate_request, run_gate


@click.group()
def loadtest() -> None:
    """Load tests against the asset service (Locust, open-model arrivals, HDR percentiles)."""


@loadtest.command("list")
@spec_option
@output_option("table", "json")
def list_cmd(spec_file: str | None, output: str) -> None:
    """The scenarios in loadtests/, one line each (load levels resolved from opskit.yaml)."""
    from opskit.loadtest.request import catalogue

    view.show_list(catalogue(load(spec_file)), output)


@loadtest.command()
@click.argument("scenario")
@view.run_options
@click.option("--gate", "use_gate", is_flag=True, help="Judge the run with `opskit gate` when it ends.")
@gate_options
@spec_option
@output_option("table", "json")
@click.pass_context
def run(ctx: click.Context, scenario: str, use_gate: bool, spec_file: str | None, output: str, **opts: Any) -> None:
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
    from opskit.errors import Interrupted, Refused, RuntimeFailure
    from opskit.loadtest import host
    from opskit.loadtest.request import RunParams, prepare

    spec = load(spec_file)
    gate_opts = {k: opts.pop(k) for k in GATE_KEYS if k in opts}
    with view.option_names():
        req = prepare(spec, RunParams(scenario, **opts), lambda: host.facts(spec_file))
        host.check_local(req)
    for note in req.notes:
        out.warn(note)
    outcome, results = view.execute(req)
    if results is None:
        raise Interrupted(f"interrupted before any results were written (log: {req.out_dir / 'locust.log'})")
    if not (use_gate and output == "json"):
        view.show(results, outcome, req, output)
    if outcome.interrupted:
        raise Interrupted(f"interrupted: partial results (marked interrupted) in {req.out_dir}")
    if results.run.limited_by == "service":  # valid, but the offered load was not served: say so
        out.warn(f"limited by the service: {results.run.limited_reason} (percentiles leave dropped arrivals out)"
                 if results.run.latency_lower_bound else f"limited by the service: {results.run.limited_reason}")
    if use_gate:
        ctx.exit(int(run_gate(gate_request(req.results_path, **gate_opts), spec, output)))
    if outcome.aborted:
        raise Refused(f"stopped early: {outcome.aborted}")
    if not results.valid:
        raise RuntimeFailure(f"the run is invalid: {results.invalid_reason} (results in {req.out_dir})")


@loadtest.command()
@click.option("--master", required=True, metavar="HOST", help="The machine running `opskit loadtest run`.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True)
@spec_option
def worker(master: str, master_port: int, spec_file: str | None) -> None:
    """Join a distributed run (Locust master/worker) started elsewhere with --expect-workers.

    The worker refuses to send load to a host that is neither loopback nor declared under
    targets: in its own spec (the master's word is not enough).
    """
    from opskit.loadtest import host

    host.worker(load(spec_file), master, master_port)


@loadtest.command()
@view.verify_options
@spec_option
@output_option("table", "json")
def verify(period: str, stall: str, service_time: str, rate: float, duration: str | None, processes: int,
           tolerance: str, out_dir: Path | None, spec_file: str | None, output: str) -> None:
    """Check the generator against analytic truth: a loopback server that stalls STALL every PERIOD
    (facts.md: coordinated omission), loaded in the open model; p50/p90/p95/p99 must match the
    analytic percentiles. Exit 0 they do, 1 they do not, 3 the run was invalid."""
    from opskit import output as out
    from opskit.errors import Refused, RuntimeFailure
    from opskit.loadtest import host
    from opskit.loadtest import verify as core

    sched, tol = core.schedule(period, stall, service_time, tolerance)
    with view.option_names():
        report = core.run(load(spec_file), sched, tol, rate=rate, duration=duration, processes=processes,
                          out_dir=out_dir, facts=lambda: host.facts(None), execute=view.execute, warn=out.warn)
    view.show_verify(report, output)
    if not report.valid:
        raise RuntimeFailure(f"the run is invalid: {report.invalid_reason}")
    if not report.passed:
        raise Refused("the measured percentiles are off the analytic truth")
