"""Reading a load test's results.json (docs/results-schema.md) for every command that judges one: gate,
`scale check --source results`, `capacity fit/report`. One place says what a missing, empty, truncated
or foreign file is; `load_run` reads it into the typed model (opskit/runmodel.py) and each caller picks
the exit code it documents (`UnreadableResults.kind` tells a file that is not there from one that is
there but wrong).

The writer is `opskit loadtest run`; this module must not import it (nor locust)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.runmodel import RunResults

SCHEMA_VERSION = 1
FILE_NAME = "results.json"


class UnreadableResults(ValueError):
    """The results cannot answer the question. kind: "missing" or "unreadable" (the file itself),
    "empty", "json" (truncated or corrupt), "schema" (not a results file of this version), or
    "content" (a key a reader needs is missing or malformed)."""

    def __init__(self, message: str, kind: str = "content") -> None:
        super().__init__(message)
        self.kind = kind


def resolve(path: str | Path) -> Path:
    """A run folder stands for the results.json in it."""
    p = Path(path)
    return p / FILE_NAME if p.is_dir() else p


def load(path: str | Path) -> tuple[Path, Mapping[str, Any]]:
    """The file (or run folder's file) parsed and checked: (its path, the JSON object)."""
    p = resolve(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM some Windows editors add is not an error
    except FileNotFoundError:
        raise UnreadableResults(f"{p}: no such results file", "missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableResults(f"{p}: cannot read the results file: {exc}", "unreadable") from None
    return p, parse(text, str(p))


def load_run(path: str | Path) -> RunResults:
    """The file (or run folder's file) read strictly into the run model."""
    from opskit.runmodel import read

    p, data = load(path)
    return read(data, str(p))


def parse(text: str, name: str = FILE_NAME) -> Mapping[str, Any]:
    if not text.strip():
        raise UnreadableResults(f"{name}: the file is empty", "empty")
    try:
        data = json.loads(text, parse_int=_int)
    except RecursionError:
        raise UnreadableResults(f"{name}: not a results file: JSON nested too deeply", "json") from None
    except json.JSONDecodeError as exc:
        # a writer killed mid-write leaves a prefix: say so, it is the usual cause and not the user's typo
        stripped = text.strip()
        cut = exc.pos >= len(text.rstrip()) - 1 or (stripped.startswith("{") and not stripped.endswith("}"))
        what = f"truncated, the file ends early (column {exc.colno}: {exc.msg})" if cut else \
            f"{exc.msg} (column {exc.colno})"
        raise UnreadableResults(f"{name}:{exc.lineno}: not valid JSON: {what}", "json") from None
    return check(data, name)


def _int(text: str) -> int | float:
    # an integer no float can hold (1e400 written out) becomes inf, which every reader refuses with the
    # key path ("expected a number"), instead of an OverflowError deep in the arithmetic
    # (the length test first: int() of more than 4,300 digits raises ValueError in Python 3.11)
    if len(text.lstrip("-")) <= 18:
        return int(text)
    return float("-inf") if text.startswith("-") else float("inf")


def check(data: object, name: str = FILE_NAME) -> Mapping[str, Any]:
    """The top level of a results document: an object of the schema_version this opskit reads."""
    if not isinstance(data, dict):
        raise UnreadableResults(f"{name}: not a results file: expected a JSON object at the top level", "schema")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UnreadableResults(f"{name}: schema_version is {version!r}; this opskit reads schema_version "
                                f"{SCHEMA_VERSION} (docs/results-schema.md)", "schema")
    return data


def newest(runs_dir: str | Path, accept: Callable[[RunResults], bool] | None = None) -> Path | None:
    """The most recently written <runs_dir>/*/results.json. With `accept`, the newest that reads cleanly
    into the run model and that it takes: a half-written or foreign file is then skipped, it is simply not
    a run we can use."""
    runs = Path(runs_dir)
    if not runs.is_dir():
        return None
    for p in sorted(runs.glob(f"*/{FILE_NAME}"), key=_mtime, reverse=True):
        if accept is None:
            return p
        try:
            run = load_run(p)
        except UnreadableResults:
            continue
        if accept(run):
            return p
    return None


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except OSError:
        return 0.0
