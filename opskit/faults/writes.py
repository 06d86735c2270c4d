"""Acknowledged writes: what the load recorded (one file per generator process) and the check, after the
run, that each is in the database.

The locustfile appends one line per outcome to WRITES_DIR/<pid>.log: `c ID` for a 201 (created,
acknowledged), `d ID` for a delete the service confirmed, `u ID` for a delete whose outcome is unknown
(it failed or timed out: the row may or may not be gone). A lost write is an acknowledged id that is not in
the database and that the load did not delete, or may have deleted."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WriteLog:
    created: frozenset[int]
    deleted: frozenset[int]  # confirmed or unsure: either way not expected in the database

    @property
    def expected(self) -> frozenset[int]:
        return self.created - self.deleted


def parse(lines: Iterable[str]) -> WriteLog:
    created: set[int] = set()
    deleted: set[int] = set()
    for line in lines:
        kind, _, value = line.strip().partition(" ")
        if not value.isdigit():
            continue  # a line cut by a killed process
        (created if kind == "c" else deleted if kind in ("d", "u") else set()).add(int(value))
    return WriteLog(frozenset(created), frozenset(deleted))


def read(directory: Path) -> WriteLog:
    lines: list[str] = []
    for path in sorted(Path(directory).glob("*.log")):
        lines.extend(path.read_text(encoding="utf-8", errors="replace").splitlines())
    return parse(lines)


def present(db_url: str, password: str | None, ids: Iterable[int]) -> set[int]:
    """The ids that are rows of assets, asked of the database itself (not the service: it may cache)."""
    import psycopg

    wanted = sorted(ids)
    found: set[int] = set()
    with psycopg.connect(db_url, password=password, connect_timeout=10) as conn:
        for i in range(0, len(wanted), 10_000):
            rows = conn.execute("SELECT id FROM assets WHERE id = ANY(%s::bigint[])", (wanted[i:i + 10_000],))
            found.update(int(r[0]) for r in rows)
    return found


def check(directory: Path, db_url: str, password_file: str | None) -> tuple[int, int]:
    """(acknowledged writes, lost writes)."""
    log = read(directory)
    password = Path(password_file).read_text().strip() if password_file else None
    expected = log.expected
    missing = expected - present(db_url, password, expected) if expected else set()
    return len(log.created), len(missing)
