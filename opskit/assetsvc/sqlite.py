"""SQLite (WAL) storage: the embedded default. One connection per thread; readers never wait for writers."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence

from opskit.assetsvc.sqlitebulk import BulkLoads, SQLiteBulkWriter, WriteTurn, bump, discard, utc_now
from opskit.assetsvc.storage import CompanyStats, KeyRecord, NewAsset

__all__ = ["SQLiteBulkWriter", "SQLiteStorage", "hash_key", "utc_now"]

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


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# what changed since a worker last looked: this connection's data_version (moves on every other
# connection's commit) and the companies bumped after the seq it read last, in one statement
_CHANGES_SQL = ("SELECT v.data_version, c.company_id, c.seq FROM pragma_data_version AS v "
                "LEFT JOIN company_changes AS c ON c.seq > ?")
WAL_INDEX_HEADER = 48  # bytes: the first copy of the WAL-index header (sqlite.org/walformat.html)


class SQLiteStorage:
    def __init__(self, path: str, *, busy_timeout_s: float = 10.0) -> None:
        self.path = os.path.abspath(path)
        self._busy = busy_timeout_s
        self._local = threading.local()
        self._loads = BulkLoads(self.path, lambda: self._open(shared=True))
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

    @property
    def _turn(self) -> WriteTurn:
        turn: WriteTurn | None = getattr(self._local, "turn", None)
        if turn is None:
            turn = self._local.turn = WriteTurn(self.path)
        return turn

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
        with self._turn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for address, lat, lon in rows:
                    cur = conn.execute(_INSERT_SQL, (company_id, address, lat, lon, now, now))
                    out.append({"id": cur.lastrowid, "company_id": company_id, "address": address,
                                "latitude": lat, "longitude": lon, "created_at": now, "updated_at": now})
                bump(conn, (company_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return out

    def bulk(self, company_id: str) -> SQLiteBulkWriter:
        # a connection of its own (pooled): the upload runs in a thread and owns one transaction at a time
        # (the parser thread hands it to a writer thread, one at a time: shared is safe)
        return SQLiteBulkWriter(self._loads, company_id)

    def delete(self, company_id: str, ids: Sequence[int]) -> int:
        import json

        conn = self._conn
        with self._turn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                cur = conn.execute("DELETE FROM assets WHERE company_id = ? AND id IN "
                                   "(SELECT value FROM json_each(?))", (company_id, json.dumps(list(ids))))
                if cur.rowcount:
                    bump(conn, (company_id,))
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
            bump(conn, companies)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return inserted

    def discard_unfinished_uploads(self, pid: int | None = None) -> int:
        """Delete what uploads of a dead worker (`pid`, or every worker) committed; returns the rows."""
        with self._turn:
            if pid is None:
                return discard(self._conn, "pid >= 0", ())
            return discard(self._conn, "pid = ?", (pid,))

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
        self._loads.close()
        turn = getattr(self._local, "turn", None)
        if turn is not None:
            turn.close()
            self._local.turn = None
