"""Plan, then apply: compare rendered files with a folder, show the difference, write only what changed.

A file opskit generated earlier but no longer renders (an SLO was removed) is stale: it is deleted on
render and reported by --check, because Prometheus or Grafana would keep loading it. Files opskit did
not generate (hand-written unit tests) are never touched.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from opskit import atomicio
from opskit import output as out
from opskit.errors import Refused


@dataclass(frozen=True)
class Change:
    path: str  # relative to the folder
    status: str  # 'unchanged' | 'changed' | 'new' | 'stale'
    old: str | None
    new: str | None


def plan(directory: Path, files: dict[str, str], patterns: Iterable[str],
         generated: Callable[[str], bool]) -> list[Change]:
    changes = []
    for rel, text in sorted(files.items()):
        path = directory / rel
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        status = "new" if old is None else ("unchanged" if old == text else "changed")
        changes.append(Change(rel, status, old, text))
    for pattern in patterns:
        for path in sorted(directory.glob(pattern)):
            rel = path.relative_to(directory).as_posix()
            if rel in files or not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            if generated(text):
                changes.append(Change(rel, "stale", text, None))
    return changes


def unified_diff(changes: list[Change], label: str) -> str:
    chunks: list[str] = []
    for c in changes:
        if c.status == "unchanged":
            continue
        chunks.extend(difflib.unified_diff(
            (c.old or "").splitlines(keepends=True), (c.new or "").splitlines(keepends=True),
            fromfile=f"{label}/{c.path} (committed)" if c.old is not None else "/dev/null",
            tofile=f"{label}/{c.path} (rendered)" if c.new is not None else "/dev/null",
        ))
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


def apply(directory: Path, changes: list[Change]) -> None:
    # every folder first: a bad --out (a file, no permission) fails before any file is written or deleted
    for c in changes:
        if c.status in ("new", "changed"):
            atomicio.ensure_dir((directory / c.path).parent)
    for c in changes:
        if c.status in ("new", "changed") and c.new is not None:
            atomicio.write_atomic(directory / c.path, c.new)
        elif c.status == "stale":
            (directory / c.path).unlink(missing_ok=True)


@dataclass(frozen=True)
class Sync:
    """What a render did to its folder (or, with check, would do)."""

    directory: Path
    changes: list[Change]
    check: bool

    @property
    def differing(self) -> list[Change]:
        return [c for c in self.changes if c.status != "unchanged"]

    @property
    def refusal(self) -> str | None:
        """Why --check answers no, or None."""
        if not self.check or not self.differing:
            return None
        return (f"{len(self.differing)} file(s) in {self.directory} differ from what the spec renders "
                f"({', '.join(c.path for c in self.differing)}); run the render command and commit")

    def check_text(self) -> str:
        """What --check prints: the unified diff, or that the folder is up to date."""
        if self.differing:
            return unified_diff(self.differing, str(self.directory)).rstrip("\n")
        return f"{self.directory}: {len(self.changes)} files up to date with the spec"

    def rows(self) -> list[tuple[str, str]]:
        return [(c.path, c.status) for c in self.changes]

    def as_json(self, summary: dict[str, object]) -> dict[str, object]:
        if self.check:
            return {**summary, "check": True, "up_to_date": not self.differing,
                    "differing": [{"path": c.path, "status": c.status} for c in self.differing],
                    "diff": unified_diff(self.differing, str(self.directory))}
        return {**summary, "directory": str(self.directory),
                "files": [{"path": c.path, "status": c.status} for c in self.changes]}


def sync(directory: Path, files: dict[str, str], patterns: Iterable[str], generated: Callable[[str], bool],
         check: bool) -> Sync:
    """Plan the folder against the rendered files; apply unless check. Both render commands use this."""
    changes = plan(directory, files, patterns, generated)
    if not check:
        apply(directory, changes)
    return Sync(directory, changes, check)


def show(result: Sync, summary: dict[str, object], output: str) -> None:
    """Print what a render did (JSON, --check's diff, or a table); a --check that differs is refused."""
    if output == "json":
        out.emit_json(result.as_json(summary))
    elif result.check:
        out.echo(result.check_text())
    else:
        out.table(["file", "status"], result.rows(), title=f"rendered into {result.directory}")
    if result.refusal:
        raise Refused(result.refusal)
