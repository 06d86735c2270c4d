"""The root command: the only error boundary. Command groups load lazily so `opskit --help` stays fast
and imports neither locust nor gevent."""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from opskit import __version__
from opskit.errors import OpskitError
from opskit.exitcodes import ExitCode

# name -> "module:attribute"; each module is imported only when its command runs or help lists it
COMMANDS: dict[str, str] = {
    "spec": "opskit.commands.spec:spec",
    "service": "opskit.commands.service:service",
    "loadtest": "opskit.commands.loadtest:loadtest",
    "gate": "opskit.commands.gate:gate",
    "scale": "opskit.commands.scale:scale",
    "monitor": "opskit.commands.monitor:monitor",
    "alerts": "opskit.commands.alerts:alerts",
    "dashboards": "opskit.commands.dashboards:dashboards",
    "cost": "opskit.commands.cost:cost",
    "capacity": "opskit.commands.capacity:capacity",
    "playbook": "opskit.commands.playbook:playbook",
    "stack": "opskit.commands.stack:stack",
}


class RootGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except OpskitError as exc:
            if debug:
                traceback.print_exc()
            _print_error(exc.message, exc.details)
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:
            click.echo("opskit: interrupted", err=True)
            ctx.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:  # the boundary: anything unexpected is a runtime error, not a traceback
            if debug:
                traceback.print_exc()
            _print_error(f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            ctx.exit(int(ExitCode.RUNTIME))


def _print_error(message: str, details: list[str] | None = None) -> None:
    click.echo(f"opskit: error: {message}", err=True)
    for line in details or []:
        click.echo(f"  {line}", err=True)


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="opskit")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Load tests, CI performance gates, scaling thresholds, alert rules, capacity and cost
    planning, and scaling playbooks for the asset service, all read from one opskit.yaml.

    Exit codes: 0 ok, 1 the answer is "no" (a gate, threshold or verification failed),
    2 usage or configuration error, 3 runtime error or a run that cannot answer, 130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def main() -> None:
    try:
        cli.main(prog_name="opskit")
    except KeyboardInterrupt:  # raised outside a command (e.g. while parsing)
        click.echo("opskit: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
