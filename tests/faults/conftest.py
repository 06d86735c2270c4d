"""One real stack per module (PostgreSQL, Redis, exporters), started by opskit's own code and stopped by
pid at the end; helpers that watch the stack from outside while a fault scenario runs."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from opskit.stack import config as cfg
from opskit.stack import runtime


def needs_stack() -> str | None:
    missing = [b for b in ("redis-server", "stress-ng", *cfg.EXPORTER_BINARIES.values()) if shutil.which(b) is None]
    if not os.access(Path(cfg.PG_BINDIR) / "postgres", os.X_OK):
        missing.append("postgresql-15")
    return f"stack packages missing ({', '.join(missing)}): run scripts/setup.sh" if missing else None


@pytest.fixture(scope="module")
def stack_dir() -> Iterator[Path]:
    reason = needs_stack()
    if reason:
        pytest.skip(reason)
    state_dir = Path(tempfile.mkdtemp(prefix="opskit-faults-test-"))
    os.chmod(state_dir, 0o711)  # the stack's unprivileged user must reach it
    try:
        runtime.up(state_dir)
        yield state_dir
    finally:
        runtime.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@dataclass
class Watch:
    """Calls probe() every `every` seconds in a thread while the test runs a scenario; keeps (t, value)."""

    probe: Callable[[], object]
    every: float = 0.1
    seen: list[tuple[float, object]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watch:
        def loop() -> None:
            while not self._stop.is_set():
                self.seen.append((time.monotonic(), self.probe()))
                self._stop.wait(self.every)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(10)

    def values(self) -> list[object]:
        return [v for _, v in self.seen]
