"""SQLite's write side for uploads and change tracking: the writers' turn, bulk loads on pooled connections
with statements shared by every upload, coalesced WAL checkpoints, and the company_changes bumps.

SQLite has one writer at a time, so what an upload costs the others is what it does while it holds the
write lock. Measured on 100 concurrent 1 MB uploads: preparing the two INSERT statements each upload built
for itself (company and time as literals, a 10,000-row and a remainder statement: ~28 ms and ~18 ms to
prepare, ~5 ms to run per 10,000 rows) was 85% of the insert time, and the write lock sat idle while
writers slept in SQLite's busy handler.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable

from opskit.assetsvc.storage import FlatAssets

# Rows per INSERT in a bulk load: one statement per batch the parser hands over (upload.BATCH rows).
# One statement per row spent half of SQLite's time on per-statement work (step, reset, a bind call per
# value) and released and re-took the GIL per row, so the parser thread and the writer thread took turns
# instead of running side by side. Measured on 1.46M rows: insert CPU 3.0-3.5 s with one row per statement,
# 1.6-1.9 s with 200 to 10,000 rows; and with a parser thread beside it, 10,000 rows per statement (the GIL
# taken back once per batch) finished well ahead of 200 (once per 200 rows). Capped by the library's
# variable limit (3 per row + 2; 32,766 in SQLite >= 3.32, 999 before).
ROWS_PER_INSERT = 10_000
# a batch's remainder goes in pieces of these sizes, so every upload uses the same few statements (each
# prepared once per pooled connection) at the cost of at most 9 executions per size
PIECES = (1000, 100, 10, 1)
BULK_CACHE_KIB = 16 * 1024
IDLE_CONNECTIONS = 8  # bulk connections kept per store and process for the next uploads
# while uploads are in progress in this process, the WAL is copied into the database only after this many
# rows (~100 MB of WAL); otherwise when the last one ends
CHECKPOINT_ROWS = 1_000_000


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


class WriteTurn:
    """Whose turn it is to write, across threads and processes: an flock on a file beside the database,
    taken around every write transaction of assets. SQLite's own busy handler polls with sleeps growing
    to 100 ms, so with 8 uploads writing batches the write lock sat idle most of the time (a profile of
    100 concurrent uploads: their writer threads spent 5x longer in BEGIN IMMEDIATE than inserting);
    a blocked flock wakes as soon as the holder lets go. Held only for one transaction, never while a
    client sends; the kernel drops it with a killed process. One per thread or upload (an flock belongs
    to its open file, so threads sharing one would not exclude each other)."""

    def __init__(self, db_path: str) -> None:
        self._fd = os.open(db_path + "-writers.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def bump(conn: sqlite3.Connection, companies: Iterable[str]) -> None:
    """Record, inside the caller's write transaction, that these companies' assets changed (sqlite.SCHEMA)."""
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM company_changes").fetchone()
    conn.executemany("INSERT OR REPLACE INTO company_changes (company_id, seq) VALUES (?, ?)",
                     [(c, seq) for c in companies])


def discard(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> int:
    """Delete the rows of the unfinished uploads matching `where` (on upload_batches) and their ranges."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        bump(conn, [c for (c,) in conn.execute(f"SELECT DISTINCT company_id FROM upload_batches WHERE {where}",
                                                args)])
        cur = conn.execute(
            "DELETE FROM assets WHERE id IN (SELECT a.id FROM upload_batches b JOIN assets a "
            f"ON a.company_id = b.company_id AND a.id BETWEEN b.first_id AND b.last_id WHERE b.{where})", args)
        conn.execute(f"DELETE FROM upload_batches WHERE {where}", args)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return cur.rowcount


def _statement(rows: int) -> str:
    # ?1 is the company and ?2 the upload's timestamp, bound once per statement; the rows' values follow as
    # plain ?s (numbered 3, 4, ... in the order they appear). Numbering every value (?NNN) instead made
    # SQLite's prepare quadratic: 1.2 s for 10,000 rows, against 16 ms for this form; runs the same.
    return ("INSERT INTO assets (company_id, address, latitude, longitude, created_at, updated_at) "
            "SELECT ?1, column1, column2, column3, ?2, ?2 FROM (VALUES " + ",".join(["(?, ?, ?)"] * rows) + ")")


def _checkpoint(path: str) -> None:
    with contextlib.suppress(sqlite3.Error):  # PASSIVE: gives way to readers and writers, retried later
        conn = sqlite3.connect(path, timeout=1.0)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.close()


class BulkLoads:
    """Per store and process: idle bulk connections (with their prepared statements) and the checkpoint
    thread. Copying a big upload's WAL into the database takes seconds, so it runs after the answer, and
    during a burst of uploads only when the burst is over or CHECKPOINT_ROWS have piled up (each checkpoint
    copies the b-trees' right-hand pages again, and the copying competes with the burst for the cores):
    one thread at a time (100 uploads used to start 100 connections copying the same WAL)."""

    def __init__(self, path: str, open_conn: Callable[[], sqlite3.Connection]) -> None:
        self.path = path
        self._open = open_conn
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._checkpoint_due = self._checkpointing = False
        self._active = 0  # bulk connections taken and not given back
        self._rows = 0  # written since the last checkpoint began
        self._statements: dict[int, str] = {}

    def statement(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            sql = self._statements[rows] = _statement(rows)
        return sql

    def take(self) -> sqlite3.Connection:
        with self._lock:
            self._active += 1
            if self._idle:
                return self._idle.pop()
        conn = self._open()
        conn.execute("PRAGMA wal_autocheckpoint=0")
        # an append-only load needs only the right-hand edge of two b-trees in cache; the shared 64 MiB would
        # be most of the upload's memory (measured: no CPU difference between 4 MiB and 64 MiB here)
        conn.execute(f"PRAGMA cache_size={-BULK_CACHE_KIB}")
        return conn

    def give_back(self, conn: sqlite3.Connection, rows: int) -> None:
        """Return a connection after an upload that committed `rows` (0: nothing to checkpoint)."""
        reusable = not conn.in_transaction
        if reusable:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA shrink_memory")  # an idle connection keeps its statements, not its pages
        with self._lock:
            self._active -= 1
            self._rows += rows
            pooled = reusable and len(self._idle) < IDLE_CONNECTIONS
            if pooled:
                self._idle.append(conn)
            start = bool(self._rows) and (self._active == 0 or self._rows >= CHECKPOINT_ROWS)
            if start:
                self._rows = 0
                self._checkpoint_due = True
                start = not self._checkpointing
                self._checkpointing = True
        if not pooled:
            conn.close()
        if start:
            threading.Thread(target=self._checkpoints, name="wal-checkpoint", daemon=True).start()

    def _checkpoints(self) -> None:
        while True:
            with self._lock:
                if not self._checkpoint_due:
                    self._checkpointing = False
                    return
                self._checkpoint_due = False
            _checkpoint(self.path)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class SQLiteBulkWriter:
    """One upload as a series of short transactions, one per batch the parser hands over.

    A batch is written only once it has arrived and been parsed, so the write lock is held for the few
    milliseconds of one INSERT, never while the client sends (or stalls sending) the next bytes: other
    tenants' writes wait at most one batch. The upload stays all-or-nothing for the service's answers:
    every committed batch records its id range in upload_batches, commit() forgets the ranges and
    rollback() deletes those rows. A worker killed mid-upload leaves ranges behind; the supervisor
    deletes them (discard_unfinished_uploads) when it starts and when it reaps that worker.
    The uploading company can see the rows of its own upload while it is in progress.
    """

    def __init__(self, loads: BulkLoads, company_id: str) -> None:
        self._loads = loads
        self._turn = WriteTurn(loads.path)
        self._conn = loads.take()
        self._company = company_id
        self._now = utc_now()  # one timestamp per upload
        self._upload_id = secrets.token_hex(8)
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._per = max(1, min(ROWS_PER_INSERT, (limit - 2) // 3))
        self._count = 0
        self._batches = 0

    def add(self, flat: FlatAssets) -> None:
        if len(flat) % 3:
            raise ValueError("a flat batch holds 3 values per asset")
        if not flat:
            return
        # the statements' arguments are built before the turn is taken: under it, SQLite work only
        head: list[str | float] = [self._company, self._now]
        runs: list[tuple[str, list[list[str | float]]]] = []
        at = 0
        for rows in (self._per, *(p for p in PIECES if p < self._per)):
            width = 3 * rows
            n = (len(flat) - at) // width
            if n:
                runs.append((self._loads.statement(rows), [head + flat[i:i + width]
                                                           for i in range(at, at + n * width, width)]))
                at += n * width
        with self._turn:
            self._write(runs, len(flat) // 3)
        self._count += len(flat) // 3
        self._batches += 1

    def _write(self, runs: list[tuple[str, list[list[str | float]]]], rows: int) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # without AUTOINCREMENT a new rowid is max(rowid) + 1, and the lock keeps other writers out:
            # this transaction's rows are exactly the ids after the current maximum
            (first,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM assets").fetchone()
            for sql, args in runs:
                conn.executemany(sql, args)
            conn.execute("INSERT INTO upload_batches (upload_id, company_id, first_id, last_id, pid) "
                         "VALUES (?, ?, ?, ?, ?)", (self._upload_id, self._company, first, first + rows - 1,
                                                    os.getpid()))
            bump(conn, (self._company,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def commit(self) -> int:
        conn = self._conn
        try:
            if self._batches:
                with self._turn:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        conn.execute("DELETE FROM upload_batches WHERE upload_id = ?", (self._upload_id,))
                        bump(conn, (self._company,))  # a commit that names no company drops every page
                        conn.execute("COMMIT")
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
        finally:
            self._turn.close()
            self._loads.give_back(conn, self._count)
        return self._count

    def rollback(self) -> None:
        try:
            if self._batches:
                with self._turn:
                    discard(self._conn, "upload_id = ?", (self._upload_id,))
        finally:
            self._turn.close()
            self._loads.give_back(self._conn, self._count)
