"""A fault's window on the run's clock: started when the run passes `at`, ended when it passes `clear`,
or at once when the run stops early. The driver calls tick() with each progress line's elapsed seconds.

inject() returns once the fault is in force, which can take seconds (the memory hold waits until its
bytes are resident, bounded): ramp_s is that time, so the fault is in force from injected_at_s + ramp_s.
The load does not stall meanwhile: it runs in the runner process, whose progress lines queue up."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opskit.faults.registry import Holds, Injector, Registry


@dataclass
class Window:
    injector: Injector
    at_s: float
    clear_s: float
    registry: Registry
    note: Callable[[str], None] = lambda text: None
    injected_at_s: float | None = None  # run seconds when the injection began
    cleared_at_s: float | None = None  # run seconds when the fault had ended (the clear returned)
    detail: str | None = None
    ramp_s: float | None = None  # seconds from the injection's start until the fault was in force
    held_bytes: int | None = None  # memory-pressure: bytes really resident once in force
    _last_elapsed: float = field(default=0.0, repr=False)

    def tick(self, elapsed: float) -> bool:
        """Start or end the fault when due; True when something changed (the runner must be told)."""
        self._last_elapsed = elapsed
        if self.injected_at_s is None and elapsed >= self.at_s:
            self.injected_at_s = elapsed
            started = time.monotonic()
            self.detail = self.registry.inject(self.injector)
            self.ramp_s = round(time.monotonic() - started, 3)
            if isinstance(self.injector, Holds):
                self.held_bytes = self.injector.held_bytes
            self.note(f"fault: {self.injector.kind} injected at {elapsed:.1f}s ({self.detail})")
            return True
        if self.injected_at_s is not None and self.cleared_at_s is None and elapsed >= self.clear_s:
            return self._clear(elapsed)
        return False

    def stop(self) -> bool:
        """The run is stopping: end the fault now if it is in force."""
        if self.injected_at_s is None or self.cleared_at_s is not None:
            return False
        return self._clear(self._last_elapsed)

    def _clear(self, elapsed: float) -> bool:
        started = time.monotonic()
        self.registry.clear(self.injector)
        self.cleared_at_s = round(elapsed + time.monotonic() - started, 3)
        self.note(f"fault: {self.injector.kind} cleared at {self.cleared_at_s:.1f}s")
        return True
