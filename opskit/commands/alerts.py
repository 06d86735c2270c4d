"""opskit alerts: render Prometheus rules from opskit.yaml and prove them with promtool and amtool."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opskit import output as out
from opskit.commands.common import output_option, spec_option
from opskit.errors import Refused

if TYPE_CHECKING:
    from opskit.alerts.rules import SpecProblem
    from opskit.spec.schema import Spec


def load_with_path(spec_file: str | None) -> tuple[Spec, Path]:
    from opskit.spec import load_spec, spec_path

    path = spec_path(spec_file)
    return load_spec(path), path


def spec_problem(exc: SpecProblem, path: Path) -> Exception:
    """The located config error for a spec the renderer refused (file:line: key.path: what)."""
    from opskit.errors import ConfigError
    from opskit.spec.loader import format_loc, read_located

    line = read_located(path).line_of(exc.loc)
    return ConfigError(f"{path}:{line}: {format_loc(exc.loc)}: {exc.message}")


def default_dir(out_dir: str | None, spec_path: Path, name: str) -> Path:
    return Path(out_dir) if out_dir else spec_path.parent / name


def write_or_check(directory: Path, files: dict[str, str], patterns: list[str], generated: Callable[[str], bool],
                   check: bool, output: str, summary: Mapping[str, object]) -> None:
    """Shared by both render commands: --check prints a unified diff and answers no; else write."""
    from opskit.alerts import files as plan_files

    changes = plan_files.plan(directory, files, patterns, generated)
    differing = [c for c in changes if c.status != "unchanged"]
    if check:
        diff = plan_files.unified_diff(differing, str(directory))
        if output == "json":
            out.emit_json({**summary, "check": True, "up_to_date": not differing,
                           "differing": [{"path": c.path, "status": c.status} for c in differing], "diff": diff})
        elif differing:
            out.echo(diff.rstrip("\n"))
        if differing:
            raise Refused(f"{len(differing)} file(s) in {directory} differ from what the spec renders "
                          f"({', '.join(c.path for c in differing)}); run the render command and commit")
        if output != "json":
            out.echo(f"{directory}: {len(changes)} files up to date with the spec")
        return
    plan_files.apply(directory, changes)
    if output == "json":
        out.emit_json({**summary, "directory": str(directory),
                       "files": [{"path": c.path, "status": c.status} for c in changes]})
    else:
        out.table(["file", "status"], [(c.path, c.status) for c in changes], title=f"rendered into {directory}")


@click.group()
def alerts() -> None:
    """Prometheus alert rules rendered from opskit.yaml, proven with promtool and amtool."""


@alerts.command()
@spec_option
@click.option("--out", "out_dir", metavar="DIR", help="Folder to write [default: alerts/ beside the spec].")
@click.option("--check", is_flag=True, help="Write nothing; exit 1 with a unified diff if the folder differs.")
@output_option("table", "json")
def render(spec_file: str | None, out_dir: str | None, check: bool, output: str) -> None:
    """Write *.rules.yml, their promtool unit tests (tests/) and an Alertmanager example.

    Threshold alerts per thresholds: row, SLO recording rules and multi-window multi-burn-rate alerts per
    SLO, and service health alerts. Refuses (exit 2) when a rule would fail opskit's own lint.
    """
    from opskit.alerts import lint
    from opskit.alerts.render import render_all
    from opskit.alerts.rules import GENERATED_HEADER, SpecProblem
    from opskit.errors import ConfigError
    from opskit.spec.loader import parse_yaml

    spec, path = load_with_path(spec_file)
    try:
        ruleset, files = render_all(spec)
    except SpecProblem as exc:
        raise spec_problem(exc, path) from None
    problems = []
    for name, text in files.items():
        if name.endswith(".rules.yml"):
            problems += lint.lint_document(name, parse_yaml(text, name).data, spec.alerts.scrape_interval)
    if problems:
        details = [str(p) for p in problems]
        if any(p.check == "runbook" for p in problems):
            details.append("hint: alerts without a playbook take alerts.runbooks.slo / .health / .threshold")
        raise ConfigError(f"{path}: the rendered rules fail {len(problems)} lint check(s)", details=details)
    if output != "json":
        for note in ruleset.notes:
            out.echo(f"note: {note.where}: {note.text}", err=True)
    summary = {"rules": {f.name: f.rule_count for f in ruleset.files},
               "notes": [f"{n.where}: {n.text}" for n in ruleset.notes]}
    write_or_check(default_dir(out_dir, path, "alerts"), files, ["*.rules.yml", "tests/*.yml", "alertmanager.yml"],
                   lambda text: text.startswith(GENERATED_HEADER), check, output, summary)


@alerts.command("test")
@spec_option
@click.option("--dir", "directory", metavar="DIR", help="Folder of rules [default: alerts/ beside the spec].")
@output_option("table", "json", "md")
def test_cmd(spec_file: str | None, directory: str | None, output: str) -> None:
    """Prove the committed rules: promtool check rules (with rule counts), opskit's lint, that every alert has
    a firing and a silent unit test, promtool test rules, amtool check-config and routing. Exit 1 on a failure,
    2 when the folder is missing, 3 when promtool or amtool is not installed."""
    from opskit.alerts.checks import run_checks
    from opskit.alerts.rules import SpecProblem
    from opskit.errors import UsageError

    spec, path = load_with_path(spec_file)
    folder = default_dir(directory, path, "alerts")
    if not folder.is_dir():
        # nothing to prove: a usage error (exit 2), not eight failed checks
        where = "--dir" if directory else "alerts/ beside the spec"
        what = "is not a folder" if folder.exists() else "no such folder"
        raise UsageError(f"{where}: {folder}: {what} (render it first: opskit alerts render)")
    try:
        results = run_checks(spec, folder)
    except SpecProblem as exc:
        raise spec_problem(exc, path) from None
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
    from opskit.spec.loader import read_located

    spec, path = load_with_path(spec_file)
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
