"""PostgreSQL storage (`service run --db postgresql://...`): seed 000's table, a connection pool per worker,
uploads streamed through COPY FROM STDIN, small writes of many requests in one commit (create_many, fed
by batcher.py), keyset pages on (company_id, id).

The password never comes in the URL on a command line: libpq reads PGPASSWORD or PGPASSFILE from the
environment (`opskit stack up` writes one to STATE/stack/password)."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from opskit.assetsvc.sqlite import hash_key
from opskit.assetsvc.storage import CompanyStats, CreateRequest, FlatAssets, KeyRecord, NewAsset, Rejected

# seed 000's table. Its indexes, with three changes: (company_id, id) replaces (company_id) because the
# keyset page needs it and it serves company lookups as well. The GiST location index is left out: no
# endpoint queries by location, and it doubled the cost of every upload (measured: 148k rows through
# COPY 0.68 s without it, 1.45 s with it); add it with the first geospatial query (the built-in point
# type serves, PostGIS is not needed). (company_id, created_at) is left out for the same reason: no
# endpoint reads by created_at (stats scan the company's rows anyway), and it cost ~30% of an upload's
# COPY (150k rows: 1.73-2.41 s with it, 1.22-1.31 s without, same run); a database created with it keeps
# it. The partial index on `created_at > NOW() - 1 year` cannot exist: an index predicate must be immutable.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS assets (
        id BIGSERIAL PRIMARY KEY,
        company_id VARCHAR(255) NOT NULL,
        address TEXT NOT NULL,
        latitude DECIMAL(10, 8) NOT NULL,
        longitude DECIMAL(11, 8) NOT NULL,
        created_at TIMESTAMP DEFAULT NOW(),
        updated_at TIMESTAMP DEFAULT NOW()
    )""",
    "CREATE INDEX IF NOT EXISTS idx_assets_company_id_id ON assets (company_id, id)",
    """CREATE TABLE IF NOT EXISTS api_keys (
        key_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL UNIQUE,
        company_id TEXT NOT NULL,
        tier TEXT NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT NOW()
    )""",
    # bumped after each committed write; workers compare it to drop their page caches
    "CREATE SEQUENCE IF NOT EXISTS assets_changes",
]

_TS = "to_char({col}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
_ASSET_JSON = (
    "json_build_object('id', id, 'company_id', company_id, 'address', address, 'latitude', latitude::float8, "
    f"'longitude', longitude::float8, 'created_at', {_TS.format(col='created_at')}, "
    f"'updated_at', {_TS.format(col='updated_at')})"
)
_LIST_SQL = (
    f"SELECT coalesce(json_agg(j ORDER BY id), '[]')::text, count(*), max(id) FROM "
    f"(SELECT id, {_ASSET_JSON} AS j FROM assets WHERE company_id = %s AND id > %s ORDER BY id LIMIT %s) page"
)
_GET_SQL = f"SELECT {_ASSET_JSON}::text FROM assets WHERE company_id = %s AND id = %s"
_COPY_SQL = "COPY assets (company_id, address, latitude, longitude, created_at, updated_at) FROM STDIN"
# uploads leave the timestamps to the columns' DEFAULT NOW(): the transaction's start, the same for every
# row of the upload, as before; two timestamps per row were ~60% of the COPY text and ~25% of the server's
# time parsing it
_UPLOAD_COPY_SQL = "COPY assets (company_id, address, latitude, longitude) FROM STDIN"
# an upload's transaction may not outlive a stalled client: PostgreSQL ends it (and its locks) after this
UPLOAD_IDLE_TIMEOUT = "60s"
# connections per worker: the event loop's reads, the writer thread and the stats executor rarely need more,
# and workers x POOL_MAX must stay under the server's max_connections (100 on `opskit stack up`'s)
POOL_MAX = 4
# a request waits at most this long for a pooled connection: a database that is down or saturated gives a
# 503 with Retry-After, never a request hanging until the client's own timeout
POOL_WAIT_S = 2.0
# once the database has failed a request for lack of a connection, the next requests of this worker get their
# 503 at once for this long instead of each waiting POOL_WAIT_S on an empty pool (the pool keeps reconnecting)
DOWN_HOLD_S = 1.0

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def is_postgres_url(db: str) -> bool:
    return db.startswith(("postgresql://", "postgres://"))


_SPECIAL = ("\\", "\t", "\n", "\r")


def _copy_text(company: str, flat: FlatAssets) -> str:
    """Rows in COPY's text format (tab-separated, backslash escapes); the timestamps are the defaults."""
    addresses = flat[0::3]
    joined = "\x00".join(map(str, addresses))
    if any(ch in joined for ch in _SPECIAL):  # rare: escape only batches that need it
        addresses = [str(a).translate(_ESCAPES) for a in addresses]
    head = f"{company.translate(_ESCAPES)}\t"
    return "".join([f"{head}{a}\t{la!r}\t{lo!r}\n" for a, la, lo in zip(addresses, flat[1::3], flat[2::3],
                                                                       strict=True)])


class PostgresBulkWriter:
    """One upload = one transaction holding one COPY; rows stream into it batch by batch."""

    def __init__(self, pool: Any, company_id: str) -> None:
        self._pool = pool
        self._conn = pool.getconn()
        self._company = company_id
        self._count = 0
        self._copy_cm: Any = None
        try:
            self._conn.autocommit = False
            with self._conn.cursor() as cur:
                cur.execute(f"SET LOCAL idle_in_transaction_session_timeout = '{UPLOAD_IDLE_TIMEOUT}'")
            self._cur = self._conn.cursor()
            self._copy_cm = self._cur.copy(_UPLOAD_COPY_SQL)
            self._copy = self._copy_cm.__enter__()
        except BaseException:
            self._release(failed=True)
            raise

    def add(self, flat: FlatAssets) -> None:
        if len(flat) % 3:
            raise ValueError("a flat batch holds 3 values per asset")
        self._copy.write(_copy_text(self._company, flat))
        self._count += len(flat) // 3

    def commit(self) -> int:
        try:
            self._copy_cm.__exit__(None, None, None)
            self._copy_cm = None
            self._conn.commit()
        except BaseException:
            self._release(failed=True)
            raise
        self._release(failed=False)
        _bump(self._pool)
        return self._count

    def rollback(self) -> None:
        self._release(failed=True)

    def _release(self, *, failed: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._copy_cm is not None:  # end the COPY with an error: the server discards its rows
            with contextlib.suppress(Exception):
                self._copy_cm.__exit__(RuntimeError, RuntimeError("upload rolled back"), None)
            self._copy_cm = None
        with contextlib.suppress(Exception):
            if failed:
                conn.rollback()
            conn.autocommit = True
        self._pool.putconn(conn)


def _bump(pool: Any) -> None:
    with pool.connection() as conn:
        conn.execute("SELECT nextval('assets_changes')")


_INSERT_SQL = ("INSERT INTO assets (company_id, address, latitude, longitude) VALUES (%s, %s, %s, %s) "
               f"RETURNING id, latitude::float8, longitude::float8, {_TS.format(col='created_at')}")


def _insert(conn: Any, requests: Sequence[CreateRequest]) -> list[list[dict[str, object]]]:
    """Every row of every request through one pipelined executemany (one round trip; each row's own
    RETURNING, in order), inside the caller's transaction."""
    params = [(r.company_id, address, lat, lon) for r in requests for address, lat, lon in r.rows]
    with conn.cursor() as cur:
        cur.executemany(_INSERT_SQL, params, returning=True)
        returned = [cur.fetchone() for _ in cur.results()]
    out: list[list[dict[str, object]]] = []
    at = 0
    for r in requests:
        assets: list[dict[str, object]] = []
        for (address, _, _), (asset_id, lat_db, lon_db, now) in zip(r.rows, returned[at:at + len(r.rows)],
                                                                     strict=True):
            assets.append({"id": asset_id, "company_id": r.company_id, "address": address, "latitude": lat_db,
                           "longitude": lon_db, "created_at": now, "updated_at": now})
        at += len(r.rows)
        out.append(assets)
    return out


def _one(conn: Any, request: CreateRequest) -> list[dict[str, object]] | Rejected:
    """One request in a transaction of its own: its assets, or Rejected with the store's reason."""
    import psycopg

    try:
        with conn.transaction():
            return _insert(conn, [request])[0]
    except (psycopg.DataError, psycopg.IntegrityError) as exc:
        return _refused(exc)


def _refused(exc: Exception) -> Rejected:
    diag = getattr(exc, "diag", None)
    reason = (diag.message_primary if diag is not None else None) or str(exc).splitlines()[0]
    return Rejected(f"the store refused the asset: {reason}")


class PostgresStorage:
    kind = "postgresql"

    def __init__(self, url: str, *, pool_max: int = POOL_MAX, timeout_s: float = 10.0) -> None:
        from psycopg_pool import ConnectionPool

        self.url = url

        def configure(conn: Any) -> None:
            conn.autocommit = True
            conn.execute("SET TIME ZONE 'UTC'")

        import psycopg

        # one plain connection first: a wrong URL or a database that is down fails at once with libpq's own
        # words, rather than as a pool that retries in the background until its timeout
        with psycopg.connect(url, connect_timeout=max(1, int(timeout_s)), autocommit=True) as conn, \
                conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7301)")  # workers start together: one creates
            for statement in SCHEMA:
                conn.execute(statement)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_max, open=True, configure=configure,
                                    timeout=min(timeout_s, POOL_WAIT_S),
                                    kwargs={"connect_timeout": max(1, int(timeout_s))})
        self._version: int | None = None
        self._down_until = 0.0

    @contextlib.contextmanager
    def _conn(self) -> Iterator[Any]:
        import time

        import psycopg
        from psycopg_pool import PoolTimeout

        if self._down_until:
            now = time.monotonic()
            if now < self._down_until:
                raise psycopg.OperationalError("the database is unavailable (failing fast while it is down)")
            # one plain connection says at once whether it is back (refused costs a millisecond), where the
            # pool would make this request wait out POOL_WAIT_S on its reconnect backoff
            try:
                psycopg.connect(self.url, connect_timeout=1).close()
            except psycopg.OperationalError:
                self._down_until = now + DOWN_HOLD_S
                raise
            self._down_until = 0.0
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout:
            if not self._pool.get_stats().get("pool_size"):  # no connection at all: down, not just busy
                self._down_until = time.monotonic() + DOWN_HOLD_S
            raise
        except psycopg.OperationalError as exc:
            if not isinstance(exc, psycopg.errors.QueryCanceled):  # the connection broke or was refused
                self._down_until = time.monotonic() + DOWN_HOLD_S
            raise

    # reads
    def list_json(self, company_id: str, after_id: int, limit: int) -> tuple[str, int | None]:
        with self._conn() as conn:
            data, count, last = conn.execute(_LIST_SQL, (company_id, after_id, limit)).fetchone()
        return data, (int(last) if count == limit else None)

    def get_json(self, company_id: str, asset_id: int) -> str | None:
        with self._conn() as conn:
            row = conn.execute(_GET_SQL, (company_id, asset_id)).fetchone()
        return row[0] if row else None

    def stats(self, company_id: str) -> CompanyStats:
        sql = (f"SELECT count(*), {_TS.format(col='min(created_at)')}, {_TS.format(col='max(created_at)')}, "
               "min(latitude)::float8, max(latitude)::float8, min(longitude)::float8, max(longitude)::float8 "
               "FROM assets WHERE company_id = %s")
        with self._conn() as conn:
            row = conn.execute(sql, (company_id,)).fetchone()
        return CompanyStats(company_id, *row)

    def totals(self) -> tuple[int, int]:
        with self._conn() as conn:
            count, size = conn.execute(
                "SELECT (SELECT count(*) FROM assets), pg_total_relation_size('assets')").fetchone()
        return int(count), int(size)

    def changed(self) -> bool:
        with self._conn() as conn:
            (version,) = conn.execute("SELECT last_value FROM assets_changes").fetchone()
        changed = version != self._version
        self._version = version
        return changed

    def check(self) -> None:
        with self._conn() as conn:
            conn.execute("SELECT 1 FROM assets LIMIT 1").fetchall()

    # writes
    def create(self, company_id: str, rows: Sequence[NewAsset]) -> list[dict[str, object]]:
        with self._conn() as conn, conn.transaction():
            out = _insert(conn, [CreateRequest(company_id, rows)])[0]
        _bump(self._pool)
        return out

    def create_many(self, requests: Sequence[CreateRequest]) -> list[list[dict[str, object]] | Rejected]:
        """Group commit: every request's rows in one transaction, one commit (one WAL flush) for all; the
        created assets per request, in order. When the store refuses a row (a constraint, text it cannot
        hold), the batch is rolled back and each request is tried again in a transaction of its own, so
        only the request holding that row is Rejected. Errors of the database itself (down, timeout)
        raise, for every request of the batch."""
        import psycopg

        with self._conn() as conn:
            try:
                with conn.transaction():
                    out: list[list[dict[str, object]] | Rejected] = list(_insert(conn, requests))
            except (psycopg.DataError, psycopg.IntegrityError) as exc:
                # alone, the request was its own retry
                out = [_refused(exc)] if len(requests) == 1 else [_one(conn, request) for request in requests]
            if any(not isinstance(o, Rejected) for o in out):  # after the commit, on the same connection
                try:
                    conn.execute("SELECT nextval('assets_changes')")
                except psycopg.Error as exc:  # committed: the 201s stand; page caches see it at the next bump
                    logging.getLogger("assetsvc").warning("could not announce a committed write: %s", exc)
        return out

    def bulk(self, company_id: str) -> PostgresBulkWriter:
        return PostgresBulkWriter(self._pool, company_id)

    def delete(self, company_id: str, ids: Sequence[int]) -> int:
        with self._conn() as conn:
            cur = conn.execute("DELETE FROM assets WHERE company_id = %s AND id = ANY(%s::bigint[])",
                               (company_id, list(ids)))
            deleted = cur.rowcount
        if deleted:
            _bump(self._pool)
        return deleted

    def seed(self, rows: Iterable[tuple[str, str, float, float, str]]) -> int:
        count = 0
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_SQL) as copy:
            chunk: list[str] = []
            for company, address, lat, lon, created in rows:
                ts = created.rstrip("Z").replace("T", " ")
                chunk.append(f"{company.translate(_ESCAPES)}\t{address.translate(_ESCAPES)}\t{lat!r}\t{lon!r}"
                             f"\t{ts}\t{ts}\n")
                if len(chunk) >= 10_000:
                    copy.write("".join(chunk))
                    count += len(chunk)
                    chunk = []
            if chunk:
                copy.write("".join(chunk))
                count += len(chunk)
        _bump(self._pool)
        return count

    # keys
    def lookup_key(self, key: str) -> KeyRecord | None:
        with self._conn() as conn:
            row = conn.execute("SELECT company_id, tier, key_id FROM api_keys WHERE key_hash = %s",
                               (hash_key(key),)).fetchone()
        return KeyRecord(*row) if row else None

    def create_key(self, company_id: str, tier: str) -> str:
        key = "ak_" + secrets.token_urlsafe(24)
        with self._conn() as conn:
            conn.execute("INSERT INTO api_keys (key_hash, key_id, company_id, tier) VALUES (%s, %s, %s, %s)",
                         (hash_key(key), "k_" + secrets.token_hex(6), company_id, tier))
        return key

    def revoke_key(self, key_id: str) -> KeyRecord | None:
        """Delete the key with this id; its record, or None when there is none."""
        with self._conn() as conn:
            row = conn.execute("DELETE FROM api_keys WHERE key_id = %s RETURNING company_id, tier, key_id",
                               (key_id,)).fetchone()
        return KeyRecord(*row) if row else None

    def discard_unfinished_uploads(self, pid: int | None = None) -> int:
        """Nothing to do: an upload into PostgreSQL is one transaction, so a dead worker's upload rolled back."""
        return 0

    def close(self) -> None:
        self._pool.close()
