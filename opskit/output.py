"""The only printing: tables for people, JSON for machines, Markdown to paste. Commands build data; this shows it.
Files are written by opskit.atomicio."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click


def to_jsonable(value: Any) -> Any:
    """Dataclasses, pydantic models, paths, enums and NaN become plain JSON (NaN and inf become null)."""
    import dataclasses
    import datetime as dt
    import enum

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return to_jsonable(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime) and value.utcoffset() is not None:
        # an instant is ISO 8601 in UTC with a Z, as results.json writes its times (docs/guide/json.md)
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


def figure(x: float) -> float:
    """A measured or computed figure as opskit shows it in JSON (docs/guide/json.md): 3 decimals, or 4
    significant digits when that keeps more (a fraction like 0.000125, a unit price like 0.0416)."""
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, max(3, 3 - math.floor(math.log10(abs(x)))))


_UTC_INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?\+00:00$")


def figures(value: Any) -> Any:
    """Every float of a JSON-ready value rounded by `figure`, and every UTC instant written with a Z (a
    journal or state file may have recorded +00:00); other values and the shape stay as they are."""
    if isinstance(value, float):
        return figure(value)
    if isinstance(value, str) and _UTC_INSTANT.match(value):
        return value[:-6] + "Z"
    if isinstance(value, dict):
        return {k: figures(v) for k, v in value.items()}
    if isinstance(value, list):
        return [figures(v) for v in value]
    return value


def dumps_figures(value: Any) -> str:
    """The JSON of a command's answer or a results file: converted, then every figure rounded alike."""
    return json.dumps(figures(to_jsonable(value)), indent=2, sort_keys=False)


def echo(text: str = "", *, err: bool = False) -> None:
    click.echo(text, err=err)


def warn(text: str) -> None:
    click.echo(f"opskit: warning: {text}", err=True)


def emit_json(value: Any) -> None:
    click.echo(dumps_figures(value))


def emit_json_line(value: Any) -> None:
    """One compact JSON document on one line (a stream a reader follows, like `scale check --watch`)."""
    click.echo(json.dumps(figures(to_jsonable(value)), separators=(",", ":")))


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    styles: Sequence[str | None] | None = None,
) -> None:
    """A rich table on stdout. Cells are data, never markup: "[prometheus]" prints as written."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=sys.stdout, soft_wrap=False, width=_width())
    t = Table(title=escape(title) if title else None, show_lines=False, header_style="bold")
    for i, col in enumerate(columns):
        t.add_column(escape(col), style=(styles[i] if styles and i < len(styles) else None))
    for row in rows:
        t.add_row(*("" if v is None else escape(str(v)) for v in row))
    console.print(t)


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return ("" if v is None else str(v)).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _width() -> int | None:
    try:
        return max(100, os.get_terminal_size().columns)
    except OSError:
        return 140
