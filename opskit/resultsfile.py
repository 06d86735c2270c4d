"""Reading a load test's results.json (docs/results-schema.md) for every command that judges one: gate,
`scale check --source results`, `capacity fit/report`. One place says what a missing, empty, truncated
or foreign file is; `load_run` reads it into the typed model (opskit/runmodel/) and each caller picks
the exit code it documents (`UnreadableResults.kind` tells a file that is not there from one that is
there but wrong).

The writer is `opskit loadtest run`; this module must not import it (nor locust)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from opskit.runmodel import SCHEMA_VERSION, RunResults, UnreadableResults, check, parse, read

__all__ = ["FILE_NAME", "SCHEMA_VERSION", "UnreadableResults", "check", "load", "load_run", "newest", "parse",
           "resolve"]

FILE_NAME = "results.json"


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
    p, data = load(path)
    return read(data, str(p))


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
