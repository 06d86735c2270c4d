"""opskit spec: check opskit.yaml."""

from __future__ import annotations

import click

from opskit import output as out
from opskit.commands.common import output_option, spec_option


@click.group()
def spec() -> None:
    """The capacity spec (opskit.yaml)."""


@spec.command()
@spec_option
@output_option("table", "json")
def validate(spec_file: str | None, output: str) -> None:
    """Check opskit.yaml; exit 2 listing every problem as file:line: key.path: what is wrong. The same checks
    `alerts render` and `dashboards render` make, so a valid spec renders."""
    from opskit.spec import load_checked

    s, path = load_checked(spec_file)
    summary = {
        "spec": str(path),
        "valid": True,
        "service": s.service.name,
        "targets": len(s.targets),
        "slos": len(s.slos),
        "thresholds": len(s.thresholds),
        "resources": len(s.resources),
        "plans": len(s.plans),
    }
    if output == "json":
        out.emit_json(summary)
    else:
        out.echo(f"{summary['spec']}: ok ({s.service.name}: {len(s.targets)} targets, {len(s.slos)} SLOs, "
                  f"{len(s.thresholds)} thresholds, {len(s.resources)} resources, {len(s.plans)} plans)")

