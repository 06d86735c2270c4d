"""`opskit playbook`: list, show, plan, apply, resume, runs. Thin: options -> engine -> render -> exit code."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from opskit.commands.common import output_option, spec_option

if TYPE_CHECKING:
    from opskit.playbooks.engine import Prepared
    from opskit.playbooks.outcome import RunOutcome
    from opskit.playbooks.providers.base import DryRun
    from opskit.playbooks.render import View
    from opskit.playbooks.report import LineReporter

F = TypeVar("F", bound=Callable[..., Any])


def state_dir_option(f: F) -> F:
    return click.option("--state-dir", "state_dir", metavar="DIR", default=".opskit", show_default=True,
                        envvar="OPSKIT_STATE_DIR", show_envvar=True, type=click.Path(file_okay=False, path_type=Path),
                        help="Where run journals and locks live.")(f)


def params_option(f: F) -> F:
    return click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                        help="A playbook parameter (repeatable). Secrets come from the environment, not -p.")(f)


@click.group()
def playbook() -> None:
    """Scaling playbooks: plan what would run, apply it with compensation on failure, verify, resume.

    NAME is a file path, or a name looked up in $OPSKIT_PLAYBOOKS, ./playbooks, then the playbooks shipped.

    \b
    Exit codes:
      0    applied and verified (plan: valid, dry runs passed)
      1    a precondition, step or verification failed or was inconclusive (compensated or halted),
           a dry run failed, the plan hash did not match, or confirmation was declined
      2    bad playbook or parameters; a run that cannot be resumed
      3    runtime error: lock held by another run, compensation failed, damaged journal
      130  interrupted (completed steps compensated)
    """


@playbook.command("list")
@state_dir_option
@output_option("table", "json")
def list_(state_dir: Path, output: str) -> None:
    """The playbooks available."""
    from opskit import output as out
    from opskit.errors import ConfigError
    from opskit.playbooks.loader import list_playbook_files, load_playbook
    from opskit.playbooks.render import list_view, playbook_row

    rows, bad = [], []
    for path in list_playbook_files():
        try:
            rows.append(playbook_row(load_playbook(path)))
        except ConfigError as exc:
            rows.append({"name": path.stem, "path": str(path), "error": exc.message, "details": exc.details})
            bad.append(exc)
    if output == "json":
        out.emit_json({"playbooks": rows})
    else:
        _show(list_view(rows))
    if bad:
        raise ConfigError(f"{len(bad)} playbook(s) are invalid", details=[d for e in bad for d in
                                                                            [e.message, *e.details]])


@playbook.command()
@click.argument("name")
@state_dir_option
@output_option("table", "json")
def show(name: str, state_dir: Path, output: str) -> None:
    """A playbook's parameters, steps, compensations and checks (or, given a run id, that run)."""
    from opskit import output as out
    from opskit.errors import ConfigError
    from opskit.playbooks.loader import load_playbook
    from opskit.playbooks.render import playbook_json, playbook_view
    from opskit.playbooks.runs import has_run

    try:
        loaded = load_playbook(name)
    except ConfigError:
        if has_run(state_dir, name):
            _show_run(state_dir, name, output)
            return
        raise
    if output == "json":
        out.emit_json(playbook_json(loaded))
    else:
        _show(playbook_view(loaded))


@playbook.command()
@click.argument("name")
@params_option
@click.option("--no-dry-run", is_flag=True, help="Do not run the providers' own dry runs.")
@click.option("--dry-run-commands", is_flag=True,
              help="Also run the exec steps' dry_run_argv commands (not run by default: plan runs no command).")
@state_dir_option
@spec_option
@output_option("table", "json")
def plan(name: str, params: tuple[str, ...], no_dry_run: bool, dry_run_commands: bool, state_dir: Path,
         spec_file: str | None, output: str) -> None:
    """Show exactly what apply would run (secrets masked) and what the providers' dry runs say."""
    from opskit.errors import Refused
    from opskit.playbooks import engine
    from opskit.playbooks.params import parse_pairs

    prep = engine.prepare(name, parse_pairs(params))
    dry = {} if no_dry_run else engine.dry_runs(prep, commands=dry_run_commands)
    _show_plan(prep, dry, output)
    failed = engine.failed_dry_runs(dry)
    if failed:
        raise Refused(f"dry run failed for step(s) {', '.join(failed)}: apply would fail")


@playbook.command()
@click.argument("name")
@params_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--plan-hash", metavar="HASH", help="Apply only if the plan is exactly the one reviewed.")
@click.option("--no-dry-run", is_flag=True, help="Do not run the providers' dry runs before applying.")
@state_dir_option
@spec_option
@output_option("table", "json")
@click.pass_context
def apply(ctx: click.Context, name: str, params: tuple[str, ...], yes: bool, plan_hash: str | None,
          no_dry_run: bool, state_dir: Path, spec_file: str | None, output: str) -> None:
    """Run the playbook: preconditions, steps, verification; compensate on failure.

    With --output json the plan and progress go to stderr and stdout is one JSON outcome."""
    from opskit.errors import Refused
    from opskit.playbooks import engine
    from opskit.playbooks.params import parse_pairs

    prep = engine.prepare(name, parse_pairs(params))
    engine.check_reviewed(prep, plan_hash)
    dry = {} if no_dry_run else engine.dry_runs(prep)
    _show_plan(prep, dry, "table", err=output == "json")
    failed = engine.failed_dry_runs(dry)
    if failed:
        raise Refused(f"dry run failed for step(s) {', '.join(failed)}; nothing was run")
    if not yes and not click.confirm(f"Apply {prep.plan.playbook} (risk {prep.plan.risk})?", default=False,
                                     err=True):
        raise Refused("not applied")
    outcome = engine.apply(prep, engine.runtime(state_dir, _spec(spec_file), _reporter(output)))
    _finish(ctx, outcome, output)


@playbook.command()
@click.argument("run_id")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@state_dir_option
@spec_option
@output_option("table", "json")
@click.pass_context
def resume(ctx: click.Context, run_id: str, yes: bool, state_dir: Path, spec_file: str | None,
           output: str) -> None:
    """Continue a failed run from the first step not in effect (refused if the playbook changed)."""
    from opskit.errors import Refused
    from opskit.playbooks import engine
    from opskit.playbooks.runs import summarize

    summary, _ = summarize(state_dir, run_id)
    if not yes and not click.confirm(f"Resume run {run_id} ({summary.playbook}, {summary.status})?",
                                     default=False, err=True):
        raise Refused("not resumed")
    outcome = engine.resume(state_dir, run_id,
                            lambda: engine.runtime(state_dir, _spec(spec_file), _reporter(output)))
    _finish(ctx, outcome, output)


@playbook.command()
@click.argument("run_id", required=False)
@state_dir_option
@output_option("table", "json")
def runs(run_id: str | None, state_dir: Path, output: str) -> None:
    """The runs in the state dir, or one run's journal."""
    from opskit import output as out
    from opskit.playbooks.render import pending_view, runs_view
    from opskit.playbooks.requests import all_requests
    from opskit.playbooks.runs import list_runs

    if run_id:
        _show_run(state_dir, run_id, output)
        return
    pending = [r for r in all_requests(state_dir) if r.state == "pending"]
    if output == "json":
        out.emit_json({"runs": out.to_jsonable(list_runs(state_dir)),
                       "pending": [r.model_dump() for r in pending]})
    else:
        _show(runs_view(list_runs(state_dir)) + pending_view(pending))


@playbook.command()
@click.option("--port", type=click.IntRange(0, 65535), default=19095, show_default=True,
              help="Port on 127.0.0.1 (0 picks a free one).")
@click.option("--approve", "approve_mode", type=click.Choice(["auto", "manual"]), default="manual",
              show_default=True, help="auto: run playbooks that declare auto_apply at once; the rest, and "
                                      "everything with manual, wait for `playbook approve`.")
@click.option("--cooldown", default="5m", show_default=True, metavar="DURATION",
              help="After a run for an alert or resource ends, ignore it this long.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The bearer token Alertmanager sends [default: STATE_DIR/receiver/token, made if missing].")
@click.option("--service", "service_url", metavar="URL",
              help="The local asset service local playbooks scale [default: the spec's service.url if on "
                   "loopback].")
@state_dir_option
@spec_option
def serve(port: int, approve_mode: str, cooldown: str, token_file: Path | None, service_url: str | None,
          state_dir: Path, spec_file: str | None) -> None:
    """Receive Alertmanager webhooks on 127.0.0.1 and turn firing alerts with a playbook label into runs."""
    import threading

    from opskit import output as out
    from opskit import tokens
    from opskit.errors import UsageError
    from opskit.playbooks.alertruns import Receiver, local_service
    from opskit.playbooks.receiver import Policy
    from opskit.playbooks.serve import Server
    from opskit.scaling.act import params_at_level
    from opskit.units import parse_duration

    try:
        cooldown_s = parse_duration(cooldown)
    except ValueError as exc:
        raise UsageError(f"--cooldown: {exc}") from None
    spec = _spec(spec_file)
    if spec is None:
        out.warn("no opskit.yaml here and no --spec: alerts cannot be matched to their thresholds rows, so "
                 "every one will be journaled as an error; pass the spec the rules were rendered from")
    path = token_file or tokens.ensure_token(tokens.default_token_file(state_dir))
    token = tokens.read_token(path)
    service = local_service(service_url, spec)
    printing = threading.Lock()

    def say(line: str) -> None:
        with printing:
            out.echo(line)

    def reporter(run_id: str) -> LineReporter:
        from opskit.playbooks.report import LineReporter

        return LineReporter(lambda line: say(f"[{run_id}] {line}"))

    receiver = Receiver(state_dir, spec=spec, policy=Policy(approve_mode, cooldown_s),  # type: ignore[arg-type]
                        service_url=service, params_for=params_at_level, reporter=reporter, say=say)
    try:
        server = Server(receiver, token=token, port=port, say=say)
    except OSError as exc:
        raise UsageError(f"--port {port}: cannot listen on 127.0.0.1 ({exc.strerror or exc})") from None
    server.serve_until_signalled(f"listening on {server.url} (approve {approve_mode}, cooldown {cooldown}, "
                                 f"token file {path}); Ctrl-C stops")


@playbook.command()
@click.argument("run_id")
@state_dir_option
@spec_option
@output_option("table", "json")
@click.pass_context
def approve(ctx: click.Context, run_id: str, state_dir: Path, spec_file: str | None, output: str) -> None:
    """Approve a run an alert queued, and run it here (exactly the queued plan)."""
    import datetime as dt

    from opskit import output as out
    from opskit.playbooks import alertruns

    by = alertruns.user()
    req = alertruns.approve(state_dir, run_id, by=by, now=dt.datetime.now(dt.UTC))
    out.echo(f"{run_id}: approved by {by}; running {req.playbook} for alert {req.alert.name} "
             f"({req.alert.fingerprint})", err=output == "json")
    outcome = alertruns.run_request(state_dir, run_id, spec=_spec(spec_file), reporter=_reporter(output))
    _finish(ctx, outcome, output)


@playbook.command()
@click.argument("run_id")
@state_dir_option
def reject(run_id: str, state_dir: Path) -> None:
    """Refuse a run an alert queued (recorded with who and when; the alert stays quiet for the cooldown)."""
    import datetime as dt

    from opskit import output as out
    from opskit.playbooks import alertruns

    by = alertruns.user()
    req = alertruns.reject(state_dir, run_id, by=by, now=dt.datetime.now(dt.UTC))
    out.echo(f"{run_id}: rejected by {by} ({req.playbook} for alert {req.alert.name})")


def _show_run(state_dir: Path, run_id: str, output: str) -> None:
    from opskit import output as out
    from opskit.playbooks.render import run_view
    from opskit.playbooks.runs import summarize

    summary, events = summarize(state_dir, run_id)
    if output == "json":
        out.emit_json({"run": out.to_jsonable(summary), "events": events})
    else:
        _show(run_view(summary, events))


def _show_plan(prep: Prepared, dry: Mapping[str, DryRun], output: str, *, err: bool = False) -> None:
    """The plan for a person (on stderr when stdout carries a JSON outcome), or as JSON."""
    from opskit import output as out
    from opskit.playbooks.render import plan_json
    from opskit.playbooks.report import plan_lines

    if output == "json":
        out.emit_json(plan_json(prep.plan, dry))
    else:
        _show(plan_lines(prep.plan, dry), err=err)


def _show(view: View | Sequence[str], *, err: bool = False) -> None:
    from opskit import output as out
    from opskit.playbooks.render import Table

    for item in view:
        if isinstance(item, Table):
            out.table(item.columns, item.rows, title=item.title)
        else:
            out.echo(item, err=err)


def _reporter(output: str) -> LineReporter:
    """Progress lines: stdout for people, stderr when stdout carries the JSON outcome."""
    from opskit import output as out
    from opskit.playbooks.report import LineReporter

    return LineReporter(lambda line: out.echo(line, err=output == "json"))


def _spec(spec_file: str | None) -> Any:
    """opskit.yaml gives metric queries when a check has none; optional unless --spec names one."""
    from opskit.commands.common import load
    from opskit.spec.loader import spec_path

    if spec_file is None and not spec_path(None).exists():
        return None
    return load(spec_file)


def _finish(ctx: click.Context, outcome: RunOutcome, output: str) -> None:
    """The run's ending, and the exit code it means (opskit.playbooks.outcome.EXIT_CODES)."""
    from opskit import output as out
    from opskit.exitcodes import ExitCode
    from opskit.playbooks.outcome import exit_code_for

    code = exit_code_for(outcome.status)
    if output == "json":
        out.emit_json({"run_id": outcome.run_id, "status": outcome.status, "exit_code": int(code),
                       "message": outcome.message, "failed_step": outcome.failed_step,
                       "compensated": list(outcome.compensated), "journal": str(outcome.journal)})
    else:
        out.echo(f"run {outcome.run_id}: {outcome.status}: {outcome.message}")
        out.echo(f"journal: {outcome.journal}")
    if code != ExitCode.OK:
        out.echo(f"opskit: {outcome.status}: {outcome.message}", err=True)
        ctx.exit(int(code))
