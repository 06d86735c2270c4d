"""`capacity probe --model closed`: users doubling until throughput stops rising, so the points span the knee."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.capacity.probe import StepMeasure
from opskit.capacity.proberun import sweep_users
from opskit.gate.criteria import parse
from opskit.loadtest.stallserver import StallSchedule, StallServer

SPEC = str(Path(__file__).resolve().parents[2] / "opskit.yaml")


def closed_queue(slots: int, service_s: float):
    """Users against a server of `slots` x `service_s`: throughput min(N, slots) / service_s, latency from
    Little's law (a stand-in for the step runner; the sweep itself is pure)."""
    seen: list[int] = []

    def run(users: int) -> StepMeasure:
        seen.append(users)
        x = min(users, slots) / service_s
        ms = 1000 * users / x
        return StepMeasure(x, x, ms, ms * 1.2, ms * 1.5, 0.0, users, int(x * 3))

    return run, seen


def test_users_double_until_throughput_is_flat_twice() -> None:
    run, seen = closed_queue(slots=6, service_s=0.02)  # 300 req/s from N = 6
    res = sweep_users(run, slo=[], error_budget=0.01, max_users=256)
    assert seen == [1, 2, 4, 8, 16, 32]  # 8 reaches the plateau; 16 and 32 add nothing
    assert res.saturation_rate == pytest.approx(300)
    assert res.limited_by == "throughput" and not res.notes


def test_the_slo_bounds_the_answer_and_max_users_stops_the_sweep() -> None:
    run, _ = closed_queue(slots=6, service_s=0.02)
    res = sweep_users(run, slo=[parse("p95 < 100ms")], error_budget=0.01, max_users=256)
    # N=8: 300 req/s at 26.7 ms mean, p95 32 ms; N=16: 64 ms; N=32: 128 ms fails
    assert res.max_rate_within_slo == pytest.approx(300) and res.limited_by == "slo:p95"
    short = sweep_users(run, slo=[], error_budget=0.01, max_users=3)
    assert [s.measure.in_flight_max for s in short.steps] == [1, 2]
    assert short.notes and "still rising" in short.notes[0]


@pytest.mark.slow
def test_a_closed_sweep_against_a_known_capacity(invoke, tmp_path: Path) -> None:
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.02), slots=4) as server:  # 200 req/s from N = 4
        result = invoke("capacity", "probe", "--spec", SPEC, "--host", server.url, "--path", "/", "--model",
                        "closed", "--start", "1", "--max-rate", "32", "--step", "3s", "--out", str(tmp_path / "c"),
                        "--output", "json")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["saturation_rate"] == pytest.approx(200, rel=0.10)
    achieved = [s["achieved"] for s in answer["steps"]]
    assert achieved[0] < 0.5 * max(achieved)  # points below the knee and on the plateau: it is spanned
    assert len(achieved) >= 4


@pytest.mark.slow
def test_a_closed_step_runs_all_its_users_from_the_start(invoke, tmp_path: Path) -> None:
    # 32 users against a slow server (0.2 s a request, slots for all): each user keeps one request in flight.
    # At the scenarios' spawn rate (10 users/s) a 2 s step would never have more than 20 of them running.
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.2), slots=64) as server:
        result = invoke("capacity", "probe", "--spec", SPEC, "--host", server.url, "--path", "/", "--model",
                        "closed", "--start", "32", "--max-rate", "32", "--step", "2s", "--slo", "p95 < 1s",
                        "--out", str(tmp_path / "c"), "--output", "json")
    assert result.exit_code == 0, result.stderr
    [step] = json.loads(result.stdout)["steps"]
    assert step["in_flight_max"] >= 30
    assert step["achieved"] > 20 / 0.2  # more than 20 users' worth of completions
    assert "step 1 [ramp] 32 users: " in result.stderr  # the progress line names the level
