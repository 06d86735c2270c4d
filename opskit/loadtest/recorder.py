"""Per-process recording: one HDR histogram per endpoint per second of the run, plus the generator's
own counters (scheduled, dropped, in flight, scheduling lag). Closed seconds are drained as plain,
JSON-able payloads (histograms encoded) that the aggregator merges exactly across processes.

No clock of its own: callers pass `now` (seconds on the same monotonic clock as `t0`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opskit.loadtest import hdr


@dataclass
class _EndpointSecond:
    hist: Any
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class _Second:
    t: int
    endpoints: dict[str, _EndpointSecond] = field(default_factory=dict)
    scheduled: int = 0
    dropped: int = 0
    in_flight_max: int = 0
    lag_max_ms: float = 0.0


class Recorder:
    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self._cur = _Second(0)
        self._closed: list[_Second] = []
        self.in_flight = 0
        self.requests = 0  # running totals, for progress lines without decoding anything
        self.errors = 0
        self.dropped = 0

    def _second(self, now: float) -> _Second:
        sec = int(now - self.t0) if now > self.t0 else 0
        cur = self._cur
        if sec != cur.t:
            if sec < cur.t:  # a late record from a greenlet scheduled before a roll: keep it in the open second
                return cur
            self._closed.append(cur)
            cur = self._cur = _Second(sec, in_flight_max=self.in_flight)
        return cur

    def record(self, endpoint: str, ms: float, kind: str | None, now: float) -> None:
        sec = self._second(now)
        ep = sec.endpoints.get(endpoint)
        if ep is None:
            ep = sec.endpoints[endpoint] = _EndpointSecond(hdr.new())
        hdr.record_ms(ep.hist, ms)
        self.requests += 1
        if kind is not None:
            ep.errors += 1
            ep.kinds[kind] = ep.kinds.get(kind, 0) + 1
            self.errors += 1

    def scheduled(self, now: float, *, dropped: bool, lag_s: float) -> None:
        sec = self._second(now)
        sec.scheduled += 1
        if dropped:
            sec.dropped += 1
            self.dropped += 1
        lag_ms = lag_s * 1000.0
        if lag_ms > sec.lag_max_ms:
            sec.lag_max_ms = lag_ms

    def started(self, now: float) -> None:
        self.in_flight += 1
        sec = self._second(now)
        if self.in_flight > sec.in_flight_max:
            sec.in_flight_max = self.in_flight

    def set_in_flight(self, n: int, now: float) -> None:
        """A gauge set from outside (the closed model's user count), not one request starting."""
        self.in_flight = n
        sec = self._second(now)
        if n > sec.in_flight_max:
            sec.in_flight_max = n

    def finished(self) -> None:
        self.in_flight -= 1

    def drain(self, now: float, *, final: bool = False) -> list[dict[str, Any]]:
        """Payloads of every second that is over (all of them when final)."""
        self._second(now)
        done, self._closed = self._closed, []
        if final:
            done.append(self._cur)
            self._cur = _Second(self._cur.t + 1)
        return [_payload(s) for s in done if s.endpoints or s.scheduled or s.dropped or s.in_flight_max]


def _payload(s: _Second) -> dict[str, Any]:
    return {
        "t": s.t,
        "endpoints": {
            name: {"h": hdr.encode(ep.hist), "errors": ep.errors, "kinds": ep.kinds}
            for name, ep in s.endpoints.items()
        },
        "scheduled": s.scheduled,
        "dropped": s.dropped,
        "in_flight": s.in_flight_max,
        "lag_max_ms": round(s.lag_max_ms, 3),
    }
