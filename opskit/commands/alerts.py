"""opskit alerts: render Prometheus rules from opskit.yaml and prove them with promtool and amtool."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from opskit import output as out
from opskit.commands.common import output_option, render_options, spec_option
from opskit.errors import Refused

if TYPE_CHECKING:
    from opskit.alerts.model import RuleSet


@click.group()
def alerts() -> None:
    """Prometheus alert rules rendered from opskit.yaml, proven with promtool and amtool."""


@alerts.command()
@spec_option
@render_options("alerts")
@click.option("--check-metrics", "metrics_urls", metavar="URL", multiple=True,
              help="Refuse rules on metrics the target does not export: a /metrics page (the service's, an "
                   "exporter's; repeatable) or a Prometheus server URL (every name it has).")
@output_option("table", "json")
def render(spec_file: str | None, out_dir: str | None, check: bool, metrics_urls: tuple[str, ...],
           output: str) -> None:
    """Write *.rules.yml, their promtool unit tests (tests/) and an Alertmanager example.

    Threshold alerts per thresholds: row, SLO recording rules and multi-window multi-burn-rate alerts per
    SLO, and service health alerts. Refuses (exit 2) a spec `spec validate` refuses, and rules that would fail
    opskit's own lint or (with --check-metrics) read a metric the target does not export.
    """
    from opskit.alerts import files as plan_files
    from opskit.alerts import lint
    from opskit.alerts.model import GENERATED_HEADER
    from opskit.alerts.render import render_all
    from opskit.errors import ConfigError
    from opskit.spec import load_checked
    from opskit.spec.loader import parse_yaml

    spec, path = load_checked(spec_file)
    ruleset, files = render_all(spec)
    problems = []
    for name, text in files.items():
        if name.endswith(".rules.yml"):
            problems += lint.lint_document(name, parse_yaml(text, name).data, spec.alerts.scrape_interval)
    if problems:
        details = [str(p) for p in problems]
        if any(p.check == "runbook" for p in problems):
            details.append("hint: alerts without a playbook take alerts.runbooks.slo / .health / .threshold")
        raise ConfigError(f"{path}: the rendered rules fail {len(problems)} lint check(s)", details=details)
    unchecked = check_metrics(ruleset, metrics_urls, spec.service.job) if metrics_urls else []
    if output != "json":
        for note in ruleset.notes:
            out.echo(f"note: {note.where}: {note.text}", err=True)
        for line in unchecked:
            out.echo(f"note: {line}", err=True)
    summary: dict[str, object] = {"rules": {f.name: f.rule_count for f in ruleset.files},
                                  "notes": [f"{n.where}: {n.text}" for n in ruleset.notes] + unchecked}
    result = plan_files.sync(Path(out_dir) if out_dir else path.parent / "alerts", files,
                             ["*.rules.yml", "tests/*.yml", "alertmanager.yml"],
                             lambda text: text.startswith(GENERATED_HEADER), check)
    plan_files.show(result, summary, output)


def check_metrics(ruleset: RuleSet, urls: tuple[str, ...], job: str) -> list[str]:
    """Refuse (exit 2, naming rule and metric) rules on metrics the URLs do not export; notes for the rest."""
    from opskit.alerts.metricnames import references, verdict
    from opskit.errors import ConfigError

    names: set[str] = set()
    server = False
    for url in urls:
        found, is_server = exported_names(url)
        names |= found
        server = server or is_server
    refused, noted = verdict(references(ruleset), names, job, server)
    where = ", ".join(urls)
    if refused:
        raise ConfigError(f"{len(refused)} rule(s) read metrics that {where} does not export",
                          details=[f"{g.file}: {g.rule}: {g.metric}" + (f' (job="{g.job}")' if g.job else "")
                                   for g in refused])
    return [f"--check-metrics: {g.file}: {g.rule}: {g.metric} is not on {where} (no job matcher: give its "
            "exporter's /metrics URL too, or a Prometheus server URL)" for g in noted]


def exported_names(url: str) -> tuple[set[str], bool]:
    """The metric names behind a URL: a /metrics page is scraped (family and sample names); any other path
    is taken as a Prometheus server and asked for every name it stores. Second: whether it was a server."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    from opskit.errors import RuntimeFailure, UsageError

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--check-metrics: {url!r} is not an http:// or https:// URL")
    server = not url.rstrip("/").endswith("/metrics")
    target = url.rstrip("/") + "/api/v1/label/__name__/values" if server else url
    try:
        with httpx.Client(timeout=10.0, trust_env=False) as client:
            resp = client.get(target)
            resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise RuntimeFailure(f"--check-metrics: cannot read {target}: {exc}") from None
    try:
        if server:
            return set(resp.json()["data"]), True
        names: set[str] = set()
        for family in text_string_to_metric_families(resp.text):
            names.add(family.name)
            names.update(s.name for s in family.samples)
        return names, False
    except (ValueError, KeyError, TypeError) as exc:
        what = "a Prometheus name list" if server else "a Prometheus text exposition"
        raise RuntimeFailure(f"--check-metrics: {target} did not answer {what}: {exc}") from None


@alerts.command("test")
@spec_option
@click.option("--out", "directory", metavar="DIR",
              help="Folder of rules, as rendered with alerts render --out [default: alerts/ beside the spec].")
# the name before --out: kept so old scripts work, hidden so new ones use one name everywhere
@click.option("--dir", "old_dir", metavar="DIR", hidden=True)
@output_option("table", "json", "md")
def test_cmd(spec_file: str | None, directory: str | None, old_dir: str | None, output: str) -> None:
    """Prove the committed rules: promtool check rules (with rule counts), opskit's lint, that every alert has
    a firing and a silent unit test, promtool test rules, amtool check-config and routing. Exit 1 on a failure,
    2 when the folder is missing, 3 when promtool or amtool is not installed."""
    from opskit.alerts.checks import run_checks
    from opskit.errors import UsageError
    from opskit.spec import load_checked

    spec, path = load_checked(spec_file)
    given = directory or old_dir
    folder = Path(given) if given else path.parent / "alerts"
    if not folder.is_dir():
        # nothing to prove: a usage error (exit 2), not eight failed checks
        where = "--out" if directory else "--dir" if old_dir else "alerts/ beside the spec"
        what = "is not a folder" if folder.exists() else "no such folder"
        raise UsageError(f"{where}: {folder}: {what} (render it first: opskit alerts render)")
    results = run_checks(spec, folder)
    failed = [r for r in results if not r.ok]
    rows = [(r.check, r.target, "ok" if r.ok else "FAIL", r.detail) for r in results]
    if output == "json":
        out.emit_json({"directory": str(folder), "passed": not failed, "checks": results})
    elif output == "md":
        out.echo(out.markdown_table(["check", "target", "result", "detail"], rows).rstrip("\n"))
    else:
        out.table(["check", "target", "result", "detail"], rows, title=f"alerts test: {folder}")
        out.echo(f"{len(results) - len(failed)} of {len(results)} checks passed")
    if failed:
        raise Refused(f"{len(failed)} of {len(results)} alert checks failed")


@alerts.command("lint")
@spec_option
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@output_option("table", "json", "md")
def lint_cmd(spec_file: str | None, files: tuple[str, ...], output: str) -> None:
    """Lint rule files where promtool is silent: for: or burn-rate, runbook_url, histogram_quantile with le,
    rate windows >= 4 scrape intervals, no company_id grouping. FILES default to alerts/*.rules.yml beside
    the spec. Exit 1 when a rule fails, 2 when a file is missing or not YAML."""
    from opskit.alerts import lint
    from opskit.errors import UsageError
    from opskit.spec import load_spec, spec_path
    from opskit.spec.loader import read_located

    path = spec_path(spec_file)
    spec = load_spec(path)
    paths = [Path(f) for f in files] or sorted((path.parent / "alerts").glob("*.rules.yml"))
    if not paths:
        raise UsageError("no rule files given and none in alerts/ beside the spec")
    problems = []
    for p in paths:
        if not p.is_file():
            raise UsageError(f"{p}: no such file")
        problems += lint.lint_document(str(p), read_located(p).data, spec.alerts.scrape_interval)
    if output == "json":
        out.emit_json({"files": [str(p) for p in paths], "problems": problems})
    elif output == "md" and problems:
        out.echo(out.markdown_table(["file", "rule", "check", "problem"],
                                    [(p.file, p.rule, p.check, p.message) for p in problems]).rstrip("\n"))
    elif problems:
        out.table(["file", "rule", "check", "problem"], [(p.file, p.rule, p.check, p.message) for p in problems])
    else:
        out.echo(f"{len(paths)} file(s): no problems")
    if problems:
        raise Refused(f"{len(problems)} lint problem(s) in {len(paths)} file(s)")
