"""The only printing: tables for people, JSON for machines, Markdown to paste. Commands build data; this shows it."""

from __future__ import annotations

import errno
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click

OUTPUT_FORMATS = ("table", "json")
OUTPUT_FORMATS_MD = ("table", "json", "md")


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
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), indent=2, sort_keys=False)


def echo(text: str = "", *, err: bool = False) -> None:
    click.echo(text, err=err)


def warn(text: str) -> None:
    click.echo(f"opskit: warning: {text}", err=True)


def emit_json(value: Any) -> None:
    click.echo(dumps(value))


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


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write a file so a reader never sees half of it: a temporary file beside it, then a rename.

    A path that cannot be written (a file where a folder must be, a folder where the file goes, no
    permission, a read-only file system) is a UsageError naming it (exit 2); a failure while writing
    (disk full, I/O error) a RuntimeFailure (exit 3). Either way the old file, if any, is untouched."""
    path = Path(path)
    try:
        return _write_atomic(path, data)
    except OSError as exc:
        from opskit.errors import RuntimeFailure, UsageError

        reason = _why_not_writable(path, exc)
        if exc.errno in _BAD_PATH_ERRNOS:
            raise UsageError(f"{path}: cannot write: {reason}") from None
        raise RuntimeFailure(f"{path}: cannot write: {reason}") from None


_BAD_PATH_ERRNOS = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS,
                    errno.ENOENT, errno.ENAMETOOLONG, errno.ELOOP}


def ensure_dir(path: str | Path) -> Path:
    """Create a folder (and its parents) before anything is written into it, with the same errors as
    write_atomic: commands that write several files call it first, so a bad --out writes nothing."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from opskit.errors import UsageError

        reason = _why_not_writable(path / "x", exc)
        raise UsageError(f"{path}: cannot create the folder: {reason}") from None
    return path


def _why_not_writable(path: Path, exc: OSError) -> str:
    if path.is_dir():
        return "it is a folder"
    for parent in path.parents:
        if parent.exists():
            return f"{parent} is a file, not a folder" if not parent.is_dir() else (exc.strerror or str(exc))
    return exc.strerror or str(exc)


def _write_atomic(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        # mkstemp makes 0600 files; a written report or rule file should be readable like any other
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
