"""Recommendations from a knee: hand-checked against a probe answer written out step by step."""

from __future__ import annotations

import pytest

from opskit.capacity.probe import PASS, ProbeResult, ProbeStep, StepMeasure
from opskit.capacity.recommend import recommend, value_at
from opskit.spec.schema import Threshold


def step(rate: float, p95: float, cpu: float | None, verdict: str = PASS) -> ProbeStep:
    return ProbeStep(StepMeasure(rate, rate, p95 / 2, p95, p95 * 2, 0.0, 3, int(rate * 15), cpu_pct=cpu),
                     verdict, "ramp")


# latency and CPU rising with the rate; the SLO (p95 < 200 ms) breaks past 800 req/s
RESULT = ProbeResult(800.0, 900.0, "slo:p95", (800.0, 840.0), [
    step(100, 10, 10), step(200, 12, 20), step(400, 30, 40), step(800, 150, 80), step(840, 260, 85, "slo:p95")])

ROWS = [Threshold.model_validate(r) for r in (
    {"resource": "api", "metric": "response_time", "scale_up": "500ms", "scale_down": "100ms"},
    {"resource": "api", "metric": "cpu_utilization", "scale_up": "70%", "scale_down": "20%"},
    {"resource": "api", "metric": "memory_utilization", "scale_up": "75%"},
    {"resource": "database", "metric": "cpu_utilization", "scale_up": "60%"},
    {"resource": "api", "metric": "error_budget_burn", "target": 1},
)]


def test_target_rate_and_each_rows_verdict():
    rec = recommend(RESULT, ROWS, resource="api", utilization_target_pct=70)
    assert rec.knee_rps == 800 and rec.target_rps_per_instance == pytest.approx(560) and not rec.lower_bound
    rt, cpu, mem, db = rec.rows  # the target-mode row has no scale_up: not reviewed
    # p95 is 150 ms at the knee: a 500 ms row fires only after the 200 ms SLO broke
    assert rt.fires == "after" and rt.at_knee == 150
    # at 560 req/s (between 400 @ 30 ms and 800 @ 150 ms): 30 + 120 x 160/400 = 78 ms
    assert rt.suggest == pytest.approx(78) and "scale_up 78 ms would fire at the 560.0 req/s target" in rt.note
    # CPU is 80% at the knee, above 70%: the row fires before the SLO breaks
    assert cpu.fires == "before" and cpu.suggest is None and cpu.at_target == pytest.approx(56)
    assert mem.fires == "unknown" and "not measured" in mem.note
    assert db.fires == "unknown" and "not loaded by the probe" in db.note


def test_no_knee_and_lower_bounds():
    none = ProbeResult(None, 10.0, "throughput", (0.0, 5.0), [step(5, 900, 99, "throughput")])
    rec = recommend(none, ROWS, resource="api", utilization_target_pct=70)
    assert rec.target_rps_per_instance is None and all(r.fires == "unknown" for r in rec.rows)
    capped = ProbeResult(1000.0, 1000.0, "max_rate", (1000.0, None), [step(1000, 20, 50)])
    assert recommend(capped, ROWS, resource="api", utilization_target_pct=70).lower_bound


def test_value_at_interpolates_and_clamps():
    ms = [s.measure for s in RESULT.steps[:4]]
    assert value_at(ms, "p95", 50) == 10 and value_at(ms, "p95", 300) == pytest.approx(21)
    assert value_at(ms, "p95", 5000) == 150 and value_at(ms, "memory_pct", 300) is None
