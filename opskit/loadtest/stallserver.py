"""A tiny HTTP/1.1 server on loopback that stalls on a known schedule, and the analytic truth to
check a load generator against (facts.md, Load testing).

Every `period_s` seconds (from the server's start) it stalls for `stall_s`: a request arriving in a
stall is answered at the stall's end plus `service_s`; any other request after `service_s`. Under a
constant arrival rate, timed from each request's intended start, the latency of an arrival at phase
p of the cycle is service_s + max(0, stall_s - p), so P(latency > x) = (stall_s + service_s - x) /
period_s for service_s < x < stall_s + service_s. With stall 2 s every 10 s and 10 ms service that
gives p90 = 1.01 s, p95 = 1.51 s, p99 = 1.91 s. A closed-model generator sees ~10 ms.

`python -m opskit.loadtest.stallserver --stall 0` is also the fast target of the benchmark.

With `slots` set it is a server of known capacity instead (the capacity probe's test target): at most
`slots` requests are served at once, each for `service_s`, the rest wait in arrival order, so it completes
exactly slots / service_s req/s and its queue grows past that.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
             b"Connection: keep-alive\r\n\r\nok")


@dataclass(frozen=True)
class StallSchedule:
    period_s: float = 10.0
    stall_s: float = 2.0
    service_s: float = 0.010

    def delay(self, t: float) -> float:
        """How long a request arriving t seconds after the server started waits for its answer."""
        if self.stall_s <= 0:
            return self.service_s
        phase = t % self.period_s
        return self.service_s + (self.stall_s - phase if phase < self.stall_s else 0.0)

    def analytic_percentile_ms(self, q: float) -> float:
        """The q-th percentile (0-100) of latency under a constant arrival rate over whole cycles."""
        tail = 1.0 - q / 100.0
        stalled = self.stall_s / self.period_s if self.stall_s > 0 else 0.0
        if tail >= stalled:
            return self.service_s * 1000.0
        return (self.stall_s + self.service_s - tail * self.period_s) * 1000.0


class _Protocol(asyncio.Protocol):
    def __init__(self, server: StallServer) -> None:
        self.server = server
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:  # requests without bodies are all we serve
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.server.requests += 1
            if self.server.slots:
                self.server.admit(self._reply)
                continue
            delay = self.server.schedule.delay(time.monotonic() - self.server.t0)
            loop = asyncio.get_running_loop()
            if delay <= 0:
                self._reply()
            else:
                loop.call_later(delay, self._reply)

    def _reply(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_RESPONSE)


class StallServer:
    """Runs in a background thread: `with StallServer(schedule) as s: s.url`."""

    def __init__(self, schedule: StallSchedule | None = None, host: str = "127.0.0.1", port: int = 0,
                 slots: int = 0) -> None:
        self.schedule = schedule or StallSchedule()
        self.slots = slots  # > 0: a server of known capacity, slots / schedule.service_s req/s
        self._busy = 0
        self._waiting: deque[Callable[[], None]] = deque()
        self.host, self.port = host, port
        self.requests = 0
        self.connections = 0
        self.t0 = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def capacity_rps(self) -> float | None:
        return self.slots / self.schedule.service_s if self.slots else None

    def admit(self, reply: Callable[[], None]) -> None:
        """Serve in a free slot for service_s, or wait in arrival order for one."""
        if self._busy < self.slots:
            self._busy += 1
            asyncio.get_running_loop().call_later(self.schedule.service_s, self._release, reply)
        else:
            self._waiting.append(reply)

    def _release(self, reply: Callable[[], None]) -> None:
        reply()
        if self._waiting:  # the slot passes straight to the next in line
            asyncio.get_running_loop().call_later(self.schedule.service_s, self._release, self._waiting.popleft())
        else:
            self._busy -= 1

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _factory(self) -> _Protocol:
        self.connections += 1
        return _Protocol(self)

    def _serve(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        server = loop.run_until_complete(loop.create_server(self._factory, self.host, self.port))
        self.port = server.sockets[0].getsockname()[1]
        self.t0 = time.monotonic()
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            loop.close()

    def start(self) -> StallServer:
        self._thread = threading.Thread(target=self._serve, name="stall-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("stall server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> StallServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--period", type=float, default=10.0)
    ap.add_argument("--stall", type=float, default=2.0)
    ap.add_argument("--service", type=float, default=0.010)
    ap.add_argument("--slots", type=int, default=0, help="known capacity: SLOTS / SERVICE req/s (no stalls)")
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    server = StallServer(StallSchedule(args.period, args.stall, args.service), port=args.port,
                         slots=args.slots).start()
    from opskit import output as out

    out.echo(str(server.port))  # the benchmarks read the port from the first line
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
