"""Honest overload: a service that cannot keep up is the run's answer ("no"), not an invalid run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.loadtest import health
from opskit.loadtest.stallserver import StallSchedule, StallServer


def test_drops_at_the_in_flight_cap_are_the_service_not_the_generator() -> None:
    h = health.assess(cpu=[("0", [30.0] * 5)], duration_s=10.0, intended=1000, sent=800, dropped=200)
    assert h.valid and h.limited_by == "service"
    assert "200 of 1000 arrivals" in (h.limited_reason or "")


def test_a_loop_behind_its_schedule_is_the_generator() -> None:
    h = health.assess(cpu=[("0", [30.0] * 5)], duration_s=10.0, intended=1000, sent=850, dropped=0)
    assert not h.valid and h.limited_by == "generator" and "missed its rate" in (h.invalid_reason or "")


def test_a_saturated_generator_is_the_generator_even_with_drops() -> None:
    h = health.assess(cpu=[("0", [99.0] * 6)], duration_s=10.0, intended=1000, sent=800, dropped=200)
    assert not h.valid and h.limited_by == "generator"


@pytest.mark.parametrize(("in_flight", "scheduled", "growing"), [
    ([2, 2, 2, 2, 2, 2, 2, 2, 2], None, False),            # steady
    ([5, 10, 15, 20, 25, 30, 35, 40, 45], None, True),     # a queue building
    ([1, 1, 2, 2, 3, 3], None, False),                     # tiny rises are no queue
    ([1, 1, 6], [50, 50, 50], False),                      # one second against another is noise
    ([2, 2, 2, 2, 8, 8], [50] * 6, False),                 # +6 in flight at 50 req/s: not a queue
    ([10, 20, 30, 40, 50, 60], [10, 20, 30, 40, 50, 60], False),  # the rate rises, backlog per arrival flat
    ([10, 20, 40, 80, 160, 320], [10, 20, 30, 40, 50, 60], True),
])
def test_queue_growing(in_flight: list[float], scheduled: list[float] | None, growing: bool) -> None:
    assert health.queue_growing(in_flight, scheduled) is growing


@pytest.mark.slow
def test_a_rate_above_a_known_capacity_is_service_limited_valid_and_the_gate_says_no(invoke, tmp_path: Path) -> None:
    """2 slots x 50 ms = 40 req/s offered 120 req/s: the queue reaches the cap, arrivals drop."""
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.05), slots=2) as server:
        out = tmp_path / "over"
        result = invoke("loadtest", "run", "http-get", "--host", server.url, "--path", "/", "--rate", "120",
                        "--duration", "3s", "--out", str(out), "--gate", "--criteria", "error_rate < 50%")
    r = json.loads((out / "results.json").read_text())
    assert r["run"]["valid"] is True, r["run"]["invalid_reason"]
    assert r["run"]["limited_by"] == "service"
    assert r["run"]["latency_lower_bound"] is True
    assert result.exit_code == 1, result.stderr
    assert "throughput" in result.stdout + result.stderr
    assert "limited by the service: the service did not keep up" in result.stderr


@pytest.mark.slow
def test_a_rate_within_capacity_is_limited_by_nothing(invoke, tmp_path: Path) -> None:
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.01), slots=4) as server:  # 400 req/s
        out = tmp_path / "ok"
        result = invoke("loadtest", "run", "http-get", "--host", server.url, "--path", "/", "--rate", "50",
                        "--duration", "3s", "--out", str(out), "--gate", "--criteria", "error_rate < 50%")
    r = json.loads((out / "results.json").read_text())
    assert r["run"]["limited_by"] == "none" and r["run"]["latency_lower_bound"] is False
    assert result.exit_code == 0, result.stderr


def test_a_loop_sending_arrivals_seconds_late_is_the_generator() -> None:
    h = health.assess(cpu=[("0", [40.0] * 5)], duration_s=3.0, intended=9000, sent=9000, lag_max_ms=4500.0)
    assert not h.valid and h.limited_by == "generator" and "lagged" in (h.invalid_reason or "")
    ok = health.assess(cpu=[("0", [40.0] * 5)], duration_s=3.0, intended=9000, sent=9000, lag_max_ms=12.0)
    assert ok.valid and ok.limited_by == "none"
