"""Merging what every generator process recorded (pure: payloads in, results sections out).

Per-endpoint and per-step histograms are merged as payloads arrive (HDR merges are exact and
order-independent); the per-second aggregate histogram is kept only until the second settles,
then reduced to a timeline row, so memory stays flat on long runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opskit.loadtest import hdr
from opskit.runmodel import Worker


@dataclass(frozen=True)
class StepWindow:
    index: int
    name: str
    start_s: float
    duration_s: float
    rate: float | None  # intended arrivals/s (open model; the peak rate of a ramp)
    users: int | None  # closed model


@dataclass
class _Totals:
    hist: Any = field(default_factory=hdr.new)  # successful requests only
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    failed: Any = field(default_factory=hdr.new)  # the failures' latencies, kept apart

    @property
    def requests(self) -> int:
        return int(self.hist.get_total_count()) + self.errors

    def add(self, hist: Any, errors: int, kinds: dict[str, int], failed: Any = None) -> None:
        self.hist.add(hist)
        if failed is not None:
            self.failed.add(failed)
        self.errors += errors
        for k, v in kinds.items():
            self.kinds[k] = self.kinds.get(k, 0) + v


@dataclass
class _Open:
    hist: Any = field(default_factory=hdr.new)
    errors: int = 0
    scheduled: int = 0
    dropped: int = 0
    in_flight: int = 0
    lag_max_ms: float = 0.0
    endpoints: dict[str, list[Any]] = field(default_factory=dict)  # name -> [requests, errors, histogram]


SETTLE_S = 8  # a second is final once every process has reported past it (they report every second)


class Aggregator:
    def __init__(self, steps: Sequence[StepWindow]) -> None:
        self.steps = list(steps)
        self.endpoints: dict[str, _Totals] = {}
        self.step_totals = [_Totals() for _ in self.steps]
        self.step_scheduled = [0 for _ in self.steps]
        self.step_dropped = [0 for _ in self.steps]
        self._open: dict[int, _Open] = {}
        self.rows: dict[int, dict[str, Any]] = {}
        self.endpoint_rows: dict[str, dict[int, dict[str, Any]]] = {}
        self.cpu: dict[str, list[tuple[float, float]]] = {}
        self.finals: set[str] = set()
        self.procs: set[str] = set()
        self.workers: dict[str, Worker] = {}  # proc -> the process that sent its payloads
        self.scheduled = 0
        self.dropped = 0
        self.lag_max_ms = 0.0
        self.task_errors = 0
        self.latest_t = -1

    def step_of(self, t: int) -> int:
        for step in self.steps:
            if step.start_s <= t < step.start_s + step.duration_s:
                return step.index
        if not self.steps:
            return 0
        return self.steps[-1].index if t >= self.steps[-1].start_s else self.steps[0].index

    def ingest(self, payload: dict[str, Any]) -> None:
        proc = str(payload.get("proc", "0"))
        self.procs.add(proc)
        who = payload.get("worker")
        if isinstance(who, dict) and proc not in self.workers:
            self.workers[proc] = Worker(proc, str(who.get("id")), str(who.get("host")), int(who.get("pid") or 0))
        for t_s, pct in payload.get("cpu", []):
            self.cpu.setdefault(proc, []).append((float(t_s), float(pct)))
        self.task_errors += int(payload.get("task_errors", 0))
        for sec in payload.get("seconds", []):
            self._ingest_second(sec)
        if payload.get("final"):
            self.finals.add(proc)
        self.settle(self.latest_t - SETTLE_S)

    def _ingest_second(self, sec: dict[str, Any]) -> None:
        t = int(sec["t"])
        self.latest_t = max(self.latest_t, t)
        step = self.step_of(t)
        row = self._open.get(t)
        if row is None:
            row = self._open[t] = _Open()
            late = self.rows.pop(t, None)  # a straggler for a settled second: reopen it (counts stay exact)
            if late is not None:
                row.errors, row.scheduled, row.dropped = late["errors"], late["scheduled"], late["dropped"]
                row.in_flight = late["in_flight"]
                if late.get("_hist"):
                    row.hist.add(hdr.decode(late["_hist"]))
        for name, ep in sec.get("endpoints", {}).items():
            hist = hdr.decode(ep["h"])
            failed = hdr.decode(ep["fh"]) if ep.get("fh") else None
            errors, kinds = int(ep.get("errors", 0)), dict(ep.get("kinds", {}))
            self.endpoints.setdefault(name, _Totals()).add(hist, errors, kinds, failed)
            if self.step_totals:
                self.step_totals[step].add(hist, errors, kinds, failed)
            row.hist.add(hist)
            row.errors += errors
            counts = row.endpoints.get(name)
            if counts is None:
                counts = row.endpoints[name] = [0, 0, hdr.new()]
            counts[0] += hist.get_total_count() + errors
            counts[1] += errors
            counts[2].add(hist)
        scheduled, dropped = int(sec.get("scheduled", 0)), int(sec.get("dropped", 0))
        row.scheduled += scheduled
        row.dropped += dropped
        row.in_flight += int(sec.get("in_flight", 0))
        row.lag_max_ms = max(row.lag_max_ms, float(sec.get("lag_max_ms", 0.0)))
        self.scheduled += scheduled
        self.dropped += dropped
        self.lag_max_ms = max(self.lag_max_ms, row.lag_max_ms)
        if self.step_totals:
            self.step_scheduled[step] += scheduled
            self.step_dropped[step] += dropped

    def settle(self, upto: int | None = None) -> None:
        """Reduce open seconds <= upto (all when None) to timeline rows."""
        for t in sorted(self._open):
            if upto is not None and t > upto:
                break
            row = self._open.pop(t)
            requests = row.hist.get_total_count() + row.errors  # the percentiles are of the successes
            self.rows[t] = {
                "t": t, "requests": requests, "errors": row.errors, "rps": float(requests),
                "p50": hdr.quantile_ms(row.hist, 50), "p95": hdr.quantile_ms(row.hist, 95),
                "p99": hdr.quantile_ms(row.hist, 99), "in_flight": row.in_flight,
                "scheduled": row.scheduled, "dropped": row.dropped,
                "lag_max_ms": round(row.lag_max_ms, 3), "step": self.step_of(t),
                # kept so a straggler payload can still merge exactly
                "_hist": hdr.encode(row.hist) if row.hist.get_total_count() else None,
            }
            for name, (n, e, h) in row.endpoints.items():
                rows = self.endpoint_rows.setdefault(name, {})
                if t in rows:  # a straggler: counts stay exact, the percentiles are the first report's
                    rows[t]["requests"] += n
                    rows[t]["errors"] += e
                    rows[t]["rps"] = float(rows[t]["requests"])
                    continue
                p50, p95, p99 = hdr.values_at(h, [50, 95, 99]) if h.get_total_count() else (None, None, None)
                rows[t] = {
                    "t": t, "requests": n, "errors": e, "rps": float(n),
                    "p50": _ms(p50), "p95": _ms(p95), "p99": _ms(p99)}

    # ---- views -------------------------------------------------------------------------------

    def totals(self) -> tuple[int, int]:
        requests = sum(e.requests for e in self.endpoints.values())
        return requests, sum(e.errors for e in self.endpoints.values())

    def aggregate_hist(self) -> Any:
        return hdr.merged(e.hist for e in self.endpoints.values())

    def aggregate_failed(self) -> Any:
        return hdr.merged(e.failed for e in self.endpoints.values())

    def timeline(self) -> list[dict[str, Any]]:
        self.settle()
        return [{k: v for k, v in self.rows[t].items() if not k.startswith("_")} for t in sorted(self.rows)]

    def live_row(self) -> LiveRow:
        """The last second that is probably complete (the newest may still be filling)."""
        for t in (self.latest_t - 1, self.latest_t):
            row = self._open.get(t)
            if row is not None:
                return LiveRow(float(row.hist.get_total_count() + row.errors), hdr.quantile_ms(row.hist, 50),
                               hdr.quantile_ms(row.hist, 95), hdr.quantile_ms(row.hist, 99), row.in_flight, row.errors)
            if t in self.rows:
                r = self.rows[t]
                return LiveRow(r["rps"], r["p50"], r["p95"], r["p99"], r["in_flight"], r["errors"])
        return LiveRow()

    def in_flight_now(self) -> int:
        """Most requests in flight (summed over processes) in the last second that is probably complete."""
        for t in (self.latest_t - 1, self.latest_t):
            row = self._open.get(t)
            if row is not None:
                return row.in_flight
            if t in self.rows:
                return int(self.rows[t]["in_flight"])
        return 0

    def latest_cpu(self) -> dict[str, float]:
        return {proc: samples[-1][1] for proc, samples in sorted(self.cpu.items()) if samples}

    def cpu_samples(self) -> Iterable[tuple[str, list[float]]]:
        for proc, samples in sorted(self.cpu.items()):
            yield proc, [pct for _, pct in sorted(samples)]


def _ms(us: int | None) -> float | None:
    return None if us is None else round(us / 1000.0, 3)


@dataclass(frozen=True)
class LiveRow:
    """The figures of the progress line (in this order on the wire)."""

    rps: float = 0.0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    in_flight: int = 0
    second_errors: int = 0


def stats_block(hist: Any, errors: int, kinds: dict[str, int], duration_s: float,
                failed: Any = None) -> dict[str, Any]:
    """hist: the successful requests' latencies; failed: the failures' (their own block, like k6's
    expected_response: a refused connection answers in a millisecond and must not pull p50 down)."""
    requests = hist.get_total_count() + errors
    return {
        "requests": requests,
        "failures": errors,
        "failures_by_kind": dict(sorted(kinds.items())),
        "rps": round(requests / duration_s, 3) if duration_s > 0 else 0.0,
        "error_rate": round(errors / requests, 6) if requests else 0.0,
        "latency_ms": hdr.summary(hist),
        "failure_latency_ms": hdr.summary(failed if failed is not None else hdr.new()),
    }
