"""`opskit gate RESULTS`: judge a load-test run against its criteria and, optionally, a baseline run.

The use case is opskit.gate.usecase (shared with `opskit loadtest run SCENARIO --gate` through
commands/gateview.py). Heavy modules (numpy for the bootstrap) are imported only when a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from opskit.commands.common import load, output_option, spec_option
from opskit.commands.gateview import gate_options, gate_request, run_gate


@click.command()
@click.argument("results", type=click.Path(dir_okay=True, path_type=Path))
@spec_option
@gate_options
@output_option("table", "json", "md")
@click.pass_context
def gate(ctx: click.Context, results: Path, spec_file: str | None, output: str, **options: Any) -> None:
    """Judge a load-test run: SLOs and gate criteria from opskit.yaml (or --criteria), and a baseline.

    RESULTS is a results.json or the run folder holding one.

    Exit codes: 0 pass; 1 a criterion or baseline comparison failed, or the run was aborted by an
    abort_on_fail criterion; 2 usage or configuration error, or a baseline of another scenario, model
    or load level, or nothing to judge; 3 the results cannot answer (missing, empty, truncated or
    corrupt file, a run marked invalid or interrupted, zero requests, a criterion on an endpoint never
    hit, a `for` window longer than the run, --strict with an inconclusive comparison).
    """
    code = run_gate(gate_request(results, **options), load(spec_file), output)
    ctx.exit(int(code))
