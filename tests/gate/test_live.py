"""AbortWatcher: k6's abortOnFail + delayAbortEval on growing snapshots of a run."""

from __future__ import annotations

import pytest

from opskit.gate.criteria import CriterionError
from opskit.gate.live import AbortWatcher


def prefix(data: dict, seconds: int) -> dict:
    """What a running test knows after `seconds`: the timelines so far, no aggregates yet."""
    snap = {"run": {"scenario": data["run"]["scenario"], "model": data["run"]["model"]},
            "timeline": data["timeline"][:seconds], "endpoints": {}}
    for name, ep in data["endpoints"].items():
        snap["endpoints"][name] = {"timeline": ep["timeline"][:seconds]}
    return snap


def first_abort(watcher: AbortWatcher, data: dict, seconds: int) -> tuple[int, str] | None:
    """Feed the snapshots second by second, as the load test does; the first reason, and when."""
    for s in range(1, seconds + 1):
        reason = watcher.check(prefix(data, s))
        if reason:
            return s, reason
    return None


def test_error_storm_aborts_after_the_grace_period(make_results) -> None:
    errors = lambda t: 0.6 if t >= 3 else 0.0  # noqa: E731
    data = make_results(seconds=30, endpoints={"GET /api/assets": {"rps": 20, "p95": 50.0, "error_rate": errors}})
    got = first_abort(AbortWatcher(["error_rate < 10%"], grace_s=10), data, 30)
    assert got is not None
    at, reason = got
    assert at == 10  # failing from second 4 on, but the grace period holds judgement until 10 s
    assert reason.startswith("abort_on_fail criterion failed after 10s: error_rate < 10% (measured ")


def test_no_grace_aborts_as_soon_as_the_criterion_fails(make_results) -> None:
    errors = lambda t: 1.0 if t >= 3 else 0.0  # noqa: E731
    data = make_results(seconds=30, endpoints={"GET /api/assets": {"rps": 20, "p95": 50.0, "error_rate": errors}})
    got = first_abort(AbortWatcher(["error_rate < 10%"], grace_s=0), data, 30)
    assert got is not None and got[0] == 4  # errors / requests crosses 10% within the first failing second


def test_windowed_criterion_waits_for_a_sustained_breach(make_results) -> None:
    p95 = lambda t: 900.0 if t >= 8 else 50.0  # noqa: E731
    data = make_results(seconds=40, noise=0.0, endpoints={"GET /api/assets": {"rps": 20, "p95": p95}})
    got = first_abort(AbortWatcher(["GET /api/assets: p95 < 500ms for 10s"], grace_s=5), data, 40)
    assert got is not None and got[0] == 18  # seconds 8..17 are the first 10 s above 500 ms
    assert "longest breach 10s" in got[1]


def test_a_healthy_run_is_never_aborted(make_results) -> None:
    data = make_results(seconds=30)
    watcher = AbortWatcher(["error_rate < 1%", "GET /api/assets: p95 < 500ms for 5s", "rps >= 1"], grace_s=2)
    assert first_abort(watcher, data, 30) is None


def test_missing_data_never_aborts(make_results) -> None:
    data = make_results(seconds=20)
    watcher = AbortWatcher(["GET /api/other: error_rate < 1%", "p95 < 1ms"], grace_s=0)
    # an endpoint not hit yet and a percentile the snapshot does not carry are "not yet", not failures
    assert first_abort(watcher, data, 20) is None
    assert watcher.check({}) is None
    assert watcher.check({"timeline": "garbage", "run": {"duration_s": 30}}) is None


def test_aggregates_in_the_snapshot_are_used_when_present(make_results) -> None:
    data = make_results(seconds=20)
    watcher = AbortWatcher(["p95 < 1ms"], grace_s=5)
    assert watcher.check(data) is not None  # a full results dict: aggregate p95 is known
    assert AbortWatcher([], grace_s=0).check(data) is None


def test_bad_criteria_are_refused_up_front() -> None:
    with pytest.raises(CriterionError) as info:
        AbortWatcher(["p95 < 200 parsecs"], grace_s=1)
    assert info.value.column == 11
    with pytest.raises(ValueError, match="negative"):
        AbortWatcher(["p95 < 1s"], grace_s=-1)


def test_a_snapshot_without_timeline_uses_elapsed_and_aggregates(make_results) -> None:
    """The shape the load test sends while running: run.elapsed_s and stats blocks, no timeline yet."""
    data = make_results(seconds=20, endpoints={"GET /api/assets": {"rps": 20, "p95": 300.0}})
    snap = {"run": {"scenario": "smoke", "model": "open", "elapsed_s": 4.0}, "aggregate": data["aggregate"],
            "endpoints": {n: {k: v for k, v in ep.items() if k != "timeline"} for n, ep in data["endpoints"].items()},
            "generator": {"dropped": 0}}
    plain = AbortWatcher(["GET /api/assets: p95 < 200ms"], grace_s=5)
    assert plain.check(snap) is None  # 4 s < grace
    snap["run"]["elapsed_s"] = 6.0
    assert "after 6s: GET /api/assets: p95 < 200ms" in (plain.check(snap) or "")
    assert AbortWatcher(["GET /api/assets: p95 < 200ms for 3s"], grace_s=0).check(snap) is None
