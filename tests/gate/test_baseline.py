from __future__ import annotations

import json

import pytest

from opskit.gate.baseline import BaselineMismatch, compare_runs
from opskit.runmodel import parse_results


def run_of(data: dict):
    return parse_results(json.dumps(data))


def one_endpoint(p95=50.0, rps=40, error_rate=0.0) -> dict:
    return {"GET /api/assets": {"rps": rps, "p95": p95, "error_rate": error_rate}}


def by_metric(comparisons) -> dict:
    return {c.metric: c for c in comparisons}


def test_noise_alone_never_fails(make_results) -> None:
    """Twenty pairs of runs drawn from the same service with 15% per-second noise: no false alarm."""
    statuses = []
    for seed in range(20):
        base = run_of(make_results(seconds=60, noise=0.15, seed=seed, endpoints=one_endpoint()))
        cur = run_of(make_results(seconds=60, noise=0.15, seed=1000 + seed, endpoints=one_endpoint()))
        statuses += [c.status for c in compare_runs(cur, base, 10)]
    assert "fail" not in statuses
    assert statuses.count("pass") >= 0.9 * len(statuses)


def test_a_real_regression_fails_with_an_interval_above_the_tolerance(make_results) -> None:
    base = run_of(make_results(seconds=60, noise=0.15, seed=1, endpoints=one_endpoint(p95=50.0)))
    cur = run_of(make_results(seconds=60, noise=0.15, seed=2, endpoints=one_endpoint(p95=65.0)))  # +30%
    got = by_metric(compare_runs(cur, base, 10))
    p95 = got["p95"]
    assert p95.status == "fail"
    assert p95.ci_low > 0.10 and p95.ci_low < p95.change < p95.ci_high
    assert p95.change == pytest.approx(0.30, abs=0.08)
    assert got["error_rate"].status == "pass" and got["rps"].status == "pass"


def test_an_improvement_passes(make_results) -> None:
    base = run_of(make_results(seconds=60, seed=1, endpoints=one_endpoint(p95=80.0)))
    cur = run_of(make_results(seconds=60, seed=2, endpoints=one_endpoint(p95=50.0)))
    assert by_metric(compare_runs(cur, base, 10))["p95"].status == "pass"


def test_a_short_noisy_run_is_inconclusive_not_failed(make_results) -> None:
    base = run_of(make_results(seconds=12, noise=0.5, seed=3, endpoints=one_endpoint(p95=50.0)))
    cur = run_of(make_results(seconds=12, noise=0.5, seed=4, endpoints=one_endpoint(p95=55.0)))
    p95 = by_metric(compare_runs(cur, base, 10))["p95"]
    assert p95.status == "inconclusive"
    assert p95.ci_low < 0.10 < p95.ci_high


def test_the_same_regression_is_proven_by_a_longer_run(make_results) -> None:
    base = run_of(make_results(seconds=300, noise=0.1, seed=3, endpoints=one_endpoint(p95=50.0)))
    cur = run_of(make_results(seconds=300, noise=0.1, seed=4, endpoints=one_endpoint(p95=60.0)))  # +20%
    assert by_metric(compare_runs(cur, base, 10))["p95"].status == "fail"


def test_too_few_seconds_is_inconclusive(make_results) -> None:
    base = run_of(make_results(seconds=3, endpoints=one_endpoint()))
    cur = run_of(make_results(seconds=3, seed=9, endpoints=one_endpoint(p95=500.0)))
    p95 = by_metric(compare_runs(cur, base, 10))["p95"]
    assert p95.status == "inconclusive" and "too few seconds" in p95.detail


def test_error_rate_is_compared_in_points_with_a_floor(make_results) -> None:
    base = run_of(make_results(seconds=60, endpoints=one_endpoint(rps=100, error_rate=0.0)))
    tiny = run_of(make_results(seconds=60, seed=5, endpoints=one_endpoint(rps=100, error_rate=0.0005)))
    big = run_of(make_results(seconds=60, seed=6, endpoints=one_endpoint(rps=100, error_rate=0.05)))
    assert by_metric(compare_runs(tiny, base, 10))["error_rate"].status == "pass"
    worse = by_metric(compare_runs(big, base, 10))["error_rate"]
    assert worse.status == "fail" and worse.change == pytest.approx(0.05, abs=0.005)


def test_a_throughput_drop_fails_in_the_closed_model(make_results) -> None:
    base = run_of(make_results(model="closed", seconds=60, endpoints=one_endpoint(rps=100)))
    cur = run_of(make_results(model="closed", seconds=60, seed=7, endpoints=one_endpoint(rps=70)))
    rps = by_metric(compare_runs(cur, base, 10))["rps"]
    assert rps.status == "fail" and rps.change == pytest.approx(-0.30) and rps.allowed == pytest.approx(-0.10)


def test_the_answer_is_deterministic(make_results) -> None:
    base = run_of(make_results(seconds=30, noise=0.3, seed=1))
    cur = run_of(make_results(seconds=30, noise=0.3, seed=2))
    first = compare_runs(cur, base, 10)
    assert first == compare_runs(cur, base, 10)


def test_an_endpoint_missing_on_one_side_is_inconclusive(make_results) -> None:
    base = run_of(make_results(seconds=30))
    cur_data = make_results(seconds=30, seed=2)
    del cur_data["endpoints"]["DELETE /api/assets/delete"]
    got = [c for c in compare_runs(run_of(cur_data), base, 10) if c.endpoint == "DELETE /api/assets/delete"]
    assert {c.status for c in got} == {"inconclusive"} and "not in this run" in got[0].detail


@pytest.mark.parametrize(
    ("other", "words"),
    [
        ({"scenario": "soak"}, "scenario 'soak'"),
        ({"model": "closed"}, "open and a closed workload"),
        ({"intended_rate": 80.0}, "intended rate"),
    ],
)
def test_different_experiments_are_refused(make_results, other, words) -> None:
    base_data = make_results(seconds=30)
    base_data["run"].update(other)
    with pytest.raises(BaselineMismatch, match=words):
        compare_runs(run_of(make_results(seconds=30)), run_of(base_data), 10)


def test_a_timeline_without_percentiles_is_inconclusive_and_says_why(make_results) -> None:
    base_data = make_results(seconds=30)
    for row in base_data["endpoints"]["GET /api/assets"]["timeline"]:
        del row["p95"], row["p99"]
    got = [c for c in compare_runs(run_of(make_results(seconds=30, seed=2)), run_of(base_data), 10)
           if c.endpoint == "GET /api/assets"]
    p95 = by_metric(got)["p95"]
    assert p95.status == "inconclusive" and "timeline of the baseline has no p95 column" in p95.detail
    assert by_metric(got)["error_rate"].status == "pass"
