"""The CLI root: version, help, the error boundary and the exit-code enum."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from opskit import __version__
from opskit.cli import COMMANDS, RootGroup, cli
from opskit.errors import ConfigError, Interrupted, Refused, RuntimeFailure, UsageError
from opskit.exitcodes import ExitCode


def test_version(invoke):
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_help_lists_every_command_group(invoke):
    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("spec", "service", "loadtest", "gate", "scale", "monitor", "alerts", "dashboards",
                 "cost", "capacity", "playbook"):
        assert name in COMMANDS
    assert "spec" in result.stdout
    assert "Exit codes" in result.stdout


def test_help_imports_neither_locust_nor_gevent():
    code = ("import sys; from opskit.cli import main; sys.argv=['opskit','--help'];\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', sorted(m for m in ('locust','gevent','matplotlib','scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("HEAVY []"), out[-300:]


def test_unknown_command_is_usage_error(invoke):
    result = invoke("no-such-command")
    assert result.exit_code == ExitCode.USAGE


def _group_raising(exc: BaseException) -> click.Group:
    @click.group(cls=RootGroup)
    @click.option("--debug", is_flag=True)
    def root(debug: bool) -> None:
        pass

    @root.command()
    def boom() -> None:
        raise exc

    root.list_commands = lambda ctx: ["boom"]  # type: ignore[method-assign]
    root.get_command = lambda ctx, name: boom if name == "boom" else None  # type: ignore[method-assign]
    return root


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UsageError("bad option"), ExitCode.USAGE),
        (ConfigError("opskit.yaml:3: service.nmae: unknown key"), ExitCode.USAGE),
        (RuntimeFailure("prometheus did not start"), ExitCode.RUNTIME),
        (Refused("gate failed"), ExitCode.NO),
        (Interrupted("stopped"), ExitCode.INTERRUPTED),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (ValueError("unexpected"), ExitCode.RUNTIME),
    ],
)
def test_error_boundary_maps_each_error_to_its_exit_code_without_traceback(runner, exc, code):
    result = runner.invoke(_group_raising(exc), ["boom"])
    assert result.exit_code == code
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("opskit:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback(runner):
    result = runner.invoke(_group_raising(RuntimeFailure("x")), ["--debug", "boom"])
    assert result.exit_code == ExitCode.RUNTIME
    assert "Traceback" in result.stderr


def test_config_error_details_are_listed_under_the_message(runner):
    result = runner.invoke(_group_raising(ConfigError("f.yaml: 2 problem(s)", details=["a", "b"])), ["boom"])
    assert result.stderr.splitlines() == ["opskit: error: f.yaml: 2 problem(s)", "  a", "  b"]


def test_console_script_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "opskit", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and __version__ in out.stdout


def test_root_group_is_the_cli():
    assert isinstance(cli, RootGroup)


def test_every_command_group_loads(monkeypatch):
    ctx = click.Context(cli)
    for name in COMMANDS:
        assert isinstance(cli.get_command(ctx, name), click.Command), name
    # a group whose module is missing is a broken install, not a command that silently is not there
    monkeypatch.setitem(COMMANDS, "ghost", "opskit.commands.no_such_module:ghost")
    with pytest.raises(ModuleNotFoundError):
        cli.get_command(ctx, "ghost")
