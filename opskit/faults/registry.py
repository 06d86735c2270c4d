"""Every fault in force, so one call clears them all: the run's end, Ctrl-C, an error and a timeout all
go through clear_all() (the session holds the registry in its ExitStack)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Protocol, runtime_checkable

log = logging.getLogger("opskit.faults")


class Injector(Protocol):
    kind: str

    def inject(self) -> str:
        """Start the fault; returns one line saying what was done."""
        ...

    def clear(self) -> None:
        """End the fault; safe to call when it is half started or already ended."""
        ...


@runtime_checkable
class Holds(Protocol):
    """An injector that says how much it really took once inject() returned (memory-pressure: the bytes
    resident), beside the plan its detail names."""

    held_bytes: int | None


class Registry:
    def __init__(self) -> None:
        self._active: list[Injector] = []

    @property
    def active(self) -> tuple[Injector, ...]:
        return tuple(self._active)

    def inject(self, injector: Injector) -> str:
        self._active.append(injector)  # first: a fault that breaks half way is still cleared
        return injector.inject()

    def clear(self, injector: Injector) -> None:
        if injector in self._active:
            injector.clear()  # first: a clear cut short stays in force, for clear_all to finish
            self._active.remove(injector)

    def clear_all(self) -> list[str]:
        """Clear every fault in force, newest first; a clear that fails does not stop the others. Returns
        what could not be cleared."""
        problems = []
        while self._active:
            injector = self._active.pop()
            try:
                injector.clear()
            except Exception as exc:  # the others must still be cleared
                log.error("clearing %s failed: %s", injector.kind, exc)
                problems.append(f"{injector.kind}: {exc}")
        return problems

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.clear_all()
