"""Options every command shares. Kept light: no heavy imports at module level."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from opskit.spec import Spec

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf: FloatRange lets 'nan' through every bound, and a
    NaN interval or capacity then fails deep inside a command as an internal error."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def spec_option(f: F) -> F:
    return click.option(
        "--spec", "spec_file", metavar="PATH", default=None, envvar="OPSKIT_SPEC", show_envvar=True,
        help="The capacity spec [default: ./opskit.yaml].",
    )(f)


def output_option(*choices: str) -> Callable[[F], F]:
    formats = choices or ("table", "json")

    def deco(f: F) -> F:
        return click.option(
            "--output", "-o", "output", type=click.Choice(formats), default=formats[0], show_default=True,
            help="Output format.",
        )(f)

    return deco


def render_options(folder: str) -> Callable[[F], F]:
    """--out and --check of a command that renders a folder of generated files from the spec."""
    out = click.option("--out", "out_dir", metavar="DIR", help=f"Folder to write [default: {folder}/ beside the spec].")
    check = click.option("--check", is_flag=True,
                         help="Write nothing; exit 1 with a unified diff if the folder differs.")
    return lambda f: out(check(f))


def state_dir_option(help: str) -> Callable[[F], F]:
    """--state-dir of the commands that start local servers (a Path, ./.opskit by default)."""
    return click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".opskit"),
                        help=help)


def load(spec_file: str | None) -> Spec:
    from opskit.spec import load_spec

    return load_spec(spec_file)
