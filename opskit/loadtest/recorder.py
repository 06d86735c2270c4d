"""Per-process recording: HDR histograms per endpoint per second of the run (successful requests, and
failed ones apart: a refused connection's 1 ms is not the service's latency), plus the generator's
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
    # raw microsecond values, bucketed into an HDR histogram once per second (hdr.record_many_us):
    # a list append is the only per-request work, where a histogram update is ~1.5 us of Python
    values: list[int] = field(default_factory=list)  # successful requests
    failed: list[int] = field(default_factory=list)  # failures are timed apart (k6's expected_response)
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


@dataclass
class _Second:
    t: int
    endpoints: dict[str, _EndpointSecond] = field(default_factory=dict)
    scheduled: int = 0
    dropped: int = 0
    in_flight_max: int = 0
    lag_s_max: float = 0.0


class Recorder:
    def __init__(self, t0: float) -> None:
        self._cur = _Second(0)
        self._closed: list[_Second] = []
        self.t0 = t0  # (sets roll_at)
        self.in_flight = 0
        self.requests = 0  # running totals, for progress lines without decoding anything
        self.errors = 0
        self.dropped = 0

    @property
    def t0(self) -> float:
        return self._t0

    @t0.setter
    def t0(self, value: float) -> None:
        self._t0 = value
        self.roll_at = value + self._cur.t + 1  # when the open second is over (the hot paths compare only this)

    def _second(self, now: float) -> _Second:
        cur = self._cur
        if now < self.roll_at:  # the common case; also a late record from before a roll stays in the open second
            return cur
        sec = int(now - self._t0)
        self._closed.append(cur)
        cur = self._cur = _Second(sec, in_flight_max=self.in_flight)
        self.roll_at = self._t0 + sec + 1
        return cur

    def record(self, endpoint: str, ms: float, kind: str | None, now: float) -> None:
        sec = self._cur if now < self.roll_at else self._second(now)
        ep = sec.endpoints.get(endpoint)
        if ep is None:
            ep = sec.endpoints[endpoint] = _EndpointSecond()
        self.requests += 1
        if kind is None:
            ep.values.append(int(ms * 1000.0))
        else:
            ep.failed.append(int(ms * 1000.0))
            ep.errors += 1
            ep.kinds[kind] = ep.kinds.get(kind, 0) + 1
            self.errors += 1

    def arrival(self, now: float, lag_s: float) -> bool:
        """One arrival of the open model at `now`, lag_s after its intended start: True when it may be
        sent (and is counted in flight), False when max_in_flight requests are already out (dropped)."""
        sec = self._cur if now < self.roll_at else self._second(now)
        sec.scheduled += 1
        if lag_s > sec.lag_s_max:
            sec.lag_s_max = lag_s
        if self.in_flight >= self.cap:
            sec.dropped += 1
            self.dropped += 1
            return False
        n = self.in_flight = self.in_flight + 1
        if n > sec.in_flight_max:
            sec.in_flight_max = n
        return True

    cap = 1 << 62  # the open model's in-flight cap (set by the driver)

    def scheduled(self, now: float, *, dropped: bool, lag_s: float) -> None:
        sec = self._second(now)
        sec.scheduled += 1
        if dropped:
            sec.dropped += 1
            self.dropped += 1
        if lag_s > sec.lag_s_max:
            sec.lag_s_max = lag_s

    def loop_lag(self, now: float, lag_s: float) -> None:
        """The generator's loop woke lag_s late (closed model: its lag probe)."""
        sec = self._second(now)
        if lag_s > sec.lag_s_max:
            sec.lag_s_max = lag_s

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
            name: {"h": hdr.encode(hdr.from_us(ep.values)), "errors": ep.errors, "kinds": ep.kinds,
                   **({"fh": hdr.encode(hdr.from_us(ep.failed))} if ep.failed else {})}
            for name, ep in s.endpoints.items()
        },
        "scheduled": s.scheduled,
        "dropped": s.dropped,
        "in_flight": s.in_flight_max,
        "lag_max_ms": round(s.lag_s_max * 1000.0, 3),
    }
