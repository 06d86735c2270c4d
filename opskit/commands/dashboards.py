"""opskit dashboards: Grafana dashboards rendered from opskit.yaml with grafana-foundation-sdk."""

from __future__ import annotations

import json
from pathlib import Path

import click

from opskit import output as out
from opskit.commands.common import output_option, render_options, spec_option
from opskit.errors import Refused, UsageError


@click.group()
def dashboards() -> None:
    """Grafana dashboards (RED, saturation, SLOs, load tests) and their provisioning files."""


@dashboards.command()
@spec_option
@render_options("dashboards")
@output_option("table", "json")
def render(spec_file: str | None, out_dir: str | None, check: bool, output: str) -> None:
    """Write dashboards/*.json (schemaVersion 42, checked against the SDK's JSON schema) and
    provisioning/ (datasource + dashboard provider) to mount into Grafana."""
    from opskit.alerts import files as plan_files
    from opskit.alerts.dashboards import render_dashboards
    from opskit.alerts.grafana import GENERATED_TAG
    from opskit.alerts.model import GENERATED_HEADER
    from opskit.spec import load_checked

    spec, path = load_checked(spec_file)
    files = render_dashboards(spec)
    summary: dict[str, object] = {"dashboards": sorted(n for n in files if n.endswith(".json"))}
    result = plan_files.sync(Path(out_dir) if out_dir else path.parent / "dashboards", files,
                             ["*.json", "provisioning/*/*.yml"],
                             lambda text: GENERATED_HEADER in text or GENERATED_TAG in text, check)
    plan_files.show(result, summary, output)


@dashboards.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@output_option("table", "json")
def validate(files: tuple[str, ...], output: str) -> None:
    """Check dashboard JSON files offline against grafana-foundation-sdk's JSON schema. Exit 1 if one fails
    (a file that is not JSON fails too), 2 if a file is missing."""
    from opskit.alerts.schemacheck import validate_dashboard

    results = []
    for name in files:
        p = Path(name)
        if not p.is_file():
            raise UsageError(f"{p}: no such file")
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            results.append((name, [f"not JSON: {exc}"]))
            continue
        except RecursionError:
            results.append((name, ["not a dashboard: JSON nested too deeply"]))
            continue
        results.append((name, validate_dashboard(doc)))
    if output == "json":
        out.emit_json({"valid": not any(p for _, p in results),
                       "dashboards": [{"file": n, "valid": not p, "problems": p} for n, p in results]})
    else:
        out.table(["file", "result", "problems"],
                  [(n, "ok" if not p else "FAIL", "\n".join(p[:10])) for n, p in results])
    bad = [n for n, p in results if p]
    if bad:
        raise Refused(f"{len(bad)} of {len(results)} dashboard(s) fail the schema")
