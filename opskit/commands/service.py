"""opskit service: run, seed and hand out keys for the reference asset service (opskit.assetsvc)."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from typing import Any

import click

from opskit import atomicio
from opskit import output as out
from opskit.commands.common import FiniteFloatRange, output_option, spec_option
from opskit.errors import ConfigError, RuntimeFailure, UsageError

DEFAULT_DB = ".opskit/assets.db"
TIERS = ("free", "pro", "enterprise", "internal")
_COMPANY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

db_option = click.option(
    "--db", "db", metavar="PATH", default=DEFAULT_DB, show_default=True, envvar="OPSKIT_SERVICE_DB",
    show_envvar=True,
    help="SQLite database file, or a postgresql://USER@HOST:PORT/DB URL (password from PGPASSWORD or "
         "PGPASSFILE); the schema is created when missing.",
)


@click.group()
def service() -> None:
    """The reference asset service: the system under test (SQLite store, N uvicorn workers)."""


@service.command()
@spec_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port; 0 picks a free one (see --ready-file).")
@db_option
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes; change it live with SIGTTIN (+1) / SIGTTOU (-1) to the supervisor.")
@click.option("--ready-file", metavar="PATH", default=None,
              help='Write {"url", "pid", "workers"} as JSON here (atomically) once serving.')
@click.option("--rate-limits", metavar="SPEC", default="",
              help="Override requests per hour per tier, e.g. 'free=100/h,pro=1000/h,internal=unlimited'.")
@click.option("--max-csv-mb", type=FiniteFloatRange(min=0, min_open=True), default=100.0, show_default=True,
              help="Largest CSV upload in MiB; 413 beyond.")
@click.option("--max-json-mb", type=FiniteFloatRange(min=0, min_open=True), default=10.0, show_default=True,
              help="Largest JSON upload in MiB; 413 beyond.")
@click.option("--graceful-timeout", type=FiniteFloatRange(min=0), default=30.0, show_default=True,
              help="Seconds a stopping worker may take to finish its requests.")
@click.option("--page-cache/--no-page-cache", default=True, show_default=True,
              help="Keep list pages in each worker until the store changes (benchmarks turn it off).")
@click.option("--label-company", is_flag=True,
              help="Label asset_operations_total by company_id (one series per tenant: cardinality hazard).")
@click.option("--page-cache-mb", type=FiniteFloatRange(min=0), default=64.0, show_default=True,
              help="Most MiB of list pages each worker keeps (oldest dropped first).")
@click.option("--body-timeout", type=FiniteFloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds to wait for the next bytes of a request body; 408 and rollback beyond.")
@click.option("--max-uploads", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Uploads in progress per worker; more wait for a slot (--upload-queue).")
@click.option("--upload-queue", type=click.IntRange(0, 10_000), default=64, show_default=True,
              help="Uploads per worker that may wait for a slot; 503 with Retry-After at once beyond.")
@click.option("--upload-queue-wait", type=FiniteFloatRange(min=0), default=10.0, show_default=True,
              help="Longest wait for an upload slot in seconds; 503 with Retry-After beyond (0: no queue).")
@click.option("--key-cache-ttl", type=FiniteFloatRange(min=0), default=5.0, show_default=True,
              help="Seconds a worker trusts a cached API key: a revoked key is refused within it.")
@click.option("--keep-alive-timeout", type=click.IntRange(1, 3600), default=75, show_default=True,
              help="Seconds an idle keep-alive connection stays open (nginx's default; users think for seconds).")
@click.option("--cache", "cache", metavar="URL", default="", envvar="OPSKIT_SERVICE_CACHE", show_envvar=True,
              help="Redis URL (redis://HOST:PORT/DB, password from REDIS_PASSWORD): company pages (300 s) and "
                   "stats (3600 s) cached there, and tier rate limits shared by every worker and instance. "
                   "Redis down: served from the store with local limits.")
def run(spec_file: str | None, host: str, port: int, db: str, workers: int, ready_file: str | None,
        rate_limits: str, max_csv_mb: float, max_json_mb: float, graceful_timeout: float,
        page_cache: bool, label_company: bool, page_cache_mb: float, body_timeout: float, max_uploads: int,
        upload_queue: int, upload_queue_wait: float, key_cache_ttl: float, keep_alive_timeout: int,
        cache: str) -> None:
    """Serve the asset API in the foreground until SIGTERM/Ctrl-C (which drain and stop)."""
    import json
    import os

    from opskit.assetsvc.config import MB, ServiceConfig, parse_rate_limits
    from opskit.assetsvc.stores import db_arg, store_errors
    from opskit.assetsvc.supervisor import Supervisor, SupervisorError

    try:
        limits = parse_rate_limits(rate_limits)
    except ValueError as exc:
        raise UsageError(f"--rate-limits: {exc}") from None
    _check_cache(cache)
    config = ServiceConfig(
        db_path=db_arg(db), max_csv_bytes=int(max_csv_mb * MB), max_json_bytes=int(max_json_mb * MB),
        rate_limits=limits, buckets=_buckets(spec_file), label_company=label_company,
        page_cache=page_cache, page_cache_bytes=int(page_cache_mb * MB), body_timeout_s=body_timeout,
        max_uploads=max_uploads, upload_queue=upload_queue, upload_queue_wait_s=upload_queue_wait,
        key_cache_ttl_s=key_cache_ttl, keep_alive_s=keep_alive_timeout,
        cache_url=cache,
    )

    def ready(url: str, count: int) -> None:
        if ready_file:  # first, so whoever reads the line below finds the file
            atomicio.write_atomic(ready_file, json.dumps({"url": url, "pid": os.getpid(), "workers": count}))
        out.echo(f"listening on {url} ({count} workers)")  # a fixed form: scripts and tests parse it

    supervisor = Supervisor(config, host=host, port=port, workers=workers, graceful_timeout_s=graceful_timeout,
                            on_ready=ready, on_event=lambda text: out.echo(f"opskit service: {text}", err=True))
    try:
        supervisor.run()
    except store_errors() as exc:
        raise ConfigError(f"--db {db}: cannot open the database: {' '.join(str(exc).split())}") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    except SupervisorError as exc:
        raise RuntimeFailure(str(exc)) from None
    finally:
        if ready_file:
            with contextlib.suppress(OSError):  # it describes a running service; that service is gone
                os.unlink(ready_file)
    out.echo("stopped", err=True)


def _check_cache(url: str) -> None:
    """--cache: a Redis URL, its password never on the command line (argv is readable by every user)."""
    if not url:
        return
    from click.core import ParameterSource

    from opskit.assetsvc.cache import PASSWORD_ENV, check_url, has_password

    try:
        check_url(url)
    except ValueError as exc:
        raise UsageError(f"--cache: {exc}") from None
    source = click.get_current_context().get_parameter_source("cache")
    if has_password(url) and source == ParameterSource.COMMANDLINE:
        raise UsageError(f"--cache: a password on the command line is visible to every user: remove it from "
                         f"the URL and set {PASSWORD_ENV} (or pass the URL in OPSKIT_SERVICE_CACHE)")


def _buckets(spec_file: str | None) -> tuple[float, ...]:
    """Histogram bounds in seconds from the spec's service.latency_buckets_ms (when there is a spec)."""
    from opskit.assetsvc.config import DEFAULT_BUCKETS
    from opskit.spec import load_spec, spec_path

    path = spec_path(spec_file)
    if spec_file is None and not path.exists():
        return DEFAULT_BUCKETS
    spec = load_spec(path)
    return tuple(ms / 1000.0 for ms in spec.service.latency_buckets_ms)


@service.command()
@spec_option
@click.option("--assets", "count", type=click.IntRange(min=0), required=True, help="How many assets to add.")
@db_option
@click.option("--companies", type=click.IntRange(min=1), default=10, show_default=True,
              help="Spread them over company-1 .. company-K (create keys for those companies).")
@output_option("table", "json")
def seed(spec_file: str | None, count: int, db: str, companies: int, output: str) -> None:
    """Add realistic assets (street addresses around 16 US cities), fast: 1M in about 15 s."""
    from opskit.assetsvc import seed as seeding
    from opskit.assetsvc.stores import open_storage

    start = time.perf_counter()
    storage = _open(db, open_storage)
    try:
        added = storage.seed(seeding.assets(count, companies))
        total, size = storage.totals()
    finally:
        storage.close()
    elapsed = time.perf_counter() - start
    result = {"db": db, "added": added, "total": total, "bytes": size, "companies": seeding.company_ids(companies),
              "elapsed_s": round(elapsed, 3)}
    if output == "json":
        out.emit_json(result)
    else:
        out.echo(f"seeded {added:,} assets over {companies} companies in {elapsed:.1f}s "
                 f"({total:,} stored, {size / 1e6:.0f} MB) -> {db}")


@service.group()
def keys() -> None:
    """API keys (each belongs to one company and one rate-limit tier)."""


@keys.command("create")
@spec_option
@click.option("--company", required=True, help="Company id the key acts for.")
@click.option("--tier", type=click.Choice(TIERS), default="free", show_default=True,
              help="Rate-limit tier; internal is unlimited (load tests).")
@db_option
@output_option("table", "json")
def keys_create(spec_file: str | None, company: str, tier: str, db: str, output: str) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from opskit.assetsvc.stores import open_storage

    if not _COMPANY_RE.match(company):
        raise UsageError(f"--company {company!r}: use 1-100 letters, digits, '.', '_' or '-'")
    storage = _open(db, open_storage)
    try:
        key = storage.create_key(company, tier)
        found = storage.lookup_key(key)
    finally:
        storage.close()
    key_id = found.key_id if found is not None else ""  # not secret: what `keys revoke` takes
    if output == "json":
        out.emit_json({"key": key, "company_id": company, "tier": tier, "key_id": key_id})
    else:
        out.table(["key", "company_id", "tier", "key_id"], [[key, company, tier, key_id]])


@keys.command("revoke")
@click.argument("key_id", metavar="KEY_ID")
@db_option
def keys_revoke(key_id: str, db: str) -> None:
    """Revoke a key by its id (k_..., shown by `keys create`), or '-' to read the key itself from stdin
    (a key is a secret: never on the command line). Running workers refuse it within their key cache TTL
    (`service run --key-cache-ttl`, 5 s by default)."""
    from opskit.assetsvc.sqlite import SQLiteStorage

    if key_id.startswith("ak_"):
        raise UsageError("KEY_ID: that is a key, not a key id; pass '-' and the key on stdin "
                         "(keys never go on the command line)")
    storage = _open(db, SQLiteStorage)
    try:
        if key_id == "-":
            secret = sys.stdin.readline().strip()
            found = storage.lookup_key(secret) if secret else None
            if found is None:
                raise UsageError("the key read from stdin is not a key of this store")
            key_id = found.key_id
        record = storage.revoke_key(key_id)
    finally:
        storage.close()
    if record is None:
        raise UsageError(f"KEY_ID {key_id!r}: no key with that id in {db}")
    out.echo(f"revoked key {record.key_id} of {record.company_id} ({record.tier}); running workers refuse it "
             "within their key cache TTL (5 s by default)")


def _open(db: str, factory: Any) -> Any:
    from opskit.assetsvc.stores import store_errors

    errors: tuple[type[BaseException], ...] = (*store_errors(), OSError)
    try:
        return factory(db)
    except errors as exc:
        raise ConfigError(f"--db {db}: cannot open the database: {' '.join(str(exc).split())}") from None
