"""The ASGI app: routes, auth, tenant scoping, rate limits, metrics. Storage is behind the Storage protocol."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opskit.assetsvc.config import ServiceConfig
from opskit.assetsvc.errors import ApiError
from opskit.assetsvc.metrics import Metrics, read_int_file
from opskit.assetsvc.pagecache import PageCache
from opskit.assetsvc.params import decode_cursor, encode_cursor, parse_id, parse_json, parse_limit
from opskit.assetsvc.ratelimit import Decision
from opskit.assetsvc.sharedlimit import open_limiter
from opskit.assetsvc.storage import KeyRecord, Storage
from opskit.assetsvc.upload_http import body_chunks, handle_upload
from opskit.assetsvc.validation import FieldError, validate_object

log = logging.getLogger("assetsvc")

T = TypeVar("T")
OPERATIONS = {
    ("GET", "/api/assets"): "list", ("GET", "/api/assets/{id}"): "get", ("POST", "/api/assets"): "create",
    ("POST", "/api/assets/upload"): "upload", ("DELETE", "/api/assets/delete"): "delete",
    ("GET", "/api/companies/{id}/stats"): "stats",
}
JSON = "application/json"


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
        # pages as ready-to-send bytes; dropped whenever the store changed (PRAGMA data_version), so every
        # worker sees every write without any coordination
        self.pages = PageCache(config.page_cache_bytes)
        self._totals: tuple[float, tuple[int, int]] = (0.0, (0, 0))
        # SQLite has one writer at a time anyway: one thread (one warm connection) per worker does the
        # small writes, off the event loop, so a write waiting for the lock never stalls reads
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writes")
        # one bounded pool per class of slow work, so none can take the threads another needs: stalled
        # uploads used to fill the shared default pool and hang /metrics and company stats
        self.uploads = ThreadPoolExecutor(max_workers=config.max_uploads, thread_name_prefix="uploads")
        self.upload_slots = config.max_uploads
        self.stats_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="stats")
        self.metrics_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="metrics")

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, fn, *args)

    def authenticate(self, request: Request) -> KeyRecord:
        header = request.headers.get("authorization", "")
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
            request.scope["ratelimit"] = decision  # Observe puts the X-RateLimit-* headers on the answer
            if not decision.allowed:
                raise ApiError(
                    429, f"rate limit of the {record.tier} tier ({decision.limit} requests per hour) exceeded",
                    headers={"Retry-After": str(decision.retry_after_s)},
                )
        request.scope["company_id"] = record.company_id
        return record

    def fresh(self) -> None:
        if self.storage.changed():
            self.pages.clear()

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
        q = request.query_params
        limit = parse_limit(q.get("limit"))
        after = decode_cursor(q["cursor"]) if q.get("cursor") else 0
        svc.fresh()
        cache_key = (record.company_id, after, limit)
        body = svc.pages.get(cache_key) if config.page_cache else None
        if body is None:
            data, last = storage.list_json(record.company_id, after, limit)
            cursor = json.dumps(encode_cursor(last) if last is not None else None)
            body = f'{{"data":{data},"next_cursor":{cursor}}}'.encode()
            if config.page_cache:
                svc.pages.put(cache_key, body)
        return Response(body, media_type=JSON)

    async def get_asset(request: Request) -> Response:
        record = svc.authenticate(request)
        raw = request.path_params["id"]
        asset_id = parse_id(raw)
        found = storage.get_json(record.company_id, asset_id) if asset_id is not None else None
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
        created = await svc.write(storage.create, record.company_id, rows)
        return _json(created if isinstance(payload, list) else created[0], 201)

    async def upload(request: Request) -> Response:
        record = svc.authenticate(request)
        if svc.upload_slots <= 0:  # each upload holds a thread until its body ends: refuse, do not queue
            raise ApiError(503, f"{config.max_uploads} uploads are in progress on this worker; retry",
                           headers={"Retry-After": "1"})
        svc.upload_slots -= 1
        try:
            return _json(await handle_upload(request, record.company_id, storage, config, svc.metrics, svc.uploads))
        finally:
            svc.upload_slots += 1

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
        body: dict[str, Any] = {
            "status": "ok", "workers": read_int_file(config.workers_file, 1),
            "supervisor_pid": config.supervisor_pid, "worker_pid": os.getpid(),
            "storage": getattr(storage, "kind", "sqlite"),
        }
        try:
            storage.check()
        except sqlite3.Error as exc:
            body.update(status="error", error=f"storage: {exc}")
            return _json(body, 503)
        return _json(body)

    async def ready(request: Request) -> Response:
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

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        # set by the worker when it stops: every answer then says "Connection: close", so keep-alive
        # clients move to the other workers after their next request instead of finding a closed socket
        self.draining = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
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
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.observe_request(method, template, status, time.perf_counter() - start)
            op = OPERATIONS.get((method, template))
            if op is not None:
                outcome = "success" if status < 400 else ("error" if status >= 500 else "client_error")
                self.metrics.operation(op, outcome, scope.get("company_id", ""))


def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse({"error": exc.message, **exc.extra}, status_code=exc.status, headers=exc.headers)


def _busy(request: Request, exc: Exception) -> Response:
    # a long upload holds the write lock; a writer that waited out busy_timeout gets a retryable answer
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return JSONResponse({"error": "the store is busy, retry"}, status_code=503, headers={"Retry-After": "1"})
    log.error("storage error: %s", exc)
    return JSONResponse({"error": "storage error"}, status_code=500)


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
    handlers.update(error_handlers())  # PostgreSQL's, when that store is installed
    app = Starlette(routes=build_routes(svc), exception_handlers=handlers)
    return Observe(app, metrics)
