"""The ASGI app: routes, auth, tenant scoping, rate limits, metrics. Storage is behind the Storage protocol."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opskit.assetsvc.batcher import WriteBatcher
from opskit.assetsvc.config import ServiceConfig
from opskit.assetsvc.errors import ApiError
from opskit.assetsvc.metrics import Metrics, read_int_file
from opskit.assetsvc.pagecache import PageCache
from opskit.assetsvc.params import decode_cursor, encode_cursor, parse_id, parse_json, parse_limit
from opskit.assetsvc.ratelimit import Decision
from opskit.assetsvc.sharedlimit import open_limiter
from opskit.assetsvc.storage import KeyRecord, Storage
from opskit.assetsvc.upload_http import body_chunks, handle_upload
from opskit.assetsvc.uploadgate import UploadGate, UploadsBusy
from opskit.assetsvc.validation import FieldError, validate_object

log = logging.getLogger("assetsvc")

T = TypeVar("T")
OPERATIONS = {
    ("GET", "/api/assets"): "list", ("GET", "/api/assets/{id}"): "get", ("POST", "/api/assets"): "create",
    ("POST", "/api/assets/upload"): "upload", ("DELETE", "/api/assets/delete"): "delete",
    ("GET", "/api/companies/{id}/stats"): "stats",
}
JSON = "application/json"
HEALTH_TTL_S = 1.0  # a worker checks the store for /health (a query) at most this often
# a GET on one of these exact paths skips Starlette's router, middleware and Request/Response objects
# (a third of a cached list request's cost); answers, errors, headers and metrics stay the same
FastRoute = Callable[[Scope], tuple[int, bytes]]
_JSON_HEADER = (b"content-type", JSON.encode())
READ_THREADS = 16  # per worker, PostgreSQL only; the connection pool (postgres.POOL_MAX) bounds the queries
READ_QUEUE_S = 2.0  # PostgreSQL: longest a read or write waits for its thread before it is answered 503


def _page(data: str, last: int | None) -> bytes:
    cursor = json.dumps(encode_cursor(last) if last is not None else None)
    return f'{{"data":{data},"next_cursor":{cursor}}}'.encode()


class Service:
    """Per-worker state: the store, caches of keys and pages, the rate limiter, metrics."""

    def __init__(self, config: ServiceConfig, storage: Storage, metrics: Metrics) -> None:
        self.config = config
        self.storage = storage
        self.metrics = metrics
        self.limiter = open_limiter(config)  # the run's local limiter, or Redis' shared one with --cache
        # key -> (record, monotonic time it must be read again): a revoked key is refused by every worker
        # within key_cache_ttl_s, at one indexed lookup per key and TTL rather than one per request
        self.keys: dict[str, tuple[KeyRecord, float]] = {}
        # pages as ready-to-send bytes; a company's are dropped when the store says its assets changed (any
        # process's commit: SQLite's company_changes), everyone's when the store cannot say whose
        self.pages = PageCache(config.page_cache_bytes)
        self._totals: tuple[float, tuple[int, int]] = (0.0, (0, 0))
        self._store_check: tuple[float, str | None] = (float("-inf"), None)  # (when, error) of the last check
        # raw query string -> (limit, after): wrk, dashboards and pagers ask for the same few pages
        self._queries: dict[bytes, tuple[int, int]] = {}
        # SQLite has one writer at a time anyway: one thread (one warm connection) per worker does the
        # small writes, off the event loop, so a write waiting for the lock never stalls reads
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writes")
        # one bounded pool per class of slow work, so none can take the threads another needs: stalled
        # uploads used to fill the shared default pool and hang /metrics and company stats
        self.uploads = ThreadPoolExecutor(max_workers=config.max_uploads, thread_name_prefix="uploads")
        self.upload_gate = UploadGate(config.max_uploads, config.upload_queue, config.upload_queue_wait_s)
        self.stats_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stats")
        self.metrics_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")
        # PostgreSQL reads go over the network: in threads, so a slow database (a latency spike) slows the
        # requests that wait for it, not the whole event loop; SQLite reads stay inline (microseconds)
        self.read_pool = (ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="reads")
                          if getattr(storage, "kind", "sqlite") == "postgresql" else None)
        # PostgreSQL: concurrent creates share one transaction and commit (batcher.py); SQLite's one writer
        # thread commits each on its own, as fast (no network round trip, no flush wait of another process)
        self.batcher = (WriteBatcher(storage.create_many, self._writer)
                        if self.read_pool is not None and hasattr(storage, "create_many") else None)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if self.read_pool is not None:
            return await self._bounded(self._writer, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        if self.read_pool is None:
            return fn(*args)
        return await self._bounded(self.read_pool, fn, *args)

    async def _bounded(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        deadline = time.monotonic() + READ_QUEUE_S

        def run() -> T:  # work that waited too long for its thread is answered 503 (never started), not queued on
            if time.monotonic() > deadline:
                raise ApiError(503, "the database is slow to answer, retry", headers={"Retry-After": "1"})
            return fn(*args)

        return await asyncio.get_running_loop().run_in_executor(pool, run)

    def authenticate(self, request: Request) -> KeyRecord:
        return self.authenticate_scope(request.scope)

    def authenticate_scope(self, scope: Scope) -> KeyRecord:
        header = ""
        for name, value in scope["headers"]:  # what Request.headers.get does, without building Headers
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer KEY'",
                           headers={"WWW-Authenticate": "Bearer"})
        key = key.strip()
        cached = self.keys.get(key)
        if cached is None or cached[1] < time.monotonic():
            record = self.storage.lookup_key(key)
            if record is None:
                self.keys.pop(key, None)
                raise ApiError(401, "invalid API key", headers={"WWW-Authenticate": "Bearer"})
            if len(self.keys) > 10_000:
                self.keys.clear()
            self.keys[key] = (record, time.monotonic() + self.config.key_cache_ttl_s)
        else:
            record = cached[0]
        decision = self.limiter.check(record.key_id, record.tier, time.time())
        if decision is not None:
            scope["ratelimit"] = decision  # Observe puts the X-RateLimit-* headers on the answer
            if not decision.allowed:
                raise ApiError(
                    429, f"rate limit of the {record.tier} tier ({decision.limit} requests per hour) exceeded",
                    headers={"Retry-After": str(decision.retry_after_s)},
                )
        scope["company_id"] = record.company_id
        return record

    def list_page(self, company_id: str, query_string: bytes) -> bytes:
        """GET /api/assets: the page as bytes, from the page cache when the store has not changed."""
        limit, after = self._parsed(query_string)
        self.fresh()
        cache_key = (company_id, after, limit)
        body = self.pages.get(cache_key) if self.config.page_cache else None
        if body is None:
            body = _page(*self.storage.list_json(company_id, after, limit))
            if self.config.page_cache:
                self.pages.put(cache_key, body)
        return body

    async def list_page_threaded(self, company_id: str, query_string: bytes) -> bytes:
        """The same page with the store's calls in the read threads (PostgreSQL: a slow database must not
        stall the event loop); the page cache is used on the loop only."""
        limit, after = self._parsed(query_string)
        changed = await self.read(self.storage.changed)
        if changed:
            self._forget(changed)
        cache_key = (company_id, after, limit)
        body = self.pages.get(cache_key) if self.config.page_cache else None
        if body is None:
            body = _page(*await self.read(self.storage.list_json, company_id, after, limit))
            if self.config.page_cache:
                self.pages.put(cache_key, body)
        return body

    def _parsed(self, query_string: bytes) -> tuple[int, int]:
        parsed = self._queries.get(query_string)
        if parsed is None:
            q = QueryParams(query_string)
            parsed = (parse_limit(q.get("limit")), decode_cursor(q["cursor"]) if q.get("cursor") else 0)
            if len(self._queries) > 10_000:
                self._queries.clear()
            self._queries[query_string] = parsed  # only what parsed: a bad query raises again every time
        return parsed

    def health(self) -> tuple[int, bytes]:
        """The /health answer. The worker count is read on every call (a playbook scaling the service waits
        on it and must never see a stale one); the store's check, a query, runs at most every HEALTH_TTL_S
        per worker: probes come every few seconds, but a crowd of balancers must not pay a query each time."""
        now = time.monotonic()
        at, error = self._store_check
        if now - at >= HEALTH_TTL_S:
            try:
                self.storage.check()
                error = None
            except Exception as exc:  # any failure of the store's own check is "not healthy"
                error = f"storage: {exc}"
            self._store_check = (now, error)
        body: dict[str, Any] = {
            "status": "ok", "workers": read_int_file(self.config.workers_file, 1),
            "supervisor_pid": self.config.supervisor_pid, "worker_pid": os.getpid(),
            "storage": getattr(self.storage, "kind", "sqlite"),
        }
        if error is not None:
            body.update(status="error", error=error)
        return (200 if error is None else 503), json.dumps(body, separators=(",", ":")).encode()

    def fresh(self) -> None:
        changed = self.storage.changed()
        if changed:
            self._forget(changed)

    def _forget(self, changed: bool | frozenset[str]) -> None:
        if changed is True:
            self.pages.clear()
        elif changed:
            self.pages.drop(changed)

    def totals(self) -> tuple[int, int]:
        at, value = self._totals
        if time.monotonic() - at > 5.0:  # count(*) over millions of rows: not on every scrape
            value = self.storage.totals()
            self._totals = (time.monotonic(), value)
        return value


def _rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [(b"x-ratelimit-limit", str(decision.limit).encode()),
            (b"x-ratelimit-remaining", str(decision.remaining).encode()),
            (b"x-ratelimit-reset", str(decision.reset_s).encode())]


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type=JSON)


async def read_json(request: Request, limit: int, timeout_s: float) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != JSON:
        raise ApiError(415, f"expected Content-Type: application/json, got {ctype or '(none)'!r}")
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is larger than the limit of {limit} bytes")
    body = bytearray()
    async for chunk in body_chunks(request, timeout_s):
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the body is larger than the limit of {limit} bytes")
    return parse_json(bytes(body))


def build_routes(svc: Service) -> list[Route]:
    storage, config = svc.storage, svc.config

    async def list_assets(request: Request) -> Response:
        record = svc.authenticate(request)
        if svc.read_pool is None:
            return Response(svc.list_page(record.company_id, request.scope["query_string"]), media_type=JSON)
        body = await svc.list_page_threaded(record.company_id, request.scope["query_string"])
        return Response(body, media_type=JSON)

    async def get_asset(request: Request) -> Response:
        record = svc.authenticate(request)
        raw = request.path_params["id"]
        asset_id = parse_id(raw)
        found = await svc.read(storage.get_json, record.company_id, asset_id) if asset_id is not None else None
        if found is None:  # another company's asset is indistinguishable from a missing one
            raise ApiError(404, f"asset {raw[:40]!r} not found")
        return Response(found, media_type=JSON)

    async def create_assets(request: Request) -> Response:
        record = svc.authenticate(request)
        payload = await read_json(request, config.max_body_bytes, config.body_timeout_s)
        items = payload if isinstance(payload, list) else [payload]
        if not items:
            raise ApiError(400, "the array is empty: send at least one asset")
        if len(items) > config.max_batch:
            raise ApiError(413, f"at most {config.max_batch} assets per request; use /api/assets/upload for files")
        rows, errors = [], []
        for i, item in enumerate(items):
            try:
                rows.append(validate_object(item, record.company_id))
            except FieldError as exc:
                errors.append({"index": i, "field": exc.field, "error": exc.message})
        if errors:
            where = f"asset {errors[0]['index']}: " if isinstance(payload, list) else ""
            raise ApiError(422, f"{where}{errors[0]['field']}: {errors[0]['error']}", extra={"errors": errors[:100]})
        created = await (svc.batcher.create(record.company_id, rows) if svc.batcher is not None
                         else svc.write(storage.create, record.company_id, rows))
        return _json(created if isinstance(payload, list) else created[0], 201)

    async def upload(request: Request) -> Response:
        record = svc.authenticate(request)
        gate, m = svc.upload_gate, svc.metrics
        try:  # each upload holds a thread until its body ends: a bounded number run, a bounded queue waits
            with m.uploads_waiting.track_inprogress():
                slot = await gate.enter()
        except UploadsBusy as busy:
            m.uploads_refused.labels(busy.reason).inc()
            why = ("the most it queues" if busy.reason == "queue_full"
                   else f"none freed a slot within {config.upload_queue_wait_s:g} s")
            raise ApiError(503, f"{gate.in_progress} uploads are in progress on this worker and {gate.waiting} "
                                f"waiting ({why}); retry", headers={"Retry-After": str(busy.retry_after_s)}) from None
        with slot, m.uploads_in_progress.track_inprogress():
            return _json(await handle_upload(request, record.company_id, storage, config, svc.metrics, svc.uploads))

    async def delete_assets(request: Request) -> Response:
        record = svc.authenticate(request)
        payload = await read_json(request, config.max_body_bytes, config.body_timeout_s)
        if not isinstance(payload, dict) or "ids" not in payload:
            raise ApiError(400, 'expected a JSON object {"ids": [...]}')
        unknown = sorted(set(payload) - {"ids"})
        if unknown:
            raise ApiError(400, f"unknown field {unknown[0]!r} (expected 'ids')")
        ids = payload["ids"]
        if not isinstance(ids, list):
            raise ApiError(422, "ids: expected an array of asset ids")
        if len(ids) > config.max_batch:
            raise ApiError(400, f"ids: at most {config.max_batch} ids per request, got {len(ids)}")
        for i, v in enumerate(ids):
            if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 2**63:
                raise ApiError(422, f"ids[{i}]: expected a positive integer id, got {json.dumps(v)[:40]}")
        deleted = await svc.write(storage.delete, record.company_id, ids)
        return _json({"deleted": deleted})

    async def company_stats(request: Request) -> Response:
        record = svc.authenticate(request)
        if request.path_params["id"] != record.company_id:
            raise ApiError(404, f"company {request.path_params['id'][:100]!r} not found")
        # counting a big tenant's rows takes tens of ms: in a thread, not on the event loop
        stats = await asyncio.get_running_loop().run_in_executor(svc.stats_pool, storage.stats, record.company_id)
        return _json(stats.__dict__)

    async def health(request: Request) -> Response:
        status, body = svc.health()
        return Response(body, status_code=status, media_type=JSON)

    async def ready(request: Request) -> Response:
        # ready means able to serve: false (503) while the store cannot answer, e.g. PostgreSQL is down
        from opskit.assetsvc.stores import store_errors

        try:
            await asyncio.get_running_loop().run_in_executor(svc.stats_pool, storage.check)
        except store_errors():
            return _json({"ready": False, "worker_pid": os.getpid(), "error": "the store is unavailable"}, 503)
        return _json({"ready": True, "worker_pid": os.getpid()})

    async def metrics(request: Request) -> Response:
        text = await asyncio.get_running_loop().run_in_executor(svc.metrics_pool, svc.metrics.render, svc.totals)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    return [
        Route("/api/assets", list_assets, methods=["GET"]),
        Route("/api/assets", create_assets, methods=["POST"]),
        Route("/api/assets/upload", upload, methods=["POST"]),
        Route("/api/assets/delete", delete_assets, methods=["DELETE"]),
        Route("/api/assets/{id}", get_asset, methods=["GET"]),
        Route("/api/companies/{id}/stats", company_stats, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


class Observe:
    """Pure ASGI middleware (BaseHTTPMiddleware costs a task per request): times every request, labels it
    with the route template, counts asset operations, and turns any escaped exception into a JSON 500
    so one bad request never takes the worker's other requests with it."""

    def __init__(self, app: ASGIApp, metrics: Metrics, fast: dict[str, FastRoute] | None = None,
                 errors: Mapping[Any, Callable[..., Any]] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.fast = fast or {}
        self.errors = dict(errors or {})  # the store's own exception handlers (PostgreSQL's 503s)
        # set by the worker when it stops: every answer then says "Connection: close", so keep-alive
        # clients move to the other workers after their next request instead of finding a closed socket
        self.draining = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET":
            route = self.fast.get(scope["path"])
            if route is not None:
                await self._fast(route, scope, send)
                return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                rate = scope.get("ratelimit")
                if rate is not None or self.draining:
                    extra = _rate_headers(rate) if rate is not None else []
                    if self.draining:
                        extra.append((b"connection", b"close"))
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not started:
                await JSONResponse({"error": "internal error"}, status_code=500)(scope, receive, send)
            status = 500
        finally:
            route = scope.get("route")
            self._count(scope, getattr(route, "path", None) or "unmatched", status, start)

    async def _fast(self, route: FastRoute, scope: Scope, send: Send) -> None:
        start = time.perf_counter()
        status = 500
        try:
            try:
                status, body = route(scope)
                headers = [(b"content-length", str(len(body)).encode()), _JSON_HEADER]
            except Exception as exc:  # the answers Starlette's exception handlers give on the slow path
                error = _error_response(exc, self.errors)
                if error is None:
                    log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                    error = JSONResponse({"error": "internal error"}, status_code=500)
                status, body, headers = error.status_code, bytes(error.body), error.raw_headers
            rate = scope.get("ratelimit")
            if rate is not None:
                headers += _rate_headers(rate)
            if self.draining:
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
        finally:
            self._count(scope, scope["path"], status, start)

    def _count(self, scope: Scope, template: str, status: int, start: float) -> None:
        method = scope["method"]
        self.metrics.observe_request(method, template, status, time.perf_counter() - start)
        op = OPERATIONS.get((method, template))
        if op is not None:
            outcome = "success" if status < 400 else ("error" if status >= 500 else "client_error")
            self.metrics.operation(op, outcome, scope.get("company_id", ""))


def _api_error(request: Request | None, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message, **exc.extra}, status_code=exc.status, headers=exc.headers)


def _busy(request: Request | None, exc: Exception) -> Response:
    # a long upload holds the write lock; a writer that waited out busy_timeout gets a retryable answer
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return JSONResponse({"error": "the store is busy, retry"}, status_code=503, headers={"Retry-After": "1"})
    log.error("storage error: %s", exc)
    return JSONResponse({"error": "storage error"}, status_code=500)


def _error_response(exc: Exception, errors: Mapping[Any, Callable[..., Any]]) -> Response | None:
    if isinstance(exc, ApiError):
        return _api_error(None, exc)
    if isinstance(exc, sqlite3.Error):
        return _busy(None, exc)
    handler = next((h for typ, h in errors.items() if isinstance(exc, typ)), None)
    return handler(None, exc) if handler is not None else None


def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "error")
    return JSONResponse({"error": detail}, status_code=status, headers=getattr(exc, "headers", None))


def create_app(config: ServiceConfig, storage: Storage, metrics: Metrics) -> Observe:
    from starlette.exceptions import HTTPException

    from opskit.assetsvc.stores import error_handlers

    svc = Service(config, storage, metrics)
    handlers: dict[Any, Callable[[Request, Exception], Response | Awaitable[Response]]] = {
        ApiError: _api_error, sqlite3.Error: _busy, HTTPException: _http_error,
    }
    store_errors = error_handlers()  # PostgreSQL's, when that store is installed
    handlers.update(store_errors)
    app = Starlette(routes=build_routes(svc), exception_handlers=handlers)

    def list_assets(scope: Scope) -> tuple[int, bytes]:
        return 200, svc.list_page(svc.authenticate_scope(scope).company_id, scope["query_string"])

    fast: dict[str, FastRoute] = {"/health": lambda scope: svc.health()}
    if svc.read_pool is None:  # SQLite reads are microseconds, inline; PostgreSQL's go through read threads
        fast["/api/assets"] = list_assets
    return Observe(app, metrics, fast, store_errors)
