"""Which store a `--db` names: a postgresql:// URL is PostgreSQL, anything else a SQLite file (the
embedded default). The one place that knows both, so the app, the workers and the CLI stay store-blind."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import Any

from opskit.assetsvc.postgres import is_postgres_url
from opskit.assetsvc.storage import Storage


def open_storage(db: str, cache_url: str = "", run_dir: str = "") -> Storage:
    """The store `db` names; with a cache URL, behind seed 000's Redis cache (cache.py), whose workers
    tell each other about writes through a file in `run_dir`."""
    store: Storage
    if is_postgres_url(db):
        from opskit.assetsvc.postgres import PostgresStorage

        store = PostgresStorage(db)
    else:
        from opskit.assetsvc.sqlite import SQLiteStorage

        store = SQLiteStorage(db)
    if cache_url:
        from opskit.assetsvc.cache import CachedStorage, link_for

        return CachedStorage(store, link_for(cache_url), run_dir)
    return store


def db_arg(db: str) -> str:
    """What the workers get: a URL as given, a file as an absolute path."""
    return db if is_postgres_url(db) else os.path.abspath(db)


def store_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the store cannot answer" for either store (psycopg only when installed)."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        return (sqlite3.Error,)
    return (sqlite3.Error, psycopg.Error, psycopg_pool.PoolTimeout)


def error_handlers() -> dict[Any, Callable[..., Any]]:
    """Starlette handlers for PostgreSQL errors: a database that is down or saturated is a 503 the client
    may retry (Retry-After), never a traceback; SQLite's own handler stays in app.py."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        return {}
    from starlette.responses import JSONResponse

    def unavailable(request: Any, exc: Exception) -> Any:
        return JSONResponse({"error": "the database is unavailable, retry"}, status_code=503,
                            headers={"Retry-After": "1"})

    def failed(request: Any, exc: Exception) -> Any:
        import logging

        logging.getLogger("opskit.assetsvc").error("storage error: %s", exc)
        return JSONResponse({"error": "storage error"}, status_code=500)

    return {psycopg.OperationalError: unavailable, psycopg_pool.PoolTimeout: unavailable, psycopg.Error: failed}
