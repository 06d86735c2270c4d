"""The load test's reporter (loadtest.host.Reporter) for the terminal: live progress on stderr, a rich
panel on a terminal, one plain line every few seconds otherwise (CI logs). stdout stays free for the final
report (--output json)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.loadtest.driver import ProgressReport


def _ms(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.1f}ms"


def line(r: ProgressReport) -> str:
    elapsed, duration = r.elapsed, r.duration
    remaining = max(duration - elapsed, 0.0)
    return (f"[{elapsed:5.0f}s / {duration:.0f}s, {remaining:.0f}s left] step {r.step or '-'}: "
            f"{r.rps:.0f} req/s  p50 {_ms(r.p50)}  p95 {_ms(r.p95)}  "
            f"p99 {_ms(r.p99)}  requests {r.requests}  errors {r.errors}  "
            f"in flight {r.in_flight}  dropped {r.dropped}")


class Progress:
    def __init__(self, title: str, *, tty: bool | None = None, every_s: float = 5.0) -> None:
        self.title = title
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.every_s = every_s
        self._last = 0.0
        self._live: Any = None

    def __enter__(self) -> Progress:
        if self.tty:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=True)
            self._live.__enter__()
            self._live.update(f"{self.title}: starting")
        else:
            sys.stderr.write(f"{self.title}: starting\n")
            sys.stderr.flush()
        return self

    def update(self, msg: ProgressReport) -> None:
        if self._live is not None:
            self._live.update(self._panel(msg))
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            sys.stderr.write(line(msg) + "\n")
            sys.stderr.flush()

    def note(self, text: str) -> None:
        if self._live is not None:
            self._live.console.print(text)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def _panel(self, msg: ProgressReport) -> Any:
        from rich.panel import Panel
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        t = Table.grid(padding=(0, 2))
        elapsed, duration = msg.elapsed, msg.duration or 1.0
        t.add_row(ProgressBar(total=duration, completed=min(elapsed, duration), width=40),
                  f"{elapsed:.0f}s / {duration:.0f}s ({max(duration - elapsed, 0):.0f}s left)")
        t.add_row("step", str(msg.step or "-"))
        t.add_row("req/s", f"{msg.rps:.0f}")
        t.add_row("p50 / p95 / p99", f"{_ms(msg.p50)} / {_ms(msg.p95)} / {_ms(msg.p99)}")
        t.add_row("requests / errors", f"{msg.requests} / {msg.errors}")
        t.add_row("in flight / dropped", f"{msg.in_flight} / {msg.dropped}")
        return Panel(t, title=self.title)

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
