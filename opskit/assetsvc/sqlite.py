"""SQLite (WAL) storage: the embedded default. One connection per thread; readers never wait for writers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence

from opskit.assetsvc.storage import CompanyStats, FlatAssets, KeyRecord, NewAsset

SCHEMA = """
CREATE TABLE IF NOT EXISTS assets (
    id INTEGER PRIMARY KEY,
    company_id TEXT NOT NULL,
    address TEXT NOT NULL,
    latitude REAL NOT NULL,
    longitude REAL NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS assets_company_id ON assets (company_id, id);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL UNIQUE,
    company_id TEXT NOT NULL,
    tier TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- the id ranges an upload in progress has committed, so a failed upload can delete them and a crashed
-- one is cleaned up when the service starts again (see SQLiteBulkWriter)
CREATE TABLE IF NOT EXISTS upload_batches (
    upload_id TEXT NOT NULL,
    company_id TEXT NOT NULL,
    first_id INTEGER NOT NULL,
    last_id INTEGER NOT NULL,
    pid INTEGER NOT NULL
);
-- the last commit (seq, growing) that changed each company's assets: a worker that sees the store change
-- drops only the cached pages of the companies with a seq above the last it read, so one tenant's writes
-- (an upload commits every 10,000 rows) leave the others' pages cached. Every write to assets bumps it in
-- its own transaction; a commit that bumps nothing (keys, or a writer outside this class) drops every page.
CREATE TABLE IF NOT EXISTS company_changes (
    company_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS company_changes_seq ON company_changes (seq);
"""

# the page is built as JSON text inside SQLite: no Python work per row on the hottest endpoint
_ASSET_JSON = (
    "json_object('id', id, 'company_id', company_id, 'address', address, 'latitude', latitude, "
    "'longitude', longitude, 'created_at', created_at, 'updated_at', updated_at)"
)
_LIST_SQL = (
    f"SELECT coalesce(json_group_array(json({_ASSET_JSON})), '[]'), count(*), max(id) FROM "
    "(SELECT * FROM assets WHERE company_id = ? AND id > ? ORDER BY id LIMIT ?)"
)
_GET_SQL = f"SELECT {_ASSET_JSON} FROM assets WHERE company_id = ? AND id = ?"
_INSERT_SQL = (
    "INSERT INTO assets (company_id, address, latitude, longitude, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def utc_now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"  # SQL string literal: the only escape is a doubled quote


def _bump(conn: sqlite3.Connection, companies: Iterable[str]) -> None:
    """Record, inside the caller's write transaction, that these companies' assets changed (see SCHEMA)."""
    (seq,) = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM company_changes").fetchone()
    conn.executemany("INSERT OR REPLACE INTO company_changes (company_id, seq) VALUES (?, ?)",
                     [(c, seq) for c in companies])


# what changed since a worker last looked: this connection's data_version (moves on every other
# connection's commit) and the companies bumped after the seq it read last, in one statement
_CHANGES_SQL = ("SELECT v.data_version, c.company_id, c.seq FROM pragma_data_version AS v "
                "LEFT JOIN company_changes AS c ON c.seq > ?")


def _checkpoint(path: str) -> None:
    with contextlib.suppress(sqlite3.Error):  # PASSIVE: gives way to readers and writers, retried later
        conn = sqlite3.connect(path, timeout=1.0)
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        conn.close()


# Rows per INSERT in a bulk load: one statement per batch the parser hands over (upload.BATCH rows).
# One statement per row spent half of SQLite's time on per-statement work (step, reset, a bind call per
# value) and released and re-took the GIL per row, so the parser thread and the writer thread took turns
# instead of running side by side. Measured on 1.46M rows: insert CPU 3.0-3.5 s with one row per statement,
# 1.6-1.9 s with 200 to 10,000 rows; and with a parser thread beside it, 10,000 rows per statement (the GIL
# taken back once per batch) finished well ahead of 200 (once per 200 rows). Capped by the library's
# variable limit (3 per row; 32,766 in SQLite >= 3.32, 999 before).
ROWS_PER_INSERT = 10_000
WAL_INDEX_HEADER = 48  # bytes: the first copy of the WAL-index header (sqlite.org/walformat.html)
BULK_CACHE_KIB = 16 * 1024


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

    def __init__(self, conn: sqlite3.Connection, company_id: str, path: str) -> None:
        self._conn = conn
        self._path = path
        self._company = company_id
        self._upload_id = secrets.token_hex(8)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        # an append-only load needs only the right-hand edge of two b-trees in cache; the shared 64 MiB would
        # be most of the upload's memory (measured: no CPU difference between 4 MiB and 64 MiB here)
        conn.execute(f"PRAGMA cache_size={-BULK_CACHE_KIB}")
        now = _literal(utc_now())
        # the constant columns are literals (one timestamp per upload), so only the three client values are
        # bound per row and the parser's flat list is bound slice by slice as it is
        self._head = "INSERT INTO assets (company_id, address, latitude, longitude, created_at, updated_at) VALUES "
        self._row = f"({_literal(company_id)}, ?, ?, ?, {now}, {now})"
        self._per = max(1, min(ROWS_PER_INSERT, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 3))
        self._many = self._values(self._per)
        self._count = 0
        self._batches = 0

    def _values(self, rows: int) -> str:
        return self._head + ",".join([self._row] * rows)

    def add(self, flat: FlatAssets) -> None:
        if len(flat) % 3:
            raise ValueError("a flat batch holds 3 values per asset")
        if not flat:
            return
        width = 3 * self._per
        whole = len(flat) - len(flat) % width
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            # without AUTOINCREMENT a new rowid is max(rowid) + 1, and the lock keeps other writers out:
            # this transaction's rows are exactly the ids after the current maximum
            (first,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM assets").fetchone()
            if whole:
                conn.executemany(self._many, [flat[i:i + width] for i in range(0, whole, width)])
            if whole < len(flat):
                conn.execute(self._values((len(flat) - whole) // 3), flat[whole:])
            conn.execute("INSERT INTO upload_batches (upload_id, company_id, first_id, last_id, pid) "
                          "VALUES (?, ?, ?, ?, ?)",
                          (self._upload_id, self._company, first, first + len(flat) // 3 - 1, os.getpid()))
            _bump(conn, (self._company,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._count += len(flat) // 3
        self._batches += 1

    def commit(self) -> int:
        if self._batches:
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM upload_batches WHERE upload_id = ?", (self._upload_id,))
                _bump(conn, (self._company,))  # names the company: a commit naming none drops every page
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._conn.close()
        # copying a big upload's WAL into the database takes seconds: do it after the answer, not before
        threading.Thread(target=_checkpoint, args=(self._path,), name="wal-checkpoint", daemon=True).start()
        return self._count

    def rollback(self) -> None:
        try:
            if self._batches:
                _discard(self._conn, "upload_id = ?", (self._upload_id,))
        finally:
            self._conn.close()


def _discard(conn: sqlite3.Connection, where: str, args: tuple[object, ...]) -> int:
    """Delete the rows of the unfinished uploads matching `where` (on upload_batches) and their ranges."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        _bump(conn, [c for (c,) in conn.execute(f"SELECT DISTINCT company_id FROM upload_batches WHERE {where}",
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


class SQLiteStorage:
    def __init__(self, path: str, *, busy_timeout_s: float = 10.0) -> None:
        self.path = os.path.abspath(path)
        self._busy = busy_timeout_s
        self._local = threading.local()
        self._data_version: int | None = None
        self._seq = 0  # the highest company_changes.seq this worker has acted on
        self._shm_fd: int | None = None
        self._shm_tried = False
        self._shm_head = b""
        parent = os.path.dirname(self.path)
        os.makedirs(parent, exist_ok=True)
        conn = self._open()
        conn.executescript(SCHEMA)
        self._local.conn = conn

    def _open(self, *, shared: bool = False) -> sqlite3.Connection:
        # autocommit mode (isolation_level=None): transactions are explicit, so nothing stays open by accident
        conn = sqlite3.connect(self.path, timeout=self._busy, isolation_level=None, check_same_thread=not shared)
        conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL: a commit survives the process being killed (kill -9); only power loss can lose
        # the last transactions, which is the usual trade for a local store
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA temp_store=MEMORY")
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    # reads
    def list_json(self, company_id: str, after_id: int, limit: int) -> tuple[str, int | None]:
        data, count, last = self._conn.execute(_LIST_SQL, (company_id, after_id, limit)).fetchone()
        return data, (last if count == limit else None)

    def get_json(self, company_id: str, asset_id: int) -> str | None:
        row = self._conn.execute(_GET_SQL, (company_id, asset_id)).fetchone()
        return row[0] if row else None

    def stats(self, company_id: str) -> CompanyStats:
        row = self._conn.execute(
            "SELECT count(*), min(created_at), max(created_at), min(latitude), max(latitude), "
            "min(longitude), max(longitude) FROM assets WHERE company_id = ?",
            (company_id,),
        ).fetchone()
        return CompanyStats(company_id, *row)

    def totals(self) -> tuple[int, int]:
        (count,) = self._conn.execute("SELECT count(*) FROM assets").fetchone()
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                size += os.path.getsize(self.path + suffix)
        return count, size

    def changed(self) -> bool | frozenset[str]:
        # every commit rewrites the WAL-index header at the start of the -shm file (its change counter,
        # frame count and checksums): an unchanged header means no commit since the last look, at one
        # pread instead of a statement (8% of a cached list request). Read before data_version, so a
        # commit landing between the two changes the header again and is seen next time.
        if self._shm_fd is None and not self._shm_tried:
            self._shm_tried = True
            with contextlib.suppress(OSError):
                self._shm_fd = os.open(self.path + "-shm", os.O_RDONLY)
        if self._shm_fd is not None:
            try:
                head = os.pread(self._shm_fd, WAL_INDEX_HEADER, 0)
            except OSError:
                head = b""
            if len(head) == WAL_INDEX_HEADER and head == self._shm_head:
                return False
            self._shm_head = head
        if self._data_version is None:  # the first look: nothing is cached yet, start from the newest seq
            (self._data_version, self._seq) = self._conn.execute(
                "SELECT (SELECT data_version FROM pragma_data_version), "
                "(SELECT coalesce(max(seq), 0) FROM company_changes)").fetchone()
            return True
        rows = self._conn.execute(_CHANGES_SQL, (self._seq,)).fetchall()
        version = rows[0][0]
        if version == self._data_version:
            return False
        self._data_version = version
        companies = frozenset(row[1] for row in rows if row[1] is not None)
        if not companies:
            return True  # a commit that named no company: anything may have changed
        self._seq = max(row[2] for row in rows)
        return companies

    def check(self) -> None:
        self._conn.execute("SELECT 1 FROM assets LIMIT 1").fetchall()

    # writes
    def create(self, company_id: str, rows: Sequence[NewAsset]) -> list[dict[str, object]]:
        conn, now = self._conn, utc_now()
        out: list[dict[str, object]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for address, lat, lon in rows:
                cur = conn.execute(_INSERT_SQL, (company_id, address, lat, lon, now, now))
                out.append({"id": cur.lastrowid, "company_id": company_id, "address": address, "latitude": lat,
                            "longitude": lon, "created_at": now, "updated_at": now})
            _bump(conn, (company_id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return out

    def bulk(self, company_id: str) -> SQLiteBulkWriter:
        # a connection of its own: the upload runs in a thread and owns one transaction from start to end
        # (the parser thread hands it to a writer thread, one at a time: shared is safe)
        return SQLiteBulkWriter(self._open(shared=True), company_id, self.path)

    def delete(self, company_id: str, ids: Sequence[int]) -> int:
        import json

        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            cur = conn.execute("DELETE FROM assets WHERE company_id = ? AND id IN (SELECT value FROM json_each(?))",
                               (company_id, json.dumps(list(ids))))
            if cur.rowcount:
                _bump(conn, (company_id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return cur.rowcount

    def seed(self, rows: Iterable[tuple[str, str, float, float, str]]) -> int:
        conn = self._conn
        before = conn.total_changes
        companies: set[str] = set()

        def noting() -> Iterable[tuple[str, str, float, float, str]]:
            for row in rows:
                companies.add(row[0])
                yield row

        conn.execute("BEGIN")
        try:
            conn.executemany(
                "INSERT INTO assets (company_id, address, latitude, longitude, created_at, updated_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                noting(),
            )
            inserted = conn.total_changes - before
            _bump(conn, companies)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return inserted

    def discard_unfinished_uploads(self, pid: int | None = None) -> int:
        """Delete what uploads of a dead worker (`pid`, or every worker) committed; returns the rows."""
        if pid is None:
            return _discard(self._conn, "pid >= 0", ())
        return _discard(self._conn, "pid = ?", (pid,))

    # keys
    def lookup_key(self, key: str) -> KeyRecord | None:
        row = self._conn.execute(
            "SELECT company_id, tier, key_id FROM api_keys WHERE key_hash = ?", (hash_key(key),)
        ).fetchone()
        return KeyRecord(*row) if row else None

    def create_key(self, company_id: str, tier: str) -> str:
        key = "ak_" + secrets.token_urlsafe(24)
        self._conn.execute(
            "INSERT INTO api_keys (key_hash, key_id, company_id, tier, created_at) VALUES (?, ?, ?, ?, ?)",
            (hash_key(key), "k_" + secrets.token_hex(6), company_id, tier, utc_now()),
        )
        return key

    def revoke_key(self, key_id: str) -> KeyRecord | None:
        """Delete the key with this id; its record, or None when there is none."""
        row = self._conn.execute("SELECT company_id, tier, key_id FROM api_keys WHERE key_id = ?",
                                 (key_id,)).fetchone()
        if row is None:
            return None
        self._conn.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
        return KeyRecord(*row)

    def close(self) -> None:
        if self._shm_fd is not None:
            os.close(self._shm_fd)
            self._shm_fd = None
        self._shm_tried = False
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
