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
    assert got["error_rate"].status == "pass" and "rps" not in got  # open model: the generator sets rps


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
    # and it says about how long the runs would need to be: the interval narrows as 1/sqrt(duration)
    assert p95.runs_needed_s is not None and p95.runs_needed_s > 12
    assert p95.runs_needed_s == pytest.approx(12 * ((p95.change - p95.ci_low) / (p95.change - 0.10)) ** 2
                                              if p95.change > 0.10 else
                                              12 * ((p95.ci_high - p95.change) / (0.10 - p95.change)) ** 2)
    assert "runs of about" in p95.detail and "would decide it" in p95.detail


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


def _with_figure(data: dict, endpoint: str, p95: float) -> dict:
    """The run's own whole-run p95 (what an HDR histogram of every request reports) set apart from the
    per-second timeline, as in a real run where the two differ."""
    data["endpoints"][endpoint]["latency_ms"]["p95"] = p95
    return data


def test_the_change_is_the_change_of_the_figures_the_table_shows(make_results) -> None:
    """Issue 18: 11.43ms -> 12.34ms printed -11.8% (the mean of per-second p95s fell while the whole-run
    p95 rose), and 13.68 -> 506.4 ms printed +2986% instead of +3602%."""
    ep = "GET /api/assets"
    base = _with_figure(make_results(seconds=30, seed=1, endpoints=one_endpoint(p95=14.0)), ep, 11.43)
    cur = _with_figure(make_results(seconds=30, seed=2, endpoints=one_endpoint(p95=12.35)), ep, 12.34)
    p95 = by_metric(c for c in compare_runs(run_of(cur), run_of(base), 10) if c.endpoint == ep)["p95"]
    assert (p95.baseline, p95.current) == (11.43, 12.34)
    assert p95.change == pytest.approx(12.34 / 11.43 - 1)
    assert p95.ci_low < p95.change < p95.ci_high

    base = _with_figure(make_results(seconds=30, seed=1, endpoints=one_endpoint(p95=13.0)), ep, 13.68)
    cur = _with_figure(make_results(seconds=30, seed=2, endpoints=one_endpoint(p95=400.0)), ep, 506.4)
    p95 = by_metric(c for c in compare_runs(run_of(cur), run_of(base), 10) if c.endpoint == ep)["p95"]
    assert p95.change == pytest.approx(36.02, abs=0.005) and p95.status == "fail"
    assert p95.ci_low < p95.change < p95.ci_high


def test_a_20s_run_of_an_unchanged_service_is_mostly_judged(make_results) -> None:
    """Issue 18: a 20 s run left 16 of 28 comparisons inconclusive. Seconds with independent noise are
    resampled one by one (20 draws, not 7 blocks of 3), so comparisons of two runs of the same service pass
    unless the figure itself is too uncertain."""
    statuses = []
    for seed in range(5):
        base = run_of(make_results(model="closed", seconds=20, noise=0.1, seed=seed))
        cur = run_of(make_results(model="closed", seconds=20, noise=0.1, seed=100 + seed))
        statuses += [c.status for c in compare_runs(cur, base, 10)]
    assert "fail" not in statuses
    assert statuses.count("inconclusive") < 0.25 * len(statuses), statuses


def test_rps_is_not_compared_in_the_open_model(make_results) -> None:
    open_runs = [run_of(make_results(seconds=30, seed=s)) for s in (1, 2)]
    closed_runs = [run_of(make_results(model="closed", seconds=30, seed=s)) for s in (1, 2)]
    assert "rps" not in {c.metric for c in compare_runs(*open_runs, 10)}
    assert {c.metric for c in compare_runs(*closed_runs, 10)} == {"p95", "p99", "error_rate", "rps"}


def test_the_block_length_follows_the_autocorrelation() -> None:
    import numpy as np

    from opskit.gate.resample import block_length

    rng = np.random.default_rng(1)
    assert block_length(rng.normal(size=300)) == 1
    ar = np.zeros(300)
    for i in range(1, 300):
        ar[i] = 0.9 * ar[i - 1] + rng.normal()
    assert 5 <= block_length(ar) <= 75


def test_a_resampled_percentile_is_the_percentile_of_the_drawn_seconds() -> None:
    """Seconds with one and the same distribution: every resample gives that p95; two halves of a run at
    10 ms and 100 ms give a whole-run p95 between them, on the slow half's side (90% of the requests
    of the slow half are under its own p95)."""
    import numpy as np

    from opskit.gate.resample import replicates
    from opskit.runmodel import Second

    same = [Second(t=t, requests=10, errors=0, p50=5.0, p95=20.0, p99=40.0) for t in range(20)]
    whole, boot = replicates("p95", same, np.random.default_rng(0), 200)
    assert whole == pytest.approx(20.0, rel=1e-3) and np.allclose(boot, 20.0, rtol=1e-3)
    mixed = [Second(t=t, requests=10, errors=0, p50=x / 2, p95=x, p99=x * 1.5) for t, x in
             enumerate([10.0] * 10 + [100.0] * 10)]
    whole, boot = replicates("p95", mixed, np.random.default_rng(0), 200)
    assert 50.0 < whole < 100.0 and np.nanmin(boot) >= 10.0 * 0.999
