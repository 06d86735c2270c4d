"""POST /api/assets/upload: the request body is streamed into the upload parser running in a thread.

The event loop reads the body and hands chunks over a bounded queue; the thread parses, validates and
writes batches in one transaction. Memory stays at a few chunks plus one batch. Exceeding the size
limit, a client that goes away or an unparseable file roll the whole upload back.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from starlette.requests import Request

from opskit.assetsvc.config import ServiceConfig
from opskit.assetsvc.errors import ApiError
from opskit.assetsvc.metrics import Metrics, size_bucket
from opskit.assetsvc.storage import Storage
from opskit.assetsvc.upload import PipelinedWriter, UploadError, UploadResult, parse_csv, parse_json

_EOF = object()
_ABORT = object()
CSV_TYPES = {"text/csv", "application/csv", "text/plain"}
JSON_TYPES = {"application/json"}


class _Aborted(Exception):
    pass


def file_type_of(content_type: str, filename: str = "") -> str | None:
    mime = content_type.split(";")[0].strip().lower()
    if mime in CSV_TYPES or (mime in ("", "application/octet-stream") and filename.lower().endswith(".csv")):
        return "csv"
    if mime in JSON_TYPES or (mime in ("", "application/octet-stream") and filename.lower().endswith(".json")):
        return "json"
    return None


class _Pipe:
    """Chunks from the event loop to the parser thread, at most `depth` in flight. A full pipe's feeder
    waits until the parser takes a chunk and wakes it (it used to poll every 2 ms: with a few uploads
    whose client sends faster than the parser reads, thousands of wake-ups a second on the event loop
    that serves every other request)."""

    def __init__(self, depth: int = 16) -> None:
        self.q: queue.Queue[object] = queue.Queue(depth)
        self._loop = asyncio.get_running_loop()
        self._space: asyncio.Future[None] | None = None  # set while the feeder waits for room

    async def put(self, item: object, consumer: asyncio.Future[Any]) -> bool:
        while True:
            try:
                self.q.put_nowait(item)
                return True
            except queue.Full:
                if consumer.done():  # the parser stopped early (a bad file): stop feeding it
                    return False
            space = self._space = self._loop.create_future()
            try:
                # once more after announcing the wait: a chunk taken before the parser could see it is room
                self.q.put_nowait(item)
                return True
            except queue.Full:
                await asyncio.wait([consumer, space], return_when=asyncio.FIRST_COMPLETED)
            finally:
                self._space = None

    def _took(self) -> None:
        space = self._space
        if space is not None:  # read once: the loop may clear it meanwhile, and then needs no wake-up
            self._loop.call_soon_threadsafe(_wake, space)

    def chunks(self) -> Iterator[bytes]:
        while True:
            item = self.q.get()
            self._took()
            if item is _EOF:
                return
            if item is _ABORT:
                raise _Aborted
            yield item  # type: ignore[misc]


def _wake(space: asyncio.Future[None]) -> None:
    if not space.done():
        space.set_result(None)


def _run_parser(storage: Storage, company_id: str, file_type: str, chunks: Iterator[bytes]) -> UploadResult:
    writer = PipelinedWriter(storage.bulk(company_id))
    try:
        parse = parse_csv if file_type == "csv" else parse_json
        result = parse(chunks, company_id, writer)
    except BaseException:
        writer.rollback()
        raise
    writer.commit()
    return result


class _Upload:
    def __init__(self, storage: Storage, company_id: str, file_type: str, limit: int, pool: Executor) -> None:
        self.pipe = _Pipe()
        self.file_type = file_type
        self.limit = limit
        self.size = 0
        loop = asyncio.get_running_loop()
        self.future = loop.run_in_executor(pool, _run_parser, storage, company_id, file_type, self.pipe.chunks())

    async def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            await self.abort()
            raise ApiError(413, f"the {self.file_type.upper()} file is larger than the limit of {self.limit} bytes")
        await self.pipe.put(data, self.future)

    async def abort(self) -> None:
        await self.pipe.put(_ABORT, self.future)
        with contextlib.suppress(BaseException):  # the parser's own error does not matter once we abort
            await self.future

    async def finish(self) -> UploadResult:
        await self.pipe.put(_EOF, self.future)
        try:
            return await self.future
        except UploadError as exc:
            raise ApiError(400, str(exc)) from None


async def handle_upload(request: Request, company_id: str, storage: Storage, config: ServiceConfig,
                        metrics: Metrics, pool: Executor) -> dict[str, object]:
    started = time.perf_counter()
    content_type = request.headers.get("content-type", "")
    limits = {"csv": config.max_csv_bytes, "json": config.max_json_bytes}
    declared = request.headers.get("content-length")
    if content_type.lower().startswith("multipart/form-data"):
        upload = await _multipart(request, content_type, config.body_timeout_s,
                                  lambda ft: _Upload(storage, company_id, ft, limits[ft], pool))
    else:
        file_type = file_type_of(content_type)
        if file_type is None:
            raise ApiError(415, f"unsupported content type {content_type or '(none)'!r}: send text/csv, "
                                "application/json or a multipart/form-data 'file'")
        if declared and declared.isascii() and declared.isdigit() and int(declared) > limits[file_type]:
            raise ApiError(413, f"the {file_type.upper()} file is larger than the limit of {limits[file_type]} bytes")
        upload = _Upload(storage, company_id, file_type, limits[file_type], pool)
        try:
            async for chunk in body_chunks(request, config.body_timeout_s):
                await upload.feed(chunk)
        except BaseException:
            await upload.abort()
            raise
    result = await upload.finish()
    elapsed = time.perf_counter() - started
    metrics.file_processing.labels(upload.file_type, size_bucket(upload.size)).observe(elapsed)
    metrics.upload_rows.labels(upload.file_type, "inserted").inc(result.inserted)
    metrics.upload_rows.labels(upload.file_type, "rejected").inc(result.rejected)
    return {"inserted": result.inserted, "rejected": result.rejected, "errors": result.errors,
            "file_type": upload.file_type, "bytes": upload.size}


async def body_chunks(request: Request, timeout_s: float) -> AsyncIterator[bytes]:
    """The request body as it arrives; 408 when no bytes come for timeout_s (a stalled client would
    otherwise hold its upload slot, thread and connection for as long as it likes)."""
    receive = request.receive
    while True:
        try:
            async with asyncio.timeout(timeout_s):
                message = await receive()
        except TimeoutError:
            raise ApiError(408, f"no body bytes arrived for {timeout_s:g} s: the request timed out",
                           headers={"Connection": "close"}) from None
        if message["type"] == "http.disconnect":
            raise ApiError(400, "the client closed the connection before the body ended")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _multipart(request: Request, content_type: str, timeout_s: float,
                     start: Callable[[str], _Upload]) -> _Upload:
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart/form-data without a boundary")
    state: dict[str, Any] = {"headers": {}, "field": b"", "value": b"", "in_file": False, "done": False}
    pending: list[bytes] = []
    upload: _Upload | None = None

    def on_part_begin() -> None:
        state["headers"] = {}

    def on_header_field(data: bytes, start_: int, end: int) -> None:
        state["field"] += data[start_:end]

    def on_header_value(data: bytes, start_: int, end: int) -> None:
        state["value"] += data[start_:end]

    def on_header_end() -> None:
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"].decode("latin-1")
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state["headers"].get("content-disposition", ""))
        is_file = disp.get(b"name") == b"file" and not state["done"]
        state["in_file"] = is_file
        if is_file:
            state["filename"] = disp.get(b"filename", b"").decode("utf-8", "replace")
            state["ctype"] = state["headers"].get("content-type", "")
            state["begin"] = True

    def on_part_data(data: bytes, start_: int, end: int) -> None:
        if state["in_file"]:
            pending.append(data[start_:end])

    def on_part_end() -> None:
        if state["in_file"]:
            state["in_file"] = False
            state["done"] = True
            state["end"] = True

    parser = MultipartParser(boundary, callbacks={
        "on_part_begin": on_part_begin, "on_header_field": on_header_field, "on_header_value": on_header_value,
        "on_header_end": on_header_end, "on_headers_finished": on_headers_finished,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    })
    try:
        async for chunk in body_chunks(request, timeout_s):
            try:
                parser.write(chunk)
            except Exception as exc:  # python-multipart raises its own errors for malformed bodies
                raise ApiError(400, f"malformed multipart body: {exc}") from None
            if state.pop("begin", False):
                file_type = file_type_of(state["ctype"], state["filename"])
                if file_type is None:
                    raise ApiError(415, f"the uploaded file {state['filename']!r} is neither CSV nor JSON "
                                        "(name it .csv/.json or give its content type)")
                upload = start(file_type)
            if pending and upload is not None:
                data = b"".join(pending)
                pending.clear()
                await upload.feed(data)
            if state.get("end"):
                break  # the rest of the body holds no file
        try:
            parser.finalize()
        except Exception as exc:
            if not state["done"]:
                raise ApiError(400, f"malformed multipart body: {exc}") from None
    except BaseException:
        if upload is not None:
            await upload.abort()
        raise
    if upload is None or not state["done"]:
        if upload is not None:
            await upload.abort()
        raise ApiError(400, "the multipart body has no complete 'file' part")
    return upload
