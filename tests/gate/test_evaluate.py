from __future__ import annotations

import json

import pytest

from opskit.gate.criteria import parse
from opskit.gate.evaluate import Sourced, evaluate, judge, sustained
from opskit.gate.sources import cli_criteria, slo_criteria, spec_criteria
from opskit.runmodel import UnreadableResults, parse_results
from opskit.spec.schema import SLO, GateSpec


def run_of(data: dict) -> object:
    return parse_results(json.dumps(data))


def one(expr: str, data: dict, *, required: bool = True):
    return judge(Sourced(parse(expr), "--criteria", required), run_of(data))


# --- time windows on synthetic timelines -------------------------------------------------------------

def spike(start: int, length: int, high: float, low: float = 100.0):
    return lambda t: high if start <= t < start + length else low


@pytest.mark.parametrize(("spike_len", "expected"), [(5, "pass"), (29, "pass"), (30, "fail"), (45, "fail")])
def test_for_fails_only_when_the_breach_lasts_the_whole_window(make_results, spike_len, expected) -> None:
    data = make_results(seconds=90, noise=0.0,
                        endpoints={"GET /api/assets": {"rps": 20, "p95": spike(20, spike_len, 500.0)}})
    v = one("GET /api/assets: p95 < 300ms for 30s", data)
    assert v.status == expected
    assert f"longest breach {spike_len}s" in v.measured_text
    # without the window the same spike fails the aggregate only if it moves the whole-run p95
    assert one("GET /api/assets: p95 < 300ms", data).status == ("fail" if spike_len >= 45 else "pass")


def test_two_short_breaches_do_not_add_up(make_results) -> None:
    profile = lambda t: 500.0 if (10 <= t < 25) or (26 <= t < 41) else 100.0  # noqa: E731
    data = make_results(seconds=60, noise=0.0, endpoints={"GET /api/assets": {"rps": 20, "p95": profile}})
    v = one("GET /api/assets: p95 < 300ms for 30s", data)
    assert v.status == "pass" and "longest breach 15s" in v.measured_text


def test_window_level_is_the_worst_level_held_for_the_whole_window() -> None:
    points = [(t, v) for t, v in enumerate([100, 400, 350, 380, 120, 500, 90])]
    result = sustained(points, "<", 300, 3)
    assert result.level == 350  # seconds 1..3 stayed at or above 350
    assert result.longest_breach_s == 3
    lower = sustained(points, ">=", 200, 2)  # for 'rps >= 200': the lowest ceiling held for 2s
    assert lower.level == 380 and lower.longest_breach_s == 1  # never below 200 for 2s running
    drop = sustained([(0, 300.0), (1, 100.0), (2, 150.0), (3, 400.0)], ">=", 200, 2)
    assert drop.level == 150 and drop.longest_breach_s == 2


def test_a_gap_in_the_timeline_ends_a_breach() -> None:
    points = [(0, 500.0), (1, 500.0), (3, 500.0), (4, 500.0)]  # t=2 missing
    assert sustained(points, "<", 300, 3).longest_breach_s == 2
    with_none = [(0, 500.0), (1, None), (2, 500.0)]
    assert sustained(with_none, "<", 300, 2).longest_breach_s == 1


def test_rps_for_window_catches_a_throughput_collapse(make_results) -> None:
    rps = lambda t: 5 if 30 <= t < 45 else 50  # noqa: E731
    data = make_results(seconds=60, endpoints={"GET /api/assets": {"rps": rps, "p95": 50.0}})
    assert one("rps >= 40 for 10s", data).status == "fail"
    assert one("rps >= 40 for 20s", data).status == "pass"


def test_error_rate_and_dropped_windows(make_results) -> None:
    errors = lambda t: 0.5 if 10 <= t < 22 else 0.0  # noqa: E731
    data = make_results(seconds=40, endpoints={"GET /api/assets": {"rps": 20, "p95": 50.0, "error_rate": errors}},
                        dropped=lambda t: 3 if t >= 35 else 0)
    assert one("error_rate < 5% for 10s", data).status == "fail"
    assert one("error_rate < 5% for 15s", data).status == "pass"
    assert one("dropped == 0 for 5s", data).status == "fail"
    assert one("dropped == 0 for 6s", data).status == "pass"
    assert one("dropped == 0", data).status == "fail"


def test_window_longer_than_the_run_cannot_be_judged(make_results) -> None:
    v = one("p95 < 300ms for 1m", make_results(seconds=10))
    assert v.status == "error" and "shorter than the 1m window" in v.detail


# --- plain criteria, endpoints and data that is not there -------------------------------------------

def test_plain_criteria_use_the_aggregates(make_results) -> None:
    data = make_results(endpoints={"GET /api/assets": {"rps": 100, "p95": 150.0, "error_rate": 0.02}})
    assert one("GET /api/assets: p95 < 200ms", data).status == "pass"
    assert one("GET /api/assets: p95 < 100ms", data).status == "fail"
    v = one("error_rate < 1%", data)
    assert v.status == "fail" and v.measured == pytest.approx(0.02) and v.measured_text == "2%"
    assert one("requests >= 3000", data).status == "pass"
    assert one("rps >= 100", data).status == "pass"


def test_criterion_on_an_endpoint_never_hit_is_an_error(make_results) -> None:
    data = make_results()
    v = one("GET /api/nothing: p95 < 1s", data)
    assert v.status == "error" and "never hit" in v.detail and "GET /api/assets" in v.detail
    data["endpoints"]["GET /api/assets"].update(requests=0, failures=0)
    assert one("GET /api/assets: p95 < 1s", data).status == "error"


def test_slo_criterion_on_an_endpoint_outside_the_scenario_is_skipped(make_results) -> None:
    v = one("DELETE /api/x: p95 < 1s", make_results(), required=False)
    assert v.status == "skipped" and "not exercised by scenario smoke" in v.detail


def test_missing_percentile_is_an_error_not_a_pass(make_results) -> None:
    data = make_results()
    del data["aggregate"]["latency_ms"]["p999"]
    assert one("p999 < 1s", data).status == "error"


# --- where criteria come from -------------------------------------------------------------------------

def test_slos_become_criteria_for_their_endpoint() -> None:
    slo = SLO.model_validate({"name": "list", "endpoint": "GET /api/assets", "latency": {"p95": "200ms", "p99": "1s"},
                              "availability": "99.9%"})
    texts = [s.criterion.text for s in slo_criteria(slo)]
    assert texts == ["GET /api/assets: p95 < 200ms", "GET /api/assets: p99 < 1s",
                     "GET /api/assets: error_rate < 0.1%"]
    assert slo_criteria(slo)[2].criterion.value == pytest.approx(0.001)
    full = SLO.model_validate({"name": "x", "endpoint": "GET /", "availability": "100%"})
    assert [s.criterion.text for s in slo_criteria(full)] == ["GET /: error_rate == 0%"]


def test_spec_criteria_layers_and_dedupes() -> None:
    slos = [SLO.model_validate({"name": "list", "endpoint": "GET /api/assets", "latency": {"p95": "200ms"}})]
    gate = GateSpec.model_validate({"criteria": ["GET /api/assets: p95 < 200ms", "rps >= 1"],
                                    "scenarios": {"smoke": ["dropped == 0"], "soak": ["p99 < 1s"]},
                                    "abort_on_fail": ["error_rate < 50%"]})
    got = [(s.criterion.text, s.source, s.required) for s in spec_criteria(slos, gate, "smoke")]
    assert got == [("GET /api/assets: p95 < 200ms", "gate.criteria", True),  # written: must find its endpoint
                   ("rps >= 1", "gate.criteria", True),
                   ("dropped == 0", "gate.scenarios.smoke", True),
                   ("error_rate < 50%", "gate.abort_on_fail", True)]
    assert [s.criterion.text for s in cli_criteria(["p95<1s", "p95 < 1s"])] == ["p95 < 1s"]


def test_evaluate_keeps_order(make_results) -> None:
    run = run_of(make_results())
    verdicts = evaluate(cli_criteria(["rps >= 1", "p95 < 1ms"]), run)
    assert [v.status for v in verdicts] == ["pass", "fail"]


# --- reading results strictly ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("mutate", "words"),
    [
        (lambda d: d.pop("aggregate"), "aggregate: missing"),
        (lambda d: d["aggregate"].update(requests="many"), "aggregate.requests: expected a number"),
        (lambda d: d["aggregate"].update(failures=10**9), "failures out of"),
        (lambda d: d["run"].update(valid="yes"), "run.valid: expected true or false"),
        (lambda d: d.update(schema_version=3), "schema_version is 3"),
        (lambda d: d["timeline"][3].update(requests=-1), "timeline[3].requests: cannot be negative"),
        (lambda d: d["endpoints"]["GET /api/assets"]["latency_ms"].update(p95="fast"),
         "endpoints.GET /api/assets.latency_ms.p95"),
    ],
)
def test_results_are_read_strictly(make_results, mutate, words) -> None:
    data = make_results()
    mutate(data)
    with pytest.raises(UnreadableResults, match="results.json: ") as info:
        parse_results(json.dumps(data))
    assert words in str(info.value)


def test_truncated_and_empty_files_are_named_as_such(make_results) -> None:
    text = json.dumps(make_results())
    with pytest.raises(UnreadableResults, match="truncated"):
        parse_results(text[: len(text) // 2])
    with pytest.raises(UnreadableResults, match="empty"):
        parse_results("  \n")
    with pytest.raises(UnreadableResults, match="not valid JSON"):
        parse_results("{'single': 'quotes'}")


def test_a_window_on_a_timeline_without_that_column_cannot_be_judged(make_results) -> None:
    data = make_results(seconds=30)
    for row in data["endpoints"]["GET /api/assets"]["timeline"]:
        del row["p95"], row["p50"], row["p99"]  # some writers keep only counts per endpoint and second
    v = one("GET /api/assets: p95 < 1ms for 5s", data)
    assert v.status == "error" and "has no per-second p95" in v.detail


def test_aborted_true_reads_as_a_reason(make_results) -> None:
    data = make_results()
    data["run"]["aborted"] = True
    assert run_of(data).aborted == "stopped early by an abort_on_fail criterion"
    data["run"]["aborted"] = False
    assert run_of(data).aborted is None


def test_seconds_an_endpoint_timeline_leaves_out_count_as_zero_requests(make_results) -> None:
    """A writer may omit the seconds an endpoint got no request: a collapse must not read as a gap."""
    data = make_results(seconds=40, endpoints={"GET /api/assets": {"rps": lambda t: 0 if 10 <= t < 30 else 20,
                                                                   "p95": 50.0}})
    ep = data["endpoints"]["GET /api/assets"]
    ep["timeline"] = [row for row in ep["timeline"] if row["requests"]]
    v = one("GET /api/assets: rps >= 5 for 15s", data)
    assert v.status == "fail" and "longest breach 20s" in v.measured_text
    # latency has no value in a second without requests: it neither breaches nor holds
    assert one("GET /api/assets: p95 < 100ms for 10s", data).status == "pass"
