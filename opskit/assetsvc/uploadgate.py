"""The per-worker upload limit: `slots` uploads in progress, up to `queue` more waiting for one (first come,
first served) for at most `wait_s`; beyond either bound an upload is refused with a Retry-After estimate.

Refusing at once (the earlier behaviour) left a freed slot idle until some client's retry arrived, and
Retry-After is whole seconds: 100 x 1 MB uploads at once took 11-25 s at p95 to succeed. A waiting upload
costs no thread and reads none of its body (the server stops reading the socket after a few KiB), so a
queue of dozens is cheap; the wait bound keeps clients and balancers from timing out on a stuck worker.
A slot that frees goes straight to the oldest waiter, so a newcomer never overtakes the queue.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable
from types import TracebackType

# the estimate of how long an upload holds its slot, before any has finished (then a moving average)
FIRST_ESTIMATE_S = 1.0
MAX_RETRY_AFTER_S = 60


class UploadsBusy(Exception):
    """No slot: `reason` is "queue_full" (refused at once) or "wait_timeout" (no slot within wait_s)."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class UploadGate:
    def __init__(self, slots: int, queue: int, wait_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.slots = slots
        self.queue = queue
        self.wait_s = wait_s
        self.free = slots
        self._clock = clock
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._held_s = FIRST_ESTIMATE_S

    @property
    def waiting(self) -> int:
        return len(self._waiters)  # a waiter leaves the deque when it gets its slot, gives up or is cancelled

    @property
    def in_progress(self) -> int:
        return self.slots - self.free

    def retry_after(self) -> int:
        """Whole seconds until the uploads ahead of a new one should have cleared, from how long uploads
        have held their slots lately: a retry sooner would most likely be refused again."""
        ahead = self.waiting + 1
        return max(1, min(MAX_RETRY_AFTER_S, math.ceil(self._held_s * ahead / self.slots)))

    async def enter(self) -> Slot:
        """A slot (use it as a context manager: leaving it frees the slot); UploadsBusy when none comes."""
        await self._acquire()
        return Slot(self)

    async def _acquire(self) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        if self.waiting >= self.queue or self.wait_s <= 0:
            raise UploadsBusy("queue_full", self.retry_after())
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(turn)
        try:
            # asyncio.wait leaves `turn` alone on timeout: a slot handed over meanwhile is still seen below
            await asyncio.wait([turn], timeout=self.wait_s)
        except BaseException:  # cancelled while waiting: give back a slot handed over in the meantime
            self._leave(turn)
            raise
        if not turn.done():
            self._leave(turn)
            raise UploadsBusy("wait_timeout", self.retry_after())

    def _leave(self, turn: asyncio.Future[None]) -> None:
        if turn.done() and not turn.cancelled():
            self._release(None)
            return
        turn.cancel()
        with contextlib.suppress(ValueError):
            self._waiters.remove(turn)

    def _release(self, held_s: float | None) -> None:
        if held_s is not None:
            self._held_s = 0.8 * self._held_s + 0.2 * held_s
        while self._waiters:
            turn = self._waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes on without ever being free
                return
        self.free += 1


class Slot:
    def __init__(self, gate: UploadGate) -> None:
        self._gate = gate
        self._started = gate._clock()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._gate._release(self._gate._clock() - self._started)
