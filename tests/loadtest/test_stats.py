"""HDR recording, exact merging across processes, results assembly and generator health (pure)."""

from __future__ import annotations

import random

import pytest

from opskit.loadtest import hdr, health
from opskit.loadtest.aggregate import Aggregator, StepWindow
from opskit.loadtest.recorder import Recorder
from opskit.loadtest.results import build


def _record(rec: Recorder, samples: list[tuple[float, str, float, str | None]]) -> None:
    for now, ep, ms, kind in samples:
        rec.scheduled(now, dropped=False, lag_s=0.0)
        rec.record(ep, ms, kind, now)


def _samples(n: int, seed: int) -> list[tuple[float, str, float, str | None]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        t = 100.0 + i * 6.0 / n  # six seconds of a run whose clock starts at 100
        ep = rnd.choice(["GET /a", "POST /b"])
        out.append((t, ep, rnd.lognormvariate(2.5, 1.0), "http_500" if rnd.random() < 0.02 else None))
    return out


def test_percentiles_match_the_package_and_sorting_within_hdr_precision() -> None:
    rnd = random.Random(1)
    values = [rnd.expovariate(1 / 30) for _ in range(5000)]
    h = hdr.new()
    for v in values:
        hdr.record_ms(h, v)
    s = hdr.summary(h)
    ordered = sorted(values)
    for key, q in hdr.PERCENTILES.items():
        exact = ordered[int(q / 100 * len(ordered) + 0.5) - 1]
        assert s[key] == pytest.approx(exact, rel=0.002, abs=0.002)
        assert s[key] * 1000 == h.get_value_at_percentile(q)
    assert s["mean"] * 1000 == pytest.approx(h.get_mean_value(), abs=1)


def test_two_processes_merge_exactly_into_one() -> None:
    samples = _samples(4000, 7)
    steps = [StepWindow(0, "low", 0, 3, 10.0, None), StepWindow(1, "high", 3, 3, 20.0, None)]
    single, split = Aggregator(steps), Aggregator(steps)
    one = Recorder(100.0)
    _record(one, samples)
    single.ingest({"proc": "0", "seconds": one.drain(107.0, final=True)})
    a, b = Recorder(100.0), Recorder(100.0)
    _record(a, samples[0::2])
    _record(b, samples[1::2])
    for rec, proc in ((a, "0"), (b, "1")):
        split.ingest({"proc": proc, "seconds": rec.drain(103.5)})  # part way, then the rest
        split.ingest({"proc": proc, "seconds": rec.drain(107.0, final=True), "final": True})
    r1 = build(single, {"model": "open"}, duration_s=6.0, intended=4000, processes=1)
    r2 = build(split, {"model": "open"}, duration_s=6.0, intended=4000, processes=2)
    for key in ("aggregate", "endpoints", "timeline", "steps"):
        assert r1[key] == r2[key], key
    assert r1["aggregate"]["requests"] == 4000
    assert [s["requests"] for s in r1["steps"]] == [
        sum(1 for t, *_ in samples if t - 100 < 3), sum(1 for t, *_ in samples if t - 100 >= 3)]
    assert r1["aggregate"]["failures_by_kind"] == {"http_500": r1["aggregate"]["failures"]}
    # the shipped histograms decode to the same numbers
    assert hdr.summary(hdr.decode(r2["histograms"]["aggregate"])) == r2["aggregate"]["latency_ms"]


def test_timeline_rows_are_per_second_with_generator_counters() -> None:
    rec = Recorder(0.0)
    rec.scheduled(0.1, dropped=False, lag_s=0.002)
    rec.started(0.1)
    rec.record("GET /a", 5.0, None, 0.2)
    rec.finished()
    rec.scheduled(1.5, dropped=True, lag_s=0.0)
    agg = Aggregator([StepWindow(0, "s", 0, 2, 2.0, None)])
    agg.ingest({"proc": "0", "seconds": rec.drain(2.0, final=True)})
    rows = agg.timeline()
    assert [(r["t"], r["requests"], r["scheduled"], r["dropped"], r["in_flight"]) for r in rows] == [
        (0, 1, 1, 0, 1), (1, 0, 1, 1, 0)]
    assert rows[0]["p95"] == pytest.approx(5.0, rel=0.001)
    assert agg.dropped == 1


@pytest.mark.parametrize(("cpu", "intended", "sent", "valid", "reason"), [
    ([50, 60, 70, 60, 50, 40], 1000, 1000, True, None),
    ([95, 95, 96, 97, 99, 50], 1000, 1000, False, "saturated"),
    ([95, 50, 95, 50, 95, 50], 1000, 1000, True, None),  # spikes, not sustained
    ([40] * 6, 1000, 949, False, "missed its rate"),
    ([40] * 6, 1000, 951, True, None),
    ([40] * 6, None, 10, True, None),  # closed model: no intended rate
])
def test_generator_health(cpu: list[float], intended: int | None, sent: int, valid: bool, reason: str | None) -> None:
    h = health.assess(cpu=[("0", cpu)], duration_s=10.0, intended=intended, sent=sent)
    assert h.valid is valid
    assert (h.invalid_reason is None) if reason is None else (reason in (h.invalid_reason or ""))
    assert h.cpu_max == max(cpu)
    assert h.achieved_rate == sent / 10.0


def test_inlined_recording_is_the_packages_record_value() -> None:
    rnd = random.Random(3)
    ours, theirs = hdr.new(), hdr.new()
    for _ in range(20000):
        ms = rnd.choice([rnd.uniform(0, 0.01), rnd.expovariate(1 / 30), rnd.expovariate(1 / 30000), 5e9])
        hdr.record_ms(ours, ms)
        theirs.record_value(min(max(int(ms * 1000), hdr.LOWEST_US), hdr.HIGHEST_US))
    assert list(ours.counts) == list(theirs.counts)
    assert (ours.get_total_count(), ours.min_value, ours.max_value) == (
        theirs.get_total_count(), theirs.min_value, theirs.max_value)


def test_per_second_bucketing_is_the_packages_record_value() -> None:
    """The recorder keeps raw microseconds and buckets them once per second (hdr.from_us): the
    histogram must be the one the package builds value by value, at every bucket boundary."""
    rnd = random.Random(5)
    edges = [0, 1, 2, 1023, 1024, 2047, 2048, 4095, 4096, 10**6, 2**31 - 1, hdr.HIGHEST_US, 5 * 10**9]
    values = [rnd.choice(edges) + rnd.randint(-1, 1) for _ in range(3000)]
    values += [int(rnd.lognormvariate(7, 3)) for _ in range(20000)]
    theirs = hdr.new()
    for us in values:
        theirs.record_value(min(max(us, hdr.LOWEST_US), hdr.HIGHEST_US))
    ours = hdr.from_us(values)
    assert list(ours.counts) == list(theirs.counts)
    assert (ours.get_total_count(), ours.min_value, ours.max_value) == (
        theirs.get_total_count(), theirs.min_value, theirs.max_value)
    assert hdr.encode(ours) == hdr.encode(theirs)
    assert hdr.from_us([]).get_total_count() == 0


def test_arrivals_beyond_the_cap_are_dropped_and_counted_per_second() -> None:
    rec = Recorder(0.0)
    rec.t0 = 10.0  # the driver restarts the schedule clock after on_start: seconds count from there
    rec.cap = 2
    assert rec.arrival(10.1, 0.0005) and rec.arrival(10.2, 0.001)
    assert not rec.arrival(10.3, 0.0)  # two in flight: dropped, not queued
    rec.finished()
    assert rec.arrival(11.2, 0.003)  # a slot came free; the next second
    rec.finished()
    rec.finished()
    assert rec.arrival(13.9, 0.0)  # after an idle second
    assert (rec.in_flight, rec.dropped) == (1, 1)
    payload = rec.drain(14.5, final=True)
    assert [(s["t"], s["scheduled"], s["dropped"], s["in_flight"], s["lag_max_ms"]) for s in payload] == [
        (0, 3, 1, 2, 1.0), (1, 1, 0, 2, 3.0), (3, 1, 0, 1, 0.0), (4, 0, 0, 1, 0.0)]


def test_the_failover_kill_is_written_with_the_results() -> None:
    """The runner is results.json's one writer: the kill the CLI told it about is in the document it builds."""
    steps = [StepWindow(0, "failover", 0, 6, 10.0, None)]
    agg = Aggregator(steps)
    rec = Recorder(100.0)
    for i in range(60):
        t = 100.0 + i / 10
        rec.scheduled(t, dropped=False, lag_s=0.0)
        rec.started(t)
        rec.record("GET /a", 5.0, "http_502" if 102.0 <= t < 103.0 else None, t + 0.005)
    agg.ingest({"proc": "0", "seconds": rec.drain(106.5, final=True)})
    doc = build(agg, {"model": "open"}, duration_s=6.0, intended=60, processes=1, failover=(2.0, 4242))
    assert list(doc)[-1] == "failover"
    assert doc["failover"] == {"killed_at_s": 2.0, "errors_after_kill": 10, "recovered": True, "recovery_s": 1.0,
                               "killed_pid": 4242}
    assert "failover" not in build(agg, {"model": "open"}, duration_s=6.0, intended=60, processes=1)
