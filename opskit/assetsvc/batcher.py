"""Group commit for POST /api/assets on PostgreSQL: one commit for many concurrent requests of a worker.

A commit waits for its WAL flush (synchronous_commit stays on: a 201 is durable when it is sent), so one
transaction per request caps a worker at one write per round trip + flush. Here concurrent requests queue
on the event loop; one batch at a time goes to the store's writer thread: everything queued (up to
MAX_BATCH_ROWS), one transaction, one commit, then every waiting request gets its own answer. While a
batch commits the next one gathers, so batches grow with the load and no request waits on a timer.

Overload degrades cleanly: the queue holds at most MAX_QUEUED_ROWS per worker (beyond, 503 + Retry-After
at once), and a request still queued after QUEUE_WAIT_S is answered 503 without being written. A request
already in a batch that is committing always waits for that batch's outcome: it may be stored."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from opskit.assetsvc.errors import ApiError
from opskit.assetsvc.storage import CreateRequest, NewAsset, Rejected

Created = list[dict[str, object]]
Flush = Callable[[Sequence[CreateRequest]], list[Created | Rejected]]

MAX_BATCH_ROWS = 500  # rows per transaction: a batch of single-asset writes commits in a few ms
MAX_QUEUED_ROWS = 2000  # per worker: about 2 s of writes at ~1,000 rows/s, the queue wait below
QUEUE_WAIT_S = 2.0  # the longest a request waits in the queue before it is answered 503 (never written)
RETRY_AFTER = {"Retry-After": "1"}


@dataclass(eq=False)
class _Waiting:
    request: CreateRequest
    future: asyncio.Future[Created | Rejected]
    timer: asyncio.TimerHandle | None = field(default=None)
    taken: bool = field(default=False)


class WriteBatcher:
    """Per worker, on its event loop. `flush` runs in `executor` (the store's writer thread)."""

    def __init__(self, flush: Flush, executor: Executor, *, max_batch_rows: int = MAX_BATCH_ROWS,
                 max_queued_rows: int = MAX_QUEUED_ROWS, queue_wait_s: float = QUEUE_WAIT_S) -> None:
        self._flush = flush
        self._executor = executor
        self.max_batch_rows = max_batch_rows
        self.max_queued_rows = max_queued_rows
        self.queue_wait_s = queue_wait_s
        self._queue: deque[_Waiting] = deque()
        self.queued_rows = 0
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # committed batches (tests and debugging: how much was grouped)

    async def create(self, company_id: str, rows: Sequence[NewAsset]) -> Created:
        """The created assets, once committed; ApiError 422 when the store refused them, 503 when the
        queue is full or the request waited too long in it."""
        if self._queue and self.queued_rows + len(rows) > self.max_queued_rows:
            raise ApiError(503, f"{self.queued_rows} assets are waiting to be written on this worker; retry",
                           headers=RETRY_AFTER)
        loop = asyncio.get_running_loop()
        waiting = _Waiting(CreateRequest(company_id, rows), loop.create_future())
        self._queue.append(waiting)
        self.queued_rows += len(rows)
        # a timer, not wait_for: a request taken into a batch must wait for its outcome, however late
        waiting.timer = loop.call_later(self.queue_wait_s, self._expire, waiting)
        if self._task is None:
            self._task = loop.create_task(self._drain())
        try:
            outcome = await waiting.future
        except asyncio.CancelledError:  # the request was cancelled: if still queued, it is not written
            if not waiting.taken:
                self._drop(waiting)
            raise
        if isinstance(outcome, Rejected):
            raise ApiError(422, outcome.message)
        return outcome

    def _expire(self, waiting: _Waiting) -> None:
        if not waiting.taken and not waiting.future.done():
            self._drop(waiting)
            waiting.future.set_exception(
                ApiError(503, "the database is slow to take writes, retry", headers=RETRY_AFTER))

    def _drop(self, waiting: _Waiting) -> None:
        if waiting.timer is not None:
            waiting.timer.cancel()
        self._queue.remove(waiting)
        self.queued_rows -= len(waiting.request.rows)

    def _take(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0].request.rows) <= self.max_batch_rows):
            waiting = self._queue.popleft()
            waiting.taken = True
            if waiting.timer is not None:
                waiting.timer.cancel()
            rows += len(waiting.request.rows)
            batch.append(waiting)
        self.queued_rows -= rows
        return batch

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch = self._take()
                try:
                    outcomes = await loop.run_in_executor(self._executor, self._flush,
                                                          [w.request for w in batch])
                except Exception as exc:  # the database itself failed: every request of the batch hears it
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(exc)
                    continue
                self.batches += 1
                for w, outcome in zip(batch, outcomes, strict=True):
                    if not w.future.done():
                        w.future.set_result(outcome)
        finally:
            self._task = None
