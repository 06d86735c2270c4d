"""opskit stack: PostgreSQL, Redis and their exporters on loopback, from Debian's packages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opskit import output as out
from opskit.commands.common import output_option, state_dir_option

if TYPE_CHECKING:
    from opskit.stack.runtime import StackStatus

_state_option = state_dir_option("Where the data, config, logs and pids live (under STATE_DIR/stack/) "
                                 "[default: ./.opskit].")


@click.group()
def stack() -> None:
    """PostgreSQL 15, Redis 7 and their exporters on 127.0.0.1: `up` starts them, `down` stops exactly
    what `up` started. Data survives down/up unless `up --fresh`."""


@stack.command()
@_state_option
@click.option("--fresh", is_flag=True, help="Delete the stack's data first (database, cache, password).")
@click.option("--port", "ports", multiple=True, metavar="NAME=PORT",
              help="A fixed port for one part (repeatable): postgresql, redis, postgres-exporter, redis-exporter, "
                   "node-exporter, process-exporter [default: the last run's if free, else a free one].")
@output_option("table", "json")
def up(state_dir: Path, fresh: bool, ports: tuple[str, ...], output: str) -> None:
    """Start the stack (or report the running one) and wait until every part answers."""
    from opskit.stack.config import parse_ports
    from opskit.stack.runtime import up as start

    wanted = parse_ports(ports)
    result = start(state_dir, ports=wanted, fresh=fresh,
                   progress=(lambda line: None) if output == "json" else (lambda line: out.echo(line, err=True)))
    _render(result, output, "started" if result.started else "already running")


@stack.command()
@_state_option
@output_option("table", "json")
def down(state_dir: Path, output: str) -> None:
    """Stop what `up` started (each daemon checked by pid and start time: nothing else is touched)."""
    from opskit.stack.runtime import down as stop

    parts = stop(state_dir)
    if output == "json":
        out.emit_json({"stopped": [p.name for p in parts if p.running],
                       "already_gone": [p.name for p in parts if not p.running]})
    elif not parts:
        out.echo("the stack was not running")
    else:
        out.table(["part", "pid", "stopped"], [(p.name, p.pid, "yes" if p.running else "already gone")
                                               for p in parts])


@stack.command()
@_state_option
@output_option("table", "json")
@click.pass_context
def status(ctx: click.Context, state_dir: Path, output: str) -> None:
    """Is every part running? Exit 0 all running, 1 not (or only partly) running."""
    from opskit.exitcodes import ExitCode
    from opskit.stack.runtime import status as get

    info = get(state_dir)
    _render(info, output, "running" if info.running else "not running")
    if not info.running:
        ctx.exit(int(ExitCode.NO))


def _render(info: StackStatus, output: str, headline: str) -> None:
    if output == "json":
        body: dict[str, Any] = {"running": info.running, "started": info.started, "state_dir": info.state_dir}
        if info.endpoints is not None:
            e = info.endpoints
            body.update(postgresql=e.postgresql, redis=e.redis, exporters=e.exporters,
                        password_file=e.password_file)
        body["parts"] = info.parts
        out.emit_json(body)
        return
    out.echo(f"stack {headline} ({info.state_dir})")
    if info.endpoints is None:
        return
    e = info.endpoints
    out.table(["part", "url", "pid", "running"],
              [(p.name, _url(info, p.name), p.pid or "", "yes" if p.running else "no") for p in info.parts])
    out.echo(f"password: {e.password_file} (the same for PostgreSQL and Redis)")


def _url(info: StackStatus, name: str) -> str:
    from opskit.stack.config import EXPORTERS

    e = info.endpoints
    assert e is not None
    if name == "postgresql":
        return e.postgresql
    if name == "redis":
        return e.redis
    short = {v: k for k, v in EXPORTERS.items()}[name]
    return e.exporters[short]
